"""Synthetic DVS source for smoke tests: a moving bar or random events at a set rate.

Every sample lasts ``sample_ms``; a bar sweeps the sensor in one of four directions (the
label), or events fall uniformly at random (label = sample id modulo ``n_classes``).
Deterministic from ``seed``; released through ReplaySource's pacing and framing.
"""
from __future__ import annotations

from typing import Any, Iterator

import numpy as np

from rram_lsm.stream.node import ConfigError
from rram_lsm.stream.packets import DVS_DTYPE
from rram_lsm.stream.params import Param

from .replay import PACING, ReplaySource

PATTERNS = ("bar", "random")


def synthetic_sample(rng: np.random.Generator, pattern: str, label: int, geometry: tuple[int, int],
                     rate_hz: float, duration_us: int, bar_width: int = 2) -> np.ndarray:
    """Events of one sample (DVS_DTYPE, sorted by t); for a bar, ``label`` % 4 is its direction."""
    w, h = geometry
    direction = label % 4  # bar: 0 rightwards, 1 leftwards, 2 downwards, 3 upwards
    length = w if direction < 2 else h
    # a bar's edges spend bar_width / (length + bar_width) of the sweep off the sensor: draw
    # that many more, so the events that land on it arrive at ``rate_hz`` on average
    scale = 1.0 if pattern == "random" else (length + bar_width) / length
    n = rng.poisson(rate_hz * duration_us * 1e-6 * scale)
    ev = np.empty(n, DVS_DTYPE)
    ev["t"] = np.sort(rng.integers(0, duration_us, n))
    ev["p"] = rng.integers(0, 2, n)
    if pattern == "random":
        ev["x"], ev["y"] = rng.integers(0, w, n), rng.integers(0, h, n)
        return ev
    across = rng.integers(0, h if direction < 2 else w, n)
    front = (ev["t"] * (length + bar_width)) // duration_us  # leading edge, ON events
    along = np.where(ev["p"] == 1, front, front - bar_width)  # trailing edge, OFF events
    keep = (along >= 0) & (along < length)
    along, across, ev = along[keep], across[keep], ev[keep]
    if direction % 2 == 1:
        along = length - 1 - along
    ev["x"], ev["y"] = (along, across) if direction < 2 else (across, along)
    return ev


class SyntheticDvsSource(ReplaySource):
    """Synthetic DVS events for smoke tests: a moving bar or random events at a set rate."""

    PARAMS = tuple(p for p in PACING if p.name != "geometry") + (
        Param("geometry", list, [16, 16], "pixels", "sensor size [W, H]"),
        Param("pattern", str, "bar", "", "a bar sweeping in one of 4 directions (the label), or random events",
              choices=PATTERNS),
        Param("rate_hz", float, 20_000.0, "Hz", "mean event rate"),
        Param("sample_ms", float, 300, "ms", "length of one sample"),
        Param("samples", int, 10, "samples", "samples to emit (0 = forever)"),
        Param("n_samples", int, None, "samples", "the same as 'samples' (wins when given)"),
        Param("n_classes", int, 4, "classes", "labels cycle through this many classes"),
        Param("seed", int, 0, "", "random seed of the events"),
    )

    def __init__(self, name: str, params: dict[str, Any] | None = None):
        super().__init__(name, params, samples=self._samples)
        self.pattern = self.param("pattern")
        self.rate_hz = float(self.param("rate_hz"))
        self.sample_us = int(self.param("sample_ms") * 1000)
        # graph files may call it ``samples`` (the smoke graph's argument name)
        n = self.param("n_samples")
        self.n_samples = self.param("samples") if n is None else n
        self.n_classes = self.param("n_classes")
        self.seed = self.param("seed")
        if self.rate_hz <= 0 or self.sample_us <= 0 or self.n_samples < 0 or self.n_classes <= 0:
            raise ConfigError(f"node {name!r}: rate_hz, sample_ms and n_classes must be > 0, n_samples >= 0")
        if len(self.geometry or ()) != 2:
            raise ConfigError(f"node {name!r}: parameter 'geometry' must be [W, H], got {self.geometry}")

    def _samples(self) -> Iterator[tuple[np.ndarray, int]]:
        rng = np.random.default_rng(self.seed)
        k = 0
        while self.n_samples == 0 or k < self.n_samples:
            label = k % self.n_classes
            yield synthetic_sample(rng, self.pattern, label, self.geometry, self.rate_hz, self.sample_us), label
            k += 1
