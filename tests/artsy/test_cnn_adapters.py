"""Residual adapters on timm EfficientNet-style CNNs: same AdaptedNetwork interface as the ViT."""

import os

os.environ["HF_HUB_OFFLINE"] = "1"  # before timm/huggingface_hub are imported

import math

import pytest
import timm
import torch
from torch import nn

from artsy.adapters import (
    AdaptedCNN,
    AdaptedNetwork,
    BlockHookSlot,
    ConvAdapter,
    attach_adapters,
    count_parameters,
)
from artsy.backbones import build_backbone, forward_features
from .adapter_contract import (check_dropout_only_in_train_mode_and_the_current_set,
                              check_each_forward_uses_only_the_chosen_set,
                              check_gradients_reach_the_current_set_only, perturb)

PX = 64  # Lite0 has stride 32: 64 px gives a 2x2 final map and keeps every check fast
LITE0_BLOCKS = [  # (in_channels, out_channels, stride) of its 16 blocks, stages 1,2,2,3,3,4,1
    (32, 16, 1),
    (16, 24, 2), (24, 24, 1),
    (24, 40, 2), (40, 40, 1),
    (40, 80, 2), (80, 80, 1), (80, 80, 1),
    (80, 112, 1), (112, 112, 1), (112, 112, 1),
    (112, 192, 2), (192, 192, 1), (192, 192, 1), (192, 192, 1),
    (192, 320, 1),
]


def lite0_net(n_tasks=1, r=8, name="tf_efficientnet_lite0") -> AdaptedCNN:
    torch.manual_seed(0)
    net = attach_adapters(build_backbone(name, pretrained=False), r=r)
    for _ in range(n_tasks):
        net.add_task()
    return net


def batch(n=2, px=PX):
    return torch.rand(n, 3, px, px, generator=torch.Generator().manual_seed(1))


def adapter_params(c_in, c_out, r):
    return c_in * r + r + r * c_out + c_out


def test_conv_adapter_lora_init_outputs_zero():
    torch.manual_seed(0)
    a = ConvAdapter(40, 80, r=16, stride=2)
    assert a.down.weight.shape == (16, 40, 1, 1) and a.down.stride == (2, 2)
    assert a.up.weight.shape == (80, 16, 1, 1)
    assert a.scale == 0.1 and a.drop.p == 0.1
    bound = 1 / math.sqrt(40)  # kaiming_uniform_(a=sqrt(5)): U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    assert 0.9 * bound < a.down.weight.abs().max() <= bound
    for t in (a.up.weight, a.up.bias, a.down.bias):
        assert torch.count_nonzero(t) == 0
    out = a(torch.randn(2, 40, 15, 15))
    assert out.shape == (2, 80, 8, 8) and torch.count_nonzero(out) == 0  # ceil(15 / 2) = 8
    assert count_parameters(a) == adapter_params(40, 80, 16)


def test_adapted_network_equals_frozen_one_at_init():
    backbone = build_backbone("tf_efficientnet_lite0", pretrained=True)  # the real weights
    keys = list(backbone.state_dict())
    x = batch()
    with torch.no_grad():
        before = forward_features(backbone, x)
        net = attach_adapters(backbone)
        assert isinstance(net, AdaptedCNN) and isinstance(net, AdaptedNetwork)
        net.add_task()
        net.add_task()
        assert torch.equal(net(x), before)
        assert torch.equal(net(x, task=0), before)
        assert torch.equal(net(x, task=1), before)
        assert net(x, task=1).shape == (2, 1280)
    assert list(backbone.state_dict()) == keys  # checkpoints of the plain backbone still load


def test_block_shapes_bottlenecks_and_parameter_count():
    net = lite0_net(r=64)
    assert net.block_shapes() == LITE0_BLOCKS
    # r_i = min(r, C_out_i): r keeps its meaning, capped at the block's width
    assert [net.bottleneck(i) for i in range(16)] == [min(64, c) for _, c, _ in LITE0_BLOCKS]
    per_set = sum(adapter_params(i, o, min(64, o)) for i, o, _ in LITE0_BLOCKS)
    assert per_set == 206_368
    assert count_parameters(net.adapter_sets[0]) == per_set
    assert count_parameters(net, trainable_only=True) == per_set
    small = lite0_net(r=8)
    assert count_parameters(small.adapter_sets[0]) == sum(adapter_params(i, o, 8) for i, o, _ in LITE0_BLOCKS)


def test_adapter_is_a_parallel_branch_from_block_input_to_block_output():
    net = lite0_net()
    perturb(net.adapter_sets[0])
    net.eval()
    for stage, index, slot_index in ((1, 0, 1), (1, 1, 2)):  # stride-2 widening block; skip block
        block = net.backbone.blocks[stage][index]
        adapter, slot = net.adapter_sets[0][slot_index], net._slots[slot_index]
        c_in = LITE0_BLOCKS[slot_index][0]
        x = torch.randn(2, c_in, 16, 16)
        with torch.no_grad():
            plain = block(x)
            want = plain + 0.1 * adapter.up(torch.relu(adapter.down(x)))
            slot.set_adapter(adapter)
            got = block(x)
            slot.set_adapter(None)
            assert torch.equal(block(x), plain)
        assert got.shape == plain.shape and not torch.allclose(got, plain)
        assert torch.allclose(got, want, atol=1e-6)


def test_each_forward_uses_only_the_chosen_set():
    net = lite0_net(n_tasks=2)
    x = batch()
    check_each_forward_uses_only_the_chosen_set(net, x)
    with torch.no_grad():
        assert torch.equal(net(x, task=-1), net(x, task=1))
    assert all(slot.active_adapter is None for slot in net._slots)  # nothing left switched on
    with pytest.raises(RuntimeError):
        net(torch.rand(2, 5, PX, PX), task=0)  # a failing forward ...
    assert all(slot.active_adapter is None for slot in net._slots)  # ... still switches off


def test_only_the_current_set_is_trainable():
    net = lite0_net(n_tasks=1)
    assert net.add_task() == 1 and net.n_tasks == 2
    assert not any(p.requires_grad for p in net.backbone.parameters())
    assert not any(p.requires_grad for p in net.adapter_sets[0].parameters())
    assert all(p.requires_grad for p in net.adapter_sets[1].parameters())
    one_set = sum(adapter_params(i, o, 8) for i, o, _ in LITE0_BLOCKS)
    assert sum(p.numel() for p in net.trainable_parameters()) == one_set
    net.freeze(1)
    assert net.trainable_parameters() == []


def test_gradients_reach_the_current_set_only():
    check_gradients_reach_the_current_set_only(lite0_net(n_tasks=2), batch())


def test_batchnorm_statistics_do_not_move_during_adapter_training():
    net = lite0_net(n_tasks=1).train()
    bns = [m for m in net.backbone.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    assert len(bns) == 2 + 16 * 3 - 1  # stem, head, 3 per block (2 in the first)
    assert not net.backbone.training and not any(m.training for m in bns)
    before = {k: v.clone() for k, v in net.backbone.state_dict().items()}
    opt = torch.optim.SGD(net.trainable_parameters(), lr=0.1, momentum=0.9)
    for _ in range(2):
        opt.zero_grad()
        net(batch(4) * 3, task=0).pow(2).mean().backward()  # inputs off the BN statistics
        opt.step()
    after = net.backbone.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # running_mean/var, weights ...
    assert any(not torch.equal(a.up.weight, torch.zeros_like(a.up.weight)) for a in net.adapter_sets[0])


def test_dropout_only_in_train_mode_and_only_in_the_current_set():
    check_dropout_only_in_train_mode_and_the_current_set(lite0_net(n_tasks=2), batch())


@pytest.mark.parametrize("name", ["efficientnet_lite0", "mobilenetv3_small_100"])
def test_other_timm_stage_cnns(name):
    torch.manual_seed(0)
    backbone = build_backbone(name, pretrained=False)
    x = batch()
    with torch.no_grad():
        before = forward_features(backbone, x)
        net = attach_adapters(backbone, 16, 0.1, 0.1)  # positional, as the learner calls it
        net.add_task()
        assert torch.equal(net(x, task=0), before)
        perturb(net.adapter_sets[0])
        assert not torch.allclose(net(x, task=0), before)
    shapes = net.block_shapes()
    assert count_parameters(net.adapter_sets[0]) == sum(
        adapter_params(i, o, min(16, o)) for i, o, _ in shapes)


def test_double_attach_and_unsupported_models():
    net = lite0_net()
    with pytest.raises(ValueError, match="already attached"):
        attach_adapters(net.backbone)
    hooks = [h for stage in net.backbone.blocks for b in stage for h in b._forward_hooks.values()]
    assert len(hooks) == 16 and all(isinstance(h.__self__, BlockHookSlot) for h in hooks)
    with pytest.raises(NotImplementedError, match="supported: timm VisionTransformer"):
        attach_adapters(timm.create_model("resnet10t", pretrained=False, num_classes=0))


def test_frozen_feature_appends_the_spatial_means_of_the_last_stages():
    net = lite0_net(n_tasks=0)
    b, x = net.backbone, batch()
    assert net.stage_widths() == [16, 24, 40, 80, 112, 192, 320]
    with torch.no_grad():
        h, pooled = b.bn1(b.conv_stem(x)), []
        for stage in b.blocks:  # the stages by hand, no hook
            h = stage(h)
            pooled.append(h.mean((2, 3)))
        plain = net(x)
        torch.testing.assert_close(net.frozen_feature(x), plain, rtol=0, atol=0)
        wide = net.frozen_feature(x, stages=2)
    assert wide.shape == (2, net.frozen_feature_dim(2)) and net.frozen_feature_dim(2) == 1792
    torch.testing.assert_close(wide, torch.cat([plain, pooled[-2], pooled[-1]], dim=1))
    assert not any(stage._forward_hooks for stage in b.blocks)  # the pooling hooks are gone
    for bad in (net.frozen_feature_dim, lambda k: net.frozen_feature(x, stages=k)):
        with pytest.raises(ValueError, match="7 stages; use 0 to 7"):
            bad(8)
