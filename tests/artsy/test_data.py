"""artsy.data on fixtures written in the exact official on-disk layouts, and on the real CIFAR-10
JPEG archive when it is present."""

import os
import pickle
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader
from torchvision import transforms as T

from artsy import data as D
from artsy.data import (DataError, TaskData, build_dataset, class_order, load_cifar100,
                        load_image_folder, load_synthetic, load_tinyimagenet, remap_labels,
                        task_splits, eval_transform, train_transform, unpack_archive)

from .cifar_fixtures import (COARSE, FINE, check_plane_order, one_line,  # noqa: E402
                            write_cifar100)

CIFAR10_ARCHIVE = Path(__file__).resolve().parents[3] / "shared/data/cifar10-jpg.tar.gz"

WNIDS = ["n01641577", "n01443537", "n01629819"]  # wnids.txt order; labels follow sorted order


# ----------------------------------------------------------------------------------------------
# Fixture writers (official layouts)


def write_tiny(parent: Path, n_train: int = 4, n_val: int = 2) -> Path:
    """parent/tiny-imagenet-200 with wnids.txt, train/<wnid>/images, val/images + annotations."""
    root = parent / "tiny-imagenet-200"
    (root / "test" / "images").mkdir(parents=True)  # official, unlabelled, unused
    (root / "wnids.txt").write_text("\n".join(WNIDS) + "\n")
    for c, w in enumerate(WNIDS):
        img_dir = root / "train" / w / "images"
        img_dir.mkdir(parents=True)
        boxes = []
        for k in range(n_train):
            Image.new("RGB", (64, 64), (40 * c, 100, 200 - k)).save(img_dir / f"{w}_{k}.JPEG")
            boxes.append(f"{w}_{k}.JPEG\t0\t0\t63\t63")
        (root / "train" / w / f"{w}_boxes.txt").write_text("\n".join(boxes) + "\n")
    (root / "val" / "images").mkdir(parents=True)
    lines = []
    for k in range(n_val * len(WNIDS)):
        w = WNIDS[k % len(WNIDS)]
        Image.new("RGB", (64, 64), (k, 0, 0)).save(root / "val" / "images" / f"val_{k}.JPEG")
        lines.append(f"val_{k}.JPEG\t{w}\t0\t0\t63\t63")
    (root / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")
    return root


FOLDER_CLASSES = ["cat", "ant", "bee"]  # label index follows sorted names: ant, bee, cat


def write_image_folder(root: Path, n_train: int = 4, n_test: int = 2) -> Path:
    for split, n in (("train", n_train), ("test", n_test)):
        for c, name in enumerate(FOLDER_CLASSES):
            d = root / split / name
            d.mkdir(parents=True)
            for k in reversed(range(n)):  # written out of order: selection must sort
                Image.new("RGB", (8, 6), (c * 50, k * 10, 0)).save(d / f"{k:04d}.png")
            (d / "notes.txt").write_text("not an image")
    return root


def make_tar(src: Path, archive: Path, prefix: str = "") -> Path:
    with tarfile.open(archive, "w:gz") as tf:
        for split in ("train", "test"):
            tf.add(src / split, arcname=f"{prefix}{split}")
    return archive


# ----------------------------------------------------------------------------------------------
# Class order, remapping, splits


def test_class_order_seed_1993_matches_the_official_ease_log():
    order = class_order(100)
    assert order[:20] == [68, 56, 78, 8, 23, 84, 90, 65, 74, 76, 40, 89, 3, 92, 55, 9, 26, 80, 43,
                          38]
    assert sorted(order) == list(range(100))


def test_class_order_is_numpys_global_recipe_without_touching_global_state():
    np.random.seed(7)
    before = np.random.random()
    np.random.seed(7)
    for seed in (1993, 1994, 0):
        got = class_order(200, "seed", seed)
        state = np.random.get_state()
        np.random.seed(seed)
        assert got == np.random.permutation(200).tolist()
        np.random.set_state(state)
    assert np.random.random() == before


def test_class_order_identity_and_explicit_list():
    assert class_order(5, "identity") == [0, 1, 2, 3, 4]
    assert class_order(4, [2, 0, 3, 1]) == [2, 0, 3, 1]
    assert class_order(3, np.array([1, 2, 0])) == [1, 2, 0]


@pytest.mark.parametrize("order, match", [
    ([0, 1, 1, 2], r"permutation of range\(4\).*duplicates \[1\]"),
    ([0, 1, 2], r"permutation of range\(4\), got 3 entries missing \[3\]"),
    ([0, 1, 2, 7], r"invalid ids \[7\]"),
    ([0, 1, 2, 3.0], r"invalid ids \[3.0\]"),
    ("shuffle", r"class order 'shuffle' unknown: expected 'seed', 'identity' or a list"),
])
def test_class_order_rejects_bad_orders(order, match):
    with pytest.raises(ValueError, match=match) as e:
        class_order(4, order)
    one_line(e)


def test_remap_labels_is_order_index():
    order = class_order(100)
    targets = np.arange(100).repeat(2)
    new = remap_labels(targets, order)
    assert new.tolist() == [order.index(y) for y in targets]
    assert remap_labels([68, 56], order).tolist() == [0, 1]


def test_task_splits_b0_and_base_plus_increments():
    b0 = task_splits(100, 10, 10)
    assert len(b0) == 10 and b0[0] == list(range(10)) and b0[-1] == list(range(90, 100))
    assert len(task_splits(100, 5, 5)) == 20
    b100 = task_splits(200, 100, 20)
    assert [len(t) for t in b100] == [100] + [20] * 5 and b100[1] == list(range(100, 120))
    assert sum(task_splits(200, 100, 5), []) == list(range(200))
    assert task_splits(10, 10, 3) == [list(range(10))]


@pytest.mark.parametrize("args, match", [
    ((100, 10, 7), r"the remaining 90 classes are not a multiple of 7"),
    ((100, 120, 10), r"need 1 <= init_cls <= 100"),
    ((100, 10, 0), r"increment >= 1"),
    ((100, 0, 10), r"need 1 <= init_cls"),
])
def test_task_splits_reject_bad_splits(args, match):
    with pytest.raises(ValueError, match=match) as e:
        task_splits(*args)
    one_line(e)


# ----------------------------------------------------------------------------------------------
# CIFAR-100


@pytest.fixture(scope="module")
def cifar(tmp_path_factory):
    root = tmp_path_factory.mktemp("cifar")
    return root, write_cifar100(root)


def test_cifar100_fixture_meta_is_the_official_name_list():
    assert len(FINE) == 100 and FINE == sorted(FINE)
    assert len(COARSE) == 20 and COARSE == sorted(COARSE)


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


def test_cifar100_plane_order_is_r_g_b_row_major(tmp_path):
    write_cifar100(tmp_path, n_train=1, n_test=1)
    check_plane_order(tmp_path / "cifar-100-python" / "train",
                      lambda: load_cifar100(tmp_path).train[0][0])


def test_cifar100_per_class_cap_takes_the_first_images(cifar):
    root, arrays = cifar
    src = load_cifar100(root, max_per_class_train=2, max_per_class_test=1)
    assert len(src.train) == 200 and len(src.test) == 100
    assert np.bincount(src.train.targets).tolist() == [2] * 100
    hwc, _ = arrays["train"]
    np.testing.assert_array_equal(np.asarray(src.train[100][0]), hwc[100])  # 2nd image, class 0


def test_cifar100_accepts_bytes_keys(tmp_path):
    write_cifar100(tmp_path, n_train=1, n_test=1)
    for name in ("train", "meta"):
        path = tmp_path / "cifar-100-python" / name
        entry = pickle.loads(path.read_bytes())
        path.write_bytes(pickle.dumps({k.encode(): v for k, v in entry.items()}))
    assert load_cifar100(tmp_path).class_names == FINE


def test_cifar100_missing_files_say_what_and_how(tmp_path):
    with pytest.raises(DataError, match=r"CIFAR-100 not found: expected the pickles train, test, "
                                        r"meta in .*cifar-100-python .*cifar-100-python.tar.gz"
                                        r".*download=True") as e:
        load_cifar100(tmp_path / "nowhere")
    one_line(e)


def test_cifar100_download_only_when_allowed(tmp_path, monkeypatch):
    import torchvision.datasets as tvd

    calls = []

    class FakeCIFAR100:
        def __init__(self, root, train=True, download=False):
            calls.append((root, download))
            write_cifar100(Path(root), n_train=1, n_test=1)

    monkeypatch.setattr(tvd, "CIFAR100", FakeCIFAR100)
    with pytest.raises(DataError, match="not found"):
        load_cifar100(tmp_path)
    assert calls == []
    src = load_cifar100(tmp_path / "cifar-100-python", download=True)
    assert calls == [(str(tmp_path), True)] and len(src.train) == 100
    load_cifar100(tmp_path, download=True)  # files present: no second download
    assert len(calls) == 1


def test_cifar100_failed_download_is_one_clear_error(tmp_path, monkeypatch):
    import torchvision.datasets as tvd

    def offline(*a, **k):
        raise OSError("[Errno -3] Temporary failure\nin name resolution")

    monkeypatch.setattr(tvd, "CIFAR100", offline)
    with pytest.raises(DataError, match=r"could not download CIFAR-100 into .*OSError.*fetch "
                                        r"https://www.cs.toronto.edu/.*by hand") as e:
        load_cifar100(tmp_path, download=True)
    one_line(e)


@pytest.mark.parametrize("corrupt, match", [
    (lambda e: e.pop("fine_labels"), r"missing key 'fine_labels'"),
    (lambda e: e.update(data=np.zeros((300, 100), np.uint8)), r"'data' must be uint8 N x 3072"),
    (lambda e: e.update(data=e["data"].astype(np.float32)), r"'data' must be uint8 N x 3072"),
    (lambda e: e.update(fine_labels=[100] * 300), r"'fine_labels' must hold 300 ids in 0..99"),
])
def test_cifar100_malformed_pickles_are_named(tmp_path, corrupt, match):
    write_cifar100(tmp_path, n_train=3, n_test=1)
    path = tmp_path / "cifar-100-python" / "train"
    entry = pickle.loads(path.read_bytes())
    corrupt(entry)
    path.write_bytes(pickle.dumps(entry))
    with pytest.raises(DataError, match=r"malformed CIFAR-100 pickle .*train: " + match) as e:
        load_cifar100(tmp_path)
    assert "re-download" in one_line(e)


def test_cifar100_not_a_pickle_and_bad_meta(tmp_path):
    write_cifar100(tmp_path, n_train=1, n_test=1)
    folder = tmp_path / "cifar-100-python"
    (folder / "test").write_bytes(b"this is not a pickle")
    with pytest.raises(DataError, match=r"malformed CIFAR-100 pickle .*test: cannot unpickle"):
        load_cifar100(tmp_path)
    (folder / "meta").write_bytes(pickle.dumps({"fine_label_names": FINE[:10]}))
    with pytest.raises(DataError, match=r"malformed CIFAR-100 meta .*list of 100 strings"):
        load_cifar100(tmp_path)


# ----------------------------------------------------------------------------------------------
# TinyImageNet


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return write_tiny(tmp_path_factory.mktemp("tiny"))


@pytest.mark.parametrize("use_parent", [False, True])
def test_tinyimagenet_official_layout(tiny, use_parent):
    src = load_tinyimagenet(tiny.parent if use_parent else tiny)
    assert src.name == "tinyimagenet" and src.class_names == sorted(WNIDS)
    assert len(src.train) == 12 and len(src.test) == 6
    assert np.bincount(src.train.targets).tolist() == [4, 4, 4]
    img, y = src.train[0]
    assert img.size == (64, 64) and img.mode == "RGB" and y == 0
    assert src.train.paths[0].parent.name == "images"
    assert src.train.paths[0].parent.parent.name == sorted(WNIDS)[0]
    # the test split is the official val split, labelled by val_annotations.txt
    annotations = dict(line.split("\t")[:2] for line in
                       (tiny / "val" / "val_annotations.txt").read_text().splitlines())
    for path, label in zip(src.test.paths, src.test.targets):
        assert src.class_names[label] == annotations[path.name]


def test_tinyimagenet_cap(tiny):
    src = load_tinyimagenet(tiny, max_per_class_train=2, max_per_class_test=1)
    assert len(src.train) == 6 and len(src.test) == 3
    assert [p.name for p in src.train.paths[:2]] == ["n01443537_0.JPEG", "n01443537_1.JPEG"]


def test_tinyimagenet_missing_wnids(tmp_path):
    with pytest.raises(DataError, match=r"TinyImageNet not found: expected .*tiny-imagenet-200/"
                                        r"wnids.txt .*tiny-imagenet-200.zip") as e:
        load_tinyimagenet(tmp_path)
    one_line(e)


def test_tinyimagenet_bad_annotation_and_missing_train(tmp_path):
    root = write_tiny(tmp_path, n_train=1, n_val=1)
    ann = root / "val" / "val_annotations.txt"
    ann.write_text(ann.read_text() + "val_0.JPEG\tn99999999\t0\t0\t63\t63\n")
    with pytest.raises(DataError, match=r"val_annotations.txt line 4: .*'val_0.JPEG\\tn99999999"):
        load_tinyimagenet(root)
    (root / "wnids.txt").write_text("\n".join(WNIDS + ["n00000001"]))
    with pytest.raises(DataError, match=r"class n00000001: no images in .*n00000001/images"):
        load_tinyimagenet(root)


# ----------------------------------------------------------------------------------------------
# Image folders and archives


@pytest.fixture
def folder(tmp_path):
    return write_image_folder(tmp_path / "tree")


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
    assert entry.name == D.archive_cache_key(archive) and entry.name.startswith("set-")
    assert len(entry.name) == len("set-") + 10


def test_archive_cache_is_reused(tmp_path, folder, monkeypatch):
    archive = make_tar(folder, tmp_path / "set.tar.gz")
    first = unpack_archive(archive, tmp_path / "cache")

    def must_not_extract(*a, **k):
        raise AssertionError("the cache should have been reused")

    monkeypatch.setattr(D, "_extract", must_not_extract)
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
    real_extract = D._extract

    def crash_half_way(archive, dest, caps):
        (dest / "train").mkdir()
        (dest / "train" / "half.png").write_bytes(b"")
        raise KeyboardInterrupt  # e.g. the user hits Ctrl-C mid-extraction

    monkeypatch.setattr(D, "_extract", crash_half_way)
    with pytest.raises(KeyboardInterrupt):
        unpack_archive(archive, cache)
    assert list(cache.iterdir()) == []  # neither a final folder nor a leftover temp folder

    # a temp folder left by a killed process is never mistaken for a finished cache
    (cache / f".{D.archive_cache_key(archive)}.part-dead").mkdir()
    monkeypatch.setattr(D, "_extract", real_extract)
    out = unpack_archive(archive, cache)
    assert out.name == D.archive_cache_key(archive)
    assert len(load_image_folder(out).train) == 12


def test_archive_concurrent_winner_is_used(tmp_path, folder, monkeypatch):
    archive = make_tar(folder, tmp_path / "set.tar.gz")
    cache = tmp_path / "cache"
    real_extract = D._extract

    def other_process_finishes_first(archive, dest, caps):
        real_extract(archive, dest, caps)
        real_extract(archive, cache / D.archive_cache_key(archive), caps)

    monkeypatch.setattr(D, "_extract", other_process_finishes_first)
    out = unpack_archive(archive, cache)
    assert out == cache / D.archive_cache_key(archive)
    assert [p.name for p in cache.iterdir()] == [out.name]


def test_archive_with_caps_unpacks_only_the_selection(tmp_path, folder):
    archive = make_tar(folder, tmp_path / "set.tar.gz")
    out = unpack_archive(archive, tmp_path / "cache", max_per_class_train=2)
    assert out.name == f"{D.archive_cache_key(archive)}-train2-testall"
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
def cifar10(tmp_path_factory):
    if not CIFAR10_ARCHIVE.is_file():
        pytest.skip(f"real-data archive not present: {CIFAR10_ARCHIVE} (see shared/data/README.md)")
    cache = tmp_path_factory.mktemp("cifar10-cache")
    t0 = time.perf_counter()
    src = build_dataset("imagefolder", CIFAR10_ARCHIVE, cache_dir=cache, max_per_class_train=3,
                        max_per_class_test=2)
    return src, cache, time.perf_counter() - t0


def test_cifar10_jpeg_archive_reads_as_image_folder(cifar10):
    src, cache, _ = cifar10
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


def test_cifar10_jpeg_archive_cache_reused_and_tasks(cifar10, monkeypatch):
    src, cache, _ = cifar10
    monkeypatch.setattr(D, "_extract", lambda *a: pytest.fail("cache not reused"))
    again = load_image_folder(CIFAR10_ARCHIVE, cache_dir=cache, max_per_class_train=3,
                              max_per_class_test=2)
    assert again.train.paths == src.train.paths
    data = TaskData(again, init_cls=2, increment=2, train_transform=train_transform(32),
                    test_transform=eval_transform(32))
    x, y = next(iter(DataLoader(data.train_set(0), batch_size=6)))
    assert x.shape == (6, 3, 32, 32) and set(y.tolist()) == {0, 1}


# ----------------------------------------------------------------------------------------------
# Synthetic data


def test_synthetic_is_deterministic_any_size_any_classes():
    a = load_synthetic(n_classes=7, train_per_class=3, test_per_class=2, image_size=20, seed=5)
    b = load_synthetic(n_classes=7, train_per_class=3, test_per_class=2, image_size=20, seed=5)
    c = load_synthetic(n_classes=7, train_per_class=3, test_per_class=2, image_size=20, seed=6)
    assert len(a.train) == 21 and len(a.test) == 14 and a.n_classes == 7
    assert a.train[0][0].size == (20, 20) and a.train[0][0].mode == "RGB"
    for i in (0, 10, 20):
        assert np.array_equal(np.asarray(a.train[i][0]), np.asarray(b.train[i][0]))
        assert not np.array_equal(np.asarray(a.train[i][0]), np.asarray(c.train[i][0]))
    assert not np.array_equal(np.asarray(a.train[0][0]), np.asarray(a.test[0][0]))
    assert load_synthetic(n_classes=3, image_size=224).test[0][0].size == (224, 224)
    assert len(load_synthetic(n_classes=3, max_per_class_train=4).train) == 12


def test_synthetic_is_learnable():
    src = load_synthetic(n_classes=10, train_per_class=20, test_per_class=10, image_size=32)

    def features(s):
        x = np.stack([np.asarray(s[i][0], np.float32) for i in range(len(s))])
        return x.reshape(len(s), 4, 8, 4, 8, 3).mean(axis=(2, 4)).reshape(len(s), -1)

    xtr, xte = features(src.train), features(src.test)
    means = np.stack([xtr[src.train.targets == c].mean(0) for c in range(10)])
    pred = ((xte[:, None] - means[None]) ** 2).sum(-1).argmin(1)
    assert (pred == src.test.targets).mean() >= 0.9


# ----------------------------------------------------------------------------------------------
# TaskData


@pytest.fixture
def task_data():
    src = load_synthetic(n_classes=10, train_per_class=4, test_per_class=3, image_size=12)
    return TaskData(src, init_cls=4, increment=3, order="seed", seed=1993,
                    train_transform=train_transform(16), test_transform=eval_transform(16))


def test_task_data_splits_and_remapped_labels(task_data):
    d = task_data
    assert d.order == class_order(10, "seed", 1993) and d.n_tasks == 3
    assert [d.task_classes(t) for t in range(3)] == [[0, 1, 2, 3], [4, 5, 6], [7, 8, 9]]
    assert [d.known_classes(t) for t in range(3)] == [0, 4, 7]
    assert [d.seen_classes(t) for t in range(3)] == [4, 7, 10]
    assert d.class_names == [f"class_{c:03d}" for c in d.order]
    for t in range(3):
        tr = d.train_set(t)
        assert sorted(set(tr.targets.tolist())) == d.task_classes(t) and len(tr) == 4 * len(
            d.task_classes(t))
        for i in range(len(tr)):  # label is order.index(original id)
            assert tr.targets[i] == d.order.index(d.source.train.targets[tr.indices[i]])
        assert sorted(set(d.test_set(t).targets.tolist())) == list(range(d.seen_classes(t)))
        assert sorted(set(d.task_test_set(t).targets.tolist())) == d.task_classes(t)
    assert len(d.test_set(2)) == len(d.source.test)
    assert d.task_of([0, 3, 4, 6, 7, 9]).tolist() == [0, 0, 1, 1, 2, 2]
    with pytest.raises(IndexError, match=r"task 3 out of range: this split has tasks 0..2"):
        d.train_set(3)


def test_task_data_items_and_transforms(task_data):
    x, y = task_data.train_set(1)[0]
    assert isinstance(x, torch.Tensor) and x.shape == (3, 16, 16) and y in (4, 5, 6)
    img, _ = task_data.train_set(1, transform=None)[0]
    assert isinstance(img, Image.Image)
    proto = task_data.train_set(0, transform=task_data.test_transform)  # prototypes: test tf
    assert torch.equal(proto[0][0], proto[0][0])  # deterministic
    xb, yb = next(iter(DataLoader(task_data.test_set(2), batch_size=8)))
    assert xb.shape == (8, 3, 16, 16) and yb.dtype == torch.int64


def test_task_data_rejects_bad_split_and_order():
    src = load_synthetic(n_classes=10, train_per_class=1, test_per_class=1)
    with pytest.raises(ValueError, match="not a multiple of 4"):
        TaskData(src, init_cls=3, increment=4)
    with pytest.raises(ValueError, match=r"permutation of range\(10\)"):
        TaskData(src, init_cls=5, increment=5, order=[0, 1])


# ----------------------------------------------------------------------------------------------
# Transforms


def test_train_transform_is_eases():
    tf = train_transform(32)
    crop, flip, to_tensor = tf.transforms
    assert isinstance(crop, T.RandomResizedCrop) and crop.size == (32, 32)
    assert crop.scale == (0.05, 1.0) and crop.ratio == pytest.approx((3 / 4, 4 / 3))
    assert isinstance(flip, T.RandomHorizontalFlip) and isinstance(to_tensor, T.ToTensor)
    x = tf(Image.new("RGB", (50, 40), (255, 128, 0)))
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32
    assert 0.0 <= x.min() and x.max() <= 1.0  # no normalisation (EASE)
    assert x[0].mean() == pytest.approx(1.0) and x[1].mean() == pytest.approx(128 / 255)


@pytest.mark.parametrize("size, resize", [(224, 256), (32, 36), (64, 73)])
def test_test_transform_is_eases(size, resize):
    tf = eval_transform(size)
    r, crop, to_tensor = tf.transforms
    assert isinstance(r, T.Resize) and r.size == resize
    assert r.interpolation == T.InterpolationMode.BICUBIC
    assert isinstance(crop, T.CenterCrop) and crop.size == (size, size)
    assert isinstance(to_tensor, T.ToTensor)
    assert tf(Image.new("RGB", (64, 48))).shape == (3, size, size)


def test_normalize_option():
    mean, std = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)
    img = load_synthetic(n_classes=2, image_size=32).train[0][0]
    plain = eval_transform(32)(img)
    normed = eval_transform(32, normalize=(mean, std))(img)
    assert isinstance(eval_transform(32, (mean, std)).transforms[-1], T.Normalize)
    assert isinstance(train_transform(32, (mean, std)).transforms[-1], T.Normalize)
    torch.testing.assert_close(normed, (plain - 0.5) / 0.25)
    with pytest.raises(ValueError, match=r"normalize must be \(mean, std\)"):
        eval_transform(32, normalize=(0.5,))


# ----------------------------------------------------------------------------------------------
# Factory


def test_build_dataset_factory(cifar, tiny, folder):
    assert build_dataset("cifar100", cifar[0]).name == "cifar100"
    assert build_dataset("tinyimagenet", tiny).name == "tinyimagenet"
    assert build_dataset("imagefolder", folder).name == "imagefolder"
    assert build_dataset("synthetic", n_classes=4).n_classes == 4
    assert set(D.DATASETS) == {"cifar100", "cifar10", "tinyimagenet", "imagefolder", "synthetic",
                               "digits"}


def test_build_dataset_errors():
    with pytest.raises(DataError, match=r"unknown dataset 'cifar20': expected one of cifar10, "
                                        r"cifar100, digits, imagefolder, synthetic, "
                                        r"tinyimagenet") as e:
        build_dataset("cifar20", "/data")
    one_line(e)
    with pytest.raises(DataError, match=r"dataset 'cifar100' needs a root directory"):
        build_dataset("cifar100")


def test_task_data_from_config(tmp_path, folder):
    from artsy.config import Config, apply_overrides

    cfg = apply_overrides(Config(), ["data.name=synthetic", "data.image_size=16",
                                     "data.init_cls=2", "data.increment=2",
                                     "data.synthetic.n_classes=6",
                                     "data.synthetic.train_per_class=3",
                                     "data.synthetic.test_per_class=2",
                                     "data.class_order=identity"])
    d = D.task_data_from_config(cfg.data)
    assert d.n_tasks == 3 and d.order == list(range(6)) and len(d.train_set(0)) == 6
    assert d.train_set(0)[0][0].shape == (3, 16, 16)
    cfg = apply_overrides(cfg, ["data.name=imagefolder", f"data.root={folder}",
                                "data.init_cls=3", "data.increment=3",
                                "data.max_per_class_train=1", f"data.cache_dir={tmp_path}"])
    d = D.task_data_from_config(cfg.data, normalize=((0.5,) * 3, (0.5,) * 3))
    assert d.n_tasks == 1 and len(d.train_set(0)) == 3
    assert d.test_set(0)[0][0].min() < 0  # normalised
