"""CurveZMQ's cost per message on loopback tcp: DEALER -> ROUTER, plain and with Curve.

For each message size: the round trip (one message each way) and the one-way time per message
in a burst, in µs.  Used by docs/reliability.md to say why loopback graphs authenticate with
a per-run token instead of Curve.

    python benchmarks/curve_cost.py
"""
from __future__ import annotations

import time

import zmq

SIZES = ((64, 5000), (4096, 3000), (65536, 1000), (1 << 20, 100))


def measure(curve: bool, size: int, n: int) -> tuple[float, float]:
    """(round trip µs, one-way µs per message in a burst of ``n``)."""
    ctx = zmq.Context()
    router, dealer = ctx.socket(zmq.ROUTER), ctx.socket(zmq.DEALER)
    if curve:
        spub, ssec = zmq.curve_keypair()
        cpub, csec = zmq.curve_keypair()
        router.curve_secretkey, router.curve_publickey, router.curve_server = ssec, spub, True
        dealer.curve_secretkey, dealer.curve_publickey, dealer.curve_serverkey = csec, cpub, spub
    port = router.bind_to_random_port("tcp://127.0.0.1")
    dealer.connect(f"tcp://127.0.0.1:{port}")
    msg = b"x" * size
    dealer.send(b"hi")
    router.recv_multipart()
    t0 = time.perf_counter()
    for _ in range(n // 10):
        dealer.send(msg)
        ident, m = router.recv_multipart()
        router.send_multipart([ident, m])
        dealer.recv()
    rtt = (time.perf_counter() - t0) / (n // 10)
    t0 = time.perf_counter()
    for _ in range(n):
        dealer.send(msg)
    for _ in range(n):
        router.recv_multipart()
    one_way = (time.perf_counter() - t0) / n
    dealer.close(0)
    router.close(0)
    ctx.term()
    return rtt * 1e6, one_way * 1e6


def main() -> None:
    print("| bytes | plain round trip µs | Curve round trip µs | plain µs/msg | Curve µs/msg |")
    print("|---|---|---|---|---|")
    for size, n in SIZES:
        (pr, po), (cr, co) = measure(False, size, n), measure(True, size, n)
        print(f"| {size:,} | {pr:.1f} | {cr:.1f} | {po:.2f} | {co:.2f} |", flush=True)


if __name__ == "__main__":
    main()
