"""Per-task checkpoints and resume.

`checkpoints/task_XX.pt` holds what task XX added (its adapter set and the synapses' memory of its
inputs: the h0 cache or the class Gaussians) plus the whole small state after it (synapse MLPs,
gains, the rule state, the prototype bank, the metrics so far, the log position). Storing the
per-task parts once keeps the disk use linear in the number of tasks. Resuming after task XX loads
the per-task parts of tasks 0..XX and the state of XX. Files are written atomically and loaded
with `weights_only=True` (tensors, numbers, strings, lists and dicts only).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Union

import torch

from synsim.files import atomic_path

from .errors import CheckpointError
from .rundir import RunDir

FORMAT = 1


def save(run_dir: Union[str, os.PathLike], task: int, increment: dict, state: dict) -> Path:
    """Write task `task`'s checkpoint atomically (temporary file, then os.replace)."""
    path = RunDir(run_dir).checkpoint(task)
    with atomic_path(path) as tmp:
        torch.save({"format": FORMAT, "task": task, "increment": increment, "state": state}, tmp)
    return path


def last_task(run_dir: Union[str, os.PathLike]) -> Optional[int]:
    """The last task t such that the checkpoints of tasks 0..t all exist (None if none)."""
    done = RunDir(run_dir).checkpoint_tasks()
    t = -1
    while t + 1 in done:
        t += 1
    return t if t >= 0 else None


def _read(path: Path) -> dict:
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise CheckpointError(f"cannot read checkpoint {path}: {type(e).__name__}: "
                              f"{' '.join(str(e).split())[:200]}") from e
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an artsy checkpoint (format {FORMAT})")
    return payload


def load(run_dir: Union[str, os.PathLike], task: int) -> tuple[list[dict], dict]:
    """The per-task increments of tasks 0..task and the full state after `task`."""
    payloads = [_read(RunDir(run_dir).checkpoint(t)) for t in range(task + 1)]
    return [p["increment"] for p in payloads], payloads[-1]["state"]


def remove_after(run_dir: Union[str, os.PathLike], task: int) -> None:
    """Delete checkpoints of tasks > `task` (left by a crash that broke the chain before them)."""
    for t, path in RunDir(run_dir).checkpoint_tasks().items():
        if t > task:
            path.unlink()
