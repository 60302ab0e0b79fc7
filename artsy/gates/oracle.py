"""Mode ``oracle``: the true task's gate only, the upper bound of any learned routing."""

from __future__ import annotations

import torch.nn.functional as F

from ..config import SynapseConfig
from .base import Gate, GateCost, GateDecision, GateInputs


class OracleGate(Gate):
    """Opens exactly the input's own task: it reads the labels, so it is a bound, not a method."""

    name = "oracle"

    @classmethod
    def cost(cls, cfg: SynapseConfig) -> GateCost:
        return GateCost(needs_labels=True, fewest_open=1, most_open=1)

    def _decide(self, n_seen: int, inputs: GateInputs) -> GateDecision:
        raw = F.one_hot(inputs.task_ids.long().cpu(), n_seen).bool()
        return GateDecision(open=raw, raw=raw, score=raw.float())
