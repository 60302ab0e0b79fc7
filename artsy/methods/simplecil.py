"""Method ``simplecil``: PILOT's SimpleCIL (Zhou et al., IJCV 2024, "Revisiting class-incremental
learning with pre-trained models"), the prototype classifier of the frozen backbone alone.

As in PILOT: after each task, the class means of the raw (unnormalised) frozen features of the
task's training images under the test transform become the new classes' weights of a cosine
classifier; a test image goes to the class whose mean is nearest in angle, argmax of cos(h0, p_c).
Nothing is trained and old classes are never touched, so the order of the tasks does not matter.
"""

from __future__ import annotations

from typing import Any, Optional

import torch
import torch.nn.functional as F

from ..config import Config
from ..prototypes import class_means
from .frozen import FrozenFeatureLearner


class SimpleCIL(FrozenFeatureLearner):
    """Class means of h0 = E_0(x) as cosine-classifier weights (no adapters, no gates)."""

    name = "simplecil"

    def __init__(self, cfg: Config, data: Any, progress: Optional[bool] = None) -> None:
        super().__init__(cfg, data, progress)
        self.prototypes = torch.zeros(0, self.dim)  # (seen classes, d), row c = class c
        self._weights: Optional[torch.Tensor] = None  # the normalised prototypes, on the device

    def _fit(self, task: int, h0: torch.Tensor, labels: torch.Tensor) -> None:
        classes = self.data.task_classes(task)
        if classes[0] != len(self.prototypes):
            raise RuntimeError(f"task {task} starts at class {classes[0]}, the classifier holds "
                               f"{len(self.prototypes)} classes")
        self.prototypes = torch.cat([self.prototypes, class_means(h0, labels, classes)])
        self._weights = None

    def _logits(self, h0: torch.Tensor) -> torch.Tensor:
        if self._weights is None:
            self._weights = F.normalize(self.prototypes.to(self.device), dim=1)
        return F.normalize(h0, dim=1) @ self._weights.T

    def _state(self) -> dict:
        return {"prototypes": self.prototypes.clone()}

    def _load_state(self, state: dict) -> None:
        self.prototypes = state["prototypes"].float().cpu()
        self._weights = None
