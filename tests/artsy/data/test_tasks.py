"""artsy.data.tasks: class order, label remapping, task splits, per-task views, and task data from
a config."""

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from artsy.data import (TaskData, class_order, eval_transform, remap_labels, task_data_from_config,
                        task_splits, train_transform)
from artsy.data.synthetic import load_synthetic

from .cifar_fixtures import one_line


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


def test_task_data_from_config(tmp_path, folder):
    from artsy.config import Config, apply_overrides

    cfg = apply_overrides(Config(), ["data.name=synthetic", "data.image_size=16",
                                     "data.init_cls=2", "data.increment=2",
                                     "data.synthetic.n_classes=6",
                                     "data.synthetic.train_per_class=3",
                                     "data.synthetic.test_per_class=2",
                                     "data.class_order=identity"])
    d = task_data_from_config(cfg.data)
    assert d.n_tasks == 3 and d.order == list(range(6)) and len(d.train_set(0)) == 6
    assert d.train_set(0)[0][0].shape == (3, 16, 16)
    cfg = apply_overrides(cfg, ["data.name=imagefolder", f"data.root={folder}",
                                "data.init_cls=3", "data.increment=3",
                                "data.max_per_class_train=1", f"data.cache_dir={tmp_path}"])
    d = task_data_from_config(cfg.data, normalize=((0.5,) * 3, (0.5,) * 3))
    assert d.n_tasks == 1 and len(d.train_set(0)) == 3
    assert d.test_set(0)[0][0].min() < 0  # normalised
