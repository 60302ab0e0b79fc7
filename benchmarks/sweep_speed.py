"""A 64-point synsim sweep, serial against a 2-worker Dask LocalCluster, in one run.

The grid: `pairing` (a presynaptic train with the postsynaptic side clamped) over 8 Mg2+
concentrations x 8 clamp potentials, `--pulses` pulses per point (about 0.4-0.5 s of work per
point at the default 2000 on the 2-core VM). Serial runs the points in this process (Dask's
synchronous scheduler); the cluster runs them on `--workers` worker processes of one thread each
(OpenMP, BLAS and numba limited to one thread, as `synsim.sweep` does). Each variant writes
its own sweep folder, the stores are checked to be identical, and the wall times (cluster start
included, and apart) and their ratio go to JSON with a bar figure beside it.

    python benchmarks/sweep_speed.py [--workers 2] [--pulses 2000] [--out PATH]
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


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python benchmarks/sweep_speed.py",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--pulses", type=int, default=2000)
    p.add_argument("--out", type=Path, default=REPO / "benchmarks/results/sweep_speed.json")
    args = p.parse_args(argv)
    from distributed import LocalCluster

    from synsim.files import atomic_path, write_json
    from synsim.sweep import SINGLE_THREAD_ENV

    with tempfile.TemporaryDirectory() as tmp:
        serial_s, serial = timed_sweep(Path(tmp) / "serial", args.pulses)
        start = time.perf_counter()
        with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                          dashboard_address=None,  # one core per worker, as synsim.sweep's own
                          env=dict.fromkeys(SINGLE_THREAD_ENV, "1")) as cluster:
            started_s = time.perf_counter() - start
            from distributed import Client

            with Client(cluster) as client:
                cluster_s, clustered = timed_sweep(Path(tmp) / "cluster", args.pulses,
                                                   scheduler=client)
        identical = all(np.array_equal(serial[v].values, clustered[v].values, equal_nan=True)
                        for v in serial.data_vars)
    n = int(np.prod([len(v) for v in GRID.values()]))
    report = {"points": n, "grid": GRID, "protocol": "pairing", "n_pulses": args.pulses,
              "workers": args.workers, "serial_s": serial_s, "cluster_start_s": started_s,
              "cluster_s": cluster_s, "speedup": serial_s / cluster_s,
              "speedup_with_start": serial_s / (cluster_s + started_s),
              "points_per_s": {"serial": n / serial_s, "cluster": n / cluster_s},
              "identical_stores": identical,
              "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                          "python": platform.python_version(),
                          "load_average": os.getloadavg()}}
    write_json(args.out, report)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4, 2.5))
    ax.bar(["serial", f"LocalCluster\n{args.workers} workers"], [serial_s, cluster_s],
           color=["#0072B2", "#E69F00"])
    ax.set_ylabel("wall time (s)")
    ax.set_title(f"{n} points: x{report['speedup']:.2f}")
    fig.tight_layout()
    with atomic_path(args.out.with_suffix(".png")) as tmp:
        fig.savefig(tmp, format="png", dpi=200)
    print(f"serial {serial_s:.1f} s, cluster {cluster_s:.1f} s (+{started_s:.1f} s start): "
          f"x{report['speedup']:.2f}; identical stores: {identical}; wrote {args.out}")
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())
