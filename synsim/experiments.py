"""The canonical experiments, defined once: which protocol, with which settings.

An `Experiment` is a protocol function (synsim.protocols) and the keyword arguments that make it a
canonical experiment; calling it runs the protocol, any keyword overriding a setting (`params`,
`simulator`, `backend`, ...). Two registries read by every entry point:

* CLASSIC: the classic receptor experiments at full length; `python -m synsim.demo` runs them all,
  the figure set (synsim.figures.FIGURES) draws six of them. `quick=True` shortens the long
  trains.
* CROSSCHECK: short versions that `python -m synsim.crosscheck` runs twice, in synsim and in the
  Brian2 reference (`simulator=brian2_simulator()`), in both discretisations; the residual figure
  draws one of them (`brian2_pair`).

A run directory holds one `NAME.nc` per experiment (`save`, `load`).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping

import numpy as np
import xarray as xr

from . import io, protocols
from .errors import DataFileError
from .simulate import RECORDABLE


@dataclass(frozen=True)
class Experiment:
    """A protocol and the settings (keyword arguments) that make it a canonical experiment."""

    protocol: Callable[..., xr.Dataset]
    settings: Mapping[str, object]
    quick_settings: Mapping[str, object] = field(default_factory=dict)  # a short run, same shape

    def __call__(self, quick: bool = False, **overrides) -> xr.Dataset:
        return self.protocol(**{**self.settings, **(self.quick_settings if quick else {}),
                                **overrides})


def half_silent(n: int, seed: int, rho_functional: float = 0.3) -> tuple[float, ...]:
    """Initial occupancies of `n` inputs, each silent (0) with probability 1/2 (a tuple: settings
    are shared by every run, so they stay immutable)."""
    rng = np.random.default_rng(seed)
    return tuple(np.where(rng.random(n) < 0.5, 0.0, rho_functional).tolist())


CLASSIC: dict[str, Experiment] = {
    # dual-holding-potential EPSCs of a silent and a functional synapse; plasticity off
    "epsc": Experiment(protocols.epsc, dict(v_hold_mV=(-70.0, 40.0), rho0=(0.0, 0.5))),
    # peak AMPA and NMDA currents from -100 to +60 mV
    "iv": Experiment(protocols.iv, {}),
    # the Artola-Singer table: 2 Hz pairing under voltage clamp, silent and functional synapses
    "pairing": Experiment(
        protocols.pairing,
        dict(frequency_hz=2.0, n_pulses=200, v_clamp_mV=(-70.0, -40.0, -30.0, -20.0, -10.0, 0.0),
             rho0=(0.3, 0.0), record_every_ms=10.0, progress=True),
        dict(n_pulses=40)),
    # the spike-timing window
    "stdp": Experiment(
        protocols.stdp,
        dict(delays_ms=(-80.0, -50.0, -20.0, -10.0, -5.0, -2.0, 2.0, 5.0, 10.0, 20.0, 50.0, 80.0),
             n_pairings=60, frequency_hz=5.0, record_every_ms=5.0, progress=True),
        dict(n_pairings=20)),
    # release failures at -70 / +40 mV and the silent-fraction estimate
    "minimal_stimulation": Experiment(
        protocols.minimal_stimulation,
        dict(n_synapses=4, silent_fraction=0.5, p_release=0.3, n_trials=200, seed=0)),
    # calcium against the thresholds during 2 Hz pairing, finely recorded
    "pairing_calcium": Experiment(
        protocols.pairing,
        dict(frequency_hz=2.0, n_pulses=10, v_clamp_mV=(-30.0, -20.0, -10.0, 0.0), rho0=(0.3,),
             record_every_ms=0.5),
        dict(n_pulses=6)),
    # 50 Poisson inputs onto a spiking neuron, about half silent at first: once the neuron fires,
    # its back-propagating spikes unsilence the inputs active just before them, which drives more
    # firing — Hebbian unsilencing, and without homeostasis, its runaway
    "population": Experiment(
        protocols.spiking_neuron,
        dict(n_inputs=50, rate_hz=10.0, i_ext_pA=340.0, duration_ms=3000.0,
             rho0=half_silent(50, seed=7), seed=1, record_every_ms=5.0)),
}

# short enough for Brian2's numpy target; the report is keyed by these names
CROSSCHECK: dict[str, Experiment] = {
    "epsc": Experiment(protocols.epsc, dict(v_hold_mV=(-70.0, 40.0), rho0=(0.0, 0.5),
                                            duration_ms=250.0, plasticity=True)),
    "iv": Experiment(protocols.iv, dict(v_hold_mV=np.arange(-100.0, 61.0, 20.0), rho0=0.5,
                                        duration_ms=150.0)),
    "pairing": Experiment(protocols.pairing,
                          dict(frequency_hz=10.0, n_pulses=10,
                               v_clamp_mV=(-30.0, -20.0, -10.0, 0.0), rho0=(0.3, 0.0),
                               record_every_ms=0.1, tail_ms=200.0)),
    "stdp": Experiment(protocols.stdp, dict(delays_ms=(-20.0, -5.0, 5.0, 20.0), n_pairings=5,
                                            frequency_hz=5.0, rho0=(0.0, 0.3), v_rest_mV=-70.0,
                                            record_every_ms=0.1)),
    "minimal_stimulation": Experiment(protocols.minimal_stimulation,
                                      dict(n_synapses=4, silent_fraction=0.5, p_release=0.3,
                                           n_trials=20, window_ms=60.0)),
    "spiking_neuron": Experiment(protocols.spiking_neuron,
                                 dict(n_inputs=10, rate_hz=20.0, i_ext_pA=450.0,
                                      duration_ms=300.0)),
    # rho's exact approach to rho_inf (a closed-form check, with CLASSIC's EPSC for the others)
    "tetanus": Experiment(protocols.tetanus, dict(duration_ms=300.0)),
}


def brian2_simulator(target: str = "numpy"):
    """A `simulate`-compatible function that runs the Brian2 reference (ImportError without brian2).

    Passed as `simulator=` to an experiment, it runs the same protocol code on Brian2.
    """
    import brian2  # noqa: F401  (the optional extra: fail here, before any protocol runs)

    from .reference.brian2 import simulate_brian2

    def run(circuit, stimulus, params=None, backend=None, record=RECORDABLE, record_synapses=None,
            record_every=1, progress=False, compile=False, attrs=None):
        ds = simulate_brian2(circuit, stimulus, params, record=record,
                             record_synapses=record_synapses, record_every=record_every,
                             target=target)
        ds.attrs.update(attrs or {})
        return ds

    return run


def brian2_pair(name: str = "pairing", target: str = "numpy"):
    """CROSSCHECK[name] in synsim and in Brian2, the residual figure's pair; None without brian2."""
    try:
        reference = brian2_simulator(target)
    except ImportError:
        print("brian2 is not installed: skipping the synsim-Brian2 residual figure",
              file=sys.stderr)
        return None
    experiment = CROSSCHECK[name]
    return experiment(), experiment(simulator=reference)


def save(ds: xr.Dataset, run_dir: Path, name: str) -> Path:
    """Write experiment `name`'s dataset as run_dir/NAME.nc (atomically)."""
    path = Path(run_dir) / f"{name}.nc"
    io.save(ds, path)
    return path


def load(run_dir: Path, names) -> dict[str, xr.Dataset]:
    """The datasets of `names` saved in run_dir (by `save`, as the demo does), where present.

    Raises `synsim.errors.DataFileError` (one line, naming the file) when a file is not a
    readable netCDF, or was not written by the protocol of CLASSIC[name].
    """
    out = {}
    for name in names:
        path = Path(run_dir) / f"{name}.nc"
        if not path.exists():
            continue
        ds = out[name] = io.load(path)
        written_by = ds.attrs.get("protocol")
        expected = getattr(CLASSIC[name].protocol, "__name__", None) if name in CLASSIC else None
        if written_by is None or (expected in protocols.PROTOCOLS and written_by != expected):
            found = (f"its protocol attribute is {written_by!r}" if written_by is not None
                     else "it has no protocol attribute")
            raise DataFileError(f"{path} was not written by the synsim protocol "
                                f"{expected or name!r} ({found}): rerun python -m synsim.demo "
                                "to rewrite it")
    return out
