"""The synapse-state log `synapses.nc` (docs/architecture.md §4), via synsim.io:
everything about its rows, its vocabulary and its file.

One netCDF-4 file per run with two unlimited dimensions (netCDF-4 allows several), so that one
`synsim.io.append` per dimension grows it after each task:

- `step` (global presentation index): the training presentations of each task to all synapses,
  every k-th one recorded; coordinate `task` on `step`. Variables (step, synapse): pre,
  depolarisation, mg_block, calcium, ampa, functional (the simulator's names and units).
- `after_task`: the evaluation after each task. gate_open_rate and gate_score (mean soft score
  c_t) on (after_task, input_task, synapse); the calibration K_eff = K * gain_t and the share of
  the task's own training inputs that open its gate on (after_task, synapse).

`synapse` holds all n_tasks synapses from the start (coordinate `synapse_task`); a synapse is
silent until its task (pre, depolarisation, mg_block NaN; calcium and ampa at rest, 0, for ngai).
Variables that do not apply to a gate are NaN (the receptor variables of none, mlp, oracle).
Global attributes: gate, rule parameters (ngai), calibration settings, the config as JSON, the
package version. Appending is atomic per call; `truncate` drops what a crash left beyond the last
checkpoint.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Optional, Union

import numpy as np
import xarray as xr

from synsim import io

from .errors import RunError, one_line

UNLIMITED = ("step", "after_task")
LOG_ROWS_PER_TASK = 500  # default cap of the synapse log's rows per task (record_every: null)
LOG_VARIABLES = ("pre", "depolarisation", "mg_block", "calcium", "ampa", "functional")

# The learner's own names in the log (name -> (units, long_name)); the receptor variables
# (pre, depolarisation, mg_block, calcium, ampa, functional) keep the simulator's schema.
VOCABULARY: dict[str, tuple[str, str]] = {
    "step": ("1", "global presentation index"),
    "task": ("1", "task being learned"),
    "synapse_task": ("1", "task of the synapse's sub-network"),
    "gate_open_rate": ("1", "share of inputs for which the gate is open"),
    "gate_score": ("1", "mean soft gate score c_t (the gate's release probability pre_t)"),
    "K_eff": ("1", "calibrated peak calcium per release at B = 1 (K * gain_t)"),
    "calibrated_open_rate": ("1", "share of the synapse's own-task training inputs that open it"),
    "after_task": ("1", "evaluation after learning this task"),
    "input_task": ("1", "task the evaluated inputs belong to"),
}


def record_positions(n: int, every: Optional[int]) -> np.ndarray:
    """The presentations the log keeps: every k-th (default k = ceil(n / 500)) and the last."""
    k = every or max(1, math.ceil(n / LOG_ROWS_PER_TASK))
    return np.union1d(np.arange(0, n, k), [n - 1])


def empty_rows(positions: np.ndarray, n_tasks: int) -> dict[str, np.ndarray]:
    """The rows of one task's recorded presentations before the gates fill them in: NaN (a
    variable that does not apply, or a synapse still silent) and not functional."""
    shape = (len(positions), n_tasks)
    rows = {name: np.full(shape, np.nan) for name in LOG_VARIABLES if name != "functional"}
    rows["functional"] = np.zeros(shape, dtype=bool)
    rows["position"] = positions
    return rows


class SynapseLog:
    """Writer of one run's synapses.nc."""

    def __init__(self, path: Union[str, os.PathLike], n_tasks: int, attrs: dict) -> None:
        self.path, self.n_tasks, self.attrs = Path(path), n_tasks, attrs

    def append_task(self, task: int, step_offset: int, rows: dict[str, np.ndarray],
                    gate_open_rate: np.ndarray, gate_score: np.ndarray,
                    calibration: Sequence[dict]) -> None:
        """Add task `task`'s recorded presentations and its evaluation.

        rows: the gates' consolidation rows ('position' within the task plus one (rows, n_tasks)
        array per variable); gate_open_rate, gate_score: (n_tasks, n_tasks) over (input_task,
        synapse); calibration: the gates' records after this task, one per trained synapse
        (keys synapse, K_eff, open_rate); synapses without a record are NaN.
        """
        k_eff, open_rate = self._per_synapse(calibration)
        steps = self._presentations(task, step_offset, rows)
        evaluation = self._evaluation(task, gate_open_rate, gate_score, k_eff, open_rate)
        if not self.path.exists():
            ds = io.annotate(xr.merge([steps, evaluation], compat="no_conflicts", join="exact"),
                             VOCABULARY, **self.attrs)
            io.save(ds, self.path, unlimited_dims=UNLIMITED)
            return
        io.append(self.path, steps, "step")
        io.append(self.path, evaluation, "after_task")

    def truncate(self, n_tasks_done: int) -> None:
        """Keep only tasks < n_tasks_done (resume after a crash between log and checkpoint).

        Starting over (0) removes any log there; otherwise the log must hold every task before
        n_tasks_done, or the resume is refused: the log is not in the checkpoints, so it cannot be
        rebuilt without relearning (RunError, one line, with the fix).
        """
        if n_tasks_done == 0:
            self.path.unlink(missing_ok=True)
            return
        relearn = (f"delete {self.path.parent / 'checkpoints'} and resume again to relearn every "
                   "task (same results) and rebuild it")
        if not self.path.exists():
            raise RunError(f"cannot resume: the synapse log {self.path} is missing while tasks "
                           f"0..{n_tasks_done - 1} are done; {relearn}")
        try:
            ds = io.load(self.path)
            done = set(int(t) for t in ds.after_task.values)
        except (ValueError, KeyError, AttributeError) as e:  # not a log (synsim.io's errors)
            raise RunError(f"cannot resume: the synapse log {self.path} is unreadable "
                           f"({type(e).__name__}: {one_line(e)[:120]}); {relearn}") from None
        missing = sorted(set(range(n_tasks_done)) - done)
        if missing:
            raise RunError(f"cannot resume: the synapse log {self.path} lacks task(s) {missing} "
                           f"of the {n_tasks_done} done; {relearn}")
        keep_steps, keep_after = ds.task.values < n_tasks_done, ds.after_task.values < n_tasks_done
        if keep_steps.all() and keep_after.all():
            return
        io.save(ds.isel(step=keep_steps, after_task=keep_after), self.path,
                unlimited_dims=UNLIMITED)

    def _per_synapse(self, calibration: Sequence[dict]) -> tuple[np.ndarray, np.ndarray]:
        """(K_eff, open_rate) as (n_tasks,) arrays over the synapses."""
        k_eff, open_rate = np.full(self.n_tasks, np.nan), np.full(self.n_tasks, np.nan)
        for c in calibration:
            k_eff[c["synapse"]], open_rate[c["synapse"]] = c["K_eff"], c["open_rate"]
        return k_eff, open_rate

    def _presentations(self, task, step_offset, rows) -> xr.Dataset:
        n = len(rows["position"])
        data = {name: (("step", "synapse"), rows[name].astype(
            bool if name == "functional" else np.float32)) for name in rows if name != "position"}
        return io.annotate(xr.Dataset(data, coords={
            "step": step_offset + np.asarray(rows["position"], dtype=np.int64),
            "task": ("step", np.full(n, task, dtype=np.int64)),
            **self._synapse_coords()}), VOCABULARY)

    def _evaluation(self, task, gate_open_rate, gate_score, k_eff, open_rate) -> xr.Dataset:
        grid, per = ("after_task", "input_task", "synapse"), ("after_task", "synapse")
        ds = xr.Dataset({
            "gate_open_rate": (grid, gate_open_rate[None].astype(np.float32)),
            "gate_score": (grid, gate_score[None].astype(np.float32)),
            "K_eff": (per, k_eff[None].astype(np.float64)),
            "calibrated_open_rate": (per, open_rate[None].astype(np.float32)),
        }, coords={"after_task": np.array([task], dtype=np.int64),
                   "input_task": np.arange(self.n_tasks, dtype=np.int64),
                   **self._synapse_coords()})
        return io.annotate(ds, VOCABULARY)

    def _synapse_coords(self) -> dict:
        index = np.arange(self.n_tasks, dtype=np.int64)
        return {"synapse": index, "synapse_task": ("synapse", index)}


def log_attrs(gate: str, config: dict, rule_attrs: dict) -> dict:
    """Global attributes of the log: the gate, the config as JSON and the rule's parameters."""
    return {"gate": gate, "config": json.dumps(config, default=str), "title": "artsy synapse log",
            **rule_attrs}
