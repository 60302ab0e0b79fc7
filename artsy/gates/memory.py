"""What the synapses keep of each task's inputs to train and calibrate on later (A6)."""

from __future__ import annotations

from typing import Optional

import torch

from ..prototypes import class_means


class FeatureMemory:
    """Each task's frozen features h0, kept whole or as class statistics.

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
        classes, counts = labels.unique(return_counts=True)
        mean = class_means(h0, labels, classes)
        var = class_means((h0 - mean[torch.searchsorted(classes, labels)]) ** 2, labels, classes)
        self.stats[task] = {"classes": classes, "mean": mean, "std": var.sqrt(), "count": counts}
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
