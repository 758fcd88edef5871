"""Small nodes used by the transport tests (started in real child processes by kind
``tests.graphnodes:Class``)."""
from __future__ import annotations

import time

import numpy as np

from stream.node import SourceNode
from stream.packets import DVS_DTYPE, Origin, Packet, control


class CountingSource(SourceNode):
    """Emits ``samples`` samples of ``messages`` DVS packets of ``events`` events each,
    each event's ``t`` a running counter so receivers can check order and completeness."""

    kind = "counting_source"

    def packets(self):
        samples = int(self.params.get("samples", 3))
        messages = int(self.params.get("messages", 10))
        events = int(self.params.get("events", 64))
        delay = float(self.params.get("delay_ms", 0)) / 1e3
        epoch = int(self.params.get("epoch", 1))
        t = 0
        for s in range(samples):
            origin = Origin(self.name, epoch, s)
            yield control("start", sample=s, label=s % 10, origin=origin)
            for m in range(messages):
                ev = np.zeros(events, DVS_DTYPE)
                ev["t"] = np.arange(t, t + events)
                ev["x"] = np.arange(events) % 34
                ev["y"] = (np.arange(events) // 34) % 34
                t += events
                yield Packet(kind="events", body=ev, geometry=(34, 34), sample=s, label=s % 10,
                             origin=origin, origin_ns=time.time_ns(), t0=int(ev["t"][0]),
                             t1=int(ev["t"][-1]))
                if delay:
                    time.sleep(delay)
            yield control("end_of_sample", sample=s, label=s % 10, origin=origin)
