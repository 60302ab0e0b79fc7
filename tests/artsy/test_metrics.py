"""artsy.metrics: Avg/Last (EASE's curve), forgetting, the per-task record, atomic files."""

import json
import math

import numpy as np
import pytest
import torch

from artsy.config import load_config
from artsy.metrics import (CSV_COLUMNS, TIMING_KEYS, EvalResult, Metrics, accuracy, avg_last, fmt,
                           forgetting, peak_memory_mib, without_timings)
from artsy.runner import resume_run, start_run

EASE_CIFAR_B0_INC5_IN21K = [99.4, 98.2, 97.27, 96.45, 96.28, 94.9, 93.26, 92.95, 92.27, 91.0, 90.0,
                            89.98, 89.34, 89.29, 88.4, 86.8, 86.33, 86.1, 86.27, 85.8]


def test_ease_curve_gives_the_published_avg_and_last():
    avg, last = avg_last(EASE_CIFAR_B0_INC5_IN21K)
    assert fmt(avg) == "91.51" and round(avg, 2) == 91.51
    assert last == 85.8 and fmt(last) == "85.80"
    assert all(math.isnan(v) for v in avg_last([]))


def test_accuracy_is_percent_and_nan_when_empty():
    assert accuracy([1, 2, 3, 4], [1, 2, 0, 4]) == 75.0
    assert math.isnan(accuracy([], []))


def test_forgetting_is_max_over_time_minus_final_over_old_tasks():
    nan = np.nan
    acc = np.array([[90.0, nan, nan],
                    [80.0, 95.0, nan],
                    [85.0, 70.0, 99.0]])
    # task 0: max 90 - final 85 = 5; task 1: max 95 - final 70 = 25; task 2 is not old
    assert forgetting(acc) == pytest.approx(15.0)
    assert math.isnan(forgetting(acc[:1, :1]))
    assert forgetting(np.array([[50.0, nan], [60.0, 40.0]])) == 0.0  # improved: no forgetting


def hand_made_eval(task):
    """Two tasks of two classes; 4 test inputs per seen task."""
    labels = np.array([0, 0, 1, 1, 2, 2, 3, 3])[: 4 * (task + 1)]
    input_task = labels // 2
    preds = np.array([0, 1, 1, 1, 2, 0, 3, 3])[: len(labels)]  # one wrong in each task
    oracle = np.array([0, 1, 1, 1, 2, 3, 3, 3])[: len(labels)]
    open_ = np.array([[1, 0], [1, 1], [1, 0], [0, 1], [0, 1], [1, 0], [0, 1], [0, 1]],
                     dtype=bool)[: len(labels), : task + 1]
    open_[~open_.any(1), 0] = True
    score = open_.astype(float) * 0.8 + 0.1
    return EvalResult(labels=labels, preds=preds, oracle_preds=oracle, input_task=input_task,
                      pred_task=preds // 2, open=open_, score=score, eval_time_s=0.5,
                      ptm_passes=len(labels), subnet_passes=int(open_.sum()))


def test_metrics_from_a_hand_made_evaluation(tmp_path):
    m = Metrics(2, {"gate": "mlp"})
    m.add(0, hand_made_eval(0), train_time_s=2.0, train_passes=10)
    row = m.add(1, hand_made_eval(1), train_time_s=3.0, train_passes=20,
                calibration=[{"after_task": 1, "synapse": 0, "K_eff": 2.5}])
    assert m.acc_matrix[0, 0] == 75.0 and math.isnan(m.acc_matrix[0, 1])
    assert m.acc_matrix[1].tolist() == [75.0, 75.0]
    assert row["accuracy"] == 75.0 and row["old_accuracy"] == 75.0 and row["new_accuracy"] == 75.0
    # the true task's gate: inputs 0,1,2 of task 0 (3/4) and inputs 4,6,7 of task 1 (3/4)
    assert row["gate_accuracy"] == 75.0
    assert row["mean_open_gates"] == pytest.approx(9 / 8)
    assert row["task_id_accuracy"] == pytest.approx(100 * 7 / 8)  # label 0 -> 1: same task
    assert row["oracle_task_accuracy"] == pytest.approx(100 * 6 / 8)
    assert row["eval_forward_passes"] == 8 + 9 and row["ease_eval_forward_passes"] == 16
    np.testing.assert_allclose(m.gate_open_rate[1], [[0.75, 0.5], [0.25, 0.75]])
    assert np.isnan(m.gate_open_rate[0, 1]).all() and np.isnan(m.gate_open_rate[0, 0, 1])
    s = m.summary()
    assert s["avg"] == 75.0 and s["last"] == 75.0 and s["forgetting"] == 0.0
    assert s["train_time_s"] == 5.0

    m.save(tmp_path)
    text = (tmp_path / "metrics.json").read_text()
    assert "NaN" not in text  # strict JSON: NaN is null
    d = json.loads(text)
    assert d["gate"] == "mlp" and d["curve"] == [75.0, 75.0]
    assert d["tasks"][0]["old_accuracy"] is None
    assert d["acc_matrix"][0][1] is None
    back = Metrics.from_dict(d)
    assert back.to_dict() == d
    lines = (tmp_path / "metrics.csv").read_text().splitlines()
    assert lines[0].split(",") == list(CSV_COLUMNS) and len(lines) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.csv", "metrics.json"]
    assert "Avg 75.00  Last 75.00" in m.table()


def test_cost_drift_and_task_id_keys_of_a_hand_made_evaluation(tmp_path):
    m = Metrics(2)
    first = m.add(0, hand_made_eval(0), 2.0, 10, feature_cosine=0.5, peak_rss_mib=100.0)
    row = m.add(1, hand_made_eval(1), 3.0, 20, feature_cosine=0.7, peak_rss_mib=300.0,
                peak_cuda_mib=40.0)
    # task 0: 4 images, open sub-network entries 1+1+1+1 (one seen task); task 1: 9 of 8 images
    assert first["subnetwork_passes_per_image"] == 1.0 and first["images_per_s"] == 4 / 0.5
    assert row["subnetwork_passes_per_image"] == 9 / 8 and row["images_per_s"] == 8 / 0.5
    assert row["feature_cosine"] == 0.7 and math.isnan(first["peak_cuda_mib"])
    s = m.summary()
    assert s["final_task_id_accuracy"] == pytest.approx(100 * 7 / 8)
    assert s["mean_task_id_accuracy"] == pytest.approx((100 + 100 * 7 / 8) / 2)  # 1 -> task 0
    assert s["subnetwork_passes_per_image"] == (4 + 9) / (4 + 8)  # run totals, not a mean
    assert s["ease_subnetwork_passes_per_image"] == (4 * 1 + 8 * 2) / 12
    assert s["images_per_s"] == 12 / 1.0 and s["mean_feature_cosine"] == pytest.approx(0.6)
    assert s["peak_rss_mib"] == 300.0 and s["peak_cuda_mib"] == 40.0  # the largest, NaN left out
    m.save(tmp_path)
    d = json.loads((tmp_path / "metrics.json").read_text())
    assert d["tasks"][0]["peak_cuda_mib"] is None and Metrics.from_dict(d).to_dict() == d
    header, cells = (tmp_path / "metrics.csv").read_text().splitlines()[:2]
    assert dict(zip(header.split(","), cells.split(",")))["peak_cuda_mib"] == ""
    assert "task-id 87.50%" in m.table() and "CUDA 40 MiB" in m.table()


def test_metrics_written_before_the_new_keys_still_summarize_and_save(tmp_path):
    """A run resumed from an older metrics.json: its rows lack the new per-task keys."""
    m = Metrics(2)
    m.add(0, hand_made_eval(0), 2.0, 10, feature_cosine=0.5)
    old = m.to_dict()
    for key in ("subnetwork_passes_per_image", "images_per_s", "feature_cosine", "peak_rss_mib",
                "peak_cuda_mib"):
        del old["tasks"][0][key]
    back = Metrics.from_dict(old)
    back.add(1, hand_made_eval(1), 3.0, 20, feature_cosine=0.7)
    assert back.summary()["mean_feature_cosine"] == 0.7
    assert math.isnan(back.summary()["peak_rss_mib"])
    back.save(tmp_path)
    assert len((tmp_path / "metrics.csv").read_text().splitlines()) == 3


def test_peak_memory_is_the_process_max_rss_and_no_cuda_on_the_cpu():
    import resource

    mem = peak_memory_mib("cpu")
    assert mem["peak_rss_mib"] == resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    assert mem["peak_rss_mib"] > 50 and math.isnan(mem["peak_cuda_mib"])


@pytest.mark.cuda
def test_peak_cuda_memory_is_torchs_peak_allocation():
    x = torch.ones(64, 2**20, device="cuda")  # 256 MiB
    assert peak_memory_mib("cuda")["peak_cuda_mib"] >= 256
    del x


def test_a_run_records_feature_drift_and_memory_per_task(tmp_path):
    """Frozen adapters (train.epochs=0) are zero: E_t = E_0, cosine 1; trained ones move; gates
    that never compute h0 give NaN rather than pay a backbone pass."""
    def run(*overrides):
        cfg = load_config("tiny-synthetic", [f"run.out_dir={tmp_path}", *overrides])
        return start_run(cfg, progress=False).metrics

    frozen, trained = run("train.epochs=0"), run("synapse.gate=mlp", "run.save_checkpoints=false")
    for row in frozen.rows:
        assert row["feature_cosine"] == pytest.approx(1.0, abs=1e-9)
        assert row["peak_rss_mib"] > 50 and math.isnan(row["peak_cuda_mib"])
    assert all(0 < r["feature_cosine"] < 1 for r in trained.rows)
    assert trained.rows[-1]["subnetwork_passes_per_image"] == pytest.approx(
        trained.rows[-1]["eval_subnetwork_passes"] / trained.rows[-1]["n_test"])
    none = run("synapse.gate=none", "data.synthetic.n_classes=2", "run.save_checkpoints=false")
    assert math.isnan(none.rows[0]["feature_cosine"])
    assert none.summary()["subnetwork_passes_per_image"] == 1.0


def test_a_resumed_run_differs_only_in_timing_keys(tmp_path):
    cfg = load_config("tiny-synthetic", [f"run.out_dir={tmp_path}", "data.synthetic.n_classes=4"])
    part = start_run(cfg, stop_after=1, progress=False)
    resumed = resume_run(part.run_dir, progress=False).metrics.to_dict()
    whole = start_run(cfg, progress=False).metrics.to_dict()
    assert without_timings(resumed) == without_timings(whole)
    assert {"images_per_s", "peak_rss_mib", "peak_cuda_mib"} <= set(TIMING_KEYS)


def test_tasks_are_added_in_order():
    m = Metrics(2)
    with pytest.raises(ValueError, match="cannot add task 1"):
        m.add(1, hand_made_eval(1), 0.0, 0)


def test_without_timings_drops_only_wall_times_and_what_follows_from_them():
    d = {"avg": 1.0, "train_time_s": 3.0, "tasks": [{"eval_time_s": 1.0, "accuracy": 2.0,
                                                     "images_per_s": 9.0, "peak_rss_mib": 5.0}],
         "peak_cuda_mib": 1.0, "feature_cosine": 0.9}
    assert without_timings(d) == {"avg": 1.0, "tasks": [{"accuracy": 2.0}],
                                  "feature_cosine": 0.9}
