"""Cochlea emulator: audio -> 64-channel address events, in the manner of the DAS1 silicon cochlea.

Why: N-TIDIGITS was recorded by playing speech to a DAS1 (64 channels, cascaded band-pass
filters, rectification, integrate-and-fire spike generation).  Turning synthesised or
recorded audio into events of the same shape lets the audio encoder run on any sound.

Stages, each vectorised over samples (a loop runs only over the 64 channels):
1. log-spaced 4th-order gammatone filterbank (``scipy.signal.gammatone``), unity gain at each
   centre frequency; channel 0 is the lowest frequency;
2. half-wave rectification and an inner-hair-cell low-pass (the envelope, with phase locking
   at low frequencies);
3. log compression above a threshold level, then subtractive adaptation in the log domain
   (divisive gain control): onsets are emphasised, steady sounds decay to a lower rate, and
   the spectral shape across channels is kept;
4. per-channel integrate-and-fire with threshold mismatch and a random initial phase, rate
   capped by ``max_rate_hz`` (a refractory bound; at most one spike per envelope frame), plus Poisson background events.

``emulate_cochlea`` turns a whole recording into events at once (zero-phase resampling, one
RMS for the level); live audio in blocks goes through ``cochlea_stream.StreamingCochlea``,
the same stages with their state carried across blocks.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import signal

from rram_lsm.stream.node import ConfigError
from rram_lsm.stream.packets import COCHLEA_DTYPE


@dataclass(frozen=True)
class CochleaParams:
    """Cochlea emulator settings (defaults are a DAS1-like 64-channel ear)."""

    n_channels: int = 64
    f_low_hz: float = 100.0
    f_high_hz: float = 8000.0
    internal_rate_hz: int = 22050     # audio is resampled to this rate first
    target_rms: float | None = None   # scale input to this RMS (a microphone AGC); None = as is
    ihc_cutoff_hz: float = 1000.0     # inner-hair-cell low-pass
    envelope_decimation: int = 4      # envelope rate = internal rate / this (spike time grid)
    threshold_db: float = -60.0       # level (dB full scale) below which a channel is silent
    adapt_tau_ms: float = 40.0        # adaptation time constant
    adapt_strength: float = 0.6       # 0 = no adaptation, 1 = steady sounds fully adapted
    rate_gain_hz: float = 60.0        # spikes/s per unit of drive (log level, nepers)
    max_rate_hz: float = 800.0        # refractory bound on a channel's rate
    threshold_mismatch: float = 0.1   # sigma of log per-channel threshold
    noise_rate_hz: float = 0.5        # background events per channel per second

    def check(self) -> None:
        if self.n_channels < 1:
            raise ConfigError(f"CochleaParams.n_channels must be >= 1, got {self.n_channels}")
        if not 0 < self.f_low_hz < self.f_high_hz:
            raise ConfigError(
                f"CochleaParams.f_low_hz and f_high_hz need 0 < f_low_hz < f_high_hz, got {self.f_low_hz}, {self.f_high_hz}")
        if self.f_high_hz >= 0.5 * self.internal_rate_hz:
            raise ConfigError(
                f"CochleaParams.f_high_hz {self.f_high_hz} must be below half internal_rate_hz "
                f"{self.internal_rate_hz}")
        if not 0 <= self.adapt_strength <= 1:
            raise ConfigError(f"CochleaParams.adapt_strength must be in [0, 1], got {self.adapt_strength}")
        if self.max_rate_hz <= 0:
            raise ConfigError(f"CochleaParams.max_rate_hz must be > 0, got {self.max_rate_hz}")
        if self.envelope_decimation < 1:
            raise ConfigError(
                f"CochleaParams.envelope_decimation must be >= 1, got {self.envelope_decimation}")
        if self.max_rate_hz >= self.envelope_rate_hz:
            raise ConfigError(
                f"CochleaParams.max_rate_hz {self.max_rate_hz} must be below the envelope rate "
                f"{self.envelope_rate_hz} Hz")
        for key in ("ihc_cutoff_hz", "adapt_tau_ms", "rate_gain_hz"):
            if getattr(self, key) <= 0:
                raise ConfigError(f"CochleaParams.{key} must be > 0, got {getattr(self, key)}")
        for key in ("threshold_mismatch", "noise_rate_hz"):
            if getattr(self, key) < 0:
                raise ConfigError(f"CochleaParams.{key} must be >= 0, got {getattr(self, key)}")

    @property
    def envelope_rate_hz(self) -> float:
        return self.internal_rate_hz / self.envelope_decimation

    def as_dict(self) -> dict:
        return asdict(self)


def channel_centre_frequencies(params: CochleaParams = CochleaParams()) -> np.ndarray:
    """Centre frequencies (Hz) of the channels, log-spaced, ascending (channel 0 lowest)."""
    return np.geomspace(params.f_low_hz, params.f_high_hz, params.n_channels)


def _filterbank(params: CochleaParams) -> list[np.ndarray]:
    """Second-order sections of each channel's gammatone, normalised to unity gain at fc."""
    fs = params.internal_rate_hz
    bank = []
    for fc in channel_centre_frequencies(params):
        b, a = signal.gammatone(float(fc), "iir", fs=fs)
        sos = signal.tf2sos(b, a)
        _, h = signal.sosfreqz(sos, worN=[float(fc)], fs=fs)
        sos[0, :3] /= abs(h[0])
        bank.append(sos)
    return bank


_BANKS: dict[tuple, list[np.ndarray]] = {}


def _cached_filterbank(params: CochleaParams) -> list[np.ndarray]:
    key = (params.n_channels, params.f_low_hz, params.f_high_hz, params.internal_rate_hz)
    if key not in _BANKS:
        _BANKS[key] = _filterbank(params)
    return _BANKS[key]


def _resample(audio: np.ndarray, sr: int, target: int) -> np.ndarray:
    if sr == target:
        return audio
    from fractions import Fraction

    ratio = Fraction(target, sr).limit_denominator(1000)
    return signal.resample_poly(audio, ratio.numerator, ratio.denominator)


def cochlea_drive(audio: np.ndarray, sr: int, params: CochleaParams = CochleaParams()
                  ) -> np.ndarray:
    """Adapted, compressed channel drive, shape (n_channels, frames) at the envelope rate."""
    params.check()
    audio = np.asarray(audio, dtype=np.float64)
    if audio.ndim == 2:  # (samples, channels) as WAV readers give it: mix to mono
        audio = audio.mean(axis=1)
    if audio.ndim != 1:
        raise ValueError(f"audio must be 1-D (or samples x channels), got shape {audio.shape}")
    if sr <= 0:
        raise ValueError(f"sample rate must be > 0, got {sr}")
    fs = params.internal_rate_hz
    x = _resample(audio, int(sr), fs)
    if params.target_rms is not None:
        rms = float(np.sqrt(np.mean(x * x))) if x.size else 0.0
        if rms > 1e-7:
            x = x * (params.target_rms / rms)
    bank = _cached_filterbank(params)
    bm = np.empty((params.n_channels, x.size))
    for ch, sos in enumerate(bank):
        bm[ch] = signal.sosfilt(sos, x)
    np.maximum(bm, 0.0, out=bm)  # half-wave rectification
    b, a = signal.butter(2, params.ihc_cutoff_hz, fs=fs)
    env = signal.lfilter(b, a, bm, axis=1)[:, ::params.envelope_decimation]
    fs = params.envelope_rate_hz
    floor = 10.0 ** (params.threshold_db / 20.0)
    level = np.log1p(np.maximum(env, 0.0) / floor)
    if params.adapt_strength > 0:
        alpha = np.exp(-1.0 / (params.adapt_tau_ms * 1e-3 * fs))
        slow = signal.lfilter([1.0 - alpha], [1.0, -alpha], level, axis=1)
        level = np.maximum(level - params.adapt_strength * slow, 0.0)
    return level


def emulate_cochlea(audio: np.ndarray, sr: int, rng: np.random.Generator,
                    params: CochleaParams = CochleaParams(), t0_us: int = 0) -> np.ndarray:
    """Turn audio (float, any sample rate) into COCHLEA_DTYPE events sorted by time then channel.

    ``p`` is 1 (ON) for every event; ``x`` is the channel (0 = lowest frequency); ``t`` is in
    integer microseconds from ``t0_us``.
    """
    drive = cochlea_drive(audio, sr, params)
    fs = params.envelope_rate_hz
    n_ch, n = drive.shape
    if n == 0:
        return np.zeros(0, COCHLEA_DTYPE)
    rate = np.minimum(drive * params.rate_gain_hz, params.max_rate_hz)
    thresholds = np.exp(rng.normal(0.0, params.threshold_mismatch, n_ch)) if \
        params.threshold_mismatch > 0 else np.ones(n_ch)
    phase = rng.random(n_ch)
    # Integrate-and-fire with reset by subtraction: a spike whenever the integral crosses an
    # integer multiple of the threshold.  max_rate_hz < fs bounds it to one spike per frame.
    integral = np.cumsum(rate / fs, axis=1) / thresholds[:, None] + phase[:, None]
    counts = np.floor(integral)
    fired = np.diff(counts, axis=1, prepend=np.floor(phase)[:, None]) > 0
    ch, idx = np.nonzero(fired)
    t = (idx.astype(np.int64) * 1_000_000 * params.envelope_decimation
         // params.internal_rate_hz)
    duration_us = int(n * 1_000_000 * params.envelope_decimation // params.internal_rate_hz)
    if params.noise_rate_hz > 0:
        n_noise = rng.poisson(params.noise_rate_hz * n_ch * duration_us * 1e-6)
        ch = np.concatenate([ch, rng.integers(0, n_ch, n_noise)])
        t = np.concatenate([t, rng.integers(0, max(duration_us, 1), n_noise)])
    events = np.zeros(t.size, COCHLEA_DTYPE)
    order = np.lexsort((ch, t))
    events["t"] = t[order] + int(t0_us)
    events["x"] = ch[order]
    events["p"] = 1
    return events


def tone(freq_hz: float, duration_s: float, sr: int = 22050, amplitude: float = 0.3
         ) -> np.ndarray:
    """A pure sine tone (float32), handy for calibration and tests."""
    t = np.arange(int(round(duration_s * sr))) / sr
    return (amplitude * np.sin(2 * np.pi * freq_hz * t)).astype(np.float32)
