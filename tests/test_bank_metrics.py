"""Retrieval metric, prototype bank and classifier node on hand-made embeddings."""
import numpy as np
import pytest

from rram_lsm.nodes.classifier.bank import UNKNOWN, PrototypeBank
from rram_lsm.nodes.classifier.metrics import (confusion_matrix, cross_modal_retrieval, pool_pairs,
                                      prototype_accuracy, retrieval_chance, retrieval_top1)
from rram_lsm.nodes.classifier.node import ClassifierNode
from rram_lsm.stream.node import ConfigError
from rram_lsm.stream.packets import Origin, Packet


def _deg(angle):
    r = np.deg2rad(angle)
    return np.array([np.cos(r), np.sin(r)])


def test_retrieval_top1_by_hand():
    # Gallery: class 1 at 0°, class 2 at 90°, class 3 at 180°.
    gallery = np.stack([_deg(0), _deg(90), _deg(180)])
    g_labels = np.array([1, 2, 3])
    # Queries: 10° -> class 1 (right), 80° -> class 2 (right), 100° (labelled 3) -> 2 (wrong),
    # 200° (scaled by 5: cosine ignores length) -> class 3 (right).
    queries = np.stack([_deg(10), _deg(80), _deg(100), 5 * _deg(200)])
    q_labels = np.array([1, 2, 3, 3])
    assert retrieval_top1(queries, q_labels, gallery, g_labels) == 0.75
    assert retrieval_chance(q_labels, g_labels) == pytest.approx(1 / 3)
    # Unbalanced pools: chance is Σ_c P_q(c) P_g(c), not 1/n_classes.
    assert retrieval_chance([1, 1, 1, 2], [1, 2]) == pytest.approx(0.75 * 0.5 + 0.25 * 0.5)
    assert retrieval_chance([1, 1], [1, 1, 2, 2]) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="dimension"):
        retrieval_top1(queries, q_labels, np.zeros((3, 4)), g_labels)


def test_pools_are_separate_and_both_directions():
    # Modality A: classes 1, 2 (seen) and 8, 9 (unseen); B has an extra class-1 sample.
    la = np.array([1, 2, 8, 9])
    lb = np.array([1, 1, 2, 8, 9])
    ea = np.stack([_deg(0), _deg(90), _deg(0), _deg(10)])          # 8 and 9 collide
    eb = np.stack([_deg(5), _deg(170), _deg(85), _deg(2), _deg(120)])
    ia, ib = pool_pairs(la, lb, [1, 2])
    assert ia.tolist() == [0, 1] and ib.tolist() == [0, 2]          # no cycling in test pools
    rep = cross_modal_retrieval(ea, la, eb, lb, seen=[1, 2], unseen=[8, 9])
    assert rep.seen.n_pairs == 2 and rep.seen.a_to_b == 1.0 and rep.seen.b_to_a == 1.0
    # Unseen pool: A8 (0°) -> B8 (2°) right; A9 (10°) -> B8 wrong; B8 -> A8 right (2° vs 0°),
    # B9 (120°) -> A9 (10°) is closer than A8 (0°): right.
    assert rep.unseen.a_to_b == 0.5 and rep.unseen.b_to_a == 1.0
    assert rep.seen.chance == 0.5 and rep.unseen.chance == 0.5
    assert rep.as_dict()["unseen"]["classes"] == [8, 9]


def test_prototype_accuracy_and_confusion():
    refs = np.stack([_deg(0), _deg(20), _deg(90), _deg(100)])
    ref_labels = np.array([1, 1, 2, 2])                               # prototypes at 10°, 95°
    queries = np.stack([_deg(5), _deg(60), _deg(40), _deg(99)])
    q_labels = np.array([1, 1, 2, 2])                                 # 60° -> 2, 40° -> 1
    score = prototype_accuracy(queries, q_labels, refs, ref_labels, [1, 2])
    assert score.accuracy == 0.5 and score.chance == 0.5
    assert score.confusion == [[1, 1], [1, 1]]
    m = confusion_matrix([1, 1, 2], [1, UNKNOWN, 2], [1, 2], with_unknown=True)
    assert m.tolist() == [[1, 0, 1], [0, 1, 0]]
    with pytest.raises(ValueError, match="with_unknown"):
        confusion_matrix([1], [UNKNOWN], [1, 2])


def test_bank_mean_prototypes_topk_and_reject():
    emb = np.stack([_deg(0), _deg(20), _deg(90), _deg(100), _deg(180)])
    bank = PrototypeBank.from_embeddings(emb, [1, 1, 2, 2, 3], threshold=0.9)
    assert bank.classes == [1, 2, 3] and bank.chance == pytest.approx(1 / 3)
    np.testing.assert_allclose(bank.prototype(1), _deg(10), atol=1e-6)
    (p,) = bank.classify(_deg(12), topk=2)
    assert p.label == 1 and p.topk == [1, 2]
    assert p.scores[0] == pytest.approx(np.cos(np.deg2rad(2)), abs=1e-6)
    assert p.scores[1] == pytest.approx(np.cos(np.deg2rad(83)), abs=1e-6)
    # 135° is 40-45° from every prototype: cosine < 0.9 -> unknown, top-k still reported.
    (far,) = bank.classify(_deg(140), topk=3)
    assert far.label == UNKNOWN and far.topk[0] == 3 and len(far.scores) == 3
    # Add a class at run time: the far input is now recognised.
    bank.add_class(4, [_deg(138), _deg(142)])
    assert bank.predict(_deg(140)).tolist() == [4] and bank.chance == 0.25
    bank.remove_class(4)
    assert bank.predict(_deg(140)).tolist() == [UNKNOWN]
    with pytest.raises(KeyError, match="class 4"):
        bank.remove_class(4)
    with pytest.raises(ValueError, match="dimension 2"):
        bank.classify(np.zeros(3))


def test_bank_exemplars_and_files(tmp_path):
    emb = np.stack([_deg(0), _deg(60), _deg(90), _deg(180)])
    bank = PrototypeBank.from_embeddings(emb, [1, 1, 2, 2], mode="exemplars")
    # Class 1 refs at 0° and 60° (mean 30°), class 2 at 90° and 180° (mean 135°).  A query
    # at 80° is 10° from the exemplar at 90° (class 2) but 50° vs 55° from the means (class 1).
    assert bank.predict(_deg(80)).tolist() == [2]
    mean_bank = PrototypeBank.from_embeddings(emb, [1, 1, 2, 2])
    assert mean_bank.predict(_deg(80)).tolist() == [1]
    assert bank.n_references == 4 and mean_bank.n_references == 2
    small = PrototypeBank.from_embeddings(emb, [1, 1, 2, 2], mode="exemplars", k=1, seed=0)
    assert small.n_references == 2
    path = bank.save(tmp_path / "bank.npz")
    loaded = PrototypeBank.load(path, threshold=0.5)
    assert loaded.mode == "exemplars" and loaded.threshold == 0.5 and loaded.classes == [1, 2]
    np.testing.assert_array_equal(loaded.references(2), bank.references(2))
    with pytest.raises(ValueError, match="mode"):
        PrototypeBank(2, mode="median")


def _emb_packet(vec, label=None, sample=1):
    return Packet(kind="embedding", body=np.asarray([vec], np.float32), label=label,
                  sample=sample, origin=Origin("cochlea", 5, sample), origin_ns=999)


def test_classifier_node(tmp_path):
    emb = np.stack([_deg(0), _deg(90), _deg(180)])
    path = PrototypeBank.from_embeddings(emb, [1, 2, 3], modality="visual").save(
        tmp_path / "bank.npz")
    node = ClassifierNode("clf", {"bank": str(path), "topk": 2, "threshold": 0.8})
    node.setup()
    (out,) = node.process(_emb_packet(_deg(85), label=2))
    assert out.kind == "prediction" and out.meta["pred"] == 2 and out.meta["label"] == 2
    assert out.meta["topk"] == [2, 1] and out.body.shape == (1, 2)
    assert out.body.dtype == np.float32 and out.meta["chance"] == pytest.approx(1 / 3)
    assert out.origin == Origin("cochlea", 5, 1) and out.origin_ns == 999
    assert node.ops["macs"] == (3 + 1) * 2  # normalise the query, then 3 prototypes
    # Far from every prototype: unknown.
    (far,) = node.process(_emb_packet(_deg(-90)))
    assert far.meta["pred"] == UNKNOWN
    # A class added at run time through a control packet is then predicted.
    node.process(Packet(kind="control", control="bank",
                        meta={"op": "add_class", "label": 7,
                              "embeddings": [_deg(-88).tolist(), _deg(-92).tolist()]}))
    (new,) = node.process(_emb_packet(_deg(-90)))
    assert new.meta["pred"] == 7 and node.bank.chance == 0.25
    node.process(Packet(kind="control", control="bank",
                        meta={"op": "remove_class", "label": 7}))
    assert node.bank.classes == [1, 2, 3]
    # Wrong dimension: a clear error, and the node keeps running.
    with pytest.raises(ValueError, match="bank's dimension 2"):
        node.process(Packet(kind="embedding", body=np.zeros((1, 64), np.float32)))
    with pytest.raises(ValueError, match="op 'rename'"):
        node.process(Packet(kind="control", control="bank", meta={"op": "rename"}))
    (ok,) = node.process(_emb_packet(_deg(1), label=1))
    assert ok.meta["pred"] == 1
    assert list(node.process(Packet(kind="control", control="end_of_stream"))) == []


def test_classifier_node_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="'bank'"):
        ClassifierNode("c", {}).setup()
    with pytest.raises(ConfigError, match="does not exist"):
        ClassifierNode("c", {"bank": str(tmp_path / "none.npz")}).setup()
    with pytest.raises(ConfigError, match="topk"):
        ClassifierNode("c", {"dim": 4, "topk": 0}).setup()
    node = ClassifierNode("c", {"dim": 2})                  # empty bank, filled at run time
    node.setup()
    node.process(Packet(kind="control", control="bank",
                        meta={"op": "add_examples", "label": 5, "embeddings": [[1.0, 0.0]]}))
    (out,) = node.process(_emb_packet([0.9, 0.1]))
    assert out.meta["pred"] == 5


def test_evaluate_embeddings_reports_both_metrics_with_chance():
    from rram_lsm.nodes.classifier.metrics import evaluate_embeddings
    # Class c lives at angle 40·c degrees in both modalities; train (0) and test (2) splits.
    labels = np.repeat([1, 2, 3, 8, 9], 2)
    split = np.tile([0, 2], 5)
    emb_a = np.stack([_deg(40 * c + 3) for c in labels])
    emb_b = np.stack([_deg(40 * c - 3) for c in labels])
    emb_b[(labels == 9) & (split == 2)] = _deg(40 * 8)   # B's test sample of 9 looks like 8
    rep = evaluate_embeddings(emb_a, labels, split, emb_b, labels, split,
                              seen=[1, 2, 3], unseen=[8, 9])
    assert rep["retrieval"]["seen"]["a_to_b"] == 1.0
    assert rep["retrieval"]["unseen"]["b_to_a"] == 0.5      # B's 9 retrieves A's 8
    assert rep["retrieval"]["unseen"]["chance"] == 0.5
    proto = rep["prototype"]
    assert proto["seen"]["a_to_b"]["accuracy"] == 1.0
    assert proto["seen"]["a_to_b"]["chance"] == pytest.approx(1 / 3)
    assert proto["unseen"]["b_to_a"]["accuracy"] == 0.5
    assert proto["all"]["b_to_a"]["chance"] == pytest.approx(1 / 5)
    assert proto["all"]["b_to_a"]["confusion"][4][3] == 1   # the 9 taken for an 8
