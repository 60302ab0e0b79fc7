"""Frozen timm backbones E_0: hub weights, local checkpoints, and a fast, clear offline failure.

The backbone is always features-only (``num_classes=0``), frozen and in eval mode. Each built model
carries the exact timm weight tag it stands for (``weight_tag``) and where its weights came from
(``weight_source``), because in timm >= 0.9 an untagged name can silently mean other weights
(method.md §3.1).
"""

from __future__ import annotations

import contextlib
import difflib
import os
import socket
import threading
import urllib.parse
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Optional, Union

import timm
import torch
from torch import nn

DEFAULT_BACKBONE = "vit_base_patch16_224_in21k"  # EASE's main-table backbone; timm tag augreg_in21k
HUB_PROBE_TIMEOUT_S = 2.0

PathLike = Union[str, os.PathLike]


class PretrainedWeightsUnavailable(RuntimeError):
    """Pretrained weights were asked for but cannot be fetched (offline) nor found in the cache."""


class CheckpointError(RuntimeError):
    """A local checkpoint exists but does not fit the model (missing or unexpected keys)."""


# ----------------------------------------------------------------------------------------------
# Names and weight tags
# ----------------------------------------------------------------------------------------------


def resolve_model_name(name: str) -> str:
    """Map a timm name to ``arch.tag``: legacy names (``*_in21k``) to their successor, untagged
    names to timm's default tag, so runs record which weights they mean."""
    name = timm.models.get_deprecated_models().get(name) or name
    if not timm.is_model(name):
        close = difflib.get_close_matches(name, timm.list_models(), n=3)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise ValueError(f"Unknown timm model {name!r}.{hint}")
    cfg = timm.models.get_pretrained_cfg(name)
    if cfg is None or not cfg.tag:
        return name
    return f"{cfg.architecture}.{cfg.tag}"


# ----------------------------------------------------------------------------------------------
# Building
# ----------------------------------------------------------------------------------------------


def build_backbone(
    name: str = DEFAULT_BACKBONE,
    pretrained: bool = True,
    checkpoint: Optional[PathLike] = None,
    **model_kwargs: Any,
) -> nn.Module:
    """Create a frozen, features-only timm model.

    Weights: from ``checkpoint`` when given (strict keys, classifier head ignored); else from the
    Hugging Face hub when ``pretrained``; else random. Offline without a checkpoint, the hub path
    fails at once with :class:`PretrainedWeightsUnavailable` instead of retrying for ~47 s.
    """
    if model_kwargs.get("num_classes", 0) != 0:
        raise ValueError("build_backbone gives features only; do not pass num_classes")
    model_kwargs["num_classes"] = 0
    full_name = resolve_model_name(name)

    if checkpoint is not None:
        path = _existing_file(checkpoint)
        model = timm.create_model(full_name, pretrained=False, **model_kwargs)
        load_checkpoint(model, path)
        source = f"file:{path}"
    elif pretrained:
        model = _create_from_hub(full_name, model_kwargs)
        source = f"hf-hub:{model.pretrained_cfg.get('hf_hub_id') or full_name}"
    else:
        model = timm.create_model(full_name, pretrained=False, **model_kwargs)
        source = "random"

    model.weight_tag = full_name
    model.weight_source = source
    return freeze(model)


def freeze(module: nn.Module) -> nn.Module:
    """Stop gradients and switch to eval mode: E_0 never trains (method.md §3.4)."""
    module.requires_grad_(False)
    return module.eval()


def _hub_offline() -> bool:
    """True if the user put the Hugging Face hub in offline mode (env var or library flag)."""
    env = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    if env.strip().upper() in {"1", "ON", "YES", "TRUE"}:
        return True
    try:
        from huggingface_hub import constants
    except ImportError:
        return False
    return bool(constants.is_offline_mode())


def _hub_reachable(timeout: float = HUB_PROBE_TIMEOUT_S) -> bool:
    """A TCP connect to the hub endpoint (or the HTTPS proxy), bounded in time even if DNS hangs."""
    try:
        from huggingface_hub import constants

        endpoint = constants.ENDPOINT
    except ImportError:
        endpoint = "https://huggingface.co"
    target = urllib.request.getproxies().get("https") or endpoint
    url = urllib.parse.urlsplit(target if "://" in target else f"http://{target}")
    host, port = url.hostname, url.port or (443 if url.scheme == "https" else 80)
    ok: list[bool] = []

    def probe() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            ok.append(True)
        except OSError:
            pass

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(ok)


@contextlib.contextmanager
def _forced_hub_offline():
    """Make huggingface_hub answer from its cache only (no retry loop) for the enclosed call."""
    try:
        from huggingface_hub import constants
    except ImportError:
        yield
        return
    saved = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = saved


_HUB_WEIGHT_FILES = (
    "model.safetensors",
    "pytorch_model.bin",
    "open_clip_model.safetensors",
    "open_clip_pytorch_model.bin",
)


def _missing_from_hub_cache(full_name: str) -> bool:
    """True only if the weights certainly are not in the local hub cache (checked without
    building the model, so an offline failure costs no model construction)."""
    cfg = timm.models.get_pretrained_cfg(full_name)
    if cfg is None or not cfg.hf_hub_id:
        return False  # not a hub download: let timm try its own source
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return False
    repo, _, revision = cfg.hf_hub_id.partition("@")
    names = (cfg.hf_hub_filename,) if cfg.hf_hub_filename else _HUB_WEIGHT_FILES
    cached = (try_to_load_from_cache(repo, n, revision=revision or None) for n in names)
    return not any(isinstance(path, str) for path in cached)


def _create_from_hub(full_name: str, model_kwargs: dict) -> nn.Module:
    offline = _hub_offline() or not _hub_reachable()
    if offline and _missing_from_hub_cache(full_name):
        raise PretrainedWeightsUnavailable(_offline_message(full_name, offline))
    guard = _forced_hub_offline() if offline else contextlib.nullcontext()
    try:
        with guard:
            return timm.create_model(full_name, pretrained=True, **model_kwargs)
    except OSError as err:  # LocalEntryNotFoundError, OfflineModeIsEnabled, URLError: all OSError
        raise PretrainedWeightsUnavailable(_offline_message(full_name, offline)) from err


def _offline_message(full_name: str, offline: bool) -> str:
    cfg = timm.models.get_pretrained_cfg(full_name)
    hub_id = cfg.hf_hub_id if cfg is not None and cfg.hf_hub_id else None
    where = (
        f"the file 'model.safetensors' of the Hugging Face repo '{hub_id}'"
        if hub_id
        else f"the weights at {cfg.url if cfg is not None else '(no URL known)'}"
    )
    reason = (
        "the Hugging Face hub is offline (HF_HUB_OFFLINE=1 or no network)"
        if offline
        else "the download failed"
    )
    fetch = f" (e.g. `hf download {hub_id} model.safetensors`)" if hub_id else ""
    return (
        f"Pretrained weights for timm model '{full_name}' are not available: {reason} and they "
        f"are not in the local cache. Expected checkpoint: {where}. Copy it from a machine with "
        f"internet{fetch} and set `backbone.checkpoint=/path/to/model.safetensors`, or set "
        f"`backbone.pretrained=false` for random weights (tests and demos only)."
    )


# ----------------------------------------------------------------------------------------------
# Local checkpoints
# ----------------------------------------------------------------------------------------------


def _existing_file(checkpoint: PathLike) -> Path:
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
        raise CheckpointError(f"'{path}' holds no state_dict of tensors")
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return dict(state)


def _classifier_prefixes(model: nn.Module) -> tuple[str, ...]:
    names = getattr(model, "pretrained_cfg", {}).get("classifier") or "head"
    names = (names,) if isinstance(names, str) else tuple(names)
    return tuple(n + "." for n in names)


def load_checkpoint(model: nn.Module, path: PathLike) -> None:
    """Load ``path`` into ``model`` with strict key checking; classifier-head keys are dropped
    because the backbone is features-only."""
    heads = _classifier_prefixes(model)
    state = {k: v for k, v in read_state_dict(path).items() if not k.startswith(heads)}
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as err:  # shape mismatches
        raise CheckpointError(f"checkpoint '{path}' does not fit {_arch(model)}: {err}") from err
    if missing or unexpected:
        raise CheckpointError(
            f"checkpoint '{path}' does not fit {_arch(model)}: "
            f"{len(missing)} missing keys {missing[:5]}, {len(unexpected)} unexpected keys "
            f"{unexpected[:5]}"
        )


def _arch(model: nn.Module) -> str:
    return getattr(model, "pretrained_cfg", {}).get("architecture") or type(model).__name__


# ----------------------------------------------------------------------------------------------
# Features and preprocessing
# ----------------------------------------------------------------------------------------------


def feature_dim(backbone: nn.Module) -> int:
    """Width of the pre-logits feature (768 for ViT-B): the prototype block width, never hard-coded."""
    return int(getattr(backbone, "head_hidden_size", None) or backbone.num_features)


def forward_features(backbone: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Pre-logits feature, (batch, feature_dim). For a ViT: the CLS token after the final
    LayerNorm, as EASE's ``forward_proto``; for other timm models, their pooled pre-logits."""
    return backbone.forward_head(backbone.forward_features(x), pre_logits=True)


def pretrained_mean_std(backbone: nn.Module) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The (mean, std) the weights were trained with. EASE feeds ViTs raw [0, 1] pixels (no
    normalisation, method.md §3.1); other backbones (e.g. CNNs) may need these."""
    cfg = backbone.pretrained_cfg
    return tuple(cfg["mean"]), tuple(cfg["std"])
