"""`python -m artsy.run NAME_OR_PATH [key=value ...] [--dry-run] [--resume RUN_DIR]`: one run.

NAME is a file in configs/ (artsy.config.load_config), or a path to a YAML file; `key.sub=value`
overrides follow. A run writes `<run.out_dir>/<name>-<timestamp>/`: config.yaml (the resolved
config), metrics.json and metrics.csv, synapses.nc (the synapse-state log) and
checkpoints/task_XX.pt, all updated after every task. `--resume RUN_DIR` continues after the last
checkpointed task with RUN_DIR/config.yaml and ends with the same metrics as an uninterrupted run
(wall times aside). `--dry-run` prints the config, the class order, the task split and the work
per task, without loading data (except an image folder, whose classes must be listed) or weights.

Relative paths: `data.root` and `backbone.checkpoint` resolve against the current directory when
they exist there, else against the repository root (the folder holding configs/), so a config can
name `../shared/data/...` and run from anywhere; the resolved absolute path goes into config.yaml.
`run.out_dir` is relative to the current directory. Bad input is one line on stderr, exit code 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import yaml

# Idle OpenMP threads sleep instead of spinning: on a shared CPU a spinning torch runs 2-13x
# slower (environment.md §8.3). Set before torch is first imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from . import checkpoint  # noqa: E402
from .config import (CONFIG_DIR, Config, config_path, dump_yaml, load_config,  # noqa: E402
                     to_dict)
from .errors import ArtsyError, CheckpointError, DataError, RunError  # noqa: E402
from .data import (build_dataset, class_order,  # noqa: E402
                   task_data_from_config, task_splits)
from .metrics import Metrics  # noqa: E402
from .record import FILE as LOG_FILE  # noqa: E402
from .record import SynapseLog, log_attrs  # noqa: E402

REPO_ROOT = CONFIG_DIR.parent
CONFIG_FILE = "config.yaml"
# (n_classes, train images per class, test images per class) of the fixed-size datasets
KNOWN_SIZES = {"cifar100": (100, 500, 100), "cifar10": (10, 5000, 1000),
               "tinyimagenet": (200, 500, 50)}


def bad_input() -> tuple[type[BaseException], ...]:
    """The errors that are the user's input, reported in one line with exit code 2."""
    return (ArtsyError, FileNotFoundError, NotImplementedError)


def one_line(e: BaseException) -> str:
    return " ".join(str(e).split())


# --------------------------------------------------------------------------------------------
# Config, paths and data


def resolve_path(value: Optional[str]) -> Optional[str]:
    """A relative path: the current directory's if it exists there, else the repository root's."""
    if value is None or Path(value).expanduser().is_absolute():
        return value
    here = Path(value).expanduser()
    return str((here if here.exists() else REPO_ROOT / here).resolve())


def resolve_paths(cfg: Config) -> Config:
    data = dataclasses.replace(cfg.data, root=resolve_path(cfg.data.root))
    backbone = dataclasses.replace(cfg.backbone, checkpoint=resolve_path(cfg.backbone.checkpoint))
    return dataclasses.replace(cfg, data=data, backbone=backbone)


def run_name(cfg: Config, source: str) -> str:
    """run.name, or the config file's stem when the config leaves the default."""
    return cfg.run.name if cfg.run.name != "run" else Path(source).stem


def load_task_data(cfg: Config):
    normalize = None
    if cfg.data.normalize == "backbone":
        from .backbones import weights_mean_std  # imports timm: only when needed

        normalize = weights_mean_std(cfg.backbone.name)
    try:
        return task_data_from_config(cfg.data, normalize)
    except ValueError as e:  # class order / split problems are bad input too
        raise DataError(one_line(e)) from e


def new_run_dir(out_dir: str, name: str) -> Path:
    """`<out_dir>/<name>-<YYYYmmdd-HHMMSS>`, with -2, -3, ... if that exists already."""
    base = Path(out_dir) / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    for i in range(1, 1000):
        path = base if i == 1 else base.with_name(f"{base.name}-{i}")
        try:
            path.mkdir(parents=True)
            return path
        except FileExistsError:
            continue
    raise RunError(f"cannot create a run directory under {out_dir}")


# --------------------------------------------------------------------------------------------
# Dry run


def dataset_shape(data_cfg) -> tuple[int, np.ndarray, np.ndarray]:
    """(n_classes, train images per class, test images per class), reading no files except an
    image folder's listing."""
    d = data_cfg
    if d.name in KNOWN_SIZES:
        n, tr, te = KNOWN_SIZES[d.name]
        train, test = np.full(n, tr), np.full(n, te)
    elif d.name == "synthetic":
        s = d.synthetic
        n, train, test = s.n_classes, np.full(s.n_classes, s.train_per_class), np.full(
            s.n_classes, s.test_per_class)
    else:
        src = build_dataset(d.name, d.root, cache_dir=d.cache_dir,  # the run's own capped cache
                            max_per_class_train=d.max_per_class_train,
                            max_per_class_test=d.max_per_class_test)
        n = src.n_classes
        train = np.bincount(src.train.targets, minlength=n)
        test = np.bincount(src.test.targets, minlength=n)
    cap = lambda a, c: np.minimum(a, c) if c else a  # noqa: E731
    return n, cap(train, d.max_per_class_train), cap(test, d.max_per_class_test)


def dry_run(cfg: Config) -> str:
    """The resolved config, class order, split and forward passes per task (no training)."""
    d = cfg.data
    n, train_pc, test_pc = dataset_shape(d)
    try:
        order = class_order(n, d.class_order, d.seed)
        tasks = task_splits(n, d.init_cls, d.increment)
    except ValueError as e:
        raise DataError(one_line(e)) from e
    from .learner import check_supported
    from .synapses import make_gates

    check_supported(cfg)
    make_gates(cfg.synapse, 1, len(tasks))  # the gates' own config checks, on a toy width
    gate, beta = cfg.synapse.gate, cfg.prototypes.beta > 0
    own = gate == "ngai" and cfg.synapse.ngai.depolarisation == "own_prototype"
    h0 = gate in ("mlp", "ngai") or beta
    lines = ["resolved config:", yaml.safe_dump(to_dict(cfg), sort_keys=False).rstrip(), "",
             f"class order ({d.class_order if isinstance(d.class_order, str) else 'list'}, "
             f"seed {d.seed}): {order}", f"task split: {len(tasks)} tasks"]
    for t, labels in enumerate(tasks):
        lines.append(f"  task {t}: labels {labels[0]}..{labels[-1]} = classes "
                     f"{[order[c] for c in labels]}")
    lines += ["", f"work per task (forward passes over images; gate '{gate}'"
              f"{', own_prototype' if own else ''}):",
              f"{'task':>5} {'train img':>10} {'fwd+bwd':>10} {'features':>10} {'test img':>9} "
              f"{'eval':>22} {'EASE eval':>10}"]
    totals = np.zeros(4)
    seen_test = 0
    for t, labels in enumerate(tasks):
        n_train = int(train_pc[[order[c] for c in labels]].sum())
        seen_test += int(test_pc[[order[c] for c in labels]].sum())
        s = t + 1
        fwd_bwd = cfg.train.epochs * n_train
        feats = n_train * (s + h0)
        base = seen_test * (h0 or own)
        if gate == "none" or own:
            lo = hi = base + s * seen_test
        elif gate == "oracle":
            lo = hi = base + seen_test
        else:  # one open gate per input at best, all at worst
            lo, hi = base + seen_test, base + s * seen_test
        ev = f"{lo}" if lo == hi else f"{lo}..{hi}"
        lines.append(f"{t:>5} {n_train:>10} {fwd_bwd:>10} {feats:>10} {seen_test:>9} {ev:>22} "
                     f"{s * seen_test:>10}")
        totals += (fwd_bwd, feats, lo, hi)
    ev = f"{int(totals[2])}" if totals[2] == totals[3] else f"{int(totals[2])}..{int(totals[3])}"
    lines.append(f"total: {int(totals[0])} training fwd+bwd passes, {int(totals[1])} feature "
                 f"passes, {ev} evaluation passes")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# The task loop


def run_tasks(cfg: Config, run_dir: Path, learner, metrics: Metrics, log: SynapseLog, start: int,
              step_offset: int, stop_after: Optional[int] = None) -> None:
    """Learn and evaluate tasks start..; after each: metrics, log, checkpoint (in that order)."""
    n_tasks = learner.data.n_tasks
    for t in range(start, n_tasks):
        res = learner.learn_task(t)
        ev = learner.evaluate(t)
        metrics.add(t, ev, res.train_time_s, res.train_passes, res.calibration)
        print(f"\nafter task {t} of {n_tasks - 1} ({cfg.synapse.gate} gates):\n{metrics.table()}",
              flush=True)
        metrics.save(run_dir)
        k_eff, open_rate = np.full(n_tasks, np.nan), np.full(n_tasks, np.nan)
        for c in res.calibration:
            k_eff[c["synapse"]], open_rate[c["synapse"]] = c["K_eff"], c["open_rate"]
        log.append_task(t, step_offset, res.rows, metrics.gate_open_rate[t],
                        metrics.gate_score[t], k_eff, open_rate)
        step_offset += res.n_presentations
        if cfg.run.save_checkpoints:
            checkpoint.save(run_dir, t, learner.task_state(t), {
                "learner": learner.state_dict(), "metrics": metrics.to_dict(),
                "step_offset": step_offset})
        if stop_after is not None and t + 1 >= stop_after and t + 1 < n_tasks:
            print(f"stopped after task {t} (--stop-after {stop_after}); continue with "
                  f"--resume {run_dir}")
            return


def start_run(cfg: Config, source: str, stop_after: Optional[int]) -> Path:
    from .learner import Learner

    data = load_task_data(cfg)
    learner = Learner(cfg, data)
    run_dir = new_run_dir(cfg.run.out_dir, run_name(cfg, source))
    dump_yaml(cfg, run_dir / CONFIG_FILE)
    metrics = Metrics(data.n_tasks, run_meta(cfg, data, learner))
    print(f"run directory: {run_dir}", flush=True)
    run_tasks(cfg, run_dir, learner, metrics, make_log(cfg, run_dir, learner), 0, 0, stop_after)
    return run_dir


def resume_run(run_dir: Path, stop_after: Optional[int]) -> Path:
    from .learner import Learner

    if not (run_dir / CONFIG_FILE).is_file():
        raise RunError(f"cannot resume {run_dir}: no {CONFIG_FILE} there (is it a run directory?)")
    cfg = load_config(run_dir / CONFIG_FILE)
    data = load_task_data(cfg)
    learner = Learner(cfg, data)
    log = make_log(cfg, run_dir, learner)
    last = checkpoint.last_task(run_dir)
    if last is None:  # nothing finished: start over in the same directory
        metrics, start, step_offset = Metrics(data.n_tasks, run_meta(cfg, data, learner)), 0, 0
    else:
        increments, state = checkpoint.load(run_dir, last)
        try:
            learner.load(increments, state["learner"])
        except (ValueError, KeyError, RuntimeError) as e:
            raise CheckpointError(f"cannot resume from {run_dir}: {one_line(e)}") from e
        metrics = Metrics.from_dict(state["metrics"])
        start, step_offset = last + 1, state["step_offset"]
    log.truncate(start)  # drop what a crash between the log write and the checkpoint left
    checkpoint.remove_after(run_dir, start - 1)
    if start:
        metrics.save(run_dir)
    else:
        for name in ("metrics.json", "metrics.csv"):
            (run_dir / name).unlink(missing_ok=True)
    if start >= data.n_tasks:
        print(f"all {data.n_tasks} tasks of {run_dir} are done")
        return run_dir
    print(f"resuming {run_dir} at task {start} of {data.n_tasks - 1}", flush=True)
    run_tasks(cfg, run_dir, learner, metrics, log, start, step_offset, stop_after)
    return run_dir


def run_meta(cfg: Config, data, learner) -> dict:
    return {"name": cfg.run.name, "gate": cfg.synapse.gate, "negatives": cfg.synapse.negatives,
            "retrain": cfg.synapse.retrain, "dataset": cfg.data.name,
            "backbone": getattr(learner.net.backbone, "weight_tag", cfg.backbone.name),
            "device": str(learner.device), "class_order": data.order, "task_classes": data.tasks}


def make_log(cfg: Config, run_dir: Path, learner) -> SynapseLog:
    rule = learner.gates.rule_attrs()
    return SynapseLog(run_dir / LOG_FILE, learner.data.n_tasks,
                      log_attrs(cfg.synapse.gate, to_dict(cfg), rule))


# --------------------------------------------------------------------------------------------
# CLI


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m artsy.run", description="Continual learning with EASE sub-networks and "
        "per-task synapse gates.", epilog=f"configs in {CONFIG_DIR}: " + ", ".join(
            sorted(q.stem for q in CONFIG_DIR.glob("*.yaml"))))
    p.add_argument("config", nargs="?", help="a config name in configs/ or a YAML path")
    p.add_argument("overrides", nargs="*", help="dotted overrides, e.g. train.epochs=2")
    p.add_argument("--dry-run", action="store_true",
                   help="print config, class order, task split and work; do not train")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue a run after its last checkpoint")
    p.add_argument("--stop-after", type=int, metavar="N",
                   help="stop after N tasks (continue later with --resume)")
    return p.parse_intermixed_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    try:
        if args.resume:
            if args.config or args.overrides or args.dry_run:
                raise RunError("--resume RUN_DIR takes no config, overrides or --dry-run: the run "
                               "continues with RUN_DIR/config.yaml")
            run_dir = resume_run(Path(args.resume), args.stop_after)
        else:
            if not args.config:
                raise RunError("give a config name or path (or --resume RUN_DIR); configs: "
                               + ", ".join(sorted(q.stem for q in CONFIG_DIR.glob("*.yaml"))))
            source = str(config_path(args.config))
            cfg = resolve_paths(load_config(args.config, args.overrides))
            if args.dry_run:
                print(dry_run(cfg))
                return 0
            run_dir = start_run(cfg, source, args.stop_after)
    except bad_input() as e:
        print(f"error: {one_line(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted; continue with --resume RUN_DIR", file=sys.stderr)
        return 130
    print_outputs(run_dir)
    return 0


def print_outputs(run_dir: Path) -> None:
    import json

    metrics_file = run_dir / "metrics.json"
    print(f"\noutputs in {run_dir}:")
    for name in (CONFIG_FILE, "metrics.json", "metrics.csv", LOG_FILE, checkpoint.FOLDER):
        if (run_dir / name).exists():
            print(f"  {run_dir / name}")
    if metrics_file.exists():
        print(Metrics.from_dict(json.loads(metrics_file.read_text())).table())


if __name__ == "__main__":
    sys.exit(main())
