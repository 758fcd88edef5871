"""Generalised zero-shot: calibrated stacking, H, AUSUC, the validation chooser, and the
classifier nodes giving exactly the offline predictions."""
import numpy as np
import pytest

from rram_lsm.nodes.classifier import gzsl
from rram_lsm.nodes.classifier.bank import UNKNOWN, PrototypeBank
from rram_lsm.nodes.classifier.crossmodal import CrossModalClassifier
from rram_lsm.nodes.classifier.node import ClassifierNode
from rram_lsm.stream.node import ConfigError
from rram_lsm.stream.packets import Origin, Packet

# Classes 1, 2 seen and 3 unseen; columns in that order.  Margins (best seen - best unseen):
# q1 0.4 (seen right), q2 0.3 (best seen is 1: wrong), q3 0.2 (right), q4 0.1, q5 0.5 (the
# unseen queries: best unseen is 3, right).
SCORES = np.array([[0.9, 0.1, 0.5],
                   [0.6, 0.2, 0.3],
                   [0.1, 0.8, 0.6],
                   [0.7, 0.2, 0.6],
                   [0.2, 0.9, 0.4]], dtype=np.float32)
LABELS = np.array([1, 2, 2, 3, 3])
CLASSES = [1, 2, 3]


def test_calibrated_stacking_h_and_ausuc_by_hand():
    plain = gzsl.evaluate(SCORES, LABELS, CLASSES, [1, 2], [3], 0.0)
    # seen per class: class 1 1/1, class 2 1/2 -> 0.75; both unseen queries go to a seen class
    assert (plain.seen, plain.unseen, plain.h) == (0.75, 0.0, 0.0)
    assert gzsl.predict(SCORES, CLASSES, [1, 2], 0.0).tolist() == [1, 1, 2, 1, 2]
    cal = gzsl.evaluate(SCORES, LABELS, CLASSES, [1, 2], [3], 0.15)   # only q4 (0.1) flips
    assert gzsl.predict(SCORES, CLASSES, [1, 2], 0.15).tolist() == [1, 1, 2, 3, 2]
    assert (cal.seen, cal.unseen) == (0.75, 0.5) and cal.h == pytest.approx(0.6)
    per_sample = gzsl.evaluate(SCORES, LABELS, CLASSES, [1, 2], [3], 0.0, per_class=False)
    assert per_sample.seen == pytest.approx(2 / 3)
    # the curve: (U, S) = (0, .75) (.5, .75) (.5, .5) (.5, .5) (.5, 0) (1, 0) -> area .5 * .75
    curve = gzsl.seen_unseen_curve(SCORES, LABELS, CLASSES, [1, 2], [3])
    np.testing.assert_allclose(curve.gamma, [-0.9, 0.15, 0.25, 0.35, 0.45, 1.5], atol=1e-6)
    np.testing.assert_allclose(curve.unseen, [0, 0.5, 0.5, 0.5, 0.5, 1.0])
    np.testing.assert_allclose(curve.seen, [0.75, 0.75, 0.5, 0.5, 0.0, 0.0])
    assert curve.ausuc == pytest.approx(0.375)
    assert gzsl.ausuc(SCORES, LABELS, CLASSES, [1, 2], [3]) == pytest.approx(0.375)
    rep = gzsl.report(SCORES, LABELS, CLASSES, [1, 2], [3], 0.15)
    assert rep["uncalibrated"]["h"] == 0.0 and rep["calibrated"]["h"] == pytest.approx(0.6)
    assert rep["chance"] == pytest.approx(1 / 3) and (rep["n_seen"], rep["n_unseen"]) == (3, 2)


def test_everything_to_unseen_shows_in_h():
    allu = gzsl.evaluate(SCORES, LABELS, CLASSES, [1, 2], [3], 1.5)
    assert gzsl.predict(SCORES, CLASSES, [1, 2], 1.5).tolist() == [3] * 5
    assert allu.unseen == 1.0 and allu.seen == 0.0 and allu.h == 0.0
    assert gzsl.harmonic_mean(0.0, 1.0) == 0.0 and gzsl.harmonic_mean(0.5, 0.5) == 0.5


def test_curve_matches_the_decision_rule_and_perfect_ausuc_is_one():
    rng = np.random.default_rng(3)
    classes, seen, unseen = [1, 2, 3, 4, 5, 8, 9], [1, 2, 3, 4, 5], [8, 9]
    labels = rng.choice(classes, 300)
    scores = rng.uniform(-1, 1, (300, 7)).astype(np.float32)
    scores[np.arange(300), np.searchsorted(classes, labels)] += 0.6     # some signal
    curve = gzsl.seen_unseen_curve(scores, labels, classes, seen, unseen)
    for g, s, u in zip(curve.gamma, curve.seen, curve.unseen):          # every operating point
        point = gzsl.evaluate(scores, labels, classes, seen, unseen, float(g))
        assert (point.seen, point.unseen) == pytest.approx((s, u), abs=1e-12)
    assert curve.seen[0] > 0 and curve.unseen[0] == 0 and curve.seen[-1] == 0
    assert 0 < curve.ausuc < 1
    perfect = 0.1 * scores
    perfect[np.arange(300), np.searchsorted(classes, labels)] = 1.0
    assert gzsl.ausuc(perfect, labels, classes, seen, unseen) == pytest.approx(1.0, abs=1e-12)


def test_threshold_is_on_the_cosine_not_the_calibrated_score():
    order, labels, cal = gzsl.decide(SCORES, CLASSES, [1, 2], 0.3, k=2, threshold=0.65)
    # q1: 0.9 - 0.3 = 0.6 still beats 0.5 and its cosine 0.9 >= 0.65: kept.  q2: 0.6 - 0.3
    # ties the unseen 0.3 (exactly, in float32); the tie goes to the earlier column, class 1,
    # whose cosine 0.6 < 0.65: rejected.  q3, q4: class 3 at cosine 0.6: rejected.
    assert labels.tolist() == [1, UNKNOWN, UNKNOWN, UNKNOWN, 2]
    assert cal[0].tolist() == pytest.approx([0.6, -0.2, 0.5])
    assert order[0].tolist() == [0, 2]


def _fold(rng, classes, pseudo):
    labels = np.repeat(classes, 5)
    scores = rng.uniform(0, 0.5, (len(labels), len(classes))).astype(np.float32)
    cols = np.searchsorted(classes, labels)
    scores[np.arange(len(labels)), cols] += 0.4
    scores[:, ~np.isin(classes, pseudo)] += 0.3       # heads pull toward their own classes
    return gzsl.ValidationFold(scores, labels, classes, pseudo)


def test_chooser_uses_seen_classes_only():
    fold = gzsl.ValidationFold(SCORES, LABELS, CLASSES, [3])      # 3 plays an unseen class
    best = gzsl.choose_calibration([fold], unseen=[8, 9])
    assert best.gamma == pytest.approx(0.15) and best.h == pytest.approx(0.6)
    assert (best.seen, best.unseen) == (0.75, 0.5)
    rng = np.random.default_rng(0)
    folds = [_fold(rng, [1, 2, 3, 4, 5, 6, 7], p) for p in ([6, 7], [1, 2], [3, 4])]
    two = gzsl.choose_calibration(folds, unseen=[8, 9])
    assert two.gamma > 0.1 and two.h > max(f.h for f in
                                           [gzsl.evaluate(*_args(f), 0.0) for f in folds])
    with pytest.raises(ValueError, match=r"touches the unseen classes \[8\]"):
        gzsl.choose_calibration([gzsl.ValidationFold(SCORES, LABELS, [1, 2, 8], [8])], [8, 9])
    with pytest.raises(ValueError, match=r"fold 1 touches the unseen classes \[9\]"):
        gzsl.choose_calibration([fold, gzsl.ValidationFold(SCORES, [1, 2, 2, 3, 9],
                                                           CLASSES, [3])], [8, 9])
    with pytest.raises(ValueError, match="proper subset"):
        gzsl.choose_calibration([gzsl.ValidationFold(SCORES, LABELS, CLASSES, [1, 2, 3])], [8])


def test_pseudo_unseen_splits_are_seeded_seen_subsets():
    seen = [1, 2, 3, 4, 5, 6, 7]
    folds = gzsl.pseudo_unseen_splits(seen, 2, 3, seed=4)
    assert folds == gzsl.pseudo_unseen_splits(seen, 2, 3, seed=4)
    assert all(len(f) == 2 and set(f) < set(seen) for f in folds)
    assert len({c for f in folds for c in f}) == 6                 # disjoint while they fit
    with pytest.raises(ValueError, match="between 1 and 6"):
        gzsl.pseudo_unseen_splits(seen, 7, 1)


def _args(fold):
    seen = sorted(set(fold.classes) - set(fold.pseudo_unseen))
    return fold.scores, fold.labels, fold.classes, seen, fold.pseudo_unseen


def test_metric_input_errors():
    with pytest.raises(ValueError, match="both seen and unseen"):
        gzsl.evaluate(SCORES, LABELS, CLASSES, [1, 2], [2, 3])
    with pytest.raises(ValueError, match=r"no query of a unseen class"):
        gzsl.evaluate(SCORES[:3], LABELS[:3], CLASSES, [1, 2], [3])
    with pytest.raises(ValueError, match=r"classes \[4\] have no prototype"):
        gzsl.evaluate(SCORES, LABELS, CLASSES, [1, 2], [3, 4])


# --------------------------------------------------------------- the live classifier
def _world(dim=16, seed=1):
    """Seen classes 1-5 and unseen 8, 9; every query is pulled toward the seen prototypes,
    as heads trained on the seen classes pull them."""
    rng = np.random.default_rng(seed)
    classes = [1, 2, 3, 4, 5, 8, 9]
    centre = {c: rng.normal(size=dim) for c in classes}
    refs = np.concatenate([centre[c] + 0.3 * rng.normal(size=(6, dim)) for c in classes])
    ref_labels = np.repeat(classes, 6)
    pull = np.mean([centre[c] for c in classes[:5]], axis=0)
    q_labels = np.repeat(classes, 12)
    queries = np.stack([centre[c] + 1.2 * rng.normal(size=dim) + 1.5 * pull
                        for c in q_labels]).astype(np.float32)
    return refs, ref_labels, queries, q_labels


def _packet(vec, label, sample):
    return Packet(kind="embedding", body=np.asarray(vec, np.float32)[None], label=int(label),
                  sample=sample, origin=Origin("src", 0, sample), meta={"modality": "neural"})


def test_nodes_predict_exactly_the_offline_gzsl_labels(tmp_path):
    refs, ref_labels, queries, q_labels = _world()
    seen, unseen = [1, 2, 3, 4, 5], [8, 9]
    gamma = 0.2
    bank = PrototypeBank.from_embeddings(refs, ref_labels, modality="visual", seen=seen,
                                         calibration=gamma)
    path = bank.save(tmp_path / "bank.npz")
    scores, classes = PrototypeBank.load(path).scores(queries)       # the whole batch at once
    offline = gzsl.predict(scores, classes, seen, gamma)
    plain = gzsl.predict(scores, classes, seen, 0.0)
    changed = int(np.sum(offline != plain))
    assert changed >= 5, "test setup: the calibration must change some predictions"
    assert (gzsl.evaluate(scores, q_labels, classes, seen, unseen, gamma).unseen
            > gzsl.evaluate(scores, q_labels, classes, seen, unseen, 0.0).unseen)

    node = ClassifierNode("clf", {"bank": str(path), "topk": 2})      # gamma from the file
    node.setup()
    live = [node.process(_packet(q, y, i))[0].meta["pred"]
            for i, (q, y) in enumerate(zip(queries, q_labels))]
    assert live == offline.tolist()
    batch = node.process(Packet(kind="embedding", body=queries, sample=0))
    assert [p.meta["pred"] for p in batch] == offline.tolist()

    zero = ClassifierNode("clf0", {"bank": str(path), "calibration": 0.0, "seen": seen})
    zero.setup()
    assert [p.meta["pred"] for p in zero.process(Packet(kind="embedding", body=queries))] \
        == plain.tolist()

    # the cross-modal node, with its gamma as a parameter on a bank file that has none, and a
    # reject threshold that the offline rule applies the same way
    PrototypeBank.from_embeddings(refs, ref_labels, modality="visual").save(tmp_path / "b0.npz")
    thr = float(np.quantile(scores.max(axis=1), 0.1))
    cm = CrossModalClassifier("cm", {"banks": {"neural": str(tmp_path / "b0.npz")},
                                     "seen": seen, "unseen": unseen, "threshold": thr,
                                     "calibration": {"neural": gamma}})
    cm.setup()
    live = [cm.process(_packet(q, y, i))[0].meta["pred"]
            for i, (q, y) in enumerate(zip(queries, q_labels))]
    expected = gzsl.predict(scores, classes, seen, gamma, threshold=thr)
    assert UNKNOWN in expected and live == expected.tolist()
    correct = expected == q_labels
    assert cm.gauges["unseen_correct"] == int(correct[np.isin(q_labels, unseen)].sum())


def test_bank_scores_are_batch_invariant_and_files_keep_calibration(tmp_path):
    refs, ref_labels, queries, _ = _world(dim=64, seed=2)
    for mode in ("mean", "exemplars"):
        bank = PrototypeBank.from_embeddings(refs, ref_labels, mode=mode)
        whole = bank.scores(queries)[0]
        alone = np.concatenate([bank.scores(q)[0] for q in queries])
        np.testing.assert_array_equal(whole, alone)
    bank = PrototypeBank.from_embeddings(refs, ref_labels, seen=[1, 2], calibration=0.1)
    loaded = PrototypeBank.load(bank.save(tmp_path / "b.npz"))
    assert loaded.seen == (1, 2) and loaded.calibration == 0.1
    old = PrototypeBank.from_embeddings(refs, ref_labels)
    assert old.seen is None and old.calibration == 0.0
    with pytest.raises(ValueError, match="needs the seen classes"):
        PrototypeBank.from_embeddings(refs, ref_labels, calibration=0.1)
    with pytest.raises(ConfigError, match=r"'seen' \[1, 3\] differs from the seen classes"):
        ClassifierNode("c", {"bank": str(tmp_path / "b.npz"), "seen": [1, 3]}).setup()
    old.save(tmp_path / "old.npz")
    with pytest.raises(ConfigError, match="needs the seen classes"):
        ClassifierNode("c", {"bank": str(tmp_path / "old.npz"), "calibration": 0.2}).setup()
    with pytest.raises(ConfigError, match=r"modalities \['audio'\] without a bank"):
        CrossModalClassifier("c", {"banks": {"neural": str(tmp_path / "b.npz")},
                                   "calibration": {"audio": 0.1}}).setup()
