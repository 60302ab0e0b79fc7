"""The layout of a run directory: every file name a run writes, defined once.

```
<run.out_dir>/<name>-<YYYYmmdd-HHMMSS>/
    config.yaml              the resolved config (what --resume reads)
    fingerprint.json         what decides the results (artsy.fingerprint; --resume checks it)
    metrics.json             per-task table and (after_task, ...) matrices
    metrics.csv              one row per task
    synapses.nc              the synapse-state log (artsy.synapse_log)
    checkpoints/task_XX.pt   per-task checkpoints (artsy.checkpoint)

<run.out_dir>/<name>-seeds-<YYYYmmdd-HHMMSS>/     a multi-seed run (artsy.seeds)
    summary.json             mean ± std over the finished seeds (written first: it marks the kind)
    config.yaml              the config with its `seeds` list
    fingerprint.json         its result-deciding config
    seed-<N>/                one run directory per seed, as above
```

A run directory appears whole: it is written in a hidden staging directory beside it (config and
fingerprint) and renamed into place, so a kill never leaves a run directory without its config.
"""

from __future__ import annotations

import os
import re
import json
import secrets
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Union

from synsim import files
from synsim.errors import OutputError

from .errors import RunError, one_line

CONFIG = "config.yaml"
FINGERPRINT = "fingerprint.json"
METRICS_JSON = "metrics.json"
METRICS_CSV = "metrics.csv"
SYNAPSE_LOG = "synapses.nc"
CHECKPOINTS = "checkpoints"
CHECKPOINT_GLOB = "task_*.pt"
_CHECKPOINT = re.compile(r"task_(\d+)\.pt")
SEEDS_SUMMARY = "summary.json"
TEMPORARY_GLOB = ".*.tmp"  # synsim.files.atomic_path's temporaries and the staging directories
STALE_STAGING_S = 600  # a staging directory this old was left by a killed process


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
    def fingerprint(self) -> Path:
        return self.path / FINGERPRINT

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

    def temporaries(self) -> list[Path]:
        """Temporary files left by a process killed in the middle of an atomic write."""
        return [p for d in (self.path, self.checkpoints) for p in d.glob(TEMPORARY_GLOB)
                if p.is_file()]

    def seed_run(self, seed: int) -> "RunDir":
        """The run directory of one seed inside a multi-seed run."""
        return RunDir(self.path / f"seed-{seed}")

    def __fspath__(self) -> str:
        return os.fspath(self.path)

    def __str__(self) -> str:
        return str(self.path)


def read_json(path: Union[str, os.PathLike]) -> dict:
    """A run's JSON file (metrics.json, summary.json) as a dict; RunError naming it otherwise."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise RunError(f"cannot read {path} ({type(e).__name__}: {one_line(e)[:120]}): resume "
                       "the run that wrote it (or rerun it)") from None
    if not isinstance(data, dict):
        raise RunError(f"{path} holds no JSON object: resume the run that wrote it (or rerun it)")
    return data


def check_writable(out_dir: Union[str, os.PathLike], key: str = "run.out_dir") -> None:
    """Refuse, before any work, an output directory that cannot be written (creates nothing)."""
    try:
        files.check_writable(out_dir, directory=True)
    except OutputError as e:
        raise RunError(f"{key}: {one_line(e)}; set {key}=PATH") from None


def create_run_dir(path: Union[str, os.PathLike], write: Callable[[RunDir], None]) -> RunDir:
    """Create the run directory `path` (it must not exist) whole: `write` fills a hidden staging
    directory beside it, which is then renamed to `path`."""
    path = Path(path)
    if not _create(path, write):
        raise RunError(f"{path} exists already: choose a new run directory")
    return RunDir(path)


def new_run_dir(out_dir: Union[str, os.PathLike], name: str,
                write: Callable[[RunDir], None] = lambda run_dir: None) -> RunDir:
    """Create `<out_dir>/<name>-<YYYYmmdd-HHMMSS>` (-2, -3, ... if taken) whole, as
    create_run_dir does."""
    out_dir = Path(out_dir)
    check_writable(out_dir)
    _remove_stale_staging(out_dir)
    base = out_dir / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    for i in range(1, 1000):
        path = base if i == 1 else base.with_name(f"{base.name}-{i}")
        if _create(path, write):
            return RunDir(path)
    raise RunError(f"cannot create a run directory under {out_dir}")


def _create(path: Path, write: Callable[[RunDir], None]) -> bool:
    """Stage, write and rename to `path`; False if `path` exists already."""
    if os.path.lexists(path):
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:  # os.mkdir applies the umask, as mkdir of the run directory itself would
        staging = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
        try:
            staging.mkdir()
            break
        except FileExistsError:
            continue
    try:
        write(RunDir(staging))
        if os.path.lexists(path):
            return False
        os.rename(staging, path)
        return True
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _remove_stale_staging(out_dir: Path) -> None:
    """Staging directories of processes killed while creating a run directory."""
    now = time.time()
    for p in out_dir.glob(TEMPORARY_GLOB):
        try:
            if p.is_dir() and now - p.stat().st_mtime > STALE_STAGING_S:
                shutil.rmtree(p, ignore_errors=True)
        except OSError:
            pass
