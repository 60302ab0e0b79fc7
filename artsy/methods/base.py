"""What a method is to the runner: the facts known from the config, and the learner it builds.

A *method* (config key `method`, registry `artsy.methods.METHODS`) declares its name, whether
it trains adapter sub-networks (the dry run's work table follows from that) and its own config
checks, all without building anything, and `build`s the learner of a run. The runner reads every
learner through one interface, so it never branches on the method:

- ``data``, ``device``; ``learn_task(t) -> TaskResult``; ``evaluate(t) -> EvalResult``;
- ``task_state(t)``, ``state_dict()``, ``load(task_states, state)`` (checkpoints, resume);
- ``weight_tag`` (the backbone's exact weights), ``run_meta()`` (the method's entries of
  metrics.json), ``label`` (how a progress line names the run) and ``synapse_log(path, config)``
  (the writer of synapses.nc; a method without synapses gets a `NoSynapseLog`).
"""

from __future__ import annotations

import os
from typing import Any, ClassVar, Union

import numpy as np

from ..config import Config

# Seed stages of the baselines, numbered apart from artsy.learner.STAGES (0-3) so that no stage
# of a baseline draws the same stream as a stage of the learner.
STAGES = ("projection", "ridge_split")
STAGE_OFFSET = 100


def stage_seed(seed: int, task: int, stage: str) -> int:
    """The seed of one baseline stage of one task (task -1: fixed for the whole run)."""
    index = STAGE_OFFSET + STAGES.index(stage)
    return int(np.random.SeedSequence([seed, task + 1, index]).generate_state(1)[0])


class Method:
    """A registered method: class facts and checks, and the learner it builds."""

    name: ClassVar[str]  # the value of the config key `method`
    adapters: ClassVar[bool]  # trains one adapter sub-network per task (else: E_0 alone)

    @classmethod
    def check_config(cls, cfg: Config) -> None:
        """Raise a one-line ConfigError for settings this method cannot run with."""

    @classmethod
    def build(cls, cfg: Config, data: Any, progress: Any = None) -> Any:
        """The learner of one run (torch and timm are imported only here)."""
        raise NotImplementedError


class NoSynapseLog:
    """The synapse log of a method without synapses: it has no rows and no file.

    No synapses.nc is written (artsy.figures then draws accuracy only); appending a task and
    truncating after a crash do nothing.
    """

    def __init__(self, path: Union[str, os.PathLike]) -> None:
        self.path = path

    def append_task(self, *args: Any, **kwargs: Any) -> None:
        pass

    def truncate(self, n_tasks_done: int) -> None:
        pass
