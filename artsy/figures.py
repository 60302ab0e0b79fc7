"""Run figures: `python -m artsy.figures RUN_DIR [RUN_DIR ...] [--out OUT_DIR]`.

For one or more runs (typically one per gate on the same setting): accuracy against tasks for each
run, the gate open-rate matrices (input task x synapse after each task), and every synapse's
trajectory (AMPA occupancy and calcium) across tasks. Multi-seed directories (`--seeds`, one per
gate) give `accuracy_seeds`: the mean over seeds after each task with a ± sample-std band. The
drawing, style and formats are synsim's (`synsim.figures`): the learner's log uses the simulator's
variable names for the receptor state, so one plotting code serves both.
"""

from __future__ import annotations

import argparse
import itertools
import re
import sys
from pathlib import Path

import numpy as np
import xarray as xr

from synsim import figures as sf
from synsim import io

from .errors import BAD_INPUT, RunError, one_line
from .rundir import RunDir, check_writable, read_json

MARKERS = "os^vDP*Xph"  # one per line, repeated past ten lines


def load_run(run_dir: Path) -> tuple[dict, xr.Dataset | None]:
    """(metrics.json as a dict, synapses.nc or None) of a run directory."""
    run_dir = RunDir(run_dir)
    if not run_dir.metrics_json.exists():
        raise RunError(f"{run_dir.metrics_json} does not exist: expected a run directory written "
                       "by python -m artsy.run")
    metrics = read_json(run_dir.metrics_json)
    log = run_dir.synapse_log
    if not log.exists():
        return metrics, None
    try:
        return metrics, io.load(log)
    except (ValueError, KeyError, AttributeError) as e:  # not a log (synsim.io's errors)
        raise RunError(f"cannot read the synapse log {log} ({type(e).__name__}: "
                       f"{one_line(e)[:120]}): rerun or resume the run that wrote it") from None


def fig_accuracy(runs: dict[str, dict]):
    """Accuracy on all classes seen so far, after each task, one line per run (gate)."""
    plt = sf.style()
    fig, ax = plt.subplots(figsize=(sf.SINGLE_COLUMN_IN * 0.7, 2.0))
    data = {}
    for (name, metrics), marker in zip(runs.items(), itertools.cycle(MARKERS)):
        curve = np.asarray(metrics["curve"], dtype=float)
        ax.plot(np.arange(1, curve.size + 1), curve, marker + "-", ms=3,
                label=f"{name} (Avg {metrics['avg']:.1f}, Last {metrics['last']:.1f})")
        data[name] = curve
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    top = max((float(np.nanmax(c)) for c in data.values()), default=100.0)
    room = 0.13 * max(len(data), 1) * (top - ax.get_ylim()[0]) + 1.0  # a legend row per run
    ax.set_ylim(top=min(100.5, top + room))
    ax.set_xlabel("tasks learned (1)")
    ax.set_ylabel("top-1 accuracy, seen classes (%)")
    ax.legend(loc="upper right")
    return fig, data


def load_seeds(path: Path) -> dict:
    """summary.json of a multi-seed run, with `name`: the gate of its runs (else the folder)."""
    summary = read_json(RunDir(path).seeds_summary)
    name = Path(path).name
    for seed in summary.get("seeds_done", []):
        metrics = RunDir(path).seed_run(seed).metrics_json
        if metrics.is_file():
            name = run_label(read_json(metrics), path)
            break
    return {**summary, "name": name}


def run_label(metrics: dict, run_dir) -> str:
    """What a line is called: the run's gate, else its method (a baseline), else its folder."""
    return metrics.get("gate") or metrics.get("method") or Path(run_dir).name


def seed_curves(summary: dict, name: str = "") -> np.ndarray:
    """(seeds, tasks) accuracy after each task of the finished seeds of a summary.json."""
    curves = [c for c in summary.get("curves", {}).values() if c]
    if not curves or len({len(c) for c in curves}) != 1:
        raise RunError(f"multi-seed run {name or '?'}: no finished seed (or curves of different "
                       "lengths); finish it with python -m artsy.run --resume DIR")
    return np.array(curves, dtype=float)


def fig_seeds(summaries: dict[str, dict]):
    """Accuracy after each task over seeds: the mean, a band of ± the sample std (ddof = 1; none
    for one seed), one line per multi-seed run (gate). `summaries`: {name: summary.json}."""
    plt = sf.style()
    fig, ax = plt.subplots(figsize=(sf.SINGLE_COLUMN_IN * 0.7, 2.0))
    data = {}
    for (name, summary), marker in zip(summaries.items(), itertools.cycle(MARKERS)):
        curves = seed_curves(summary, name)
        mean = curves.mean(0)
        std = curves.std(0, ddof=1) if len(curves) > 1 else np.zeros_like(mean)
        x = np.arange(1, mean.size + 1)
        avg = summary.get("summary", {}).get("avg", {})
        label = f"{name}, {len(curves)} seeds"
        if avg.get("mean") is not None:
            label += f" (Avg {avg['mean']:.1f} ± {avg.get('std') or 0.0:.1f})"
        (line,) = ax.plot(x, mean, marker + "-", ms=3, label=label)
        ax.fill_between(x, mean - std, mean + std, color=line.get_color(), alpha=0.2, lw=0)
        data[name] = {"mean": mean, "std": std, "curves": curves}
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("tasks learned (1)")
    ax.set_ylabel("top-1 accuracy, seen classes (%)")
    ax.legend(loc="best")
    return fig, data


def fig_gate_open_rates(log: xr.Dataset, title: str = ""):
    """One heatmap per evaluation: share of each input task's test images that open each synapse."""
    plt = sf.style()
    rates = log.gate_open_rate.transpose("after_task", "input_task", "synapse").values
    n_after = rates.shape[0]
    cols = min(5, n_after)
    rows = int(np.ceil(n_after / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(sf.DOUBLE_COLUMN_IN * 0.8,
                             1.5 * rows + 0.3), squeeze=False,
                             gridspec_kw={"wspace": 0.45, "hspace": 0.6})
    image = None
    for k, ax in enumerate(axes.ravel()):
        if k >= n_after:
            ax.axis("off")
            continue
        seen = k + 1
        shown = rates[k, :seen, :seen]
        image = ax.imshow(shown, vmin=0, vmax=1, cmap="viridis", origin="upper")
        ax.set_title(f"after task {int(log.after_task[k])}")
        ax.set_xticks(range(seen))
        ax.set_yticks(range(seen))
        ax.set_xlabel("synapse (task)", fontsize=6)
        if k % cols == 0:  # one row label per row of panels: it would cover the left neighbour
            ax.set_ylabel("input task", fontsize=6)
    cbar = fig.colorbar(image, ax=axes.ravel().tolist(), shrink=0.7)
    cbar.set_label(sf.label(log.gate_open_rate, "gate open rate"))
    if title:
        fig.suptitle(title)
    return fig, {"gate_open_rate": rates}


def fig_synapse_trajectories(log: xr.Dataset, variables=("ampa", "calcium")):
    """Every synapse's state across the recorded training presentations, task boundaries dotted."""
    return sf.fig_trajectories(log, variables, along="step", boundaries="task")


def make_all(run_dirs, out_dir: Path) -> dict:
    """Write every figure of these run and multi-seed directories into out_dir; returns
    {name: [paths]}."""
    import matplotlib.pyplot as plt

    from .runner import is_seeds_dir

    runs, logs, multi = {}, {}, {}
    for run_dir in run_dirs:
        if is_seeds_dir(run_dir):
            summary = load_seeds(run_dir)
            multi[_unique(summary["name"], multi, run_dir)] = summary
            continue
        metrics, log = load_run(run_dir)
        name = _unique(run_label(metrics, run_dir), runs, run_dir)
        runs[name], logs[name] = metrics, log
    check_writable(out_dir, "--out")  # every input read, nothing drawn yet
    jobs = {"accuracy": lambda: fig_accuracy(runs)} if runs else {}
    if multi:
        jobs["accuracy_seeds"] = lambda: fig_seeds(multi)
    for name, log in logs.items():
        if log is None:
            continue
        tag = re.sub(r"[^\w.-]+", "_", name).strip("_")  # "ngai", or "ngai_<run dir>" if repeated
        jobs[f"gate_open_rate_{tag}"] = lambda log=log, name=name: fig_gate_open_rates(log, name)
        if np.isfinite(log.ampa.values).any():
            jobs[f"synapse_trajectories_{tag}"] = lambda log=log: fig_synapse_trajectories(log)
    written = {}
    for fig_name, job in jobs.items():
        fig, _ = job()
        written[fig_name] = [str(p) for p in sf.save(fig, out_dir, fig_name)]
        plt.close(fig)
    return written


def _unique(name: str, taken: dict, run_dir) -> str:
    """`name`; when two directories share a gate, the later one's own run name (run.name, e.g.
    the demo's "ngai-frozen") if that is new, else "name (<directory>)"."""
    if name not in taken:
        return name
    own = _run_name(run_dir)
    return own if own and own not in taken else f"{name} ({Path(run_dir).name})"


def _run_name(run_dir) -> str:
    """The run.name in a run directory's metrics.json ('' when there is none)."""
    path = RunDir(run_dir).metrics_json
    return read_json(path).get("name", "") if path.is_file() else ""


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m artsy.figures",
                                     description="figures of artsy runs (PDF, PNG, SVG)")
    parser.add_argument("run_dirs", nargs="+", type=Path,
                        help="run or multi-seed (--seeds) directories, one per gate")
    parser.add_argument("--out", type=Path, help="output directory (default RUN_DIR/figures)")
    args = parser.parse_args(argv)
    try:
        written = make_all(args.run_dirs, args.out or args.run_dirs[0] / "figures")
    except BAD_INPUT as err:
        print(f"error: {one_line(err)}", file=sys.stderr)
        return 2
    for name, paths in written.items():
        print(f"{name}: {', '.join(paths)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
