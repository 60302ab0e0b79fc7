"""The NGAI synapse model: state, circuit, stimulus and the exact per-step update.

One implementation of the step, written against the array-API namespace, so the same code runs on
numpy (float64, the reference) and on torch (float32/float64, any device). The order of operations
for step n -> n+1 mirrors Brian2's schedule (docs/model.md §5.1, §7.3):

1. record the state at t_n (done by the caller);
2. rho update, gates frozen at c_n (exact: rho -> rho_inf + (rho - rho_inf) e^{-k dt});
3. summed synaptic conductances from rho_{n+1} and the traces at t_n (LIF neurons only);
4. calcium, exact given B_n = B(V_n + b_n) (or the cheap ZOH variant, = Brian2 exponential_euler);
5. traces decay; V integrated exactly with conductances and B frozen over the step; refractoriness;
6. threshold, then jumps: releases add their amplitude to the four traces, a postsynaptic spike adds
   c_post to the calcium of its synapses and the bAP amplitude to b, and resets V.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .backend import Backend
from .kinetics import mg_block, phi
from .params import POTENTIAL_RANGE_MV, ModelParams, check_number, range_text

POST_MODES = ("clamp", "lif")


def time_to_step(t_ms, dt_ms: float):
    """Bin times to steps as Brian2 does (`timestep`): floor(t/dt + 1e-3), robust to round-off."""
    return np.floor(np.asarray(t_ms, dtype=float) / dt_ms + 1e-3).astype(np.int64)


def _check_index(name: str, index: np.ndarray, n: int, n_name: str) -> None:
    if index.size and (index.min() < 0 or index.max() >= n):
        bad = index[(index < 0) | (index >= n)][0]
        raise ValueError(f"{name} contains {bad}, out of range: must be in [0, {n_name} = {n})")


def _floats(name: str, values) -> np.ndarray:
    try:
        return np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"{name} = {values!r} is invalid: must be numbers") from None


def _integers(name: str, values) -> np.ndarray:
    """Indices or steps as int64; a fraction, NaN or inf is refused instead of truncated."""
    arr = np.asarray(values)
    if arr.dtype.kind in "iub":
        return arr.astype(np.int64)
    arr = _floats(name, arr)
    bad = arr[~(np.isfinite(arr) & (arr == np.round(arr)))]
    if bad.size:
        raise ValueError(f"{name} contains {bad.ravel()[0].item()!r}: must be integers")
    return arr.astype(np.int64)


def _count(name: str, value, low: int = 1) -> int:
    """An integer count >= low (a float equal to an integer is accepted)."""
    try:
        ok = float(value) == int(value) and int(value) >= low
    except (TypeError, ValueError, OverflowError):
        ok = False
    if not ok:
        raise ValueError(f"{name} = {value!r} is invalid: must be an integer >= {low}")
    return int(value)


def check_values(name: str, arr: np.ndarray, low: float = -math.inf, high: float = math.inf,
                 unit: str = "", low_open: bool = False) -> np.ndarray:
    """Every entry finite and in [low, high] (or (low, high] with low_open), else a one-line
    ValueError naming `name`, the first bad entry and the range."""
    ok = np.isfinite(arr) & ((arr > low) if low_open else (arr >= low)) & (arr <= high)
    if not ok.all():
        bad = arr[~ok].ravel()[0].item()
        raise ValueError(f"{name} contains {bad!r}: must be "
                         f"{range_text(low, high, low_open, unit=unit)}")
    return arr


def _vector(name: str, values, n: int, n_name: str, dtype=float,
            broadcast: bool = False) -> np.ndarray:
    """A length-n vector; a scalar is repeated (as a read-only broadcast view, 0 bytes, when
    `broadcast`: per-synapse initial values of large circuits)."""
    arr = _integers(name, values) if dtype is np.int64 else _floats(name, values)
    if arr.ndim == 0:
        arr = (np.broadcast_to(arr.astype(dtype), (n,)) if broadcast
               else np.full(n, arr.item(), dtype=dtype))
    if arr.shape != (n,):
        raise ValueError(f"{name} has shape {arr.shape}: must be ({n},) to match {n_name} = {n}")
    return arr


@dataclass
class Circuit:
    """Who connects to whom and what each postsynaptic neuron does.

    A *source* carries one set of presynaptic traces (r_A, d_A, r_N, d_N). With deterministic release
    all synapses of a presynaptic neuron share one source; with stochastic release every synapse has
    its own (the protocols resolve release failures into per-synapse events before simulating).

    Valid input (NaN and inf refused): n_sources, n_post integers >= 0; syn_source, syn_post,
    pre_neuron integer indices in range; v_hold_mV in POTENTIAL_RANGE_MV; i_ext_pA finite (any
    sign); rho0 in [0, 1]; c0 >= 0 (calcium).

    Memory: the two int64 index arrays (16 B per synapse) plus rho0 and c0 when given per synapse;
    a scalar rho0 or c0 is kept as a read-only broadcast view and the default pre_neuron as a
    read-only view of syn_source (0 B each; docs/performance.md §4).
    """

    syn_source: np.ndarray
    syn_post: np.ndarray
    n_sources: int
    n_post: int
    post_mode: str = "clamp"
    v_hold_mV: np.ndarray | float = -70.0  # clamp potential, or initial V of a LIF neuron
    i_ext_pA: np.ndarray | float = 0.0  # injected current (LIF only)
    rho0: np.ndarray | float = 0.0
    c0: np.ndarray | float = 0.0
    pre_neuron: np.ndarray | None = None  # presynaptic neuron of each synapse, for the record

    def __post_init__(self) -> None:
        self.n_sources = _count("n_sources", self.n_sources, 0)
        self.n_post = _count("n_post", self.n_post, 0)
        self.syn_source = _integers("syn_source", self.syn_source).reshape(-1)
        self.syn_post = _integers("syn_post", self.syn_post).reshape(-1)
        if self.syn_source.shape != self.syn_post.shape:
            raise ValueError(f"syn_post has shape {self.syn_post.shape}: must match syn_source "
                             f"{self.syn_source.shape} (one entry per synapse)")
        if self.post_mode not in POST_MODES:
            raise ValueError(f"post_mode = {self.post_mode!r} is invalid: must be one of {POST_MODES}")
        _check_index("syn_source", self.syn_source, self.n_sources, "n_sources")
        _check_index("syn_post", self.syn_post, self.n_post, "n_post")
        self.v_hold_mV = _vector("v_hold_mV", self.v_hold_mV, self.n_post, "n_post")
        self.i_ext_pA = _vector("i_ext_pA", self.i_ext_pA, self.n_post, "n_post")
        self.rho0 = _vector("rho0", self.rho0, self.n_syn, "n_syn", broadcast=True)
        self.c0 = _vector("c0", self.c0, self.n_syn, "n_syn", broadcast=True)
        check_values("v_hold_mV", self.v_hold_mV, *POTENTIAL_RANGE_MV, unit="mV")
        check_values("i_ext_pA", self.i_ext_pA, unit="pA")
        try:
            check_values("rho0", self.rho0, 0.0, 1.0)
        except ValueError as e:
            raise ValueError(f"{e} (AMPA occupancy)") from None
        check_values("c0", self.c0, 0.0)
        if self.pre_neuron is None:  # the sources themselves (a read-only view: no copy)
            self.pre_neuron = self.syn_source.view()
            self.pre_neuron.flags.writeable = False
        else:
            self.pre_neuron = _vector("pre_neuron", self.pre_neuron, self.n_syn, "n_syn",
                                      np.int64)
        check_values("pre_neuron", self.pre_neuron, 0)

    @property
    def n_syn(self) -> int:
        return int(self.syn_source.size)


@dataclass
class Stimulus:
    """Events on the time grid: presynaptic releases and imposed postsynaptic spikes.

    Valid input: n_steps an integer >= 1; event steps and indices integers, steps in
    [0, n_steps); release_amplitude finite and >= 0 (a release adds transmitter, never removes
    it; 0 is a failure).
    """

    n_steps: int
    release_step: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    release_source: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    release_amplitude: np.ndarray | None = None  # 1 per release unless given (mean-field: p_rel)
    post_spike_step: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    post_spike_neuron: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    def __post_init__(self) -> None:
        self.n_steps = _count("n_steps", self.n_steps)
        self.release_step = _integers("release_step", self.release_step).reshape(-1)
        self.release_source = _integers("release_source", self.release_source).reshape(-1)
        if self.release_amplitude is None:
            self.release_amplitude = np.ones(self.release_step.size)
        self.release_amplitude = _floats("release_amplitude", self.release_amplitude).reshape(-1)
        check_values("release_amplitude", self.release_amplitude, 0.0)
        self.post_spike_step = _integers("post_spike_step", self.post_spike_step).reshape(-1)
        self.post_spike_neuron = _integers("post_spike_neuron", self.post_spike_neuron).reshape(-1)
        for a, b, names in ((self.release_step, self.release_source, "release_source"),
                            (self.release_step, self.release_amplitude, "release_amplitude"),
                            (self.post_spike_step, self.post_spike_neuron, "post_spike_neuron")):
            if a.shape != b.shape:
                raise ValueError(f"{names} has shape {b.shape}: must match the event steps {a.shape}")
        for name, steps in (("release_step", self.release_step),
                            ("post_spike_step", self.post_spike_step)):
            if steps.size and (steps.min() < 0 or steps.max() >= self.n_steps):
                bad = steps[(steps < 0) | (steps >= self.n_steps)][0]
                raise ValueError(f"{name} contains {bad}, outside the run: must be in "
                                 f"[0, n_steps = {self.n_steps})")

    @classmethod
    def from_times(cls, duration_ms: float, dt_ms: float, release_times_ms=(), release_sources=(),
                   release_amplitude=None, post_spike_times_ms=(), post_spike_neurons=()):
        """Bin event times (ms) to the dt grid, as Brian2's SpikeGeneratorGroup does (rounding down)."""
        dt_ms = check_number("dt_ms", dt_ms, 0.0, low_open=True, unit="ms")
        check_number("duration_ms", duration_ms, 0.0, low_open=True, unit="ms")
        n_steps = int(round(duration_ms / dt_ms))
        if n_steps < 1:
            raise ValueError(f"duration_ms = {duration_ms!r} is invalid: must be at least one "
                             f"step (dt_ms = {dt_ms:g} ms)")
        steps = {}
        for name, times in (("release_times_ms", release_times_ms),
                            ("post_spike_times_ms", post_spike_times_ms)):
            t = _floats(name, times).reshape(-1)
            if t.size and (t.min() < 0 or t.max() >= duration_ms or not np.isfinite(t).all()):
                bad = t[(t < 0) | (t >= duration_ms) | ~np.isfinite(t)][0]
                raise ValueError(f"{name} contains {bad} ms, outside the run: must be in "
                                 f"[0, {duration_ms}) ms")
            steps[name] = np.minimum(time_to_step(t, dt_ms), n_steps - 1)
        return cls(n_steps=n_steps, release_step=steps["release_times_ms"],
                   release_source=release_sources, release_amplitude=release_amplitude,
                   post_spike_step=steps["post_spike_times_ms"],
                   post_spike_neuron=post_spike_neurons)


@dataclass(frozen=True)
class StepConstants:
    """Per-step decay factors and update coefficients, precomputed once per (params, dt)."""

    a_ampa_rise: float
    a_ampa_decay: float
    a_nmda_rise: float
    a_nmda_decay: float
    a_ca: float
    a_bap: float
    nmda_rise_coef: float  # calcium gained per unit r_N over one step, per unit B
    nmda_decay_coef: float  # calcium gained per unit d_N over one step, per unit B
    rho_inf_p: float  # fixed point above theta_p
    rho_gain_p: float  # 1 - e^{-k dt} above theta_p (kept apart: accurate in float32 too)
    rho_gain_d: float  # 1 - e^{-k dt} between the thresholds
    theta_p: float
    theta_d: float
    rho_sil: float

    @classmethod
    def from_params(cls, params: ModelParams) -> "StepConstants":
        p, dt = params.synapse, params.dt_ms
        a = {name: math.exp(-dt / tau) for name, tau in (
            ("ar_a", p.tau_ampa_rise_ms), ("ad_a", p.tau_ampa_decay_ms),
            ("ar_n", p.tau_nmda_rise_ms), ("ad_n", p.tau_nmda_decay_ms),
            ("a_ca", p.tau_ca_ms), ("a_b", p.tau_bap_ms))}
        kappa_eta = p.kappa_per_ms * p.eta_nmda
        if params.discretisation == "exact":
            rise_coef = -kappa_eta * float(phi(dt, p.tau_nmda_rise_ms, p.tau_ca_ms))
            decay_coef = kappa_eta * float(phi(dt, p.tau_nmda_decay_ms, p.tau_ca_ms))
        else:  # zero-order hold of s_N over the step (Brian2 exponential_euler)
            zoh = kappa_eta * p.tau_ca_ms * (1.0 - a["a_ca"])
            rise_coef, decay_coef = -zoh, zoh
        kp, kd = p.gamma_p / p.tau_rho_ms, p.gamma_d / p.tau_rho_ms
        return cls(a_ampa_rise=a["ar_a"], a_ampa_decay=a["ad_a"], a_nmda_rise=a["ar_n"],
                   a_nmda_decay=a["ad_n"], a_ca=a["a_ca"], a_bap=a["a_b"],
                   nmda_rise_coef=rise_coef, nmda_decay_coef=decay_coef,
                   rho_inf_p=p.rho_inf, rho_gain_p=-math.expm1(-(kp + kd) * dt),
                   rho_gain_d=-math.expm1(-kd * dt), theta_p=p.theta_p, theta_d=p.theta_d,
                   rho_sil=p.rho_sil)




def rho_step(xp, rho, c, k: StepConstants):
    """Exact AMPA-occupancy update over one step with the calcium gates frozen at c.

    rho + (rho_inf - rho)(1 - e^{-k dt}): the same as rho_inf + (rho - rho_inf) e^{-k dt}, written
    so that the tiny per-step change (k dt ~ 3e-7) survives float32.
    """
    potentiate = rho + (k.rho_inf_p - rho) * k.rho_gain_p
    return xp.where(c > k.theta_p, potentiate, xp.where(c > k.theta_d, rho - rho * k.rho_gain_d, rho))


def calcium_step(c, calcium_drive_src, block_post, syn_source, syn_post, k: StepConstants):
    """Calcium over one step given the source drive (exact or ZOH) and B_n of the postsynaptic side."""
    return k.a_ca * c + calcium_drive_src[syn_source] * block_post[syn_post]


def synapse_step(xp, c, rho, functional, calcium_drive_src, block_post, syn_source, syn_post,
                 k: StepConstants):
    """The per-synapse part of one step as one fusable function (the hot loop).

    rho from c_n, then calcium given B_n, then the functional flag; returns
    (c, rho, functional, whether any flag flipped).
    """
    rho = rho_step(xp, rho, c, k)
    c = calcium_step(c, calcium_drive_src, block_post, syn_source, syn_post, k)
    now = rho >= k.rho_sil
    return c, rho, now, xp.any(now != functional)


class NGAIModel:
    """Mutable simulation state of one circuit on one backend, advanced by `step()`."""

    def __init__(self, circuit: Circuit, params: ModelParams, backend: Backend = Backend(),
                 compile: bool = False):
        self.circuit, self.params, self.backend = circuit, params, backend
        self.k = StepConstants.from_params(params)
        self.xp = backend.xp
        syn, neu = params.synapse, params.neuron
        ns, npost = circuit.n_sources, circuit.n_post
        b = backend
        self.syn_source = b.asarray(circuit.syn_source, "int")
        self.syn_post = b.asarray(circuit.syn_post, "int")
        self.r_ampa, self.d_ampa = b.asarray(np.zeros(ns)), b.asarray(np.zeros(ns))
        self.r_nmda, self.d_nmda = b.asarray(np.zeros(ns)), b.asarray(np.zeros(ns))
        self.bap = b.asarray(np.zeros(npost))
        self.v = b.asarray(circuit.v_hold_mV)
        self.i_ext = b.asarray(circuit.i_ext_pA)
        self.c = b.asarray(circuit.c0)
        self.rho = b.asarray(circuit.rho0)
        self.functional = b.asarray(circuit.rho0 >= syn.rho_sil, "bool")
        self.lif = circuit.post_mode == "lif"
        self.refractory_steps = int(time_to_step(neu.refractory_ms, params.dt_ms))
        self.last_spike_step = np.full(npost, -(10 ** 12), dtype=np.int64)
        self.g_ampa_tot = b.asarray(np.zeros(npost))  # nS, summed over the neuron's synapses
        self.g_nmda_tot = b.asarray(np.zeros(npost))
        self._synapse_step = synapse_step
        self._block, self._rest_block, self._bap_active = None, None, False
        self._rho_moved = True
        self._flags_now = None  # functional flags computed by the fused kernel, if they flipped
        self.compiled = compile
        if compile:
            if b.name != "torch":
                raise ValueError("compile = True is invalid for the numpy backend: "
                                 "use backend 'torch' to compile the step")
            import torch

            self._synapse_step = torch.compile(synapse_step, dynamic=False)

    # --- derived quantities at the current time ---
    def s_ampa(self):
        return self.params.synapse.eta_ampa * (self.d_ampa - self.r_ampa)

    def s_nmda(self):
        return self.params.synapse.eta_nmda * (self.d_nmda - self.r_nmda)

    def mg_block(self):
        """Unblocked NMDA fraction of each postsynaptic neuron at V_d = V + b."""
        return mg_block(self.v + self.bap, self.params.synapse.mg_mM)

    def conductances(self):
        """(g_AMPA, g_NMDA*B) summed per postsynaptic neuron, in nS, from the current state."""
        syn, b = self.params.synapse, self.backend
        g_a = b.segment_sum(syn.g_ampa_max_nS * self.rho * self.s_ampa()[self.syn_source],
                            self.syn_post, self.circuit.n_post)
        g_n = b.segment_sum(syn.g_nmda_nS * self.s_nmda()[self.syn_source], self.syn_post,
                            self.circuit.n_post)
        return g_a, g_n

    def _block_now(self):
        """B_n, recomputed only when V or b can have changed (always for LIF; after bAPs in clamp)."""
        if self.lif or self._block is None or self._bap_active:
            self._block = self.mg_block()
            if self._rest_block is None and not self.lif:
                self._rest_block = mg_block(self.v, self.params.synapse.mg_mM)  # clamp: V fixed
            if not self.lif and self._bap_active:
                # b only decays: once B(V + b) has rounded to B(V) it stays there
                self._bap_active = not bool((self._block == self._rest_block).all())
        return self._block

    def step(self, n: int, release_source=None, release_amplitude=None, forced_post=None):
        """Advance from t_n to t_{n+1}. Returns the postsynaptic spike mask (numpy, bool)."""
        xp, k, syn = self.xp, self.k, self.params.synapse
        block = self._block_now()  # B_n, frozen over the step
        drive = k.nmda_decay_coef * self.d_nmda + k.nmda_rise_coef * self.r_nmda
        if self.lif:  # conductances need rho_{n+1} with the traces at t_n (Brian2 summed vars)
            self.rho = rho_step(xp, self.rho, self.c, k)
            self.g_ampa_tot, self.g_nmda_tot = self.conductances()
            self.c = calcium_step(self.c, drive, block, self.syn_source, self.syn_post, k)
        elif self.compiled:  # one fused kernel for the whole per-synapse update
            self.c, self.rho, now, flipped = self._synapse_step(
                xp, self.c, self.rho, self.functional, drive, block, self.syn_source,
                self.syn_post, k)
            self._rho_moved = bool(flipped)
            self._flags_now = now if self._rho_moved else None
        else:  # same update; rho is left alone when no gate is open (it would not change)
            self._rho_moved = bool((self.c > k.theta_d).any())
            if self._rho_moved:
                self.rho = rho_step(xp, self.rho, self.c, k)
            self.c = calcium_step(self.c, drive, block, self.syn_source, self.syn_post, k)
        self.r_ampa = self.r_ampa * k.a_ampa_rise
        self.d_ampa = self.d_ampa * k.a_ampa_decay
        self.r_nmda = self.r_nmda * k.a_nmda_rise
        self.d_nmda = self.d_nmda * k.a_nmda_decay
        self.bap = self.bap * k.a_bap
        spiked = np.zeros(self.circuit.n_post, dtype=bool)
        if self.lif:
            spiked = self._integrate_lif(n, block)
        if forced_post is not None:
            spiked |= forced_post
        if release_source is not None and len(release_source):  # backend arrays (simulate)
            for trace in (self.r_ampa, self.d_ampa, self.r_nmda, self.d_nmda):
                self.backend.add_at(trace, release_source, release_amplitude)
        if spiked.any():
            spiked_b = self.backend.asarray(spiked, "bool")
            self.c = self.c + syn.c_post * spiked_b[self.syn_post]
            self.bap = self.bap + syn.bap_amplitude_mV * spiked_b
            if self.lif:
                self.v = xp.where(spiked_b, self.backend.asarray(
                    np.full(self.circuit.n_post, self.params.neuron.v_reset_mV)), self.v)
            self.last_spike_step[spiked] = n
            self._bap_active = True
        return spiked

    def _integrate_lif(self, n: int, block):
        """Exact V update with the synaptic conductance and B frozen over the step, then threshold."""
        xp, neu, syn = self.xp, self.params.neuron, self.params.synapse
        g_total = neu.g_leak_nS + self.g_ampa_tot + self.g_nmda_tot * block
        v_inf = (neu.g_leak_nS * neu.e_leak_mV
                 + (self.g_ampa_tot + self.g_nmda_tot * block) * syn.e_glu_mV
                 + self.i_ext) / g_total
        v_new = v_inf + (self.v - v_inf) * xp.exp(-self.params.dt_ms * g_total / neu.c_m_pF)
        active_np = (n - self.last_spike_step) >= self.refractory_steps
        active = self.backend.asarray(active_np, "bool")
        self.v = xp.where(active, v_new, self.v)
        above = self.backend.to_numpy(self.v > neu.v_threshold_mV)
        return above & active_np

    def update_functional(self):
        """Flag flips of the last step: (indices that unsilenced, indices that silenced).

        Call it after every step (simulate does): the eager path only knows whether the last step
        could have moved rho.
        """
        if not self._rho_moved:
            return None  # no gate open (eager) or no flag flipped (fused kernel) in the last step
        now = self.rho >= self.k.rho_sil if self._flags_now is None else self._flags_now
        flipped = now != self.functional
        if not bool(flipped.any()):
            return None
        idx = self.backend.to_numpy(self.xp.nonzero(flipped)[0])
        became = self.backend.to_numpy(now)[idx]
        self.functional = now
        return idx[became], idx[~became]
