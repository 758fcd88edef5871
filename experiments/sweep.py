"""Split-sweep statistics: zero-shot accuracy over many choices of unseen classes × seeds.

With only two unseen classes a single split is close to a coin flip, so the honest
zero-shot number is a mean over all C(9, 2) = 36 choices of two unseen digits from 1-9 and
several seeds, with a 95 % interval and the chance level beside it.

Intervals (``method``), always clipped to [0, 1] (an accuracy's mean cannot leave it):

* ``auto`` (default): ``class_jackknife`` when the splits are the complete enumeration of
  every choice of unseen classes from their classes, over at least 5 classes (the 36-split
  sweep, where each class sits in many splits); otherwise ``split_t`` (few or randomly drawn
  splits: the demo's reduced sweep, the BMI protocol's random 4-letter sets).  The summary
  records the method used.  At 3 random splits the jackknife covers only about 89 %.
* ``split_t``: Student's t-interval over per-split means (seeds averaged within a split),
  n_splits - 1 degrees of freedom, clipped to [0, 1].  Splits drawn at random are independent
  draws of the split population, so the spread *between* splits (which dominates: about
  52 % +- 13 % for audio-visual) is the sampling error of the mean over splits, and seed and
  test-sample noise are inside each split mean.  t, not z, keeps it right at 3 or 5 splits
  (tests/test_sweep_stats.py checks >= 93 % coverage at 3, 5 and 20 splits of Beta-distributed
  split rates).  A pooled binomial interval over all test queries ignores the between-split
  spread and covers far less.  When every split of a class set is enumerated and classes
  carry effects shared by the splits that hold them, split_t is too narrow (the same test
  file shows it); that is the jackknife's case.
* ``class_jackknife``: delete-one-class jackknife.  The 36 splits are not
  independent: every digit appears in 8 of them, so a digit that is easy (or hard) to
  recognise zero-shot moves 8 split means together.  Dropping, in turn, every split that
  contains class d gives leave-one-class-out means; their spread, (n-1)/n·Σ(θ₋d − θ̄)²,
  estimates the variance of the sweep mean treating classes (the real random units) and the
  seed/test-sample noise within splits correctly; the interval uses Student's t with
  n_classes - 1 degrees of freedom.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from scipy import stats

METHODS = ("auto", "class_jackknife", "split_t")


def unseen_splits(classes: Sequence[int] = tuple(range(1, 10)),
                  n_unseen: int = 2) -> list[tuple[int, ...]]:
    """Every choice of ``n_unseen`` held-out classes (36 for two of the digits 1-9)."""
    if not 0 < n_unseen < len(classes):
        raise ValueError(f"n_unseen must be between 1 and {len(classes) - 1}, got {n_unseen}")
    return [tuple(int(c) for c in s) for s in itertools.combinations(sorted(classes), n_unseen)]


def pick_splits(n: int | None, classes=tuple(range(1, 10))) -> list[tuple[int, ...]]:
    """``n`` of the 36 two-digit unseen splits, evenly spread (all when ``n`` is None)."""
    splits = unseen_splits(classes, 2)
    if n is None or n >= len(splits):
        return splits
    if n < 2:
        raise ValueError(f"a split sweep needs at least 2 splits, got {n}")
    idx = np.unique(np.linspace(0, len(splits) - 1, n).round().astype(int))
    return [splits[i] for i in idx]


def seen_for(unseen: Sequence[int], classes: Sequence[int] = tuple(range(1, 10))) -> tuple[int, ...]:
    return tuple(int(c) for c in classes if c not in set(unseen))


@dataclass
class SweepSummary:
    """Mean, spread and interval of a sweep, with chance."""

    mean: float
    std_runs: float          # spread of single runs (splits × seeds)
    std_splits: float        # spread of per-split means
    ci_low: float
    ci_high: float
    confidence: float
    method: str
    n_splits: int
    n_seeds: int
    chance: float

    def as_dict(self) -> dict:
        return asdict(self)

    def line(self, name: str = "") -> str:
        return (f"{name}{self.mean:.1%} ± {self.std_runs:.1%} (runs), "
                f"{self.confidence:.0%} CI [{self.ci_low:.1%}, {self.ci_high:.1%}] "
                f"({self.method}, {self.n_splits} splits × {self.n_seeds} seeds), "
                f"chance {self.chance:.1%}")


def summarise(acc: np.ndarray, splits: Sequence[Sequence[int]], chance: float | np.ndarray,
              method: str = "auto", confidence: float = 0.95) -> SweepSummary:
    """Summary of accuracies ``acc[split, seed]`` for the given unseen-class ``splits``.

    The interval is for the mean over splits; ``method`` (module docstring) picks how it is
    computed, and the returned ``method`` says which one was used.  Bounds lie in [0, 1].
    """
    acc = np.asarray(acc, dtype=np.float64)
    if acc.ndim == 1:
        acc = acc[:, None]
    if acc.ndim != 2 or len(acc) != len(splits):
        raise ValueError(f"acc must be (n_splits, n_seeds) with {len(splits)} splits, "
                         f"got shape {acc.shape}")
    if method not in METHODS:
        raise ValueError(f"interval method {method!r} is not one of {METHODS}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if np.isnan(acc).any():
        raise ValueError("acc contains NaN: every split × seed needs a result")
    if method == "auto":
        method = "class_jackknife" if _is_complete_enumeration(splits) else "split_t"
    split_means = acc.mean(axis=1)
    mean = float(split_means.mean())
    q = 0.5 + confidence / 2
    if method == "split_t":
        half = _split_t_halfwidth(split_means, q)
    else:
        half = _class_jackknife_halfwidth(split_means, splits, q)
    chance_value = float(np.mean(chance))
    return SweepSummary(
        mean=mean, std_runs=float(acc.std(ddof=1)) if acc.size > 1 else 0.0,
        std_splits=float(split_means.std(ddof=1)) if len(split_means) > 1 else 0.0,
        ci_low=max(0.0, mean - half), ci_high=min(1.0, mean + half), confidence=confidence,
        method=method, n_splits=int(acc.shape[0]), n_seeds=int(acc.shape[1]), chance=chance_value,
    )


def _is_complete_enumeration(splits: Sequence[Sequence[int]]) -> bool:
    """Whether ``splits`` are every choice of k unseen classes from their classes (k fixed),
    over at least 5 classes (enough leave-one-class-out means for the jackknife's t): the
    case the class jackknife is for."""
    sets = {frozenset(int(c) for c in s) for s in splits}
    sizes = {len(s) for s in sets}
    if len(sets) != len(splits) or len(sizes) != 1:
        return False
    classes = set().union(*sets)
    return len(classes) >= 5 and len(sets) == math.comb(len(classes), sizes.pop())


def _split_t_halfwidth(split_means: np.ndarray, q: float) -> float:
    """Half-width of Student's t-interval over per-split means (n - 1 degrees of freedom)."""
    n = len(split_means)
    if n < 2:
        raise ValueError(f"a split sweep needs at least 2 splits for an interval over splits, "
                         f"got {n}")
    return float(stats.t.ppf(q, n - 1) * split_means.std(ddof=1) / np.sqrt(n))


def _class_jackknife_halfwidth(split_means: np.ndarray, splits: Sequence[Sequence[int]],
                               q: float) -> float:
    members = [set(int(c) for c in s) for s in splits]
    classes = sorted(set().union(*members))
    leave_out = []
    for d in classes:
        keep = np.array([d not in m for m in members])
        if not keep.any():
            raise ValueError(f"class {d} is in every split; the class jackknife needs splits "
                             f"without it")
        leave_out.append(split_means[keep].mean())
    theta = np.asarray(leave_out)
    n = len(classes)
    if n < 3:
        raise ValueError(f"the class jackknife needs splits over at least 3 classes, got {n}")
    var = (n - 1) / n * np.sum((theta - theta.mean()) ** 2)
    return float(stats.t.ppf(q, n - 1) * np.sqrt(var))


def run_sweep(train_eval: Callable[[tuple[int, ...], tuple[int, ...], int], float],
              splits: Sequence[tuple[int, ...]], seeds: Sequence[int],
              classes: Sequence[int] = tuple(range(1, 10))) -> np.ndarray:
    """Call ``train_eval(seen, unseen, seed) -> accuracy`` for every split × seed.

    Returns ``acc[split, seed]``; for head training prefer ``runs.sweep_heads``, which
    trains all runs of a sweep at once.
    """
    acc = np.empty((len(splits), len(seeds)))
    for i, unseen in enumerate(splits):
        for j, seed in enumerate(seeds):
            acc[i, j] = float(train_eval(seen_for(unseen, classes), tuple(unseen), int(seed)))
    return acc


def plot_sweep(acc: np.ndarray, splits: Sequence[Sequence[int]], summary: SweepSummary,
               path: str | Path, title: str = "zero-shot accuracy over unseen-class splits") -> Path:
    """Per-split means (dots, seeds as whiskers), the sweep mean with its interval, chance."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    acc = np.asarray(acc)
    x = np.arange(len(splits))
    fig, ax = plt.subplots(figsize=(max(6.0, 0.25 * len(splits)), 3.5))
    ax.vlines(x, acc.min(axis=1), acc.max(axis=1), color="0.6", lw=1)
    ax.plot(x, acc.mean(axis=1), "o", ms=4, label="split mean (bars: seeds)")
    ax.axhspan(summary.ci_low, summary.ci_high, color="C1", alpha=0.25,
               label=f"{summary.confidence:.0%} CI ({summary.method})")
    ax.axhline(summary.mean, color="C1", label=f"mean {summary.mean:.1%}")
    ax.axhline(summary.chance, color="k", ls="--", label=f"chance {summary.chance:.0%}")
    ax.set_xticks(x, ["".join(map(str, s)) for s in splits], rotation=90, fontsize=7)
    ax.set_xlabel("unseen classes")
    ax.set_ylabel("top-1 accuracy")
    ax.set_ylim(0, 1)
    ax.set_title(title)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
