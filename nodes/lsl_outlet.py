"""LSL outlet sink: predictions, or embeddings, as a Lab Streaming Layer stream.

BCI feedback, LabRecorder (XDF files) and stimulus software read LSL, so a graph's results
reach them without glue code.  A ``prediction`` outlet is an irregular-rate string stream,
one channel per field (below, described in the stream's ``desc``); an ``embedding`` outlet is
an irregular-rate float32 stream with one channel per embedding dimension.  Both stamp each
sample on LSL's clock (``pylsl.local_clock``): by default the time the sample's first event
entered the graph (``origin_ns``, mapped from the wall clock), so a recording lines the
result up with the data that caused it; ``timestamp = "now"`` stamps the moment it is pushed.

It is a sink like the others: a sample is pushed once, when it is whole, duplicates of a
re-sent sample are removed by origin, and the commit is acknowledged to the source.
"""
from __future__ import annotations

import json

import numpy as np

from rram_lsm.stream.clock import now_ns
from rram_lsm.stream.node import ConfigError
from rram_lsm.stream.packets import Packet
from rram_lsm.stream.params import Param

from .sinks import SinkNode, packet_record
from .sources.live import optional_import

# The prediction stream's channels: label, unit, meaning.  Each channel holds its value as
# text: numbers and lists in JSON, names as they are, empty when unknown.
PREDICTION_CHANNELS = (
    ("pred", "class", "predicted class index; -1 when rejected (below the reject threshold)"),
    ("score", "cosine", "the top class's score"),
    ("topk", "class", "the top-k class indices, best first (JSON list)"),
    ("topk_scores", "cosine", "their scores (JSON list)"),
    ("label", "class", "ground truth of a replayed sample; empty when unknown"),
    ("origin_stream", "", "the source node that produced the sample"),
    ("origin_epoch", "", "that source's epoch (a restarted source draws a new one)"),
    ("sample", "", "the sample's id at its source (-1: a continuous stream)"),
    ("t0_us", "us", "start of the sample's time span, on the source's time axis"),
    ("t1_us", "us", "end of the sample's time span, on the source's time axis"),
    ("origin_time", "s", "LSL clock time when the sample's first event entered the graph"),
    ("latency_ms", "ms", "from that first event to this outlet"),
)
PUBLISH = {"predictions": "prediction", "embeddings": "embedding"}
STREAM_TYPES = {"predictions": "Predictions", "embeddings": "Embeddings"}


def lsl_time(lsl_now: float, wall_now_ns: int, wall_ns: int | None) -> float:
    """A wall-clock time (ns, ``stream.clock``) on LSL's clock, read beside ``lsl_now``.

    LSL's clock is monotonic and ours is the wall clock, so the two are mapped by their
    readings at one moment rather than by a fixed offset (the wall clock may be stepped)."""
    if not wall_ns:
        return lsl_now
    return lsl_now - (wall_now_ns - int(wall_ns)) / 1e9


def _text(value) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value)


def prediction_sample(rec: dict) -> list[str]:
    """The prediction stream's channel values for one sink record (``PREDICTION_CHANNELS``)."""
    origin = rec.get("origin") or [None, None, None]
    scores = rec.get("scores") or []
    values = {
        "pred": rec.get("pred"), "score": scores[0] if scores else None,
        "topk": rec.get("topk"), "topk_scores": scores, "label": rec.get("label"),
        "origin_stream": origin[0], "origin_epoch": origin[1], "sample": rec.get("sample"),
        "t0_us": rec.get("t0"), "t1_us": rec.get("t1"),
        "origin_time": rec.get("origin_time"), "latency_ms": rec.get("latency_ms"),
    }
    return [_text(values[label]) for label, _, _ in PREDICTION_CHANNELS]


class LslOutlet(SinkNode):
    """Publishes predictions (or embeddings) as an LSL stream, stamped on LSL's clock."""

    kind = "lsl_outlet"
    PARAMS = SinkNode.PARAMS + (
        Param("publish", str, "predictions", "", "what the outlet carries (wire it after a "
              "classifier, or after a projection)", choices=tuple(PUBLISH)),
        Param("name", str, None, "", "the LSL stream's name (default rram-lsm-NODE)"),
        Param("type", str, None, "", "the LSL stream's type (default Predictions / Embeddings)"),
        Param("source_id", str, None, "", "the LSL source id, stable across restarts so inlets "
              "reconnect (default rram-lsm:NAME:PUBLISH)"),
        Param("dim", int, None, "", "embeddings: their size, so the stream exists before the "
              "first one (unset: created at the first embedding)"),
        Param("timestamp", str, "origin", "", "each sample's LSL time: when its first event "
              "entered the graph, or when it is pushed", choices=("origin", "now")),
        Param("wait_consumer_s", float, 0.0, "s", "at setup, wait this long for a first inlet "
              "(LabRecorder, a feedback app), so no early result goes to nobody"),
    )

    def setup(self) -> None:
        super().setup()
        self.pylsl = optional_import("pylsl", "pylsl", user="the lsl_outlet sink")
        self.publish = self.param("publish")
        self.stream_name = self.param("name") or f"rram-lsm-{self.name}"
        self.stream_type = self.param("type") or STREAM_TYPES[self.publish]
        self.source_id = self.param("source_id") or f"rram-lsm:{self.stream_name}:{self.publish}"
        self.stamp = self.param("timestamp")
        self.dim = self.param("dim")
        if self.dim is not None and (self.publish != "embeddings" or self.dim < 1):
            raise ConfigError(f"node {self.name!r}: parameter 'dim' is the embedding size "
                              f"(>= 1) of publish = 'embeddings'")
        self.outlet = None
        if self.publish == "predictions":
            self.outlet = self._open(len(PREDICTION_CHANNELS), self.pylsl.cf_string,
                                     PREDICTION_CHANNELS)
        elif self.dim is not None:
            self.outlet = self._open_embeddings(self.dim)
        self.pushed = 0
        self.gauges.update(pushed=0, consumers=0)
        wait = float(self.param("wait_consumer_s"))
        if self.outlet is not None and wait > 0:
            self.gauges["consumers"] = int(self.outlet.wait_for_consumers(wait))

    def _open_embeddings(self, dim: int):
        channels = [(f"e{i}", "", f"embedding dimension {i} (L2-normalised)") for i in range(dim)]
        return self._open(dim, self.pylsl.cf_float32, channels)

    def _open(self, n: int, fmt: int, channels):
        """A StreamOutlet with the stream's description: its channels, its clock, its origin."""
        from rram_lsm import __version__

        info = self.pylsl.StreamInfo(self.stream_name, self.stream_type, n,
                                     self.pylsl.IRREGULAR_RATE, fmt, self.source_id)
        desc = info.desc()
        desc.append_child_value("manufacturer", "rram-lsm")
        desc.append_child_value("version", __version__)
        desc.append_child_value("node", self.name)
        desc.append_child_value("timestamps", "the time the sample's first event entered the graph"
                                if self.stamp == "origin" else "the time the result was pushed")
        chans = desc.append_child("channels")
        for label, unit, meaning in channels:
            ch = chans.append_child("channel")
            ch.append_child_value("label", label)
            ch.append_child_value("unit", unit)
            ch.append_child_value("type", STREAM_TYPES[self.publish])
            ch.append_child_value("description", meaning)
        return self.pylsl.StreamOutlet(info)

    def process(self, packet: Packet):
        other = {k for k in PUBLISH.values() if k != PUBLISH[self.publish]}
        if packet.kind in other:
            raise ValueError(f"lsl_outlet {self.name!r} publishes {self.publish}, got a "
                             f"{packet.kind!r} packet (set publish, or wire it elsewhere)")
        if packet.kind == "embedding":
            size = np.shape(packet.body)[-1] if np.ndim(packet.body) else 0
            if self.outlet is None:
                self.dim = size
                self.outlet = self._open_embeddings(size)
            if size != self.dim:
                raise ValueError(f"embedding of size {size} on the {self.dim}-channel LSL "
                                 f"stream {self.stream_name!r}")
        return super().process(packet)

    def record(self, packet: Packet) -> dict:
        """The sink record plus the sample's LSL time (and the embedding rows)."""
        rec = packet_record(packet)
        if packet.kind == PUBLISH[self.publish]:
            rec["origin_time"] = lsl_time(self.pylsl.local_clock(), now_ns(), packet.origin_ns)
            if packet.kind == "embedding":
                rec["rows"] = np.atleast_2d(np.asarray(packet.body, dtype=np.float32))
        return rec

    def write(self, rec: dict) -> None:
        if rec["kind"] != PUBLISH[self.publish]:
            return  # events and control records: nothing to publish
        stamp = rec["origin_time"] if self.stamp == "origin" else self.pylsl.local_clock()
        if self.publish == "predictions":
            self.outlet.push_sample(prediction_sample(rec), stamp)
        else:
            for row in rec["rows"]:
                self.outlet.push_sample(row.tolist(), stamp)
        self.pushed += 1
        self.gauges["pushed"] = self.pushed
        self.gauges["consumers"] = int(self.outlet.have_consumers())

    def close(self) -> None:
        self.outlet = None  # pylsl closes the stream when the outlet is collected
