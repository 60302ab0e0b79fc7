"""The work plan of a config (`python -m artsy.run CONFIG --dry-run`).

The resolved config, the class order, the task split and the forward passes per task, computed
from the config, the dataset registry and the gate registry alone: no images are read (except an
image folder's listing, whose classes must be counted) and no weights are loaded.
"""

from __future__ import annotations

import numpy as np
import yaml

from .methods import method_class
from .config import Config, to_dict
from .data import class_order, dataset_shape, task_splits
from .errors import DataError, one_line
from .gates import GateCost, gate_class


def dry_run(cfg: Config) -> str:
    """The resolved config, class order, split and forward passes per task (no training)."""
    d = cfg.data
    n, train_pc, test_pc = dataset_shape(d)
    try:
        order = class_order(n, d.class_order, d.seed)
        tasks = task_splits(n, d.init_cls, d.increment)
    except ValueError as e:
        raise DataError(one_line(e)) from e
    gate, beta = cfg.synapse.gate, cfg.prototypes.beta > 0
    adapters = method_class(cfg.method).adapters
    if adapters:  # sub-networks behind gates: what the gate reads and runs, from the config
        cost = gate_class(gate).cost(cfg.synapse)
        epochs, h0 = cfg.train.epochs, cost.needs_h0 or beta
        what = f"gate '{gate}'" + (", which reads every sub-network" if cost.needs_own else "")
    else:  # E_0 alone: one frozen pass per image, nothing trained, no sub-network runs
        cost, epochs, h0 = GateCost(fewest_open=0, most_open=0), 0, True
        what = f"method '{cfg.method}': no adapters, no gates"
    lines = ["resolved config:", yaml.safe_dump(to_dict(cfg), sort_keys=False).rstrip(), "",
             f"class order ({d.class_order if isinstance(d.class_order, str) else 'list'}, "
             f"seed {d.seed}): {order}", f"task split: {len(tasks)} tasks"]
    for t, labels in enumerate(tasks):
        lines.append(f"  task {t}: labels {labels[0]}..{labels[-1]} = classes "
                     f"{[order[c] for c in labels]}")
    lines += ["", f"work per task (forward passes over images; {what}):",
              f"{'task':>5} {'train img':>10} {'fwd+bwd':>10} {'features':>10} {'test img':>9} "
              f"{'eval':>22} {'EASE eval':>10}"]
    totals = np.zeros(4)
    seen_test = 0
    for t, labels in enumerate(tasks):
        n_train = int(train_pc[[order[c] for c in labels]].sum())
        seen_test += int(test_pc[[order[c] for c in labels]].sum())
        s = t + 1
        fwd_bwd = epochs * n_train
        feats = n_train * (s * adapters + h0)
        base = seen_test * h0  # the h0 pass; a gate that reads every sub-network runs them all
        subnet_lo, subnet_hi = cost.eval_passes(s, seen_test)
        lo, hi = base + subnet_lo, base + subnet_hi
        ev = f"{lo}" if lo == hi else f"{lo}..{hi}"
        lines.append(f"{t:>5} {n_train:>10} {fwd_bwd:>10} {feats:>10} {seen_test:>9} {ev:>22} "
                     f"{s * seen_test:>10}")
        totals += (fwd_bwd, feats, lo, hi)
    ev = f"{int(totals[2])}" if totals[2] == totals[3] else f"{int(totals[2])}..{int(totals[3])}"
    lines.append(f"total: {int(totals[0])} training fwd+bwd passes, {int(totals[1])} feature "
                 f"passes, {ev} evaluation passes")
    return "\n".join(lines)
