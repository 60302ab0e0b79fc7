"""synsim against its Brian2 reference (synsim.reference.brian2), array by array, float64.

Same discretisation on both sides (exact <-> Brian2 'exact', zoh <-> 'exponential_euler'): every
recorded variable must agree to 1e-9 of its peak (measured: a few 1e-14), event and spike tables
exactly. Brian2's numpy target only (no compilation); each test runs in a few seconds.
"""

import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("brian2")

from synsim.model import Circuit, Stimulus  # noqa: E402
from synsim.params import ModelParams  # noqa: E402
from synsim.reference.brian2 import simulate_brian2  # noqa: E402
from synsim.simulate import simulate  # noqa: E402

pytestmark = pytest.mark.brian2

REL_TOL = 1e-9  # of each variable's peak |synsim|
ABS_TOL_AT_ZERO = 1e-12  # where the peak is 0
TABLES = ("event_time", "event_synapse", "event_kind", "spike_time", "spike_neuron")
DISCRETISATIONS = ("exact", "zoh")


def max_errors(ref, other) -> dict:
    """{variable: (max |ref - other|, peak |ref|)} over every array that is not an event table."""
    errors = {}
    for name in ref.data_vars:
        if name in TABLES:
            continue
        x = ref[name].values.astype(float)
        y = other[name].values.astype(float)
        assert x.shape == y.shape, f"{name}: shape {y.shape} != synsim {x.shape}"
        err = float(np.abs(x - y).max()) if x.size else 0.0
        peak = float(np.abs(x).max()) if x.size else 0.0
        errors[name] = (err, peak)
    return errors


def assert_agree(ref, other, label: str) -> dict:
    assert set(other.data_vars) == set(ref.data_vars)
    assert set(other.coords) == set(ref.coords)
    for name in ref.variables:
        assert other[name].dims == ref[name].dims, name
        assert other[name].attrs.get("units") == ref[name].attrs.get("units"), name
    for name in ref.coords:
        np.testing.assert_array_equal(other[name].values, ref[name].values, err_msg=name)
    for name in TABLES:  # exact equality, times included
        np.testing.assert_array_equal(other[name].values, ref[name].values, err_msg=name)
        assert other[name].dtype == ref[name].dtype, name
    errors = max_errors(ref, other)
    report = ", ".join(f"{k} {e / p if p else e:.1e}" for k, (e, p) in errors.items())
    print(f"\n[{label}] max |synsim - brian2| / peak: {report}")
    for name, (err, peak) in errors.items():
        bound = REL_TOL * peak if peak > 0 else ABS_TOL_AT_ZERO
        assert err <= bound, f"{label}: {name} differs by {err:.3e} (peak {peak:.3e})"
    return errors


def both(circuit, stimulus, params, **kw):
    return simulate(circuit, stimulus, params, **kw), simulate_brian2(circuit, stimulus, params,
                                                                       **kw)


# --- scenarios -------------------------------------------------------------------------------

def clamp_scenario(params):
    """One source; clamps at -70, +40, -10 and -17 mV; rho0 0 and 0.3 (0.0102 at -17 mV)."""
    v = np.array([-70.0, 40.0, -10.0, -17.0])
    circuit = Circuit(syn_source=np.zeros(8, int), syn_post=np.repeat(np.arange(4), 2), n_sources=1,
                      n_post=4, v_hold_mV=v, rho0=[0.0, 0.3, 0.0, 0.3, 0.0, 0.3, 0.0102, 0.3])
    stimulus = Stimulus.from_times(250.0, params.dt_ms, [0.0, 80.0, 160.0], [0, 0, 0])
    return circuit, stimulus


def pairing_scenario(params):
    """Imposed postsynaptic spikes with bAPs: pre 10 ms before post, and post 5 ms before pre."""
    circuit = Circuit(syn_source=[0, 1, 0, 1], syn_post=[0, 0, 1, 1], n_sources=2, n_post=2,
                      v_hold_mV=[-70.0, -65.0], rho0=[0.0, 0.3, 0.3, 0.0])
    t = np.arange(5) * 50.0
    stimulus = Stimulus.from_times(
        270.0, params.dt_ms, release_times_ms=np.r_[t, t + 5.0],
        release_sources=np.r_[np.zeros(5), np.ones(5)].astype(int),
        post_spike_times_ms=np.r_[t + 10.0, t + 2.0, t + 2.0],  # neuron 1 twice in a step: once
        post_spike_neurons=np.r_[np.zeros(5), np.ones(5), np.ones(5)].astype(int))
    return circuit, stimulus


def lif_scenario(params):
    """Two LIF neurons driven by i_ext and by three synapses (two sources)."""
    circuit = Circuit(syn_source=[0, 0, 1], syn_post=[0, 1, 1], n_sources=2, n_post=2,
                      post_mode="lif", v_hold_mV=[-70.0, -60.0], i_ext_pA=[520.0, 505.0],
                      rho0=[0.2, 0.5, 0.0])
    steps = np.arange(0, 2000, 73)
    stimulus = Stimulus(n_steps=2000, release_step=np.r_[steps, steps[::3] + 13],
                        release_source=np.r_[np.zeros(steps.size), np.ones(steps[::3].size)])
    return circuit, stimulus


def amplitude_scenario(params):
    """Release amplitudes != 1, two releases of one source in one step, strided recording."""
    circuit = Circuit(syn_source=[0, 1, 2, 0], syn_post=[0, 0, 1, 1], n_sources=3, n_post=2,
                      v_hold_mV=[-20.0, 0.0], rho0=[0.0, 0.1, 0.02, 0.6])
    stimulus = Stimulus(n_steps=2000,
                        release_step=[0, 0, 5, 100, 100, 100, 300, 301, 302, 1000],
                        release_source=[0, 0, 1, 2, 2, 0, 1, 1, 2, 0],
                        release_amplitude=[0.3, 0.7, 1.7, 0.25, 0.5, 2.0, 0.1, 0.9, 3.3, 0.45])
    return circuit, stimulus


# --- tests -----------------------------------------------------------------------------------

@pytest.mark.parametrize("discretisation", DISCRETISATIONS)
def test_voltage_clamp(discretisation):
    params = ModelParams(discretisation=discretisation)
    ref, b2 = both(*clamp_scenario(params), params)
    assert_agree(ref, b2, f"clamp {discretisation}")
    kinds = set(ref.event_kind.values.tolist())
    assert kinds == {-1, 1}, "the scenario must exercise unsilencing and silencing"
    # NMDA current inward at -70 mV, outward at +40 mV
    assert b2.i_nmda.sel(post=0).values.min() < 0 < b2.i_nmda.sel(post=1).values.max()


def test_discretisations_differ():
    """The exact and ZOH calcium updates really are different schemes (the test is sensitive)."""
    exact = ModelParams(discretisation="exact")
    circuit, stimulus = clamp_scenario(exact)
    ref_zoh = simulate(circuit, stimulus, exact.replace(discretisation="zoh"),
                       record=("calcium",))
    b2_exact = simulate_brian2(circuit, stimulus, exact, record=("calcium",))
    diff = np.abs(ref_zoh.calcium.values - b2_exact.calcium.values).max()
    assert diff > 1e-4 * np.abs(ref_zoh.calcium.values).max()


@pytest.mark.parametrize("discretisation", DISCRETISATIONS)
def test_pairing_with_backpropagating_spikes(discretisation):
    params = ModelParams(discretisation=discretisation)
    ref, b2 = both(*pairing_scenario(params), params)
    assert_agree(ref, b2, f"pairing {discretisation}")
    assert ref.sizes["spike"] == 10  # duplicate imposed spikes in one step count once
    assert ref.bap.values.max() > 0
    assert ref.sizes["event"] >= 1


@pytest.mark.parametrize("discretisation", DISCRETISATIONS)
def test_lif_neuron(discretisation):
    params = ModelParams(discretisation=discretisation)
    ref, b2 = both(*lif_scenario(params), params)
    assert_agree(ref, b2, f"lif {discretisation}")
    for k in range(2):
        assert (ref.spike_neuron.values == k).sum() >= 5, "each neuron must spike several times"
    # refractoriness: successive spikes of one neuron at least refractory_ms apart
    for k in range(2):
        times = ref.spike_time.values[ref.spike_neuron.values == k]
        assert np.diff(times).min() >= params.neuron.refractory_ms


@pytest.mark.parametrize("discretisation", DISCRETISATIONS)
def test_release_amplitudes(discretisation):
    params = ModelParams(discretisation=discretisation)
    kw = dict(record_every=3, record_synapses=[3, 1])
    ref, b2 = both(*amplitude_scenario(params), params, **kw)
    assert ref.sizes["time"] == 667
    assert_agree(ref, b2, f"amplitudes {discretisation}")
    # two releases of source 0 in step 0 (0.3 + 0.7): the AMPA trace peaks near 1
    assert 0.9 < ref.s_ampa.sel(synapse=3).values.max() < 2.1


def test_partial_record_and_attrs():
    params = ModelParams()
    circuit, stimulus = clamp_scenario(params)
    stimulus = Stimulus(n_steps=300, release_step=stimulus.release_step[:1],
                        release_source=stimulus.release_source[:1])
    kw = dict(record=("v", "ampa", "functional"), record_synapses=[5, 0])
    ref, b2 = both(circuit, stimulus, params, **kw)
    assert_agree(ref, b2, "partial record")
    assert b2.attrs["brian2_target"] == "numpy"
    assert b2.attrs["brian2_build_s"] >= 0 and b2.attrs["brian2_run_s"] > 0
    assert b2.attrs["discretisation"] == "exact" and b2.attrs["brian2_method"] == "exact"
    assert b2.calcium_final.attrs["units"] == "1"


def test_invalid_arguments():
    params = ModelParams()
    circuit, stimulus = clamp_scenario(params)
    with pytest.raises(ValueError, match="target"):
        simulate_brian2(circuit, stimulus, params, target="cuda")
    with pytest.raises(ValueError, match="record contains"):
        simulate_brian2(circuit, stimulus, params, record=("weight",))
    with pytest.raises(ValueError, match="record_every"):
        simulate_brian2(circuit, stimulus, params, record_every=0)


def test_brian2_is_imported_lazily():
    code = ("import sys, synsim.reference.brian2 as m; "
            "assert 'brian2' not in sys.modules, 'brian2 imported at module import'")
    subprocess.run([sys.executable, "-c", code], check=True)
