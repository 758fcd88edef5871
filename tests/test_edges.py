"""Edge policies in real multi-process graphs: `block` loses nothing, `drop` counts exactly."""
from __future__ import annotations

import json

from conftest import run_graph
from graphs import chain


def edge_graph(out, samples, messages, events, delay, policy, window, queue):
    """The chain with a slow middle node and the edge under test in front of it."""
    return chain(out, name="edges", samples=samples, messages=messages, events=events,
                 mid_params=f"delay_ms = {delay}",
                 edges=(f'policy = "{policy}"\nwindow = {window}\nqueue_msgs = {queue}', 'policy = "block"'))


def read_records(path):
    return [json.loads(line) for line in open(path)]


def test_block_edge_with_slow_consumer_loses_nothing(tmp_path, sockdir):
    out = tmp_path / "out.jsonl"
    samples, messages, events = 2, 60, 256
    launcher = run_graph(edge_graph(samples=samples, messages=messages, events=events, delay=4,
                                      policy="block", window=4, queue=8, out=out), tmp_path, sockdir)
    assert launcher.exit_code == 0
    recs = read_records(out)
    ev = [r for r in recs if r["kind"] == "events"]
    assert len(ev) == samples * messages
    assert sum(r["n"] for r in ev) == samples * messages * events
    # order is kept per sample: seq strictly increasing at the sink
    seqs = [r["seq"] for r in recs]
    assert seqs == sorted(seqs)
    src = launcher.latest["src"]
    edge = src["edges"]["src->mid"]
    assert src["final"] and edge["dropped"] == 0 and not edge["events_dropped"]
    assert edge["max_queue"] <= 1  # the sender buffered at most one message beyond its credit
    assert edge["credit_waits"] > 0  # the slow consumer really held the sender back
    mid = launcher.latest["mid"]
    assert mid["received"] == edge["sent"] == edge["offered"]
    assert mid["msgs_in"] == mid["consumed"] + mid["rejected_total"]


def test_drop_edge_counts_every_drop_exactly(tmp_path, sockdir):
    out = tmp_path / "out.jsonl"
    samples, messages, events = 3, 150, 64
    launcher = run_graph(edge_graph(samples=samples, messages=messages, events=events, delay=5,
                                      policy="drop", window=2, queue=3, out=out), tmp_path, sockdir)
    assert launcher.exit_code == 0
    src, mid, sink = (launcher.latest[n] for n in ("src", "mid", "sink"))
    edge = src["edges"]["src->mid"]
    assert edge["dropped"] > 0
    # per edge: sent = received + dropped, exactly
    assert edge["offered"] == mid["received"] + edge["dropped"]
    assert mid["edges"]["mid->sink"]["offered"] == sink["received"]
    # per node: in = consumed + rejected + dropped
    for r in (mid, sink):
        assert r["msgs_in"] == r["consumed"] + r["rejected_total"] + sum(r["dropped_in"].values())
    # dropped events are counted by reason and account for every event not delivered
    recs = read_records(out)
    delivered = sum(r["n"] for r in recs if r["kind"] == "events")
    assert delivered + edge["events_dropped"]["no_credit"] == samples * messages * events
    # control packets are never dropped: every start and end_of_sample arrived, in order
    controls = [(r["control"], r["sample"]) for r in recs if r.get("control")]
    assert controls == [(c, s) for s in range(samples) for c in ("start", "end_of_sample")]
