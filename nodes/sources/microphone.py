"""Microphone source: sound from the default input device through the streaming cochlea.

Kind ``microphone``.  Needs the optional package ``sounddevice`` (PortAudio) and an input
device; either missing gives a LiveSourceError naming it.  PortAudio's callback puts each
block of ``block_ms`` into a bounded queue of ``queue_blocks``; when the pipeline falls behind
and the queue is full, the oldest block is dropped (the newest sound matters most to a live
demo).  Every dropped block is counted by reason in the telemetry gauges:
``dropped_blocks_queue_full`` (this node fell behind) and ``dropped_blocks_input_overflow``
(PortAudio reported input lost before the callback).  The blocks become cochlea events in
``cochlea_stream.StreamingCochlea``, which carries its state across blocks; a dropped stretch
is fed to it as silence (its events discarded), so event times stay on the audio clock.  The
stream is continuous (sample -1): a segmenter makes utterances of it.
"""
from __future__ import annotations

import threading
import time
from collections import Counter, deque
from typing import Any, Iterator

import numpy as np

from rram_lsm.stream.node import ConfigError, SourceNode
from rram_lsm.stream.packets import Origin, Packet, new_epoch
from rram_lsm.stream.params import Param

from .cochlea import CochleaParams
from .cochlea_stream import StreamingCochlea
from .live import LiveSourceError, optional_import


class BlockQueue:
    """A bounded queue of audio blocks that drops the oldest when full, counting by reason.

    ``put`` runs on PortAudio's thread, ``get`` on the node's; ``get`` also returns how many
    audio samples were dropped just before the block it returns (dropped blocks are always
    older than every block still queued)."""

    def __init__(self, maxlen: int):
        if maxlen < 1:
            raise ValueError(f"BlockQueue: maxlen must be >= 1, got {maxlen}")
        self.blocks: deque[np.ndarray] = deque()
        self.maxlen = maxlen
        self.dropped: Counter[str] = Counter()  # reason -> blocks
        self._lost_samples = 0
        self._cond = threading.Condition()

    def put(self, block: np.ndarray) -> None:
        with self._cond:
            if len(self.blocks) >= self.maxlen:
                self._lost_samples += len(self.blocks.popleft())
                self.dropped["queue_full"] += 1
            self.blocks.append(block)
            self._cond.notify()

    def count(self, reason: str) -> None:
        with self._cond:
            self.dropped[reason] += 1

    def get(self, timeout: float) -> tuple[np.ndarray, int] | None:
        """(block, samples dropped before it), or None after ``timeout`` seconds without one."""
        with self._cond:
            if not self.blocks and not self._cond.wait_for(lambda: self.blocks, timeout):
                return None
            lost, self._lost_samples = self._lost_samples, 0
            return self.blocks.popleft(), lost


class MicrophoneSource(SourceNode):
    """Sound from a microphone turned into cochlea events (continuous stream)."""

    PARAMS = (
        Param("device", (str, int), None, "", "input device name or index (unset: the system's)"),
        Param("sample_rate", int, 16000, "Hz", "audio sample rate"),
        Param("block_ms", int, 100, "ms", "audio block turned into events at once"),
        Param("queue_blocks", int, 10, "blocks", "blocks queued before the oldest is dropped"),
        Param("target_rms", float, 0.05, "", "automatic gain control target level"),
        Param("agc_window_ms", float, 500.0, "ms", "running window of the gain control's level"),
        Param("seed", int, 0, "", "seed of the emulator's mismatch and noise"),
    )

    def __init__(self, name: str, params: dict[str, Any] | None = None):
        super().__init__(name, params)
        self.device = self.param("device")
        self.sr = int(self.param("sample_rate"))
        self.block_ms = int(self.param("block_ms"))
        if self.sr <= 0 or self.block_ms <= 0 or self.param("queue_blocks") < 1 or self.param("agc_window_ms") <= 0:
            raise ConfigError(f"node {name!r}: parameters 'sample_rate', 'block_ms', 'queue_blocks' "
                              f"and 'agc_window_ms' must be > 0")
        params_ = CochleaParams(target_rms=float(self.param("target_rms")))
        self.cochlea = StreamingCochlea(params_, self.sr, seed=self.param("seed"),
                                        agc_window_ms=float(self.param("agc_window_ms")))
        self.geometry = (params_.n_channels,)
        self.epoch = new_epoch()
        self.stream = None
        self.blocks = BlockQueue(int(self.param("queue_blocks")))

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
        """PortAudio's callback: queue a copy of the block (its buffer is reused)."""
        if status and getattr(status, "input_overflow", False):
            self.blocks.count("input_overflow")
        self.blocks.put(np.array(data[:, 0], dtype=np.float64))

    def _gauges(self) -> None:
        for reason in ("queue_full", "input_overflow"):
            self.gauges[f"dropped_blocks_{reason}"] = self.blocks.dropped[reason]
        self.gauges["queued_blocks"] = len(self.blocks.blocks)

    def events(self, timeout: float = 0.5) -> Packet | None:
        """The next block's events as a packet (None when no block came or it made no events)."""
        got = self.blocks.get(timeout)
        self._gauges()
        if got is None:
            return None
        block, lost = got
        now = time.time_ns()
        if lost:  # the dropped stretch passes as silence: state and times stay continuous
            self.cochlea.process(np.zeros(lost))
        ev = self.cochlea.process(block)
        if not len(ev):
            return None
        return Packet(kind="events", body=ev, t0=int(ev["t"][0]), t1=int(ev["t"][-1]),
                      origin_ns=now, origin=Origin(self.name, self.epoch, -1), geometry=self.geometry)

    def packets(self) -> Iterator[Packet]:
        if self.stream is None:
            self.setup()
        while True:
            packet = self.events()
            if packet is not None:
                yield packet

    def close(self) -> None:
        if self.stream is not None:
            self.stream.stop()
            self.stream.close()
