"""Nodes of benchmarks/pipeline.py's graph (loaded in child processes by ``module:Class``).

``StampedReplay`` is the built-in replay source that also writes, into each sample's
``end_of_sample`` (forwarded unchanged by every node), the wall time at which the sample's
last events message entered the graph; ``StampedSink`` is the JSON-lines sink that also
records when each prediction arrived, so decision latency = arrival - last event.
"""
from __future__ import annotations

import json
from pathlib import Path

from rram_lsm.nodes.sinks import JsonlSink
from rram_lsm.nodes.sources.builtin_source import BuiltinReplaySource
from rram_lsm.stream.clock import now_ns
from rram_lsm.stream.packets import Packet
from rram_lsm.stream.params import REQUIRED, Param


class StampedReplay(BuiltinReplaySource):
    """Built-in replay; ``end_of_sample`` carries ``meta["last_ns"]``."""

    PARAMS = BuiltinReplaySource.PARAMS

    def packets(self):
        last = 0
        for p in super().packets():
            if p.kind == "events":
                last = now_ns()  # released now: the runtime stamps and sends it next
            elif p.is_control and p.control == "end_of_sample":
                p.meta["last_ns"] = last
            yield p


class StampedSink(JsonlSink):
    """JSON-lines sink; writes ``{stream, sample, pred_ns, last_ns}`` per sample to ``times``."""

    PARAMS = JsonlSink.PARAMS + (Param("times", str, REQUIRED, "", "where the arrival times go (JSON)", path="out"),)

    def setup(self) -> None:
        super().setup()
        self.times: dict[tuple, dict] = {}

    def process(self, packet: Packet):
        key = (packet.origin.stream, packet.origin.sample) if packet.origin else None
        if key is not None and packet.kind == "prediction":
            self.times.setdefault(key, {})["pred_ns"] = now_ns()
        elif key is not None and packet.is_control and packet.control == "end_of_sample":
            self.times.setdefault(key, {})["last_ns"] = packet.meta.get("last_ns")
        return super().process(packet)

    def close(self) -> None:
        super().close()
        rows = [{"stream": k[0], "sample": k[1], **v} for k, v in self.times.items()]
        Path(self.param("times")).write_text(json.dumps(rows))
