"""What the frozen-backbone baselines share: E_0 alone, one feature pass per task, evaluation.

Such a learner trains no adapter and has no gate. Per task it makes one pass over the task's
training images with the test transform (h0 = E_0(x), as the artsy learner's feature pass) and
hands the features to its classifier (`_fit`); evaluation scores the test images of all seen
classes with `_logits`. Its EvalResult has zero gate columns (no sub-network, so none opens) and
its run no synapse log. The backbone is built as the artsy learner builds it, random-init weights
seeded alike, so both read the same E_0. On several processes (torchrun) both passes are split
into contiguous blocks and gathered in rank order, so every rank fits the classifier on the
single-process features (artsy.distributed).
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from typing import Any, Optional, Union

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from .. import distributed
from ..config import Config
from ..metrics import EvalResult
from ..prototypes import class_task_index
from ..synapse_log import empty_rows
from .base import Method, NoSynapseLog


class FrozenFeatureLearner(Method):
    """A classifier on h0 = E_0(x) of a frozen backbone; subclasses give `_fit` and `_logits`."""

    adapters = False
    feature_cosine = math.nan  # cos(E_t(x), E_0(x)) of the metrics: no adapter moves the feature

    @classmethod
    def build(cls, cfg: Config, data: Any, progress: Optional[bool] = None) -> Any:
        return cls(cfg, data, progress)

    def __init__(self, cfg: Config, data: Any, progress: Optional[bool] = None) -> None:
        from ..backbones import build_backbone, check_image_size, feature_dim  # timm: at run start
        from ..learner import resolve_device, task_seed

        self.cfg, self.data, self.progress = cfg, data, progress
        self.device = resolve_device(cfg.train.device)
        torch.manual_seed(task_seed(cfg.run.seed, -1, "backbone"))  # random-init backbones
        b = cfg.backbone
        self.backbone = build_backbone(b.name, b.pretrained, b.checkpoint,
                                       **b.model_kwargs).to(self.device)
        check_image_size(self.backbone, cfg.data.image_size)  # before any run directory exists
        self.dim = feature_dim(self.backbone)
        self.n_tasks = 0  # tasks learned so far

    # --- what the runner reads besides learning (artsy.methods.base) ---
    @property
    def weight_tag(self) -> str:
        return getattr(self.backbone, "weight_tag", self.cfg.backbone.name)

    @property
    def label(self) -> str:
        return f"{self.name}, no gates"

    def run_meta(self) -> dict:
        return {"method": self.name}

    def synapse_log(self, path: Union[str, os.PathLike], config: dict) -> NoSynapseLog:
        return NoSynapseLog(path)

    # --- the classifier (subclasses) ---
    def _fit(self, task: int, h0: torch.Tensor, labels: torch.Tensor) -> None:
        """Take in task `task`'s training features h0 (float32, CPU) and remapped labels."""
        raise NotImplementedError

    def _logits(self, h0: torch.Tensor) -> torch.Tensor:
        """(B, seen classes) class scores of a batch of frozen features (on the device)."""
        raise NotImplementedError

    def _state(self) -> dict:
        return {}

    def _load_state(self, state: dict) -> None:
        pass

    # --- helpers ---
    def _autocast(self):
        """As the artsy learner: bf16 / fp16 autocast on CUDA only."""
        amp = self.cfg.train.amp
        if self.device.type != "cuda" or amp == "none":
            return contextlib.nullcontext()
        return torch.autocast("cuda", dtype=torch.bfloat16 if amp == "bf16" else torch.float16)

    def _batches(self, dataset, desc: str):
        """The batches of `dataset` in order; with several processes, this rank's block of it
        (the results are then joined in rank order: artsy.distributed)."""
        loader = DataLoader(distributed.shard(dataset), batch_size=self.cfg.run.eval_batch_size,
                            shuffle=False, num_workers=self.cfg.data.num_workers,
                            pin_memory=self.device.type == "cuda")
        disable = None if self.progress is None else not self.progress
        return tqdm(loader, desc=desc, leave=False, dynamic_ncols=True, disable=disable)

    def _h0(self, x: torch.Tensor) -> torch.Tensor:
        from ..backbones import forward_features

        with self._autocast():
            return forward_features(self.backbone, x.to(self.device, non_blocking=True)).float()

    # --- learning and evaluation ---
    @torch.inference_mode()
    def learn_task(self, task: int):
        """One pass over the task's training images (test transform), then the classifier."""
        from ..learner import TaskResult

        if task != self.n_tasks:
            raise RuntimeError(f"learner holds {self.n_tasks} tasks; cannot learn {task}")
        start = time.perf_counter()
        dataset = self.data.train_set(task, transform=self.data.test_transform)
        h0s, labels = [], []
        for x, y in self._batches(dataset, f"task {task} features"):
            h0s.append(self._h0(x).cpu())
            labels.append(y)
        h0 = distributed.concat(h0s, self.device)  # every process: the whole task's features
        labels = distributed.concat(labels, self.device)
        self._fit(task, h0, labels)
        self.n_tasks += 1
        no_rows = empty_rows(np.zeros(0, dtype=np.int64), 0)  # no synapses: nothing to log
        return TaskResult(task, time.perf_counter() - start, len(labels), 0, [], no_rows)

    @torch.inference_mode()
    def evaluate(self, task: int) -> EvalResult:
        """Predict the test images of all classes seen up to `task`; no gate columns."""
        start = time.perf_counter()
        class_task = class_task_index(self.data.tasks[: task + 1]).to(self.device)
        out = {k: [] for k in ("labels", "preds", "oracle")}
        for x, y in self._batches(self.data.test_set(task), f"task {task} eval"):
            logits = self._logits(self._h0(x))
            task_ids = torch.as_tensor(self.data.task_of(y.numpy()), device=self.device)
            same_task = class_task.view(1, -1) == task_ids.view(-1, 1)
            oracle = torch.where(same_task, logits, float("-inf"))
            out["labels"].append(y.numpy())
            out["preds"].append(logits.argmax(1).cpu().numpy())
            out["oracle"].append(oracle.argmax(1).cpu().numpy())
        cat = {k: distributed.concat_numpy(v, self.device) for k, v in out.items()}
        n = len(cat["labels"])
        return EvalResult(labels=cat["labels"], preds=cat["preds"], oracle_preds=cat["oracle"],
                          input_task=self.data.task_of(cat["labels"]),
                          pred_task=self.data.task_of(cat["preds"]),
                          open=np.zeros((n, 0), dtype=bool),
                          score=np.zeros((n, 0), dtype=np.float32),
                          eval_time_s=time.perf_counter() - start, ptm_passes=n, subnet_passes=0)

    # --- checkpoints ---
    def backbone_fingerprint(self) -> float:
        """A checksum of E_0's weights: a resume must rebuild the same backbone."""
        return float(sum(p.detach().double().sum() for p in self.backbone.parameters()))

    def task_state(self, task: int) -> dict:
        """Nothing per task: the classifier's whole state is small enough for `state_dict`."""
        return {}

    def state_dict(self) -> dict:
        return {"method": self.name, "n_tasks": self.n_tasks,
                "backbone": self.backbone_fingerprint(), "weight_tag": self.weight_tag,
                **self._state()}

    def load(self, task_states: list[dict], state: dict) -> None:
        """Restore a learner that has learned tasks 0..len(task_states)-1."""
        if self.n_tasks:
            raise RuntimeError("load into a fresh learner only")
        if state.get("method") != self.name:
            raise ValueError(f"the checkpoint holds a {state.get('method', 'artsy')!r} run, "
                             f"this run's method is {self.name!r}")
        if not math.isclose(state["backbone"], self.backbone_fingerprint(), rel_tol=1e-9):
            raise ValueError(f"the backbone ({state['weight_tag']}) differs from the one the "
                             "checkpoint was made with: same backbone.name, checkpoint and "
                             "run.seed are needed to resume")
        if state["n_tasks"] != len(task_states):
            raise ValueError(f"the state holds {state['n_tasks']} tasks, the checkpoints "
                             f"{len(task_states)}")
        self._load_state(state)
        self.n_tasks = state["n_tasks"]
