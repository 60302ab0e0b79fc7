"""Parameters of the NGAI synapse model and the postsynaptic neuron, with units and sources.

One place for defaults (docs/model.md §4.5). Every field name carries its unit; dimensionless
quantities carry none. Validation happens at construction so that a bad value fails with one line
that names the parameter, the value and the valid range.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass, field

from . import kinetics


# Membrane, reversal and clamp potentials must lie in this range (mV): wide enough for any cell,
# narrow enough to catch a value in volts or a sign error of a large number.
POTENTIAL_RANGE_MV = (-150.0, 100.0)


def _require(ok: bool, name: str, value, valid: str) -> None:
    if not ok:
        raise ValueError(f"{name} = {value!r} is invalid: must be {valid}")


def check_number(name: str, value, low: float = -math.inf, high: float = math.inf, *,
                 low_open: bool = False, high_open: bool = False, unit: str = "") -> float:
    """`value` as a float, or a one-line ValueError naming `name`, the value and the range.

    Always refuses NaN and +-inf (a bound of +-inf means "no bound, but finite"); `low_open` /
    `high_open` exclude the bound itself. Shared by every validation layer of synsim.
    """
    try:
        x = float(value)
    except (TypeError, ValueError):
        x = math.nan
        ok = False
    else:
        ok = (math.isfinite(x) and (x > low if low_open else x >= low)
              and (x < high if high_open else x <= high))
    if not ok:
        raise ValueError(f"{name} = {value!r} is invalid: must be "
                         f"{range_text(low, high, low_open, high_open, unit)}")
    return x


def range_text(low: float, high: float, low_open: bool = False, high_open: bool = False,
               unit: str = "") -> str:
    """'> 0 ms and finite', 'in [0, 1]', 'finite mV', ... as the error messages say it."""
    unit = f" {unit}" if unit else ""
    if math.isinf(low) and math.isinf(high):
        return f"finite{unit}"
    if math.isinf(high):
        return f"{'>' if low_open else '>='} {low:g}{unit} and finite"
    if math.isinf(low):
        return f"{'<' if high_open else '<='} {high:g}{unit}"
    return f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}{unit}"


def _fields(obj, rules: dict) -> None:
    """Check every field of `rules` (name -> check_number keyword arguments)."""
    for name, kw in rules.items():
        check_number(name, getattr(obj, name), **kw)


@dataclass(frozen=True)
class SynapseParams:
    """NGAI synapse: bi-exponential AMPA/NMDA, Jahr–Stevens Mg2+ block, NMDA calcium, AMPA occupancy.

    Sources: time constants Brunel & Wang 2001 / Franks et al. 2002; Mg block Jahr & Stevens 1990;
    calcium thresholds and rates Graupner & Brunel 2012; rho_sil Matsuzaki et al. 2001.

    Valid values (checked at construction; NaN and inf are refused everywhere): time constants
    > 0 ms; e_glu_mV in POTENTIAL_RANGE_MV (a reversal potential, any sign); conductances,
    mg_mM, K, gamma_d, gamma_p, c_post and bap_amplitude_mV >= 0 (0 switches the block, an
    influx, a trafficking direction, the postsynaptic calcium or the bAP off); theta_d > 0,
    theta_p >= theta_d; c_post < theta_d; rho_sil in (0, 1).
    """

    tau_ampa_rise_ms: float = 0.5
    tau_ampa_decay_ms: float = 2.0
    tau_nmda_rise_ms: float = 2.0
    tau_nmda_decay_ms: float = 100.0
    e_glu_mV: float = 0.0
    g_ampa_max_nS: float = 1.0  # AMPA conductance at full occupancy (rho = 1)
    g_nmda_nS: float = 0.327  # Brunel & Wang 2001, E cells
    mg_mM: float = 1.0
    tau_ca_ms: float = 20.0
    K: float = 2.0  # peak calcium of one release at B = 1 (kappa = K / peak_per_kappa)
    theta_d: float = 1.0
    theta_p: float = 1.3
    gamma_d: float = 200.0
    gamma_p: float = 321.808
    tau_rho_ms: float = 150_000.0
    c_post: float = 0.5  # calcium added by a postsynaptic spike (VGCC); must stay below theta_d
    bap_amplitude_mV: float = 100.0  # bAP depolarisation at the spine (A_b; Shouval 2002: 60-100)
    tau_bap_ms: float = 25.0  # decay of the bAP trace (tau_b; 3-25 ms), fitted to the STDP window
    rho_sil: float = 0.01  # a synapse is functional when rho >= rho_sil

    _RULES = {  # field -> valid range (check_number); a class attribute, not a field
        **{name: dict(low=0.0, low_open=True, unit="ms") for name in (
            "tau_ampa_rise_ms", "tau_ampa_decay_ms", "tau_nmda_rise_ms", "tau_nmda_decay_ms",
            "tau_ca_ms", "tau_rho_ms", "tau_bap_ms")},
        "e_glu_mV": dict(low=POTENTIAL_RANGE_MV[0], high=POTENTIAL_RANGE_MV[1], unit="mV"),
        "g_ampa_max_nS": dict(low=0.0, unit="nS"),
        "g_nmda_nS": dict(low=0.0, unit="nS"),
        "mg_mM": dict(low=0.0, unit="mM"),
        "K": dict(low=0.0),
        "theta_d": dict(low=0.0, low_open=True),
        "theta_p": dict(low=0.0, low_open=True),
        "gamma_d": dict(low=0.0),
        "gamma_p": dict(low=0.0),
        "c_post": dict(low=0.0),
        "bap_amplitude_mV": dict(low=0.0, unit="mV"),
        "rho_sil": dict(low=0.0, high=1.0, low_open=True, high_open=True),
    }

    def __post_init__(self) -> None:
        _fields(self, self._RULES)
        _require(self.tau_ampa_rise_ms < self.tau_ampa_decay_ms, "tau_ampa_rise_ms",
                 self.tau_ampa_rise_ms, f"< tau_ampa_decay_ms ({self.tau_ampa_decay_ms} ms)")
        _require(self.tau_nmda_rise_ms < self.tau_nmda_decay_ms, "tau_nmda_rise_ms",
                 self.tau_nmda_rise_ms, f"< tau_nmda_decay_ms ({self.tau_nmda_decay_ms} ms)")
        for tau_name in ("tau_nmda_rise_ms", "tau_nmda_decay_ms"):
            _require(getattr(self, tau_name) != self.tau_ca_ms, tau_name, getattr(self, tau_name),
                     f"different from tau_ca_ms ({self.tau_ca_ms} ms) for the exact calcium update")
        _require(self.theta_p >= self.theta_d, "theta_p", self.theta_p,
                 f">= theta_d ({self.theta_d})")
        _require(self.c_post < self.theta_d, "c_post", self.c_post,
                 f"< theta_d ({self.theta_d}) so that postsynaptic spikes alone never change rho")

    # --- derived quantities (exact, never hard-coded) ---
    @property
    def eta_ampa(self) -> float:
        """Peak normalisation of the AMPA kernel (2.1165 for 0.5/2 ms)."""
        return kinetics.biexp_eta(self.tau_ampa_rise_ms, self.tau_ampa_decay_ms)

    @property
    def eta_nmda(self) -> float:
        """Peak normalisation of the NMDA kernel (1.1052 for 2/100 ms)."""
        return kinetics.biexp_eta(self.tau_nmda_rise_ms, self.tau_nmda_decay_ms)

    @functools.cached_property  # a root-find: computed once per parameter set
    def calcium_peak_per_kappa_ms(self) -> float:
        """Peak calcium of one release per unit kappa*B, in ms (14.4707 ms for the defaults)."""
        return kinetics.calcium_peak(self.tau_nmda_rise_ms, self.tau_nmda_decay_ms,
                                     self.tau_ca_ms)[1]

    @property
    def kappa_per_ms(self) -> float:
        """Calcium influx rate per unit open NMDA and unblocked fraction (1/ms)."""
        return self.K / self.calcium_peak_per_kappa_ms

    @property
    def rho_inf(self) -> float:
        """Fixed point of rho under sustained c > theta_p: gamma_p / (gamma_p + gamma_d)."""
        total = self.gamma_p + self.gamma_d
        return self.gamma_p / total if total > 0 else 0.0  # no trafficking: nothing moves

    def fastest_tau_ms(self) -> float:
        return min(self.tau_ampa_rise_ms, self.tau_ampa_decay_ms, self.tau_nmda_rise_ms,
                   self.tau_nmda_decay_ms, self.tau_ca_ms, self.tau_bap_ms)

    def check_dt(self, dt_ms: float) -> None:
        """dt must be positive and no coarser than the fastest time constant."""
        fastest = self.fastest_tau_ms()
        try:
            check_number("dt_ms", dt_ms, 0.0, fastest, low_open=True, unit="ms")
        except ValueError as e:
            raise ValueError(f"{e} (the fastest time constant)") from None

    def replace(self, **changes) -> "SynapseParams":
        return dataclasses.replace(self, **changes)

    def as_attrs(self) -> dict:
        """Flat dict for xarray/netCDF attributes (units are in the names)."""
        out = dataclasses.asdict(self)
        out.update(eta_ampa=self.eta_ampa, eta_nmda=self.eta_nmda,
                   kappa_per_ms=self.kappa_per_ms, rho_inf=self.rho_inf)
        return out


@dataclass(frozen=True)
class NeuronParams:
    """Leaky integrate-and-fire postsynaptic neuron (Brunel & Wang 2001 pyramidal cell).

    Valid values (NaN and inf refused): c_m_pF and g_leak_nS > 0; the potentials in
    POTENTIAL_RANGE_MV with v_reset_mV < v_threshold_mV (e_leak_mV may lie above threshold: a
    tonically firing cell); refractory_ms >= 0 (0: none).
    """

    c_m_pF: float = 500.0
    g_leak_nS: float = 25.0
    e_leak_mV: float = -70.0
    v_threshold_mV: float = -50.0
    v_reset_mV: float = -55.0
    refractory_ms: float = 2.0

    _RULES = {
        "c_m_pF": dict(low=0.0, low_open=True, unit="pF"),
        "g_leak_nS": dict(low=0.0, low_open=True, unit="nS"),
        **{name: dict(low=POTENTIAL_RANGE_MV[0], high=POTENTIAL_RANGE_MV[1], unit="mV")
           for name in ("e_leak_mV", "v_threshold_mV", "v_reset_mV")},
        "refractory_ms": dict(low=0.0, unit="ms"),
    }

    def __post_init__(self) -> None:
        _fields(self, self._RULES)
        _require(self.v_reset_mV < self.v_threshold_mV, "v_reset_mV", self.v_reset_mV,
                 f"< v_threshold_mV ({self.v_threshold_mV} mV)")

    def as_attrs(self) -> dict:
        return {f"neuron_{k}": v for k, v in dataclasses.asdict(self).items()}


@dataclass(frozen=True)
class ModelParams:
    """Everything a simulation needs besides the circuit and the stimulus."""

    synapse: SynapseParams = field(default_factory=SynapseParams)
    neuron: NeuronParams = field(default_factory=NeuronParams)
    dt_ms: float = 0.1
    discretisation: str = "exact"  # "exact" (docs/model.md §5.1) or "zoh" (§5.2)
    # The exact update stays exact at any dt for traces and calcium; only the rho gates are sampled
    # once per step. A step as long as a whole stimulus presentation is the discrete rule
    # (synsim.rule); that, and only that, needs dt above the fastest time constant.
    allow_coarse_dt: bool = False

    def __post_init__(self) -> None:
        _require(isinstance(self.synapse, SynapseParams), "synapse", self.synapse,
                 "a SynapseParams")
        _require(isinstance(self.neuron, NeuronParams), "neuron", self.neuron, "a NeuronParams")
        _require(self.discretisation in ("exact", "zoh"), "discretisation", self.discretisation,
                 "'exact' or 'zoh'")
        if self.allow_coarse_dt and self.discretisation == "exact":
            check_number("dt_ms", self.dt_ms, 0.0, low_open=True, unit="ms")
        else:
            self.synapse.check_dt(self.dt_ms)

    def replace(self, **changes) -> "ModelParams":
        return dataclasses.replace(self, **changes)

    def as_attrs(self) -> dict:
        out = self.synapse.as_attrs()
        out.update(self.neuron.as_attrs())
        out.update(dt_ms=self.dt_ms, discretisation=self.discretisation,
                   allow_coarse_dt=self.allow_coarse_dt)
        return out
