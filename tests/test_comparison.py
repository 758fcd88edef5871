"""The paper's comparison: LSM-CLIP against SRNN-CLIP / prototypical nets / RNN, with costs."""
import numpy as np
import pytest
import torch

from rram_lsm.experiments.comparison import (ComparisonConfig, Frames, comparison_markdown,
                                         cost_ratios, supervised_comparison,
                                         zero_shot_comparison)
from rram_lsm.nodes.projection.heads import HeadConfig
from rram_lsm.nodes.projection.train import ModalityData, head_train_macs
from rram_lsm.nodes.projection.train_config import TrainConfig

CLASSES = range(1, 10)
PER_SPLIT = (8, 3, 4)  # train / val / test samples per class


def _frames(name: str, seed: int, n_in: int, steps: int, hidden: int = 32) -> Frames:
    """Binary frames where each class drives its own inputs in its own bins, plus noise;
    the LSM features are the rates of the same untrained LIF encoder the SRNN starts from."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(list(CLASSES), sum(PER_SPLIT))
    split = np.tile(np.repeat([0, 1, 2], PER_SPLIT), len(CLASSES))
    patterns = rng.random((10, steps, n_in)) < 0.25
    frames = (patterns[labels] ^ (rng.random((len(labels), steps, n_in)) < 0.05)).astype(np.uint8)
    fr = Frames(ModalityData(name, "test", np.zeros((len(labels), hidden)), labels, split),
                frames, decay=0.9, vth=1.0, const=0.15)
    with torch.no_grad():
        rates = fr.encoder(seed).forward(torch.as_tensor(frames, dtype=torch.float32)).numpy()
    fr.data = ModalityData(name, "test", rates, labels, split)
    return fr


@pytest.fixture(scope="module")
def pair():
    return _frames("audio", 1, 12, 12), _frames("visual", 2, 16, 10)


@pytest.fixture(scope="module")
def zero_shot_rows(pair):
    cfg = ComparisonConfig(TrainConfig(pd=16, epochs=30, threads=1), srnn_epochs=25, proto_batch=28)
    return cfg, zero_shot_comparison(*pair, cfg, log=lambda s: None)


def test_every_zero_shot_model_learns_the_seen_classes(zero_shot_rows):
    _, rows = zero_shot_rows
    assert [r["method"] for r in rows] == ["LSM-CLIP", "LSM prototypical net", "SRNN-CLIP",
                                           "SRNN prototypical net"]
    for r in rows:
        assert r["seen_chance"] == pytest.approx(1 / 7) and r["unseen_chance"] == pytest.approx(0.5)
        # a broken loss, a wrong pairing or an encoder that does not train stays near 1/7
        assert r["seen"] > r["seen_chance"] + 0.2, r   # 3 sd above chance on 28 queries
        assert 1 <= r["selected_epoch"] <= r["epochs_run"]


def test_srnn_clip_cost_is_bptt_through_both_encoders_plus_the_heads(pair, zero_shot_rows):
    cfg, rows = zero_shot_rows
    fa, fb = pair
    n_pairs = sum(max(np.sum((d.data.labels == c) & (d.data.split == 0)) for d in pair)
                  for c in cfg.heads.seen)
    enc = sum(f.steps * (f.frames.shape[2] * 32 + 32 * 32) for f in (fa, fb))
    heads = head_train_macs(HeadConfig("p", "a", 32, [16]), HeadConfig("p", "b", 32, [16]),
                            n_pairs, 1, cfg.heads.batch_size)
    row = {r["method"]: r for r in rows}
    assert row["SRNN-CLIP"]["macs_per_epoch"] == 3 * n_pairs * enc + heads
    assert row["LSM-CLIP"]["macs_per_epoch"] == heads
    assert row["SRNN-CLIP"]["macs_protocol"] == cfg.heads.epochs * row["SRNN-CLIP"]["macs_per_epoch"]
    # prototypical nets: 2 episodes of 28 queries and 7 x 4 support samples through linear
    # heads (x3 for backward), plus the query-to-prototype distances
    n_q = n_s = 2 * 28
    assert row["LSM prototypical net"]["macs_per_epoch"] == 3 * (n_q * 32 * 16 + n_s * 32 * 16
                                                                 + n_q * 7 * 16)
    assert row["SRNN prototypical net"]["macs_per_epoch"] == 3 * (
        n_q * (fa.steps * (12 * 32 + 32 * 32) + 32 * 16)
        + n_s * (fb.steps * (16 * 32 + 32 * 32) + 32 * 16) + n_q * 7 * 16)
    ratio = cost_ratios(rows)["SRNN-CLIP"]
    assert ratio == pytest.approx((3 * n_pairs * enc + heads) / heads)
    assert ratio > 10   # BPTT through the encoders dwarfs head-only training


def test_supervised_baselines_learn_and_the_table_names_every_model(pair, zero_shot_rows):
    cfg = ComparisonConfig(TrainConfig(pd=16, threads=1), srnn_epochs=60, rnn_epochs=25)  # BPTT learns slowly
    rows = supervised_comparison(pair[1], cfg, log=lambda s: None)
    assert [r["method"] for r in rows] == ["SRNN + ANN readout", "RNN (200 tanh units)"]
    for r in rows:
        assert r["chance"] == pytest.approx(1 / 9)
        assert r["test"] > r["chance"] + 0.3, r
    res = {"config": cfg.as_dict(), "device": "ideal", "zero_shot": zero_shot_rows[1],
           "supervised": rows, "cost_ratio": cost_ratios(zero_shot_rows[1]),
           "paper_cost_ratio": {"SRNN-CLIP": 152.83, "prototypical networks": 393.07},
           "encoding": [{"modality": "audio", "samples": 135, "seconds": 1.0, "dense_macs": 10,
                         "synaptic_ops": 5}]}
    md = comparison_markdown(res)
    for name in ("LSM-CLIP", "SRNN-CLIP", "SRNN prototypical net", "RNN (200 tanh units)",
                 "152.83"):
        assert name in md


def test_bad_comparison_config_is_named():
    with pytest.raises(ValueError, match="srnn_epochs"):
        ComparisonConfig(srnn_epochs=0).validate()
