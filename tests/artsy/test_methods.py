"""artsy.methods: the method registry, SimpleCIL and RanPAC on the frozen backbone, and their
runs under the same runner (resume, determinism, dry run, zero gate columns)."""

import json
import math
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from artsy.methods import METHODS, make_learner
from artsy.methods.ranpac import RIDGES, ridge_by_validation
from artsy.config import Config, apply_overrides, load_config
from artsy.data import task_data_from_config
from artsy.errors import ConfigError, DataError
from artsy.metrics import EvalResult, Metrics, without_timings
from artsy.plan import dry_run
from artsy.run import main
from artsy.runner import resume_run, start_run

torch.set_num_threads(1)
SMALL_RANPAC = ["ranpac.m=64"]  # a 64 x 64 Gram matrix: tests stay small and fast


def tiny_cfg(method, *overrides, out=None):
    extra = [f"run.out_dir={out}"] if out is not None else []
    return load_config("tiny-synthetic", [f"method={method}", *SMALL_RANPAC, *overrides, *extra])


def learner_for(method, *overrides):
    cfg = tiny_cfg(method, *overrides)
    return make_learner(cfg, task_data_from_config(cfg.data), progress=False)


def comparable(metrics):
    d = without_timings(metrics.to_dict())
    d.pop("name")
    return d


def train_features(learner, task):
    """h0 and labels of a task's training images, computed here independently."""
    data = learner.data
    dataset = data.train_set(task, transform=data.test_transform)
    x = torch.stack([dataset[i][0] for i in range(len(dataset))])
    y = torch.tensor([int(dataset[i][1]) for i in range(len(dataset))])
    with torch.inference_mode():
        return learner._h0(x).cpu(), y


# --- the registry and the config ---

def test_the_registry_lists_the_methods_and_refuses_others_in_one_line():
    assert list(METHODS) == ["artsy", "simplecil", "ranpac"]  # the default first
    assert Config().method == "artsy" and METHODS["artsy"].adapters
    assert not METHODS["simplecil"].adapters and not METHODS["ranpac"].adapters
    with pytest.raises(ConfigError) as e:
        apply_overrides(Config(), ["method=ease"])
    assert str(e.value) == ("config key 'method': expected one of 'artsy', 'simplecil', "
                            "'ranpac', got 'ease'")


@pytest.mark.parametrize("override, match", [
    ("ranpac.val_share=0", r"'ranpac.val_share': expected a value in \(0, 1\)"),
    ("ranpac.val_share=1", r"'ranpac.val_share': expected a value in \(0, 1\)"),
    ("ranpac.ridge=0", r"'ranpac.ridge': expected a value > 0, or null"),
    ("ranpac.m=0", r"'ranpac.m': expected a value >= 1"),
])
def test_ranpac_config_errors_are_one_line(override, match):
    with pytest.raises(ConfigError, match=match) as e:
        apply_overrides(Config(), ["method=ranpac", override])
    assert "\n" not in str(e.value)


# --- SimpleCIL ---

def test_simplecil_is_the_cosine_classifier_of_the_frozen_class_means():
    learner = learner_for("simplecil")
    for t in range(2):
        learner.learn_task(t)
    means = []
    for t in range(2):
        h0, y = train_features(learner, t)
        means += [h0[y == c].mean(0) for c in learner.data.task_classes(t)]
    torch.testing.assert_close(learner.prototypes, torch.stack(means))  # raw, unnormalised means
    h = torch.randn(5, learner.dim)
    torch.testing.assert_close(learner._logits(h),
                               F.normalize(h, dim=1) @ F.normalize(torch.stack(means), dim=1).T)


def test_the_baselines_read_the_artsy_learners_frozen_feature():
    """Same config, same E_0: the baseline's h0 is the artsy learner's net(x) (random init too)."""
    from artsy.learner import Learner

    cfg = tiny_cfg("simplecil")
    data = task_data_from_config(cfg.data)
    baseline, gated = make_learner(cfg, data), Learner(cfg, data, progress=False)
    x = torch.stack([data.test_set(0)[i][0] for i in range(4)])
    with torch.inference_mode():
        torch.testing.assert_close(baseline._h0(x), gated.net(x).float())
    assert baseline.backbone_fingerprint() == gated.backbone_fingerprint()


# --- RanPAC ---

@pytest.mark.parametrize("n_fit, m", [(12, 40), (40, 12)])  # kernel form, then Gram form
def test_ridge_by_validation_is_ranpacs_choice_by_direct_solves(n_fit, m):
    g = torch.Generator().manual_seed(0)
    phi = torch.relu(torch.randn(n_fit + 8, m, generator=g, dtype=torch.float64))
    y = F.one_hot(torch.randint(0, 3, (n_fit + 8,), generator=g), 3).double()
    fit, val = slice(0, n_fit), slice(n_fit, None)
    losses = []
    for r in RIDGES:  # RanPAC's own computation, one solve per lambda
        w = torch.linalg.solve(phi[fit].T @ phi[fit] + r * torch.eye(m, dtype=torch.float64),
                               phi[fit].T @ y[fit])
        losses.append(float(((phi[val] @ w - y[val]) ** 2).mean()))
    chosen = ridge_by_validation(phi[fit], y[fit], phi[val], y[val])
    assert losses[RIDGES.index(chosen)] == pytest.approx(min(losses), rel=1e-6)


def test_ranpac_statistics_are_exact_and_the_readout_is_the_ridge_solution():
    learner = learner_for("ranpac")
    phis, ys = [], []
    for t in range(2):
        learner.learn_task(t)
        h0, y = train_features(learner, t)
        phis.append(torch.relu(h0.double() @ learner.projection))
        ys.append(y)
    phi, y = torch.cat(phis), torch.cat(ys)
    torch.testing.assert_close(learner.gram, phi.T @ phi)
    torch.testing.assert_close(learner.targets, phi.T @ F.one_hot(y, 4).double())
    assert len(learner.ridges) == 2 and all(r in RIDGES for r in learner.ridges)
    lam = max(learner.ridges[-1], 1e-12 * float(learner.gram.trace()))  # ranpac.ridge_floor
    w = torch.linalg.solve(phi.T @ phi + lam * torch.eye(64, dtype=torch.float64),
                           phi.T @ F.one_hot(y, 4).double())
    torch.testing.assert_close(learner.readout(), w)
    # order-invariant: the sums over a shuffled order are the same statistics
    perm = torch.randperm(len(phi), generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close((phi[perm].T @ phi[perm]), learner.gram)


def test_ranpac_fixed_ridge_and_too_few_inputs_to_hold_out():
    fixed = learner_for("ranpac", "ranpac.ridge=1000")
    fixed.learn_task(0)
    assert fixed.ridges == [1000.0]
    tiny = learner_for("ranpac", "data.synthetic.train_per_class=1", "ranpac.val_share=0.6")
    with pytest.raises(DataError, match="too few to hold out ranpac.val_share=0.6"):
        tiny.learn_task(0)


def test_ranpac_ridge_floor_keeps_a_rank_deficient_solve_meaningful():
    """More features than inputs (M = 2048): G is singular; RanPAC's smallest lambda (1e-8)
    is raised to ridge_floor * trace(G), where the solve agrees with the exact spectral one;
    ridge_floor=0 keeps lambda as chosen."""
    floored = learner_for("ranpac", "ranpac.m=2048", "ranpac.ridge=1e-8")
    floored.learn_task(0)
    g, c = floored.gram, floored.targets
    lam = 1e-12 * float(g.trace())
    assert lam > 1e-8
    s, u = torch.linalg.eigh(g)
    exact = (u / (s.clamp_min(0) + lam)) @ (u.T @ c)
    h0, _ = train_features(floored, 0)
    phi = torch.relu(h0.double() @ floored.projection)
    logits, expected = phi @ floored.readout(), phi @ exact  # what the read-out is for
    torch.testing.assert_close(logits, expected, rtol=1e-4, atol=1e-4 * float(expected.abs().max()))
    raw = learner_for("ranpac", "ranpac.m=2048", "ranpac.ridge=1e-8", "ranpac.ridge_floor=0")
    raw.learn_task(0)
    torch.testing.assert_close(raw.readout(), torch.linalg.solve(
        raw.gram + 1e-8 * torch.eye(2048, dtype=torch.float64), raw.targets))


def test_a_checkpoint_of_another_method_is_refused():
    simple = learner_for("simplecil")
    simple.learn_task(0)
    with pytest.raises(ValueError, match="holds a 'simplecil' run, this run's method is 'ranpac'"):
        learner_for("ranpac").load([simple.task_state(0)], simple.state_dict())


# --- zero gate columns in the metrics ---

def test_metrics_of_a_method_without_gates():
    labels = np.array([0, 1, 2, 3])
    ev = EvalResult(labels=labels, preds=np.array([0, 1, 2, 2]), oracle_preds=labels,
                    input_task=labels // 2, pred_task=np.array([0, 0, 1, 1]),
                    open=np.zeros((4, 0), bool), score=np.zeros((4, 0), np.float32),
                    eval_time_s=1.0, ptm_passes=4, subnet_passes=0)
    m = Metrics(2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "mean of empty slice" or invalid-value warnings
        m.add(0, _first_task(), 0.5, 2)
        row = m.add(1, ev, 0.5, 4)
        summary = m.summary()
    assert row["accuracy"] == 75.0 and math.isnan(row["gate_accuracy"])
    assert row["mean_open_gates"] == 0.0 and row["eval_subnetwork_passes"] == 0
    assert np.isnan(m.gate_open_rate).all() and np.isnan(m.gate_score).all()
    assert math.isnan(summary["mean_gate_accuracy"]) and summary["avg"] == 87.5
    d = json.loads(json.dumps(m.to_dict()))  # strict JSON: NaN became null
    assert d["tasks"][1]["gate_accuracy"] is None and d["mean_gate_accuracy"] is None


def _first_task():
    labels = np.array([0, 1])
    return EvalResult(labels=labels, preds=labels, oracle_preds=labels, input_task=labels * 0,
                      pred_task=labels * 0, open=np.zeros((2, 0), bool),
                      score=np.zeros((2, 0), np.float32), eval_time_s=1.0, ptm_passes=2,
                      subnet_passes=0)


# --- runs under the runner ---

@pytest.mark.parametrize("method", ["simplecil", "ranpac"])
def test_a_baseline_run_resumes_identically_and_repeats(tmp_path, method):
    part = start_run(tiny_cfg(method, out=tmp_path / "a"), stop_after=1, progress=False)
    assert not part.done and part.run_dir.checkpoint(0).is_file()
    resumed = resume_run(part.run_dir, progress=False)
    whole = start_run(tiny_cfg(method, out=tmp_path / "b"), progress=False)
    again = start_run(tiny_cfg(method, out=tmp_path / "c"), progress=False)
    assert resumed.done and comparable(resumed.metrics) == comparable(whole.metrics)
    assert comparable(again.metrics) == comparable(whole.metrics)
    meta = json.loads(whole.run_dir.metrics_json.read_text())
    assert meta["method"] == method and "gate" not in meta
    assert not whole.run_dir.synapse_log.exists()  # no synapses, no synapse log
    rows = whole.metrics.rows
    assert all(r["eval_subnetwork_passes"] == 0 and r["train_forward_passes"] == 48
               and r["eval_forward_passes"] == r["n_test"] for r in rows)
    assert all(math.isnan(r["gate_accuracy"]) for r in rows)


def test_the_cli_runs_and_resumes_simplecil(tmp_path, capsys):
    args = ["tiny-synthetic", "method=simplecil", f"run.out_dir={tmp_path}"]
    assert main([*args, "--stop-after", "1"]) == 0
    (run_dir,) = tmp_path.glob("tiny-synthetic-*")
    assert main(["--resume", str(run_dir)]) == 0
    assert "Avg" in capsys.readouterr().out
    assert json.loads((run_dir / "metrics.json").read_text())["tasks_done"] == 3


def test_an_artsy_run_describes_its_gates_and_keeps_its_log(tmp_path):
    result = start_run(tiny_cfg("artsy", "synapse.gate=none", out=tmp_path), stop_after=1,
                       progress=False)
    meta = json.loads(result.run_dir.metrics_json.read_text())
    assert (meta["method"], meta["gate"], meta["negatives"], meta["retrain"]) == (
        "artsy", "none", "cache", "all")
    assert result.run_dir.synapse_log.is_file()


@pytest.mark.parametrize("method", ["simplecil", "ranpac"])
def test_the_dry_run_of_a_baseline_trains_nothing(method):
    text = dry_run(tiny_cfg(method))
    assert f"method '{method}': no adapters, no gates" in text
    assert "total: 0 training fwd+bwd passes, 144 feature passes, 144 evaluation passes" in text
