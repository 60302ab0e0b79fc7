"""The run loop: advance an NGAIModel over a Stimulus and record into an xarray Dataset."""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr
from tqdm.auto import tqdm

from . import blocked, io
from .backend import Backend
from .model import Circuit, NGAIModel, Stimulus
from .params import ModelParams

RECORDABLE = ("calcium", "ampa", "functional", "s_ampa", "s_nmda", "mg_block", "v", "bap",
              "i_ampa", "i_nmda")
SYNAPSE_VARS = ("calcium", "ampa", "functional", "s_ampa", "s_nmda")
POST_VARS = ("mg_block", "v", "bap", "i_ampa", "i_nmda")


def _group_by_step(steps: np.ndarray, *columns):
    """{step: (column slices...)} for events sorted by step."""
    order = np.argsort(steps, kind="stable")
    steps = steps[order]
    cols = [c[order] for c in columns]
    bounds = np.flatnonzero(np.diff(steps)) + 1
    starts = np.concatenate([[0], bounds]) if steps.size else np.zeros(0, int)
    ends = np.concatenate([bounds, [steps.size]]) if steps.size else np.zeros(0, int)
    return {int(steps[s]): tuple(c[s:e] for c in cols) for s, e in zip(starts, ends)}


def validate_run(circuit: Circuit, stimulus: Stimulus, record, record_synapses,
                 record_every) -> np.ndarray:
    """Check a run's arguments against each other (shared with the Brian2 reference).

    Returns the indices of the synapses to record.
    """
    unknown = [name for name in record if name not in RECORDABLE]
    if unknown:
        raise ValueError(f"record contains {unknown[0]!r}: must be among {RECORDABLE}")
    if int(record_every) != record_every or record_every < 1:
        raise ValueError(f"record_every = {record_every!r} is invalid: must be an integer >= 1")
    for name, n in (("release_source", circuit.n_sources),
                    ("post_spike_neuron", circuit.n_post)):
        values = getattr(stimulus, name)
        if values.size and (values.min() < 0 or values.max() >= n):
            raise ValueError(f"stimulus.{name} contains {values.max()}: must be in [0, {n})")
    if stimulus.post_spike_step.size and circuit.post_mode != "clamp":
        raise ValueError("post_spike_step is only valid with post_mode = 'clamp': LIF neurons "
                         "spike by themselves")
    rec_syn = (np.arange(circuit.n_syn) if record_synapses is None
               else np.asarray(record_synapses, dtype=np.int64).reshape(-1))
    if rec_syn.size and (rec_syn.min() < 0 or rec_syn.max() >= circuit.n_syn):
        raise ValueError(f"record_synapses must be in [0, n_syn = {circuit.n_syn})")
    return rec_syn


def simulate(circuit: Circuit, stimulus: Stimulus, params: ModelParams = None,
             backend: Backend = Backend(), record=RECORDABLE, record_synapses=None,
             record_every: int = 1, progress: bool = False, compile: bool = False,
             attrs: dict | None = None, kernel: str = "auto") -> xr.Dataset:
    """Simulate and return one Dataset with dims `time` and `synapse` (and `post`).

    `record` names the variables to record (see RECORDABLE), `record_synapses` the synapse indices
    (all by default), `record_every` the stride in steps. Silencing/unsilencing events and
    postsynaptic spikes are always recorded, as ragged tables on dims `event` and `spike`.

    `kernel` picks the implementation (docs/performance.md): "auto" (default) runs the exact
    time-blocked kernel (`synsim.blocked`: numba, its numpy fallback, or torch) whenever the run
    allows it and the reference step otherwise; "blocked" insists (a one-line ValueError says why
    a run cannot be blocked); "step" forces the step. Both give the same results (bitwise for
    clamped circuits). The Dataset's attributes `kernel` and `kernel_reason` say which ran and why.
    """
    params = params or ModelParams()
    all_synapses = record_synapses is None
    if all_synapses and not any(name in SYNAPSE_VARS for name in record):
        record_synapses = np.zeros(0, dtype=np.int64)  # no per-synapse buffer: no index array
    rec_syn = validate_run(circuit, stimulus, record, record_synapses, record_every)
    impl, reason = blocked.choose_kernel(kernel, backend, compile)
    if impl == "step":
        out = _run_step(circuit, stimulus, params, backend, record, rec_syn, record_every,
                        progress, compile)
    else:
        out = blocked.run(impl, circuit, stimulus, params, backend, record, rec_syn,
                          record_every, progress)
    dt = params.dt_ms
    rec_steps = np.arange(0, stimulus.n_steps, int(record_every))
    ds = _to_dataset(circuit, stimulus, dt, rec_steps, rec_syn, out["buffers"], out["events"],
                     out["spikes"], all_synapses=all_synapses)
    for name, value in (("ampa_final", out["rho"]), ("calcium_final", out["c"])):
        # the final state itself when every synapse is recorded (no copy: large circuits)
        ds[name] = ("synapse", value if all_synapses else value[rec_syn])
        ds[name].attrs.update(units="1", long_name=io.VARIABLES[name.split("_")[0]][1]
                              + f" at t = {stimulus.n_steps * dt:g} ms (end of run)")
    ds.attrs.update(params.as_attrs())
    ds.attrs.update(backend=backend.name, dtype=backend.dtype, device=backend.device,
                    duration_ms=stimulus.n_steps * dt, n_steps=stimulus.n_steps,
                    record_every=int(record_every), post_mode=circuit.post_mode,
                    kernel=impl, kernel_reason=reason)
    return io.annotate(ds, **(attrs or {}))


def _run_step(circuit: Circuit, stimulus: Stimulus, params: ModelParams, backend: Backend, record,
              rec_syn, record_every, progress, compile) -> dict:
    """The reference loop: NGAIModel.step once per step, recording before each step."""
    model = NGAIModel(circuit, params, backend, compile=compile)
    dt = params.dt_ms
    releases = _group_by_step(stimulus.release_step, stimulus.release_source,
                              stimulus.release_amplitude)
    forced = _group_by_step(stimulus.post_spike_step, stimulus.post_spike_neuron)
    rec_steps = np.arange(0, stimulus.n_steps, int(record_every))
    buffers = {name: np.empty((rec_steps.size, rec_syn.size if name in SYNAPSE_VARS
                               else circuit.n_post), dtype=bool if name == "functional" else float)
               for name in record}
    releases = {n: (backend.asarray(src, "int"), backend.asarray(amp))  # once, not per step
                for n, (src, amp) in releases.items()}
    rec_syn_b = backend.asarray(rec_syn, "int")
    events, spikes = [], []
    row = 0
    for n in tqdm(range(stimulus.n_steps), disable=not progress, desc="simulate", unit="step",
                  mininterval=0.5):
        if row < rec_steps.size and rec_steps[row] == n:
            _record(model, buffers, row, rec_syn_b)
            row += 1
        forced_post = None
        if n in forced:
            forced_post = np.zeros(circuit.n_post, dtype=bool)
            forced_post[forced[n][0]] = True
        rel = releases.get(n)
        spiked = model.step(n, *(rel if rel else (None, None)), forced_post=forced_post)
        if spiked.any():
            spikes.extend((n * dt, int(i)) for i in np.flatnonzero(spiked))
        flips = model.update_functional()
        if flips is not None:  # rho_{n+1} is first visible at t_{n+1}
            events.extend(((n + 1) * dt, int(i), 1) for i in flips[0])
            events.extend(((n + 1) * dt, int(i), -1) for i in flips[1])

    return {"buffers": buffers, "events": events, "spikes": spikes,
            "c": backend.to_numpy(model.c), "rho": backend.to_numpy(model.rho)}


def _record(model: NGAIModel, buffers: dict, row: int, rec_syn_b) -> None:
    to_np = model.backend.to_numpy
    syn = model.params.synapse
    need_currents = "i_ampa" in buffers or "i_nmda" in buffers
    values = {}
    if "calcium" in buffers:
        values["calcium"] = model.c[rec_syn_b]
    if "ampa" in buffers:
        values["ampa"] = model.rho[rec_syn_b]
    if "functional" in buffers:
        values["functional"] = model.functional[rec_syn_b]  # current: updated after every step
    if "s_ampa" in buffers:
        values["s_ampa"] = model.s_ampa()[model.syn_source[rec_syn_b]]
    if "s_nmda" in buffers:
        values["s_nmda"] = model.s_nmda()[model.syn_source[rec_syn_b]]
    if "mg_block" in buffers or need_currents:
        block = model.mg_block()
        values["mg_block"] = block
    if "v" in buffers:
        values["v"] = model.v
    if "bap" in buffers:
        values["bap"] = model.bap
    if need_currents:
        g_a, g_n = model.conductances()
        drive = model.v - syn.e_glu_mV
        values["i_ampa"] = g_a * drive
        values["i_nmda"] = g_n * block * drive
    for name, buf in buffers.items():
        buf[row] = to_np(values[name])


def _to_dataset(circuit: Circuit, stimulus: Stimulus, dt: float, rec_steps, rec_syn, buffers,
                events, spikes, all_synapses: bool = False) -> xr.Dataset:
    """The run's Dataset: recorded buffers, event and spike tables, and the stimulus it got.

    `events` is (time, synapse, kind) sorted by time, synapse, kind, or a list of such tuples in
    any order; `spikes` is (time, neuron), or a list of such tuples by time then neuron.
    `all_synapses`: the `synapse` dimension holds every synapse in order (whatever rec_syn is);
    its coordinates are then a RangeIndex and read-only views of the circuit's index arrays, so
    that a circuit of 1e7 synapses does not pay 26 B per synapse for them (docs/performance.md §4).
    """
    if isinstance(events, list):
        ev = np.array(sorted(events), dtype=float).reshape(-1, 3)
        events = (ev[:, 0], ev[:, 1], ev[:, 2])
    if isinstance(spikes, list):
        sp = np.array(spikes, dtype=float).reshape(-1, 2)
        spikes = (sp[:, 0], sp[:, 1])
    data_vars = {}
    for name, buf in buffers.items():
        dims = ("time", "synapse") if name in SYNAPSE_VARS else ("time", "post")
        data_vars[name] = (dims, buf)
    if "i_ampa" in buffers and "i_nmda" in buffers:
        data_vars["i_syn"] = (("time", "post"), buffers["i_ampa"] + buffers["i_nmda"])
    ev_time, ev_syn, ev_kind = events  # sorted by (time, synapse, kind)
    sp_time, sp_neuron = spikes  # by time, then neuron
    data_vars.update(
        event_time=("event", np.asarray(ev_time, dtype=float)),
        event_synapse=("event", np.asarray(ev_syn, dtype=np.int64)),
        event_kind=("event", np.asarray(ev_kind, dtype=np.int8)),
        spike_time=("spike", np.asarray(sp_time, dtype=float)),
        spike_neuron=("spike", np.asarray(sp_neuron, dtype=np.int64)),
        release_time=("release", stimulus.release_step * dt),
        release_source=("release", stimulus.release_source),
        release_amplitude=("release", stimulus.release_amplitude))
    if all_synapses:
        synapse, pre, post = pd.RangeIndex(circuit.n_syn), circuit.pre_neuron.view(), \
            circuit.syn_post.view()
        pre.flags.writeable = post.flags.writeable = False
    else:
        synapse, pre, post = rec_syn, circuit.pre_neuron[rec_syn], circuit.syn_post[rec_syn]
    coords = {"time": np.asarray(rec_steps * dt, float), "synapse": synapse,
              "post": np.arange(circuit.n_post),
              "pre_neuron": ("synapse", pre), "post_neuron": ("synapse", post)}
    return xr.Dataset(data_vars, coords=coords)
