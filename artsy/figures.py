"""Run figures: `python -m artsy.figures RUN_DIR [RUN_DIR ...] [--out OUT_DIR]`.

For one or more runs (typically one per gate on the same setting): accuracy against tasks for each
run, the gate open-rate matrices (input task x synapse after each task), and every synapse's
trajectory (AMPA occupancy and calcium) across tasks. The drawing, style and formats are synsim's
(`synsim.figures`): the learner's log uses the simulator's variable names for the receptor
state, so one plotting code serves both.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import numpy as np
import xarray as xr

from synsim import figures as sf
from synsim import io

from .errors import BAD_INPUT, RunError, one_line
from .rundir import RunDir


def load_run(run_dir: Path) -> tuple[dict, xr.Dataset | None]:
    """(metrics.json as a dict, synapses.nc or None) of a run directory."""
    run_dir = RunDir(run_dir)
    if not run_dir.metrics_json.exists():
        raise RunError(f"{run_dir.metrics_json} does not exist: expected a run directory written "
                       "by python -m artsy.run")
    metrics = json.loads(run_dir.metrics_json.read_text())
    log = run_dir.synapse_log
    return metrics, (io.load(log) if log.exists() else None)


def fig_accuracy(runs: dict[str, dict]):
    """Accuracy on all classes seen so far, after each task, one line per run (gate)."""
    plt = sf.style()
    fig, ax = plt.subplots(figsize=(sf.SINGLE_COLUMN_IN * 0.7, 2.0))
    data = {}
    for (name, metrics), marker in zip(runs.items(), "os^vDP*X"):
        curve = np.asarray(metrics["curve"], dtype=float)
        ax.plot(np.arange(1, curve.size + 1), curve, marker + "-", ms=3,
                label=f"{name} (Avg {metrics['avg']:.1f}, Last {metrics['last']:.1f})")
        data[name] = curve
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    top = max((float(np.nanmax(c)) for c in data.values()), default=100.0)
    ax.set_ylim(top=min(100.5, top + 0.15 * (top - ax.get_ylim()[0]) + 1.0))
    ax.set_xlabel("tasks learned (1)")
    ax.set_ylabel("top-1 accuracy, seen classes (%)")
    ax.legend(loc="upper right")
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
    """Write every run figure into out_dir; returns {name: [paths]}."""
    import matplotlib.pyplot as plt

    runs, logs = {}, {}
    for run_dir in run_dirs:
        metrics, log = load_run(run_dir)
        name = metrics.get("gate", Path(run_dir).name)
        if name in runs:
            name = f"{name} ({Path(run_dir).name})"
        runs[name], logs[name] = metrics, log
    jobs = {"accuracy": lambda: fig_accuracy(runs)}
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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m artsy.figures",
                                     description="figures of one or more artsy runs (PDF, PNG, SVG)")
    parser.add_argument("run_dirs", nargs="+", type=Path, help="run directories (one per gate)")
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
