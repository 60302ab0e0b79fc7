"""synsim.figures: every figure is written in every format, and plots exactly the dataset's data;
the CLI draws the registry's experiments, run or loaded from a demo run."""

import numpy as np
import pytest

from synsim import experiments, figures, protocols
from synsim.backend import Backend


@pytest.fixture(scope="module")
def datasets():
    return {
        "epsc": protocols.epsc((-70.0, 40.0), (0.0, 0.5), duration_ms=100.0),
        "iv": protocols.iv(np.arange(-100.0, 61.0, 20.0), duration_ms=100.0),
        "pairing_calcium": protocols.pairing(5.0, 3, (-20.0, 0.0), (0.3,), record_every_ms=0.5,
                                     tail_ms=200.0),
        "pairing": protocols.pairing(5.0, 5, (-40.0, -20.0, 0.0), (0.3, 0.0),
                                        record_every_ms=10.0, tail_ms=100.0),
        "stdp": protocols.stdp((-10.0, 10.0), 3, 5.0, record_every_ms=5.0),
        "population": protocols.spiking_neuron(n_inputs=8, rate_hz=20.0, i_ext_pA=450.0,
                                               duration_ms=300.0, rho0=[0.0, 0.3] * 4,
                                               record_every_ms=1.0),
    }


def test_every_figure_in_every_format(tmp_path, datasets):
    written = figures.make_all(tmp_path, datasets)
    assert set(written) == {"epsc", "iv", "calcium_thresholds", "plasticity_vs_voltage",
                            "stdp_window", "silent_fraction", "raster_ampa_heatmap"}
    for paths in written.values():
        assert sorted(p.rsplit(".", 1)[1] for p in paths) == ["pdf", "png", "svg"]
        for p in paths:
            assert (tmp_path / p.rsplit("/", 1)[1]).stat().st_size > 1000
    assert not list(tmp_path.glob(".*"))  # no temporary files left


def test_png_is_300_dpi(tmp_path, datasets):
    from PIL import Image

    fig, _ = figures.fig_iv(datasets["iv"])
    png = [p for p in figures.save(fig, tmp_path, "iv") if p.suffix == ".png"][0]
    dpi = Image.open(png).info["dpi"]
    assert dpi[0] == pytest.approx(300, abs=1)
    width_in = Image.open(png).size[0] / dpi[0]
    assert width_in <= figures.DOUBLE_COLUMN_IN + 0.2


def test_figure_data_match_the_datasets(datasets):
    ds = datasets["epsc"]
    _, data = figures.fig_epsc(ds)
    silent_rest = ds.post.values[(ds.rho0.values == 0) & (ds.v_hold.values == -70)][0]
    np.testing.assert_array_equal(data["silent -70 mV"], ds.i_syn.sel(post=silent_rest).values)
    _, data = figures.fig_iv(datasets["iv"])
    np.testing.assert_array_equal(data["i_nmda_peak"], datasets["iv"].i_nmda_peak.values)
    _, data = figures.fig_plasticity_vs_voltage(datasets["pairing"])
    np.testing.assert_array_equal(data["delta_ampa rho0=0.3"],
                                  datasets["pairing"].delta_ampa.sel(rho0_value=0.3).values)
    _, data = figures.fig_stdp(datasets["stdp"])
    np.testing.assert_array_equal(data["delta_ampa rho0=0"],
                                  datasets["stdp"].delta_ampa.sel(rho0_value=0.0).values)
    pop = datasets["population"]
    _, data = figures.fig_silent_fraction(pop)
    assert data["silent_fraction"][0] == 0.5
    _, data = figures.fig_raster_heatmap(pop)
    np.testing.assert_array_equal(data["ampa"], pop.ampa.values.T)
    np.testing.assert_array_equal(data["release_time"], pop.release_time.values)
    calcium = datasets["pairing_calcium"]
    _, data = figures.fig_calcium(calcium)
    syn = int(calcium.synapse[calcium.v_clamp == 0.0][0])
    np.testing.assert_array_equal(data["calcium +0 mV"],
                                  calcium.calcium.sel(synapse=syn, time=slice(0, 3000)))


def test_residual_figure(datasets):
    ours = datasets["pairing_calcium"]
    other = protocols.pairing(5.0, 3, (-20.0, 0.0), (0.3,), record_every_ms=0.5, tail_ms=200.0,
                              backend=Backend("torch", "float32"))
    fig, _ = figures.fig_residuals(ours, other)
    syn = int(ours.synapse.values[np.argmax(np.abs(ours.calcium.values).max(axis=0))])
    residual = ours.calcium.sel(synapse=syn).values - other.calcium.sel(synapse=syn).values
    np.testing.assert_array_equal(fig.axes[1].lines[0].get_ydata(), residual)  # what is drawn
    assert 0 < np.abs(residual).max() < 1e-4


def test_cli_rejects_a_missing_run_dir(tmp_path, capsys):
    assert figures.main([str(tmp_path / "out"), "--from", str(tmp_path / "nope")]) == 2
    assert "not a directory" in capsys.readouterr().err


def test_trajectories_along_rows_with_boundaries():
    """A caller's own dimension and phase coordinate: rows evenly spaced, phase changes dotted."""
    import xarray as xr

    ampa = np.array([[0.0, np.nan], [0.1, np.nan], [0.4, 0.0], [0.5, 0.2]])
    ds = xr.Dataset({"ampa": (("row", "synapse"), ampa)},
                    coords={"row": [0, 7, 30, 31], "phase": ("row", [0, 0, 1, 1]),
                            "synapse": [0, 1]}, attrs={"rho_sil": 0.05})
    fig, data = figures.fig_trajectories(ds, along="row", boundaries="phase")
    ax = fig.axes[0]
    np.testing.assert_array_equal(ax.lines[0].get_xdata(), np.arange(4))
    np.testing.assert_array_equal(ax.lines[1].get_ydata(), ampa[:, 1])
    assert [line.get_xdata()[0] for line in ax.lines[2:] if line.get_linestyle() == ":"] == [1.5]
    assert "phase boundaries" in ax.get_xlabel()
    fig, data = figures.fig_trajectories(ds)  # default: along the variables' own dimension
    np.testing.assert_array_equal(data["row"], [0, 7, 30, 31])


def test_trajectories_of_a_simulation_along_time(datasets):
    pop = datasets["population"]
    fig, data = figures.fig_trajectories(pop)
    np.testing.assert_array_equal(data["time"], pop.time.values)
    np.testing.assert_array_equal(data["ampa"], pop.ampa.transpose("time", "synapse").values)
    assert fig.axes[-1].get_xlabel() == figures.label(pop.time)


def test_cli_draws_the_registry_experiments(tmp_path, tiny_classic, capsys):
    assert figures.main([str(tmp_path), "--no-brian2"]) == 0
    printed = [line.split(":")[0] for line in capsys.readouterr().out.splitlines()]
    assert printed == list(figures.FIGURES)
    assert {p.stem for p in tmp_path.glob("*.png")} == set(figures.FIGURES)


def recording(experiment, name, ran):
    """`experiment`, noting its name in `ran` when it runs."""
    def protocol(**kw):
        ran.append(name)
        return experiment(**kw)
    return experiments.Experiment(protocol, {})


def test_cli_from_a_demo_run_loads_what_is_there(tmp_path, tiny_classic, monkeypatch):
    run_dir = tmp_path / "run"
    for name in ("epsc", "pairing", "population"):
        experiments.save(tiny_classic[name](), run_dir, name)
    ran = []
    for name, experiment in list(tiny_classic.items()):
        monkeypatch.setitem(tiny_classic, name, recording(experiment, name, ran))
    assert figures.main([str(tmp_path / "out"), "--from", str(run_dir), "--no-brian2"]) == 0
    assert sorted(ran) == ["iv", "pairing_calcium", "stdp"]  # the rest came from the run
    assert {p.stem for p in (tmp_path / "out").glob("*.svg")} == set(figures.FIGURES)
