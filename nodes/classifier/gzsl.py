"""Generalised zero-shot (GZSL) decisions and metrics: calibrated stacking (numpy only).

In generalised zero-shot, seen and unseen prototypes compete for every query, and heads
trained on the seen classes pull queries toward a seen prototype.  Calibrated stacking (Chao,
Changpinyo, Gong & Sha, ECCV 2016) subtracts one constant ``gamma`` from every seen-class
score before the argmax: gamma 0 is the plain classifier, a large gamma sends everything to
the unseen classes, a very negative one everything to the seen classes.

Scores are the cosine similarities of :meth:`PrototypeBank.scores` (``(n, n_classes)`` float32
with the bank's class order).  :func:`decide` is the one decision rule: the classifier node's
bank calls it, and so does :func:`predict` offline, so both give bit-identical labels on the
same embeddings (the bank's cosine is computed row by row, so batching does not change it).

Accuracies are **per-class means** (the mean, over the classes of a pool that have queries, of
each class's top-1 accuracy, as in Chao et al. and Xian et al.'s GZSL benchmark), so a frequent
class does not dominate; ``per_class=False`` gives the per-sample rate instead (what live
counts show).
*seen* is the accuracy on queries of seen classes and *unseen* on queries of unseen classes,
both classified among ALL the bank's classes; ``H = 2·seen·unseen / (seen + unseen)``.
A gamma that sends everything to the unseen classes has unseen up to 100% and seen 0, so
H = 0: report H and both accuracies, never unseen alone.

The seen-unseen curve sweeps gamma over every operating point, from all-seen (unseen 0) to
all-unseen (seen 0); AUSUC is its trapezoid area with unseen accuracy on x (1 for a perfect
classifier).  A query flips from its best seen class to its best unseen class when gamma
crosses ``margin = best seen score - best unseen score``, so the curve is exact at gammas
halfway between consecutive distinct margins (up to float32 rounding of margins closer than
a few ulps).

The constant is chosen on validation without touching an unseen class
(:func:`choose_calibration`): some seen classes play the unseen ones.  A faithful protocol
needs heads trained WITHOUT those pseudo-unseen classes (heads trained on every seen class
would make the pseudo-unseen classes look seen and choose too small a gamma), so the caller
trains such heads and passes their validation scores as :class:`ValidationFold`s; this module
only checks that no true unseen class appears and picks the gamma maximising the mean H.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

UNKNOWN = -1


# --------------------------------------------------------------------- decision rule
def seen_mask(classes: Sequence[int], seen: Sequence[int] | None) -> np.ndarray:
    """Boolean mask over the score columns: True where the column's class is seen."""
    return np.isin(np.asarray(classes, dtype=int), np.asarray(list(seen or ()), dtype=int))


def calibration_offset(classes: Sequence[int], seen: Sequence[int] | None, gamma: float) -> np.ndarray:
    """The float32 row subtracted from the scores: ``gamma`` at seen-class columns, else 0."""
    return np.where(seen_mask(classes, seen), np.float32(gamma), np.float32(0.0)).astype(np.float32)


def calibrate(scores: np.ndarray, classes: Sequence[int], seen: Sequence[int] | None,
              gamma: float, offset: np.ndarray | None = None) -> np.ndarray:
    """Scores with ``gamma`` subtracted from the seen-class columns (float32, a new array);
    ``offset``: that row, precomputed (:func:`calibration_offset`, a bank keeps it)."""
    scores = np.asarray(scores, dtype=np.float32)
    return scores - (calibration_offset(classes, seen, gamma) if offset is None else offset)


def decide(scores: np.ndarray, classes: Sequence[int], seen: Sequence[int] | None,
           gamma: float = 0.0, k: int = 1, threshold: float | None = None,
           offset: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Calibrated stacking: ``(order, labels, calibrated)`` for each query row.

    ``order`` holds the column indices of the top-``k`` calibrated scores (a stable sort, so
    ties go to the earlier column, i.e. the smaller class label of the bank's sorted order);
    ``labels`` the top-1 class, or -1 where the top class's *cosine* (uncalibrated: the
    threshold is a cosine) is below ``threshold``.
    """
    classes = np.asarray(classes, dtype=int)
    cal = calibrate(scores, classes, seen, gamma, offset)
    k = max(1, min(int(k), cal.shape[1]))
    order = np.argsort(-cal, axis=1, kind="stable")[:, :k]
    labels = classes[order[:, 0]]
    if threshold is not None:
        best = np.take_along_axis(np.asarray(scores, dtype=np.float32), order[:, :1], 1)[:, 0]
        labels = np.where(best.astype(np.float64) < float(threshold), UNKNOWN, labels)
    return order, labels, cal


def predict(scores: np.ndarray, classes: Sequence[int], seen: Sequence[int] | None,
            gamma: float = 0.0, threshold: float | None = None) -> np.ndarray:
    """Top-1 labels by calibrated stacking: exactly what the classifier node predicts."""
    return decide(scores, classes, seen, gamma, 1, threshold)[1]


# --------------------------------------------------------------------- metrics
def harmonic_mean(seen: float, unseen: float) -> float:
    """H = 2·S·U / (S + U); 0 when either is 0."""
    return 0.0 if seen <= 0 or unseen <= 0 else 2.0 * seen * unseen / (seen + unseen)


def _weights(labels: np.ndarray, pool: np.ndarray, per_class: bool) -> np.ndarray:
    """Per-query weights whose sum over a pool's queries is 1 (0 outside the pool)."""
    inside = np.isin(labels, pool)
    w = np.zeros(len(labels))
    if not inside.any():
        return w
    if per_class:
        present, counts = np.unique(labels[inside], return_counts=True)
        n_of = dict(zip(present.tolist(), counts.tolist()))
        w[inside] = [1.0 / (n_of[c] * len(present)) for c in labels[inside].tolist()]
    else:
        w[inside] = 1.0 / inside.sum()
    return w


def accuracy(labels: np.ndarray, preds: np.ndarray, pool: Sequence[int],
             per_class: bool = True) -> float:
    """Top-1 accuracy of the queries whose label is in ``pool`` (per-class mean by default)."""
    labels, preds = np.asarray(labels, dtype=int), np.asarray(preds, dtype=int)
    w = _weights(labels, np.asarray(list(pool), dtype=int), per_class)
    if not w.any():
        raise ValueError(f"no query of the classes {sorted(pool)}: accuracy is undefined")
    return float(np.sum(w * (labels == preds)))


@dataclass(frozen=True)
class GzslScore:
    """Seen and unseen accuracy (among all classes) and their harmonic mean, at one gamma."""

    gamma: float
    seen: float
    unseen: float
    h: float

    def as_dict(self) -> dict:
        return {"gamma": self.gamma, "seen": self.seen, "unseen": self.unseen, "h": self.h}


def _check_split(scores, labels, classes, seen, unseen):
    scores = np.asarray(scores, dtype=np.float32)
    labels, classes = np.asarray(labels, dtype=int), np.asarray(classes, dtype=int)
    seen, unseen = sorted(int(c) for c in seen), sorted(int(c) for c in unseen)
    if scores.ndim != 2 or scores.shape != (len(labels), len(classes)):
        raise ValueError(f"scores of shape {scores.shape} do not match {len(labels)} labels "
                         f"x {len(classes)} classes")
    if set(seen) & set(unseen):
        raise ValueError(f"classes {sorted(set(seen) & set(unseen))} are both seen and unseen")
    missing = sorted(set(seen + unseen) - set(classes.tolist()))
    if missing:
        raise ValueError(f"classes {missing} have no prototype among the scores' classes "
                         f"{classes.tolist()}")
    stray = sorted(set(labels.tolist()) - set(seen + unseen))
    if stray:
        raise ValueError(f"query labels {stray} are neither seen {seen} nor unseen {unseen}")
    for name, pool in (("seen", seen), ("unseen", unseen)):
        if not np.isin(labels, pool).any():
            raise ValueError(f"no query of a {name} class {pool}: GZSL needs both pools")
    return scores, labels, classes, seen, unseen


def evaluate(scores: np.ndarray, labels: np.ndarray, classes: Sequence[int],
             seen: Sequence[int], unseen: Sequence[int], gamma: float = 0.0,
             per_class: bool = True) -> GzslScore:
    """Seen, unseen and H of calibrated stacking at ``gamma`` (through :func:`predict`)."""
    scores, labels, classes, seen, unseen = _check_split(scores, labels, classes, seen, unseen)
    preds = predict(scores, classes, seen, gamma)
    s = accuracy(labels, preds, seen, per_class)
    u = accuracy(labels, preds, unseen, per_class)
    return GzslScore(float(gamma), s, u, harmonic_mean(s, u))


@dataclass(frozen=True)
class Curve:
    """The seen-unseen curve: operating points in increasing gamma (seen falls, unseen rises)."""

    gamma: np.ndarray
    seen: np.ndarray
    unseen: np.ndarray

    @property
    def h(self) -> np.ndarray:
        s, u = self.seen, self.unseen
        return np.where((s > 0) & (u > 0), 2 * s * u / np.maximum(s + u, 1e-300), 0.0)

    @property
    def ausuc(self) -> float:
        """Area under seen accuracy over unseen accuracy (trapezoids; 1 = perfect)."""
        return float(np.trapezoid(self.seen, self.unseen))


@dataclass(frozen=True)
class _Margins:
    """Per query: margin (best seen - best unseen score), and the weight it adds to the seen
    accuracy while gamma < margin, or to the unseen accuracy while gamma > margin."""

    margin: np.ndarray
    seen_gain: np.ndarray
    unseen_gain: np.ndarray

    def at(self, gammas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(seen, unseen) accuracy at each of the sorted ``gammas`` (none equal to a margin)."""
        below = np.searchsorted(gammas, self.margin, side="left")   # gammas < margin
        n = len(gammas)
        s = np.bincount(below, self.seen_gain, n + 1)
        u = np.bincount(below, self.unseen_gain, n + 1)
        seen = np.cumsum(s[::-1])[::-1][1:]              # queries with more gammas below
        unseen = np.cumsum(u)[:n]                        # queries whose margin < gamma_k
        return seen, unseen

    def grid(self) -> np.ndarray:
        """Every operating point: halfway between distinct margins, and beyond both ends."""
        m = np.unique(self.margin.astype(np.float64))
        return np.concatenate([[m[0] - 1.0], (m[:-1] + m[1:]) / 2, [m[-1] + 1.0]])


def _margins(scores, labels, classes, seen, unseen, per_class) -> _Margins:
    is_seen = seen_mask(classes, seen)
    s_cols, u_cols = np.flatnonzero(is_seen), np.flatnonzero(~is_seen)
    # Best column within each group: argmax takes the first maximum, as the stable sort does.
    best_s = s_cols[np.argmax(scores[:, s_cols], axis=1)]
    best_u = u_cols[np.argmax(scores[:, u_cols], axis=1)]
    rows = np.arange(len(labels))
    margin = scores[rows, best_s].astype(np.float64) - scores[rows, best_u].astype(np.float64)
    w_s = _weights(labels, np.asarray(seen), per_class)
    w_u = _weights(labels, np.asarray(unseen), per_class)
    return _Margins(margin, w_s * (classes[best_s] == labels), w_u * (classes[best_u] == labels))


def seen_unseen_curve(scores: np.ndarray, labels: np.ndarray, classes: Sequence[int],
                      seen: Sequence[int], unseen: Sequence[int],
                      per_class: bool = True) -> Curve:
    """Every operating point of calibrated stacking, all-seen to all-unseen (Chao et al.)."""
    scores, labels, classes, seen, unseen = _check_split(scores, labels, classes, seen, unseen)
    m = _margins(scores, labels, classes, seen, unseen, per_class)
    gammas = m.grid()
    s, u = m.at(gammas)
    return Curve(gammas, s, u)


def ausuc(scores: np.ndarray, labels: np.ndarray, classes: Sequence[int],
          seen: Sequence[int], unseen: Sequence[int], per_class: bool = True) -> float:
    """Area under the seen-unseen curve (1 for a perfect classifier)."""
    return seen_unseen_curve(scores, labels, classes, seen, unseen, per_class).ausuc


def report(scores: np.ndarray, labels: np.ndarray, classes: Sequence[int],
           seen: Sequence[int], unseen: Sequence[int], gamma: float,
           per_class: bool = True) -> dict:
    """The offline GZSL row of one pair: without and with calibration, AUSUC and chance."""
    classes = [int(c) for c in classes]
    curve = seen_unseen_curve(scores, labels, classes, seen, unseen, per_class)
    return {"uncalibrated": evaluate(scores, labels, classes, seen, unseen, 0.0,
                                     per_class).as_dict(),
            "calibrated": evaluate(scores, labels, classes, seen, unseen, gamma,
                                   per_class).as_dict(),
            "ausuc": curve.ausuc, "chance": 1.0 / len(classes),
            "accuracy": "per-class mean" if per_class else "per sample",
            "classes": classes, "seen": sorted(int(c) for c in seen),
            "unseen": sorted(int(c) for c in unseen),
            "n_seen": int(np.isin(labels, list(seen)).sum()),
            "n_unseen": int(np.isin(labels, list(unseen)).sum())}


# --------------------------------------------------------------------- choosing gamma
@dataclass(frozen=True)
class ValidationFold:
    """Validation scores of one pseudo-unseen split, made without any unseen class.

    ``scores`` ``(n, len(classes))``: validation queries of seen classes against a bank of
    seen-class prototypes, through heads trained WITHOUT ``pseudo_unseen`` (which stand in
    for the unseen classes); ``labels`` the queries' classes.
    """

    scores: np.ndarray
    labels: np.ndarray
    classes: Sequence[int]
    pseudo_unseen: Sequence[int]


@dataclass(frozen=True)
class Calibration:
    """The chosen gamma and the mean validation seen / unseen / H it gives over the folds."""

    gamma: float
    h: float
    seen: float
    unseen: float
    folds: list[GzslScore] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"gamma": self.gamma, "h": self.h, "seen": self.seen, "unseen": self.unseen,
                "folds": [f.as_dict() for f in self.folds]}


def pseudo_unseen_splits(seen: Sequence[int], size: int, n_folds: int,
                         seed: int = 0) -> list[list[int]]:
    """``n_folds`` seeded sets of ``size`` seen classes to hold out as pseudo-unseen (disjoint
    while they fit: consecutive pieces of one permutation).  Use the true unseen count as
    ``size``, so validation has the test's seen/unseen proportions."""
    seen = sorted({int(c) for c in seen})
    if not 0 < int(size) < len(seen):
        raise ValueError(f"pseudo-unseen size {size} must be between 1 and {len(seen) - 1} "
                         f"(seen classes {seen})")
    if int(n_folds) <= 0:
        raise ValueError(f"n_folds must be > 0, got {n_folds}")
    perm = np.random.default_rng(seed).permutation(seen)
    return [sorted(int(perm[(i * size + j) % len(seen)]) for j in range(size))
            for i in range(int(n_folds))]


def _check_fold(i: int, fold: ValidationFold, unseen: set[int]):
    classes = [int(c) for c in fold.classes]
    labels = np.asarray(fold.labels, dtype=int)
    touched = sorted((set(classes) | set(labels.tolist())) & unseen)
    if touched:
        raise ValueError(f"validation fold {i} touches the unseen classes {touched}: choose "
                         f"the calibration on seen classes only (pseudo-unseen ones stand in)")
    pseudo = sorted(int(c) for c in fold.pseudo_unseen)
    if not pseudo or not set(pseudo) < set(classes):
        raise ValueError(f"validation fold {i}: pseudo-unseen classes {pseudo} must be a "
                         f"non-empty proper subset of its classes {classes}")
    pseudo_seen = sorted(set(classes) - set(pseudo))
    scores, labels, classes, s, u = _check_split(fold.scores, labels, classes, pseudo_seen,
                                                 pseudo)
    return scores, labels, classes, s, u


def choose_calibration(folds: Sequence[ValidationFold], unseen: Sequence[int],
                       per_class: bool = True) -> Calibration:
    """The gamma maximising the mean validation H over ``folds`` (pseudo-unseen splits).

    ``unseen`` names the true unseen classes only so that a fold touching one is refused
    (ValueError); their data is never read.  Ties in H go to the gamma nearest 0 (the least
    calibration).  The figures returned are the folds' own, via :func:`evaluate`.
    """
    if not folds:
        raise ValueError("no validation fold given")
    unseen = {int(c) for c in unseen}
    checked = [_check_fold(i, f, unseen) for i, f in enumerate(folds)]
    margins = [_margins(*c, per_class) for c in checked]
    grid = np.unique(np.concatenate([m.grid() for m in margins] + [[0.0]]))
    h = np.zeros(len(grid))
    for m in margins:
        s, u = m.at(grid)
        h += np.where((s > 0) & (u > 0), 2 * s * u / np.maximum(s + u, 1e-300), 0.0)
    h /= len(margins)
    best = np.flatnonzero(h >= h.max() - 1e-12)
    gamma = float(grid[best[np.argmin(np.abs(grid[best]))]])
    scores = [evaluate(*c, gamma=gamma, per_class=per_class) for c in checked]
    return Calibration(gamma, float(np.mean([f.h for f in scores])),
                       float(np.mean([f.seen for f in scores])),
                       float(np.mean([f.unseen for f in scores])), scores)
