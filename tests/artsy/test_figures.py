"""artsy.figures: the run figures exist in every format and plot the run's own numbers."""

import json

import numpy as np
import pytest

from artsy import figures
from artsy.config import load_config
from artsy.runner import run_seeds, start_run
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


def hand_made_summary(curves):
    """summary.json of a multi-seed run, as artsy.runner writes it (seeds as JSON strings)."""
    avgs = [float(np.mean(c)) for c in curves.values()]
    return {"seeds_done": list(curves), "curves": {str(s): c for s, c in curves.items()},
            "summary": {"avg": {"mean": float(np.mean(avgs)),
                                "std": float(np.std(avgs, ddof=1)) if len(avgs) > 1 else 0.0}}}


def test_seeds_figure_draws_the_mean_and_the_std_band_of_the_seeds():
    summaries = {"ngai": hand_made_summary({1: [90.0, 80.0, 70.0], 2: [94.0, 70.0, 60.0],
                                            3: [92.0, 75.0, 68.0]}),
                 "none": hand_made_summary({1: [91.0, 85.0, 71.0]})}
    fig, data = figures.fig_seeds(summaries)
    ax = fig.axes[0]
    for (name, summary), line, band in zip(summaries.items(), ax.lines, ax.collections):
        curves = np.array(list(summary["curves"].values()))
        mean = curves.mean(0)
        std = curves.std(0, ddof=1) if len(curves) > 1 else np.zeros(3)
        np.testing.assert_allclose(line.get_ydata(), mean)
        np.testing.assert_array_equal(line.get_xdata(), [1, 2, 3])
        ys = band.get_paths()[0].vertices[:, 1]  # the band's outline: mean - std and mean + std
        np.testing.assert_allclose([ys.min(), ys.max()], [(mean - std).min(), (mean + std).max()])
        np.testing.assert_allclose(data[name]["std"], std)
    assert "3 seeds" in ax.get_legend().get_texts()[0].get_text()


@pytest.fixture(scope="module")
def seed_dirs(tmp_path_factory):
    out = tmp_path_factory.mktemp("seeds")
    return [run_seeds(load_config("tiny-synthetic", [f"run.out_dir={out}", f"run.name={gate}",
                                                     f"synapse.gate={gate}", "seeds=[1, 2]",
                                                     "data.synthetic.n_classes=4"]),
                      progress=False).path
            for gate in ("ngai", "none")]


def test_cli_draws_multi_seed_directories(seed_dirs, runs, tmp_path, capsys):
    assert figures.main([*map(str, seed_dirs), str(runs[0]), "--out", str(tmp_path)]) == 0
    assert "accuracy_seeds:" in capsys.readouterr().out
    assert (tmp_path / "accuracy_seeds.png").stat().st_size > 1000
    assert (tmp_path / "accuracy.png").is_file()  # the plain run's figures too
    assert (tmp_path / "gate_open_rate_ngai.png").is_file()
    summaries = {s["name"]: s for s in map(figures.load_seeds, seed_dirs)}
    assert list(summaries) == ["ngai", "none"]  # named by the runs' gate
    fig, _ = figures.fig_seeds(summaries)
    for seed_dir, line in zip(seed_dirs, fig.axes[0].lines):
        curves = [json.loads((seed_dir / f"seed-{s}" / "metrics.json").read_text())["curve"]
                  for s in (1, 2)]
        np.testing.assert_allclose(line.get_ydata(), np.mean(curves, axis=0))


def test_an_unfinished_multi_seed_directory_is_exit_2(tmp_path, capsys):
    part = run_seeds(load_config("tiny-synthetic", [f"run.out_dir={tmp_path}", "seeds=[1]"]),
                     stop_after=1, progress=False)
    assert figures.main([str(part.path), "--out", str(tmp_path / "figs")]) == 2
    assert "no finished seed" in capsys.readouterr().err


def test_two_runs_of_one_gate_are_told_apart_by_their_run_names(tmp_path):
    taken = {"ngai": None}
    named, unnamed = tmp_path / "ngai-frozen-1", tmp_path / "other-2"
    for d, name in ((named, "ngai-frozen"), (unnamed, "ngai")):
        d.mkdir()
        (d / "metrics.json").write_text(json.dumps({"gate": "ngai", "name": name}))
    assert figures._unique("ngai", taken, named) == "ngai-frozen"  # the demo's frozen row
    assert figures._unique("ngai", taken, unnamed) == "ngai (other-2)"  # same run name: folder
    assert figures._unique("none", taken, unnamed) == "none"
