"""CIFAR-10 and CIFAR-100 from the official python pickles (torchvision downloads them).

The pickles are read directly rather than through torchvision's CIFAR classes, because
torchvision insists on the official md5 sums and so rejects fixtures and re-packed copies written
in the same layout; torchvision is used only to download, when `download` allows it.
"""

from __future__ import annotations

import codecs
import pickle
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np

from ..errors import DataError, one_line
from .images import ArrayImageSet, DataSource, PathLike, first_per_class
from .spec import DatasetSpec


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


CIFAR100 = CifarLayout("CIFAR-100", "cifar100", "cifar-100-python",
                       "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz", ("train",),
                       ("test",), "meta", "fine_label_names", "fine_labels",
                       "data, fine_labels, coarse_labels, filenames", 100, "CIFAR100")
CIFAR10 = CifarLayout("CIFAR-10", "cifar10", "cifar-10-batches-py",
                      "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
                      tuple(f"data_batch_{i}" for i in range(1, 6)), ("test_batch",),
                      "batches.meta", "label_names", "labels",
                      "data, labels, filenames, batch_label", 10, "CIFAR10")


def load_cifar100(root: PathLike, download: bool = False,
                  max_per_class_train: Optional[int] = None,
                  max_per_class_test: Optional[int] = None) -> DataSource:
    """Read the official pickles train, test and meta (R, G, B planes of 32x32, `fine_labels`)."""
    return _load_cifar(CIFAR100, root, download, max_per_class_train, max_per_class_test)


def load_cifar10(root: PathLike, download: bool = False,
                 max_per_class_train: Optional[int] = None,
                 max_per_class_test: Optional[int] = None) -> DataSource:
    """Read the official pickles data_batch_1..5 (train, in that order), test_batch and
    batches.meta (R, G, B planes of 32x32, `labels`), as `load_cifar100` does; torchvision's
    CIFAR10 downloads them when `download` is set and they are missing."""
    return _load_cifar(CIFAR10, root, download, max_per_class_train, max_per_class_test)


def _cifar_folder(root: PathLike, folder: str) -> Path:
    root = Path(root).expanduser()
    if root.name == folder and not (root / folder).is_dir():
        return root
    return root / folder


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
            f"{one_line(e)}); fetch {layout.url} by hand and unpack it there so that "
            f"{parent / layout.folder}/{', '.join(layout.files)} exist") from e


def _numpy_array_globals() -> dict[tuple[str, str], Any]:
    """numpy's array reconstruction under every module path a CIFAR pickle may name it by."""
    try:
        from numpy._core import multiarray, numeric  # numpy >= 2 (numpy 1.26 has the alias too)
    except ImportError:  # pragma: no cover - numpy < 1.26
        from numpy.core import multiarray, numeric
    out: dict[tuple[str, str], Any] = {("numpy", "ndarray"): np.ndarray,
                                       ("numpy", "dtype"): np.dtype}
    for core in ("numpy.core", "numpy._core"):
        out[(f"{core}.multiarray", "_reconstruct")] = multiarray._reconstruct  # protocol <= 4
        out[(f"{core}.numeric", "_frombuffer")] = numeric._frombuffer  # protocol 5 re-packs
    return out


# Everything an official CIFAR python batch (python 2, protocol 2) names, plus how python 3 writes
# the same layout at protocol 2 (bytes as `_codecs.encode(str, 'latin1')`): dicts, lists, strings,
# bytes and ints need no global at all, the uint8 `data` array needs numpy's reconstruction.
CIFAR_PICKLE_GLOBALS: dict[tuple[str, str], Any] = {
    **_numpy_array_globals(), ("_codecs", "encode"): codecs.encode}


class CifarUnpickler(pickle.Unpickler):
    """An unpickler that builds only what an official CIFAR batch holds: `find_class` admits the
    globals of `CIFAR_PICKLE_GLOBALS` and refuses every other one (os.system, builtins.exec, ...),
    so a crafted file under data.root cannot run code. `refused` is set to the refused global."""

    refused: Optional[str] = None

    def find_class(self, module: str, name: str) -> Any:
        obj = CIFAR_PICKLE_GLOBALS.get((module, name))
        if obj is None:
            self.refused = f"{module}.{name}"
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed")
        return obj


def _read_pickle(path: Path, layout: CifarLayout) -> dict:
    again = f"re-download the dataset ({layout.url})"
    unpickler: Optional[CifarUnpickler] = None
    try:
        with open(path, "rb") as f:
            unpickler = CifarUnpickler(f, encoding="latin1")  # python 2 str -> str, arrays intact
            obj = unpickler.load()
    except Exception as e:
        if unpickler is not None and unpickler.refused:
            raise DataError(f"{layout.title} loader refuses to load global {unpickler.refused} "
                            f"from {path}: not an official CIFAR batch; {again}") from None
        raise DataError(f"malformed {layout.title} pickle {path}: cannot unpickle "
                        f"({type(e).__name__}: {one_line(e)}): the file is truncated or "
                        f"corrupt; re-download {layout.url}") from e
    if not isinstance(obj, dict):
        raise DataError(f"malformed {layout.title} pickle {path}: expected a dict, got "
                        f"{type(obj).__name__}; re-download {layout.url}")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in obj.items()}


def _cifar_split(paths: Sequence[Path], layout: CifarLayout, names: list[str],
                 cap: Optional[int]) -> ArrayImageSet:
    """The pickles of one split, checked one by one, concatenated, then capped per class."""
    data, labels = zip(*(_cifar_pickle(p, layout) for p in paths))
    data, labels = np.concatenate(data), np.concatenate(labels)
    keep = first_per_class(labels, cap)
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
# The registry entries


def _options(data_cfg: Any) -> dict[str, Any]:
    return {"download": data_cfg.download, "max_per_class_train": data_cfg.max_per_class_train,
            "max_per_class_test": data_cfg.max_per_class_test}


CIFAR100_SPEC = DatasetSpec(
    name=CIFAR100.name, loader=lambda d: load_cifar100(d.root, **_options(d)),
    n_classes=CIFAR100.n_classes, train_per_class=500, test_per_class=100,
    config_keys=("download",))
CIFAR10_SPEC = DatasetSpec(
    name=CIFAR10.name, loader=lambda d: load_cifar10(d.root, **_options(d)),
    n_classes=CIFAR10.n_classes, train_per_class=5000, test_per_class=1000,
    config_keys=("download",))
