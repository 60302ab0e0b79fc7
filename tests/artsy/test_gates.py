"""artsy.gates: the four gates, the fallback, feature memory, calibration and consolidation."""

import dataclasses

import numpy as np
import pytest
import torch

from artsy.config import Config, apply_overrides
from artsy.errors import ConfigError
from artsy.gates import GateInputs, make_gates
from artsy.gates.base import apply_fallback
from artsy.gates.depolarisation import prototype_share
from artsy.gates.memory import FeatureMemory
from artsy.gates.mlp import SynapseMLP, train_synapse
from artsy.gates.ngai import NgaiGate
from artsy.prototypes import PrototypeBank, class_means, class_task_index

DIM, PER_CLASS = 8, 60
TASKS = [[0, 1], [2, 3], [4, 5]]


def synapse_cfg(*overrides):
    return apply_overrides(Config(), [f"synapse.{o}" for o in overrides]).synapse


def blobs(seed=0):
    """h0 features: one well separated Gaussian blob per class."""
    g = torch.Generator().manual_seed(seed)
    centres = 4 * torch.randn(6, DIM, generator=g)
    labels = torch.arange(6).repeat_interleave(PER_CLASS)
    return centres[labels] + torch.randn(len(labels), DIM, generator=g), labels


def fitted(gate, n_tasks=3, upto=2, *overrides):
    """Gates of `gate` fitted task by task on the blobs, with PTM prototypes in a bank."""
    h0, labels = blobs()
    gates = make_gates(synapse_cfg(f"gate={gate}", "hidden=32", "epochs=20", "batch_size=64",
                                   *overrides), DIM, n_tasks)
    bank = PrototypeBank(DIM)
    for t in range(upto + 1):
        rows = (labels >= TASKS[t][0]) & (labels <= TASKS[t][-1])
        bank.set_ptm(TASKS[t], class_means(h0[rows], labels[rows], TASKS[t]))
        bank.set_real(0, TASKS[t], class_means(h0[rows], labels[rows], TASKS[t]))
        gates.add_task(t, h0[rows], labels[rows])
        gates.fit(t, bank, class_task_index(TASKS[: t + 1]), seed=t)
    return gates, bank, h0, labels


def test_synapse_mlp_is_two_layers_and_learns_a_balanced_split():
    torch.manual_seed(0)
    mlp = SynapseMLP(DIM, 16)
    assert [type(m).__name__ for m in mlp.net] == ["Linear", "ReLU", "Linear"]
    assert mlp.net[0].out_features == 16 and mlp.net[2].out_features == 1
    pos, neg = torch.randn(20, DIM) + 3, torch.randn(200, DIM) - 3  # 1:10 imbalance
    train_synapse(mlp, pos, neg, synapse_cfg("epochs=30", "batch_size=32"), torch.Generator())
    with torch.no_grad():
        assert (torch.sigmoid(mlp(pos)) >= 0.5).float().mean() == 1.0
        assert (torch.sigmoid(mlp(neg)) < 0.5).float().mean() == 1.0


def test_fallback_opens_the_best_gate_only_where_none_is_open():
    raw = torch.tensor([[False, False, False], [True, False, True], [False, True, False]])
    score = torch.tensor([[0.1, 0.4, 0.2], [0.9, 0.1, 0.8], [0.9, 0.6, 0.1]])
    out = apply_fallback(raw, score, "argmax")
    assert out.tolist() == [[False, True, False], [True, False, True], [False, True, False]]
    assert torch.equal(apply_fallback(raw, score, "none"), raw)


def test_prototype_share_is_a_distribution_over_tasks():
    protos = torch.eye(4)
    feats = torch.tensor([[1.0, 0, 0, 0], [0, 0, 0.2, 1.0]])
    share = prototype_share(feats, protos, torch.tensor([0, 0, 1, 1]), 2, temperature=0.1)
    assert torch.allclose(share.sum(1), torch.ones(2))
    assert share[0, 0] > 0.9 and share[1, 1] > 0.9


def test_gaussian_memory_keeps_class_statistics_not_features():
    h0, labels = blobs()
    mem = FeatureMemory("gaussian")
    mem.add(0, h0[:120], labels[:120])
    mem.add(1, h0[120:240], labels[120:240])
    assert mem.h0 == {}  # exemplar-free: no features stored
    assert mem.features(1, torch.Generator()) is mem.current[1]  # the current task: real features
    sample = mem.features(0, torch.Generator().manual_seed(0))
    assert sample.shape == (120, DIM)
    torch.testing.assert_close(sample[:60].mean(0), h0[:60].mean(0), atol=0.5, rtol=0)
    assert mem.task_state(0)["h0"] is None
    assert mem.task_state(0)["stats"]["count"].tolist() == [60, 60]
    cache = FeatureMemory("cache")
    cache.add(0, h0[:120], labels[:120])
    assert torch.equal(cache.features(0, torch.Generator()), h0[:120])


def test_none_and_oracle_gates():
    none = make_gates(synapse_cfg("gate=none"), DIM, 3)
    d = none.decide(2, GateInputs(batch=4))
    assert d.open.shape == (4, 2) and bool(d.open.all())
    oracle = make_gates(synapse_cfg("gate=oracle"), DIM, 3)
    d = oracle.decide(3, GateInputs(task_ids=torch.tensor([2, 0, 1])))
    assert d.open.tolist() == [[False, False, True], [True, False, False], [False, True, False]]


@pytest.mark.parametrize("retrain, expected", [("all", [[], [0, 1], [0, 1, 2]]),
                                               ("new_only", [[], [0, 1], [2]])])
def test_which_synapses_train_at_each_task(retrain, expected):
    gates = make_gates(synapse_cfg("gate=mlp", f"retrain={retrain}"), DIM, 3)
    assert [gates.to_train(t) for t in range(3)] == expected


def test_first_synapse_is_open_until_task_two():
    gates, bank, h0, labels = fitted("mlp", upto=0)
    assert gates.mlps == {}
    assert bool(gates.decide(1, GateInputs(h0=h0)).raw.all())


@pytest.mark.parametrize("negatives", ["cache", "gaussian"])
def test_mlp_gates_route_separable_tasks(negatives):
    gates, bank, h0, labels = fitted("mlp", 3, 2, f"negatives={negatives}")
    d = gates.decide(3, GateInputs(h0=h0))
    task = labels // 2
    assert d.open[torch.arange(len(task)), task].float().mean() > 0.95  # the true gate is open
    assert d.open.sum(1).float().mean() < 1.2  # and rarely another one
    assert torch.equal(d.raw, d.score >= 0.5)


def test_ngai_calibration_opens_the_target_share_of_own_inputs():
    gates, bank, h0, labels = fitted("ngai", 3, 2, "ngai.target_open_rate=0.8")
    assert isinstance(gates, NgaiGate)
    last = [c for c in gates.calibration if c["after_task"] == 2]
    assert [c["synapse"] for c in last] == [0, 1, 2]
    for c in last:
        assert c["target_open_rate"] == 0.8
        assert abs(c["open_rate"] - 0.8) <= 2 / (2 * PER_CLASS)  # quantile granularity
        assert c["K_eff"] == pytest.approx(gates.K * gates.gain[c["synapse"]])


def test_ngai_gate_is_the_rule_from_rest():
    gates, bank, h0, labels = fitted("ngai")
    inputs = GateInputs(h0=h0, bank=bank, class_task=class_task_index(TASKS))
    d = gates.decide(3, inputs)
    pre = gates.pre(h0, 3).double()
    block = gates.rule.mg_block(gates.depolarisation(3, inputs).double())
    drive = gates.K * torch.as_tensor(gates.gain) * pre * block
    assert torch.equal(d.raw, drive > gates.rule.params.synapse.theta_p)  # one step from rest
    task = labels // 2
    assert d.open[torch.arange(len(task)), task].float().mean() > 0.85


def test_ngai_consolidation_unsilences_the_current_synapse_only():
    gates, bank, h0, labels = fitted("ngai", 3, 1)
    rows = (labels >= 2) & (labels <= 3)
    out = gates.consolidate(1, GateInputs(h0=h0[rows], bank=bank,
                                          class_task=class_task_index(TASKS[:2])), seed=0)
    assert out["functional"][-1, 1]  # task 1's synapse is functional at the end
    assert out["ampa"][-1, 1] > 0.5
    assert not out["functional"][:, 2].any() and (out["ampa"][:, 2] == 0).all()  # task 2: at rest
    assert np.isnan(out["pre"][:, 2]).all()
    theta_p = gates.rule.params.synapse.theta_p
    assert (out["calcium"][:, 0] > theta_p).mean() < 0.5  # no unsilencing drive on synapse 0
    # the state carries over: a second pass starts where the first ended
    np.testing.assert_allclose(gates.ampa[:2], out["ampa"][-1, :2])


def ngai_cfg(negatives="cache", **ngai):
    """A SynapseConfig built without the config validation, which makes the same checks."""
    cfg = Config().synapse
    return dataclasses.replace(cfg, negatives=negatives, ngai=dataclasses.replace(cfg.ngai, **ngai))


@pytest.mark.parametrize("overrides, fields, match", [
    (["ngai.target_open_rate=1.0"], {"target_open_rate": 1.0}, "target_open_rate"),
    (["ngai.depolarisation=own_prototype", "negatives=gaussian"],
     {"depolarisation": "own_prototype", "negatives": "gaussian"}, "negatives='cache'"),
    (["ngai.delta_ms=1.0"], {"delta_ms": 1.0}, "too short"),
])
def test_ngai_config_errors_are_one_line(overrides, fields, match):
    with pytest.raises(ConfigError, match=match) as e:
        make_gates(ngai_cfg(**fields), DIM, 3)
    assert "\n" not in str(e.value)
    with pytest.raises(ConfigError, match=match):  # config validation calls the same check
        synapse_cfg(*overrides)


def test_the_deleted_input_switch_is_an_unknown_key():
    """synapse.input had one working value (h0): the key is gone."""
    with pytest.raises(ConfigError, match="unknown config key 'synapse.input'"):
        synapse_cfg("input=own")


def test_gate_state_round_trips():
    gates, bank, h0, labels = fitted("ngai")
    gates.ampa[:] = [0.5, 0.2, 0.1]
    fresh = make_gates(gates.cfg, DIM, 3)
    fresh.load_state_dict(gates.state_dict())
    for t in range(3):
        fresh.load_task_state(t, gates.task_state(t))
    inputs = GateInputs(h0=h0, bank=bank, class_task=class_task_index(TASKS))
    a, b = gates.decide(3, inputs), fresh.decide(3, inputs)
    assert torch.equal(a.open, b.open) and torch.equal(a.score, b.score)
    np.testing.assert_array_equal(fresh.ampa, gates.ampa)
    with pytest.raises(ValueError, match="'ngai' gates"):
        make_gates(synapse_cfg("gate=mlp"), DIM, 3).load_state_dict(gates.state_dict())
