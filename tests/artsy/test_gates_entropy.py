"""artsy.gates.entropy: TUNA's choice, the sub-network with the least-entropy prototype
prediction, one gate per input; stateless through consolidation and resume."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from artsy.config import load_config
from artsy.data import task_data_from_config
from artsy.gates import GATES, GateInputs, make_gates
from artsy.gates.entropy import SCALE, EntropyGate, own_task_classifier, prediction_entropy
from artsy.learner import Learner
from artsy.metrics import without_timings
from artsy.prototypes import PrototypeBank
from artsy.runner import resume_run, start_run
from synsim import io

torch.set_num_threads(1)


def bank_of(prototypes):
    """A bank holding (classes, subspaces, d) prototypes."""
    bank = PrototypeBank(prototypes.shape[-1])
    for i in range(prototypes.shape[1]):
        bank.set_real(i, range(prototypes.shape[0]), prototypes[:, i])
    return bank


def gate():
    return make_gates(load_config("tiny-synthetic", ["synapse.gate=entropy"]).synapse, 3, 3)


def test_registered_with_its_cost():
    assert GATES["entropy"] is EntropyGate
    cfg = load_config("tiny-synthetic", ["synapse.gate=entropy"]).synapse
    cost = EntropyGate.cost(cfg)
    assert (cost.needs_h0, cost.needs_own, cost.needs_labels) == (False, True, False)
    assert cost.eval_passes(3, 10) == (30, 30)  # every sub-network runs, one opens


def test_opens_the_sub_network_of_least_entropy():
    # 3 classes (tasks 0, 0, 1); class c's prototype in its own task's subspace is e_c, the
    # other blocks (complemented in a real bank) are noise the gate must not read
    protos = torch.randn(3, 2, 3, generator=torch.Generator().manual_seed(0))
    protos[[0, 1, 2], [0, 0, 1]] = torch.eye(3)
    own = [torch.tensor([[1.0, 0, 0], [1, 1, 1]]), torch.tensor([[1.0, 1, 1], [0, 0, 1]])]
    class_task = torch.tensor([0, 0, 1])
    inputs = GateInputs(own=own, bank=bank_of(protos), class_task=class_task, batch=2)
    d = gate().decide(2, inputs)
    classifier = own_task_classifier(protos, class_task)
    torch.testing.assert_close(classifier, torch.eye(3))
    h = prediction_entropy(own, classifier)
    for t in range(2):  # the entropy of softmax(SCALE * cos) over every seen class
        p = torch.softmax(SCALE * F.normalize(own[t], dim=1) @ torch.eye(3), dim=1)
        torch.testing.assert_close(h[:, t], -(p * p.log()).sum(1))
    assert d.open.tolist() == [[True, False], [False, True]]  # the confident one opens
    assert torch.equal(d.open, d.raw) and int(d.open.sum(1).min()) == 1
    torch.testing.assert_close(d.score, 1 - h / math.log(3))
    assert bool(((d.score >= 0) & (d.score <= 1)).all())
    protos[[0, 1, 2], [1, 1, 0]] = torch.randn(3, 3)  # other blocks change: same decision
    assert torch.equal(gate().decide(2, GateInputs(own=own, bank=bank_of(protos),
                                                   class_task=class_task, batch=2)).open, d.open)


def test_ties_open_the_first_and_one_class_scores_one():
    protos = torch.eye(2).unsqueeze(1).repeat(1, 2, 1)
    x = torch.tensor([[1.0, 0.0]])
    d = gate().decide(2, GateInputs(own=[x, x], bank=bank_of(protos),
                                    class_task=torch.tensor([0, 1]), batch=1))
    assert d.open.tolist() == [[True, False]]  # the same feature twice: a tie
    one = gate().decide(1, GateInputs(own=[x], bank=bank_of(protos[:1, :1]),
                                      class_task=torch.tensor([0]), batch=1))
    assert one.open.tolist() == [[True]] and one.score.tolist() == [[1.0]]


def test_consolidation_logs_the_decisions_and_the_gate_is_stateless():
    g = gate()
    protos = torch.randn(4, 2, 3, generator=torch.Generator().manual_seed(0))
    own = [torch.randn(7, 3, generator=torch.Generator().manual_seed(s)) for s in (1, 2)]
    inputs = GateInputs(own=own, bank=bank_of(protos), class_task=torch.tensor([0, 0, 1, 1]),
                        batch=7)
    records = g.fit(1, inputs.bank, inputs.class_task, seed=0)
    assert [r["synapse"] for r in records] == [0, 1]
    assert all(math.isnan(r["open_rate"]) for r in records)  # nothing calibrated
    rows = g.consolidate(1, inputs, seed=3)
    assert rows["functional"][:, :2].sum(1).tolist() == [1] * len(rows["position"])
    assert not rows["functional"][:, 2].any() and math.isnan(rows["pre"][0, 2])
    assert np.isnan(rows["ampa"]).all()  # no receptor state
    fresh = gate()
    fresh.load_state_dict(g.state_dict())
    assert torch.equal(fresh.decide(2, inputs).open, g.decide(2, inputs).open)


def test_learner_runs_every_sub_network_and_opens_one():
    cfg = load_config("tiny-synthetic", ["synapse.gate=entropy", "train.epochs=0"])
    learner = Learner(cfg, task_data_from_config(cfg.data), progress=False)
    for t in range(2):
        learner.learn_task(t)
    ev = learner.evaluate(1)
    n = len(ev.labels)
    assert ev.open.shape == (n, 2) and (ev.open.sum(1) == 1).all()
    assert ev.ptm_passes == 0 and ev.subnet_passes == 2 * n


def test_a_run_resumes_to_the_uninterrupted_metrics_and_log(tmp_path):
    def cfg(out):
        return load_config("tiny-synthetic", ["synapse.gate=entropy", f"run.out_dir={out}"])

    part = start_run(cfg(tmp_path / "a"), stop_after=1, progress=False)
    resumed = resume_run(part.run_dir, progress=False)
    whole = start_run(cfg(tmp_path / "b"), progress=False)

    def comparable(m):
        d = without_timings(m.to_dict())
        d.pop("name")
        return d

    assert comparable(resumed.metrics) == comparable(whole.metrics)
    a, b = io.load(resumed.run_dir.synapse_log), io.load(whole.run_dir.synapse_log)
    for name in ("functional", "pre", "gate_open_rate"):
        assert a[name].equals(b[name]), name


@pytest.mark.parametrize("fallback", ["argmax", "none"])
def test_any_synapse_setting_is_accepted(fallback):
    cfg = load_config("tiny-synthetic", ["synapse.gate=entropy", f"synapse.fallback={fallback}"])
    EntropyGate.check_config(cfg.synapse)
