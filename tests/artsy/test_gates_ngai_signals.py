"""The ngai gate's signal switches: the joint closed-form release scorers (`synapse.ngai.pre`),
the sub-network depolarisation signals, and what every variant must keep: the receptor rule as
the decision, calibration, the synapse log, exemplar-free mode, determinism and resume."""

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from artsy import checkpoint
from artsy.config import Config, apply_overrides, load_config
from artsy.errors import ConfigError
from artsy.gates import GateInputs, make_gates
from artsy.gates.depolarisation import own_entropy, own_signal, own_similarity
from artsy.gates.scorers import JointScorer
from artsy.prototypes import PrototypeBank, class_means, class_task_index
from artsy.run import main
from synsim import io

from .test_gates import blobs, synapse_cfg
from .test_run import comparable, run

torch.set_num_threads(1)
DIM, PER_CLASS = 8, 60
TASKS = [[0, 1], [2, 3], [4, 5]]
CLASS_TASK = class_task_index(TASKS)


def fitted(*overrides, upto=2, seed=0):
    """ngai gates fitted task by task on the blobs (E_t(x) = h0 here) and the bank they read."""
    h0, labels = blobs(seed)
    gates = make_gates(synapse_cfg("gate=ngai", "hidden=32", "epochs=20", "batch_size=64",
                                   *overrides), DIM, 3)
    bank = PrototypeBank(DIM)
    for t in range(upto + 1):
        rows = (labels >= TASKS[t][0]) & (labels <= TASKS[t][-1])
        means = class_means(h0[rows], labels[rows], TASKS[t])
        bank.set_ptm(TASKS[t], means)
        for i in range(t + 1):
            bank.set_real(i, TASKS[t], means)
        gates.add_task(t, h0[rows], labels[rows], own=h0[rows])
        gates.fit(t, bank, class_task_index(TASKS[: t + 1]), seed=t)
    return gates, bank, h0, labels


def inputs_for(h0, bank, n_seen=3):
    return GateInputs(h0=h0, own=[h0] * n_seen, bank=bank,
                      class_task=class_task_index(TASKS[:n_seen]))


# --- the joint scorers ------------------------------------------------------------------------


@pytest.mark.parametrize("kind, features", [("lda", 0), ("ridge", 0), ("ridge", 16)])
def test_scorer_updated_task_by_task_equals_the_fit_on_everything(kind, features):
    """The statistics are sums: adding tasks one at a time is exact, no old input needed."""
    h0, labels = blobs()
    inc = JointScorer(kind, DIM, 0.5, 1.0, features, seed=3)
    for t, classes in enumerate(TASKS):
        rows = (labels >= classes[0]) & (labels <= classes[-1])
        inc.add(t, h0[rows], labels[rows])
    phi = inc.features(h0)
    torch.testing.assert_close(inc.gram, phi.T @ phi)
    torch.testing.assert_close(inc.sums, F.one_hot(labels).double().T @ phi)
    assert inc.counts.tolist() == [PER_CLASS] * 6 and inc.class_task.tolist() == [0, 0, 1, 1, 2, 2]
    p = inc.task_probability(h0, 3)
    torch.testing.assert_close(p.sum(1), torch.ones(len(h0), dtype=p.dtype))
    assert (p.argmax(1) == labels // 2).double().mean() > 0.95  # separable blobs: right task


def test_lda_scores_are_the_shrunk_shared_covariance_discriminant():
    h0, labels = blobs()
    scorer = JointScorer("lda", DIM, 0.3, 1.0)
    scorer.add(0, h0, labels)
    x = h0.double()
    mu = torch.stack([x[labels == c].mean(0) for c in range(6)])
    within = sum((x[labels == c] - mu[c]).T @ (x[labels == c] - mu[c]) for c in range(6))
    within = within / (len(x) - 6)
    cov = 0.7 * within + 0.3 * within.diagonal().mean() * torch.eye(DIM, dtype=torch.float64)
    inv = torch.linalg.inv(cov)
    expected = x @ inv @ mu.T - 0.5 * ((mu @ inv) * mu).sum(1)
    torch.testing.assert_close(scorer.class_scores(h0), expected)


def test_ridge_lambda_is_relative_to_the_gram_diagonal():
    """Scaling the features scales nothing that matters: the shrinkage is scale-free."""
    h0, labels = blobs()
    a, b = JointScorer("ridge", DIM, 1.0, 0.1), JointScorer("ridge", DIM, 1.0, 0.1)
    a.add(0, h0, labels)
    b.add(0, 100 * h0, labels)
    torch.testing.assert_close(a.class_scores(h0), b.class_scores(100 * h0))


def test_random_projection_is_regenerated_from_the_seed():
    one, two = JointScorer("ridge", DIM, 1, 1, 32, seed=5), JointScorer("ridge", DIM, 1, 1, 32, 5)
    assert torch.equal(one.projection, two.projection)
    assert "projection" not in one.state_dict()  # 32 x d floats that the seed already gives


# --- the gate with each release signal ---------------------------------------------------------


@pytest.mark.parametrize("pre", ["lda", "ridge"])
@pytest.mark.parametrize("negatives", ["cache", "gaussian"])
def test_joint_release_routes_separable_tasks_through_the_rule(pre, negatives):
    gates, bank, h0, labels = fitted(f"ngai.pre={pre}", f"negatives={negatives}")
    assert gates.mlps == {}  # no MLP synapse is trained
    inputs = inputs_for(h0, bank)
    d = gates.decide(3, inputs)
    pre_t = gates.pre(h0, 3).double()
    block = gates.rule.mg_block(gates.depolarisation(3, inputs).double())
    drive = gates.K * torch.as_tensor(gates.gain) * pre_t * block
    assert torch.equal(d.raw, drive > gates.rule.params.synapse.theta_p)  # the rule from rest
    task = labels // 2
    assert d.open[torch.arange(len(task)), task].float().mean() > 0.9
    for c in (c for c in gates.calibration if c["after_task"] == 2):  # calibrated per synapse
        assert abs(c["open_rate"] - 0.9) <= 1 / PER_CLASS


def test_joint_release_is_exemplar_free_and_exact_in_gaussian_mode():
    """The scorer reads only each task's real features, once: cache and gaussian agree."""
    cached, *_ = fitted("ngai.pre=ridge", "negatives=cache")
    free, *_ = fitted("ngai.pre=ridge", "negatives=gaussian")
    for k in ("gram", "sums", "counts", "weight"):
        assert torch.equal(cached.scorer.state_dict()[k], free.scorer.state_dict()[k])
    assert all(free.task_state(t)["h0"] is None for t in range(3))


def test_first_task_releases_fully():
    gates, bank, h0, labels = fitted("ngai.pre=ridge", upto=0)
    assert torch.equal(gates.pre(h0, 1), torch.ones(len(h0), 1))


@pytest.mark.parametrize("overrides", [
    ["ngai.pre=ridge"], ["ngai.pre=lda", "ngai.random_features=16"],
    ["ngai.pre=mlp", "ngai.depolarisation=own_entropy"],
    ["ngai.pre=ridge", "ngai.depolarisation=own_similarity"]])
def test_same_seed_same_gates_and_state_round_trips(overrides):
    gates, bank, h0, labels = fitted(*overrides)
    again, *_ = fitted(*overrides)
    inputs = inputs_for(h0, bank)
    a, b = gates.decide(3, inputs), again.decide(3, inputs)
    assert torch.equal(a.open, b.open) and torch.equal(a.score, b.score)
    fresh = make_gates(gates.cfg, DIM, 3)
    for t in range(3):
        fresh.load_task_state(t, gates.task_state(t))
    fresh.load_state_dict(gates.state_dict())
    c = fresh.decide(3, inputs)
    assert torch.equal(a.open, c.open) and torch.equal(a.score, c.score)
    np.testing.assert_array_equal(fresh.gain, gates.gain)


def test_resumed_scorer_continues_exactly():
    """Stop after task 1, restore into a fresh gate, learn task 2: the same as not stopping."""
    whole, bank, h0, labels = fitted("ngai.pre=ridge")
    part, *_ = fitted("ngai.pre=ridge", upto=1)
    fresh = make_gates(part.cfg, DIM, 3)
    for t in range(2):
        fresh.load_task_state(t, part.task_state(t))
    fresh.load_state_dict(part.state_dict())
    rows = labels >= 4
    fresh.add_task(2, h0[rows], labels[rows], own=h0[rows])
    fresh.fit(2, bank, CLASS_TASK, seed=2)
    assert torch.equal(fresh.scorer.weight, whole.scorer.weight)
    np.testing.assert_array_equal(fresh.gain, whole.gain)
    with pytest.raises(ValueError, match="synapse.ngai.pre"):
        make_gates(synapse_cfg("ngai.pre=mlp"), DIM, 3).load_state_dict(whole.state_dict())


@pytest.mark.parametrize("overrides", [
    ["ngai.pre=ridge"], ["ngai.pre=lda", "ngai.depolarisation=own_entropy"],
    ["ngai.pre=mlp", "ngai.depolarisation=own_similarity"]])
def test_synapse_log_records_every_input_signal(overrides):
    gates, bank, h0, labels = fitted(*overrides, upto=1)
    rows = (labels >= 2) & (labels <= 3)
    out = gates.consolidate(1, GateInputs(h0=h0[rows], own=[h0[rows]] * 2, bank=bank,
                                          class_task=class_task_index(TASKS[:2]),
                                          batch=int(rows.sum())), seed=0)
    for name in ("pre", "depolarisation", "mg_block", "calcium", "ampa"):
        assert np.isfinite(out[name][:, :2]).all(), name
        assert np.isnan(out[name][:, 2]).all() or name in ("calcium", "ampa"), name
    assert out["functional"][-1, 1] and not out["functional"][:, 2].any()


# --- depolarisation from the sub-networks -----------------------------------------------------


def test_own_entropy_is_one_when_sure_and_zero_when_undecided():
    protos = torch.eye(2, 4)
    feats = torch.tensor([[1.0, 0, 0, 0], [1.0, 1.0, 0, 0]])
    u = own_entropy(feats, protos, temperature=0.05)
    assert u[0] > 0.99 and u[1] == pytest.approx(0.0, abs=1e-6)
    assert torch.equal(own_entropy(feats, protos[:1], 0.1), torch.ones(2))  # one class: sure


def test_own_similarity_is_the_best_cosine_to_own_prototypes():
    protos = torch.eye(2, 3)
    feats = torch.tensor([[1.0, 0, 0], [0, 0, 1.0], [-1.0, 0, 0]])
    assert own_similarity(feats, protos).tolist() == [1.0, 0.0, 0.0]


def test_own_signals_read_their_subspace_and_own_classes():
    bank = PrototypeBank(4)
    bank.set_real(0, [0, 1], torch.eye(4)[:2])
    bank.set_real(1, [0, 1], torch.eye(4)[2:])
    bank.set_real(1, [2, 3], torch.eye(4)[:2])
    class_task = torch.tensor([0, 0, 1, 1])
    x = torch.eye(4)[:1]  # looks like class 0 in subspace 0 and like class 2 in subspace 1
    assert own_signal("own_similarity", x, bank, class_task, 1, 2, 0.1).item() == 1.0
    assert own_signal("own_prototype", x, bank, class_task, 1, 2, 0.1).item() > 0.5


# --- config ------------------------------------------------------------------------------------


def ngai_cfg(negatives="cache", **ngai):
    cfg = Config().synapse
    return dataclasses.replace(cfg, negatives=negatives, ngai=dataclasses.replace(cfg.ngai, **ngai))


@pytest.mark.parametrize("overrides, fields, match", [
    (["ngai.pre=lda", "ngai.lda_shrinkage=0"], {"pre": "lda", "lda_shrinkage": 0.0},
     "lda_shrinkage"),
    (["ngai.pre=ridge", "ngai.ridge_lambda=0"], {"pre": "ridge", "ridge_lambda": 0.0},
     "ridge_lambda"),
    (["ngai.ridge_temperature=0"], {"ridge_temperature": 0.0}, "ridge_temperature"),
    (["ngai.pre=lda", "ngai.lda_temperature=0"], {"pre": "lda", "lda_temperature": 0.0},
     "lda_temperature"),
    (["ngai.depolarisation=own_entropy", "negatives=gaussian"],
     {"depolarisation": "own_entropy", "negatives": "gaussian"}, "negatives='cache'"),
])
def test_signal_config_errors_are_one_line(overrides, fields, match):
    with pytest.raises(ConfigError, match=match) as e:
        make_gates(ngai_cfg(**fields), DIM, 3)
    assert "\n" not in str(e.value)
    with pytest.raises(ConfigError, match=match):
        synapse_cfg(*overrides)
    with pytest.raises(ConfigError, match="synapse.ngai.pre"):
        synapse_cfg("ngai.pre=magic")
    with pytest.raises(ConfigError, match="lda_shrinkage"):  # a shrinkage is at most 1
        synapse_cfg("ngai.lda_shrinkage=1.5")


def test_the_default_signals_are_those_chosen_on_held_out_training_data():
    """benchmarks/gate_signals.py chose them in the demo setting; its result, kept in
    benchmarks/recorded/, names these overrides: the release and depolarisation are the config
    defaults, the frozen feature (backbone-specific) the demo config's."""
    ngai = Config().synapse.ngai
    assert (ngai.pre, ngai.ridge_lambda, ngai.ridge_temperature) == ("ridge", 2.0, 0.05)
    assert (ngai.depolarisation, ngai.prototype_temperature) == ("prototype_share", 0.1)
    path = Path(__file__).resolve().parents[2] / "benchmarks/recorded/gate_signals.json"
    chosen = json.loads(path.read_text())["chosen"]
    assert chosen["is_the_default"]
    demo = load_config("demo")
    assert apply_overrides(demo, [f"synapse.{o}" for o in chosen["overrides"]]) == demo


# --- end to end: the learner, the log, resume --------------------------------------------------


def test_exemplar_free_ridge_run_resumes_identically(tmp_path):
    args = ["synapse.ngai.pre=ridge", "synapse.negatives=gaussian"]
    whole = run(tmp_path / "a", "ridge", *args)
    part = run(tmp_path / "b", "ridge", *args, "--stop-after", "2")
    assert main(["--resume", str(part)]) == 0
    assert comparable(part) == comparable(whole)
    a, b = io.load(part / "synapses.nc"), io.load(whole / "synapses.nc")
    for name in a.data_vars:
        np.testing.assert_array_equal(a[name].values, b[name].values)
    assert a.attrs["pre_signal"] == "ridge"
    increments, state = checkpoint.load(whole, 2)
    assert all(i["gates"]["h0"] is None for i in increments)  # no features kept
    assert state["learner"]["gates"]["scorer"]["counts"].sum() == 3 * 2 * 24


def test_gates_read_the_pooled_last_stages_and_resume_identically(tmp_path):
    """synapse.ngai.frozen_stages widens h0 (by the tiny ViT's one block: 32 + 32) for the gate
    and its prototypes, not EASE's subspace prototypes; a resumed run ends as an uninterrupted
    one."""
    whole = run(tmp_path / "a", "stages", "synapse.ngai.frozen_stages=1")
    part = run(tmp_path / "b", "stages", "synapse.ngai.frozen_stages=1", "--stop-after", "1")
    assert main(["--resume", str(part)]) == 0
    assert comparable(part) == comparable(whole)
    _, state = checkpoint.load(whole, 2)
    learner = state["learner"]
    assert learner["gates"]["scorer"]["gram"].shape == (64, 64)
    assert learner["bank"]["ptm_prototypes"].shape == (6, 64)
    assert learner["bank"]["prototypes"].shape == (6, 3, 32)
    assert main(["tiny-synthetic", f"run.out_dir={tmp_path / 'c'}",
                 "synapse.ngai.frozen_stages=2"]) == 2  # one stage only: a one-line error


def test_the_beta_block_reads_the_same_wider_h0(tmp_path):
    """EASE's optional PTM block (prototypes.beta) pairs h0 with its class means: both wide."""
    run_dir = run(tmp_path, "beta", "synapse.ngai.frozen_stages=1", "prototypes.beta=0.5")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert len(metrics["tasks"]) == 3 and 0 < metrics["last"] <= 100


@pytest.mark.parametrize("gate", ["mlp", "none", "oracle", "entropy"])
def test_only_ngai_reads_the_pooled_stages(gate):
    """The key lives under synapse.ngai: the paper's mlp gate keeps h0 = E_0(x)."""
    from artsy.gates import gate_class

    cfg = synapse_cfg(f"gate={gate}", "ngai.frozen_stages=3")
    assert gate_class(gate).cost(cfg).h0_stages == 0
    assert gate_class("ngai").cost(synapse_cfg("ngai.frozen_stages=3")).h0_stages == 3
