"""A 64-point synsim sweep, serial against a 2-worker Dask LocalCluster, in one run.

The grid: `pairing` (a presynaptic train with the postsynaptic side clamped) over 8 Mg2+
concentrations x 8 clamp potentials, `--pulses` pulses per point (about 0.4-0.5 s of work per
point at the default 2000 on the 2-core VM). Serial runs the points in this process (Dask's
synchronous scheduler); the cluster runs them on `synsim.sweep.local_cluster`, the cluster that
`sweep(workers=N)` starts (one single-threaded worker process per core). Each variant writes its
own sweep folder, the stores are checked to be identical, and the wall times (the cluster's start
apart) and their ratio go to JSON with a bar figure beside it. The machine is shared and noisy:
serial and cluster alternate `--repeats` times and the median ratio is the headline, every
repeat in the JSON. Beside them, the same points on a plain `ProcessPoolExecutor` of as many
single-threaded processes (no Dask): what this machine allows that many processes at all, so
that Dask's own cost is the gap between the two.

    python benchmarks/sweep_speed.py [--workers 2] [--pulses 2000] [--repeats 3] [--out PATH]
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

REPO = Path(__file__).resolve().parents[1]
GRID = {"mg_mM": list(np.round(np.linspace(0.0, 2.1, 8), 3)),
        "v_clamp_mV": [-70.0, -50.0, -40.0, -30.0, -20.0, -10.0, 0.0, 10.0]}


def timed_sweep(out: Path, pulses: int, **where) -> tuple[float, object]:
    from synsim.sweep import sweep

    start = time.perf_counter()
    ds = sweep("pairing", GRID, out, settings={"n_pulses": pulses}, progress=False,
               log=lambda line: None, **where)
    return time.perf_counter() - start, ds


def timed_pool(out: Path, pulses: int, workers: int) -> float:
    """The same points on a plain process pool (no Dask): the machine's own ceiling for
    `workers` single-threaded processes, worker start and imports included as for Dask's."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from synsim.sweep import POINTS, SINGLE_THREAD_ENV, _compute_and_write, plan

    spec = plan("pairing", GRID, {"n_pulses": pulses})
    (out / POINTS).mkdir(parents=True)
    saved = {k: os.environ.get(k) for k in SINGLE_THREAD_ENV}
    os.environ.update(dict.fromkeys(SINGLE_THREAD_ENV, "1"))  # what the new processes inherit
    try:
        start = time.perf_counter()
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            list(pool.map(_compute_and_write, [spec] * spec.n_points,
                          [str(out)] * spec.n_points, range(spec.n_points)))
        return time.perf_counter() - start
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python benchmarks/sweep_speed.py",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--pulses", type=int, default=2000)
    p.add_argument("--repeats", type=int, default=3,
                   help="serial and cluster sweeps alternate this many times (default 3)")
    p.add_argument("--out", type=Path, default=REPO / "benchmarks/results/sweep_speed.json")
    args = p.parse_args(argv)
    from distributed import Client

    from synsim.files import atomic_path, write_json
    from synsim.sweep import local_cluster

    runs, identical = [], True
    for repeat in range(args.repeats):
        with tempfile.TemporaryDirectory() as tmp:
            serial_s, serial = timed_sweep(Path(tmp) / "serial", args.pulses)
            start = time.perf_counter()
            with local_cluster(args.workers, dashboard=False) as cluster:  # synsim.sweep's own
                started_s = time.perf_counter() - start
                with Client(cluster) as client:
                    cluster_s, clustered = timed_sweep(Path(tmp) / "cluster", args.pulses,
                                                       scheduler=client)
            pool_s = timed_pool(Path(tmp) / "pool", args.pulses, args.workers)
            identical &= all(np.array_equal(serial[v].values, clustered[v].values,
                                            equal_nan=True) for v in serial.data_vars)
        runs.append({"serial_s": serial_s, "cluster_start_s": started_s, "cluster_s": cluster_s,
                     "pool_s": pool_s, "speedup": serial_s / cluster_s,
                     "pool_speedup": serial_s / pool_s,
                     "speedup_with_start": serial_s / (cluster_s + started_s)})
        print(f"repeat {repeat + 1}: serial {serial_s:.1f} s, cluster {cluster_s:.1f} s "
              f"(+{started_s:.1f} s start): x{runs[-1]['speedup']:.2f}; plain process pool "
              f"{pool_s:.1f} s: x{runs[-1]['pool_speedup']:.2f}", flush=True)
    n = int(np.prod([len(v) for v in GRID.values()]))
    median = {k: float(np.median([r[k] for r in runs])) for k in runs[0]}
    report = {"points": n, "grid": GRID, "protocol": "pairing", "n_pulses": args.pulses,
              "workers": args.workers, "repeats": runs, "median": median,
              "speedup": median["speedup"], "speedup_with_start": median["speedup_with_start"],
              "pool_speedup": median["pool_speedup"],
              "speedup_range": [min(r["speedup"] for r in runs),
                                max(r["speedup"] for r in runs)],
              "identical_stores": identical,
              "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                          "python": platform.python_version(),
                          "load_average": os.getloadavg()}}
    write_json(args.out, report)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4, 2.5))
    ax.bar(["serial", f"LocalCluster\n{args.workers} workers"],
           [median["serial_s"], median["cluster_s"]], color=["#0072B2", "#E69F00"])
    for i, key in enumerate(("serial_s", "cluster_s")):
        ax.plot([i] * len(runs), [r[key] for r in runs], "k.", ms=4)
    ax.set_ylabel("wall time (s)")
    ax.set_title(f"{n} points: x{report['speedup']:.2f} (median of {len(runs)})")
    fig.tight_layout()
    with atomic_path(args.out.with_suffix(".png")) as tmp:
        fig.savefig(tmp, format="png", dpi=200)
    print(f"median speed-up x{report['speedup']:.2f} (x{report['speedup_with_start']:.2f} with "
          f"the cluster's start; range {report['speedup_range'][0]:.2f}-"
          f"{report['speedup_range'][1]:.2f}); a plain process pool: "
          f"x{report['pool_speedup']:.2f}; identical stores: {identical}; wrote {args.out}")
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())
