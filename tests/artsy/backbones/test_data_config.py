"""The mean/std that a backbone's weights expect: timm's data config, or the packaged entry."""

from artsy.backbones.data_config import pretrained_mean_std, weights_mean_std
from artsy.backbones.packaged import LITE_MEAN, LITE_STD

from .tiny_vit import tiny


def test_mean_std_exposed():
    mean, std = pretrained_mean_std(tiny())
    assert mean == (0.5, 0.5, 0.5) and std == (0.5, 0.5, 0.5)


def test_weights_mean_std_without_building():
    assert weights_mean_std("vit_base_patch16_224_in21k") == ((0.5,) * 3, (0.5,) * 3)
    assert weights_mean_std("resnet50") == ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    # The untagged name means the packaged weights, an explicit tag timm's hub weights.
    assert weights_mean_std("tf_efficientnet_lite0") == (LITE_MEAN, LITE_STD)
    assert weights_mean_std("tf_efficientnet_lite0.in1k") == ((0.5,) * 3, (0.5,) * 3)
