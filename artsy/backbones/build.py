"""Build the frozen, features-only backbone E_0 and read its pre-logits features.

Each built model carries the exact timm weight tag it stands for (``weight_tag``) and where its
weights came from (``weight_source``), because in timm >= 0.9 an untagged name can silently mean
other weights (docs/method.md §3.1).
"""

from __future__ import annotations

import difflib
from typing import Any, Optional

import timm
import torch
from torch import nn

from .hub import create_from_hub
from .packaged import packaged_weights
from .weights import PathLike, existing_file, load_checkpoint, load_state

DEFAULT_BACKBONE = "vit_base_patch16_224_in21k"  # EASE's main-table backbone; timm tag augreg_in21k


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
        raise ValueError("build_backbone gives features only; do not pass num_classes")
    model_kwargs["num_classes"] = 0
    packaged = packaged_weights(name)
    full_name = resolve_model_name(name)

    if checkpoint is not None:
        path = existing_file(checkpoint)
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
        model = create_from_hub(full_name, model_kwargs)
        source = f"hf-hub:{model.pretrained_cfg.get('hf_hub_id') or full_name}"
    else:
        model = timm.create_model(full_name, pretrained=False, **model_kwargs)
        source = "random"

    model.weight_tag = full_name
    model.weight_source = source
    return freeze(model)


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
