"""The continual learner: EASE sub-networks plus per-task gates (docs/method.md §6, §7, §9).

Per task t (`learn_task`): a new adapter set E_t trained with a temporary cosine head over the
task's classes (EASE §5.1), then frozen; one pass over the task's training images with the eval
transform gives h0 = E_0(x) for the synapses (followed by the pooled outputs of the backbone's
last stages when the gate asks for them: synapse.ngai.frozen_stages) and the class means of the
new classes in every subspace (§5.2), after which the old classes' prototypes are completed
(§5.3); then the synapses are trained, calibrated and consolidated (`artsy.gates`). Prediction
(`evaluate`): gated concatenation with EASE's reweighted cosine logits (§5.4); a closed gate
skips its sub-network's forward pass: E_t runs only on the inputs whose gate t is open.

Every random stage of a task is seeded from (run.seed, task, stage), so a run resumed from a
checkpoint reproduces an uninterrupted one on CPU. CUDA with bf16 autocast when available, CPU
otherwise. Under torchrun (several processes; artsy.distributed, docs/architecture.md §5.8) the
adapters train data-parallel on the single-process batches and the feature pass and evaluation
are split over the processes and gathered, so every rank holds the single-process arrays.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from . import distributed
from .adapters import attach_adapters
from .backbones import build_backbone, check_image_size, feature_dim
from .config import Config
from .data import TaskData
from .errors import ConfigError, RunError
from .metrics import EvalResult
from .prototypes import PrototypeBank, class_means, class_task_index, reweighted_cosine_logits
from .gates import GateInputs, gate_class, make_gates

STAGES = ("backbone", "adapter", "synapses", "consolidate")


def task_seed(seed: int, task: int, stage: str) -> int:
    """The seed of one stage of one task: independent of what earlier stages drew."""
    return int(np.random.SeedSequence([seed, task + 1, STAGES.index(stage)]).generate_state(1)[0])


def resolve_device(name: str) -> torch.device:
    """'auto': CUDA when available, else CPU; an explicit device must exist. One of several
    processes (torchrun) takes the GPU of its LOCAL_RANK (artsy.distributed)."""
    if name == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(name)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ConfigError(f"config key 'train.device': {name!r} but CUDA is not available "
                              "here; use train.device=auto or cpu")
        if device.type == "mps" and not torch.backends.mps.is_available():
            raise ConfigError(f"config key 'train.device': {name!r} but MPS is not available "
                              "here")
    if distributed.launched():
        return _rank_device(name, device)
    return device


def _rank_device(name: str, device: torch.device) -> torch.device:
    """The device of one of several processes: cuda:LOCAL_RANK, or the CPU."""
    if device.type == "mps":
        raise ConfigError(f"config key 'train.device': {name!r} cannot be shared by several "
                          "processes (torchrun); use cpu or cuda")
    if device.type != "cuda":
        return device
    if device.index is not None:
        raise ConfigError(f"config key 'train.device': {name!r}, but under torchrun each "
                          "process takes the GPU of its LOCAL_RANK; set train.device=cuda (or "
                          "auto) and choose the GPUs with CUDA_VISIBLE_DEVICES")
    local, n_gpus = distributed.local_rank(), torch.cuda.device_count()
    if local >= n_gpus:
        raise RunError(f"LOCAL_RANK is {local} but only {n_gpus} GPUs are visible: start at "
                       f"most {n_gpus} processes per node (torchrun --nproc_per_node)")
    return torch.device("cuda", local)


class TaskModel(nn.Module):
    """The network of task `task` with its temporary head: what DistributedDataParallel wraps
    when several processes train one sub-network (artsy.distributed)."""

    def __init__(self, net: nn.Module, head: nn.Module, task: int) -> None:
        super().__init__()
        self.net, self.head, self.task = net, head, task

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.net(x, task=self.task).float())


class CosineLinear(nn.Module):
    """EASE's temporary head: sigma * cos(x, w_c), sigma learnable from 1 (docs/method.md §5.1)."""

    def __init__(self, dim: int, n_classes: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_classes, dim))
        self.sigma = nn.Parameter(torch.ones(1))
        bound = 1.0 / math.sqrt(dim)
        nn.init.uniform_(self.weight, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.sigma * F.linear(F.normalize(x, dim=1), F.normalize(self.weight, dim=1))


@dataclass
class TaskResult:
    """What learning one task gives the run: cost, calibration and the synapse-log rows."""

    task: int
    train_time_s: float
    train_passes: int  # forward passes (training: forward + backward) over images
    n_presentations: int  # training inputs presented to the synapses
    calibration: list[dict]
    rows: dict[str, np.ndarray]


class Learner:
    """EASE + gates on a frozen backbone; `learn_task(t)` then `evaluate(t)`, for t = 0, 1, ..."""

    # mean cos(E_t(x), E_0(x)) of the last learned task (_task_features; E_0(x) is the first
    # `dim` columns of h0)
    feature_cosine = math.nan

    def __init__(self, cfg: Config, data: TaskData, progress: Optional[bool] = None) -> None:
        self.cfg, self.data = cfg, data
        self.device = resolve_device(cfg.train.device)
        self.progress = progress
        torch.manual_seed(task_seed(cfg.run.seed, -1, "backbone"))  # random-init backbones
        b = cfg.backbone
        backbone = build_backbone(b.name, b.pretrained, b.checkpoint, **b.model_kwargs)
        check_image_size(backbone, cfg.data.image_size)  # before any run directory exists
        self.net = attach_adapters(backbone, cfg.adapter.r, cfg.adapter.scale,
                                   cfg.adapter.dropout).to(self.device)
        self.dim = feature_dim(backbone)
        self.h0_stages = gate_class(cfg.synapse.gate).cost(cfg.synapse).h0_stages  # h0 as read
        try:
            h0_dim = self.net.frozen_feature_dim(self.h0_stages)
        except ValueError as e:
            raise ConfigError(f"config key 'synapse.ngai.frozen_stages': {e} ({b.name})") from None
        self.bank = PrototypeBank(self.dim, ptm_dim=h0_dim, device=self.device)
        self.gates = make_gates(cfg.synapse, h0_dim, data.n_tasks, self.device)
        self.needs_h0 = self.gates.needs_h0 or cfg.prototypes.beta > 0

    # --- helpers ---
    def _autocast(self):
        amp = self.cfg.train.amp
        if self.device.type != "cuda" or amp == "none":
            return contextlib.nullcontext()
        return torch.autocast("cuda", dtype=torch.bfloat16 if amp == "bf16" else torch.float16)

    def _loader(self, dataset, batch_size: int, seed: Optional[int] = None) -> DataLoader:
        """Shuffled with a seeded generator when `seed` is given, else in order."""
        generator = None if seed is None else torch.Generator().manual_seed(seed)
        return DataLoader(dataset, batch_size=batch_size, shuffle=seed is not None,
                          generator=generator, num_workers=self.cfg.data.num_workers,
                          pin_memory=self.device.type == "cuda")

    def _bar(self, iterable, desc: str, **kw):
        disable = None if self.progress is None else not self.progress
        return tqdm(iterable, desc=desc, leave=False, dynamic_ncols=True, disable=disable, **kw)

    def frozen_feature(self, x: torch.Tensor) -> torch.Tensor:
        """h0, the frozen feature as the gate reads it (synapse.ngai.frozen_stages)."""
        return self.net.frozen_feature(x, self.h0_stages)

    def class_task(self, task: int) -> torch.Tensor:
        """Task index of every class seen up to `task`."""
        return class_task_index(self.data.tasks[: task + 1])

    # --- training ---
    def learn_task(self, task: int) -> TaskResult:
        """Train E_t, freeze it, compute prototypes, train/calibrate/consolidate the synapses."""
        start = time.perf_counter()
        seed = self.cfg.run.seed
        torch.manual_seed(task_seed(seed, task, "adapter"))
        if self.net.add_task() != task:
            raise RuntimeError(f"learner holds {self.net.n_tasks - 1} tasks; cannot learn {task}")
        passes = self._train_subnetwork(task)
        self.net.freeze(task)

        h0, labels, feats = self._task_features(task)
        passes += len(labels) * (len(feats) + (h0 is not None))
        classes = self.data.task_classes(task)
        for i, f in enumerate(feats):
            self.bank.set_real(i, classes, class_means(f, labels, classes))
        if h0 is not None:
            self.bank.set_ptm(classes, class_means(h0, labels, classes))
        self.bank.complete(self.data.tasks[: task + 1])

        class_task = self.class_task(task)
        self.gates.add_task(task, h0, labels, own=feats[task])
        calibration = self.gates.fit(task, self.bank, class_task,
                                     task_seed(seed, task, "synapses"))
        inputs = GateInputs(h0=h0, own=feats, bank=self.bank, class_task=class_task,
                            batch=len(labels))
        rows = self.gates.consolidate(task, inputs, task_seed(seed, task, "consolidate"))
        return TaskResult(task, time.perf_counter() - start, passes, len(labels), calibration,
                          rows)

    def _train_subnetwork(self, task: int) -> int:
        """EASE §5.1: CE over the task's classes (labels shifted to 0..|Y_t|-1), cosine head."""
        t = self.cfg.train
        classes = self.data.task_classes(task)
        known = self.data.known_classes(task)
        head = CosineLinear(self.dim, len(classes)).to(self.device)
        params = self.net.trainable_parameters() + list(head.parameters())
        if t.optimizer == "sgd":
            opt = torch.optim.SGD(params, lr=t.lr, momentum=t.momentum, weight_decay=t.weight_decay)
        else:
            kind = torch.optim.Adam if t.optimizer == "adam" else torch.optim.AdamW
            opt = kind(params, lr=t.lr, weight_decay=t.weight_decay)
        sched = (torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=t.epochs, eta_min=t.min_lr)
                 if t.scheduler == "cosine" and t.epochs > 0 else None)
        fp16 = self.device.type == "cuda" and t.amp == "fp16"
        scaler = torch.amp.GradScaler("cuda", enabled=fp16)
        # train.augment false: the eval transform (no random crop or flip), e.g. to compare runs
        dataset = (self.data.train_set(task) if t.augment
                   else self.data.train_set(task, transform=self.data.test_transform))
        seed = task_seed(self.cfg.run.seed, task, "adapter")
        if distributed.active():
            return self._train_data_parallel(task, dataset, seed, head, opt, sched, scaler)
        loader = self._loader(dataset, t.batch_size, seed=seed)
        passes = 0
        self.net.train()
        for epoch in range(t.epochs):
            loss_sum, correct, seen = 0.0, 0, 0
            bar = self._bar(loader, f"task {task} epoch {epoch + 1}/{t.epochs}")
            for x, y in bar:
                x, y = x.to(self.device, non_blocking=True), (y - known).to(self.device)
                with self._autocast():
                    logits = head(self.net(x, task=task).float())
                    loss = F.cross_entropy(logits, y)
                opt.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                self._clip(scaler, opt)
                scaler.step(opt)
                scaler.update()
                loss_sum += loss.item() * len(y)
                correct += int((logits.argmax(1) == y).sum())
                seen += len(y)
                bar.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{100 * correct / seen:.1f}")
            passes += seen
            if sched is not None:
                sched.step()
        self.net.eval()
        return passes

    def _clip(self, scaler, opt) -> None:
        """train.clip_grad_norm: clip the step's gradient norm over every trained parameter (with
        several processes DDP has averaged the gradients already, so every rank clips alike)."""
        limit = self.cfg.train.clip_grad_norm
        if limit is not None:
            scaler.unscale_(opt)  # fp16: clip the true gradients (a no-op otherwise)
            params = [p for group in opt.param_groups for p in group["params"]]
            torch.nn.utils.clip_grad_norm_(params, limit)

    def _train_data_parallel(self, task: int, dataset, seed: int, head: nn.Module, opt, sched,
                             scaler) -> int:
        """_train_subnetwork on several processes: each global batch is the single-process one
        (same seeded order), rank r trains on its contiguous slice, and its summed loss is
        scaled by K / (global batch size), so DDP's average over the K ranks is the
        single-process batch-mean gradient (a rank with an empty slice runs a stand-in image
        weighed 0). Returns the images of every rank (the single-process count)."""
        t = self.cfg.train
        known = self.data.known_classes(task)
        generator = torch.Generator().manual_seed(seed)
        sampler = distributed.GlobalBatchSlices(dataset, t.batch_size, generator)
        loader = DataLoader(dataset, batch_sampler=sampler, generator=generator,
                            num_workers=self.cfg.data.num_workers,
                            pin_memory=self.device.type == "cuda",
                            worker_init_fn=distributed.worker_init_fn())
        model = distributed.data_parallel(TaskModel(self.net, head, task), self.device)
        distributed.reseed_rank(seed)  # after the shared initialisation: per-rank augmentation
        world = distributed.world_size()
        passes = 0
        self.net.train()
        for epoch in range(t.epochs):
            loss_sum, correct, seen = 0.0, 0, 0
            bar = self._bar(loader, f"task {task} epoch {epoch + 1}/{t.epochs}")
            for (x, y), (size, mine) in zip(bar, sampler.plan()):
                x, y = x.to(self.device, non_blocking=True), (y - known).to(self.device)
                with self._autocast():
                    logits = model(x)
                    summed = F.cross_entropy(logits, y, reduction="sum")
                    loss = summed * (world / size if mine else 0.0)
                opt.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                self._clip(scaler, opt)
                scaler.step(opt)
                scaler.update()
                if mine:
                    loss_sum += summed.item()
                    correct += int((logits.argmax(1) == y).sum())
                    seen += len(y)
                    bar.set_postfix(loss=f"{loss_sum / seen:.3f}",
                                    acc=f"{100 * correct / seen:.1f}")
                passes += size
            if sched is not None:
                sched.step()
        self.net.eval()
        del model  # DDP's hooks go with it; the adapter set is frozen next
        return passes

    @torch.inference_mode()
    def _task_features(self, task: int):
        """One pass over task t's training images (eval transform): h0 (or None), the labels,
        and E_i(x) for every subspace i <= t; all float32 on the CPU.

        Also sets `feature_cosine` (read by artsy.runner): the mean cos(E_t(x), h0) over these
        inputs, how far the adapters moved the frozen feature. From the features already here: NaN
        when the run needs no h0 (gates none, oracle with beta 0), because an extra backbone pass
        would be billed to that gate's training time and passes."""
        dataset = self.data.train_set(task, transform=self.data.test_transform)
        h0s, labels, feats = [], [], [[] for _ in range(task + 1)]
        # several processes: each passes its block of the images; the blocks are joined in
        # rank order, so every rank holds the single-process arrays (artsy.distributed)
        for x, y in self._bar(self._loader(distributed.shard(dataset),
                                           self.cfg.run.eval_batch_size),
                              f"task {task} features"):
            x = x.to(self.device, non_blocking=True)
            with self._autocast():
                if self.needs_h0:
                    h0s.append(self.frozen_feature(x).float().cpu())
                for i in range(task + 1):
                    feats[i].append(self.net(x, task=i).float().cpu())
            labels.append(y)
        concat = distributed.concat
        h0 = concat(h0s, self.device) if self.needs_h0 else None
        feats = [concat(f, self.device) for f in feats]
        self.feature_cosine = math.nan if h0 is None or not len(h0) else float(
            F.cosine_similarity(feats[task].double(), h0[:, : self.dim].double(), dim=1).mean())
        return h0, concat(labels, self.device), feats

    # --- inference ---
    @torch.inference_mode()
    def evaluate(self, task: int):
        """Predict the test images of all classes seen up to `task` (docs/method.md §7)."""
        start = time.perf_counter()
        n_seen = task + 1
        class_task = self.class_task(task)
        out = {k: [] for k in ("labels", "preds", "oracle", "open", "score")}
        ptm_passes = subnet_passes = 0
        loader = self._loader(distributed.shard(self.data.test_set(task)),
                              self.cfg.run.eval_batch_size)  # several processes: a block each
        for x, y in self._bar(loader, f"task {task} eval"):
            x = x.to(self.device, non_blocking=True)
            task_ids = torch.as_tensor(self.data.task_of(y.numpy()))
            with self._autocast():
                h0 = self.frozen_feature(x) if self.needs_h0 else None
                ptm_passes += len(y) if self.needs_h0 else 0
                own = None
                if self.gates.needs_own:  # the gate reads every sub-network: no pass is skipped
                    own = [self.net(x, task=i) for i in range(n_seen)]
                    subnet_passes += len(y) * n_seen
                d = self.gates.decide(n_seen, GateInputs(h0=h0, task_ids=task_ids, own=own,
                                                         bank=self.bank, class_task=class_task,
                                                         batch=len(y)))
                feats = own if own is not None else []
                for i in range(n_seen if own is None else 0):
                    rows = d.open[:, i].to(self.device)
                    n_open = int(rows.sum())
                    if n_open == 0:
                        feats.append(None)  # closed for the whole batch: no forward pass
                        continue
                    f = self.net(x[rows], task=i).float()
                    full = f.new_zeros(len(y), f.shape[1])
                    full[rows] = f
                    feats.append(full)
                    subnet_passes += n_open
            logits = self._logits(feats, class_task, task, d.open, h0)
            same_task = class_task.view(1, -1) == task_ids.view(-1, 1)
            oracle = torch.where(same_task.to(logits.device), logits, float("-inf"))
            out["labels"].append(y.numpy())
            out["preds"].append(logits.argmax(1).cpu().numpy())
            out["oracle"].append(oracle.argmax(1).cpu().numpy())
            out["open"].append(d.open.cpu().numpy())
            out["score"].append(d.score.cpu().numpy())
        cat = {k: distributed.concat_numpy(v, self.device) for k, v in out.items()}
        return EvalResult(labels=cat["labels"], preds=cat["preds"], oracle_preds=cat["oracle"],
                          input_task=self.data.task_of(cat["labels"]),
                          pred_task=self.data.task_of(cat["preds"]), open=cat["open"],
                          score=cat["score"], eval_time_s=time.perf_counter() - start,
                          ptm_passes=distributed.all_sum(ptm_passes),
                          subnet_passes=distributed.all_sum(subnet_passes))

    def _logits(self, feats, class_task, task, open_mask, h0) -> torch.Tensor:
        """Reweighted cosine logits over the open blocks (all closed: zero, plus the PTM block)."""
        p = self.cfg.prototypes
        return reweighted_cosine_logits(feats, self.bank, class_task, task, p.alpha,
                                        p.divide_alpha_by_tasks, open_mask=open_mask,
                                        ptm_feature=h0, beta=p.beta)

    # --- checkpoints ---
    def backbone_fingerprint(self) -> float:
        """A checksum of the frozen backbone's weights: a resume must rebuild the same E_0."""
        return float(sum(p.detach().double().sum() for p in self.net.backbone.parameters()))

    def task_state(self, task: int) -> dict:
        """What task `task` added: its adapter set and the synapses' memory of its inputs."""
        return {"adapters": self.net.adapter_sets[task].state_dict(),
                "gates": self.gates.task_state(task)}

    def state_dict(self) -> dict:
        """The small state after the last learned task."""
        return {"n_tasks": self.net.n_tasks, "bank": self.bank.state_dict(),
                "gates": self.gates.state_dict(), "backbone": self.backbone_fingerprint(),
                "weight_tag": getattr(self.net.backbone, "weight_tag", "")}

    def load(self, task_states: list[dict], state: dict) -> None:
        """Restore a learner that has learned tasks 0..len(task_states)-1."""
        if self.net.n_tasks:
            raise RuntimeError("load into a fresh learner only")
        if not math.isclose(state["backbone"], self.backbone_fingerprint(), rel_tol=1e-9):
            raise ValueError(f"the backbone ({state['weight_tag']}) differs from the one the "
                             "checkpoint was trained on: same backbone.name, checkpoint and "
                             "run.seed are needed to resume")
        for t, ts in enumerate(task_states):
            self.net.add_task()
            self.net.adapter_sets[t].load_state_dict(ts["adapters"])
            self.net.freeze(t)
            self.gates.load_task_state(t, ts["gates"])
        self.bank.load_state_dict(state["bank"])
        self.gates.load_state_dict(state["gates"])
