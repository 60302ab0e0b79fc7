"""scikit-learn's bundled 8x8 digits: a real image dataset that needs no file and no network."""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from ..errors import DataError, one_line
from .images import ArrayImageSet, DataSource, check_cap, first_per_class
from .spec import DatasetSpec

DIGITS_TEST_FRACTION = 0.2  # load_digits: stratified 80/20 split ...
DIGITS_SPLIT_SEED = 0  # ... by this fixed seed


def load_digits(test_fraction: float = DIGITS_TEST_FRACTION, seed: int = DIGITS_SPLIT_SEED,
                max_per_class_train: Optional[int] = None,
                max_per_class_test: Optional[int] = None) -> DataSource:
    """The 1,797 8x8 grayscale digits of `sklearn.datasets.load_digits` (10 classes, no files).

    A deterministic stratified split: within each class, a permutation by `seed` puts
    round(test_fraction * n_class) images in test, the rest in train; both keep the dataset's
    order. Pixels 0..16 become uint8 0..255, replicated to R, G, B, so the usual transforms apply.
    """
    check_cap(max_per_class_train)
    check_cap(max_per_class_test)
    if not 0 < test_fraction < 1:
        raise DataError(f"digits test_fraction must be in (0, 1), got {test_fraction!r}")
    try:
        from sklearn.datasets import load_digits as sklearn_digits
    except ImportError as e:
        raise DataError(f"dataset 'digits' needs scikit-learn ({one_line(e)}); install it with "
                        "pip install scikit-learn") from e
    bunch = sklearn_digits()
    targets = np.asarray(bunch.target, dtype=np.int64)
    gray = np.clip(np.rint(np.asarray(bunch.images, dtype=np.float64) * (255 / 16)), 0, 255)
    images = np.repeat(gray.astype(np.uint8)[..., None], 3, axis=-1)
    is_test = np.zeros(len(targets), dtype=bool)
    rng = np.random.default_rng(seed)
    for c in np.unique(targets):
        members = np.flatnonzero(targets == c)
        is_test[rng.permutation(members)[:int(round(test_fraction * len(members)))]] = True
    names = [str(c) for c in range(10)]
    sets = []
    for split, cap in ((~is_test, max_per_class_train), (is_test, max_per_class_test)):
        idx = np.flatnonzero(split)
        idx = idx[first_per_class(targets[idx], cap)]
        sets.append(ArrayImageSet(np.ascontiguousarray(images[idx]), targets[idx], names))
    return DataSource("digits", sets[0], sets[1], names)


def _from_config(data_cfg: Any) -> DataSource:
    return load_digits(max_per_class_train=data_cfg.max_per_class_train,
                       max_per_class_test=data_cfg.max_per_class_test)


# per-class counts follow from the split above, so the dry run counts the loaded source
SPEC = DatasetSpec(name="digits", loader=_from_config, needs_root=False)
