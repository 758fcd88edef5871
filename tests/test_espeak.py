"""eSpeak NG through the ctypes binding: real speech, voices, pitch and rate."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import signal

from rram_lsm.nodes.sources.espeak import EspeakError, Voice, synthesize, synthesize_many, trim_silence


def _f0(audio: np.ndarray, sr: int) -> float:
    """Fundamental frequency of the loudest 150 ms: autocorrelation over 60–400 Hz of the
    signal low-passed at 400 Hz (so formants do not win over the fundamental)."""
    b, a = signal.butter(4, 400, fs=sr)
    audio = signal.filtfilt(b, a, audio)
    n = int(0.15 * sr)
    energy = np.convolve(audio ** 2, np.ones(n), "valid")
    seg = audio[int(np.argmax(energy)):][:n].astype(np.float64)
    seg = seg - seg.mean()
    ac = np.correlate(seg, seg, "full")[n - 1:]
    lo, hi = int(sr / 400), int(sr / 60)
    return sr / (lo + int(np.argmax(ac[lo:hi])))


def test_seven_is_real_speech():
    audio, sr = synthesize("seven", "en")
    assert sr == 22050
    assert audio.dtype == np.float32 and np.abs(audio).max() <= 1.0
    speech = trim_silence(audio)
    assert 0.2 < len(speech) / sr < 1.5
    assert np.sqrt(np.mean(speech ** 2)) > 0.02
    # Speech, not a tone: energy spread over frequencies, with a voiced fundamental.
    assert 70 < _f0(speech, sr) < 300


def test_synthesize_many_is_reproducible_and_voices_differ():
    requests = [("seven", Voice(v)) for v in ("en-us", "en+f4", "en-gb-scotland", "en-us+m7")]
    first, sr = synthesize_many(requests)
    again, sr2 = synthesize_many(requests)
    assert sr == sr2 == 22050
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    # Voices differ by more than eSpeak's small history-dependent flutter.
    base = trim_silence(first[0])
    for other in map(trim_silence, first[1:]):
        n = min(len(base), len(other))
        assert abs(len(other) - len(base)) > 200 or np.abs(other[:n] - base[:n]).mean() > 0.02


def test_pitch_and_rate_parameters_take_effect():
    low, sr = synthesize("seven", Voice("en", pitch=30))
    high, _ = synthesize("seven", Voice("en", pitch=90))
    assert _f0(trim_silence(high), sr) > 1.3 * _f0(trim_silence(low), sr)
    slow, _ = synthesize("seven", "en", rate=100)
    fast, _ = synthesize("seven", "en", rate=400)
    assert len(trim_silence(fast)) < 0.7 * len(trim_silence(slow))


def test_female_variant_is_higher():
    male, sr = synthesize("nine", "en+m1")
    female, _ = synthesize("nine", "en+f4")
    assert _f0(trim_silence(female), sr) > 1.2 * _f0(trim_silence(male), sr)


def test_bad_voice_and_parameters_are_named():
    with pytest.raises(EspeakError, match="no-such-voice"):
        synthesize("seven", "no-such-voice")
    with pytest.raises(ValueError, match="rate"):
        synthesize("seven", Voice("en", rate=10))
    with pytest.raises(ValueError, match="pitch"):
        synthesize("seven", Voice("en", pitch=101))
