"""A hostile local peer, written from DESIGN.md's wire format, against real node processes.

Each reproduction of issue 22 (envelope counts near 2**64, a forged clock reply, a stranger's
end_of_stream, negative sample ids, time going backwards inside a sample, out-of-range header
integers, absurd credit grants) is sent from a real DEALER (or ROUTER) socket; the node must
count each by reason, keep forwarding good samples, and keep its counters balanced.
"""
from __future__ import annotations

import collections
import json
import signal
import struct
import subprocess
import sys
import time

import msgpack
import numpy as np
import zmq

from conftest import TelemetryListener
from rram_lsm.stream.codec import encode
from rram_lsm.stream.packets import DVS_DTYPE, Origin, Packet, control

TAGGED = struct.Struct("<cQ")
TIMES = struct.Struct("<cqqq")
NODE = [sys.executable, "-m", "rram_lsm", "node"]
YEARS_200_NS = 200 * 365 * 86_400 * 10**9


def events(sample, t0, n=10, epoch=7):
    ev = np.zeros(n, DVS_DTYPE)
    ev["t"] = t0 + np.arange(n)
    return Packet(kind="events", body=ev, geometry=(34, 34), origin=Origin("up", epoch, sample),
                  sample=sample, stream="up", epoch=epoch, seq=1)


def good_sample(s):
    origin = Origin("up", 7, s)
    return [control("start", origin=origin, sample=s, stream="up", epoch=7), events(s, 1000 * s),
            control("end_of_sample", origin=origin, sample=s, stream="up", epoch=7)]


def frames(p):
    return [bytes(f) for f in encode(p)]


def with_header(p, **changes):
    """``p``'s frames with header fields set to values a well-behaved encoder never writes."""
    fs = frames(p)
    h = msgpack.unpackb(fs[0])
    h.update(changes)
    return [msgpack.packb(h)] + fs[1:]


def recv_until(sock, tag, listener, timeout_s=30):
    """Read what a receiver sends us until a message with ``tag``; return its value.  The
    telemetry listener is polled too: a bound SUB sends its subscription to a node that
    connects only when the application touches the socket, and a node publishes its first
    reports (unsubscribed: lost) after waiting 2 s for it."""
    poller = zmq.Poller()
    poller.register(sock, zmq.POLLIN)
    poller.register(listener.sock, zmq.POLLIN)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if sock in dict(poller.poll(200)):
            msg = sock.recv()
            if msg[:1] == tag:
                return TAGGED.unpack(msg)[1]
    raise AssertionError(f"no {tag!r} from the node")


def test_hostile_envelopes_and_controls_are_counted_and_the_node_keeps_forwarding(tmp_path, sockdir):
    mid_ep, sink_ep, tele_ep = (f"ipc://{sockdir}/{n}" for n in ("mid", "sink", "tele"))
    listener = TelemetryListener(tele_ep)
    out = tmp_path / "out.jsonl"
    procs = [
        subprocess.Popen(NODE + ["jsonl_sink", "--name", "sink", "--bind", sink_ep, "--telemetry", tele_ep,
                                 "--param", f"path='{out}'"]),
        subprocess.Popen(NODE + ["passthrough", "--name", "mid", "--bind", mid_ep, "--output", sink_ep,
                                 "--from", "up", "--telemetry", tele_ep]),
    ]
    ctx = zmq.Context.instance()
    up, stranger = ctx.socket(zmq.DEALER), ctx.socket(zmq.DEALER)
    try:
        up.setsockopt(zmq.IDENTITY, b"up:7")  # a real upstream's edge identity, NAME:EPOCH
        stranger.setsockopt(zmq.IDENTITY, b"stranger:9")
        for s in (up, stranger):
            s.setsockopt(zmq.LINGER, 1000)
            s.connect(mid_ep)
        up.send(TAGGED.pack(b"H", 0))
        limit = recv_until(up, b"C", listener)
        ping_t1 = recv_until(up, b"P", listener)
        assert limit >= 30
        expected, count = collections.Counter(), 0

        def send(fs):
            nonlocal count
            count += 1
            up.send_multipart([TAGGED.pack(b"D", count), *fs])

        def bad(reason, sock, parts):
            expected[reason] += 1
            sock.send_multipart(parts)

        one = frames(events(0, 0))
        # 1. counts near 2**64 (the struct.error crash), zero, and beyond the granted window
        bad("envelope_count", stranger, [b"D" + struct.pack("<Q", 2**64 - 8), *one])
        bad("envelope_count", stranger, [b"H" + struct.pack("<Q", 2**64 - 8)])
        bad("envelope_count", stranger, [TAGGED.pack(b"D", 0), *one])
        bad("envelope_count", up, [TAGGED.pack(b"D", limit + 40), *one])
        bad("envelope_count", up, [TAGGED.pack(b"H", 2**63)])
        bad("envelope", up, [b"Z" + b"\0" * 8, *one])
        # 2. clock replies: one answering no ping, one answering ours with a 200-year offset
        bad("bad_pong", stranger, [TIMES.pack(b"Q", 123, 5, 6)])
        now = time.time_ns()
        bad("bad_pong", up, [TIMES.pack(b"Q", ping_t1, now + YEARS_200_NS, now + YEARS_200_NS)])
        for s in range(3):
            for p in good_sample(s):
                send(frames(p))
        # 3. a stranger's end_of_stream, and one claiming a stream it did not connect as
        eos = control("end_of_stream", stream="stranger", epoch=9, origin=Origin("stranger", 9, -1))
        stranger_count = 1
        expected["foreign_end_of_stream"] += 2
        stranger.send_multipart([TAGGED.pack(b"D", stranger_count), *frames(eos)])
        send(frames(control("end_of_stream", stream="other", epoch=1, origin=Origin("other", 1, -1))))
        # 4. negative sample ids other than -1, and out-of-range header integers
        for sid in (-2, -2**31, -2**63):
            expected["sample_id"] += 1
            send(with_header(events(3, 0), sample=sid))
        expected["sample_id"] += 1
        send(with_header(events(3, 0), origin=["up", 7, -5]))
        for key, value in (("sent_ns", 2**64 - 1), ("origin_ns", -1), ("epoch", -3), ("seq", 2**63)):
            expected["field_range"] += 1
            send(with_header(events(3, 0), **{key: value}))
        # 5. time going backwards across the packets of one sample: the second packet is refused
        origin = Origin("up", 7, 4)
        send(frames(control("start", origin=origin, sample=4, stream="up", epoch=7)))
        send(frames(events(4, 5000)))
        expected["time_backwards"] += 1
        send(frames(events(4, 100)))
        send(frames(control("end_of_sample", origin=origin, sample=4, stream="up", epoch=7)))
        for s in range(5, 8):  # good samples after all of it
            for p in good_sample(s):
                send(frames(p))
        time.sleep(0.5)
        assert procs[1].poll() is None, "the node died"
        send(frames(control("end_of_stream", stream="up", epoch=7, origin=Origin("up", 7, -1))))
        reports = listener.wait_final(["mid", "sink"], 60)
        for p in procs:
            p.wait(30)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        up.close(0)
        stranger.close(0)
        listener.close()
    mid = reports["mid"]
    assert mid["final"] and all(p.returncode == 0 for p in procs)
    assert mid["rejected"] == dict(expected)
    assert mid["msgs_in"] == mid["consumed"] + mid["rejected_total"] + sum(mid["dropped_in"].values())
    assert mid["lost_upstream"] == 0  # no forged count reached the accounting
    assert all(v["offset_ms"] == 0 for v in mid["clock"].values())  # no forged clock was applied
    recs = [json.loads(l) for l in open(out)]
    got = collections.Counter(r["sample"] for r in recs if r["kind"] == "events")
    # every good sample once; sample 4 kept its first (forward-going) packet only
    assert got == {0: 1, 1: 1, 2: 1, 4: 1, 5: 1, 6: 1, 7: 1}


def test_source_ignores_absurd_grants_and_stops_on_sigterm_with_no_receiver(tmp_path):
    """A fake receiver grants 2**64 - 1 credits and pings with a time a signed field cannot
    hold (both once crashed or unbounded a sender): ignored and counted; then the source
    sends under honest credit, and SIGTERM stops it even with nobody left to receive."""
    ctx = zmq.Context.instance()
    router = ctx.socket(zmq.ROUTER)
    router.setsockopt(zmq.LINGER, 0)
    port = router.bind_to_random_port("tcp://127.0.0.1")
    tele_ep = f"ipc://{tmp_path}/tele"
    listener = TelemetryListener(tele_ep)
    proc = subprocess.Popen(NODE + ["synthetic_dvs", "--name", "src", "--output", f"tcp://127.0.0.1:{port}",
                                    "--telemetry", tele_ep, "--param", "samples=0", "--param", "speed=1.0"])
    try:
        poller = zmq.Poller()
        poller.register(router, zmq.POLLIN)
        poller.register(listener.sock, zmq.POLLIN)  # see recv_until
        deadline = time.monotonic() + 60
        while router not in dict(poller.poll(200)):
            assert time.monotonic() < deadline, "no hello from the source"
        ident, hello = router.recv_multipart()
        assert hello[:1] == b"H"
        router.send_multipart([ident, TAGGED.pack(b"C", 2**64 - 1)])
        router.send_multipart([ident, TAGGED.pack(b"P", 2**64 - 1)])
        router.send_multipart([ident, b"garbage"])
        router.send_multipart([ident, TAGGED.pack(b"C", 3)])  # honest: three messages
        data = 0
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and data < 5:
            if router.poll(200):
                msg = router.recv_multipart()
                data += msg[1][:1] == b"D"
                if msg[1][:1] == b"Q":
                    raise AssertionError("answered a ping it could not have been sent")
            if data == 3:
                break
        assert data == 3
        time.sleep(1.5)
        while router.poll(100):  # nothing beyond the honest credit
            assert router.recv_multipart()[1][:1] != b"D"
        router.close(0)  # the receiver goes away: the source now waits for credit forever
        time.sleep(0.5)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
        stopped_s = time.monotonic() - t0
        reports = listener.wait_final(["src"], 10)
    finally:
        if proc.poll() is None:
            proc.kill()
        listener.close()
    assert stopped_s < 12
    edge = reports["src"]["edges"]["src->0"]
    assert edge["bad_grants"] == 3 and edge["sent"] == 3
