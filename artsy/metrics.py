"""Continual-learning metrics (docs/method.md §12), kept unrounded and rounded only for display.

After task i, on the test data of all seen classes: A_i (sample-weighted top-1, EASE's curve),
acc[i, j] (on task j's test data), old/new accuracy, the gate statistics (the true task's gate
open, open gates per input, the open-rate matrix (after_task, input_task, synapse)), task-id
accuracy ("Task correct" in EASE) and the accuracy with the oracle task id ("Task acc": argmax
within the true task's classes), wall times and forward-pass counts. Avg = mean of A_i (EASE
rounds each A_i to 2 decimals first; here only the display rounds), Last = A_T, forgetting = mean
over old tasks of (max over time - final). Accuracies are in percent, rates are fractions.

Cost and drift, per task and over the run: sub-network forward passes per test image (EASE runs
every seen one), inference images/s, the process's peak memory (max RSS, all of the process; and
torch's CUDA peak on a GPU; both high-water marks since the process started) and the mean cosine
between E_t(x) and E_0(x) over task t's training inputs (how far the adapters moved the feature).
Times, throughput and memory are TIMING_KEYS: a resumed run may differ in them and nothing else.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import sys
from dataclasses import dataclass
from typing import Optional, Sequence, Union

import numpy as np

from synsim.files import write_text

from .rundir import RunDir

# the only fields a resumed run may change: wall times and what follows from them or the process
TIMING_KEYS = ("train_time_s", "eval_time_s", "images_per_s", "peak_rss_mib", "peak_cuda_mib")
CSV_COLUMNS = ("task", "classes_seen", "n_test", "accuracy", "old_accuracy", "new_accuracy",
               "gate_accuracy", "mean_open_gates", "task_id_accuracy", "oracle_task_accuracy",
               "train_time_s", "eval_time_s", "train_forward_passes", "eval_forward_passes",
               "eval_subnetwork_passes", "ease_eval_forward_passes", "subnetwork_passes_per_image",
               "images_per_s", "feature_cosine", "peak_rss_mib", "peak_cuda_mib")


def accuracy(pred: np.ndarray, labels: np.ndarray) -> float:
    """Top-1 accuracy in percent; NaN for no samples."""
    pred, labels = np.asarray(pred), np.asarray(labels)
    return float((pred == labels).mean() * 100) if labels.size else math.nan


def avg_last(curve: Sequence[float]) -> tuple[float, float]:
    """Avg (mean of the curve A_1..A_T) and Last (A_T)."""
    curve = [float(a) for a in curve]
    if not curve:
        return math.nan, math.nan
    return float(np.mean(curve)), curve[-1]


def forgetting(acc: np.ndarray) -> float:
    """Mean over old tasks j < T of max_i acc[i, j] - acc[T, j] (T: the last row); NaN for T = 0."""
    acc = np.asarray(acc, dtype=float)
    last = acc.shape[0] - 1
    if last < 1:
        return math.nan
    return float(np.mean([np.nanmax(acc[j:, j]) - acc[last, j] for j in range(last)]))


def peak_memory_mib(device: str = "cpu") -> dict[str, float]:
    """The process's high-water marks so far, in MiB: max RSS (the whole process: interpreter,
    torch, data) and, on CUDA, torch's peak allocated tensor memory (NaN elsewhere)."""
    try:
        import resource
    except ImportError:  # not a POSIX system
        rss = math.nan
    else:
        maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        rss = maxrss / 2**20 if sys.platform == "darwin" else maxrss / 1024  # bytes vs KiB
    cuda = math.nan
    if str(device).startswith("cuda"):
        import torch

        cuda = torch.cuda.max_memory_allocated(device) / 2**20
    return {"peak_rss_mib": float(rss), "peak_cuda_mib": float(cuda)}


def fmt(x: Optional[float], decimals: int = 2) -> str:
    """EASE's display rounding (2 decimals); '-' where a value does not apply."""
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{decimals}f}"


@dataclass
class EvalResult:
    """What the learner's evaluation after one task gives the metrics (one entry per test input)."""

    labels: np.ndarray  # remapped class labels
    preds: np.ndarray
    oracle_preds: np.ndarray  # argmax restricted to the true task's classes
    input_task: np.ndarray  # the true task of each input
    pred_task: np.ndarray  # the task of the predicted class
    open: np.ndarray  # (N, n_seen) bool, after the fallback
    score: np.ndarray  # (N, n_seen) soft gate score
    eval_time_s: float
    ptm_passes: int  # h0 = E_0(x) forward passes
    subnet_passes: int  # E_t(x) forward passes


class Metrics:
    """Per-task rows plus the (after_task, ...) matrices; `to_dict` is metrics.json."""

    def __init__(self, n_tasks: int, meta: Optional[dict] = None) -> None:
        self.n_tasks = n_tasks
        self.meta = dict(meta or {})
        self.rows: list[dict] = []
        nan = np.full((n_tasks, n_tasks), np.nan)
        self.acc_matrix = nan.copy()
        self.gate_open_rate = np.full((n_tasks, n_tasks, n_tasks), np.nan)
        self.gate_score = self.gate_open_rate.copy()
        self.calibration: list[dict] = []

    def add(self, task: int, ev: EvalResult, train_time_s: float, train_passes: int,
            calibration: Sequence[dict] = (), *, feature_cosine: float = math.nan,
            peak_rss_mib: float = math.nan, peak_cuda_mib: float = math.nan) -> dict:
        """Record the evaluation after task `task` (tasks are added in order). NaN: not measured
        (the feature cosine without h0, CUDA memory off a GPU)."""
        if task != len(self.rows):
            raise ValueError(f"metrics hold {len(self.rows)} tasks; cannot add task {task}")
        n_seen = task + 1
        gated = ev.open.shape[1] > 0  # zero gate columns: a method without gates (rates NaN)
        for j in range(n_seen):
            of_j = ev.input_task == j
            self.acc_matrix[task, j] = accuracy(ev.preds[of_j], ev.labels[of_j])
            if of_j.any() and gated:
                self.gate_open_rate[task, j, :n_seen] = ev.open[of_j].mean(0)
                self.gate_score[task, j, :n_seen] = ev.score[of_j].mean(0)
        old = ev.input_task < task
        true_gate = (ev.open[np.arange(len(ev.labels)), ev.input_task] if gated
                     else np.full(len(ev.labels), np.nan))
        row = {
            "task": task, "classes_seen": int(ev.labels.max(initial=-1) + 1) if len(ev.labels)
            else 0, "n_test": int(len(ev.labels)),
            "accuracy": accuracy(ev.preds, ev.labels),
            "old_accuracy": accuracy(ev.preds[old], ev.labels[old]),
            "new_accuracy": accuracy(ev.preds[~old], ev.labels[~old]),
            "gate_accuracy": float(true_gate.mean() * 100),
            "mean_open_gates": float(ev.open.sum(1).mean()),
            "task_id_accuracy": accuracy(ev.pred_task, ev.input_task),
            "oracle_task_accuracy": accuracy(ev.oracle_preds, ev.labels),
            "train_time_s": float(train_time_s), "eval_time_s": float(ev.eval_time_s),
            "train_forward_passes": int(train_passes),
            "eval_forward_passes": int(ev.ptm_passes + ev.subnet_passes),
            "eval_subnetwork_passes": int(ev.subnet_passes),
            "ease_eval_forward_passes": int(len(ev.labels) * n_seen),
            "subnetwork_passes_per_image": _ratio(ev.subnet_passes, len(ev.labels)),
            "images_per_s": _ratio(len(ev.labels), ev.eval_time_s),
            "feature_cosine": float(feature_cosine),
            "peak_rss_mib": float(peak_rss_mib), "peak_cuda_mib": float(peak_cuda_mib),
        }
        self.rows.append(row)
        self.calibration += [dict(c) for c in calibration]
        return row

    # --- summaries ---
    @property
    def curve(self) -> list[float]:
        return [r["accuracy"] for r in self.rows]

    def summary(self) -> dict:
        """The run's numbers; the ratios are over all evaluations together (total passes / total
        test images, total test images / total eval time), memory is the largest peak."""
        avg, last = avg_last(self.curve)
        rows = self.rows
        n = len(rows)
        n_test = sum(r["n_test"] for r in rows)
        eval_time = sum(r["eval_time_s"] for r in rows)
        return {"tasks_done": n, "avg": avg, "last": last,
                "forgetting": forgetting(self.acc_matrix[:n, :n]) if n else math.nan,
                "mean_gate_accuracy": _mean(r["gate_accuracy"] for r in rows),
                "mean_open_gates": _mean(r["mean_open_gates"] for r in rows),
                "train_time_s": sum(r["train_time_s"] for r in rows),
                "eval_time_s": eval_time,
                "eval_forward_passes": sum(r["eval_forward_passes"] for r in rows),
                "ease_eval_forward_passes": sum(r["ease_eval_forward_passes"] for r in rows),
                "final_task_id_accuracy": rows[-1]["task_id_accuracy"] if rows else math.nan,
                "mean_task_id_accuracy": _mean(r["task_id_accuracy"] for r in rows),
                "subnetwork_passes_per_image": _ratio(
                    sum(r["eval_subnetwork_passes"] for r in rows), n_test),
                "ease_subnetwork_passes_per_image": _ratio(
                    sum(r["ease_eval_forward_passes"] for r in rows), n_test),
                "images_per_s": _ratio(n_test, eval_time),
                "mean_feature_cosine": _finite_mean(r.get("feature_cosine") for r in rows),
                "peak_rss_mib": _finite_max(r.get("peak_rss_mib") for r in rows),
                "peak_cuda_mib": _finite_max(r.get("peak_cuda_mib") for r in rows)}

    def table(self) -> str:
        """The per-task table, then Avg / Last / forgetting (EASE's 2-decimal display)."""
        head = ("task", "seen", "A_t", "old", "new", "gate%", "open", "tid%", "orac%", "passes",
                "ease", "train s", "eval s")
        lines = [" ".join(f"{h:>7}" for h in head)]
        for r in self.rows:
            cells = (str(r["task"]), str(r["classes_seen"]), fmt(r["accuracy"]),
                     fmt(r["old_accuracy"]), fmt(r["new_accuracy"]), fmt(r["gate_accuracy"]),
                     fmt(r["mean_open_gates"]), fmt(r["task_id_accuracy"]),
                     fmt(r["oracle_task_accuracy"]), str(r["eval_forward_passes"]),
                     str(r["ease_eval_forward_passes"]), fmt(r["train_time_s"], 1),
                     fmt(r["eval_time_s"], 1))
            lines.append(" ".join(f"{c:>7}" for c in cells))
        s = self.summary()
        lines.append(f"Avg {fmt(s['avg'])}  Last {fmt(s['last'])}  forgetting "
                     f"{fmt(s['forgetting'])}  after {s['tasks_done']}/{self.n_tasks} tasks")
        lines.append(f"task-id {fmt(s['final_task_id_accuracy'])}%  sub-network passes/image "
                     f"{fmt(s['subnetwork_passes_per_image'])} (EASE "
                     f"{fmt(s['ease_subnetwork_passes_per_image'])})  "
                     f"{fmt(s['images_per_s'], 1)} images/s  cos(E_t, E_0) "
                     f"{fmt(s['mean_feature_cosine'], 3)}  peak RSS {fmt(s['peak_rss_mib'], 0)} "
                     f"MiB" + ("" if math.isnan(s["peak_cuda_mib"]) else
                               f"  CUDA {fmt(s['peak_cuda_mib'], 0)} MiB"))
        return "\n".join(lines)

    # --- files and state ---
    def to_dict(self) -> dict:
        n = len(self.rows)
        return _jsonable({**self.meta, "n_tasks": self.n_tasks, **self.summary(),
                          "curve": self.curve, "tasks": self.rows,
                          "acc_matrix": self.acc_matrix[:n].tolist(),
                          "gate_open_rate": self.gate_open_rate[:n].tolist(),
                          "gate_score": self.gate_score[:n].tolist(),
                          "calibration": self.calibration})

    @classmethod
    def from_dict(cls, d: dict) -> "Metrics":
        keys = {"n_tasks", "tasks", "acc_matrix", "gate_open_rate", "gate_score", "calibration",
                "curve"} | set(cls(1).summary())
        m = cls(d["n_tasks"], {k: v for k, v in d.items() if k not in keys})
        n = len(d["tasks"])
        m.rows = [_floats(r) for r in d["tasks"]]
        if n:
            m.acc_matrix[:n] = _array(d["acc_matrix"])
            m.gate_open_rate[:n] = _array(d["gate_open_rate"])
            m.gate_score[:n] = _array(d["gate_score"])
        m.calibration = [_floats(c) for c in d["calibration"]]
        return m

    def save(self, run_dir: Union[str, os.PathLike]) -> None:
        """metrics.json and metrics.csv (one row per task), each written atomically."""
        run_dir = RunDir(run_dir)
        write_text(run_dir.metrics_json, json.dumps(self.to_dict(), indent=1) + "\n")
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\n")
        writer.writeheader()
        for r in self.rows:
            writer.writerow({k: ("" if isinstance(v, float) and math.isnan(v) else v)
                             for k in CSV_COLUMNS for v in [r.get(k, math.nan)]})
        write_text(run_dir.metrics_csv, out.getvalue())


def without_timings(d: dict) -> dict:
    """A metrics dict with the wall times removed: what must match between a run and its resume."""
    if isinstance(d, dict):
        return {k: without_timings(v) for k, v in d.items() if k not in TIMING_KEYS}
    if isinstance(d, list):
        return [without_timings(v) for v in d]
    return d


def _mean(values) -> float:
    values = list(values)
    return float(np.mean(values)) if values else math.nan


def _ratio(num: float, den: float) -> float:
    """num / den; NaN when den is 0 (no test images, no time measured)."""
    return float(num) / float(den) if den else math.nan


def _finite(values) -> list[float]:
    """The finite values; rows written before a key existed (None) or not measured (NaN) drop."""
    return [float(v) for v in values if v is not None and math.isfinite(v)]


def _finite_mean(values) -> float:
    return _mean(_finite(values))


def _finite_max(values) -> float:
    return max(_finite(values), default=math.nan)


def _jsonable(x):
    """NaN -> null (strict JSON), numpy scalars -> Python."""
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.floating, float)):
        return None if math.isnan(x) else float(x)
    if isinstance(x, np.integer):
        return int(x)
    return x


def _floats(d: dict) -> dict:
    return {k: (math.nan if v is None else v) for k, v in d.items()}


def _array(x) -> np.ndarray:
    return np.array(x, dtype=float)  # null -> nan
