"""Fixture writers for the layouts made of image files: TinyImageNet's official
tiny-imagenet-200 folder, and image folders (train/<class>/, test/<class>/) with their archives."""

import tarfile
from pathlib import Path

from PIL import Image

WNIDS = ["n01641577", "n01443537", "n01629819"]  # wnids.txt order; labels follow sorted order
FOLDER_CLASSES = ["cat", "ant", "bee"]  # label index follows sorted names: ant, bee, cat


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
