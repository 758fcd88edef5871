"""The cochlea emulator as a stream: audio blocks in, events out, state carried across blocks.

Why: a microphone delivers sound in blocks; restarting the filterbank on every block (what
``emulate_cochlea`` would do) adds a settling transient per block and makes the events depend
on the block size.  ``StreamingCochlea`` carries every stage's state, so one signal fed as one
block or as many small blocks gives exactly the same events:

- resampling: the polyphase FIR that ``scipy.signal.resample_poly`` designs, centred as it
  is, each output a fixed sum over its own inputs, computed once its newest input has come
  (a latency of half the filter, about 10 input samples);
- level normalisation (``target_rms``): a gain from the running mean square over
  ``agc_window_ms`` (a one-pole average, bias-corrected at the start) instead of one RMS over
  the whole signal;
- filterbank, inner-hair-cell low-pass and adaptation: IIR filters with their state kept;
  the envelope's decimation phase counts samples from the stream start;
- integrate-and-fire: the integral carries over; the threshold mismatch and the initial phase
  are a fixed property of the emulated device, drawn once from the seed;
- background noise: drawn per fixed frame of ``noise_frame_ms`` of stream time from
  ``(seed, frame)``, and emitted in whichever block covers each event's time.

Equality is exact because every output sample is computed from the same inputs in the same
order whatever the block boundaries: sequential recursions (IIR filters, cumulative sums)
continue from their carried state, and each resampled sample is one row-sum of fixed length.
Events differ from ``emulate_cochlea`` on the same audio (causal filters and a running
level instead of zero-phase resampling and a whole-signal RMS); their statistics are the same.
"""
from __future__ import annotations

from fractions import Fraction

import numpy as np
from scipy import signal

from rram_lsm.stream.packets import COCHLEA_DTYPE

from .cochlea import CochleaParams, _cached_filterbank


class StreamingResampler:
    """Causal polyphase resampling by up/down with carried history (exact across blocks)."""

    def __init__(self, sr: int, target: int):
        ratio = Fraction(target, sr).limit_denominator(1000)
        self.up, self.down = ratio.numerator, ratio.denominator
        half = 10 * max(self.up, self.down)
        h = signal.firwin(2 * half + 1, 1.0 / max(self.up, self.down), window=("kaiser", 5.0)) * self.up
        self.taps = -(-len(h) // self.up)
        h = np.concatenate([h, np.zeros(self.taps * self.up - len(h))])
        self.poly = h.reshape(self.taps, self.up).T.copy()  # poly[phase, j] = h[phase + j * up]
        self.history = np.zeros(self.taps - 1)  # inputs before the stream start are silence
        self.half = half  # output k sits at upsampled position k * down + half: centred, no delay
        self.n_in = 0
        self.k_next = 0

    def __call__(self, x: np.ndarray) -> np.ndarray:
        base = self.n_in - (self.taps - 1)  # absolute index of buf[0]
        buf = np.concatenate([self.history, x])
        self.n_in += len(x)
        # outputs whose newest input has arrived: k * down + half < n_in * up
        k_end = max(self.k_next, -(-(self.n_in * self.up - self.half) // self.down))
        k = np.arange(self.k_next, k_end, dtype=np.int64)
        self.k_next = k_end
        self.history = buf[len(buf) - (self.taps - 1):]
        u = k * self.down + self.half
        idx = (u // self.up - base)[:, None] - np.arange(self.taps)[None, :]
        return (buf[idx] * self.poly[u % self.up]).sum(axis=1)


class StreamingCochlea:
    """Audio blocks (float, ``sr`` Hz) -> cochlea events on one stream time line (µs from 0)."""

    def __init__(self, params: CochleaParams, sr: int, seed: int = 0,
                 agc_window_ms: float = 500.0, noise_frame_ms: float = 100.0):
        params.check()
        if sr <= 0 or agc_window_ms <= 0 or noise_frame_ms <= 0:
            raise ValueError(f"StreamingCochlea: sample rate {sr}, agc_window_ms {agc_window_ms} "
                             f"and noise_frame_ms {noise_frame_ms} must be > 0")
        self.p, self.sr, self.seed = params, int(sr), int(seed)
        fs = params.internal_rate_hz
        self.resampler = StreamingResampler(self.sr, fs) if self.sr != fs else None
        n_ch = params.n_channels
        self.bank = _cached_filterbank(params)
        self.zi_bank = np.zeros((n_ch, self.bank[0].shape[0], 2))
        self.ihc = signal.butter(2, params.ihc_cutoff_hz, fs=fs)
        self.zi_ihc = np.zeros((n_ch, 2))
        env_fs = params.envelope_rate_hz
        self.adapt_alpha = np.exp(-1.0 / (params.adapt_tau_ms * 1e-3 * env_fs))
        self.zi_adapt = np.zeros((n_ch, 1))
        self.agc_alpha = np.exp(-1.0 / (agc_window_ms * 1e-3 * fs))
        self.zi_agc = np.zeros(1)
        rng = np.random.default_rng(self.seed)  # the device's fixed mismatch and initial phase
        self.thresholds = (np.exp(rng.normal(0.0, params.threshold_mismatch, n_ch))
                           if params.threshold_mismatch > 0 else np.ones(n_ch))
        self.integral = rng.random(n_ch)
        self.n_internal = 0  # internal-rate samples so far
        self.noise_frame_us = int(noise_frame_ms * 1000)
        self._noise: tuple[int, np.ndarray, np.ndarray] | None = None  # (frame, t, ch)

    def frame_time_us(self, frame: int | np.ndarray):
        """Stream time (µs) of envelope frame ``frame`` (same rule as ``emulate_cochlea``)."""
        return frame * 1_000_000 * self.p.envelope_decimation // self.p.internal_rate_hz

    def _level(self, x: np.ndarray) -> np.ndarray:
        if self.p.target_rms is None or not len(x):
            return x
        a = self.agc_alpha
        ms, self.zi_agc = signal.lfilter([1.0 - a], [1.0, -a], x * x, zi=self.zi_agc)
        k = np.arange(self.n_internal + 1, self.n_internal + len(x) + 1)
        ms = ms / -np.expm1(k * np.log(a))  # bias correction of a running average begun at 0
        rms = np.sqrt(ms)
        return x * np.where(rms > 1e-7, self.p.target_rms / np.maximum(rms, 1e-7), 1.0)

    def _noise_between(self, t0: int, t1: int) -> tuple[np.ndarray, np.ndarray]:
        """Background events with times in [t0, t1), drawn per fixed frame from (seed, frame)."""
        p = self.p
        if p.noise_rate_hz <= 0 or t1 <= t0:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        ts, chs = [], []
        for frame in range(t0 // self.noise_frame_us, (t1 - 1) // self.noise_frame_us + 1):
            if self._noise is None or self._noise[0] != frame:
                rng = np.random.default_rng([self.seed, 1, frame])
                n = rng.poisson(p.noise_rate_hz * p.n_channels * self.noise_frame_us * 1e-6)
                self._noise = (frame, frame * self.noise_frame_us + rng.integers(0, self.noise_frame_us, n),
                               rng.integers(0, p.n_channels, n))
            _, t, ch = self._noise
            keep = (t >= t0) & (t < t1)
            ts.append(t[keep])
            chs.append(ch[keep])
        return np.concatenate(ts), np.concatenate(chs)

    def process(self, audio: np.ndarray) -> np.ndarray:
        """Events (COCHLEA_DTYPE, sorted by time then channel) of the next block of audio."""
        p = self.p
        x = np.asarray(audio, dtype=np.float64)
        if x.ndim == 2:
            x = x.mean(axis=1)
        if x.ndim != 1:
            raise ValueError(f"audio must be 1-D (or samples x channels), got shape {x.shape}")
        if self.resampler is not None:
            x = self.resampler(x)
        x = self._level(x)
        i0 = self.n_internal
        self.n_internal += len(x)
        d = p.envelope_decimation
        f0 = -(-i0 // d)  # first envelope frame (absolute) in this block
        f1 = -(-self.n_internal // d)
        bm = np.empty((p.n_channels, len(x)))
        for ch, sos in enumerate(self.bank):
            bm[ch], self.zi_bank[ch] = signal.sosfilt(sos, x, zi=self.zi_bank[ch])
        np.maximum(bm, 0.0, out=bm)
        env, self.zi_ihc = signal.lfilter(*self.ihc, bm, axis=1, zi=self.zi_ihc)
        env = env[:, f0 * d - i0::d]
        level = np.log1p(np.maximum(env, 0.0) / 10.0 ** (p.threshold_db / 20.0))
        if p.adapt_strength > 0:
            a = self.adapt_alpha
            slow, self.zi_adapt = signal.lfilter([1.0 - a], [1.0, -a], level, axis=1, zi=self.zi_adapt)
            level = np.maximum(level - p.adapt_strength * slow, 0.0)
        rate = np.minimum(level * p.rate_gain_hz, p.max_rate_hz)
        inc = rate / p.envelope_rate_hz / self.thresholds[:, None]
        # the integral continues sequentially from the carried value (cumsum is sequential)
        integral = np.cumsum(np.concatenate([self.integral[:, None], inc], axis=1), axis=1)
        fired = np.diff(np.floor(integral), axis=1) > 0
        self.integral = integral[:, -1]
        ch, idx = np.nonzero(fired)
        t = self.frame_time_us(idx.astype(np.int64) + f0)
        nt, nch = self._noise_between(int(self.frame_time_us(f0)), int(self.frame_time_us(f1)))
        t, ch = np.concatenate([t, nt]), np.concatenate([ch, nch])
        order = np.lexsort((ch, t))
        events = np.zeros(t.size, COCHLEA_DTYPE)
        events["t"], events["x"], events["p"] = t[order], ch[order], 1
        return events
