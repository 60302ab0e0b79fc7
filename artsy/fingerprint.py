"""What decides a run's results, recorded when it starts and checked when it resumes.

A resumed run must end with the results an uninterrupted run would have had, so it may only
continue with what the run started with: every config value except those that cannot change a
result (NOT_DECIDING), the resolved class order and class names, the data (a digest of the image
bytes for in-memory datasets, of the file names and sizes for image files), the backbone's
weights and the device type. The run directory's fingerprint.json holds them; `check` names the
first difference in one line.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np

from synsim.files import write_json

from .config import ADDED_KEYS, RETIRED_KEYS, Config, to_dict
from .errors import RunError
from .rundir import RunDir

FORMAT = 1

# config keys that cannot change a result, and why; every other key decides the results
NOT_DECIDING = {
    "run.name": "a label",
    "run.out_dir": "where the run directory is",
    "run.save_checkpoints": "what is kept on disk",
    "data.root": "where the data is: its content is fingerprinted apart",
    "data.cache_dir": "where archives are unpacked",
    "data.download": "how the data arrives",
    "backbone.checkpoint": "where the weights are: the weights are fingerprinted apart",
    "seeds": "the list of a multi-seed run; each seed's run has its own run.seed and data.seed",
}


def flat_config(cfg: Config) -> dict[str, Any]:
    """The config as dotted keys -> values (lists and dicts as leaves)."""
    out: dict[str, Any] = {}

    def walk(d: dict, prefix: str) -> None:
        for k, v in d.items():
            key = f"{prefix}{k}"
            if isinstance(v, dict) and key != "backbone.model_kwargs":
                walk(v, key + ".")
            else:
                out[key] = v

    walk(to_dict(cfg), "")
    return out


def deciding_config(cfg: Config) -> dict[str, Any]:
    """The config values that decide the results (JSON-ready)."""
    flat = flat_config(cfg)
    return json.loads(json.dumps({k: v for k, v in flat.items() if k not in NOT_DECIDING},
                                 default=str))


def image_set_digest(images: Any) -> str:
    """sha256 of an image set: its labels plus the pixels (in memory) or names and sizes (files).

    Files are named by their last two path parts (class folder / file), so moving a dataset
    keeps its digest while renaming a class or replacing an image changes it.
    """
    h = hashlib.sha256(np.ascontiguousarray(images.targets, dtype=np.int64).tobytes())
    h.update("\0".join(images.class_names).encode())
    if hasattr(images, "images"):
        pixels = np.ascontiguousarray(images.images)
        h.update(repr((pixels.dtype.str, pixels.shape)).encode())
        h.update(memoryview(pixels).cast("B"))
    elif hasattr(images, "paths"):
        for p in images.paths:
            p = Path(p)
            h.update(f"{p.parent.name}/{p.name}\0{os.path.getsize(p)}\n".encode())
    return h.hexdigest()


def run_fingerprint(cfg: Config, data: Any, learner: Any) -> dict:
    """What decided this run's results: config, class order and names, data, backbone."""
    source = data.source
    return {"format": FORMAT, "config": deciding_config(cfg),
            "class_order": [int(c) for c in data.order], "class_names": data.class_names,
            "data": {"train": image_set_digest(source.train),
                     "test": image_set_digest(source.test)},
            "backbone": {"weights": learner.weight_tag,
                         "checksum": float(learner.backbone_fingerprint())},
            # train.device 'auto' resolves per machine, and bf16/fp16 autocast is CUDA's only
            "device": {"type": learner.device.type,
                       "amp": cfg.train.amp if learner.device.type == "cuda" else "none"}}


def config_fingerprint(cfg: Config) -> dict:
    """A multi-seed run's fingerprint: its config (each seed's run records the rest)."""
    return {"format": FORMAT, "config": deciding_config(cfg)}


def save(run_dir: Union[str, os.PathLike], fingerprint: dict) -> Path:
    return write_json(RunDir(run_dir).fingerprint, fingerprint)


def load(run_dir: Union[str, os.PathLike]) -> Optional[dict]:
    """The recorded fingerprint, or None for a run written before fingerprints existed."""
    path = RunDir(run_dir).fingerprint
    if not path.exists():
        return None
    try:
        recorded = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise RunError(f"cannot resume {run_dir}: {path.name} is unreadable ({e}); it is written "
                       "atomically, so something else changed it: restore it or start a new "
                       "run") from None
    if not isinstance(recorded, dict) or recorded.get("format") != FORMAT:
        raise RunError(f"cannot resume {run_dir}: {path.name} is not a fingerprint of format "
                       f"{FORMAT}; start a new run")
    return recorded


def _short(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9) or (math.isnan(a) and math.isnan(b))
    return a == b


# a key that one side lacks is the same as this value on the other: keys added to the schema (a
# run of before them behaves as this value) and keys retired from it (their only value)
SCHEMA_CHANGES = {".".join(k): v for k, v in {**ADDED_KEYS, **RETIRED_KEYS}.items()}
_MISSING = object()


def difference(recorded: dict, current: dict) -> Optional[str]:
    """The first result-deciding difference, in words; None when the run may continue."""
    old, new = recorded.get("config", {}), current.get("config", {})
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key, _MISSING), new.get(key, _MISSING)
        if _MISSING in (a, b) and (b if a is _MISSING else a) == SCHEMA_CHANGES.get(key):
            continue
        if not _same(old.get(key), new.get(key)):
            return (f"config key {key} is {_short(new.get(key))} now but the run started with "
                    f"{_short(old.get(key))}")
    for part, what in (("class_order", "the class order"), ("class_names", "the class names")):
        if part in recorded and part in current and recorded[part] != current[part]:
            i = next(i for i, (a, b) in enumerate(zip(recorded[part], current[part]))
                     if a != b) if len(recorded[part]) == len(current[part]) else None
            where = "its length" if i is None else f"entry {i}"
            a = len(recorded[part]) if i is None else recorded[part][i]
            b = len(current[part]) if i is None else current[part][i]
            return (f"{what} changed at {where}: {_short(b)} now, {_short(a)} when the run "
                    "started")
    for split in ("train", "test"):
        a, b = recorded.get("data", {}).get(split), current.get("data", {}).get(split)
        if a is not None and b is not None and a != b:
            return (f"the {split} images differ from those the run started with (data digest "
                    f"{b[:12]} now, {a[:12]} then)")
    a, b = recorded.get("backbone"), current.get("backbone")
    if a is not None and b is not None and not (
            a["weights"] == b["weights"] and _same(a["checksum"], b["checksum"])):
        return (f"the backbone weights differ ({b['weights']} now, {a['weights']} when the run "
                "started)")
    a, b = recorded.get("device"), current.get("device")
    if a is not None and b is not None and a != b:
        return (f"it runs on {b['type']} (autocast {b['amp']}) now but started on {a['type']} "
                f"(autocast {a['amp']}): set train.device to match")
    return None


def check(run_dir: Union[str, os.PathLike], recorded: Optional[dict], current: dict) -> None:
    """Refuse (RunError, one line) to resume `run_dir` when `current` differs from `recorded`
    (its fingerprint.json; None for a run of an older version: a note, no check)."""
    if recorded is None:
        print(f"note: {run_dir} has no {RunDir(run_dir).fingerprint.name} (written by an older "
              "version): its settings cannot be checked against the ones it started with",
              flush=True)
        return
    why = difference(recorded, current)
    if why is not None:
        raise RunError(f"cannot resume {run_dir}: {why}; restore it in its config.yaml (or the "
                       "data, or the weights) or start a new run")
