"""The per-presentation discrete rule: one stimulus presentation is one exact step of the model.

    B   = mg_block(V),  V = V_rest + dV * depolarisation          (mV)
    C   = lam * C + K * pre * B (+ c_post * spike)                 lam = exp(-Delta / tau_Ca)
    rho = exact rho update over Delta with the gates frozen at C   (model.rho_step)
    functional = rho >= rho_sil

The rho update and the Mg block are the simulator's own functions (synsim.model), evaluated with
the step constants of a model whose dt is the presentation window Delta. Unlike the clock-driven
kernel, the presentation's calcium decides its own insertion (C first, then rho): in the
simulator, the calcium read one window after the release became visible, and the insertion one
step later. With Delta equal to the calcium
peak time (42.4 ms for the defaults), one presentation from rest equals the simulator's voltage-
clamp run at dt = Delta with one release of amplitude `pre` (tests/test_rule.py checks this).
The rule keeps calcium, not the NMDA traces, across presentations: a model of its own for
sequences, exact for the first one.

Works on numpy arrays and torch tensors (any device, any float dtype); `artsy` calls it in torch.

Inputs are checked on every call (a NaN would otherwise compare False and close the gate
silently): calcium >= 0, ampa in [0, 1], pre >= 0 (a release), gain >= 0, depolarisation finite
(any sign); a bad one is a one-line ValueError naming the argument.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
from array_api_compat import array_namespace

from .kinetics import calcium_peak, mg_block
from .model import StepConstants, rho_step
from .params import POTENTIAL_RANGE_MV, ModelParams, SynapseParams, check_number, range_text


def check_input(name: str, value, low: float = -math.inf, high: float = math.inf):
    """Every entry of `value` (a number, numpy array or torch tensor) finite and in [low, high],
    else a one-line ValueError naming `name`, the first bad entry and the range."""
    if isinstance(value, (int, float)):  # Python and numpy scalars
        check_number(name, value, low, high)
        return value
    if isinstance(value, np.ndarray):  # numpy without array_namespace: the per-presentation loop
        if value.size == 0:
            return value
        lo, hi = float(value.min()), float(value.max())  # a NaN propagates to both
    else:
        xp = array_namespace(value)
        if value.shape and math.prod(value.shape) == 0:
            return value
        lo, hi = float(xp.min(value)), float(xp.max(value))
    if low <= lo and hi <= high and math.isfinite(lo) and math.isfinite(hi):
        return value  # the common case: two reductions, no temporary arrays
    ok = (value >= low) & (value <= high) & (abs(value) < math.inf)  # NaN fails all three
    bad = value[~ok].reshape(-1)[0]
    raise ValueError(f"{name} contains {float(bad)!r}: must be {range_text(low, high)}")


@dataclass(frozen=True)
class RuleParams:
    """The synapse parameters plus the presentation window and the depolarisation-to-voltage map."""

    synapse: SynapseParams = SynapseParams()
    delta_ms: float | None = None  # presentation window; None: the calcium peak time (42.4 ms)
    v_rest_mV: float = -70.0
    dv_mV: float = 70.0  # V = v_rest + dv * depolarisation; depolarisation 1 -> 0 mV by default
    carry_over: bool = True  # lam = exp(-Delta/tau_Ca); False: lam = 0 (no memory across inputs)
    spike_threshold: float = math.inf  # depolarisation above which the cell spikes (adds c_post)

    def __post_init__(self) -> None:
        """delta_ms None or > 0 ms; v_rest_mV in POTENTIAL_RANGE_MV; dv_mV finite (any sign);
        spike_threshold not NaN (inf: never spikes)."""
        if not isinstance(self.synapse, SynapseParams):
            raise ValueError(f"synapse = {self.synapse!r} is invalid: must be a SynapseParams")
        if self.delta_ms is not None:
            check_number("delta_ms", self.delta_ms, 0.0, low_open=True, unit="ms")
        check_number("v_rest_mV", self.v_rest_mV, *POTENTIAL_RANGE_MV, unit="mV")
        check_number("dv_mV", self.dv_mV, unit="mV")
        try:
            nan = math.isnan(float(self.spike_threshold))
        except (TypeError, ValueError):
            nan = True
        if nan:
            raise ValueError(f"spike_threshold = {self.spike_threshold!r} is invalid: must be a "
                             "number (inf: the cell never spikes)")

    @functools.cached_property  # a root-find when delta_ms is None: computed once
    def window_ms(self) -> float:
        s = self.synapse
        if self.delta_ms is not None:
            return self.delta_ms
        return calcium_peak(s.tau_nmda_rise_ms, s.tau_nmda_decay_ms, s.tau_ca_ms)[0]

    @property
    def lam(self) -> float:
        return math.exp(-self.window_ms / self.synapse.tau_ca_ms) if self.carry_over else 0.0

    def step_constants(self) -> StepConstants:
        """The simulator's step constants at dt = Delta (exact discretisation)."""
        model = ModelParams(synapse=self.synapse, dt_ms=self.window_ms, allow_coarse_dt=True)
        return StepConstants.from_params(model)

    def as_attrs(self) -> dict:
        out = {f"rule_{k}": v for k, v in self.synapse.as_attrs().items()}
        out.update(rule_delta_ms=self.window_ms, rule_v_rest_mV=self.v_rest_mV,
                   rule_dv_mV=self.dv_mV, rule_lambda=self.lam,
                   rule_spike_threshold=str(self.spike_threshold))
        return out


class ReceptorRule:
    """Applies the rule to arrays of synapses (any shape; pre and depolarisation broadcast)."""

    def __init__(self, params: RuleParams = RuleParams()):
        self.params = params
        self.k = params.step_constants()
        self.lam = params.lam

    def voltage(self, depolarisation):
        return self.params.v_rest_mV + self.params.dv_mV * depolarisation

    def mg_block(self, depolarisation):
        return mg_block(self.voltage(depolarisation), self.params.synapse.mg_mM)

    def step(self, calcium, ampa, pre, depolarisation, gain=1.0):
        """One presentation. Returns dict of mg_block, calcium, ampa, functional (new state).

        `gain` scales K per synapse (a calibrated K_t / K, like a synapse's own NMDA efficacy).
        """
        xp = array_namespace(calcium, ampa, pre, depolarisation)
        check_input("calcium", calcium, 0.0)
        check_input("ampa", ampa, 0.0, 1.0)
        check_input("pre", pre, 0.0)
        check_input("depolarisation", depolarisation)
        check_input("gain", gain, 0.0)
        s = self.params.synapse
        block = self.mg_block(depolarisation)
        calcium = self.lam * calcium + (s.K * gain) * pre * block
        if math.isfinite(self.params.spike_threshold):
            calcium = calcium + s.c_post * xp.astype(depolarisation > self.params.spike_threshold,
                                                     calcium.dtype)
        ampa = rho_step(xp, ampa, calcium, self.k)
        return {"mg_block": block, "calcium": calcium, "ampa": ampa,
                "functional": ampa >= s.rho_sil}

    def gate(self, pre, depolarisation, gain=1.0):
        """Functional state after one presentation from rest (C = 0, rho = 0): the learner's gate."""
        xp = array_namespace(pre, depolarisation)
        zeros = xp.zeros_like(pre * depolarisation)
        return self.step(zeros, zeros, pre, depolarisation, gain)["functional"]

    def pre_threshold(self, depolarisation, gain=1.0):
        """The release level above which one presentation from rest opens the gate: theta_p/(K B).

        Valid when the window is long enough for rho to reach rho_sil above theta_p
        (see `opens_from_rest_when_above_theta_p`).
        """
        check_input("depolarisation", depolarisation)
        check_input("gain", gain, 0.0)
        s = self.params.synapse
        return s.theta_p / ((s.K * gain) * self.mg_block(depolarisation))

    def gain_for_open_rate(self, pre, depolarisation, open_rate: float):
        """Calibration: the gain with which a share `open_rate` of these presentations opens the
        gate from rest (K * gain * pre * B > theta_p for that share)."""
        if not 0 < open_rate < 1:
            raise ValueError(f"open_rate = {open_rate!r} is invalid: must be in (0, 1)")
        check_input("pre", pre, 0.0)
        check_input("depolarisation", depolarisation)
        drive = np.sort(np.asarray(pre * self.mg_block(depolarisation), dtype=float).ravel())
        if drive.size == 0:
            raise ValueError("calibration needs at least one presentation")
        n_open = math.ceil(open_rate * drive.size - 1e-9)  # the smallest share >= open_rate
        q = float(drive[drive.size - n_open])  # opens exactly these (ties aside)
        s = self.params.synapse
        return s.theta_p / (s.K * max(q, np.finfo(float).tiny)) * (1 + 1e-9)

    def opens_from_rest_when_above_theta_p(self) -> bool:
        """k >= -ln(1 - rho_sil/rho_inf): the threshold-gate reduction of docs/model.md §5.5."""
        s = self.params.synapse
        k = (s.gamma_p + s.gamma_d) * self.params.window_ms / s.tau_rho_ms
        return s.rho_sil < s.rho_inf and k >= -math.log(1.0 - s.rho_sil / s.rho_inf)
