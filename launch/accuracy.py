"""Running accuracy for seen and unseen classes, always beside the chance level of the bank.

Two sources give the same figures: the prediction records a sink wrote (one per sample,
duplicates already removed) and the classifier's telemetry gauges (``seen_n``,
``seen_correct``, ... from ``nodes.classifier.crossmodal``).  The demo's report uses the
records; the live dashboard uses the gauges; the end-to-end test checks that they agree.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

POOLS = ("seen", "unseen")


def clopper_pearson(k: int, n: int, confidence: float = 0.95) -> tuple[float, float] | None:
    """Exact binomial interval of a rate k/n (Clopper-Pearson); None when n is 0."""
    if n <= 0:
        return None
    from scipy.stats import beta

    a = (1 - confidence) / 2
    low = 0.0 if k == 0 else float(beta.ppf(a, k, n - k + 1))
    high = 1.0 if k == n else float(beta.ppf(1 - a, k + 1, n - k))
    return low, high


def harmonic(seen: float | None, unseen: float | None) -> float | None:
    """H = 2·S·U / (S + U) of the live per-sample rates (0 when either is 0)."""
    if seen is None or unseen is None:
        return None
    return 0.0 if seen <= 0 or unseen <= 0 else 2 * seen * unseen / (seen + unseen)


@dataclass
class PoolCount:
    n: int = 0
    correct: int = 0

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.n if self.n else None


@dataclass
class RunningAccuracy:
    """Counts per pool (seen / unseen) and per query modality, plus the chance level."""

    seen: tuple[int, ...]
    unseen: tuple[int, ...]
    chance: float | None = None
    pools: dict[str, PoolCount] = field(default_factory=lambda: {p: PoolCount() for p in POOLS})
    by_modality: dict[str, dict[str, PoolCount]] = field(default_factory=dict)

    def pool_of(self, label: int | None) -> str | None:
        if label is None:
            return None
        return "seen" if label in self.seen else "unseen" if label in self.unseen else None

    def add(self, label: int | None, pred: int | None, modality: str | None = None,
            chance: float | None = None) -> None:
        """Count one prediction (labels outside both pools are ignored)."""
        if chance is not None:
            self.chance = chance
        pool = self.pool_of(label)
        if pool is None:
            return
        ok = int(pred == label)
        self.pools[pool].n += 1
        self.pools[pool].correct += ok
        if modality is not None:
            per = self.by_modality.setdefault(modality, {p: PoolCount() for p in POOLS})
            per[pool].n += 1
            per[pool].correct += ok

    @property
    def h(self) -> float | None:
        """Harmonic mean of the seen and unseen rates (generalised zero-shot's H)."""
        return harmonic(self.pools["seen"].accuracy, self.pools["unseen"].accuracy)

    def interval(self, pool: str) -> tuple[float, float] | None:
        """Exact binomial 95 % interval of one pool's rate."""
        c = self.pools[pool]
        return clopper_pearson(c.correct, c.n)

    def as_dict(self) -> dict:
        out = {"seen_classes": list(self.seen), "unseen_classes": list(self.unseen),
               "chance": self.chance, "h": self.h}
        for p, c in self.pools.items():
            out[p] = {"n": c.n, "correct": c.correct, "accuracy": c.accuracy,
                      "ci95_exact": self.interval(p)}
        out["by_modality"] = {m: {p: {"n": c.n, "correct": c.correct, "accuracy": c.accuracy}
                                  for p, c in per.items()} for m, per in self.by_modality.items()}
        return out

    def line(self) -> str:
        """``seen 71.4% (25/35) · unseen 80.0% (8/10, exact 95% CI 44.4-97.5%) · H 75.5% ·
        chance 11.1% (1/9 classes) for each``: generalised zero-shot, every class competing."""
        parts = []
        for p in POOLS:
            c = self.pools[p]
            acc = f"{c.accuracy:.1%}" if c.accuracy is not None else "-"
            ci = self.interval(p) if p == "unseen" else None
            parts.append(f"{p} {acc} ({c.correct}/{c.n}"
                         + (f", exact 95% CI {ci[0]:.1%}-{ci[1]:.1%})" if ci else ")"))
        parts.append(f"H {self.h:.1%}" if self.h is not None else "H -")
        if self.chance:
            parts.append(f"chance {self.chance:.1%} (1/{round(1 / self.chance)} classes) "
                         "for each")
        return " · ".join(parts)


def modality_of(record: dict, sources: dict[str, str] | None = None) -> str | None:
    """The query modality of a prediction record: its ``modality`` field, or its origin
    stream looked up in ``sources`` (source node name -> modality)."""
    if record.get("modality"):
        return record["modality"]
    origin = record.get("origin")
    if origin and sources:
        return sources.get(origin[0])
    return None


def from_records(records: Iterable[dict], seen, unseen, chance: float | None = None,
                 sources: dict[str, str] | None = None) -> RunningAccuracy:
    """Accuracy from sink records (only ``prediction`` records count)."""
    acc = RunningAccuracy(tuple(seen), tuple(unseen), chance)
    for r in records:
        if r.get("kind") == "prediction":
            acc.add(r.get("label"), r.get("pred"), modality_of(r, sources))
    return acc


def read_records(path: str | Path) -> list[dict]:
    """The JSON lines a sink wrote (a missing file gives no records)."""
    path = Path(path)
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if line:
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line cut by Ctrl-C
    return out


def from_gauges(gauges: dict, seen=(), unseen=()) -> RunningAccuracy:
    """Accuracy from the classifier's telemetry gauges (``seen_n``, ``seen_correct``...)."""
    acc = RunningAccuracy(tuple(seen), tuple(unseen), gauges.get("chance"))
    for p in POOLS:
        acc.pools[p] = PoolCount(int(gauges.get(f"{p}_n", 0)), int(gauges.get(f"{p}_correct", 0)))
    return acc
