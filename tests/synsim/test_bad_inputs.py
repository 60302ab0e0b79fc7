"""Bad input to synsim is refused with one clear line and damages nothing (issue #8, items 3, 4, 6).

Tables of `BadInput` rows (tests/bad_input.py), one per kind of input: the parameter
dataclasses, the circuit, stimulus and protocols, the one-presentation rule, `synsim.io`, and the
three command lines (run in-process through their `main`). API rows carry the call that must fail;
CLI rows carry argv, where `{tmp}` stands for the test's temporary directory, and a `setup` that
puts the files there whose bytes must not change. Nothing here runs a simulation, so the whole
file takes a few seconds.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr

from synsim import crosscheck, demo, figures, io, protocols
from synsim.errors import DataFileError
from synsim.model import Circuit, Stimulus
from synsim.params import ModelParams, NeuronParams, SynapseParams
from synsim.rule import ReceptorRule, RuleParams
from tests.bad_input import BadInput, check_api, check_cli, tree_hashes

NAN, INF = math.nan, math.inf
AS_ROOT = os.geteuid() == 0  # root ignores permissions: read-only cases cannot fail for it
ROOT_SKIP = pytest.mark.skipif(AS_ROOT, reason="root ignores directory permissions; the "
                                               "blocked-path cases cover it")


def api(id, names, call, exception=ValueError, setup=None):
    """An API row: `call(tmp_path)` raises `exception` with one line naming `names`."""
    return pytest.param(BadInput(id, names=names, setup=setup), call, exception, id=id)


def one(**kw):
    """A one-synapse clamp circuit with `kw` changed."""
    return Circuit(**{"syn_source": [0], "syn_post": [0], "n_sources": 1, "n_post": 1, **kw})


# ------------------------------------------------------------------------- parameters
PARAMS = [
    api("synapse-e_glu-nan", ("e_glu_mV", "nan", "[-150, 100] mV"),
        lambda tmp: SynapseParams(e_glu_mV=NAN)),
    api("synapse-tau_ampa_rise-inf", ("tau_ampa_rise_ms", "inf", "> 0 ms", "finite"),
        lambda tmp: SynapseParams(tau_ampa_rise_ms=INF)),
    api("synapse-tau_rho-zero", ("tau_rho_ms", "= 0", "> 0 ms"),
        lambda tmp: SynapseParams(tau_rho_ms=0.0)),
    api("synapse-tau_ca-nan", ("tau_ca_ms", "nan", "> 0 ms"),
        lambda tmp: SynapseParams(tau_ca_ms=NAN)),
    api("synapse-g_nmda-negative", ("g_nmda_nS", "-0.1", ">= 0 nS"),
        lambda tmp: SynapseParams(g_nmda_nS=-0.1)),
    api("synapse-g_ampa-inf", ("g_ampa_max_nS", "inf", "finite"),
        lambda tmp: SynapseParams(g_ampa_max_nS=INF)),
    api("synapse-mg-inf", ("mg_mM", "inf", ">= 0 mM"), lambda tmp: SynapseParams(mg_mM=INF)),
    api("synapse-K-nan", ("K", "nan", ">= 0"), lambda tmp: SynapseParams(K=NAN)),
    api("synapse-theta_d-inf", ("theta_d", "inf", "> 0", "finite"),
        lambda tmp: SynapseParams(theta_d=INF)),
    api("synapse-gamma_p-negative", ("gamma_p", "-1", ">= 0"),
        lambda tmp: SynapseParams(gamma_p=-1.0)),
    api("synapse-bap-nan", ("bap_amplitude_mV", "nan", ">= 0 mV"),
        lambda tmp: SynapseParams(bap_amplitude_mV=NAN)),
    api("synapse-rho_sil-nan", ("rho_sil", "nan", "(0, 1)"),
        lambda tmp: SynapseParams(rho_sil=NAN)),
    api("synapse-c_post-text", ("c_post", "'half'", ">= 0"),
        lambda tmp: SynapseParams(c_post="half")),
    api("neuron-e_leak-nan", ("e_leak_mV", "nan", "[-150, 100] mV"),
        lambda tmp: NeuronParams(e_leak_mV=NAN)),
    api("neuron-c_m-inf", ("c_m_pF", "inf", "> 0 pF", "finite"),
        lambda tmp: NeuronParams(c_m_pF=INF)),
    api("neuron-refractory-inf", ("refractory_ms", "inf", ">= 0 ms", "finite"),
        lambda tmp: NeuronParams(refractory_ms=INF)),
    api("neuron-g_leak-zero", ("g_leak_nS", "> 0 nS"), lambda tmp: NeuronParams(g_leak_nS=0.0)),
    api("neuron-threshold-nan", ("v_threshold_mV", "nan", "mV"),
        lambda tmp: NeuronParams(v_threshold_mV=NAN)),
    api("neuron-reset-unit-slip", ("v_reset_mV", "-5500", "[-150, 100] mV"),
        lambda tmp: NeuronParams(v_reset_mV=-5500.0)),
    api("model-dt-nan", ("dt_ms", "nan", "(0, 0.5] ms"), lambda tmp: ModelParams(dt_ms=NAN)),
    api("model-coarse-dt-inf", ("dt_ms", "inf", "> 0 ms"),
        lambda tmp: ModelParams(dt_ms=INF, allow_coarse_dt=True)),
    api("model-synapse-none", ("synapse", "None", "SynapseParams"),
        lambda tmp: ModelParams(synapse=None)),
    api("rule-params-v_rest-nan", ("v_rest_mV", "nan", "mV"),
        lambda tmp: RuleParams(v_rest_mV=NAN)),
    api("rule-params-dv-inf", ("dv_mV", "inf", "finite"), lambda tmp: RuleParams(dv_mV=INF)),
    api("rule-params-spike_threshold-nan", ("spike_threshold", "nan", "never spikes"),
        lambda tmp: RuleParams(spike_threshold=NAN)),
    api("rule-params-delta-inf", ("delta_ms", "inf", "> 0 ms"),
        lambda tmp: RuleParams(delta_ms=INF)),
]

# ------------------------------------------------------------- circuit, stimulus, protocols
CIRCUIT_PROTOCOLS = [
    api("circuit-rho0-nan", ("rho0", "nan", "[0, 1]"), lambda tmp: one(rho0=NAN)),
    api("circuit-v_hold-nan", ("v_hold_mV", "nan", "mV"), lambda tmp: one(v_hold_mV=NAN)),
    api("circuit-i_ext-inf", ("i_ext_pA", "inf", "finite"),
        lambda tmp: one(post_mode="lif", i_ext_pA=[INF])),
    api("circuit-c0-negative", ("c0", "-1", ">= 0"), lambda tmp: one(c0=-1.0)),
    api("circuit-syn_source-fraction", ("syn_source", "0.5", "integers"),
        lambda tmp: one(syn_source=[0.5])),
    api("circuit-n_post-nan", ("n_post", "nan", "integer"), lambda tmp: one(n_post=NAN)),
    api("stimulus-release_amplitude-negative", ("release_amplitude", "-5", ">= 0"),
        lambda tmp: Stimulus(n_steps=10, release_step=[1], release_source=[0],
                             release_amplitude=[-5.0])),
    api("stimulus-release_amplitude-nan", ("release_amplitude", "nan", "finite"),
        lambda tmp: Stimulus(n_steps=10, release_step=[1], release_source=[0],
                             release_amplitude=[NAN])),
    api("stimulus-n_steps-nan", ("n_steps", "nan", "integer >= 1"),
        lambda tmp: Stimulus(n_steps=NAN)),
    api("stimulus-release_step-fraction", ("release_step", "1.5", "integers"),
        lambda tmp: Stimulus(n_steps=10, release_step=[1.5], release_source=[0])),
    api("stimulus-from_times-dt-zero", ("dt_ms", "0", "> 0 ms"),
        lambda tmp: Stimulus.from_times(100.0, 0.0, [1.0], [0])),
    api("epsc-duration-below-one-step", ("duration_ms", "0.01", "one step", "dt_ms"),
        lambda tmp: protocols.epsc(duration_ms=0.01)),
    api("epsc-rho0-nan", ("rho0", "nan", "[0, 1]"), lambda tmp: protocols.epsc(rho0=[0.0, NAN])),
    api("epsc-v_hold-inf", ("v_hold_mV", "inf", "mV"),
        lambda tmp: protocols.epsc(v_hold_mV=[-70.0, INF])),
    api("iv-rho0-above-one", ("rho0", "2", "[0, 1]"), lambda tmp: protocols.iv(rho0=2.0)),
    api("pairing-n_pulses-nan", ("n_pulses", "nan", "integer >= 1"),
        lambda tmp: protocols.pairing(n_pulses=NAN)),
    api("pairing-tail-negative", ("tail_ms", "-1", "> 0 ms"),
        lambda tmp: protocols.pairing(tail_ms=-1.0)),
    api("pairing-frequency-zero", ("frequency_hz", "0", "> 0 Hz"),
        lambda tmp: protocols.pairing(frequency_hz=0.0)),
    api("stdp-n_pairings-zero", ("n_pairings", "0", "integer >= 1"),
        lambda tmp: protocols.stdp(n_pairings=0)),
    api("stdp-v_rest-nan", ("v_rest_mV", "nan", "mV"),
        lambda tmp: protocols.stdp(v_rest_mV=NAN)),
    api("minimal-p_release-nan", ("p_release", "nan", "(0, 1]"),
        lambda tmp: protocols.minimal_stimulation(p_release=NAN)),
    api("minimal-rho_functional-above-one", ("rho_functional", "1.5", "[0, 1]"),
        lambda tmp: protocols.minimal_stimulation(rho_functional=1.5)),
    api("minimal-seed-negative", ("seed", "-1", "integer >= 0"),
        lambda tmp: protocols.minimal_stimulation(seed=-1)),
    api("spiking-duration-below-one-step", ("duration_ms", "0.01", "one step"),
        lambda tmp: protocols.spiking_neuron(duration_ms=0.01)),
    api("spiking-rate-zero", ("rate_hz", "0", "> 0 Hz"),
        lambda tmp: protocols.spiking_neuron(rate_hz=0.0)),
    api("spiking-i_ext-nan", ("i_ext_pA", "nan", "finite"),
        lambda tmp: protocols.spiking_neuron(i_ext_pA=NAN)),
    api("tetanus-duration-inf", ("duration_ms", "inf", "finite"),
        lambda tmp: protocols.tetanus(duration_ms=INF)),
]

# ------------------------------------------------------------------------- the rule
RULE = ReceptorRule()
ONES = np.ones(3)

RULE_CASES = [
    api("gate-pre-nan", ("pre", "nan", "finite"),
        lambda tmp: RULE.gate(np.array([0.5, NAN, 0.9]), ONES)),
    api("gate-depolarisation-nan", ("depolarisation", "nan", "finite"),
        lambda tmp: RULE.gate(ONES, np.array([NAN, 1.0, 1.0]))),
    api("gate-pre-nan-torch", ("pre", "nan"),
        lambda tmp: RULE.gate(torch.tensor([NAN, 0.5], dtype=torch.float64),
                              torch.ones(2, dtype=torch.float64))),
    api("gate-depolarisation-inf-torch", ("depolarisation", "inf"),
        lambda tmp: RULE.gate(torch.ones(2), torch.tensor([0.5, INF]))),
    api("gate-gain-nan", ("gain", "nan", ">= 0"), lambda tmp: RULE.gate(ONES, ONES, NAN)),
    api("step-calcium-inf", ("calcium", "inf", ">= 0"),
        lambda tmp: RULE.step(np.array([INF, 0, 0]), np.zeros(3), ONES, ONES)),
    api("step-ampa-above-one", ("ampa", "1.5", "[0, 1]"),
        lambda tmp: RULE.step(np.zeros(3), np.array([0.0, 1.5, 0.0]), ONES, ONES)),
    api("step-pre-negative", ("pre", "-1", ">= 0"),
        lambda tmp: RULE.step(np.zeros(3), np.zeros(3), -ONES, ONES)),
    api("pre_threshold-depolarisation-nan", ("depolarisation", "nan"),
        lambda tmp: RULE.pre_threshold(np.array([NAN]))),
    api("gain_for_open_rate-pre-nan", ("pre", "nan"),
        lambda tmp: RULE.gain_for_open_rate(np.array([0.5, NAN]), np.ones(2), 0.5)),
]


@pytest.mark.parametrize("row, call, exception", PARAMS + CIRCUIT_PROTOCOLS + RULE_CASES)
def test_api_refuses_with_one_line(row, call, exception, tmp_path):
    check_api(lambda: call(tmp_path), exception, row.names)


# ------------------------------------------------------------------------- synsim.io
def slab(steps, synapse=(0, 1), dtype=np.float64, ampa=None):
    """A learner-log slab on (step, synapse), as artsy appends it."""
    steps = np.asarray(steps, dtype=np.int64)
    values = np.full((steps.size, len(synapse)), 0.25, dtype=dtype) if ampa is None else ampa
    ds = xr.Dataset({"ampa": (("step", "synapse"), values),
                     "functional": (("step", "synapse"), np.zeros(values.shape, bool))},
                    coords={"step": steps, "synapse": np.asarray(synapse, dtype=np.int64)})
    return io.annotate(ds)


def stored(tmp, dtype=np.float64):
    """synapses.nc holding steps 0..3 of synapses [0, 1]."""
    io.append(tmp / "synapses.nc", slab(range(4), dtype=dtype), "step")


def stored_netcdf_then(damage):
    def setup(tmp):
        stored(tmp)
        data = (tmp / "synapses.nc").read_bytes()
        (tmp / "bad.nc").write_bytes(damage(data))
    return setup


IO = [
    api("append-synapse-differs", ("synapses.nc", "coordinate 'synapse'", "7 vs 0",
                                   "file's synapse values"),
        lambda tmp: io.append(tmp / "synapses.nc", slab([4, 5], synapse=(7, 8)), "step"),
        setup=stored),
    api("append-step-duplicate", ("synapses.nc", "step 3", "not after", "> 3"),
        lambda tmp: io.append(tmp / "synapses.nc", slab([3, 4]), "step"), setup=stored),
    api("append-step-before-stored", ("synapses.nc", "step 1", "last step 3"),
        lambda tmp: io.append(tmp / "synapses.nc", slab([1, 2]), "step"), setup=stored),
    api("append-step-decreasing", ("synapses.nc", "step 5 follows 6", "strictly increasing"),
        lambda tmp: io.append(tmp / "synapses.nc", slab([4, 6, 5]), "step"), setup=stored),
    api("append-step-repeated-in-slab", ("step 4 follows 4", "strictly increasing"),
        lambda tmp: io.append(tmp / "synapses.nc", slab([4, 4]), "step"), setup=stored),
    api("append-float32-overflow", ("synapses.nc", "ampa", "1e+39", "float32", "float64"),
        lambda tmp: io.append(tmp / "synapses.nc", slab([4, 5], ampa=np.array(
            [[0.5, 1e39], [0.5, 0.5]])), "step"),
        setup=lambda tmp: stored(tmp, np.float32)),
    api("append-to-a-text-file", ("notes.nc", "not a readable synsim netCDF", "rerun"),
        lambda tmp: io.append(tmp / "notes.nc", slab([0]), "step"), DataFileError,
        setup=lambda tmp: (tmp / "notes.nc").write_text("not a netCDF\n")),
    api("load-a-text-file", ("notes.nc", "not a readable synsim netCDF", "rerun"),
        lambda tmp: io.load(tmp / "notes.nc"), DataFileError,
        setup=lambda tmp: (tmp / "notes.nc").write_text("time,ampa\n0,0.3\n")),
    api("load-a-truncated-netcdf", ("bad.nc", "not a readable synsim netCDF", "rerun"),
        lambda tmp: io.load(tmp / "bad.nc"), DataFileError,
        setup=stored_netcdf_then(lambda data: data[: len(data) // 2])),
    api("load-an-empty-file", ("bad.nc", "not a readable synsim netCDF", "rerun"),
        lambda tmp: io.load(tmp / "bad.nc"), DataFileError,
        setup=stored_netcdf_then(lambda data: b"")),
    api("load-a-directory", ("sub", "directory", ".nc"),
        lambda tmp: io.load(tmp / "sub"), DataFileError,
        setup=lambda tmp: (tmp / "sub").mkdir()),
    api("load-a-missing-file", ("missing.nc", "does not exist"),
        lambda tmp: io.load(tmp / "missing.nc"), FileNotFoundError),
]


@pytest.mark.parametrize("row, call, exception", IO)
def test_io_refuses_with_one_line_and_leaves_the_file(row, call, exception, tmp_path):
    if row.setup:
        row.setup(tmp_path)
    before = tree_hashes(tmp_path)
    check_api(lambda: call(tmp_path), exception, row.names)
    assert tree_hashes(tmp_path) == before  # unchanged, and no temporary file left beside it


def test_a_bad_append_leaves_the_stored_data_readable(tmp_path):
    stored(tmp_path)
    with pytest.raises(ValueError):
        io.append(tmp_path / "synapses.nc", slab([2, 3]), "step")
    io.append(tmp_path / "synapses.nc", slab([4, 5]), "step")  # the good continuation still works
    back = io.load(tmp_path / "synapses.nc")
    assert back.step.values.tolist() == [0, 1, 2, 3, 4, 5]


# ------------------------------------------------------------------------- command lines
def cli(id, argv, names, setup=None, marks=()):
    return pytest.param(BadInput(id, argv=argv, names=names, setup=setup), id=id, marks=marks)


def blocker(tmp):
    """A regular file where a directory would have to be: fails for root too."""
    (tmp / "blocker").write_text("keep me\n")


def read_only(tmp):
    (tmp / "ro").mkdir()
    (tmp / "ro" / "old.png").write_bytes(b"\x89PNG old figure")
    (tmp / "ro").chmod(0o555)


def prior_figure(tmp):
    (tmp / "out").mkdir()
    (tmp / "out" / "epsc.png").write_bytes(b"\x89PNG a figure drawn before")


def run_dir(*files):
    """A --from directory holding `files` (name -> bytes or a callable writing it), and a prior
    figure in the output directory."""
    def setup(tmp):
        prior_figure(tmp)
        (tmp / "run").mkdir()
        for name, content in files:
            if callable(content):
                content(tmp / "run" / name)
            else:
                (tmp / "run" / name).write_bytes(content)
    return setup


def foreign_netcdf(path):
    io.save(xr.Dataset({"x": ("t", np.arange(3.0))}), path)


FIGURES_CLI = [
    cli("out-under-a-file", ["{tmp}/blocker/figs", "--no-brian2"],
        ("python -m synsim.figures", "blocker", "writable"), blocker),
    cli("out-is-a-file", ["{tmp}/blocker", "--no-brian2"],
        ("python -m synsim.figures", "blocker", "not a directory"), blocker),
    cli("out-read-only", ["{tmp}/ro", "--no-brian2"],
        ("python -m synsim.figures", "ro", "writable"), read_only, marks=ROOT_SKIP),
    cli("from-missing-dir", ["{tmp}/out", "--from", "{tmp}/nope"],
        ("--from", "nope", "not a directory", "synsim.demo"), prior_figure),
    cli("from-a-file", ["{tmp}/out", "--from", "{tmp}/blocker"],
        ("--from", "blocker", "not a directory"), lambda tmp: (blocker(tmp), prior_figure(tmp))),
    cli("from-not-a-synsim-run", ["{tmp}/out", "--from", "{tmp}/run", "--no-brian2"],
        ("--from", "run", "not a synsim run", "epsc.nc", "synsim.demo"),
        run_dir(("notes.txt", b"my notes"), ("data.csv", b"a,b\n1,2\n"))),
    cli("from-text-dataset", ["{tmp}/out", "--from", "{tmp}/run", "--no-brian2"],
        ("epsc.nc", "not a readable synsim netCDF", "rerun"),
        run_dir(("epsc.nc", b"this is not netCDF\n"))),
    cli("from-truncated-dataset", ["{tmp}/out", "--from", "{tmp}/run", "--no-brian2"],
        ("iv.nc", "not a readable synsim netCDF", "rerun"),
        run_dir(("iv.nc", b"\x89HDF\r\n\x1a\n" + b"\0" * 40))),
    cli("from-foreign-netcdf", ["{tmp}/out", "--from", "{tmp}/run", "--no-brian2"],
        ("stdp.nc", "protocol", "synsim.demo"), run_dir(("stdp.nc", foreign_netcdf))),
    cli("unknown-option", ["{tmp}/out", "--fast"], ("unrecognized arguments", "--fast")),
]

CROSSCHECK_CLI = [
    cli("unknown-protocol", ["--protocol", "nonsense"],
        ("python -m synsim.crosscheck", "nonsense", "choose from", "tetanus")),
    cli("out-under-a-file", ["--protocol", "epsc", "--out", "{tmp}/blocker/report.json"],
        ("python -m synsim.crosscheck", "blocker", "is a file", "writable"), blocker),
    cli("out-is-a-directory", ["--protocol", "epsc", "--out", "{tmp}"],
        ("python -m synsim.crosscheck", "directory", "file path"), blocker),
    cli("out-read-only", ["--out", "{tmp}/ro/report.json"],
        ("python -m synsim.crosscheck", "report.json", "writable"), read_only, marks=ROOT_SKIP),
    cli("unknown-method", ["--method", "rk4"], ("--method", "rk4", "exact")),
    cli("unknown-target", ["--target", "cuda"], ("--target", "cuda", "cpp_standalone")),
    cli("protocol-without-name", ["--protocol"], ("--protocol", "expected")),
]

DEMO_CLI = [
    cli("out-is-a-file", ["{tmp}/blocker", "--quick"],
        ("python -m synsim.demo", "blocker", "not a directory"), blocker),
    cli("out-under-a-file", ["{tmp}/blocker/run", "--quick"],
        ("python -m synsim.demo", "blocker", "writable"), blocker),
    cli("figures-dir-is-a-file", ["{tmp}/run", "--quick"],
        ("python -m synsim.demo", "figures", "not a directory"),
        lambda tmp: ((tmp / "run").mkdir(), (tmp / "run" / "figures").write_text("x"))),
    cli("out-read-only", ["{tmp}/ro", "--quick"],
        ("python -m synsim.demo", "ro", "writable"), read_only, marks=ROOT_SKIP),
    cli("unknown-option", ["{tmp}/run", "--fast"], ("unrecognized arguments", "--fast")),
]


def run_cli(main, row: BadInput, tmp: Path, capsys) -> None:
    if row.setup:
        row.setup(tmp)
    before = tree_hashes(tmp)
    try:
        check_cli(main, [a.format(tmp=tmp) for a in row.argv], capsys, row.names, [tmp])
    finally:
        for ro in tmp.rglob("ro"):
            ro.chmod(0o755)
    assert set(tree_hashes(tmp)) == set(before), "the failed command wrote a file"


@pytest.mark.parametrize("row", FIGURES_CLI)
def test_figures_cli(row, tmp_path, capsys):
    run_cli(figures.main, row, tmp_path, capsys)


@pytest.mark.parametrize("row", CROSSCHECK_CLI)
def test_crosscheck_cli(row, tmp_path, capsys):
    run_cli(crosscheck.main, row, tmp_path, capsys)


@pytest.mark.parametrize("row", DEMO_CLI)
def test_demo_cli(row, tmp_path, capsys):
    run_cli(demo.main, row, tmp_path, capsys)


def test_there_are_enough_cases():
    """At least 35 rows across the API, synsim.io and the command lines."""
    tables = (PARAMS, CIRCUIT_PROTOCOLS, RULE_CASES, IO, FIGURES_CLI, CROSSCHECK_CLI, DEMO_CLI)
    assert sum(len(t) for t in tables) >= 35
    for table in tables:
        assert len({p.id for p in table}) == len(table)  # ids unique within a table
