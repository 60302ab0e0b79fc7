"""Pure kinetic functions and closed forms of the NGAI model (docs/model.md §2, §6).

Every function accepts Python floats, numpy arrays or torch tensors (the array namespace is taken
from the argument), so the simulator, the discrete rule and the analytic tests share one formula.
"""

from __future__ import annotations

import math

import numpy as np
from array_api_compat import array_namespace, is_array_api_obj

MG_BLOCK_SLOPE_PER_mV = 0.062  # Jahr & Stevens 1990
MG_BLOCK_HALF_mM = 3.57  # Jahr & Stevens 1990


def _xp(x):
    return array_namespace(x) if is_array_api_obj(x) else np


def mg_block(v_mV, mg_mM: float = 1.0):
    """Unblocked NMDA fraction B(V) = 1 / (1 + [Mg]/3.57 mM * exp(-0.062 V/mV))."""
    xp = _xp(v_mV)
    return 1.0 / (1.0 + (mg_mM / MG_BLOCK_HALF_mM) * xp.exp(-MG_BLOCK_SLOPE_PER_mV * v_mV))


def mg_block_v_half(mg_mM: float) -> float:
    """V_1/2 = ln([Mg]/3.57)/0.062 mV: the voltage at which half the NMDA receptors are unblocked."""
    if mg_mM <= 0:
        return -math.inf
    return math.log(mg_mM / MG_BLOCK_HALF_mM) / MG_BLOCK_SLOPE_PER_mV


def biexp_peak_time(tau_rise_ms: float, tau_decay_ms: float) -> float:
    """Time of the peak of exp(-t/tau_d) - exp(-t/tau_r), in ms."""
    return (tau_rise_ms * tau_decay_ms / (tau_decay_ms - tau_rise_ms)
            * math.log(tau_decay_ms / tau_rise_ms))


def biexp_eta(tau_rise_ms: float, tau_decay_ms: float) -> float:
    """Normalisation eta that gives the bi-exponential kernel a peak of exactly 1."""
    tp = biexp_peak_time(tau_rise_ms, tau_decay_ms)
    return 1.0 / (math.exp(-tp / tau_decay_ms) - math.exp(-tp / tau_rise_ms))


def biexp_kernel(t_ms, tau_rise_ms: float, tau_decay_ms: float):
    """Peak-normalised conductance kernel s(t) for one release at t = 0 (zero for t < 0)."""
    xp = _xp(t_ms)
    eta = biexp_eta(tau_rise_ms, tau_decay_ms)
    tt = xp.where(t_ms >= 0, t_ms, 0.0 * t_ms)
    return xp.where(t_ms >= 0, eta * (xp.exp(-tt / tau_decay_ms) - xp.exp(-tt / tau_rise_ms)),
                    0.0 * t_ms)


def unitary_epsc_pA(t_ms, g_nS: float, tau_rise_ms: float, tau_decay_ms: float, v_mV: float,
                    e_mV: float = 0.0):
    """Closed-form EPSC g*s(t)*(V - E) in pA (outward positive, voltage-clamp convention)."""
    return g_nS * biexp_kernel(t_ms, tau_rise_ms, tau_decay_ms) * (v_mV - e_mV)


def phi(t_ms, tau_x_ms: float, tau_ca_ms: float):
    """Integral of exp(-(t-s)/tau_ca) exp(-s/tau_x) over [0, t], in ms."""
    xp = _xp(t_ms)
    return ((xp.exp(-t_ms / tau_x_ms) - xp.exp(-t_ms / tau_ca_ms))
            / (1.0 / tau_ca_ms - 1.0 / tau_x_ms))


def calcium_single_release(t_ms, tau_rise_ms: float, tau_decay_ms: float, tau_ca_ms: float,
                           kappa_b_per_ms: float = 1.0):
    """Calcium after one release at t = 0 under a constant Mg block (docs/model.md §6).

    c(t) = kappa*B*eta*[phi_d(t) - phi_r(t)]; zero for t < 0.
    """
    xp = _xp(t_ms)
    eta = biexp_eta(tau_rise_ms, tau_decay_ms)
    tt = xp.where(t_ms >= 0, t_ms, 0.0 * t_ms)
    c = kappa_b_per_ms * eta * (phi(tt, tau_decay_ms, tau_ca_ms) - phi(tt, tau_rise_ms, tau_ca_ms))
    return xp.where(t_ms >= 0, c, 0.0 * t_ms)


def calcium_peak(tau_rise_ms: float, tau_decay_ms: float, tau_ca_ms: float) -> tuple[float, float]:
    """(time of peak in ms, peak value in ms) of calcium per unit kappa*B after one release.

    14.4707 ms at 42.4 ms for tau_ca = 20 ms and NMDA 2/100 ms.
    """
    from scipy.optimize import brentq

    eta = biexp_eta(tau_rise_ms, tau_decay_ms)

    def dcdt(t):  # dc/dt = -c/tau_ca + s_N(t), with kappa*B = 1
        c = calcium_single_release(t, tau_rise_ms, tau_decay_ms, tau_ca_ms)
        s = eta * (math.exp(-t / tau_decay_ms) - math.exp(-t / tau_rise_ms))
        return s - c / tau_ca_ms

    hi = 10.0 * max(tau_decay_ms, tau_ca_ms)
    t_peak = brentq(dcdt, 1e-9, hi, xtol=1e-14, rtol=4 * np.finfo(float).eps, maxiter=500)
    return t_peak, float(calcium_single_release(t_peak, tau_rise_ms, tau_decay_ms, tau_ca_ms))


def rho_under_constant_calcium(rho0, c: float, t_ms, gamma_p: float, gamma_d: float,
                               tau_rho_ms: float, theta_p: float, theta_d: float):
    """Closed-form AMPA occupancy after t ms at a constant calcium level c (docs/model.md §4.4).

    Above theta_p: exponential approach to gamma_p/(gamma_p+gamma_d); between the thresholds:
    decay to 0 at rate gamma_d/tau_rho; at or below theta_d: unchanged.
    """
    xp = _xp(t_ms) if is_array_api_obj(t_ms) else _xp(rho0)
    hp = 1.0 if c > theta_p else 0.0
    hd = 1.0 if c > theta_d else 0.0
    rate = (gamma_p * hp + gamma_d * hd) / tau_rho_ms
    if rate == 0:
        return rho0 + 0.0 * t_ms
    rho_inf = gamma_p * hp / (gamma_p * hp + gamma_d * hd)
    return rho_inf + (rho0 - rho_inf) * xp.exp(-rate * (0.0 * rho0 + t_ms))
