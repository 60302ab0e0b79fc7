"""Mode ``ngai`` (this project): m_t = the functional state of a modelled synapse after one
presentation from rest (synsim.rule), driven by a release pre_t (the MLP synapses' sigmoid(S_t(h0))
or a joint closed-form scorer's task mass, scorers.py) and a depolarisation signal
(depolarisation.py; docs/architecture.md §3; docs/model.md §5.5)."""

from __future__ import annotations

import numpy as np
import torch

from synsim.rule import ReceptorRule, RuleParams

from ..config import SynapseConfig
from ..errors import ConfigError
from ..synapse_log import LOG_VARIABLES, empty_rows, record_positions
from .base import GateCost, GateDecision, GateInputs, presentation_order
from .depolarisation import OWN_SIGNALS, own_signal, prototype_share
from .mlp import MLPGate
from .scorers import JointScorer


def receptor_rule(cfg: SynapseConfig) -> ReceptorRule:
    """The rule of synapse.ngai; delta_ms null takes synsim's default window (the calcium peak)."""
    ngai = cfg.ngai
    return ReceptorRule(RuleParams(delta_ms=ngai.delta_ms, v_rest_mV=ngai.v_rest_mV,
                                   dv_mV=ngai.dv_mV, carry_over=ngai.carry_over))


def joint_scorer(cfg: SynapseConfig, dim: int) -> JointScorer:
    """The closed-form release scorer of synapse.ngai.pre (lda or ridge)."""
    ngai = cfg.ngai
    shrinkage, temperature = ((ngai.ridge_lambda, ngai.ridge_temperature) if ngai.pre == "ridge"
                              else (ngai.lda_shrinkage, ngai.lda_temperature))
    return JointScorer(ngai.pre, dim, shrinkage, temperature, ngai.random_features,
                       ngai.projection_seed)


class NgaiGate(MLPGate):
    """The receptor-rule gate: a scorer on h0 gives the release, the rule decides.

    pre_t = sigmoid(S_t(h0)) of the MLP synapses (``pre: mlp``), or task t's softmax mass under
    one joint closed-form scorer (``lda``, ``ridge``: exact, exemplar-free class statistics).
    depolarisation_t: the network's agreement with task t, from h0 (``prototype_share``) or from
    E_t(x) (``own_*``, which cost every sub-network's forward pass; depolarisation.py).
    The gate is ReceptorRule.gate: functional after one
    presentation from rest, i.e. K * gain_t * pre_t * B(V_t) > theta_p. gain_t is calibrated after
    every task so that a share ``target_open_rate`` of task t's own training inputs opens gate t.
    The consolidated state (calcium, ampa) of every synapse is carried over all presentations of
    all tasks: each synapse unsilences when its own task is learned and keeps that state.
    """

    name = "ngai"

    @classmethod
    def cost(cls, cfg: SynapseConfig) -> GateCost:
        own = cfg.ngai.depolarisation in OWN_SIGNALS
        return GateCost(needs_h0=True, needs_own=own, fewest_open=1,
                        h0_stages=cfg.ngai.frozen_stages)

    @classmethod
    def check_config(cls, cfg: SynapseConfig) -> None:
        ngai = cfg.ngai
        if cls.cost(cfg).needs_own and cfg.negatives != "cache":
            raise ConfigError(f"synapse.ngai.depolarisation={ngai.depolarisation!r} needs "
                              "synapse.negatives='cache': it calibrates on cached sub-network "
                              "features of each task's inputs")
        for key in ("ridge_lambda", "ridge_temperature", "lda_shrinkage", "lda_temperature"):
            if key.startswith(ngai.pre) and not getattr(ngai, key) > 0:  # 0 makes it singular
                raise ConfigError(f"config key 'synapse.ngai.{key}': expected a value > 0 for "
                                  f"pre={ngai.pre!r}, got {getattr(ngai, key)}")
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
        ngai = cfg.ngai
        self.scorer = None if ngai.pre == "mlp" else joint_scorer(cfg, dim)
        self.gain = np.ones(n_tasks)  # K_t = K * gain_t
        self.calcium = np.zeros(n_tasks)  # the consolidated state, carried over presentations
        self.ampa = np.zeros(n_tasks)

    @property
    def K(self) -> float:
        return self.rule.params.synapse.K

    def add_task(self, task, h0, labels, own=None) -> None:
        super().add_task(task, h0, labels, own)
        if self.scorer is not None:  # each task's real features enter the statistics once
            self.scorer.add(task, h0, labels)

    def to_train(self, task: int) -> list[int]:
        return super().to_train(task) if self.scorer is None else []

    @torch.no_grad()
    def pre(self, h0: torch.Tensor, n_seen: int) -> torch.Tensor:
        """(B, n_seen) the release pre_t of every seen synapse."""
        if self.scorer is None:
            return super().pre(h0, n_seen)
        return self.scorer.task_probability(h0, n_seen).float()

    def depolarisation(self, n_seen: int, inputs: GateInputs) -> torch.Tensor:
        """(B, n_seen) in [0, 1]: the network's agreement with each seen task."""
        temp, bank, class_task = self.cfg.ngai.prototype_temperature, inputs.bank, inputs.class_task
        if not self.needs_own:
            return prototype_share(inputs.h0, bank.ptm_prototypes, class_task, n_seen, temp).cpu()
        kind = self.cfg.ngai.depolarisation
        return torch.stack([own_signal(kind, inputs.own[t], bank, class_task, t, n_seen, temp)
                            for t in range(n_seen)], dim=1).cpu()

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
        if self.needs_own:  # from E_i(x) of task i's inputs
            dep = own_signal(self.cfg.ngai.depolarisation, i_own, bank, class_task, i, n_seen,
                             temp)
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
        scorer = None if self.scorer is None else self.scorer.state_dict()
        return {**super().state_dict(), "gain": torch.from_numpy(self.gain.copy()),
                "calcium": torch.from_numpy(self.calcium.copy()),
                "ampa": torch.from_numpy(self.ampa.copy()), "scorer": scorer}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        if (state.get("scorer") is None) != (self.scorer is None):  # e.g. an older run
            held = "MLP synapses" if state.get("scorer") is None else "a joint scorer"
            raise ValueError(f"checkpoint holds {held} but this run has synapse.ngai.pre="
                             f"{self.cfg.ngai.pre!r}: set synapse.ngai.pre in its config.yaml")
        if self.scorer is not None:
            self.scorer.load_state_dict(state["scorer"])
        self.gain = state["gain"].double().numpy().copy()
        self.calcium = state["calcium"].double().numpy().copy()
        self.ampa = state["ampa"].double().numpy().copy()

    def rule_attrs(self) -> dict:
        """The rule's parameters and the calibration settings, for the synapse log's attributes."""
        ngai = self.cfg.ngai
        return {**self.rule.params.as_attrs(), "pre_signal": ngai.pre,
                "depolarisation": ngai.depolarisation,
                "prototype_temperature": ngai.prototype_temperature,
                "target_open_rate": ngai.target_open_rate, "calibrate": ngai.calibrate}
