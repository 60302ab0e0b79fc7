"""The dataset registry: every dataset artsy can read, by its `data.name`.

Adding a dataset is one module that ends with a `DatasetSpec` and one entry in `_SPECS`; config
checks, the dry run and `task_data_from_config` then know it without further edits.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ConfigError, DataError
from . import cifar, digits, folders, synthetic, tinyimagenet
from .holdout import holdout_counts
from .images import DataSource
from .order import check_class_order_config
from .spec import DatasetSpec

_SPECS = (cifar.CIFAR100_SPEC, cifar.CIFAR10_SPEC, tinyimagenet.SPEC, folders.SPEC, synthetic.SPEC,
          digits.SPEC)
DATASETS: dict[str, DatasetSpec] = {spec.name: spec for spec in _SPECS}  # in messages' order


def dataset_spec(name: str) -> DatasetSpec:
    try:
        return DATASETS[name]
    except KeyError:
        raise DataError(f"unknown dataset {name!r}: expected one of "
                        f"{', '.join(sorted(DATASETS))}") from None


def load_source(data_cfg: Any) -> DataSource:
    """The dataset `data_cfg.name` (an `artsy.config.DataConfig`), read as its spec says."""
    return dataset_spec(data_cfg.name).load(data_cfg)


def dataset_shape(data_cfg: Any) -> tuple[int, np.ndarray, np.ndarray]:
    """(n_classes, train images per class, test images per class), with the caps applied,
    reading no files except an image folder's listing (see `DatasetSpec.shape`); with
    `data.holdout`, the held-out training images are the test images."""
    n, train, test = dataset_spec(data_cfg.name).shape(data_cfg)
    if getattr(data_cfg, "holdout", 0):
        held = holdout_counts(train, data_cfg.holdout)
        return n, train - held, held
    return n, train, test


def check_data_config(data_cfg: Any) -> None:
    """Config-time checks of data.name and of its dataset's own keys (artsy.config calls this;
    the wording of the name error matches the config's other enumerations)."""
    spec = DATASETS.get(data_cfg.name)
    if spec is None:
        raise ConfigError(f"config key 'data.name': expected one of "
                          f"{', '.join(repr(n) for n in DATASETS)}, got {data_cfg.name!r} "
                          f"({type(data_cfg.name).__name__})")
    check_class_order_config(data_cfg)  # duplicates, invalid and missing ids named
    if spec.check is not None:
        spec.check(data_cfg)
