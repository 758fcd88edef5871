"""Transport benchmark: rram-lsm edges against bare pyzmq sending the same bytes.

One hop and a four-hop chain, over ipc:// and tcp://, bodies of 64 to 65,536 DVS events.
Throughput runs send as fast as the path allows; latency runs pace 1,000 messages/s.
Both implementations run in the same invocation, side by side, as real processes.

    python benchmarks/transport.py            # full table -> benchmarks/results/transport.csv
    python benchmarks/transport.py --quick    # a smaller run
"""
from __future__ import annotations

import argparse
import csv
import json
import multiprocessing
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import zmq

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]
os.environ["PYTHONPATH"] = os.pathsep.join([str(HERE.parent), str(HERE), os.environ.get("PYTHONPATH", "")])

from rram_lsm.stream.codec import encode  # noqa: E402
from rram_lsm.stream.packets import DVS_DTYPE, Packet  # noqa: E402

EVENT_BYTES = DVS_DTYPE.itemsize


def summarise(impl, transport, hops, size, mode, times, lat, events) -> dict:
    lat_us = np.asarray(lat, dtype=np.float64) / 1e3
    span = (times[-1] - times[0]) / 1e9 if len(times) > 1 else float("nan")
    n = len(times)
    return {
        "impl": impl, "transport": transport, "hops": hops, "size": size, "mode": mode, "n": n,
        "avg_us": round(float(lat_us.mean()), 1), "p50_us": round(float(np.percentile(lat_us, 50)), 1),
        "p90_us": round(float(np.percentile(lat_us, 90)), 1),
        "p99_us": round(float(np.percentile(lat_us, 99)), 1),
        "msgs_per_s": round((n - 1) / span, 1), "events_per_s": round(events * (n - 1) / n / span),
    }


# -- rram-lsm path -------------------------------------------------------------------------
def run_ours(transport, hops, size, count, rate, workdir) -> dict:
    from rram_lsm.launch.graph import load_graph
    from rram_lsm.launch.supervisor import Launcher

    out = workdir / "sink.json"
    lines = ['[graph]\nname = "bench"\ntransport = "%s"\ntelemetry_interval_s = 5.0\n'
             'recovery = { enabled = false }  # one endless sample: nothing to recover' % transport,
             f'[nodes.src]\nkind = "transport_nodes:BenchSource"\nparams = {{ size = {size}, count = {count}, rate = {rate} }}',
             f'[nodes.sink]\nkind = "transport_nodes:BenchSink"\nparams = {{ path = "{out}" }}']
    chain = ["src"] + [f"hop{i}" for i in range(hops - 1)] + ["sink"]
    for name in chain[1:-1]:
        lines.append(f'[nodes.{name}]\nkind = "passthrough"')
    for a, b in zip(chain, chain[1:]):
        lines.append(f'[[edges]]\nfrom = "{a}"\nto = "{b}"\npolicy = "block"\nwindow = 64')
    gpath = workdir / "bench.toml"
    gpath.write_text("\n".join(lines))
    sockdir = Path(tempfile.mkdtemp(prefix="rlb-"))
    launcher = Launcher(load_graph(gpath, None, sockdir), workdir / "run", sockdir)
    if launcher.run(timeout_s=600) != 0:
        raise RuntimeError(f"benchmark graph failed; see {workdir / 'run'}")
    res = json.loads(out.read_text())
    return summarise("rram-lsm", transport, hops, size, "latency" if rate else "throughput",
                     res["times"], res["lat"], res["events"])


# -- bare pyzmq baseline (PUSH/PULL, same header and body bytes) ----------------------------
def _bare_source(ep, size, count, rate):
    ctx = zmq.Context()
    s = ctx.socket(zmq.PUSH)
    s.connect(ep)
    ev = np.zeros(size, DVS_DTYPE)
    header, body = encode(Packet(kind="events", body=ev, geometry=(34, 34)))
    time.sleep(0.5)
    start = time.perf_counter()
    for i in range(count):
        if rate:
            due = start + i / rate
            while time.perf_counter() < due:
                pass
        s.send_multipart([time.time_ns().to_bytes(8, "little"), header, body], copy=False)
    s.send_multipart([b"", b"", b""])
    s.close(linger=5000)
    ctx.term()


def _bare_forward(ep_in, ep_out):
    ctx = zmq.Context()
    a, b = ctx.socket(zmq.PULL), ctx.socket(zmq.PUSH)
    a.bind(ep_in)
    b.connect(ep_out)
    while a.poll(30000):
        msg = a.recv_multipart(copy=False)
        b.send_multipart(msg, copy=False)
        if not msg[0].bytes:
            break
    a.close(linger=0)  # an open socket would make ctx.term() wait forever
    b.close(linger=5000)
    ctx.term()


def _bare_sink(ep, path):
    ctx = zmq.Context()
    s = ctx.socket(zmq.PULL)
    s.bind(ep)
    times, lat, events = [], [], 0
    while s.poll(30000):  # a 30 s silence ends the run (guards against a hang)
        msg = s.recv_multipart(copy=False)
        if not msg[0].bytes:
            break
        now = time.time_ns()
        times.append(now)
        lat.append(now - int.from_bytes(msg[0].bytes, "little"))
        events += len(msg[2]) // EVENT_BYTES
    s.close(linger=0)
    ctx.term()
    Path(path).write_text(json.dumps({"times": times, "lat": lat, "events": events}))


mp = multiprocessing.get_context("spawn")


def run_bare(transport, hops, size, count, rate, workdir) -> dict:
    from rram_lsm.launch.graph import free_tcp_port

    sockdir = tempfile.mkdtemp(prefix="rlb-")
    eps = [f"ipc://{sockdir}/{i}" if transport == "ipc" else f"tcp://127.0.0.1:{free_tcp_port()}"
           for i in range(hops)]
    out = workdir / "bare.json"
    procs = [mp.Process(target=_bare_sink, args=(eps[-1], out))]
    procs += [mp.Process(target=_bare_forward, args=(eps[i], eps[i + 1])) for i in range(hops - 1)]
    procs.append(mp.Process(target=_bare_source, args=(eps[0], size, count, rate)))
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        if p.is_alive():
            p.terminate()
    res = json.loads(out.read_text())
    return summarise("pyzmq", transport, hops, size, "latency" if rate else "throughput",
                     res["times"], res["lat"], res["events"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default=str(HERE / "results" / "transport.csv"))
    args = ap.parse_args()
    sizes = [64, 4096, 65536] if args.quick else [64, 256, 1024, 4096, 16384, 65536]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for transport in ("ipc", "tcp"):
            for hops in (1, 4):
                for size in sizes:
                    count = int(min(5000, max(200, 4e7 / size / (hops + 1))))
                    if args.quick:
                        count //= 4
                    for fn in (run_bare, run_ours):
                        rows.append(fn(transport, hops, size, count, 0, work))
                        print(rows[-1], flush=True)
                for fn in (run_bare, run_ours):  # latency at 1,000 messages/s, 4,096 events
                    rows.append(fn(transport, hops, 4096, 500 if args.quick else 2000, 1000, work))
                    print(rows[-1], flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", newline="") as fh:
        w = csv.DictWriter(fh, list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    print(f"\nwrote {args.out}\n")
    print("| impl | transport | hops | size | mode | events/s | msgs/s | p50 µs | p99 µs |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['impl']} | {r['transport']} | {r['hops']} | {r['size']} | {r['mode']} | "
              f"{r['events_per_s']:,} | {r['msgs_per_s']:,} | {r['p50_us']} | {r['p99_us']} |")


if __name__ == "__main__":
    main()
