"""Image folders (train/<class>/<image>, test/<class>/<image>), read from a directory or from a
.tar.gz that is unpacked once into a cache."""

from __future__ import annotations

import gzip
import hashlib
import io
import lzma
import os
import shutil
import tarfile
import tempfile
import zlib
from collections import defaultdict
from pathlib import Path, PurePosixPath
from typing import Any, Optional

from ..errors import DataError, one_line
from .images import DataSource, FileImageSet, PathLike, first_n, image_files
from .spec import DatasetSpec

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")
DEFAULT_CACHE_DIR = Path("~/.cache/artsy")


def load_image_folder(root: PathLike, cache_dir: Optional[PathLike] = None,
                      max_per_class_train: Optional[int] = None,
                      max_per_class_test: Optional[int] = None) -> DataSource:
    """Class names sorted alphabetically give the label index; `root` is a folder or an archive."""
    root = Path(root).expanduser()
    if root.is_file():
        if not root.name.endswith(ARCHIVE_SUFFIXES):
            raise DataError(f"image-folder archive {root} must end with "
                            f"{', '.join(ARCHIVE_SUFFIXES)}")
        root = unpack_archive(root, cache_dir, max_per_class_train, max_per_class_test)
    elif not root.is_dir():
        raise DataError(f"image folder not found: expected a directory with train/<class>/<image> "
                        f"and test/<class>/<image>, or a .tar.gz of it, at {root}")
    folder = _layout_root(root)
    classes = sorted(d.name for d in (folder / "train").iterdir()
                     if d.is_dir() and not d.name.startswith("."))
    test_classes = sorted(d.name for d in (folder / "test").iterdir()
                          if d.is_dir() and not d.name.startswith("."))
    if not classes or test_classes != classes:
        raise DataError(f"image folder {folder}: train/ and test/ must hold the same non-empty set "
                        f"of class folders, got {len(classes)} train and {len(test_classes)} test "
                        f"(only in train: {sorted(set(classes) - set(test_classes))[:5]}, only in "
                        f"test: {sorted(set(test_classes) - set(classes))[:5]})")
    sets = []
    for split, cap in (("train", max_per_class_train), ("test", max_per_class_test)):
        paths, targets = [], []
        for label, c in enumerate(classes):
            files = image_files(folder / split / c, cap)
            if not files:
                raise DataError(f"image folder {folder}: no images in {folder / split / c}")
            paths += files
            targets += [label] * len(files)
        sets.append(FileImageSet(paths, targets, classes))
    return DataSource("imagefolder", sets[0], sets[1], classes)


def _layout_root(folder: Path) -> Path:
    """The folder holding train/ and test/: `folder` itself or its single sub-folder."""
    if (folder / "train").is_dir() and (folder / "test").is_dir():
        return folder
    subs = [d for d in folder.iterdir() if d.is_dir() and not d.name.startswith(".")]
    if len(subs) == 1 and (subs[0] / "train").is_dir() and (subs[0] / "test").is_dir():
        return subs[0]
    raise DataError(f"image folder {folder}: expected train/<class>/<image> and "
                    f"test/<class>/<image> in it (or in its single sub-folder)")


# ----------------------------------------------------------------------------------------------
# Archives and the unpack cache


def archive_stem(path: PathLike) -> str:
    name = Path(path).name
    for suffix in ARCHIVE_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def archive_cache_key(path: PathLike) -> str:
    """`<stem>-<hash of path, size, mtime>`: a changed or moved archive gets a fresh cache."""
    path = Path(path).expanduser().resolve()
    st = path.stat()
    digest = hashlib.sha1(f"{path}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:10]
    return f"{archive_stem(path)}-{digest}"


def unpack_archive(archive: PathLike, cache_dir: Optional[PathLike] = None,
                   max_per_class_train: Optional[int] = None,
                   max_per_class_test: Optional[int] = None) -> Path:
    """Unpack once into the cache and return that folder; later calls reuse it.

    Atomic: the archive is unpacked into a temporary sibling folder that is renamed into place
    only when complete, so an interrupted run never leaves a half cache behind. With per-class
    caps only the selected images are unpacked (into a cache named after the caps) because
    writing 60,000 small files can take half a minute; a full cache, when present, serves all.
    """
    archive = Path(archive).expanduser()
    if not archive.is_file():
        raise DataError(f"archive not found: expected a .tar.gz of train/<class>/<image> and "
                        f"test/<class>/<image> at {archive}")
    cache_root = Path(cache_dir if cache_dir is not None else DEFAULT_CACHE_DIR).expanduser()
    key = archive_cache_key(archive)
    full = cache_root / key
    if full.is_dir():
        return full
    caps = (max_per_class_train, max_per_class_test)
    target = full if caps == (None, None) else cache_root / (
        f"{key}-train{caps[0] or 'all'}-test{caps[1] or 'all'}")
    if target.is_dir():
        return target
    cache_root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.part-", dir=cache_root))
    try:
        _extract(archive, tmp, caps)
        os.rename(tmp, target)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if target.is_dir():  # another process finished first: use its copy
            return target
        raise DataError(f"could not unpack {archive} into {target}: {one_line(e)}") from e
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


# what a damaged archive raises while it is read: a cut gzip stream ends in EOFError, a damaged
# one in zlib.error or BadGzipFile (CRC), a damaged tar header in tarfile.ReadError
_DAMAGED = (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile, lzma.LZMAError)


def _extract(archive: Path, dest: Path, caps: tuple[Optional[int], Optional[int]]) -> None:
    try:
        with tarfile.open(archive, "r:*") as tf:
            members = [m for m in tf.getmembers() if m.isfile()]
            _check_complete(tf, archive)
            for m in members:
                if m.name.startswith("/") or ".." in PurePosixPath(m.name).parts:
                    raise DataError(f"archive {archive}: unsafe member path {m.name!r}; re-create "
                                    "it with relative paths train/<class>/<image> and "
                                    "test/<class>/<image>")
            if caps != (None, None):
                members = _select_members(members, caps)
            kw: dict[str, Any] = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
            tf.extractall(dest, members=members, **kw)
    except getattr(tarfile, "FilterError", ()) as e:  # the "data" filter refused a member
        raise DataError(f"archive {archive}: unsafe member ({one_line(e)}); re-create it with "
                        "only regular files under train/<class>/ and test/<class>/") from e
    except _DAMAGED as e:
        raise DataError(f"cannot read archive {archive}: it is truncated or corrupt "
                        f"({type(e).__name__}: {one_line(e) or 'no detail'}); re-download it, or "
                        "re-create it as a tar(.gz) of train/<class>/<image> and "
                        "test/<class>/<image>") from e


def _check_complete(tf: tarfile.TarFile, archive: Path) -> None:
    """A plain tar cut at a block boundary reads as a shorter archive: require the end-of-archive
    block after the last member. (A cut compressed stream already fails with EOFError.)"""
    if not isinstance(tf.fileobj, (io.BufferedReader, io.FileIO)):
        return
    tf.fileobj.seek(tf.offset)
    if len(tf.fileobj.read(tarfile.BLOCKSIZE)) < tarfile.BLOCKSIZE:
        raise tarfile.ReadError(f"no end-of-archive block after the last member (at byte "
                                f"{tf.offset} of {archive.stat().st_size})")


def _select_members(members: list[tarfile.TarInfo],
                    caps: tuple[Optional[int], Optional[int]]) -> list[tarfile.TarInfo]:
    """The members `load_image_folder` would pick with these caps (same rule: `first_n`)."""
    groups: dict[tuple, dict[str, tarfile.TarInfo]] = defaultdict(dict)
    keep = []
    for m in members:
        parts = PurePosixPath(m.name).parts
        if len(parts) >= 3 and parts[-3] in ("train", "test"):
            groups[parts[:-1]][parts[-1]] = m
        else:
            keep.append(m)
    for group, by_name in groups.items():
        cap = caps[0] if group[-2] == "train" else caps[1]
        keep += [by_name[n] for n in first_n(list(by_name), cap)]
    return sorted(keep, key=lambda m: m.offset)  # forward reads only through the gzip stream


SPEC = DatasetSpec(
    name="imagefolder",
    loader=lambda d: load_image_folder(d.root, d.cache_dir, d.max_per_class_train,
                                       d.max_per_class_test),
    config_keys=("cache_dir",))
