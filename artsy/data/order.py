"""The class order (data.class_order): "seed", "identity" or an explicit list, checked here.

Kept free of torch so that config checks (`artsy.data.registry.check_data_config`) can use it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any, Union

import numpy as np

from ..errors import ConfigError

DEFAULT_ORDER_SEED = 1993  # EASE / PILOT / PyCIL / iCaRL (docs/method.md §11.3)
KEY = "config key 'data.class_order'"


def class_order(n_classes: int, order: Union[str, Sequence[int]] = "seed",
                seed: int = DEFAULT_ORDER_SEED) -> list[int]:
    """"seed": the EASE/PILOT order, np.random.seed(seed) then np.random.permutation(n_classes);
    "identity": 0..n-1; a list: validated as a permutation of range(n_classes)."""
    if isinstance(order, str):
        if order == "seed":  # same stream as np.random.seed(seed), without touching global state
            return np.random.RandomState(seed).permutation(n_classes).tolist()
        if order == "identity":
            return list(range(n_classes))
        raise ConfigError(f"{KEY}: class order {order!r} unknown: expected 'seed', 'identity' or "
                          f"a list of the {n_classes} class ids, each once")
    order = list(order)
    check_permutation(order, n_classes)
    return [int(c) for c in order]


def check_permutation(order: Sequence[Any], n_classes: int) -> None:
    """A ConfigError naming the invalid, duplicated and missing ids unless `order` lists each of
    0..n_classes-1 exactly once."""
    problem = order_problem(list(order), n_classes)
    if problem:
        raise ConfigError(f"{KEY}: class order must be a permutation of range({n_classes}), got "
                          f"{len(order)} entries{problem}; list each class id 0..{n_classes - 1} "
                          f"exactly once, or use 'seed' or 'identity'")


def order_problem(order: list, n: int) -> str:
    """What is wrong with `order` as a permutation of range(n), '' when nothing is."""
    def valid(c: Any) -> bool:
        return isinstance(c, (int, np.integer)) and not isinstance(c, bool) and 0 <= c < n

    bad = [c for c in order if not valid(c)]
    counts = Counter(int(c) for c in order if valid(c))
    dup = sorted(c for c, k in counts.items() if k > 1)
    missing = sorted(set(range(n)) - set(counts))
    faults = ([f"invalid ids {bad[:5]}"] if bad else []) + (
        [f"duplicates {dup[:5]}"] if dup else [])
    text = f" with {' and '.join(faults)}" if faults else ""
    if missing:
        text += f"{',' if text else ''} missing {missing[:5]}"
    return text


def check_class_order_config(data_cfg: Any) -> None:
    """Config-time check of a list data.class_order: a permutation of 0..len-1, its duplicates
    named (the dataset's class count is checked when the data is loaded)."""
    order = data_cfg.class_order
    if isinstance(order, str):
        class_order(0, order)  # 'seed' / 'identity' or the message
    else:
        check_permutation(list(order), len(order))
