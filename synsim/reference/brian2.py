"""The NGAI model written as Brian2 equations: an independent reference for `synsim.simulate`.

`simulate_brian2(circuit, stimulus, params)` takes the same `Circuit`, `Stimulus` and `ModelParams`
as `synsim.simulate.simulate` and returns a Dataset with the same variables, dims, coords and units,
so the two can be compared array by array (docs/model.md §6: float64, same discretisation).

Brian2 is an optional extra (``pip install synsim-artsy[brian2]``); it is imported inside the
function, never at module import.

Formulation (docs/model.md §7.1, adapted so that both discretisations are reproduced exactly):

* ``src`` (NeuronGroup, one neuron per synsim *source*): the traces rA, dA, rN, dN (clock-driven
  decays), driven by a SpikeGeneratorGroup ``gen`` with one generator neuron per release event
  through ``feed`` (Synapses gen -> src, ``w`` = release amplitude, ``on_pre: rA_post += w ...``).
  One neuron per event carries any amplitude and any number of releases per source and step.
* ``post`` (NeuronGroup): clamp (``v : volt (constant)``) or LIF (exact/exponential-Euler V with the
  conductances and the Mg block frozen over the step, ``(unless refractory)``), the bAP trace b, and
  ``Bn`` = B(V_n + b_n), set by a ``run_regularly`` at ``before_groups`` (the ZOH of the block).
  Imposed postsynaptic spikes (clamp mode) come from a threshold ``t_in_timesteps == nxt``, where
  ``nxt`` walks a per-neuron table of spike steps (a TimedArray used as a lookup table).
* ``S`` (Synapses src -> post): rho (exact update in a ``run_regularly`` at ``before_groups``, gates
  frozen at c_n), c, ``on_post: c += c_post``, summed conductances.

Calcium. ``discretisation='zoh'``: ``dc/dt = -c/tau_Ca + kappa*sN_pre*Bn_post`` with
``method='exponential_euler'`` (sN_pre and Bn_post are constant over the step for Brian2), which is
synsim's ZOH update. ``discretisation='exact'``: Brian2's ``method='exact'`` cannot integrate the
cascade rN, dN -> c when the traces live in another group: it treats ``sN_pre`` as a constant over
dt, which is the ZOH update again (error 2.8e-3 of the peak at dt = 0.1 ms, docs/model.md §5.2).
The exact update is therefore written by superposition: every source integrates, with
``method='exact'``, the calcium that one step of its own NMDA drive adds at B = 1,
``dq/dt = -q/tau_Ca + kappa*sN`` with q = 0 at the start of each step, and each synapse does
``dc/dt = -c/tau_Ca`` (exact) and then ``c += q_pre*Bn_post`` (``run_regularly`` at
``after_groups``). Both integrals come from Brian2's matrix-exponential solver, not from synsim.

Schedule of one step n -> n+1 (``when``, ``order``):

====================  =====  ====================================================================
start                  -1    summed conductances for the current monitors (rho_n, traces at t_n)
start                   0    StateMonitors (state at t_n)
before_groups           0    S: rho update from c_n; post: Bn = B(v_n + b_n); src: q = 0 (exact)
groups                  0    summed gA_tot, gN_tot for the LIF (rho_{n+1}, traces at t_n)
groups                  1    S state updater (c)
groups                  2    src state updater (traces, q)
groups                  3    post state updater (v, b, not_refractory)
after_groups            0    S: c += q_pre*Bn_post (exact only)
thresholds             0/3   gen (releases), post threshold (SpikeMonitor at 4)
synapses               -1/1  feed.pre (trace jumps), S.post (c += c_post)
resets                  3    post reset (v = V_reset, b += A_b)
====================  =====  ====================================================================

Brian2's default order would put the summed-variable updaters at ``post.order - 1`` (here 2, a tie
with ``src`` resolved by name), so their order is set explicitly.
"""

from __future__ import annotations

import shutil
import tempfile
import time as _time

import numpy as np

from .. import io
from ..kinetics import MG_BLOCK_HALF_mM, MG_BLOCK_SLOPE_PER_mV
from ..model import Circuit, Stimulus
from ..params import ModelParams
from ..simulate import RECORDABLE, _to_dataset, validate_run

TARGETS = ("numpy", "cython", "cpp_standalone")

# synsim name -> (Brian2 group key, Brian2 variable, unit name for the conversion or None)
_MONITORED = {
    "calcium": ("syn", "c", None),
    "ampa": ("syn", "rho", None),
    "s_ampa": ("src", "sA", None),
    "s_nmda": ("src", "sN", None),
    "mg_block": ("post", "B", None),
    "v": ("post", "v", "mV"),
    "bap": ("post", "b", "mV"),
    "i_ampa": ("post", "i_ampa", "pA"),
    "i_nmda": ("post", "i_nmda", "pA"),
}

# preferences that describe the machine rather than the numerics: kept from the caller's setup
_KEEP_PREF_PREFIXES = ("codegen.cpp.", "codegen.runtime.cython.cache_dir",
                       "codegen.runtime.cython.multiprocess_safe", "logging.")


def _validate(circuit: Circuit, stimulus: Stimulus, record, record_synapses, record_every,
              target) -> np.ndarray:
    """The same argument checks as synsim.simulate (plus the Brian2 target); returns rec_syn."""
    if target not in TARGETS:
        raise ValueError(f"target = {target!r} is invalid: must be one of {TARGETS}")
    if circuit.n_syn == 0 or circuit.n_sources == 0 or circuit.n_post == 0:
        raise ValueError(f"the Brian2 reference needs at least one synapse, source and postsynaptic "
                         f"neuron: got n_syn = {circuit.n_syn}, n_sources = {circuit.n_sources}, "
                         f"n_post = {circuit.n_post}")
    return validate_run(circuit, stimulus, record, record_synapses, record_every)


def _forced_spike_table(stimulus: Stimulus, n_post: int):
    """Per-neuron sorted unique imposed-spike steps, each list closed by a -1 sentinel.

    Returns (table, offset): neuron k's steps are table[offset[k]:...] up to the sentinel.
    """
    table, offset = [], np.zeros(n_post, dtype=np.int64)
    for k in range(n_post):
        offset[k] = len(table)
        table.extend(np.unique(stimulus.post_spike_step[stimulus.post_spike_neuron == k]).tolist())
        table.append(-1)
    return np.asarray(table, dtype=float), offset


def simulate_brian2(circuit: Circuit, stimulus: Stimulus, params: ModelParams | None = None,
                    record=RECORDABLE, record_synapses=None, record_every: int = 1,
                    target: str = "numpy", build_dir=None):
    """Simulate the NGAI model with Brian2 and return a Dataset shaped like `synsim.simulate`'s.

    Parameters mirror `synsim.simulate.simulate`; `target` is the Brian2 code-generation target
    ("numpy", "cython" or "cpp_standalone"), `build_dir` the cpp_standalone project directory
    (a temporary directory, deleted afterwards, when None; reuse a directory to skip the rebuild).
    `ds.attrs` gains `brian2_target`, `brian2_version`, `brian2_method` and, in seconds,
    `brian2_build_s` (object creation, code generation and compilation), `brian2_run_s` (the
    simulation loop; for cpp_standalone the binary, result files included), `brian2_total_s` and,
    for cpp_standalone, `brian2_compile_s` (make).

    Silencing/unsilencing events come from a monitor of every synapse's functional flag on every
    step (n_syn x n_steps booleans): fine for a reference, not for long runs of large circuits.
    Brian2 preferences are reset to their defaults for the call (a user's ~/.brian or
    ./brian_preferences cannot change the numerics) and restored afterwards.
    """
    params = params or ModelParams()
    rec_syn = _validate(circuit, stimulus, record, record_synapses, record_every, target)
    record_every = int(record_every)

    import brian2 as b2
    from brian2.devices.device import get_device, reset_device, set_device

    saved_prefs = dict(b2.prefs.prefs)
    b2.prefs.reset_to_defaults()  # independent of ~/.brian/user_preferences and ./brian_preferences
    b2.prefs.prefs.update({k: v for k, v in saved_prefs.items()
                           if k.startswith(_KEEP_PREF_PREFIXES)})
    standalone = target == "cpp_standalone"
    tmp_dir = None
    try:
        if standalone:
            import gc

            gc.collect()  # drop dead Brian2 objects: their names would rename (and rebuild) code
            if build_dir is None:
                tmp_dir = build_dir = tempfile.mkdtemp(prefix="synsim_brian2_")
            set_device("cpp_standalone", build_on_run=False, directory=str(build_dir))
        else:
            b2.prefs.codegen.target = target
        try:
            out = _build_and_run(b2, circuit, stimulus, params, record, rec_syn, record_every,
                                 standalone, build_dir)
        finally:
            if standalone:
                dev = get_device()
                dev.reinit()
                dev.activate()
                reset_device()
    finally:
        b2.prefs.prefs.clear()
        b2.prefs.prefs.update(saved_prefs)
        if tmp_dir is not None:
            shutil.rmtree(tmp_dir, ignore_errors=True)

    buffers, events, spikes, final, timing = out
    dt = params.dt_ms
    rec_steps = np.arange(0, stimulus.n_steps, record_every)
    ds = _to_dataset(circuit, stimulus, dt, rec_steps, rec_syn, buffers, events, spikes)
    for name, value in final.items():
        ds[name] = ("synapse", value[rec_syn])
        ds[name].attrs.update(units="1", long_name=io.VARIABLES[name.split("_")[0]][1]
                              + f" at t = {stimulus.n_steps * dt:g} ms (end of run)")
    ds.attrs.update(params.as_attrs())
    ds.attrs.update(backend="brian2", dtype="float64", device="cpu",
                    duration_ms=stimulus.n_steps * dt, n_steps=stimulus.n_steps,
                    record_every=record_every, post_mode=circuit.post_mode,
                    brian2_target=target, brian2_version=b2.__version__,
                    brian2_method=("exact" if params.discretisation == "exact"
                                   else "exponential_euler"), **timing)
    return io.annotate(ds)


def _namespace(b2, params: ModelParams, dt_s: float) -> dict:
    syn, neu = params.synapse, params.neuron
    ms, mV, nS, pF = b2.ms, b2.mV, b2.nS, b2.pF
    # synsim counts the refractory period in whole steps, round(refractory/dt); Brian2 uses
    # timestep(refractory, dt) = floor(refractory/dt + 1e-3), so give it the rounded period
    refractory_steps = int(round(neu.refractory_ms / params.dt_ms))
    return dict(
        tau_Ar=syn.tau_ampa_rise_ms * ms, tau_Ad=syn.tau_ampa_decay_ms * ms,
        tau_Nr=syn.tau_nmda_rise_ms * ms, tau_Nd=syn.tau_nmda_decay_ms * ms,
        tau_Ca=syn.tau_ca_ms * ms, tau_b=syn.tau_bap_ms * ms, tau_rho=syn.tau_rho_ms * ms,
        eta_A=syn.eta_ampa, eta_N=syn.eta_nmda, kappa=syn.kappa_per_ms / ms,
        g_Amax=syn.g_ampa_max_nS * nS, g_N=syn.g_nmda_nS * nS, E_glu=syn.e_glu_mV * mV,
        mg_over_half=syn.mg_mM / MG_BLOCK_HALF_mM, mg_slope=MG_BLOCK_SLOPE_PER_mV,
        theta_d=syn.theta_d, theta_p=syn.theta_p, gamma_d=syn.gamma_d, gamma_p=syn.gamma_p,
        c_post=syn.c_post, A_b=syn.bap_amplitude_mV * mV, rho_sil=syn.rho_sil,
        gL=neu.g_leak_nS * nS, EL=neu.e_leak_mV * mV, Cm=neu.c_m_pF * pF,
        V_th=neu.v_threshold_mV * mV, V_reset=neu.v_reset_mV * mV,
        refractory_period=refractory_steps * dt_s * b2.second,
    )


def _build_and_run(b2, circuit, stimulus, params, record, rec_syn, record_every, standalone,
                   build_dir):
    t_setup = _time.perf_counter()  # object creation compiles code too (connect, on cython)
    b2.start_scope()
    second = b2.second
    dt_s = params.dt_ms * 1e-3
    clock = b2.Clock(dt=dt_s * second, name="synsim_clock")
    rec_clock = (clock if record_every == 1
                 else b2.Clock(dt=record_every * dt_s * second, name="synsim_record_clock"))
    ns = _namespace(b2, params, dt_s)
    exact = params.discretisation == "exact"
    method = "exact" if exact else "exponential_euler"
    lif = circuit.post_mode == "lif"
    currents = "i_ampa" in record or "i_nmda" in record
    forced = stimulus.post_spike_step.size > 0
    post_spikes = lif or forced
    objects = []

    # --- sources: presynaptic traces, one set per synsim source ---
    src_eqs = """
    drA/dt = -rA/tau_Ar : 1
    ddA/dt = -dA/tau_Ad : 1
    drN/dt = -rN/tau_Nr : 1
    ddN/dt = -dN/tau_Nd : 1
    sA = eta_A*(dA - rA) : 1
    sN = eta_N*(dN - rN) : 1
    """
    if exact:  # calcium added over one step per unit block (superposition, see module docstring)
        src_eqs += "dq/dt = -q/tau_Ca + kappa*sN : 1\n"
    src = b2.NeuronGroup(circuit.n_sources, src_eqs, method=method, clock=clock, order=2,
                         name="sources")
    objects.append(src)
    if exact:
        objects.append(src.run_regularly("q = 0", when="before_groups", name="sources_q_reset"))

    # --- releases: one generator neuron per release event, weight = amplitude ---
    n_rel = stimulus.release_step.size
    if n_rel:
        order = np.argsort(stimulus.release_step, kind="stable")  # synsim's add order per step
        rel_step = stimulus.release_step[order]
        gen = b2.SpikeGeneratorGroup(n_rel, np.arange(n_rel), rel_step * dt_s * second,
                                     clock=clock, name="releases")
        feed = b2.Synapses(gen, src, "w : 1", on_pre="""
            rA_post += w
            dA_post += w
            rN_post += w
            dN_post += w
            """, clock=clock, name="release_feed")
        feed.connect(i=np.arange(n_rel), j=stimulus.release_source[order])
        feed.w = stimulus.release_amplitude[order]
        objects += [gen, feed]

    # --- postsynaptic neurons ---
    post_eqs = """
    db/dt = -b/tau_b : volt
    Bn : 1
    B = 1/(1 + mg_over_half*exp(-mg_slope*(v + b)/mV)) : 1
    """
    if currents:
        post_eqs += """
        gA_rec : siemens
        gN_rec : siemens
        i_ampa = gA_rec*(v - E_glu) : amp
        i_nmda = gN_rec*B*(v - E_glu) : amp
        """
    post_kw = {}
    if lif:
        post_eqs += """
        dv/dt = (gL*(EL - v) + I_ext - (gA_tot + gN_tot*Bn)*(v - E_glu))/Cm : volt (unless refractory)
        I_ext : amp (constant)
        gA_tot : siemens
        gN_tot : siemens
        """
        post_kw = dict(threshold="v > V_th", reset="v = V_reset\nb += A_b",
                       refractory=ns["refractory_period"])
    else:
        post_eqs += "v : volt (constant)\n"
        if forced:
            post_eqs += "nxt : integer\nkf : integer\n"
            post_kw = dict(threshold="t_in_timesteps == nxt",
                           reset="b += A_b\nkf += 1\nnxt = int(forced_table(kf*dt))")
            table, offset = _forced_spike_table(stimulus, circuit.n_post)
            ns["forced_table"] = b2.TimedArray(table, dt=dt_s * second, name="forced_table")
    post = b2.NeuronGroup(circuit.n_post, post_eqs, method=method, clock=clock, order=3,
                          name="post", **post_kw)
    post.v = circuit.v_hold_mV * b2.mV
    if lif:
        post.I_ext = circuit.i_ext_pA * b2.pA
    if forced:
        post.kf = offset
        post.nxt = table[offset].astype(np.int64)
    objects.append(post)
    objects.append(post.run_regularly("Bn = B", when="before_groups", name="post_block_zoh"))

    # --- synapses ---
    syn_eqs = """
    rho : 1
    functional = rho >= rho_sil : boolean
    """
    syn_eqs += ("dc/dt = -c/tau_Ca : 1 (clock-driven)\n" if exact else
                "dc/dt = -c/tau_Ca + kappa*sN_pre*Bn_post : 1 (clock-driven)\n")
    if lif:
        syn_eqs += """
        gA_tot_post = g_Amax*rho*sA_pre : siemens (summed)
        gN_tot_post = g_N*sN_pre : siemens (summed)
        """
    if currents:
        syn_eqs += """
        gA_rec_post = g_Amax*rho*sA_pre : siemens (summed)
        gN_rec_post = g_N*sN_pre : siemens (summed)
        """
    S = b2.Synapses(src, post, syn_eqs, on_post="c += c_post" if post_spikes else None,
                    method=method, clock=clock, order=1, name="synapses")
    S.connect(i=circuit.syn_source, j=circuit.syn_post)
    S.rho = circuit.rho0
    S.c = circuit.c0
    for name, updater in S.summed_updaters.items():
        if name.startswith("gA_rec") or name.startswith("gN_rec"):
            updater.when, updater.order = "start", -1  # before the monitors: state at t_n
        else:
            updater.when, updater.order = "groups", 0  # rho_{n+1}, traces at t_n
    objects.append(S)
    objects.append(S.run_regularly("""
        kp = gamma_p*int(c > theta_p)/tau_rho
        kd = gamma_d*int(c > theta_d)/tau_rho
        ktot = kp + kd
        rho_inf = kp/(ktot + int(ktot == 0*Hz)*Hz)
        rho = rho_inf + (rho - rho_inf)*exp(-ktot*dt)
        """, when="before_groups", name="synapses_rho_update"))
    if exact:
        objects.append(S.run_regularly("c += q_pre*Bn_post", when="after_groups",
                                       name="synapses_calcium_drive"))

    # --- monitors ---
    groups = {"syn": S, "src": src, "post": post}
    monitors = {}
    for key, group in groups.items():
        names = [var for name, (k, var, _) in _MONITORED.items() if k == key and name in record]
        if not names:
            continue
        if key == "syn":
            if not rec_syn.size:
                continue
            rec_idx = rec_syn
        else:
            rec_idx = True
        monitors[key] = b2.StateMonitor(group, names, record=rec_idx, clock=rec_clock,
                                        name=f"monitor_{key}")
        objects.append(monitors[key])
    # functional flags of every synapse on every step: silencing / unsilencing events
    fmon = b2.StateMonitor(S, "functional", record=True, clock=clock, name="monitor_functional")
    objects.append(fmon)
    smon = None
    if post_spikes:
        smon = b2.SpikeMonitor(post, name="monitor_spikes")
        objects.append(smon)

    net = b2.Network(objects)
    duration = stimulus.n_steps * dt_s * second
    timing = {}
    if standalone:
        net.run(duration, namespace=ns)  # records the run into the project (code generation)
        device = b2.get_device()
        device.build(directory=str(build_dir), compile=True, run=True, with_output=False)
        total = _time.perf_counter() - t_setup
        compile_s = sum(v for v in device.timers["compile"].values() if v is not None)
        run_s = device.timers["run_binary"] or 0.0  # the binary: simulation and result files
        timing.update(brian2_build_s=float(total - run_s),  # code generation and compilation
                      brian2_compile_s=float(compile_s), brian2_run_s=float(run_s),
                      brian2_total_s=float(total))
    else:
        marks = []

        def report(elapsed, completed, start, duration):  # first call: right after before_run
            marks.append(_time.perf_counter())

        net.run(duration, namespace=ns, report=report, report_period=3600 * second)
        t1 = _time.perf_counter()
        start = marks[0] if marks else t_setup
        timing.update(brian2_build_s=start - t_setup, brian2_run_s=t1 - start,
                      brian2_total_s=t1 - t_setup)

    return _collect(b2, circuit, stimulus, params, record, rec_syn, record_every, S, monitors,
                    fmon, smon, timing)


def _collect(b2, circuit, stimulus, params, record, rec_syn, record_every, S, monitors, fmon,
             smon, timing):
    dt = params.dt_ms
    syn_i, syn_j = np.asarray(S.i[:]), np.asarray(S.j[:])
    if not (np.array_equal(syn_i, circuit.syn_source) and np.array_equal(syn_j, circuit.syn_post)):
        raise RuntimeError("Brian2 created the synapses in another order than synsim's: the "
                           "synapse indices cannot be compared")
    n_rec = np.arange(0, stimulus.n_steps, record_every).size
    functional = np.asarray(fmon.functional, dtype=bool)  # (n_syn, n_steps), state at t_n
    rho_final = np.asarray(S.rho[:], dtype=float)
    c_final = np.asarray(S.c[:], dtype=float)
    buffers = {}
    for name in record:
        if name == "functional":
            buffers[name] = functional[rec_syn][:, ::record_every].T.copy()
            continue
        key, var, unit = _MONITORED[name]
        if key == "syn" and not rec_syn.size:
            buffers[name] = np.empty((n_rec, 0))
            continue
        values = getattr(monitors[key], var)
        values = np.asarray(values / getattr(b2, unit) if unit else values, dtype=float)
        if key == "src":  # per-source trace -> per recorded synapse
            values = values[circuit.syn_source[rec_syn]]
        if values.shape[1] != n_rec:
            raise RuntimeError(f"Brian2 recorded {values.shape[1]} samples of {name}, "
                               f"expected {n_rec}")
        buffers[name] = values.T.copy()
    # events: functional flips between t_n and t_{n+1} are stamped t_{n+1} (as synsim does)
    flags = np.concatenate([functional, (rho_final >= params.synapse.rho_sil)[:, None]], axis=1)
    syn_idx, step = np.nonzero(flags[:, 1:] != flags[:, :-1])
    events = [((int(n) + 1) * dt, int(i), 1 if flags[i, n + 1] else -1)
              for i, n in zip(syn_idx, step)]
    spikes = []
    if smon is not None:
        steps = np.rint(np.asarray(smon.t_) / (dt * 1e-3)).astype(np.int64)
        spikes = [(int(n) * dt, int(i)) for n, i in zip(steps, np.asarray(smon.i))]
    final = {"ampa_final": rho_final, "calcium_final": c_final}
    return buffers, events, spikes, final, timing
