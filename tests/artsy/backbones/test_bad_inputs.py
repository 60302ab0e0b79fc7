"""Bad backbone inputs (issue #8): each is one line that names the key or file and the fix.

backbone.name (unknown names, with the closest timm names), backbone.model_kwargs (arguments the
timm constructor refuses), backbone.checkpoint (garbage, empty, truncated, pickled objects) and
data.image_size (a size the model cannot take: `check_image_size`). Tiny random-weight models.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import timm
import torch
from torch import nn

from artsy import run
from artsy.backbones import build_backbone
from artsy.backbones.build import check_image_size, resolve_model_name
from artsy.backbones.weights import read_state_dict
from artsy.errors import ConfigError, WeightsError

from ...bad_input import BadInput, check_api, check_cli
from .tiny_vit import TINY

torch.set_num_threads(1)
VIT = "vit_tiny_patch16_224"
TINY16 = dict(img_size=16, patch_size=4, depth=1, embed_dim=32, num_heads=2)  # tiny-synthetic's


# ----------------------------------------------------------------------------------------------
# backbone.name

NAME_CASES = [
    BadInput("no-close-name", argv=("vit_nonexistent_xyz",),
             names=("backbone.name", "vit_nonexistent_xyz", "did you mean", "timm.list_models")),
    BadInput("typo", argv=("vit_tiny_patch16_22",),
             names=("backbone.name", "did you mean", "vit_tiny_patch16_224")),
    BadInput("no-family", argv=("zzzz_qqq",), names=("backbone.name", "zzzz_qqq",
                                                      "timm.list_models()")),
    BadInput("unknown-tag", argv=(f"{VIT}.bogus",),
             names=("backbone.name", "no weight tag 'bogus'", f"{VIT}.augreg_in21k")),
    BadInput("empty", argv=("",), names=("backbone.name", "expected a timm model name")),
]


@pytest.mark.parametrize("case", NAME_CASES, ids=lambda c: c.id)
def test_bad_backbone_names(case):
    (name,) = case.argv
    check_api(lambda: resolve_model_name(name), ConfigError, case.names)
    check_api(lambda: build_backbone(name, pretrained=False), ConfigError, case.names)


# ----------------------------------------------------------------------------------------------
# backbone.model_kwargs

KWARGS = ("backbone.model_kwargs", "fix or remove")
KWARGS_CASES = [
    BadInput("wrong-type", argv=({"depth": "x"},), names=(*KWARGS, "'depth': 'x'", "TypeError")),
    BadInput("unknown-kwarg", argv=({"bogus": 1},),
             names=(*KWARGS, "unexpected keyword argument 'bogus'")),
    BadInput("heads-do-not-divide-width", argv=({"num_heads": 3},),
             names=(*KWARGS, "'num_heads': 3", "AssertionError")),
    BadInput("zero-patch", argv=({"patch_size": 0},), names=(*KWARGS, "'patch_size': 0")),
    BadInput("negative-width", argv=({"embed_dim": -1},), names=(*KWARGS, "'embed_dim': -1")),
    BadInput("num-classes", argv=({"num_classes": 10},),
             names=("backbone.model_kwargs", "num_classes=10", "features only",
                    "remove num_classes")),
]


@pytest.mark.parametrize("case", KWARGS_CASES, ids=lambda c: c.id)
def test_bad_model_kwargs(case):
    (kwargs,) = case.argv
    check_api(lambda: build_backbone(VIT, pretrained=False, **{**TINY, **kwargs}), ConfigError,
              case.names)


# ----------------------------------------------------------------------------------------------
# backbone.checkpoint: files that are not weights

def _torch_file(tmp: Path, name: str = "w.pt", **kw) -> Path:
    path = tmp / name
    torch.save({"w": torch.zeros(64, 64)}, path, **kw)
    return path


def _safetensors_file(tmp: Path, name: str = "w.safetensors") -> Path:
    import safetensors.torch

    path = tmp / name
    safetensors.torch.save_file({"w": torch.zeros(64, 64)}, str(path))
    return path


def _cut(path: Path) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _write(name: str, data: bytes):
    def make(tmp: Path) -> Path:
        (tmp / name).write_bytes(data)
        return tmp / name
    return make


def _pickled_module(tmp: Path) -> Path:
    path = tmp / "model.pt"
    torch.save(nn.Linear(2, 2), path)  # the whole module, not its state_dict
    return path


UNREADABLE = ("backbone.checkpoint", "empty, truncated or not a weights file", "re-export")
WEIGHTS_CASES = [
    BadInput("garbage-pt", setup=_write("garbage.pt", b"hello, not weights " * 20),
             names=("garbage.pt", *UNREADABLE)),
    BadInput("empty-pt", setup=_write("empty.pt", b""), names=("empty.pt", "0 bytes",
                                                                 *UNREADABLE)),
    BadInput("truncated-pt", setup=lambda tmp: _cut(_torch_file(tmp, "cut.pt")),
             names=("cut.pt", *UNREADABLE)),
    BadInput("truncated-legacy-pth", names=("old.pth", *UNREADABLE),
             setup=lambda tmp: _cut(_torch_file(tmp, "old.pth",
                                                _use_new_zipfile_serialization=False))),
    BadInput("garbage-safetensors", setup=_write("g.safetensors", b"garbage" * 30),
             names=("g.safetensors", "safetensors weights file", *UNREADABLE)),
    BadInput("empty-safetensors", setup=_write("e.safetensors", b""),
             names=("e.safetensors", *UNREADABLE)),
    BadInput("truncated-safetensors", names=("t.safetensors", *UNREADABLE),
             setup=lambda tmp: _cut(_safetensors_file(tmp, "t.safetensors"))),
    BadInput("pickled-module", setup=_pickled_module,
             names=("model.pt", "backbone.checkpoint", "torch.nn.modules.linear.Linear",
                    "could run code", "torch.save(model.state_dict(), path)")),
    BadInput("not-a-state-dict", setup=lambda tmp: (torch.save([torch.zeros(1)], tmp / "l.pt"),
                                                    tmp / "l.pt")[1],
             names=("l.pt", "backbone.checkpoint", "no state_dict of tensors", "re-export")),
]


@pytest.mark.parametrize("case", WEIGHTS_CASES, ids=lambda c: c.id)
def test_unreadable_checkpoints(case, tmp_path):
    path = case.setup(tmp_path)
    line = check_api(lambda: read_state_dict(path), WeightsError, case.names)
    assert "weights_only" not in line
    line = check_api(lambda: build_backbone(VIT, pretrained=False, checkpoint=path, **TINY),
                     WeightsError, case.names)
    assert "weights_only" not in line


def test_a_checkpoint_of_another_width_is_one_line(tmp_path):
    wide = timm.create_model(VIT, pretrained=False, num_classes=0, **{**TINY, "embed_dim": 64})
    torch.save(wide.state_dict(), tmp_path / "wide.pth")
    check_api(lambda: build_backbone(VIT, pretrained=False, checkpoint=tmp_path / "wide.pth",
                                     **TINY), WeightsError,
              ("backbone.checkpoint", "wide.pth", "does not fit", "size mismatch",
               "backbone.model_kwargs"))


# ----------------------------------------------------------------------------------------------
# data.image_size: one dummy forward before a run directory exists

def _cnn(name: str):
    return lambda: build_backbone(name, pretrained=False)


SIZE_CASES = [
    BadInput("vit-fixed-size", argv=(32,), setup=lambda: build_backbone(VIT, pretrained=False,
                                                                         **TINY16),
             names=("data.image_size", "32 does not fit", "only 16",
                    "backbone.model_kwargs.img_size=32")),
    BadInput("vit-dynamic-not-a-patch-multiple", argv=(18,),
             setup=lambda: build_backbone(VIT, pretrained=False, dynamic_img_size=True, **TINY16),
             names=("data.image_size", "18 does not fit", "multiples of its patch size 4",
                    "16 or 20")),
    BadInput("window-net-too-small", argv=(32,), setup=_cnn("test_maxvit"),
             names=("data.image_size", "32 does not fit", "accepts 160")),
    BadInput("fixed-relpos-net", argv=(64,), setup=_cnn("test_coatnet"),
             names=("data.image_size", "64 does not fit", "accepts 160")),
]


@pytest.mark.parametrize("case", SIZE_CASES, ids=lambda c: c.id)
def test_image_sizes_the_model_cannot_take(case):
    (size,) = case.argv
    backbone = case.setup()
    check_api(lambda: check_image_size(backbone, size), ConfigError, case.names)


def test_a_fitting_image_size_passes_and_changes_nothing():
    backbone = build_backbone(VIT, pretrained=False, **TINY16)
    backbone.train()  # restored afterwards, whatever it was
    rng = torch.get_rng_state()
    check_image_size(backbone, 16)
    assert backbone.training and torch.equal(torch.get_rng_state(), rng)
    check_image_size(build_backbone(VIT, pretrained=False, dynamic_img_size=True, **TINY16), 20)
    check_image_size(build_backbone("test_efficientnet", pretrained=False), 8)


def test_a_model_that_fails_at_every_size_keeps_its_own_error():
    class Broken(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.zeros(1))

        def forward_features(self, x):
            raise RuntimeError("broken model")

        def forward_head(self, x, pre_logits=False):
            return x

    with pytest.raises(RuntimeError, match="broken model"):
        check_image_size(Broken(), 32)


# ----------------------------------------------------------------------------------------------
# From the command line: one line, exit code 2, no run directory

def _cli(tmp: Path, *overrides: str) -> list[str]:
    return ["tiny-synthetic", f"run.out_dir={tmp / 'runs'}", *overrides]


CLI_CASES = [
    BadInput("unknown-name", argv=("backbone.name=vit_nonexistent_xyz",),
             names=("backbone.name", "vit_nonexistent_xyz", "did you mean")),
    BadInput("unknown-kwarg", argv=("backbone.model_kwargs.bogus=1",),
             names=("backbone.model_kwargs", "bogus", "fix or remove")),
    BadInput("garbage-checkpoint", argv=("backbone.checkpoint={tmp}/garbage.safetensors",),
             setup=_write("garbage.safetensors", b"garbage" * 30),
             names=("backbone.checkpoint", "garbage.safetensors", "re-export")),
]


@pytest.mark.parametrize("case", CLI_CASES, ids=lambda c: c.id)
def test_bad_backbone_inputs_on_the_command_line(case, tmp_path, capsys):
    if case.setup is not None:
        case.setup(tmp_path)
    argv = _cli(tmp_path, *(a.format(tmp=tmp_path) for a in case.argv))
    check_cli(run.main, argv, capsys, case.names, watched=[tmp_path])
    runs = tmp_path / "runs"
    assert not runs.exists() or list(runs.iterdir()) == []
