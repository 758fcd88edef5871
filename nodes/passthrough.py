"""A counting pass-through node: forwards every packet, optionally slowly (for tests)."""
from __future__ import annotations

import time

from rram_lsm.stream.node import Node
from rram_lsm.stream.packets import Packet
from rram_lsm.stream.params import Param


class PassThroughNode(Node):
    """Forwards data packets unchanged and counts them; ``delay_ms`` makes a slow consumer."""

    kind = "passthrough"
    PARAMS = (Param("delay_ms", float, 0.0, "ms", "sleep per data packet (a slow consumer, for tests)"),)

    def setup(self) -> None:
        self.delay_s = float(self.param("delay_ms")) / 1e3
        if self.delay_s < 0:
            raise ValueError(f"node {self.name!r}: delay_ms must be >= 0")
        self.count = 0

    def process(self, packet: Packet):
        if packet.is_control:
            return ()
        if self.delay_s:
            time.sleep(self.delay_s)
        self.count += 1
        self.gauges["forwarded"] = self.count
        return (packet.derive(packet.kind, body=packet.body, geometry=packet.geometry,
                              meta=dict(packet.meta)),)
