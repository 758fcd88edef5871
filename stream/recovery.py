"""End-to-end recovery by sample (DESIGN.md, Transport).

Reservoir state inside a sample cannot be rebuilt, so the unit of recovery is the sample:
the source keeps every sample it sent (a bounded number, each of bounded size) until each
sink acknowledges its result; after a restart (or an acknowledgement timeout) it re-sends the
unacknowledged samples whole.  Sinks remove duplicates by ``origin``.  Delivery is
at-least-once; results at the sink are exactly-once.
"""
from __future__ import annotations

import hmac
import time
from collections import OrderedDict
from dataclasses import dataclass, field

import msgpack
import zmq

from .packets import Origin, Packet

_NOBLOCK = int(zmq.NOBLOCK)
MAX_UNACKED = 1024


class SampleTooLarge(ValueError):
    """A sample larger than the recovery bound: refused instead of deadlocking."""


@dataclass
class RecoveryConfig:
    max_unacked: int = 64  # samples kept until acknowledged
    max_sample_bytes: int = 64 * 1024 * 1024  # bound on one kept sample
    resend_after_s: float = 30.0  # re-send a sample not acknowledged for this long

    def __post_init__(self) -> None:
        if self.max_unacked < 1 or self.max_sample_bytes < 1 or self.resend_after_s <= 0:
            raise ValueError("recovery: max_unacked, max_sample_bytes and resend_after_s must be > 0")
        if self.max_unacked > MAX_UNACKED:
            raise ValueError(f"recovery: max_unacked must be <= {MAX_UNACKED} (the list of unacknowledged "
                             "samples travels in each start packet)")


@dataclass
class _Kept:
    packets: list[Packet] = field(default_factory=list)
    nbytes: int = 0
    events: int = 0
    sent_at: float = 0.0
    acked_by: set = field(default_factory=set)
    resends: int = 0


def origin_key(o: Origin) -> tuple:
    return (o.stream, o.epoch, o.sample)


class SampleLedger:
    """Source side: the samples sent and not yet acknowledged by every sink."""

    def __init__(self, cfg: RecoveryConfig, n_ackers: int):
        self.cfg, self.n_ackers = cfg, max(1, n_ackers)
        self.kept: OrderedDict[tuple, _Kept] = OrderedDict()
        self.open: tuple | None = None
        self.acked = 0
        self.resent_samples = 0
        self.stale_acks = 0

    def record(self, pkt: Packet) -> None:
        """Keep ``pkt`` if it belongs to a sample; stamps ``n_events`` on its end_of_sample."""
        if pkt.origin is None or pkt.sample < 0:
            return
        key = origin_key(pkt.origin)
        if pkt.is_control and pkt.control == "start":
            # Tell the sinks which earlier samples may still come again: any other one is
            # acknowledged for good, so a sink can forget it (its duplicate memory stays bounded).
            pkt.meta = {**pkt.meta, "unacked": [k[2] for k in self.kept if k[:2] == key[:2]]}
            self.kept[key] = _Kept()
            self.open = key
        kept = self.kept.get(key)
        if kept is None:
            return
        if pkt.is_control and pkt.control == "end_of_sample":
            pkt.meta = {**pkt.meta, "n_events": kept.events}
            self.open = None
            kept.sent_at = time.monotonic()
        elif not pkt.is_control:
            kept.events += pkt.n
            kept.nbytes += pkt.body.nbytes if pkt.body is not None else 0
            if kept.nbytes > self.cfg.max_sample_bytes:
                raise SampleTooLarge(
                    f"sample {pkt.sample} of stream {pkt.origin.stream!r} exceeds the recovery bound "
                    f"of {self.cfg.max_sample_bytes} bytes; raise recovery.max_sample_bytes or "
                    "turn recovery off for this graph (live streams use drop edges)")
        kept.packets.append(pkt)

    @property
    def full(self) -> bool:
        return len(self.kept) >= self.cfg.max_unacked

    def ack(self, sink: str, key: tuple) -> None:
        kept = self.kept.get(key)
        if kept is None:
            self.stale_acks += 1
            return
        kept.acked_by.add(sink)
        if len(kept.acked_by) >= self.n_ackers:
            del self.kept[key]
            self.acked += 1

    def due(self, now: float, all_unacked: bool) -> list[list[Packet]]:
        """Whole samples to re-send: every closed unacknowledged one, or those timed out."""
        out = []
        for key, kept in self.kept.items():
            if key == self.open:
                continue
            if all_unacked or now - kept.sent_at > self.cfg.resend_after_s:
                kept.sent_at = now
                kept.resends += 1
                self.resent_samples += 1
                out.append(kept.packets)
        return out

    def stats(self) -> dict:
        return {"unacked": len(self.kept), "acked": self.acked, "resent_samples": self.resent_samples,
                "stale_acks": self.stale_acks}


def encode_ack(sink: str, o: Origin, token: bytes = b"") -> bytes:
    return msgpack.packb([sink, o.stream, o.epoch, o.sample] + ([token] if token else []))


def decode_ack(frame: bytes, token: bytes = b"") -> tuple[str, tuple] | None:
    """(sink, origin key) or None for anything malformed or, given the run's token, without it
    (a forged acknowledgement would make the source forget a sample no sink has)."""
    try:
        v = msgpack.unpackb(frame, max_str_len=1024, max_array_len=8, max_map_len=0, max_bin_len=64)
    except Exception:
        return None
    if not isinstance(v, list) or len(v) != 4 + bool(token):
        return None
    if token and not (isinstance(v[4], bytes) and hmac.compare_digest(v[4], token)):
        return None
    if (not isinstance(v[0], str) or not isinstance(v[1], str)
            or not all(isinstance(x, int) and not isinstance(x, bool) for x in v[2:4])):
        return None
    return v[0], (v[1], v[2], v[3])


class StartFilter:
    """Admits a sample's packets only after its ``start``, and only while time goes forward.

    The tail of a sample whose ``start`` this process never saw (it restarted mid-sample)
    could only produce a wrong result, and the source re-sends it whole: ``no_start`` (a drop).
    An events packet whose first event is earlier than the last event already admitted for
    its sample is malformed: ``time_backwards`` (a rejection).  At most ``max_open`` samples
    are tracked (the oldest open one is forgotten first), so a peer that starts samples and
    never ends them cannot grow it.
    """

    def __init__(self, max_open: int = 4096) -> None:
        self.open: dict[tuple, int] = {}  # origin key -> last event time admitted (µs)
        self.max_open = max_open

    def admit(self, pkt: Packet) -> str | None:
        """None to admit ``pkt``, else the reason it is refused (``no_start``, ``time_backwards``)."""
        if pkt.origin is None or pkt.sample < 0:
            return None
        key = origin_key(pkt.origin)
        if pkt.is_control:
            if pkt.control == "start":
                self.open.pop(key, None)
                self.open[key] = -2**63
                while len(self.open) > self.max_open:
                    del self.open[next(iter(self.open))]
                return None
            if pkt.control == "end_of_sample":
                return None if self.open.pop(key, None) is not None else "no_start"
            return None
        last = self.open.get(key)
        if last is None:
            return "no_start"
        if pkt.kind == "events" and pkt.body is not None and len(pkt.body):
            t = pkt.body["t"]
            if int(t[0]) < last:
                return "time_backwards"
            self.open[key] = int(t[-1])
        return None
