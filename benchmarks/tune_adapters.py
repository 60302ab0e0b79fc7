"""Choose the adapters' training settings on training data only (issue #11, item 0).

Each setting trains the sub-networks of a config with the `oracle` gate (so routing does not
blur the comparison) and evaluates on `data.holdout` — a seeded share of each class's TRAINING
images — never on the test split. The frozen row (`train.epochs=0`) shows what the sub-networks
add; `feature_cosine` how far E_t moved from E_0. Writes JSON (one entry per setting and seed).

    python benchmarks/tune_adapters.py --config demo --seeds 1993 \
        --setting "train.epochs=0" --setting "train.epochs=2 train.lr=0.01" ...
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from artsy.config import load_config  # noqa: E402
from artsy.runner import start_run  # noqa: E402
from synsim.files import write_json  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def run(config: str, setting: str, seed: int, holdout: float, out_dir: Path) -> dict:
    overrides = ["synapse.gate=oracle", f"data.holdout={holdout}", f"run.seed={seed}",
                 f"data.seed={seed}", f"run.out_dir={out_dir}", "run.save_checkpoints=false",
                 *setting.split()]
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        result = start_run(load_config(config, overrides), progress=False)
    summary = result.metrics.summary()
    rows = result.metrics.rows
    return {"setting": setting, "seed": seed, "avg": summary["avg"], "last": summary["last"],
            "curve": result.metrics.curve,
            "feature_cosine": [r.get("feature_cosine") for r in rows],
            "wall_s": time.perf_counter() - start}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default="demo")
    p.add_argument("--seeds", default="1993", help="comma-separated seeds")
    p.add_argument("--holdout", type=float, default=0.2)
    p.add_argument("--setting", action="append", required=True,
                   help="space-separated overrides of one setting (repeat the option)")
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" /
                   "tune_adapters.json")
    args = p.parse_args(argv)
    runs_dir = args.out.parent / f"{args.out.stem}-runs"
    results = []
    for setting in args.setting:
        for seed in (int(s) for s in args.seeds.split(",")):
            r = run(args.config, setting, seed, args.holdout, runs_dir)
            results.append(r)
            print(f"{setting:<50} seed {seed}: Avg {r['avg']:.2f} Last {r['last']:.2f} "
                  f"({r['wall_s']:.0f} s)", flush=True)
            write_json(args.out, {"config": args.config, "holdout": args.holdout,
                                  "gate": "oracle", "runs": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
