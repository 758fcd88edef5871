"""Cochlea emulator statistics, and WAV files in and out."""
from __future__ import annotations

import wave

import numpy as np
import pytest

from rram_lsm.nodes.sources.cochlea import (CochleaParams, channel_centre_frequencies, cochlea_drive,
                                   emulate_cochlea, tone)
from rram_lsm.nodes.sources.espeak import synthesize, trim_silence
from rram_lsm.nodes.sources.wav import read_wav, write_wav
from rram_lsm.stream.node import ConfigError
from rram_lsm.stream.packets import COCHLEA_DTYPE

P = CochleaParams()
FC = channel_centre_frequencies(P)


def _histogram(ev: np.ndarray) -> np.ndarray:
    return np.bincount(ev["x"], minlength=P.n_channels)


def test_channels_are_log_spaced_low_to_high():
    assert FC.shape == (64,)
    assert FC[0] == pytest.approx(100) and FC[-1] == pytest.approx(8000)
    ratios = FC[1:] / FC[:-1]
    assert np.all(ratios > 1) and np.allclose(ratios, ratios[0])


@pytest.mark.parametrize("freq", [300.0, 1000.0, 3000.0])
def test_a_tone_excites_the_channels_tuned_to_it(freq):
    ev = emulate_cochlea(tone(freq, 0.5), 22050, np.random.default_rng(0), P)
    hist = _histogram(ev)
    nearest = int(np.argmin(np.abs(np.log(FC / freq))))
    assert abs(int(np.argmax(hist)) - nearest) <= 2
    # Most events lie within a few channels of the tone; far channels stay near the noise floor.
    assert hist[max(0, nearest - 6):nearest + 7].sum() > 0.7 * hist.sum()


def test_lower_tone_peaks_at_a_lower_channel():
    rng = np.random.default_rng(1)
    low = np.argmax(_histogram(emulate_cochlea(tone(300, 0.4), 22050, rng, P)))
    high = np.argmax(_histogram(emulate_cochlea(tone(1000, 0.4), 22050, rng, P)))
    assert FC[low] < 400 < 800 < FC[high] < 1300


def test_events_are_sorted_typed_and_in_range():
    audio, sr = synthesize("seven", "en")
    ev = emulate_cochlea(trim_silence(audio), sr, np.random.default_rng(2), CochleaParams(target_rms=0.1))
    assert ev.dtype == COCHLEA_DTYPE and len(ev) > 200
    order = np.lexsort((ev["x"], ev["t"]))
    assert np.array_equal(order, np.arange(len(ev)))
    assert ev["x"].max() < 64 and np.all(ev["p"] == 1)
    assert ev["t"].min() >= 0 and ev["t"].max() <= len(trim_silence(audio)) / sr * 1e6
    # Speech is broadband: "seven" has a fricative (high channels) and vowels (low channels).
    hist = _histogram(ev)
    assert hist[FC > 3000].sum() > 0.05 * len(ev) and hist[FC < 1000].sum() > 0.2 * len(ev)


def test_silence_gives_only_background_events():
    rng = np.random.default_rng(3)
    silent = emulate_cochlea(np.zeros(22050), 22050, rng, P)
    expected = P.noise_rate_hz * 64 * 1.0
    assert len(silent) < expected + 5 * np.sqrt(expected) + 1
    quiet = emulate_cochlea(np.zeros(22050), 22050, rng, CochleaParams(noise_rate_hz=0))
    assert len(quiet) == 0
    loud = emulate_cochlea(tone(1000, 1.0), 22050, rng, P)
    assert len(loud) > 10 * len(silent)


def test_adaptation_emphasises_onsets():
    x = tone(1000, 0.6)
    drive = cochlea_drive(x, 22050, P)
    ch = int(np.argmin(np.abs(FC - 1000)))
    fps = P.envelope_rate_hz
    onset = drive[ch, int(0.005 * fps):int(0.03 * fps)].mean()
    steady = drive[ch, int(0.4 * fps):int(0.55 * fps)].mean()
    assert onset > 1.5 * steady > 0
    flat = cochlea_drive(x, 22050, CochleaParams(adapt_strength=0.0))
    assert flat[ch, int(0.4 * fps):int(0.55 * fps)].mean() > 1.5 * steady


def test_seeded_and_resampled():
    x = tone(1000, 0.3)
    a = emulate_cochlea(x, 22050, np.random.default_rng(7), P)
    b = emulate_cochlea(x, 22050, np.random.default_rng(7), P)
    c = emulate_cochlea(x, 22050, np.random.default_rng(8), P)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    ev16k = emulate_cochlea(tone(1000, 0.3, sr=16000), 16000, np.random.default_rng(7), P)
    assert abs(int(np.argmax(_histogram(ev16k))) - int(np.argmax(_histogram(a)))) <= 1
    # Timestamps follow the audio's own clock whatever its rate.
    assert ev16k["t"].max() < 0.3e6 + 1000


def test_bad_parameters_name_the_key():
    with pytest.raises(ConfigError, match="f_high_hz"):
        emulate_cochlea(tone(1000, 0.1), 22050, np.random.default_rng(0),
                        CochleaParams(f_high_hz=12000))
    with pytest.raises(ConfigError, match="adapt_strength"):
        CochleaParams(adapt_strength=2).check()
    with pytest.raises(ValueError, match="1-D"):
        emulate_cochlea(np.zeros((2, 3, 4)), 22050, np.random.default_rng(0))


def test_wav_round_trip_and_formats(tmp_path):
    x = tone(1000, 0.25, sr=16000, amplitude=0.5)
    path = write_wav(tmp_path / "tone.wav", x, 16000)
    y, sr = read_wav(path)
    assert sr == 16000 and y.dtype == np.float32 and len(y) == len(x)
    assert np.abs(y - x).max() < 1e-4
    ev = emulate_cochlea(y, sr, np.random.default_rng(0), P)
    assert abs(int(np.argmax(_histogram(ev))) - int(np.argmin(np.abs(FC - 1000)))) <= 2
    # 8-bit unsigned stereo through the stdlib writer: scaled to [-1, 1] and mixed to mono.
    pcm = np.stack([np.full(100, 192, np.uint8), np.full(100, 64, np.uint8)], axis=1)
    with wave.open(str(tmp_path / "u8.wav"), "wb") as w:
        w.setnchannels(2), w.setsampwidth(1), w.setframerate(8000)
        w.writeframes(pcm.tobytes())
    mono, _ = read_wav(tmp_path / "u8.wav")
    stereo, _ = read_wav(tmp_path / "u8.wav", mono=False)
    assert stereo.shape == (100, 2) and stereo[0, 0] == pytest.approx(0.5)
    assert np.allclose(mono, 0.0)
    with pytest.raises(FileNotFoundError, match="missing.wav"):
        read_wav(tmp_path / "missing.wav")
    (tmp_path / "junk.wav").write_bytes(b"RIFF\x00\x00")
    with pytest.raises(ValueError, match="junk.wav"):
        read_wav(tmp_path / "junk.wav")


def _speechlike(sr: int) -> np.ndarray:
    """Two tones, a pause and a quieter tone with some hiss: onsets, offsets and level changes."""
    sig = np.concatenate([tone(440, 0.3, sr), np.zeros(sr // 10, np.float32), tone(2000, 0.3, sr, 0.1)])
    return sig.astype(np.float64) + np.random.default_rng(1).normal(0, 0.01, len(sig))


@pytest.mark.parametrize("sr,target_rms", [(16000, 0.05), (22050, None)])
def test_streaming_cochlea_gives_the_same_events_for_one_block_or_many(sr, target_rms):
    """Resampling (16 kHz -> 22.05 kHz), running level normalisation, filters, integrate-and-fire
    and per-frame noise all carry state: one block and 60 blocks of random sizes (some empty,
    some shorter than the resampler's filter) give exactly the same events."""
    from rram_lsm.nodes.sources.cochlea_stream import StreamingCochlea

    params = CochleaParams(target_rms=target_rms)
    sig = _speechlike(sr)
    one = StreamingCochlea(params, sr, seed=3).process(sig)
    cochlea = StreamingCochlea(params, sr, seed=3)
    cuts = np.sort(np.random.default_rng(0).integers(0, len(sig), 60))
    many = np.concatenate([cochlea.process(sig[a:b]) for a, b in zip(np.r_[0, cuts], np.r_[cuts, len(sig)])])
    assert len(one) > 300 and np.array_equal(one, many)
    assert (np.diff(one["t"]) >= 0).all()
    # the same ear as the batch emulator: the tone's channel leads, the event count is alike
    batch = emulate_cochlea(sig, sr, np.random.default_rng(3), params)
    assert abs(len(one) - len(batch)) < 0.15 * len(batch)
    first = one[one["t"] < 300_000]
    nearest = int(np.argmin(np.abs(np.log(FC / 440))))
    assert abs(int(np.argmax(_histogram(first))) - nearest) <= 2


def test_microphone_drops_the_oldest_block_and_counts_every_drop_by_reason():
    """PortAudio's callback driven with synthetic blocks (no sound device here): a full queue
    drops its oldest block, an input overflow is counted, and the stream's time line still
    covers every block, dropped ones as silence."""
    from types import SimpleNamespace

    from rram_lsm.nodes.sources.microphone import MicrophoneSource

    mic = MicrophoneSource("mic", {"queue_blocks": 4, "block_ms": 100})
    blocks = np.split(np.resize(_speechlike(16000), 16000), 10)  # ten blocks of 100 ms
    for k, block in enumerate(blocks):
        status = SimpleNamespace(input_overflow=(k == 2))
        mic._callback(block[:, None].astype(np.float32), len(block), None, status)
    assert [float(b[0]) for b in mic.blocks.blocks] == [float(np.float32(b[0])) for b in blocks[6:]]
    packets = [mic.events(timeout=0.01) for _ in range(4)]
    assert mic.events(timeout=0.01) is None  # queue empty: nothing waits forever
    assert mic.gauges["dropped_blocks_queue_full"] == 6 and mic.gauges["dropped_blocks_input_overflow"] == 1
    assert mic.gauges["queued_blocks"] == 0
    assert mic.cochlea.n_internal >= 22050 - 30  # one second of audio at the internal rate
    got = [p for p in packets if p is not None]
    assert got and all(p.sample == -1 and p.geometry == (64,) for p in got)
    assert int(got[0].body["t"][0]) >= 600_000 - 10_000  # after the six dropped blocks' silence
