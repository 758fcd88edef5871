"""A test sink (kind ``eventlog:EventLog``): saves every event it receives, for comparison."""
from __future__ import annotations

import time

import numpy as np

from rram_lsm.nodes.sinks import SinkNode
from rram_lsm.stream.packets import Packet


class EventLog(SinkNode):
    """Saves the events it receives to ``path`` (.npy) at close, with each packet's sample id
    label, receive time and ``origin_ns`` beside them in ``path``.samples.npy ((sample, label,
    n, received ns, origin ns) per events packet)."""

    def setup(self) -> None:
        super().setup()
        self.chunks, self.rows = [], []

    def process(self, packet: Packet):
        if packet.kind == "events":
            self.chunks.append(packet.body.copy())
            self.rows.append((packet.sample, -1 if packet.label is None else packet.label, len(packet.body),
                              time.time_ns(), packet.origin_ns))
        return super().process(packet)

    def close(self) -> None:
        if self.chunks:
            np.save(self.params["path"], np.concatenate(self.chunks))
            np.save(self.params["path"] + ".samples.npy", np.asarray(self.rows, dtype=np.int64))
