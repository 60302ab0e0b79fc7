"""artsy.data.synthetic: deterministic, any size, learnable."""

import numpy as np

from artsy.data.synthetic import load_synthetic


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
