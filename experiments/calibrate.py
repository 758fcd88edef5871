"""Reservoir gain calibration: choose ``const`` per modality (and device) on validation only.

The paper grid-searched ``const`` per modality.  A wrong gain silences or saturates the
reservoir and silently ruins the features, so each candidate is scored by the linear probe's
validation accuracy (fitted on the training split; the test split is never read), and the
reservoir health (silent / saturated fractions) is reported beside each value.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np

from rram_lsm.nodes.lsm.presets import get_preset

from .executor import LocalExecutor, current
from .features import DEFAULT_PRESETS, FeatureSet, cache_here, encode_modality
from .probe import DEFAULT_CS, linear_probe

DEFAULT_FACTORS = (0.25, 0.5, 1.0, 2.0, 4.0)


@dataclass
class GainPoint:
    """One candidate gain: validation probe accuracy and reservoir health."""

    const: float
    val_acc: float
    train_acc: float
    silent_frac: float
    saturated_frac: float
    mean_rate: float


@dataclass
class Calibration:
    """The sweep and its choice; ``features`` are those of the chosen gain (all splits)."""

    modality: str
    preset: str
    device: str
    const: float
    points: list[GainPoint]
    features: FeatureSet = field(repr=False)

    def as_dict(self) -> dict:
        return {"modality": self.modality, "preset": self.preset, "device": self.device,
                "const": self.const, "points": [asdict(p) for p in self.points]}

    def table(self) -> str:
        lines = ["| const | val probe acc | silent | saturated | mean rate |",
                 "|---|---|---|---|---|"]
        for p in self.points:
            mark = " **(chosen)**" if p.const == self.const else ""
            lines.append(f"| {p.const:.4g}{mark} | {p.val_acc:.1%} | {p.silent_frac:.1%} | "
                         f"{p.saturated_frac:.1%} | {p.mean_rate:.3f} |")
        return "\n".join(lines)


def _score_gain(c: float, ms, preset: str, device, seed: int, overrides: dict,
                source: str | None, Cs: tuple[float, ...], max_iter: int
                ) -> tuple[GainPoint, FeatureSet]:
    """One gain: encode at ``const`` = ``c`` and fit the probe on train, scored on validation."""
    fs = encode_modality(ms, preset, device, seed, overrides={**overrides, "const": c},
                         source=source)
    keep = fs.split != 2
    probe = linear_probe(fs.features[keep], fs.labels[keep], fs.split[keep], Cs=Cs,
                         seed=seed, max_iter=max_iter, test=False)
    h = fs.health
    return GainPoint(c, probe.val, probe.train, h["silent_frac"], h["saturated_frac"],
                     h["mean_rate"]), fs


def gain_grid(preset: str, factors=DEFAULT_FACTORS, overrides: dict | None = None) -> list[float]:
    """Candidate gains: the preset's ``const`` times each factor."""
    base = get_preset(preset, **(overrides or {})).const
    return [float(base * f) for f in factors]


def next_gain(grid: list[float], best: float) -> float | None:
    """The candidate past the end of the sorted ``grid`` where ``best`` lies, one grid step
    (the ratio of the two end values) further; None when ``best`` is inside the grid."""
    if len(grid) < 2:
        return None
    if best == grid[0]:
        return grid[0] * grid[0] / grid[1]
    if best == grid[-1]:
        return grid[-1] * grid[-1] / grid[-2]
    return None


def search_gain(grid: list[float], score: Callable[[float], GainPoint], base: float,
                extend: int = 3,
                score_all: Callable[[list[float]], list[GainPoint]] | None = None
                ) -> tuple[list[GainPoint], GainPoint]:
    """Score every gain of ``grid`` (``score_all``, at once, when given: one Ray task per
    gain); while the best lies at an end, score :func:`next_gain` (at most ``extend`` more).
    Returns the points by gain and the best (ties: nearest to ``base`` in log scale)."""
    def key(p: GainPoint):
        return p.val_acc, -abs(np.log(p.const / base))

    points = score_all(sorted(grid)) if score_all else [score(c) for c in sorted(grid)]
    for _ in range(extend):
        nxt = next_gain(sorted(p.const for p in points), max(points, key=key).const)
        if nxt is None:
            break
        points.append(score(nxt))
    points.sort(key=lambda p: p.const)
    return points, max(points, key=key)


def calibrate_gain(ms, preset: str | None = None, device="ideal", seed: int = 0, *,
                   consts: list[float] | None = None, factors=DEFAULT_FACTORS,
                   overrides: dict | None = None, source: str | None = None,
                   Cs: tuple[float, ...] = DEFAULT_CS, max_iter: int = 200, extend: int = 3,
                   progress: Callable[[str], None] | None = None) -> Calibration:
    """Encode ``ms`` at each candidate gain and keep the best validation probe accuracy.

    When the best lies at an end of the grid, the grid grows past that end by its own step
    (:func:`next_gain`, at most ``extend`` times), so the choice is a validation optimum and
    not an artefact of where the grid stopped.  Ties go to the gain nearest (in log scale)
    to the preset's own ``const``.  Only the train and validation rows are read.  On the
    command's Ray executor the grid's gains are scored as tasks at once, the dataset put in
    the object store once.
    """
    preset = preset or DEFAULT_PRESETS[ms.name]
    overrides = dict(overrides or {})
    base = get_preset(preset, **overrides).const
    grid = sorted(float(c) for c in (consts or gain_grid(preset, factors, overrides)))
    if not grid or any(c <= 0 for c in grid):
        raise ValueError(f"gain candidates must be positive numbers, got {grid}")
    sets = {}
    args = (preset, device, seed, overrides, source, Cs, max_iter)

    def keep(c: float, point: GainPoint, fs: FeatureSet) -> GainPoint:
        sets[c] = fs
        if progress is not None:
            progress(f"{ms.name} const {c:.4g}: val {point.val_acc:.1%}, silent "
                     f"{point.silent_frac:.0%}, saturated {point.saturated_frac:.0%}")
        return point

    def score(c: float) -> GainPoint:
        return keep(c, *_score_gain(c, ms, *args))

    ex = current()
    score_all = None
    if not isinstance(ex, LocalExecutor):
        def score_all(consts: list[float]) -> list[GainPoint]:
            done = ex.map(_score_gain, consts, ms, *args)
            return [keep(c, p, cache_here(fs)) for c, (p, fs) in zip(consts, done)]

    points, best = search_gain(grid, score, base, extend, score_all)
    fs = sets[best.const]
    dev = fs.device.get("name", str(device))
    return Calibration(ms.name, preset, dev, best.const, points, fs)
