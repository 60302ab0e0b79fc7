"""Inference images/s of finished runs at their last task, measured side by side in one process.

The per-task images/s in metrics.json is measured while the run trains; on a shared machine two
runs meet different loads, so their ratio is noisy. Here every run directory given is restored
from its checkpoints once, then `evaluate(last task)` of each is timed in turn (round-robin,
`--repeats` rounds, after one warm-up round), so every run sees the same load; the median time
per run and the ratios to the first run (e.g. EASE's `none`) are reported, with each run's
sub-network passes per image. Writes JSON (`--out`).

    python benchmarks/inference_speed.py RUNS/none/seed-1993 RUNS/ngai/seed-1993 --repeats 5
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def restore(run_dir: Path):
    """The learner of a finished run after its last checkpointed task, and that task."""
    from artsy import checkpoint
    from artsy.config import load_run_config
    from artsy.methods import make_learner
    from artsy.runner import load_task_data

    cfg = load_run_config(run_dir / "config.yaml")
    last = checkpoint.last_task(run_dir)
    if last is None:
        raise SystemExit(f"inference_speed: {run_dir} has no checkpoint to restore")
    learner = make_learner(cfg, load_task_data(cfg), progress=False)
    increments, state = checkpoint.load(run_dir, last)
    learner.load(increments, state["learner"])
    return learner, last


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python benchmarks/inference_speed.py",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("run_dirs", nargs="+", type=Path, help="finished run directories; the "
                   "first is the reference of the ratios")
    p.add_argument("--repeats", type=int, default=5, help="timed rounds (after one warm-up)")
    p.add_argument("--out", type=Path, default=REPO / "benchmarks/results/inference_speed.json")
    args = p.parse_args(argv)
    import torch

    from synsim.files import write_json

    torch.manual_seed(0)
    runs = {str(d): restore(d) for d in args.run_dirs}
    times = {name: [] for name in runs}
    passes = {}
    for rnd in range(args.repeats + 1):
        for name, (learner, last) in runs.items():
            start = time.perf_counter()
            ev = learner.evaluate(last)
            if rnd:  # round 0 warms caches and allocators
                times[name].append(time.perf_counter() - start)
            n = len(ev.labels)
            passes[name] = {"n_test": n, "subnetwork_passes_per_image": ev.subnet_passes / n,
                            "backbone_passes_per_image": (ev.subnet_passes + ev.ptm_passes) / n}
    ref = statistics.median(times[str(args.run_dirs[0])])
    report = {"repeats": args.repeats, "threads": torch.get_num_threads(), "runs": {
        name: {"median_s": statistics.median(t), "times_s": t,
               "images_per_s": passes[name]["n_test"] / statistics.median(t),
               "speedup_vs_first": ref / statistics.median(t), **passes[name]}
        for name, t in times.items()}}
    write_json(args.out, report)
    for name, r in report["runs"].items():
        print(f"{r['images_per_s']:8.1f} img/s  x{r['speedup_vs_first']:.2f}  "
              f"{r['backbone_passes_per_image']:.2f} backbone passes/img  {name}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
