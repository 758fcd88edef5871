"""Replay of the built-in dataset's samples as a paced event stream (kind ``builtin_replay``).

The demo replays held-out test samples of one modality; which samples is a pure function of
the parameters (:func:`pick_samples`), so the demo process and its report know exactly what
the source sent without talking to it.
"""
from __future__ import annotations

from typing import Any, Iterable

import numpy as np

from rram_lsm.stream.node import ConfigError
from rram_lsm.stream.params import REQUIRED, Param

from .replay import PACING, ReplaySource

MODALITIES = ("visual", "audio", "neural")
DEFAULT_CLASSES = tuple(range(1, 10))  # the paper drops digit 0


def pick_samples(labels: np.ndarray, split: np.ndarray, want_split: int, classes: Iterable[int],
                 n_samples: int, seed: int, half: np.ndarray | None = None,
                 want_half: int | None = None) -> np.ndarray:
    """Indices of ``n_samples`` samples of ``want_split``, balanced over ``classes``.

    Each class's candidates are shuffled with ``seed``; samples are then taken round-robin
    over the classes (in class order), so 60 samples of 9 classes give 6 or 7 per class.
    """
    classes = [int(c) for c in classes]
    keep = split == want_split
    if want_half is not None and half is not None:
        keep &= half == want_half
    rng = np.random.default_rng(seed)
    pools = []
    for c in classes:
        idx = np.flatnonzero(keep & (labels == c))
        pools.append(list(rng.permutation(idx)))
    out: list[int] = []
    while len(out) < n_samples and any(pools):
        for pool in pools:
            if pool and len(out) < n_samples:
                out.append(int(pool.pop(0)))
    return np.asarray(out, dtype=np.int64)


class BuiltinReplaySource(ReplaySource):
    """Replays held-out samples of the built-in dataset (built and cached on first use)."""

    PARAMS = PACING + (
        Param("modality", str, REQUIRED, "", "which modality's samples", choices=MODALITIES),
        Param("size", str, "full", "", "the built-in dataset's size", choices=("full", "tiny")),
        Param("seed", int, 0, "", "the dataset's seed"),
        Param("split", str, "test", "", "which split to replay", choices=("train", "val", "test")),
        Param("classes", list, list(DEFAULT_CLASSES), "", "the classes replayed (integers)"),
        Param("n_samples", int, 60, "samples", "how many samples, balanced over the classes"),
        Param("pick_seed", int, 0, "", "seed of the choice of samples"),
        Param("half", int, None, "", "visual: only samples of this half (0 or 1)", choices=(0, 1)),
    )

    def __init__(self, name: str, params: dict[str, Any] | None = None):
        super().__init__(name, params, samples=self._samples)
        n = self.param("n_samples")
        if n <= 0:
            raise ConfigError(f"node {name!r}: parameter 'n_samples' must be an integer > 0, got {n!r}")
        classes = self.param("classes")
        if not classes or any(isinstance(c, bool) or not isinstance(c, int) for c in classes):
            raise ConfigError(f"node {name!r}: parameter 'classes' must be a list of integers, got {classes!r}")
        self.size, self.modality, self.split_name = self.param("size"), self.param("modality"), self.param("split")
        self.n_samples, self.classes, self.half = n, [int(c) for c in classes], self.param("half")
        self.data_seed, self.pick_seed = self.param("seed"), self.param("pick_seed")
        self.indices: np.ndarray | None = None

    def _samples(self) -> list[tuple[np.ndarray, int]]:
        """The chosen samples (loaded once; the dataset is built if it is not cached)."""
        from .builtin import load_builtin

        ms = load_builtin(self.size, self.data_seed, progress=False).modality(self.modality)
        if self.geometry is None:
            self.geometry = tuple(int(g) for g in ms.geometry)
        code = ("train", "val", "test").index(self.split_name)
        self.indices = pick_samples(ms.labels, ms.split, code, self.classes, self.n_samples,
                                    self.pick_seed, ms.half, self.half)
        if len(self.indices) == 0:
            raise ConfigError(f"node {self.name!r}: no {self.split_name} samples of classes "
                              f"{self.classes} in the {self.size} built-in {self.modality} set")
        return [(ms.events[i], int(ms.labels[i])) for i in self.indices]
