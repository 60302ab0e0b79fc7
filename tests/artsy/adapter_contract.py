"""Checks every adapter family must pass (ViT and CNN alike): shared by the adapter test files."""

import pytest
import torch

from artsy.adapters import AdapterSet


def perturb(adapters: AdapterSet) -> None:
    """Give a set non-zero up-projections, as after training."""
    with torch.no_grad():
        for a in adapters:
            a.up.weight.normal_(0, 0.5)


def check_each_forward_uses_only_the_chosen_set(net, x) -> None:
    perturb(net.adapter_sets[0])
    perturb(net.adapter_sets[1])
    with torch.no_grad():
        plain, f0, f1 = net(x), net(x, task=0), net(x, task=1)
        assert not torch.allclose(f0, plain) and not torch.allclose(f1, f0)
        perturb(net.adapter_sets[0])
        assert torch.equal(net(x, task=1), f1) and torch.equal(net(x), plain)
    with pytest.raises(IndexError):
        net(x, task=2)


def check_gradients_reach_the_current_set_only(net, x) -> None:
    net.train()
    net(x, task=1).pow(2).sum().backward()
    current = net.adapter_sets[1]
    assert all(p.grad is not None for p in current.parameters())
    # The up-projections learn at once; the down ones get zero gradient while up is still 0.
    assert all(torch.count_nonzero(a.up.weight.grad) > 0 for a in current)
    assert all(p.grad is None for p in net.adapter_sets[0].parameters())
    assert all(p.grad is None for p in net.backbone.parameters())
    # After one step the down-projections learn too.
    torch.optim.SGD(net.trainable_parameters(), lr=0.1).step()
    net.zero_grad()
    net(x, task=1).pow(2).sum().backward()
    assert all(torch.count_nonzero(a.down.weight.grad) > 0 for a in current)


def check_dropout_only_in_train_mode_and_the_current_set(net, x) -> None:
    perturb(net.adapter_sets[0])
    perturb(net.adapter_sets[1])
    net.train()
    assert not net.backbone.training and not net.adapter_sets[0].training
    assert net.adapter_sets[1].training
    with torch.no_grad():
        assert not torch.equal(net(x, task=1), net(x, task=1))  # dropout draws differ
        assert torch.equal(net(x, task=0), net(x, task=0))  # frozen set: no dropout
        net.eval()
        assert torch.equal(net(x, task=1), net(x, task=1))
