"""Neural handwriting emulator: a BMI-like electrode population writing a digit image.

In the paper's BMI data (Willett et al. 2021) motor-cortex activity was recorded while a
person attempted to write letters, so the activity encodes the pen's movement and hence the
letter's shape.  Here the pen trajectory comes from the digit image itself: the image is
thinned to a one-pixel skeleton (Zhang-Suen), the skeleton is traced stroke by stroke in a
natural writing order (top-left first, pen-up moves between strokes) and played out in time
with jitter in onset, duration and speed; pen-up moves between strokes are quicker than
writing.  Each electrode's Poisson rate is cosine-tuned to the pen velocity (Georgopoulos et
al. 1982) plus a linear gain field in pen position (motor-cortex cells encode both: Wang et
al., J Neurophysiol 97, 2007) on top of its own baseline, with per-bin rate noise and a slow
drift.  Without the position term, a linear classifier tells the digits apart only ~67% of
the time (velocity alone does not say where on the page a stroke is); with it, ~82%.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from rram_lsm.stream.node import ConfigError
from rram_lsm.stream.packets import NEURAL_DTYPE

_LEFT_WEIGHT = 0.5  # how much "left" counts against "top" when choosing where a stroke starts
_NEIGH = [(-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1), (-1, -1)]  # P2..P9


@dataclass(frozen=True)
class HandwritingParams:
    """Emulator settings; defaults follow the paper's BMI trials (201 bins of 10 ms, 192 electrodes)."""

    n_electrodes: int = 192
    n_bins: int = 201
    bin_us: int = 10_000
    write_start_s: float = 0.25      # mean pen-down time after trial start
    write_duration_s: float = 1.4    # mean writing time (longest, with pen_speed > 0)
    pen_speed: float = 0.0           # image widths per second along the path; 0: fixed duration
    onset_jitter_s: float = 0.04     # std of the start time
    duration_jitter: float = 0.05    # relative std of the writing time
    speed_jitter: float = 0.15       # amplitude of the smooth speed modulation along the path
    smooth_s: float = 0.03           # smoothing of the pen position (muscle low-pass)
    baseline_hz: float = 12.0        # median baseline rate (log-normal across electrodes)
    baseline_spread: float = 0.6     # log-normal sigma of baselines
    depth_hz: float = 30.0           # median modulation at the reference speed
    ref_speed: float = 1.0           # image widths per second giving depth_hz
    position_depth_hz: float = 60.0  # position gain field (Hz per image width from the centre)
    rate_noise: float = 0.2          # log-normal per-bin rate noise
    drift: float = 0.15              # amplitude of the slow multiplicative baseline drift
    drift_period_s: float = 8.0
    work_scale: int = 2              # the image is upsampled this much before thinning
    ink_threshold: float = 0.5       # fraction of the maximum intensity counted as ink
    blur_px: float = 1.0             # smoothing before thresholding (fewer spurs), work pixels
    pen_up_time: float = 0.5         # time of a pen-up move relative to writing the same length
    min_stroke_px: int = 12          # shorter traced pieces are spurs, not strokes
    tuning_seed: int = 1234          # the electrode population (fixed across trials)

    def check(self) -> None:
        for key in ("n_electrodes", "n_bins", "bin_us", "write_duration_s", "work_scale", "ref_speed"):
            if getattr(self, key) <= 0:
                raise ConfigError(f"HandwritingParams.{key} must be > 0, got {getattr(self, key)}")
        if self.n_electrodes > 65535:
            raise ConfigError("HandwritingParams.n_electrodes must fit in uint16")
        if not 0 < self.ink_threshold < 1:
            raise ConfigError(f"HandwritingParams.ink_threshold must be in (0, 1), got {self.ink_threshold}")

    @property
    def duration_s(self) -> float:
        return self.n_bins * self.bin_us * 1e-6


@dataclass(frozen=True)
class ElectrodeTuning:
    """Per-electrode baseline (Hz), modulation depth (Hz) and preferred direction (unit vector)."""

    baseline_hz: np.ndarray
    depth_hz: np.ndarray
    preferred: np.ndarray  # (N, 2)
    position_gain: np.ndarray  # (N, 2), Hz per image width from the image centre


def electrode_tuning(params: HandwritingParams = HandwritingParams()) -> ElectrodeTuning:
    """The fixed electrode population drawn from ``params.tuning_seed``."""
    rng = np.random.default_rng(params.tuning_seed)
    n = params.n_electrodes
    base = params.baseline_hz * np.exp(params.baseline_spread * rng.standard_normal(n))
    depth = params.depth_hz * np.exp(0.5 * rng.standard_normal(n))
    angle = rng.uniform(0, 2 * np.pi, n)
    gain = params.position_depth_hz * rng.standard_normal((n, 2))
    return ElectrodeTuning(base, depth, np.stack([np.cos(angle), np.sin(angle)], axis=1), gain)


def zhang_suen_thin(mask: np.ndarray) -> np.ndarray:
    """One-pixel-wide skeleton of a boolean image (Zhang & Suen 1984)."""
    img = np.pad(np.asarray(mask, dtype=bool), 1).astype(np.uint8)
    while True:
        changed = False
        for step in (0, 1):
            p = [np.roll(np.roll(img, -dy, 0), -dx, 1) for dy, dx in _NEIGH]
            b = sum(p)
            seq = p + [p[0]]
            a = sum(((seq[i] == 0) & (seq[i + 1] == 1)).astype(np.uint8) for i in range(8))
            p2, p4, p6, p8 = p[0], p[2], p[4], p[6]
            if step == 0:
                c1, c2 = p2 * p4 * p6, p4 * p6 * p8
            else:
                c1, c2 = p2 * p4 * p8, p2 * p6 * p8
            remove = (img == 1) & (b >= 2) & (b <= 6) & (a == 1) & (c1 == 0) & (c2 == 0)
            if remove.any():
                img[remove] = 0
                changed = True
        if not changed:
            return img[1:-1, 1:-1].astype(bool)


def _trace(skel: np.ndarray, min_len: int = 1) -> list[np.ndarray]:
    """Strokes (lists of (y, x) points) covering the skeleton, in writing order."""
    pts = {tuple(p) for p in np.argwhere(skel)}

    def neighbours(p: tuple[int, int]) -> list[tuple[int, int]]:
        return [(p[0] + dy, p[1] + dx) for dy, dx in _NEIGH if (p[0] + dy, p[1] + dx) in pts]

    unvisited = set(pts)
    strokes: list[np.ndarray] = []
    while unvisited:
        ends = [p for p in unvisited if sum(q in unvisited for q in neighbours(p)) <= 1]
        # Writers start at the top-left: rank candidates by height first, then by x.
        start = min(ends or unvisited, key=lambda p: (p[0] + _LEFT_WEIGHT * p[1], p[1]))
        stroke = [start]
        unvisited.discard(start)
        heading = None
        cur = start
        while True:
            cand = [q for q in neighbours(cur) if q in unvisited]
            if not cand:
                break
            if heading is None:
                nxt = min(cand, key=lambda q: (abs(q[0] - cur[0]) + abs(q[1] - cur[1]), q))
            else:  # keep going straight where the skeleton branches
                nxt = max(cand, key=lambda q: (np.dot(heading, np.subtract(q, cur)) / np.hypot(*np.subtract(q, cur)), -q[0]))
            heading = np.subtract(nxt, cur)
            unvisited.discard(nxt)
            stroke.append(nxt)
            cur = nxt
        strokes.append(np.array(stroke, dtype=float))
    # Spurs of thinning and specks are not strokes anyone writes.
    longest = max(len(s) for s in strokes)
    return [s for s in strokes if len(s) >= min_len or len(s) == longest]


def _smooth_noise(rng: np.random.Generator, n: int, corr: float) -> np.ndarray:
    """Zero-mean, unit-ish std noise smoothed over ``corr`` samples."""
    x = ndimage.gaussian_filter1d(rng.standard_normal(n + 1), max(corr, 1e-3), mode="wrap")
    return x / (x.std() + 1e-12)


def pen_trajectory(
    image: np.ndarray, rng: np.random.Generator, params: HandwritingParams = HandwritingParams()
) -> tuple[np.ndarray, np.ndarray]:
    """Pen position and velocity, each (n_bins, 2) as (x, y), while writing ``image`` (H, W).

    Positions are in image widths (0..1 across the image, y downwards); velocities in
    image widths per second.  The pen rests at the stroke start before writing and at its
    end after it; pen-up moves between strokes are part of the movement, as in real writing.
    """
    params.check()
    img = np.asarray(image, dtype=float)
    if img.ndim != 2 or img.max() <= 0:
        raise ValueError(f"pen_trajectory needs a 2-D image with some ink, got shape {img.shape}")
    big = ndimage.gaussian_filter(ndimage.zoom(img, params.work_scale, order=1), params.blur_px)
    skel = zhang_suen_thin(big >= params.ink_threshold * big.max())
    if not skel.any():
        raise ValueError("pen_trajectory: the image has no ink above ink_threshold")
    strokes = _trace(skel, params.min_stroke_px)
    path = np.concatenate(strokes)[:, ::-1] / (params.work_scale * img.shape[1])  # (x, y)
    seg = np.hypot(*np.diff(path, axis=0).T)
    # Pen-up moves between strokes take pen_up_time times as long as writing the same distance.
    jumps = np.cumsum([len(s) for s in strokes])[:-1] - 1
    seg[jumps] *= params.pen_up_time
    arc = np.concatenate([[0.0], np.cumsum(seg)])
    if arc[-1] <= 0:  # a single dot: the pen touches down and stays
        path, arc = path[:1], np.zeros(1)

    dt = params.bin_us * 1e-6
    t = np.arange(params.n_bins) * dt
    start = params.write_start_s + params.onset_jitter_s * rng.standard_normal()
    # Writers keep a roughly constant pace, so longer digits take longer (pen_speed > 0);
    # pen_speed = 0 writes every digit in write_duration_s.
    dur = arc[-1] / params.pen_speed if params.pen_speed > 0 else params.write_duration_s
    dur = min(dur, params.write_duration_s * 1.3)
    dur *= max(0.3, 1 + params.duration_jitter * rng.standard_normal())
    start = float(np.clip(start, 0.0, max(0.0, params.duration_s - dur)))
    # Timing jitter along the path: a smooth, positive speed profile.
    u = np.clip((t - start) / dur, 0.0, 1.0)
    speed = np.exp(params.speed_jitter * _smooth_noise(rng, params.n_bins - 1, params.n_bins / 12))
    warp = np.concatenate([[0.0], np.cumsum(speed[:-1] * np.diff(u))])
    warp = warp / warp[-1] if warp[-1] > 0 else u
    s = warp * arc[-1]
    pos = np.stack([np.interp(s, arc, path[:, 0]), np.interp(s, arc, path[:, 1])], axis=1)
    pos = ndimage.gaussian_filter1d(pos, params.smooth_s / dt, axis=0, mode="nearest")
    vel = np.gradient(pos, dt, axis=0)
    return pos, vel


def neural_rates(
    vel: np.ndarray, rng: np.random.Generator, params: HandwritingParams = HandwritingParams(),
    tuning: ElectrodeTuning | None = None, pos: np.ndarray | None = None,
) -> np.ndarray:
    """Firing rates (n_bins, n_electrodes) in Hz for pen velocity ``vel`` (n_bins, 2).

    ``pos`` (n_bins, 2) adds the optional position gain field (``position_depth_hz``).
    """
    tuning = tuning or electrode_tuning(params)
    n_bins = vel.shape[0]
    drive = (vel / params.ref_speed) @ tuning.preferred.T  # cosine tuning: |v| cos(angle)
    t = np.arange(n_bins) * params.bin_us * 1e-6
    phase = rng.uniform(0, 2 * np.pi, params.n_electrodes)
    drift = 1 + params.drift * np.sin(2 * np.pi * t[:, None] / params.drift_period_s + phase)
    rate = tuning.baseline_hz * drift + tuning.depth_hz * drive
    if pos is not None:
        rate = rate + (pos - 0.5) @ tuning.position_gain.T
    noise = np.exp(params.rate_noise * rng.standard_normal(rate.shape) - params.rate_noise**2 / 2)
    return np.maximum(rate, 0.0) * noise


def rates_to_events(rates: np.ndarray, rng: np.random.Generator, bin_us: int) -> np.ndarray:
    """Poisson spikes (NEURAL_DTYPE, sorted by t) from rates (n_bins, n_electrodes) in Hz."""
    counts = rng.poisson(rates * bin_us * 1e-6)
    b, e = np.nonzero(counts)
    reps = counts[b, e]
    ev = np.empty(int(reps.sum()), NEURAL_DTYPE)
    ev["t"] = np.repeat(b * bin_us, reps) + rng.integers(0, bin_us, len(ev))
    ev["x"] = np.repeat(e, reps)
    return ev[np.argsort(ev["t"], kind="stable")]


def emulate_neural(
    image: np.ndarray, rng: np.random.Generator, params: HandwritingParams = HandwritingParams()
) -> np.ndarray:
    """Spike events (NEURAL_DTYPE, t in µs, x = electrode) of a trial writing ``image``."""
    pos, vel = pen_trajectory(image, rng, params)
    rates = neural_rates(vel, rng, params, pos=pos)
    return rates_to_events(rates, rng, params.bin_us)


def emulate_path(
    pos: np.ndarray, rng: np.random.Generator, params: HandwritingParams = HandwritingParams()
) -> np.ndarray:
    """Spike events (NEURAL_DTYPE) of a trial whose pen positions ``pos`` (n_bins, 2), in
    image widths, are given: for writers whose strokes are known (letters.py), not traced."""
    pos = np.asarray(pos, dtype=float)
    if pos.shape != (params.n_bins, 2):
        raise ValueError(f"emulate_path needs positions of shape ({params.n_bins}, 2), got {pos.shape}")
    vel = np.gradient(pos, params.bin_us * 1e-6, axis=0)
    rates = neural_rates(vel, rng, params, pos=pos)
    return rates_to_events(rates, rng, params.bin_us)
