"""artsy.data.holdout: a seeded per-class validation split of the training images."""

import numpy as np
import pytest

from artsy.config import Config, DataConfig, SyntheticConfig, apply_overrides
from artsy.data import dataset_shape, task_data_from_config
from artsy.data.holdout import with_holdout
from artsy.data.synthetic import load_synthetic
from artsy.errors import ConfigError, DataError


def synthetic(holdout=0.0, seed=1993):
    return DataConfig(name="synthetic", image_size=8, init_cls=2, increment=2, seed=seed,
                      holdout=holdout, synthetic=SyntheticConfig(n_classes=4, train_per_class=10,
                                                                 test_per_class=3, image_size=8))


def test_holdout_splits_each_class_of_the_training_images():
    src = load_synthetic(n_classes=4, train_per_class=10, test_per_class=3, image_size=8)
    split = with_holdout(src, 0.2, seed=0)
    assert np.bincount(split.train.targets).tolist() == [8] * 4
    assert np.bincount(split.test.targets).tolist() == [2] * 4
    used = np.concatenate([split.train.indices, split.test.indices])
    assert sorted(used) == list(range(len(src.train)))  # disjoint, and nothing of the test split
    for i in (0, 5):
        assert np.array_equal(np.asarray(split.test.image(i)),
                              np.asarray(src.train.image(int(split.test.indices[i]))))
    again = with_holdout(src, 0.2, seed=0)
    assert np.array_equal(again.test.indices, split.test.indices)
    assert not np.array_equal(with_holdout(src, 0.2, seed=1).test.indices, split.test.indices)


def test_task_data_evaluates_on_the_held_out_training_images():
    data = task_data_from_config(synthetic(holdout=0.3))
    assert len(data.test_set(1)) == 4 * 3 and len(data.train_set(0)) == 2 * 7
    n, train, test = dataset_shape(synthetic(holdout=0.3))
    assert n == 4 and train.tolist() == [7] * 4 and test.tolist() == [3] * 4


def test_bad_holdout_values():
    with pytest.raises(ConfigError, match=r"config key 'data.holdout': expected a value in "
                                          r"\[0.0, 0.9\], got 0.95"):
        apply_overrides(Config(), ["data.holdout=0.95"])
    src = load_synthetic(n_classes=2, train_per_class=1, test_per_class=1, image_size=8)
    with pytest.raises(DataError, match="at least 2 training images per class"):
        with_holdout(src, 0.5, seed=0)
