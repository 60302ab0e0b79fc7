"""artsy.figures: the run figures exist in every format and plot the run's own numbers."""

import json

import numpy as np
import pytest

from artsy import figures
from artsy.config import load_config
from artsy.runner import start_run
from synsim import io


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    return [start_run(load_config("tiny-synthetic", [f"run.out_dir={out}", f"run.name={gate}",
                                                     f"synapse.gate={gate}"])).run_dir.path
            for gate in ("ngai", "none")]


def test_run_figures_in_every_format(runs, tmp_path):
    written = figures.make_all(runs, tmp_path)
    assert {"accuracy", "gate_open_rate_ngai", "synapse_trajectories_ngai",
            "gate_open_rate_none"} <= set(written)
    for paths in written.values():
        assert sorted(p.rsplit(".", 1)[1] for p in paths) == ["pdf", "png", "svg"]
        assert all((tmp_path / p.rsplit("/", 1)[1]).stat().st_size > 1000 for p in paths)


def test_figures_draw_the_runs_numbers(runs):
    """What is drawn (line and image data), not what is returned, matches the run's files."""
    metrics = {m["gate"]: m for m in (json.loads((r / "metrics.json").read_text()) for r in runs)}
    fig, _ = figures.fig_accuracy(metrics)
    drawn = [line.get_ydata() for line in fig.axes[0].lines]
    for gate, curve in zip(metrics, drawn):
        np.testing.assert_array_equal(curve, metrics[gate]["curve"])
    log = io.load(runs[0] / "synapses.nc")
    fig, _ = figures.fig_gate_open_rates(log)
    rates = log.gate_open_rate.transpose("after_task", "input_task", "synapse").values
    for k in range(log.sizes["after_task"]):
        np.testing.assert_array_equal(fig.axes[k].images[0].get_array(), rates[k, :k + 1, :k + 1])
    fig, _ = figures.fig_synapse_trajectories(log)
    ampa = log.ampa.transpose("step", "synapse").values
    for j, line in enumerate(fig.axes[0].lines[:ampa.shape[1]]):
        np.testing.assert_array_equal(line.get_ydata(), ampa[:, j])


def test_missing_run_dir_is_exit_2(tmp_path, capsys):
    assert figures.main([str(tmp_path / "nope")]) == 2
    assert "metrics.json does not exist" in capsys.readouterr().err
