"""EASE prototype classifier: class means, prototype complement, reweighted cosine logits."""

import math

import pytest
import torch
import torch.nn.functional as F

from artsy.prototypes import PrototypeBank, class_means, class_task_index, reweighted_cosine_logits

R2 = 1 / math.sqrt(2)


def test_class_means_unnormalised_in_given_order():
    feats = torch.tensor([[1.0, 2.0], [3.0, 4.0], [10.0, 0.0], [0.0, 0.0]])
    labels = torch.tensor([5, 5, 2, 2])
    means = class_means(feats, labels, [2, 5])
    assert torch.allclose(means, torch.tensor([[5.0, 0.0], [2.0, 3.0]]))
    with pytest.raises(ValueError, match="no samples for classes \\[7\\]"):
        class_means(feats, labels, [2, 7])


def test_class_task_index():
    assert class_task_index([[0, 1], [2, 3], [4]]).tolist() == [0, 0, 1, 1, 2]
    with pytest.raises(ValueError, match="belong to no task"):
        class_task_index([[0], [2]])


def two_task_bank() -> PrototypeBank:
    """Task 0 = classes {0, 1}, task 1 = classes {2, 3}, 2-D features, before the complement."""
    bank = PrototypeBank(dim=2)
    bank.set_real(0, [0, 1], torch.tensor([[1.0, 0.0], [0.0, 1.0]]))  # after task 0
    bank.set_real(0, [2, 3], torch.tensor([[3.0, 4.0], [0.0, 2.0]]))  # after task 1, subspace 0
    bank.set_real(1, [2, 3], torch.tensor([[2.0, 0.0], [0.0, 4.0]]))  # after task 1, subspace 1
    return bank


def test_bank_grows_with_zero_blocks():
    bank = PrototypeBank(dim=2)
    bank.set_real(0, [0, 1], torch.ones(2, 2))
    assert bank.prototypes.shape == (2, 1, 2)
    bank.set_real(1, [2, 3], torch.ones(2, 2))
    assert bank.prototypes.shape == (4, 2, 2)
    assert torch.equal(bank.prototypes[:2, 1], torch.zeros(2, 2))  # old classes, new subspace
    assert torch.equal(bank.prototypes[2:, 0], torch.zeros(2, 2))  # not set yet
    assert bank.real.tolist() == [[True, False], [True, False], [False, True], [False, True]]


def test_complement_hand_computed():
    bank = two_task_bank()
    bank.complete([[0, 1], [2, 3]])
    # class 0 = (1,0) in subspace 0: cos with class 2 (3,4) is 0.6, with class 3 (0,2) is 0.
    #   softmax(0.6, 0) = (0.6456563, 0.3543437) -> 0.6456563*(2,0) + 0.3543437*(0,4)
    # class 1 = (0,1): cos 0.8 and 1 -> softmax = (0.4501660, 0.5498340)
    #   -> 0.4501660*(2,0) + 0.5498340*(0,4)
    expected = torch.tensor([[1.2913126, 1.4173748], [0.9003320, 2.1993360]])
    assert torch.allclose(bank.prototypes[[0, 1], 1], expected, atol=1e-6)
    # Real blocks are untouched.
    assert torch.equal(bank.prototypes[2:, 1], torch.tensor([[2.0, 0.0], [0.0, 4.0]]))
    assert torch.equal(bank.prototypes[:, 0], two_task_bank().prototypes[:, 0])


def naive_complement(P: torch.Tensor, task_classes) -> torch.Tensor:
    """EASE's solve_sim_reset, written with its double loops over class pairs."""
    P = P.clone()
    for j in range(len(task_classes)):
        for k in range(j + 1, len(task_classes)):
            new = [c for ts in task_classes[k:] for c in ts]
            old = task_classes[j]
            sim = torch.zeros(len(old), len(new))
            for a, o in enumerate(old):
                for b, n in enumerate(new):
                    sim[a, b] = torch.cosine_similarity(P[o, j], P[n, j], dim=0)
            sim = F.softmax(sim, dim=1)
            for a, o in enumerate(old):
                acc = torch.zeros(P.shape[-1])
                for b, n in enumerate(new):
                    acc += sim[a, b] * P[n, k]
                P[o, k] = acc
    return P


def test_complement_matches_naive_double_loop():
    torch.manual_seed(0)
    task_classes = [[0, 1, 2], [3, 4], [5, 6, 7, 8], [9]]
    bank = PrototypeBank(dim=5)
    for t, classes in enumerate(task_classes):  # task t: real prototypes in subspaces 0..t
        for i in range(t + 1):
            bank.set_real(i, classes, torch.randn(len(classes), 5))
        bank.complete(task_classes[: t + 1])  # recomputed after every task
        reference = naive_complement(bank.prototypes, task_classes[: t + 1])
        assert torch.allclose(bank.prototypes, reference, atol=1e-6)
    assert (bank.prototypes.abs().sum(-1) > 0).all()  # every block is filled


def test_complement_needs_real_prototypes():
    bank = PrototypeBank(dim=2)
    bank.set_real(0, [0, 1], torch.eye(2))
    bank.set_real(1, [2, 3], torch.eye(2))  # subspace 0 of classes 2, 3 was forgotten
    with pytest.raises(ValueError, match="needs real prototypes"):
        bank.complete([[0, 1], [2, 3]])


def logits_bank() -> PrototypeBank:
    bank = PrototypeBank(dim=2)
    bank.set_real(0, [0, 1, 2, 3], torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [-1.0, 0.0]]))
    bank.set_real(1, [0, 1, 2, 3], torch.tensor([[1.0, 1.0], [1.0, -1.0], [1.0, 0.0], [0.0, 3.0]]))
    return bank


CLASS_TASK = torch.tensor([0, 0, 1, 1])


def test_logits_hand_computed():
    feats = [torch.tensor([[2.0, 0.0]]), torch.tensor([[0.0, 5.0]])]
    # cos in subspace 0 (direction (1,0)): 1, 0, 1/sqrt2, -1
    # cos in subspace 1 (direction (0,1)): 1/sqrt2, -1/sqrt2, 0, 1
    # T = 1, alpha = 0.1: own block weight 1, the other 0.1 / 1.
    logits = reweighted_cosine_logits(feats, logits_bank(), CLASS_TASK, current_task=1)
    expected = torch.tensor([[1 + 0.1 * R2, -0.1 * R2, 0.1 * R2, 1 - 0.1]])
    assert torch.allclose(logits, expected, atol=1e-6)


def test_logits_gated_closed_block_contributes_nothing():
    feats = [torch.tensor([[2.0, 0.0]]), None]  # subspace 1 closed: never computed
    mask = torch.tensor([[True, False]])
    logits = reweighted_cosine_logits(feats, logits_bank(), CLASS_TASK, 1, open_mask=mask)
    assert torch.allclose(logits, torch.tensor([[1.0, 0.0, 0.1 * R2, -0.1]]), atol=1e-6)
    with pytest.raises(ValueError, match="open for some input"):
        reweighted_cosine_logits(feats, logits_bank(), CLASS_TASK, 1)


def test_logits_mixed_mask_per_sample():
    bank = logits_bank()
    f0 = torch.tensor([[2.0, 0.0], [1.0, 1.0]])
    f1 = torch.tensor([[0.0, 5.0], [0.0, 0.0]])  # sample 1's block 1 is closed; zeros are ignored
    mask = torch.tensor([[True, True], [True, False]])
    logits = reweighted_cosine_logits([f0, f1], bank, CLASS_TASK, 1, open_mask=mask)
    full = reweighted_cosine_logits([f0[:1], f1[:1]], bank, CLASS_TASK, 1)
    alone = reweighted_cosine_logits([f0[1:], None], bank, CLASS_TASK, 1, open_mask=mask[1:])
    assert torch.allclose(logits, torch.cat([full, alone]))


def three_task_bank() -> PrototypeBank:
    """One class per task; phi_j(x) = e_0, and p_{c,j} = (m, sqrt(1-m^2), 0) has cos m with it."""
    M = torch.tensor([[1.0, 0.5, 0.0], [0.0, 1.0, -0.5], [0.5, 0.5, 1.0]])
    protos = torch.stack([M, (1 - M**2).sqrt(), torch.zeros(3, 3)], dim=-1)  # (class, subspace, 3)
    bank = PrototypeBank(dim=3)
    for j in range(3):
        bank.set_real(j, [0, 1, 2], protos[:, j])
    return bank


@pytest.mark.parametrize(
    "divide_by_T, expected", [(True, [1.025, 0.975, 1.05]), (False, [1.05, 0.95, 1.1])]
)
def test_logits_alpha_over_T(divide_by_T, expected):
    e0 = torch.tensor([[1.0, 0.0, 0.0]])
    # T = 2: off-diagonal weight alpha / 2 = 0.05 (EASE code) or alpha = 0.1 (paper).
    # class 0: 1 + w*(0.5 + 0); class 1: 1 + w*(0 - 0.5); class 2: 1 + w*(0.5 + 0.5).
    class_task = torch.tensor([0, 1, 2])
    bank = three_task_bank()
    logits = reweighted_cosine_logits([e0] * 3, bank, class_task, 2, divide_by_T=divide_by_T)
    assert torch.allclose(logits, torch.tensor([expected]), atol=1e-6)


def test_logits_first_task_is_plain_cosine():
    bank = PrototypeBank(dim=2)
    bank.set_real(0, [0, 1], torch.tensor([[1.0, 0.0], [1.0, 1.0]]))
    logits = reweighted_cosine_logits([torch.tensor([[3.0, 0.0]])], bank, torch.tensor([0, 0]), 0)
    assert torch.allclose(logits, torch.tensor([[1.0, R2]]))


def test_logits_beta_ptm_block():
    bank = logits_bank()
    bank.set_ptm([0, 1, 2, 3], torch.tensor([[1.0, 0.0], [0.0, 1.0], [2.0, 0.0], [0.0, 2.0]]))
    feats = [torch.tensor([[2.0, 0.0]]), torch.tensor([[0.0, 5.0]])]
    h0 = torch.tensor([[4.0, 0.0]])
    base = reweighted_cosine_logits(feats, bank, CLASS_TASK, 1)
    with_ptm = reweighted_cosine_logits(feats, bank, CLASS_TASK, 1, ptm_feature=h0, beta=0.5)
    assert torch.allclose(with_ptm - base, torch.tensor([[0.5, 0.0, 0.5, 0.0]]))
    with pytest.raises(ValueError, match="ptm_feature"):
        reweighted_cosine_logits(feats, bank, CLASS_TASK, 1, beta=0.5)


def naive_logits(feats, P, class_task, T, alpha, mask):
    out = torch.zeros(feats[0].shape[0], P.shape[0])
    for b in range(out.shape[0]):
        for c in range(P.shape[0]):
            for j in range(T + 1):
                if not mask[b, j]:
                    continue
                w = 1.0 if j == class_task[c] else alpha / T
                out[b, c] += w * torch.cosine_similarity(feats[j][b], P[c, j], dim=0)
    return out


def test_logits_match_naive_loop_with_random_mask():
    torch.manual_seed(1)
    task_classes = [[0, 1], [2, 3, 4], [5]]
    bank = PrototypeBank(dim=4)
    for t, classes in enumerate(task_classes):
        for i in range(t + 1):
            bank.set_real(i, classes, torch.randn(len(classes), 4))
    bank.complete(task_classes)
    feats = [torch.randn(6, 4) for _ in range(3)]
    mask = torch.rand(6, 3) > 0.4
    mask[:, 0] = True
    class_task = class_task_index(task_classes)
    logits = reweighted_cosine_logits(feats, bank, class_task, 2, alpha=0.1, open_mask=mask)
    reference = naive_logits(feats, bank.prototypes, class_task, 2, 0.1, mask)
    assert torch.allclose(logits, reference, atol=1e-6)


def test_state_dict_round_trip():
    bank = two_task_bank()
    bank.complete([[0, 1], [2, 3]])
    other = PrototypeBank(dim=2)
    other.load_state_dict(bank.state_dict())
    assert torch.equal(other.prototypes, bank.prototypes) and torch.equal(other.real, bank.real)
