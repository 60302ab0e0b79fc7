"""The one shape every dataset is read into, and the rule that caps images per class.

A `DataSource` holds `train` and `test` `ImageSet`s whose items are (PIL RGB image, ORIGINAL class
id), loaded lazily; class order and task splits are applied on top of it (`artsy.data.tasks`).
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

import numpy as np
from PIL import Image

from ..errors import DataError, one_line

PathLike = Union[str, os.PathLike]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".pgm", ".gif", ".webp", ".tif",
                    ".tiff")


class ImageSet:
    """Images with their ORIGINAL class ids; items are (PIL RGB image, class id)."""

    def __init__(self, targets: Sequence[int], class_names: Sequence[str]):
        self.targets = np.asarray(targets, dtype=np.int64)
        self.class_names = list(class_names)

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int) -> tuple[Image.Image, int]:
        return self.image(int(i)), int(self.targets[i])

    def image(self, i: int) -> Image.Image:
        raise NotImplementedError


class ArrayImageSet(ImageSet):
    """In-memory uint8 images, N x H x W x 3 (CIFAR pickles, scikit-learn digits)."""

    def __init__(self, images: np.ndarray, targets: Sequence[int], class_names: Sequence[str]):
        super().__init__(targets, class_names)
        self.images = images

    def image(self, i: int) -> Image.Image:
        return Image.fromarray(self.images[i])


class FileImageSet(ImageSet):
    """Image files read on access (TinyImageNet, image folders): 120k JPEGs need no RAM upfront."""

    def __init__(self, paths: Sequence[PathLike], targets: Sequence[int],
                 class_names: Sequence[str]):
        super().__init__(targets, class_names)
        self.paths = [Path(p) for p in paths]

    def image(self, i: int) -> Image.Image:
        path = self.paths[i]
        try:
            with Image.open(path) as im:
                return im.convert("RGB")
        except FileNotFoundError as e:
            raise UnreadableImage(f"image {path} is gone: it was listed when the data was loaded "
                                  f"but removed since; put it back") from e
        except _UNREADABLE as e:
            detail = one_line(e).replace(f" '{path}'", "").replace(f" {path}", "") or "no detail"
            raise UnreadableImage(
                f"cannot read image {path} ({type(e).__name__}: {detail}): "
                f"the file is not a readable image (corrupt, truncated or another format); "
                f"remove it or replace it with a good copy") from e


# what PIL raises for a file it cannot decode: UnidentifiedImageError and "image file is
# truncated" are OSErrors; some plugins raise SyntaxError, ValueError or EOFError
_UNREADABLE = (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError)


class UnreadableImage(DataError):
    """An image file that cannot be decoded, found when it is first read (mid-run).

    It keeps its one-line message through DataLoader worker processes: torch re-raises a worker's
    exception as ``type(e)("Caught ... in DataLoader worker process N. Original Traceback ...")``,
    and this constructor keeps only the original message, the traceback's last line.
    """

    def __init__(self, message: object = ""):
        message = str(message)
        if "Original Traceback" in message:
            last = message.strip().splitlines()[-1]
            for name in (f"{type(self).__module__}.{type(self).__qualname__}: ",
                         f"{type(self).__qualname__}: "):
                if last.startswith(name):
                    message = last[len(name):]
                    break
        super().__init__(one_line(message))


@dataclass
class DataSource:
    """One dataset: train and test image sets sharing `class_names` (index = original class id)."""

    name: str
    train: ImageSet
    test: ImageSet
    class_names: list[str]

    @property
    def n_classes(self) -> int:
        return len(self.class_names)


# ----------------------------------------------------------------------------------------------
# Per-class caps (data.max_per_class_train / _test): always the FIRST images, so runs repeat


def check_cap(cap: Optional[int]) -> None:
    if cap is not None and (not isinstance(cap, (int, np.integer)) or cap < 1):
        raise DataError(f"max_per_class must be an integer >= 1 or None, got {cap!r}")


def first_per_class(targets: np.ndarray, cap: Optional[int]) -> np.ndarray:
    """Indices of the first `cap` items of each class, in their given order (deterministic)."""
    if cap is None:
        return np.arange(len(targets))
    check_cap(cap)
    seen: dict[int, int] = defaultdict(int)
    keep = []
    for i, y in enumerate(targets.tolist()):
        if seen[y] < cap:
            seen[y] += 1
            keep.append(i)
    return np.asarray(keep, dtype=np.int64)


def is_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS) and not name.startswith(".")


def first_n(names: Sequence[str], cap: Optional[int]) -> list[str]:
    """The per-class selection rule for files: image files sorted by name, the first `cap`."""
    check_cap(cap)
    return sorted(n for n in names if is_image(n))[:cap]


def image_files(folder: Path, cap: Optional[int]) -> list[Path]:
    """`first_n` of a class folder's files; none when the folder is missing."""
    if not folder.is_dir():
        return []
    return [folder / n for n in first_n(os.listdir(folder), cap)]
