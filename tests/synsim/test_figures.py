"""synsim.figures: every figure is written in every format, and plots exactly the dataset's data."""

import numpy as np
import pytest

from synsim import figures, protocols
from synsim.backend import Backend


@pytest.fixture(scope="module")
def datasets():
    return {
        "epsc": protocols.epsc((-70.0, 40.0), (0.0, 0.5), duration_ms=100.0),
        "iv": protocols.iv(np.arange(-100.0, 61.0, 20.0), duration_ms=100.0),
        "calcium": protocols.pairing(5.0, 3, (-20.0, 0.0), (0.3,), record_every_ms=0.5,
                                     tail_ms=200.0),
        "plasticity": protocols.pairing(5.0, 5, (-40.0, -20.0, 0.0), (0.3, 0.0),
                                        record_every_ms=10.0, tail_ms=100.0),
        "stdp": protocols.stdp((-10.0, 10.0), 3, 5.0, record_every_ms=5.0),
        "population": protocols.spiking_neuron(n_inputs=8, rate_hz=20.0, i_ext_pA=450.0,
                                               duration_ms=300.0, rho0=[0.0, 0.3] * 4,
                                               record_every_ms=1.0),
    }


def test_every_figure_in_every_format(tmp_path, datasets):
    written = figures.make_all(tmp_path, datasets, brian2=False)
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
    _, data = figures.fig_plasticity_vs_voltage(datasets["plasticity"])
    np.testing.assert_array_equal(data["delta_ampa rho0=0.3"],
                                  datasets["plasticity"].delta_ampa.sel(rho0_value=0.3).values)
    _, data = figures.fig_stdp(datasets["stdp"])
    np.testing.assert_array_equal(data["delta_ampa rho0=0"],
                                  datasets["stdp"].delta_ampa.sel(rho0_value=0.0).values)
    pop = datasets["population"]
    _, data = figures.fig_silent_fraction(pop)
    assert data["silent_fraction"][0] == 0.5
    _, data = figures.fig_raster_heatmap(pop)
    np.testing.assert_array_equal(data["ampa"], pop.ampa.values.T)
    np.testing.assert_array_equal(data["release_time"], pop.release_time.values)
    _, data = figures.fig_calcium(datasets["calcium"])
    syn = int(datasets["calcium"].synapse[datasets["calcium"].v_clamp == 0.0][0])
    np.testing.assert_array_equal(data["calcium +0 mV"],
                                  datasets["calcium"].calcium.sel(synapse=syn, time=slice(0, 3000)))


def test_residual_figure(datasets):
    ours = datasets["calcium"]
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
