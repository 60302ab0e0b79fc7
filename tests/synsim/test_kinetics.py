"""Analytic checks of the kernels (docs/model.md §2, §6)."""

import numpy as np
import pytest
import torch

from synsim import kinetics
from synsim.params import SynapseParams


@pytest.mark.parametrize("v, b1, b12", [(-80, .024, .020), (-70, .0445, .037), (-60, .080, .067),
                                         (-50, .139, .118), (-40, .230, .199), (-30, .357, .317),
                                         (-20, .508, .463), (-10, .658, .615), (0, .781, .748),
                                         (20, .925, .911), (40, .977, .973)])
def test_mg_block_table(v, b1, b12):
    assert kinetics.mg_block(np.float64(v), 1.0) == pytest.approx(b1, abs=6e-4)
    assert kinetics.mg_block(np.float64(v), 1.2) == pytest.approx(b12, abs=6e-4)


def test_mg_block_logistic_form_and_v_half():
    assert kinetics.mg_block_v_half(1.0) == pytest.approx(-20.5, abs=0.05)
    assert kinetics.mg_block_v_half(1.2) == pytest.approx(-17.6, abs=0.05)
    assert kinetics.mg_block_v_half(2.0) == pytest.approx(-9.3, abs=0.05)
    v = np.linspace(-100, 60, 33)
    logistic = 1 / (1 + np.exp(-0.062 * (v - kinetics.mg_block_v_half(1.0))))
    np.testing.assert_allclose(kinetics.mg_block(v, 1.0), logistic, rtol=1e-13)
    assert kinetics.mg_block(np.float64(-70.0), 0.0) == 1.0


def test_mg_block_torch_matches_numpy():
    v = np.linspace(-100, 60, 17)
    np.testing.assert_allclose(kinetics.mg_block(torch.tensor(v), 1.0).numpy(),
                               kinetics.mg_block(v, 1.0), rtol=1e-15)


@pytest.mark.parametrize("tr, td, tpeak, eta", [(0.5, 2.0, 0.924, 2.1165), (0.2, 2.0, 0.512, 1.4351),
                                                (2.0, 100.0, 7.98, 1.1052), (2.0, 50.0, 6.71, 1.1912)])
def test_biexponential_normalisation(tr, td, tpeak, eta):
    assert kinetics.biexp_peak_time(tr, td) == pytest.approx(tpeak, abs=6e-3)
    assert kinetics.biexp_eta(tr, td) == pytest.approx(eta, abs=6e-5)
    assert kinetics.biexp_kernel(np.float64(kinetics.biexp_peak_time(tr, td)), tr, td) == \
        pytest.approx(1.0, abs=1e-14)
    t = np.linspace(0, 5 * td, 20001)
    assert kinetics.biexp_kernel(t, tr, td).max() <= 1.0 + 1e-15


def test_calcium_peak_closed_form():
    t_peak, c_peak = kinetics.calcium_peak(2.0, 100.0, 20.0)
    assert c_peak == pytest.approx(14.4707, abs=1e-4) and t_peak == pytest.approx(42.4, abs=0.05)
    t_peak, c_peak = kinetics.calcium_peak(2.0, 100.0, 50.0)
    assert c_peak == pytest.approx(27.07, abs=5e-3) and t_peak == pytest.approx(71.4, abs=0.05)
    p = SynapseParams()
    assert p.kappa_per_ms == pytest.approx(p.K / 14.4707, rel=1e-5)


def test_rho_closed_form_regimes():
    args = dict(gamma_p=321.808, gamma_d=200.0, tau_rho_ms=150e3, theta_p=1.3, theta_d=1.0)
    t = np.array([0.0, 1e3, 1e6])
    above = kinetics.rho_under_constant_calcium(0.0, 2.0, t, **args)
    assert above[-1] == pytest.approx(0.6167, abs=1e-4) and above[0] == 0.0
    band = kinetics.rho_under_constant_calcium(0.5, 1.1, t, **args)
    np.testing.assert_allclose(band, 0.5 * np.exp(-200.0 / 150e3 * t))
    below = kinetics.rho_under_constant_calcium(0.5, 0.9, t, **args)
    np.testing.assert_array_equal(below, 0.5)
