"""EASE's prototype classifier (docs/method.md §5.2-5.4): class means per subspace, the
semantic-guided complement of old-class prototypes, and reweighted cosine logits with gating.

Conventions: class c is row c (labels already remapped through the class order, §11.2);
subspace i is adapter set i, trained on task i (0-based). A class first seen at task i has real
prototypes in subspaces 0..i and complemented ones in subspaces > i.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

import torch
import torch.nn.functional as F

Classes = Sequence[int] | torch.Tensor


def class_means(features: torch.Tensor, labels: torch.Tensor, classes: Classes) -> torch.Tensor:
    """Unnormalised mean feature of each class in ``classes`` (EASE averages raw features),
    shape (len(classes), dim)."""
    classes = torch.as_tensor(classes, dtype=torch.long, device=labels.device)
    onehot = (labels.view(-1, 1) == classes.view(1, -1)).to(features.dtype)  # (n, C)
    counts = onehot.sum(0)
    if (counts == 0).any():
        missing = classes[counts == 0].tolist()
        raise ValueError(f"no samples for classes {missing}")
    return (onehot.T @ features) / counts.view(-1, 1)


def class_task_index(task_classes: Sequence[Classes]) -> torch.Tensor:
    """Task index of every class row, from the class lists of the tasks seen so far."""
    rows = [torch.as_tensor(c, dtype=torch.long).view(-1) for c in task_classes]
    n = int(max(int(r.max()) for r in rows if r.numel()) + 1)
    out = torch.full((n,), -1, dtype=torch.long)
    for t, r in enumerate(rows):
        out[r] = t
    if (out < 0).any():
        raise ValueError(f"classes {torch.nonzero(out < 0).view(-1).tolist()} belong to no task")
    return out


class PrototypeBank:
    """Prototypes p_{c,i} as a (n_classes, n_subspaces, dim) tensor, zero where not yet set.

    ``real[c, i]`` tells which blocks are class means of real data; the others are zero or
    complemented by :meth:`complete`.
    """

    def __init__(
        self, dim: int, dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu",
        ptm_dim: Optional[int] = None,
    ) -> None:
        self.dim = dim
        self.prototypes = torch.zeros(0, 0, dim, dtype=dtype, device=device)
        self.real = torch.zeros(0, 0, dtype=torch.bool, device=device)
        # Prototypes of the frozen PTM feature h_0, for the optional beta-weighted block and the
        # gates; ptm_dim: the width of h_0 when it is wider than E_0(x) (synapse.ngai.frozen_stages)
        self.ptm_prototypes = torch.zeros(0, ptm_dim or dim, dtype=dtype, device=device)

    @property
    def n_classes(self) -> int:
        return self.prototypes.shape[0]

    @property
    def n_subspaces(self) -> int:
        return self.prototypes.shape[1]

    def _grow(self, n_classes: int, n_subspaces: int) -> None:
        c, s = max(n_classes, self.n_classes), max(n_subspaces, self.n_subspaces)
        if (c, s) == (self.n_classes, self.n_subspaces):
            return
        protos = self.prototypes.new_zeros(c, s, self.dim)
        real = self.real.new_zeros(c, s)
        protos[: self.n_classes, : self.n_subspaces] = self.prototypes
        real[: self.n_classes, : self.n_subspaces] = self.real
        ptm = self.ptm_prototypes.new_zeros(c, self.ptm_prototypes.shape[1])
        ptm[: self.ptm_prototypes.shape[0]] = self.ptm_prototypes
        self.prototypes, self.real, self.ptm_prototypes = protos, real, ptm

    def set_real(self, subspace: int, classes: Classes, means: torch.Tensor) -> None:
        """Store the class means of ``classes`` measured in ``subspace`` (EASE ``replace_fc``)."""
        rows = torch.as_tensor(classes, dtype=torch.long).view(-1)
        self._grow(int(rows.max()) + 1, subspace + 1)
        rows = rows.to(self.prototypes.device)
        self.prototypes[rows, subspace] = means.to(self.prototypes)
        self.real[rows, subspace] = True

    def set_ptm(self, classes: Classes, means: torch.Tensor) -> None:
        """Store class means of the frozen feature h_0 (the gates', and the beta block's)."""
        rows = torch.as_tensor(classes, dtype=torch.long).view(-1)
        self._grow(int(rows.max()) + 1, 0)
        self.ptm_prototypes[rows.to(self.ptm_prototypes.device)] = means.to(self.ptm_prototypes)

    def complete(self, task_classes: Sequence[Classes]) -> None:
        """EASE's semantic-guided prototype complement (``solve_sim_reset``, docs/method.md §5.3).

        For every old task j and newer subspace k > j, with o the classes of task j and n the
        classes first seen at tasks >= k:  p_{o,k} = softmax_n(cos(p_{o,j}, p_{n,j})) @ p_{n,k}.
        Similarity is measured in the old class's own subspace j. All upper-triangular blocks
        are recomputed from real prototypes only, so the order of the (j, k) loop is irrelevant.
        """
        device = self.prototypes.device
        rows = [torch.as_tensor(c, dtype=torch.long, device=device).view(-1) for c in task_classes]
        if len(rows) > self.n_subspaces:
            raise ValueError(f"{len(rows)} tasks but only {self.n_subspaces} subspaces")
        for j in range(len(rows)):
            for k in range(j + 1, len(rows)):
                old, new = rows[j], torch.cat(rows[k:])
                needed = [self.real[old, j], self.real[new, j], self.real[new, k]]
                if not all(bool(m.all()) for m in needed):
                    raise ValueError(f"complement of task {j} in subspace {k} needs real prototypes "
                                     f"of task {j} and of tasks >= {k} in subspaces {j} and {k}")
                p_old = F.normalize(self.prototypes[old, j], dim=1)
                p_new = F.normalize(self.prototypes[new, j], dim=1)
                sim = p_old @ p_new.T  # (|old|, |new|), in the old task's own subspace j
                self.prototypes[old, k] = torch.softmax(sim, dim=1) @ self.prototypes[new, k]

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"prototypes": self.prototypes, "real": self.real, "ptm_prototypes": self.ptm_prototypes}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.prototypes = state["prototypes"].to(self.prototypes)
        self.real = state["real"].to(self.real)
        self.ptm_prototypes = state["ptm_prototypes"].to(self.ptm_prototypes)
        self.dim = self.prototypes.shape[-1]


def reweighted_cosine_logits(
    feats_per_subspace: Sequence[Optional[torch.Tensor]],
    bank: PrototypeBank,
    class_task: torch.Tensor,
    current_task: int,
    alpha: float = 0.1,
    divide_by_T: bool = True,
    open_mask: Optional[torch.Tensor] = None,
    ptm_feature: Optional[torch.Tensor] = None,
    beta: float = 0.0,
) -> torch.Tensor:
    """EASE's reweighted cosine logits (``forward_reweight``, docs/method.md §5.4), with gating.

    For class c of task i:  logit_c = cos(phi_i(x), p_{c,i}) + w * sum_{j != i} cos(phi_j(x), p_{c,j})
    with w = alpha / T (EASE code; T = ``current_task``, the number of previous tasks) or plain
    alpha (the paper, PILOT's formula; ``divide_by_T=False``). Each block is L2-normalised on
    its own; sigma = 1.

    ``open_mask`` (batch, n_subspaces), bool: a closed block adds 0 to every class logit, and a
    block closed for the whole batch may be passed as None (its forward pass was skipped).
    ``beta`` > 0 adds beta * cos(h_0, ptm prototype) from ``ptm_feature``.
    Returns (batch, n_classes) logits over the bank's class rows.
    """
    T = current_task
    if len(feats_per_subspace) != T + 1:
        got = len(feats_per_subspace)
        raise ValueError(f"need {T + 1} subspace features at task index {T}, got {got}")
    protos = bank.prototypes[:, : T + 1]
    class_task = class_task.to(protos.device)
    if class_task.numel() != protos.shape[0] or int(class_task.max()) > T:
        raise ValueError("class_task must give a task index <= current_task for every class row")
    batch = next((f.shape[0] for f in feats_per_subspace if f is not None),
                 None if open_mask is None else open_mask.shape[0])
    if batch is None:
        raise ValueError("every subspace is closed: pass open_mask to get the (zero) logits")

    off = alpha / T if (divide_by_T and T > 0) else alpha
    own = class_task.view(-1, 1) == torch.arange(T + 1, device=protos.device).view(1, -1)
    weight = torch.full(own.shape, off, dtype=protos.dtype, device=protos.device)  # (C, S)
    weight[own] = 1.0

    logits = protos.new_zeros(batch, protos.shape[0])
    for j, feat in enumerate(feats_per_subspace):
        is_open = None if open_mask is None else open_mask[:, j].to(protos.device)
        if feat is None:
            if is_open is None or bool(is_open.any()):
                raise ValueError(f"subspace {j} is open for some input but its feature is None")
            continue
        cos = F.normalize(feat.to(protos), dim=1) @ F.normalize(protos[:, j], dim=1).T  # (B, C)
        contrib = cos * weight[:, j]
        if is_open is not None:
            contrib = torch.where(is_open.view(-1, 1), contrib, torch.zeros_like(contrib))
        logits = logits + contrib
    if beta:
        if ptm_feature is None:
            raise ValueError("beta > 0 needs ptm_feature (h_0)")
        ptm = F.normalize(ptm_feature.to(protos), dim=1) @ F.normalize(bank.ptm_prototypes, dim=1).T
        logits = logits + beta * ptm
    return logits
