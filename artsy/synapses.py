"""The per-task gates m_t over the sub-networks (method.md §7-8, A5-A8; architecture.md, "The
bridge").

One interface, four modes, so the learner never branches on the mode:

- ``none``   (EASE): every seen sub-network is on;
- ``mlp``    (the paper): m_t = [sigmoid(S_t(h0)) >= thr], S_t a two-layer MLP on h0 = E_0(x);
- ``ngai``   (this project): m_t = the functional state of a modelled synapse after one presentation
  from rest (synsim.rule), driven by pre_t = sigmoid(S_t(h0)) and a depolarisation signal;
- ``oracle`` : the true task's gate only (the upper bound; needs labels).

The learner calls, per task t: ``add_task`` (the task's frozen features), ``fit`` (train the
synapses, calibrate), ``consolidate`` (present the task's inputs one by one and return the rows of
the synapse log); at inference ``decide``. A8: when no gate opens, the one with the largest score
opens (``fallback: argmax``); several open gates are all kept.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from synsim.rule import ReceptorRule, RuleParams

from .config import ConfigError, SynapseConfig

GATES = ("none", "mlp", "ngai", "oracle")
LOG_ROWS_PER_TASK = 500  # default cap of the synapse log's rows per task (record_every: null)
LOG_VARIABLES = ("pre", "depolarisation", "mg_block", "calcium", "ampa", "functional")


class SynapseMLP(nn.Module):
    """S_t = Linear(d, hidden) -> ReLU -> Linear(hidden, 1): the logit of "x is of task t" (A5)."""

    def __init__(self, dim: int, hidden: int = 256) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, h0: torch.Tensor) -> torch.Tensor:
        return self.net(h0).squeeze(-1)


def train_synapse(mlp: SynapseMLP, pos: torch.Tensor, neg: torch.Tensor, cfg: SynapseConfig,
                  generator: torch.Generator) -> None:
    """Class-balanced BCE (pos_weight = #neg / #pos), Adam, cfg.epochs passes (method.md §6.5)."""
    device = next(mlp.parameters()).device
    x = torch.cat([pos, neg]).float()
    y = torch.cat([torch.ones(len(pos)), torch.zeros(len(neg))])
    loss_fn = nn.BCEWithLogitsLoss(pos_weight=torch.tensor(len(neg) / len(pos), device=device))
    opt = torch.optim.Adam(mlp.parameters(), lr=cfg.lr)
    mlp.train()
    for _ in range(cfg.epochs):
        order = torch.randperm(len(x), generator=generator)
        for batch in order.split(cfg.batch_size):
            loss = loss_fn(mlp(x[batch].to(device)), y[batch].to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    mlp.eval()


def prototype_share(features: torch.Tensor, prototypes: torch.Tensor, class_task: torch.Tensor,
                    n_tasks: int, temperature: float) -> torch.Tensor:
    """(B, n_tasks): each task's share of a softmax over cosine similarities to all prototypes.

    This is "the network's agreement with task t": near 1 when x looks like task t's classes.
    """
    prototypes = prototypes.to(features.device)
    cos = F.normalize(features.float(), dim=1) @ F.normalize(prototypes.float(), dim=1).T
    p = torch.softmax(cos / temperature, dim=1)
    return p @ F.one_hot(class_task.to(p.device), n_tasks).to(p)


def record_positions(n: int, every: Optional[int]) -> np.ndarray:
    """The presentations the log keeps: every k-th (default k = ceil(n / 500)) and the last."""
    k = every or max(1, math.ceil(n / LOG_ROWS_PER_TASK))
    return np.union1d(np.arange(0, n, k), [n - 1])


def presentation_order(n: int, seed: int) -> np.ndarray:
    """The fixed, seeded order in which a task's training inputs are presented to the synapses."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed)).numpy()


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


class FeatureMemory:
    """What the synapses keep of each task's inputs to train and calibrate on later (A6).

    ``cache``: the frozen features h0 of every training image (feature replay, not exemplar-free).
    ``gaussian``: per-class diagonal Gaussians N(mu_c, sigma_c^2) of h0 only (exemplar-free); old
    tasks are then represented by as many seeded samples per class as the class had images. The
    current task always uses its real features. ``keep_own`` also caches E_t(x) of task t's inputs
    (needed by the own_prototype depolarisation).
    """

    def __init__(self, negatives: str, keep_own: bool = False) -> None:
        self.negatives, self.keep_own = negatives, keep_own
        self.h0: dict[int, torch.Tensor] = {}
        self.own: dict[int, torch.Tensor] = {}
        self.stats: dict[int, dict[str, torch.Tensor]] = {}
        self.current: Optional[tuple[int, torch.Tensor]] = None

    def add(self, task: int, h0: torch.Tensor, labels: torch.Tensor,
            own: Optional[torch.Tensor] = None) -> None:
        h0, labels = h0.float().cpu(), labels.cpu()
        classes = labels.unique()
        onehot = (labels.view(-1, 1) == classes.view(1, -1)).float()
        counts = onehot.sum(0)
        mean = onehot.T @ h0 / counts.view(-1, 1)
        var = onehot.T @ (h0 - mean[torch.searchsorted(classes, labels)]) ** 2 / counts.view(-1, 1)
        self.stats[task] = {"classes": classes, "mean": mean, "std": var.sqrt(),
                            "count": counts.long()}
        self.current = (task, h0)
        if self.negatives == "cache":
            self.h0[task] = h0
        if self.keep_own:
            if own is None:
                raise ValueError("this memory keeps the sub-network's own features: pass own")
            self.own[task] = own.float().cpu()

    def features(self, task: int, generator: torch.Generator) -> torch.Tensor:
        """h0 features for task `task`: real if cached or current, else Gaussian samples."""
        if task in self.h0:
            return self.h0[task]
        if self.current is not None and self.current[0] == task:
            return self.current[1]
        s = self.stats[task]
        mean = s["mean"].repeat_interleave(s["count"], dim=0)
        std = s["std"].repeat_interleave(s["count"], dim=0)
        return mean + std * torch.randn(mean.shape, generator=generator)

    def task_state(self, task: int) -> dict:
        """What a checkpoint stores of task `task` (no raw features in gaussian mode)."""
        return {"stats": self.stats[task], "h0": self.h0.get(task), "own": self.own.get(task)}

    def load_task_state(self, task: int, state: dict) -> None:
        self.stats[task] = state["stats"]
        if state["h0"] is not None:
            self.h0[task] = state["h0"]
        if state["own"] is not None:
            self.own[task] = state["own"]


class Gates:
    """Mode ``none`` (EASE: every seen sub-network is on) and the interface of all modes."""

    mode = "none"
    needs_h0 = False  # decide() reads h0 = E_0(x): one extra backbone pass per input
    needs_own = False  # decide() reads every E_t(x) first: no sub-network pass is skipped

    def rule_attrs(self) -> dict:
        """The receptor rule's parameters for the synapse log (only ngai has a rule)."""
        return {}

    def __init__(self, cfg: SynapseConfig, dim: int, n_tasks: int,
                 device: torch.device | str = "cpu") -> None:
        self.cfg, self.dim, self.n_tasks = cfg, dim, n_tasks
        self.device = torch.device(device)
        self.calibration: list[dict] = []  # one entry per (after_task, synapse)

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
    def decide(self, n_seen: int, h0: Optional[torch.Tensor] = None,
               task_ids: Optional[torch.Tensor] = None, own=None, bank=None,
               class_task: Optional[torch.Tensor] = None, batch: Optional[int] = None
               ) -> GateDecision:
        """The gates of the `n_seen` seen sub-networks for a batch of inputs."""
        d = self._decide(n_seen, h0, task_ids, own, bank, class_task, batch)
        d.open = apply_fallback(d.raw, self._fallback_score(d), self.cfg.fallback)
        return d

    def _decide(self, n_seen, h0, task_ids, own, bank, class_task, batch) -> GateDecision:
        n = batch if batch is not None else len(next(t for t in (h0, task_ids) if t is not None))
        raw = torch.ones(n, n_seen, dtype=torch.bool)
        return GateDecision(open=raw, raw=raw, score=raw.float())

    def _fallback_score(self, d: GateDecision) -> torch.Tensor:
        return d.score

    # --- the synapse log ---
    def consolidate(self, task: int, n_inputs: int, h0: Optional[torch.Tensor], own, bank,
                    class_task: torch.Tensor, seed: int) -> dict[str, np.ndarray]:
        """Present task `task`'s training inputs one by one (seeded order); return recorded rows.

        Stateless gates record each presentation's gate as `functional` and the soft score as
        `pre`; the receptor variables do not apply (NaN). Synapses of later tasks are silent.
        """
        order = presentation_order(n_inputs, seed)
        keep = record_positions(n_inputs, self.cfg.record_every)
        rows = self._empty_rows(keep)
        idx = torch.as_tensor(order[keep])
        n_seen = task + 1
        d = self.decide(n_seen, h0=None if h0 is None else h0[idx],
                        task_ids=torch.full((len(keep),), task), bank=bank, class_task=class_task,
                        own=None if own is None else [o[idx] for o in own], batch=len(keep))
        rows["pre"][:, :n_seen] = d.score.numpy()
        rows["functional"][:, :n_seen] = d.raw.numpy()
        return rows

    def _empty_rows(self, keep: np.ndarray) -> dict[str, np.ndarray]:
        shape = (len(keep), self.n_tasks)
        rows = {name: np.full(shape, np.nan) for name in LOG_VARIABLES if name != "functional"}
        rows["functional"] = np.zeros(shape, dtype=bool)
        rows["position"] = keep
        return rows

    # --- checkpoints ---
    def state_dict(self) -> dict:
        return {"mode": self.mode, "calibration": list(self.calibration)}

    def load_state_dict(self, state: dict) -> None:
        if state["mode"] != self.mode:
            raise ValueError(f"checkpoint holds {state['mode']!r} gates, this run uses "
                             f"{self.mode!r}")
        self.calibration = list(state["calibration"])

    def task_state(self, task: int) -> dict:
        return {}

    def load_task_state(self, task: int, state: dict) -> None:
        pass


class OracleGates(Gates):
    """The true task's gate only: the upper bound of any learned routing (needs labels)."""

    mode = "oracle"

    def _decide(self, n_seen, h0, task_ids, own, bank, class_task, batch) -> GateDecision:
        raw = F.one_hot(task_ids.long().cpu(), n_seen).bool()
        return GateDecision(open=raw, raw=raw, score=raw.float())


class MLPGates(Gates):
    """The paper's gate: m_t = [c_t >= thr], c_t = sigmoid(S_t(h0)) (A5-A7).

    Synapses to train at task t (A7): none at t = 0 (no negatives; m_0 = 1 until task 1); then all
    S_i, i <= t, one-vs-rest (``retrain: all``), or each synapse once, at the first task where it
    has negatives (``retrain: new_only``: S_0 and S_1 at task 1, S_t at task t). An untrained
    synapse scores 1.
    """

    mode = "mlp"
    needs_h0 = True

    def __init__(self, cfg: SynapseConfig, dim: int, n_tasks: int,
                 device: torch.device | str = "cpu", keep_own: bool = False) -> None:
        super().__init__(cfg, dim, n_tasks, device)
        self.memory = FeatureMemory(cfg.negatives, keep_own)
        self.mlps: dict[int, SynapseMLP] = {}

    def add_task(self, task, h0, labels, own=None) -> None:
        self.memory.add(task, h0, labels, own)

    def to_train(self, task: int) -> list[int]:
        if task == 0:
            return []
        if self.cfg.retrain == "all":
            return list(range(task + 1))
        return [0, 1] if task == 1 else [task]

    def fit(self, task, bank, class_task, seed) -> list[dict]:
        generator = torch.Generator().manual_seed(seed)
        torch.manual_seed(seed)  # the initial weights of new synapses
        feats = {i: self.memory.features(i, generator) for i in range(task + 1)}
        for i in self.to_train(task):
            neg = torch.cat([feats[j] for j in range(task + 1) if j != i])
            if i not in self.mlps:
                self.mlps[i] = SynapseMLP(self.dim, self.cfg.hidden).to(self.device)
            train_synapse(self.mlps[i], feats[i], neg, self.cfg, generator)
        records = [self._calibrate(task, i, feats[i], bank, class_task, self.memory.own.get(i))
                   for i in range(task + 1)]
        self.calibration += records
        return records

    def _calibrate(self, task, i, h0, bank, class_task, i_own=None) -> dict:
        """The share of task i's own training inputs that open gate i (no calibration for mlp)."""
        rate = float((self.pre(h0, task + 1)[:, i] >= self.cfg.thr).double().mean())
        return {"after_task": task, "synapse": i, "K_eff": math.nan, "target_open_rate": math.nan,
                "open_rate": rate}

    @torch.no_grad()
    def pre(self, h0: torch.Tensor, n_seen: int) -> torch.Tensor:
        """(B, n_seen) c_t = sigmoid(S_t(h0)); 1 for a synapse not trained yet."""
        out = torch.ones(len(h0), n_seen)
        for i in range(n_seen):
            if i in self.mlps:
                out[:, i] = torch.sigmoid(self.mlps[i](h0.float().to(self.device))).float().cpu()
        return out

    def _decide(self, n_seen, h0, task_ids, own, bank, class_task, batch) -> GateDecision:
        c = self.pre(h0, n_seen)
        return GateDecision(open=c >= self.cfg.thr, raw=c >= self.cfg.thr, score=c)

    def state_dict(self) -> dict:
        return {**super().state_dict(), "mlps": {i: m.state_dict() for i, m in self.mlps.items()}}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.mlps = {}
        for i, sd in state["mlps"].items():
            self.mlps[i] = SynapseMLP(self.dim, self.cfg.hidden).to(self.device)
            self.mlps[i].load_state_dict(sd)
            self.mlps[i].eval()

    def task_state(self, task: int) -> dict:
        return self.memory.task_state(task)

    def load_task_state(self, task: int, state: dict) -> None:
        self.memory.load_task_state(task, state)


class NgaiGates(MLPGates):
    """The receptor-rule gate (architecture.md, "The bridge"; synsim-model.md §5.5).

    pre_t = sigmoid(S_t(h0)); depolarisation_t = task t's share of a softmax over cosine
    similarities to all seen class prototypes: of h0 against the PTM prototypes
    (``prototype_share``), or of E_t(x) against subspace t's prototypes (``own_prototype``, which
    costs every sub-network's forward pass). The gate is ReceptorRule.gate: functional after one
    presentation from rest, i.e. K * gain_t * pre_t * B(V_t) > theta_p. gain_t is calibrated after
    every task so that a share ``target_open_rate`` of task t's own training inputs opens gate t.
    The consolidated state (calcium, ampa) of every synapse is carried over all presentations of
    all tasks: each synapse unsilences when its own task is learned and keeps that state.
    """

    mode = "ngai"

    def __init__(self, cfg: SynapseConfig, dim: int, n_tasks: int,
                 device: torch.device | str = "cpu") -> None:
        ngai = cfg.ngai
        own = ngai.depolarisation == "own_prototype"
        if own and cfg.negatives != "cache":
            raise ConfigError("synapse.ngai.depolarisation='own_prototype' needs "
                              "synapse.negatives='cache': it calibrates on cached sub-network "
                              "features of each task's inputs")
        if not 0 < ngai.target_open_rate < 1:
            raise ConfigError(f"config key 'synapse.ngai.target_open_rate': expected a value in "
                              f"(0, 1) for calibration, got {ngai.target_open_rate}")
        if not ngai.prototype_temperature > 0:
            raise ConfigError("config key 'synapse.ngai.prototype_temperature': expected a value "
                              f"> 0, got {ngai.prototype_temperature}")
        super().__init__(cfg, dim, n_tasks, device, keep_own=own)
        self.needs_own = own
        self.rule = ReceptorRule(RuleParams(delta_ms=ngai.delta_ms, v_rest_mV=ngai.v_rest_mV,
                                            dv_mV=ngai.dv_mV, carry_over=ngai.carry_over))
        if not self.rule.opens_from_rest_when_above_theta_p():
            raise ConfigError(f"config key 'synapse.ngai.delta_ms': a window of "
                              f"{self.rule.params.window_ms} ms is too short for one presentation "
                              "to unsilence a synapse (synsim-model.md §5.5)")
        self.gain = np.ones(n_tasks)  # K_t = K * gain_t
        self.calcium = np.zeros(n_tasks)  # the consolidated state, carried over presentations
        self.ampa = np.zeros(n_tasks)

    @property
    def K(self) -> float:
        return self.rule.params.synapse.K

    def depolarisation(self, n_seen, h0, own, bank, class_task) -> torch.Tensor:
        """(B, n_seen) in [0, 1]: the network's agreement with each seen task."""
        temp = self.cfg.ngai.prototype_temperature
        if not self.needs_own:
            return prototype_share(h0, bank.ptm_prototypes, class_task, n_seen, temp).cpu()
        return torch.stack([prototype_share(own[t], bank.prototypes[:, t], class_task, n_seen,
                                            temp)[:, t] for t in range(n_seen)], dim=1).cpu()

    def _decide(self, n_seen, h0, task_ids, own, bank, class_task, batch) -> GateDecision:
        pre = self.pre(h0, n_seen).double()
        dep = self.depolarisation(n_seen, h0, own, bank, class_task).double()
        gain = torch.as_tensor(self.gain[:n_seen])
        raw = self.rule.gate(pre, dep, gain)
        return GateDecision(open=raw, raw=raw, score=pre.float(), depolarisation=dep.float(),
                            mg_block=self.rule.mg_block(dep).float())

    def _fallback_score(self, d: GateDecision) -> torch.Tensor:
        """The drive K * gain_t * pre_t * B_t (its margin above theta_p decides the gate)."""
        n = d.score.shape[1]
        return self.K * torch.as_tensor(self.gain[:n]).float() * d.score * d.mg_block

    def _calibrate(self, task, i, h0, bank, class_task, i_own=None) -> dict:
        n_seen, temp = task + 1, self.cfg.ngai.prototype_temperature
        pre = self.pre(h0, n_seen)[:, i].double().numpy()
        if self.needs_own:  # E_i(x) of task i's inputs against subspace i's prototypes
            dep = prototype_share(i_own, bank.prototypes[:, i], class_task, n_seen, temp)[:, i]
        else:
            dep = prototype_share(h0, bank.ptm_prototypes, class_task, n_seen, temp)[:, i]
        dep = dep.double().cpu().numpy()
        target = self.cfg.ngai.target_open_rate
        if self.cfg.ngai.calibrate:
            self.gain[i] = self.rule.gain_for_open_rate(pre, dep, target)
        rate = float(self.rule.gate(pre, dep, self.gain[i]).mean())
        return {"after_task": task, "synapse": i, "K_eff": self.K * float(self.gain[i]),
                "target_open_rate": target, "open_rate": rate}

    def consolidate(self, task, n_inputs, h0, own, bank, class_task, seed) -> dict[str, np.ndarray]:
        """Every presentation is one rule.step for all seen synapses (each with its own pre,
        depolarisation and gain); every k-th is recorded. Later tasks' synapses rest (C = rho = 0).
        """
        n_seen = task + 1
        order = presentation_order(n_inputs, seed)
        keep = record_positions(n_inputs, self.cfg.record_every)
        pre = self.pre(h0, n_seen).double().numpy()
        dep = self.depolarisation(n_seen, h0, own, bank, class_task).double().numpy()
        gain = self.gain[:n_seen]
        calcium, ampa = self.calcium[:n_seen].copy(), self.ampa[:n_seen].copy()
        rows = self._empty_rows(keep)
        rows["calcium"][:], rows["ampa"][:] = self.calcium, self.ampa
        r = 0
        for k, idx in enumerate(order):
            out = self.rule.step(calcium, ampa, pre[idx], dep[idx], gain)
            calcium, ampa = out["calcium"], out["ampa"]
            if r < len(keep) and keep[r] == k:
                for name in LOG_VARIABLES:
                    value = {"pre": pre[idx], "depolarisation": dep[idx]}.get(name)
                    rows[name][r, :n_seen] = out[name] if value is None else value
                r += 1
        self.calcium[:n_seen], self.ampa[:n_seen] = calcium, ampa
        return rows

    def state_dict(self) -> dict:
        return {**super().state_dict(), "gain": torch.from_numpy(self.gain.copy()),
                "calcium": torch.from_numpy(self.calcium.copy()),
                "ampa": torch.from_numpy(self.ampa.copy())}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.gain = state["gain"].double().numpy().copy()
        self.calcium = state["calcium"].double().numpy().copy()
        self.ampa = state["ampa"].double().numpy().copy()

    def rule_attrs(self) -> dict:
        """The rule's parameters and the calibration settings, for the synapse log's attributes."""
        ngai = self.cfg.ngai
        return {**self.rule.params.as_attrs(), "depolarisation": ngai.depolarisation,
                "prototype_temperature": ngai.prototype_temperature,
                "target_open_rate": ngai.target_open_rate, "calibrate": ngai.calibrate}


def make_gates(cfg: SynapseConfig, dim: int, n_tasks: int,
               device: torch.device | str = "cpu") -> Gates:
    """The gates of `cfg.gate` for `n_tasks` sub-networks of feature width `dim`."""
    if cfg.input != "h0":
        raise NotImplementedError("synapse.input='own' (synapses reading E_t(x), A4) is not "
                                  "implemented; use synapse.input='h0'")
    kinds = {"none": Gates, "oracle": OracleGates, "mlp": MLPGates, "ngai": NgaiGates}
    return kinds[cfg.gate](cfg, dim, n_tasks, device)
