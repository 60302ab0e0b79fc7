"""artsy.figures: the run figures exist in every format and plot the run's own numbers."""

import json

import numpy as np
import pytest

from artsy import figures
from artsy.run import main as run_main
from synsim import figures as sf
from synsim import io


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    dirs = []
    for gate in ("ngai", "none"):
        assert run_main(["tiny-synthetic", f"run.out_dir={out}", f"run.name={gate}",
                         f"synapse.gate={gate}"]) == 0
        dirs.append(next(out.glob(f"{gate}-*")))
    return dirs


def test_run_figures_in_every_format(runs, tmp_path):
    written = figures.make_all(runs, tmp_path)
    assert {"accuracy", "gate_open_rate_ngai", "synapse_trajectories_ngai",
            "gate_open_rate_none"} <= set(written)
    for paths in written.values():
        assert sorted(p.rsplit(".", 1)[1] for p in paths) == ["pdf", "png", "svg"]
        assert all((tmp_path / p.rsplit("/", 1)[1]).stat().st_size > 1000 for p in paths)


def test_figure_data_are_the_runs_numbers(runs):
    metrics = {m["gate"]: m for m in (json.loads((r / "metrics.json").read_text()) for r in runs)}
    _, data = figures.fig_accuracy(metrics)
    for gate, m in metrics.items():
        np.testing.assert_array_equal(data[gate], m["curve"])
    log = io.load(runs[0] / "synapses.nc")
    _, data = figures.fig_gate_open_rates(log)
    np.testing.assert_array_equal(data["gate_open_rate"],
                                  log.gate_open_rate.transpose("after_task", "input_task",
                                                               "synapse").values)
    _, data = sf.fig_trajectories(log)
    np.testing.assert_array_equal(data["ampa"], log.ampa.transpose("step", "synapse").values)


def test_missing_run_dir_is_exit_2(tmp_path, capsys):
    assert figures.main([str(tmp_path / "nope")]) == 2
    assert "metrics.json does not exist" in capsys.readouterr().err
