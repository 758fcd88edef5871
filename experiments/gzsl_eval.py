"""Generalised zero-shot (GZSL) offline: seen and unseen prototypes compete, with and without
calibrated stacking, the constant chosen on validation without touching an unseen class.

For one pair and one training seed:

1. **Pseudo-unseen folds** (``gzsl.pseudo_unseen_splits``): ``n_folds`` sets of seen classes,
   as many as the true unseen ones, each held out from a run of heads trained on the remaining
   seen classes only (the same recipe, validation-selected epoch; all folds of all seeds are
   trained together, vectorised).  A fold scores the *validation* queries of the seen classes
   against a bank of the other modality's *training* embeddings of the seen classes.
2. ``gzsl.choose_calibration`` picks the gamma maximising the folds' mean H, per direction
   (each query modality has its own bank, hence its own constant).
3. The heads trained on every seen class score the *test* queries of all classes against a
   bank of every class (the demo's bank: training embeddings of the other modality), and
   ``gzsl.report`` gives seen, unseen and H at gamma 0 and at the chosen gamma, and AUSUC.

Scores come from ``PrototypeBank.scores`` (the classifier node's own code), so the labels are
the ones the live classifier gives for the same embeddings.  Chance: 1/|classes| for seen,
unseen and H (a uniform guess among all the bank's classes); for AUSUC, ``1/(2·|S|·|U|)``:
scores independent of the class put every operating point on the line from (0, 1/|S|) to
(1/|U|, 0).
"""
from __future__ import annotations

import dataclasses
import time
from typing import Sequence

import numpy as np

from rram_lsm.nodes.classifier import gzsl
from rram_lsm.nodes.classifier.bank import PrototypeBank
from rram_lsm.nodes.projection.train import TEST, TRAIN, VAL, ModalityData
from rram_lsm.nodes.projection.train_config import TrainConfig

from .results import GzslDirection, GzslResult, GzslRun
from .runs import train_runs

DIRECTIONS = ("a_to_b", "b_to_a")


def bank_scores(heads: dict, query: ModalityData, ref: ModalityData, split: int,
                query_classes: Sequence[int], bank_classes: Sequence[int]
                ) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """``(scores, labels, classes)``: ``query``'s ``split`` rows of ``query_classes`` through
    its head, scored by a bank of ``ref``'s training embeddings of ``bank_classes`` (mean
    prototypes, as the demo's bank)."""
    rows, refs = query.rows(split, query_classes), ref.rows(TRAIN, bank_classes)
    bank = PrototypeBank.from_embeddings(heads[ref.name].forward(ref.features[refs]),
                                         ref.labels[refs], modality=ref.name)
    scores, classes = bank.scores(heads[query.name].forward(query.features[rows]))
    return scores, query.labels[rows], [int(c) for c in classes]


def _sides(a: ModalityData, b: ModalityData, direction: str):
    return (a, b) if direction == "a_to_b" else (b, a)


def fold_configs(heads: TrainConfig, seeds: Sequence[int], n_folds: int
                 ) -> list[tuple[int, list[int], TrainConfig]]:
    """``(seed, pseudo_unseen, config)`` of every fold run: heads trained on the seen classes
    minus the fold's pseudo-unseen ones (which become the run's validation 'unseen' pool)."""
    seen = sorted(int(c) for c in heads.seen)
    out = []
    for seed in seeds:
        for pseudo in gzsl.pseudo_unseen_splits(seen, len(heads.unseen), n_folds, int(seed)):
            keep = tuple(c for c in seen if c not in pseudo)
            out.append((int(seed), pseudo, dataclasses.replace(
                heads, seed=int(seed), seen=keep, unseen=tuple(pseudo))))
    return out


def calibrations(a: ModalityData, b: ModalityData, heads: TrainConfig, seeds: Sequence[int],
                 n_folds: int, eval_every: int = 1
                 ) -> dict[int, tuple[list[list[int]], dict[str, gzsl.Calibration]]]:
    """Per seed: the pseudo-unseen folds and, per direction, the validation-chosen constant
    (``eval_every``: the fold runs' epoch-selection interval, as their heads' own)."""
    jobs = fold_configs(heads, seeds, n_folds)
    trained = train_runs(a, b, [c for _, _, c in jobs], chunk=max(1, len(jobs)),
                         eval_every=eval_every)
    seen = sorted(int(c) for c in heads.seen)
    folds: dict[int, dict[str, list[gzsl.ValidationFold]]] = {}
    pseudo_of: dict[int, list[list[int]]] = {}
    for (seed, pseudo, _), r in zip(jobs, trained):
        pseudo_of.setdefault(seed, []).append(pseudo)
        for d in DIRECTIONS:
            q, ref = _sides(a, b, d)
            scores, labels, classes = bank_scores(r.heads, q, ref, VAL, seen, seen)
            folds.setdefault(seed, {}).setdefault(d, []).append(
                gzsl.ValidationFold(scores, labels, classes, pseudo))
    return {s: (pseudo_of[s], {d: gzsl.choose_calibration(f[d], heads.unseen)
                               for d in DIRECTIONS})
            for s, f in folds.items()}


def ausuc_chance(n_seen: int, n_unseen: int) -> float:
    """AUSUC of scores independent of the class: the line (0, 1/|S|) -> (1/|U|, 0)."""
    return 1.0 / (2.0 * n_seen * n_unseen)


def score_direction(heads: dict, a: ModalityData, b: ModalityData, direction: str,
                   seen: Sequence[int], unseen: Sequence[int],
                   cal: gzsl.Calibration) -> GzslDirection:
    """Test-set GZSL of one direction at gamma 0 and at the chosen gamma."""
    q, ref = _sides(a, b, direction)
    classes = sorted(int(c) for c in (*seen, *unseen))
    scores, labels, order = bank_scores(heads, q, ref, TEST, classes, classes)
    rep = gzsl.report(scores, labels, order, seen, unseen, cal.gamma)
    return GzslDirection(
        query=q.name, bank=ref.name, gamma=cal.gamma,
        validation={"h": cal.h, "seen": cal.seen, "unseen": cal.unseen},
        uncalibrated=gzsl.GzslScore(**rep["uncalibrated"]),
        calibrated=gzsl.GzslScore(**rep["calibrated"]),
        ausuc=rep["ausuc"], chance=rep["chance"],
        ausuc_chance=ausuc_chance(len(seen), len(unseen)),
        n_seen=rep["n_seen"], n_unseen=rep["n_unseen"])


def gzsl_experiment(a: ModalityData, b: ModalityData, heads: TrainConfig, trained: list,
                    n_folds: int = 3, pair: str = "", device: str = "",
                    eval_every: int = 1) -> GzslResult:
    """GZSL of a pair's trained heads (``trained``: one ``TrainResult`` per seed, trained on
    ``heads.seen``), each seed's constant chosen on its own pseudo-unseen folds."""
    start = time.perf_counter()
    seeds = [int(r.config.seed) for r in trained]
    cals = calibrations(a, b, heads, seeds, n_folds, eval_every)
    seen, unseen = sorted(map(int, heads.seen)), sorted(map(int, heads.unseen))
    runs = []
    for r in trained:
        pseudo, by_dir = cals[int(r.config.seed)]
        runs.append(GzslRun(int(r.config.seed), pseudo, **{
            d: score_direction(r.heads, a, b, d, seen, unseen, by_dir[d]) for d in DIRECTIONS}))
    return GzslResult(pair or f"{a.name}-{b.name}", device, seen, unseen, n_folds,
                      time.perf_counter() - start, runs)
