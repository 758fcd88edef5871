"""Frames to DVS events: a v2e-style emulator of an event camera watching ordinary video.

Every pixel memorises a log intensity.  When a new frame's log intensity lies one or more of the
pixel's own contrast thresholds (ON and OFF drawn once per pixel: threshold mismatch) away from
it, the pixel fires once per threshold crossed.  Log intensity is taken as linear in time
between two frames, so each crossing is stamped where that line crosses the level (v2e's
linear interpolation), not at the frame time.  After an event a pixel is blind for a refractory
period: crossings inside it are lost, and the memorised level still moves on to the crossed
level (a real pixel resets to the level it sees).  Background noise is Poisson, ``noise_hz``
per pixel, of random polarity, and leaves the memorised level alone.

The functional part (``FrameDvs``) is numpy only, vectorised over the pixels of a frame; the
node kinds that feed it from OpenCV (``video``, ``webcam``) are in camera.py.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rram_lsm.stream.node import ConfigError
from rram_lsm.stream.packets import DVS_DTYPE

MIN_THRESHOLD = 0.01  # per-pixel thresholds drawn below this are clipped to it


@dataclass(frozen=True)
class FrameDvsParams:
    """Emulator settings (v2e's defaults, apart from a smaller noise rate)."""

    threshold: float = 0.2            # log-intensity contrast threshold, ON and OFF
    threshold_mismatch: float = 0.03  # std of each pixel's thresholds around ``threshold``
    refractory_us: int = 1_000
    noise_hz: float = 0.1             # background events per pixel per second
    dark_level: float = 0.05          # added to intensities in [0, 1] before the log

    def check(self) -> None:
        for key in ("threshold", "dark_level"):
            if not getattr(self, key) > 0:
                raise ConfigError(f"parameter {key!r} must be > 0, got {getattr(self, key)!r}")
        for key in ("threshold_mismatch", "refractory_us", "noise_hz"):
            if not getattr(self, key) >= 0:
                raise ConfigError(f"parameter {key!r} must be >= 0, got {getattr(self, key)!r}")


def _ranks(reps: np.ndarray) -> np.ndarray:
    """0, 1, ..., r-1 for each count r of ``reps``, concatenated."""
    return np.arange(int(reps.sum())) - np.repeat(np.cumsum(reps) - reps, reps)


class FrameDvs:
    """Turns a sequence of (frame, time) into DVS events; state is carried between calls.

    ``size`` is (W, H); frames are (H, W) intensities in [0, 1].  The first frame only sets
    the memorised levels (each offset by a seeded random fraction of its threshold, as a real
    pixel starts anywhere between its thresholds) and yields no events.
    """

    def __init__(self, size: tuple[int, int], params: FrameDvsParams = FrameDvsParams(), seed: int = 0):
        params.check()
        self.w, self.h = int(size[0]), int(size[1])
        if self.w <= 0 or self.h <= 0:
            raise ConfigError(f"sensor size must be positive (W, H), got {size!r}")
        self.params = params
        self.rng = np.random.default_rng(seed)
        n = self.w * self.h
        draw = lambda: np.maximum(params.threshold + params.threshold_mismatch  # noqa: E731
                                  * self.rng.standard_normal(n), MIN_THRESHOLD)
        self.theta_on, self.theta_off = draw(), draw()
        self.ref: np.ndarray | None = None       # memorised log intensity per pixel
        self.level: np.ndarray | None = None     # log intensity of the last frame
        self.t_us: float | None = None           # time of the last frame
        self.last_event = np.full(n, -np.inf)    # time of each pixel's last event (µs)

    def log_intensity(self, frame: np.ndarray) -> np.ndarray:
        f = np.asarray(frame, dtype=np.float64)
        if f.shape != (self.h, self.w):
            raise ValueError(f"frame of shape {f.shape}, expected (H, W) = {(self.h, self.w)}")
        return np.log(np.clip(f, 0.0, 1.0).ravel() + self.params.dark_level)

    def __call__(self, frame: np.ndarray, t_us: float) -> np.ndarray:
        """Events (DVS_DTYPE, sorted by t, p 1 = ON) between the previous frame and this one."""
        level = self.log_intensity(frame)
        if self.ref is None:
            start = self.rng.uniform(-0.5, 0.5, level.size) * np.minimum(self.theta_on, self.theta_off)
            self.ref, self.level, self.t_us = level + start, level, float(t_us)
            return np.zeros(0, DVS_DTYPE)
        dt = float(t_us) - self.t_us
        if not dt > 0:
            raise ValueError(f"frame times must increase: {t_us} after {self.t_us}")
        events = np.concatenate([self._crossings(level, dt), self._noise(dt)])
        self.level, self.t_us = level, float(t_us)
        return events[np.argsort(events["t"], kind="stable")]

    def _crossings(self, level: np.ndarray, dt: float) -> np.ndarray:
        p = self.params
        d = level - self.ref
        n_on = np.floor(np.where(d > 0, d, 0) / self.theta_on).astype(np.int64)
        n_off = np.floor(np.where(d < 0, -d, 0) / self.theta_off).astype(np.int64)
        n = n_on + n_off                      # one of the two is zero
        pix = np.flatnonzero(n)
        on = n_on[pix] > 0
        step = np.where(on, self.theta_on[pix], -self.theta_off[pix])
        # Crossing k (1..n) of the line from the last frame's level to this one's.
        slope = (level[pix] - self.level[pix]) / dt          # log intensity per µs
        first = self.t_us + (self.ref[pix] + step - self.level[pix]) / slope
        self.ref[pix] += n[pix] * step         # lost crossings move the level too
        if not pix.size:
            return np.zeros(0, DVS_DTYPE)
        spacing = step / slope                                # µs between crossings, > 0
        # Refractory period: the first crossing at least refractory_us after the last event,
        # then every m-th one (crossings are evenly spaced within a frame interval).
        k0 = np.maximum(0, np.ceil((self.last_event[pix] + p.refractory_us - first) / spacing))
        m = np.maximum(1, np.ceil(p.refractory_us / spacing))
        reps = n[pix]
        k = _ranks(reps)
        keep = (k >= np.repeat(k0, reps)) & ((k - np.repeat(k0, reps)) % np.repeat(m, reps) == 0)
        t = (np.repeat(first, reps) + k * np.repeat(spacing, reps))[keep]
        t = np.minimum(t, self.t_us + dt)  # rounding must not push a crossing past the frame
        which = np.repeat(np.arange(pix.size), reps)[keep]
        if t.size:  # each firing pixel's latest event (``which`` is sorted, t rises within a pixel)
            last = np.append(which[1:] != which[:-1], True)
            self.last_event[pix[which[last]]] = t[last]
        ev = np.empty(t.size, DVS_DTYPE)
        ev["t"] = np.floor(t)
        ev["x"], ev["y"] = pix[which] % self.w, pix[which] // self.w
        ev["p"] = on[which]
        return ev

    def _noise(self, dt: float) -> np.ndarray:
        n = self.rng.poisson(self.params.noise_hz * self.w * self.h * dt * 1e-6)
        ev = np.empty(n, DVS_DTYPE)
        ev["t"] = np.floor(self.t_us + dt - self.rng.uniform(0.0, dt, n))  # in (t_prev, t]
        ev["x"] = self.rng.integers(0, self.w, n)
        ev["y"] = self.rng.integers(0, self.h, n)
        ev["p"] = self.rng.integers(0, 2, n)
        return ev
