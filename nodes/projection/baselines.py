"""The paper's comparison baselines (torch; offline only), each with its training cost.

* LSM prototypical network: linear n_features -> pd heads trained with a prototype
  cross-entropy on the seen classes (queries of modality A against class prototypes of
  modality B and the reverse); tested with the training samples of the unseen classes as
  support set, nearest prototype by Euclidean distance of L2-normalised embeddings.
* SRNN encoder: the LIF equations of PAPER.md with trainable input and recurrent weights,
  trained end to end by BPTT through a box surrogate gradient (half-width 0.25 around Vth);
  used for SRNN-CLIP with the heads of ``train.py`` on top.
* RNN readout: a plain tanh RNN of 200 units on the binary input frames, linear readout.

MAC counts are forward + backward (backward taken as 2× forward, the usual dense-layer
rule) per epoch, so training costs can be compared by operation count.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from nodes.projection.train import TEST, TRAIN, ModalityData, standardisation


# ----------------------------------------------------------------------------- prototypes
@dataclass
class ProtoConfig:
    seen: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7)
    unseen: tuple[int, ...] = (8, 9)
    pd: int = 64
    lr: float = 1e-3
    batch_size: int = 64
    epochs: int = 100
    seed: int = 0
    threads: int = 1


@dataclass
class BaselineResult:
    seen_acc: float          # A queries vs B prototypes, seen classes
    unseen_acc: float        # A queries vs B prototypes from the unseen support set
    seen_chance: float
    unseen_chance: float
    epochs: int
    seconds: float
    macs_per_epoch: int


def _proto_logits(q: torch.Tensor, support: torch.Tensor, s_labels: torch.Tensor,
                  classes: torch.Tensor) -> torch.Tensor:
    """-squared Euclidean distance of unit queries to unit-embedding class prototypes."""
    s = F.normalize(support, dim=1)
    protos = torch.stack([s[s_labels == c].mean(0) for c in classes])
    return -torch.cdist(F.normalize(q, dim=1), protos) ** 2


def train_protonet(a: ModalityData, b: ModalityData,
                   cfg: ProtoConfig | None = None) -> BaselineResult:
    """Cross-modal prototypical network on frozen LSM features."""
    cfg = cfg or ProtoConfig()
    torch.set_num_threads(cfg.threads)
    start = time.perf_counter()
    rng = np.random.default_rng(cfg.seed)
    data = {}
    for m in (a, b):
        mean, std = standardisation(m.features[m.rows(TRAIN, cfg.seen)])
        data[m.name] = torch.as_tensor((m.features - mean) / std)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        heads = {m.name: nn.Linear(m.features.shape[1], cfg.pd) for m in (a, b)}
    opt = torch.optim.Adam([p for h in heads.values() for p in h.parameters()], lr=cfg.lr)
    ra, rb = a.rows(TRAIN, cfg.seen), b.rows(TRAIN, cfg.seen)
    seen_t = torch.as_tensor(cfg.seen)
    la, lb = torch.as_tensor(a.labels), torch.as_tensor(b.labels)
    steps = max(len(ra), len(rb)) // cfg.batch_size or 1
    for _ in range(cfg.epochs):
        for _ in range(steps):
            # An episode: a batch of A queries, and a B support set holding every seen class.
            qa = torch.as_tensor(rng.choice(ra, cfg.batch_size))
            sb = torch.as_tensor(np.concatenate(
                [rng.choice(rb[b.labels[rb] == c], max(1, cfg.batch_size // len(cfg.seen)))
                 for c in cfg.seen]))
            ea, eb = heads[a.name](data[a.name][qa]), heads[b.name](data[b.name][sb])
            target = torch.searchsorted(seen_t, la[qa])
            loss = F.cross_entropy(_proto_logits(ea, eb, lb[sb], seen_t), target)
            opt.zero_grad()
            loss.backward()
            opt.step()

    def accuracy(classes: tuple[int, ...], support_split: int) -> tuple[float, float]:
        q = a.rows(TEST, classes)
        s = b.rows(support_split, classes)
        with torch.no_grad():
            logits = _proto_logits(heads[a.name](data[a.name][q]), heads[b.name](data[b.name][s]),
                                   lb[s], torch.as_tensor(classes))
        pred = np.asarray(classes)[logits.argmax(1).numpy()]
        counts = np.array([np.sum(a.labels[q] == c) for c in classes])
        return float(np.mean(pred == a.labels[q])), float(counts.max() / counts.sum())

    seen_acc, seen_chance = accuracy(cfg.seen, TRAIN)
    unseen_acc, unseen_chance = accuracy(cfg.unseen, TRAIN)
    n_support = len(cfg.seen) * max(1, cfg.batch_size // len(cfg.seen))
    per_step = (cfg.batch_size * a.features.shape[1] + n_support * b.features.shape[1]
                + cfg.batch_size * len(cfg.seen)) * cfg.pd
    macs = 3 * steps * per_step
    return BaselineResult(seen_acc, unseen_acc, seen_chance, unseen_chance, cfg.epochs,
                          time.perf_counter() - start, int(macs))


# ----------------------------------------------------------------------------- SRNN
class BoxSpike(torch.autograd.Function):
    """Heaviside spike; backward is a box of half-width ``width`` around the threshold
    (height 1/(2·width), so the surrogate integrates to one like the step it replaces)."""

    @staticmethod
    def forward(ctx, v: torch.Tensor, width: float) -> torch.Tensor:
        ctx.save_for_backward(v)
        ctx.width = width
        return (v >= 0).to(v.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (v,) = ctx.saved_tensors
        box = (v.abs() < ctx.width).to(grad.dtype) / (2 * ctx.width)
        return grad * box, None


class SrnnEncoder(nn.Module):
    """Trainable LIF reservoir: mem = decay·mem·(1-s) + W_in x + W_rec s; s = mem >= Vth
    (the forward pass of the LSM exactly; only the gradient of the reset is cut).

    Output: the mean firing rate of each neuron, as the LSM features.  Initialised like
    the LSM (Gaussian weights times ``gain``) so the two start from the same point.
    """

    def __init__(self, n_in: int, n_hidden: int = 200, decay: float = 0.9, vth: float = 5.0,
                 gain: float = 0.3, width: float = 0.25, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.w_in = nn.Parameter(torch.randn(n_in, n_hidden, generator=g) * 6.6 * gain)
        self.w_rec = nn.Parameter(torch.randn(n_hidden, n_hidden, generator=g) * 6.7 * gain)
        self.decay, self.vth, self.width = decay, vth, width

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """Binary frames (B, T, n_in) -> rates (B, n_hidden)."""
        bsz, steps, _ = frames.shape
        mem = frames.new_zeros(bsz, self.w_rec.shape[0])
        s = torch.zeros_like(mem)
        total = torch.zeros_like(mem)
        drive = frames @ self.w_in
        for t in range(steps):
            # the reset is detached (as snnTorch does by default, and Zenke & Vogels 2021
            # advise): through it, d mem_t / d mem_t-1 picks up -decay·mem·(box height) ≈ -10
            # at each bin near threshold, and BPTT over 129 audio bins overflows to NaN
            mem = self.decay * mem * (1 - s.detach()) + drive[:, t] + s @ self.w_rec
            s = BoxSpike.apply(mem - self.vth, self.width)
            total = total + s
        return total / steps

    def macs_per_sample(self, steps: int) -> int:
        """Dense forward MACs over a sample: input and recurrent products per step."""
        n_in, n_h = self.w_in.shape
        return int(steps * (n_in * n_h + n_h * n_h))


# ----------------------------------------------------------------------------- RNN
class RnnReadout(nn.Module):
    """Plain tanh RNN (200 units) over binary frames with a linear readout of the last state."""

    def __init__(self, n_in: int, n_classes: int, n_hidden: int = 200, seed: int = 0):
        super().__init__()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.rnn = nn.RNN(n_in, n_hidden, batch_first=True)
            self.out = nn.Linear(n_hidden, n_classes)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        _, h = self.rnn(frames)
        return self.out(h[-1])

    def macs_per_sample(self, steps: int) -> int:
        n_h, n_in = self.rnn.weight_hh_l0.shape[0], self.rnn.weight_ih_l0.shape[1]
        return int(steps * (n_in * n_h + n_h * n_h) + n_h * self.out.out_features)
