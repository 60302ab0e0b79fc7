"""The interface every gate implements, what it is given and what it answers (docs/method.md §7-8).

The learner calls, per task t: ``add_task`` (the task's frozen features), ``fit`` (train the
synapses, calibrate), ``consolidate`` (present the task's inputs one by one and return the rows of
the synapse log); at inference ``decide``. A8: when no gate opens, the one with the largest score
opens (``fallback: argmax``); several open gates are all kept.

What a gate reads and costs (``cost``) and its own config checks (``check_config``) are class
facts, known from the config without building the gate: the dry run and the config validation
read them.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, replace
from typing import ClassVar, Optional

import numpy as np
import torch
import torch.nn.functional as F

from ..config import SynapseConfig
from ..synapse_log import empty_rows, record_positions


@dataclass(frozen=True)
class GateCost:
    """What a gate reads at inference and how many sub-networks then run."""

    needs_h0: bool = False  # decide() reads h0 = E_0(x): one extra backbone pass per input
    needs_own: bool = False  # decide() reads every E_t(x) first: no sub-network pass is skipped
    needs_labels: bool = False  # decide() reads each input's true task (the upper bound only)
    fewest_open: Optional[int] = None  # sub-networks run per input at best; None: every seen one
    most_open: Optional[int] = None  # sub-networks run per input at worst; None: every seen one
    # h0 carries the pooled outputs of the backbone's last h0_stages stages after E_0(x)
    h0_stages: int = 0

    def eval_passes(self, n_seen: int, n: int) -> tuple[int, int]:
        """(lo, hi): the sub-network forward passes to evaluate `n` inputs with `n_seen` seen
        sub-networks (the PTM pass for h0 is counted apart)."""
        if self.needs_own:
            return n_seen * n, n_seen * n
        lo = n_seen if self.fewest_open is None else self.fewest_open
        hi = n_seen if self.most_open is None else self.most_open
        return lo * n, hi * n


@dataclass
class GateInputs:
    """What a gate may read about a batch of inputs; each gate reads what its cost declares."""

    h0: Optional[torch.Tensor] = None  # (B, d) frozen features E_0(x)
    task_ids: Optional[torch.Tensor] = None  # (B,) the true task of each input
    own: Optional[list[torch.Tensor]] = None  # E_t(x) for every seen sub-network t
    bank: object = None  # the PrototypeBank
    class_task: Optional[torch.Tensor] = None  # task index of every seen class
    batch: Optional[int] = None  # the number of inputs, when neither h0 nor task_ids tells

    @property
    def size(self) -> int:
        if self.batch is not None:
            return self.batch
        return len(next(t for t in (self.h0, self.task_ids) if t is not None))

    def select(self, idx: torch.Tensor, task_ids: torch.Tensor) -> GateInputs:
        """The inputs at `idx`, labelled with `task_ids`."""
        return replace(self, h0=None if self.h0 is None else self.h0[idx], task_ids=task_ids,
                       own=None if self.own is None else [o[idx] for o in self.own],
                       batch=len(idx))


@dataclass
class GateDecision:
    """Per input (rows) and seen synapse (columns)."""

    open: torch.Tensor  # bool, after the fallback: the sub-networks that run
    raw: torch.Tensor  # bool, the gates' own decision
    score: torch.Tensor  # the soft score c_t (1 for none, 1/0 for oracle)
    depolarisation: Optional[torch.Tensor] = None  # ngai only
    mg_block: Optional[torch.Tensor] = None  # ngai only


def apply_fallback(raw: torch.Tensor, score: torch.Tensor, fallback: str) -> torch.Tensor:
    """A8: where no gate is open, open the one with the largest score."""
    if fallback == "none" or raw.shape[1] == 0:
        return raw
    closed = ~raw.any(dim=1)
    if not bool(closed.any()):
        return raw
    best = F.one_hot(score.argmax(dim=1), raw.shape[1]).bool()
    return raw | (best & closed.view(-1, 1))


def presentation_order(n: int, seed: int) -> np.ndarray:
    """The fixed, seeded order in which a task's training inputs are presented to the synapses."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed)).numpy()


class Gate(ABC):
    """The gates m_t of all n_tasks sub-networks. The defaults are those of a stateless gate,
    which learns nothing and has no receptor state."""

    name: ClassVar[str]  # the value of synapse.gate

    @classmethod
    def cost(cls, cfg: SynapseConfig) -> GateCost:
        """What this gate reads and how many sub-networks run, under `cfg`."""
        return GateCost()

    @classmethod
    def check_config(cls, cfg: SynapseConfig) -> None:
        """Raise a one-line ConfigError for settings this gate cannot run with."""

    def __init__(self, cfg: SynapseConfig, dim: int, n_tasks: int,
                 device: torch.device | str = "cpu") -> None:
        self.cfg, self.dim, self.n_tasks = cfg, dim, n_tasks
        self.device = torch.device(device)
        self.calibration: list[dict] = []  # one entry per (after_task, synapse)

    @property
    def needs_h0(self) -> bool:
        return self.cost(self.cfg).needs_h0

    @property
    def needs_own(self) -> bool:
        return self.cost(self.cfg).needs_own

    def rule_attrs(self) -> dict:
        """The receptor rule's parameters for the synapse log (only ngai has a rule)."""
        return {}

    # --- training ---
    def add_task(self, task: int, h0: Optional[torch.Tensor], labels: torch.Tensor,
                 own: Optional[torch.Tensor] = None) -> None:
        """The frozen features of task `task`'s training inputs (eval transform)."""

    def fit(self, task: int, bank, class_task: torch.Tensor, seed: int) -> list[dict]:
        """Train and calibrate the synapses after task `task`; returns one record per synapse."""
        records = [{"after_task": task, "synapse": i, "K_eff": math.nan,
                    "target_open_rate": math.nan, "open_rate": 1.0} for i in range(task + 1)]
        self.calibration += records
        return records

    # --- inference ---
    def decide(self, n_seen: int, inputs: GateInputs) -> GateDecision:
        """The gates of the `n_seen` seen sub-networks for a batch of inputs."""
        d = self._decide(n_seen, inputs)
        d.open = apply_fallback(d.raw, self._fallback_score(d), self.cfg.fallback)
        return d

    @abstractmethod
    def _decide(self, n_seen: int, inputs: GateInputs) -> GateDecision:
        """The gates' own decision, before the fallback."""

    def _fallback_score(self, d: GateDecision) -> torch.Tensor:
        return d.score

    # --- the synapse log ---
    def consolidate(self, task: int, inputs: GateInputs, seed: int) -> dict[str, np.ndarray]:
        """Present task `task`'s training inputs one by one (seeded order); return recorded rows.

        Stateless gates record each presentation's gate as `functional` and the soft score as
        `pre`; the receptor variables do not apply (NaN). Synapses of later tasks are silent.
        """
        n_inputs = inputs.size
        order = presentation_order(n_inputs, seed)
        keep = record_positions(n_inputs, self.cfg.record_every)
        rows = empty_rows(keep, self.n_tasks)
        idx = torch.as_tensor(order[keep])
        n_seen = task + 1
        d = self.decide(n_seen, inputs.select(idx, torch.full((len(keep),), task)))
        rows["pre"][:, :n_seen] = d.score.numpy()
        rows["functional"][:, :n_seen] = d.raw.numpy()
        return rows

    # --- checkpoints ---
    def state_dict(self) -> dict:
        return {"mode": self.name, "calibration": list(self.calibration)}

    def load_state_dict(self, state: dict) -> None:
        if state["mode"] != self.name:
            raise ValueError(f"checkpoint holds {state['mode']!r} gates, this run uses "
                             f"{self.name!r}")
        self.calibration = list(state["calibration"])

    def task_state(self, task: int) -> dict:
        return {}

    def load_task_state(self, task: int, state: dict) -> None:
        pass
