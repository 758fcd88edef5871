"""Small downsampled views of a source's events for live displays (the web dashboard).

A source's runtime feeds every event packet it sends to an :class:`EventPreview`; the
preview accumulates them with numpy (one ``bincount`` per packet, no per-event Python; a
large packet is drawn from 1,024 evenly spaced events of it, all of them counted) and closes
a frame at most ``rate_hz`` times a second (wall clock).  The frames travel in the source's
telemetry (``view.frames``), so a display needs no tap on a data edge:

- DVS events: an accumulated count image of at most ``side`` x ``side`` pixels (the sensor
  downsampled by one integer factor, so the aspect is kept);
- cochlea / neural events: a raster of at most ``side`` channel rows (downsampled) by
  ``columns`` time bins over the event time the frame covers.

A frame is JSON-able and compact: counts scaled so the frame's peak is 255, as uint8,
base64 (a 32 x 32 frame is 1,368 characters).
"""
from __future__ import annotations

import base64
import collections
import time
from typing import Any, Callable

import numpy as np

from .packets import Packet

PACKET_SAMPLE = 1024  # events of one packet drawn at most (evenly spaced; all are counted)
RASTER_KEEP = 16384  # raster events kept per frame (the rest are counted, not drawn)


def _factor(size: int, side: int) -> int:
    return max(1, -(-int(size) // side))


class EventPreview:
    """Frames of one source's events, at most ``rate_hz`` a second, the latest ``keep``."""

    def __init__(self, rate_hz: float = 10.0, side: int = 32, columns: int = 16,
                 keep: int = 10, clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time):
        if not (rate_hz > 0 and side > 0 and columns > 0 and keep > 0):
            raise ValueError("EventPreview: rate_hz, side, columns and keep must be > 0")
        self.period, self.side, self.columns = 1.0 / rate_hz, side, columns
        self.clock, self.wall = clock, wall
        self.frames: collections.deque[dict[str, Any]] = collections.deque(maxlen=keep)
        self.view: str | None = None  # dvs | cochlea | neural, from the first event packet
        self.factor = 1
        self.shape: tuple[int, int] = (0, 0)
        self._reset(self.clock())

    def _reset(self, now: float) -> None:
        self.started = now
        self.events = 0
        self.counts = np.zeros(self.shape[0] * self.shape[1], np.int64) if self.view == "dvs" else None
        self.raster: list[tuple[np.ndarray, np.ndarray]] = []
        self.kept = 0

    def _configure(self, body: np.ndarray, geometry) -> bool:
        names = body.dtype.names or ()
        if "t" not in names or "x" not in names:
            return False
        if "y" in names:
            w, h = (geometry or (int(body["x"].max()) + 1, int(body["y"].max()) + 1))[:2]
            self.view, self.factor = "dvs", _factor(max(w, h), self.side)
            self.shape = (-(-h // self.factor), -(-w // self.factor))
        else:
            channels = (geometry or (int(body["x"].max()) + 1,))[0]
            self.view = "cochlea" if "p" in names else "neural"
            self.factor = _factor(channels, self.side)
            self.shape = (-(-channels // self.factor), self.columns)
        self._reset(self.started)
        return True

    def add(self, packet: Packet) -> None:
        """Accumulate one packet's events (non-event packets are ignored)."""
        body = packet.body
        if packet.kind != "events" or body is None or len(body) == 0:
            return
        if self.view is None and not self._configure(body, packet.geometry):
            return
        rows, cols = self.shape
        self.events += len(body)
        # a picture scaled to its peak needs no more than PACKET_SAMPLE events of a packet
        sample = body[::-(-len(body) // PACKET_SAMPLE)]
        if self.view == "dvs":  # indices < 32 * 32 fit uint16: no widening copies
            y = np.minimum(sample["y"] // self.factor, rows - 1)
            x = np.minimum(sample["x"] // self.factor, cols - 1)
            self.counts += np.bincount(y * np.uint16(cols) + x, minlength=rows * cols)
        elif self.kept < RASTER_KEEP:
            take = sample[: RASTER_KEEP - self.kept]
            self.raster.append((take["t"], np.minimum(take["x"] // self.factor, rows - 1)))
            self.kept += len(take)
        now = self.clock()
        if now - self.started >= self.period:
            self._close(now)

    def _close(self, now: float) -> None:
        rows, cols = self.shape
        frame: dict[str, Any] = {"t": round(self.wall(), 3), "dt": round(now - self.started, 3),
                                 "view": self.view, "shape": [rows, cols], "events": self.events}
        if self.view == "dvs":
            counts = self.counts
        else:
            t = np.concatenate([r[0] for r in self.raster]).astype(np.int64)
            ch = np.concatenate([r[1] for r in self.raster]).astype(np.int64)
            t0, t1 = int(t.min()), int(t.max())
            col = ((t - t0) * cols) // max(t1 - t0 + 1, 1)
            counts = np.bincount(ch * cols + col, minlength=rows * cols)
            frame["t0_us"], frame["t1_us"] = t0, t1
        peak = int(counts.max())
        scaled = (counts * 255 + peak - 1) // max(peak, 1)
        frame["peak"] = peak
        frame["data"] = base64.b64encode(scaled.astype(np.uint8).tobytes()).decode("ascii")
        self.frames.append(frame)
        self._reset(now)

    def take(self) -> list[dict[str, Any]]:
        """The frames closed since the last call (the open one closes if it has events)."""
        if self.events:
            self._close(self.clock())
        out = list(self.frames)
        self.frames.clear()
        return out


def decode_frame(frame: dict[str, Any]) -> np.ndarray:
    """A frame's image as a uint8 array of its ``shape`` (tests, tools)."""
    rows, cols = frame["shape"]
    return np.frombuffer(base64.b64decode(frame["data"]), np.uint8).reshape(rows, cols)


def activity_frame(rates: np.ndarray, side: int = 32, **health: float) -> dict[str, Any]:
    """A reservoir's per-neuron rates (its last feature row) as a square image: neurons in
    index order, row by row, averaged over square blocks to at most ``side`` x ``side`` and
    scaled to the peak; ``health`` (silent / saturated fractions, mean rate) rides along."""
    rates = np.asarray(rates, np.float64).ravel()
    grid = max(1, int(np.ceil(np.sqrt(rates.size))))
    f = _factor(grid, side)
    cells = -(-grid // f)
    img = np.zeros((cells * f) ** 2)
    img[: rates.size] = rates
    img = img.reshape(cells, f, cells, f).mean(axis=(1, 3))
    peak = float(img.max())
    scaled = np.ceil(img * 255 / peak) if peak > 0 else img
    return {"t": round(time.time(), 3), "view": "reservoir", "shape": [cells, cells],
            "neurons": int(rates.size), "peak": round(peak, 6),
            "data": base64.b64encode(scaled.astype(np.uint8).tobytes()).decode("ascii"),
            **{k: round(float(v), 6) for k, v in health.items()}}
