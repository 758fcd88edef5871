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

    def as_dict(self) -> dict:
        out = {"seen_classes": list(self.seen), "unseen_classes": list(self.unseen),
               "chance": self.chance}
        for p, c in self.pools.items():
            out[p] = {"n": c.n, "correct": c.correct, "accuracy": c.accuracy}
        out["by_modality"] = {m: {p: {"n": c.n, "correct": c.correct, "accuracy": c.accuracy}
                                  for p, c in per.items()} for m, per in self.by_modality.items()}
        return out

    def line(self) -> str:
        """``seen 71.4% (25/35) · unseen 80.0% (8/10) · chance 11.1% (1/9 classes)``."""
        parts = []
        for p in POOLS:
            c = self.pools[p]
            acc = f"{c.accuracy:.1%}" if c.accuracy is not None else "-"
            parts.append(f"{p} {acc} ({c.correct}/{c.n})")
        if self.chance:
            parts.append(f"chance {self.chance:.1%} (1/{round(1 / self.chance)} classes)")
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
