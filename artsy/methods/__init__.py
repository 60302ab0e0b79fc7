"""The methods a run can be (config key `method`), one module each, and their registry.

- ``artsy``     (the default): EASE adapter sub-networks behind per-task gates (artsy.learner,
  with the gate of `synapse.gate`; gated.py gives it the runner's interface);
- ``simplecil`` (PILOT's SimpleCIL): cosine classifier on the class means of the frozen
  feature h0 = E_0(x) (simplecil.py);
- ``ranpac``    (RanPAC without its first-session adaptation): ridge read-out of a random ReLU
  projection of h0 (ranpac.py).

The baselines train no adapters and have no gates: their evaluations have zero gate columns and
their runs no synapse log. A new method is one module with a `Method` subclass plus its entry in
``METHODS``; the config check, the dry run and the runner read this registry.
"""

from __future__ import annotations

from typing import Any

from ..config import Config
from ..errors import ConfigError
from .base import Method, NoSynapseLog
from .ranpac import RanPAC
from .simplecil import SimpleCIL


class ArtsyMethod(Method):
    """This project's learner: EASE sub-networks behind the gates of `synapse.gate`."""

    name = "artsy"
    adapters = True

    @classmethod
    def build(cls, cfg: Config, data: Any, progress: Any = None) -> Any:
        from .gated import GatedLearner  # torch and timm: only when a run starts

        return GatedLearner(cfg, data, progress=progress)


# The default first, then the baselines: this order is the one error messages list.
METHODS: dict[str, type[Method]] = {m.name: m for m in (ArtsyMethod, SimpleCIL, RanPAC)}


def method_class(name: str) -> type[Method]:
    """The method registered as `name`, or a one-line ConfigError listing the registered ones."""
    if name not in METHODS:
        raise ConfigError(f"config key 'method': expected one of "
                          f"{', '.join(repr(m) for m in METHODS)}, got {name!r}")
    return METHODS[name]


def make_learner(cfg: Config, data: Any, progress: Any = None) -> Any:
    """The learner of `cfg.method` for one run over `data` (artsy.data.TaskData)."""
    kind = method_class(cfg.method)
    kind.check_config(cfg)
    return kind.build(cfg, data, progress)


__all__ = ["METHODS", "Method", "NoSynapseLog", "make_learner", "method_class"]
