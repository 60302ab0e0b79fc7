"""Mode ``none`` (EASE): every seen sub-network is on, for every input."""

from __future__ import annotations

import torch

from .base import Gate, GateDecision, GateInputs


class NoneGate(Gate):
    """No gating: the EASE baseline, whose evaluation runs every seen sub-network."""

    name = "none"

    def _decide(self, n_seen: int, inputs: GateInputs) -> GateDecision:
        raw = torch.ones(inputs.size, n_seen, dtype=torch.bool)
        return GateDecision(open=raw, raw=raw, score=raw.float())
