"""synsim.rule: one presentation equals the simulator's matching protocol; threshold-gate reduction."""

import math

import numpy as np
import pytest
import torch

from synsim import kinetics
from synsim.model import Circuit, Stimulus
from synsim.params import ModelParams, SynapseParams
from synsim.rule import ReceptorRule, RuleParams
from synsim.simulate import simulate


def simulator_one_presentation(pre, v_mV, rho0, synapse):
    """Voltage clamp at v, one release of amplitude `pre` at t = 0, dt = the presentation window."""
    delta = RuleParams(synapse=synapse).window_ms
    params = ModelParams(synapse=synapse, dt_ms=delta, allow_coarse_dt=True)
    n = len(pre)
    circuit = Circuit(syn_source=np.arange(n), syn_post=np.arange(n), n_sources=n, n_post=n,
                      v_hold_mV=v_mV, rho0=rho0)
    stim = Stimulus(n_steps=4, release_step=np.zeros(n, int), release_source=np.arange(n),
                    release_amplitude=pre)
    ds = simulate(circuit, stim, params, record=("calcium", "ampa", "mg_block"))
    # the release is visible from t_1 (§5.3); its calcium is read one window later, at t_2, and
    # the insertion that calcium drives is visible one step after that, at t_3
    return ds.calcium.values[2], ds.ampa.values[3], ds.mg_block.values[0]


@pytest.mark.parametrize("K", [2.0, 3.0])
def test_rule_equals_simulator_for_one_presentation(K):
    synapse = SynapseParams(K=K)
    rule = ReceptorRule(RuleParams(synapse=synapse))
    grid = np.array(np.meshgrid(np.linspace(0, 1, 6), np.linspace(0, 1, 8), [0.0, 0.3, 0.7],
                                indexing="ij")).reshape(3, -1)
    pre, u, rho0 = grid
    v = rule.voltage(u)
    c_sim, rho_sim, block_sim = simulator_one_presentation(pre, v, rho0, synapse)
    out = rule.step(torch.zeros(pre.size, dtype=torch.float64), torch.tensor(rho0),
                    torch.tensor(pre), torch.tensor(u))
    np.testing.assert_allclose(out["mg_block"].numpy(), block_sim, rtol=1e-14)
    np.testing.assert_allclose(out["calcium"].numpy(), c_sim, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(out["ampa"].numpy(), rho_sim, rtol=1e-12, atol=1e-15)
    # all three regimes occur on the grid: unchanged, silencing, insertion
    moved = out["ampa"].numpy() - rho0
    assert (moved > 0).any() and (moved < 0).any() and (moved == 0).any()


def test_window_is_the_calcium_peak_and_calcium_is_k_pre_b():
    synapse = SynapseParams()
    params = RuleParams(synapse=synapse)
    assert params.window_ms == pytest.approx(42.36, abs=0.01)
    rule = ReceptorRule(params)
    out = rule.step(np.zeros(1), np.zeros(1), np.array([0.5]), np.array([1.0]))
    assert out["calcium"][0] == pytest.approx(2.0 * 0.5 * kinetics.mg_block(np.float64(0.0)))


def test_reduction_to_a_threshold_gate():
    """From rest, one presentation opens the gate iff K * pre * B > theta_p
    (docs/model.md §5.5)."""
    rule = ReceptorRule()
    assert rule.opens_from_rest_when_above_theta_p()
    u = torch.linspace(0, 1, 41, dtype=torch.float64)[:, None]
    pre = torch.linspace(0, 1, 201, dtype=torch.float64)[None, :]
    gate = rule.gate(pre, u)
    s = rule.params.synapse
    expected = s.K * pre * rule.mg_block(u) > s.theta_p
    assert torch.equal(gate, expected)
    thr = rule.pre_threshold(torch.tensor([1.0], dtype=torch.float64))
    assert thr.item() == pytest.approx(1.3 / (2.0 * kinetics.mg_block(np.float64(0.0))))


def test_paper_mlp_gate_is_the_case_k_b_2_6():
    """thr = theta_p/(K B) = 0.5 when K B = 2.6: the paper's sigmoid >= 0.5 gate (boundary aside)."""
    rule = ReceptorRule(RuleParams(synapse=SynapseParams(K=2.6, mg_mM=0.0)))
    pre = torch.tensor([0.49, 0.5001, 0.9], dtype=torch.float64)
    gate = rule.gate(pre, torch.ones(3, dtype=torch.float64))
    assert gate.tolist() == [False, True, True]


def test_short_window_cannot_open_the_gate():
    rule = ReceptorRule(RuleParams(delta_ms=1.0))
    assert not rule.opens_from_rest_when_above_theta_p()
    assert not rule.gate(torch.ones(1, dtype=torch.float64),
                         torch.ones(1, dtype=torch.float64)).any()


def test_carry_over_and_spikes():
    rule = ReceptorRule(RuleParams(spike_threshold=0.8))
    c = torch.tensor([1.0], dtype=torch.float64)
    out = rule.step(c, torch.zeros(1, dtype=torch.float64), torch.zeros(1, dtype=torch.float64),
                    torch.tensor([0.9], dtype=torch.float64))
    assert out["calcium"].item() == pytest.approx(rule.lam + 0.5)
    no_memory = ReceptorRule(RuleParams(carry_over=False))
    out = no_memory.step(c, torch.zeros(1, dtype=torch.float64), torch.zeros(1, dtype=torch.float64),
                         torch.zeros(1, dtype=torch.float64))
    assert out["calcium"].item() == 0.0


def test_rule_runs_in_float32_and_rejects_bad_window():
    rule = ReceptorRule()
    out = rule.step(torch.zeros(4), torch.zeros(4), torch.rand(4), torch.rand(4))
    assert out["ampa"].dtype == torch.float32
    with pytest.raises(ValueError, match=r"delta_ms = -1.0 is invalid: must be > 0 ms"):
        RuleParams(delta_ms=-1.0)


def test_calibrated_gain_opens_the_chosen_share():
    rule = ReceptorRule()
    gen = torch.Generator().manual_seed(0)
    pre = torch.rand(1000, generator=gen, dtype=torch.float64)
    u = torch.rand(1000, generator=gen, dtype=torch.float64)
    gain = rule.gain_for_open_rate(pre.numpy(), u.numpy(), 0.9)
    share = rule.gate(pre, u, gain).double().mean().item()
    assert share == 0.9
    for n, rate in ((10, 0.3), (10, 0.5), (32, 0.75), (48, 0.9)):  # the smallest share >= rate
        p, d = pre[:n].numpy(), u[:n].numpy()
        got = rule.gate(pre[:n], u[:n], rule.gain_for_open_rate(p, d, rate)).double().mean().item()
        assert got == pytest.approx(math.ceil(rate * n - 1e-9) / n)
    with pytest.raises(ValueError, match=r"open_rate = 1.5 is invalid"):
        rule.gain_for_open_rate(pre.numpy(), u.numpy(), 1.5)
