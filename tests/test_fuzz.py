"""Hostile input: fuzzed messages never crash or hang a node; every rejection is counted.

CI runs a few thousand messages per node kind; `benchmarks/fuzz.py` runs 100,000."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rram_lsm.launch.fuzz import fuzz_node, mutate, seed_packets
from rram_lsm.nodes.lsm.node import LsmNode
from rram_lsm.nodes.passthrough import PassThroughNode
from rram_lsm.nodes.sinks import JsonlSink
from rram_lsm.stream.codec import DecodeError, decode, encode
from rram_lsm.stream.packets import DVS_DTYPE, Origin, Packet, control


def make_nodes(tmp_path):
    return {
        "passthrough": PassThroughNode("p"),
        "lsm": LsmNode("lsm", {"preset": "zs_image", "geometry": [34, 34]}),
        "jsonl_sink": JsonlSink("sink", {"path": str(tmp_path / "fuzz.jsonl")}),
    }


@pytest.mark.parametrize("kind", ["passthrough", "lsm", "jsonl_sink"])
def test_node_survives_fuzzing_and_counts_rejections(kind, tmp_path):
    node = make_nodes(tmp_path)[kind]
    report = fuzz_node(node, 4000, seed=7, geometry=(34, 34), bind=f"inproc://fuzz-{kind}")
    assert report.messages == 4000
    # exact accounting: every message consumed, rejected with a reason, or dropped with one
    assert report.consumed + sum(report.rejected.values()) + sum(report.dropped.values()) == 4000
    assert len(report.rejected) >= 8 and all(report.rejected.values())
    assert report.consumed > 0  # the good messages between the bad ones were still processed


def test_node_still_works_after_fuzzing(tmp_path):
    """After thousands of hostile messages the LSM node still turns a sample into a feature."""
    node = LsmNode("lsm", {"preset": "zs_image", "geometry": [16, 16]})
    fuzz_node(node, 2000, seed=3, geometry=(16, 16), bind="inproc://fuzz-after")
    node.setup()
    origin = Origin("s", 1, 0)
    ev = np.zeros(200, DVS_DTYPE)
    ev["t"] = np.arange(200) * 1000
    ev["x"], ev["y"], ev["p"] = np.arange(200) % 16, (np.arange(200) // 16) % 16, 1
    out = []
    for p in (control("start", origin=origin, sample=0),
              Packet(kind="events", body=ev, geometry=(16, 16), origin=origin, sample=0),
              control("end_of_sample", origin=origin, sample=0)):
        out += list(node.process(p))
    assert len(out) == 1 and out[0].kind == "features" and out[0].body.shape == (1, 200)


@settings(max_examples=400, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_mutated_messages_decode_or_reject_cleanly(seed):
    rng = np.random.default_rng(seed)
    for p in seed_packets(rng):
        frames = mutate([bytes(f) for f in encode(p)], rng)
        try:
            q = decode(frames)
        except DecodeError as exc:
            assert exc.reason
        else:
            assert q.kind in ("events", "features", "embedding", "prediction", "control", "telemetry")


def test_hostile_envelopes_through_a_real_router_are_all_counted():
    """Envelopes and control frames from a real DEALER (counts near 2**64, random tags and
    clock replies, a stranger's controls, negative sample ids, time going backwards): the
    node never raises, and every message is counted as a packet or an accepted hello/pong."""
    from rram_lsm.launch.fuzz import fuzz_envelopes

    report = fuzz_envelopes(PassThroughNode("p"), 3000, seed=11, bind="inproc://fuzz-envelopes")
    assert report.messages == 3000
    for reason in ("envelope", "envelope_count", "bad_pong", "sample_id", "foreign_end_of_stream",
                   "time_backwards"):
        assert report.rejected.get(reason, 0) > 0, reason
    assert report.consumed > 0
