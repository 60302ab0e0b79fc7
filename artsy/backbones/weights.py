"""Local weights files: read a state_dict, check its keys strictly, load it into a backbone.

Strict because a silently partial load would train adapters on a half-random E_0; only the
classifier head may be missing, since the backbone is features-only.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Union

import torch
from torch import nn

from ..errors import WeightsError
from .keymaps import is_lukemelas_state_dict, lukemelas_to_timm

PathLike = Union[str, os.PathLike]


def existing_file(checkpoint: PathLike) -> Path:
    """``backbone.checkpoint`` as a path, or a message that says how to fix the config."""
    path = Path(checkpoint).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"Backbone checkpoint not found: '{path}' (from `backbone.checkpoint`). Point "
            f"`backbone.checkpoint=...` at an existing .safetensors/.pth/.pt/.bin file, or set "
            f"`backbone.pretrained=false` and leave the checkpoint empty."
        )
    return path


def read_state_dict(path: PathLike) -> dict[str, torch.Tensor]:
    """Read a state_dict from .safetensors or a torch file, unwrapping 'state_dict'/'model'
    nesting and a DataParallel 'module.' prefix."""
    path = Path(path)
    if path.suffix == ".safetensors":
        import safetensors.torch

        state: Any = safetensors.torch.load_file(str(path), device="cpu")
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
    while isinstance(state, Mapping):
        nested = (state[k] for k in ("state_dict", "model") if isinstance(state.get(k), Mapping))
        inner = next(nested, None)
        if inner is None:
            break
        state = inner
    if not isinstance(state, Mapping) or not all(torch.is_tensor(v) for v in state.values()):
        raise WeightsError(f"'{path}' holds no state_dict of tensors")
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return dict(state)


def load_checkpoint(model: nn.Module, path: PathLike) -> None:
    """Load ``path`` into ``model`` with strict key checking; classifier-head keys are dropped
    because the backbone is features-only. A lukemelas/efficientnet_pytorch-style state_dict
    (``_conv_stem``, ``_blocks.N...``) is remapped to timm names first."""
    state = read_state_dict(path)
    if is_lukemelas_state_dict(state):
        blocks = getattr(model, "blocks", None)
        if not isinstance(blocks, nn.Sequential):
            raise WeightsError(
                f"checkpoint '{path}' has EfficientNet (lukemelas) keys but {_arch(model)} is "
                f"not a timm EfficientNet"
            )
        state = lukemelas_to_timm(state, [len(stage) for stage in blocks])
    load_state(model, state, origin=f"checkpoint '{path}'")


def load_state(model: nn.Module, state: Mapping[str, torch.Tensor], origin: str) -> None:
    """Strict load of a timm-named state_dict. Classifier-head keys the model does not have are
    dropped (a features-only backbone has no head); every other key must match exactly."""
    heads, own = _classifier_prefixes(model), model.state_dict().keys()
    body = {k: v for k, v in state.items() if k in own or not k.startswith(heads)}
    try:
        missing, unexpected = model.load_state_dict(body, strict=False)
    except RuntimeError as err:  # shape mismatches
        raise WeightsError(f"{origin} does not fit {_arch(model)}: {err}") from err
    if missing or unexpected:
        raise WeightsError(
            f"{origin} does not fit {_arch(model)}: "
            f"{len(missing)} missing keys {missing[:5]}, {len(unexpected)} unexpected keys "
            f"{unexpected[:5]}"
        )


def _classifier_prefixes(model: nn.Module) -> tuple[str, ...]:
    names = getattr(model, "pretrained_cfg", {}).get("classifier") or "head"
    names = (names,) if isinstance(names, str) else tuple(names)
    return tuple(n + "." for n in names)


def _arch(model: nn.Module) -> str:
    return getattr(model, "pretrained_cfg", {}).get("architecture") or type(model).__name__
