"""Soak: the full pipeline (DVS source -> lsm -> projection -> classifier -> sink) at 1 M
events/s for 10 minutes; reports resident memory per node at start and end (goal: < 5%
growth) and checks exact accounting (per edge sent = received + dropped; per node
in = consumed + rejected + dropped).

    python benchmarks/soak.py [--minutes 10] [--rate 1000000] [--policy block|drop]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

GRAPH = """
[graph]
name = "soak"
[nodes.src]
kind = "synthetic_dvs"
params = {{ n_samples = 0, rate_hz = {rate}, sample_ms = 300, geometry = [16, 16], speed = 1.0 }}
[nodes.lsm]
kind = "lsm"
params = {{ preset = "zs_image", binning = "fixed_width", bin_width_us = 6000 }}
[nodes.proj]
kind = "projection"
params = {{ weights = "{heads}", modality = "visual" }}
[nodes.cls]
kind = "classifier"
params = {{ bank = "{bank}" }}
[nodes.sink]
kind = "null_sink"
[[edges]]
from = "src"
to = "lsm"
policy = "{policy}"
[[edges]]
from = "lsm"
to = "proj"
[[edges]]
from = "proj"
to = "cls"
[[edges]]
from = "cls"
to = "sink"
"""


def main() -> int:
    from rram_lsm.launch.graph import load_graph
    from rram_lsm.launch.supervisor import Launcher
    from rram_lsm.nodes.classifier.bank import PrototypeBank
    from rram_lsm.nodes.projection.heads import HeadConfig, ProjectionHead, save_heads

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--rate", type=float, default=1e6)
    ap.add_argument("--policy", default="block", choices=["block", "drop"])
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="rl-soak-"))
    rng = np.random.default_rng(0)
    head = ProjectionHead(HeadConfig("zs_image", "visual", 200, [64]), np.zeros(200), np.ones(200),
                          [rng.normal(size=(64, 200))], [np.zeros(64)])
    save_heads(tmp / "heads.npz", {"visual": head})
    PrototypeBank.from_embeddings(rng.normal(size=(90, 64)), np.arange(90) % 9 + 1).save(tmp / "bank.npz")
    (tmp / "g.toml").write_text(GRAPH.format(rate=int(args.rate), heads=tmp / "heads.npz",
                                             bank=tmp / "bank.npz", policy=args.policy))
    history: dict[str, list[dict]] = {}
    launcher = Launcher(load_graph(tmp / "g.toml", None, tmp), tmp / "run", tmp,
                        on_report=lambda r: history.setdefault(r["node"], []).append(r))
    code = launcher.run(timeout_s=args.minutes * 60)
    print(f"graph exit code {code}; telemetry {tmp / 'run' / 'telemetry.jsonl'}\n")
    print("| node | RSS start MB | RSS end MB | growth | msgs in | consumed | rejected | dropped | in == c+r+d |")
    print("|---|---|---|---|---|---|---|---|---|")
    ok = code == 0
    for name, reps in history.items():
        # start = first report after 10% of the run (after warm-up and first allocations)
        start = reps[min(len(reps) - 1, max(1, len(reps) // 10))]
        end = reps[-1]
        growth = (end["rss_bytes"] - start["rss_bytes"]) / start["rss_bytes"]
        acc = end["msgs_in"] == end["consumed"] + end["rejected_total"] + sum(end["dropped_in"].values())
        ok &= acc
        print(f"| {name} | {start['rss_bytes'] / 2**20:.1f} | {end['rss_bytes'] / 2**20:.1f} | {growth:+.1%} | "
              f"{end['msgs_in']:,} | {end['consumed']:,} | {end['rejected_total']} | {sum(end['dropped_in'].values())} | {acc} |")
    latest = launcher.latest
    for name, r in latest.items():
        for edge, e in r.get("edges", {}).items():
            dst = edge.split("->")[1]
            received = latest[dst].get("received", 0)
            exact = e["offered"] == received + e["dropped"]
            ok &= exact
            print(f"edge {edge}: offered {e['offered']:,} = received {received:,} + dropped {e['dropped']:,}: {exact}")
    src = latest["src"]
    print(f"\nsource events out: {src['events_out']:,} in {src['uptime_s']:.0f} s "
          f"= {src['events_out'] / max(src['uptime_s'], 1e-9):,.0f} events/s")
    print(json.dumps({"ok": ok}))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
