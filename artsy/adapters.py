"""Per-task adapter sets E_t on a frozen backbone (EASE / AdaptFormer, docs/method.md §3.2).

One :class:`AdapterSet` per task holds one adapter per backbone block. An
:class:`AdaptedNetwork` runs the frozen backbone either plain (h_0 = E_0(x)) or with exactly one
set active (E_t(x)); each call is one full forward pass, as in EASE.

Family-specific parts are small: which blocks become adapter slots and what one adapter looks
like. :func:`attach_adapters` dispatches on the model family:

- ViTs (:class:`AdaptedViT`): EASE's FFN-parallel :class:`Adapter` in every transformer block.
- timm EfficientNet/MobileNet-style CNNs, i.e. ``.blocks`` = stages of blocks
  (:class:`AdaptedCNN`): a parallel residual :class:`ConvAdapter` per block,
  ``y = block(x) + s * Up(Drop(ReLU(Down(x))))`` with 1x1 convolutions. Down is strided like the
  block, and Up maps to the block's output width, so blocks that change size or width are adapted
  the same way. Bottleneck per block: ``min(r, block output channels)``: ``r`` keeps its meaning
  (bottleneck width, 64 by default), capped so a narrow early block is never widened.
  The same LoRA init makes the branch output exactly zero at start.

Both share everything else (:class:`AdaptedNetwork`: task sets, freezing, train/eval, forward).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any, Optional

import numpy as np
import torch
from torch import nn
from timm.models.vision_transformer import Block, VisionTransformer

from .backbones import feature_dim, forward_features

SUPPORTED = (
    "timm VisionTransformer models with standard pre-norm blocks (vit_*, deit_*); timm "
    "EfficientNet/MobileNet-style CNNs whose `.blocks` is a sequence of stages "
    "(tf_efficientnet_lite0, efficientnet_*, mobilenetv3_*, ...)"
)


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters, e.g. 1,189,632 per EASE adapter set on ViT-B/16
    (docs/method.md §3.2)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


class Adapter(nn.Module):
    """EASE's FFN-parallel bottleneck: s * Up(Drop(ReLU(Down(x)))), no LayerNorm.

    LoRA init (down: kaiming-uniform a=sqrt(5); up and biases: zero) makes the output exactly
    zero at init, so the adapted network starts equal to the frozen one.
    """

    def __init__(self, dim: int, r: int = 64, scale: float = 0.1, dropout: float = 0.1) -> None:
        super().__init__()
        self._build(nn.Linear(dim, r), nn.Linear(r, dim), scale, dropout)

    def _build(self, down: nn.Module, up: nn.Module, scale: float, dropout: float) -> None:
        self.scale = float(scale)
        self.down = down
        self.act = nn.ReLU()
        self.drop = nn.Dropout(dropout)
        self.up = up
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.kaiming_uniform_(self.down.weight, a=math.sqrt(5))
        nn.init.zeros_(self.down.bias)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale * self.up(self.drop(self.act(self.down(x))))


class ConvAdapter(Adapter):
    """The CNN counterpart of :class:`Adapter`: the same bottleneck, with 1x1 convolutions.

    ``s * Up(Drop(ReLU(Down(x))))``: Down is ``Conv2d(in_channels, r, 1, stride)`` (strided like
    the block it runs beside, so its output has the block's spatial size), Up is
    ``Conv2d(r, out_channels, 1)``. Same LoRA init, so the output is exactly zero at start.
    Parameters: ``in_channels*r + r + r*out_channels + out_channels``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        r: int = 64,
        scale: float = 0.1,
        dropout: float = 0.1,
        stride: int = 1,
    ) -> None:
        nn.Module.__init__(self)
        down = nn.Conv2d(in_channels, r, kernel_size=1, stride=stride)
        self._build(down, nn.Conv2d(r, out_channels, kernel_size=1), scale, dropout)


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

    def __init__(self, backbone: nn.Module, slots: Sequence[Any]) -> None:
        super().__init__()
        self.backbone = backbone
        # Objects with set_adapter(adapter | None): block wrappers inside the backbone (ViT) or
        # forward hooks on its blocks (CNN). A plain list avoids double registration.
        self._slots = list(slots)
        self.adapter_sets = nn.ModuleList()
        self.train(False)

    def make_adapter(self, slot_index: int) -> nn.Module:
        raise NotImplementedError

    def stage_widths(self) -> list[int]:
        """The output width of every stage of the backbone (``backbone.blocks``), in order."""
        raise NotImplementedError

    def frozen_feature(self, x: torch.Tensor, stages: int = 0) -> torch.Tensor:
        """h0 as the gates read it: E_0(x), followed by the global average of the outputs of
        the backbone's last ``stages`` stages (a CNN's spatial mean; a ViT's mean over its patch
        tokens, class and register tokens left out), from the same pass, averaged in float32.
        Width: ``frozen_feature_dim(stages)``."""
        n = self._check_stages(stages)
        if not stages:
            return self(x)
        pooled: list[Optional[torch.Tensor]] = [None] * stages
        prefix = getattr(self.backbone, "num_prefix_tokens", 0)

        def keep(i: int):
            def hook(module: nn.Module, args: tuple, out: torch.Tensor) -> None:
                out = out.float()
                pooled[i] = out[:, prefix:].mean(1) if out.dim() == 3 else out.mean((2, 3))
            return hook

        handles = [stage.register_forward_hook(keep(i))
                   for i, stage in enumerate(list(self.backbone.blocks)[n - stages:])]
        try:
            h0 = self(x)
        finally:
            for h in handles:
                h.remove()
        return torch.cat([h0.float(), *pooled], dim=1)

    def frozen_feature_dim(self, stages: int = 0) -> int:
        """The width of ``frozen_feature(x, stages)``: the pre-logits width + the sum of the last
        ``stages`` stages' widths."""
        n = self._check_stages(stages)
        return feature_dim(self.backbone) + sum(self.stage_widths()[n - stages:])

    def _check_stages(self, stages: int) -> int:
        """The number of stages; a ValueError when ``stages`` is not between 0 and it."""
        n = len(self.backbone.blocks)
        if not 0 <= stages <= n:
            raise ValueError(f"{stages}, but the backbone has {n} stage{'s' * (n != 1)}; use 0 "
                             f"to {n}")
        return n

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

    def stage_widths(self) -> list[int]:
        return [self.dim] * len(self.backbone.blocks)


class BlockHookSlot:
    """Adapter slot on a CNN block, as a forward hook: ``y = block(x) + active_adapter(x)``.

    A hook, not a wrapper module, so any block type works and the backbone's module tree and
    state_dict keys stay exactly as they were. With no adapter active the hook returns None and
    the block's output passes unchanged.
    """

    def __init__(self, block: nn.Module, in_channels: int, out_channels: int, stride: int) -> None:
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, stride
        self.active_adapter: Optional[nn.Module] = None
        self.handle = block.register_forward_hook(self._hook)

    def set_adapter(self, adapter: Optional[nn.Module]) -> None:
        self.active_adapter = adapter

    def _hook(self, module: nn.Module, args: tuple, output: torch.Tensor) -> Optional[torch.Tensor]:
        if self.active_adapter is None:
            return None
        return output + self.active_adapter(args[0])


def _cnn_blocks(backbone: nn.Module) -> Optional[list[nn.Module]]:
    """The blocks of a timm EfficientNet/MobileNet-style model (``.blocks`` = stages), else None."""
    stages = getattr(backbone, "blocks", None)
    if not isinstance(stages, nn.Sequential) or len(stages) == 0:
        return None
    if not all(isinstance(stage, nn.Sequential) for stage in stages):
        return None
    if not (hasattr(backbone, "forward_features") and hasattr(backbone, "forward_head")):
        return None
    return [block for stage in stages for block in stage]


def _stride(size_in: int, size_out: int) -> Optional[int]:
    """The stride s with ceil(size_in / s) == size_out (1x1, no padding), or None."""
    for s in range(1, size_in + 1):
        if -(-size_in // s) == size_out:
            return s
    return None


def _probe_blocks(backbone: nn.Module, blocks: list[nn.Module]) -> list[tuple[int, int, int]]:
    """(in_channels, out_channels, stride) of every block, from one no-grad eval forward pass at
    the model's default input size (BatchNorm statistics are not touched in eval mode)."""
    seen: dict[int, tuple[torch.Size, torch.Size]] = {}

    def record(index: int, module: nn.Module, args: tuple, output: Any) -> None:
        x = args[0] if args else None
        if torch.is_tensor(x) and torch.is_tensor(output):
            seen[index] = (x.shape, output.shape)

    handles = [b.register_forward_hook(lambda m, a, o, i=i: record(i, m, a, o))
               for i, b in enumerate(blocks)]
    size = tuple(getattr(backbone, "pretrained_cfg", {}).get("input_size") or (3, 224, 224))
    ref = next(backbone.parameters())
    was_training = backbone.training
    try:
        backbone.eval()
        with torch.no_grad():
            backbone.forward_features(torch.zeros(1, *size, device=ref.device, dtype=ref.dtype))
    finally:
        for h in handles:
            h.remove()
        backbone.train(was_training)

    shapes = []
    for i in range(len(blocks)):
        x, y = seen.get(i, (None, None))
        nchw = x is not None and len(x) == len(y) == 4
        strides = {_stride(x[d], y[d]) for d in (2, 3)} if nchw else {None}
        if None in strides or len(strides) != 1:
            raise NotImplementedError(
                f"block {i} ({type(blocks[i]).__name__}) maps {tuple(x) if x is not None else '?'} "
                f"to {tuple(y) if y is not None else '?'}: residual CNN adapters need NCHW in and "
                f"out with one integer stride; supported: {SUPPORTED}"
            )
        shapes.append((x[1], y[1], strides.pop()))
    return shapes


class AdaptedCNN(AdaptedNetwork):
    """Per-task residual adapters on a timm EfficientNet/MobileNet-style CNN: one parallel
    :class:`ConvAdapter` per block (16 for EfficientNet-Lite0), fed by the block input and added
    to the block output, ``y = block(x) + s * Up(Drop(ReLU(Down(x))))``.

    Block ``i`` gets bottleneck ``r_i = min(r, C_out_i)`` and ``C_in_i*r_i + r_i + r_i*C_out_i +
    C_out_i`` parameters; the conv stem and head stay frozen and un-adapted, as the ViT's patch
    embedding and final norm. The frozen backbone, BatchNorm included, stays in eval mode.
    """

    def __init__(
        self, backbone: nn.Module, r: int = 64, scale: float = 0.1, dropout: float = 0.1
    ) -> None:
        blocks = _cnn_blocks(backbone)
        if blocks is None:
            raise NotImplementedError(
                f"{type(backbone).__name__} has no `.blocks` stages; supported: {SUPPORTED}"
            )
        hooked = (getattr(h, "__self__", None) for b in blocks for h in b._forward_hooks.values())
        if any(isinstance(h, BlockHookSlot) for h in hooked):
            raise ValueError("adapters are already attached to this backbone")
        if r < 1:
            raise ValueError(f"adapter bottleneck r must be >= 1, got {r}")
        shapes = _probe_blocks(backbone, blocks)
        slots = [BlockHookSlot(b, *shape) for b, shape in zip(blocks, shapes)]
        super().__init__(backbone, slots)
        self.r, self.scale, self.dropout = r, scale, dropout

    def bottleneck(self, slot_index: int) -> int:
        """r_i = min(r, output channels of block i)."""
        return min(self.r, self._slots[slot_index].out_channels)

    def stage_widths(self) -> list[int]:
        """The output channels of each stage's last block."""
        last = np.cumsum([len(stage) for stage in self.backbone.blocks]) - 1
        return [self._slots[i].out_channels for i in last]

    def block_shapes(self) -> list[tuple[int, int, int]]:
        """(in_channels, out_channels, stride) of each adapted block."""
        return [(s.in_channels, s.out_channels, s.stride) for s in self._slots]

    def make_adapter(self, slot_index: int) -> nn.Module:
        slot = self._slots[slot_index]
        return ConvAdapter(slot.in_channels, slot.out_channels, self.bottleneck(slot_index),
                           self.scale, self.dropout, stride=slot.stride)


def attach_adapters(
    backbone: nn.Module, r: int = 64, scale: float = 0.1, dropout: float = 0.1
) -> AdaptedNetwork:
    """Wrap a frozen backbone for per-task adapters, choosing the adapter type by model family:
    :class:`AdaptedViT` for timm ViTs, :class:`AdaptedCNN` for EfficientNet/MobileNet-style CNNs
    (``r`` is then the bottleneck cap, see :class:`AdaptedCNN`)."""
    if isinstance(backbone, VisionTransformer):
        return AdaptedViT(backbone, r=r, scale=scale, dropout=dropout)
    if _cnn_blocks(backbone) is not None:
        return AdaptedCNN(backbone, r=r, scale=scale, dropout=dropout)
    raise NotImplementedError(
        f"No adapters for {type(backbone).__name__} "
        f"({getattr(backbone, 'weight_tag', 'unknown model')}); supported: {SUPPORTED}."
    )
