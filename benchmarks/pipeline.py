"""Pipeline benchmark: decision latency of the audio<->visual zero-shot graph at real-time pace,
per hop and end to end, beside a bare pyzmq graph of the same shape in the same invocation.

The graph is ``benchmarks/graphs/pipeline_av.toml`` (two built-in replay sources, two
200-neuron lsm nodes, two projection heads, one cross-modal classifier, one sink; `block`
edges, recovery on, as a user runs it).  Decision latency: from a sample's last events
message entering the graph to its prediction at the sink.  Per hop: ``wire`` (the sender's
stamp to the receiver's receipt) and ``service`` (receipt to outputs sent, decode and
validation included) from each node's telemetry; the lsm's answer is computed on the
sample's ``end_of_sample``, so its row shows that control's service.

The bare graph sends the same messages (count, sizes, release times) through PUSH/PULL
forwarders of the same shape (source -> "lsm" forwards one features-sized message per
sample -> "projection" -> "classifier" -> sink) and does no work: the floor a ZeroMQ graph
in Python pays for its wake-ups.

    python benchmarks/pipeline.py --rounds 5          # -> benchmarks/results/pipeline.csv
    python benchmarks/pipeline.py --samples 6 --rounds 1
    python benchmarks/pipeline.py --bmi --rounds 1    # the 2,048-neuron neural reservoir
"""
from __future__ import annotations

import argparse
import csv
import json
import multiprocessing
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import zmq

HERE = Path(__file__).resolve().parent

GRAPH = HERE / "graphs" / "pipeline_av.toml"
PD = 64  # embedding size of the demo's heads (200 x 64 = 12,800 multiply-adds per row)
CLASSES = list(range(1, 10))
PAIRS = {  # query modality -> (its preset, its reservoir constant, n_features)
    "audio": ("zs_audio", 0.3, 200),
    "neural": ("bmi_neural", 0.002, 2048),
}
HOPS = ("lsm", "proj", "classifier", "sink")


def pct(values, q) -> float:
    return round(float(np.percentile(np.asarray(values, dtype=np.float64), q)), 1) if len(values) else float("nan")


# -- the model files: seeded random heads and banks ------------------------------------------
def make_model(work: Path, query: str, seed: int = 0) -> dict:
    """Heads for ``query`` and visual, and each modality's bank (the other's prototypes)."""
    from rram_lsm.nodes.classifier.bank import PrototypeBank
    from rram_lsm.nodes.projection.heads import HeadConfig, ProjectionHead, save_heads

    rng = np.random.default_rng(seed)
    heads = []
    for modality, (preset, n) in {query: (PAIRS[query][0], PAIRS[query][2]), "visual": ("zs_image", 200)}.items():
        cfg = HeadConfig(preset=preset, modality=modality, n_features=n, layers=[PD])
        heads.append(ProjectionHead(cfg, mean=np.zeros(n), std=np.ones(n),
                                    weights=[rng.standard_normal((PD, n)) / np.sqrt(n)],
                                    biases=[np.zeros(PD)]))
    save_heads(work / "heads.npz", heads)
    banks = {}
    for modality in (query, "visual"):
        labels = np.repeat(CLASSES, 4)
        bank = PrototypeBank.from_embeddings(rng.standard_normal((len(labels), PD)), labels,
                                             modality="visual" if modality == query else query)
        banks[modality] = str(bank.save(work / f"bank_for_{modality}.npz"))
    return {"heads": str(work / "heads.npz"), "banks": banks}


def graph_args(work: Path, query: str, samples: int, speed: float) -> dict:
    preset, const, _ = PAIRS[query]
    return {**make_model(work, query), "query": query, "query_preset": preset,
            "query_const": const, "samples": samples, "speed": speed,
            "out": str(work / "predictions.jsonl"), "times": str(work / "times.json")}


# -- rram-lsm ---------------------------------------------------------------------------------
def run_ours(work: Path, query: str, samples: int, speed: float) -> dict:
    from rram_lsm.launch.graph import load_graph
    from rram_lsm.launch.supervisor import Launcher

    sockdir = Path(tempfile.mkdtemp(prefix="rlp-"))
    graph = load_graph(GRAPH, graph_args(work, query, samples, speed), sockdir)
    run = work / "run"
    if Launcher(graph, run, sockdir).run(timeout_s=300) != 0:
        raise RuntimeError(f"pipeline graph failed; see {run}")
    times = json.loads((work / "times.json").read_text())
    decision = [(t["pred_ns"] - t["last_ns"]) / 1e3 for t in times if t.get("pred_ns") and t.get("last_ns")]
    finals = {}
    for line in (run / "telemetry.jsonl").read_text().splitlines():
        rec = json.loads(line)
        if rec.get("final"):
            finals[rec["node"]] = rec
    check_accounting(finals)
    hops = {}
    for name, rec in finals.items():
        kind = next((h for h in HOPS if name.startswith(h)), None)
        if kind is None:
            continue
        service = rec["end_of_sample_us"] if kind == "lsm" else rec["service_us"]
        hops[name] = {"wire_p50_us": rec["wire_us"].get("p50"), "wire_p99_us": rec["wire_us"].get("p99"),
                      "service_p50_us": service.get("p50"), "service_p99_us": service.get("p99"),
                      "n": service.get("n", 0)}
    return {"impl": "rram-lsm", "samples": len(decision), "expected": 2 * samples,
            "decision_p50_us": pct(decision, 50), "decision_p99_us": pct(decision, 99), "hops": hops}


def check_accounting(finals: dict) -> None:
    """Every node: in = consumed + rejected + dropped; every edge: sent = received there."""
    received = {}
    for name, rec in finals.items():
        dropped = sum(rec["dropped_in"].values())
        if rec["msgs_in"] != rec["consumed"] + rec["rejected_total"] + dropped:
            raise RuntimeError(f"{name}: msgs_in {rec['msgs_in']} != consumed + rejected + dropped")
        if rec["rejected_total"]:
            raise RuntimeError(f"{name}: rejected {rec['rejected']}")
        if "received" in rec:
            received[name] = rec["received"]
    sent = {}
    for rec in finals.values():
        for edge, e in rec["edges"].items():
            if e["dropped"]:
                raise RuntimeError(f"{edge}: dropped {e['dropped']} on a block edge")
            dst = edge.split("->")[1]
            sent[dst] = sent.get(dst, 0) + e["sent"]
    for dst, n in sent.items():
        if received.get(dst) != n:
            raise RuntimeError(f"edges into {dst}: sent {n}, received {received.get(dst)}")


# -- bare pyzmq: the same messages through forwarders of the same shape -----------------------
mp = multiprocessing.get_context("spawn")
END = b""


def schedule(query: str, samples: int, speed: float, max_events: int = 512) -> dict:
    """Per modality: (release offset ns, body bytes, last of its sample) of every events
    message the graph's source sends, from the same samples and the same pacing code."""
    from rram_lsm.nodes.sources.builtin_source import BuiltinReplaySource
    from rram_lsm.nodes.sources.pacing import frame_slices, release_schedule

    out = {}
    for modality in (query, "visual"):
        src = BuiltinReplaySource(f"src_{modality}", {"modality": modality, "n_samples": samples,
                                                       "speed": speed, "max_events": max_events})
        rows, base = [], 0
        for events, _ in src._samples():
            sched = release_schedule(events["t"], speed)
            slices = frame_slices(events["t"], max_events, None, int(events["t"][0]))
            for i, sl in enumerate(slices):
                rows.append((base + int(sched[sl.stop - 1]), (sl.stop - sl.start) * events.dtype.itemsize,
                             i == len(slices) - 1))
            base += int(sched[-1])
        out[modality] = rows
    return out


def _bare_source(ep, rows):
    from rram_lsm.nodes.sources.pacing import Pacer

    ctx = zmq.Context()
    s = ctx.socket(zmq.PUSH)
    s.connect(ep)
    header = b"h" * 220  # about our events header
    bodies = {}
    time.sleep(0.5)
    pacer = Pacer()
    pacer.start()
    for due, nbytes, last in rows:
        body = bodies.setdefault(nbytes, np.zeros(nbytes, np.uint8))
        pacer.wait_until(due)
        now = time.time_ns().to_bytes(8, "little")
        s.send_multipart([now, now, b"L" if last else b"-", header, body], copy=False)
    s.send_multipart([END] * 5)
    s.close(linger=5000)
    ctx.term()


def _bare_forward(ep_in, ep_out, n_up, out_bytes, only_last, path):
    """Forwards (or, as the "lsm", only each sample's last message) with ``out_bytes`` bodies;
    records the hop (upstream stamp to receipt) and its service (receipt to send)."""
    ctx = zmq.Context()
    a, b = ctx.socket(zmq.PULL), ctx.socket(zmq.PUSH)
    a.bind(ep_in)
    b.connect(ep_out)
    header, body = b"h" * 200, np.zeros(out_bytes, np.uint8)
    wire, service, ends = [], [], 0
    while a.poll(60000):
        t0 = time.perf_counter_ns()
        msg = a.recv_multipart(copy=False)
        if not msg[0].bytes:
            ends += 1
            if ends == n_up:
                b.send_multipart([END] * 5)
                break
            continue
        now = time.time_ns()
        wire.append((now - int.from_bytes(msg[1].bytes, "little")) / 1e3)
        if only_last and msg[2].bytes != b"L":
            continue
        b.send_multipart([msg[0], time.time_ns().to_bytes(8, "little"), msg[2], header, body], copy=False)
        service.append((time.perf_counter_ns() - t0) / 1e3)
    a.close(linger=0)
    b.close(linger=5000)
    ctx.term()
    Path(path).write_text(json.dumps({"wire": wire, "service": service}))


def _bare_sink(ep, n_up, path):
    ctx = zmq.Context()
    s = ctx.socket(zmq.PULL)
    s.bind(ep)
    wire, decision, ends = [], [], 0
    while s.poll(60000):
        msg = s.recv_multipart(copy=False)
        if not msg[0].bytes:
            ends += 1
            if ends == n_up:
                break
            continue
        now = time.time_ns()
        wire.append((now - int.from_bytes(msg[1].bytes, "little")) / 1e3)
        decision.append((now - int.from_bytes(msg[0].bytes, "little")) / 1e3)
    s.close(linger=0)
    ctx.term()
    Path(path).write_text(json.dumps({"wire": wire, "decision": decision}))


def run_bare(work: Path, query: str, rows: dict) -> dict:
    d = tempfile.mkdtemp(prefix="rlp-")
    ep = {n: f"ipc://{d}/{n}" for n in ("lsm_q", "lsm_v", "proj_q", "proj_v", "classifier", "sink")}
    n_feat = PAIRS[query][2]
    procs = [mp.Process(target=_bare_sink, args=(ep["sink"], 1, work / "bare_sink.json")),
             mp.Process(target=_bare_forward, args=(ep["classifier"], ep["sink"], 2, 3 * 4, False, work / "bare_classifier.json"))]
    for m, n in (("q", n_feat), ("v", 200)):
        procs.append(mp.Process(target=_bare_forward, args=(ep[f"proj_{m}"], ep["classifier"], 1, PD * 4, False, work / f"bare_proj_{m}.json")))
        procs.append(mp.Process(target=_bare_forward, args=(ep[f"lsm_{m}"], ep[f"proj_{m}"], 1, n * 4, True, work / f"bare_lsm_{m}.json")))
    procs += [mp.Process(target=_bare_source, args=(ep["lsm_q"], rows[query])),
              mp.Process(target=_bare_source, args=(ep["lsm_v"], rows["visual"]))]
    for p in procs:
        p.start()
    for p in procs:
        p.join(300)
        if p.is_alive():
            p.terminate()
    sink = json.loads((work / "bare_sink.json").read_text())
    hops = {}
    names = {"lsm_q": f"lsm_{query}", "lsm_v": "lsm_visual", "proj_q": f"proj_{query}",
             "proj_v": "proj_visual", "classifier": "classifier"}
    for key, name in names.items():
        r = json.loads((work / f"bare_{key}.json").read_text())
        wire = r["wire"]
        hops[name] = {"wire_p50_us": pct(wire, 50), "wire_p99_us": pct(wire, 99),
                      "service_p50_us": pct(r["service"], 50), "service_p99_us": pct(r["service"], 99),
                      "n": len(r["service"])}
    hops["sink"] = {"wire_p50_us": pct(sink["wire"], 50), "wire_p99_us": pct(sink["wire"], 99),
                    "service_p50_us": None, "service_p99_us": None, "n": len(sink["wire"])}
    expected = sum(last for r in rows.values() for _, _, last in r)
    return {"impl": "pyzmq", "samples": len(sink["decision"]), "expected": expected,
            "decision_p50_us": pct(sink["decision"], 50), "decision_p99_us": pct(sink["decision"], 99),
            "hops": hops}


# -- report -----------------------------------------------------------------------------------
def flat(res: dict, rnd: int, query: str) -> list[dict]:
    base = {"round": rnd, "pair": f"{query}-visual", "impl": res["impl"]}
    out = [{**base, "hop": "decision (last event -> prediction)", "n": res["samples"],
            "p50_us": res["decision_p50_us"], "p99_us": res["decision_p99_us"]}]
    for name, h in sorted(res["hops"].items()):
        out.append({**base, "hop": f"{name} wire", "n": h["n"], "p50_us": h["wire_p50_us"], "p99_us": h["wire_p99_us"]})
        if h["service_p50_us"] is not None:
            out.append({**base, "hop": f"{name} service", "n": h["n"], "p50_us": h["service_p50_us"],
                        "p99_us": h["service_p99_us"]})
    return out


def table(rows: list[dict]) -> str:
    """Median and range over the rounds of each (pair, hop): ours beside bare."""
    lines = ["| pair | hop | rram-lsm p50 µs, median [range] | p99 µs | bare pyzmq p50 µs | p99 µs |",
             "|---|---|---|---|---|---|"]
    keys = list(dict.fromkeys((r["pair"], r["hop"]) for r in rows))

    def cell(impl, key, m):
        v = [r[m] for r in rows if (r["pair"], r["hop"]) == key and r["impl"] == impl and r[m] == r[m] and r[m] is not None]
        return f"{np.median(v):,.0f} [{min(v):,.0f}–{max(v):,.0f}]" if v else "–"
    for key in keys:
        lines.append(f"| {key[0]} | {key[1]} | {cell('rram-lsm', key, 'p50_us')} | {cell('rram-lsm', key, 'p99_us')} "
                     f"| {cell('pyzmq', key, 'p50_us')} | {cell('pyzmq', key, 'p99_us')} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--samples", type=int, default=20, help="samples per source per round")
    ap.add_argument("--speed", type=float, default=1.0, help="1.0 = real time")
    ap.add_argument("--bmi", action="store_true", help="the neural-visual pair (2,048-neuron bmi_neural reservoir)")
    ap.add_argument("--no-bare", action="store_true", help="skip the bare pyzmq graph")
    ap.add_argument("--spread-of", nargs="+", metavar="CSV", help="instead: the table of earlier "
                    "runs' CSVs (rounds run as separate, shorter invocations)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    # node processes load this folder's nodes (pipeline_nodes) by module name
    os.environ["PYTHONPATH"] = os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])
    if args.spread_of:
        rows = []
        for i, path in enumerate(args.spread_of):
            with open(path) as fh:
                rows += [{**r, "round": i, "p50_us": float(r["p50_us"] or "nan"), "p99_us": float(r["p99_us"] or "nan")}
                         for r in csv.DictReader(fh)]
        print(table(rows))
        return
    query = "neural" if args.bmi else "audio"
    out = Path(args.out or HERE / "results" / f"pipeline{'_bmi' if args.bmi else ''}.csv")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        sched = None if args.no_bare else schedule(query, args.samples, args.speed)
        for rnd in range(args.rounds):
            work = Path(tmp) / f"r{rnd}"
            work.mkdir()
            results = [run_ours(work, query, args.samples, args.speed)]
            if sched is not None:
                results.append(run_bare(work, query, sched))
            for res in results:
                if res["samples"] != res["expected"]:
                    raise RuntimeError(f"{res['impl']}: {res['samples']} decisions of {res['expected']} samples")
                rows += flat(res, rnd, query)
                print(json.dumps({k: v for k, v in res.items() if k != "hops"}), flush=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="") as fh:
        w = csv.DictWriter(fh, list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    print(f"\nwrote {out}; load average {os.getloadavg()[0]:.2f}\n")
    print(table(rows))


if __name__ == "__main__":
    main()
