"""Building E_0: names and weight tags, frozen and features-only."""

import pytest
import torch

from artsy.backbones.build import feature_dim, forward_features, resolve_model_name
from artsy.errors import ConfigError

from .tiny_vit import tiny


def test_resolve_weight_tags():
    # The legacy IN21K name maps to the AugReg IN21K weights (docs/method.md §3.1) ...
    assert resolve_model_name("vit_base_patch16_224_in21k") == "vit_base_patch16_224.augreg_in21k"
    # ... while the untagged name means the augreg2 IN21K->IN1K weights in timm >= 0.9.
    assert resolve_model_name("vit_base_patch16_224") == "vit_base_patch16_224.augreg2_in21k_ft_in1k"
    tagged = "vit_base_patch16_224.augreg_in21k"
    assert resolve_model_name(tagged) == tagged
    with pytest.raises(ConfigError, match="did you mean: vit_base_patch16_224"):
        resolve_model_name("vit_base_patch16_224_in21")


def test_tiny_backbone_is_frozen_features_only():
    torch.manual_seed(0)
    model = tiny()
    assert model.weight_tag == "vit_tiny_patch16_224.augreg_in21k_ft_in1k"
    assert model.weight_source == "random"
    assert not model.training
    assert not any(p.requires_grad for p in model.parameters())
    assert model.num_classes == 0 and feature_dim(model) == 32
    x = torch.rand(3, 3, 32, 32)
    feats = forward_features(model, x)
    assert feats.shape == (3, 32)
    assert torch.equal(feats, model.forward_features(x)[:, 0])  # CLS token after the final LayerNorm
    with pytest.raises(ValueError, match="features only"):
        tiny(num_classes=10)
