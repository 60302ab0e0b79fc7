"""The layout of a run directory: every file name a run writes, defined once.

```
<run.out_dir>/<name>-<YYYYmmdd-HHMMSS>/
    config.yaml              the resolved config (what --resume reads)
    metrics.json             per-task table and (after_task, ...) matrices
    metrics.csv              one row per task
    synapses.nc              the synapse-state log (artsy.synapse_log)
    checkpoints/task_XX.pt   per-task checkpoints (artsy.checkpoint)

<run.out_dir>/<name>-seeds-<YYYYmmdd-HHMMSS>/     a multi-seed run (artsy.seeds)
    summary.json             mean ± std over the finished seeds (written first: it marks the kind)
    config.yaml              the config with its `seeds` list
    seed-<N>/                one run directory per seed, as above
```
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Union

from .errors import RunError

CONFIG = "config.yaml"
METRICS_JSON = "metrics.json"
METRICS_CSV = "metrics.csv"
SYNAPSE_LOG = "synapses.nc"
CHECKPOINTS = "checkpoints"
CHECKPOINT_GLOB = "task_*.pt"
_CHECKPOINT = re.compile(r"task_(\d+)\.pt")
SEEDS_SUMMARY = "summary.json"


@dataclass(frozen=True)
class RunDir:
    """One run's directory and the paths of what it holds."""

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    @property
    def config(self) -> Path:
        return self.path / CONFIG

    @property
    def metrics_json(self) -> Path:
        return self.path / METRICS_JSON

    @property
    def metrics_csv(self) -> Path:
        return self.path / METRICS_CSV

    @property
    def synapse_log(self) -> Path:
        return self.path / SYNAPSE_LOG

    @property
    def checkpoints(self) -> Path:
        return self.path / CHECKPOINTS

    def checkpoint(self, task: int) -> Path:
        return self.checkpoints / f"task_{task:02d}.pt"

    def checkpoint_tasks(self) -> dict[int, Path]:
        """The checkpoints on disk, by task."""
        return {int(m.group(1)): p for p in self.checkpoints.glob(CHECKPOINT_GLOB)
                if (m := _CHECKPOINT.fullmatch(p.name))}

    @property
    def seeds_summary(self) -> Path:
        """summary.json of a multi-seed run."""
        return self.path / SEEDS_SUMMARY

    def seed_run(self, seed: int) -> "RunDir":
        """The run directory of one seed inside a multi-seed run."""
        return RunDir(self.path / f"seed-{seed}")

    def __fspath__(self) -> str:
        return os.fspath(self.path)

    def __str__(self) -> str:
        return str(self.path)


def new_run_dir(out_dir: Union[str, os.PathLike], name: str) -> RunDir:
    """Create `<out_dir>/<name>-<YYYYmmdd-HHMMSS>`, with -2, -3, ... if that exists already."""
    base = Path(out_dir) / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    for i in range(1, 1000):
        path = base if i == 1 else base.with_name(f"{base.name}-{i}")
        try:
            path.mkdir(parents=True)
            return RunDir(path)
        except FileExistsError:
            continue
    raise RunError(f"cannot create a run directory under {out_dir}")
