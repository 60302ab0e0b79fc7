"""`DatasetSpec`: everything artsy needs to know about one dataset, declared in one place.

Each dataset module ends with its spec(s); `artsy.data.registry` collects them by name. The rest
of artsy (config checks, dry run, task data) asks the spec instead of testing the dataset's name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from ..errors import DataError
from .images import DataSource

# image_size, normalize (mean, std) or None -> (train transform, test transform)
TransformsFactory = Callable[[int, Optional[tuple]], tuple[Callable, Callable]]


@dataclass(frozen=True)
class DatasetSpec:
    """One dataset's facts. `data_cfg` below is an `artsy.config.DataConfig`.

    Sizes are given when the dataset fixes them (the official splits), so that a dry run needs no
    file; None means they are counted from the loaded source. `config_keys` are the DataConfig
    keys only this dataset reads (documentation and `downloadable`: another dataset ignores them,
    it does not refuse them); `check` enforces rules among them at config load time and raises
    `ConfigError`. `transforms` is None for the shared EASE transforms.
    """

    name: str
    loader: Callable[[Any], DataSource]  # data_cfg -> DataSource; root is checked beforehand
    n_classes: Optional[int] = None
    train_per_class: Optional[int] = None
    test_per_class: Optional[int] = None
    needs_root: bool = True  # False: generated or bundled, data.root is ignored
    config_keys: tuple[str, ...] = ()
    check: Optional[Callable[[Any], None]] = None
    transforms: Optional[TransformsFactory] = None

    @property
    def downloadable(self) -> bool:
        """Whether `data.download` can fetch it: the datasets that read that key."""
        return "download" in self.config_keys

    @property
    def fixed_size(self) -> bool:
        return None not in (self.n_classes, self.train_per_class, self.test_per_class)

    def load(self, data_cfg: Any) -> DataSource:
        if self.needs_root and data_cfg.root is None:
            raise DataError(f"dataset {self.name!r} needs a root directory (data.root)")
        return self.loader(data_cfg)

    def shape(self, data_cfg: Any) -> tuple[int, np.ndarray, np.ndarray]:
        """(n_classes, train images per class, test images per class) after the caps. Fixed
        sizes read no file; otherwise the source is loaded, which for file datasets lists the
        files (an archive is unpacked into the run's own capped cache) but decodes no image."""
        if self.fixed_size:
            n = self.n_classes
            train, test = np.full(n, self.train_per_class), np.full(n, self.test_per_class)
        else:
            src = self.load(data_cfg)
            n = src.n_classes
            train = np.bincount(src.train.targets, minlength=n)
            test = np.bincount(src.test.targets, minlength=n)
        cap = lambda a, c: np.minimum(a, c) if c else a  # noqa: E731
        return n, cap(train, data_cfg.max_per_class_train), cap(test, data_cfg.max_per_class_test)
