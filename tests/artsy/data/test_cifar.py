"""artsy.data.cifar on fixtures written in the official cifar-100-python and cifar-10-batches-py
pickle layouts."""

import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from torch.utils.data import DataLoader

from artsy.data import cifar as cifar_module
from artsy.data import class_order, task_data_from_config
from artsy.data.cifar import CIFAR10, CIFAR100, load_cifar10, load_cifar100
from artsy.errors import DataError

from .cifar_fixtures import (CIFAR10_NAMES, COARSE, FINE, check_plane_order, one_line,
                             write_cifar10, write_cifar100)

# The smallest fixture of each layout: one image per class in every pickle (CIFAR-10 tests: 2)
SMALL = {"cifar100": (load_cifar100, lambda root: write_cifar100(root, n_train=1, n_test=1),
                      CIFAR100),
         "cifar10": (load_cifar10, write_cifar10, CIFAR10)}


def test_cifar100_fixture_meta_is_the_official_name_list():
    assert len(FINE) == 100 and FINE == sorted(FINE)
    assert len(COARSE) == 20 and COARSE == sorted(COARSE)


def test_cifar10_layout_is_torchvisions():
    import torchvision.datasets as tvd

    assert CIFAR10.folder == tvd.CIFAR10.base_folder
    assert CIFAR10.train == tuple(n for n, _ in tvd.CIFAR10.train_list)
    assert CIFAR10.test == tuple(n for n, _ in tvd.CIFAR10.test_list)
    assert (CIFAR10.meta, CIFAR10.names_key) == (tvd.CIFAR10.meta["filename"],
                                                 tvd.CIFAR10.meta["key"])
    assert CIFAR10.url == tvd.CIFAR10.url
    assert CIFAR100.folder == tvd.CIFAR100.base_folder and CIFAR100.url == tvd.CIFAR100.url


# ----------------------------------------------------------------------------------------------
# Reading the official pickles


@pytest.mark.parametrize("sub", ["", "cifar-100-python"])
def test_cifar100_reads_official_pickles_from_root_or_folder(cifar, sub):
    root, arrays = cifar
    src = load_cifar100(root / sub if sub else root)
    assert src.name == "cifar100" and src.class_names == FINE and src.n_classes == 100
    for split in ("train", "test"):
        hwc, labels = arrays[split]
        s = getattr(src, split)
        assert len(s) == len(labels) and s.targets.dtype == np.int64
        np.testing.assert_array_equal(s.targets, labels)
        for i in (0, 57, len(s) - 1):
            img, y = s[i]
            assert isinstance(img, Image.Image) and img.mode == "RGB" and img.size == (32, 32)
            assert y == labels[i]
            np.testing.assert_array_equal(np.asarray(img), hwc[i])


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


@pytest.mark.parametrize("name, pickle_name, split", [("cifar100", "train", "train"),
                                                      ("cifar10", "test_batch", "test")])
def test_plane_order_is_r_g_b_row_major(tmp_path, name, pickle_name, split):
    load, write, layout = SMALL[name]
    write(tmp_path)
    check_plane_order(tmp_path / layout.folder / pickle_name,
                      lambda: getattr(load(tmp_path), split)[0][0])


def test_cifar100_per_class_cap_takes_the_first_images(cifar):
    root, arrays = cifar
    src = load_cifar100(root, max_per_class_train=2, max_per_class_test=1)
    assert len(src.train) == 200 and len(src.test) == 100
    assert np.bincount(src.train.targets).tolist() == [2] * 100
    hwc, _ = arrays["train"]
    np.testing.assert_array_equal(np.asarray(src.train[100][0]), hwc[100])  # 2nd image, class 0


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


@pytest.mark.parametrize("name, pickles, names", [("cifar100", ("train", "meta"), FINE),
                                                  ("cifar10", ("data_batch_2", "batches.meta"),
                                                   CIFAR10_NAMES)])
def test_bytes_keys_are_accepted(tmp_path, name, pickles, names):
    load, write, layout = SMALL[name]
    write(tmp_path)
    for pickle_name in pickles:
        path = tmp_path / layout.folder / pickle_name
        entry = pickle.loads(path.read_bytes())
        path.write_bytes(pickle.dumps({k.encode(): v for k, v in entry.items()}))
    assert load(tmp_path).class_names == names


# ----------------------------------------------------------------------------------------------
# Missing files and downloads


def test_cifar100_missing_files_say_what_and_how(tmp_path):
    with pytest.raises(DataError, match=r"CIFAR-100 not found: expected the pickles train, test, "
                                        r"meta in .*cifar-100-python .*cifar-100-python.tar.gz"
                                        r".*download=True") as e:
        load_cifar100(tmp_path / "nowhere")
    one_line(e)


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


@pytest.mark.parametrize("name, n_train", [("cifar100", 100), ("cifar10", 50)])
def test_download_only_when_allowed(tmp_path, monkeypatch, name, n_train):
    import torchvision.datasets as tvd

    load, write, layout = SMALL[name]
    calls = []

    class FakeTorchvisionCifar:
        def __init__(self, root, train=True, download=False):
            calls.append((root, train, download))
            write(Path(root))

    monkeypatch.setattr(tvd, layout.torchvision, FakeTorchvisionCifar)
    with pytest.raises(DataError, match="not found"):
        load(tmp_path)
    assert calls == []
    src = load(tmp_path / layout.folder, download=True)
    assert calls == [(str(tmp_path), True, True)] and len(src.train) == n_train
    load(tmp_path, download=True)  # files present: no second download
    assert len(calls) == 1


@pytest.mark.parametrize("name, match", [
    ("cifar100", r"could not download CIFAR-100 into .*OSError.*fetch "
                 r"https://www.cs.toronto.edu/.*by hand"),
    ("cifar10", r"could not download CIFAR-10 into .*OSError.*fetch "
                r"https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz "
                r"by hand .*cifar-10-batches-py/data_batch_1"),
])
def test_failed_download_is_one_clear_error(tmp_path, monkeypatch, name, match):
    import torchvision.datasets as tvd

    load, _, layout = SMALL[name]

    def offline(*a, **k):
        raise OSError("[Errno -3] Temporary failure\nin name resolution")

    monkeypatch.setattr(tvd, layout.torchvision, offline)
    with pytest.raises(DataError, match=match) as e:
        load(tmp_path, download=True)
    one_line(e)


# ----------------------------------------------------------------------------------------------
# Malformed pickles


def _corrupt_train_pickle(name: str, root: Path, corrupt) -> str:
    """Write a fixture, damage one train pickle with `corrupt` and return that pickle's name:
    CIFAR-100's train (3 per class: 300 labels), CIFAR-10's data_batch_3 (2 per class: 20)."""
    if name == "cifar100":
        write_cifar100(root, n_train=3, n_test=1)
        path = root / "cifar-100-python" / "train"
    else:
        write_cifar10(root, per_batch=2)
        path = root / "cifar-10-batches-py" / "data_batch_3"
    entry = pickle.loads(path.read_bytes())
    corrupt(entry)
    path.write_bytes(pickle.dumps(entry))
    return path.name


@pytest.mark.parametrize("name, corrupt, match", [
    ("cifar100", lambda e: e.pop("fine_labels"), r"missing key 'fine_labels'"),
    ("cifar100", lambda e: e.update(data=np.zeros((300, 100), np.uint8)),
     r"'data' must be uint8 N x 3072"),
    ("cifar100", lambda e: e.update(data=e["data"].astype(np.float32)),
     r"'data' must be uint8 N x 3072"),
    ("cifar100", lambda e: e.update(fine_labels=[100] * 300),
     r"'fine_labels' must hold 300 ids in 0..99"),
    ("cifar10", lambda e: e.pop("labels"), r"missing key 'labels' \(expected data, labels, "
                                           r"filenames, batch_label\)"),
    ("cifar10", lambda e: e.update(data=np.zeros((20, 100), np.uint8)),
     r"'data' must be uint8 N x 3072"),
    ("cifar10", lambda e: e.update(labels=[10] * 20), r"'labels' must hold 20 ids in 0..9"),
    ("cifar10", lambda e: e.update(labels=[0.5] * 20), r"'labels' must hold 20 ids in 0..9"),
])
def test_malformed_pickles_are_named(tmp_path, name, corrupt, match):
    load, _, layout = SMALL[name]
    damaged = _corrupt_train_pickle(name, tmp_path, corrupt)
    with pytest.raises(DataError, match=rf"malformed {layout.title} pickle .*{damaged}: "
                                        + match) as e:
        load(tmp_path)
    assert f"re-download {layout.url}" in one_line(e)


@pytest.mark.parametrize("name, short_names, match", [
    ("cifar100", FINE[:10], r"malformed CIFAR-100 meta .*list of 100 strings"),
    ("cifar10", CIFAR10_NAMES[:9], r"malformed CIFAR-10 meta .*batches.meta: expected "
                                   r"'label_names', a list of 10 strings"),
])
def test_not_a_pickle_and_bad_meta(tmp_path, name, short_names, match):
    load, write, layout = SMALL[name]
    write(tmp_path)
    folder = tmp_path / layout.folder
    (folder / layout.test[0]).write_bytes(b"this is not a pickle")
    with pytest.raises(DataError, match=rf"malformed {layout.title} pickle .*{layout.test[0]}: "
                                        r"cannot unpickle") as e:
        load(tmp_path)
    one_line(e)
    (folder / layout.meta).write_bytes(pickle.dumps({layout.names_key: short_names}))
    with pytest.raises(DataError, match=match):
        load(tmp_path)


# ----------------------------------------------------------------------------------------------
# From a config


def test_cifar10_from_config_passes_download_and_transforms(cifar10, monkeypatch):
    from artsy.config import Config, apply_overrides

    root, _ = cifar10
    cfg = apply_overrides(Config(), ["data.name=cifar10", f"data.root={root}",
                                     "data.image_size=16", "data.init_cls=2", "data.increment=2",
                                     "data.max_per_class_train=2", "data.max_per_class_test=1"])
    d = task_data_from_config(cfg.data)
    assert d.n_tasks == 5 and d.order == class_order(10, "seed", 1993)
    assert len(d.train_set(0)) == 4 and len(d.test_set(4)) == 10
    x, y = next(iter(DataLoader(d.train_set(1), batch_size=4)))
    assert x.shape == (4, 3, 16, 16) and set(y.tolist()) == {2, 3}

    seen = []
    monkeypatch.setattr(cifar_module, "load_cifar10", lambda root, **kw: seen.append(kw) or
                        load_cifar10(root, **kw))
    task_data_from_config(apply_overrides(cfg, ["data.download=true"]).data)
    assert seen[-1]["download"] is True
