"""synsim.sweep: a protocol over a labelled grid on Dask (issue #10).

The grids are tiny (a few points of a few ms each): what is tested is the bookkeeping. A
LocalCluster of two worker processes gives the serial sweep's bytes; seeds follow coordinates, not
the order points run in; a sweep stopped (or SIGKILLed) after k points and rerun computes only the
others and ends with the same store; bad grids are one line, exit code 2 and no file written,
before any point runs; the heatmap draws the summary it is asked for.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from synsim import figures, io, protocols
from synsim import sweep as sw
from synsim.errors import OutputError, UsageError
from synsim.params import ModelParams, SynapseParams
from tests.bad_input import BadInput, check_api, check_cli, tree_hashes

REPO = Path(__file__).resolve().parents[2]
AS_ROOT = os.geteuid() == 0
ROOT_SKIP = pytest.mark.skipif(AS_ROOT, reason="root ignores directory permissions")

# epsc: 2 x 3 points of 5 ms, each with the rho0 conditions (0, 0.5) inside
GRID = {"mg_mM": "0,1", "v_hold_mV": "-70,-20,40"}
SETTINGS = {"duration_ms": 5.0}
# minimal stimulation: release is random, so every point has its own seed
SEEDED_GRID = {"p_release": [0.3, 0.6], "silent_fraction": [0.25, 0.75]}
SEEDED_SETTINGS = {"n_trials": 12, "window_ms": 10.0}
QUIET = dict(progress=False, log=lambda line: None)


def data_bytes(ds: xr.Dataset) -> dict[str, bytes]:
    """Every variable's dims, dtype and bytes (coordinates included)."""
    return {name: (var.dims, str(var.dtype), var.values.tobytes())
            for name, var in ds.variables.items()}


@pytest.fixture(scope="module")
def serial(tmp_path_factory):
    out = tmp_path_factory.mktemp("serial")
    return out, sw.sweep("epsc", GRID, out, settings=SETTINGS, **QUIET)


# ------------------------------------------------------------------ grid syntax
@pytest.mark.parametrize("spec, values", [
    ("0,1,2", [0.0, 1.0, 2.0]),
    ("-70:10:-10", [-70.0, -60.0, -50.0, -40.0, -30.0, -20.0, -10.0]),
    ("0:0.1:0.3", [0.0, 0.1, 0.2, 0.3]),  # exact decimals, not 0.30000000000000004
    ("40:-20:0", [40.0, 20.0, 0.0]),
    ("1.5,3:1:5,1e1", [1.5, 3.0, 4.0, 5.0, 10.0]),
    ("0:0.3:1", [0.0, 0.3, 0.6, 0.9]),  # STOP is included when reached, never passed
])
def test_grid_syntax(spec, values):
    assert sw.parse_values("x", spec) == values


# ------------------------------------------------------------------ the store
def test_sweep_dataset_is_labelled_and_holds_the_protocols_numbers(serial):
    out, ds = serial
    assert dict(ds.sizes) == {"mg_mM": 2, "v_hold_mV": 3, "rho0": 2}
    assert ds.mg_mM.attrs == {"units": "mM", "long_name": "extracellular Mg2+ concentration"}
    assert ds.v_hold_mV.attrs["units"] == "mV" and ds.rho0.attrs["units"] == "1"
    assert ds.rho0.values.tolist() == [0.0, 0.5]  # the protocol's default conditions
    assert set(ds.data_vars) == set(sw.SUMMARIES["epsc"].variables)
    for name in ds.data_vars:
        assert ds[name].dims == ("mg_mM", "v_hold_mV", "rho0")
        assert ds[name].attrs["units"] == sw.SUMMARY_ATTRS[name][0]
    assert ds.attrs["protocol"] == "epsc"
    # one point recomputed with the protocol itself
    params = ModelParams(synapse=SynapseParams(mg_mM=1.0))
    direct = protocols.epsc(v_hold_mV=[-20.0], rho0=[0.0, 0.5], duration_ms=5.0, params=params)
    column = direct.i_nmda.values[:, 1]  # post 1: rho0 = 0.5
    nmda = column[np.argmax(np.abs(column))]
    assert ds.i_nmda_peak.sel(mg_mM=1.0, v_hold_mV=-20.0, rho0=0.5).item() == nmda
    np.testing.assert_array_equal(ds.ampa_final.sel(mg_mM=1.0, v_hold_mV=-20.0).values,
                                  direct.ampa_final.values)
    assert ds.silent_fraction.sel(rho0=0.0).values.min() == 1.0  # a silent synapse stays silent
    # the folder
    assert sorted(p.name for p in (out / "points").iterdir()) == [f"{i:06d}.nc"
                                                                  for i in range(6)]
    assert (out / "sweep.json").exists() and not list(out.rglob(".*.tmp"))
    assert io.load(out / "sweep.nc").equals(ds)


def test_two_worker_local_cluster_equals_the_serial_sweep(serial, tmp_path):
    out, ds = serial
    cluster = sw.sweep("epsc", GRID, tmp_path / "cluster", settings=SETTINGS, workers=2, **QUIET)
    threads = sw.sweep("epsc", GRID, tmp_path / "threads", settings=SETTINGS, threads=2, **QUIET)
    # a running scheduler reached by its address: the workers return summaries, we write them
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                      dashboard_address=None) as running:
        lines = []
        remote = sw.sweep("epsc", GRID, tmp_path / "remote", settings=SETTINGS,
                          scheduler=running.scheduler_address, progress=False, log=lines.append)
    assert any(line.startswith("dask dashboard:") for line in lines)
    for other in (cluster, threads, remote):
        assert data_bytes(other) == data_bytes(ds)
    assert cluster.attrs == ds.attrs
    for name in ("cluster", "threads", "remote"):
        assert (tmp_path / name / "sweep.nc").read_bytes() == (out / "sweep.nc").read_bytes()


def test_the_local_cluster_runs_quiet_single_threaded_workers():
    """sweep(workers=N)'s cluster: one thread per library and the event loop's periodic work
    thinned out (docs/sweeps.md §9), in every worker process."""
    import dask
    from distributed import Client

    def settings(dask_worker):
        return (os.environ["OMP_NUM_THREADS"], os.environ["NUMBA_NUM_THREADS"],
                dask.config.get("distributed.worker.profile.enabled"),
                dask.config.get("distributed.admin.tick.interval"),
                dask_worker.memory_manager.memory_limit, dask_worker.state.nthreads)

    with sw.local_cluster(2, dashboard=False) as cluster, Client(cluster) as client:
        got = list(client.run(settings).values())
    assert got == [("1", "1", False, "1s", None, 1)] * 2


def test_seeds_follow_the_coordinates_not_the_order(tmp_path):
    one = sw.sweep("minimal_stimulation", SEEDED_GRID, tmp_path / "one",
                   settings=SEEDED_SETTINGS, **QUIET)
    flipped = {"silent_fraction": [0.75, 0.25], "p_release": [0.6, 0.3]}  # other axis order too
    two = sw.sweep("minimal_stimulation", flipped, tmp_path / "two", settings=SEEDED_SETTINGS,
                   threads=2, **QUIET)
    two = two.sel(p_release=one.p_release, silent_fraction=one.silent_fraction)
    for name in one.data_vars:
        np.testing.assert_array_equal(two[name].transpose(*one[name].dims).values,
                                      one[name].values)
    seeds = one.point_seed.values
    assert np.unique(seeds).size == seeds.size  # every point its own draws
    assert seeds[0, 1] == sw.point_seed(0, {"p_release": 0.3, "silent_fraction": 0.75})
    # a point reproduced by hand from its seed
    direct = protocols.minimal_stimulation(p_release=0.3, silent_fraction=0.75,
                                           seed=int(seeds[0, 1]), **SEEDED_SETTINGS)
    np.testing.assert_array_equal(one.failure_rate.values[0, 1], direct.failure_rate.values)
    # the same base seed and grid again: the same numbers; another base seed: others
    again = sw.sweep("minimal_stimulation", SEEDED_GRID, tmp_path / "again",
                     settings=SEEDED_SETTINGS, **QUIET)
    assert data_bytes(again) == data_bytes(one)
    other = sw.plan("minimal_stimulation", SEEDED_GRID, {**SEEDED_SETTINGS, "seed": 5})
    assert other.point(0)[0]["seed"] != sw.plan("minimal_stimulation", SEEDED_GRID,
                                                SEEDED_SETTINGS).point(0)[0]["seed"]


def test_seed_on_the_grid_is_used_as_given(tmp_path):
    spec = sw.plan("minimal_stimulation", {"seed": [3, 4], "p_release": [0.5]}, SEEDED_SETTINGS)
    assert [spec.point(i)[0]["seed"] for i in range(2)] == [3, 4]
    assert "point_seed" not in spec.schema()


# ------------------------------------------------------------------ resume
def test_a_stopped_sweep_resumes_with_only_the_missing_points(serial, tmp_path):
    out, ds = serial
    part = tmp_path / "part"
    assert sw.sweep("epsc", GRID, part, settings=SETTINGS, max_points=2, **QUIET) is None
    first = {p.name: p.stat() for p in (part / "points").iterdir()}
    assert sorted(first) == ["000000.nc", "000001.nc"] and not (part / "sweep.nc").exists()
    computed = []
    done = sw.sweep("epsc", GRID, part, settings=SETTINGS, on_point=computed.append, **QUIET)
    assert sorted(computed) == [2, 3, 4, 5]  # in the order Dask chose
    for name, stat in first.items():  # the earlier points were not rewritten
        now = (part / "points" / name).stat()
        assert (now.st_ino, now.st_mtime_ns) == (stat.st_ino, stat.st_mtime_ns)
    assert data_bytes(done) == data_bytes(ds)
    assert (part / "sweep.nc").read_bytes() == (out / "sweep.nc").read_bytes()
    computed.clear()  # a finished sweep rerun: nothing to compute, the same store
    sw.sweep("epsc", GRID, part, settings=SETTINGS, on_point=computed.append, **QUIET)
    assert computed == [] and (part / "sweep.nc").read_bytes() == (out / "sweep.nc").read_bytes()


KILLED_AFTER_TWO = textwrap.dedent("""
    import os, signal, sys
    from synsim import sweep as sw
    done = []
    def on_point(index):
        done.append(index)
        if len(done) == 2:
            os.kill(os.getpid(), signal.SIGKILL)
    sw.sweep("epsc", {grid!r}, sys.argv[1], settings={settings!r}, on_point=on_point,
             progress=False)
""")


def test_a_sigkilled_sweep_rerun_ends_identical(serial, tmp_path):
    out, ds = serial
    killed = tmp_path / "killed"
    script = KILLED_AFTER_TWO.format(grid=GRID, settings=SETTINGS)
    proc = subprocess.run([sys.executable, "-c", script, str(killed)], cwd=REPO,
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "OMP_WAIT_POLICY": "PASSIVE"})
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert len(list((killed / "points").glob("*.nc"))) == 2
    (killed / "points" / ".000002.nc.abc123.tmp").write_bytes(b"half a point")  # a torn write
    computed = []
    done = sw.sweep("epsc", GRID, killed, settings=SETTINGS, on_point=computed.append, **QUIET)
    assert len(computed) == 4 and not list(killed.rglob(".*.tmp"))
    assert data_bytes(done) == data_bytes(ds)
    assert (killed / "sweep.nc").read_bytes() == (out / "sweep.nc").read_bytes()


def test_partial_combine_shows_the_missing_points_as_nan(tmp_path):
    sw.sweep("epsc", GRID, tmp_path, settings=SETTINGS, max_points=4, **QUIET)
    part = sw.combine(tmp_path, partial=True)
    assert part.attrs["sweep_missing"] == 2
    assert np.isnan(part.i_syn_peak.values).sum() == 2 * 2  # two points, two rho0 each
    check_api(lambda: sw.combine(tmp_path), UsageError, ("2 of 6 points are missing", "rerun"))


# ------------------------------------------------------------------ protocols and traces
TINY = {
    "epsc": ({"rho0": [0.0, 0.5]}, {"duration_ms": 5.0, "v_hold_mV": (-70.0, 40.0)}),
    "iv": ({"rho0": [0.2]}, {"duration_ms": 5.0, "v_hold_mV": (-70.0, 0.0, 40.0)}),
    "pairing": ({"v_clamp_mV": [-70.0, 0.0]}, {"frequency_hz": 20.0, "n_pulses": 3,
                                               "tail_ms": 20.0}),
    "stdp": ({"rho0": [0.0]}, {"delays_ms": (-5.0, 5.0), "n_pairings": 2,
                               "frequency_hz": 20.0}),
    "minimal_stimulation": ({"n_synapses": [2, 4]}, {"n_trials": 5, "window_ms": 10.0}),
    "spiking_neuron": ({"rate_hz": [50.0]}, {"n_inputs": 4, "duration_ms": 30.0}),
    "tetanus": ({"theta_p": [1.3, 2.0]}, {"duration_ms": 30.0}),
}


def test_every_protocol_sweeps_and_keeps_its_summaries(tmp_path):
    assert set(TINY) == set(sw.SUMMARIES) == set(protocols.PROTOCOLS)
    for name, (grid, settings) in TINY.items():
        spec = sw.plan(name, grid, settings)
        ds = sw.sweep(name, grid, tmp_path / name, settings=settings, **QUIET)
        assert set(ds.data_vars) == set(spec.schema()), name
        for var, (dims, inner) in spec.schema().items():
            assert ds[var].dims == dims, (name, var)
            assert np.isfinite(ds[var].values).all() or var == "silent_fraction_estimate"
        assert set(ds.dims) >= set(grid)


def test_traces_keep_each_points_protocol_dataset(tmp_path):
    ds = sw.sweep("tetanus", {"theta_p": [1.3, 2.0]}, tmp_path, settings={"duration_ms": 30.0},
                  traces=True, **QUIET)
    trace = io.load(tmp_path / "traces" / "000001.nc")
    assert trace.attrs["sweep_point"] == 1 and trace.attrs["theta_p"] == 2.0
    assert ds.calcium_peak.sel(theta_p=2.0).values.tolist() == trace.calcium.values.max(0).tolist()


def test_names_do_not_collide():
    for name, outputs in sw.SUMMARIES.items():
        known = sw.parameters(name)
        assert not set(known) & set(outputs.variables), name
        assert set(outputs.conditions) <= set(known), name
        assert all(known[c][1] == "list" for c in outputs.conditions), name
        assert not set(outputs.internal) & set(known), name
        for var in outputs.variables:
            assert var in sw.SUMMARY_ATTRS


# ------------------------------------------------------------------ the heatmap
def test_heatmap_draws_the_chosen_summary(serial):
    _, ds = serial
    fig, data = figures.fig_sweep_heatmap(ds, "v_hold_mV", "mg_mM", "i_nmda_peak",
                                          at={"rho0": 1})
    ax = fig.axes[0]
    assert ax.get_xlabel() == "holding potential (mV)"
    assert ax.get_ylabel() == "extracellular Mg2+ concentration (mM)"
    assert fig.axes[1].get_ylabel() == "peak NMDA current (pA)"  # the colour bar
    assert "rho0 = 0.5" in ax.get_title()
    drawn = np.asarray(ax.collections[0].get_array()).reshape(2, 3)
    want = ds.i_nmda_peak.isel(rho0=1).transpose("mg_mM", "v_hold_mV").values
    np.testing.assert_array_equal(drawn, want)
    np.testing.assert_array_equal(data["i_nmda_peak"], want)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["-70", "-20", "40"]
    fig, data = figures.fig_sweep_heatmap(ds, "rho0", "v_hold_mV", "ampa_final")  # a mean
    np.testing.assert_allclose(data["ampa_final"], ds.ampa_final.mean("mg_mM").values)
    assert data["ampa_final"].shape == (3, 2) and "mean over mg_mM" in fig.axes[0].get_title()


def test_cli_sweeps_and_draws(tmp_path, capsys):
    argv = ["epsc", "--grid", "mg_mM=0,1", "--grid", "v_hold_mV=-70:55:40", "--set",
            "duration_ms=5", "--out", str(tmp_path), "--heatmap", "v_hold_mV", "mg_mM",
            "i_syn_peak", "--at", "rho0=0", "--no-progress"]
    assert sw.main(argv) == 0
    printed = capsys.readouterr().out.split()
    assert printed[0] == str(tmp_path / "sweep.nc")
    assert sorted(Path(p).suffix for p in printed[1:]) == [".pdf", ".png", ".svg"]
    ds = io.load(tmp_path / "sweep.nc")
    assert ds.v_hold_mV.values.tolist() == [-70.0, -15.0, 40.0]
    assert json_settings(tmp_path) == {"duration_ms": 5.0}


def json_settings(out: Path) -> dict:
    import json

    return json.loads((out / "sweep.json").read_text())["settings"]


# ------------------------------------------------------------------ bad input
def cli(id, argv, names, setup=None, marks=()):
    return pytest.param(BadInput(id, argv=argv, names=names, setup=setup), id=id, marks=marks)


BASE = ["--set", "duration_ms=5", "--no-progress"]


def blocker(tmp):
    (tmp / "blocker").write_text("keep me\n")


def read_only(tmp):
    (tmp / "ro").mkdir()
    (tmp / "ro" / "notes.txt").write_text("mine\n")
    (tmp / "ro").chmod(0o555)


def foreign_folder(tmp):
    (tmp / "mine").mkdir()
    (tmp / "mine" / "notes.txt").write_text("not a sweep\n")


def earlier_sweep(tmp):
    """A finished one-axis sweep in tmp/run (2 points)."""
    sw.sweep("epsc", {"mg_mM": [0.0, 1.0]}, tmp / "run", settings={"duration_ms": 5.0},
             **QUIET)


OUT = ["--out", "{tmp}/run"]

SWEEP_CLI = [
    cli("unknown-parameter", ["epsc", "--grid", "mg_mm=0,1", *OUT],
        ("mg_mm", "did you mean 'mg_mM'", "--list")),
    cli("unknown-parameter-far", ["epsc", "--grid", "voltage=0,1", *OUT],
        ("unknown parameter", "voltage", "epsc --list")),
    cli("unknown-setting", ["epsc", "--grid", "mg_mM=1", "--set", "tau_ca=5", *OUT],
        ("tau_ca", "did you mean 'tau_ca_ms'")),
    cli("empty-axis", ["epsc", "--grid", "mg_mM=", *OUT], ("mg_mM", "empty")),
    cli("empty-item", ["epsc", "--grid", "mg_mM=0,,1", *OUT], ("mg_mM", "empty item")),
    cli("no-equals", ["epsc", "--grid", "mg_mM", *OUT], ("--grid", "NAME=VALUES")),
    cli("no-grid", ["epsc", *OUT], ("--grid", "at least one")),
    cli("no-out", ["epsc", "--grid", "mg_mM=1"], ("--out", "required")),
    cli("not-a-number", ["epsc", "--grid", "mg_mM=1,two", *OUT], ("mg_mM", "'two'", "number")),
    cli("range-two-parts", ["epsc", "--grid", "v_hold_mV=-70:10", *OUT],
        ("v_hold_mV", "unparsable", "START:STEP:STOP")),
    cli("range-zero-step", ["epsc", "--grid", "v_hold_mV=-70:0:10", *OUT],
        ("v_hold_mV", "never reaches")),
    cli("range-wrong-sign", ["epsc", "--grid", "v_hold_mV=-70:-10:0", *OUT],
        ("v_hold_mV", "never reaches", "sign")),
    cli("range-huge", ["epsc", "--grid", "mg_mM=0:1e-9:10", *OUT], ("mg_mM", "more than")),
    cli("duplicate-value", ["epsc", "--grid", "mg_mM=0,1,1.0", *OUT], ("mg_mM", "twice")),
    cli("axis-twice", ["epsc", "--grid", "mg_mM=0", "--grid", "mg_mM=1", *OUT],
        ("--grid mg_mM", "twice")),
    cli("axis-and-setting", ["epsc", "--grid", "mg_mM=0,1", "--set", "mg_mM=1", *OUT],
        ("mg_mM", "both")),
    cli("word-axis", ["epsc", "--grid", "discretisation=1", *OUT],
        ("discretisation", "--set")),
    cli("integer-axis", ["pairing", "--grid", "n_pulses=2.5", *OUT], ("n_pulses", "integer")),
    cli("bool-axis", ["epsc", "--grid", "plasticity=0,2", *OUT], ("plasticity", "0 or 1")),
    cli("rejected-by-synapse-params", ["epsc", "--grid", "mg_mM=1,-1", *OUT],
        ("grid point 1", "mg_mM = -1.0", ">= 0 mM")),
    cli("rejected-together", ["epsc", "--grid", "theta_p=1.5,0.8", "--grid", "mg_mM=0,1", *OUT],
        ("grid point 2", "theta_p", ">= theta_d")),
    cli("rejected-by-the-protocol", ["epsc", "--grid", "v_hold_mV=-70:50:130", *OUT],
        ("grid point 4", "v_hold_mV", "130", "[-150, 100] mV")),
    cli("rejected-dt", ["epsc", "--grid", "dt_ms=0.1,0.7", *OUT], ("dt_ms", "0.7")),
    cli("rejected-setting", ["epsc", "--grid", "mg_mM=1", "--set", "duration_ms=-3", *OUT],
        ("duration_ms", "-3", "> 0 ms")),
    cli("rejected-base-seed", ["minimal_stimulation", "--grid", "p_release=0.5", "--set",
                               "seed=-1", *OUT], ("seed", "-1", ">= 0")),
    cli("unknown-protocol", ["nmda", "--grid", "mg_mM=1", *OUT], ("invalid choice", "nmda")),
    cli("workers-and-scheduler", ["epsc", "--grid", "mg_mM=1", "--workers", "2",
                                  "--scheduler", "tcp://x:1", *OUT], ("not allowed with",)),
    cli("workers-zero", ["epsc", "--grid", "mg_mM=1", "--workers", "0", *OUT],
        ("workers", ">= 1")),
    cli("heatmap-unknown-summary", ["epsc", "--grid", "mg_mM=0,1", "--grid", "v_hold_mV=0,10",
                                    "--heatmap", "mg_mM", "v_hold_mV", "i_nmda", *OUT],
        ("i_nmda", "did you mean 'i_nmda_peak'")),
    cli("heatmap-not-a-dimension", ["epsc", "--grid", "mg_mM=0,1", "--heatmap", "mg_mM",
                                    "tau_ca_ms", "i_nmda_peak", *OUT],
        ("tau_ca_ms", "not a dimension", "rho0")),
    cli("heatmap-at-out-of-range", ["epsc", "--grid", "mg_mM=0,1", "--heatmap", "mg_mM",
                                    "v_hold_mV", "i_nmda_peak", "--at", "rho0=2", *OUT],
        ("--at rho0=2", "[0, 1]")),
    cli("out-is-a-file", ["epsc", "--grid", "mg_mM=1", "--out", "{tmp}/blocker"],
        ("blocker", "not a directory"), blocker),
    cli("out-under-a-file", ["epsc", "--grid", "mg_mM=1", "--out", "{tmp}/blocker/run"],
        ("blocker", "writable"), blocker),
    cli("out-read-only", ["epsc", "--grid", "mg_mM=1", "--out", "{tmp}/ro"],
        ("ro", "writable"), read_only, marks=ROOT_SKIP),
    cli("out-holds-other-files", ["epsc", "--grid", "mg_mM=1", "--out", "{tmp}/mine"],
        ("mine", "no sweep.json", "empty folder"), foreign_folder),
    cli("out-holds-another-grid", ["epsc", "--grid", "mg_mM=0,2", *BASE, *OUT],
        ("holds another sweep", "grid mg_mM", "[0.0, 1.0] there", "[0.0, 2.0] now",
         "sweep.json"), earlier_sweep),
    cli("out-holds-other-axes", ["epsc", "--grid", "mg_mM=0,1", "--grid", "rho0=0", *BASE,
                                 *OUT], ("grid axes", "['mg_mM'] there"), earlier_sweep),
    cli("out-holds-other-settings", ["epsc", "--grid", "mg_mM=0,1", "--set", "duration_ms=6",
                                     *OUT], ("setting duration_ms", "5.0 there", "6.0 now"),
        earlier_sweep),
    cli("out-holds-another-protocol", ["tetanus", "--grid", "mg_mM=0,1", *BASE, *OUT],
        ("protocol 'epsc' there", "'tetanus' now"), earlier_sweep),
    cli("out-holds-traces-off", ["epsc", "--grid", "mg_mM=0,1", "--traces", *BASE, *OUT],
        ("traces off there", "on now"), earlier_sweep),
]


@pytest.mark.parametrize("row", SWEEP_CLI)
def test_bad_grids_are_one_line_before_any_work(row, tmp_path, capsys):
    if row.setup:
        row.setup(tmp_path)
    before = tree_hashes(tmp_path)
    try:
        check_cli(sw.main, [a.format(tmp=tmp_path) for a in row.argv], capsys, row.names,
                  [tmp_path])
    finally:
        for ro in tmp_path.rglob("ro"):
            ro.chmod(0o755)
    assert set(tree_hashes(tmp_path)) == set(before), "the failed command wrote a file"
    assert not (tmp_path / "run").exists() or row.setup is earlier_sweep


def api(id, call, exception, names):
    return pytest.param(call, exception, names, id=id)


SWEEP_API = [
    api("unknown-parameter", lambda tmp: sw.sweep("epsc", {"thetap": [1]}, tmp, **QUIET),
        UsageError, ("thetap", "did you mean 'theta_p'")),
    api("empty-axis", lambda tmp: sw.sweep("epsc", {"mg_mM": []}, tmp, **QUIET), UsageError,
        ("mg_mM", "empty")),
    api("empty-grid", lambda tmp: sw.sweep("epsc", {}, tmp, **QUIET), UsageError,
        ("grid is empty",)),
    api("nan-value", lambda tmp: sw.sweep("epsc", {"mg_mM": [1.0, float("nan")]}, tmp, **QUIET),
        UsageError, ("mg_mM", "nan", "finite")),
    api("rejected-value", lambda tmp: sw.sweep("iv", {"rho0": [0.5, 1.5]}, tmp, **QUIET),
        UsageError, ("grid point 1", "rho0", "[0, 1]")),
    api("unknown-protocol", lambda tmp: sw.sweep("nmda", {"mg_mM": [1]}, tmp, **QUIET),
        UsageError, ("nmda", "epsc")),
    api("threads-and-workers", lambda tmp: sw.sweep("epsc", {"mg_mM": [1]}, tmp, workers=2,
                                                    threads=2, **QUIET),
        UsageError, ("choose one",)),
    api("max-points-negative", lambda tmp: sw.sweep("epsc", {"mg_mM": [1]}, tmp, max_points=-1,
                                                    **QUIET), UsageError, ("max_points", ">= 0")),
    api("out-is-a-file", lambda tmp: sw.sweep("epsc", {"mg_mM": [1]}, tmp / "f", **QUIET),
        OutputError, ("f", "not a directory")),
]


@pytest.mark.parametrize("call, exception, names", SWEEP_API)
def test_api_refuses_bad_grids(call, exception, names, tmp_path):
    (tmp_path / "f").write_text("a file\n")
    before = tree_hashes(tmp_path)
    check_api(lambda: call(tmp_path), exception, names)
    assert tree_hashes(tmp_path) == before
