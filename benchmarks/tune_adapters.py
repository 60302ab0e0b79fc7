"""Choose the adapters' training settings on training data only (issue #11, item 0).

Each setting trains the sub-networks of a config and evaluates them under each gate of
`--gates` on `data.holdout` — a seeded share of each class's TRAINING images — never on the
test split. `oracle` (the default) shows what the sub-networks give once the task is known,
without routing; `none` (EASE) what they give when every sub-network votes. The frozen row
(`train.epochs=0`) shows what the sub-networks add; `feature_cosine` how far E_t moved from E_0.
Writes JSON (one entry per setting, gate and seed), a table (`.md`: Last mean ± std per setting
and gate, and its difference to the frozen setting) and a figure (`.png`: the same, seeds as dots).

    python benchmarks/tune_adapters.py --config demo --seeds 1993 --gates oracle,none \
        --setting "train.epochs=0" --setting "train.epochs=2 train.lr=0.01" ...
    python benchmarks/tune_adapters.py --summarise a.json b.json --out both.json  # table, figure

The validation split the demo's settings were chosen on: `--holdout 0.5` with
`data.max_per_class_train=240` in every setting trains on 120 images per class, as the demo does,
and evaluates on the other 120 (1,200 images; `data.holdout=0.2` of the demo's own 120 would
train on 96 and evaluate on 240, a standard error of about 2 points per run).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from artsy.config import load_config  # noqa: E402
from artsy.runner import start_run  # noqa: E402
from synsim.files import atomic_path, write_json, write_text  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def run(config: str, setting: str, gate: str, seed: int, holdout: float, out_dir: Path) -> dict:
    overrides = [f"synapse.gate={gate}", f"data.holdout={holdout}", f"run.seed={seed}",
                 f"data.seed={seed}", f"run.out_dir={out_dir}", "run.save_checkpoints=false",
                 *setting.split()]
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        result = start_run(load_config(config, overrides), progress=False)
    summary = result.metrics.summary()
    rows = result.metrics.rows
    return {"setting": setting, "gate": gate, "seed": seed, "avg": summary["avg"],
            "last": summary["last"], "curve": result.metrics.curve,
            "feature_cosine": [r.get("feature_cosine") for r in rows],
            "wall_s": time.perf_counter() - start}


def is_frozen(setting: str) -> bool:
    return "train.epochs=0" in setting.split()


def summarise(runs: list[dict]) -> list[dict]:
    """Per (setting, gate), in first-seen order: Last and Avg over seeds, every seed's Last, and
    Last minus the frozen setting's Last under the same gate (None without a frozen setting)."""
    groups: dict[tuple, list[dict]] = {}
    for r in runs:
        groups.setdefault((r["setting"], r["gate"]), []).append(r)
    rows = []
    for (setting, gate), rs in groups.items():
        last = [r["last"] for r in rs]
        cosines = [c for c in (r["feature_cosine"][-1] for r in rs)
                   if c is not None and not math.isnan(c)]  # NaN: the gate reads no h0
        rows.append({"setting": setting, "gate": gate, "seeds": [r["seed"] for r in rs],
                     "last": last, "last_mean": statistics.fmean(last),
                     "last_std": statistics.stdev(last) if len(last) > 1 else 0.0,
                     "avg_mean": statistics.fmean(r["avg"] for r in rs),
                     "feature_cosine": statistics.fmean(cosines) if cosines else None})
    frozen = {r["gate"]: r["last_mean"] for r in rows if is_frozen(r["setting"])}
    for r in rows:
        r["last_minus_frozen"] = (r["last_mean"] - frozen[r["gate"]]
                                  if r["gate"] in frozen else None)
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| setting | gate | seeds | Avg | Last | Last per seed | Last − frozen | "
             "cos(E_t, E_0) |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        delta = "-" if r["last_minus_frozen"] is None else f"{r['last_minus_frozen']:+.2f}"
        cos = "-" if r["feature_cosine"] is None else f"{r['feature_cosine']:.3f}"
        lines.append(f"| {r['setting']} | {r['gate']} | {len(r['seeds'])} | {r['avg_mean']:.2f} "
                     f"| {r['last_mean']:.2f} ± {r['last_std']:.2f} | "
                     f"{' / '.join(f'{v:.2f}' for v in r['last'])} | {delta} | {cos} |")
    return "\n".join(lines) + "\n"


def save_figure(rows: list[dict], path: Path) -> Path:
    """One panel per gate: Last per setting (bar: mean over seeds, dots: seeds), the frozen
    setting's mean as a dashed line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    gates = list(dict.fromkeys(r["gate"] for r in rows))
    settings = list(dict.fromkeys(r["setting"] for r in rows))
    shared = set.intersection(*(set(x.split()) for x in settings))  # said once, in the title
    labels = ["\n".join(o for o in x.split() if o not in shared) or "(config)"
              for x in settings]
    fig, axes = plt.subplots(1, len(gates), figsize=(1.2 + 0.9 * len(settings) * len(gates), 3.6),
                             squeeze=False)
    for ax, gate in zip(axes[0], gates):
        mine = {r["setting"]: r for r in rows if r["gate"] == gate}
        for i, setting in enumerate(settings):
            if setting in mine:
                r = mine[setting]
                ax.bar(i, r["last_mean"], color="0.6" if is_frozen(setting) else "C0")
                ax.plot([i] * len(r["last"]), r["last"], "k.", ms=4)
                if is_frozen(setting):
                    ax.axhline(r["last_mean"], color="0.3", ls="--", lw=0.8)
        values = [v for r in mine.values() for v in r["last"]]
        ax.set_ylim(min(values) - 3, max(values) + 2)
        ax.set_xticks(range(len(settings)))
        ax.set_xticklabels(labels, fontsize=6, rotation=30, ha="right")
        ax.set_title(f"gate {gate}", fontsize=9)
        ax.set_ylabel("Last on held-out training images (%)", fontsize=8)
    fig.suptitle(" ".join(sorted(shared)) or None, fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=200)
    plt.close(fig)
    return path


def write_outputs(out: Path, payload: dict) -> None:
    rows = summarise(payload["runs"])
    write_json(out, {**payload, "summary": rows})
    write_text(out.with_suffix(".md"), table(rows))
    save_figure(rows, out.with_suffix(".png"))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default="demo")
    p.add_argument("--seeds", default="1993", help="comma-separated seeds")
    p.add_argument("--gates", default="oracle", help="comma-separated gates to evaluate")
    p.add_argument("--holdout", type=float, default=0.2)
    p.add_argument("--setting", action="append", default=[],
                   help="space-separated overrides of one setting (repeat the option)")
    p.add_argument("--summarise", nargs="+", type=Path, metavar="JSON",
                   help="run nothing: join these result files into --out, its table and figure")
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" /
                   "tune_adapters.json")
    args = p.parse_args(argv)
    if args.summarise:
        payloads = [json.loads(f.read_text()) for f in args.summarise]
        write_outputs(args.out, {"config": sorted({q["config"] for q in payloads}),
                                 "holdout": sorted({q["holdout"] for q in payloads}),
                                 "runs": [r for q in payloads for r in q["runs"]]})
        print(table(summarise([r for q in payloads for r in q["runs"]])))
        return 0
    if not args.setting:
        p.error("give at least one --setting, or --summarise JSON files")
    runs_dir = args.out.parent / f"{args.out.stem}-runs"
    results = []
    for setting in args.setting:
        for gate in args.gates.split(","):
            for seed in (int(s) for s in args.seeds.split(",")):
                r = run(args.config, setting, gate, seed, args.holdout, runs_dir)
                results.append(r)
                print(f"{setting:<44} {gate:<7} seed {seed}: Avg {r['avg']:.2f} "
                      f"Last {r['last']:.2f} ({r['wall_s']:.0f} s)", flush=True)
                write_outputs(args.out, {"config": args.config, "holdout": args.holdout,
                                         "runs": results})
    print(table(summarise(results)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
