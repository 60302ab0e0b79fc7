"""`python -m synsim.demo`: every CLASSIC experiment saved, the figure set drawn, the summary's
numbers read from the datasets."""

import json

import pytest
import xarray as xr

from synsim import demo, experiments, figures, io


@pytest.fixture
def no_brian2_pair(monkeypatch):
    monkeypatch.setattr(experiments, "brian2_pair", lambda *a, **kw: None)


def test_demo_saves_every_experiment_and_draws_the_figures(tmp_path, tiny_classic,
                                                           no_brian2_pair, capsys):
    summary = demo.run_receptor_experiments(tmp_path)
    for name, experiment in tiny_classic.items():
        xr.testing.assert_identical(io.load(tmp_path / f"{name}.nc"), io.load(
            experiments.save(experiment(), tmp_path / "again", name)))
    assert summary == json.loads((tmp_path / "summary.json").read_text())
    assert summary["figures"] == sorted(figures.FIGURES)
    assert set(summary["wall_time_s"]) == {*tiny_classic, "figures"}
    assert summary["pairing_protocol"] == "3 pulses at 5 Hz, voltage clamp"
    assert summary["epsc_peak_pA"]["silent -70 mV"] > -2.0  # no AMPA current at rest
    assert summary["minimal_stimulation"]["silent_fraction_true"] == 0.5
    demo.print_summary(summary, tmp_path)
    assert "NMDA I-V minimum" in capsys.readouterr().out


@pytest.mark.slow
def test_quick_demo_end_to_end(tmp_path):
    """The real quick demo (about 30 s): datasets as documented, Brian2 residuals if installed."""
    assert demo.main([str(tmp_path), "--quick"]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    for name in experiments.CLASSIC:
        assert io.load(tmp_path / f"{name}.nc").attrs["Conventions"].startswith("CF-")
    assert summary["pairing_protocol"] == "40 pulses at 2 Hz, voltage clamp"
    assert summary["pairing_ampa_final"]["-70 mV"] == {"rho0=0.3": 0.3, "rho0=0": 0.0}
    assert len(list((tmp_path / "figures").glob("*.png"))) == len(summary["figures"]) >= 7
