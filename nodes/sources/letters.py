"""Letters written by emulated writers: Hershey single-stroke glyphs -> pen paths -> neural
trials and 28x28 glyph images (the data of the paper's BMI setting, built offline).

Why: the BMI experiment pairs motor-cortex activity recorded while a letter is written with
an E-MNIST image of that letter; both derive from the letter's shape.  No recordings or
E-MNIST ship here, so the shapes come from the Hershey fonts of the ``hershey-fonts``
package.  Once duplicates are removed it holds two single-stroke Latin sets, Roman simplex
(``futural``) and Script simplex (``scripts``), upper and lower case; its duplex and triplex
fonts retrace outlines, so they are not the strokes a pen makes.  Writers are therefore ours:
each writer is a seed that draws a hand (font and case) and style parameters -- slant, width,
size, rotation, pace, a stroke-speed profile (how much the pen slows at stroke ends), the time
of pen-up moves, tremor and ink width -- and every instance adds affine and timing jitter.

- neural: the timed pen path, sampled in 10 ms bins (``HandwritingParams``), drives the
  handwriting emulator's cosine-tuned electrode population (``handwriting.emulate_path``);
- image: the pen-down path with the same style, fitted E-MNIST-like into a 28x28 frame (the
  longer side 24 px, 2 px border), rendered with the writer's ink width, then rate-coded as
  the paper does: every step each pixel spikes with probability equal to its intensity, 50
  steps of which the encoder's window keeps 49 (``RateCode``).

Pure numpy; everything random takes a ``numpy.random.Generator``.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import ndimage

from rram_lsm.stream.packets import NEURAL_DTYPE

from .handwriting import HandwritingParams, emulate_path

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"   # label k (1..26) is LETTERS[k - 1], as in the paper
FONTS = ("futural", "scripts")         # the distinct single-stroke Latin sets of hershey-fonts
CASES = ("upper", "lower")
_UNITS_PER_WIDTH = 32.0    # font units per image width (cap height 21 units -> 0.66 widths)
_Y_CENTRE = -1.5           # font y (downwards) placed at the middle: between cap line and baseline
_RESAMPLE_UNITS = 0.5      # spacing of the dense path, font units


@lru_cache(maxsize=None)
def glyph_strokes(font: str, case: str, letter: int) -> tuple[np.ndarray, ...]:
    """Strokes (each (n, 2) float, font units, y downwards) of letter 1..26 in ``font``/``case``."""
    if font not in FONTS:
        raise ValueError(f"font must be one of {FONTS}, got {font!r}")
    if case not in CASES:
        raise ValueError(f"case must be one of {CASES}, got {case!r}")
    if not 1 <= int(letter) <= 26:
        raise ValueError(f"letter must be 1..26 (A = 1), got {letter!r}")
    ch = LETTERS[int(letter) - 1]
    out = []
    for stroke in _font(font).strokes_for_text(ch if case == "upper" else ch.lower()):
        pts = np.asarray(stroke, dtype=float)
        keep = np.concatenate([[True], np.any(np.diff(pts, axis=0) != 0, axis=1)])
        out.append(pts[keep])
    return tuple(out)


@lru_cache(maxsize=None)
def _font(name: str):
    from HersheyFonts import HersheyFonts

    f = HersheyFonts()
    f.load_default_font(name)
    return f


def strokes_digest() -> str:
    """A hash of every stroke used, so a change in the font data changes the cache key."""
    h = hashlib.sha256()
    for font in FONTS:
        for case in CASES:
            for k in range(1, 27):
                for s in glyph_strokes(font, case, k):
                    h.update(np.ascontiguousarray(s).tobytes() + b"|")
    return h.hexdigest()[:16]


# ---------------------------------------------------------------- writers and instances

@dataclass(frozen=True)
class StyleParams:
    """How writers differ (drawn once per writer seed) and how one writer's instances vary."""

    slant: tuple[float, float] = (0.15, 0.15)       # shear (mean, std); > 0 leans right
    width_spread: float = 0.12                      # log-normal sigma of the width factor
    size_spread: float = 0.10                       # log-normal sigma of the size factor
    rotation_std: float = 0.05                      # rad
    pace: tuple[float, float] = (1.6, 0.25)         # widths/s along the path: median, log sigma
    speed_profile: tuple[float, float] = (0.2, 1.0)  # weight of the bell (minimum-jerk) profile per stroke, uniform range
    pen_up_time: tuple[float, float] = (0.3, 0.7)   # time of a pen-up move relative to writing it, uniform
    tremor_amp: tuple[float, float] = (0.002, 0.010)  # widths, log-uniform range
    tremor_hz: tuple[float, float] = (6.0, 11.0)
    ink_px: tuple[float, float] = (0.9, 1.6)        # pen radius on the 28x28 image, uniform
    # per instance
    jitter_rotation: float = 0.04                   # rad
    jitter_scale: float = 0.05                      # relative
    jitter_shear: float = 0.05
    jitter_shift: float = 0.03                      # widths
    onset_s: float = 0.25                           # mean pen-down time after trial start
    onset_jitter_s: float = 0.05
    pace_jitter: float = 0.08                       # relative std of an instance's pace
    stroke_jitter: float = 0.10                     # relative std of each stroke's duration
    max_write_s: float = 1.6                        # a longer letter is written faster


@dataclass(frozen=True)
class Writer:
    """One writer's hand and style (all drawn from its seed)."""

    font: str
    case: str
    slant: float
    width: float
    size: float
    rotation: float
    pace: float
    speed_profile: float
    pen_up_time: float
    tremor_amp: float
    tremor_hz: float
    ink_px: float


def draw_writer(rng: np.random.Generator, font: str, case: str,
                style: StyleParams = StyleParams()) -> Writer:
    """A writer of hand ``font``/``case`` whose style parameters are drawn as ``style`` says."""
    if font not in FONTS or case not in CASES:
        raise ValueError(f"a writer's hand is one of {FONTS} x {CASES}, got {font!r}, {case!r}")
    lo, hi = np.log(style.tremor_amp)
    return Writer(
        font=font, case=case,
        slant=float(style.slant[0] + style.slant[1] * rng.standard_normal()),
        width=float(np.exp(style.width_spread * rng.standard_normal())),
        size=float(np.exp(style.size_spread * rng.standard_normal())),
        rotation=float(style.rotation_std * rng.standard_normal()),
        pace=float(style.pace[0] * np.exp(style.pace[1] * rng.standard_normal())),
        speed_profile=float(rng.uniform(*style.speed_profile)),
        pen_up_time=float(rng.uniform(*style.pen_up_time)),
        tremor_amp=float(np.exp(rng.uniform(lo, hi))),
        tremor_hz=float(rng.uniform(*style.tremor_hz)),
        ink_px=float(rng.uniform(*style.ink_px)),
    )


@dataclass(frozen=True)
class TimedPath:
    """A written letter: dense pen positions (K, 2) in image widths (x, y downwards) at times
    (K,) in s, with ``down[k]`` True when the pen draws from point k to k + 1."""

    t: np.ndarray
    xy: np.ndarray
    down: np.ndarray

    def at(self, times: np.ndarray) -> np.ndarray:
        """Pen positions (n, 2) at ``times``: resting at the ends outside the writing."""
        return np.stack([np.interp(times, self.t, self.xy[:, 0]),
                         np.interp(times, self.t, self.xy[:, 1])], axis=1)


def _bell(u: np.ndarray, w: float) -> np.ndarray:
    """Arc fraction reached at time fraction u: linear blended with minimum jerk by w."""
    return (1 - w) * u + w * (10 * u**3 - 15 * u**4 + 6 * u**5)


def write_letter(letter: int, writer: Writer, rng: np.random.Generator,
                 style: StyleParams = StyleParams()) -> TimedPath:
    """The timed pen path of one instance of ``letter`` (1..26) by ``writer``.

    Geometry: the glyph (centred horizontally, its cap/baseline band vertically) gets the
    writer's width, size, slant and rotation and the instance's affine jitter, then tremor
    along time.  Timing: each stroke takes length / pace (x instance and stroke jitter), its
    arc followed with the writer's speed profile; pen-up moves are straight and take
    ``pen_up_time`` times as long as writing them would.
    """
    strokes = glyph_strokes(writer.font, writer.case, letter)
    allpts = np.concatenate(strokes)
    cx = 0.5 * (allpts[:, 0].min() + allpts[:, 0].max())
    dense = []
    for s in strokes:
        seg = np.hypot(*np.diff(s, axis=0).T)
        if len(s) == 1 or seg.sum() == 0:
            dense.append(s[:1])
            continue
        arc = np.concatenate([[0.0], np.cumsum(seg)])
        at = np.unique(np.concatenate([arc, np.arange(0.0, arc[-1], _RESAMPLE_UNITS)]))
        dense.append(np.stack([np.interp(at, arc, s[:, 0]), np.interp(at, arc, s[:, 1])], axis=1))

    rot = writer.rotation + style.jitter_rotation * rng.standard_normal()
    shear = writer.slant + style.jitter_shear * rng.standard_normal()
    scale = writer.size * np.exp(style.jitter_scale * rng.standard_normal(2)) / _UNITS_PER_WIDTH
    shift = 0.5 + style.jitter_shift * rng.standard_normal(2)
    c, s_ = np.cos(rot), np.sin(rot)
    affine = np.array([[c, -s_], [s_, c]]) @ np.array([[1.0, -shear], [0.0, 1.0]]) \
        @ np.diag([scale[0] * writer.width, scale[1]])
    placed = [(d - [cx, _Y_CENTRE]) @ affine.T + shift for d in dense]

    pace = writer.pace * max(0.3, 1 + style.pace_jitter * rng.standard_normal())
    lengths = [float(np.hypot(*np.diff(p, axis=0).T).sum()) if len(p) > 1 else 0.0 for p in placed]
    durs = [max(L / pace, 0.02) * max(0.3, 1 + style.stroke_jitter * rng.standard_normal())
            for L in lengths]
    ups = [writer.pen_up_time * float(np.hypot(*(b[0] - a[-1]))) / pace
           for a, b in zip(placed[:-1], placed[1:])]
    total = sum(durs) + sum(ups)
    squeeze = min(1.0, style.max_write_s / total) if total > 0 else 1.0
    onset = max(0.0, style.onset_s + style.onset_jitter_s * rng.standard_normal())

    grid = np.linspace(0.0, 1.0, 65)
    times, pts, down = [], [], []
    t0 = onset
    for i, p in enumerate(placed):
        dur = durs[i] * squeeze
        if len(p) > 1:
            arc = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(p, axis=0).T))])
            frac = arc / arc[-1] if arc[-1] > 0 else np.linspace(0, 1, len(p))
            u = np.interp(frac, _bell(grid, writer.speed_profile), grid)
        else:
            u = np.zeros(1)
        times.append(t0 + u * dur)
        pts.append(p)
        down.append(np.r_[np.ones(len(p) - 1, bool), False])
        t0 += dur + (ups[i] * squeeze if i < len(ups) else 0.0)
    t = np.concatenate(times)
    t = t + np.arange(len(t)) * 1e-9   # strictly increasing (a dot's points share a time)
    xy = np.concatenate(pts)
    phase = rng.uniform(0, 2 * np.pi, 2)
    xy = xy + writer.tremor_amp * np.sin(2 * np.pi * writer.tremor_hz * t[:, None] + phase)
    return TimedPath(t, xy, np.concatenate(down))


# ---------------------------------------------------------------- the two modalities

def trajectory(path: TimedPath, params: HandwritingParams = HandwritingParams()) -> np.ndarray:
    """Pen positions (n_bins, 2) sampled at the bin centres, low-passed like a muscle."""
    dt = params.bin_us * 1e-6
    pos = path.at((np.arange(params.n_bins) + 0.5) * dt)
    return ndimage.gaussian_filter1d(pos, params.smooth_s / dt, axis=0, mode="nearest")


def neural_trial(path: TimedPath, rng: np.random.Generator,
                 params: HandwritingParams = HandwritingParams()) -> tuple[np.ndarray, np.ndarray]:
    """(events NEURAL_DTYPE, positions (n_bins, 2)) of the emulated population writing ``path``."""
    pos = trajectory(path, params)
    return emulate_path(pos, rng, params), pos


@dataclass(frozen=True)
class GlyphParams:
    """E-MNIST-like framing of a glyph image."""

    size: int = 28      # pixels per side
    box: int = 24       # the glyph's longer side (E-MNIST: 2 px border)
    blur_px: float = 0.5


def glyph_image(path: TimedPath, ink_px: float, params: GlyphParams = GlyphParams()) -> np.ndarray:
    """The pen-down path rendered into a (size, size) image in [0, 1], centred, aspect kept."""
    xy = path.xy
    lo, hi = xy.min(axis=0), xy.max(axis=0)
    scale = params.box / max(float((hi - lo).max()), 1e-6)
    p = ((xy - 0.5 * (lo + hi)) * scale + params.size / 2).astype(np.float32)   # float32: half the memory traffic
    grid = np.arange(params.size, dtype=np.float32) + np.float32(0.5)
    gx, gy = (g.reshape(-1, 1) for g in np.meshgrid(grid, grid, indexing="xy"))   # pixel centres
    a, b = p[:-1][path.down[:-1]], p[1:][path.down[:-1]]
    if len(a) == 0:   # a lone dot
        a = b = p[:1]
    abx, aby = b[:, 0] - a[:, 0], b[:, 1] - a[:, 1]
    inv = np.float32(1.0) / np.maximum(abx**2 + aby**2, np.float32(1e-12))
    dx, dy = gx - a[:, 0], gy - a[:, 1]                      # (pixels, segments)
    u = np.clip((dx * abx + dy * aby) * inv, np.float32(0), np.float32(1))   # nearest point on each segment
    d = np.sqrt(((dx - u * abx) ** 2 + (dy - u * aby) ** 2).min(axis=1))
    img = np.clip(ink_px + 0.5 - d.astype(float), 0.0, 1.0).reshape(params.size, params.size)
    if params.blur_px > 0:
        img = ndimage.gaussian_filter(img, params.blur_px)
        img = img / max(img.max(), 1e-12)
    return img


def quantise(img: np.ndarray) -> np.ndarray:
    """An image in [0, 1] as uint8 (what is stored, and what the rate code reads)."""
    return np.round(np.clip(img, 0, 1) * 255).astype(np.uint8)


@dataclass(frozen=True)
class RateCode:
    """The paper's E-MNIST rate code: ``steps`` Bernoulli steps (p = gain x intensity), of
    which the encoder's time window keeps the first ``window``; ``step_us`` apart."""

    steps: int = 50
    window: int = 49
    step_us: int = 1000
    gain: float = 1.0

    def check(self) -> None:
        if not 0 < self.window <= self.steps or self.step_us <= 0 or self.gain <= 0:
            raise ValueError(f"RateCode needs 0 < window <= steps, step_us > 0, gain > 0; got {self}")


def rate_code(image_u8: np.ndarray, rng: np.random.Generator, code: RateCode = RateCode()) -> np.ndarray:
    """Events (NEURAL_DTYPE: t in µs, x = pixel y * W + x) of a uint8 image's rate code."""
    code.check()
    p = np.clip(code.gain * image_u8.reshape(-1).astype(float) / 255.0, 0.0, 1.0)
    spikes = rng.random((code.steps, p.size)) < p
    step, pix = np.nonzero(spikes[:code.window])     # row-major: sorted by step, then pixel
    ev = np.empty(len(step), NEURAL_DTYPE)
    ev["t"] = step.astype(np.int64) * code.step_us
    ev["x"] = pix
    return ev
