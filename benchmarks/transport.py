"""Transport benchmark: rram-lsm edges against bare pyzmq sending the same bytes.

One hop and a four-hop chain, over ipc:// and tcp://, bodies of 64 to 65,536 DVS events.
Throughput runs send as fast as the path allows; latency runs pace 1,000 messages/s.
Both implementations run in the same invocation, side by side, as real processes.

    python benchmarks/transport.py            # full table -> benchmarks/results/transport.csv
    python benchmarks/transport.py --quick    # a smaller run
    python benchmarks/transport.py --quick --transports ipc --sizes 64,4096 --rounds 5
    python benchmarks/transport.py --sustain 60  # 50 M events/s for 60 s, block then drop

``--rounds`` repeats every pair and writes, beside the CSV, the spread of our figure over
bare pyzmq's from the same round (``*_spread.json``).  ``--sustain`` holds one ipc hop in
50,000-event messages (1 ms of a 50 M events/s sensor) and checks the accounting exactly:
nothing dropped on the `block` edge, and on the `drop` edge, offered twice that, every
dropped message and event counted.
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


# -- sustained ingest: one hop, sensor-sized messages, exact accounting --------------------------
def run_sustain(policy: str, seconds: float, size: int, rate: float, workdir: Path) -> dict:
    """One ipc hop for ``seconds`` in ``size``-event messages at ``rate`` msg/s over a
    ``policy`` edge; checks the edge's and the sink's counts (exact, or it raises)."""
    from rram_lsm.launch.graph import load_graph
    from rram_lsm.launch.supervisor import Launcher

    work = workdir / f"sustain-{policy}"
    work.mkdir(parents=True, exist_ok=True)
    out = work / "sink.json"
    count = int(seconds * rate)
    gpath = work / "sustain.toml"
    gpath.write_text(
        '[graph]\nname = "sustain"\ntransport = "ipc"\ntelemetry_interval_s = 5.0\n'
        'recovery = { enabled = false }\n'
        f'[nodes.src]\nkind = "transport_nodes:BenchSource"\nparams = {{ size = {size}, count = {count}, rate = {rate} }}\n'
        f'[nodes.sink]\nkind = "transport_nodes:BenchSink"\nparams = {{ path = "{out}" }}\n'
        f'[[edges]]\nfrom = "src"\nto = "sink"\npolicy = "{policy}"\nwindow = 64\n')
    sockdir = Path(tempfile.mkdtemp(prefix="rls-"))
    run = work / "run"
    if Launcher(load_graph(gpath, None, sockdir), run, sockdir).run(timeout_s=seconds * 4 + 60) != 0:
        raise RuntimeError(f"sustain graph failed; see {run}")
    finals = {}
    for line in (run / "telemetry.jsonl").read_text().splitlines():
        rec = json.loads(line)
        if rec.get("final"):
            finals[rec["node"]] = rec
    edge, sink = finals["src"]["edges"]["src->sink"], finals["sink"]
    res = json.loads(out.read_text())
    times = np.asarray(res["times"], dtype=np.int64)
    span = (times[-1] - times[0]) / 1e9 if len(times) > 1 else float("nan")
    per_s = np.bincount(((times - times[0]) // 10**9).astype(np.int64)) * size if len(times) else np.zeros(1)
    dropped_events = sum(edge["events_dropped"].values())
    checks = {
        "offered = sent + dropped": edge["offered"] == edge["sent"] + edge["dropped"] + edge["queue"],
        "sent = received": edge["sent"] == sink["received"] == sink["msgs_in"],
        "events: sent = received": edge["events_sent"] == res["events"] == sink["events_in"],
        "events dropped = messages dropped x size": dropped_events == edge["dropped"] * size,
        "in = consumed + rejected + dropped": sink["msgs_in"] == sink["consumed"] + sink["rejected_total"] + sum(sink["dropped_in"].values()),
    }
    if policy == "block":
        checks["block: nothing dropped"] = edge["dropped"] == 0 and edge["events_sent"] == count * size
    failed = [k for k, ok in checks.items() if not ok]
    if failed:
        raise RuntimeError(f"sustain {policy}: accounting broken: {failed}; edge {edge}, sink {sink}")
    full = per_s[1:-1] if len(per_s) > 2 else per_s
    return {"policy": policy, "size": size, "rate_msgs": rate, "seconds": round(span, 1),
            "offered": edge["offered"], "sent": edge["sent"], "dropped": edge["dropped"],
            "events_dropped": dropped_events, "received": sink["received"],
            "events_per_s": round(res["events"] * (len(times) - 1) / len(times) / span) if span == span else 0,
            "min_1s_events_per_s": int(full.min()) if len(full) else 0, "accounting": "exact"}


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


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v]


def spread(rows: list[dict]) -> list[dict]:
    """One line per (transport, hops, size, mode) over the rounds: our figure against bare
    pyzmq's from the same round (throughput ratio, p50 ratio), as median and range."""
    out = []
    keys = sorted({(r["transport"], r["hops"], r["size"], r["mode"]) for r in rows})
    for key in keys:
        ours = [r for r in rows if r["impl"] == "rram-lsm" and (r["transport"], r["hops"], r["size"], r["mode"]) == key]
        bare = [r for r in rows if r["impl"] == "pyzmq" and (r["transport"], r["hops"], r["size"], r["mode"]) == key]
        if not ours or len(ours) != len(bare):
            continue
        metric = "events_per_s" if key[3] == "throughput" else "p50_us"
        ratios = [o[metric] / b[metric] for o, b in zip(ours, bare)]
        line = {"transport": key[0], "hops": key[1], "size": key[2], "mode": key[3],
                "rounds": len(ours), "ratio_median": round(float(np.median(ratios)), 3),
                "ratio_min": round(min(ratios), 3), "ratio_max": round(max(ratios), 3)}
        for name, rs in (("ours", ours), ("bare", bare)):
            for m in ((metric, "p99_us") if key[3] == "latency" else (metric,)):
                vals = [r[m] for r in rs]
                line[f"{name}_{m}_median"] = float(np.median(vals))
                line[f"{name}_{m}_min"], line[f"{name}_{m}_max"] = min(vals), max(vals)
        out.append(line)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--transports", default="ipc,tcp", help="comma list (ipc, tcp)")
    ap.add_argument("--hops", default="1,4", help="comma list of chain lengths")
    ap.add_argument("--sizes", default="", help="comma list of events per message (default: all)")
    ap.add_argument("--no-latency", action="store_true", help="skip the 1,000 msg/s latency rows")
    ap.add_argument("--rounds", type=int, default=1, help="repeat every pair this many times")
    ap.add_argument("--scale", type=float, default=1.0, help="multiply every message count")
    ap.add_argument("--sustain", type=float, default=0.0, metavar="SECONDS",
                    help="instead: one ipc hop held this long in 50,000-event messages at "
                         "1,000 msg/s (50 M events/s) on a block edge, then offered at twice that on a drop edge")
    ap.add_argument("--spread-of", nargs="+", metavar="CSV", help="instead: the spread table of "
                    "earlier runs' CSVs (rounds run as separate, shorter invocations)")
    ap.add_argument("--out", default=str(HERE / "results" / "transport.csv"))
    args = ap.parse_args()
    if args.spread_of:
        rows = []
        for i, path in enumerate(args.spread_of):
            with open(path) as fh:
                for r in csv.DictReader(fh):
                    rows.append({**{k: (v if k in ("impl", "transport", "mode") else float(v)) for k, v in r.items()},
                                 "round": i})
        print_spread(spread(rows), len(args.spread_of), args.out)
        return
    if args.sustain:
        with tempfile.TemporaryDirectory() as tmp:
            rows = [run_sustain("block", args.sustain, 50_000, 1000, Path(tmp)),
                    run_sustain("drop", args.sustain, 50_000, 2000, Path(tmp))]
        for r in rows:
            print(json.dumps(r))
        path = Path(args.out).with_name("sustain.csv")
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", newline="") as fh:
            w = csv.DictWriter(fh, list(rows[0]))
            w.writeheader()
            w.writerows(rows)
        print(f"wrote {path}; load average {os.getloadavg()[0]:.2f}")
        return
    sizes = _ints(args.sizes) or ([64, 4096, 65536] if args.quick else [64, 256, 1024, 4096, 16384, 65536])
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for rnd in range(args.rounds):
            for transport in args.transports.split(","):
                for hops in _ints(args.hops):
                    for size in sizes:
                        count = int(min(5000, max(200, 4e7 / size / (hops + 1))))
                        if args.quick:
                            count //= 4
                        count = max(50, int(count * args.scale))
                        for fn in (run_bare, run_ours):
                            rows.append({**fn(transport, hops, size, count, 0, work), "round": rnd})
                            print(rows[-1], flush=True)
                    if args.no_latency:
                        continue
                    for fn in (run_bare, run_ours):  # latency at 1,000 messages/s, 4,096 events
                        n = max(50, int((500 if args.quick else 2000) * args.scale))
                        rows.append({**fn(transport, hops, 4096, n, 1000, work), "round": rnd})
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
    print_spread(spread(rows), args.rounds, args.out)


def print_spread(summary: list[dict], rounds: int, out: str) -> None:
    if summary:
        spath = Path(out).with_name(Path(out).stem + "_spread.json")
        spath.write_text(json.dumps(summary, indent=1))
        print(f"\nspread over {rounds} round(s) -> {spath}; load average {os.getloadavg()[0]:.2f}")
        print("| transport | hops | size | mode | ours / bare, median [min, max] | ours median | bare median |")
        print("|---|---|---|---|---|---|---|")
        for s in summary:
            m = "events_per_s" if s["mode"] == "throughput" else "p50_us"
            print(f"| {s['transport']} | {s['hops']:.0f} | {s['size']:.0f} | {s['mode']} | {s['ratio_median']:.2f} "
                  f"[{s['ratio_min']:.2f}, {s['ratio_max']:.2f}] | {s[f'ours_{m}_median']:,.0f} | {s[f'bare_{m}_median']:,.0f} |")


if __name__ == "__main__":
    main()
