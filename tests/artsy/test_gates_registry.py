"""artsy.gates: the registry is the one list of gates; each gate's declared cost is what runs."""

import dataclasses

import pytest
import torch

from artsy.config import Config, apply_overrides, load_config
from artsy.errors import ConfigError
from artsy.data import task_data_from_config
from artsy.gates import GATES, Gate, make_gates
from artsy.learner import Learner

torch.set_num_threads(1)
VARIANTS = {name: [f"synapse.gate={name}"] for name in GATES}
VARIANTS["ngai-own"] = ["synapse.gate=ngai", "synapse.ngai.depolarisation=own_prototype"]


def test_the_registry_is_the_one_list_of_gates():
    assert list(GATES) == ["ngai", "none", "mlp", "oracle", "entropy"]  # the default first
    assert Config().synapse.gate == next(iter(GATES))
    for name, kind in GATES.items():
        assert issubclass(kind, Gate) and kind.name == name
        cfg = apply_overrides(Config(), [f"synapse.gate={name}"]).synapse  # the config accepts it
        assert cfg.gate == name and type(make_gates(cfg, 8, 2)) is kind
    listed = ", ".join(repr(name) for name in GATES)
    with pytest.raises(ConfigError) as e:
        apply_overrides(Config(), ["synapse.gate=magic"])
    assert str(e.value) == f"config key 'synapse.gate': expected one of {listed}, got 'magic'"
    with pytest.raises(ConfigError, match="expected one of"):  # a config built in code, too
        make_gates(dataclasses.replace(Config().synapse, gate="magic"), 8, 2)


@pytest.mark.parametrize("name, facts, passes", [
    # (needs_h0, needs_own, needs_labels), (lo, hi) sub-network passes for 3 seen and 10 inputs
    ("none", (False, False, False), (30, 30)),
    ("oracle", (False, False, True), (10, 10)),
    ("mlp", (True, False, False), (10, 30)),
    ("ngai", (True, False, False), (10, 30)),
    ("ngai-own", (True, True, False), (30, 30)),
])
def test_costs_are_the_dry_run_table(name, facts, passes):
    cfg = load_config("tiny-synthetic", VARIANTS[name]).synapse
    cost = GATES[cfg.gate].cost(cfg)  # from the class, without building the gate
    assert (cost.needs_h0, cost.needs_own, cost.needs_labels) == facts
    assert cost.eval_passes(3, 10) == passes


@pytest.mark.parametrize("name", list(VARIANTS))
def test_declared_cost_is_what_the_learner_does(name):
    """The PTM and sub-network passes of an evaluation are the declared ones, and the gate
    decides the same without the inputs it declares it does not read."""
    cfg = load_config("tiny-synthetic", [*VARIANTS[name], "train.epochs=0"])
    learner = Learner(cfg, task_data_from_config(cfg.data), progress=False)
    cost = GATES[cfg.synapse.gate].cost(cfg.synapse)
    ptm_calls = []
    forward = learner.net.forward

    def counting(x, task=None):
        if task is None:
            ptm_calls.append(len(x))
        return forward(x, task=task)

    learner.net.forward = counting
    for t in range(2):
        learner.learn_task(t)
    assert bool(ptm_calls) == cost.needs_h0  # h0 computed for the synapses only when read

    decide = learner.gates.decide

    def declared_only(n_seen, inputs):
        full = decide(n_seen, inputs)
        bare = decide(n_seen, dataclasses.replace(
            inputs, h0=inputs.h0 if cost.needs_h0 else None,
            own=inputs.own if cost.needs_own else None,
            task_ids=inputs.task_ids if cost.needs_labels else None))
        assert torch.equal(full.open, bare.open) and torch.equal(full.score, bare.score)
        return full

    learner.gates.decide = declared_only
    ev = learner.evaluate(1)
    n = len(ev.labels)
    lo, hi = cost.eval_passes(2, n)
    assert ev.ptm_passes == n * cost.needs_h0
    assert lo <= ev.subnet_passes <= hi
