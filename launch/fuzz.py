"""Fuzzing a node: random and mutated messages through the real decode and node path.

Messages are valid packets of every kind, then mutated (bytes flipped, frames truncated,
extended, dropped or swapped, header fields given random values of random types) or plain
random bytes.  Each goes through the runtime's own receive path, so every rejection is
counted with its reason exactly as in a running graph, and a node error can never stop it.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import msgpack
import numpy as np

from rram_lsm.stream.codec import encode
from rram_lsm.stream.node import Node
from rram_lsm.stream.packets import (COCHLEA_DTYPE, CONTROLS, DVS_DTYPE, NEURAL_DTYPE, Origin, Packet,
                            control)
from rram_lsm.stream.runtime import NodeRuntime, NodeSpec

FIELDS = ("v", "kind", "stream", "epoch", "seq", "n", "sample", "t0", "t1", "sent_ns",
          "origin_ns", "origin", "label", "dtype", "shape", "geometry", "control", "meta")


def _random_value(rng: np.random.Generator):
    choice = rng.integers(0, 10)
    return [
        lambda: int(rng.integers(-2**63, 2**63 - 1)), lambda: float(rng.normal()),
        lambda: "x" * int(rng.integers(0, 40)), lambda: None, lambda: bool(rng.integers(0, 2)),
        lambda: [int(v) for v in rng.integers(-5, 100, rng.integers(0, 5))],
        lambda: {"k": int(rng.integers(0, 9))}, lambda: bytes(rng.integers(0, 256, 8, dtype=np.uint8)),
        lambda: int(rng.integers(0, 3)), lambda: ["s", int(rng.integers(0, 9)), int(rng.integers(-1, 9))],
    ][choice]()


def seed_packets(rng: np.random.Generator, geometry=(34, 34), n_features=200) -> list[Packet]:
    """Valid packets of every kind, the starting points for mutation."""
    out = []
    origin = Origin("fuzz", 1, int(rng.integers(0, 100)))
    for dtype, geom in ((DVS_DTYPE, geometry), (COCHLEA_DTYPE, (64,)), (NEURAL_DTYPE, (192,))):
        n = int(rng.integers(0, 300))
        ev = np.zeros(n, dtype)
        ev["t"] = np.sort(rng.integers(0, 10**6, n))
        ev["x"] = rng.integers(0, geom[0], n)
        if "y" in dtype.names:
            ev["y"] = rng.integers(0, geom[1], n)
        if "p" in dtype.names:
            ev["p"] = rng.integers(0, 2, n)
        out.append(Packet(kind="events", body=ev, geometry=geom, origin=origin, sample=origin.sample))
    for kind, dim in (("features", n_features), ("embedding", 64), ("prediction", 3)):
        out.append(Packet(kind=kind, body=rng.normal(size=(1, dim)).astype("<f4"), origin=origin,
                          sample=origin.sample, meta={"modality": "visual"}))
    out += [control(c, origin=origin, sample=origin.sample, label=1) for c in CONTROLS if c != "end_of_stream"]
    return out


def mutate(frames: list[bytes], rng: np.random.Generator) -> list[bytes]:
    frames = [bytearray(f) for f in frames]
    op = rng.integers(0, 8)
    if op == 0 and frames:  # flip bytes
        f = frames[rng.integers(0, len(frames))]
        for _ in range(int(rng.integers(1, 6))):
            if f:
                f[rng.integers(0, len(f))] = int(rng.integers(0, 256))
    elif op == 1 and frames:  # truncate a frame
        i = rng.integers(0, len(frames))
        frames[i] = frames[i][: int(rng.integers(0, len(frames[i]) + 1))]
    elif op == 2:  # extend / add a frame
        frames.append(bytearray(rng.integers(0, 256, rng.integers(0, 64), dtype=np.uint8).tobytes()))
    elif op == 3 and len(frames) > 1:  # drop or swap frames
        frames = frames[::-1] if rng.integers(0, 2) else frames[:1]
    elif op in (4, 5, 6):  # change header fields
        try:
            h = msgpack.unpackb(bytes(frames[0]))
            for _ in range(int(rng.integers(1, 4))):
                key = FIELDS[rng.integers(0, len(FIELDS))]
                if rng.integers(0, 4) == 0:
                    h.pop(key, None)
                else:
                    h[key] = _random_value(rng)
            frames[0] = bytearray(msgpack.packb(h))
        except Exception:
            pass
    else:  # random bytes
        frames = [bytearray(rng.integers(0, 256, rng.integers(0, 128), dtype=np.uint8).tobytes())
                  for _ in range(int(rng.integers(1, 4)))]
    return [bytes(f) for f in frames]


@dataclass
class FuzzReport:
    messages: int
    rejected: dict
    consumed: int
    dropped: dict
    max_ms: float
    seconds: float


def fuzz_node(node: Node, messages: int, seed: int = 0, geometry=(34, 34), n_features=200,
              bind: str = "inproc://fuzz") -> FuzzReport:
    """Feed ``messages`` fuzzed messages to ``node`` through the runtime's receive path."""
    import zmq

    rng = np.random.default_rng(seed)
    runtime = NodeRuntime(node, NodeSpec(name="fuzz", kind=node.kind, bind=bind, upstream=1),
                          ctx=zmq.Context())
    node.setup()
    max_s, start = 0.0, time.perf_counter()
    try:
        seeds = [[bytes(f) for f in encode(p)] for p in seed_packets(rng, geometry, n_features)]
        for i in range(messages):
            frames = mutate(seeds[i % len(seeds)], rng) if rng.integers(0, 10) else seeds[i % len(seeds)]
            t0 = time.perf_counter()
            runtime._handle_frames(frames)
            max_s = max(max_s, time.perf_counter() - t0)
    finally:
        node.close()
        runtime.close()
        runtime.ctx.term()
    s = runtime.stats
    return FuzzReport(messages=s.msgs_in, rejected=dict(s.rejected), consumed=s.consumed,
                      dropped=dict(s.dropped_in), max_ms=max_s * 1e3, seconds=time.perf_counter() - start)


_COUNTS = (lambda r, c: 0, lambda r, c: c + 1, lambda r, c: c + int(r.integers(2, 64)),
           lambda r, c: 2**64 - int(r.integers(1, 16)), lambda r, c: 2**63,
           lambda r, c: int(r.integers(0, 2**63)), lambda r, c: max(0, c - 3))


def envelope_message(rng: np.random.Generator, count: int, seeds: list[list[bytes]]) -> list[bytes]:
    """One hostile edge message as a peer would send it (after ZeroMQ's identity frame): an
    envelope with a random tag and a count from zero to near 2**64, a hello with or without
    a body, a clock reply with random times, a control packet claiming any stream, epoch and
    sample id (negatives included), or an events packet that goes back in time."""
    import struct

    tag = [b"D", b"H", b"C", b"P", b"Q", bytes([int(rng.integers(0, 256))])][int(rng.integers(0, 6))]
    n = _COUNTS[int(rng.integers(0, len(_COUNTS)))](rng, count)
    op = int(rng.integers(0, 6))
    if op == 0:  # a clock reply (from a peer that was pinged or not), times anywhere in int64
        t = rng.integers(-2**63, 2**63 - 1, 3)
        return [struct.pack("<cqqq", b"Q", *(int(v) for v in t))]
    if op == 1:  # a bare envelope: hello, credit, ping or junk, any count, maybe a wrong length
        env = tag + (n % 2**64).to_bytes(8, "little")
        return [env[: int(rng.integers(0, 10))] if rng.integers(0, 4) == 0 else env]
    body = seeds[int(rng.integers(0, len(seeds)))]
    if op == 2:  # a control from anyone, for any sample
        name = CONTROLS[int(rng.integers(0, len(CONTROLS)))]
        stream = ["fuzz", "stranger", ""][int(rng.integers(0, 3))]
        sample = [-1, -2, -2**31, -2**63, int(rng.integers(0, 50))][int(rng.integers(0, 5))]
        pkt = control(name, stream=stream, epoch=int(rng.integers(0, 3)), sample=sample,
                      origin=Origin(stream, 1, max(sample, -1)))
        body = [bytes(f) for f in encode(pkt)]
        if sample < -1:  # the sample id as a hostile encoder would write it
            h = msgpack.unpackb(body[0])
            h["origin"][2] = h["sample"] = sample
            body = [msgpack.packb(h)]
    elif op == 3:  # an events packet of an open sample, earlier than the last one admitted
        ev = np.zeros(4, DVS_DTYPE)
        ev["t"] = int(rng.integers(0, 1000))
        pkt = Packet(kind="events", body=ev, geometry=(34, 34), origin=Origin("fuzz", 1, 7), sample=7)
        body = [bytes(f) for f in encode(pkt)]
    return [b"D" + (n % 2**64).to_bytes(8, "little"), *body]


def fuzz_envelopes(node: Node, messages: int, seed: int = 0, geometry=(34, 34), n_features=200,
                   bind: str = "inproc://fuzz-env") -> FuzzReport:
    """Send ``messages`` hostile edge messages from a real DEALER to ``node``'s real ROUTER
    input, read by the runtime's own receive step; every one must be counted: as a packet
    (in = consumed + rejected + dropped) or as an accepted hello or clock reply."""
    import zmq

    rng = np.random.default_rng(seed)
    ctx = zmq.Context()
    runtime = NodeRuntime(node, NodeSpec(name="fuzz", kind=node.kind, bind=bind, upstream=1), ctx=ctx)
    node.setup()
    dealer = ctx.socket(zmq.DEALER)
    dealer.setsockopt(zmq.IDENTITY, b"fuzz:1")
    dealer.setsockopt(zmq.LINGER, 0)
    dealer.connect(bind)
    origin = Origin("fuzz", 1, 7)
    seeds = [[bytes(f) for f in encode(p)] for p in seed_packets(rng, geometry, n_features)]
    max_s, start = 0.0, time.perf_counter()
    try:
        opened = [bytes(f) for f in encode(control("start", origin=origin, sample=7))]
        for i in range(messages):  # every 50th message (re)opens sample 7 for the time checks
            frames = [b"D" + (i + 1).to_bytes(8, "little"), *opened] if i % 50 == 0 else envelope_message(rng, i, seeds)
            dealer.send_multipart(frames)
            t0 = time.perf_counter()
            runtime.receive_one()
            max_s = max(max_s, time.perf_counter() - t0)
            while dealer.poll(0):  # credit and pings the node sent back
                dealer.recv_multipart()
    finally:
        dealer.close()
        node.close()
        runtime.close()
        ctx.term()
    s, r = runtime.stats, runtime.receiver
    return FuzzReport(messages=s.msgs_in + r.hellos + r.pongs, rejected=dict(s.rejected), consumed=s.consumed,
                      dropped=dict(s.dropped_in), max_ms=max_s * 1e3, seconds=time.perf_counter() - start)
