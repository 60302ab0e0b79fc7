"""Several seeds of one config: the per-seed configs and the mean ± std summary.

A seed decides everything random in a run, as in PILOT: the class order (`data.seed`, when
`data.class_order` is `seed`) and the training randomness (`run.seed`). The config's `seeds` list
names the seeds that `python -m artsy.run CONFIG --seeds` runs, one run directory each, and
`summary.json` beside them holds every seed's numbers and their mean and standard deviation
(sample std, ddof = 1; 0 for a single seed; null where no seed has a finite value, so the file
stays strict JSON). The layout is artsy.rundir's.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Iterable, Mapping

import numpy as np

from .config import Config
from .metrics import fmt

# metrics.json summary keys reported across seeds (artsy.metrics: units there)
KEYS = ("avg", "last", "forgetting", "mean_gate_accuracy", "mean_open_gates",
        "final_task_id_accuracy", "mean_task_id_accuracy", "eval_forward_passes",
        "ease_eval_forward_passes", "subnetwork_passes_per_image",
        "ease_subnetwork_passes_per_image", "mean_feature_cosine", "train_time_s", "eval_time_s",
        "images_per_s", "peak_rss_mib", "peak_cuda_mib")


def seed_config(cfg: Config, seed: int) -> Config:
    """`cfg` with this seed for the class order and for the training randomness."""
    return dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, seed=seed),
                               run=dataclasses.replace(cfg.run, seed=seed))


def summarize(per_seed: Mapping[int, Mapping[str, float]], keys: Iterable[str] = KEYS) -> dict:
    """{key: {"mean", "std", "per_seed": {seed: value}}} over the seeds' metrics summaries."""
    out = {}
    for key in keys:
        values = {int(s): float(m[key]) for s, m in per_seed.items() if key in m}
        arr = np.array(list(values.values()), dtype=float)
        finite = arr[np.isfinite(arr)]
        mean = float(finite.mean()) if finite.size else None
        std = float(finite.std(ddof=1)) if finite.size > 1 else (0.0 if finite.size else None)
        out[key] = {"mean": mean, "std": std,
                    "per_seed": {s: (v if math.isfinite(v) else None) for s, v in values.items()}}
    return out


def table(summary: Mapping[str, Mapping]) -> str:
    """One line per key: mean ± std, then every seed's value."""
    lines = []
    for key, s in summary.items():
        seeds = ", ".join(f"{seed}: {fmt(v)}" for seed, v in s["per_seed"].items())
        lines.append(f"{key:>24}  {fmt(s['mean']):>9} ± {fmt(s['std']):<7} ({seeds})")
    return "\n".join(lines)
