"""Baselines' parts: box surrogate, SRNN trained by BPTT, RNN readout; MAC counts at paper sizes."""
import numpy as np
import torch

from rram_lsm.experiments.baselines import BoxSpike, RnnReadout, SrnnEncoder
from rram_lsm.experiments.comparison import ComparisonConfig, Tower, bptt_clip_macs, train_two_towers
from rram_lsm.nodes.projection.heads import HeadConfig
from rram_lsm.nodes.projection.train import HeadModule, ModalityData, head_train_macs
from rram_lsm.nodes.projection.train_config import TrainConfig


def test_box_surrogate_gradient():
    v = torch.tensor([-0.3, -0.2, 0.0, 0.2, 0.3], requires_grad=True)
    s = BoxSpike.apply(v, 0.25)
    assert s.tolist() == [0, 0, 1, 1, 1]
    s.sum().backward()
    assert v.grad.tolist() == [0.0, 2.0, 2.0, 2.0, 0.0]


def test_srnn_trains_by_bptt_and_counts_macs():
    rng = np.random.default_rng(0)
    frames_a = torch.as_tensor(rng.random((81, 10, 12)) < 0.3, dtype=torch.float32)
    frames_b = torch.as_tensor(rng.random((81, 8, 9)) < 0.3, dtype=torch.float32)
    enc_a = SrnnEncoder(12, 20, vth=1.0, gain=0.05, seed=1)
    enc_b = SrnnEncoder(9, 20, vth=1.0, gain=0.05, seed=2)
    rates = enc_a(frames_a)
    assert rates.shape == (81, 20) and 0 < rates.mean() < 1
    rates.sum().backward()
    assert enc_a.w_in.grad.abs().sum() > 0 and enc_a.w_rec.grad.abs().sum() > 0
    enc_a.zero_grad()
    labels, split = np.repeat(np.arange(1, 10), 9), np.tile(np.repeat([0, 1, 2], 3), 9)
    towers = [Tower(HeadModule(HeadConfig("p", m, 20, [8])), enc, np.zeros(20, np.float32),
                    np.ones(20, np.float32)) for m, enc in (("a", enc_a), ("b", enc_b))]
    data = [ModalityData(m, "p", np.zeros((81, 20)), labels, split) for m in ("a", "b")]
    before = [enc_a.w_in.detach().clone(), enc_b.w_rec.detach().clone()]
    out = train_two_towers("clip", *towers, frames_a, frames_b, *data,
                           ComparisonConfig(TrainConfig(pd=8, threads=1)), epochs=1, log=lambda s: None)
    # BPTT reached both encoders, input and recurrent weights
    assert not torch.equal(before[0], enc_a.w_in) and not torch.equal(before[1], enc_b.w_rec)
    assert out["samples_per_epoch"] == [21, 21]   # 7 seen classes x 3 training pairs
    assert enc_a.macs_per_sample(10) == 10 * (12 * 20 + 20 * 20)


def test_training_cost_ratio_at_paper_sizes():
    # Paper sizes: image encoder 256 -> 200 over 50 bins, audio 64 -> 200 over 129 bins,
    # heads 200 -> 64, 1,568 pairs, batch 8.  Head-only training must be >100x cheaper.
    head = HeadConfig("p", "m", 200, [64])
    heads_epoch = head_train_macs(head, head, 1568, 1, 8)
    towers = [Tower(HeadModule(head), enc, np.zeros(200, np.float32), np.ones(200, np.float32))
              for enc in (SrnnEncoder(64, 200), SrnnEncoder(256, 200))]
    srnn_epoch = bptt_clip_macs(towers[0], 129, towers[1], 50, 1568, 8)
    assert srnn_epoch / heads_epoch > 100


def test_rnn_readout_shapes_and_macs():
    model = RnnReadout(n_in=12, n_classes=10, n_hidden=16)
    out = model(torch.zeros(3, 7, 12))
    assert out.shape == (3, 10)
    assert model.macs_per_sample(7) == 7 * (12 * 16 + 16 * 16) + 16 * 10
