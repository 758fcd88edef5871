"""Gain calibration on validation only, and the linear probes, on the tiny built-in dataset."""
from __future__ import annotations

import numpy as np
import pytest

import rram_lsm.nodes.lsm  # noqa: F401
from rram_lsm.experiments.features import builtin_source, encode_modality, raw_frames, resolve_config
from rram_lsm.experiments.calibrate import GainPoint, calibrate_gain, gain_grid, next_gain, search_gain
from rram_lsm.experiments.probe import linear_probe


@pytest.fixture(scope="module")
def tiny():
    from rram_lsm.nodes.sources.builtin import load_builtin
    return load_builtin("tiny", 0, progress=False)


def _shuffle_test_labels(ms, seed: int = 1):
    out = ms.select()
    test = np.flatnonzero(out.split == 2)
    labels = out.labels.copy()
    labels[test] = np.random.default_rng(seed).permutation(10)[labels[test] % 10]
    assert not np.array_equal(labels, ms.labels)
    out.labels = labels
    return out


def test_calibration_uses_validation_only(tiny):
    ms = tiny.modality("audio")
    factors = (0.25, 1.0, 4.0)
    cal = calibrate_gain(ms, "zs_audio", "ideal", 0, factors=factors, extend=0,
                         source=builtin_source("tiny", 0, "audio"))
    assert [p.const for p in cal.points] == pytest.approx(gain_grid("zs_audio", factors))
    best = max(p.val_acc for p in cal.points)
    assert cal.const in [p.const for p in cal.points if p.val_acc == best]
    # health beside every value; a 16x larger gain fires more and silences fewer neurons
    lo, hi = cal.points[0], cal.points[-1]
    assert hi.mean_rate > lo.mean_rate and hi.silent_frac < lo.silent_frac
    assert cal.features.config["const"] == pytest.approx(cal.const)
    assert "chosen" in cal.table()
    # the test labels play no part: scrambling them changes no score and not the choice
    # (no named source: the content hash differs, so this really re-encodes the data)
    shuffled = calibrate_gain(_shuffle_test_labels(ms), "zs_audio", "ideal", 0, factors=factors,
                              extend=0)
    assert shuffled.const == cal.const
    assert [p.val_acc for p in shuffled.points] == [p.val_acc for p in cal.points]
    assert not shuffled.features.cached


def test_next_gain_steps_past_the_end_holding_the_best():
    assert next_gain([0.1, 0.2, 0.4], 0.1) == pytest.approx(0.05)
    assert next_gain([0.1, 0.2, 0.4], 0.4) == pytest.approx(0.8)
    assert next_gain([0.1, 0.2, 0.4], 0.2) is None and next_gain([0.1], 0.1) is None


def test_gain_search_walks_past_an_edge_optimum_and_stops():
    """Validation accuracy peaked at 0.02, below a grid of 0.1..0.4: the search steps down
    one grid ratio at a time until the best is inside, within its ``extend`` budget."""
    def score(c):
        return GainPoint(c, 1.0 - abs(np.log(c / 0.02)), 1.0, 0.0, 0.0, 0.1)
    points, best = search_gain([0.4, 0.1, 0.2], score, base=0.2, extend=5)
    assert [p.const for p in points] == pytest.approx([0.0125, 0.025, 0.05, 0.1, 0.2, 0.4])
    assert best.const == pytest.approx(0.025)            # the sampled point nearest the peak
    points, best = search_gain([0.1, 0.2, 0.4], score, base=0.2, extend=1)
    assert len(points) == 4 and best.const == pytest.approx(0.05)   # budget spent
    points, _ = search_gain([0.01, 0.02, 0.04], score, base=0.2, extend=5)
    assert len(points) == 3                              # interior optimum: nothing added


def test_calibration_extends_a_real_grid_and_keeps_the_best(tiny):
    ms = tiny.modality("audio")
    base = gain_grid("zs_audio", (1.0,))[0]
    cal = calibrate_gain(ms, "zs_audio", "ideal", 0, consts=[base, base * 2], extend=1,
                         source=builtin_source("tiny", 0, "audio"))
    consts = [p.const for p in cal.points]
    assert len(consts) == 3 and consts == sorted(consts)   # an end of two points is always best
    top = max(p.val_acc for p in cal.points)
    assert cal.const in [p.const for p in cal.points if p.val_acc == top]
    assert cal.features.config["const"] == pytest.approx(cal.const)


def test_probe_on_lsm_features_beats_chance(tiny):
    ms = tiny.modality("audio")
    fs = encode_modality(ms, "zs_audio", "ideal", 0, source=builtin_source("tiny", 0, "audio"))
    p = linear_probe(fs.features, fs.labels, fs.split)
    assert p.chance == pytest.approx(0.1)
    assert p.test >= 0.5 and p.val >= 0.5          # 10 classes: chance is 10 %
    assert p.C in p.val_by_C and p.val == max(p.val_by_C.values())
    # a broken pairing of features and labels falls to chance level
    perm = np.random.default_rng(0).permutation(len(fs.labels))
    broken = linear_probe(fs.features[perm], fs.labels, fs.split)
    assert broken.test < p.test - 0.2


def test_probe_on_raw_frames_and_visual_lsm(tiny):
    ms = tiny.modality("visual")
    fs = encode_modality(ms, "zs_image", "ideal", 0, source=builtin_source("tiny", 0, "visual"))
    p = linear_probe(fs.features, fs.labels, fs.split)
    frames = raw_frames(ms, resolve_config(ms, "zs_image", None, 0))
    raw = linear_probe(frames.astype(np.float32), ms.labels, ms.split, Cs=(0.1,), max_iter=100)
    # 20 val + 20 test images over 10 classes: both well above the 10 % chance
    assert (p.val + p.test) / 2 >= 0.3
    assert (raw.val + raw.test) / 2 >= 0.5
    assert raw.n_features == 50 * 256 and p.n_features == 200


def test_probe_without_test_never_reads_test_rows():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 5))
    y = np.arange(60) % 3
    x[:, 0] += 3 * y
    split = np.repeat([0, 1, 2], 20)
    p = linear_probe(x, y, split, test=False)
    assert np.isnan(p.test) and p.val >= 0.8
    # chance comes from the validation labels when the test split is off limits
    assert p.chance == pytest.approx(np.bincount(y[20:40]).max() / 20)
    with pytest.raises(ValueError, match="validation"):
        linear_probe(x, y, np.zeros(60, int))


def test_bad_gain_grid_is_refused(tiny):
    with pytest.raises(ValueError, match="positive"):
        calibrate_gain(tiny.modality("audio"), "zs_audio", consts=[-1.0])
