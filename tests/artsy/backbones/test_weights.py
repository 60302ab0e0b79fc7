"""Local weights files: torch and safetensors layouts, strict key checks, clear errors."""

import pytest
import timm
import torch

from artsy.backbones import build_backbone, forward_features
from artsy.errors import WeightsError

from .tiny_vit import TINY, tiny


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
