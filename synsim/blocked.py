"""Exact time-blocked simulation: the step's arithmetic, reordered so that state stays in cache.

Within one step no synapse of synsim's circuits depends on another (docs/model.md §4): the
presynaptic side is given (releases are part of the `Stimulus`), a clamped neuron's synapses see a
potential fixed in advance, and a LIF neuron couples only its own synapses. So a group of synapses
(clamp), or one neuron with all its synapses (LIF), can be advanced through many steps while its
state sits in registers or L1, instead of streaming every synapse's state through memory once per
step. The per-source quantities that all synapses share (NMDA calcium drive, open fractions) are
computed first for a chunk of steps; they are small.

Every kernel performs, per synapse and step, the operations of `NGAIModel.step` in the same order
with the same constants (`StepConstants`), so results equal the step: bitwise in clamp mode and in
the pure-numpy fallback, within a few ulp in LIF mode with numba (numba's `exp` is the C library's,
numpy's is its own SIMD one; the bound checked is 1e-12 relative), with the same silencing /
unsilencing event times and spike times (docs/performance.md §2).

Implementations (`kernel` attribute of the result):

* ``blocked-numba``: `synsim._blocked_numba`, compiled once and cached on disk
  (`@njit(cache=True)`), parallel over synapse blocks or neuron blocks;
* ``blocked-numpy``: the same chunked schedule vectorised over synapses in array-API code, used
  when numba is not installed;
* ``blocked-torch``: that array-API code on torch tensors (any device, float32/float64): one
  vectorised update per step over all synapses, state kept in tensors, events and spikes gathered
  as bit masks and copied back once per chunk of steps (no host synchronisation per step).
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .backend import Backend
from .kinetics import MG_BLOCK_HALF_mM, MG_BLOCK_SLOPE_PER_mV, mg_block
from .model import Circuit, Stimulus, StepConstants, calcium_step, rho_step, time_to_step
from .params import ModelParams

KERNELS = ("auto", "blocked", "step")  # the public switch of simulate(kernel=...)
IMPLEMENTATIONS = ("blocked-numba", "blocked-numpy", "blocked-torch")  # force one (tests, bench)
SYNAPSE_VARS = ("calcium", "ampa", "functional", "s_ampa", "s_nmda")
TABLE_BYTES = 32 * 2 ** 20  # per-chunk tables (sources x steps, neurons x steps) stay below this
MAX_CHUNK = 4096  # steps per chunk (numba)
BITS_CHUNK = 62  # steps per chunk of the array code: one bit per step in an int64 mask
NEVER = -(10 ** 12)  # "last spike" of a neuron that never spiked (as NGAIModel)
HOST_TESTS = None  # array code: test flips per step (None: on host arrays only; tests force it)


def numba_kernels():
    """The compiled kernels module, or None where numba is missing (or its JIT is disabled)."""
    try:
        import numba
    except ImportError:
        return None
    if numba.config.DISABLE_JIT:
        return None
    from . import _blocked_numba

    return _blocked_numba


def blocking_obstacle(backend: Backend, compile: bool) -> str | None:
    """Why this run cannot use a blocked kernel, or None.

    Every circuit that `Circuit` can express is feed-forward within a step (sources are given,
    neurons do not feed back onto sources), so what can rule blocking out is only the run's
    configuration.
    """
    if compile:
        return ("compile = True selects the torch.compile'd step kernel, which has no blocked "
                "form")
    if backend.name == "numpy" and backend.dtype != "float64":
        return (f"the blocked kernels of the numpy backend are float64 only "
                f"(dtype = {backend.dtype!r})")
    return None


def choose_kernel(kernel: str, backend: Backend, compile: bool = False) -> tuple[str, str]:
    """(implementation, reason): 'step' or one of IMPLEMENTATIONS, and why.

    kernel = 'auto' blocks whenever the run allows it, 'blocked' insists (a one-line ValueError
    saying why it cannot), 'step' forces the reference step; an implementation name forces that
    implementation.
    """
    if kernel not in KERNELS + IMPLEMENTATIONS:
        raise ValueError(f"kernel = {kernel!r} is invalid: must be one of "
                         f"{KERNELS + IMPLEMENTATIONS}")
    if kernel == "step":
        return "step", "kernel = 'step' requested"
    obstacle = blocking_obstacle(backend, compile)
    if obstacle is not None:
        if kernel != "auto":
            raise ValueError(f"kernel = {kernel!r} is invalid for this run: {obstacle}; use "
                             f"kernel = 'auto' or 'step'")
        return "step", obstacle
    if kernel in IMPLEMENTATIONS:
        wants_torch = kernel == "blocked-torch"
        if wants_torch != (backend.name == "torch"):
            raise ValueError(f"kernel = {kernel!r} is invalid for backend {backend.name!r}: "
                             f"blocked-torch runs on the torch backend, blocked-numba and "
                             f"blocked-numpy on numpy")
        if kernel == "blocked-numba" and numba_kernels() is None:
            raise ValueError("kernel = 'blocked-numba' is invalid: numba is not installed "
                             "(use 'blocked' for the numpy fallback)")
        return kernel, f"kernel = {kernel!r} requested"
    how = "requested" if kernel == "blocked" else "chosen automatically"
    if backend.name == "torch":
        return "blocked-torch", f"{how}: synapses are independent within a step (torch)"
    if numba_kernels() is not None:
        return "blocked-numba", f"{how}: synapses are independent within a step (numba)"
    return "blocked-numpy", f"{how}: synapses are independent within a step (numba missing: numpy)"


def run(impl: str, circuit: Circuit, stimulus: Stimulus, params: ModelParams, backend: Backend,
        record, rec_syn: np.ndarray, record_every: int, progress: bool = False,
        profile: dict | None = None) -> dict:
    """Simulate with a blocked implementation.

    Returns {"buffers": {name: (rows, cols) array}, "events": (time, synapse, kind),
    "spikes": (time, neuron), "c": final calcium, "rho": final occupancy} with exactly the
    content `simulate`'s step loop would produce (numpy arrays). `profile` (numba only), if a
    dict, receives the seconds spent per phase (the benchmark's breakdown).
    """
    record = tuple(record)
    if impl == "blocked-numba":
        return _run_numba(numba_kernels(), circuit, stimulus, params, record, rec_syn,
                          int(record_every), progress, profile)
    if impl in ("blocked-numpy", "blocked-torch"):
        return _run_array(circuit, stimulus, params, backend, record, rec_syn, int(record_every),
                          progress)
    raise ValueError(f"impl = {impl!r} is invalid: must be one of {IMPLEMENTATIONS}")


# --- shared helpers ---------------------------------------------------------------------------

def _buffers(record, n_rows: int, n_rec: int, n_post: int) -> dict:
    return {name: np.empty((n_rows, n_rec if name in SYNAPSE_VARS else n_post),
                           dtype=bool if name == "functional" else float) for name in record}


def _sorted_by_step(steps: np.ndarray, *columns):
    order = np.argsort(steps, kind="stable")  # as simulate._group_by_step: same order per step
    return (steps[order],) + tuple(col[order] for col in columns)


def _clamp_spikes(stimulus: Stimulus, n_post: int):
    """Imposed spikes as the step records them: one per (step, neuron), by step then neuron."""
    key = np.unique(stimulus.post_spike_step * max(n_post, 1) + stimulus.post_spike_neuron)
    return key // max(n_post, 1), key % max(n_post, 1)


def _sort_events(step, syn, kind):
    order = np.lexsort((kind, syn, step))  # == sorted() of the step's (time, synapse, kind)
    return step[order], syn[order], kind[order]


def _post_records(buffers: dict, params: ModelParams, v_rec, bap_rec, g_a, g_n) -> None:
    """Per-neuron variables from V, b and the summed conductances at the recorded steps, with the
    expressions of simulate._record."""
    syn = params.synapse
    need_block = "mg_block" in buffers or "i_ampa" in buffers or "i_nmda" in buffers
    block = mg_block(v_rec + bap_rec, syn.mg_mM) if need_block else None
    drive = v_rec - syn.e_glu_mV
    values = {"mg_block": block, "v": v_rec, "bap": bap_rec}
    if "i_ampa" in buffers:
        values["i_ampa"] = g_a * drive
    if "i_nmda" in buffers:
        values["i_nmda"] = g_n * block * drive
    for name in ("mg_block", "v", "bap", "i_ampa", "i_nmda"):
        if name in buffers:
            buffers[name][...] = values[name]


def _chunk_rows(n0: int, T: int, every: int):
    """Buffer row of each step of the chunk (or -1), and the (t, row) pairs recorded."""
    steps = np.arange(n0, n0 + T)
    rows = np.where(steps % every == 0, steps // every, -1).astype(np.int64)
    ts = np.flatnonzero(rows >= 0)
    return rows, ts, rows[ts]


# --- numba ------------------------------------------------------------------------------------

def _threads() -> int:
    """Worker threads for the block kernels: numba's thread count (NUMBA_NUM_THREADS,
    numba.set_num_threads), which defaults to the CPUs available."""
    import numba

    return max(1, int(numba.get_num_threads()))


def _on_pool(pool, kernel, before, blocks, after, outs) -> None:
    """kernel(*before, blocks, *after, *outs) with one task per block on the thread pool (the
    kernels release the GIL); outs are per-block rows, sliced with the blocks."""
    if pool is None or blocks.size <= 1:
        kernel(*before, blocks, *after, *outs)
        return
    tasks = [pool.submit(kernel, *before, blocks[i:i + 1], *after,
                         *(out[i:i + 1] for out in outs)) for i in range(blocks.size)]
    for task in tasks:
        task.result()


def _run_numba(K, circuit, stimulus, params, record, rec_syn, every, progress, profile=None):
    import time

    from tqdm.auto import tqdm

    clock = {"setup": 0.0, "source_tables": 0.0, "post_tables": 0.0, "kernel": 0.0,
             "finish": 0.0}
    mark = time.perf_counter()

    def lap(phase):
        nonlocal mark
        now = time.perf_counter()
        clock[phase] += now - mark
        mark = now

    k = StepConstants.from_params(params)
    syn, neu, dt = params.synapse, params.neuron, params.dt_ms
    n_syn, n_src, n_post = circuit.n_syn, circuit.n_sources, circuit.n_post
    n_steps = stimulus.n_steps
    lif = circuit.post_mode == "lif"
    want_currents = "i_ampa" in record or "i_nmda" in record
    use_neuron = lif or want_currents
    need_s = use_neuron or "s_ampa" in record or "s_nmda" in record
    want_vb = any(name in record for name in ("mg_block", "v", "bap", "i_ampa", "i_nmda"))

    c = np.array(circuit.c0, dtype=np.float64)
    rho = np.array(circuit.rho0, dtype=np.float64)  # the functional flag is rho >= rho_sil
    syn_source = np.ascontiguousarray(circuit.syn_source, dtype=np.int64)
    syn_post = np.ascontiguousarray(circuit.syn_post, dtype=np.int64)
    traces = [np.zeros(n_src) for _ in range(4)]
    rel_steps, rel_src, rel_amp = _sorted_by_step(stimulus.release_step, stimulus.release_source,
                                                  stimulus.release_amplitude)
    rel_src = rel_src.astype(np.int64)
    rel_amp = rel_amp.astype(np.float64)
    spk_steps, spk_post = _sorted_by_step(stimulus.post_spike_step, stimulus.post_spike_neuron)
    spk_post = spk_post.astype(np.int64)
    v = np.array(circuit.v_hold_mV, dtype=np.float64)
    i_ext = np.array(circuit.i_ext_pA, dtype=np.float64)
    bap = np.zeros(n_post)
    last_spike = np.full(n_post, NEVER, dtype=np.int64)
    b_rest = mg_block(v, syn.mg_mM) if not lif else np.zeros(n_post)

    rec_steps = np.arange(0, n_steps, every)
    n_rows = rec_steps.size
    buffers = _buffers(record, n_rows, rec_syn.size, n_post)
    rec_cols = np.argsort(rec_syn, kind="stable").astype(np.int64)
    rec_sorted = np.ascontiguousarray(rec_syn[rec_cols], dtype=np.int64)
    empty2f, empty2b = np.empty((0, 0)), np.empty((0, 0), dtype=bool)
    rec_c = buffers.get("calcium", empty2f)
    rec_r = buffers.get("ampa", empty2f)
    rec_f = buffers.get("functional", empty2b)
    want = ("calcium" in buffers, "ampa" in buffers, "functional" in buffers)
    post_shape = (n_rows, n_post)
    v_rec = np.empty(post_shape) if want_vb else empty2f
    bap_rec = np.empty(post_shape) if want_vb else empty2f
    g_rec_a = np.empty(post_shape) if want_currents else empty2f
    g_rec_n = np.empty(post_shape) if want_currents else empty2f
    if want_vb and not lif:
        v_rec[...] = v

    # chunk length: the per-chunk tables stay below TABLE_BYTES
    per_step = 8 * n_src * (3 if need_s else 1) + (0 if lif else 25 * n_post)
    t_max = int(min(n_steps, max(16, min(MAX_CHUNK, TABLE_BYTES // max(per_step, 1)))))
    XT = np.empty((n_src, t_max))
    SAT = np.empty((n_src, t_max)) if need_s else empty2f
    SNT = np.empty((n_src, t_max)) if need_s else empty2f
    if lif:
        bap_tab, BT = empty2f, empty2f
        spk, spk_any = np.empty((0, 0), np.uint8), np.empty(0, np.uint8)
    else:
        bap_tab, BT = np.empty((n_post, t_max)), np.empty((n_post, t_max))
        spk, spk_any = np.empty((n_post, t_max), np.uint8), np.empty(t_max, np.uint8)

    threads = _threads()
    if use_neuron:
        post_syn = np.argsort(syn_post, kind="stable").astype(np.int64)
        post_ptr = np.zeros(n_post + 1, dtype=np.int64)
        np.cumsum(np.bincount(syn_post, minlength=n_post), out=post_ptr[1:])
        target = int(np.clip(math.ceil(n_syn / (4 * threads)) if n_syn else 1, 256, 16384))
        # neuron blocks of about `target` synapses (at least one neuron each)
        cuts = np.searchsorted(post_ptr, np.arange(target, n_syn, target), side="right") - 1
        nblk_ptr = np.unique(np.concatenate([[0], cuts[cuts > 0], [n_post]])).astype(np.int64)
        n_blocks = nblk_ptr.size - 1
    else:
        n_blocks = max(1, min(max(2 * threads, math.ceil(n_syn / 16384)),
                              math.ceil(n_syn / 2048)))
        block_size = max(1, math.ceil(n_syn / n_blocks))
        n_blocks = max(1, math.ceil(n_syn / block_size))
    all_blocks = np.arange(n_blocks, dtype=np.int64)
    ev_cap, sp_cap = 16, 16
    events, spikes = [], []
    active = False  # clamp: NGAIModel._bap_active
    pool = ThreadPoolExecutor(threads) if threads > 1 and n_blocks > 1 else None
    bar = tqdm(total=n_steps, disable=not progress, desc="simulate", unit="step", mininterval=0.5)
    lap("setup")
    for n0 in range(0, n_steps, t_max):
        T = min(t_max, n_steps - n0)
        chunk = np.arange(n0, n0 + T + 1)
        rel_ptr = np.searchsorted(rel_steps, chunk).astype(np.int64)
        K.source_chunk(*traces, n0, T, rel_ptr, rel_src, rel_amp, k.a_ampa_rise, k.a_ampa_decay,
                       k.a_nmda_rise, k.a_nmda_decay, k.nmda_rise_coef, k.nmda_decay_coef,
                       syn.eta_ampa, syn.eta_nmda, XT, need_s, SAT, SNT)
        lap("source_tables")
        rows, ts, trows = _chunk_rows(n0, T, every)
        if "s_ampa" in buffers:
            buffers["s_ampa"][trows] = SAT[:, ts].T[:, syn_source[rec_syn]]
        if "s_nmda" in buffers:
            buffers["s_nmda"][trows] = SNT[:, ts].T[:, syn_source[rec_syn]]
        quiet = True
        if not lif:
            spk_ptr = np.searchsorted(spk_steps, chunk).astype(np.int64)
            K.bap_chunk(bap, T, spk_ptr, spk_post, k.a_bap, syn.bap_amplitude_mV, bap_tab, spk,
                        spk_any)
            quiet = not active and not spk_any[:T].any()
            if not quiet:
                b_cand = mg_block(v[:, None] + bap_tab[:, :T], syn.mg_mM)  # numpy, as the step
                active = bool(K.block_used(active, T, b_cand, b_rest, spk_any, BT))
            if want_vb:
                bap_rec[trows] = bap_tab[:, ts].T
        lap("post_tables")
        blocks, cap, scap = all_blocks, ev_cap, sp_cap
        while blocks.size:
            ev_step = np.empty((blocks.size, cap), np.int64)
            ev_syn = np.empty((blocks.size, cap), np.int64)
            ev_kind = np.empty((blocks.size, cap), np.int8)
            ev_count = np.zeros(blocks.size, np.int64)
            consts = (k.a_ca, k.rho_inf_p, k.rho_gain_p, k.rho_gain_d, k.theta_p, k.theta_d,
                      k.rho_sil, syn.c_post)
            recs = (rec_sorted, rec_cols, rows, rec_c, rec_r, rec_f, *want)
            if use_neuron:
                sp_step = np.empty((blocks.size, scap), np.int64)
                sp_post_b = np.empty((blocks.size, scap), np.int64)
                sp_count = np.zeros(blocks.size, np.int64)
                lif_state = (v, bap, last_spike) if lif else (v.copy(), bap.copy(),
                                                              last_spike.copy())
                before = (c, rho, syn_source, post_ptr, post_syn, nblk_ptr)
                after = (lif, *lif_state, i_ext, XT, SAT, SNT, T, n0, quiet, b_rest, BT, spk,
                         *consts, syn.g_ampa_max_nS, syn.g_nmda_nS, k.a_bap,
                         syn.bap_amplitude_mV, syn.mg_mM / MG_BLOCK_HALF_mM,
                         -MG_BLOCK_SLOPE_PER_mV, neu.g_leak_nS, neu.g_leak_nS * neu.e_leak_mV,
                         syn.e_glu_mV, -dt, neu.c_m_pF, neu.v_threshold_mV, neu.v_reset_mV,
                         int(time_to_step(neu.refractory_ms, dt)), *recs, want_currents,
                         g_rec_a, g_rec_n, want_vb and lif, v_rec, bap_rec)
                outs = (ev_step, ev_syn, ev_kind, ev_count, sp_step, sp_post_b, sp_count)
                _on_pool(pool, K.neuron_chunk, before, blocks, after, outs)
                ok = (ev_count <= cap) & (sp_count <= scap)
                for i in np.flatnonzero(ok):
                    spikes.append((sp_step[i, :sp_count[i]], sp_post_b[i, :sp_count[i]]))
                scap = max(scap, int(sp_count.max(initial=0)))
            else:
                _on_pool(pool, K.clamp_chunk,
                         (c, rho, syn_source, syn_post, n_src, block_size), blocks,
                         (XT, T, n0, quiet, b_rest, BT, spk, spk_any, *consts, *recs),
                         (ev_step, ev_syn, ev_kind, ev_count))
                ok = ev_count <= cap
            for i in np.flatnonzero(ok):
                cnt = ev_count[i]
                events.append((ev_step[i, :cnt], ev_syn[i, :cnt], ev_kind[i, :cnt]))
            blocks = blocks[~ok]
            cap = max(cap, int(ev_count.max(initial=0)))
        ev_cap, sp_cap = cap, scap
        bar.update(T)
        lap("kernel")
    bar.close()
    if pool is not None:
        pool.shutdown()

    if want_vb or want_currents:
        _post_records(buffers, params, v_rec, bap_rec, g_rec_a, g_rec_n)
    ev = [np.concatenate([e[j] for e in events]) if events else np.zeros(0, np.int64)
          for j in range(3)]
    ev_step, ev_syn, ev_kind = _sort_events(ev[0].astype(np.int64), ev[1].astype(np.int64),
                                            ev[2].astype(np.int8))
    if lif:
        sp_s = np.concatenate([s[0] for s in spikes]) if spikes else np.zeros(0, np.int64)
        sp_n = np.concatenate([s[1] for s in spikes]) if spikes else np.zeros(0, np.int64)
        order = np.lexsort((sp_n, sp_s))
        sp_s, sp_n = sp_s[order], sp_n[order]
    else:
        sp_s, sp_n = _clamp_spikes(stimulus, n_post)
    lap("finish")
    if profile is not None:
        profile.update(clock, chunk_steps=t_max, blocks=n_blocks, threads=threads,
                       kernel_name="neuron_chunk" if use_neuron else "clamp_chunk")
    return {"buffers": buffers, "events": (ev_step * dt, ev_syn, ev_kind),
            "spikes": (sp_s * dt, sp_n), "c": c, "rho": rho}


# --- array code: numpy fallback and torch -----------------------------------------------------

def _run_array(circuit, stimulus, params, backend, record, rec_syn, every, progress):
    """The blocked schedule vectorised over synapses: chunks of up to BITS_CHUNK steps, per-source
    tables first, then one update per step over all synapses, the step's own functions
    (`rho_step`, `calcium_step`, `Backend.segment_sum`) on the backend's arrays. On a GPU, flag
    flips and LIF spikes go into one int64 bit mask per synapse / neuron and chunk; they, and the
    recorded rows, are copied to the host once per chunk (no synchronisation per step)."""
    from tqdm.auto import tqdm

    b, k = backend, StepConstants.from_params(params)
    xp = b.xp
    syn, neu, dt = params.synapse, params.neuron, params.dt_ms
    n_src, n_post, n_steps = circuit.n_sources, circuit.n_post, stimulus.n_steps
    lif = circuit.post_mode == "lif"
    want_currents = "i_ampa" in record or "i_nmda" in record
    need_s = lif or want_currents or "s_ampa" in record or "s_nmda" in record

    src = b.asarray(circuit.syn_source, "int")
    post = b.asarray(circuit.syn_post, "int")
    torch_in_place = b.name == "torch"
    if torch_in_place and max(n_src, n_post) < 2 ** 31:  # int32 indices: 8 B per synapse less
        src, post = src.to(xp.int32), post.to(xp.int32)
    c, rho = b.asarray(circuit.c0), b.asarray(circuit.rho0)
    flag = b.asarray(circuit.rho0 >= k.rho_sil, "bool")
    r_a, d_a, r_n, d_n = (b.asarray(np.zeros(n_src)) for _ in range(4))
    v, i_ext = b.asarray(circuit.v_hold_mV), b.asarray(circuit.i_ext_pA)
    bap = b.asarray(np.zeros(n_post))
    last_spike = b.asarray(np.full(n_post, NEVER, dtype=np.int64), "int")
    v_reset = b.asarray(np.full(n_post, neu.v_reset_mV))
    rest = mg_block(v, syn.mg_mM)
    refractory = int(time_to_step(neu.refractory_ms, dt))

    def by_step(steps, *cols):
        out = {}
        s = _sorted_by_step(steps, *cols)
        bounds = np.flatnonzero(np.diff(s[0])) + 1
        for lo, hi in zip(np.r_[0, bounds], np.r_[bounds, s[0].size]):
            if hi > lo:
                out[int(s[0][lo])] = tuple(col[lo:hi] for col in s[1:])
        return out

    releases = {n: (b.asarray(s_, "int"), b.asarray(a_))
                for n, (s_, a_) in by_step(stimulus.release_step, stimulus.release_source,
                                            stimulus.release_amplitude).items()}
    forced = {}
    for n, (neurons,) in by_step(stimulus.post_spike_step, stimulus.post_spike_neuron).items():
        mask = np.zeros(n_post, dtype=bool)
        mask[neurons] = True
        forced[n] = b.asarray(mask, "bool")

    buffers = _buffers(record, (n_steps + every - 1) // every, rec_syn.size, n_post)
    rec_b = b.asarray(rec_syn, "int")
    rec_src = b.asarray(circuit.syn_source[rec_syn], "int")
    fdtype = c.dtype
    # host arrays (numpy, torch on the CPU) test per step; a GPU keeps flips and spikes in bit
    # masks and synchronises once per chunk
    host = (b.name == "numpy" or str(b.device) == "cpu") if HOST_TESTS is None else HOST_TESTS
    ev_parts, sp_parts = [], []
    active = False
    bar = tqdm(total=n_steps, disable=not progress, desc="simulate", unit="step", mininterval=0.5)
    for n0 in range(0, n_steps, BITS_CHUNK):
        T = min(BITS_CHUNK, n_steps - n0)
        # per-source tables for the chunk (the step's expressions, at t_n)
        X, SA, SN = [], [], []
        for t in range(T):
            X.append(k.nmda_decay_coef * d_n + k.nmda_rise_coef * r_n)
            if need_s:
                SA.append(syn.eta_ampa * (d_a - r_a))
                SN.append(syn.eta_nmda * (d_n - r_n))
            r_a, d_a = r_a * k.a_ampa_rise, d_a * k.a_ampa_decay
            r_n, d_n = r_n * k.a_nmda_rise, d_n * k.a_nmda_decay
            rel = releases.get(n0 + t)
            if rel is not None:
                for trace in (r_a, d_a, r_n, d_n):
                    b.add_at(trace, *rel)
        # clamped neurons: b, and the B_n the step uses (NGAIModel._block_now)
        if not lif:
            baps, B = [], []
            for t in range(T):
                baps.append(bap)
                bap = bap * k.a_bap
                if n0 + t in forced:
                    bap = bap + syn.bap_amplitude_mV * xp.astype(forced[n0 + t], fdtype)
            spikes_here = any(n0 + t in forced for t in range(T))
            if active or spikes_here:
                cand = [mg_block(v + bt, syn.mg_mM) for bt in baps]
                same = b.to_numpy(xp.stack([xp.all(ct == rest) for ct in cand]))
                for t in range(T):
                    if active:
                        B.append(cand[t])
                        active = not bool(same[t])
                    else:
                        B.append(rest)
                    if n0 + t in forced:
                        active = True
            else:
                B = [rest] * T
        flag0 = flag
        if not host:
            fbits = xp.zeros(flag.shape, dtype=xp.int64, **_device(b, flag))
            sbits = xp.zeros(v.shape, dtype=xp.int64, **_device(b, v)) if lif else None
        rows = []
        for t in range(T):
            n = n0 + t
            if n % every == 0:
                rows.append((n // every, _record_values(
                    b, buffers, params, c, rho, flag, v, bap if lif else baps[t], src, post,
                    rec_b, rec_src, SA[t] if need_s else None, SN[t] if need_s else None)))
            # on the host a test is cheap: skip rho when no gate is open, as the eager step does
            moved = lif or not host or bool(xp.any(c > k.theta_d))
            if torch_in_place and not lif:
                _torch_clamp_update(c, rho, X[t], B[t], src, post, k, moved)
            elif moved:
                rho = rho_step(xp, rho, c, k)
            if lif:
                block = mg_block(v + bap, syn.mg_mM)
                g_a = b.segment_sum(syn.g_ampa_max_nS * rho * SA[t][src], post, n_post)
                g_n = b.segment_sum(syn.g_nmda_nS * SN[t][src], post, n_post)
                c = calcium_step(c, X[t], block, src, post, k)
                bap = bap * k.a_bap
                g_total = neu.g_leak_nS + g_a + g_n * block
                v_inf = (neu.g_leak_nS * neu.e_leak_mV + (g_a + g_n * block) * syn.e_glu_mV
                         + i_ext) / g_total
                v_new = v_inf + (v - v_inf) * xp.exp(-dt * g_total / neu.c_m_pF)
                act = (n - last_spike) >= refractory
                v = xp.where(act, v_new, v)
                spiked = (v > neu.v_threshold_mV) & act
                spiked_f = xp.astype(spiked, fdtype)
                c = c + syn.c_post * spiked_f[post]
                bap = bap + syn.bap_amplitude_mV * spiked_f
                v = xp.where(spiked, v_reset, v)
                last_spike = xp.where(spiked, xp.full_like(last_spike, n), last_spike)
                if host:
                    if bool(xp.any(spiked)):
                        sp_parts.append((np.full(int(xp.sum(xp.astype(spiked, xp.int64))), n),
                                         b.to_numpy(xp.nonzero(spiked)[0]).astype(np.int64)))
                else:
                    sbits = _set_bit(sbits, spiked, t)
            else:
                if not torch_in_place:
                    c = calcium_step(c, X[t], B[t], src, post, k)
                if n in forced:
                    c = c + syn.c_post * xp.astype(forced[n], fdtype)[post]
            if host and moved:  # flips of this step, found right away
                now = rho >= k.rho_sil
                diff = now != flag
                if bool(xp.any(diff)):
                    idx = b.to_numpy(xp.nonzero(diff)[0]).astype(np.int64)
                    kinds = np.where(b.to_numpy(now)[idx], 1, -1).astype(np.int8)
                    ev_parts.append((np.full(idx.size, n + 1, dtype=np.int64), idx, kinds))
                flag = now
            elif not host:  # one bit per step; decoded once per chunk (no synchronisation)
                now = rho >= k.rho_sil
                fbits = _set_bit(fbits, now != flag, t)
                flag = now
        if rows:  # one device -> host copy per variable and chunk
            at = np.array([row for row, _ in rows])
            for name in buffers:
                buffers[name][at] = b.to_numpy(xp.stack([values[name] for _, values in rows]))
        if not host:
            ev_parts.append(_decode_bits(b.to_numpy(fbits), b.to_numpy(flag0), n0, event=True))
            if lif:
                sp_parts.append(_decode_bits(b.to_numpy(sbits), None, n0, event=False))
        bar.update(T)
    bar.close()
    ev_step = np.concatenate([p[0] for p in ev_parts]) if ev_parts else np.zeros(0, np.int64)
    ev_syn = np.concatenate([p[1] for p in ev_parts]) if ev_parts else np.zeros(0, np.int64)
    ev_kind = np.concatenate([p[2] for p in ev_parts]) if ev_parts else np.zeros(0, np.int8)
    ev_step, ev_syn, ev_kind = _sort_events(ev_step, ev_syn, ev_kind)
    if lif:
        sp_s = np.concatenate([p[0] for p in sp_parts] + [np.zeros(0, np.int64)])
        sp_n = np.concatenate([p[1] for p in sp_parts] + [np.zeros(0, np.int64)])
        order = np.lexsort((sp_n, sp_s))
        sp_s, sp_n = sp_s[order], sp_n[order]
    else:
        sp_s, sp_n = _clamp_spikes(stimulus, n_post)
    return {"buffers": buffers, "events": (ev_step * dt, ev_syn, ev_kind),
            "spikes": (sp_s * dt, sp_n), "c": b.to_numpy(c), "rho": b.to_numpy(rho)}


def _torch_clamp_update(c, rho, x_src, b_post, src, post, k: StepConstants, moved: bool):
    """rho_step then calcium_step for clamped synapses, in place on torch tensors: the same
    operations on the same operands (so the same rounding), with two temporaries of one value
    per synapse instead of about eight (GPU memory, docs/performance.md §4)."""
    import torch

    if moved:
        gate_p, gate_d = c > k.theta_p, c > k.theta_d  # gates read at c_n
        dep = rho * k.rho_gain_d
        torch.sub(rho, dep, out=dep)  # rho - rho gain_d
        pot = torch.rsub(rho, k.rho_inf_p)  # rho_inf - rho
        pot.mul_(k.rho_gain_p).add_(rho)  # (rho_inf - rho) gain_p + rho
        torch.where(gate_d, dep, rho, out=rho)
        torch.where(gate_p, pot, rho, out=rho)
        del dep, pot, gate_p, gate_d
    c.mul_(k.a_ca)
    drive = x_src.index_select(0, src)
    drive.mul_(b_post.index_select(0, post))
    c.add_(drive)  # a_ca c + drive[src] B[post]


def _set_bit(bits, mask, t: int):
    """bits | (mask << t), in place where the library allows it."""
    if hasattr(bits, "bitwise_or_"):  # torch
        one = mask.to(bits.dtype)
        one.bitwise_left_shift_(t)
        return bits.bitwise_or_(one)
    return bits | (mask.astype(bits.dtype) << t)


def _device(backend: Backend, like) -> dict:
    return {"device": like.device} if backend.name == "torch" else {}


def _record_values(b, buffers, params, c, rho, flag, v, bap, src, post, rec_b, rec_src, sa, sn):
    """The state at t_n, as simulate._record takes it (device arrays)."""
    syn = params.synapse
    values = {}
    if "calcium" in buffers:
        values["calcium"] = c[rec_b]
    if "ampa" in buffers:
        values["ampa"] = rho[rec_b]
    if "functional" in buffers:
        values["functional"] = flag[rec_b]
    if "s_ampa" in buffers:
        values["s_ampa"] = sa[rec_src]
    if "s_nmda" in buffers:
        values["s_nmda"] = sn[rec_src]
    need_currents = "i_ampa" in buffers or "i_nmda" in buffers
    if "mg_block" in buffers or need_currents:
        block = mg_block(v + bap, syn.mg_mM)
        values["mg_block"] = block
    if "v" in buffers:
        values["v"] = v
    if "bap" in buffers:
        values["bap"] = bap
    if need_currents:
        n_post = v.shape[0]
        g_a = b.segment_sum(syn.g_ampa_max_nS * rho * sa[src], post, n_post)
        g_n = b.segment_sum(syn.g_nmda_nS * sn[src], post, n_post)
        drive = v - syn.e_glu_mV
        values["i_ampa"] = g_a * drive
        values["i_nmda"] = g_n * block * drive
    return {name: values[name] for name in buffers}


def _decode_bits(bits: np.ndarray, flag0, n0: int, event: bool):
    """Entries with bit t set changed (flag flip) or spiked at step n0 + t.

    Events are stamped n0 + t + 1 (a flip is visible at t_{n+1}) with kind +1 / -1 alternating
    from the flag at the start of the chunk; spikes are stamped n0 + t.
    """
    idx = np.flatnonzero(bits)
    bits = bits[idx].view(np.uint64)
    steps, who, kinds = [], [], []
    state = None if flag0 is None else flag0[idx].copy()
    for t in range(BITS_CHUNK):
        hit = ((bits >> np.uint64(t)) & np.uint64(1)).astype(bool)
        if not hit.any():
            continue
        steps.append(np.full(int(hit.sum()), n0 + t + (1 if event else 0), dtype=np.int64))
        who.append(idx[hit].astype(np.int64))
        if event:
            state[hit] = ~state[hit]
            kinds.append(np.where(state[hit], 1, -1).astype(np.int8))
    cat = (lambda parts, dtype: np.concatenate(parts) if parts else np.zeros(0, dtype))
    if event:
        return cat(steps, np.int64), cat(who, np.int64), cat(kinds, np.int8)
    return cat(steps, np.int64), cat(who, np.int64)
