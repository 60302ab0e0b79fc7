"""Mode ``mlp`` (the paper): m_t = [c_t >= thr], c_t = sigmoid(S_t(h0)), S_t a two-layer MLP on
the frozen feature h0 = E_0(x) (docs/method.md §7-8, A5-A7)."""

from __future__ import annotations

import math

import torch
from torch import nn

from ..config import SynapseConfig
from .base import Gate, GateCost, GateDecision, GateInputs
from .memory import FeatureMemory


class SynapseMLP(nn.Module):
    """S_t = Linear(d, hidden) -> ReLU -> Linear(hidden, 1): the logit of "x is of task t" (A5)."""

    def __init__(self, dim: int, hidden: int = 256) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, h0: torch.Tensor) -> torch.Tensor:
        return self.net(h0).squeeze(-1)


def train_synapse(mlp: SynapseMLP, pos: torch.Tensor, neg: torch.Tensor, cfg: SynapseConfig,
                  generator: torch.Generator) -> None:
    """Class-balanced BCE (pos_weight = #neg / #pos), Adam, cfg.epochs passes
    (docs/method.md §6.5)."""
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


class MLPGate(Gate):
    """The paper's gate (A5-A7): one MLP synapse S_t per task, trained one-vs-rest on h0.

    Synapses to train at task t (A7): none at t = 0 (no negatives; m_0 = 1 until task 1); then all
    S_i, i <= t, one-vs-rest (``retrain: all``), or each synapse once, at the first task where it
    has negatives (``retrain: new_only``: S_0 and S_1 at task 1, S_t at task t). An untrained
    synapse scores 1.
    """

    name = "mlp"

    @classmethod
    def cost(cls, cfg: SynapseConfig) -> GateCost:
        return GateCost(needs_h0=True, fewest_open=1)  # one open gate per input at best

    def __init__(self, cfg: SynapseConfig, dim: int, n_tasks: int,
                 device: torch.device | str = "cpu") -> None:
        super().__init__(cfg, dim, n_tasks, device)
        self.memory = FeatureMemory(cfg.negatives, keep_own=self.needs_own)
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

    def _decide(self, n_seen: int, inputs: GateInputs) -> GateDecision:
        c = self.pre(inputs.h0, n_seen)
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
