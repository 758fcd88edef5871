"""Offline generalised zero-shot on the tiny built-in dataset: the calibration constant is
chosen on pseudo-unseen validation folds that never read an unseen class, and the test-set
figures are calibrated stacking on the classifier bank's own scores."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from rram_lsm.experiments.config import ExperimentConfig
from rram_lsm.experiments.gzsl_eval import (ausuc_chance, bank_scores, calibrations,
                                            fold_configs, gzsl_experiment)
from rram_lsm.experiments.runs import zero_shot
from rram_lsm.experiments.store import FeatureStore, pair_data
from rram_lsm.nodes.classifier import gzsl
from rram_lsm.nodes.classifier.metrics import class_prototypes
from rram_lsm.nodes.projection.train import TEST, TRAIN
from rram_lsm.nodes.projection.train_config import TrainConfig

HEADS = TrainConfig(epochs=4, threads=2)


@pytest.fixture(scope="module")
def pair():
    store = FeatureStore(ExperimentConfig(size="tiny", gain_factors=(1.0,), heads=HEADS),
                         log=lambda s: None)
    return pair_data(store, "audio-visual", "ideal")


def test_folds_hold_out_seen_classes_only():
    jobs = fold_configs(HEADS, seeds=(0, 1), n_folds=3)
    assert len(jobs) == 6
    for seed, pseudo, cfg in jobs:
        assert cfg.seed == seed and len(pseudo) == len(HEADS.unseen)
        assert set(pseudo) <= set(HEADS.seen) and set(cfg.unseen) == set(pseudo)
        assert set(cfg.seen) == set(HEADS.seen) - set(pseudo)
        assert not (set(cfg.seen) | set(cfg.unseen)) & set(HEADS.unseen)
    # the folds of one seed are disjoint while they fit (7 seen classes, folds of 2)
    firsts = [p for s, p, _ in jobs if s == 0]
    assert len({c for p in firsts for c in p}) == 6


def _blind(m, unseen):
    """``m`` with every feature row of the unseen classes replaced by NaN."""
    f = m.features.copy()
    f[np.isin(m.labels, unseen)] = np.nan
    return dataclasses.replace(m, features=f)


def test_calibration_never_reads_an_unseen_class(pair):
    a, b = pair
    chosen = calibrations(a, b, HEADS, (0,), 1)
    blind = calibrations(_blind(a, HEADS.unseen), _blind(b, HEADS.unseen), HEADS, (0,), 1)
    for d in ("a_to_b", "b_to_a"):
        assert chosen[0][1][d].gamma == blind[0][1][d].gamma
        assert chosen[0][1][d].h == blind[0][1][d].h
    assert chosen[0][0] == blind[0][0]


def test_test_figures_are_calibrated_stacking_on_the_bank_scores(pair):
    a, b = pair
    z = zero_shot(a, b, HEADS, seeds=(0,))
    g = gzsl_experiment(a, b, HEADS, z.trained, n_folds=2, pair="audio-visual", device="ideal")
    heads = z.trained[0].heads
    classes = sorted((*HEADS.seen, *HEADS.unseen))
    for d, (q, ref) in (("a_to_b", (a, b)), ("b_to_a", (b, a))):
        r = g.runs[0].direction(d)
        assert (r.query, r.bank) == (q.name, ref.name)
        # scores computed independently of the bank: float64 cosine with class prototypes
        rows, refs = q.rows(TEST, classes), ref.rows(TRAIN, classes)
        protos = class_prototypes(heads[ref.name].forward(ref.features[refs]),
                                  ref.labels[refs], classes)
        e = heads[q.name].forward(q.features[rows]).astype(np.float64)
        mine = (e / np.linalg.norm(e, axis=1, keepdims=True)) @ protos.T
        scores, labels, order = bank_scores(heads, q, ref, TEST, classes, classes)
        assert order == classes and np.allclose(scores, mine, atol=1e-5)
        for gamma, got in ((0.0, r.uncalibrated), (r.gamma, r.calibrated)):
            want = gzsl.evaluate(mine, labels, classes, HEADS.seen, HEADS.unseen, gamma)
            assert (got.seen, got.unseen, got.h) == pytest.approx((want.seen, want.unseen, want.h))
        assert r.calibrated.h == pytest.approx(gzsl.harmonic_mean(r.calibrated.seen,
                                                                  r.calibrated.unseen))
        assert r.ausuc == pytest.approx(gzsl.ausuc(mine, labels, classes, HEADS.seen,
                                                   HEADS.unseen))
        assert r.chance == pytest.approx(1 / 9) and r.ausuc_chance == pytest.approx(1 / 28)
        assert r.n_seen + r.n_unseen == len(rows)
    js = g.to_json()
    assert js["summary"]["a_to_b"]["h_cal"]["mean"] == g.runs[0].a_to_b.calibrated.h
    assert ausuc_chance(7, 2) == pytest.approx(1 / 28)


def test_ausuc_chance_is_the_area_of_class_independent_scores():
    rng = np.random.default_rng(0)
    seen, unseen = [1, 2, 3, 4, 5, 6, 7], [8, 9]
    labels = np.repeat(np.arange(1, 10), 400)
    scores = rng.random((len(labels), 9)).astype(np.float32)
    got = gzsl.ausuc(scores, labels, list(range(1, 10)), seen, unseen)
    assert got == pytest.approx(ausuc_chance(7, 2), rel=0.1)
