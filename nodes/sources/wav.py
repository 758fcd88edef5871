"""Read and write WAV files as float32 audio in [-1, 1], for the cochlea emulator."""
from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
from scipy.io import wavfile


def read_wav(path: str | Path, mono: bool = True) -> tuple[np.ndarray, int]:
    """Return (samples, sample rate).  Integer PCM is scaled to [-1, 1]; stereo is averaged
    to mono unless ``mono`` is False (then the shape is (samples, channels))."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"WAV file not found: {path}")
    try:
        sr, data = wavfile.read(path)
    except (ValueError, EOFError, struct.error) as exc:  # truncated or not a WAV
        raise ValueError(f"cannot read WAV file {path}: {exc}") from exc
    if data.dtype == np.uint8:  # 8-bit PCM is unsigned, centred on 128
        audio = (data.astype(np.float32) - 128.0) / 128.0
    elif np.issubdtype(data.dtype, np.integer):
        audio = data.astype(np.float32) / float(-np.iinfo(data.dtype).min)
    else:
        audio = data.astype(np.float32)
    if mono and audio.ndim == 2:
        audio = audio.mean(axis=1)
    return audio, int(sr)


def write_wav(path: str | Path, audio: np.ndarray, sr: int) -> Path:
    """Write float audio in [-1, 1] as 16-bit PCM."""
    path = Path(path)
    pcm = np.clip(np.asarray(audio, dtype=np.float64), -1.0, 1.0) * 32767.0
    wavfile.write(path, int(sr), np.round(pcm).astype(np.int16))
    return path
