"""benchmarks/gate_signals.py: the parts that run without the demo's data (the whole study needs
the CIFAR-10 JPEGs and about ten minutes). The recorded choice of the defaults is checked in
tests/artsy/test_gates_ngai_signals.py, the recorded re-run's side-by-side here."""

import importlib.util
import json
from pathlib import Path

from artsy.config import apply_overrides, load_config

REPO = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("gate_signals", REPO / "benchmarks/gate_signals.py")
gate_signals = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gate_signals)


def test_the_side_by_side_replays_exactly_the_demo_configs_signals():
    demo = load_config("demo")
    current = gate_signals.demo_signals(demo)
    assert apply_overrides(demo, [f"synapse.{o}" for o in current]) == demo
    # every signal a stage chooses is named, so a pick that differs anywhere is seen to differ
    chosen_keys = {o.split("=")[0] for stage in (gate_signals.RELEASE, gate_signals.DEPOLARISATION,
                                                  gate_signals.FROZEN)
                   for overrides in stage.values() for o in overrides}
    assert chosen_keys <= {o.split("=")[0] for o in current}
    other = apply_overrides(demo, ["synapse.ngai.frozen_stages=2"])
    assert apply_overrides(other, [f"synapse.{o}" for o in current]) == demo


def rows(*pairs):
    """Side-by-side rows: one (chosen avg, chosen last, demo avg, demo last) per seed."""
    return {seed: {"chosen": {"avg": a, "last": b}, "demo": {"avg": c, "last": d}}
            for seed, (a, b, c, d) in enumerate(pairs)}


def test_a_pick_replaces_the_demos_values_only_above_the_margin_and_without_losing_last():
    assert gate_signals.verdict(rows((81.0, 71.0, 80.0, 70.0)))["change_the_demo"]
    # at the margin, or above it with a lower Last, the incumbent stays
    at_margin = gate_signals.verdict(rows((80.5, 71.0, 80.0, 70.0)))
    assert at_margin["avg_gain"] == gate_signals.INCUMBENT_MARGIN
    assert not at_margin["change_the_demo"]
    assert not gate_signals.verdict(rows((82.0, 69.0, 80.0, 70.0)))["change_the_demo"]
    # the means decide, not one seed
    mixed = gate_signals.verdict(rows((82.0, 70.0, 80.0, 70.0), (79.0, 71.0, 80.0, 70.0)))
    assert mixed["avg_gain"] == 0.5 and mixed["last_gain"] == 0.5
    assert not mixed["change_the_demo"]


def test_the_recorded_re_run_keeps_the_demos_values_by_the_written_rule():
    """The re-run under today's adapters picked other values (docs/method.md §8.3); by the
    rule its side-by-side keeps the demo config's, which is what the demo config holds."""
    recorded = json.loads((REPO / "benchmarks/recorded/gate_signals-clip.json").read_text())
    side = recorded["chosen_vs_demo"]
    v = gate_signals.verdict(side["per_seed"])
    assert not v["change_the_demo"]
    assert round(v["avg_gain"], 2) == 0.33 and round(v["last_gain"], 2) == -0.50
    assert side["demo"] == gate_signals.demo_signals(load_config("demo"))
