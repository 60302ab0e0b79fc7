"""The ngai gate's depolarisation signals: how much the network agrees with each seen task.

- ``prototype_share``: task t's share of a softmax over cosine similarities of h0 to every seen
  class's PTM prototype (cheap: no sub-network pass);
- ``own_prototype`` (MOS-style self-consistency, soft): the same share computed from E_t(x)
  against subspace t's prototypes of every seen class;
- ``own_entropy`` (TUNA-style): 1 - the normalised entropy of E_t(x)'s softmax over task t's own
  classes (a sub-network is confident on its own task's inputs);
- ``own_similarity``: the largest cosine of E_t(x) to task t's own prototypes, clipped to [0, 1].

The ``own_*`` signals read every sub-network's feature, so no sub-network pass is saved.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

OWN_SIGNALS = ("own_prototype", "own_entropy", "own_similarity")


def prototype_share(features: torch.Tensor, prototypes: torch.Tensor, class_task: torch.Tensor,
                    n_tasks: int, temperature: float) -> torch.Tensor:
    """(B, n_tasks): each task's share of a softmax over cosine similarities to all prototypes.

    This is "the network's agreement with task t": near 1 when x looks like task t's classes.
    """
    prototypes = prototypes.to(features.device)
    cos = F.normalize(features.float(), dim=1) @ F.normalize(prototypes.float(), dim=1).T
    p = torch.softmax(cos / temperature, dim=1)
    return p @ F.one_hot(class_task.to(p.device), n_tasks).to(p)


def _own_cosines(features: torch.Tensor, prototypes: torch.Tensor) -> torch.Tensor:
    prototypes = prototypes.to(features.device)
    return F.normalize(features.float(), dim=1) @ F.normalize(prototypes.float(), dim=1).T


def own_entropy(features: torch.Tensor, prototypes: torch.Tensor,
                temperature: float) -> torch.Tensor:
    """(B,) in [0, 1]: 1 - H(softmax(cos / T)) / log k over the task's own k prototypes."""
    k = prototypes.shape[0]
    if k < 2:  # a one-class task has no choice to be unsure about
        return torch.ones(len(features), device=features.device)
    logp = torch.log_softmax(_own_cosines(features, prototypes) / temperature, dim=1)
    return (1 + (logp.exp() * logp).sum(1) / math.log(k)).clamp(0, 1)


def own_similarity(features: torch.Tensor, prototypes: torch.Tensor) -> torch.Tensor:
    """(B,) in [0, 1]: max cosine to the task's own prototypes (how close to its own classes)."""
    return _own_cosines(features, prototypes).max(dim=1).values.clamp(0, 1)


def own_signal(kind: str, features: torch.Tensor, bank, class_task: torch.Tensor, task: int,
               n_tasks: int, temperature: float) -> torch.Tensor:
    """(B,): the `kind` depolarisation of synapse `task` from E_task(x) (`features`)."""
    subspace = bank.prototypes[:, task]
    if kind == "own_prototype":
        return prototype_share(features, subspace, class_task, n_tasks, temperature)[:, task]
    own = subspace[(class_task == task).to(subspace.device)]
    if kind == "own_entropy":
        return own_entropy(features, own, temperature)
    if kind == "own_similarity":
        return own_similarity(features, own)
    raise ValueError(f"depolarisation {kind!r} unknown")
