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

from artsy.config import UNTRAINED, load_config, to_dict  # noqa: E402
from artsy.runner import start_run  # noqa: E402
from artsy.seeds import summarize as over_seeds  # noqa: E402
from synsim.files import atomic_path, write_json, write_text  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def run(config: str, setting: str, gate: str, seed: int, holdout: float, out_dir: Path) -> dict:
    overrides = [f"synapse.gate={gate}", f"data.holdout={holdout}", f"run.seed={seed}",
                 f"data.seed={seed}", f"run.out_dir={out_dir}", "run.save_checkpoints=false",
                 *setting.split()]
    start = time.perf_counter()
    cfg = load_config(config, overrides)
    with contextlib.redirect_stdout(io.StringIO()):
        result = start_run(cfg, progress=False)
    summary, resolved = result.metrics.summary(), to_dict(cfg)
    rows = result.metrics.rows
    return {"setting": setting, "gate": gate, "seed": seed, "avg": summary["avg"],
            "last": summary["last"], "curve": result.metrics.curve,
            "feature_cosine": [r.get("feature_cosine") for r in rows],
            "wall_s": time.perf_counter() - start,
            # the resolved settings: a recorded row stays readable after the config's defaults move
            "train": resolved["train"], "adapter": resolved["adapter"]}


def is_frozen(setting: str) -> bool:
    """A setting with the exact override `train.epochs=0`: adapters left at zero."""
    return UNTRAINED in setting.split()


def frozen_key(setting: str) -> frozenset:
    """What decides a frozen run: every override but train.* and adapter.* (zero adapters make
    those irrelevant), so each setting finds the frozen run on the same data."""
    return frozenset(o for o in setting.split() if not o.startswith(("train.", "adapter.")))


def last_cosine(run: dict) -> float:
    """cos(E_t, E_0) after the run's last task; NaN when missing (the gate reads no h0)."""
    cosine = (run.get("feature_cosine") or [None])[-1]
    return math.nan if cosine is None else float(cosine)


def summarise(runs: list[dict]) -> list[dict]:
    """Per (setting, gate), in first-seen order: Last and Avg over seeds, every seed's Last, and
    Last minus the matching frozen setting's Last under the same gate, paired over the seeds both
    ran (None without such a frozen run). Refuses a (setting, gate, seed) given twice."""
    groups: dict[tuple, list[dict]] = {}
    for r in runs:
        group = groups.setdefault((r["setting"], r["gate"]), [])
        if any(q["seed"] == r["seed"] for q in group):
            raise ValueError(f"setting {r['setting']!r}, gate {r['gate']}, seed {r['seed']} "
                             "appears twice: join each result file once")
        group.append(r)
    rows = []
    for (setting, gate), rs in groups.items():
        s = over_seeds({r["seed"]: {"last": r["last"], "avg": r["avg"], "cosine": last_cosine(r)}
                        for r in rs}, ("last", "avg", "cosine"))
        rows.append({"setting": setting, "gate": gate, "seeds": [r["seed"] for r in rs],
                     "last": [r["last"] for r in rs], "last_mean": s["last"]["mean"],
                     "last_std": s["last"]["std"] if len(rs) > 1 else None,  # no spread of one
                     "avg_mean": s["avg"]["mean"], "feature_cosine": s["cosine"]["mean"]})
    frozen: dict[tuple, dict] = {}
    for r in rows:
        if is_frozen(r["setting"]):
            frozen.setdefault((frozen_key(r["setting"]), r["gate"]), r)
    for r in rows:
        base = frozen.get((frozen_key(r["setting"]), r["gate"]))
        pairs = [] if base is None else [
            (v, base["last"][base["seeds"].index(seed)])
            for seed, v in zip(r["seeds"], r["last"]) if seed in base["seeds"]]
        r["last_minus_frozen"] = (round(statistics.fmean(a - b for a, b in pairs), 6) + 0.0
                                  if pairs else None)
    return rows


def table(rows: list[dict]) -> str:
    """The markdown table of `summarise`'s rows."""
    lines = ["| setting | gate | seeds | Avg | Last | Last per seed | Last - frozen | "
             "cos(E_t, E_0) |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        delta = "-" if r["last_minus_frozen"] is None else f"{r['last_minus_frozen']:+.2f}"
        cos = "-" if r["feature_cosine"] is None else f"{r['feature_cosine']:.3f}"
        std = "" if r["last_std"] is None else f" ± {r['last_std']:.2f}"
        lines.append(f"| {r['setting']} | {r['gate']} | {len(r['seeds'])} | {r['avg_mean']:.2f} "
                     f"| {r['last_mean']:.2f}{std} | "
                     f"{' / '.join(f'{v:.2f}' for v in r['last'])} | {delta} | {cos} |")
    return "\n".join(lines) + "\n"


def save_figure(rows: list[dict], path: Path) -> Path:
    """One panel per gate: Last per setting (dash: mean over seeds, dots: seeds; grey: frozen),
    the frozen setting's mean as a dashed line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    gates = list(dict.fromkeys(r["gate"] for r in rows))
    settings = list(dict.fromkeys(r["setting"] for r in rows))
    tokens = [set(x.split()) for x in settings]
    shared = set.intersection(*tokens) if tokens else set()  # said once, in the title
    labels = ["\n".join(o for o in x.split() if o not in shared) or "(config)"
              for x in settings]
    fig, axes = plt.subplots(1, len(gates), figsize=(1.2 + 0.9 * len(settings) * len(gates), 3.6),
                             squeeze=False)
    for ax, gate in zip(axes[0], gates):
        mine = {r["setting"]: r for r in rows if r["gate"] == gate}
        for i, setting in enumerate(settings):
            if setting in mine:
                r = mine[setting]
                color = "0.5" if is_frozen(setting) else "C0"
                ax.plot(i, r["last_mean"], "_", color=color, ms=22, mew=2.5)
                ax.plot([i] * len(r["last"]), r["last"], ".", color=color, ms=5)
                if is_frozen(setting):
                    ax.axhline(r["last_mean"], color="0.3", ls="--", lw=0.8)
        values = [v for r in mine.values() for v in r["last"]]
        ax.set_ylim(min(values) - 1, max(values) + 1)
        ax.set_xlim(-0.6, len(settings) - 0.4)
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
    """JSON (the payload and its summary), the table (.md) and the figure (.png) beside it."""
    rows = summarise(payload["runs"])
    write_json(out, {**payload, "summary": rows})
    write_text(out.with_suffix(".md"), table(rows))
    save_figure(rows, out.with_suffix(".png"))


def flat(payload: dict, key: str) -> list:
    """A result file's config or holdout as a list (a joined file holds a list already)."""
    value = payload[key]
    return value if isinstance(value, list) else [value]


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
    p.add_argument("--out", type=Path, default=None,
                   help="JSON file (default benchmarks/results/tune_adapters.json; required with "
                   "--summarise)")
    args = p.parse_args(argv)
    if args.summarise:
        if args.setting or args.out is None:
            p.error("--summarise joins result files: give --out and no --setting")
        payloads = [json.loads(f.read_text()) for f in args.summarise]
        same = {key: sorted({v for q in payloads for v in flat(q, key)})
                for key in ("config", "holdout")}
        if any(len(v) > 1 for v in same.values()):
            p.error(f"--summarise joins the results of one config and one --holdout, got "
                    f"{same['config']} and {same['holdout']}")
        try:
            write_outputs(args.out, {**same, "runs": [r for q in payloads for r in q["runs"]]})
        except ValueError as e:
            p.error(str(e))
        print((args.out.with_suffix(".md")).read_text())
        return 0
    if not args.setting:
        p.error("give at least one --setting, or --summarise JSON files")
    args.out = args.out or REPO / "benchmarks" / "results" / "tune_adapters.json"
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
    print(args.out.with_suffix(".md").read_text())  # the table written with the last run
    return 0


if __name__ == "__main__":
    sys.exit(main())
