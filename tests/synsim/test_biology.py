"""The published biology the model must reproduce (docs/model.md §1, §2, §4.6)."""

import numpy as np
import pytest

from synsim import kinetics, protocols


def test_silent_synapse_no_ampa_at_rest_nmda_when_depolarised():
    ds = protocols.epsc(v_hold_mV=(-70.0, 40.0), rho0=(0.0, 0.5))
    silent = ds.where(ds.rho0 == 0.0, drop=True)
    at_rest = silent.sel(post=silent.post[silent.v_hold == -70.0])
    at_plus = silent.sel(post=silent.post[silent.v_hold == 40.0])
    assert np.all(at_rest.i_ampa.values == 0.0) and np.all(at_plus.i_ampa.values == 0.0)
    nmda_plus = at_plus.i_nmda.values.max()
    assert nmda_plus > 10.0  # pA, outward
    # Mg2+ block: 0.0445 * 70 mV against 0.977 * 40 mV, i.e. 8% of the +40 mV current
    assert 0 < np.abs(at_rest.i_nmda.values).max() < 0.1 * nmda_plus
    functional = ds.where(ds.rho0 == 0.5, drop=True)
    epsc_rest = functional.sel(post=functional.post[functional.v_hold == -70.0]).i_syn.values
    assert epsc_rest.min() < -20.0  # an inward AMPA EPSC at -70 mV


def test_nmda_iv_is_j_shaped_and_ampa_iv_is_linear():
    ds = protocols.iv(v_hold_mV=np.arange(-100.0, 61.0, 10.0))
    v, nmda, ampa = ds.v_hold.values, ds.i_nmda_peak.values, ds.i_ampa_peak.values
    # AMPA: linear through E_glu = 0 mV
    nonzero = v != 0
    slope = ampa[nonzero] / v[nonzero]
    np.testing.assert_allclose(slope, slope[0], rtol=1e-9)
    # NMDA: negative-slope region at hyperpolarised potentials, minimum near -30 mV,
    # reversal at 0 mV and outward above
    assert np.all(np.diff(nmda[(v >= -100) & (v <= -40)]) < 0)
    assert -40.0 <= v[np.argmin(nmda)] <= -20.0
    assert nmda[v == 0.0] == 0.0 and np.all(nmda[v > 0] > 0)
    np.testing.assert_allclose(ds.mg_block.values, kinetics.mg_block(v, 1.0), rtol=1e-14)


@pytest.mark.slow
def test_pairing_voltage_dependence_artola_singer():
    """200 pulses at 2 Hz: none when hyperpolarised, silencing at -20 mV, unsilencing at -10/0 mV."""
    ds = protocols.pairing(frequency_hz=2.0, n_pulses=200, v_clamp_mV=(-40.0, -30.0, -20.0, -10.0,
                           0.0), rho0=(0.3, 0.0), record_every_ms=100.0)
    final = ds.ampa_final_grid.to_pandas()
    rho_sil = ds.attrs["rho_sil"]
    assert final.loc[-40.0].tolist() == [0.3, 0.0] and final.loc[-30.0].tolist() == [0.3, 0.0]
    assert final.loc[-20.0, 0.3] == pytest.approx(0.001, abs=0.002)  # silenced
    assert final.loc[-20.0, 0.3] < rho_sil and final.loc[-20.0, 0.0] == 0.0
    for v, expected in ((-10.0, 0.28), (0.0, 0.49)):  # docs/model.md §4.6 regression fixture
        assert final.loc[v, 0.0] == pytest.approx(expected, abs=0.01)
        assert final.loc[v, 0.3] == pytest.approx(expected, abs=0.01)
        assert final.loc[v, 0.0] >= rho_sil  # unsilenced
    kinds = dict(zip(ds.event_synapse.values.tolist(), ds.event_kind.values.tolist()))
    syn = {(float(a), float(b)): int(s) for s, a, b in zip(ds.synapse.values, ds.v_clamp.values,
                                                           ds.rho0.values)}
    assert kinds[syn[(-20.0, 0.3)]] == -1 and kinds[syn[(-10.0, 0.0)]] == 1


def test_spike_timing_window_signs():
    """Pre-before-post unsilences and potentiates; short post-before-pre depresses; far apart: none."""
    ds = protocols.stdp(delays_ms=(-50.0, -5.0, 5.0, 10.0, 20.0), n_pairings=20, frequency_hz=5.0,
                        rho0=(0.0, 0.3), record_every_ms=10.0)
    d = ds.delta_ampa.to_pandas()
    for delay in (5.0, 10.0, 20.0):
        assert d.loc[delay, 0.0] > 0.1 and d.loc[delay, 0.3] > 0.0
        assert bool(ds.unsilenced.sel(delay_ms=delay, rho0_value=0.0))
    assert d.loc[-5.0, 0.3] < 0.0 and d.loc[-5.0, 0.0] == 0.0
    assert d.loc[-50.0].tolist() == [0.0, 0.0]


def test_minimal_stimulation_failure_rate_estimate():
    ds = protocols.minimal_stimulation(n_synapses=4, silent_fraction=0.5, p_release=0.3,
                                       n_trials=300, seed=3)
    fail = ds.failure_rate.values
    assert fail[0] > fail[1]  # more failures at -70 mV: silent contacts are invisible there
    # failures are exactly the trials in which no visible contact released
    released = ds.released.values  # (holding, trial, contact)
    functional = np.arange(4) >= 2
    np.testing.assert_array_equal(ds.success.values[:, 0], released[0][:, functional].any(axis=1))
    np.testing.assert_array_equal(ds.success.values[:, 1], released[1].any(axis=1))
    assert float(ds.silent_fraction_true) == 0.5
    assert abs(float(ds.silent_fraction_estimate) - 0.5) < 0.2
    again = protocols.minimal_stimulation(n_synapses=4, silent_fraction=0.5, p_release=0.3,
                                          n_trials=300, seed=3)
    assert again.identical(ds)
