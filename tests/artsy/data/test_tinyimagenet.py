"""artsy.data.tinyimagenet on a fixture in the official tiny-imagenet-200 layout, and its
protocol check."""

import numpy as np
import pytest

from artsy.data.tinyimagenet import load_tinyimagenet
from artsy.errors import DataError

from .cifar_fixtures import one_line
from .folder_fixtures import WNIDS, write_tiny


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
