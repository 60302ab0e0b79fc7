"""The method ``artsy`` under the runner's interface: artsy.learner.Learner, unchanged, plus what
the runner reads about a run (artsy.methods.base)."""

from __future__ import annotations

import os
from typing import Union

from ..learner import Learner
from ..synapse_log import SynapseLog, log_attrs


class GatedLearner(Learner):
    """EASE sub-networks behind per-task gates; learning, checkpoints and numbers are Learner's."""

    method = "artsy"

    @property
    def weight_tag(self) -> str:
        return getattr(self.net.backbone, "weight_tag", self.cfg.backbone.name)

    @property
    def label(self) -> str:
        return f"{self.cfg.synapse.gate} gates"

    def run_meta(self) -> dict:
        s = self.cfg.synapse
        return {"method": self.method, "gate": s.gate, "negatives": s.negatives,
                "retrain": s.retrain}

    def synapse_log(self, path: Union[str, os.PathLike], config: dict) -> SynapseLog:
        """synapses.nc: one synapse per task, with the rule's parameters for ngai."""
        attrs = log_attrs(self.cfg.synapse.gate, config, self.gates.rule_attrs())
        return SynapseLog(path, self.data.n_tasks, attrs)
