"""synsim.experiments: every canonical experiment runs and gives what its readers draw and print;
the crosscheck, the figures and the demo read the same definitions."""

import matplotlib.pyplot as plt
import pytest
import xarray as xr

from synsim import crosscheck, experiments, figures
from synsim.experiments import CLASSIC, CROSSCHECK, Experiment
from synsim.simulate import simulate

# what the demo's summary reads from each CLASSIC dataset (the figures are drawn below)
SUMMARY_NEEDS = {
    "epsc": ("i_syn", "v_hold", "rho0"),
    "iv": ("i_nmda_peak", "v_hold"),
    "pairing": ("ampa_final_grid", "v_clamp_mV", "rho0_value"),
    "stdp": ("delta_ampa", "delay_ms", "rho0_value"),
    "minimal_stimulation": ("failure_rate", "silent_fraction_estimate", "silent_fraction_true"),
    "pairing_calcium": (),
    "population": (),
}


def test_registries_are_keyword_settings_of_protocols():
    assert set(SUMMARY_NEEDS) == set(CLASSIC)
    assert list(CROSSCHECK) == ["epsc", "iv", "pairing", "stdp", "minimal_stimulation",
                                "spiking_neuron", "tetanus"]  # the crosscheck report's names
    for experiment in (*CLASSIC.values(), *CROSSCHECK.values()):
        assert set(experiment.quick_settings) <= set(experiment.settings)  # quick: same shape


def test_figures_draw_classic_experiments():
    assert {dataset for dataset, _ in figures.FIGURES.values()} <= set(CLASSIC)


@pytest.mark.parametrize("name", list(CLASSIC))
def test_classic_experiment_quick_has_what_the_figures_and_demo_read(name):
    kw = {"progress": False} if "progress" in CLASSIC[name].settings else {}
    ds = CLASSIC[name](quick=True, **kw)
    assert isinstance(ds, xr.Dataset)
    for var in SUMMARY_NEEDS[name]:
        assert var in ds.variables, (name, var)
    for fig_name, (dataset, draw) in figures.FIGURES.items():
        if dataset == name:
            fig, data = draw(ds)
            assert data, fig_name
            plt.close(fig)


def test_quick_and_overrides_take_precedence():
    seen = []
    experiment = Experiment(lambda **kw: seen.append(kw), {"a": 1, "b": 2}, {"b": 3})
    experiment()
    experiment(quick=True)
    experiment(quick=True, b=4, params="p")
    assert seen == [{"a": 1, "b": 2}, {"a": 1, "b": 3}, {"a": 1, "b": 4, "params": "p"}]


@pytest.mark.parametrize("name", list(CROSSCHECK))
def test_crosscheck_experiment_runs_in_synsim(name):
    ds = CROSSCHECK[name]()
    assert isinstance(ds, xr.Dataset) and ds.attrs["protocol"] == name


@pytest.fixture
def reference_calls(monkeypatch):
    """Stands synsim itself in for the Brian2 reference; returns the protocols it ran, in order."""
    calls = []

    def reference(*args, **kwargs):
        calls.append(kwargs["attrs"]["protocol"])
        return simulate(*args, **kwargs)

    monkeypatch.setattr(experiments, "brian2_simulator", lambda target="numpy": reference)
    return calls


def test_crosscheck_runs_the_registry_on_both_simulators(reference_calls):
    report, ok = crosscheck.run(["pairing", "tetanus"], methods=("exact",))
    assert ok and set(report["protocols"]) == {"pairing/exact", "tetanus/exact"}
    # the registry's experiments on the reference; the closed forms from CLASSIC's EPSC and tetanus
    assert reference_calls == ["pairing", "tetanus", "epsc"]
    for entry in report["protocols"].values():  # synsim against itself: no difference at all
        assert all(v.get("max_abs_error", 0.0) == 0.0 for v in entry["variables"].values())


def test_residual_pair_is_the_crosscheck_pairing(reference_calls):
    ours, ref = experiments.brian2_pair()
    assert reference_calls == ["pairing"]
    expected = CROSSCHECK["pairing"]()
    xr.testing.assert_identical(ours, expected)
    xr.testing.assert_identical(ref, expected)


def test_residual_pair_without_brian2_is_none(monkeypatch, capsys):
    def missing(target="numpy"):
        raise ImportError("No module named 'brian2'")
    monkeypatch.setattr(experiments, "brian2_simulator", missing)
    assert experiments.brian2_pair() is None
    assert "brian2 is not installed" in capsys.readouterr().err


def test_save_and_load_a_run_directory(tmp_path, tiny_classic):
    ds = tiny_classic["iv"]()
    assert experiments.save(ds, tmp_path, "iv") == tmp_path / "iv.nc"
    loaded = experiments.load(tmp_path, ["iv", "epsc"])
    assert list(loaded) == ["iv"]  # only what is there
    xr.testing.assert_allclose(loaded["iv"], ds)
