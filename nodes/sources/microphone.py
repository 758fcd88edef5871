"""Microphone source: sound from the default input device through the cochlea emulator.

Kind ``microphone``.  Needs the optional package ``sounddevice`` (PortAudio) and an input
device; either missing gives a LiveSourceError naming it.  Audio is read in blocks of
``block_ms`` and each block is turned into cochlea events (``nodes.sources.cochlea``) with
times continuing across blocks; the filterbank restarts every block, which costs a few ms of
settling per block and is the price of a stateless emulator.  The stream is continuous
(sample -1): a segmenter makes utterances of it.
"""
from __future__ import annotations

import queue
import time
from typing import Any, Iterator

import numpy as np

from rram_lsm.stream.node import ConfigError, SourceNode
from rram_lsm.stream.packets import Origin, Packet, new_epoch
from rram_lsm.stream.params import Param

from .cochlea import CochleaParams, emulate_cochlea
from .live import LiveSourceError, optional_import


class MicrophoneSource(SourceNode):
    """Sound from a microphone turned into cochlea events (continuous stream)."""

    PARAMS = (
        Param("device", (str, int), None, "", "input device name or index (unset: the system's)"),
        Param("sample_rate", int, 16000, "Hz", "audio sample rate"),
        Param("block_ms", int, 100, "ms", "audio block turned into events at once"),
        Param("target_rms", float, 0.05, "", "automatic gain control target level"),
        Param("seed", int, 0, "", "seed of the emulator's mismatch"),
    )

    def __init__(self, name: str, params: dict[str, Any] | None = None):
        super().__init__(name, params)
        self.device = self.param("device")
        self.sr = int(self.param("sample_rate"))
        self.block_ms = int(self.param("block_ms"))
        if self.sr <= 0 or self.block_ms <= 0:
            raise ConfigError(f"node {name!r}: parameters 'sample_rate' and 'block_ms' must be > 0")
        self.cochlea = CochleaParams(target_rms=float(self.param("target_rms")))
        self.rng = np.random.default_rng(self.param("seed"))
        self.geometry = (self.cochlea.n_channels,)
        self.epoch = new_epoch()
        self.stream = None
        self.blocks: queue.Queue = queue.Queue(maxsize=50)

    def setup(self) -> None:
        sd = optional_import("sounddevice", "sounddevice")
        try:
            self.stream = sd.InputStream(samplerate=self.sr, channels=1, device=self.device,
                                         blocksize=self.sr * self.block_ms // 1000,
                                         callback=self._callback)
            self.stream.start()
        except Exception as err:  # PortAudio raises its own error types when there is no device
            raise LiveSourceError(f"no microphone {self.device or '(default)'} could be opened: {err}") from err

    def _callback(self, data, frames, t, status) -> None:
        try:
            self.blocks.put_nowait(np.array(data[:, 0], dtype=np.float64))
        except queue.Full:  # the pipeline fell behind: drop the oldest second of sound
            pass

    def packets(self) -> Iterator[Packet]:
        if self.stream is None:
            self.setup()
        t_us = 0
        while True:
            try:
                block = self.blocks.get(timeout=0.5)
            except queue.Empty:
                continue
            now = time.time_ns()
            ev = emulate_cochlea(block, self.sr, self.rng, self.cochlea, t0_us=t_us)
            t_us += len(block) * 1_000_000 // self.sr
            if len(ev):
                yield Packet(kind="events", body=ev, t0=int(ev["t"][0]), t1=int(ev["t"][-1]),
                             origin_ns=now, origin=Origin(self.name, self.epoch, -1),
                             geometry=self.geometry)

    def close(self) -> None:
        if self.stream is not None:
            self.stream.stop()
            self.stream.close()
