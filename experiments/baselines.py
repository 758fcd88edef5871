"""The paper's comparison baselines' parts (torch; offline only); ``comparison.py`` trains them.

* Prototype logits: nearest prototype by Euclidean distance of L2-normalised embeddings.
* SRNN encoder: the LIF equations of PAPER.md with trainable input and recurrent weights,
  trained end to end by BPTT through a box surrogate gradient (half-width 0.25 around Vth);
  used for SRNN-CLIP with the heads of ``nodes.projection.train`` on top.
* RNN readout: a plain tanh RNN of 200 units on the binary input frames, linear readout.

MAC counts are forward + backward (backward taken as 2× forward, the usual dense-layer
rule) per epoch, so training costs can be compared by operation count.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


# ----------------------------------------------------------------------------- prototypes
def proto_logits(q: torch.Tensor, support: torch.Tensor, s_labels: torch.Tensor,
                 classes: torch.Tensor) -> torch.Tensor:
    """-squared Euclidean distance of unit queries to unit-embedding class prototypes."""
    s = F.normalize(support, dim=1)
    protos = torch.stack([s[s_labels == c].mean(0) for c in classes])
    return -torch.cdist(F.normalize(q, dim=1), protos) ** 2


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
