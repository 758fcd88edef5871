"""Saccade DVS emulator: turns an ordinary image into events the way N-MNIST was recorded.

N-MNIST was made by moving a DVS camera in three saccades (a triangle of a few pixels, about
100 ms each) in front of a screen showing the digit.  Here the image moves on the sensor along
the same triangle with a bell-shaped velocity profile and rests between saccades, so events
come in three bursts.  Each pixel fires when its log intensity moves by its own threshold
(per-pixel mismatch) away from the level at its last event, then stays silent for a
refractory period; background noise events are added at a fixed rate per pixel.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rram_lsm.stream.node import ConfigError
from rram_lsm.stream.packets import DVS_DTYPE


@dataclass(frozen=True)
class SaccadeParams:
    """Emulator settings; defaults fit the built-in 16x16 images on a 16x16 sensor."""

    sensor_size: tuple[int, int] = (16, 16)   # (W, H); the image is centred, overflow cropped
    amplitude_px: float = 2.0                 # size of the saccade triangle
    saccade_us: int = 100_000                 # one saccade window (three of them: ~300 ms)
    move_fraction: float = 0.6                # part of each window spent moving, then rest
    dt_us: int = 500                          # simulation step
    threshold: float = 0.2                    # log-intensity contrast threshold
    threshold_mismatch: float = 0.03          # std of the per-pixel threshold
    refractory_us: int = 1_000
    dark_level: float = 0.05                  # added before log, like a screen's black level
    noise_hz: float = 0.5                     # background events per pixel per second

    def check(self) -> None:
        w, h = self.sensor_size
        if w <= 0 or h <= 0:
            raise ConfigError(f"SaccadeParams.sensor_size must be positive (W, H), got {self.sensor_size}")
        for key in ("saccade_us", "dt_us", "threshold", "dark_level"):
            if getattr(self, key) <= 0:
                raise ConfigError(f"SaccadeParams.{key} must be > 0, got {getattr(self, key)}")
        if not 0 < self.move_fraction <= 1:
            raise ConfigError(f"SaccadeParams.move_fraction must be in (0, 1], got {self.move_fraction}")
        for key in ("amplitude_px", "threshold_mismatch", "refractory_us", "noise_hz"):
            if getattr(self, key) < 0:
                raise ConfigError(f"SaccadeParams.{key} must be >= 0, got {getattr(self, key)}")

    @property
    def duration_us(self) -> int:
        return 3 * self.saccade_us


def saccade_path(t_us: np.ndarray, params: SaccadeParams) -> np.ndarray:
    """Image offset (dx, dy) in pixels at times ``t_us``: a triangle, one side per saccade."""
    a = params.amplitude_px
    corners = np.array([[0.0, 0.0], [a, a], [-a, a], [0.0, 0.0]]) * 0.5
    corners -= corners[:3].mean(axis=0)  # move around the centre, not to one side
    k = np.clip(t_us // params.saccade_us, 0, 2).astype(int)
    phase = (t_us - k * params.saccade_us) / (params.saccade_us * params.move_fraction)
    phase = np.clip(phase, 0.0, 1.0)
    s = (1 - np.cos(np.pi * phase)) / 2  # bell-shaped velocity, zero at both ends
    return corners[k] + (corners[k + 1] - corners[k]) * s[:, None]


def _place(image: np.ndarray, sensor: tuple[int, int], margin: int) -> np.ndarray:
    """The image centred on a sensor canvas with ``margin`` spare pixels on each side."""
    w, h = sensor
    canvas = np.zeros((h + 2 * margin, w + 2 * margin))
    ih, iw = image.shape
    # Centre crop where the image is larger than the canvas.
    cy0, cx0 = max(0, (ih - canvas.shape[0]) // 2), max(0, (iw - canvas.shape[1]) // 2)
    crop = image[cy0:cy0 + canvas.shape[0], cx0:cx0 + canvas.shape[1]]
    oy, ox = (canvas.shape[0] - crop.shape[0]) // 2, (canvas.shape[1] - crop.shape[1]) // 2
    canvas[oy:oy + crop.shape[0], ox:ox + crop.shape[1]] = crop
    return canvas


def placed_image(image: np.ndarray, params: SaccadeParams = SaccadeParams()) -> np.ndarray:
    """The image as the sensor sees it at rest, (H, W): useful to relate events to pixels."""
    return _place(np.asarray(image, dtype=float), params.sensor_size, 0)


def _log_frames(canvas: np.ndarray, offsets: np.ndarray, margin: int, shape: tuple[int, int],
                dark_level: float) -> np.ndarray:
    """Log intensity on the sensor for each image offset (dx, dy), (T, H, W), all at once.

    Bilinear interpolation of the canvas shifted by the offset (what ``ndimage.shift`` with
    ``order=1`` computes); the margin keeps every sample inside the canvas.
    """
    h, w = shape
    sy = np.arange(margin, margin + h)[None, :] - offsets[:, 1:2]  # source rows, (T, H)
    sx = np.arange(margin, margin + w)[None, :] - offsets[:, 0:1]  # source columns, (T, W)
    y0, x0 = np.floor(sy).astype(np.intp), np.floor(sx).astype(np.intp)
    fy, fx = (sy - y0)[:, :, None], (sx - x0)[:, None, :]
    rows0, rows1 = y0[:, :, None], y0[:, :, None] + 1
    cols0, cols1 = x0[:, None, :], x0[:, None, :] + 1
    top = canvas[rows0, cols0] * (1 - fx) + canvas[rows0, cols1] * fx
    bottom = canvas[rows1, cols0] * (1 - fx) + canvas[rows1, cols1] * fx
    return np.log(top * (1 - fy) + bottom * fy + dark_level)


def emulate_saccades(
    image: np.ndarray, rng: np.random.Generator, params: SaccadeParams = SaccadeParams()
) -> np.ndarray:
    """DVS events (DVS_DTYPE, sorted by t) of ``image`` (H, W) in [0, 1] seen through 3 saccades.

    Polarity 1 is ON (brighter), 0 is OFF.  Coordinates lie in ``params.sensor_size``.
    """
    params.check()
    img = np.asarray(image, dtype=float)
    if img.ndim != 2:
        raise ValueError(f"emulate_saccades expects a 2-D (H, W) image, got shape {img.shape}")
    if not np.isfinite(img).all() or img.min() < 0 or img.max() > 1:
        raise ValueError("emulate_saccades expects finite intensities in [0, 1]")
    w, h = params.sensor_size
    margin = int(np.ceil(params.amplitude_px)) + 2
    canvas = _place(img, params.sensor_size, margin)

    steps = np.arange(params.dt_us, params.duration_us + 1, params.dt_us)
    path = saccade_path(np.concatenate([[0], steps]), params)
    frames = _log_frames(canvas, path, margin, (h, w), params.dark_level)
    theta_on = np.maximum(params.threshold + params.threshold_mismatch * rng.standard_normal((h, w)), 0.01)
    theta_off = np.maximum(params.threshold + params.threshold_mismatch * rng.standard_normal((h, w)), 0.01)
    # A real pixel starts from an arbitrary point between its thresholds.
    ref = frames[0] + rng.uniform(-1, 1, (h, w)) * theta_off * 0.5
    last = np.full((h, w), -np.inf)
    chunks: list[np.ndarray] = []
    for t, frame in zip(steps, frames[1:]):
        diff = frame - ref
        ready = (t - last) >= params.refractory_us
        on = ready & (diff >= theta_on)
        offp = ready & (diff <= -theta_off)
        fire = on | offp
        if not fire.any():
            continue
        ys, xs = np.nonzero(fire)
        pol = on[ys, xs]
        # Several threshold crossings within one step collapse into one event plus the
        # remaining level change, which the pixel reports at its next ready step.
        ref[ys, xs] += np.where(pol, theta_on[ys, xs], -theta_off[ys, xs])
        tt = t - rng.integers(0, params.dt_us, len(ys))
        last[ys, xs] = tt
        ev = np.empty(len(ys), DVS_DTYPE)
        ev["t"], ev["x"], ev["y"], ev["p"] = tt, xs, ys, pol
        chunks.append(ev)
    n_noise = rng.poisson(params.noise_hz * w * h * params.duration_us * 1e-6)
    noise = np.empty(n_noise, DVS_DTYPE)
    noise["t"] = rng.integers(0, params.duration_us, n_noise)
    noise["x"] = rng.integers(0, w, n_noise)
    noise["y"] = rng.integers(0, h, n_noise)
    noise["p"] = rng.integers(0, 2, n_noise)
    chunks.append(noise)
    events = np.concatenate(chunks)
    return events[np.argsort(events["t"], kind="stable")]
