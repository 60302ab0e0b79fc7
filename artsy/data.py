"""Datasets, class order, task splits and transforms for class-incremental learning.

Every dataset is read into one shape, a `DataSource`: `train` and `test` are `ImageSet`s whose
items are (PIL RGB image, ORIGINAL class id), loaded lazily. `TaskData` applies the class order
and the task split on top and hands out torch Datasets with remapped labels (method.md §11).
Loaders read the official on-disk layouts; every missing or malformed input is a one-line
`DataError` that names what was expected where, and how to get it.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import shutil
import tarfile
import tempfile
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Optional, Union

import numpy as np
from PIL import Image
from torch.utils.data import Dataset
from torchvision import transforms as T

from .errors import DataError

PathLike = Union[str, os.PathLike]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".pgm", ".gif", ".webp", ".tif",
                    ".tiff")
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")
DEFAULT_CACHE_DIR = Path("~/.cache/artsy")
CIFAR100_FOLDER = "cifar-100-python"
CIFAR100_URL = "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"
CIFAR10_FOLDER = "cifar-10-batches-py"
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
TINY_FOLDER = "tiny-imagenet-200"
TINY_URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"
DIGITS_TEST_FRACTION = 0.2  # load_digits: stratified 80/20 split ...
DIGITS_SPLIT_SEED = 0  # ... by this fixed seed
DEFAULT_ORDER_SEED = 1993  # EASE / PILOT / PyCIL / iCaRL (method.md §11.3)


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


# ----------------------------------------------------------------------------------------------
# The common representation


class ImageSet:
    """Images with their ORIGINAL class ids; items are (PIL RGB image, class id)."""

    def __init__(self, targets: Sequence[int], class_names: Sequence[str]):
        self.targets = np.asarray(targets, dtype=np.int64)
        self.class_names = list(class_names)

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int) -> tuple[Image.Image, int]:
        return self.image(int(i)), int(self.targets[i])

    def image(self, i: int) -> Image.Image:
        raise NotImplementedError


class ArrayImageSet(ImageSet):
    """In-memory uint8 images, N x H x W x 3 (CIFAR pickles, scikit-learn digits)."""

    def __init__(self, images: np.ndarray, targets: Sequence[int], class_names: Sequence[str]):
        super().__init__(targets, class_names)
        self.images = images

    def image(self, i: int) -> Image.Image:
        return Image.fromarray(self.images[i])


class FileImageSet(ImageSet):
    """Image files read on access (TinyImageNet, image folders): 120k JPEGs need no RAM upfront."""

    def __init__(self, paths: Sequence[PathLike], targets: Sequence[int],
                 class_names: Sequence[str]):
        super().__init__(targets, class_names)
        self.paths = [Path(p) for p in paths]

    def image(self, i: int) -> Image.Image:
        try:
            with Image.open(self.paths[i]) as im:
                return im.convert("RGB")
        except OSError as e:
            raise DataError(f"cannot read image {self.paths[i]}: {_one_line(e)}") from e


class SyntheticImageSet(ImageSet):
    """Class-coloured gratings plus noise, generated per item from (seed, split, index).

    Each class has its own hue (evenly spaced, shuffled by the seed) and its own grating
    orientation and frequency; the phase and the noise vary per image. The class is therefore
    learnable from colour alone, and the set costs no memory at any image size.
    """

    def __init__(self, n_classes: int, per_class: int, image_size: int, seed: int, split: str,
                 noise: float = 0.1):
        if n_classes < 1 or per_class < 1 or image_size < 1:
            raise DataError(f"synthetic dataset needs n_classes, per_class and image_size >= 1, "
                            f"got {n_classes}, {per_class}, {image_size}")
        super().__init__(np.repeat(np.arange(n_classes), per_class),
                         [f"class_{c:03d}" for c in range(n_classes)])
        self.image_size, self.seed, self.noise = image_size, seed, noise
        self._split = {"train": 0, "test": 1}[split]
        rng = np.random.default_rng(seed)
        hues = rng.permutation(n_classes) / n_classes
        self._colour = np.stack([_hsv_to_rgb(h, 0.8, 0.9) for h in hues])
        self._angle = rng.uniform(0, np.pi, n_classes)
        self._freq = rng.uniform(1.0, 4.0, n_classes)

    def image(self, i: int) -> Image.Image:
        c, s = int(self.targets[i]), self.image_size
        rng = np.random.default_rng([self.seed, self._split, i])
        v, u = np.mgrid[0:s, 0:s] / s
        phase = rng.uniform(0, 2 * np.pi)
        wave = u * np.cos(self._angle[c]) + v * np.sin(self._angle[c])
        grating = 0.5 + 0.5 * np.sin(2 * np.pi * self._freq[c] * wave + phase)
        light, dark = self._colour[c], 0.3 * self._colour[c]
        img = dark + (light - dark) * grating[..., None]
        img = img + self.noise * rng.standard_normal(img.shape)
        return Image.fromarray((np.clip(img, 0, 1) * 255).round().astype(np.uint8))


def _hsv_to_rgb(h: float, s: float, v: float) -> np.ndarray:
    k = (np.array([5.0, 3.0, 1.0]) + h * 6) % 6
    return v - v * s * np.clip(np.minimum(k, 4 - k), 0, 1)


@dataclass
class DataSource:
    """One dataset: train and test image sets sharing `class_names` (index = original class id)."""

    name: str
    train: ImageSet
    test: ImageSet
    class_names: list[str]

    @property
    def n_classes(self) -> int:
        return len(self.class_names)


def _first_per_class(targets: np.ndarray, cap: Optional[int]) -> np.ndarray:
    """Indices of the first `cap` items of each class, in their given order (deterministic)."""
    if cap is None:
        return np.arange(len(targets))
    _check_cap(cap)
    seen: dict[int, int] = defaultdict(int)
    keep = []
    for i, y in enumerate(targets.tolist()):
        if seen[y] < cap:
            seen[y] += 1
            keep.append(i)
    return np.asarray(keep, dtype=np.int64)


def _check_cap(cap: Optional[int]) -> None:
    if cap is not None and (not isinstance(cap, (int, np.integer)) or cap < 1):
        raise DataError(f"max_per_class must be an integer >= 1 or None, got {cap!r}")


# ----------------------------------------------------------------------------------------------
# CIFAR-10 and CIFAR-100 (the official python pickles)


@dataclass(frozen=True)
class CifarLayout:
    """One official CIFAR pickle set: its files, keys, class count and torchvision class."""

    title: str  # in messages: "CIFAR-100"
    name: str  # the DataSource name
    folder: str
    url: str
    train: tuple[str, ...]  # pickles of the train split, read in this order
    test: tuple[str, ...]
    meta: str
    names_key: str
    labels_key: str
    keys: str  # the keys of a data pickle, as listed in messages
    n_classes: int
    torchvision: str  # the torchvision.datasets class that downloads it

    @property
    def files(self) -> tuple[str, ...]:
        return self.train + self.test + (self.meta,)


CIFAR100 = CifarLayout("CIFAR-100", "cifar100", CIFAR100_FOLDER, CIFAR100_URL, ("train",),
                       ("test",), "meta", "fine_label_names", "fine_labels",
                       "data, fine_labels, coarse_labels, filenames", 100, "CIFAR100")
CIFAR10 = CifarLayout("CIFAR-10", "cifar10", CIFAR10_FOLDER, CIFAR10_URL,
                      tuple(f"data_batch_{i}" for i in range(1, 6)), ("test_batch",),
                      "batches.meta", "label_names", "labels",
                      "data, labels, filenames, batch_label", 10, "CIFAR10")


def _cifar_folder(root: PathLike, folder: str) -> Path:
    root = Path(root).expanduser()
    if root.name == folder and not (root / folder).is_dir():
        return root
    return root / folder


def load_cifar100(root: PathLike, download: bool = False,
                  max_per_class_train: Optional[int] = None,
                  max_per_class_test: Optional[int] = None) -> DataSource:
    """Read the official pickles (R, G, B planes of 32x32, `fine_labels`).

    The pickles are read directly rather than through torchvision's CIFAR100, because torchvision
    insists on the official md5 sums and so rejects fixtures and re-packed copies written in the
    same layout; torchvision is used to download when that is allowed.
    """
    return _load_cifar(CIFAR100, root, download, max_per_class_train, max_per_class_test)


def load_cifar10(root: PathLike, download: bool = False,
                 max_per_class_train: Optional[int] = None,
                 max_per_class_test: Optional[int] = None) -> DataSource:
    """Read the official pickles data_batch_1..5 (train, in that order), test_batch and
    batches.meta (R, G, B planes of 32x32, `labels`), as `load_cifar100` does; torchvision's
    CIFAR10 downloads them when `download` is set and they are missing."""
    return _load_cifar(CIFAR10, root, download, max_per_class_train, max_per_class_test)


def _load_cifar(layout: CifarLayout, root: PathLike, download: bool,
                max_per_class_train: Optional[int],
                max_per_class_test: Optional[int]) -> DataSource:
    folder = _cifar_folder(root, layout.folder)
    missing = [n for n in layout.files if not (folder / n).is_file()]
    if missing and download:
        _download_cifar(layout, folder.parent)
        missing = [n for n in layout.files if not (folder / n).is_file()]
    if missing:
        raise DataError(
            f"{layout.title} not found: expected the pickles {', '.join(layout.files)} in "
            f"{folder} (missing: {', '.join(missing)}); download {layout.url} and unpack it in "
            f"{folder.parent}, or pass download=True")
    meta = _read_pickle(folder / layout.meta, layout)
    names = meta.get(layout.names_key)
    if not isinstance(names, list) or len(names) != layout.n_classes or not all(
            isinstance(n, str) for n in names):
        raise DataError(f"malformed {layout.title} meta {folder / layout.meta}: expected "
                        f"'{layout.names_key}', a list of {layout.n_classes} strings; "
                        f"re-download {layout.url}")
    train = _cifar_split([folder / n for n in layout.train], layout, names, max_per_class_train)
    test = _cifar_split([folder / n for n in layout.test], layout, names, max_per_class_test)
    return DataSource(layout.name, train, test, names)


def _download_cifar(layout: CifarLayout, parent: Path) -> None:
    import torchvision.datasets as tvd

    try:
        getattr(tvd, layout.torchvision)(str(parent), train=True, download=True)
    except Exception as e:  # any network or archive failure becomes the one clear message
        raise DataError(
            f"could not download {layout.title} into {parent} ({type(e).__name__}: "
            f"{_one_line(e)}); fetch {layout.url} by hand and unpack it there so that "
            f"{parent / layout.folder}/{', '.join(layout.files)} exist") from e


def _read_pickle(path: Path, layout: CifarLayout) -> dict:
    try:
        with open(path, "rb") as f:
            obj = pickle.load(f, encoding="latin1")
    except Exception as e:
        raise DataError(f"malformed {layout.title} pickle {path}: cannot unpickle "
                        f"({type(e).__name__}: {_one_line(e)}); re-download {layout.url}") from e
    if not isinstance(obj, dict):
        raise DataError(f"malformed {layout.title} pickle {path}: expected a dict, got "
                        f"{type(obj).__name__}; re-download {layout.url}")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in obj.items()}


def _cifar_split(paths: Sequence[Path], layout: CifarLayout, names: list[str],
                 cap: Optional[int]) -> ArrayImageSet:
    """The pickles of one split, checked one by one, concatenated, then capped per class."""
    data, labels = zip(*(_cifar_pickle(p, layout) for p in paths))
    data, labels = np.concatenate(data), np.concatenate(labels)
    keep = _first_per_class(labels, cap)
    images = data[keep].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)  # planes R, G, B -> HWC
    return ArrayImageSet(np.ascontiguousarray(images), labels[keep], names)


def _cifar_pickle(path: Path, layout: CifarLayout) -> tuple[np.ndarray, np.ndarray]:
    """(data uint8 N x 3072, labels) of one data pickle, or a DataError naming the problem."""
    d = _read_pickle(path, layout)
    bad = f"malformed {layout.title} pickle {path}:"
    again = f"re-download {layout.url}"
    for key in ("data", layout.labels_key):
        if key not in d:
            raise DataError(f"{bad} missing key '{key}' (expected {layout.keys}); {again}")
    data = np.asarray(d["data"])
    labels = np.asarray(d[layout.labels_key])
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise DataError(f"{bad} 'data' must be uint8 N x 3072, got {data.dtype} {data.shape}; "
                        f"{again}")
    last = layout.n_classes - 1
    integers = labels.size == 0 or np.issubdtype(labels.dtype, np.integer)
    if labels.shape != (len(data),) or not integers or labels.min(initial=0) < 0 or \
            labels.max(initial=0) > last:
        raise DataError(f"{bad} '{layout.labels_key}' must hold {len(data)} ids in 0..{last}; "
                        f"{again}")
    return data, labels.astype(np.int64)


# ----------------------------------------------------------------------------------------------
# TinyImageNet (official tiny-imagenet-200 layout; the test split is the official val split)


def load_tinyimagenet(root: PathLike, max_per_class_train: Optional[int] = None,
                      max_per_class_test: Optional[int] = None) -> DataSource:
    """Class ids follow the sorted wnids, as torchvision's ImageFolder would give for train/."""
    root = Path(root).expanduser()
    folder = root if (root / "wnids.txt").is_file() else root / TINY_FOLDER
    how = f"download {TINY_URL} and unzip it in {folder.parent}"
    if not (folder / "wnids.txt").is_file():
        raise DataError(f"TinyImageNet not found: expected {folder / 'wnids.txt'} (the official "
                        f"{TINY_FOLDER} layout); {how}")
    wnids = [w.strip() for w in (folder / "wnids.txt").read_text().split() if w.strip()]
    if not wnids or len(set(wnids)) != len(wnids):
        raise DataError(f"malformed {folder / 'wnids.txt'}: expected one unique wnid per line; "
                        f"{how}")
    wnids = sorted(wnids)
    index = {w: i for i, w in enumerate(wnids)}

    paths, targets = [], []
    for w in wnids:
        files = _image_files(folder / "train" / w / "images", max_per_class_train)
        if not files:
            raise DataError(f"TinyImageNet class {w}: no images in "
                            f"{folder / 'train' / w / 'images'}; {how}")
        paths += files
        targets += [index[w]] * len(files)
    train = FileImageSet(paths, targets, wnids)

    ann = folder / "val" / "val_annotations.txt"
    if not ann.is_file():
        raise DataError(f"TinyImageNet val split not found: expected {ann}; {how}")
    val_dir = folder / "val" / "images"
    present = set(os.listdir(val_dir)) if val_dir.is_dir() else set()
    per_class: dict[int, list[str]] = defaultdict(list)
    for n, line in enumerate(ann.read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) < 2 or parts[1] not in index or parts[0] not in present:
            raise DataError(f"malformed {ann} line {n}: expected 'val_N.JPEG<TAB>wnid<TAB>x0 y0 "
                            f"x1 y1' naming an image in {val_dir} and a wnid of wnids.txt, got "
                            f"{line.strip()!r}")
        per_class[index[parts[1]]].append(parts[0])
    paths, targets = [], []
    for label in sorted(per_class):
        names = _first_n(per_class[label], max_per_class_test)
        paths += [val_dir / f for f in names]
        targets += [label] * len(names)
    return DataSource("tinyimagenet", train, FileImageSet(paths, targets, wnids), wnids)


# ----------------------------------------------------------------------------------------------
# Image folders (train/<class>/*, test/<class>/*), from a directory or a .tar.gz


def _is_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS) and not name.startswith(".")


def _first_n(names: Sequence[str], cap: Optional[int]) -> list[str]:
    """The per-class selection rule: image files sorted by name, the first `cap` of them."""
    _check_cap(cap)
    return sorted(n for n in names if _is_image(n))[:cap]


def _image_files(folder: Path, cap: Optional[int]) -> list[Path]:
    if not folder.is_dir():
        return []
    return [folder / n for n in _first_n(os.listdir(folder), cap)]


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
            files = _image_files(folder / split / c, cap)
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
        raise DataError(f"could not unpack {archive} into {target}: {_one_line(e)}") from e
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def _extract(archive: Path, dest: Path, caps: tuple[Optional[int], Optional[int]]) -> None:
    try:
        with tarfile.open(archive, "r:*") as tf:
            members = [m for m in tf.getmembers() if m.isfile()]
            for m in members:
                if m.name.startswith("/") or ".." in PurePosixPath(m.name).parts:
                    raise DataError(f"archive {archive}: unsafe member path {m.name!r}")
            if caps != (None, None):
                members = _select_members(members, caps)
            kw: dict[str, Any] = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
            tf.extractall(dest, members=members, **kw)
    except tarfile.TarError as e:
        raise DataError(f"cannot read archive {archive} ({_one_line(e)}): expected a tar(.gz) of "
                        "train/<class>/<image> and test/<class>/<image>") from e


def _select_members(members: list[tarfile.TarInfo],
                    caps: tuple[Optional[int], Optional[int]]) -> list[tarfile.TarInfo]:
    """The members `load_image_folder` would pick with these caps (same rule: `_first_n`)."""
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
        keep += [by_name[n] for n in _first_n(list(by_name), cap)]
    return sorted(keep, key=lambda m: m.offset)  # forward reads only through the gzip stream


# ----------------------------------------------------------------------------------------------
# scikit-learn's bundled 8x8 digits


def load_digits(test_fraction: float = DIGITS_TEST_FRACTION, seed: int = DIGITS_SPLIT_SEED,
                max_per_class_train: Optional[int] = None,
                max_per_class_test: Optional[int] = None) -> DataSource:
    """The 1,797 8x8 grayscale digits of `sklearn.datasets.load_digits` (10 classes, no files).

    A deterministic stratified split: within each class, a permutation by `seed` puts
    round(test_fraction * n_class) images in test, the rest in train; both keep the dataset's
    order. Pixels 0..16 become uint8 0..255, replicated to R, G, B, so the usual transforms apply.
    """
    _check_cap(max_per_class_train)
    _check_cap(max_per_class_test)
    if not 0 < test_fraction < 1:
        raise DataError(f"digits test_fraction must be in (0, 1), got {test_fraction!r}")
    try:
        from sklearn.datasets import load_digits as sklearn_digits
    except ImportError as e:
        raise DataError(f"dataset 'digits' needs scikit-learn ({_one_line(e)}); install it with "
                        "pip install scikit-learn") from e
    bunch = sklearn_digits()
    targets = np.asarray(bunch.target, dtype=np.int64)
    gray = np.clip(np.rint(np.asarray(bunch.images, dtype=np.float64) * (255 / 16)), 0, 255)
    images = np.repeat(gray.astype(np.uint8)[..., None], 3, axis=-1)
    is_test = np.zeros(len(targets), dtype=bool)
    rng = np.random.default_rng(seed)
    for c in np.unique(targets):
        members = np.flatnonzero(targets == c)
        is_test[rng.permutation(members)[:int(round(test_fraction * len(members)))]] = True
    names = [str(c) for c in range(10)]
    sets = []
    for split, cap in ((~is_test, max_per_class_train), (is_test, max_per_class_test)):
        idx = np.flatnonzero(split)
        idx = idx[_first_per_class(targets[idx], cap)]
        sets.append(ArrayImageSet(np.ascontiguousarray(images[idx]), targets[idx], names))
    return DataSource("digits", sets[0], sets[1], names)


# ----------------------------------------------------------------------------------------------
# Synthetic data and the factory


def load_synthetic(n_classes: int = 10, train_per_class: int = 20, test_per_class: int = 10,
                   image_size: int = 32, seed: int = 0, noise: float = 0.1,
                   max_per_class_train: Optional[int] = None,
                   max_per_class_test: Optional[int] = None) -> DataSource:
    """A small learnable dataset, deterministic from `seed`, for tests and demos."""
    _check_cap(max_per_class_train)
    _check_cap(max_per_class_test)
    train_n = min(train_per_class, max_per_class_train or train_per_class)
    test_n = min(test_per_class, max_per_class_test or test_per_class)
    train = SyntheticImageSet(n_classes, train_n, image_size, seed, "train", noise)
    test = SyntheticImageSet(n_classes, test_n, image_size, seed, "test", noise)
    return DataSource("synthetic", train, test, train.class_names)


DATASETS: dict[str, Callable[..., DataSource]] = {
    "cifar100": load_cifar100,
    "cifar10": load_cifar10,
    "tinyimagenet": load_tinyimagenet,
    "imagefolder": load_image_folder,
    "synthetic": load_synthetic,
    "digits": load_digits,
}
NO_ROOT = ("synthetic", "digits")  # generated or bundled: no files to read


def build_dataset(name: str, root: Optional[PathLike] = None, **kw: Any) -> DataSource:
    """`name` is one of DATASETS; `root` is ignored by "synthetic" and "digits"; `kw` go to the
    loader, except `cache_dir`, which only "imagefolder" uses (it unpacks archives there)."""
    if name != "imagefolder":
        kw.pop("cache_dir", None)
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}: expected one of {', '.join(sorted(DATASETS))}")
    if name in NO_ROOT:
        return DATASETS[name](**kw)
    if root is None:
        raise DataError(f"dataset {name!r} needs a root directory (data.root)")
    return DATASETS[name](root, **kw)


# ----------------------------------------------------------------------------------------------
# Class order, label remapping, task splits


def class_order(n_classes: int, order: Union[str, Sequence[int]] = "seed",
                seed: int = DEFAULT_ORDER_SEED) -> list[int]:
    """"seed": the EASE/PILOT order, np.random.seed(seed) then np.random.permutation(n_classes);
    "identity": 0..n-1; a list: validated as a permutation of range(n_classes)."""
    if isinstance(order, str):
        if order == "seed":  # same stream as np.random.seed(seed), without touching global state
            return np.random.RandomState(seed).permutation(n_classes).tolist()
        if order == "identity":
            return list(range(n_classes))
        raise ValueError(f"class order {order!r} unknown: expected 'seed', 'identity' or a list "
                         f"of the {n_classes} class ids")
    order = list(order)
    if not all(isinstance(c, (int, np.integer)) and not isinstance(c, bool) for c in order) or \
            sorted(order) != list(range(n_classes)):
        raise ValueError(f"class order must be a permutation of range({n_classes}), got "
                         f"{len(order)} entries{_order_problem(order, n_classes)}")
    return [int(c) for c in order]


def _order_problem(order: list, n: int) -> str:
    bad = [c for c in order if not isinstance(c, (int, np.integer)) or not 0 <= c < n]
    if bad:
        return f" with invalid ids {bad[:5]}"
    dup = sorted({c for c in order if order.count(c) > 1})
    if dup:
        return f" with duplicates {dup[:5]}"
    return f" missing {sorted(set(range(n)) - set(order))[:5]}"


def remap_labels(targets: Sequence[int], order: Sequence[int]) -> np.ndarray:
    """New label = order.index(original), for every target (method.md §11.2)."""
    inverse = np.empty(len(order), dtype=np.int64)
    inverse[np.asarray(order)] = np.arange(len(order))
    return inverse[np.asarray(targets, dtype=np.int64)]


def task_splits(n_classes: int, init_cls: int, increment: int) -> list[list[int]]:
    """The new (remapped) labels of each task: `init_cls` first, then `increment` at a time.

    B0-IncK is init_cls == increment; "B100 + 20" is init_cls=100, increment=20. A last task
    smaller than `increment` is refused: it would make the protocol silently differ.
    """
    if init_cls < 1 or increment < 1 or init_cls > n_classes:
        raise ValueError(f"invalid task split init_cls={init_cls}, increment={increment} for "
                         f"{n_classes} classes: need 1 <= init_cls <= {n_classes} and "
                         "increment >= 1")
    rest = n_classes - init_cls
    if rest % increment:
        raise ValueError(f"init_cls={init_cls}, increment={increment} do not split {n_classes} "
                         f"classes: the remaining {rest} classes are not a multiple of {increment}")
    tasks = [list(range(init_cls))]
    for start in range(init_cls, n_classes, increment):
        tasks.append(list(range(start, start + increment)))
    return tasks


# ----------------------------------------------------------------------------------------------
# Transforms (EASE: no mean/std normalisation; method.md §3.1, §10)


def train_transform(image_size: int = 224,
                    normalize: Optional[tuple[Sequence[float], Sequence[float]]] = None):
    steps = [T.RandomResizedCrop(image_size, scale=(0.05, 1.0), ratio=(3 / 4, 4 / 3)),
             T.RandomHorizontalFlip(), T.ToTensor()]
    return T.Compose(steps + _normalize(normalize))


def eval_transform(image_size: int = 224,
                   normalize: Optional[tuple[Sequence[float], Sequence[float]]] = None):
    """The test-time transform: Resize(256, bicubic) + CenterCrop(224) at 224 px, the same ratio
    at other sizes. (Not named test_transform: pytest would collect it from test modules.)"""
    steps = [T.Resize(int(image_size * 256 / 224), interpolation=T.InterpolationMode.BICUBIC),
             T.CenterCrop(image_size), T.ToTensor()]
    return T.Compose(steps + _normalize(normalize))


def _normalize(normalize) -> list:
    if normalize is None:
        return []
    if len(normalize) != 2:
        raise ValueError(f"normalize must be (mean, std), got {normalize!r}")
    return [T.Normalize(tuple(normalize[0]), tuple(normalize[1]))]


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


def task_data_from_config(data_cfg: Any,
                          normalize: Optional[tuple[Sequence[float], Sequence[float]]] = None
                          ) -> TaskData:
    """Dataset, order, split and EASE transforms from an `artsy.config.DataConfig`."""
    kw: dict[str, Any] = {"max_per_class_train": data_cfg.max_per_class_train,
                          "max_per_class_test": data_cfg.max_per_class_test}
    if data_cfg.name in ("cifar100", "cifar10"):
        kw["download"] = data_cfg.download
    elif data_cfg.name == "imagefolder":
        kw["cache_dir"] = data_cfg.cache_dir
    elif data_cfg.name == "synthetic":
        syn = data_cfg.synthetic
        kw.update(n_classes=syn.n_classes, train_per_class=syn.train_per_class,
                  test_per_class=syn.test_per_class, image_size=syn.image_size,
                  seed=syn.seed, noise=syn.noise)
    source = build_dataset(data_cfg.name, data_cfg.root, **kw)
    return TaskData(source, data_cfg.init_cls, data_cfg.increment, data_cfg.class_order,
                    data_cfg.seed, train_transform(data_cfg.image_size, normalize),
                    eval_transform(data_cfg.image_size, normalize))
