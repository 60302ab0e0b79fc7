"""Local weights files: read a state_dict, check its keys strictly, load it into a backbone.

Strict because a silently partial load would train adapters on a half-random E_0; only the
classifier head may be missing, since the backbone is features-only.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Union

import torch
from torch import nn

from ..errors import WeightsError, one_line
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


def read_state_dict(path: PathLike, what: str = "backbone.checkpoint",
                    fix: str = "") -> dict[str, torch.Tensor]:
    """Read a state_dict from .safetensors or a torch file, unwrapping 'state_dict'/'model'
    nesting and a DataParallel 'module.' prefix. A file that cannot be read (empty, truncated,
    not a weights file, or pickling objects other than tensors) is a one-line
    :class:`WeightsError` naming ``what`` and the file; ``fix`` replaces the default advice."""
    path = Path(path)
    fix = fix or ("re-download or re-export it: torch.save(model.state_dict(), path) or "
                  "safetensors.torch.save_file(model.state_dict(), path)")
    state = _load_file(path, what, fix)
    while isinstance(state, Mapping):
        nested = (state[k] for k in ("state_dict", "model") if isinstance(state.get(k), Mapping))
        inner = next(nested, None)
        if inner is None:
            break
        state = inner
    if not isinstance(state, Mapping) or not all(torch.is_tensor(v) for v in state.values()):
        raise WeightsError(f"{what} '{path}' holds no state_dict of tensors (found "
                           f"{type(state).__name__}); {fix}")
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return dict(state)


_UNSUPPORTED_GLOBAL = re.compile(r"Unsupported global: GLOBAL ([\w.]+)")


def _load_file(path: Path, what: str, fix: str) -> Any:
    """The file's content, tensors only (``weights_only``), or a one-line WeightsError."""
    kind = "safetensors" if path.suffix == ".safetensors" else "torch"
    try:
        if kind == "safetensors":
            import safetensors.torch

            return safetensors.torch.load_file(str(path), device="cpu")
        return torch.load(path, map_location="cpu", weights_only=True)
    except MemoryError:
        raise
    except Exception as err:
        # torch's own refusal is several lines and suggests a load that can run code: neither
        # belongs in this message, only the global it refused
        refused = _UNSUPPORTED_GLOBAL.search(str(err))
        if refused:
            raise WeightsError(
                f"{what} '{path}' pickles {refused.group(1)}, not only tensors, and is not loaded "
                f"because unpickling it could run code; save the weights alone: "
                f"torch.save(model.state_dict(), path) or a .safetensors file") from None
        inner = re.search(r"WeightsUnpickler error: ([^\n]*)", str(err))
        detail = one_line(inner.group(1) if inner else err).split(". ")[0][:200]
        if not detail or "weights_only" in detail:
            detail = "no detail"
        size = path.stat().st_size if path.is_file() else 0
        raise WeightsError(
            f"{what} '{path}' ({size} bytes) cannot be read as a {kind} weights file "
            f"({type(err).__name__}: {detail}): it is empty, truncated or not a weights file; "
            f"{fix}") from err


def load_checkpoint(model: nn.Module, path: PathLike) -> None:
    """Load ``path`` into ``model`` with strict key checking; classifier-head keys are dropped
    because the backbone is features-only. A lukemelas/efficientnet_pytorch-style state_dict
    (``_conv_stem``, ``_blocks.N...``) is remapped to timm names first."""
    state = read_state_dict(path)
    if is_lukemelas_state_dict(state):
        blocks = getattr(model, "blocks", None)
        if not isinstance(blocks, nn.Sequential):
            raise WeightsError(
                f"backbone.checkpoint '{path}' has EfficientNet (lukemelas) keys but "
                f"{_arch(model)} is not a timm EfficientNet; set backbone.name to the "
                f"EfficientNet the weights were saved from (e.g. tf_efficientnet_lite0)"
            )
        state = lukemelas_to_timm(state, [len(stage) for stage in blocks])
    load_state(model, state, origin=f"backbone.checkpoint '{path}'")


def load_state(model: nn.Module, state: Mapping[str, torch.Tensor], origin: str) -> None:
    """Strict load of a timm-named state_dict. Classifier-head keys the model does not have are
    dropped (a features-only backbone has no head); every other key must match exactly."""
    heads, own = _classifier_prefixes(model), model.state_dict().keys()
    body = {k: v for k, v in state.items() if k in own or not k.startswith(heads)}
    try:
        missing, unexpected = model.load_state_dict(body, strict=False)
    except RuntimeError as err:  # shape mismatches
        raise WeightsError(f"{origin} does not fit {_arch(model)}: {_shapes(err)}; {_FIT}") \
            from err
    if missing or unexpected:
        raise WeightsError(
            f"{origin} does not fit {_arch(model)}: "
            f"{len(missing)} missing keys {missing[:5]}, {len(unexpected)} unexpected keys "
            f"{unexpected[:5]}; {_FIT}"
        )


_FIT = ("check that backbone.name and backbone.model_kwargs describe the architecture the "
        "weights were saved from")


def _shapes(err: RuntimeError) -> str:
    """torch's multi-line 'size mismatch' report, on one line and at most 3 mismatches."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    mismatches = [line for line in lines if line.startswith("size mismatch")]
    if mismatches:
        more = f" (and {len(mismatches) - 3} more)" if len(mismatches) > 3 else ""
        return " ".join(mismatches[:3]) + more
    return one_line(err)


def _classifier_prefixes(model: nn.Module) -> tuple[str, ...]:
    names = getattr(model, "pretrained_cfg", {}).get("classifier") or "head"
    names = (names,) if isinstance(names, str) else tuple(names)
    return tuple(n + "." for n in names)


def _arch(model: nn.Module) -> str:
    return getattr(model, "pretrained_cfg", {}).get("architecture") or type(model).__name__
