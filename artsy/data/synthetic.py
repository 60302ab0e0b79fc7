"""The synthetic dataset: class-coloured gratings plus noise, generated on access, for tests and
demos that must run without any file."""

from __future__ import annotations

from typing import Any, Optional

import numpy as np
from PIL import Image

from ..errors import DataError
from .images import DataSource, ImageSet, check_cap
from .spec import DatasetSpec


class SyntheticImageSet(ImageSet):
    """Class-coloured gratings plus noise, generated per item from (seed, split, index).

    Each class has its own hue (evenly spaced, shuffled by the seed) and its own grating
    orientation and frequency; the phase and the noise vary per image. The class is therefore
    learnable from colour alone, and the set costs no memory at any image size.
    """

    def __init__(self, n_classes: int, per_class: int, image_size: int, seed: int, split: str,
                 noise: float = 0.1):
        if n_classes < 1 or per_class < 1 or image_size < 1:
            raise DataError(f"synthetic dataset needs n_classes, per_class and image_size >= 1, "
                            f"got {n_classes}, {per_class}, {image_size}")
        super().__init__(np.repeat(np.arange(n_classes), per_class),
                         [f"class_{c:03d}" for c in range(n_classes)])
        self.image_size, self.seed, self.noise = image_size, seed, noise
        self._split = {"train": 0, "test": 1}[split]
        rng = np.random.default_rng(seed)
        hues = rng.permutation(n_classes) / n_classes
        self._colour = np.stack([_hsv_to_rgb(h, 0.8, 0.9) for h in hues])
        self._angle = rng.uniform(0, np.pi, n_classes)
        self._freq = rng.uniform(1.0, 4.0, n_classes)

    def image(self, i: int) -> Image.Image:
        c, s = int(self.targets[i]), self.image_size
        rng = np.random.default_rng([self.seed, self._split, i])
        v, u = np.mgrid[0:s, 0:s] / s
        phase = rng.uniform(0, 2 * np.pi)
        wave = u * np.cos(self._angle[c]) + v * np.sin(self._angle[c])
        grating = 0.5 + 0.5 * np.sin(2 * np.pi * self._freq[c] * wave + phase)
        light, dark = self._colour[c], 0.3 * self._colour[c]
        img = dark + (light - dark) * grating[..., None]
        img = img + self.noise * rng.standard_normal(img.shape)
        return Image.fromarray((np.clip(img, 0, 1) * 255).round().astype(np.uint8))


def _hsv_to_rgb(h: float, s: float, v: float) -> np.ndarray:
    k = (np.array([5.0, 3.0, 1.0]) + h * 6) % 6
    return v - v * s * np.clip(np.minimum(k, 4 - k), 0, 1)


def load_synthetic(n_classes: int = 10, train_per_class: int = 20, test_per_class: int = 10,
                   image_size: int = 32, seed: int = 0, noise: float = 0.1,
                   max_per_class_train: Optional[int] = None,
                   max_per_class_test: Optional[int] = None) -> DataSource:
    """A small learnable dataset, deterministic from `seed`, for tests and demos."""
    check_cap(max_per_class_train)
    check_cap(max_per_class_test)
    train_n = min(train_per_class, max_per_class_train or train_per_class)
    test_n = min(test_per_class, max_per_class_test or test_per_class)
    train = SyntheticImageSet(n_classes, train_n, image_size, seed, "train", noise)
    test = SyntheticImageSet(n_classes, test_n, image_size, seed, "test", noise)
    return DataSource("synthetic", train, test, train.class_names)


def _from_config(data_cfg: Any) -> DataSource:
    s = data_cfg.synthetic
    return load_synthetic(s.n_classes, s.train_per_class, s.test_per_class, s.image_size, s.seed,
                          s.noise, data_cfg.max_per_class_train, data_cfg.max_per_class_test)


# its sizes are config keys (data.synthetic), so the dry run counts the (image-less) source
SPEC = DatasetSpec(name="synthetic", loader=_from_config, needs_root=False,
                   config_keys=("synthetic",))
