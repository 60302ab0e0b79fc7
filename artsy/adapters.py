"""Per-task adapter sets E_t on a frozen backbone (EASE / AdaptFormer, method.md §3.2).

One :class:`AdapterSet` per task holds one adapter per backbone block. An
:class:`AdaptedNetwork` runs the frozen backbone either plain (h_0 = E_0(x)) or with exactly one
set active (E_t(x)); each call is one full forward pass, as in EASE.

Family-specific parts are small: which blocks become adapter slots and what one adapter looks
like. ViTs are implemented (:class:`AdaptedViT`); a CNN residual adapter would subclass
:class:`AdaptedNetwork` the same way. :func:`attach_adapters` dispatches on the model family.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any, Optional

import torch
from torch import nn
from timm.models.vision_transformer import Block, VisionTransformer

from .backbones import forward_features

SUPPORTED = "timm VisionTransformer models with standard pre-norm blocks (vit_*, deit_*)"


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters, e.g. 1,189,632 per EASE adapter set on ViT-B/16 (method.md §3.2)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


class Adapter(nn.Module):
    """EASE's FFN-parallel bottleneck: s * Up(Drop(ReLU(Down(x)))), no LayerNorm.

    LoRA init (down: kaiming-uniform a=sqrt(5); up and biases: zero) makes the output exactly
    zero at init, so the adapted network starts equal to the frozen one.
    """

    def __init__(self, dim: int, r: int = 64, scale: float = 0.1, dropout: float = 0.1) -> None:
        super().__init__()
        self.scale = float(scale)
        self.down = nn.Linear(dim, r)
        self.act = nn.ReLU()
        self.drop = nn.Dropout(dropout)
        self.up = nn.Linear(r, dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.kaiming_uniform_(self.down.weight, a=math.sqrt(5))
        nn.init.zeros_(self.down.bias)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale * self.up(self.drop(self.act(self.down(x))))


class AdapterSet(nn.ModuleList):
    """The adapters of one task, one per backbone block (the sub-network E_t)."""

    @property
    def trainable(self) -> bool:
        return any(p.requires_grad for p in self.parameters())


class AdaptedBlock(nn.Module):
    """A timm ViT ``Block`` plus an optional parallel adapter on the post-attention stream:

        x = x + Attn(LN1(x));  x = x + MLP(LN2(x)) + active_adapter(x)

    (with timm's LayerScale and drop-path kept where ``Block.forward`` has them). It adopts the
    block's children under the same names, so the backbone's state_dict keys do not change.
    """

    def __init__(self, block: Block) -> None:
        super().__init__()
        if type(block) is not Block or len(block._parameters) or len(block._buffers):
            raise NotImplementedError(f"ViT block type {type(block).__name__}; supported: {SUPPORTED}")
        for name, child in block.named_children():
            self.add_module(name, child)
        self.active_adapter: Optional[nn.Module] = None

    def set_adapter(self, adapter: Optional[nn.Module]) -> None:
        # Kept out of self._modules: the adapter belongs to its AdapterSet, not to the frozen block.
        object.__setattr__(self, "active_adapter", adapter)

    def forward(self, x: torch.Tensor, **attn_kwargs: Any) -> torch.Tensor:
        x = x + self.drop_path1(self.ls1(self.attn(self.norm1(x), **attn_kwargs)))
        out = x + self.drop_path2(self.ls2(self.mlp(self.norm2(x))))
        if self.active_adapter is not None:
            out = out + self.active_adapter(x)
        return out


class AdaptedNetwork(nn.Module):
    """Frozen backbone + a growing list of adapter sets, one per task.

    ``forward(x)`` gives E_0(x); ``forward(x, task=t)`` gives E_t(x) with only set t active.
    Only the newest set can train; ``train()`` never wakes the backbone or frozen sets, so their
    dropout stays off.
    Subclasses provide the slots (block wrappers with ``set_adapter``) and ``make_adapter``.
    """

    def __init__(self, backbone: nn.Module, slots: Sequence[nn.Module]) -> None:
        super().__init__()
        self.backbone = backbone
        self._slots = list(slots)  # modules inside backbone; a plain list avoids double registration
        self.adapter_sets = nn.ModuleList()
        self.train(False)

    def make_adapter(self, slot_index: int) -> nn.Module:
        raise NotImplementedError

    @property
    def n_tasks(self) -> int:
        return len(self.adapter_sets)

    def add_task(self) -> int:
        """Freeze every existing set, append a fresh one (the only trainable one); return its index."""
        for t in range(self.n_tasks):
            self.freeze(t)
        ref = next(self.backbone.parameters())
        new = AdapterSet(self.make_adapter(i) for i in range(len(self._slots)))
        self.adapter_sets.append(new.to(device=ref.device, dtype=ref.dtype))
        new.train(self.training)
        return self.n_tasks - 1

    def freeze(self, task: int) -> None:
        """After its task a set never changes again (EASE ``after_task``)."""
        self.adapter_sets[task].requires_grad_(False).eval()

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    def train(self, mode: bool = True) -> "AdaptedNetwork":
        super().train(mode)
        self.backbone.eval()
        for adapters in self.adapter_sets:
            adapters.train(mode and adapters.trainable)
        return self

    def forward(self, x: torch.Tensor, task: Optional[int] = None) -> torch.Tensor:
        """Pre-logits feature of the backbone with no adapter (task=None) or only set ``task``."""
        if task is not None and not -self.n_tasks <= task < self.n_tasks:
            raise IndexError(f"task {task} out of range: {self.n_tasks} adapter sets")
        adapters: Iterable[Optional[nn.Module]]
        adapters = self.adapter_sets[task] if task is not None else [None] * len(self._slots)
        try:
            for slot, adapter in zip(self._slots, adapters):
                slot.set_adapter(adapter)
            return forward_features(self.backbone, x)
        finally:
            for slot in self._slots:
                slot.set_adapter(None)


class AdaptedViT(AdaptedNetwork):
    """EASE on a timm ViT: one FFN-parallel :class:`Adapter` per transformer block
    (12 x 99,136 = 1,189,632 parameters per set for ViT-B/16 with r=64)."""

    def __init__(
        self, backbone: VisionTransformer, r: int = 64, scale: float = 0.1, dropout: float = 0.1
    ) -> None:
        if any(isinstance(b, AdaptedBlock) for b in backbone.blocks):
            raise ValueError("adapters are already attached to this backbone")
        slots = [AdaptedBlock(b) for b in backbone.blocks]
        for i, slot in enumerate(slots):
            backbone.blocks[i] = slot
        super().__init__(backbone, slots)
        self.dim, self.r, self.scale, self.dropout = backbone.embed_dim, r, scale, dropout

    def make_adapter(self, slot_index: int) -> nn.Module:
        return Adapter(self.dim, self.r, self.scale, self.dropout)


def attach_adapters(
    backbone: nn.Module, r: int = 64, scale: float = 0.1, dropout: float = 0.1
) -> AdaptedNetwork:
    """Wrap a frozen backbone for per-task adapters, choosing the adapter type by model family."""
    if isinstance(backbone, VisionTransformer):
        return AdaptedViT(backbone, r=r, scale=scale, dropout=dropout)
    raise NotImplementedError(
        f"No adapters for {type(backbone).__name__} "
        f"({getattr(backbone, 'weight_tag', 'unknown model')}); supported: {SUPPORTED}. "
        f"CNN residual adapters are planned as another AdaptedNetwork subclass."
    )
