"""The per-task gates m_t over the sub-networks, one module per gate, and their registry
(docs/method.md §7-8, A5-A8; docs/architecture.md §3).

- ``ngai``   (this project): the functional state of a modelled synapse after one presentation
  (ngai.py, with depolarisation.py);
- ``none``   (EASE): every seen sub-network is on (none.py);
- ``mlp``    (the paper): a two-layer MLP per task on h0 = E_0(x) (mlp.py, memory.py);
- ``oracle`` : the true task's gate only, the upper bound (oracle.py);
- ``entropy`` (after TUNA): the sub-network whose prototype prediction has the least entropy
  (entropy.py).

A new gate is one module with a subclass of ``Gate`` (base.py) plus its entry in ``GATES``: the
config's `synapse.gate`, the dry run and the benchmarks all read this registry.
"""

from __future__ import annotations

import torch

from ..config import SynapseConfig
from ..errors import ConfigError
from .base import Gate, GateCost, GateDecision, GateInputs
from .entropy import EntropyGate
from .mlp import MLPGate
from .ngai import NgaiGate
from .none import NoneGate
from .oracle import OracleGate

# The default first, then the baselines: this order is the one error messages list.
GATES: dict[str, type[Gate]] = {g.name: g for g in (NgaiGate, NoneGate, MLPGate, OracleGate,
                                                    EntropyGate)}


def gate_class(name: str) -> type[Gate]:
    """The class registered as `name`, or a one-line ConfigError listing the registered ones."""
    if name not in GATES:
        raise ConfigError(f"config key 'synapse.gate': expected one of "
                          f"{', '.join(repr(g) for g in GATES)}, got {name!r}")
    return GATES[name]


def make_gates(cfg: SynapseConfig, dim: int, n_tasks: int,
               device: torch.device | str = "cpu") -> Gate:
    """The gates of `cfg.gate` for `n_tasks` sub-networks of feature width `dim`."""
    kind = gate_class(cfg.gate)
    kind.check_config(cfg)
    return kind(cfg, dim, n_tasks, device)


__all__ = ["GATES", "Gate", "GateCost", "GateDecision", "GateInputs", "gate_class", "make_gates"]
