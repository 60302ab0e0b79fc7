"""Joint closed-form task scorers on the frozen feature h0: the ngai gate's presynaptic drive
pre_t when `synapse.ngai.pre` is `lda` or `ridge` (docs/method.md §8.3).

Instead of T one-vs-rest MLPs, one T-way scorer: class scores s_c(h0) from running class
statistics of phi(h0), then pre_t = the softmax mass of task t's classes. The statistics
(sum of phi phi^T, class sums of phi, class counts) are sums over inputs, so each task adds its
own real features once and the result is exactly that of fitting on all tasks' inputs at once,
with no old input kept: exemplar-free whatever `synapse.negatives` says. phi is h0 itself, or a
seeded random ReLU projection of it (RanPAC-style random features, `random_features` wide).

- ``lda``: Gaussian classes with one shared covariance, shrunk towards a multiple of the
  identity (weight `shrinkage` in (0, 1]): s_c = phi^T S^-1 mu_c - mu_c^T S^-1 mu_c / 2.
- ``ridge``: ridge regression of one-hot targets, lambda = `shrinkage` * mean diagonal of the
  Gram matrix (scale-free): s = phi^T (G + lambda I)^-1 Q.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F


class JointScorer:
    """A T-way task scorer from exactly updated class statistics (float64, on the CPU)."""

    def __init__(self, kind: str, dim: int, shrinkage: float, temperature: float,
                 random_features: int = 0, seed: int = 0) -> None:
        if kind not in ("lda", "ridge"):
            raise ValueError(f"scorer kind {kind!r} unknown: expected 'lda' or 'ridge'")
        self.kind, self.dim, self.shrinkage, self.temperature = kind, dim, shrinkage, temperature
        self.random_features, self.seed = random_features, seed
        self.projection: Optional[torch.Tensor] = None
        if random_features:  # regenerated from the seed, never stored
            g = torch.Generator().manual_seed(seed)
            self.projection = torch.randn(dim, random_features, generator=g, dtype=torch.float64)
        width = random_features or dim
        self.gram = torch.zeros(width, width, dtype=torch.float64)
        self.sums = torch.zeros(0, width, dtype=torch.float64)  # (C, width), row = class label
        self.counts = torch.zeros(0, dtype=torch.float64)
        self.class_task = torch.zeros(0, dtype=torch.long)
        self.weight = torch.zeros(width, 0, dtype=torch.float64)  # the solved scorer
        self.bias = torch.zeros(0, dtype=torch.float64)

    def features(self, h0: torch.Tensor) -> torch.Tensor:
        x = h0.detach().to("cpu", torch.float64)
        return x if self.projection is None else torch.relu(x @ self.projection)

    def add(self, task: int, h0: torch.Tensor, labels: torch.Tensor) -> None:
        """Add task `task`'s inputs (real features, once) to the statistics and re-solve."""
        phi, labels = self.features(h0), labels.cpu().long()
        n_classes = max(int(labels.max()) + 1, len(self.counts))
        grow = n_classes - len(self.counts)
        self.sums = torch.cat([self.sums, self.sums.new_zeros(grow, self.sums.shape[1])])
        self.counts = torch.cat([self.counts, self.counts.new_zeros(grow)])
        self.class_task = torch.cat([self.class_task, self.class_task.new_full((grow,), -1)])
        self.gram += phi.T @ phi
        self.sums.index_add_(0, labels, phi)
        self.counts.index_add_(0, labels, torch.ones(len(labels), dtype=torch.float64))
        self.class_task[labels.unique()] = task
        self.solve()

    def solve(self) -> None:
        """The scorer of the current statistics (classes without inputs score -inf)."""
        seen = self.counts > 0
        eye = torch.eye(len(self.gram), dtype=torch.float64)
        if self.kind == "ridge":
            lam = self.shrinkage * self.gram.diagonal().mean().clamp_min(1e-12)
            self.weight = torch.linalg.solve(self.gram + lam * eye, self.sums.T)
            self.bias = torch.zeros(len(self.counts), dtype=torch.float64)
        else:
            mu = self.sums / self.counts.clamp_min(1).view(-1, 1)
            n, k = float(self.counts.sum()), int(seen.sum())
            within = (self.gram - (self.sums.T @ mu)) / max(n - k, 1.0)  # pooled class scatter
            within = (within + within.T) / 2
            scale = within.diagonal().mean().clamp_min(1e-12)
            cov = (1 - self.shrinkage) * within + self.shrinkage * scale * eye
            self.weight = torch.linalg.solve(cov, mu.T)
            self.bias = -0.5 * (mu * self.weight.T).sum(1)
        self.bias = torch.where(seen, self.bias, torch.full_like(self.bias, -torch.inf))

    def class_scores(self, h0: torch.Tensor) -> torch.Tensor:
        """(B, C) s_c(h0) over the classes seen so far."""
        return self.features(h0) @ self.weight + self.bias

    def task_probability(self, h0: torch.Tensor, n_tasks: int) -> torch.Tensor:
        """(B, n_tasks) pre_t: the softmax mass (at `temperature`) of each task's classes."""
        p = torch.softmax(self.class_scores(h0) / self.temperature, dim=1)
        return p @ F.one_hot(self.class_task.clamp_min(0), n_tasks).to(p)

    def state_dict(self) -> dict:
        return {"kind": self.kind, "gram": self.gram.clone(), "sums": self.sums.clone(),
                "counts": self.counts.clone(), "class_task": self.class_task.clone(),
                "weight": self.weight.clone(), "bias": self.bias.clone()}

    def load_state_dict(self, state: dict) -> None:
        if state["kind"] != self.kind:
            raise ValueError(f"checkpoint holds a {state['kind']!r} scorer, this run uses "
                             f"{self.kind!r}")
        for name in ("gram", "sums", "counts", "class_task", "weight", "bias"):
            setattr(self, name, state[name].clone())
