"""Wall clock for ``sent_ns``/``origin_ns``, and clock-offset estimates between hosts.

``RRAM_LSM_CLOCK_OFFSET_NS`` shifts this process's clock: a test hook that makes one side
of a multi-host test behave like a host whose clock is off by a known amount.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass

_OFFSET_NS = int(os.environ.get("RRAM_LSM_CLOCK_OFFSET_NS", "0"))


def now_ns() -> int:
    """Wall-clock nanoseconds on this host's clock."""
    return time.time_ns() + _OFFSET_NS


@dataclass
class OffsetEstimate:
    """Peer clock minus local clock (ns), from NTP-style exchanges; the one with the shortest
    round trip wins, and its half round trip bounds the error."""

    offset_ns: float = 0.0
    uncertainty_ns: float = float("inf")
    samples: int = 0

    def add(self, t1: int, t2: int, t3: int, t4: int) -> None:
        """t1 local send, t2 peer receive, t3 peer reply, t4 local receive."""
        rtt = (t4 - t1) - (t3 - t2)
        self.samples += 1
        if rtt < 0:
            return
        if rtt / 2 <= self.uncertainty_ns:
            self.offset_ns = ((t2 - t1) + (t3 - t4)) / 2
            self.uncertainty_ns = rtt / 2

    @property
    def significant_offset_ns(self) -> float:
        """The offset where it exceeds its uncertainty, else 0."""
        return self.offset_ns if abs(self.offset_ns) > self.uncertainty_ns else 0.0

    def as_dict(self) -> dict:
        return {"offset_ms": round(self.offset_ns / 1e6, 3),
                "uncertainty_ms": round(self.uncertainty_ns / 1e6, 3) if self.samples else None,
                "samples": self.samples}
