"""A validation split carved out of the training images, evaluated instead of the test split.

Hyper-parameters (learning rate, epochs, gate signals) are chosen on training data only: with
`data.holdout = f`, each class keeps its first-seeded share 1 - f of training images for training
and the rest becomes the evaluation set; the test split is not read at all.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

from ..errors import DataError
from .images import DataSource, ImageSet


class SubsetImageSet(ImageSet):
    """Some items of another ImageSet, in the given order."""

    def __init__(self, base: ImageSet, indices: Sequence[int]):
        self.base, self.indices = base, np.asarray(indices, dtype=np.int64)
        super().__init__(base.targets[self.indices], base.class_names)

    def image(self, i: int) -> Image.Image:
        return self.base.image(int(self.indices[i]))


def holdout_counts(n: np.ndarray, fraction: float) -> np.ndarray:
    """Held-out images per class: round(fraction * n), at least one and leaving at least one."""
    held = np.rint(np.asarray(n) * fraction).astype(np.int64)
    return np.clip(held, 1, np.maximum(np.asarray(n) - 1, 1))


def with_holdout(source: DataSource, fraction: float, seed: int) -> DataSource:
    """`source` whose test split is a seeded per-class share `fraction` of its training images."""
    if not 0 < fraction < 1:
        raise DataError(f"data.holdout must be in (0, 1) to hold out training images, got "
                        f"{fraction}")
    targets = source.train.targets
    rng = np.random.default_rng(seed)
    keep, held = [], []
    for c in np.unique(targets):
        members = np.flatnonzero(targets == c)
        if len(members) < 2:
            raise DataError(f"data.holdout needs at least 2 training images per class; class "
                            f"{source.class_names[c]!r} has {len(members)}")
        (k,) = holdout_counts([len(members)], fraction)
        chosen = np.zeros(len(members), dtype=bool)
        chosen[rng.permutation(len(members))[:k]] = True
        held.append(members[chosen])
        keep.append(members[~chosen])
    return DataSource(f"{source.name} (holdout {fraction:g})",
                      SubsetImageSet(source.train, np.sort(np.concatenate(keep))),
                      SubsetImageSet(source.train, np.sort(np.concatenate(held))),
                      source.class_names)
