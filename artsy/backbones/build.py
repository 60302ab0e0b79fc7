"""Build the frozen, features-only backbone E_0 and read its pre-logits features.

Each built model carries the exact timm weight tag it stands for (``weight_tag``) and where its
weights came from (``weight_source``), because in timm >= 0.9 an untagged name can silently mean
other weights (docs/method.md §3.1).
"""

from __future__ import annotations

import contextlib
import difflib
from typing import Any, Optional

import timm
import torch
from torch import nn

from ..errors import ArtsyError, ConfigError, one_line
from .hub import create_from_hub
from .packaged import packaged_weights
from .weights import PathLike, existing_file, load_checkpoint, load_state

DEFAULT_BACKBONE = "vit_base_patch16_224_in21k"  # EASE's main-table backbone; timm tag augreg_in21k


def resolve_model_name(name: str) -> str:
    """Map a timm name to ``arch.tag``: legacy names (``*_in21k``) to their successor, untagged
    names to timm's default tag, so runs record which weights they mean. An unknown name or tag
    is a :class:`ConfigError` naming ``backbone.name`` and the closest timm names."""
    if not isinstance(name, str) or not name:
        raise ConfigError(f"config key 'backbone.name': expected a timm model name such as "
                          f"{DEFAULT_BACKBONE!r}, got {name!r}")
    name = timm.models.get_deprecated_models().get(name) or name
    if not timm.is_model(name):
        raise ConfigError(f"config key 'backbone.name': unknown timm model {name!r}; "
                          f"{_close_names(name)}")
    try:
        cfg = timm.models.get_pretrained_cfg(name)
    except RuntimeError:  # "Invalid pretrained tag (x) for arch."
        arch, tag = timm.models.split_model_name_tag(name)
        tags = timm.list_pretrained(f"{arch}.*")
        raise ConfigError(f"config key 'backbone.name': timm model {arch!r} has no weight tag "
                          f"{tag!r}; use one of {', '.join(tags) or arch + ' (untagged)'}") \
            from None
    if cfg is None or not cfg.tag:
        return name
    return f"{cfg.architecture}.{cfg.tag}"


def _close_names(name: str) -> str:
    """'did you mean: ...' with the closest timm names, else names of the same family."""
    arch = name.split(".")[0]
    close = difflib.get_close_matches(arch, timm.list_models(), n=3)
    if close:
        return f"did you mean: {', '.join(close)}?"
    family = f"{arch.split('_')[0]}*"
    names = timm.list_models(family)
    if names:
        near = difflib.get_close_matches(arch, names, n=3, cutoff=0.0)
        return (f"did you mean one of the {len(names)} timm models '{family}', e.g. "
                f"{', '.join(near)}? (list them: python -c \"import timm; "
                f"print(timm.list_models('{family}'))\")")
    return ("choose a name from timm.list_models() (python -c \"import timm; "
            "print(timm.list_models())\")")


def build_backbone(
    name: str = DEFAULT_BACKBONE,
    pretrained: bool = True,
    checkpoint: Optional[PathLike] = None,
    **model_kwargs: Any,
) -> nn.Module:
    """Create a frozen, features-only timm model.

    Weights: from ``checkpoint`` when given (strict keys, classifier head ignored; lukemelas-style
    EfficientNet keys are remapped); else, when ``pretrained`` and ``name`` is an untagged key of
    :data:`~.packaged.PACKAGED_WEIGHTS`, from the installed weight package (``weight_source`` is
    ``'package:<distribution>'``, and the model's ``pretrained_cfg`` mean/std become the package's
    normalisation); else from the Hugging Face hub when ``pretrained``; else random. Offline without
    a checkpoint, the hub path fails at once with :class:`PretrainedWeightsUnavailable` instead of
    retrying for ~47 s.
    """
    if model_kwargs.get("num_classes", 0) != 0:
        raise ConfigError(f"config key 'backbone.model_kwargs': num_classes="
                          f"{model_kwargs['num_classes']!r} is not allowed: build_backbone gives "
                          "features only (num_classes is always 0); remove num_classes")
    user_kwargs = dict(model_kwargs)
    model_kwargs["num_classes"] = 0
    packaged = packaged_weights(name)
    full_name = resolve_model_name(name)

    if checkpoint is not None:
        path = existing_file(checkpoint)
        with _model_kwargs_errors(full_name, user_kwargs):
            model = timm.create_model(full_name, pretrained=False, **model_kwargs)
        load_checkpoint(model, path)
        source = f"file:{path}"
    elif pretrained and packaged is not None:
        state = packaged.state_dict()  # before building: a missing package fails fast
        with _model_kwargs_errors(packaged.arch, user_kwargs):
            model = timm.create_model(packaged.arch, pretrained=False, **model_kwargs)
        load_state(model, state, origin=f"the weights of package '{packaged.distribution}'")
        model.pretrained_cfg.update(  # in place: `default_cfg` is an alias of this dict
            mean=packaged.mean, std=packaged.std, tag=packaged.tag, hf_hub_id=None, url=None
        )
        full_name = f"{packaged.arch}.{packaged.tag}"
        source = f"package:{packaged.distribution}"
    elif pretrained:
        with _model_kwargs_errors(full_name, user_kwargs):
            model = create_from_hub(full_name, model_kwargs)
        source = f"hf-hub:{model.pretrained_cfg.get('hf_hub_id') or full_name}"
    else:
        with _model_kwargs_errors(full_name, user_kwargs):
            model = timm.create_model(full_name, pretrained=False, **model_kwargs)
        source = "random"

    model.weight_tag = full_name
    model.weight_source = source
    return freeze(model)


# what timm's model constructors raise for arguments they cannot use: an unknown keyword
# (TypeError), a value of the wrong type or range (TypeError, ValueError, AssertionError,
# ZeroDivisionError, RuntimeError "negative dimension"), a missing entry (KeyError, IndexError)
_KWARGS_ERRORS = (TypeError, ValueError, AssertionError, ArithmeticError, RuntimeError, KeyError,
                  IndexError)


@contextlib.contextmanager
def _model_kwargs_errors(model: str, kwargs: dict):
    """Turn a timm constructor failure into a ConfigError naming backbone.model_kwargs, when
    there are model_kwargs to blame (without them a failure is a bug and keeps its traceback)."""
    try:
        yield
    except ArtsyError:
        raise
    except _KWARGS_ERRORS as err:
        if not kwargs:
            raise
        raise ConfigError(
            f"config key 'backbone.model_kwargs': timm model {model!r} cannot be built with "
            f"{kwargs!r} ({type(err).__name__}: {one_line(err) or 'no detail'}); fix or remove "
            f"the offending keys (they are the keyword arguments of the timm model's "
            f"constructor)") from err


def freeze(module: nn.Module) -> nn.Module:
    """Stop gradients and switch to eval mode: E_0 never trains (docs/method.md §3.4)."""
    module.requires_grad_(False)
    return module.eval()


def feature_dim(backbone: nn.Module) -> int:
    """Width of the pre-logits feature (768 for ViT-B): the prototype block width, never
    hard-coded."""
    return int(getattr(backbone, "head_hidden_size", None) or backbone.num_features)


def forward_features(backbone: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Pre-logits feature, (batch, feature_dim). For a ViT: the CLS token after the final
    LayerNorm, as EASE's ``forward_proto``; for other timm models, their pooled pre-logits."""
    return backbone.forward_head(backbone.forward_features(x), pre_logits=True)


# ----------------------------------------------------------------------------------------------
# Does data.image_size fit the model? One dummy forward, before a run directory exists

_PROBE_SIZES = (32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 384)  # tried only on a failure


def check_image_size(backbone: nn.Module, image_size: int, key: str = "data.image_size") -> None:
    """Raise :class:`ConfigError` naming ``key`` and the sizes the model accepts unless
    ``backbone`` (as built by :func:`build_backbone`) takes a (1, 3, image_size, image_size)
    batch. One forward of zeros in ``torch.no_grad()`` and eval mode: no gradient, no random
    numbers drawn, the training mode restored. A model that fails at every size (a bug, not a
    size problem) re-raises its own error."""
    try:
        _probe(backbone, image_size)
    except Exception as err:
        accepted = _accepted_sizes(backbone, image_size)
        if not accepted:
            raise
        arch = getattr(backbone, "weight_tag", None) or type(backbone).__name__
        raise ConfigError(
            f"config key '{key}': {image_size} does not fit backbone {arch!r} "
            f"({type(err).__name__}: {one_line(err) or 'no detail'}); it accepts {accepted}: "
            f"set {key} to one of those") from err


def _probe(backbone: nn.Module, size: int) -> None:
    param = next(backbone.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
    x = torch.zeros(1, 3, size, size, device=device, dtype=dtype)
    training = backbone.training
    backbone.eval()
    try:
        with torch.no_grad():
            forward_features(backbone, x)
    finally:
        backbone.train(training)


def _works(backbone: nn.Module, size: int) -> bool:
    try:
        _probe(backbone, size)
    except Exception:
        return False
    return True


def _accepted_sizes(backbone: nn.Module, failed: int) -> str:
    """In words, the image sizes ``backbone`` takes ('' if none found): a ViT's fixed img_size
    or multiples of its patch size, read off its patch embedding; otherwise the sizes of
    `_PROBE_SIZES` (and the weights' default) that a forward accepts."""
    embed = getattr(backbone, "patch_embed", None)
    img_size, patch = getattr(embed, "img_size", None), getattr(embed, "patch_size", None)
    if img_size and getattr(embed, "strict_img_size", False) and img_size[0] == img_size[1]:
        if _works(backbone, img_size[0]):
            return (f"only {img_size[0]}, the img_size it is built with (or build it for "
                    f"{failed} with backbone.model_kwargs.img_size={failed})")
    if patch and patch[0] == patch[1] and not getattr(embed, "dynamic_img_pad", False):
        p = patch[0]
        near = sorted({max(p, failed // p * p), (failed // p + 1) * p})
        if any(_works(backbone, s) for s in near):
            return f"multiples of its patch size {p}, e.g. {' or '.join(map(str, near))}"
    default = (getattr(backbone, "pretrained_cfg", None) or {}).get("input_size") or (3, 224, 224)
    sizes = sorted({s for s in _PROBE_SIZES if s <= max(default[-1], 224)} | {default[-1]})
    good = [s for s in sizes if s != failed and _works(backbone, s)]
    if not good:
        return ""
    return f"{', '.join(map(str, good))} of the sizes {', '.join(map(str, sizes))} tried"
