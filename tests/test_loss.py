"""The paper's contrastive loss against hand computation; gradients reach only the heads."""
import math

import numpy as np
import pytest
import torch

from rram_lsm.nodes.projection.heads import HeadConfig
from rram_lsm.nodes.projection.train import (HeadModule, ModalityData, TrainConfig, infonce_loss,
                                    paper_clip_loss, supcon_loss, train_heads)


def _loss_by_hand(img, aud, t):
    """PAPER.md's formula with plain Python loops, written independently of torch."""
    n = len(img)
    dot = lambda u, v: sum(x * y for x, y in zip(u, v))
    logits = [[dot(aud[i], img[j]) / t for j in range(n)] for i in range(n)]
    sim = [[(dot(img[i], img[j]) + dot(aud[i], aud[j])) / 2 * t for j in range(n)]
           for i in range(n)]
    targets = []
    for row in sim:
        z = sum(math.exp(v) for v in row)
        targets.append([math.exp(v) / z for v in row])

    def ce(L, Y):
        total = 0.0
        for lrow, yrow in zip(L, Y):
            lse = math.log(sum(math.exp(v) for v in lrow))
            total += -sum(y * (l - lse) for l, y in zip(lrow, yrow))
        return total / len(L)

    transpose = lambda m: [list(r) for r in zip(*m)]
    return (ce(logits, targets) + ce(transpose(logits), transpose(targets))) / 2


def test_closed_form_3x3():
    # I = A = [[1,0],[0,1],[0,0]], T = 1: logits = diag(1, 1, 0) and
    # targets = softmax_rows(diag(1, 1, 0)) = [[e, 1, 1]/(e+2), [1, e, 1]/(e+2), [1, 1, 1]/3].
    img = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
    e, L, l3 = math.e, math.log(math.e + 2), math.log(3)
    # CE(logits, targets): rows 1-2 give L - e/(e+2), row 3 (uniform) gives log 3.
    forward = (2 * (L - e / (e + 2)) + l3) / 3
    # CE(logitsᵀ, targetsᵀ): targetsᵀ rows are columns of targets, which do not sum to 1:
    # row 1 = [e/(e+2), 1/(e+2), 1/3]  ->  L·((e+1)/(e+2) + 1/3) - e/(e+2)
    # row 3 = [1/(e+2), 1/(e+2), 1/3]  ->  log 3 · (2/(e+2) + 1/3)
    backward = (2 * (L * ((e + 1) / (e + 2) + 1 / 3) - e / (e + 2))
                + l3 * (2 / (e + 2) + 1 / 3)) / 3
    expected = (forward + backward) / 2          # = 1.034746...
    assert expected == pytest.approx(1.0347461, abs=1e-6)
    assert paper_clip_loss(img, img.clone(), 1.0).item() == pytest.approx(expected, abs=1e-6)


def test_zero_embeddings_give_log3():
    z = torch.zeros(3, 4)
    assert paper_clip_loss(z, z, 1.0).item() == pytest.approx(math.log(3), abs=1e-6)


@pytest.mark.parametrize("t", [1.0, 0.5, 2.0])
def test_general_3x3_matches_hand_loops(t):
    img = [[0.3, -1.2], [0.8, 0.1], [-0.5, 0.7]]
    aud = [[1.1, 0.4], [-0.2, -0.9], [0.6, 0.25]]
    got = paper_clip_loss(torch.tensor(img), torch.tensor(aud), t).item()
    assert got == pytest.approx(_loss_by_hand(img, aud, t), abs=1e-6)
    # The formula is not symmetric in its arguments once I != A (logits = A·Iᵀ).
    assert got != pytest.approx(paper_clip_loss(torch.tensor(aud), torch.tensor(img), t).item(),
                                abs=1e-4)


def test_stacked_runs_give_per_run_losses():
    rng = np.random.default_rng(0)
    img, aud = torch.tensor(rng.normal(size=(2, 3, 2))), torch.tensor(rng.normal(size=(2, 3, 2)))
    both = paper_clip_loss(img, aud, 1.0)
    assert both.shape == (2,)
    for k in range(2):
        assert both[k].item() == pytest.approx(
            _loss_by_hand(img[k].tolist(), aud[k].tolist(), 1.0), abs=1e-9)


def test_infonce_and_supcon_reward_aligned_pairs():
    aligned = torch.eye(3) * 5
    shuffled = aligned[[1, 2, 0]]
    assert infonce_loss(aligned, aligned, 0.1) < 0.01 < infonce_loss(aligned, shuffled, 0.1)
    labels = torch.tensor([1, 1, 2])
    two = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    # Same-class rows are all positives: aligned classes give the minimum log 2 / 3 ...
    assert supcon_loss(two, two, 0.01, labels=labels).item() == pytest.approx(
        (2 * math.log(2) + 0) / 3, abs=1e-4)
    # ... and InfoNCE, which sees the same-class row as a negative, cannot get there.
    assert infonce_loss(two, two, 0.01).item() > 0.4
    with pytest.raises(ValueError, match="labels"):
        supcon_loss(two, two, 0.1)


def test_gradients_reach_heads_not_features():
    torch.manual_seed(0)
    cfg = HeadConfig(preset="p", modality="m", n_features=5, layers=[4])
    head_i, head_a = HeadModule(cfg), HeadModule(cfg)
    feats_i, feats_a = torch.randn(6, 5), torch.randn(6, 5)
    loss = paper_clip_loss(head_i(feats_i), head_a(feats_a), 1.0)
    loss.backward()
    for p in [*head_i.parameters(), *head_a.parameters()]:
        assert p.grad is not None and p.grad.abs().sum() > 0
    assert feats_i.grad is None and feats_a.grad is None


def test_training_leaves_frozen_features_untouched():
    rng = np.random.default_rng(1)
    labels = np.repeat(np.arange(1, 10), 8)
    split = np.tile([0, 0, 0, 0, 1, 1, 2, 2], 9)
    mods = [ModalityData(n, "p", rng.normal(size=(72, 12)), labels, split) for n in ("a", "b")]
    before = [m.features.copy() for m in mods]
    result = train_heads(*mods, TrainConfig(epochs=2, pd=4))
    for m, b in zip(mods, before):
        np.testing.assert_array_equal(m.features, b)
    assert len(result.history) == 2


@pytest.mark.parametrize("t", [1.0, 0.3])
def test_closed_form_gradient_matches_autograd(t):
    from rram_lsm.nodes.projection.train import paper_clip_loss_grad
    rng = np.random.default_rng(7)
    img = torch.tensor(rng.normal(size=(3, 8, 5)), requires_grad=True)
    aud = torch.tensor(rng.normal(size=(3, 8, 5)), requires_grad=True)
    loss = paper_clip_loss(img, aud, t)
    loss.sum().backward()
    with torch.no_grad():
        loss2, g_img, g_aud = paper_clip_loss_grad(img, aud, t)
    torch.testing.assert_close(loss2, loss.detach())
    torch.testing.assert_close(g_img, img.grad)
    torch.testing.assert_close(g_aud, aud.grad)


@pytest.mark.parametrize("hidden,activation", [((), "gelu"), ((12,), "gelu"), ((), "relu")])
def test_fast_path_trains_like_autograd(hidden, activation):
    """The paper loss trains through closed-form gradients; a loss spelled differently
    ("paper" vs the same formula through autograd) must give the same heads."""
    from rram_lsm.nodes.projection import train as tr
    rng = np.random.default_rng(2)
    labels = np.repeat(np.arange(1, 10), 8)
    split = np.tile([0, 0, 0, 0, 1, 1, 2, 2], 9)
    mods = [ModalityData(n, "p", rng.normal(size=(72, 10)), labels, split) for n in ("a", "b")]
    cfg = dict(epochs=2, pd=6, hidden=hidden, activation=activation, seed=1)
    fast = train_heads(*mods, TrainConfig(loss="paper", **cfg))
    tr.LOSSES["paper_autograd"] = tr._paper
    try:
        slow = train_heads(*mods, TrainConfig(loss="paper_autograd", **cfg))
    finally:
        del tr.LOSSES["paper_autograd"]
    for f, s in zip(fast.heads["a"].weights, slow.heads["a"].weights):
        np.testing.assert_allclose(f, s, atol=1e-5)
    assert fast.history[-1].loss == pytest.approx(slow.history[-1].loss, rel=1e-5)
