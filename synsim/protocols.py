"""Stimulation protocols: each builds a circuit and a stimulus, simulates, returns an xarray Dataset.

`simulator` (default `synsim.simulate.simulate`) is the function that runs the circuit; the
cross-check passes the Brian2 reference instead, so both run the same protocol code end to end.

Every protocol batches its conditions (holding potentials, initial occupancies, delays) into one
simulation of independent synapses, so a whole curve costs one run. Results carry CF `units` and
`long_name` attributes; protocol-level summaries are added as extra variables.

Every argument is checked before anything runs: durations must be finite and at least one step
dt_ms, frequencies and rates > 0, counts integers >= 1, potentials in
params.POTENTIAL_RANGE_MV, occupancies in [0, 1]; a bad one is a one-line ValueError naming it.
"""

from __future__ import annotations

import math

import numpy as np
import xarray as xr

from . import io
from .backend import Backend
from .model import Circuit, Stimulus, _count
from .params import POTENTIAL_RANGE_MV, ModelParams, check_number
from .simulate import simulate

PROTOCOLS = ("epsc", "iv", "pairing", "stdp", "minimal_stimulation", "spiking_neuron", "tetanus")


def _params(params: ModelParams | None) -> ModelParams:
    return params or ModelParams()


def _frozen(params: ModelParams) -> ModelParams:
    """The same model with AMPA trafficking switched off (for measuring receptors, not plasticity)."""
    return params.replace(synapse=params.synapse.replace(gamma_p=0.0, gamma_d=0.0))


def _positive(name: str, value: float, unit: str) -> float:
    return check_number(name, value, 0.0, low_open=True, unit=unit)


def _duration(name: str, value: float, dt_ms: float) -> float:
    """A duration: finite and at least one step dt_ms."""
    value = _positive(name, value, "ms")
    if value < dt_ms:
        raise ValueError(f"{name} = {value!r} is invalid: must be at least one step "
                         f"(dt_ms = {dt_ms:g} ms)")
    return value


def _seed(value) -> int:
    return _count("seed", value, 0)


def _as_list(name: str, values, low=-math.inf, high=math.inf, unit="") -> np.ndarray:
    try:
        arr = np.atleast_1d(np.asarray(values, dtype=float))
    except (TypeError, ValueError):
        arr = np.zeros((0,))
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{name} = {values!r} is invalid: must be a non-empty list of numbers")
    bad = arr[~((arr >= low) & (arr <= high))]  # NaN fails both comparisons
    if bad.size:
        raise ValueError(f"{name} contains {bad[0].item()!r}: must be in [{low:g}, {high:g}]"
                         f"{unit}")
    return arr


def epsc(v_hold_mV=(-70.0, 40.0), rho0=(0.0, 0.5), duration_ms: float = 250.0,
         params: ModelParams | None = None, backend: Backend = Backend(),
         plasticity: bool = False, simulator=simulate) -> xr.Dataset:
    """Voltage-clamp EPSCs of one release at t = 0, at each holding potential and occupancy.

    rho0 = 0 is a silent synapse (NMDA only), rho0 > 0 a functional one. With plasticity off (the
    default) the trace measures the receptors as they are, as a test pulse does.
    """
    params = _params(params)
    if not plasticity:
        params = _frozen(params)
    v = _as_list("v_hold_mV", v_hold_mV, *POTENTIAL_RANGE_MV, " mV")
    r = _as_list("rho0", rho0, 0, 1)
    _duration("duration_ms", duration_ms, params.dt_ms)
    vv, rr = np.meshgrid(v, r, indexing="ij")
    n = vv.size  # one postsynaptic neuron per synapse: each carries its own clamp current
    circuit = Circuit(syn_source=np.zeros(n, int), syn_post=np.arange(n), n_sources=1, n_post=n,
                      v_hold_mV=vv.ravel(), rho0=rr.ravel())
    stim = Stimulus.from_times(duration_ms, params.dt_ms, [0.0], [0])
    ds = simulator(circuit, stim, params, backend=backend, attrs={"protocol": "epsc"})
    ds = ds.assign_coords(v_hold=("post", vv.ravel()), rho0=("post", rr.ravel()))
    ds["v_hold"].attrs.update(units="mV", long_name="holding potential")
    ds["rho0"].attrs.update(units="1", long_name="initial AMPA occupancy")
    return ds


def _signed_peak(values: np.ndarray, axis: int = 0) -> np.ndarray:
    idx = np.argmax(np.abs(values), axis=axis)
    return np.take_along_axis(values, np.expand_dims(idx, axis), axis).squeeze(axis)


def iv(v_hold_mV=np.arange(-100.0, 61.0, 10.0), rho0: float = 0.5, duration_ms: float = 250.0,
       params: ModelParams | None = None, backend: Backend = Backend(),
       simulator=simulate) -> xr.Dataset:
    """Current-voltage relation of the peak AMPA and NMDA currents (plasticity off).

    The AMPA I-V is linear through E_glu; the NMDA I-V is J-shaped (negative slope below about
    -30 mV) because of the Mg2+ block.
    """
    ds = epsc(v_hold_mV, [rho0], duration_ms, params, backend, simulator=simulator)
    v = ds["v_hold"].values
    out = xr.Dataset(
        {"i_ampa_peak": ("v_hold", _signed_peak(ds["i_ampa"].values)),
         "i_nmda_peak": ("v_hold", _signed_peak(ds["i_nmda"].values)),
         "mg_block": ("v_hold", ds["mg_block"].values[0])},
        coords={"v_hold": v})
    out["i_ampa_peak"].attrs.update(units="pA", long_name="peak AMPA current")
    out["i_nmda_peak"].attrs.update(units="pA", long_name="peak NMDA current")
    out["v_hold"].attrs.update(units="mV", long_name="holding potential")
    out.attrs.update(ds.attrs, protocol="iv", rho0=rho0)
    return io.annotate(out)


def pairing(frequency_hz: float = 2.0, n_pulses: int = 200, v_clamp_mV=(-70.0, -30.0, -20.0,
            -10.0, 0.0), rho0=(0.3, 0.0), params: ModelParams | None = None,
            backend: Backend = Backend(), record_every_ms: float = 5.0, tail_ms: float = 500.0,
            progress: bool = False, simulator=simulate) -> xr.Dataset:
    """A presynaptic train at `frequency_hz` with the postsynaptic side clamped at each voltage.

    The classic unsilencing protocol (Isaac 1995; Liao 1995) and the Artola-Broecher-Singer voltage
    dependence: no change when hyperpolarised, silencing at moderate and unsilencing at strong
    depolarisation (docs/model.md §4.6). Result: `ampa_final` and `delta_ampa` on
    (v_clamp, rho0), plus the recorded trajectories.
    """
    params = _params(params)
    _positive("frequency_hz", frequency_hz, "Hz")
    n_pulses = _count("n_pulses", n_pulses)
    v = _as_list("v_clamp_mV", v_clamp_mV, *POTENTIAL_RANGE_MV, " mV")
    r = _as_list("rho0", rho0, 0, 1)
    _positive("record_every_ms", record_every_ms, "ms")
    _duration("tail_ms", tail_ms, params.dt_ms)
    period_ms = 1000.0 / frequency_hz
    if period_ms < params.dt_ms:
        raise ValueError(f"frequency_hz = {frequency_hz} is invalid: the period must be >= dt "
                         f"({params.dt_ms} ms)")
    times = np.arange(int(n_pulses)) * period_ms
    duration = times[-1] + tail_ms
    n_v, n_r = v.size, r.size
    circuit = Circuit(syn_source=np.zeros(n_v * n_r, int),
                      syn_post=np.repeat(np.arange(n_v), n_r), n_sources=1, n_post=n_v,
                      v_hold_mV=v, rho0=np.tile(r, n_v))
    stim = Stimulus.from_times(duration, params.dt_ms, times, np.zeros(times.size, int))
    every = max(1, int(round(record_every_ms / params.dt_ms)))
    ds = simulator(circuit, stim, params, backend=backend, record=("calcium", "ampa", "functional"),
                  record_every=every, progress=progress,
                  attrs={"protocol": "pairing", "frequency_hz": frequency_hz,
                         "n_pulses": int(n_pulses)})
    ds = ds.assign_coords(v_clamp=("synapse", np.repeat(v, n_r)), rho0=("synapse", np.tile(r, n_v)))
    final = ds["ampa_final"].values.reshape(n_v, n_r)
    ds["ampa_final_grid"] = (("v_clamp_mV", "rho0_value"), final)
    ds["delta_ampa"] = (("v_clamp_mV", "rho0_value"), final - r[None, :])
    ds = ds.assign_coords(v_clamp_mV=v, rho0_value=r)
    ds["ampa_final_grid"].attrs.update(units="1", long_name="AMPA occupancy after pairing")
    ds["delta_ampa"].attrs.update(units="1", long_name="change of AMPA occupancy")
    ds["v_clamp_mV"].attrs.update(units="mV", long_name="clamp potential")
    ds["rho0_value"].attrs.update(units="1", long_name="initial AMPA occupancy")
    ds["v_clamp"].attrs.update(units="mV", long_name="clamp potential")
    return ds


def stdp(delays_ms=(-50.0, -20.0, -10.0, -5.0, 5.0, 10.0, 20.0, 50.0), n_pairings: int = 60,
         frequency_hz: float = 1.0, rho0=(0.0, 0.3), v_rest_mV: float = -70.0,
         params: ModelParams | None = None, backend: Backend = Backend(),
         record_every_ms: float = 1.0, progress: bool = False, simulator=simulate) -> xr.Dataset:
    """Spike-timing pairing: presynaptic release and an imposed postsynaptic spike at each delay.

    delay = t_post - t_pre (positive: pre before post). The postsynaptic spike back-propagates
    (b jumps by the bAP amplitude, relieving the Mg2+ block) and adds c_post calcium. Result:
    `delta_ampa` and `unsilenced` (initially silent synapses that became functional) on
    (delay, rho0).
    """
    params = _params(params)
    d = _as_list("delays_ms", delays_ms, -500, 500, " ms")
    r = _as_list("rho0", rho0, 0, 1)
    _positive("frequency_hz", frequency_hz, "Hz")
    n_pairings = _count("n_pairings", n_pairings)
    check_number("v_rest_mV", v_rest_mV, *POTENTIAL_RANGE_MV, unit="mV")
    _positive("record_every_ms", record_every_ms, "ms")
    period_ms = 1000.0 / frequency_hz
    if period_ms <= 2 * np.abs(d).max():
        raise ValueError(f"frequency_hz = {frequency_hz} is invalid: the pairing period "
                         f"({period_ms:g} ms) must exceed twice the largest |delay| "
                         f"({np.abs(d).max():g} ms)")
    n_d, n_r = d.size, r.size
    offset = float(np.abs(d).max()) + 10.0  # every pre and post spike falls inside the run
    pair_t = offset + np.arange(int(n_pairings)) * period_ms
    # one source per delay (its own presynaptic timing), one clamped neuron per delay
    rel_t = np.tile(pair_t, n_d)
    rel_src = np.repeat(np.arange(n_d), pair_t.size)
    post_t = (pair_t[None, :] + d[:, None]).ravel()
    post_n = np.repeat(np.arange(n_d), pair_t.size)
    duration = pair_t[-1] + offset + 300.0
    circuit = Circuit(syn_source=np.repeat(np.arange(n_d), n_r),
                      syn_post=np.repeat(np.arange(n_d), n_r), n_sources=n_d, n_post=n_d,
                      v_hold_mV=v_rest_mV, rho0=np.tile(r, n_d))
    stim = Stimulus.from_times(duration, params.dt_ms, rel_t, rel_src,
                               post_spike_times_ms=post_t, post_spike_neurons=post_n)
    every = max(1, int(round(record_every_ms / params.dt_ms)))
    ds = simulator(circuit, stim, params, backend=backend, record=("calcium", "ampa", "functional",
                  "mg_block", "bap"), record_every=every, progress=progress,
                  attrs={"protocol": "stdp", "n_pairings": int(n_pairings),
                         "frequency_hz": frequency_hz, "v_rest_mV": v_rest_mV})
    ds = ds.assign_coords(delay=("synapse", np.repeat(d, n_r)), rho0=("synapse", np.tile(r, n_d)))
    final = ds["ampa_final"].values.reshape(n_d, n_r)
    ds["delta_ampa"] = (("delay_ms", "rho0_value"), final - r[None, :])
    ds["unsilenced"] = (("delay_ms", "rho0_value"),
                        (final >= params.synapse.rho_sil) & (r[None, :] < params.synapse.rho_sil))
    ds = ds.assign_coords(delay_ms=d, rho0_value=r)
    ds["delta_ampa"].attrs.update(units="1", long_name="change of AMPA occupancy")
    ds["unsilenced"].attrs.update(units="1", long_name="initially silent synapse unsilenced")
    ds["delay_ms"].attrs.update(units="ms", long_name="t_post - t_pre")
    ds["delay"].attrs.update(units="ms", long_name="t_post - t_pre")
    ds["rho0_value"].attrs.update(units="1", long_name="initial AMPA occupancy")
    return ds


def minimal_stimulation(n_synapses: int = 4, silent_fraction: float = 0.5, p_release: float = 0.3,
                        n_trials: int = 100, window_ms: float = 100.0, rho_functional: float = 0.5,
                        detection_pA: float | None = None, seed: int = 0,
                        params: ModelParams | None = None,
                        backend: Backend = Backend(), simulator=simulate) -> xr.Dataset:
    """Minimal stimulation with release failures at -70 and +40 mV (Isaac 1995; Liao 1995).

    One fibre contacts `n_synapses` synapses, a share `silent_fraction` of them silent; each
    releases independently with probability `p_release` on every trial. Trials are far apart in the
    experiment (about 1 Hz), so each starts from rest: all trials at both holding potentials run
    side by side as independent copies over one analysis window, plasticity off (so the silent
    share stays what it is). A trial is a failure when the peak current stays below
    `detection_pA` (default: half the smallest unitary response). The classic estimate
    S = 1 - ln F(-70)/ln F(+40) is compared with the true share.
    """
    params = _frozen(_params(params))
    _count("n_synapses", n_synapses)
    check_number("silent_fraction", silent_fraction, 0.0, 1.0)
    check_number("p_release", p_release, 0.0, 1.0, low_open=True)
    _count("n_trials", n_trials)
    _duration("window_ms", window_ms, params.dt_ms)
    check_number("rho_functional", rho_functional, 0.0, 1.0)
    if detection_pA is not None:
        _positive("detection_pA", detection_pA, "pA")
    seed = _seed(seed)
    n, n_trials = int(n_synapses), int(n_trials)
    n_silent = int(round(silent_fraction * n))
    rho = np.r_[np.zeros(n_silent), np.full(n - n_silent, rho_functional)]
    rng = np.random.default_rng(seed)
    released = rng.random((2, n_trials, n)) < p_release  # (holding, trial, contact)
    # synapse (holding, trial, contact) has its own source; neuron (holding, trial) its own clamp
    n_syn, n_post = 2 * n_trials * n, 2 * n_trials
    holding = np.array([-70.0, 40.0])
    circuit = Circuit(syn_source=np.arange(n_syn), syn_post=np.repeat(np.arange(n_post), n),
                      n_sources=n_syn, n_post=n_post,
                      v_hold_mV=np.repeat(holding, n_trials), rho0=np.tile(rho, n_post),
                      pre_neuron=np.zeros(n_syn, int))
    sources = np.flatnonzero(released.ravel())
    stim = Stimulus.from_times(window_ms + 1.0, params.dt_ms, np.full(sources.size, 1.0), sources)
    ds = simulator(circuit, stim, params, backend=backend, record=("i_ampa", "i_nmda"),
                  attrs={"protocol": "minimal_stimulation", "seed": seed})
    current = (ds["i_ampa"] + ds["i_nmda"]).values  # (time, post)
    peak = _signed_peak(current, axis=0).reshape(2, n_trials).T  # (trial, holding)
    syn = params.synapse
    if detection_pA is None:
        unit_ampa = syn.g_ampa_max_nS * rho_functional * 70.0
        unit_nmda = syn.g_nmda_nS * _block(40.0, syn.mg_mM) * 40.0
        detection_pA = 0.5 * min(unit_ampa, unit_nmda)
    success = np.abs(peak) > detection_pA
    fail = 1.0 - success.mean(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        estimate = float(1.0 - np.log(fail[0]) / np.log(fail[1]))
    out = xr.Dataset(
        {"peak_current": (("trial", "holding"), peak),
         "success": (("trial", "holding"), success),
         "released": (("holding", "trial", "contact"), released),
         "failure_rate": ("holding", fail),
         "silent_fraction_estimate": ((), estimate),
         "silent_fraction_true": ((), n_silent / n)},
        coords={"holding": holding, "trial": np.arange(n_trials), "contact": np.arange(n),
                "contact_silent": ("contact", rho < syn.rho_sil)})
    out["peak_current"].attrs.update(units="pA", long_name="peak synaptic current of the trial")
    out["success"].attrs.update(units="1", long_name="response detected")
    out["released"].attrs.update(units="1", long_name="contact released transmitter")
    out["failure_rate"].attrs.update(units="1", long_name="share of trials without a response")
    out["silent_fraction_estimate"].attrs.update(
        units="1", long_name="silent fraction estimated by 1 - ln F(-70)/ln F(+40)")
    out["silent_fraction_true"].attrs.update(units="1", long_name="true silent fraction")
    out["holding"].attrs.update(units="mV", long_name="holding potential")
    out["contact_silent"].attrs.update(units="1", long_name="contact is silent")
    out.attrs.update(ds.attrs, detection_pA=detection_pA, p_release=p_release,
                     n_synapses=n, n_trials=n_trials)
    return io.annotate(out)


def spiking_neuron(n_inputs: int = 20, rate_hz: float = 20.0, i_ext_pA: float = 450.0,
                   duration_ms: float = 1000.0, rho0: float = 0.0, seed: int = 0,
                   params: ModelParams | None = None, backend: Backend = Backend(),
                   record_every_ms: float = 0.1, simulator=simulate) -> xr.Dataset:
    """A leaky integrate-and-fire neuron driven by a current and by Poisson-timed inputs.

    Its own spikes back-propagate: inputs that release shortly before a spike see a relieved Mg2+
    block and unsilence (Hebbian unsilencing without a clamp). Spike and release times are drawn
    from `seed` before simulating, so every backend sees the same input.
    """
    params = _params(params)
    _count("n_inputs", n_inputs)
    _positive("rate_hz", rate_hz, "Hz")
    _duration("duration_ms", duration_ms, params.dt_ms)
    check_number("i_ext_pA", i_ext_pA, unit="pA")
    _positive("record_every_ms", record_every_ms, "ms")
    seed = _seed(seed)
    rng = np.random.default_rng(seed)
    n_steps = int(round(duration_ms / params.dt_ms))
    fires = rng.random((n_steps, int(n_inputs))) < rate_hz * params.dt_ms / 1000.0
    step, source = np.nonzero(fires)
    circuit = Circuit(syn_source=np.arange(int(n_inputs)), syn_post=np.zeros(int(n_inputs), int),
                      n_sources=int(n_inputs), n_post=1, post_mode="lif",
                      v_hold_mV=params.neuron.e_leak_mV, i_ext_pA=i_ext_pA, rho0=rho0)
    stim = Stimulus(n_steps=n_steps, release_step=step, release_source=source)
    every = max(1, int(round(record_every_ms / params.dt_ms)))
    return simulator(circuit, stim, params, backend=backend,
                     record=("calcium", "ampa", "functional", "v", "bap", "mg_block", "i_ampa",
                             "i_nmda"), record_every=every,
                     attrs={"protocol": "spiking_neuron", "seed": seed, "rate_hz": rate_hz})


def tetanus(duration_ms: float = 300.0, params: ModelParams | None = None,
            backend: Backend = Backend(), simulator=simulate) -> xr.Dataset:
    """100 Hz release at +40 mV onto a silent and a functional synapse (plasticity on).

    Calcium stays above theta_p, so rho approaches rho_inf along its closed form (the cross-check
    compares the two).
    """
    params = _params(params)
    _duration("duration_ms", duration_ms, params.dt_ms)
    times = np.arange(0.0, duration_ms - 10.0, 10.0)
    circuit = Circuit(syn_source=[0, 0], syn_post=[0, 0], n_sources=1, n_post=1, v_hold_mV=40.0,
                      rho0=[0.0, 0.3])
    stim = Stimulus.from_times(duration_ms, params.dt_ms, times, np.zeros(times.size, int))
    return simulator(circuit, stim, params, backend=backend,
                     record=("calcium", "ampa", "functional"), attrs={"protocol": "tetanus"})


def _block(v_mV: float, mg_mM: float) -> float:
    from .kinetics import mg_block

    return float(mg_block(np.asarray(v_mV), mg_mM))


def run(name: str, **kwargs) -> xr.Dataset:
    """Run a protocol by name (one of PROTOCOLS)."""
    table = {"epsc": epsc, "iv": iv, "pairing": pairing, "stdp": stdp,
             "minimal_stimulation": minimal_stimulation, "spiking_neuron": spiking_neuron,
             "tetanus": tetanus}
    if name not in table:
        raise ValueError(f"protocol = {name!r} is unknown: must be one of {PROTOCOLS}")
    return table[name](**kwargs)
