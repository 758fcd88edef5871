"""Tap sink: forwards the data packets of every whole sample to another process (kind ``tap``).

The Python graph API (launch/api.py) adds one beside a graph's sinks, so a script or a notebook
receives the results as they come.  It is a sink like the others: duplicates are removed by
``origin``, a sample is forwarded only once it is whole, and its commit is acknowledged to the
source.  Packets go out, encoded as on every edge, on a ZeroMQ PUSH socket connected to
``endpoint``; a receiver that stops reading for ``send_timeout_ms`` costs packets, counted in
the ``tap_dropped`` gauge, never a stalled graph.
"""
from __future__ import annotations

import zmq

from rram_lsm.stream import codec
from rram_lsm.stream.packets import Packet
from rram_lsm.stream.params import REQUIRED, Param

from .sinks import SinkNode


class TapSink(SinkNode):
    """Forwards the packets of whole samples to a listening process (the Python API's tap)."""

    kind = "tap"
    PARAMS = SinkNode.PARAMS + (
        Param("endpoint", str, REQUIRED, "", "where the receiver's PULL socket is bound"),
        Param("send_timeout_ms", int, 5000, "ms", "wait this long for a slow receiver, then drop"),
    )

    def setup(self) -> None:
        super().setup()
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.PUSH)
        self.sock.setsockopt(zmq.SNDTIMEO, self.param("send_timeout_ms"))
        self.sock.setsockopt(zmq.LINGER, 2000)
        self.sock.connect(self.param("endpoint"))
        self.held: dict[tuple, list[Packet]] = {}
        self.dropped = 0

    def process(self, packet: Packet):
        key = self._key(packet)
        if key is not None and packet.control == "start":
            self.held.pop(key, None)  # a re-sent sample starts over
        elif not packet.is_control:
            if key is None:
                self._send(packet)  # continuous streams have no samples to wait for
            else:
                self.held.setdefault(key, []).append(packet)
        return super().process(packet)

    def _forget(self, key, unacked) -> None:
        super()._forget(key, unacked)
        for k in [k for k in self.held if k not in self.pending]:
            del self.held[k]

    def _commit(self, key, end, recs) -> bool:
        packets = self.held.pop(key, [])
        if not super()._commit(key, end, recs):
            return False
        for p in packets:
            self._send(p)
        return True

    def _send(self, packet: Packet) -> None:
        try:
            self.sock.send_multipart(codec.encode(packet), copy=False)
        except zmq.Again:
            self.dropped += 1
            self.gauges["tap_dropped"] = self.dropped

    def close(self) -> None:
        self.sock.close()
        self.ctx.term()
