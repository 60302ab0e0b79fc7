"""The ngai gate's depolarisation signal: the network's agreement with each seen task."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def prototype_share(features: torch.Tensor, prototypes: torch.Tensor, class_task: torch.Tensor,
                    n_tasks: int, temperature: float) -> torch.Tensor:
    """(B, n_tasks): each task's share of a softmax over cosine similarities to all prototypes.

    This is "the network's agreement with task t": near 1 when x looks like task t's classes.
    """
    prototypes = prototypes.to(features.device)
    cos = F.normalize(features.float(), dim=1) @ F.normalize(prototypes.float(), dim=1).T
    p = torch.softmax(cos / temperature, dim=1)
    return p @ F.one_hot(class_task.to(p.device), n_tasks).to(p)
