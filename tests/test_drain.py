"""A node drains every waiting message per wake-up: in order, each counted once, over real
ZeroMQ sockets; an idle non-blocking read counts nothing; each message's hop and service
times reach the telemetry; a sender with credit still takes the grants it is sent."""
from __future__ import annotations

import time

import numpy as np
import zmq

from rram_lsm.nodes.passthrough import PassThroughNode
from rram_lsm.stream import codec
from rram_lsm.stream.packets import DVS_DTYPE, Origin, Packet
from rram_lsm.stream.runtime import NodeRuntime, NodeSpec
from rram_lsm.stream.transport import EdgeConfig, EdgeReceiver, EdgeSender

N = 40


def _handshake(up: EdgeSender, rt: NodeRuntime, down: EdgeReceiver) -> None:
    """Hellos both ways until each sender holds credit for N messages."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and (up.limit < N or rt.senders[0].limit < N):
        up.hello(force=True)
        rt.senders[0].hello(force=True)
        time.sleep(0.01)
        while rt.receive_one(zmq.NOBLOCK):
            pass
        while down.sock.poll(1):
            down.recv()
        up.handle_incoming()
        rt.senders[0].handle_incoming()
    assert up.limit >= N and rt.senders[0].limit >= N


def test_drained_batch_keeps_order_and_counts(tmp_path):
    ctx = zmq.Context()
    down = EdgeReceiver(ctx, f"ipc://{tmp_path}/down", window=N)
    spec = NodeSpec(name="hop", kind="passthrough", bind=f"ipc://{tmp_path}/hop", window=N,
                    outputs=[EdgeConfig("hop->down", f"ipc://{tmp_path}/down", window=N)])
    node = PassThroughNode("hop", {})
    node.setup()
    rt = NodeRuntime(node, spec, ctx)
    up = EdgeSender(ctx, EdgeConfig("up->hop", f"ipc://{tmp_path}/hop", window=N), b"up:1")
    try:
        _handshake(up, rt, down)
        time.sleep(0.05)
        while rt.receive_one(zmq.NOBLOCK):  # the handshake's last hellos
            pass
        assert rt.receive_one(zmq.NOBLOCK) is False  # nothing waits: nothing counted
        assert rt.stats.msgs_in == 0 and rt.receiver.received == 0
        origin = Origin("up", 1, -1)
        for i in range(N):  # each body says which message it is
            ev = np.zeros(3, DVS_DTYPE)
            ev["x"] = i
            pkt = Packet(kind="events", body=ev, geometry=(64, 1), origin=origin, sample=-1,
                         stream="up", epoch=1, seq=i + 1, sent_ns=time.time_ns())
            up.offer(pkt, codec.encode(pkt))
            up.pump()
        assert rt.receiver.sock.poll(5000)
        time.sleep(0.2)  # all N are waiting now
        drained = 0
        while rt.receive_one(zmq.NOBLOCK):  # the runtime's drain: until nothing waits
            drained += 1
        assert drained == N
        assert (rt.stats.msgs_in, rt.stats.consumed, rt.receiver.received) == (N, N, N)
        assert rt.stats.wire_us.count == rt.stats.service_us.count == N
        got = []
        deadline = time.monotonic() + 10
        while len(got) < N and time.monotonic() < deadline:
            if down.sock.poll(100):
                frames = down.recv(zmq.NOBLOCK)
                if frames is not None:
                    got.append(codec.decode(frames))
        assert [int(p.body["x"][0]) for p in got] == list(range(N))  # order kept
        assert [p.seq for p in got] == list(range(1, N + 1))
        edge = rt.senders[0].stats
        assert (edge.offered, edge.sent, edge.dropped, edge.events_sent) == (N, N, 0, 3 * N)
        assert down.received == N and down.lost == 0
    finally:
        up.close()
        rt.close()
        down.sock.close(0)
        ctx.term()


def test_sender_with_credit_still_takes_new_grants(tmp_path):
    """Reading grants only every few ms must not starve a sender: what the receiver grants
    is taken at the latest when the credit in hand runs out, and the sender never exceeds it."""
    ctx = zmq.Context()
    rx = EdgeReceiver(ctx, f"ipc://{tmp_path}/rx", window=4)
    tx = EdgeSender(ctx, EdgeConfig("tx->rx", f"ipc://{tmp_path}/rx", window=4), b"tx:1")
    try:
        deadline = time.monotonic() + 10
        while tx.limit == 0 and time.monotonic() < deadline:
            tx.hello(force=True)
            if rx.sock.poll(50):
                rx.recv()
            tx.handle_incoming()
        pkt = Packet(kind="control", control="heartbeat")
        received = 0
        for _ in range(30):
            tx.offer(pkt, codec.encode(pkt))
            while tx.queue and time.monotonic() < deadline:
                tx.pump()
                assert tx.count <= tx.limit
                while rx.sock.poll(1):
                    if rx.recv() is not None:
                        received += 1
        while received < 30 and rx.sock.poll(200):
            if rx.recv() is not None:
                received += 1
        assert (tx.count, tx.stats.sent, received, rx.received) == (30, 30, 30, 30)
    finally:
        tx.close()
        rx.sock.close(0)
        ctx.term()
