"""Bad data inputs (issue #8): each is one line that names the file or key and the fix.

CIFAR pickles are read by a restricted unpickler (a crafted batch cannot run code), a truncated
archive is refused without leaving a cache behind, an unreadable image is named with its fix
even from a DataLoader worker, and duplicate class ids in data.class_order are named.
"""

from __future__ import annotations

import io
import pickle
import tarfile
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader

from artsy import run
from artsy.config import DataConfig, SyntheticConfig
from artsy.data import TaskData, class_order, task_splits
from artsy.data.cifar import load_cifar10, load_cifar100
from artsy.data.folders import load_image_folder, unpack_archive
from artsy.data.registry import check_data_config
from artsy.data.transforms import eval_transform
from artsy.errors import ConfigError, DataError

from ...bad_input import BadInput, check_api, check_cli
from .cifar_fixtures import write_cifar10, write_cifar100
from .folder_fixtures import make_tar, write_image_folder

torch.set_num_threads(1)
MARKER = "MARKER"


# ----------------------------------------------------------------------------------------------
# CIFAR pickles: only what the official batches hold is unpickled


def _global_call(module: str, name: str, arg: str) -> bytes:
    """A protocol-2 pickle of `module.name(arg)`, the way a crafted batch would run code."""
    return f"c{module}\n{name}\n(V{arg}\ntR.".encode()


def _evil_entry(path: Path) -> bytes:
    """A data_batch dict whose 'data' is built by os.system (python 2 protocol 2 layout)."""
    class Evil:
        def __reduce__(self):
            import os

            return os.system, (f"touch {path}",)

    return pickle.dumps({"batch_label": "evil", "labels": [0], "data": Evil()}, protocol=2)


def _cut(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _pickle_case(id, write, file, payload, names):
    """A CIFAR fixture written by `write`, then `file` replaced by payload(tmp) bytes (or cut)."""
    def setup(tmp: Path) -> None:
        write(tmp)
        target = next(tmp.glob(f"*/{file}"))
        if payload is None:
            _cut(target)
        else:
            target.write_bytes(payload(tmp))
    return BadInput(id, names=(file, *names), setup=setup)


CIFAR10 = lambda tmp: write_cifar10(tmp, per_batch=1, n_test=1)  # noqa: E731
CIFAR100 = lambda tmp: write_cifar100(tmp, n_train=1, n_test=1)  # noqa: E731
REFUSED = ("refuses to load global", "not an official CIFAR batch", "re-download")

PICKLE_CASES = [
    _pickle_case("os-system", CIFAR10, "data_batch_1",
                 lambda tmp: _global_call("os", "system", f"touch {tmp / MARKER}"),
                 ("os.system", *REFUSED)),
    _pickle_case("builtins-exec", CIFAR10, "data_batch_1",
                 lambda tmp: _global_call("builtins", "exec",
                                          f"open({str(tmp / MARKER)!r}, 'w').close()"),
                 ("builtins.exec", *REFUSED)),
    _pickle_case("py2-builtin-eval", CIFAR10, "test_batch",
                 lambda tmp: _global_call("__builtin__", "eval", "0"),
                 ("__builtin__.eval", *REFUSED)),
    _pickle_case("reduce-os-system-in-dict", CIFAR10, "data_batch_1",
                 lambda tmp: _evil_entry(tmp / MARKER), ("system", *REFUSED)),
    _pickle_case("evil-meta", CIFAR100, "meta",
                 lambda tmp: _global_call("subprocess", "getoutput", f"touch {tmp / MARKER}"),
                 ("subprocess.getoutput", *REFUSED)),
    _pickle_case("cifar10-truncated", CIFAR10, "data_batch_1", None,
                 ("truncated or corrupt", "re-download")),
    _pickle_case("cifar100-truncated", CIFAR100, "train", None,
                 ("truncated or corrupt", "re-download")),
    _pickle_case("empty", CIFAR10, "data_batch_2", lambda tmp: b"",
                 ("truncated or corrupt", "re-download")),
]


@pytest.mark.parametrize("case", PICKLE_CASES, ids=lambda c: c.id)
def test_bad_cifar_pickles(case, tmp_path):
    case.setup(tmp_path)
    load = load_cifar100 if (tmp_path / "cifar-100-python").is_dir() else load_cifar10
    check_api(lambda: load(tmp_path), DataError, case.names)
    assert not (tmp_path / MARKER).exists(), "the crafted pickle ran code"


def test_the_crafted_pickles_would_run_code_with_plain_pickle(tmp_path):
    """The payloads above are live: plain pickle.loads runs them (this is what is refused)."""
    pickle.loads(_global_call("os", "system", f"touch {tmp_path / 'a'}"))
    pickle.loads(_evil_entry(tmp_path / "b"))
    assert (tmp_path / "a").exists() and (tmp_path / "b").exists()


def test_the_official_layout_still_loads(tmp_path):
    """Arrays at protocol 2 (official), and re-packed at protocols 4 and 5, pass the allowlist."""
    write_cifar10(tmp_path, per_batch=1, n_test=1)
    for protocol, name in ((4, "data_batch_2"), (5, "data_batch_3")):
        path = tmp_path / "cifar-10-batches-py" / name
        path.write_bytes(pickle.dumps(pickle.loads(path.read_bytes()), protocol=protocol))
    assert len(load_cifar10(tmp_path).train) == 50


# ----------------------------------------------------------------------------------------------
# Archives: a truncated or corrupt one is named, and no cache is left that looks complete


def _plain_tar_cut_at_a_member(src: Path, archive: Path) -> None:
    """A .tar cut right after its train/ members, at a block boundary: without the check of the
    end-of-archive block it would read as a complete archive with train/ only."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        tf.add(src / "train", arcname="train")
        cut = tf.offset
        tf.add(src / "test", arcname="test")
    archive.write_bytes(buf.getvalue()[:cut])
    with tarfile.open(archive) as tf:  # tarfile itself takes it for a whole archive
        assert len(tf.getmembers()) == 19  # train/, 3 classes, 3 x (4 images + notes.txt)


def _archive_case(id, damage, suffix=".tar.gz", names=("truncated or corrupt",)):
    def setup(tmp: Path) -> None:
        src = write_image_folder(tmp / "tree")
        archive = tmp / f"set{suffix}"
        if suffix == ".tar":
            _plain_tar_cut_at_a_member(src, archive)
        else:
            make_tar(src, archive)
            damage(archive)
    return BadInput(id, names=(f"set{suffix}", *names, "re-download", "re-create"), setup=setup)


ARCHIVE_CASES = [  # the names also say "cannot read archive <file>"
    _archive_case("tar-gz-cut-in-half", _cut),
    _archive_case("tar-gz-cut-at-10-bytes",
                  lambda p: p.write_bytes(p.read_bytes()[:10])),
    _archive_case("tar-gz-garbage", lambda p: p.write_bytes(b"\x1f\x8b" + b"garbage" * 40)),
    _archive_case("tar-gz-empty", lambda p: p.write_bytes(b"")),
    _archive_case("tar-cut-at-a-member", None, suffix=".tar"),
]


@pytest.mark.parametrize("case", ARCHIVE_CASES, ids=lambda c: c.id)
def test_bad_archives(case, tmp_path):
    case.setup(tmp_path)
    (archive,) = tmp_path.glob("set.*")
    cache = tmp_path / "cache"
    check_api(lambda: load_image_folder(archive, cache_dir=cache), DataError, case.names)
    check_api(lambda: unpack_archive(archive, cache, 1, 1), DataError, case.names)
    assert not cache.exists() or list(cache.iterdir()) == []  # nothing half-extracted kept


def test_a_truncated_archive_as_data_root_is_one_line_before_any_run_dir(tmp_path, capsys):
    src = write_image_folder(tmp_path / "tree")
    archive = make_tar(src, tmp_path / "set.tar.gz")
    _cut(archive)
    out = tmp_path / "runs"
    check_cli(run.main, ["tiny-synthetic", "data.name=imagefolder", f"data.root={archive}",
                         f"data.cache_dir={tmp_path / 'cache'}", "data.init_cls=1",
                         "data.increment=1", f"run.out_dir={out}"], capsys,
              ["set.tar.gz", "truncated or corrupt", "re-download"], watched=[tmp_path])
    assert not out.exists() or list(out.iterdir()) == []
    assert list((tmp_path / "cache").glob("*")) == []


# ----------------------------------------------------------------------------------------------
# Unreadable images: the file and the fix, also through DataLoader workers and the CLI

IMAGE_FIX = ("remove it or replace it",)


def _damage_image(kind: str):
    def damage(root: Path) -> Path:
        target = root / "train" / "bee" / "0001.png"
        if kind == "garbage-jpg":
            target.unlink()
            target = target.with_suffix(".jpg")
            target.write_bytes(b"\xff\xd8\xff\xe0 this is no jpeg" * 3)
        elif kind == "truncated-png":
            _cut(target)
        elif kind == "empty":
            target.write_bytes(b"")
        elif kind == "text":
            target.write_text("hello")
        return target
    return damage


IMAGE_CASES = [BadInput(kind, names=IMAGE_FIX, setup=_damage_image(kind))
               for kind in ("garbage-jpg", "truncated-png", "empty", "text")]


@pytest.mark.parametrize("case", IMAGE_CASES, ids=lambda c: c.id)
def test_unreadable_images_are_named(case, tmp_path):
    root = write_image_folder(tmp_path / "tree", n_train=3, n_test=1)
    bad = case.setup(root)
    src = load_image_folder(root)
    i = src.train.paths.index(bad)
    check_api(lambda: src.train[i], DataError, (str(bad), *case.names))


def test_an_unreadable_image_from_a_dataloader_worker_is_the_same_one_line(tmp_path):
    root = write_image_folder(tmp_path / "tree", n_train=3, n_test=1)
    bad = _damage_image("garbage-jpg")(root)
    src = load_image_folder(root)
    data = TaskData(src, init_cls=3, increment=3, order="identity",
                    train_transform=eval_transform(8), test_transform=eval_transform(8))
    with pytest.raises(DataError) as direct:
        list(DataLoader(data.train_set(0), batch_size=4, num_workers=0))
    loader = DataLoader(data.train_set(0), batch_size=4, num_workers=1)
    line = check_api(lambda: list(loader), DataError, (str(bad), *IMAGE_FIX))
    assert line == str(direct.value)


def test_an_unreadable_image_mid_run_is_one_line_with_the_file(tmp_path, capsys):
    root = write_image_folder(tmp_path / "tree", n_train=3, n_test=1)
    bad = _damage_image("garbage-jpg")(root)
    check_cli(run.main, ["tiny-synthetic", "data.name=imagefolder", f"data.root={root}",
                         "data.init_cls=1", "data.increment=1", "data.num_workers=1",
                         f"run.out_dir={tmp_path / 'runs'}"], capsys,
              [str(bad), *IMAGE_FIX], watched=[root])


# ----------------------------------------------------------------------------------------------
# data.class_order: duplicates, invalid and missing ids are named; task splits name their keys

ORDER = ("data.class_order",)
ORDER_FIX = ("exactly once",)
ORDER_CASES = [
    BadInput("duplicate", names=(*ORDER, "duplicates [1]", "missing [3]", *ORDER_FIX),
             argv=(4, [0, 1, 1, 2])),
    BadInput("duplicates-and-too-long", names=(*ORDER, "duplicates [0, 2]", *ORDER_FIX),
             argv=(4, [0, 0, 1, 2, 2, 3])),
    BadInput("duplicate-and-invalid", names=(*ORDER, "invalid ids [9]", "duplicates [2]",
                                             *ORDER_FIX), argv=(4, [2, 2, 9, 3])),
    BadInput("too-short", names=(*ORDER, "got 3 entries", "missing [3]", *ORDER_FIX),
             argv=(4, [0, 1, 2])),
    BadInput("unknown-word", names=(*ORDER, "'shuffle'", "'seed', 'identity'"),
             argv=(4, "shuffle")),
]


@pytest.mark.parametrize("case", ORDER_CASES, ids=lambda c: c.id)
def test_bad_class_orders_are_named(case):
    check_api(lambda: class_order(*case.argv), ConfigError, case.names)


def test_config_check_names_duplicate_class_ids():
    cfg = DataConfig(name="synthetic", root=None, class_order=[0, 1, 1, 3, 4, 5],
                     synthetic=SyntheticConfig(n_classes=6))
    check_api(lambda: check_data_config(cfg), ConfigError,
              ("data.class_order", "duplicates [1]", "missing [2]", *ORDER_FIX))


@pytest.mark.parametrize("args, names", [
    ((10, 4, 4), ("data.init_cls", "data.increment", "not a multiple of 4", "divides 6")),
    ((10, 0, 2), ("data.init_cls", "need 1 <= init_cls <= 10")),
], ids=["uneven", "zero-init"])
def test_bad_task_splits_name_their_keys(args, names):
    check_api(lambda: task_splits(*args), ConfigError, names)
