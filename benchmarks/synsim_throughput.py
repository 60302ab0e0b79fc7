"""Synapse-steps per second of every synsim kernel against Brian2, same model, same protocol, same
float64 accuracy; writes JSON and a PNG beside it (docs/performance.md).

Protocol: N synapses from 100 presynaptic sources (regular 50 Hz trains, staggered) onto 100
postsynaptic neurons clamped at -10 mV, so calcium crosses both thresholds and rho moves; exact
discretisation, dt = 0.1 ms, nothing recorded but the silencing/unsilencing events. Every run's
final calcium and rho and its events are compared with the reference step (synsim numpy float64).
Compile times are reported apart from run times: Brian2's build, numba's first-call compilation
(in a fresh process with an empty cache) and its cache load (in a second process). A STREAM-like
copy bandwidth is measured in the same run; each row reports the bandwidth it achieved (rate x
the bytes its kernel moves per synapse-step) and the bandwidth the reference step would need for
the same rate, both as fractions of it.

    python benchmarks/synsim_throughput.py                      # make bench: N = 1e3 ... 1e7
    python benchmarks/synsim_throughput.py --quick              # smoke run (about a minute)
    python benchmarks/synsim_throughput.py --sizes 1e5 1e6 --backends synsim-blocked-numba-f64 \\
        brian2-cpp_standalone
    python benchmarks/synsim_throughput.py --device cuda        # torch rows on the GPU (skipped
                                                                # cleanly where CUDA is missing)
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from synsim import blocked, files  # noqa: E402
from synsim.backend import Backend  # noqa: E402
from synsim.model import Circuit, Stimulus  # noqa: E402
from synsim.params import ModelParams  # noqa: E402
from synsim.simulate import simulate  # noqa: E402

N_SOURCES = N_POST = 100
PERIOD_STEPS = 200  # 50 Hz at dt = 0.1 ms
STEP_BYTES = {"float64": 4 * 8 + 2 * 8 + 2, "float32": 4 * 4 + 2 * 8 + 2}  # docs/model.md §8.2
FLOPS_PER_SYN_STEP = 8  # rho: 3 (insertion) + 2 (removal) both evaluated, calcium: 3

# name: backend, dtype, kernel, numba threads (None: all), torch.compile, largest default N
SYNSIM = {
    "synsim-blocked-numba-f64": ("numpy", "float64", "blocked-numba", None, False, 1e7),
    "synsim-blocked-numba-f64-1thread": ("numpy", "float64", "blocked-numba", 1, False, 1e7),
    "synsim-step-numpy-f64": ("numpy", "float64", "step", None, False, 1e7),
    "synsim-blocked-numpy-f64": ("numpy", "float64", "blocked-numpy", None, False, 1e6),
    "synsim-blocked-torch-f64": ("torch", "float64", "blocked-torch", None, False, 1e6),
    "synsim-step-torch-f64": ("torch", "float64", "step", None, False, 1e6),
    "synsim-blocked-torch-f32": ("torch", "float32", "blocked-torch", None, False, 1e6),
    "synsim-step-torch-compiled-f64": ("torch", "float64", "step", None, True, 1e6),
    "synsim-step-torch-compiled-f32": ("torch", "float32", "step", None, True, 1e6),
}
BRIAN2 = {"brian2-cpp_standalone": 1e7, "brian2-cython": 1e6, "brian2-numpy": 1e5}
DEFAULT = ["synsim-blocked-numba-f64", "synsim-blocked-numba-f64-1thread", "synsim-step-numpy-f64",
           "synsim-blocked-numpy-f64", "synsim-blocked-torch-f64", "synsim-step-torch-f64",
           "brian2-cpp_standalone"]
SIZES = [1e3, 1e4, 1e5, 1e6, 1e7]
# --device cuda (benchmarks/gpu_check.py gives it 150 s): the torch rows on the GPU, the numba
# kernel on the host's CPUs for comparison, and sizes up to 1e8
CUDA_DEFAULT = ["synsim-blocked-torch-f64", "synsim-blocked-torch-f32", "synsim-step-torch-f64",
                "synsim-blocked-numba-f64"]
CUDA_SIZES = [1e4, 1e5, 1e6, 1e7, 1e8]
CUDA_SIZES_MAX = 1e8


def build(n_syn: int, n_steps: int):
    """The benchmark circuit: synapse i from source i % 100 onto neuron (i // 100) % 100."""
    idx = np.arange(n_syn)
    n_src, n_post = min(N_SOURCES, n_syn), min(N_POST, n_syn)
    circuit = Circuit(syn_source=idx % n_src, syn_post=(idx // n_src) % n_post, n_sources=n_src,
                      n_post=n_post, v_hold_mV=-10.0, rho0=0.3)
    del idx
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


def machine() -> dict:
    info = {"platform": platform.platform(), "python": sys.version.split()[0],
            "numpy": np.__version__, "cpus": os.cpu_count()}
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
        info["cpu"] = next(line.split(":", 1)[1].strip() for line in cpuinfo.splitlines()
                           if line.startswith("model name"))
        flags = next(line for line in cpuinfo.splitlines() if line.startswith("flags"))
        info["simd"] = [f for f in ("avx2", "avx512f", "fma") if f" {f}" in flags]
        mem = Path("/proc/meminfo").read_text().splitlines()
        info["memory_GiB"] = round(int(mem[0].split()[1]) / 2 ** 20, 1)
    except (OSError, StopIteration, ValueError, IndexError):
        pass
    try:
        info["load_average_at_start"] = os.getloadavg()
    except OSError:
        pass
    try:
        import numba

        info["numba"] = numba.__version__
        info["numba_threads"] = numba.get_num_threads()
    except ImportError:
        info["numba"] = None
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
        info["cuda"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except ImportError:
        info["torch"] = None
    try:
        import brian2

        info["brian2"] = brian2.__version__
    except ImportError:
        info["brian2"] = None
    return info


def mem_available_bytes() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable"):
                return int(line.split()[1]) * 1024.0
    except (OSError, ValueError):
        pass
    return np.inf


# --- numba compile time and cache, in fresh processes ------------------------------------------

PROBE = r"""
import json, sys, time
t0 = time.perf_counter()
sys.path.insert(0, sys.argv[1])
sys.path.insert(0, sys.argv[1] + "/benchmarks")
from synsim.simulate import simulate
from synsim.model import Circuit, Stimulus
from synsim import _blocked_numba as K
from synsim_throughput import build
out = {"import_s": time.perf_counter() - t0}
circuit, stim = build(1000, 300)
lif = Circuit(syn_source=[0, 0], syn_post=[0, 0], n_sources=1, n_post=1, post_mode="lif")
lif_stim = Stimulus(n_steps=300, release_step=[3], release_source=[0])
for name, run in (("clamp", lambda: simulate(circuit, stim, record=(), kernel="blocked-numba")),
                  ("lif", lambda: simulate(lif, lif_stim, kernel="blocked-numba"))):
    t0 = time.perf_counter(); run(); first = time.perf_counter() - t0
    t0 = time.perf_counter(); run(); second = time.perf_counter() - t0
    out[name + "_first_call_s"], out[name + "_second_call_s"] = first, second
kernels = (K.source_chunk, K.bap_chunk, K.block_used, K.clamp_chunk, K.neuron_chunk,
           K._local_order, K._members, K._lower_bound)
out["cache_hits"] = sum(sum(f.stats.cache_hits.values()) for f in kernels)
out["cache_misses"] = sum(sum(f.stats.cache_misses.values()) for f in kernels)
print(json.dumps(out))
"""


def numba_compile_times() -> dict:
    """First-call compile (empty cache) and cache load (second process, same cache)."""
    if blocked.numba_kernels() is None:
        return {"skipped": "numba is not installed"}
    result = {}
    with tempfile.TemporaryDirectory(prefix="synsim-numba-cache-") as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache, "OMP_WAIT_POLICY": "PASSIVE"}
        for label in ("fresh_process", "second_process"):
            out = subprocess.run([sys.executable, "-c", PROBE, str(ROOT)], env=env,
                                 capture_output=True, text=True, timeout=900)
            if out.returncode:
                return {"error": out.stderr.strip().splitlines()[-1:]}
            result[label] = json.loads(out.stdout.strip().splitlines()[-1])
    fresh, second = result["fresh_process"], result["second_process"]
    for path in ("clamp", "lif"):  # compile = first call - a call with everything loaded
        result[f"{path}_compile_s"] = fresh[f"{path}_first_call_s"] - fresh[f"{path}_second_call_s"]
        result[f"{path}_cache_load_s"] = (second[f"{path}_first_call_s"]
                                          - second[f"{path}_second_call_s"])
    result["recompiled_in_second_process"] = second["cache_misses"] > 0
    return result


# --- timing ------------------------------------------------------------------------------------

def time_synsim(name, circuit, stim, params, device):
    backend_name, dtype, kernel, threads, compiled, _ = SYNSIM[name]
    backend = Backend(backend_name, dtype, device if backend_name == "torch" else "cpu")
    compile_s = 0.0
    if compiled:  # compile on the same shapes, then time a fresh run
        t0 = time.perf_counter()
        simulate(circuit, Stimulus(n_steps=2), params, backend, record=(), compile=True,
                 kernel=kernel)
        compile_s = time.perf_counter() - t0
    saved = None
    if threads is not None:
        import numba

        saved = numba.get_num_threads()
        numba.set_num_threads(threads)
    cuda = backend.name == "torch" and device.startswith("cuda")
    if cuda:
        import torch

        torch.cuda.reset_peak_memory_stats()
    try:
        runs, ds = [], None
        while len(runs) < 3 and sum(runs) < 1.0:  # best of up to 3 for short runs
            t0 = time.perf_counter()
            ds = simulate(circuit, stim, params, backend, record=(), compile=compiled,
                          kernel=kernel)
            runs.append(time.perf_counter() - t0)
    finally:
        if saved is not None:
            import numba

            numba.set_num_threads(saved)
    timing = {"compile_s": compile_s, "run_s": min(runs), "repeats": len(runs),
              "kernel": ds.attrs["kernel"]}
    if cuda:
        import torch

        timing["gpu_peak_bytes_per_synapse"] = torch.cuda.max_memory_allocated() / circuit.n_syn
    return ds, timing


def time_brian2(name, circuit, stim, params, build_root: Path):
    from synsim.reference.brian2 import simulate_brian2

    target = name.split("-", 1)[1]
    build_dir = build_root / target  # one project per target: make rebuilds only what changed
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


def kernel_bytes_per_syn_step(kernel: str, dtype: str, n_steps: int, profile: dict | None) -> float:
    """DRAM bytes a kernel moves per synapse-step (model, not a measurement)."""
    if kernel.startswith("blocked-numba"):
        # per chunk each synapse's c and rho (read + write) and its two int64 indices (read)
        # cross memory once; the per-source tables stay in cache
        chunk = (profile or {}).get("chunk_steps") or min(n_steps, blocked.MAX_CHUNK)
        return (4 * 8 + 2 * 8) / chunk
    return STEP_BYTES[dtype]  # the step and the per-step array code stream the state every step


def max_rel_error(ds, ref) -> float:
    errs = []
    for name in ("calcium_final", "ampa_final"):
        peak = max(np.abs(ref[name].values).max(), 1e-300)
        errs.append(float(np.abs(ds[name].values - ref[name].values).max() / peak))
    return max(errs)


def same_events(ds, ref) -> bool:
    return all(np.array_equal(ds[v].values, ref[v].values)
               for v in ("event_time", "event_synapse", "event_kind"))


def memory_per_synapse(n: int, kernels=("blocked-numba", "step")) -> dict:
    """Peak memory traced (tracemalloc: numpy allocations) per synapse at N = n: the circuit, and
    what simulate adds on top of it, for a short run (memory does not grow with the steps)."""
    out = {}
    for kernel in kernels:
        gc.collect()
        tracemalloc.start()
        circuit, stim = build(n, 50)
        gc.collect()
        circ = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        ds = simulate(circuit, stim, record=(), kernel=kernel)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        out[kernel] = {"n_synapses": n, "circuit_bytes_per_synapse": circ / n,
                       "simulate_peak_bytes_per_synapse": (peak - circ) / n,
                       "total_peak_bytes_per_synapse": peak / n}
        del ds, circuit, stim
    if "blocked-numba" in out:  # numba's own scratch (not traced): one block per worker thread
        import numba

        out["blocked-numba"]["untraced_scratch_bytes"] = numba.get_num_threads() * 16384 * 49
    return out


def profile_blocked(n: int, n_steps: int, params) -> dict:
    """Where the time of one blocked-numba run goes (seconds per phase)."""
    from synsim.simulate import validate_run

    circuit, stim = build(n, n_steps)
    rec = validate_run(circuit, stim, (), np.zeros(0, np.int64), 1)
    prof = {}
    t0 = time.perf_counter()
    blocked.run("blocked-numba", circuit, stim, params, Backend(), (), rec, 1, profile=prof)
    prof["total_s"] = time.perf_counter() - t0
    prof["n_synapses"], prof["n_steps"] = n, n_steps
    return prof


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    names = sorted({r["backend"] for r in results["runs"] if "synapse_steps_per_s" in r})
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, name in enumerate(names):
        rows = sorted((r for r in results["runs"] if r["backend"] == name
                       and "synapse_steps_per_s" in r), key=lambda r: r["n_synapses"])
        style = dict(ls="--" if name.startswith("brian2") else "-", marker="o",
                     color=colours[i % len(colours)], label=name)
        ax.loglog([r["n_synapses"] for r in rows], [r["synapse_steps_per_s"] for r in rows],
                  **style)
        sp = [(r["n_synapses"], r["speedup_vs_cpp_standalone"]) for r in rows
              if r.get("speedup_vs_cpp_standalone")]
        if sp and not name.startswith("brian2"):
            ax2.semilogx(*zip(*sp), **style)
    bw = results["machine"]["copy_bandwidth_GBps"] * 1e9 / STEP_BYTES["float64"]
    ax.axhline(bw, color="grey", lw=0.8, ls=":")
    ax.text(ax.get_xlim()[0], bw, " copy bandwidth / 50 B (step bound)", va="bottom", fontsize=7)
    ax.set_xlabel("synapses N")
    ax.set_ylabel("synapse-steps / s")
    ax.legend(fontsize=7)
    ax.set_title(results["machine"].get("cpu", "")[:60], fontsize=8)
    ax2.axhline(10, color="grey", lw=0.8, ls=":")
    ax2.axhline(1, color="black", lw=0.8)
    ax2.set_xlabel("synapses N")
    ax2.set_ylabel("speed-up vs Brian2 cpp_standalone")
    ax2.set_yscale("log")
    fig.tight_layout()
    fig.savefig(path, dpi=150)
    plt.close(fig)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="+", type=float, default=None,
                        help=f"synapse counts (default {SIZES}; with --device cuda {CUDA_SIZES})")
    parser.add_argument("--budget", type=float, default=2e8,
                        help="synapse-steps per measurement (n_steps = budget / N, 200..20000)")
    parser.add_argument("--backends", nargs="+", default=None,
                        help=f"any of {sorted(SYNSIM) + sorted(BRIAN2)}, or 'all' (default "
                             f"{DEFAULT}; with --device cuda {CUDA_DEFAULT})")
    parser.add_argument("--device", default="cpu", help="torch device of the torch rows: cpu, cuda")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: N = 1e3 .. 1e5, budget 2e7")
    parser.add_argument("--all-sizes", action="store_true",
                        help="run every backend at every size (default: slow rows stop at 1e6)")
    parser.add_argument("--no-compile-probe", action="store_true",
                        help="skip the numba compile / cache measurement (two subprocesses)")
    parser.add_argument("--out", type=Path,
                        default=ROOT / "benchmarks/results/synsim_throughput.json")
    args = parser.parse_args(argv)
    on_gpu = args.device != "cpu"
    sizes_given = args.sizes is not None
    args.sizes = args.sizes or (CUDA_SIZES if on_gpu else SIZES)
    args.backends = args.backends or (CUDA_DEFAULT if on_gpu else DEFAULT)
    if args.backends == ["all"]:
        args.backends = list(SYNSIM) + list(BRIAN2)
    for b in args.backends:
        if b not in SYNSIM and b not in BRIAN2:
            parser.error(f"unknown backend {b!r}: choose from {sorted(SYNSIM) + sorted(BRIAN2)}")
    if args.quick:
        args.budget = 2e7
        if not sizes_given:
            args.sizes = args.sizes[:3]
    params = ModelParams()
    info = machine()
    skipped = []
    if args.device != "cpu":
        import torch

        if args.device.startswith("cuda") and not torch.cuda.is_available():
            msg = f"--device {args.device}: CUDA is not available here; torch rows skipped"
            print(msg)
            skipped.append({"backends": "torch rows", "reason": msg})
            args.backends = [b for b in args.backends
                             if not (b in SYNSIM and SYNSIM[b][0] == "torch")]
    if info.get("brian2") is None and any(b in BRIAN2 for b in args.backends):
        skipped.append({"backends": "brian2", "reason": "brian2 is not installed"})
        args.backends = [b for b in args.backends if b not in BRIAN2]
    if blocked.numba_kernels() is None:
        skipped.append({"backends": "blocked-numba", "reason": "numba is not installed"})
        args.backends = [b for b in args.backends if "numba" not in b]

    bandwidth = copy_bandwidth_gbs()
    info["copy_bandwidth_GBps"] = bandwidth
    print(f"{info.get('cpu', '?')}; {info['cpus']} CPUs; copy bandwidth {bandwidth:.1f} GB/s; "
          f"load {info.get('load_average_at_start')}", flush=True)
    results = {"machine": info, "protocol": __doc__.split("\n\n")[1].replace("\n", " "),
               "bytes_per_synapse_step_step_kernel": STEP_BYTES, "skipped": skipped, "runs": []}
    if not args.no_compile_probe and any("numba" in b for b in args.backends):
        results["numba_compile"] = numba_compile_times()
        print("numba compile:", json.dumps({k: v for k, v in results["numba_compile"].items()
                                            if not isinstance(v, dict)}), flush=True)
    if any("numba" in b for b in args.backends):  # load the cache before timing anything
        t0 = time.perf_counter()
        c0, s0 = build(1000, 300)
        simulate(c0, s0, params, record=(), kernel="blocked-numba")
        results["numba_cache_load_in_this_process_s"] = time.perf_counter() - t0

    with tempfile.TemporaryDirectory(prefix="synsim-bench-") as tmp:
        for size in args.sizes:
            n = int(size)
            n_steps = int(np.clip(args.budget / n, 200, 20000))
            circuit, stim = build(n, n_steps)
            ref = None
            cpp_rate = None
            rows = []
            for name in args.backends:
                cuda_row = name in SYNSIM and SYNSIM[name][0] == "torch" and args.device != "cpu"
                limit = SYNSIM[name][5] if name in SYNSIM else BRIAN2[name]
                if cuda_row:
                    limit = CUDA_SIZES_MAX
                if n > limit and not args.all_sizes:
                    rows.append({"backend": name, "n_synapses": n,
                                 "skipped": f"N > {limit:.0e} (slow row; --all-sizes runs it)"})
                    continue
                if name.startswith("brian2"):
                    need = 4.0 * n * n_steps + 300.0 * n  # its per-step functional monitor
                    if need > 0.6 * mem_available_bytes():
                        rows.append({"backend": name, "n_synapses": n, "skipped":
                                     f"needs about {need / 1e9:.0f} GB (functional monitor)"})
                        continue
                    ds, timing = time_brian2(name, circuit, stim, params, Path(tmp))
                    dtype, kernel = "float64", name
                else:
                    ds, timing = time_synsim(name, circuit, stim, params, args.device)
                    dtype, kernel = SYNSIM[name][1], timing["kernel"]
                if ref is None and kernel in ("step", "blocked-numba") and dtype == "float64" \
                        and SYNSIM.get(name, ("numpy",))[0] == "numpy":
                    ref = ds  # the step and blocked-numba are bitwise equal (tests)
                rate = n * n_steps / timing["run_s"]
                moved = kernel_bytes_per_syn_step(kernel, dtype, n_steps,
                                                  {"chunk_steps": min(n_steps, blocked.MAX_CHUNK)})
                row = {"backend": name, "kernel": kernel, "dtype": dtype, "n_synapses": n,
                       "n_steps": n_steps, **timing, "synapse_steps_per_s": rate,
                       "model_bytes_per_synapse_step": moved,
                       "achieved_GBps": rate * moved / 1e9,
                       "fraction_of_copy_bandwidth": rate * moved / 1e9 / bandwidth,
                       "step_equivalent_fraction_of_copy_bandwidth":
                           rate * STEP_BYTES["float64"] / 1e9 / bandwidth,
                       "GFLOPs": rate * FLOPS_PER_SYN_STEP / 1e9,
                       "max_rel_error_vs_reference": None if ref is None
                       else max_rel_error(ds, ref),
                       "events_identical_to_reference": None if ref is None
                       else same_events(ds, ref),
                       "events": int(ds.sizes.get("event", 0))}
                if name == "brian2-cpp_standalone":
                    cpp_rate = rate
                rows.append(row)
                err = row["max_rel_error_vs_reference"]
                print(f"N={n:>9} {name:<34} {rate:10.3e} syn-steps/s  run {timing['run_s']:7.3f} s"
                      f"  compile {timing['compile_s']:6.1f} s  err "
                      f"{'-' if err is None else f'{err:.1e}'}", flush=True)
                del ds
            for row in rows:
                if cpp_rate and "synapse_steps_per_s" in row:
                    row["speedup_vs_cpp_standalone"] = row["synapse_steps_per_s"] / cpp_rate
            results["runs"].extend(rows)
            del circuit, stim, ref
            gc.collect()

    summary = {}
    for n in sorted({r["n_synapses"] for r in results["runs"]}):
        rows = {r["backend"]: r for r in results["runs"] if r["n_synapses"] == n
                and "synapse_steps_per_s" in r}
        if "brian2-cpp_standalone" not in rows:
            continue
        ok = [r for b, r in rows.items() if b.startswith("synsim") and r["dtype"] == "float64"
              and (r["max_rel_error_vs_reference"] or 0.0) <= 1e-9
              and r["events_identical_to_reference"] is not False]
        best = max(ok, key=lambda r: r["synapse_steps_per_s"], default=None)
        if best:
            summary[str(n)] = {"best_synsim_float64": best["backend"],
                               "speedup_vs_cpp_standalone": best["speedup_vs_cpp_standalone"],
                               "brian2_cpp_standalone_synapse_steps_per_s":
                                   rows["brian2-cpp_standalone"]["synapse_steps_per_s"]}
    results["speedup_vs_brian2_cpp_standalone"] = summary
    for n, s in summary.items():
        print(f"N={n}: {s['best_synsim_float64']} is {s['speedup_vs_cpp_standalone']:.1f}x "
              "Brian2 cpp_standalone", flush=True)

    largest = max((r["n_synapses"] for r in results["runs"] if "synapse_steps_per_s" in r
                   and r["backend"].startswith("synsim-blocked-numba")), default=None)
    if largest:
        largest = min(largest, 10 ** 7)  # the memory probe's own run stays short
        results["memory"] = memory_per_synapse(largest)
        for k, m in results["memory"].items():
            print(f"memory at N={largest:.0e} ({k}): circuit {m['circuit_bytes_per_synapse']:.1f}"
                  f" + simulate {m['simulate_peak_bytes_per_synapse']:.1f} = "
                  f"{m['total_peak_bytes_per_synapse']:.1f} B per synapse", flush=True)
        n_prof = min(largest, 10 ** 6)
        results["profile_blocked_numba"] = profile_blocked(
            n_prof, int(np.clip(args.budget / n_prof, 200, 20000)), params)
    try:
        info["load_average_at_end"] = os.getloadavg()
    except OSError:
        pass
    args.out.parent.mkdir(parents=True, exist_ok=True)
    files.write_json(args.out, results)
    png = args.out.with_suffix(".png")
    plot(results, png)
    print(f"wrote {args.out} and {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
