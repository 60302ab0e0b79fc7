"""The exact time-blocked kernels (synsim.blocked) against the reference step."""

import functools
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from synsim import blocked, protocols
from synsim.backend import Backend
from synsim.model import Circuit, Stimulus
from synsim.params import ModelParams
from synsim.simulate import RECORDABLE, simulate

ROOT = Path(__file__).resolve().parents[2]

# every protocol of synsim.protocols, shrunk to well under a second on the step
SMALL = {
    "epsc": dict(duration_ms=100.0),
    "iv": dict(v_hold_mV=np.arange(-100.0, 61.0, 20.0), duration_ms=100.0),
    "pairing": dict(frequency_hz=10.0, n_pulses=20, tail_ms=100.0),
    "stdp": dict(frequency_hz=5.0, n_pairings=5),
    "minimal_stimulation": dict(n_trials=20),
    "spiking_neuron": dict(duration_ms=1000.0, i_ext_pA=700.0),
    "tetanus": dict(duration_ms=300.0),
}
LIF_PROTOCOLS = {"spiking_neuron"}
EVENT_VARS = ("event_time", "event_synapse", "event_kind", "spike_time", "spike_neuron")


def run(name, kernel, **kw):
    return protocols.run(name, simulator=functools.partial(simulate, kernel=kernel),
                         **{**SMALL[name], **kw})


@functools.lru_cache(maxsize=None)
def step_result(name):
    return run(name, "step")


def assert_same(ref, got, rtol):
    """Every variable equal (rtol = 0) or within rtol of its peak; event and spike tables
    identical."""
    assert set(ref.data_vars) == set(got.data_vars)
    for name in ref.data_vars:
        a, b = ref[name].values, got[name].values
        assert a.shape == b.shape, name
        if name in EVENT_VARS or a.dtype.kind != "f" or rtol == 0:
            np.testing.assert_array_equal(b, a, err_msg=name)
        else:
            peak = max(np.abs(a).max(initial=0.0), 1e-300)
            assert np.abs(b - a).max(initial=0.0) <= rtol * peak, name
    for name in ref.coords:
        np.testing.assert_array_equal(got[name].values, ref[name].values, err_msg=name)


@pytest.fixture
def no_numba(monkeypatch):
    """As on a machine without numba: `import numba` fails."""
    monkeypatch.setitem(sys.modules, "numba", None)
    assert blocked.numba_kernels() is None


@pytest.mark.parametrize("name", protocols.PROTOCOLS)
def test_blocked_equals_step_on_every_protocol(name):
    ref = step_result(name)
    got = run(name, "auto")
    assert ref.attrs["kernel"] == "step" and got.attrs["kernel"] == "blocked-numba"
    # clamped circuits: bitwise; LIF: numba's libm exp against numpy's SIMD exp, a few ulp
    assert_same(ref, got, rtol=1e-12 if name in LIF_PROTOCOLS else 0.0)
    if name in ("pairing", "stdp", "tetanus", "spiking_neuron"):
        assert got.sizes["event"] > 0  # the comparison covers silencing/unsilencing events
    if name in ("stdp", "spiking_neuron"):
        assert got.sizes["spike"] > 0


@pytest.mark.parametrize("name", ["pairing", "stdp", "spiking_neuron"])
def test_zoh_discretisation_and_other_parameters(name):
    """The kernels take every constant from StepConstants: the ZOH variant (Brian2's
    exponential_euler), another dt and other synapse constants agree as well."""
    params = ModelParams(discretisation="zoh", dt_ms=0.05,
                         synapse=ModelParams().synapse.replace(K=3.0, mg_mM=1.2, c_post=0.3))
    short = {"stdp": dict(n_pairings=2), "spiking_neuron": dict(duration_ms=300.0)}.get(name, {})
    ref = run(name, "step", params=params, **short)
    got = run(name, "auto", params=params, **short)
    assert got.attrs["kernel"] == "blocked-numba" and got.attrs["discretisation"] == "zoh"
    assert_same(ref, got, rtol=1e-12 if name in LIF_PROTOCOLS else 0.0)


@pytest.mark.parametrize("name", protocols.PROTOCOLS)
def test_numpy_fallback_without_numba_is_bitwise(name, no_numba):
    got = run(name, "auto")
    assert got.attrs["kernel"] == "blocked-numpy"
    assert_same(step_result(name), got, rtol=0.0)


@pytest.mark.parametrize("name", ["pairing", "stdp", "minimal_stimulation", "spiking_neuron"])
def test_torch_blocked_agrees_on_cpu(name):
    pytest.importorskip("torch")
    short = {"spiking_neuron": dict(duration_ms=400.0), "stdp": dict(n_pairings=2)}.get(name, {})
    ref = run(name, "step", **short) if short else step_result(name)
    got = run(name, "auto", backend=Backend("torch", "float64"), **short)
    assert got.attrs["kernel"] == "blocked-torch"
    assert got.sizes.get("event", 0) > 0 or name == "minimal_stimulation"
    assert_same(ref, got, rtol=1e-12)


@pytest.mark.parametrize("name", ["stdp", "spiking_neuron"])
def test_torch_blocked_gpu_schedule_agrees_on_cpu(name, monkeypatch):
    """The GPU schedule (flips and spikes as bit masks, read back once per chunk) run on CPU."""
    pytest.importorskip("torch")
    monkeypatch.setattr(blocked, "HOST_TESTS", False)
    short = {"spiking_neuron": dict(duration_ms=400.0), "stdp": dict(n_pairings=2)}[name]
    got = run(name, "auto", backend=Backend("torch", "float64"), **short)
    assert got.sizes["event"] > 0
    assert_same(run(name, "step", **short), got, rtol=1e-12)


def test_torch_blocked_float32_close_to_float64():
    pytest.importorskip("torch")
    ref = run("pairing", "step", n_pulses=8)
    got = run("pairing", "auto", backend=Backend("torch", "float32"), n_pulses=8)
    for name, tol in (("calcium", 5e-5), ("ampa", 1e-3)):  # the bounds of docs/model.md §6
        peak = np.abs(ref[name].values).max()
        assert np.abs(got[name].values - ref[name].values).max() <= tol * peak


def pairing_circuit():
    """Two clamped neurons, two sources, imposed spikes: every clamp-mode branch."""
    circuit = Circuit(syn_source=[0, 0, 1, 1, 1, 0], syn_post=[0, 1, 0, 1, 1, 0], n_sources=2,
                      n_post=2, v_hold_mV=[-10.0, -20.0], rho0=[0.0, 0.3, 0.3, 0.0, 0.5, 0.011])
    times = np.arange(10) * 50.0
    stim = Stimulus.from_times(600.0, 0.1, np.r_[times, times + 7.0],
                               np.r_[np.zeros(10, int), np.ones(10, int)],
                               post_spike_times_ms=[102.0, 310.0, 310.0],
                               post_spike_neurons=[0, 1, 1])
    return circuit, stim


def lif_circuit(n_post=3, n_syn=40, steps=3000):
    """Feed-forward LIF neurons with shuffled synapses, shared sources and bAPs."""
    rng = np.random.default_rng(1)
    circuit = Circuit(syn_source=rng.integers(0, 5, n_syn), syn_post=rng.integers(0, n_post, n_syn),
                      n_sources=5, n_post=n_post, post_mode="lif", v_hold_mV=-65.0,
                      i_ext_pA=[520.0, 600.0, 480.0][:n_post], rho0=rng.uniform(0, 0.05, n_syn))
    fires = rng.random((steps, 5)) < 0.004
    step, source = np.nonzero(fires)
    return circuit, Stimulus(n_steps=steps, release_step=step, release_source=source,
                             release_amplitude=rng.uniform(0.5, 1.0, step.size))


@pytest.mark.parametrize("make", [pairing_circuit, lif_circuit])
@pytest.mark.parametrize("record", [("calcium", "ampa", "functional"), RECORDABLE])
def test_strided_subset_recording_is_the_slice_of_full_recording(make, record):
    circuit, stim = make()
    subset = [4, 0, 2, 4]  # unsorted, with a repeat
    full = simulate(circuit, stim, record=record, kernel="blocked")
    part = simulate(circuit, stim, record=record, record_synapses=subset, record_every=7,
                    kernel="blocked")
    step = simulate(circuit, stim, record=record, record_synapses=subset, record_every=7,
                    kernel="step")
    for name in record:
        expected = full[name].values[::7]
        if "synapse" in full[name].dims:
            expected = expected[:, subset]
        np.testing.assert_array_equal(part[name].values, expected, err_msg=name)
    assert_same(step, part, rtol=1e-12 if circuit.post_mode == "lif" else 0.0)
    np.testing.assert_array_equal(part.synapse.values, subset)


def test_clamp_without_currents_uses_the_synapse_kernel_and_is_bitwise():
    circuit, stim = pairing_circuit()
    record = ("calcium", "ampa", "functional", "s_nmda", "mg_block", "v", "bap")
    ref = simulate(circuit, stim, record=record, kernel="step")
    got = simulate(circuit, stim, record=record, kernel="blocked")
    assert_same(ref, got, rtol=0.0)
    assert got.sizes["event"] > 0 and got.sizes["spike"] == 2  # duplicate imposed spike once


def test_bap_decays_back_to_the_resting_block():
    """Long after a bAP, B(V + b) rounds to B(V) and the step stops recomputing it; the blocked
    kernels follow the same switch (clamp mode, numba and numpy)."""
    circuit = Circuit(syn_source=[0, 0, 0], syn_post=[0, 1, 1], n_sources=1, n_post=2,
                      v_hold_mV=[-30.0, -65.0], rho0=[0.2, 0.0, 0.5])
    stim = Stimulus.from_times(1800.0, 0.1, [5.0, 1400.0], [0, 0], post_spike_times_ms=[10.0],
                               post_spike_neurons=[1])
    record = ("calcium", "ampa", "mg_block", "bap")
    ref = simulate(circuit, stim, record=record, record_every=10, kernel="step")
    for kernel in ("blocked-numba", "blocked-numpy"):
        assert_same(ref, simulate(circuit, stim, record=record, record_every=10, kernel=kernel),
                    rtol=0.0)


def test_event_buffer_overflow_reruns_the_block():
    """Hundreds of synapses silenced in the same step: far more events than the first buffer
    holds, so blocks are rerun with room for them; LIF spikes overflow likewise."""
    n = 700
    params = ModelParams()
    circuit = Circuit(syn_source=np.zeros(n, int), syn_post=np.arange(n) % 3, n_sources=1,
                      n_post=3, v_hold_mV=-20.0, rho0=np.full(n, 0.01 * (1 + 1e-9)))
    stim = Stimulus.from_times(300.0, params.dt_ms, np.arange(0.0, 250.0, 10.0), np.zeros(25, int))
    ref = simulate(circuit, stim, record=(), kernel="step")
    got = simulate(circuit, stim, record=(), kernel="blocked")
    assert ref.sizes["event"] >= n
    assert_same(ref, got, rtol=0.0)
    lif, lstim = lif_circuit(n_post=2, n_syn=10, steps=20000)
    ref = simulate(lif, lstim, record=("v",), kernel="step")
    got = simulate(lif, lstim, record=("v",), kernel="blocked")
    assert ref.sizes["spike"] > 40
    assert_same(ref, got, rtol=1e-12)


def test_automatic_choice_and_forced_switch():
    circuit, stim = pairing_circuit()
    assert simulate(circuit, stim, record=()).attrs["kernel"] == "blocked-numba"
    assert simulate(circuit, stim, record=(), kernel="step").attrs["kernel"] == "step"
    assert simulate(circuit, stim, record=(), kernel="blocked-numpy").attrs["kernel"] \
        == "blocked-numpy"
    # a run that cannot be blocked: auto falls back to the step and says why ...
    ds = simulate(circuit, stim, record=(), backend=Backend("numpy", "float32"))
    assert ds.attrs["kernel"] == "step" and "float64 only" in ds.attrs["kernel_reason"]
    assert blocked.choose_kernel("auto", Backend("torch"), compile=True)[0] == "step"
    # ... and forcing the blocked kernel on it is one clear line
    for backend, compile_, why in ((Backend("numpy", "float32"), False, "float64 only"),
                                   (Backend("torch"), True, "compile = True")):
        with pytest.raises(ValueError, match=f"kernel = 'blocked' is invalid for this run: "
                                             f".*{why}") as err:
            simulate(circuit, stim, backend=backend, compile=compile_, kernel="blocked")
        assert "\n" not in str(err.value)
    for kernel, match in (("fast", "kernel = 'fast' is invalid: must be one of"),
                          ("blocked-torch", "is invalid for backend 'numpy'")):
        with pytest.raises(ValueError, match=match) as err:
            simulate(circuit, stim, kernel=kernel)
        assert "\n" not in str(err.value)


def test_forcing_numba_without_numba_is_one_line(no_numba):
    circuit, stim = pairing_circuit()
    with pytest.raises(ValueError, match="numba is not installed") as err:
        simulate(circuit, stim, kernel="blocked-numba")
    assert "\n" not in str(err.value)
    assert simulate(circuit, stim, record=(), kernel="blocked").attrs["kernel"] == "blocked-numpy"


CACHE_PROBE = """
import json, numpy as np
from synsim import _blocked_numba as K
from synsim.simulate import simulate
from synsim.model import Circuit, Stimulus
clamp = Circuit(syn_source=[0, 0], syn_post=[0, 1], n_sources=1, n_post=2, v_hold_mV=[-10.0, 0.0])
lif = Circuit(syn_source=[0, 0], syn_post=[0, 0], n_sources=1, n_post=1, post_mode="lif")
stim = Stimulus(n_steps=50, release_step=[3], release_source=[0], post_spike_step=[5],
                post_spike_neuron=[1])
simulate(clamp, stim, record=("calcium", "ampa", "functional", "v"))
simulate(lif, Stimulus(n_steps=50, release_step=[3], release_source=[0]))
kernels = (K.source_chunk, K.bap_chunk, K.block_used, K.clamp_chunk, K.neuron_chunk)
print(json.dumps({f.__name__: [sum(f.stats.cache_hits.values()), sum(f.stats.cache_misses.values())]
                  for f in kernels}))
"""


def test_second_process_loads_the_numba_cache_without_compiling():
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_WAIT_POLICY": "PASSIVE"}
    for attempt in range(2):  # the first process compiles only if the cache is cold
        out = subprocess.run([sys.executable, "-c", CACHE_PROBE], env=env, cwd=ROOT,
                             capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr
        stats = json.loads(out.stdout.strip().splitlines()[-1])
        if all(misses == 0 for _, misses in stats.values()):
            break
    assert all(hits >= 1 and misses == 0 for hits, misses in stats.values()), stats
