"""Class order, label remapping and task splits over a `DataSource`, and the per-task torch
Datasets a learner trains and evaluates on (docs/method.md §11)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Optional, Union

import numpy as np
from torch.utils.data import Dataset

from ..errors import ConfigError
from .holdout import with_holdout
from .images import DataSource, ImageSet
from .order import DEFAULT_ORDER_SEED, class_order
from .registry import dataset_spec
from .transforms import Normalize, ease_transforms


def remap_labels(targets: Sequence[int], order: Sequence[int]) -> np.ndarray:
    """New label = order.index(original), for every target (docs/method.md §11.2)."""
    inverse = np.empty(len(order), dtype=np.int64)
    inverse[np.asarray(order)] = np.arange(len(order))
    return inverse[np.asarray(targets, dtype=np.int64)]


def task_splits(n_classes: int, init_cls: int, increment: int) -> list[list[int]]:
    """The new (remapped) labels of each task: `init_cls` first, then `increment` at a time.

    B0-IncK is init_cls == increment; "B100 + 20" is init_cls=100, increment=20. A last task
    smaller than `increment` is refused: it would make the protocol silently differ.
    """
    if init_cls < 1 or increment < 1 or init_cls > n_classes:
        raise ConfigError(f"config keys 'data.init_cls', 'data.increment': invalid task split "
                          f"init_cls={init_cls}, increment={increment} for {n_classes} classes: "
                          f"need 1 <= init_cls <= {n_classes} and increment >= 1")
    rest = n_classes - init_cls
    if rest % increment:
        raise ConfigError(f"config keys 'data.init_cls', 'data.increment': init_cls={init_cls}, "
                          f"increment={increment} do not split {n_classes} classes: the remaining "
                          f"{rest} classes are not a multiple of {increment}; choose an increment "
                          f"that divides {rest}")
    tasks = [list(range(init_cls))]
    for start in range(init_cls, n_classes, increment):
        tasks.append(list(range(start, start + increment)))
    return tasks


# ----------------------------------------------------------------------------------------------
# Per-task views

DEFAULT = "default"  # sentinel: use the TaskData's own transform for that split


class TaskSubset(Dataset):
    """A torch Dataset over some items of an ImageSet, with remapped labels and a transform."""

    def __init__(self, images: ImageSet, indices: np.ndarray, labels: np.ndarray,
                 transform: Optional[Callable] = None):
        self.images, self.indices, self.transform = images, indices, transform
        self.targets = labels[indices]

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int):
        img = self.images.image(int(self.indices[i]))
        return (self.transform(img) if self.transform else img), int(self.targets[i])


class TaskData:
    """Class order + task split over a DataSource: per-task train sets and seen-class test sets.

    Labels are remapped through the order (0 .. n_classes-1 in order of appearance); the
    subsets give global remapped labels, so a task head subtracts `known_classes(t)` itself.
    """

    def __init__(self, source: DataSource, init_cls: int, increment: int,
                 order: Union[str, Sequence[int]] = "seed", seed: int = DEFAULT_ORDER_SEED,
                 train_transform: Optional[Callable] = None,
                 test_transform: Optional[Callable] = None):
        self.source = source
        self.order = class_order(source.n_classes, order, seed)
        self.tasks = task_splits(source.n_classes, init_cls, increment)
        self.train_labels = remap_labels(source.train.targets, self.order)
        self.test_labels = remap_labels(source.test.targets, self.order)
        self.train_transform, self.test_transform = train_transform, test_transform
        self._task_of = np.concatenate([np.full(len(c), t) for t, c in enumerate(self.tasks)])

    @property
    def n_tasks(self) -> int:
        return len(self.tasks)

    @property
    def class_names(self) -> list[str]:
        """Names in remapped-label order."""
        return [self.source.class_names[c] for c in self.order]

    def task_classes(self, t: int) -> list[int]:
        return self.tasks[self._check(t)]

    def known_classes(self, t: int) -> int:
        """Classes seen before task t (the label offset of task t)."""
        return sum(len(c) for c in self.tasks[: self._check(t)])

    def seen_classes(self, t: int) -> int:
        """Classes seen up to and including task t."""
        return self.known_classes(t) + len(self.tasks[t])

    def task_of(self, labels: Sequence[int]) -> np.ndarray:
        """Task index of each remapped label (the oracle task id)."""
        return self._task_of[np.asarray(labels, dtype=np.int64)]

    def train_set(self, t: int, transform: Any = DEFAULT) -> TaskSubset:
        """Training images of task t's classes."""
        lo, hi = self.known_classes(t), self.seen_classes(t)
        return self._subset("train", lo, hi, transform)

    def test_set(self, t: int, transform: Any = DEFAULT) -> TaskSubset:
        """Test images of all classes seen up to task t."""
        return self._subset("test", 0, self.seen_classes(t), transform)

    def task_test_set(self, t: int, transform: Any = DEFAULT) -> TaskSubset:
        """Test images of task t's classes only."""
        return self._subset("test", self.known_classes(t), self.seen_classes(t), transform)

    def _subset(self, split: str, lo: int, hi: int, transform: Any) -> TaskSubset:
        labels = self.train_labels if split == "train" else self.test_labels
        images = self.source.train if split == "train" else self.source.test
        if isinstance(transform, str) and transform == DEFAULT:
            transform = self.train_transform if split == "train" else self.test_transform
        indices = np.flatnonzero((labels >= lo) & (labels < hi))
        return TaskSubset(images, indices, labels, transform)

    def _check(self, t: int) -> int:
        if not 0 <= t < self.n_tasks:
            raise IndexError(f"task {t} out of range: this split has tasks 0..{self.n_tasks - 1}")
        return t


def task_data_from_config(data_cfg: Any, normalize: Normalize = None) -> TaskData:
    """Dataset, order, split and transforms from an `artsy.config.DataConfig`."""
    spec = dataset_spec(data_cfg.name)
    source = spec.load(data_cfg)
    if data_cfg.holdout:
        source = with_holdout(source, data_cfg.holdout, data_cfg.seed)
    train_tf, test_tf = (spec.transforms or ease_transforms)(data_cfg.image_size, normalize)
    return TaskData(source, data_cfg.init_cls, data_cfg.increment, data_cfg.class_order,
                    data_cfg.seed, train_tf, test_tf)
