"""artsy.data.digits: scikit-learn's bundled 8x8 digits, split and scaled deterministically."""

import sys

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from artsy.config import DataConfig
from artsy.data import load_source, task_data_from_config
from artsy.data.digits import load_digits
from artsy.errors import DataError

from .cifar_fixtures import one_line


@pytest.fixture(scope="module")
def digits():
    return load_digits()


def test_digits_stratified_80_20_split(digits):
    from sklearn.datasets import load_digits as sklearn_digits

    ref = sklearn_digits()
    assert digits.name == "digits" and digits.class_names == [str(c) for c in range(10)]
    assert len(digits.train) + len(digits.test) == 1797 and len(digits.test) == 359
    per_class = np.bincount(ref.target)
    test_counts = np.bincount(digits.test.targets, minlength=10)
    assert test_counts.tolist() == np.round(0.2 * per_class).astype(int).tolist()
    assert (np.bincount(digits.train.targets) + test_counts).tolist() == per_class.tolist()
    # train and test together are the whole set, each image exactly once
    gray = np.rint(ref.images * 255 / 16).astype(np.uint8)
    ours = sorted((a[..., 0].tobytes(), int(y)) for s in (digits.train, digits.test)
                  for a, y in zip(s.images, s.targets))
    assert ours == sorted((g.tobytes(), int(y)) for g, y in zip(gray, ref.target))


def test_digits_pixels_are_uint8_rgb_from_0_to_16(digits):
    from sklearn.datasets import load_digits as sklearn_digits

    ref = sklearn_digits()
    img, y = digits.test[0]
    assert isinstance(img, Image.Image) and img.mode == "RGB" and img.size == (8, 8)
    a = np.asarray(img)
    assert a.dtype == np.uint8 and (a[..., 0] == a[..., 1]).all() and (a[..., 1] == a[..., 2]).all()
    gray = np.rint(ref.images * 255 / 16).astype(np.uint8)
    matches = [i for i in np.flatnonzero(ref.target == y) if (gray[i] == a[..., 0]).all()]
    assert matches  # the image is one of sklearn's, scaled
    assert digits.train.images.max() == 255 and digits.train.images.min() == 0


def test_digits_split_is_deterministic_and_seeded(digits):
    again = load_digits()
    np.testing.assert_array_equal(again.test.images, digits.test.images)
    np.testing.assert_array_equal(again.train.targets, digits.train.targets)
    other = load_digits(seed=1)
    assert not np.array_equal(other.test.images, digits.test.images)
    assert len(other.test) == len(digits.test)
    assert len(load_digits(test_fraction=0.5).test) in range(895, 903)


def test_digits_caps_and_root_is_ignored(digits):
    src = load_source(DataConfig(name="digits", root="/no/such/folder", max_per_class_train=5,
                                 max_per_class_test=2, cache_dir="/ignored"))
    assert len(src.train) == 50 and len(src.test) == 20
    assert np.bincount(src.train.targets).tolist() == [5] * 10
    first0 = np.flatnonzero(digits.train.targets == 0)[:5]  # the first five of class 0, in order
    np.testing.assert_array_equal(src.train.images[src.train.targets == 0],
                                  digits.train.images[first0])
    assert load_source(DataConfig(name="digits", root=None)).n_classes == 10


def test_digits_errors_are_one_line(monkeypatch):
    with pytest.raises(DataError, match=r"test_fraction must be in \(0, 1\), got 1.0") as e:
        load_digits(test_fraction=1.0)
    one_line(e)
    with pytest.raises(DataError, match=r"max_per_class must be an integer >= 1"):
        load_digits(max_per_class_train=-1)
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)  # as if not installed
    with pytest.raises(DataError, match=r"dataset 'digits' needs scikit-learn .*pip install "
                                        r"scikit-learn") as e:
        load_digits()
    one_line(e)


def test_digits_from_config_resizes_to_image_size():
    from artsy.config import Config, apply_overrides

    cfg = apply_overrides(Config(), ["data.name=digits", "data.root=null", "data.image_size=16",
                                     "data.init_cls=2", "data.increment=2",
                                     "data.max_per_class_train=4", "data.max_per_class_test=2"])
    d = task_data_from_config(cfg.data)
    assert d.n_tasks == 5 and len(d.train_set(0)) == 8 and len(d.test_set(4)) == 20
    x, y = next(iter(DataLoader(d.test_set(0), batch_size=4)))
    assert x.shape == (4, 3, 16, 16) and x.dtype == torch.float32
    assert torch.equal(x[:, 0], x[:, 1]) and 0 <= x.min() and x.max() <= 1
