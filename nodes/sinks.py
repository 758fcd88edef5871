"""Sinks: console, JSON lines and CSV writers that end a graph.

A sink records one line per data packet (and per sample boundary) with the end-to-end
latency from ``origin_ns``; it removes duplicate results by ``origin`` (source stream,
source epoch, sample), so a re-sent sample is counted once.
"""
from __future__ import annotations

import csv
import json
import sys
import time
from pathlib import Path

from stream.node import Node
from stream.packets import Packet


def packet_record(p: Packet) -> dict:
    """The small, JSON-friendly summary of a packet that sinks write."""
    rec = {
        "kind": p.kind, "stream": p.stream, "seq": p.seq, "sample": p.sample, "n": p.n,
        "label": p.label, "t0": p.t0, "t1": p.t1,
        "origin": p.origin.as_list() if p.origin else None,
        "latency_ms": round((time.time_ns() - p.origin_ns) / 1e6, 3) if p.origin_ns else None,
    }
    if p.is_control:
        rec["control"] = p.control
    for key in ("pred", "topk", "scores", "modality"):
        if key in p.meta:
            rec[key] = p.meta[key]
    return rec


class SinkNode(Node):
    """A counting sink (stores nothing); subclasses write records.  Removes duplicates by origin."""

    kind = "null_sink"

    def setup(self) -> None:
        self.seen: set[tuple] = set()
        self.duplicates = 0
        self.records = 0

    def process(self, packet: Packet):
        if packet.is_control and packet.control not in ("end_of_sample", "start"):
            return ()
        if not packet.is_control and packet.origin is not None and packet.kind != "events":
            key = (packet.origin.stream, packet.origin.epoch, packet.origin.sample, packet.kind)
            if key in self.seen:
                self.duplicates += 1
                self.gauges["duplicates"] = self.duplicates
                return ()
            self.seen.add(key)
        self.records += 1
        self.write(packet_record(packet))
        return ()

    def write(self, rec: dict) -> None:
        """Counting only; subclasses write the record somewhere."""


class ConsoleSink(SinkNode):
    """Prints one line per data packet (events packets only every ``every`` packets)."""

    kind = "console_sink"

    def setup(self) -> None:
        super().setup()
        self.every = int(self.param("every", 1, int))

    def write(self, rec: dict) -> None:
        if rec.get("control") or self.records % self.every == 0:
            print(json.dumps(rec), file=sys.stdout, flush=True)


class JsonlSink(SinkNode):
    """Writes every record as a JSON line to ``path``."""

    kind = "jsonl_sink"

    def setup(self) -> None:
        super().setup()
        path = self.param("path", None, str)
        if not path:
            raise ValueError(f"node {self.name!r}: parameter 'path' is required")
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.fh = open(path, "a", buffering=1)
        self.echo = bool(self.param("echo", False, bool))

    def write(self, rec: dict) -> None:
        line = json.dumps(rec)
        self.fh.write(line + "\n")
        if self.echo and (rec.get("control") == "end_of_sample" or rec["kind"] != "events"):
            print(line, flush=True)

    def close(self) -> None:
        self.fh.close()


class CsvSink(SinkNode):
    """Writes records to a CSV file with a fixed column set."""

    kind = "csv_sink"
    COLUMNS = ("kind", "stream", "seq", "sample", "n", "label", "pred", "latency_ms", "control")

    def setup(self) -> None:
        super().setup()
        path = self.param("path", None, str)
        if not path:
            raise ValueError(f"node {self.name!r}: parameter 'path' is required")
        self.fh = open(path, "w", newline="")
        self.writer = csv.DictWriter(self.fh, self.COLUMNS, extrasaction="ignore")
        self.writer.writeheader()

    def write(self, rec: dict) -> None:
        self.writer.writerow(rec)

    def close(self) -> None:
        self.fh.close()
