"""Fuzz every message-reading node kind with 100,000 random and mutated messages each, then
with as many hostile edge messages (envelopes with counts up to 2**64, random tags, clock
replies, a stranger's controls, negative sample ids, time going backwards) from a real DEALER
to the node's real ROUTER input.

Reports, per node kind: messages, consumed, rejections by reason, drops, the slowest single
message (a hang would show here) and wall time.  Exits non-zero if any node crashed or the
accounting in = consumed + rejected + dropped does not hold.

    python benchmarks/fuzz.py [--messages 100000]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rram_lsm.launch.fuzz import fuzz_envelopes, fuzz_node  # noqa: E402


def nodes(tmp: Path) -> dict:
    from rram_lsm.nodes.classifier.bank import PrototypeBank
    from rram_lsm.nodes.classifier.node import ClassifierNode
    from rram_lsm.nodes.lsm.node import LsmNode
    from rram_lsm.nodes.passthrough import PassThroughNode
    from rram_lsm.nodes.projection.heads import HeadConfig, ProjectionHead, save_heads
    from rram_lsm.nodes.projection.node import ProjectionNode
    from rram_lsm.nodes.recording import RecorderSink
    from rram_lsm.nodes.sinks import JsonlSink

    rng = np.random.default_rng(0)
    head = ProjectionHead(HeadConfig("zs_image", "visual", 200, [64]), np.zeros(200), np.ones(200),
                          [rng.normal(size=(64, 200))], [np.zeros(64)])
    save_heads(tmp / "heads.npz", {"visual": head})
    PrototypeBank.from_embeddings(rng.normal(size=(30, 64)), np.arange(30) % 3).save(tmp / "bank.npz")
    return {
        "passthrough": lambda: PassThroughNode("p"),
        "lsm": lambda: LsmNode("lsm", {"preset": "zs_image", "geometry": [34, 34]}),
        "projection": lambda: ProjectionNode("proj", {"weights": str(tmp / "heads.npz"), "modality": "visual"}),
        "classifier": lambda: ClassifierNode("cls", {"bank": str(tmp / "bank.npz")}),
        "jsonl_sink": lambda: JsonlSink("sink", {"path": str(tmp / "fuzz.jsonl")}),
        "recorder": lambda: RecorderSink("rec", {"path": str(tmp / "rec.npz")}),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    ok = True
    print("| node | cases | messages | consumed | rejected | dropped | reasons | slowest ms | s |")
    print("|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for kind, make in nodes(Path(tmp)).items():
            for cases, fuzz in (("packets", fuzz_node), ("envelopes", fuzz_envelopes)):
                r = fuzz(make(), args.messages, seed=args.seed, bind=f"inproc://fuzz-{kind}-{cases}")
                rej, drop = sum(r.rejected.values()), sum(r.dropped.values())
                if cases == "packets":
                    ok &= r.messages == args.messages == r.consumed + rej + drop
                else:  # hellos and clock replies are counted by the receiver, not as packets
                    ok &= r.messages == args.messages
                print(f"| {kind} | {cases} | {r.messages:,} | {r.consumed:,} | {rej:,} | {drop:,} | "
                      f"{len(r.rejected)} | {r.max_ms:.1f} | {r.seconds:.0f} |", flush=True)
    print("accounting holds for every node" if ok else "ACCOUNTING BROKEN")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
