"""Parameter sweeps on Dask: any protocol over a labelled grid, one task per grid point.

    python -m synsim.sweep PROTOCOL --grid NAME=VALUES [--grid ...] --out DIR
                           [--set NAME=VALUE ...] [--workers N | --scheduler ADDRESS | --threads N]

A grid axis is any field of the parameter dataclasses (`SynapseParams`, `NeuronParams`,
`ModelParams.dt_ms`) or any keyword argument of the protocol (synsim.protocols): `mg_mM`,
`tau_ca_ms`, `theta_p`, `v_hold_mV`, `frequency_hz`, ... A list-valued protocol argument (the
holding potentials of `epsc`, the clamp potentials of `pairing`, ...) on the grid is run one value
per point; off the grid it stays inside each point, as an extra dimension of the summaries.

Each grid point is a Dask task: in-process by default (the synchronous scheduler, or threads with
`threads=`), on a `dask.distributed.LocalCluster` with `workers=N`, or on any running scheduler
with `scheduler=ADDRESS`. A point's result is reduced to summaries (`SUMMARIES`: peak currents,
peak calcium, final AMPA occupancy, silent fraction, ...) and written as soon as it finishes to
`DIR/points/NNNNNN.nc`; when every point is there they are combined into `DIR/sweep.nc`, one
Dataset whose dimensions are the grid's parameters (labelled, with units). A sweep killed and rerun
with the same arguments computes only the missing points and ends with the same `sweep.nc`; a
folder made by another sweep (grid, protocol or settings) is refused, naming the difference.

Points are independent and seeded from their own coordinates (`point_seed`), never from the order
in which they run, so the result is the same under every scheduler and worker count. Every point
is validated (parameter dataclasses and protocol checks) before any work starts: a bad grid is one
line and, on the command line, exit code 2. Usage, store layout, resume and cluster launch
(SLURM through dask-jobqueue): docs/sweeps.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import decimal
import difflib
import functools
import hashlib
import inspect
import json
import math
import os
import re
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Mapping

import numpy as np
import xarray as xr

from . import files, io, protocols
from .errors import BAD_INPUT, DataFileError, OutputError, UsageError, one_line, report
from .params import ModelParams, NeuronParams, SynapseParams

FORMAT = 1  # the layout of a sweep folder (sweep.json, points/, sweep.nc)
MANIFEST = "sweep.json"
STORE = "sweep.nc"
POINTS = "points"
TRACES = "traces"
MAX_POINTS = 1_000_000  # a grid larger than this is almost certainly a typo in a range

# keyword arguments of a protocol that are not parameters of the experiment
_NOT_SWEPT = ("params", "backend", "simulator", "progress")
_IGNORED_SETTINGS = ("progress",)  # display options of synsim.experiments settings: dropped

_SYNAPSE_FIELDS = tuple(f.name for f in dataclasses.fields(SynapseParams))
_NEURON_FIELDS = tuple(f.name for f in dataclasses.fields(NeuronParams))
_MODEL_FIELDS = ("dt_ms", "discretisation", "allow_coarse_dt")

# long names of the sweepable parameters; units come from the name's suffix (_unit)
LONG_NAMES = {
    "tau_ampa_rise_ms": "AMPA rise time constant",
    "tau_ampa_decay_ms": "AMPA decay time constant",
    "tau_nmda_rise_ms": "NMDA rise time constant",
    "tau_nmda_decay_ms": "NMDA decay time constant",
    "e_glu_mV": "glutamate receptor reversal potential",
    "g_ampa_max_nS": "AMPA conductance at full occupancy",
    "g_nmda_nS": "NMDA conductance",
    "mg_mM": "extracellular Mg2+ concentration",
    "tau_ca_ms": "calcium decay time constant",
    "K": "peak calcium of one release at full unblock",
    "theta_d": "calcium threshold of AMPA removal",
    "theta_p": "calcium threshold of AMPA insertion",
    "gamma_d": "AMPA removal rate",
    "gamma_p": "AMPA insertion rate",
    "tau_rho_ms": "AMPA occupancy time constant",
    "c_post": "calcium of a postsynaptic spike",
    "bap_amplitude_mV": "bAP amplitude at the spine",
    "tau_bap_ms": "bAP decay time constant",
    "rho_sil": "silence threshold of AMPA occupancy",
    "c_m_pF": "membrane capacitance",
    "g_leak_nS": "leak conductance",
    "e_leak_mV": "leak reversal potential",
    "v_threshold_mV": "spike threshold",
    "v_reset_mV": "reset potential",
    "refractory_ms": "refractory period",
    "dt_ms": "time step",
    "v_hold_mV": "holding potential",
    "rho0": "initial AMPA occupancy",
    "duration_ms": "duration",
    "plasticity": "AMPA trafficking on (1) or off (0)",
    "frequency_hz": "stimulation frequency",
    "n_pulses": "number of presynaptic pulses",
    "v_clamp_mV": "clamp potential",
    "record_every_ms": "recording interval",
    "tail_ms": "recording after the last pulse",
    "delays_ms": "t_post - t_pre",
    "n_pairings": "number of pairings",
    "v_rest_mV": "resting (clamp) potential",
    "n_synapses": "contacts of the stimulated fibre",
    "silent_fraction": "share of silent contacts",
    "p_release": "release probability",
    "n_trials": "number of trials",
    "window_ms": "analysis window",
    "rho_functional": "AMPA occupancy of a functional contact",
    "detection_pA": "detection threshold of a response",
    "seed": "random seed",
    "n_inputs": "number of Poisson inputs",
    "rate_hz": "input rate",
    "i_ext_pA": "external current",
    "holding": "holding potential",
}
_UNITS = {"mV": "mV", "ms": "ms", "mM": "mM", "nS": "nS", "pF": "pF", "pA": "pA", "hz": "Hz"}


def units_of(name: str) -> str:
    """The UDUNITS string of a parameter, from its name's suffix ('1' when dimensionless)."""
    return _UNITS.get(name.rsplit("_", 1)[-1], "1") if "_" in name else "1"


# ------------------------------------------------------------------ summaries per protocol
# summary name -> (units, long_name)
SUMMARY_ATTRS = {
    "i_ampa_peak": ("pA", "peak AMPA current"),
    "i_nmda_peak": ("pA", "peak NMDA current"),
    "i_syn_peak": ("pA", "peak synaptic current (EPSC)"),
    "mg_block": ("1", "NMDA Mg2+ block (unblocked fraction) at the holding potential"),
    "calcium_peak": ("1", "peak NMDA calcium (of the recorded samples)"),
    "ampa_final": ("1", "AMPA occupancy at the end"),
    "delta_ampa": ("1", "change of AMPA occupancy"),
    "silent_fraction": ("1", "share of synapses silent at the end (rho < rho_sil)"),
    "unsilenced": ("1", "initially silent synapse unsilenced (1) or not (0)"),
    "firing_rate": ("Hz", "postsynaptic firing rate"),
    "n_unsilenced": ("1", "unsilencing events"),
    "n_silenced": ("1", "silencing events"),
    "failure_rate": ("1", "share of trials without a response"),
    "silent_fraction_estimate": ("1", "silent fraction estimated by 1 - ln F(-70)/ln F(+40)"),
    "silent_fraction_true": ("1", "true silent fraction"),
    "point_seed": ("1", "seed the point's protocol ran with (derived from its coordinates)"),
}


def _signed_peak(values: np.ndarray) -> np.ndarray:
    """Along axis 0, the value of largest magnitude with its sign (an inward EPSC stays < 0)."""
    idx = np.argmax(np.abs(values), axis=0)
    return np.take_along_axis(values, idx[None], 0)[0]


def _silent(ampa_final, params: ModelParams) -> np.ndarray:
    return (np.asarray(ampa_final) < params.synapse.rho_sil).astype(float)


def _sum_epsc(ds, kw, params):
    shape = (np.size(kw["v_hold_mV"]), np.size(kw["rho0"]))  # post = (v, rho0), v slowest
    out = {f"{name}_peak": _signed_peak(ds[name].values).reshape(shape)
           for name in ("i_ampa", "i_nmda", "i_syn")}
    out["mg_block"] = ds["mg_block"].values[-1].reshape(shape)
    out["calcium_peak"] = ds["calcium"].values.max(axis=0).reshape(shape)
    out["ampa_final"] = ds["ampa_final"].values.reshape(shape)
    out["silent_fraction"] = _silent(out["ampa_final"], params)
    return out


def _sum_iv(ds, kw, params):
    return {name: ds[name].values for name in ("i_ampa_peak", "i_nmda_peak", "mg_block")}


def _sum_trains(ds, kw, params, first: str):
    """pairing and stdp: synapse = (first condition, rho0), the first slowest."""
    rho0 = np.atleast_1d(np.asarray(kw["rho0"], dtype=float))
    shape = (np.size(kw[first]), rho0.size)
    final = ds["ampa_final"].values.reshape(shape)
    out = {"ampa_final": final, "delta_ampa": final - rho0[None, :],
           "silent_fraction": _silent(final, params),
           "calcium_peak": ds["calcium"].values.max(axis=0).reshape(shape)}
    return out


def _sum_stdp(ds, kw, params):
    out = _sum_trains(ds, kw, params, "delays_ms")
    rho0 = np.atleast_1d(np.asarray(kw["rho0"], dtype=float))
    rho_sil = params.synapse.rho_sil
    out["unsilenced"] = ((out["ampa_final"] >= rho_sil) & (rho0[None, :] < rho_sil)).astype(float)
    return out


def _sum_minimal(ds, kw, params):
    return {"failure_rate": ds["failure_rate"].values,
            "silent_fraction_estimate": ds["silent_fraction_estimate"].values,
            "silent_fraction_true": ds["silent_fraction_true"].values}


def _sum_spiking(ds, kw, params):
    final = ds["ampa_final"].values
    kinds = ds["event_kind"].values
    return {"firing_rate": np.asarray(ds.sizes["spike"] / (float(kw["duration_ms"]) / 1000.0)),
            "silent_fraction": np.asarray(_silent(final, params).mean()),
            "ampa_final": np.asarray(final.mean()),
            "calcium_peak": np.asarray(ds["calcium"].values.max()),
            "n_unsilenced": np.asarray(float((kinds == 1).sum())),
            "n_silenced": np.asarray(float((kinds == -1).sum()))}


_TETANUS_RHO0 = (0.0, 0.3)  # the protocol's silent and functional synapse


def _sum_tetanus(ds, kw, params):
    final = ds["ampa_final"].values
    return {"ampa_final": final, "delta_ampa": final - np.asarray(_TETANUS_RHO0),
            "silent_fraction": _silent(final, params),
            "calcium_peak": ds["calcium"].values.max(axis=0)}


@dataclass(frozen=True)
class Outputs:
    """What a point of a protocol's sweep keeps.

    `conditions`: the protocol's list-valued arguments, run side by side inside one point (off the
    grid they are extra dimensions of the summaries, on it they are one value per point);
    `internal`: dimensions the protocol always has (name -> coordinate values, units);
    `variables`: summary name -> its dimensions; `summarise(ds, kwargs, params)` -> arrays.
    """

    conditions: tuple[str, ...]
    variables: Mapping[str, tuple[str, ...]]
    summarise: Callable
    internal: Mapping[str, tuple[tuple, str]] = dataclasses.field(default_factory=dict)


def _on(dims, names):
    return {name: tuple(dims) for name in names}


SUMMARIES: dict[str, Outputs] = {
    "epsc": Outputs(("v_hold_mV", "rho0"), _on(("v_hold_mV", "rho0"), (
        "i_ampa_peak", "i_nmda_peak", "i_syn_peak", "mg_block", "calcium_peak", "ampa_final",
        "silent_fraction")), _sum_epsc),
    "iv": Outputs(("v_hold_mV",), _on(("v_hold_mV",), ("i_ampa_peak", "i_nmda_peak",
                                                        "mg_block")), _sum_iv),
    "pairing": Outputs(("v_clamp_mV", "rho0"), _on(("v_clamp_mV", "rho0"), (
        "ampa_final", "delta_ampa", "silent_fraction", "calcium_peak")),
        lambda ds, kw, p: _sum_trains(ds, kw, p, "v_clamp_mV")),
    "stdp": Outputs(("delays_ms", "rho0"), _on(("delays_ms", "rho0"), (
        "ampa_final", "delta_ampa", "silent_fraction", "unsilenced", "calcium_peak")), _sum_stdp),
    "minimal_stimulation": Outputs((), {"failure_rate": ("holding",),
                                        "silent_fraction_estimate": (),
                                        "silent_fraction_true": ()}, _sum_minimal,
                                   {"holding": ((-70.0, 40.0), "mV")}),
    "spiking_neuron": Outputs((), _on((), ("firing_rate", "silent_fraction", "ampa_final",
                                           "calcium_peak", "n_unsilenced", "n_silenced")),
                              _sum_spiking),
    "tetanus": Outputs((), _on(("rho0",), ("ampa_final", "delta_ampa", "silent_fraction",
                                           "calcium_peak")), _sum_tetanus,
                       {"rho0": (_TETANUS_RHO0, "1")}),
}


# ------------------------------------------------------------------ parameters of a protocol
def _protocol_function(protocol: str):
    if protocol not in protocols.PROTOCOLS:
        raise UsageError(f"protocol {protocol!r} is unknown: choose from "
                         f"{', '.join(protocols.PROTOCOLS)}")
    return getattr(protocols, protocol)


def _kind(default) -> str:
    if isinstance(default, bool):
        return "bool"
    if isinstance(default, (int, np.integer)):
        return "int"
    if isinstance(default, str):
        return "str"
    if isinstance(default, (tuple, list, np.ndarray)):
        return "list"
    return "float"  # floats, and None (an optional number such as detection_pA)


def parameters(protocol: str) -> dict[str, tuple[str, str, object]]:
    """Every name a sweep of `protocol` accepts: name -> (group, kind, default).

    group is 'protocol' (a keyword argument of the protocol), 'synapse', 'neuron' or 'model';
    kind is 'float', 'int', 'bool', 'str' or 'list' (a list-valued protocol argument).
    """
    return dict(_parameters(protocol))


@functools.lru_cache(maxsize=None)
def _parameters(protocol: str) -> dict[str, tuple[str, str, object]]:
    fn = _protocol_function(protocol)
    out = {}
    for name, p in inspect.signature(fn).parameters.items():
        if name not in _NOT_SWEPT:
            out[name] = ("protocol", _kind(p.default), p.default)
    if protocol == "spiking_neuron":  # rho0: one occupancy for every input, or one per input
        out["rho0"] = ("protocol", "float", 0.0)
    for group, cls, names in (("synapse", SynapseParams, _SYNAPSE_FIELDS),
                              ("neuron", NeuronParams, _NEURON_FIELDS),
                              ("model", ModelParams, _MODEL_FIELDS)):
        defaults = {f.name: f.default for f in dataclasses.fields(cls)}
        for name in names:
            if name in out:  # pragma: no cover - guarded by a test
                raise RuntimeError(f"{name} is both a protocol argument and a parameter")
            out[name] = (group, _kind(defaults[name]), defaults[name])
    return out


def _did_you_mean(name: str, known: Iterable[str]) -> str:
    known = list(known)
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    if not close:
        lower = {k.lower(): k for k in known}
        close = difflib.get_close_matches(name.lower(), list(lower), n=1, cutoff=0.6)
        close = [lower[c] for c in close]
    return f"did you mean {close[0]!r}? " if close else ""


def _unknown(name: str, protocol: str, what: str = "parameter") -> UsageError:
    known = _parameters(protocol)
    return UsageError(f"unknown {what} {name!r} for protocol {protocol}: "
                      f"{_did_you_mean(name, known)}python -m synsim.sweep {protocol} --list "
                      "shows them all")


# ------------------------------------------------------------------ grid syntax
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


def _decimal(text: str, axis: str) -> decimal.Decimal:
    text = text.strip()
    if not _NUMBER.match(text):
        raise UsageError(f"grid {axis}: {text!r} is not a number (write values as 0,1,2 or "
                         "ranges as START:STEP:STOP, e.g. -70:10:-10)")
    return decimal.Decimal(text)


def parse_values(name: str, spec: str) -> list[float]:
    """The values of a grid axis written as on the command line, in the order written.

    Comma-separated items, each a number or an inclusive range START:STEP:STOP
    (`-70:10:-10` is -70, -60, ..., -10; `0:0.1:0.3` is 0, 0.1, 0.2, 0.3 exactly as decimals),
    e.g. `0,0.5,1:1:4`. Raises UsageError (one line) for an empty axis or an unparsable item.
    """
    items = [item.strip() for item in str(spec).split(",")]
    if not str(spec).strip():
        raise UsageError(f"grid {name} is empty: give at least one value, e.g. {name}=0,1,2 or "
                         f"{name}=0:1:2")
    values: list[float] = []
    for item in items:
        if not item:
            raise UsageError(f"grid {name}={spec}: an empty item between commas; write values "
                             "as 0,1,2")
        if ":" not in item:
            values.append(float(_decimal(item, name)))
            continue
        parts = item.split(":")
        if len(parts) != 3:
            raise UsageError(f"grid {name}: range {item!r} is unparsable: write START:STEP:STOP "
                             "(inclusive), e.g. -70:10:-10")
        start, step, stop = (_decimal(p, name) for p in parts)
        if step == 0 or (stop - start) * step < 0:
            raise UsageError(f"grid {name}: range {item!r} never reaches {stop} from {start} in "
                             f"steps of {step}: give a step with the sign of STOP - START")
        count = int((stop - start) / step) + 1
        if count > MAX_POINTS:
            raise UsageError(f"grid {name}: range {item!r} has {count} values: more than "
                             f"{MAX_POINTS}")
        values.extend(float(start + i * step) for i in range(count))
    return values


def _axis(protocol: str, name: str, values) -> tuple:
    """A grid axis, checked: a known parameter, a non-empty list of unique numbers of its kind."""
    known = _parameters(protocol)
    if name not in known:
        raise _unknown(name, protocol)
    group, kind, _ = known[name]
    if kind == "str":
        raise UsageError(f"grid {name}: {name} takes a word, not a number, so it cannot be a "
                         f"grid axis: set it with --set {name}=VALUE (settings= in the API)")
    if isinstance(values, str):
        values = parse_values(name, values)
    try:
        values = list(np.asarray(values, dtype=object).reshape(-1))
    except Exception:  # pragma: no cover - numpy turns almost anything into an object array
        values = [values]
    if not values:
        raise UsageError(f"grid {name} is empty: give at least one value, e.g. {name}=0,1,2")
    out = []
    for v in values:
        try:
            x = float(v)
        except (TypeError, ValueError):
            raise UsageError(f"grid {name}: {v!r} is not a number") from None
        if not math.isfinite(x):
            raise UsageError(f"grid {name}: {v!r} is invalid: grid values must be finite "
                             "numbers")
        if kind in ("int", "bool"):
            if x != int(x) or (kind == "bool" and x not in (0, 1)):
                valid = "0 or 1" if kind == "bool" else "an integer"
                raise UsageError(f"grid {name}: {v!r} is invalid: {name} must be {valid}")
            out.append(int(x))
        else:
            out.append(x)
    seen = set()
    for x in out:
        if x in seen:
            raise UsageError(f"grid {name} has {x!r} twice: every value of an axis must be "
                             "unique")
        seen.add(x)
    return name, tuple(out)


def _plain(value):
    """A setting as JSON-able plain Python (tuples and arrays become lists of numbers)."""
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, (tuple, list, np.ndarray)):
        return [_plain(v) for v in np.asarray(value).reshape(-1).tolist()]
    return value


def parse_setting(protocol: str, text: str) -> tuple[str, object]:
    """NAME=VALUE as on the command line: true/false, a number, numbers separated by commas (a
    list), or a word (e.g. discretisation=zoh)."""
    if "=" not in text:
        raise UsageError(f"--set {text}: expected NAME=VALUE, e.g. --set duration_ms=100")
    name, value = (part.strip() for part in text.split("=", 1))
    known = _parameters(protocol)
    if name not in known:
        raise _unknown(name, protocol, "setting")
    kind = known[name][1]
    if value.lower() in ("true", "false"):
        return name, value.lower() == "true"
    if "," in value or kind == "list":
        return name, tuple(float(_decimal(v, name)) if _NUMBER.match(v.strip()) else v.strip()
                           for v in value.split(","))
    if _NUMBER.match(value):
        number = float(value)
        return name, int(number) if kind == "int" and number == int(number) else number
    return name, value  # a word: the parameter's own validation says whether it is one


# ------------------------------------------------------------------ the sweep plan
def point_seed(base: int, coords: Mapping[str, object]) -> int:
    """The seed of a grid point: a hash of the base seed and the point's coordinates (by name,
    so neither the order of the axes nor the order in which points run changes it)."""
    text = json.dumps([int(base), sorted((k, repr(_plain(v))) for k, v in coords.items())])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little")


class _Checked(Exception):
    """Raised by the stand-in simulator: the protocol accepted every argument."""


def _stand_in(*args, **kwargs):
    raise _Checked


@dataclass(frozen=True)
class Sweep:
    """A protocol, a labelled grid (axes in order, the first varying slowest) and fixed settings.

    Build one with `plan`; `validate()` checks every point, `point(i)` gives the protocol call of
    point i, `manifest()` what must match to resume a folder.
    """

    protocol: str
    axes: tuple[tuple[str, tuple], ...]
    settings: tuple[tuple[str, object], ...] = ()
    traces: bool = False

    # --- the grid
    @property
    def dims(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.axes)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(len(values) for _, values in self.axes)

    @property
    def n_points(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    def coords(self, index: int) -> dict[str, object]:
        """The grid coordinates of point `index` (C order: the last axis varies fastest)."""
        where = np.unravel_index(index, self.shape) if self.axes else ()
        return {name: values[i] for (name, values), i in zip(self.axes, where)}

    @property
    def seeded(self) -> bool:
        return "seed" in _parameters(self.protocol) and "seed" not in self.dims

    # --- one point's protocol call
    def point(self, index: int) -> tuple[dict, ModelParams, dict]:
        """(protocol keyword arguments, ModelParams, grid coordinates) of point `index`; raises
        the parameter's own ValueError when a value is rejected."""
        known = _parameters(self.protocol)
        coords = self.coords(index)
        values = {**dict(self.settings), **coords}
        groups = {"protocol": {}, "synapse": {}, "neuron": {}, "model": {}}
        for name, value in values.items():
            group, kind, _ = known[name]
            if kind == "bool" and name in coords:
                value = bool(value)
            if kind == "list" and name in coords:
                value = (value,)  # one condition per point
            groups[group][name] = value
        params = ModelParams(synapse=SynapseParams(**groups["synapse"]),
                             neuron=NeuronParams(**groups["neuron"]), **groups["model"])
        kwargs = groups["protocol"]
        if self.seeded:
            kwargs["seed"] = point_seed(dict(self.settings).get("seed", 0), coords)
        return kwargs, params, coords

    def resolved(self, index: int = 0) -> dict:
        """Point `index`'s protocol arguments with the protocol's defaults filled in."""
        kwargs, _, _ = self.point(index)
        defaults = {name: default for name, (group, _, default) in
                    _parameters(self.protocol).items() if group == "protocol"}
        return {**defaults, **kwargs}

    def validate(self) -> None:
        """Check every point before any work: the parameter dataclasses' own checks, then the
        protocol's argument checks (run up to the simulation, which a stand-in refuses).
        Raises UsageError naming the point and the rejected value."""
        base_seed = dict(self.settings).get("seed")
        if self.seeded and base_seed is not None:
            ok = isinstance(base_seed, (int, np.integer)) and not isinstance(base_seed, bool)
            if not ok or base_seed < 0:
                raise UsageError(f"setting seed = {base_seed!r} is invalid: must be an integer "
                                 ">= 0 (the base of every point's seed)")
        fn = _protocol_function(self.protocol)
        for index in range(self.n_points):
            coords = self.coords(index)
            try:
                kwargs, params, _ = self.point(index)
                fn(**kwargs, params=params, simulator=_stand_in)
            except _Checked:
                continue
            except (ValueError, TypeError) as e:
                where = ", ".join(f"{k}={_plain(v)!r}" for k, v in coords.items())
                raise UsageError(f"grid point {index} ({where}): {one_line(e)}") from None

    # --- what a point keeps
    def schema(self) -> dict[str, tuple[tuple[str, ...], dict]]:
        """Summary name -> (its dimensions in sweep.nc, coordinates of its non-grid
        dimensions)."""
        outputs = SUMMARIES[self.protocol]
        inner = self.inner_coords()
        out = {}
        for name, dims in outputs.variables.items():
            kept = tuple(d for d in dims if d not in self.dims)
            out[name] = (self.dims + kept, {d: inner[d] for d in kept})
        if self.seeded:
            out["point_seed"] = (self.dims, {})
        return out

    def inner_coords(self) -> dict[str, tuple[np.ndarray, str]]:
        """Coordinates of the dimensions inside each point: conditions off the grid and the
        protocol's own (name -> (values, units))."""
        outputs = SUMMARIES[self.protocol]
        kwargs = self.resolved(0)
        out = {}
        for name in outputs.conditions:
            if name not in self.dims:
                out[name] = (np.atleast_1d(np.asarray(kwargs[name], dtype=float)),
                             units_of(name))
        for name, (values, unit) in outputs.internal.items():
            out[name] = (np.asarray(values, dtype=float), unit)
        return out

    def manifest(self) -> dict:
        return {"synsim_sweep": FORMAT, "protocol": self.protocol,
                "grid": [[name, [_plain(v) for v in values]] for name, values in self.axes],
                "settings": {k: _plain(v) for k, v in self.settings},
                "traces": bool(self.traces)}

    def point_name(self, index: int) -> str:
        return f"{index:0{max(6, len(str(self.n_points - 1)))}d}.nc"


def plan(protocol: str, grid: Mapping[str, object], settings: Mapping[str, object] | None = None,
         traces: bool = False) -> Sweep:
    """A `Sweep` of `protocol` over `grid` (name -> values, or a string such as '-70:10:-10'),
    with fixed `settings` (name -> value; protocol arguments or parameter fields). Checks the
    names and the axes (UsageError, one line), not yet the points (`Sweep.validate`)."""
    _protocol_function(protocol)
    if not grid:
        raise UsageError("the grid is empty: give at least one axis, e.g. --grid mg_mM=0,1,2")
    axes = tuple(_axis(protocol, str(name), values) for name, values in grid.items())
    n = int(np.prod([len(v) for _, v in axes], dtype=object))
    if n > MAX_POINTS:
        raise UsageError(f"the grid has {n} points: more than {MAX_POINTS}; sweep a coarser "
                         "grid or split it")
    known = _parameters(protocol)
    fixed = {}
    for name, value in (settings or {}).items():
        if name in _IGNORED_SETTINGS:
            continue
        if name not in known:
            raise _unknown(name, protocol, "setting")
        if name in grid:
            raise UsageError(f"{name} is both a grid axis and a setting: give it once")
        value = _plain(value)
        if value == _plain(known[name][2]):
            continue  # the default: the same sweep as leaving it out
        fixed[name] = tuple(value) if isinstance(value, list) else value
    return Sweep(protocol, axes, tuple(sorted(fixed.items())), bool(traces))


# ------------------------------------------------------------------ one point
def compute_point(spec: Sweep, index: int) -> tuple[xr.Dataset, xr.Dataset | None]:
    """Run point `index`: (its summaries as a Dataset on the inner dimensions, the protocol's
    full Dataset when the sweep keeps traces)."""
    kwargs, params, coords = spec.point(index)
    try:
        ds = protocols.run(spec.protocol, **kwargs, params=params)
        values = SUMMARIES[spec.protocol].summarise(ds, spec.resolved(index), params)
    except Exception as e:  # keep the traceback, but say which point
        e.add_note(f"synsim.sweep: grid point {index} {coords}")
        raise
    inner, schema = spec.inner_coords(), spec.schema()
    out = xr.Dataset()
    for name, (dims, _) in schema.items():
        if name == "point_seed":
            out[name] = ((), np.int64(kwargs["seed"]))
            continue
        kept = dims[len(spec.dims):]
        full = SUMMARIES[spec.protocol].variables[name]
        arr = np.asarray(values[name], dtype=float)
        arr = arr.reshape([1 if d in spec.dims else inner[d][0].size for d in full])
        arr = arr.reshape([inner[d][0].size for d in kept])  # drop the grid's size-1 conditions
        out[name] = (kept, arr)
    for d in {d for dims, _ in schema.values() for d in dims[len(spec.dims):]}:
        out = out.assign_coords({d: inner[d][0]})
    out.attrs.update(sweep_point=int(index), sweep_coordinates=json.dumps(
        {k: _plain(v) for k, v in coords.items()}))
    trace = None
    if spec.traces:
        trace = ds.assign_attrs(sweep_point=int(index), sweep_coordinates=out.attrs[
            "sweep_coordinates"])
    return out, trace


_WRITE_LOCK = threading.Lock()  # HDF5 is not thread-safe: one netCDF write at a time


def _write_point(spec: Sweep, out: Path, index: int, result) -> None:
    import dask

    summary, trace = result
    # xarray guards netCDF writes with a lock of the active Dask scheduler: under distributed
    # that is a scheduler round trip per file (about 50 ms on a busy machine); these small files
    # are written whole, so the local lock is enough
    with _WRITE_LOCK, dask.config.set(scheduler="sync"):
        if trace is not None:  # first: a point file means its trace is there too
            io.save(trace, out / TRACES / spec.point_name(index))
        io.save(summary, out / POINTS / spec.point_name(index))


def _compute_and_write(spec: Sweep, out: str, index: int) -> int:
    _write_point(spec, Path(out), index, compute_point(spec, index))
    return index


# ------------------------------------------------------------------ the folder
def _short(values) -> str:
    values = list(values) if isinstance(values, (list, tuple)) else values
    if isinstance(values, list) and len(values) > 6:
        return f"[{', '.join(map(repr, values[:3]))}, ..., {values[-1]!r}] ({len(values)} values)"
    return repr(values)


def difference(old: dict, new: dict) -> str | None:
    """The first difference between two sweep manifests, in words (None when they agree)."""
    if old.get("synsim_sweep") != new["synsim_sweep"]:
        return f"sweep format {old.get('synsim_sweep')!r} there, {new['synsim_sweep']!r} now"
    if old.get("protocol") != new["protocol"]:
        return f"protocol {old.get('protocol')!r} there, {new['protocol']!r} now"
    old_grid, new_grid = old.get("grid") or [], new["grid"]
    old_names, new_names = [a[0] for a in old_grid], [a[0] for a in new_grid]
    if old_names != new_names:
        return f"grid axes {old_names} there, {new_names} now"
    for (name, a), (_, b) in zip(old_grid, new_grid):
        if a != b:
            return f"grid {name} = {_short(a)} there, {_short(b)} now"
    old_set, new_set = old.get("settings") or {}, new["settings"]
    for name in sorted(set(old_set) | set(new_set)):
        a, b = old_set.get(name, "default"), new_set.get(name, "default")
        if a != b:
            return f"setting {name} = {_short(a)} there, {_short(b)} now"
    if bool(old.get("traces")) != new["traces"]:
        on = {True: "on", False: "off"}
        return f"traces {on[bool(old.get('traces'))]} there, {on[new['traces']]} now"
    return None


def _prepare(spec: Sweep, out: Path) -> list[int]:
    """Check that `out` can hold this sweep (before any work); the indices still to compute."""
    files.check_writable(out, directory=True)
    manifest = out / MANIFEST
    if out.is_dir():
        if manifest.exists():
            try:
                old = json.loads(manifest.read_text())
                if not isinstance(old, dict):
                    raise ValueError("not a JSON object")
            except (ValueError, UnicodeDecodeError) as e:
                raise OutputError(f"{manifest} is not a sweep manifest ({one_line(e)}): give "
                                  "another --out, or remove the folder") from None
            diff = difference(old, spec.manifest())
            if diff:
                raise UsageError(f"{out} holds another sweep ({diff}): rerun with the arguments "
                                 f"recorded in {manifest}, or give another --out")
        elif any(out.iterdir()):
            raise OutputError(f"cannot write the sweep into {out}: it holds files but no "
                              f"{MANIFEST}; give a new or empty folder")
    for sub in (POINTS, TRACES, STORE):
        path = out / sub
        if sub != STORE and path.exists() and not path.is_dir():
            raise OutputError(f"cannot write into {path}: it is a file, not a directory; "
                              "remove it or give another --out")
        if sub == STORE and path.is_dir():
            raise OutputError(f"cannot write {path}: it is a directory; remove it or give "
                              "another --out")
    done = _done(spec, out)
    return [i for i in range(spec.n_points) if i not in done]


def _done(spec: Sweep, out: Path) -> set[int]:
    folder = out / POINTS
    if not folder.is_dir():
        return set()
    names = {spec.point_name(i): i for i in range(spec.n_points)}
    return {names[p.name] for p in folder.iterdir() if p.name in names}


def _remove_stale_temporaries(out: Path) -> None:
    """Temporaries of atomic writes that a killed sweep left behind (never the data)."""
    for folder in (out, out / POINTS, out / TRACES):
        if folder.is_dir():
            for p in folder.glob(".*.tmp"):
                p.unlink(missing_ok=True)


def combine(out, partial: bool = False) -> xr.Dataset:
    """The sweep in folder `out` as one Dataset on the grid's dimensions (from its point files).

    With `partial`, missing points are NaN (a look at a running sweep); otherwise a missing point
    is a UsageError. A point file that does not fit the sweep is a DataFileError naming it.
    """
    out = Path(out)
    try:
        manifest = json.loads((out / MANIFEST).read_text())
        spec = plan(manifest["protocol"], dict((n, v) for n, v in manifest["grid"]),
                    manifest["settings"], manifest["traces"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise UsageError(f"{out} is not a synsim sweep folder ({one_line(e)}): give the --out "
                         "of a sweep") from None
    schema = spec.schema()
    arrays = {name: np.full(spec.shape + tuple(c[0].size for c in inner.values()),
                            np.nan if name != "point_seed" else -1,
                            dtype=float if name != "point_seed" else np.int64)
              for name, (dims, inner) in schema.items()}
    done = _done(spec, out)
    missing = spec.n_points - len(done)
    if missing and not partial:
        raise UsageError(f"{out}: {missing} of {spec.n_points} points are missing: rerun the "
                         "sweep with the same arguments to compute them")
    for index in sorted(done):
        path = out / POINTS / spec.point_name(index)
        point, number = _read_point(path, schema)
        where = np.unravel_index(index, spec.shape)
        for name in schema:
            if name not in point or point[name].shape != arrays[name].shape[len(spec.shape):] \
                    or number != index:
                raise DataFileError(f"{path} does not belong to this sweep (variable {name!r}): "
                                    "delete it and rerun the sweep to recompute the point")
            arrays[name][where] = point[name]
    coords = {}
    for name, values in spec.axes:
        coords[name] = xr.Variable(name, np.asarray(values, dtype=np.int64 if all(
            isinstance(v, int) for v in values) else float), {
            "units": units_of(name), "long_name": LONG_NAMES.get(name, name)})
    for name, (values, unit) in spec.inner_coords().items():
        coords[name] = xr.Variable(name, values, {"units": unit,
                                                  "long_name": LONG_NAMES.get(name, name)})
    ds = xr.Dataset(coords=coords)
    for name, (dims, _) in schema.items():
        units, long_name = SUMMARY_ATTRS[name]
        ds[name] = xr.Variable(dims, arrays[name], {"units": units, "long_name": long_name})
    ds.attrs.update(title=f"synsim.sweep of the {spec.protocol} protocol",
                    protocol=spec.protocol, sweep_dims=json.dumps(list(spec.dims)),
                    sweep_settings=json.dumps(manifest["settings"], sort_keys=True),
                    sweep_points=spec.n_points, sweep_missing=missing)
    return io.annotate(ds)


def _read_point(path: Path, names) -> tuple[dict[str, np.ndarray], int | None]:
    """A point file's summaries and its point number, read with netCDF4 directly (a few times
    faster than xarray for thousands of small files)."""
    import netCDF4

    try:
        with netCDF4.Dataset(path) as nc:
            nc.set_auto_mask(False)
            number = int(nc.getncattr("sweep_point")) if "sweep_point" in nc.ncattrs() else None
            return {name: np.asarray(nc.variables[name][...]) for name in names
                    if name in nc.variables}, number
    except OSError as e:
        raise DataFileError(f"{path} is not a readable point file ({one_line(e)}): delete it and "
                            "rerun the sweep to recompute the point") from e


# ------------------------------------------------------------------ running
def _scheduler_name(scheduler, workers, threads, scheduler_file=None) -> str:
    if workers:
        return f"on a LocalCluster of {workers} workers"
    if scheduler_file:
        return f"on the scheduler of {scheduler_file}"
    if scheduler not in (None, "sync", "synchronous", "threads"):
        return f"on the scheduler {scheduler}"
    if scheduler == "threads" or threads:
        return f"in-process threads ({threads or os.cpu_count()})"
    return "in-process (synchronous)"


SINGLE_THREAD_ENV = ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                     "MKL_NUM_THREADS")


def local_cluster(workers: int, processes: bool = True, dashboard: bool = True):
    """The LocalCluster `sweep(workers=N)` starts: one single-threaded worker per point at a time.

    Every worker runs its point on one core: the compiled kernels (synsim.blocked), OpenMP and
    BLAS would otherwise start a thread per core in every worker process (measured: 0.6 s per
    pairing point instead of 0.42 s on 2 cores). Each worker's event loop shares the point's
    process, GIL and core, so its periodic work is thinned out: no statistical profiler (a stack
    sample every 10 ms, for the dashboard's profile page), no memory monitor (a sweep point holds
    little memory), the loop's health tick every 1 s instead of 20 ms and the system monitor every
    5 s instead of 0.5 s. With Dask's defaults 64 pairing points on 2 workers took 10-30 % longer
    than on a plain process pool; with these, the same (benchmarks/sweep_speed.py).
    """
    import dask
    from distributed import LocalCluster

    address = ":0" if dashboard and _bokeh_installed() else None  # any free port: not 8787
    env = dict.fromkeys(SINGLE_THREAD_ENV, "1") if processes else {}
    quiet = {"distributed.worker.profile.enabled": False, "distributed.admin.tick.interval": "1s",
             "distributed.admin.system-monitor.interval": "5s"}
    with dask.config.set(quiet):
        return LocalCluster(n_workers=workers, threads_per_worker=1, processes=processes,
                            dashboard_address=address, env=env, memory_limit=0)


def _run_local(spec, out, todo, scheduler, threads, tick) -> None:
    import dask
    from dask.callbacks import Callback

    tasks = [dask.delayed(_compute_and_write, pure=False)(
        spec, str(out), i, dask_key_name=f"synsim-sweep-point-{i}") for i in todo]

    def posttask(key, result, dsk, state, worker_id):
        if isinstance(key, str) and key.startswith("synsim-sweep-point-"):
            tick(int(key.rsplit("-", 1)[1]))

    threaded = scheduler == "threads" or bool(threads)
    kw = {"num_workers": threads} if threaded and threads else {}
    with Callback(posttask=posttask):  # called in this thread as each task finishes
        dask.compute(*tasks, scheduler="threads" if threaded else "sync", **kw)


def _run_distributed(spec, out, todo, client, tick, say, workers_write: bool) -> None:
    """Submit every point; write each as it completes. A LocalCluster shares this machine's
    disk, so its workers write their points themselves; on any other scheduler the workers
    return the summaries and this process writes them (no shared filesystem needed)."""
    from distributed import as_completed

    link = getattr(client, "dashboard_link", None)
    say(f"dask dashboard: {link}" if link and _has_bokeh(client) else
        "dask dashboard: none (install bokeh for one)")
    if workers_write:
        futures = {client.submit(_compute_and_write, spec, str(out), i, pure=False): i
                   for i in todo}
    else:
        futures = {client.submit(compute_point, spec, i, pure=False): i for i in todo}
    for future, result in as_completed(futures, with_results=True):
        index = futures.pop(future)
        if not workers_write:
            _write_point(spec, out, index, result)
        future.release()
        tick(index)


def _shares_disk(client) -> bool:
    """The client's cluster is a LocalCluster: its workers see this machine's files."""
    from distributed import LocalCluster

    return isinstance(getattr(client, "cluster", None), LocalCluster)


def _bokeh_installed() -> bool:
    """Whether this process can serve Dask's dashboard (it needs bokeh, not installed by us)."""
    import importlib.util

    return importlib.util.find_spec("bokeh") is not None


def _has_bokeh(client) -> bool:
    if getattr(client, "cluster", None) is None:
        return True  # an existing scheduler: its dashboard is its own business
    return _bokeh_installed()


def sweep(protocol: str, grid: Mapping[str, object], out, *,
          settings: Mapping[str, object] | None = None, workers: int | None = None,
          scheduler=None, scheduler_file=None, threads: int | None = None,
          processes: bool = True, traces: bool = False, max_points: int | None = None,
          progress: bool = True, on_point: Callable[[int], None] | None = None,
          log: Callable[[str], None] | None = None) -> xr.Dataset | None:
    """Run `protocol` at every point of `grid` (name -> values) and return the combined Dataset.

    settings: fixed protocol arguments and parameter fields (e.g. `duration_ms=100`, `mg_mM=1.2`,
    or `experiments.CLASSIC[name].settings`); `seed` there is the base of every point's seed.
    Where the points run: in-process by default (Dask's synchronous scheduler; `threads=N` or
    `scheduler="threads"` for its threaded one), on a new LocalCluster of `workers` (processes
    unless `processes=False`), on a running scheduler (`scheduler="tcp://host:8786"`, or
    `scheduler_file=`), or on a `distributed.Client` passed as `scheduler`.
    out: the sweep folder (docs/sweeps.md §3). A rerun computes only the missing points; a folder
    of another sweep is refused (UsageError naming the difference). `traces`: also keep each
    point's full protocol Dataset in out/traces. `max_points`: compute at most this many missing
    points, then stop (returns None; rerun to continue). `on_point(index)` is called after each
    point is written. Bad input raises a `synsim.errors.SynsimError` subclass (one line) before
    any work.
    """
    out = Path(out)
    say = log or (lambda line: print(line, file=sys.stderr, flush=True))
    spec = plan(protocol, grid, settings, traces)
    for name, value in (("workers", workers), ("threads", threads), ("max_points", max_points)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or value < (0 if name == "max_points" else 1)):
            low = 0 if name == "max_points" else 1
            raise UsageError(f"{name} = {value!r} is invalid: must be an integer >= {low}")
    remote = scheduler not in (None, "sync", "synchronous", "threads") or scheduler_file
    if sum(bool(x) for x in (workers, remote, threads)) > 1:
        raise UsageError("choose one of workers (a LocalCluster), scheduler (a running one) and "
                         "threads (in-process)")
    spec.validate()
    todo = _prepare(spec, out)
    # from here on, work: the folder, its manifest, the points
    (out / POINTS).mkdir(parents=True, exist_ok=True)
    if traces:
        (out / TRACES).mkdir(exist_ok=True)
    if not (out / MANIFEST).exists():
        files.write_json(out / MANIFEST, spec.manifest())
    _remove_stale_temporaries(out)
    done_before = spec.n_points - len(todo)
    if max_points is not None:
        todo = todo[:max_points]
    say(f"synsim.sweep: {spec.protocol} over {' x '.join(f'{n} ({len(v)})' for n, v in spec.axes)}"
        f" = {spec.n_points} points in {out}: {done_before} done before, {len(todo)} to run "
        f"{_scheduler_name(scheduler, workers, threads, scheduler_file)}")
    from tqdm.auto import tqdm

    bar = tqdm(total=spec.n_points, initial=done_before, unit="point", disable=not progress,
               desc=f"sweep {spec.protocol}", file=sys.stderr)

    def tick(index: int) -> None:
        bar.update(1)
        if on_point is not None:
            on_point(index)

    try:
        if not todo:
            pass
        elif workers or remote or not isinstance(scheduler, (str, type(None))):
            with _client(scheduler, scheduler_file, workers, processes) as client:
                _run_distributed(spec, out, todo, client, tick, say, _shares_disk(client))
        else:
            _run_local(spec, out, todo, scheduler, threads, tick)
    finally:
        bar.close()
    left = spec.n_points - len(_done(spec, out))
    if left:
        say(f"synsim.sweep: stopped with {left} of {spec.n_points} points to go: rerun the same "
            "command to continue")
        return None
    ds = combine(out)
    io.save(ds, out / STORE)
    say(f"synsim.sweep: wrote {out / STORE}")
    return io.load(out / STORE)


class _client:
    """A distributed.Client: on a new LocalCluster, a running scheduler, or the one given."""

    def __init__(self, scheduler, scheduler_file, workers, processes):
        self.args = scheduler, scheduler_file, workers, processes
        self.own = []

    def __enter__(self):
        from distributed import Client

        scheduler, scheduler_file, workers, processes = self.args
        if not isinstance(scheduler, (str, type(None))):
            return scheduler  # a Client given by the caller: theirs to close
        if workers:
            cluster = local_cluster(workers, processes)
            self.own.append(cluster)
            client = Client(cluster)
        elif scheduler_file:
            client = Client(scheduler_file=str(scheduler_file), timeout="30s")
        else:
            client = Client(scheduler, timeout="30s")
        self.own.insert(0, client)
        return client

    def __exit__(self, *exc):
        for thing in self.own:
            thing.close()
        return False


# ------------------------------------------------------------------ heatmap
def check_heatmap(spec: Sweep, x: str, y: str, summary: str,
                  at: Mapping[str, int] | None = None) -> None:
    """A heatmap of `summary` over dimensions `x` and `y` can be drawn from this sweep (checked
    before any work): UsageError otherwise."""
    schema = spec.schema()
    if summary not in schema:
        raise UsageError(f"--heatmap: unknown summary {summary!r} for protocol {spec.protocol}: "
                         f"{_did_you_mean(summary, schema)}choose from {', '.join(schema)}")
    dims, inner = schema[summary]
    sizes = dict(zip(spec.dims, spec.shape))
    sizes.update({d: c[0].size for d, c in inner.items()})
    for axis in (x, y):
        if axis not in dims:
            raise UsageError(f"--heatmap: {axis!r} is not a dimension of {summary}: "
                             f"{_did_you_mean(axis, dims)}choose from {', '.join(dims)}")
    if x == y:
        raise UsageError(f"--heatmap: x and y are both {x!r}: give two different dimensions")
    for dim, index in (at or {}).items():
        if dim not in dims or dim in (x, y):
            raise UsageError(f"--at {dim}: not one of the other dimensions of {summary} "
                             f"({', '.join(d for d in dims if d not in (x, y)) or 'none'})")
        if not isinstance(index, (int, np.integer)) or not 0 <= index < sizes[dim]:
            raise UsageError(f"--at {dim}={index}: index out of range: must be in "
                             f"[0, {sizes[dim] - 1}]")


def draw_heatmap(out, x: str, y: str, summary: str,
                 at: Mapping[str, int] | None = None) -> list[Path]:
    """Draw `summary` of the sweep in folder `out` over `x` and `y` (other dimensions: the index
    `at[dim]`, else the mean) as out/heatmap_SUMMARY_Y_vs_X.{pdf,png,svg}."""
    import matplotlib.pyplot as plt

    from . import figures

    out = Path(out)
    ds = io.load(out / STORE)
    fig, _ = figures.fig_sweep_heatmap(ds, x, y, summary, at)
    try:
        return figures.save(fig, out, f"heatmap_{summary}_{y}_vs_{x}")
    finally:
        plt.close(fig)


# ------------------------------------------------------------------ command line
PROG = "python -m synsim.sweep"

EPILOG = """\
grid syntax (--grid NAME=VALUES, repeatable; the first axis varies slowest):
  NAME is a protocol argument or a parameter field (--list shows them with units).
  VALUES are comma-separated numbers and inclusive ranges START:STEP:STOP:
    mg_mM=0,1,2          three values
    v_hold_mV=-70:10:-10 -70, -60, ..., -10
    theta_p=1.1:0.1:1.5,2  ranges and numbers mixed; decimal steps are exact
  A list-valued argument (v_hold_mV of epsc, v_clamp_mV of pairing, delays_ms of stdp, rho0)
  on the grid runs one value per point; left off the grid it stays a dimension of the summaries.
settings (--set NAME=VALUE, repeatable): fixed values, e.g. --set duration_ms=100
  --set rho0=0,0.5 --set discretisation=zoh; seed is the base of every point's seed.

examples:
  python -m synsim.sweep epsc --grid mg_mM=0,1,2 --grid v_hold_mV=-70:10:-10 --out runs/mg
  python -m synsim.sweep pairing --grid tau_ca_ms=10:10:40 --grid theta_p=1.1:0.1:1.5 \\
      --set n_pulses=40 --out runs/pairing --workers 2 --heatmap theta_p tau_ca_ms delta_ampa

The folder: sweep.json (what must match to resume), points/NNNNNN.nc (one per finished point),
sweep.nc (all points, written at the end). Rerun the same command after a kill to finish it.
Bad input is one line on stderr and exit code 2, before any work. More: docs/sweeps.md."""


def _list(protocol: str) -> str:
    lines = [f"sweepable names of {protocol} (name, units, default):"]
    for name, (group, kind, default) in parameters(protocol).items():
        note = " (list: one value per point on the grid)" if kind == "list" else ""
        note = " (a word: --set only)" if kind == "str" else note
        lines.append(f"  {group:9s} {name:18s} {units_of(name):4s} {_plain(default)!r}{note}")
    outputs = SUMMARIES[protocol]
    lines.append(f"summaries of {protocol} (each on the grid's dimensions, and on those named):")
    for name, dims in outputs.variables.items():
        units, long_name = SUMMARY_ATTRS[name]
        lines.append(f"  {name:24s} {units:3s} {long_name}"
                     f"{'; on ' + ', '.join(dims) if dims else ''}")
    return "\n".join(lines)


def _pair(option: str, text: str) -> tuple[str, str]:
    if "=" not in text:
        raise UsageError(f"{option} {text}: expected NAME=VALUES, e.g. {option} mg_mM=0,1,2")
    name, value = text.split("=", 1)
    return name.strip(), value


def main(argv=None) -> int:
    """Bad input (an unknown parameter, an empty or unparsable axis, a value a parameter rejects
    at any point, an --out that cannot hold the sweep or holds another one) is one line on stderr
    and exit code 2, found before any point runs."""
    parser = argparse.ArgumentParser(
        prog=PROG, formatter_class=argparse.RawDescriptionHelpFormatter,
        description="run a synsim protocol over a labelled parameter grid on Dask; one "
                    "Dataset of summaries (sweep.nc)", epilog=EPILOG)
    parser.add_argument("protocol", choices=protocols.PROTOCOLS)
    parser.add_argument("--grid", action="append", default=[], metavar="NAME=VALUES",
                        help="a grid axis (repeatable); see grid syntax below")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        dest="settings", help="a fixed protocol argument or parameter "
                                              "(repeatable)")
    parser.add_argument("--out", type=Path, metavar="DIR", help="the sweep folder")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, metavar="N",
                       help="run on a new dask.distributed LocalCluster of N worker processes")
    where.add_argument("--scheduler", metavar="ADDRESS",
                       help="run on a running Dask scheduler, e.g. tcp://10.0.0.5:8786")
    where.add_argument("--scheduler-file", metavar="FILE",
                       help="run on the scheduler described by FILE (dask scheduler "
                            "--scheduler-file; SLURM, docs/sweeps.md)")
    where.add_argument("--threads", type=int, metavar="N",
                       help="in-process, on Dask's threaded scheduler with N threads (default: "
                            "its synchronous scheduler)")
    parser.add_argument("--traces", action="store_true",
                        help="also keep each point's full protocol Dataset in DIR/traces")
    parser.add_argument("--max-points", type=int, metavar="K",
                        help="compute at most K missing points, then stop (rerun to continue)")
    parser.add_argument("--heatmap", nargs=3, metavar=("X", "Y", "SUMMARY"),
                        help="draw SUMMARY over dimensions X and Y into DIR "
                             "(heatmap_SUMMARY_Y_vs_X.pdf/png/svg)")
    parser.add_argument("--at", action="append", default=[], metavar="DIM=INDEX",
                        help="with --heatmap: take dimension DIM at INDEX (default: the mean)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--list", action="store_true",
                        help="list the sweepable names and the summaries of PROTOCOL, and exit")
    args = parser.parse_args(argv)
    if args.list:
        print(_list(args.protocol))
        return 0
    try:
        if args.out is None:
            raise UsageError("--out DIR is required: the folder of the sweep")
        if not args.grid:
            raise UsageError("no --grid: give at least one axis, e.g. --grid mg_mM=0,1,2")
        grid: dict[str, str] = {}
        for text in args.grid:
            name, values = _pair("--grid", text)
            if name in grid:
                raise UsageError(f"--grid {name} is given twice: give each axis once, its values "
                                 "separated by commas")
            grid[name] = values
        settings = dict(parse_setting(args.protocol, text) for text in args.settings)
        at = {}
        for text in args.at:
            dim, index = _pair("--at", text)
            try:
                at[dim] = int(index)
            except ValueError:
                raise UsageError(f"--at {text}: INDEX must be an integer") from None
        if args.at and not args.heatmap:
            raise UsageError("--at needs --heatmap X Y SUMMARY")
        spec = plan(args.protocol, grid, settings, args.traces)
        if args.heatmap:
            check_heatmap(spec, *args.heatmap, at)
        ds = sweep(args.protocol, grid, args.out, settings=settings, workers=args.workers,
                   scheduler=args.scheduler, scheduler_file=args.scheduler_file,
                   threads=args.threads, traces=args.traces, max_points=args.max_points,
                   progress=not args.no_progress)
        if ds is not None:
            print(args.out / STORE)
            if args.heatmap:
                for path in draw_heatmap(args.out, *args.heatmap, at):
                    print(path)
    except BAD_INPUT as e:
        return report(PROG, e)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted: the finished points are in {args.out / POINTS}; rerun the "
              "same command to finish", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    # run the module's own copy, not __main__'s: tasks sent to a scheduler must name functions
    # that the scheduler and the workers can import (synsim.sweep.compute_point, ...)
    from synsim.sweep import main as _main

    sys.exit(_main())
