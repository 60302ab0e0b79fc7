"""Fixtures shared by the synsim tests."""

import numpy as np
import pytest

from synsim import experiments

# settings that shrink each CLASSIC experiment to a fraction of a second, same protocol and outputs
TINY = {
    "epsc": dict(duration_ms=100.0),
    "iv": dict(v_hold_mV=np.arange(-100.0, 61.0, 20.0), duration_ms=100.0),
    "pairing": dict(frequency_hz=5.0, n_pulses=3, tail_ms=100.0, progress=False),
    "stdp": dict(n_pairings=3, progress=False),
    "minimal_stimulation": dict(n_trials=20),
    "pairing_calcium": dict(frequency_hz=5.0, n_pulses=3, tail_ms=200.0),
    "population": dict(n_inputs=8, rate_hz=20.0, i_ext_pA=450.0, duration_ms=300.0,
                       rho0=(0.0, 0.3) * 4, record_every_ms=1.0),
}


@pytest.fixture
def tiny_classic(monkeypatch):
    """experiments.CLASSIC with every experiment shrunk (same protocols, same variables)."""
    assert set(TINY) == set(experiments.CLASSIC)
    for name, experiment in experiments.CLASSIC.items():
        tiny = experiments.Experiment(experiment.protocol, {**experiment.settings, **TINY[name]})
        monkeypatch.setitem(experiments.CLASSIC, name, tiny)
    return experiments.CLASSIC
