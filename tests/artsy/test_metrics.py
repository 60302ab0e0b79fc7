"""artsy.metrics: Avg/Last (EASE's curve), forgetting, the per-task record, atomic files."""

import json
import math

import numpy as np
import pytest

from artsy.metrics import (CSV_COLUMNS, EvalResult, Metrics, accuracy, avg_last, fmt, forgetting,
                           without_timings)

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


def test_tasks_are_added_in_order():
    m = Metrics(2)
    with pytest.raises(ValueError, match="cannot add task 1"):
        m.add(1, hand_made_eval(1), 0.0, 0)


def test_without_timings_drops_only_wall_times():
    d = {"avg": 1.0, "train_time_s": 3.0, "tasks": [{"eval_time_s": 1.0, "accuracy": 2.0}]}
    assert without_timings(d) == {"avg": 1.0, "tasks": [{"accuracy": 2.0}]}
