"""Data edges with project-enforced policies (DESIGN.md, Transport).

An edge joins one sending node to one receiving node.  The receiver binds a ROUTER socket
(several senders may connect to it: fan-in); each sender connects a DEALER.  Messages:

* sender -> receiver: ``[b"D" + count (+ token), *packet frames]`` (``count`` = this edge's
  running message number, 8 bytes little-endian) or ``[b"H" + count (+ token)]`` (hello: "I exist, I
  have sent ``count``, grant me credit").  A receiver given a run token (the launcher draws
  one per run) accepts only envelopes that carry it (16 bytes after the count).
* receiver -> sender: ``[b"C", limit]``: the sender may send while its count < ``limit``.
  Limits are absolute, so a lost or repeated grant is harmless.

Policies: ``block`` waits for credit (lossless, bounded in-flight); ``drop`` keeps a bounded
queue on the sending side and drops the oldest *data* message when it is full, counting
every dropped event by reason.  Control packets are never dropped.
"""
from __future__ import annotations

import collections
import hmac
import struct
import time
from dataclasses import dataclass, field
from typing import Callable

import zmq

from . import codec
from .clock import OffsetEstimate, now_ns
from .packets import Packet

_TAGGED = struct.Struct("<cQ")  # one-byte tag + 8-byte count: one frame, not two
_TIMES = struct.Struct("<cqqq")  # clock exchange: tag + three timestamps
DATA, HELLO, CREDIT, PING, PONG = b"D", b"H", b"C", b"P", b"Q"
PING_INTERVAL_S = 1.0
# Plain ints: pyzmq's enum flags cost microseconds per operation on the hot path.
_NOBLOCK, _EVENTS, _POLLIN = int(zmq.NOBLOCK), int(zmq.EVENTS), int(zmq.POLLIN)
_MORE_NOBLOCK = int(zmq.SNDMORE | zmq.NOBLOCK)
HELLO_INTERVAL_S = 0.25
# With credit in hand a sender reads grants and clock probes at most this often (each read
# is a getsockopt on the hot path); out of credit it reads at once.
INCOMING_INTERVAL_S = 0.002
POLICIES = ("block", "drop")
# Physical bounds on envelope fields from a peer (anything outside is a malformed message):
MAX_COUNT = 2**56  # a running message count: 228 years at 10 M messages/s
MAX_CREDIT = 2**20  # credit beyond what was sent that a receiver may grant
MAX_OFFSET_NS = 86_400 * 10**9  # a peer clock more than a day off is not a clock
MAX_RTT_NS = 10 * 10**9  # a clock exchange slower than this tells nothing


@dataclass
class EdgeConfig:
    """Plain-data description of one edge's sending side."""

    name: str
    endpoint: str
    policy: str = "block"
    window: int = 32  # credits the receiver grants beyond what it consumed
    queue_msgs: int = 64  # drop policy: bounded sending queue (messages)
    queue_bytes: int = 64 * 1024 * 1024  # ... and bytes

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise ValueError(f"edge {self.name!r}: policy {self.policy!r} is not one of {POLICIES}")
        for key in ("window", "queue_msgs", "queue_bytes"):
            if int(getattr(self, key)) < 1:
                raise ValueError(f"edge {self.name!r}: {key} must be >= 1")


@dataclass
class EdgeStats:
    offered: int = 0  # messages handed to the edge
    sent: int = 0  # messages put on the wire
    dropped: int = 0  # messages dropped (drop policy)
    events_sent: int = 0
    events_dropped: dict = field(default_factory=lambda: collections.Counter())
    max_queue: int = 0
    credit_waits: int = 0
    bad_grants: int = 0  # malformed or out-of-bounds messages from the receiver, ignored

    def as_dict(self) -> dict:
        return {
            "offered": self.offered, "sent": self.sent, "dropped": self.dropped,
            "events_sent": self.events_sent, "events_dropped": dict(self.events_dropped),
            "max_queue": self.max_queue, "credit_waits": self.credit_waits,
            "bad_grants": self.bad_grants,
        }


def _send_frames(sock: zmq.Socket, frames: list) -> None:
    """``send_multipart(frames, NOBLOCK, copy=False)`` with int flags (pyzmq's version combines
    enum flags per frame).  Raises ``zmq.Again`` only before the first frame: ZeroMQ takes a
    multipart message whole or not at all."""
    last = len(frames) - 1
    for i, f in enumerate(frames):
        sock.send(f, _MORE_NOBLOCK if i < last else _NOBLOCK, copy=False)


def _recv_frames(sock: zmq.Socket, flags: int = 0) -> list:
    """``recv_multipart(copy=False)`` reading each frame's ``more`` flag instead of a
    ``getsockopt(RCVMORE)`` per frame; ``flags`` NOBLOCK raises ``zmq.Again`` when nothing
    waits (a multipart message arrives whole, so only its first frame can)."""
    f = sock.recv(flags, copy=False)
    parts = [f]
    while f.more:
        f = sock.recv(0, copy=False)
        parts.append(f)
    return parts


def _nbytes(frames: list) -> int:
    return sum(len(f) if isinstance(f, bytes) else f.nbytes for f in frames)


class EdgeSender:
    """The sending end of one edge."""

    def __init__(self, ctx: zmq.Context, cfg: EdgeConfig, identity: bytes,
                 secure: Callable[[zmq.Socket, str], None] | None = None, token: bytes = b""):
        self.cfg = cfg
        self.token = token
        self.sock = ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.IDENTITY, identity)
        self.sock.setsockopt(zmq.LINGER, 2000)
        # Credits bound what is in flight; ZeroMQ's own HWM must never be the limit.
        self.sock.setsockopt(zmq.SNDHWM, 0)
        self.sock.setsockopt(zmq.IMMEDIATE, 1)
        if secure:
            secure(self.sock, cfg.endpoint)  # CurveZMQ client keys, before connecting
        self.sock.connect(cfg.endpoint)
        self.count = 0  # messages put on the wire by this sender on this edge
        self.limit = 0  # absolute credit limit granted by the receiver
        self.queue: collections.deque[tuple[Packet, list, int]] = collections.deque()  # + bytes
        self.queue_bytes = 0
        self.stats = EdgeStats()
        self._last_hello = 0.0
        self._last_read = 0.0

    # -- credit -------------------------------------------------------------------------
    def handle_incoming(self) -> None:
        """Read all pending credit grants (non-blocking)."""
        self._last_read = time.monotonic()
        while self.sock.getsockopt(_EVENTS) & _POLLIN:
            try:
                msg = self.sock.recv_multipart(_NOBLOCK)
            except zmq.Again:
                return
            if len(msg) != 1 or len(msg[0]) != _TAGGED.size:
                self.stats.bad_grants += 1
                continue
            tag, value = _TAGGED.unpack(msg[0])
            if tag == CREDIT and value - self.count <= MAX_CREDIT:
                self.limit = max(self.limit, value)
            elif tag == PING and value < 2**63:
                t2 = now_ns()  # answer the receiver's clock probe at once
                try:
                    self.sock.send(_TIMES.pack(PONG, value, t2, now_ns()), _NOBLOCK)
                except zmq.Again:
                    pass
            else:  # senders trust nothing either: counted, ignored
                self.stats.bad_grants += 1

    def hello(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._last_hello >= HELLO_INTERVAL_S:
            self._last_hello = now
            try:
                self.sock.send(_TAGGED.pack(HELLO, self.count) + self.token, _NOBLOCK)
            except zmq.Again:
                pass

    @property
    def credit(self) -> int:
        return self.limit - self.count

    # -- sending ------------------------------------------------------------------------
    def offer(self, packet: Packet, frames: list) -> None:
        """Hand a packet to the edge: queue it, dropping the oldest data if over bound."""
        self.stats.offered += 1
        size = _nbytes(frames)
        self.queue.append((packet, frames, size))
        self.queue_bytes += size
        if self.cfg.policy == "drop":
            self._enforce_bound()
        self.stats.max_queue = max(self.stats.max_queue, len(self.queue))

    def _enforce_bound(self) -> None:
        while len(self.queue) > self.cfg.queue_msgs or self.queue_bytes > self.cfg.queue_bytes:
            for i, (pkt, _, size) in enumerate(self.queue):
                if not pkt.is_control:
                    del self.queue[i]
                    self.queue_bytes -= size
                    self.stats.dropped += 1
                    self.stats.events_dropped["no_credit"] += pkt.n
                    break
            else:
                return  # only control packets left: never dropped

    def pump(self, incoming: bool = False) -> None:
        """Send queued messages while credit lasts; read grants first when asked to
        (``incoming``: the poller saw them), when out of credit, or every
        ``INCOMING_INTERVAL_S`` (clock probes are answered within about that)."""
        if incoming or self.count >= self.limit or time.monotonic() - self._last_read >= INCOMING_INTERVAL_S:
            self.handle_incoming()
        while self.queue and self.count < self.limit:
            pkt, frames, size = self.queue[0]
            try:
                _send_frames(self.sock, [_TAGGED.pack(DATA, self.count + 1) + self.token, *frames])
            except zmq.Again:
                break  # no connected receiver (it may be restarting): keep the message
            self.queue.popleft()
            self.queue_bytes -= size
            self.count += 1
            self.stats.sent += 1
            self.stats.events_sent += pkt.n
        if self.queue:
            self.hello()

    def close(self) -> None:
        self.sock.close()


class EdgeReceiver:
    """The receiving end: a bound ROUTER that grants credit to every connected sender."""

    def __init__(self, ctx: zmq.Context, endpoint: str, window: int = 32,
                 secure: Callable[[zmq.Socket], None] | None = None, token: bytes = b""):
        self.sock = ctx.socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.LINGER, 500)
        self.sock.setsockopt(zmq.RCVHWM, 0)
        self.sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
        if secure:
            secure(self.sock)  # CurveZMQ server keys, before binding
        try:
            self.sock.bind(endpoint)
        except zmq.ZMQError:
            self.sock.close(0)
            raise
        self.endpoint = self.sock.getsockopt_string(zmq.LAST_ENDPOINT)
        self.window = window
        self.token = token
        self.peers: dict[bytes, int] = {}  # identity -> last count seen (authenticated peers)
        self.clocks: dict[bytes, OffsetEstimate] = {}  # identity -> its clock minus ours
        self._last_ping: dict[bytes, float] = {}
        self._ping_sent: dict[bytes, int] = {}  # identity -> t1 of the ping it may answer
        self.last_peer: bytes = b""
        self.received = 0
        self.hellos = 0  # accepted hellos and clock replies (not packets: not in msgs_in)
        self.pongs = 0
        self.lost = 0  # gaps in a sender's count (e.g. after this receiver restarted)
        self.per_peer_received: collections.Counter = collections.Counter()

    def recv(self, flags: int = 0) -> list | None:
        """One message's packet frames, or None for a hello or a clock reply (``flags``:
        ``zmq.NOBLOCK`` raises ``zmq.Again`` when none waits).

        Every envelope field is range-checked before use: a bad one raises
        ``codec.DecodeError`` with its reason (``envelope``, ``envelope_count``, ``bad_pong``)
        and changes no state, so no peer can corrupt the accounting or raise out of here.
        """
        msg = _recv_frames(self.sock, flags)
        if len(msg) < 2:
            raise codec.DecodeError("envelope", f"{len(msg)} frames")
        ident = msg[0].bytes
        if len(msg) == 2 and len(msg[1]) == _TIMES.size and msg[1].bytes[:1] == PONG:
            self._pong(ident, *_TIMES.unpack(msg[1].bytes)[1:])
            return None
        env = msg[1].bytes
        if self.token:  # every envelope carries the run's token: no state, no restart window
            if len(env) != _TAGGED.size + len(self.token) or not hmac.compare_digest(env[_TAGGED.size:], self.token):
                raise codec.DecodeError("unauthenticated", "envelope without this run's token")
            env = env[:_TAGGED.size]
        if len(env) != _TAGGED.size:
            raise codec.DecodeError("envelope", "bad envelope frame")
        tag, count = _TAGGED.unpack(env)
        if tag not in (HELLO, DATA):
            raise codec.DecodeError("envelope", "bad tag")
        last = self.peers.get(ident)
        # A sender never has more in flight than the window granted on the last count seen,
        # so a legitimate count is at most last + window (+1 for data); first contact (or
        # this receiver restarted) accepts any count below the physical bound.
        top = MAX_COUNT if last is None else last + self.window + (tag == DATA)
        if count > top or (tag == DATA and count < 1):
            raise codec.DecodeError("envelope_count", f"count {count} outside [1, {top}]")
        if tag == HELLO:
            if len(msg) != 2:
                raise codec.DecodeError("envelope", "hello with body")
            self.peers[ident] = count if last is None else max(last, count)
            self.hellos += 1
            self._grant(ident)
            self._maybe_ping(ident)
            return None
        if len(msg) < 3:
            raise codec.DecodeError("envelope", "data without packet")
        if last is not None and count > last + 1:
            self.lost += count - last - 1
        self.peers[ident] = count if last is None else max(last, count)
        self.received += 1
        self.per_peer_received[ident] += 1
        self.last_peer = ident
        if count % max(1, self.window // 4) == 0:
            self._grant(ident)
        self._maybe_ping(ident)
        return msg[2:]

    def _pong(self, ident: bytes, t1: int, t2: int, t3: int) -> None:
        """A clock reply: used only if it answers the ping we sent this peer and its times are
        physically possible (round trip and offset bounded), else a malformed message."""
        t4 = now_ns()
        if self._ping_sent.pop(ident, None) != t1:
            raise codec.DecodeError("bad_pong", "answers no ping of ours")
        rtt = (t4 - t1) - (t3 - t2)
        offset = ((t2 - t1) + (t3 - t4)) / 2
        if not (0 <= t3 - t2 <= MAX_RTT_NS and 0 <= rtt <= MAX_RTT_NS and abs(offset) <= MAX_OFFSET_NS):
            raise codec.DecodeError("bad_pong", "clock times outside physical bounds")
        self.pongs += 1
        self.clocks.setdefault(ident, OffsetEstimate()).add(t1, t2, t3, t4)

    def _maybe_ping(self, ident: bytes) -> None:
        now = time.monotonic()
        if now - self._last_ping.get(ident, 0.0) >= PING_INTERVAL_S:
            self._last_ping[ident] = now
            t1 = now_ns()
            self._ping_sent[ident] = t1
            try:
                self.sock.send_multipart([ident, _TAGGED.pack(PING, t1)], _NOBLOCK)
            except (zmq.Again, zmq.ZMQError):
                pass

    def offset_ns(self, ident: bytes) -> float:
        """The peer's clock minus ours, to correct its timestamps by: the estimate where it is
        larger than its own uncertainty, else 0 (unmeasured, or clocks that agree within what
        the exchanges can tell, as on one host: correcting by noise would add up to a half
        round trip to every latency)."""
        est = self.clocks.get(ident)
        return est.significant_offset_ns if est is not None else 0.0

    def _grant(self, ident: bytes) -> None:
        try:
            self.sock.send_multipart([ident, _TAGGED.pack(CREDIT, self.peers[ident] + self.window)], _NOBLOCK)
        except (zmq.Again, zmq.ZMQError):
            pass  # peer gone; it will say hello again

    def grant_all(self) -> None:
        for ident in self.peers:
            self._grant(ident)

    def close(self) -> None:
        self.sock.close()

