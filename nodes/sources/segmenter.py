"""Activity segmenter: cuts a continuous live event stream into samples, like a voice-activity detector.

Events are counted in fixed bins.  A sample starts when the event rate stays at or above
``on_rate_hz`` for ``onset_bins`` consecutive bins, and ends when it stays below the lower
``off_rate_hz`` for ``hangover_bins`` bins (hysteresis: short dips do not split a sample),
or when it reaches ``max_us``.  ``preroll_bins`` bins before the onset are included so the
sample's soft beginning is not lost.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any, Iterable

import numpy as np

from rram_lsm.stream.node import ConfigError, Node
from rram_lsm.stream.packets import Origin, Packet, control, new_epoch
from rram_lsm.stream.params import Param


@dataclass(frozen=True)
class SegmenterParams:
    bin_us: int = 10_000
    on_rate_hz: float = 2_000.0
    off_rate_hz: float = 500.0
    onset_bins: int = 2
    hangover_bins: int = 10
    preroll_bins: int = 2
    max_us: int = 2_000_000

    def check(self) -> None:
        if self.bin_us <= 0 or self.max_us <= 0:
            raise ConfigError("segmenter: 'bin_us' and 'max_us' must be > 0")
        if not 0 <= self.off_rate_hz <= self.on_rate_hz:
            raise ConfigError(f"segmenter: need 0 <= off_rate_hz ({self.off_rate_hz}) <= on_rate_hz ({self.on_rate_hz})")
        if self.onset_bins < 1 or self.hangover_bins < 1 or self.preroll_bins < 0:
            raise ConfigError("segmenter: onset_bins and hangover_bins must be >= 1, preroll_bins >= 0")


@dataclass
class SegmentOutput:
    """One step of the segmenter's output: ``start`` (t), ``events`` (array) or ``end`` (t)."""

    what: str
    t: int
    events: np.ndarray | None = None


class ActivitySegmenter:
    """Push events (sorted by t) in; get start / events / end outputs as bins complete."""

    def __init__(self, params: SegmenterParams = SegmenterParams()):
        params.check()
        self.p = params
        self.active = False
        self._bin: int | None = None          # index of the bin being filled
        self._pending: list[np.ndarray] = []  # events of that bin
        self._history: deque[tuple[int, np.ndarray]] = deque()  # completed idle bins
        self._run = 0                         # consecutive bins past the current threshold
        self._start_t = 0

    def push(self, events: np.ndarray) -> list[SegmentOutput]:
        """Feed events; outputs for every bin that the new events complete."""
        out: list[SegmentOutput] = []
        if len(events) == 0:
            return out
        bins = events["t"] // self.p.bin_us
        cuts = np.flatnonzero(np.diff(bins)) + 1
        for chunk in np.split(events, cuts):
            b = int(chunk["t"][0] // self.p.bin_us)
            if self._bin is None:
                self._bin = b
            while self._bin < b:  # complete the current bin, then any empty ones in between
                out += self._close_bin()
            self._pending.append(chunk)
        return out

    def advance(self, t_us: int) -> list[SegmentOutput]:
        """Complete all bins that end at or before ``t_us`` (a live source's clock says so)."""
        out: list[SegmentOutput] = []
        if self._bin is None:
            self._bin = t_us // self.p.bin_us
        while (self._bin + 1) * self.p.bin_us <= t_us:
            out += self._close_bin()
        return out

    def flush(self) -> list[SegmentOutput]:
        """End of stream: close the open bin and an open sample."""
        out = self._close_bin() if self._bin is not None and self._pending else []
        if self.active:
            self.active = False
            out.append(SegmentOutput("end", (self._bin or 0) * self.p.bin_us))
        return out

    def _close_bin(self) -> list[SegmentOutput]:
        b = self._bin
        ev = np.concatenate(self._pending) if self._pending else None
        self._pending = []
        self._bin = b + 1
        end_t = (b + 1) * self.p.bin_us
        rate = (0 if ev is None else len(ev)) / (self.p.bin_us * 1e-6)
        out: list[SegmentOutput] = []
        if not self.active:
            self._run = self._run + 1 if rate >= self.p.on_rate_hz else 0
            self._history.append((b, ev))
            keep = self.p.onset_bins + self.p.preroll_bins
            while len(self._history) > keep:
                self._history.popleft()
            if self._run >= self.p.onset_bins:
                self.active, self._run = True, 0
                first = self._history[0][0]
                self._start_t = first * self.p.bin_us
                out.append(SegmentOutput("start", self._start_t))
                out += [SegmentOutput("events", hb * self.p.bin_us, e) for hb, e in self._history if e is not None]
                self._history.clear()
            return out
        if ev is not None:
            out.append(SegmentOutput("events", b * self.p.bin_us, ev))
        self._run = self._run + 1 if rate < self.p.off_rate_hz else 0
        if self._run >= self.p.hangover_bins or end_t - self._start_t >= self.p.max_us:
            self.active, self._run = False, 0
            out.append(SegmentOutput("end", end_t))
        return out


class SegmenterNode(Node):
    """Turns continuous events packets (sample -1) into samples with start / end_of_sample controls."""

    kind = "segmenter"
    PARAMS = (
        Param("bin_us", int, 10_000, "us", "width of the bins events are counted in"),
        Param("on_rate_hz", float, 2_000.0, "Hz", "a sample starts when the rate stays at or above this"),
        Param("off_rate_hz", float, 500.0, "Hz", "... and ends when it stays below this"),
        Param("onset_bins", int, 2, "bins", "bins at or above on_rate_hz that start a sample"),
        Param("hangover_bins", int, 10, "bins", "bins below off_rate_hz that end it"),
        Param("preroll_bins", int, 2, "bins", "bins before the onset included in the sample"),
        Param("max_us", int, 2_000_000, "us", "longest sample"),
    )

    def __init__(self, name: str, params: dict[str, Any] | None = None):
        super().__init__(name, params)
        self.seg = ActivitySegmenter(SegmenterParams(**{p.name: self.param(p.name) for p in self.PARAMS}))
        self.sample = 0
        self.epoch = new_epoch()  # samples made here get their origin here
        self._last: Packet | None = None

    def _emit(self, outs: list[SegmentOutput]) -> list[Packet]:
        src = self._last
        packets: list[Packet] = []
        for o in outs:
            ids = dict(sample=self.sample, origin=Origin(self.name, self.epoch, self.sample), origin_ns=src.origin_ns)
            if o.what == "start":
                packets.append(control("start", t0=o.t, geometry=src.geometry, **ids))
            elif o.what == "events":
                packets.append(Packet(kind="events", body=o.events, t0=int(o.events["t"][0]),
                                      t1=int(o.events["t"][-1]), geometry=src.geometry, **ids))
            else:
                packets.append(control("end_of_sample", t1=o.t, **ids))
                self.sample += 1
        return packets

    def process(self, packet: Packet) -> Iterable[Packet]:
        if packet.kind != "events" or packet.body is None:
            return ()
        self._last = packet
        return self._emit(self.seg.push(packet.body))

    def flush(self) -> Iterable[Packet]:
        return self._emit(self.seg.flush()) if self._last is not None else ()
