"""Hub weights: a fast, clear failure offline, and the local hub cache used when it has them."""

import os

os.environ["HF_HUB_OFFLINE"] = "1"  # before timm/huggingface_hub are imported

import time

import pytest
import timm
import torch

from artsy.backbones import build_backbone, forward_features, hub
from artsy.errors import PretrainedWeightsUnavailable

from .tiny_vit import TINY


def _assert_clear_offline_error(info, hub_id):
    msg = str(info.value)
    for needle in (hub_id, "model.safetensors", "backbone.checkpoint=", "backbone.pretrained=false"):
        assert needle in msg


def test_pretrained_offline_fails_fast_with_clear_message():
    start = time.perf_counter()
    with pytest.raises(PretrainedWeightsUnavailable) as info:
        build_backbone("vit_tiny_patch16_224", pretrained=True, **TINY)
    assert time.perf_counter() - start < 5
    _assert_clear_offline_error(info, "timm/vit_tiny_patch16_224.augreg_in21k_ft_in1k")


def test_unreachable_hub_without_offline_flag_fails_fast(monkeypatch):
    from huggingface_hub import constants

    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(hub, "_hub_reachable", lambda: False)  # as on a machine without network
    start = time.perf_counter()
    with pytest.raises(PretrainedWeightsUnavailable) as info:
        build_backbone("vit_tiny_patch16_224", pretrained=True, **TINY)
    assert time.perf_counter() - start < 5
    assert constants.HF_HUB_OFFLINE is False  # the forced offline mode was undone
    _assert_clear_offline_error(info, "timm/vit_tiny_patch16_224.augreg_in21k_ft_in1k")


def test_hub_probe_is_bounded_in_time():
    start = time.perf_counter()
    assert hub._hub_reachable(timeout=1.0) in (True, False)
    assert time.perf_counter() - start < 2


def test_offline_with_weights_in_hub_cache_loads_them(tmp_path, monkeypatch):
    """Offline is not an error when the hub cache already holds the weights."""
    from huggingface_hub import constants
    import safetensors.torch

    torch.manual_seed(0)
    source = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=0, **TINY).eval()
    repo = tmp_path / "models--timm--vit_tiny_patch16_224.augreg_in21k_ft_in1k"
    snapshot = repo / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    safetensors.torch.save_file(source.state_dict(), str(snapshot / "model.safetensors"))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))

    loaded = build_backbone("vit_tiny_patch16_224", pretrained=True, **TINY)
    assert loaded.weight_source == "hf-hub:timm/vit_tiny_patch16_224.augreg_in21k_ft_in1k"
    x = torch.rand(2, 3, 32, 32)
    assert torch.equal(forward_features(loaded, x), forward_features(source, x))
