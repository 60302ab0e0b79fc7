"""Frozen timm backbones: names and weight tags, local checkpoints, fast offline failure."""

import os

os.environ["HF_HUB_OFFLINE"] = "1"  # before timm/huggingface_hub are imported

import time

import pytest
import timm
import torch

from artsy import backbones
from artsy.backbones import (
    WeightsError,
    PretrainedWeightsUnavailable,
    build_backbone,
    feature_dim,
    forward_features,
    pretrained_mean_std,
    resolve_model_name,
)

TINY = dict(img_size=32, patch_size=4, depth=2, embed_dim=32, num_heads=2)


def tiny(**kw):
    return build_backbone("vit_tiny_patch16_224", pretrained=False, **TINY, **kw)


def test_resolve_weight_tags():
    # The legacy IN21K name maps to the AugReg IN21K weights (method.md §3.1) ...
    assert resolve_model_name("vit_base_patch16_224_in21k") == "vit_base_patch16_224.augreg_in21k"
    # ... while the untagged name means the augreg2 IN21K->IN1K weights in timm >= 0.9.
    assert resolve_model_name("vit_base_patch16_224") == "vit_base_patch16_224.augreg2_in21k_ft_in1k"
    tagged = "vit_base_patch16_224.augreg_in21k"
    assert resolve_model_name(tagged) == tagged
    with pytest.raises(ValueError, match="Did you mean"):
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


def test_mean_std_exposed():
    mean, std = pretrained_mean_std(tiny())
    assert mean == (0.5, 0.5, 0.5) and std == (0.5, 0.5, 0.5)


def _save(state, path):
    if path.suffix == ".safetensors":
        import safetensors.torch

        safetensors.torch.save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    else:
        torch.save(state, path)


@pytest.mark.parametrize(
    "filename, wrap",
    [
        ("plain.pth", lambda sd: sd),
        ("nested.pt", lambda sd: {"state_dict": sd, "epoch": 3}),
        ("ddp.bin", lambda sd: {"model": {"module." + k: v for k, v in sd.items()}}),
        ("weights.safetensors", lambda sd: sd),
    ],
)
def test_checkpoint_round_trip(tmp_path, filename, wrap):
    torch.manual_seed(0)
    # The source has a 10-class head: its keys are ignored by the features-only backbone.
    source = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=10, **TINY).eval()
    path = tmp_path / filename
    _save(wrap(source.state_dict()), path)

    torch.manual_seed(1)
    loaded = build_backbone("vit_tiny_patch16_224", checkpoint=path, **TINY)
    assert loaded.weight_source == f"file:{path}"
    assert not any(p.requires_grad for p in loaded.parameters())
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        want = source.forward_head(source.forward_features(x), pre_logits=True)
        assert torch.equal(forward_features(loaded, x), want)
        assert not torch.equal(forward_features(tiny(), x), want)  # a random init differs


def test_checkpoint_keys_are_checked_strictly(tmp_path):
    state = tiny().state_dict()
    missing = dict(state)
    missing.pop("norm.weight")
    torch.save(missing, tmp_path / "missing.pth")
    with pytest.raises(WeightsError, match="1 missing keys \\['norm.weight'\\]"):
        build_backbone("vit_tiny_patch16_224", checkpoint=tmp_path / "missing.pth", **TINY)
    torch.save({**state, "extra.weight": torch.zeros(1)}, tmp_path / "extra.pth")
    with pytest.raises(WeightsError, match="unexpected keys \\['extra.weight'\\]"):
        build_backbone("vit_tiny_patch16_224", checkpoint=tmp_path / "extra.pth", **TINY)
    with pytest.raises(WeightsError, match="does not fit"):  # wrong width
        wider = {**TINY, "embed_dim": 64}
        build_backbone("vit_tiny_patch16_224", checkpoint=tmp_path / "extra.pth", **wider)


def test_missing_checkpoint_file_is_a_clear_error(tmp_path):
    path = tmp_path / "nowhere" / "model.safetensors"
    with pytest.raises(FileNotFoundError, match="backbone.checkpoint") as info:
        build_backbone("vit_tiny_patch16_224", checkpoint=path, **TINY)
    assert str(path) in str(info.value)


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
    monkeypatch.setattr(backbones, "_hub_reachable", lambda: False)  # as on a machine without network
    start = time.perf_counter()
    with pytest.raises(PretrainedWeightsUnavailable) as info:
        build_backbone("vit_tiny_patch16_224", pretrained=True, **TINY)
    assert time.perf_counter() - start < 5
    assert constants.HF_HUB_OFFLINE is False  # the forced offline mode was undone
    _assert_clear_offline_error(info, "timm/vit_tiny_patch16_224.augreg_in21k_ft_in1k")


def test_hub_probe_is_bounded_in_time():
    start = time.perf_counter()
    assert backbones._hub_reachable(timeout=1.0) in (True, False)
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
