"""Sinks: console, JSON lines and CSV writers that end a graph.

A sink records one line per data packet (and per sample boundary) with the end-to-end
latency from ``origin_ns``; it removes duplicate results by ``origin`` (source stream,
source epoch, sample), so a re-sent sample is counted once.
"""
from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

from rram_lsm.stream.clock import now_ns
from rram_lsm.stream.node import Node
from rram_lsm.stream.packets import Packet
from rram_lsm.stream.params import REQUIRED, Param


def packet_record(p: Packet) -> dict:
    """The small, JSON-friendly summary of a packet that sinks write."""
    rec = {
        "kind": p.kind, "stream": p.stream, "seq": p.seq, "sample": p.sample, "n": p.n,
        "label": p.label, "t0": p.t0, "t1": p.t1,
        "origin": p.origin.as_list() if p.origin else None,
        "latency_ms": round((now_ns() - p.origin_ns) / 1e6, 3) if p.origin_ns else None,
    }
    if p.is_control:
        rec["control"] = p.control
    for key in ("pred", "topk", "scores", "modality"):
        if key in p.meta:
            rec[key] = p.meta[key]
    return rec


class SinkNode(Node):
    """A counting sink (stores nothing); subclasses write records.

    Records of a sample are held until its ``end_of_sample`` and committed only when the
    sample is whole (a result arrived, or every event the source sent for it, ``n_events``),
    so a sample cut by a restart upstream is not half-written; it is re-sent whole.  A sample
    committed once is never written again (duplicates removed by ``origin``), and every
    commit is acknowledged to the source when the graph recovers samples.

    Memory stays bounded on endless streams: each ``start`` from a recovering source lists
    the samples it may still re-send, so every other committed or half-received sample of
    that stream is forgotten; without that list (recovery off, nothing is re-sent) the
    newest ``remember`` samples per stream are kept.  Only the two newest epochs of a source
    are remembered (a restarted source cannot re-send what it kept before).
    """

    kind = "null_sink"
    PARAMS = (Param("remember", int, 4096, "samples", "committed samples remembered per stream "
                    "to remove duplicates (when the source lists none)"),)
    RESULT_KINDS = ("features", "embedding", "prediction")
    EPOCHS_KEPT = 2

    def setup(self) -> None:
        self.remember = int(self.param("remember"))
        if self.remember < 1:
            raise ValueError(f"node {self.name!r}: parameter 'remember' must be >= 1")
        self.pending: dict[tuple, list[dict]] = {}
        self.committed: dict[tuple, dict[int, None]] = {}  # (stream, epoch) -> sample ids, oldest first
        self.duplicates = 0
        self.incomplete = 0
        self.records = 0

    def process(self, packet: Packet):
        key = self._key(packet)
        if packet.is_control:
            if key is not None and packet.control == "start":
                self._forget(key, packet.meta.get("unacked"))
                self.pending[key] = [self.record(packet)]
            elif key is not None and packet.control == "end_of_sample" and key in self.pending:
                self._commit(key, packet, self.pending.pop(key) + [self.record(packet)])
            return ()
        if key is not None and key in self.pending:
            self.pending[key].append(self.record(packet))
        else:
            self._write(self.record(packet))
        return ()

    def record(self, packet: Packet) -> dict:
        """What is kept of a packet until its sample commits (a subclass may keep more)."""
        return packet_record(packet)

    @staticmethod
    def _key(p: Packet) -> tuple | None:
        return (p.origin.stream, p.origin.epoch, p.origin.sample) if p.origin and p.sample >= 0 else None

    def _forget(self, key: tuple, unacked) -> None:
        """Drop what can never come again before sample ``key`` starts."""
        stream, epoch, sample = key
        if (stream, epoch) not in self.committed:
            self.committed[(stream, epoch)] = {}
            epochs = sorted(e for s, e in self.committed if s == stream)
            for old in epochs[:-self.EPOCHS_KEPT]:
                del self.committed[(stream, old)]
        done = self.committed[(stream, epoch)]
        if isinstance(unacked, list):
            keep = set(unacked)
            for s in [s for s in done if s < sample and s not in keep]:
                del done[s]
            stale = [k for k in self.pending
                     if k[:2] == (stream, epoch) and k[2] < sample and k[2] not in keep]
        else:
            while len(done) > self.remember:
                del done[next(iter(done))]
            stale = list(self.pending)[:-self.remember] if len(self.pending) > self.remember else []
        for k in stale:  # begun, never ended, and never coming again: cut upstream
            del self.pending[k]
            self.incomplete += 1
        self.gauges["incomplete_samples"] = self.incomplete
        self.gauges["remembered_samples"] = sum(map(len, self.committed.values())) + len(self.pending)

    def _commit(self, key: tuple, end: Packet, recs: list[dict]) -> bool:
        """Write a whole, new sample; True when it was committed now."""
        done = self.committed.setdefault(key[:2], {})
        new = False
        if key[2] in done:
            self.duplicates += 1
            self.gauges["duplicates"] = self.duplicates
        else:
            expected = end.meta.get("n_events")
            got = sum(r["n"] for r in recs if r["kind"] == "events")
            whole = (expected is None or got == expected
                     or any(r["kind"] in self.RESULT_KINDS for r in recs))
            if not whole:
                self.incomplete += 1
                self.gauges["incomplete_samples"] = self.incomplete
                return False
            done[key[2]] = None
            new = True
            for rec in recs:
                self._write(rec)
        if self.on_ack is not None:
            self.on_ack(end.origin)
        return new

    def _write(self, rec: dict) -> None:
        self.records += 1
        self.gauges["records"] = self.records
        self.write(rec)

    def write(self, rec: dict) -> None:
        """Counting only; subclasses write the record somewhere."""


class ConsoleSink(SinkNode):
    """Prints one line per data packet (events packets only every ``every`` packets)."""

    kind = "console_sink"
    PARAMS = SinkNode.PARAMS + (Param("every", int, 1, "packets", "print every n-th events packet"),)

    def setup(self) -> None:
        super().setup()
        self.every = int(self.param("every"))

    def write(self, rec: dict) -> None:
        if rec.get("control") or self.records % self.every == 0:
            print(json.dumps(rec), file=sys.stdout, flush=True)


class JsonlSink(SinkNode):
    """Writes every record as a JSON line to ``path``."""

    kind = "jsonl_sink"
    PARAMS = SinkNode.PARAMS + (
        Param("path", str, REQUIRED, "", "the JSON lines file (appended to)", path="out"),
        Param("echo", bool, False, "", "also print result and end-of-sample lines"),
    )

    def setup(self) -> None:
        super().setup()
        path = self.param("path")
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.fh = open(path, "a", buffering=1)
        self.echo = self.param("echo")

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
    PARAMS = SinkNode.PARAMS + (Param("path", str, REQUIRED, "", "the CSV file (overwritten)", path="out"),)

    def setup(self) -> None:
        super().setup()
        path = self.param("path")
        self.fh = open(path, "w", newline="")
        self.writer = csv.DictWriter(self.fh, self.COLUMNS, extrasaction="ignore")
        self.writer.writeheader()

    def write(self, rec: dict) -> None:
        self.writer.writerow(rec)

    def close(self) -> None:
        self.fh.close()
