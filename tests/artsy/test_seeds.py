"""artsy.seeds: the keys reported across seeds, mean ± sample std with missing values, table."""

import json
import math

import numpy as np
import pytest

from artsy import seeds
from artsy.metrics import Metrics

from .test_metrics import hand_made_eval


def test_every_key_is_a_metrics_summary_key_and_the_issue_keys_are_there():
    assert set(seeds.KEYS) <= set(Metrics(1).summary())
    assert {"final_task_id_accuracy", "mean_task_id_accuracy", "subnetwork_passes_per_image",
            "images_per_s", "peak_rss_mib", "peak_cuda_mib", "mean_feature_cosine",
            "train_time_s"} <= set(seeds.KEYS)


def test_summary_of_two_hand_made_runs():
    runs = {}
    for seed, cosine in ((1, 0.5), (2, 0.9)):
        m = Metrics(2)
        for t in range(2):
            m.add(t, hand_made_eval(t), 1.0 + seed, 10, feature_cosine=cosine,
                  peak_rss_mib=100.0 * seed + t)
        runs[seed] = m.summary()
    s = seeds.summarize(runs)
    assert set(s) == set(seeds.KEYS)
    assert s["mean_feature_cosine"]["mean"] == pytest.approx(0.7)
    assert s["mean_feature_cosine"]["std"] == pytest.approx(np.std([0.5, 0.9], ddof=1))
    assert s["peak_rss_mib"]["per_seed"] == {1: 101.0, 2: 201.0}  # the larger of two tasks
    assert s["train_time_s"]["mean"] == pytest.approx(np.mean([4.0, 6.0]))
    # not measured on the CPU: no value, and strict JSON (null, not NaN)
    assert s["peak_cuda_mib"] == {"mean": None, "std": None, "per_seed": {1: None, 2: None}}
    assert "NaN" not in json.dumps(s)


def test_non_finite_seeds_are_left_out_of_mean_and_std():
    s = seeds.summarize({1: {"x": 1.0}, 2: {"x": math.nan}, 3: {"x": 3.0}}, keys=("x",))
    assert s["x"]["mean"] == 2.0 and s["x"]["std"] == pytest.approx(math.sqrt(2))
    assert s["x"]["per_seed"] == {1: 1.0, 2: None, 3: 3.0}


def test_table_has_one_line_per_key_with_mean_std_and_every_seed():
    s = seeds.summarize({1: {"avg": 50.0, "last": 40.0}, 2: {"avg": 60.0, "last": 44.0}},
                        keys=("avg", "last"))
    lines = seeds.table(s).splitlines()
    assert len(lines) == 2
    assert "55.00 ± 7.07" in lines[0] and "1: 50.00, 2: 60.00" in lines[0]
