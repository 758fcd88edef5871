"""Drive one node without the runtime: packets in, packets out (the way dora's MockNode does).

``drive`` calls ``setup``, then ``process`` for every packet and forwards each control packet
after the outputs it caused, as ``stream.runtime`` does, then ``flush`` at the end.
``sample_packets`` is one sample on the wire: ``start``, its events cut into packets, and
``end_of_sample``.
"""
from __future__ import annotations

from typing import Iterable

import numpy as np

from rram_lsm.stream.node import Node
from rram_lsm.stream.packets import Origin, Packet, control


def drive(node: Node, packets: Iterable[Packet], *, setup: bool = True, flush: bool = True,
          controls: bool = False) -> list[Packet]:
    """What ``node`` emits for ``packets``; with ``controls`` the forwarded control packets too."""
    if setup:
        node.setup()
    out: list[Packet] = []
    for packet in packets:
        out += list(node.process(packet))
        if controls and packet.kind == "control":
            out.append(packet)
    if flush:
        out += list(node.flush())
    return out


def sample_packets(events: np.ndarray, sample: int, *, n_packets: int = 7, label: int = 3,
                   geometry=(34, 34), origin: Origin | None = None) -> list[Packet]:
    """One sample as a source sends it: start, ``n_packets`` event packets, end_of_sample."""
    origin = origin or Origin("dvs", 42, sample)
    out = [control("start", sample=sample, label=label, origin=origin)]
    for part in np.array_split(events, n_packets):
        out.append(Packet(kind="events", body=part, geometry=geometry, sample=sample, label=label,
                          origin=origin, t0=int(part["t"][0]), t1=int(part["t"][-1])))
    out.append(control("end_of_sample", sample=sample, label=label, origin=origin))
    return out
