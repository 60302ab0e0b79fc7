"""Mode ``entropy`` (after TUNA, Wang, Zhou & Ye, ICCV 2025): every sub-network runs, and the one
whose prediction is most certain opens, one gate per input.

TUNA keeps one cosine classifier over all seen classes, each class's weight fitted to the features
of its own task's adapter; it feeds every adapter's feature E_t(x) to that one classifier (logits
scaled by 20) and keeps the adapter whose softmax has the least entropy. Here that classifier is
the prototype bank read on its diagonal: class c's prototype in its own task's subspace, a measured
class mean (docs/method.md §5.2; no complemented prototype enters). So p = softmax(SCALE *
cos(E_t(x), p_{c,task(c)})) over every seen class c, and gate t opens for the t of least entropy
H_t = -sum_c p_c log p_c (the first on ties). Nothing is trained, so the gate is stateless:
consolidation logs its decisions, and a resumed run decides the same.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..config import SynapseConfig
from .base import Gate, GateCost, GateDecision, GateInputs

SCALE = 20.0  # TUNA's logit scale (its `scale`) on cosine similarities


def own_task_classifier(prototypes: torch.Tensor, class_task: torch.Tensor) -> torch.Tensor:
    """(classes, d): each seen class's prototype in its own task's subspace (TUNA's classifier,
    whose class weights are fitted to their own adapter's features)."""
    rows = torch.arange(len(class_task), device=prototypes.device)
    return prototypes[rows, class_task.to(prototypes.device)]


def prediction_entropy(own: list[torch.Tensor], classifier: torch.Tensor) -> torch.Tensor:
    """(B, len(own)): the entropy of softmax(SCALE * cos(E_t(x), w_c)) over the classifier's
    classes c, for each sub-network's feature E_t(x) in `own`."""
    weights = F.normalize(classifier.float(), dim=1)
    out = []
    for feature in own:
        logits = SCALE * F.normalize(feature.float().to(weights.device), dim=1) @ weights.T
        log_p = torch.log_softmax(logits, dim=1)
        out.append(-(log_p.exp() * log_p).sum(dim=1))
    return torch.stack(out, dim=1).cpu()


class EntropyGate(Gate):
    """Opens the sub-network whose prototype prediction has the least entropy (TUNA's choice)."""

    name = "entropy"

    @classmethod
    def cost(cls, cfg: SynapseConfig) -> GateCost:
        return GateCost(needs_own=True, fewest_open=1, most_open=1)

    @classmethod
    def check_config(cls, cfg: SynapseConfig) -> None:
        """Nothing to refuse: no synapse.* key changes this gate (it trains no synapse, and one
        gate always opens, so the fallback never applies)."""

    def fit(self, task, bank, class_task, seed) -> list[dict]:
        """No calibration: how often each gate opens is measured at evaluation (gate_open_rate)."""
        records = [{"after_task": task, "synapse": i, "K_eff": math.nan,
                    "target_open_rate": math.nan, "open_rate": math.nan} for i in range(task + 1)]
        self.calibration += records
        return records

    def _decide(self, n_seen: int, inputs: GateInputs) -> GateDecision:
        n_classes = inputs.class_task.numel()
        classifier = own_task_classifier(inputs.bank.prototypes, inputs.class_task)
        h = prediction_entropy(inputs.own[:n_seen], classifier)
        raw = F.one_hot(h.argmin(dim=1), n_seen).bool()
        # soft score: certainty 1 - H / log(classes), in [0, 1]; 1 when one class is seen
        score = 1 - h / math.log(n_classes) if n_classes > 1 else torch.ones_like(h)
        return GateDecision(open=raw, raw=raw, score=score.float())
