"""Method ``ranpac``: RanPAC's closed-form classifier (McDonnell et al., NeurIPS 2023) on the frozen
backbone, without RanPAC's first-session adaptation (its adapter training on task 0 is left out:
E_0 stays as pre-trained, as in every other row of the comparison).

- A fixed random projection W (d x M, N(0, 1) entries, seeded by run.seed) and a ReLU lift each
  frozen feature: phi = ReLU(h0 W).
- Running statistics G = sum phi phi^T (M x M) and C = sum phi y^T (M x classes, y one-hot) are
  added to exactly after each task: no image or feature is kept (exemplar-free), and the sums do
  not depend on the order in which the inputs arrive.
- Read-out W_o = (G + lambda I)^-1 C; logits = phi W_o. lambda is `ranpac.ridge`, or as in
  RanPAC chosen per task from 10^-8 ... 10^8 by fitting on a seeded share 1 - `val_share` of the
  task's own training inputs and scoring the mean squared error on the rest: training data only.
- Where we differ (a switch, `ranpac.ridge_floor`): the read-out's solve uses
  max(lambda, ridge_floor * trace(G)). With fewer inputs than M (small data), G is rank-deficient
  with eigenvalues up to ~1e9; RanPAC's 10^-8 then makes (G + lambda I) too ill-conditioned for a
  float64 LU solve, which returns noise (digits, seed 1995: 11.4 % after the last task, 93.9 %
  with the floor; the validation's own formula is exact and unaffected). `ridge_floor: 0` is
  RanPAC as published.

The state is G and C in float64: a checkpoint holds M^2 x 8 bytes (200 MB at M = 5000).
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np
import torch
import torch.nn.functional as F

from ..config import Config
from ..errors import ConfigError, DataError
from .base import stage_seed
from .frozen import FrozenFeatureLearner

RIDGES = tuple(10.0 ** np.arange(-8, 9))  # RanPAC's candidate lambdas


def ridge_by_validation(fit: torch.Tensor, y_fit: torch.Tensor, val: torch.Tensor,
                        y_val: torch.Tensor, ridges=RIDGES) -> float:
    """The lambda whose ridge fit on (fit, y_fit) has the least mean squared error on (val, y_val).

    Exactly RanPAC's (G_fit + lambda I)^-1 C_fit for every lambda, from one eigendecomposition:
    of the n x n kernel fit fit^T when there are fewer inputs n than features (the push-through
    identity), else of the M x M Gram matrix. The first of equal errors wins.
    """
    if len(fit) <= fit.shape[1]:
        s, u = torch.linalg.eigh(fit @ fit.T)
        left, right = val @ fit.T @ u, u.T @ y_fit
    else:
        s, u = torch.linalg.eigh(fit.T @ fit)
        left, right = val @ u, u.T @ (fit.T @ y_fit)
    s = s.clamp_min(0)  # a Gram matrix is positive semi-definite; rounding can dip below 0
    losses = [float(((left / (s + r)) @ right - y_val).pow(2).mean()) for r in ridges]
    return float(ridges[int(np.argmin(np.nan_to_num(losses, nan=np.inf)))])


class RanPAC(FrozenFeatureLearner):
    """Random ReLU projection of h0 and a ridge read-out of its exact running statistics."""

    name = "ranpac"

    @classmethod
    def check_config(cls, cfg: Config) -> None:
        r = cfg.ranpac
        if not 0 < r.val_share < 1:
            raise ConfigError(f"config key 'ranpac.val_share': expected a value in (0, 1) to hold "
                              f"out for choosing lambda, got {r.val_share}")
        if r.ridge is not None and not r.ridge > 0:
            raise ConfigError(f"config key 'ranpac.ridge': expected a value > 0, or null to "
                              f"choose it on held-out training inputs, got {r.ridge}")

    def __init__(self, cfg: Config, data: Any, progress: Optional[bool] = None) -> None:
        super().__init__(cfg, data, progress)
        m = cfg.ranpac.m
        generator = torch.Generator().manual_seed(stage_seed(cfg.run.seed, -1, "projection"))
        self.projection = torch.randn(self.dim, m, generator=generator).double().to(self.device)
        self.gram = torch.zeros(m, m, dtype=torch.float64, device=self.device)
        self.targets = torch.zeros(m, 0, dtype=torch.float64, device=self.device)
        self.ridges: list[float] = []  # the lambda of each task; the last one reads out
        self._readout: Optional[torch.Tensor] = None  # W_o, solved once per task

    def lift(self, h0: torch.Tensor) -> torch.Tensor:
        """phi = ReLU(h0 W), float64."""
        return F.relu(h0.to(self.device, torch.float64) @ self.projection)

    def _fit(self, task: int, h0: torch.Tensor, labels: torch.Tensor) -> None:
        classes = self.data.task_classes(task)
        if classes[0] != self.targets.shape[1]:
            raise RuntimeError(f"task {task} starts at class {classes[0]}, the classifier holds "
                               f"{self.targets.shape[1]} classes")
        phi = self.lift(h0)
        y = F.one_hot(labels - classes[0], len(classes)).to(phi)
        self.gram += phi.T @ phi
        self.targets = torch.cat([self.targets, phi.T @ y], dim=1)
        ridge = self.cfg.ranpac.ridge
        self.ridges.append(ridge if ridge is not None else self._choose_ridge(task, phi, y))
        self._readout = None
        self.readout()  # the solve belongs to learning the task (and its train_time_s)

    def _choose_ridge(self, task: int, phi: torch.Tensor, y: torch.Tensor) -> float:
        """RanPAC's choice on the task's training inputs: a seeded split, fit and held-out."""
        share = self.cfg.ranpac.val_share
        n = len(phi)
        n_fit = int(n * (1 - share))
        if not 0 < n_fit < n:
            raise DataError(f"ranpac: task {task} has {n} training images, too few to hold out "
                            f"ranpac.val_share={share} of them for choosing lambda; set "
                            "ranpac.ridge")
        generator = torch.Generator().manual_seed(stage_seed(self.cfg.run.seed, task,
                                                             "ridge_split"))
        order = torch.randperm(n, generator=generator).to(phi.device)
        fit, val = order[:n_fit], order[n_fit:]
        return ridge_by_validation(phi[fit], y[fit], phi[val], y[val])

    def readout(self) -> torch.Tensor:
        """W_o = (G + lambda I)^-1 C (M x seen classes), lambda of the last task, at least
        ranpac.ridge_floor * trace(G) (module docstring)."""
        if self._readout is None:
            a = self.gram.clone()
            floor = self.cfg.ranpac.ridge_floor * float(self.gram.diagonal().sum())
            a.diagonal().add_(max(self.ridges[-1], floor))
            self._readout = torch.linalg.solve(a, self.targets)
        return self._readout

    def _logits(self, h0: torch.Tensor) -> torch.Tensor:
        return (self.lift(h0) @ self.readout()).float()

    def _state(self) -> dict:
        return {"gram": self.gram.to("cpu", copy=True),
                "targets": self.targets.to("cpu", copy=True),
                "ridges": list(self.ridges), "projection": float(self.projection.sum())}

    def _load_state(self, state: dict) -> None:
        if not np.isclose(state["projection"], float(self.projection.sum()), rtol=1e-12):
            raise ValueError("the random projection differs from the checkpoint's: same "
                             "ranpac.m, run.seed and torch version are needed to resume")
        self.gram = state["gram"].to(self.device, torch.float64)
        self.targets = state["targets"].to(self.device, torch.float64)
        self.ridges = [float(r) for r in state["ridges"]]
        self._readout = None
