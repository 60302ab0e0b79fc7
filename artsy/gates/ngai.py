"""Mode ``ngai`` (this project): m_t = the functional state of a modelled synapse after one
presentation from rest (synsim.rule), driven by pre_t = sigmoid(S_t(h0)) and a depolarisation
signal (docs/architecture.md §3; docs/model.md §5.5)."""

from __future__ import annotations

import numpy as np
import torch

from synsim.rule import ReceptorRule, RuleParams

from ..config import SynapseConfig
from ..errors import ConfigError
from ..synapse_log import LOG_VARIABLES, empty_rows, record_positions
from .base import GateCost, GateDecision, GateInputs, presentation_order
from .depolarisation import prototype_share
from .mlp import MLPGate


def receptor_rule(cfg: SynapseConfig) -> ReceptorRule:
    """The rule of synapse.ngai; delta_ms null takes synsim's default window (the calcium peak)."""
    ngai = cfg.ngai
    return ReceptorRule(RuleParams(delta_ms=ngai.delta_ms, v_rest_mV=ngai.v_rest_mV,
                                   dv_mV=ngai.dv_mV, carry_over=ngai.carry_over))


class NgaiGate(MLPGate):
    """The receptor-rule gate: the MLP synapses give the release, the rule decides.

    pre_t = sigmoid(S_t(h0)); depolarisation_t = task t's share of a softmax over cosine
    similarities to all seen class prototypes: of h0 against the PTM prototypes
    (``prototype_share``), or of E_t(x) against subspace t's prototypes (``own_prototype``, which
    costs every sub-network's forward pass). The gate is ReceptorRule.gate: functional after one
    presentation from rest, i.e. K * gain_t * pre_t * B(V_t) > theta_p. gain_t is calibrated after
    every task so that a share ``target_open_rate`` of task t's own training inputs opens gate t.
    The consolidated state (calcium, ampa) of every synapse is carried over all presentations of
    all tasks: each synapse unsilences when its own task is learned and keeps that state.
    """

    name = "ngai"

    @classmethod
    def cost(cls, cfg: SynapseConfig) -> GateCost:
        own = cfg.ngai.depolarisation == "own_prototype"
        return GateCost(needs_h0=True, needs_own=own, fewest_open=1)

    @classmethod
    def check_config(cls, cfg: SynapseConfig) -> None:
        ngai = cfg.ngai
        if cls.cost(cfg).needs_own and cfg.negatives != "cache":
            raise ConfigError("synapse.ngai.depolarisation='own_prototype' needs "
                              "synapse.negatives='cache': it calibrates on cached sub-network "
                              "features of each task's inputs")
        if not 0 < ngai.target_open_rate < 1:
            raise ConfigError(f"config key 'synapse.ngai.target_open_rate': expected a value in "
                              f"(0, 1) for calibration, got {ngai.target_open_rate}")
        if not ngai.prototype_temperature > 0:
            raise ConfigError("config key 'synapse.ngai.prototype_temperature': expected a value "
                              f"> 0, got {ngai.prototype_temperature}")
        rule = receptor_rule(cfg)
        if not rule.opens_from_rest_when_above_theta_p():
            raise ConfigError(f"config key 'synapse.ngai.delta_ms': a window of "
                              f"{rule.params.window_ms} ms is too short for one presentation "
                              "to unsilence a synapse (docs/model.md §5.5)")

    def __init__(self, cfg: SynapseConfig, dim: int, n_tasks: int,
                 device: torch.device | str = "cpu") -> None:
        super().__init__(cfg, dim, n_tasks, device)
        self.rule = receptor_rule(cfg)
        self.gain = np.ones(n_tasks)  # K_t = K * gain_t
        self.calcium = np.zeros(n_tasks)  # the consolidated state, carried over presentations
        self.ampa = np.zeros(n_tasks)

    @property
    def K(self) -> float:
        return self.rule.params.synapse.K

    def depolarisation(self, n_seen: int, inputs: GateInputs) -> torch.Tensor:
        """(B, n_seen) in [0, 1]: the network's agreement with each seen task."""
        temp, bank, class_task = self.cfg.ngai.prototype_temperature, inputs.bank, inputs.class_task
        if not self.needs_own:
            return prototype_share(inputs.h0, bank.ptm_prototypes, class_task, n_seen, temp).cpu()
        return torch.stack([prototype_share(inputs.own[t], bank.prototypes[:, t], class_task,
                                            n_seen, temp)[:, t] for t in range(n_seen)],
                           dim=1).cpu()

    def _decide(self, n_seen: int, inputs: GateInputs) -> GateDecision:
        pre = self.pre(inputs.h0, n_seen).double()
        dep = self.depolarisation(n_seen, inputs).double()
        gain = torch.as_tensor(self.gain[:n_seen])
        raw = self.rule.gate(pre, dep, gain)
        return GateDecision(open=raw, raw=raw, score=pre.float(), depolarisation=dep.float(),
                            mg_block=self.rule.mg_block(dep).float())

    def _fallback_score(self, d: GateDecision) -> torch.Tensor:
        """The drive K * gain_t * pre_t * B_t (its margin above theta_p decides the gate)."""
        n = d.score.shape[1]
        return self.K * torch.as_tensor(self.gain[:n]).float() * d.score * d.mg_block

    def _calibrate(self, task, i, h0, bank, class_task, i_own=None) -> dict:
        n_seen, temp = task + 1, self.cfg.ngai.prototype_temperature
        pre = self.pre(h0, n_seen)[:, i].double().numpy()
        if self.needs_own:  # E_i(x) of task i's inputs against subspace i's prototypes
            dep = prototype_share(i_own, bank.prototypes[:, i], class_task, n_seen, temp)[:, i]
        else:
            dep = prototype_share(h0, bank.ptm_prototypes, class_task, n_seen, temp)[:, i]
        dep = dep.double().cpu().numpy()
        target = self.cfg.ngai.target_open_rate
        if self.cfg.ngai.calibrate:
            self.gain[i] = self.rule.gain_for_open_rate(pre, dep, target)
        rate = float(self.rule.gate(pre, dep, self.gain[i]).mean())
        return {"after_task": task, "synapse": i, "K_eff": self.K * float(self.gain[i]),
                "target_open_rate": target, "open_rate": rate}

    def consolidate(self, task: int, inputs: GateInputs, seed: int) -> dict[str, np.ndarray]:
        """Every presentation is one rule.step for all seen synapses (each with its own pre,
        depolarisation and gain); every k-th is recorded. Later tasks' synapses rest (C = rho = 0).
        """
        n_seen, n_inputs = task + 1, inputs.size
        order = presentation_order(n_inputs, seed)
        keep = record_positions(n_inputs, self.cfg.record_every)
        pre = self.pre(inputs.h0, n_seen).double().numpy()
        dep = self.depolarisation(n_seen, inputs).double().numpy()
        gain = self.gain[:n_seen]
        calcium, ampa = self.calcium[:n_seen].copy(), self.ampa[:n_seen].copy()
        rows = empty_rows(keep, self.n_tasks)
        rows["calcium"][:], rows["ampa"][:] = self.calcium, self.ampa
        r = 0
        for k, idx in enumerate(order):
            out = self.rule.step(calcium, ampa, pre[idx], dep[idx], gain)
            calcium, ampa = out["calcium"], out["ampa"]
            if r < len(keep) and keep[r] == k:
                for name in LOG_VARIABLES:
                    value = {"pre": pre[idx], "depolarisation": dep[idx]}.get(name)
                    rows[name][r, :n_seen] = out[name] if value is None else value
                r += 1
        self.calcium[:n_seen], self.ampa[:n_seen] = calcium, ampa
        return rows

    def state_dict(self) -> dict:
        return {**super().state_dict(), "gain": torch.from_numpy(self.gain.copy()),
                "calcium": torch.from_numpy(self.calcium.copy()),
                "ampa": torch.from_numpy(self.ampa.copy())}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.gain = state["gain"].double().numpy().copy()
        self.calcium = state["calcium"].double().numpy().copy()
        self.ampa = state["ampa"].double().numpy().copy()

    def rule_attrs(self) -> dict:
        """The rule's parameters and the calibration settings, for the synapse log's attributes."""
        ngai = self.cfg.ngai
        return {**self.rule.params.as_attrs(), "depolarisation": ngai.depolarisation,
                "prototype_temperature": ngai.prototype_temperature,
                "target_open_rate": ngai.target_open_rate, "calibrate": ngai.calibrate}
