"""Head-training runs on cached features: one zero-shot split over seeds, and the split
sweep over choices of unseen classes x seeds (vectorised: ``train_heads_many``; on a Ray
cluster each run is a task of its own: :func:`train_runs`)."""
from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from rram_lsm.nodes.classifier.metrics import evaluate_embeddings
from rram_lsm.nodes.projection.train import ModalityData, TrainResult, train_heads_many
from rram_lsm.nodes.projection.train_config import TrainConfig

from .executor import LocalExecutor, current
from .results import (SWEEP_METRICS, AuthorsRuleSummary, PoolSummary, Stat, SweepMetric,
                      SweepResult, ZeroShotResult, ZeroShotRun, ZeroShotSummary)
from .sweep import pick_splits, summarise


def zero_shot(a: ModalityData, b: ModalityData, heads: TrainConfig, seeds=(0,)) -> ZeroShotResult:
    """Train heads (one run per seed, trained together) on ``heads.seen`` and evaluate both
    metrics: per-seed reports, the mean/std over seeds of the validation-selected test
    accuracies, and the authors' test-set rule per seed."""
    cfgs = [dataclasses.replace(heads, seed=int(s)) for s in seeds]
    seen, unseen = list(heads.seen), list(heads.unseen)
    start = time.perf_counter()
    results = train_runs(a, b, cfgs)
    seconds = time.perf_counter() - start
    runs = []
    for r in results:
        ea, eb = r.heads[a.name].forward(a.features), r.heads[b.name].forward(b.features)
        ev = evaluate_embeddings(ea, a.labels, a.split, eb, b.labels, b.split, seen, unseen)
        runs.append(ZeroShotRun(r.config.seed, r.selected_epoch, r.authors_rule, ev, r.n_pairs,
                                r.train_macs))

    def pool(p: str) -> PoolSummary:
        first = runs[0].eval
        return PoolSummary(
            a_to_b=Stat.of(x.eval["retrieval"][p]["a_to_b"] for x in runs),
            b_to_a=Stat.of(x.eval["retrieval"][p]["b_to_a"] for x in runs),
            chance=first["retrieval"][p]["chance"],
            proto_a_to_b=Stat.of(x.eval["prototype"][p]["a_to_b"]["accuracy"] for x in runs),
            proto_b_to_a=Stat.of(x.eval["prototype"][p]["b_to_a"]["accuracy"] for x in runs),
            proto_chance=first["prototype"][p]["a_to_b"]["chance"])
    met = [x.authors_rule for x in runs if x.authors_rule.get("met")]
    rule = AuthorsRuleSummary(
        met_runs=len(met), runs=len(runs),
        seen=float(np.mean([m["seen"] for m in met])) if met else None,
        unseen=float(np.mean([m["unseen"] for m in met])) if met else None,
        rule=runs[0].authors_rule["rule"])
    return ZeroShotResult(f"{a.name}-{b.name}", seen, unseen, seconds, runs,
                          ZeroShotSummary(pool("seen"), pool("unseen"), rule), results)


def train_runs(a: ModalityData, b: ModalityData, cfgs: Sequence[TrainConfig], chunk: int = 36,
               progress: Callable[[int, float], None] | None = None,
               eval_every: int = 1) -> list[TrainResult]:
    """Train every run of ``cfgs``: here ``chunk`` at a time, vectorised (``progress`` follows
    the epochs); on the command's Ray executor one task per ``threads`` CPUs of the cluster,
    each reserving them and training its share of the runs vectorised (one run per task
    trained the reduced sweep about 6x slower: docs/performance.md), the features put in the
    object store once and torch's threads fixed to the runs' own ``threads``."""
    ex = current()
    threads = int(cfgs[0].threads) if cfgs else None
    size = chunk if isinstance(ex, LocalExecutor) else \
        max(1, min(chunk, math.ceil(len(cfgs) / ex.slots(threads))))
    groups = [list(cfgs[s:s + size]) for s in range(0, len(cfgs), size)]
    if isinstance(ex, LocalExecutor):
        return [r for g in groups for r in train_heads_many(a, b, g, progress, eval_every)]
    parts = ex.map(_train_group, groups, a, b, eval_every, threads=threads)
    return [r for part in parts for r in part]


def _train_group(group: list[TrainConfig], a: ModalityData, b: ModalityData,
                 eval_every: int) -> list[TrainResult]:
    return train_heads_many(a, b, group, None, eval_every)


@dataclass
class SweepRuns:
    """Selected-epoch test accuracies of a split sweep, ``[split, seed]`` per metric."""

    splits: list[tuple[int, ...]]
    seeds: list[int]
    acc: dict[str, np.ndarray]        # e.g. "unseen_a_to_b", "seen_b_to_a"
    chance: dict[str, np.ndarray]     # "seen", "unseen": chance per split
    results: list[TrainResult]


def sweep_heads(a: ModalityData, b: ModalityData, base: TrainConfig,
                splits: Sequence[tuple[int, ...]], seeds: Sequence[int],
                classes: Sequence[int] = tuple(range(1, 10)), chunk: int = 36,
                eval_every: int = 1,
                progress: Callable[[int, float], None] | None = None) -> SweepRuns:
    """Train every unseen-class split × seed (:func:`train_runs`) and
    collect the validation-selected test accuracies for ``experiments.sweep.summarise``."""
    jobs = [(i, j, tuple(int(c) for c in unseen), int(seed))
            for i, unseen in enumerate(splits) for j, seed in enumerate(seeds)]
    cfgs = [dataclasses.replace(base, seed=seed, unseen=unseen,
                                seen=tuple(int(c) for c in classes if c not in unseen))
            for _, _, unseen, seed in jobs]
    results = train_runs(a, b, cfgs, chunk, progress, eval_every)
    shape = (len(splits), len(seeds))
    acc = {f"{pool}_{d}": np.full(shape, np.nan) for pool in ("seen", "unseen")
           for d in ("a_to_b", "b_to_a")}
    chance = {"seen": np.full(len(splits), np.nan), "unseen": np.full(len(splits), np.nan)}
    for (i, j, _, _), r in zip(jobs, results):
        for pool in ("seen", "unseen"):
            rep = r.selected_test[pool] if r.selected_test else None
            if rep is None:
                continue
            chance[pool][i] = rep["chance"]
            for d in ("a_to_b", "b_to_a"):
                acc[f"{pool}_{d}"][i, j] = rep[d]
    return SweepRuns([tuple(map(int, s)) for s in splits], list(map(int, seeds)), acc,
                     chance, results)


def split_sweep(a: ModalityData, b: ModalityData, heads: TrainConfig, n_splits: int | None,
                seeds: Sequence[int]) -> SweepResult:
    """Retrieval over ``n_splits`` unseen-digit splits (all when None) x ``seeds``, with
    mean, spread and 95 % interval per pool and direction (and both directions' mean)."""
    splits = pick_splits(n_splits)
    start = time.perf_counter()
    runs = sweep_heads(a, b, heads, splits, list(seeds))
    seconds = time.perf_counter() - start
    acc = dict(runs.acc)
    for pool in ("seen", "unseen"):
        acc[f"{pool}_mean"] = (acc[f"{pool}_a_to_b"] + acc[f"{pool}_b_to_a"]) / 2
    metrics = {key: SweepMetric(acc[key].tolist(),
                                summarise(acc[key], splits, runs.chance[key.split("_")[0]]))
               for key in SWEEP_METRICS}
    return SweepResult([list(s) for s in splits], list(seeds), seconds, **metrics)
