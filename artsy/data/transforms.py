"""The shared train and test transforms (EASE: no mean/std normalisation;
docs/method.md §3.1, §10).

A dataset with transforms of its own names them in its `DatasetSpec.transforms`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

from torchvision import transforms as T

Normalize = Optional[tuple[Sequence[float], Sequence[float]]]  # (mean, std) or None


def train_transform(image_size: int = 224, normalize: Normalize = None):
    steps = [T.RandomResizedCrop(image_size, scale=(0.05, 1.0), ratio=(3 / 4, 4 / 3)),
             T.RandomHorizontalFlip(), T.ToTensor()]
    return T.Compose(steps + _normalize(normalize))


# PILOT's EASE resizes test images only when the input size is above 32 px: CIFAR's 32-px images
# then go to the network as they are. Below that size we follow it exactly for images that
# already have the input size, and resize the others (e.g. 8-px digits) as above 32 px.
NO_RESIZE_AT_OR_BELOW_PX = 32


def eval_transform(image_size: int = 224, normalize: Normalize = None):
    """The test-time transform: Resize(256, bicubic) + CenterCrop(224) at 224 px, the same ratio
    at other sizes above 32 px; at 32 px and below, images of the input size are left as they
    are (PILOT's rule). (Not named test_transform: pytest would collect it from test modules.)"""
    resize = [T.Resize(int(image_size * 256 / 224), interpolation=T.InterpolationMode.BICUBIC),
              T.CenterCrop(image_size)]
    if image_size <= NO_RESIZE_AT_OR_BELOW_PX:
        resize = [UnlessSize(image_size, T.Compose(resize))]
    return T.Compose(resize + [T.ToTensor()] + _normalize(normalize))


class UnlessSize:
    """Apply `transform` unless the image is already `size` x `size` pixels."""

    def __init__(self, size: int, transform) -> None:
        self.size, self.transform = size, transform

    def __call__(self, img):
        return img if img.size == (self.size, self.size) else self.transform(img)

    def __repr__(self) -> str:
        return f"UnlessSize({self.size}, {self.transform!r})"


def ease_transforms(image_size: int = 224, normalize: Normalize = None):
    """(train transform, test transform): what every dataset uses unless its spec says else."""
    return train_transform(image_size, normalize), eval_transform(image_size, normalize)


def _normalize(normalize) -> list:
    if normalize is None:
        return []
    if len(normalize) != 2:
        raise ValueError(f"normalize must be (mean, std), got {normalize!r}")
    return [T.Normalize(tuple(normalize[0]), tuple(normalize[1]))]
