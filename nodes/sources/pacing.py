"""Pacing and framing: when each event is released and how events are cut into messages.

Real time releases every event at its timestamp divided by a speed factor; ``speed`` None
(or 0, as graph files write it) releases as fast as possible.  The schedule is computed once per sample, and a ``Pacer``
sleeps until each offset is due, measured from one anchor on a monotonic clock so sleeping
errors never accumulate.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from rram_lsm.stream.node import ConfigError


def check_speed(speed: float | None) -> float | None:
    """``speed`` as a float > 0, or None for as fast as possible (given as null or 0)."""
    if speed is None or (speed == 0 and not isinstance(speed, bool)):
        return None
    if isinstance(speed, bool) or not isinstance(speed, (int, float)) or not speed > 0 or not np.isfinite(speed):
        raise ConfigError(f"parameter 'speed' must be a number > 0, or 0 / null for as fast as possible, got {speed!r}")
    return float(speed)


def release_schedule(t_us: np.ndarray, speed: float | None) -> np.ndarray:
    """Release offsets in ns (int64) of events stamped ``t_us``, relative to the first event.

    Offsets are (t - t[0]) * 1000 / speed, never decreasing, so events keep their order even
    if a timestamp steps back; all zeros when ``speed`` is None.
    """
    speed = check_speed(speed)
    t = np.asarray(t_us, dtype=np.int64)
    if t.size == 0 or speed is None:
        return np.zeros(t.size, dtype=np.int64)
    rel = np.maximum.accumulate(t - t[0])
    return np.round(rel.astype(np.float64) * (1000.0 / speed)).astype(np.int64)


def frame_slices(t_us: np.ndarray, max_events: int | None = None, span_us: int | None = None,
                 t_origin: int | None = None) -> list[slice]:
    """Cut events (sorted by t) into messages of at most ``max_events`` and/or ``span_us``.

    Time windows start at ``t_origin`` (default: the first event) so that windows of one
    sample line up; empty windows produce no message.
    """
    n = len(t_us)
    if max_events is not None and max_events <= 0:
        raise ConfigError(f"parameter 'max_events' must be > 0, got {max_events}")
    if span_us is not None and span_us <= 0:
        raise ConfigError(f"parameter 'span_us' must be > 0, got {span_us}")
    if n == 0:
        return []
    bounds = [0, n]
    if span_us is not None:
        t = np.asarray(t_us, dtype=np.int64)
        origin = int(t[0] if t_origin is None else t_origin)
        win = (t - origin) // span_us
        bounds = [0, *np.flatnonzero(np.diff(win)) + 1, n]
    out: list[slice] = []
    for a, b in zip(bounds[:-1], bounds[1:]):
        step = max_events or (b - a)
        out.extend(slice(i, min(i + step, b)) for i in range(a, b, step))
    return out


@dataclass
class Pacer:
    """Sleeps until release offsets (ns) from an anchor are due; clock and sleep are injectable."""

    clock: Callable[[], int] = time.monotonic_ns
    sleep: Callable[[float], None] = time.sleep
    anchor_ns: int | None = field(default=None)

    def start(self, at_ns: int | None = None) -> int:
        """Set the anchor (now, by default) that offsets are measured from."""
        self.anchor_ns = self.clock() if at_ns is None else at_ns
        return self.anchor_ns

    def wait_until(self, offset_ns: int) -> int:
        """Sleep until anchor + ``offset_ns``; returns how late (ns, >= 0) the release is."""
        if self.anchor_ns is None:
            self.start()
        due = self.anchor_ns + int(offset_ns)
        now = self.clock()
        while now < due:
            self.sleep((due - now) / 1e9)
            now = self.clock()
        return now - due
