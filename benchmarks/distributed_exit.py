"""How often a two-process artsy run ends with anything but exit code 0: the check behind
`artsy.run.exit_process` (docs/architecture.md §5.8).

Each launch is one tiny-synthetic run on two gloo ranks stopped after one task (`--stop-after 1`)
and its two-rank `--resume`, started with the environment torchrun gives its workers; every
rank's exit code is counted. Before exit_process, 3 of 24 launches died by SIGABRT ("terminate
called without an active exception") as the interpreter shut down; writes JSON.

    python benchmarks/distributed_exit.py [--launches 20] [--out PATH]
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RUN = ["tiny-synthetic", "train.augment=false", "adapter.dropout=0", "train.batch_size=47",
       "train.epochs=2"]


def two_ranks(args: list[str]) -> list[tuple[int, str]]:
    """(exit code, last stderr line) of ranks 0 and 1 of one process group running `args`."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "WORLD_SIZE": "2", "LOCAL_WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1",
           "MASTER_PORT": str(port), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1",
           "OMP_WAIT_POLICY": "PASSIVE"}
    procs = [subprocess.Popen([sys.executable, "-m", "artsy.run", *args], cwd=REPO,
                              env={**env, "RANK": str(r), "LOCAL_RANK": str(r)},
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
             for r in range(2)]
    out = []
    for p in procs:
        _, err = p.communicate(timeout=600)
        out.append((p.returncode, (err.strip().splitlines() or [""])[-1]))
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python benchmarks/distributed_exit.py",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--launches", type=int, default=20, help="stop + resume pairs (default 20)")
    p.add_argument("--out", type=Path, default=REPO / "benchmarks/results/distributed_exit.json")
    args = p.parse_args(argv)
    from synsim.files import write_json

    failures, launches = [], 0
    for i in range(args.launches):
        with tempfile.TemporaryDirectory() as tmp:
            for step in ("stop", "resume"):
                run_args = ([*RUN, f"run.out_dir={tmp}", "--stop-after", "1"] if step == "stop"
                            else ["--resume", str(next(Path(tmp).glob("tiny-synthetic-*")))])
                launches += 1
                for rank, (code, last) in enumerate(two_ranks(run_args)):
                    if code != 0:
                        failures.append({"pair": i, "step": step, "rank": rank, "exit": code,
                                         "stderr": last})
        print(f"pair {i + 1}/{args.launches}: {len(failures)} failed ranks so far", flush=True)
    write_json(args.out, {"launches": launches, "ranks": 2 * launches,
                          "failed_ranks": len(failures), "failures": failures})
    print(f"{len(failures)} of {2 * launches} ranks in {launches} two-rank launches exited "
          f"non-zero; wrote {args.out}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
