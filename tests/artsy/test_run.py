"""End to end: `python -m artsy.run` on the tiny synthetic config: gates, resume (bad input:
test_bad_inputs.py)."""

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from artsy import checkpoint
from artsy.config import load_config
from artsy.gates import GATES
from artsy.metrics import without_timings
from artsy.run import main
from artsy.rundir import RunDir
from artsy.runner import resolve_path
from synsim import io

torch.set_num_threads(1)
REPO = Path(__file__).resolve().parents[2]
VARIANTS = {**{gate: [] for gate in GATES},  # every registered gate, then variants of two
            "gaussian": ["synapse.gate=mlp", "synapse.negatives=gaussian"],
            "exemplarfree": ["synapse.gate=ngai", "synapse.negatives=gaussian",
                             "synapse.retrain=new_only"],
            "own": ["synapse.gate=ngai", "synapse.ngai.depolarisation=own_prototype"]}


def run(out, name, *args):
    gate = [f"synapse.gate={name}"] if name in GATES else []
    code = main(["tiny-synthetic", f"run.out_dir={out}", f"run.name={name}", *gate,
                 *VARIANTS.get(name, []), *args])
    assert code == 0
    (run_dir,) = Path(out).glob(f"{name}-*")
    return run_dir


def comparable(run_dir):
    d = without_timings(json.loads((run_dir / "metrics.json").read_text()))
    d.pop("name")
    return d


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    return {name: run(out, name) for name in VARIANTS}


@pytest.mark.parametrize("name", list(VARIANTS))
def test_outputs_of_every_gate(runs, name):
    run_dir = runs[name]
    cfg = load_config(run_dir / "config.yaml")
    assert cfg.run.name == name and Path(cfg.data.root).is_absolute()
    m = json.loads((run_dir / "metrics.json").read_text())
    assert m["tasks_done"] == m["n_tasks"] == 3 and len(m["curve"]) == 3
    assert m["avg"] == pytest.approx(np.mean(m["curve"])) and m["last"] == m["curve"][-1]
    assert m["class_order"] and m["task_classes"] == [[0, 1], [2, 3], [4, 5]]
    assert np.array(m["gate_open_rate"], dtype=float).shape == (3, 3, 3)
    for row in m["tasks"]:
        assert 0 <= row["accuracy"] <= 100 and row["train_forward_passes"] > 0
    with open(run_dir / "metrics.csv") as f:
        assert len(list(csv.DictReader(f))) == 3
    ds = io.load(run_dir / "synapses.nc")
    assert ds.sizes["synapse"] == 3 and ds.sizes["after_task"] == 3
    assert sorted(set(ds.task.values)) == [0, 1, 2]
    assert ds.sizes["step"] == 3 * 2 * 24  # 48 presentations per task, all recorded
    for var in ("pre", "depolarisation", "mg_block", "calcium", "ampa", "functional",
                "gate_open_rate"):
        assert ds[var].attrs["units"] == "1", var
    assert ds.attrs["gate"] == m["gate"]
    assert [p.name for p in sorted((run_dir / "checkpoints").iterdir())] == [
        "task_00.pt", "task_01.pt", "task_02.pt"]
    if name == "oracle":
        assert all(r["gate_accuracy"] == 100 and r["mean_open_gates"] == 1 for r in m["tasks"])
        assert all(r["eval_subnetwork_passes"] == r["n_test"] for r in m["tasks"])
    if name == "none":
        assert all(r["eval_forward_passes"] == r["ease_eval_forward_passes"] for r in m["tasks"])
    if name == "own":  # the gate reads every sub-network's feature: no pass is skipped
        assert all(r["eval_subnetwork_passes"] == r["ease_eval_forward_passes"]
                   for r in m["tasks"])
    if name in ("gaussian", "exemplarfree"):  # exemplar-free: no h0 features in the checkpoints
        increments, _ = checkpoint.load(run_dir, 2)
        assert all(i["gates"]["h0"] is None for i in increments)


def test_ngai_consolidation_unsilences_each_task_synapse(runs):
    ds = io.load(runs["ngai"] / "synapses.nc")
    theta_p = ds.attrs["rule_theta_p"]
    for t in range(3):
        at = ds.sel(step=ds.task == t)
        assert bool(at.functional.values[-1, t])  # the task's synapse is functional at its end
        assert not at.functional.values[:, t + 1:].any()  # later synapses are still silent
        assert np.isnan(at.pre.values[:, t + 1:]).all()
        others = [j for j in range(t + 1) if j != t]
        if others:  # earlier synapses get no unsilencing drive from this task's inputs
            assert (at.calcium.values[:, others] > theta_p).mean() < 0.5
    assert np.isfinite(ds.K_eff.values[2]).all()
    np.testing.assert_allclose(ds.calibrated_open_rate.values[2], 0.9, atol=1 / 48 + 1e-6)


def test_resume_after_stop_reproduces_the_uninterrupted_run(runs, tmp_path):
    part = run(tmp_path, "ngai", "--stop-after", "2")
    assert checkpoint.last_task(part) == 1
    assert json.loads((part / "metrics.json").read_text())["tasks_done"] == 2
    assert main(["--resume", str(part)]) == 0
    assert comparable(part) == comparable(runs["ngai"])
    a, b = io.load(part / "synapses.nc"), io.load(runs["ngai"] / "synapses.nc")
    for name in a.data_vars:
        np.testing.assert_array_equal(a[name].values, b[name].values)


def test_resume_after_losing_the_last_checkpoint(runs, tmp_path):
    """A crash after the log and metrics of task 2 but before its checkpoint."""
    copy = Path(shutil.copytree(runs["mlp"], tmp_path / "mlp-copy"))
    RunDir(copy).checkpoint(2).unlink()
    assert main(["--resume", str(copy)]) == 0
    assert comparable(copy) == comparable(runs["mlp"])
    assert io.load(copy / "synapses.nc").sizes["after_task"] == 3


def test_same_seed_same_result(runs, tmp_path):
    again = run(tmp_path, "oracle")
    assert comparable(again) == comparable(runs["oracle"])


def test_dry_run_prints_the_ease_order_and_split_without_data():
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-m", "artsy.run", "cifar100", "--dry-run"], cwd=REPO,
                         env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "class order (seed, seed 1993): [68, 56, 78, 8, 23," in out.stdout
    assert "task split: 10 tasks" in out.stdout
    assert "task 9: labels 90..99" in out.stdout
    assert "total:" in out.stdout


def test_relative_roots_resolve_against_the_source_checkout(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert resolve_path("benchmarks") == str(REPO / "benchmarks")
    (tmp_path / "benchmarks").mkdir()
    assert resolve_path("benchmarks") == str(tmp_path / "benchmarks")  # the current directory wins
    assert resolve_path("/abs/path") == "/abs/path" and resolve_path(None) is None
