"""Runs one node in its own process: sockets, polling, signals, telemetry, end of stream.

A node only implements ``setup / process / flush / close`` (or ``packets`` for a source);
everything about the wire lives here.
"""
from __future__ import annotations

import os
import signal
import sys
import time
from dataclasses import dataclass, field
from typing import Iterable

import zmq

from . import codec
from .clock import now_ns
from .node import Node, SourceNode
from .packets import Origin, Packet, control, new_epoch
from .preview import EventPreview
from .security import CurveConfig, CurveContext
from .recovery import RecoveryConfig, SampleLedger, StartFilter, decode_ack, encode_ack
from .telemetry import NodeStats, TelemetryPublisher
from .transport import EdgeConfig, EdgeReceiver, EdgeSender

POLL_MS = 50
_NOBLOCK = int(zmq.NOBLOCK)
DRAIN_TIMEOUT_S = 10.0
MAX_ERROR_LOGS = 5


class BindFailed(ValueError):
    """An endpoint this node could not bind (in use, or an address of another host)."""


@dataclass
class NodeSpec:
    """Everything the runtime needs to run one node, as plain data."""

    name: str
    kind: str
    params: dict = field(default_factory=dict)
    bind: str | None = None  # input endpoint (ROUTER), None for sources
    address: str | None = None  # where peers connect to reach ``bind`` (default: ``bind``)
    outputs: list[EdgeConfig] = field(default_factory=list)
    upstream: int = 0  # number of upstream nodes whose end_of_stream ends this node
    upstream_names: list[str] = field(default_factory=list)  # those nodes (empty: any peer)
    window: int = 32  # credits granted to each upstream sender
    telemetry: str | None = None
    telemetry_interval_s: float = 1.0
    energy_profiles: list[str] = field(default_factory=list)
    curve: dict | None = None  # security.CurveConfig fields; None = no encryption (loopback)
    limits: codec.Limits = field(default_factory=codec.Limits)
    # end-to-end recovery (sources keep samples until every sink acknowledges them)
    recovery: dict | None = None  # RecoveryConfig fields; None = off (live graphs, drop edges)
    ack_bind: str | None = None  # sources: where sinks send acknowledgements
    n_ackers: int = 0  # sources: how many sinks must acknowledge each sample
    ack_to: list[str] = field(default_factory=list)  # sinks: the sources' ack endpoints
    # replayable sources across restarts: the origin epoch of the data (kept by the launcher,
    # so a re-sent sample has the identity it had) and the first sample not yet acknowledged
    origin_epoch: int | None = None
    resume_from: int = 0
    # a secret the launcher draws per run (hex): every envelope and acknowledgement carries
    # it, and receivers refuse what lacks it (None: no check, e.g. nodes started by hand)
    run_token: str | None = None


class NodeRuntime:
    def __init__(self, node: Node, spec: NodeSpec, ctx: zmq.Context | None = None):
        self.node, self.spec = node, spec
        self._owns_ctx = ctx is None
        self.ctx = ctx or zmq.Context()
        self.epoch = new_epoch()
        self.stats = NodeStats()
        self.seq = 0
        self.stop_requested = False
        self.ended_upstreams: set[str] = set()
        self.error_logs = 0
        self._energy = None
        self.curve = CurveContext(self.ctx, CurveConfig(**spec.curve), spec.name) if spec.curve else None
        client = self.curve.client if self.curve else None
        server = self.curve.server if self.curve else None
        ident = f"{spec.name}:{self.epoch}".encode()
        self.token = bytes.fromhex(spec.run_token) if spec.run_token else b""
        self.receiver = None
        self.ack_sock = None
        try:  # binds first: one that fails leaves nothing else open
            if spec.bind:
                self.receiver = EdgeReceiver(self.ctx, spec.bind, spec.window, server, self.token)
            if isinstance(node, SourceNode) and spec.recovery is not None and spec.ack_bind:
                self.ack_sock = self.ctx.socket(zmq.PULL)
                self.ack_sock.setsockopt(zmq.LINGER, 0)
                if server:
                    server(self.ack_sock)
                self.ack_sock.bind(spec.ack_bind)
        except zmq.ZMQError as exc:
            endpoint = spec.ack_bind if self.receiver is not None else spec.bind
            for sock in (self.receiver.sock if self.receiver else None, self.ack_sock):
                if sock is not None:
                    sock.close(0)
            if self.curve is not None:
                self.curve.stop()
            if self._owns_ctx:
                self.ctx.term()
            raise BindFailed(f"node {spec.name!r} cannot bind {endpoint}: {exc.strerror}") from None
        self.senders = [EdgeSender(self.ctx, cfg, ident, client, self.token) for cfg in spec.outputs]
        if self.receiver is not None:
            from . import validate
            validate.warm_up()
        self.start_filter = StartFilter()
        self.ledger: SampleLedger | None = None
        self._recovery_poller: zmq.Poller | None = None
        self.resend_requested = False
        if self.ack_sock is not None:
            self.ledger = SampleLedger(RecoveryConfig(**spec.recovery), spec.n_ackers)
        self.ack_push = []
        for ep in spec.ack_to:
            sock = self.ctx.socket(zmq.PUSH)
            sock.setsockopt(zmq.LINGER, 2000)
            if client:
                client(sock, ep)
            sock.connect(ep)
            self.ack_push.append(sock)
        self.acks_sent = 0
        node.on_ack = self.send_ack if self.ack_push else None
        self.next_sample = 0  # sources: the sample a restart would resume from (none acked yet)
        if spec.origin_epoch is not None and hasattr(node, "resume_from"):
            node.epoch, node.resume_from = spec.origin_epoch, spec.resume_from
            self.next_sample = spec.resume_from
        self.telemetry = TelemetryPublisher(self.ctx, spec.telemetry, spec.name, self.epoch, client)
        self._last_report = time.monotonic()
        # sources: small frames of what they send, for live displays (telemetry ``view``)
        self.preview = EventPreview() if isinstance(node, SourceNode) else None

    # -- signals ----------------------------------------------------------------------------
    def install_signal_handlers(self) -> None:
        """SIGTERM/SIGINT: finish (end_of_stream downstream, a bounded drain); a second one
        ends the node at once (its final report and socket close still run)."""
        def request_stop(signum, _frame):
            if self.stop_requested:
                raise SystemExit(128 + signum)
            self.stop_requested = True
        def request_resend(signum, _frame):
            self.resend_requested = True
        signal.signal(signal.SIGTERM, request_stop)
        signal.signal(signal.SIGINT, request_stop)
        signal.signal(signal.SIGUSR1, request_resend)  # the launcher: "a node restarted"

    # -- sending ----------------------------------------------------------------------------
    def emit(self, pkt: Packet) -> None:
        """Stamp and send one packet on every output edge (blocking on `block` edges)."""
        if not self.senders:
            return  # a sink: nothing to send
        self.seq += 1
        pkt.stream, pkt.epoch, pkt.seq = self.spec.name, self.epoch, self.seq
        pkt.sent_ns = now_ns()
        frames = codec.encode(pkt)
        for s in self.senders:
            s.offer(pkt, frames)
            s.pump()
        self.stats.msgs_out += 1
        self.stats.events_out += pkt.n if not pkt.is_control else 0
        self._wait_for_credit()

    def _wait_for_credit(self, deadline: float | None = None) -> bool:
        """Wait until every `block` edge's queue is empty (every edge's, given a deadline);
        keep telemetry flowing."""
        pending = [s for s in self.senders if s.queue and (deadline is not None or s.cfg.policy == "block")]
        if not pending:
            return True
        poller = zmq.Poller()
        for s in pending:
            poller.register(s.sock, zmq.POLLIN)
        while pending:
            if deadline is not None and time.monotonic() > deadline:
                return False
            if self.stop_requested:
                if deadline is None:
                    return False  # stopping: the drain below sends what it can, bounded
                # nobody ever granted credit on these edges (no receiver): nothing to wait for
                pending = [s for s in pending if s.limit > 0]
                if not pending:
                    return False
            for s in pending:
                s.stats.credit_waits += 1
                s.hello()
            ready = dict(poller.poll(POLL_MS))
            for s in pending:
                s.pump(s.sock in ready)
            pending = [s for s in pending if s.queue]
            self._maybe_report()
        return True

    def _emit_all(self, pkts: Iterable[Packet] | None) -> None:
        for out in pkts or ():
            self.emit(out)

    # -- telemetry --------------------------------------------------------------------------
    def report(self, final: bool = False) -> dict:
        snap = self.stats.snapshot()
        snap.update(
            node=self.spec.name, kind=self.spec.kind, epoch=self.epoch, final=final,
            pid=os.getpid(), ops=dict(self.node.ops), gauges=dict(self.node.gauges),
            edges={s.cfg.name: {**s.stats.as_dict(), "queue": len(s.queue), "policy": s.cfg.policy}
                   for s in self.senders},
            queue_depth=sum(len(s.queue) for s in self.senders),
        )
        if self.receiver is not None:
            snap["received"] = self.receiver.received
            snap["lost_upstream"] = self.receiver.lost
            snap["hellos"], snap["pongs"] = self.receiver.hellos, self.receiver.pongs
            snap["clock"] = {k.decode(errors="replace").rsplit(":", 1)[0]: v.as_dict()
                             for k, v in self.receiver.clocks.items()}
        if self.ledger is not None:
            snap["recovery"] = self.ledger.stats()
        if isinstance(self.node, SourceNode):
            snap["resume"] = {"from_sample": self.resume_point(), "origin_epoch": getattr(self.node, "epoch", None)}
        if self.ack_push:
            snap["acks_sent"] = self.acks_sent
        if self.curve is not None:
            snap["auth_refused"] = sum(self.curve.refused.values())
        snap["energy_pj"] = self._energy_report()
        view = dict(self.node.view)
        if self.preview is not None and self.preview.view is not None:
            view["frames"] = self.preview.take()
        if view:
            snap["view"] = view
        self.telemetry.publish(snap)
        return snap

    def _energy_report(self) -> dict:
        if not self.spec.energy_profiles or not self.node.ops:
            return {}
        if self._energy is None:
            from . import energy
            self._energy = [energy.load_profile(p) for p in self.spec.energy_profiles]
        return {p.name: p.energy_pj(self.node.ops) for p in self._energy}

    def _maybe_report(self) -> None:
        now = time.monotonic()
        if now - self._last_report >= self.spec.telemetry_interval_s:
            self._last_report = now
            self.report()

    # -- receiving --------------------------------------------------------------------------
    def _handle_frames(self, frames, t_recv: int = 0) -> None:
        """Decode, admit and process one packet; ``t_recv`` (perf_counter_ns before its
        receive) times the whole service, wire decode and validation included."""
        try:
            pkt = codec.decode(frames, self.spec.limits)
        except codec.DecodeError as exc:
            self.stats.msgs_in += 1
            self.stats.rejected[exc.reason] += 1
            return
        self.stats.msgs_in += 1
        offset = self.receiver.offset_ns(self.receiver.last_peer) if self.receiver else 0.0
        if offset:  # bring the sender's timestamps onto our clock (it may be another host)
            pkt.sent_ns -= int(offset)
            if pkt.origin_ns:
                pkt.origin_ns -= int(offset)
        refused = self.start_filter.admit(pkt) or self._foreign_end(pkt)
        if refused == "no_start":
            self.stats.dropped_in["no_start"] += 1  # tail of a sample begun before a restart
            return
        if refused is not None:
            self.stats.rejected[refused] += 1
            return
        t_start = time.perf_counter_ns()
        if pkt.is_control:
            self.stats.controls_in[pkt.control] += 1
        else:
            self.stats.events_in += pkt.n
            now = now_ns()
            if pkt.sent_ns:
                self.stats.wire_us.add((now - pkt.sent_ns) / 1e3)
            if pkt.origin_ns:
                self.stats.age_ms.add((now - pkt.origin_ns) / 1e6)
        try:
            outputs = list(self.node.process(pkt) or ())
        except Exception as exc:  # a node error rejects this message, never the node
            self._reject_error(exc)
            return
        try:
            self._emit_all(outputs)
            if pkt.is_control and pkt.control != "end_of_stream":
                self.emit(pkt.replace(meta=dict(pkt.meta)))  # forwarded in order, after outputs
        except ValueError as exc:  # an output built from this message cannot be encoded
            self._reject_error(exc)
            return
        self.stats.consumed += 1
        if pkt.is_control:
            if pkt.control == "end_of_stream":
                self.ended_upstreams.add(pkt.stream)
            elif pkt.control == "end_of_sample" and t_recv:
                self.stats.end_of_sample_us.add((time.perf_counter_ns() - t_recv) / 1e3)
        else:
            t_end = time.perf_counter_ns()
            self.stats.latency_us.add((t_end - t_start) / 1e3)
            if t_recv:
                self.stats.service_us.add((t_end - t_recv) / 1e3)

    def _reject_error(self, exc: Exception) -> None:
        self.stats.rejected[f"error:{type(exc).__name__}"] += 1
        if self.error_logs < MAX_ERROR_LOGS:
            self.error_logs += 1
            print(f"[{self.spec.name}] rejected message: {exc}", file=sys.stderr, flush=True)

    def _foreign_end(self, pkt: Packet) -> str | None:
        """``foreign_end_of_stream`` for an end_of_stream not from a declared upstream.

        Only the sender that connected as ``NAME:EPOCH`` (its edge identity), whose packet
        carries that same stream name and epoch, and whose name is one of the node's declared
        upstreams (any name for a node started by hand), can end this node's input."""
        if not (pkt.is_control and pkt.control == "end_of_stream"):
            return None
        peer = self.receiver.last_peer.decode(errors="replace") if self.receiver else ""
        name, _, epoch = peer.rpartition(":")
        ok = name == pkt.stream and epoch == str(pkt.epoch)
        if self.spec.upstream_names:
            ok = ok and name in self.spec.upstream_names
        return None if ok else "foreign_end_of_stream"

    def _finished_upstream(self) -> bool:
        return self.spec.upstream > 0 and len(self.ended_upstreams) >= self.spec.upstream

    # -- main loops -------------------------------------------------------------------------
    def run(self) -> int:
        self.node.setup()
        self.telemetry.wait_subscribed(2.0)
        self.report()
        try:
            if isinstance(self.node, SourceNode):
                self._run_source()
            else:
                self._run_consumer()
            self._emit_all(self.node.flush())
            self.emit(control("end_of_stream", origin=Origin(self.spec.name, self.epoch, -1),
                              meta=dict(getattr(self.node, "end_meta", None) or {})))
            drained = self._wait_for_credit(deadline=time.monotonic() + DRAIN_TIMEOUT_S)
            if not drained:
                for s in self.senders:
                    s.stats.dropped += len(s.queue)
                    for pkt, _, _ in s.queue:
                        s.stats.events_dropped["shutdown"] += pkt.n
                    s.queue.clear()
        finally:
            self.node.close()
            self.report(final=True)
            self.close()
        return 0

    def resume_point(self) -> int:
        """Sources: the first sample a restarted process must send again.  Every earlier one
        is acknowledged by every sink (with recovery); without recovery it is the sample being
        sent (which a kill may cut), so nothing sent whole is sent twice."""
        if self.ledger is not None and self.ledger.kept:
            return min(k[2] for k in self.ledger.kept)
        return self.next_sample

    def _run_source(self) -> None:
        assert isinstance(self.node, SourceNode)
        for pkt in self.node.packets():
            if self.stop_requested:
                break
            if pkt.is_control and pkt.sample >= 0:
                self.next_sample = pkt.sample + (pkt.control == "end_of_sample")
            if self.ledger is not None:
                if pkt.is_control and pkt.control == "start":
                    while self.ledger.full and not self.stop_requested:
                        self._service_recovery(wait_ms=POLL_MS)
                self.ledger.record(pkt)
            self.emit(pkt)
            self.preview.add(pkt)
            if self.ledger is not None:
                self._service_recovery(wait_ms=0)
            self._maybe_report()
        if self.ledger is not None:
            deadline = time.monotonic() + float((self.spec.recovery or {}).get("final_wait_s", 120))
            while self.ledger.kept and not self.stop_requested and time.monotonic() < deadline:
                self._service_recovery(wait_ms=POLL_MS)

    # -- end-to-end recovery ----------------------------------------------------------------
    def _service_recovery(self, wait_ms: int) -> None:
        """Read acknowledgements; re-send whole samples after a restart or a timeout."""
        assert self.ledger is not None and self.ack_sock is not None
        if self._recovery_poller is None:
            self._recovery_poller = zmq.Poller()
            for sock in [self.ack_sock, *(s.sock for s in self.senders)]:
                self._recovery_poller.register(sock, zmq.POLLIN)
        ready = dict(self._recovery_poller.poll(wait_ms))
        for s in self.senders:  # credit that arrived while waiting sends what is queued
            if s.sock in ready:
                s.pump(incoming=True)
        if self.ack_sock in ready:
            while True:
                try:
                    frame = self.ack_sock.recv(zmq.NOBLOCK)
                except zmq.Again:
                    break
                ack = decode_ack(frame, self.token)
                if ack is None:
                    self.stats.rejected["bad_ack"] += 1
                else:
                    self.ledger.ack(*ack)
        if self.ledger.open is None:
            # a re-send waits for credit even on `drop` edges (for one re-send period), since
            # dropping it again could repeat forever
            deadline = time.monotonic() + self.ledger.cfg.resend_after_s
            for packets in self.ledger.due(time.monotonic(), self.resend_requested):
                for p in packets:
                    self.emit(p)
                    self._wait_for_credit(deadline)
            self.resend_requested = False
        self._maybe_report()

    def send_ack(self, origin: Origin) -> None:
        """Sinks: acknowledge a committed result to every source."""
        frame = encode_ack(self.spec.name, origin, self.token)
        for sock in self.ack_push:
            try:
                sock.send(frame, zmq.NOBLOCK)
            except zmq.Again:
                pass  # the source is gone or restarting; it will re-send and we ack again
        self.acks_sent += 1

    def receive_one(self, flags: int = 0) -> bool:
        """Read one message from the input and handle it; whatever a peer sent, this counts it
        (a packet: in = consumed + rejected + dropped; a hello or clock reply: the
        receiver's own counters) and never raises.  ``flags`` NOBLOCK: False when nothing
        was waiting."""
        t_recv = time.perf_counter_ns()
        try:
            frames = self.receiver.recv(flags)
        except zmq.Again:
            return False
        except codec.DecodeError as exc:
            self.stats.msgs_in += 1
            self.stats.rejected[exc.reason] += 1
            return True
        if frames is not None:
            self._handle_frames(frames, t_recv)
        return True

    def _run_consumer(self) -> None:
        assert self.receiver is not None, f"node {self.spec.name!r} has no input endpoint"
        poller = zmq.Poller()
        poller.register(self.receiver.sock, zmq.POLLIN)
        for s in self.senders:
            poller.register(s.sock, zmq.POLLIN)
        while not self.stop_requested and not self._finished_upstream():
            ready = dict(poller.poll(POLL_MS))
            for s in self.senders:
                if s.sock in ready:
                    s.pump(incoming=True)
            if self.receiver.sock in ready:
                # drain what waits (one poll, then non-blocking reads until none is left),
                # bounded, then service credits and telemetry
                for _ in range(256):
                    if not self.receive_one(_NOBLOCK):
                        break
                    if self.stop_requested or self._finished_upstream():
                        break
            self._maybe_report()

    def close(self) -> None:
        for s in self.senders:
            s.close()
        if self.receiver is not None:
            self.receiver.close()
        for sock in self.ack_push + ([self.ack_sock] if self.ack_sock is not None else []):
            sock.close()
        self.telemetry.close()
        if self.curve is not None:
            self.curve.stop()
        if self._owns_ctx:
            # Waits (up to each socket's linger) until zero-copy bodies are on the wire, so no
            # buffer is freed under ZeroMQ's I/O thread at interpreter exit.
            self.ctx.term()

