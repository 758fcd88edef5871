"""Per-node statistics, latency percentiles and the telemetry publisher."""
from __future__ import annotations

import bisect
import collections
import os
import resource
import time
from typing import Any

import numpy as np
import zmq

from . import codec
from .clock import now_ns
from .packets import Packet

PERCENTILES = (50, 90, 95, 99)
# Histogram bucket bounds (upper, inclusive) since start, for Prometheus: processing latency
# in µs (10 µs to 10 s) and age since ``origin_ns`` in ms (1 ms to 60 s).
LATENCY_BOUNDS_US = (10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000,
                     100_000, 250_000, 1_000_000, 10_000_000)
AGE_BOUNDS_MS = (1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 60_000)


class LatencyRecorder:
    """Fixed ring buffer of recent values so percentiles cost nothing per message, and
    histogram counts (per bucket of ``bounds``, plus one above the last) and their sum since
    start, which a ring buffer cannot give."""

    def __init__(self, size: int = 8192, bounds: tuple[float, ...] = LATENCY_BOUNDS_US):
        self.buf = np.zeros(size, dtype=np.float64)
        self.size = size
        self.count = 0
        self.bounds = tuple(bounds)
        self.buckets = [0] * (len(self.bounds) + 1)
        self.total = 0.0

    def add(self, value: float) -> None:
        self.buf[self.count % self.size] = value
        self.count += 1
        self.buckets[bisect.bisect_left(self.bounds, value)] += 1
        self.total += value

    def summary(self) -> dict[str, float]:
        n = min(self.count, self.size)
        if n == 0:  # still a histogram (zero in every bucket): a scrape sees the family
            return {"n": 0, "le": list(self.bounds), "buckets": list(self.buckets), "sum": 0.0}
        vals = np.percentile(self.buf[:n], PERCENTILES)
        out = {f"p{p}": round(float(v), 3) for p, v in zip(PERCENTILES, vals)}
        out["max"] = round(float(self.buf[:n].max()), 3)
        out["n"] = int(self.count)
        out.update(le=list(self.bounds), buckets=list(self.buckets), sum=round(self.total, 3))
        return out


def rss_bytes() -> int:
    """Current resident set size of this process."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class NodeStats:
    """Counters the runtime keeps for one node; ``in = consumed + rejected + dropped``."""

    def __init__(self) -> None:
        self.msgs_in = 0
        self.events_in = 0
        self.consumed = 0
        self.rejected: collections.Counter[str] = collections.Counter()
        self.dropped_in: collections.Counter[str] = collections.Counter()
        self.msgs_out = 0
        self.events_out = 0
        self.controls_in: collections.Counter[str] = collections.Counter()
        self.latency_us = LatencyRecorder()  # node work: process() and sending its outputs
        self.service_us = LatencyRecorder()  # receipt to sent: + receive, decode, validation
        self.end_of_sample_us = LatencyRecorder()  # the same for end_of_sample (a sample's answer)
        self.wire_us = LatencyRecorder()  # the upstream's send to our receipt (one hop)
        self.age_ms = LatencyRecorder(bounds=AGE_BOUNDS_MS)
        self.started = time.time()

    def snapshot(self) -> dict[str, Any]:
        return {
            "msgs_in": self.msgs_in, "events_in": self.events_in, "consumed": self.consumed,
            "rejected": dict(self.rejected), "rejected_total": sum(self.rejected.values()),
            "dropped_in": dict(self.dropped_in), "msgs_out": self.msgs_out,
            "events_out": self.events_out, "controls_in": dict(self.controls_in),
            "latency_us": self.latency_us.summary(), "service_us": self.service_us.summary(),
            "end_of_sample_us": self.end_of_sample_us.summary(),
            "wire_us": self.wire_us.summary(), "age_ms": self.age_ms.summary(),
            "cpu_s": round(time.process_time(), 4), "rss_bytes": rss_bytes(),
            "uptime_s": round(time.time() - self.started, 3),
        }


class TelemetryPublisher:
    """Publishes telemetry packets on an XPUB socket connected to the launcher's SUB.

    XPUB lets the node see the subscription arrive, so the first and the final reports are
    not lost to ZeroMQ's slow-joiner effect.
    """

    def __init__(self, ctx: zmq.Context, endpoint: str | None, stream: str, epoch: int,
                 secure=None):
        self.stream, self.epoch, self.seq = stream, epoch, 0
        self.sock = None
        self.subscribed = False
        if endpoint:
            self.sock = ctx.socket(zmq.XPUB)
            self.sock.setsockopt(zmq.LINGER, 2000)
            if secure:
                secure(self.sock, endpoint)
            self.sock.connect(endpoint)

    def wait_subscribed(self, timeout_s: float) -> bool:
        if self.sock is None:
            return False
        deadline = time.monotonic() + timeout_s
        while not self.subscribed and time.monotonic() < deadline:
            if self.sock.poll(50, zmq.POLLIN):
                msg = self.sock.recv()
                self.subscribed = self.subscribed or msg[:1] == b"\x01"
        return self.subscribed

    def publish(self, report: dict[str, Any]) -> None:
        if self.sock is None:
            return
        self.seq += 1
        pkt = Packet(kind="telemetry", stream=self.stream, epoch=self.epoch, seq=self.seq,
                     sent_ns=now_ns(), meta=report)
        try:
            self.sock.send_multipart(codec.encode(pkt), zmq.NOBLOCK)
        except zmq.Again:
            pass

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
