"""Synapse-steps per second: synsim (numpy; torch eager and compiled) against Brian2 (numpy, cython,
cpp_standalone), same model, same protocol, same float64 accuracy; writes JSON.

Protocol: N synapses from 100 presynaptic sources (regular 50 Hz trains, staggered) onto 100
postsynaptic neurons clamped at -10 mV, so calcium crosses both thresholds and rho moves; exact
discretisation, dt = 0.1 ms, nothing recorded but the silencing/unsilencing events. Every backend's
final calcium and rho are compared with synsim-numpy (float64). Brian2's compile time is reported
apart from its run time. A STREAM-like copy bandwidth is measured in the same run, and achieved
bandwidth is reported as a fraction of it (docs/model.md §8.4).

    python benchmarks/synsim_throughput.py                      # N = 1e3 ... 1e6, all backends
    python benchmarks/synsim_throughput.py --sizes 1e4 --quick  # a smoke run
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from synsim import files
from synsim.backend import Backend
from synsim.model import Circuit, Stimulus
from synsim.params import ModelParams
from synsim.simulate import simulate

N_SOURCES = N_POST = 100
PERIOD_STEPS = 200  # 50 Hz at dt = 0.1 ms
# bytes moved per synapse-step by the fused kernel: c and rho read + written (float64), two int64
# indices read, the functional flag read + written
BYTES_PER_SYN_STEP = {"float64": 4 * 8 + 2 * 8 + 2, "float32": 4 * 4 + 2 * 8 + 2}

SYNSIM_BACKENDS = {
    "synsim-numpy-f64": (Backend("numpy", "float64"), False),
    "synsim-torch-f64": (Backend("torch", "float64"), False),
    "synsim-torch-compiled-f64": (Backend("torch", "float64"), True),
    "synsim-torch-compiled-f32": (Backend("torch", "float32"), True),
}
BRIAN2_TARGETS = ("numpy", "cython", "cpp_standalone")


def build(n_syn: int, n_steps: int):
    idx = np.arange(n_syn)
    n_src, n_post = min(N_SOURCES, n_syn), min(N_POST, n_syn)
    circuit = Circuit(syn_source=idx % n_src, syn_post=(idx // n_src) % n_post, n_sources=n_src,
                      n_post=n_post, v_hold_mV=-10.0, rho0=0.3)
    steps, sources = [], []
    for j in range(n_src):
        s = np.arange((j * 7) % PERIOD_STEPS, n_steps, PERIOD_STEPS)
        steps.append(s)
        sources.append(np.full(s.size, j))
    stim = Stimulus(n_steps=n_steps, release_step=np.concatenate(steps),
                    release_source=np.concatenate(sources))
    return circuit, stim


def copy_bandwidth_gbs(n_bytes: int = 400_000_000, repeats: int = 5) -> float:
    """STREAM-like copy: bytes read + written per second, best of `repeats`."""
    a = np.ones(n_bytes // 8)
    b = np.empty_like(a)
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        np.copyto(b, a)
        best = min(best, time.perf_counter() - t0)
    return 2 * a.nbytes / best / 1e9


def time_synsim(name, circuit, stim, params):
    backend, compiled = SYNSIM_BACKENDS[name]
    compile_s = 0.0
    if compiled:  # compile on the same shapes, then time a fresh run
        t0 = time.perf_counter()
        simulate(circuit, Stimulus(n_steps=2), params, backend, record=(), compile=True)
        compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    ds = simulate(circuit, stim, params, backend, record=(), compile=compiled)
    run_s = time.perf_counter() - t0
    return ds, {"compile_s": compile_s, "run_s": run_s}


def time_brian2(target, circuit, stim, params, build_root: Path):
    from synsim.reference.brian2 import simulate_brian2

    build_dir = build_root / f"{target}-{circuit.n_syn}"
    t0 = time.perf_counter()
    ds = simulate_brian2(circuit, stim, params, record=(), target=target, build_dir=build_dir)
    first = time.perf_counter() - t0
    if target == "cpp_standalone":
        return ds, {"compile_s": float(ds.attrs.get("brian2_build_s", np.nan)),
                    "run_s": float(ds.attrs.get("brian2_run_s", np.nan)), "first_call_s": first}
    if target == "cython":  # the second call finds every extension in the cache
        t0 = time.perf_counter()
        ds = simulate_brian2(circuit, stim, params, record=(), target=target, build_dir=build_dir)
        run = time.perf_counter() - t0
        return ds, {"compile_s": max(first - run, 0.0), "run_s": run, "first_call_s": first}
    return ds, {"compile_s": 0.0, "run_s": first, "first_call_s": first}


def max_rel_error(ds, ref) -> float:
    errs = []
    for name in ("calcium_final", "ampa_final"):
        peak = max(np.abs(ref[name].values).max(), 1e-300)
        errs.append(float(np.abs(ds[name].values - ref[name].values).max() / peak))
    return max(errs)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="+", type=float, default=[1e3, 1e4, 1e5, 1e6])
    parser.add_argument("--budget", type=float, default=2e8,
                        help="synapse-steps per measurement (n_steps = budget / N, 200..20000)")
    parser.add_argument("--backends", nargs="+", default=list(SYNSIM_BACKENDS)
                        + [f"brian2-{t}" for t in BRIAN2_TARGETS])
    parser.add_argument("--quick", action="store_true", help="budget 2e6 (a smoke run)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/synsim_throughput.json"))
    args = parser.parse_args(argv)
    known = set(SYNSIM_BACKENDS) | {f"brian2-{t}" for t in BRIAN2_TARGETS}
    for b in args.backends:
        if b not in known:
            parser.error(f"unknown backend {b!r}: choose from {sorted(known)}")
    budget = 2e6 if args.quick else args.budget
    params = ModelParams()
    import torch

    bandwidth = copy_bandwidth_gbs()
    results = {"machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                           "torch_threads": torch.get_num_threads(), "python": sys.version.split()[0],
                           "torch": torch.__version__, "numpy": np.__version__,
                           "copy_bandwidth_GBps": bandwidth},
               "protocol": __doc__.split("\n\n")[1].replace("\n", " "),
               "bytes_per_synapse_step": BYTES_PER_SYN_STEP, "runs": []}
    try:
        import brian2

        results["machine"]["brian2"] = brian2.__version__
    except ImportError:
        args.backends = [b for b in args.backends if not b.startswith("brian2")]
    print(f"copy bandwidth {bandwidth:.1f} GB/s; torch threads {torch.get_num_threads()}")
    with tempfile.TemporaryDirectory(prefix="synsim-bench-") as tmp:
        for size in args.sizes:
            n = int(size)
            n_steps = int(np.clip(budget / n, 200, 20000))
            circuit, stim = build(n, n_steps)
            ref = None
            for name in args.backends:
                if name.startswith("brian2"):
                    ds, timing = time_brian2(name.split("-", 1)[1], circuit, stim, params, Path(tmp))
                    dtype = "float64"
                else:
                    ds, timing = time_synsim(name, circuit, stim, params)
                    dtype = SYNSIM_BACKENDS[name][0].dtype
                if ref is None and name == "synsim-numpy-f64":
                    ref = ds
                rate = n * n_steps / timing["run_s"]
                row = {"backend": name, "n_synapses": n, "n_steps": n_steps, **timing,
                       "synapse_steps_per_s": rate,
                       "achieved_GBps": rate * BYTES_PER_SYN_STEP[dtype] / 1e9,
                       "max_rel_error_vs_numpy": None if ref is None else max_rel_error(ds, ref),
                       "events": int(ds.sizes.get("event", 0))}
                row["fraction_of_copy_bandwidth"] = row["achieved_GBps"] / bandwidth
                results["runs"].append(row)
                err = row["max_rel_error_vs_numpy"]
                print(f"N={n:>8} {name:<28} {rate:10.3e} syn-steps/s  run {timing['run_s']:7.2f} s"
                      f"  compile {timing['compile_s']:6.1f} s  err {err if err is None else f'{err:.1e}'}",
                      flush=True)
    speedups = {}
    for n in sorted({r["n_synapses"] for r in results["runs"]}):
        rows = {r["backend"]: r for r in results["runs"] if r["n_synapses"] == n}
        cpp = rows.get("brian2-cpp_standalone")
        if cpp:
            best = max((r for b, r in rows.items() if b.startswith("synsim") and
                        (r["max_rel_error_vs_numpy"] or 0) <= 1e-9),
                       key=lambda r: r["synapse_steps_per_s"], default=None)
            if best:
                speedups[str(n)] = {"best_synsim_float64": best["backend"],
                                    "speedup_vs_cpp_standalone":
                                        best["synapse_steps_per_s"] / cpp["synapse_steps_per_s"]}
    results["speedup_vs_brian2_cpp_standalone"] = speedups
    for n, s in speedups.items():
        print(f"N={n}: {s['best_synsim_float64']} is {s['speedup_vs_cpp_standalone']:.2f}x "
              "Brian2 cpp_standalone")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    files.write_json(args.out, results)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
