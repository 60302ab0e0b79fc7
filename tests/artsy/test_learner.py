"""artsy.learner: the EASE head, seeding, skipped forward passes of closed gates."""

import math

import pytest
import torch
import torch.nn.functional as F

from artsy.config import load_config
from artsy.errors import ConfigError
from artsy.data import task_data_from_config
from artsy.learner import CosineLinear, Learner, task_seed

torch.set_num_threads(1)


def tiny(*overrides):
    cfg = load_config("tiny-synthetic", list(overrides))
    return Learner(cfg, task_data_from_config(cfg.data), progress=False)


def test_cosine_head_is_sigma_times_cosine_with_sigma_one():
    head = CosineLinear(8, 3)
    assert head.sigma.item() == 1.0 and head.weight.abs().max() <= 1 / math.sqrt(8)
    x = torch.randn(4, 8)
    torch.testing.assert_close(head(x), F.normalize(x, dim=1) @ F.normalize(head.weight, dim=1).T)


def test_task_seeds_are_deterministic_and_distinct():
    seeds = {task_seed(1993, t, s) for t in range(-1, 20) for s in ("adapter", "synapses",
                                                                     "consolidate", "backbone")}
    assert len(seeds) == 21 * 4
    assert task_seed(1993, 3, "adapter") != task_seed(1994, 3, "adapter")


@pytest.mark.parametrize("gate", ["none", "oracle", "mlp"])
def test_closed_gates_skip_their_forward_passes(gate):
    learner = tiny(f"synapse.gate={gate}")
    n_tasks = 2
    for t in range(n_tasks):
        learner.learn_task(t)
    calls = []
    original = learner.net.forward

    def counting(x, task=None):
        calls.append((task, len(x)))
        return original(x, task=task)

    learner.net.forward = counting
    ev = learner.evaluate(n_tasks - 1)
    n = len(ev.labels)
    subnet = sum(k for task, k in calls if task is not None)
    assert subnet == ev.subnet_passes == int(ev.open.sum())  # one pass per open gate, no more
    assert sum(k for task, k in calls if task is None) == ev.ptm_passes
    if gate == "none":
        assert ev.subnet_passes == n_tasks * n and ev.ptm_passes == 0
    elif gate == "oracle":
        assert ev.subnet_passes == n and ev.ptm_passes == 0
        assert (ev.open.argmax(1) == ev.input_task).all()
    else:
        assert ev.ptm_passes == n and ev.subnet_passes < n_tasks * n


def test_the_deleted_fusion_switch_is_an_unknown_key():
    """prototypes.fusion had one working value (EASE's gated concatenation): the key is gone."""
    with pytest.raises(ConfigError, match="unknown config key 'prototypes.fusion'"):
        load_config("tiny-synthetic", ["prototypes.fusion=additive"])


def _step_norms(learner):
    """Record the gradient norm each optimiser step applies (after train.clip_grad_norm)."""
    norms, clip = [], learner._clip

    def spy(scaler, opt):
        clip(scaler, opt)
        grads = [p.grad for g in opt.param_groups for p in g["params"] if p.grad is not None]
        norms.append(float(torch.linalg.vector_norm(torch.stack(
            [torch.linalg.vector_norm(g) for g in grads]))))

    learner._clip = spy
    learner.learn_task(0)
    return norms


def test_clip_grad_norm_scales_every_step_down_to_the_limit():
    free = _step_norms(tiny("train.epochs=1"))
    limit = min(free) / 10  # far below every step's norm: every step is clipped
    clipped = _step_norms(tiny("train.epochs=1", f"train.clip_grad_norm={limit}"))
    assert len(free) == len(clipped) > 1
    assert max(clipped) == pytest.approx(limit, rel=1e-5)
    assert min(clipped) == pytest.approx(limit, rel=1e-5)  # each step scaled to the limit


@pytest.mark.parametrize("value, message", [("0", "expected null .no clipping. or a value > 0"),
                                            ("-1", "expected a value >= 0.0")])
def test_clip_grad_norm_refuses_zero_and_negative(value, message):
    with pytest.raises(ConfigError, match=f"'train.clip_grad_norm': {message}"):
        load_config("tiny-synthetic", [f"train.clip_grad_norm={value}"])
