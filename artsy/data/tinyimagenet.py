"""TinyImageNet in the official tiny-imagenet-200 layout; the test split is the official val split
(the official test split has no labels)."""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path
from typing import Any, Optional

from ..errors import ConfigError, DataError
from .images import DataSource, FileImageSet, PathLike, first_n, image_files
from .spec import DatasetSpec

TINY_FOLDER = "tiny-imagenet-200"
TINY_URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"


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
        files = image_files(folder / "train" / w / "images", max_per_class_train)
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
        names = first_n(per_class[label], max_per_class_test)
        paths += [val_dir / f for f in names]
        targets += [label] * len(names)
    return DataSource("tinyimagenet", train, FileImageSet(paths, targets, wnids), wnids)


def check_protocol(data_cfg: Any) -> None:
    """data.tiny_protocol names the split, so the split must be that protocol's: 'b100' is 100
    base classes then data.increment per task (ZSCL / MoE-Adapters), 'b0' equal tasks."""
    d = data_cfg
    if d.tiny_protocol == "b100" and d.init_cls != 100:
        raise ConfigError(f"data.tiny_protocol='b100' needs data.init_cls=100 (got "
                          f"{d.init_cls}); use tiny_protocol='b0' for equal tasks")
    if d.tiny_protocol == "b0" and d.init_cls != d.increment:
        raise ConfigError(f"data.tiny_protocol='b0' needs data.init_cls == data.increment (got "
                          f"{d.init_cls} and {d.increment})")


SPEC = DatasetSpec(
    name="tinyimagenet",
    loader=lambda d: load_tinyimagenet(d.root, d.max_per_class_train, d.max_per_class_test),
    n_classes=200, train_per_class=500, test_per_class=50,
    config_keys=("tiny_protocol",), check=check_protocol)
