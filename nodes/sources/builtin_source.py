"""Replay of the built-in dataset's samples as a paced event stream (kind ``builtin_replay``).

The demo replays held-out test samples of one modality; which samples is a pure function of
the parameters (:func:`pick_samples`), so the demo process and its report know exactly what
the source sent without talking to it.
"""
from __future__ import annotations

from typing import Any, Iterable

import numpy as np

from rram_lsm.stream.node import ConfigError

from .replay import ReplaySource

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
    """Replays built-in samples. Params: ``size`` (full|tiny), ``seed`` (dataset seed),
    ``modality``, ``split`` (train|val|test, default test), ``classes`` (default 1-9),
    ``n_samples`` (default 60), ``pick_seed`` (default 0), ``half`` (visual half 0/1 or
    null), plus every :class:`ReplaySource` param (``speed``, ``max_events``, ``span_us``...)."""

    def __init__(self, name: str, params: dict[str, Any] | None = None):
        params = dict(params or {})
        size = params.get("size", "full")
        if size not in ("full", "tiny"):
            raise ConfigError(f"node {name!r}: parameter 'size' must be 'full' or 'tiny', got {size!r}")
        modality = params.get("modality")
        if modality not in MODALITIES:
            raise ConfigError(f"node {name!r}: parameter 'modality' must be one of {MODALITIES}, got {modality!r}")
        split = params.get("split", "test")
        if split not in ("train", "val", "test"):
            raise ConfigError(f"node {name!r}: parameter 'split' must be train, val or test, got {split!r}")
        n = params.get("n_samples", 60)
        if isinstance(n, bool) or not isinstance(n, int) or n <= 0:
            raise ConfigError(f"node {name!r}: parameter 'n_samples' must be an integer > 0, got {n!r}")
        classes = params.get("classes", list(DEFAULT_CLASSES))
        if not isinstance(classes, (list, tuple)) or not classes or \
                any(isinstance(c, bool) or not isinstance(c, int) for c in classes):
            raise ConfigError(f"node {name!r}: parameter 'classes' must be a list of integers, got {classes!r}")
        half = params.get("half")
        if half not in (None, 0, 1):
            raise ConfigError(f"node {name!r}: parameter 'half' must be 0, 1 or null, got {half!r}")
        for key in ("seed", "pick_seed"):
            if not isinstance(params.get(key, 0), int):
                raise ConfigError(f"node {name!r}: parameter {key!r} must be an integer")
        self.size, self.modality, self.split_name = size, modality, split
        self.n_samples, self.classes, self.half = n, [int(c) for c in classes], half
        self.data_seed, self.pick_seed = int(params.get("seed", 0)), int(params.get("pick_seed", 0))
        self.indices: np.ndarray | None = None
        super().__init__(name, params, samples=self._samples)

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
