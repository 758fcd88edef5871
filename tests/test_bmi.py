"""The BMI protocol on the tiny letters (experiments/bmi.py through `rram-lsm eval --pairs
neural-visual-letters`), and top-k retrieval with its chance."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from rram_lsm.experiments import bmi
from rram_lsm.launch.cli import main
from rram_lsm.nodes.classifier.metrics import (retrieval_top1, retrieval_topk,
                                               retrieval_topk_chance)

NEURONS = "256"      # small reservoirs keep the tiny run short; the protocol is unchanged


def test_topk_by_hand_and_its_chance():
    g = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    lg = np.array([1, 2, 2, 1])
    q = np.array([[1.0, 0.05]])
    assert retrieval_topk(q, np.array([2]), g, lg, 1) == 0.0        # nearest is class 1
    assert retrieval_topk(q, np.array([2]), g, lg, 2) == 1.0        # second nearest is class 2
    rng = np.random.default_rng(0)
    qs, gs = rng.normal(size=(30, 4)), rng.normal(size=(40, 4))
    lq, lgs = rng.integers(1, 5, 30), rng.integers(1, 5, 40)
    assert retrieval_topk(qs, lq, gs, lgs, 1) == retrieval_top1(qs, lq, gs, lgs)
    tops = [retrieval_topk(qs, lq, gs, lgs, k) for k in (1, 2, 5, 40)]
    assert tops == sorted(tops) and tops[-1] == 1.0
    # 2 of 4 gallery items have the class: k=1 -> 1/2, k=2 -> 1 - C(2,2)/C(4,2) = 5/6
    lab = np.array([1, 1, 2, 2])
    assert retrieval_topk_chance(lab, lab, 1) == pytest.approx(0.5)
    assert retrieval_topk_chance(lab, lab, 2) == pytest.approx(5 / 6)
    assert retrieval_topk_chance(lab, lab, 3) == 1.0
    pool = np.repeat([1, 2, 3, 4], 16)                              # the full-size unseen pool
    assert retrieval_topk_chance(pool, pool, 1) == pytest.approx(0.25)
    assert retrieval_topk_chance(pool, pool, 5) == pytest.approx(
        1 - math.comb(48, 5) / math.comb(64, 5))
    with pytest.raises(ValueError, match="k >= 1"):
        retrieval_topk(qs, lq, gs, lgs, 0)


def test_eval_letters_end_to_end(tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["eval", "--pairs", "neural-visual-letters", "--size", "tiny", "--splits", "2",
                 "--seeds", "1", "--train-seeds", "1", "--epochs", "2",
                 "--neural-neurons", NEURONS, "--out", str(out)])
    assert code == 0, capsys.readouterr()
    res = json.loads((out / "results.json").read_text())
    md = (out / "results.md").read_text()
    for key in ("unseen_n2i_top1", "unseen_i2n_top1", "unseen_mean_top1", "unseen_mean_top5",
                "seen_n2i_top1", "seen_mean_top5"):
        s = res["summary"][key]
        assert 0 <= s["ci_low"] <= s["mean"] <= s["ci_high"] <= 1, key
        assert s["n_sets"] == 2 and s["n_seeds"] == 1 and s["method"] == "split_t"
    assert res["summary"]["unseen_n2i_top1"]["chance"] == pytest.approx(0.25)
    assert res["summary"]["seen_i2n_top1"]["chance"] == pytest.approx(1 / 22)
    for runs in [res["sweep"], *res["authors_by_batch"]]:
        for pool in ("seen", "unseen"):
            for d in ("n2i", "i2n"):
                t1 = np.asarray(runs["acc"][f"{pool}_{d}_top1"])
                t5 = np.asarray(runs["acc"][f"{pool}_{d}_top5"])
                assert np.all(t5 >= t1) and np.all((t1 >= 0) & (t1 <= 1))
    assert res["authors"]["sets"] == [[18, 19, 20, 21]] and len(res["authors"]["seeds"]) == 1
    assert res["batch_size"] in (128, 1024) and res["same_writer_pairs"] == 0
    assert {p["unseen"] for p in res["paper"]} >= {70.83} and "52.27" in md and "70.83" in md
    assert "chance" in md and "top-5" in md and "95% CI" in md
    assert "goal" in res and isinstance(res["goal"]["met_mean"], bool)
    g = res["gzsl"]                                  # GZSL on R S T U, both directions
    assert g["unseen"] == [18, 19, 20, 21] and len(g["seen"]) == 22 and len(g["runs"]) == 1
    assert g["chance"] == pytest.approx(1 / 26) and g["ausuc_chance"] == pytest.approx(1 / 176)
    for run in g["runs"]:
        assert not {c for f in run["pseudo_unseen"] for c in f} & set(g["unseen"])
        for d, query in (("a_to_b", "neural"), ("b_to_a", "image")):
            r = run[d]
            assert r["query"] == query and r["uncalibrated"]["gamma"] == 0.0
            assert r["calibrated"]["gamma"] == r["gamma"] and 0 <= r["ausuc"] <= 1
            for which in ("uncalibrated", "calibrated"):
                s_, u = r[which]["seen"], r[which]["unseen"]
                assert r[which]["h"] == pytest.approx(2 * s_ * u / (s_ + u) if s_ + u else 0.0)
    assert "Generalised zero-shot on R S T U" in md and "neural->image" in md
    assert "image->neural" in md and "AUSUC chance" in md


def test_unseen_letters_never_in_training_pairs():
    neural, image, writers = bmi.letters_data("tiny", neurons=int(NEURONS), log=lambda s: None)
    assert np.array_equal(neural.labels, image.labels) and np.array_equal(neural.split, image.split)
    assert np.all(writers["neural"] != writers["image"])
    test_writers = set(writers["neural"][neural.split == 2]) | set(writers["image"][image.split == 2])
    for unseen in [bmi.AUTHORS_SPLIT, *bmi.random_sets(5, seed=1)]:
        seen = [c for c in bmi.LETTERS if c not in unseen]
        rows = bmi.training_pairs(neural, image, seen)
        assert len(rows) == np.sum((neural.split == 0) & np.isin(neural.labels, seen))
        assert not set(neural.labels[rows]) & set(unseen)
        assert np.all(neural.split[rows] == 0)
        assert not (set(writers["neural"][rows]) | set(writers["image"][rows])) & test_writers
    sets = bmi.random_sets(20, seed=0)
    assert len(set(sets)) == 20 and bmi.AUTHORS_SPLIT not in sets
    assert all(len(s) == 4 and len(set(s)) == 4 for s in sets)


def test_bad_pairs_are_one_clear_line(capsys):
    assert main(["eval", "--pairs", "neural-visual-letters,audio-visual", "--size", "tiny"]) == 2
    err = capsys.readouterr().err
    assert "runs the BMI protocol alone" in err and "Traceback" not in err
    assert main(["eval", "--pairs", "neural-visual-letters", "--splits", "1"]) == 2
    assert "random 4-letter sets" in capsys.readouterr().err


def test_gzsl_constant_is_chosen_without_unseen_letters():
    """The calibration never sees an unseen letter: with every unseen row removed from both
    modalities the fold heads and the chosen constants are the same."""
    import dataclasses

    from rram_lsm.experiments import gzsl_eval
    from rram_lsm.nodes.projection.train_config import TrainConfig

    neural, image, _ = bmi.letters_data("tiny", neurons=int(NEURONS), log=lambda s: None)
    unseen = bmi.AUTHORS_SPLIT
    seen = tuple(c for c in bmi.LETTERS if c not in unseen)
    heads = TrainConfig(pd=16, loss="supcon", temperature=0.5, batch_size=128, epochs=2,
                        select_on="val_seen", threads=1, eval_max_per_class=None, seed=0,
                        seen=seen, unseen=unseen)
    keep = ~np.isin(neural.labels, unseen)
    cut = [dataclasses.replace(m, features=m.features[keep], labels=m.labels[keep],
                               split=m.split[keep]) for m in (neural, image)]
    full = gzsl_eval.calibrations(neural, image, heads, [0], n_folds=2)
    seen_only = gzsl_eval.calibrations(*cut, heads, [0], n_folds=2)
    assert full[0][0] == seen_only[0][0]
    assert not {c for f in full[0][0] for c in f} & set(unseen)
    for d in gzsl_eval.DIRECTIONS:
        assert full[0][1][d].gamma == pytest.approx(seen_only[0][1][d].gamma, abs=1e-6)
        assert full[0][1][d].h == pytest.approx(seen_only[0][1][d].h, abs=1e-6)
