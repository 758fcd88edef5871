"""A small ctypes binding to eSpeak NG, the speech synthesiser shipped by `espeakng-loader`.

Why: the built-in dataset needs spoken digits on a machine that can download nothing, and the
`espeakng-loader` wheel carries the library and its voice data.  eSpeak keeps global state, so
the binding initialises it once per process (synchronous output: `espeak_Synth` returns after
our callback has received every sample) and serialises calls with a lock.

Reproducibility: eSpeak NG keeps hidden state between utterances (a function-static pitch
flutter index, waveform phase) and draws breath/roughness noise from libc's ``rand()``, so
the same request can sound slightly different depending on what was said before in that
process, and ``espeak_Initialize`` does not reset it.  :func:`synthesize_many` therefore speaks
a list in a fresh process, in order, reseeding ``rand()`` per utterance: the same list gives
the same audio, bit for bit -- except for voice variants with a ``breath`` setting (``+f2``,
``+f3``, ``+whisper``, ...), whose breath-noise filter differs from process to process
(measured: 4 of 5 fresh processes disagree); the built-in dataset's ``VARIANTS`` are ones
without it.
"""
from __future__ import annotations

import ctypes
import multiprocessing as mp
import threading
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np

# speak_lib.h constants.
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_ENDPAUSE = 0x1000
_RATE, _VOLUME, _PITCH, _RANGE = 1, 2, 3, 4
_EE_OK = 0

_SYNTH_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)

RATE_RANGE = (80, 450)  # words per minute eSpeak accepts
PITCH_RANGE = (0, 100)


class EspeakError(RuntimeError):
    """eSpeak NG could not be loaded or refused a request."""


@dataclass(frozen=True)
class Voice:
    """How to speak: eSpeak voice name (with optional ``+variant``), rate in wpm, pitch 0–100,
    pitch range 0–100 (intonation)."""

    name: str = "en"
    rate: int = 175
    pitch: int = 50
    pitch_range: int = 50

    def check(self) -> None:
        if not self.name or not isinstance(self.name, str):
            raise ValueError(f"voice name must be a non-empty string, got {self.name!r}")
        if not RATE_RANGE[0] <= self.rate <= RATE_RANGE[1]:
            raise ValueError(f"voice rate {self.rate} outside {RATE_RANGE} words per minute")
        for key, value in (("pitch", self.pitch), ("pitch_range", self.pitch_range)):
            if not PITCH_RANGE[0] <= value <= PITCH_RANGE[1]:
                raise ValueError(f"voice {key} {value} outside {PITCH_RANGE}")


class _Engine:
    """The process-wide eSpeak NG instance."""

    def __init__(self) -> None:
        try:
            import espeakng_loader
        except ImportError as exc:  # pragma: no cover - it is a hard dependency
            raise EspeakError(
                "eSpeak NG is missing: install it with `pip install espeakng-loader`"
            ) from exc
        try:
            self.lib = ctypes.CDLL(espeakng_loader.get_library_path())
            data = espeakng_loader.get_data_path()
        except (OSError, RuntimeError) as exc:
            raise EspeakError(f"cannot load eSpeak NG from espeakng-loader: {exc}") from exc
        lib = self.lib
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetSynthCallback.argtypes = [_SYNTH_CALLBACK]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [
            ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
            ctypes.c_uint, ctypes.POINTER(ctypes.c_uint), ctypes.c_void_p,
        ]
        lib.espeak_Synth.restype = ctypes.c_int
        lib.espeak_Synchronize.restype = ctypes.c_int
        rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data.encode(), 0)
        if rate <= 0:
            raise EspeakError(f"espeak_Initialize failed (returned {rate}) with data at {data}")
        self.sample_rate = int(rate)
        self.lock = threading.Lock()
        self._chunks: list[np.ndarray] = []
        # Keep the ctypes callback alive for as long as the library may call it.
        self._callback = _SYNTH_CALLBACK(self._collect)
        lib.espeak_SetSynthCallback(self._callback)

    def _collect(self, wav, numsamples: int, events) -> int:
        if numsamples > 0 and wav:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(numsamples,)).copy())
        return 0  # 0 = continue synthesis

    def synthesize(self, text: str, voice: Voice) -> np.ndarray:
        voice.check()
        with self.lock:
            if self.lib.espeak_SetVoiceByName(voice.name.encode()) != _EE_OK:
                raise EspeakError(
                    f"eSpeak NG has no voice {voice.name!r} (e.g. 'en', 'en-us', "
                    "'en-gb-scotland', 'en+f4')"
                )
            for param, value in ((_RATE, voice.rate), (_PITCH, voice.pitch),
                                 (_RANGE, voice.pitch_range), (_VOLUME, 100)):
                self.lib.espeak_SetParameter(param, int(value), 0)
            self._chunks = []
            buf = ctypes.create_string_buffer(text.encode("utf-8"))
            err = self.lib.espeak_Synth(buf, len(buf), 0, _POS_CHARACTER, 0,
                                        _CHARS_UTF8 | _ENDPAUSE, None, None)
            if err != _EE_OK:
                raise EspeakError(f"espeak_Synth failed with code {err} for text {text!r}")
            self.lib.espeak_Synchronize()
            chunks, self._chunks = self._chunks, []
        if not chunks:
            return np.zeros(0, np.int16)
        return np.concatenate(chunks).astype(np.int16, copy=False)


_ENGINE: _Engine | None = None
_ENGINE_LOCK = threading.Lock()


def _engine() -> _Engine:
    global _ENGINE
    with _ENGINE_LOCK:
        if _ENGINE is None:
            _ENGINE = _Engine()
        return _ENGINE


def sample_rate() -> int:
    """The synthesiser's output sample rate in Hz (22,050 for eSpeak NG)."""
    return _engine().sample_rate


def _libc_srand(seed: int) -> None:
    try:
        ctypes.CDLL(None).srand(ctypes.c_uint(seed & 0xFFFFFFFF))
    except (OSError, AttributeError):  # pragma: no cover - no libc symbol table (not Linux/mac)
        pass


def synthesize(text: str, voice: Voice | str = "en", rate: int | None = None,
               pitch: int | None = None, noise_seed: int | None = None) -> tuple[np.ndarray, int]:
    """Speak ``text`` and return (samples as float32 in [-1, 1], sample rate in Hz).

    ``voice`` is a :class:`Voice` or a voice name such as ``'en-us'`` or ``'en+f4'``;
    ``rate``/``pitch`` override the voice's own values; ``noise_seed`` reseeds the noise
    eSpeak draws from libc's ``rand()`` (see the module note on reproducibility).
    """
    if isinstance(voice, str):
        voice = Voice(name=voice)
    changes = {k: v for k, v in (("rate", rate), ("pitch", pitch)) if v is not None}
    if changes:
        voice = Voice(**{**voice.__dict__, **changes})
    engine = _engine()
    if noise_seed is not None:
        _libc_srand(noise_seed)
    pcm = engine.synthesize(text, voice)
    return pcm.astype(np.float32) / 32768.0, engine.sample_rate


def _speak_list(requests: list[tuple[str, Voice]]) -> tuple[list[np.ndarray], int]:
    out = []
    for k, (text, voice) in enumerate(requests):
        _libc_srand(k)
        out.append(_engine().synthesize(text, voice))
    return out, _engine().sample_rate


def synthesize_many(requests: list[tuple[str, Voice]]) -> tuple[list[np.ndarray], int]:
    """Speak each (text, voice) in order in a fresh process; return (float32 clips, rate).

    Reproducible: the same list always gives the same samples (the module note says why a
    fresh process is needed).  Cheap: eSpeak speaks a digit in a few milliseconds.
    """
    for _, voice in requests:
        voice.check()
    with ProcessPoolExecutor(1, mp_context=mp.get_context("spawn")) as pool:
        pcm, sr = pool.submit(_speak_list, list(requests)).result()
    return [p.astype(np.float32) / 32768.0 for p in pcm], sr


def trim_silence(audio: np.ndarray, threshold: float = 1e-3) -> np.ndarray:
    """Cut leading and trailing samples quieter than ``threshold`` (eSpeak pads its output)."""
    loud = np.flatnonzero(np.abs(audio) > threshold)
    if loud.size == 0:
        return audio[:0]
    return audio[loud[0]: loud[-1] + 1]
