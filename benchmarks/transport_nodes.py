"""Nodes used by benchmarks/transport.py (loaded in child processes by ``module:Class``)."""
from __future__ import annotations

import json
import time

import numpy as np

from rram_lsm.stream.node import SourceNode
from rram_lsm.stream.packets import DVS_DTYPE, Origin, Packet
from rram_lsm.nodes.sinks import SinkNode


class BenchSource(SourceNode):
    """``count`` messages of ``size`` DVS events, as fast as possible or at ``rate`` msg/s.

    One continuous stream (sample -1, as a live sensor's): every message carries the same
    body, so its times restart per message, which only a trial's time-order check refuses."""

    def packets(self):
        size, count = int(self.params["size"]), int(self.params["count"])
        rate = float(self.params.get("rate", 0))
        ev = np.zeros(size, DVS_DTYPE)
        ev["t"] = np.arange(size)
        ev["x"] = np.arange(size) % 34
        ev["y"] = (np.arange(size) // 34) % 34
        origin = Origin(self.name, 1, -1)
        start = time.perf_counter()
        for i in range(count):
            if rate:  # paced exactly as the bare pyzmq source (a spin), so both pay the same wake-ups
                due = start + i / rate
                while time.perf_counter() < due:
                    pass
            yield Packet(kind="events", body=ev, geometry=(34, 34), origin=origin, sample=-1,
                         origin_ns=time.time_ns())


class BenchSink(SinkNode):
    """Records receive times and latencies; writes them to ``path`` (JSON) at close."""

    def setup(self) -> None:
        super().setup()
        self.times: list[int] = []
        self.lat: list[int] = []
        self.events = 0

    def process(self, packet: Packet):
        if not packet.is_control:
            now = time.time_ns()
            self.times.append(now)
            self.lat.append(now - packet.origin_ns)
            self.events += packet.n
        return ()

    def close(self) -> None:
        with open(self.params["path"], "w") as fh:
            json.dump({"times": self.times, "lat": self.lat, "events": self.events}, fh)
