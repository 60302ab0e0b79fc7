"""EASE adapters on a frozen timm ViT: init, identity at init, parameter count, training rules."""

import os

os.environ["HF_HUB_OFFLINE"] = "1"  # before timm/huggingface_hub are imported

import copy
import math

import pytest
import timm
import torch
from torch import nn

from artsy.adapters import (
    AdaptedBlock,
    AdaptedViT,
    Adapter,
    attach_adapters,
    count_parameters,
)
from artsy.backbones import build_backbone, forward_features
from .adapter_contract import (check_dropout_only_in_train_mode_and_the_current_set,
                              check_each_forward_uses_only_the_chosen_set,
                              check_gradients_reach_the_current_set_only, perturb)

TINY = dict(img_size=32, patch_size=4, depth=2, embed_dim=32, num_heads=2)


def tiny_net(n_tasks=1, **kw) -> AdaptedViT:
    torch.manual_seed(0)
    net = attach_adapters(build_backbone("vit_tiny_patch16_224", pretrained=False, **TINY, **kw), r=8)
    for _ in range(n_tasks):
        net.add_task()
    return net


def test_adapter_lora_init_outputs_zero():
    torch.manual_seed(0)
    a = Adapter(768)
    assert a.down.weight.shape == (64, 768) and a.up.weight.shape == (768, 64)
    assert a.scale == 0.1 and a.drop.p == 0.1
    bound = 1 / math.sqrt(768)  # kaiming_uniform_(a=sqrt(5)): U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    assert a.down.weight.abs().max() <= bound and a.down.weight.abs().max() > 0.9 * bound
    for t in (a.up.weight, a.up.bias, a.down.bias):
        assert torch.count_nonzero(t) == 0
    assert torch.count_nonzero(a(torch.randn(2, 5, 768))) == 0


def test_vit_base_set_has_ease_parameter_count():
    torch.manual_seed(0)
    net = attach_adapters(build_backbone("vit_base_patch16_224", pretrained=False))
    net.add_task()
    assert count_parameters(net.adapter_sets[0]) == 12 * 99_136 == 1_189_632
    assert count_parameters(net, trainable_only=True) == 1_189_632


def test_adapted_network_equals_frozen_one_at_init():
    torch.manual_seed(0)
    backbone = build_backbone("vit_tiny_patch16_224", pretrained=False, **TINY)
    keys = list(backbone.state_dict())
    x = torch.rand(4, 3, 32, 32)
    with torch.no_grad():
        before = forward_features(backbone, x)
        net = attach_adapters(backbone)
        net.add_task()
        net.add_task()
        assert torch.equal(net(x), before)
        assert torch.equal(net(x, task=0), before)
        assert torch.equal(net(x, task=1), before)
    assert list(backbone.state_dict()) == keys  # checkpoints of the plain backbone still load


def test_adapted_block_follows_timm_block_with_layerscale_and_drop_path():
    torch.manual_seed(0)
    vit = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=0, init_values=0.5,
                            drop_path_rate=0.5, **TINY)
    block = vit.blocks[1]
    assert not isinstance(block.ls1, nn.Identity) and not isinstance(block.drop_path2, nn.Identity)
    reference = copy.deepcopy(block).train()
    adapted = AdaptedBlock(block).train()
    x = torch.randn(3, 65, 32)
    for seed in range(3):  # same random drop-path masks -> same output
        torch.manual_seed(seed)
        want = reference(x)
        torch.manual_seed(seed)
        assert torch.equal(adapted(x), want)


def test_adapter_is_parallel_to_the_mlp_on_the_post_attention_stream():
    net = tiny_net()
    perturb(net.adapter_sets[0])
    net.eval()
    block, adapter = net.backbone.blocks[0], net.adapter_sets[0][0]
    x = torch.randn(2, 65, 32)
    with torch.no_grad():
        h = x + block.attn(block.norm1(x))
        want = h + block.mlp(block.norm2(h)) + 0.1 * adapter.up(torch.relu(adapter.down(h)))
        block.set_adapter(adapter)
        got = block(x)
        block.set_adapter(None)
    assert torch.allclose(got, want, atol=1e-6)


def test_each_forward_uses_only_the_chosen_set():
    net = tiny_net(n_tasks=2)
    check_each_forward_uses_only_the_chosen_set(net, torch.rand(2, 3, 32, 32))
    assert all(b.active_adapter is None for b in net.backbone.blocks)  # nothing left switched on


def test_only_the_current_set_is_trainable():
    net = tiny_net(n_tasks=1)
    assert net.add_task() == 1 and net.n_tasks == 2
    assert not any(p.requires_grad for p in net.backbone.parameters())
    assert not any(p.requires_grad for p in net.adapter_sets[0].parameters())
    assert all(p.requires_grad for p in net.adapter_sets[1].parameters())
    one_set = 2 * (2 * 32 * 8 + 8 + 32)  # two blocks of r=8 adapters
    assert count_parameters(net.adapter_sets[1]) == one_set
    assert sum(p.numel() for p in net.trainable_parameters()) == one_set
    net.freeze(1)
    assert net.trainable_parameters() == []


def test_gradients_reach_the_current_adapter_only():
    check_gradients_reach_the_current_set_only(tiny_net(n_tasks=2), torch.rand(2, 3, 32, 32))


def test_dropout_only_in_train_mode_and_only_in_the_current_set():
    check_dropout_only_in_train_mode_and_the_current_set(tiny_net(n_tasks=2),
                                                         torch.rand(2, 3, 32, 32))


def test_attach_rejects_other_families_and_double_attach():
    cnn = timm.create_model("resnet10t", pretrained=False, num_classes=0)
    with pytest.raises(NotImplementedError, match="supported: timm VisionTransformer"):
        attach_adapters(cnn)
    net = tiny_net()
    with pytest.raises(ValueError, match="already attached"):
        attach_adapters(net.backbone)


def test_frozen_feature_appends_the_patch_token_means_of_the_last_blocks():
    net = tiny_net(n_tasks=1)
    perturb(net.adapter_sets[0])  # a set that changes the output, to show none is active
    b = net.backbone
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    assert net.stage_widths() == [32, 32] and net.frozen_feature_dim(1) == 64
    assert b.num_prefix_tokens == 1  # the class token, left out of the means
    with torch.no_grad():
        tokens = b.norm_pre(b.patch_drop(b._pos_embed(b.patch_embed(x))))
        outs = []
        for block in b.blocks:  # the blocks by hand, no hook
            tokens = block(tokens)
            outs.append(tokens[:, 1:].mean(1))
        plain = net(x)
        assert not torch.allclose(net(x, task=0), plain)
        torch.testing.assert_close(net.frozen_feature(x, stages=1),
                                   torch.cat([plain, outs[1]], dim=1))  # the last block only
        torch.testing.assert_close(net.frozen_feature(x, stages=2),
                                   torch.cat([plain, outs[0], outs[1]], dim=1))
    assert not any(block._forward_hooks for block in b.blocks)


def test_frozen_feature_removes_its_hooks_when_the_pass_fails():
    net = tiny_net(n_tasks=0)
    with pytest.raises(RuntimeError):
        net.frozen_feature(torch.rand(2, 5, 32, 32), stages=2)  # 5 channels: the stem refuses
    assert not any(block._forward_hooks for block in net.backbone.blocks)
