"""artsy.plan: the dry run's work table follows each gate's declared cost."""

import re

import pytest

from artsy.config import load_config
from artsy.gates import GATES
from artsy.plan import dry_run


def table(text):
    """{task: (train, fwd+bwd, features, test, eval)} from the work table."""
    rows = {}
    for line in text.splitlines():
        m = re.fullmatch(r"\s*(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\S+)\s+(\d+)", line)
        if m:
            rows[int(m.group(1))] = m.groups()[1:]
    return rows


@pytest.mark.parametrize("gate", list(GATES))
def test_evaluation_passes_follow_the_gate_cost(gate):
    cfg = load_config("tiny-synthetic", [f"synapse.gate={gate}"])
    rows = table(dry_run(cfg))
    cost = GATES[gate].cost(cfg.synapse)
    assert sorted(rows) == [0, 1, 2]
    for t, (train, fwd_bwd, feats, test, ev, ease) in rows.items():
        assert int(train) == 48 and int(fwd_bwd) == 48 * cfg.train.epochs
        assert int(test) == 24 * (t + 1) and int(ease) == (t + 1) * int(test)
        lo, hi = cost.eval_passes(t + 1, int(test))
        h0 = int(test) if cost.needs_h0 else 0
        assert ev == (f"{lo + h0}" if lo == hi else f"{lo + h0}..{hi + h0}")
        assert int(feats) == int(train) * (t + 1 + cost.needs_h0)


def test_the_plan_reads_no_images():
    text = dry_run(load_config("cifar100", ["data.root=/nonexistent"]))
    assert "task split: 10 tasks" in text
    assert "total: 1000000 training fwd+bwd passes" in text  # 50,000 images x 20 epochs
