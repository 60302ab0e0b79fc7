"""benchmarks/gate_signals.py: the parts that run without the demo's data (the whole study needs
the CIFAR-10 JPEGs and about ten minutes; its recorded result is checked in
tests/artsy/test_gates_ngai_signals.py)."""

import importlib.util
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
