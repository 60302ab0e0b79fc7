"""artsy.data.folders: image folders and their .tar.gz archives with the unpack cache, on
fixtures and on the real CIFAR-10 JPEG archive when it is present."""

import os
import time
from pathlib import Path

import numpy as np
import pytest
from torch.utils.data import DataLoader

from artsy.config import DataConfig
from artsy.data import TaskData, eval_transform, load_source, train_transform
from artsy.data import folders
from artsy.data.folders import archive_cache_key, load_image_folder, unpack_archive
from artsy.errors import DataError

from .cifar_fixtures import one_line
from .folder_fixtures import make_tar

CIFAR10_ARCHIVE = Path(__file__).resolve().parents[4] / "shared/data/cifar10-jpg.tar.gz"


def test_image_folder_classes_sorted_and_files_sorted(folder):
    src = load_image_folder(folder)
    assert src.class_names == ["ant", "bee", "cat"] and src.name == "imagefolder"
    assert len(src.train) == 12 and len(src.test) == 6
    assert [p.name for p in src.train.paths[:4]] == ["0000.png", "0001.png", "0002.png",
                                                     "0003.png"]
    img, y = src.train[4]  # bee/0000.png; bee was written as class 2 of FOLDER_CLASSES
    assert y == 1 and np.asarray(img)[0, 0].tolist() == [100, 0, 0]


def test_image_folder_cap_is_first_sorted_names(folder):
    src = load_image_folder(folder, max_per_class_train=2, max_per_class_test=1)
    assert len(src.train) == 6 and len(src.test) == 3
    assert [p.name for p in src.train.paths] == ["0000.png", "0001.png"] * 3
    with pytest.raises(DataError, match=r"max_per_class must be an integer >= 1 or None, got 0"):
        load_image_folder(folder, max_per_class_train=0)


def test_image_folder_errors(tmp_path, folder):
    with pytest.raises(DataError, match=r"image folder not found: expected a directory with "
                                        r"train/<class>/<image>.*or a .tar.gz of it") as e:
        load_image_folder(tmp_path / "missing")
    one_line(e)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"expected train/<class>/<image> and test/<class>/<image>"):
        load_image_folder(tmp_path / "empty")
    (folder / "test" / "dog").mkdir()
    with pytest.raises(DataError, match=r"same non-empty set of class folders.*only in test: "
                                        r"\['dog'\]"):
        load_image_folder(folder)
    (folder / "train" / "dog").mkdir()
    with pytest.raises(DataError, match=r"no images in .*train/dog"):
        load_image_folder(folder)
    (tmp_path / "x.zip").write_bytes(b"zip")
    with pytest.raises(DataError, match=r"must end with .tar.gz, .tgz, .tar"):
        load_image_folder(tmp_path / "x.zip")


@pytest.mark.parametrize("prefix", ["", "cifar-like/"])
def test_archive_reads_like_the_folder(tmp_path, folder, prefix):
    archive = make_tar(folder, tmp_path / "set.tar.gz", prefix)
    cache = tmp_path / "cache"
    src = load_image_folder(archive, cache_dir=cache)
    ref = load_image_folder(folder)
    assert src.class_names == ref.class_names
    np.testing.assert_array_equal(src.train.targets, ref.train.targets)
    assert [p.name for p in src.test.paths] == [p.name for p in ref.test.paths]
    for i in range(len(ref.train)):
        assert np.array_equal(np.asarray(src.train[i][0]), np.asarray(ref.train[i][0]))
    (entry,) = cache.iterdir()
    assert entry.name == archive_cache_key(archive) and entry.name.startswith("set-")
    assert len(entry.name) == len("set-") + 10


def test_archive_cache_is_reused(tmp_path, folder, monkeypatch):
    archive = make_tar(folder, tmp_path / "set.tar.gz")
    first = unpack_archive(archive, tmp_path / "cache")

    def must_not_extract(*a, **k):
        raise AssertionError("the cache should have been reused")

    monkeypatch.setattr(folders, "_extract", must_not_extract)
    assert unpack_archive(archive, tmp_path / "cache") == first
    assert len(load_image_folder(archive, cache_dir=tmp_path / "cache").train) == 12
    # a full cache also serves capped reads
    assert unpack_archive(archive, tmp_path / "cache", 1, 1) == first


def test_archive_changed_gets_a_new_cache(tmp_path, folder):
    archive = make_tar(folder, tmp_path / "set.tar.gz")
    first = unpack_archive(archive, tmp_path / "cache")
    st = archive.stat()
    os.utime(archive, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    second = unpack_archive(archive, tmp_path / "cache")
    assert second != first and second.name.startswith("set-") and first.is_dir()


def test_archive_default_cache_dir_is_under_home(tmp_path, folder, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    archive = make_tar(folder, tmp_path / "set.tar.gz")
    out = unpack_archive(archive)
    assert out.parent == tmp_path / "home" / ".cache" / "artsy"


def test_archive_extraction_is_atomic(tmp_path, folder, monkeypatch):
    archive = make_tar(folder, tmp_path / "set.tar.gz")
    cache = tmp_path / "cache"
    real_extract = folders._extract

    def crash_half_way(archive, dest, caps):
        (dest / "train").mkdir()
        (dest / "train" / "half.png").write_bytes(b"")
        raise KeyboardInterrupt  # e.g. the user hits Ctrl-C mid-extraction

    monkeypatch.setattr(folders, "_extract", crash_half_way)
    with pytest.raises(KeyboardInterrupt):
        unpack_archive(archive, cache)
    assert list(cache.iterdir()) == []  # neither a final folder nor a leftover temp folder

    # a temp folder left by a killed process is never mistaken for a finished cache
    (cache / f".{archive_cache_key(archive)}.part-dead").mkdir()
    monkeypatch.setattr(folders, "_extract", real_extract)
    out = unpack_archive(archive, cache)
    assert out.name == archive_cache_key(archive)
    assert len(load_image_folder(out).train) == 12


def test_archive_concurrent_winner_is_used(tmp_path, folder, monkeypatch):
    archive = make_tar(folder, tmp_path / "set.tar.gz")
    cache = tmp_path / "cache"
    real_extract = folders._extract

    def other_process_finishes_first(archive, dest, caps):
        real_extract(archive, dest, caps)
        real_extract(archive, cache / archive_cache_key(archive), caps)

    monkeypatch.setattr(folders, "_extract", other_process_finishes_first)
    out = unpack_archive(archive, cache)
    assert out == cache / archive_cache_key(archive)
    assert [p.name for p in cache.iterdir()] == [out.name]


def test_archive_with_caps_unpacks_only_the_selection(tmp_path, folder):
    archive = make_tar(folder, tmp_path / "set.tar.gz")
    out = unpack_archive(archive, tmp_path / "cache", max_per_class_train=2)
    assert out.name == f"{archive_cache_key(archive)}-train2-testall"
    assert sorted(p.name for p in (out / "train" / "ant").iterdir()) == ["0000.png", "0001.png"]
    assert len(list((out / "test" / "ant").iterdir())) == 2  # images only: notes.txt skipped
    src = load_image_folder(archive, cache_dir=tmp_path / "cache", max_per_class_train=2)
    ref = load_image_folder(folder, max_per_class_train=2)
    assert [p.name for p in src.train.paths] == [p.name for p in ref.train.paths]


def test_archive_errors(tmp_path):
    with pytest.raises(DataError, match=r"archive not found: expected a .tar.gz"):
        unpack_archive(tmp_path / "none.tar.gz", tmp_path / "cache")
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(b"not a tarball")
    with pytest.raises(DataError, match=r"cannot read archive .*bad.tar.gz") as e:
        load_image_folder(bad, cache_dir=tmp_path / "cache")
    one_line(e)
    assert list((tmp_path / "cache").iterdir()) == []


# ----------------------------------------------------------------------------------------------
# The real CIFAR-10 JPEG archive


@pytest.fixture(scope="module")
def cifar10_jpeg(tmp_path_factory):
    if not CIFAR10_ARCHIVE.is_file():
        pytest.skip(f"real-data archive not present: {CIFAR10_ARCHIVE} (see shared/data/README.md)")
    cache = tmp_path_factory.mktemp("cifar10-cache")
    t0 = time.perf_counter()
    src = load_source(DataConfig(name="imagefolder", root=str(CIFAR10_ARCHIVE),
                                 cache_dir=str(cache), max_per_class_train=3,
                                 max_per_class_test=2))
    return src, cache, time.perf_counter() - t0


def test_cifar10_jpeg_archive_reads_as_image_folder(cifar10_jpeg):
    src, cache, _ = cifar10_jpeg
    assert src.class_names == ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog",
                               "horse", "ship", "truck"]
    assert len(src.train) == 30 and len(src.test) == 20
    assert np.bincount(src.train.targets).tolist() == [3] * 10
    names = [p.name for p in src.train.paths[:3]]
    assert names == sorted(names) and all(n.endswith(".jpg") for n in names)
    for i in (0, 29):
        img, y = src.train[i]
        assert img.size == (32, 32) and img.mode == "RGB" and src.train.paths[i].parent.name == \
            src.class_names[y]
    assert np.asarray(src.test[0][0]).std() > 5  # a real photo, not a blank


def test_cifar10_jpeg_archive_cache_reused_and_tasks(cifar10_jpeg, monkeypatch):
    src, cache, _ = cifar10_jpeg
    monkeypatch.setattr(folders, "_extract", lambda *a: pytest.fail("cache not reused"))
    again = load_image_folder(CIFAR10_ARCHIVE, cache_dir=cache, max_per_class_train=3,
                              max_per_class_test=2)
    assert again.train.paths == src.train.paths
    data = TaskData(again, init_cls=2, increment=2, train_transform=train_transform(32),
                    test_transform=eval_transform(32))
    x, y = next(iter(DataLoader(data.train_set(0), batch_size=6)))
    assert x.shape == (6, 3, 32, 32) and set(y.tolist()) == {0, 1}
