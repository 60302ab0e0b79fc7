"""artsy.data's CIFAR-10 (official cifar-10-batches-py pickles, written here as fixtures) and
scikit-learn's bundled 8x8 digits."""

import pickle
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from artsy import data as D
from artsy.data import DataError, build_dataset, load_cifar10, load_digits
from .cifar_fixtures import CIFAR10_NAMES, check_plane_order, one_line, write_cifar10

@pytest.fixture(scope="module")
def cifar10(tmp_path_factory):
    root = tmp_path_factory.mktemp("cifar10")
    return root, write_cifar10(root, per_batch=2, n_test=3)


# ----------------------------------------------------------------------------------------------
# CIFAR-10


def test_cifar10_layout_is_torchvisions():
    import torchvision.datasets as tvd

    assert D.CIFAR10.folder == tvd.CIFAR10.base_folder
    assert D.CIFAR10.train == tuple(n for n, _ in tvd.CIFAR10.train_list)
    assert D.CIFAR10.test == tuple(n for n, _ in tvd.CIFAR10.test_list)
    assert (D.CIFAR10.meta, D.CIFAR10.names_key) == (tvd.CIFAR10.meta["filename"],
                                                     tvd.CIFAR10.meta["key"])
    assert D.CIFAR10.url == tvd.CIFAR10.url
    assert D.CIFAR100.folder == tvd.CIFAR100.base_folder and D.CIFAR100.url == tvd.CIFAR100.url


@pytest.mark.parametrize("sub", ["", "cifar-10-batches-py"])
def test_cifar10_reads_official_pickles_from_root_or_folder(cifar10, sub):
    root, arrays = cifar10
    src = load_cifar10(root / sub if sub else root)
    assert src.name == "cifar10" and src.class_names == CIFAR10_NAMES and src.n_classes == 10
    for split, n in (("train", 100), ("test", 30)):
        hwc, labels = arrays[split]
        s = getattr(src, split)
        assert len(s) == n and s.targets.dtype == np.int64
        np.testing.assert_array_equal(s.targets, labels)  # batches 1..5 in order
        for i in (0, 21, n - 1):
            img, y = s[i]
            assert isinstance(img, Image.Image) and img.mode == "RGB" and img.size == (32, 32)
            assert y == labels[i]
            np.testing.assert_array_equal(np.asarray(img), hwc[i])


def test_cifar10_plane_order_is_r_g_b_row_major(tmp_path):
    write_cifar10(tmp_path)
    check_plane_order(tmp_path / "cifar-10-batches-py" / "test_batch",
                      lambda: load_cifar10(tmp_path).test[0][0])


def test_cifar10_per_class_cap_takes_the_first_images_across_batches(cifar10):
    root, arrays = cifar10
    src = load_cifar10(root, max_per_class_train=3, max_per_class_test=1)
    assert len(src.train) == 30 and len(src.test) == 10
    assert np.bincount(src.train.targets).tolist() == [3] * 10
    hwc, labels = arrays["train"]
    # 2 per class per batch: the third image of each class is batch 2's first of that class
    third = np.flatnonzero(labels == 4)[2]
    assert third >= 20
    kept = np.flatnonzero(src.train.targets == 4)[2]
    np.testing.assert_array_equal(np.asarray(src.train[kept][0]), hwc[third])
    with pytest.raises(DataError, match=r"max_per_class must be an integer >= 1 or None, got 0"):
        load_cifar10(root, max_per_class_test=0)


def test_cifar10_accepts_bytes_keys(tmp_path):
    write_cifar10(tmp_path)
    for name in ("data_batch_2", "batches.meta"):
        path = tmp_path / "cifar-10-batches-py" / name
        entry = pickle.loads(path.read_bytes())
        path.write_bytes(pickle.dumps({k.encode(): v for k, v in entry.items()}))
    assert load_cifar10(tmp_path).class_names == CIFAR10_NAMES


def test_cifar10_missing_files_say_what_where_and_how(tmp_path):
    with pytest.raises(DataError, match=r"CIFAR-10 not found: expected the pickles data_batch_1, "
                                        r".*data_batch_5, test_batch, batches.meta in "
                                        r".*cifar-10-batches-py .*cifar-10-python.tar.gz"
                                        r".*download=True") as e:
        load_cifar10(tmp_path / "nowhere")
    one_line(e)
    write_cifar10(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_4").unlink()
    with pytest.raises(DataError, match=r"\(missing: data_batch_4\)") as e:
        load_cifar10(tmp_path)
    one_line(e)


def test_cifar10_download_only_when_allowed(tmp_path, monkeypatch):
    import torchvision.datasets as tvd

    calls = []

    class FakeCIFAR10:
        def __init__(self, root, train=True, download=False):
            calls.append((root, train, download))
            write_cifar10(Path(root))

    monkeypatch.setattr(tvd, "CIFAR10", FakeCIFAR10)
    with pytest.raises(DataError, match="not found"):
        load_cifar10(tmp_path)
    assert calls == []
    src = load_cifar10(tmp_path / "cifar-10-batches-py", download=True)
    assert calls == [(str(tmp_path), True, True)] and len(src.train) == 50
    load_cifar10(tmp_path, download=True)  # files present: no second download
    assert len(calls) == 1


def test_cifar10_failed_download_is_one_clear_error(tmp_path, monkeypatch):
    import torchvision.datasets as tvd

    def offline(*a, **k):
        raise OSError("[Errno -3] Temporary failure\nin name resolution")

    monkeypatch.setattr(tvd, "CIFAR10", offline)
    with pytest.raises(DataError, match=r"could not download CIFAR-10 into .*OSError.*fetch "
                                        r"https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz "
                                        r"by hand .*cifar-10-batches-py/data_batch_1") as e:
        load_cifar10(tmp_path, download=True)
    one_line(e)


@pytest.mark.parametrize("corrupt, match", [
    (lambda e: e.pop("labels"), r"missing key 'labels' \(expected data, labels, filenames, "
                                r"batch_label\)"),
    (lambda e: e.update(data=np.zeros((20, 100), np.uint8)), r"'data' must be uint8 N x 3072"),
    (lambda e: e.update(labels=[10] * 20), r"'labels' must hold 20 ids in 0..9"),
    (lambda e: e.update(labels=[0.5] * 20), r"'labels' must hold 20 ids in 0..9"),
])
def test_cifar10_malformed_pickles_are_named(tmp_path, corrupt, match):
    write_cifar10(tmp_path, per_batch=2)
    path = tmp_path / "cifar-10-batches-py" / "data_batch_3"
    entry = pickle.loads(path.read_bytes())
    corrupt(entry)
    path.write_bytes(pickle.dumps(entry))
    with pytest.raises(DataError, match=r"malformed CIFAR-10 pickle .*data_batch_3: " + match) as e:
        load_cifar10(tmp_path)
    assert "re-download https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz" in one_line(e)


def test_cifar10_not_a_pickle_and_bad_meta(tmp_path):
    write_cifar10(tmp_path)
    folder = tmp_path / "cifar-10-batches-py"
    (folder / "test_batch").write_bytes(b"this is not a pickle")
    with pytest.raises(DataError, match=r"malformed CIFAR-10 pickle .*test_batch: cannot "
                                        r"unpickle") as e:
        load_cifar10(tmp_path)
    one_line(e)
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": CIFAR10_NAMES[:9]}))
    with pytest.raises(DataError, match=r"malformed CIFAR-10 meta .*batches.meta: expected "
                                        r"'label_names', a list of 10 strings"):
        load_cifar10(tmp_path)


def test_cifar10_from_config_passes_download_and_transforms(cifar10, monkeypatch):
    from artsy.config import Config, apply_overrides

    root, _ = cifar10
    cfg = apply_overrides(Config(), ["data.name=cifar10", f"data.root={root}",
                                     "data.image_size=16", "data.init_cls=2", "data.increment=2",
                                     "data.max_per_class_train=2", "data.max_per_class_test=1"])
    d = D.task_data_from_config(cfg.data)
    assert d.n_tasks == 5 and d.order == D.class_order(10, "seed", 1993)
    assert len(d.train_set(0)) == 4 and len(d.test_set(4)) == 10
    x, y = next(iter(DataLoader(d.train_set(1), batch_size=4)))
    assert x.shape == (4, 3, 16, 16) and set(y.tolist()) == {2, 3}

    seen = []
    monkeypatch.setitem(D.DATASETS, "cifar10", lambda root, **kw: seen.append(kw) or
                        load_cifar10(root, **kw))
    D.task_data_from_config(apply_overrides(cfg, ["data.download=true"]).data)
    assert seen[-1]["download"] is True


# ----------------------------------------------------------------------------------------------
# scikit-learn digits


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
    src = build_dataset("digits", "/no/such/folder", max_per_class_train=5, max_per_class_test=2,
                        cache_dir="/ignored")
    assert len(src.train) == 50 and len(src.test) == 20
    assert np.bincount(src.train.targets).tolist() == [5] * 10
    first0 = np.flatnonzero(digits.train.targets == 0)[:5]  # the first five of class 0, in order
    np.testing.assert_array_equal(src.train.images[src.train.targets == 0],
                                  digits.train.images[first0])
    assert build_dataset("digits").n_classes == 10


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
    d = D.task_data_from_config(cfg.data)
    assert d.n_tasks == 5 and len(d.train_set(0)) == 8 and len(d.test_set(4)) == 20
    x, y = next(iter(DataLoader(d.test_set(0), batch_size=4)))
    assert x.shape == (4, 3, 16, 16) and x.dtype == torch.float32
    assert torch.equal(x[:, 0], x[:, 1]) and 0 <= x.min() and x.max() <= 1


# ----------------------------------------------------------------------------------------------
# Registry, config, dry-run shapes


def test_registry_and_config_know_the_new_datasets(cifar10):
    from artsy.config import Config, apply_overrides

    assert {"cifar10", "digits"} <= set(D.DATASETS)
    assert build_dataset("cifar10", cifar10[0]).name == "cifar10"
    for name in ("cifar10", "digits"):
        assert apply_overrides(Config(), [f"data.name={name}"]).data.name == name
    with pytest.raises(DataError, match=r"dataset 'cifar10' needs a root directory"):
        build_dataset("cifar10")


def test_dataset_shape_of_a_dry_run(cifar10):
    from artsy.config import Config, apply_overrides
    from artsy.run import dataset_shape

    cfg = apply_overrides(Config(), ["data.name=cifar10", f"data.root={cifar10[0]}"])
    n, train, test = dataset_shape(cfg.data)  # the official sizes: no file is read
    assert n == 10 and train.tolist() == [5000] * 10 and test.tolist() == [1000] * 10
    n, train, test = dataset_shape(apply_overrides(cfg, ["data.name=digits"]).data)
    assert n == 10 and train.sum() + test.sum() == 1797
