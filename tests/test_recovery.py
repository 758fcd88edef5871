"""Lossless mode survives a crash: samples are re-sent whole and the sink keeps each once."""
from __future__ import annotations

import json
import os
import signal
from collections import Counter

import numpy as np
import pytest

from rram_lsm.launch.graph import load_graph
from rram_lsm.launch.supervisor import Launcher
from rram_lsm.nodes.sinks import SinkNode
from rram_lsm.stream.packets import DVS_DTYPE, Origin, Packet, control
from rram_lsm.stream.recovery import RecoveryConfig, SampleLedger, SampleTooLarge

from graphs import chain, events_per_sample


def recovery_chain(out, samples, messages, edge, extra=""):
    """The chain with recovery on and restarts quick; ``edge``: both edges' policy lines."""
    return chain(out, name="recovery", samples=samples, messages=messages, delay_ms=3,
                 graph=f"restart = {{ backoff_s = 0.2 }}\n"
                       f"recovery = {{ enabled = true, resend_after_s = 2.0, max_unacked = 4 {extra} }}",
                 edges=(edge, edge))
EDGES = {"block": 'policy = "block"', "drop": 'policy = "drop"\nqueue_msgs = 16'}


@pytest.mark.parametrize("policy", ["block", "drop"])
@pytest.mark.parametrize("victim", ["src", "mid", "sink"])
def test_sigkill_any_node_mid_stream_loses_and_duplicates_nothing(tmp_path, sockdir, policy, victim):
    """SIGKILL one node (the source included) mid-stream.  ``block``: nothing is dropped;
    ``drop``: a queue overflows while a node is down and drops data, counted by reason.  In
    all, the sink ends with every sample once: unacknowledged samples are re-sent whole, and a
    restarted source resumes from its first unacknowledged sample under the same origin
    epoch, so what it sends again is recognised (issue 22: it used to begin again at 0)."""
    out = tmp_path / "out.jsonl"
    samples, messages = 8, 30
    path = tmp_path / "g.toml"
    path.write_text(recovery_chain(samples=samples, messages=messages, out=out, extra="", edge=EDGES[policy]))
    launcher = Launcher(load_graph(path, None, sockdir), tmp_path / "run", sockdir)
    for spec in launcher.graph.nodes.values():
        spec.telemetry_interval_s = 0.1
    killed = []
    busy = "msgs_out" if victim == "src" else "msgs_in"

    def kill_when_busy(report):
        # a source is killed once a sample was acknowledged, so it has a resume point to keep
        acked = victim != "src" or (report.get("resume") or {}).get("from_sample", 0) > 0
        if report.get("node") == victim and report.get(busy, 0) > 45 and acked and not killed:
            killed.append(launcher.states[victim].proc.pid)
            os.kill(killed[0], signal.SIGKILL)

    launcher.on_report = kill_when_busy
    assert launcher.run(timeout_s=180) == 0
    assert killed
    src, sink = launcher.latest["src"], launcher.latest["sink"]
    assert src["recovery"]["unacked"] == 0
    recs = [json.loads(l) for l in open(out)]
    # exactly once: every sample, all of its events, once
    assert events_per_sample(out) == {s: messages * 64 for s in range(samples)}
    ends = Counter(r["sample"] for r in recs if r.get("control") == "end_of_sample")
    assert ends == {s: 1 for s in range(samples)}
    assert len({tuple(r["origin"][:2]) for r in recs if r["origin"]}) == 1  # one origin epoch
    log = [json.loads(l) for l in open(tmp_path / "run" / "telemetry.jsonl") if '"event"' in l]
    restarts = [e for e in log if e["event"] == "restarted"]
    assert [e["node"] for e in restarts] == [victim]
    if victim == "src":  # it resumed past what was acknowledged instead of beginning again
        assert restarts[0]["resume_from"] > 0
        return
    assert src["recovery"]["resent_samples"] > 0
    src_edge = src["edges"]["src->mid"]
    if policy == "block":
        assert src_edge["dropped"] == 0 and not src_edge["events_dropped"]
    elif victim == "mid":  # what the overflowing queue dropped is counted, and those samples came again whole
        assert src_edge["dropped"] > 0
        assert src_edge["events_dropped"]["no_credit"] == src_edge["dropped"] * 64
        assert sink["gauges"]["incomplete_samples"] + sink["gauges"].get("duplicates", 0) >= 1


def test_sample_over_the_bound_is_refused_with_a_clear_error(tmp_path, sockdir):
    path = tmp_path / "g.toml"
    path.write_text(recovery_chain(samples=2, messages=5, out=tmp_path / "o.jsonl",
                                 extra=", max_sample_bytes = 1000", edge=EDGES["block"]))
    launcher = Launcher(load_graph(path, None, sockdir), tmp_path / "run", sockdir)
    assert launcher.run(timeout_s=120) == 2  # a configuration error: rc 2, no restarts
    log = (tmp_path / "run" / "logs" / "src.log").read_text()
    assert "exceeds the recovery bound of 1000 bytes" in log
    events = [json.loads(l) for l in open(tmp_path / "run" / "telemetry.jsonl") if '"event"' in l]
    assert any(e["event"] == "failed" and e["node"] == "src" for e in events)


def sample_packets(s, n_msgs=2, stream="cam"):
    origin = Origin(stream, 5, s)
    out = [control("start", origin=origin, sample=s)]
    for _ in range(n_msgs):
        ev = np.zeros(10, DVS_DTYPE)
        out.append(Packet(kind="events", body=ev, geometry=(34, 34), origin=origin, sample=s))
    out.append(control("end_of_sample", origin=origin, sample=s))
    return out


def test_ledger_bounds_acks_and_resends():
    ledger = SampleLedger(RecoveryConfig(max_unacked=2, resend_after_s=100), n_ackers=2)
    for p in sample_packets(0) + sample_packets(1):
        ledger.record(p)
    assert ledger.full and ledger.kept[("cam", 5, 1)].events == 20
    assert sample_packets(0)[-1].meta == {} and ledger.kept[("cam", 5, 0)].packets[-1].meta["n_events"] == 20
    ledger.ack("sinkA", ("cam", 5, 0))
    assert ledger.full  # one of two sinks acknowledged
    ledger.ack("sinkB", ("cam", 5, 0))
    assert not ledger.full and ledger.acked == 1
    resent = ledger.due(now=0.0, all_unacked=True)
    assert len(resent) == 1 and resent[0][0].control == "start" and ledger.resent_samples == 1
    ledger.ack("sinkA", ("cam", 5, 99))
    assert ledger.stale_acks == 1
    big = SampleLedger(RecoveryConfig(max_sample_bytes=100), 1)
    try:
        for p in sample_packets(0):
            big.record(p)
        raise AssertionError("oversized sample accepted")
    except SampleTooLarge as exc:
        assert "exceeds the recovery bound of 100 bytes" in str(exc)


def test_sink_commits_whole_samples_once():
    sink = SinkNode("sink")
    sink.setup()
    acks = []
    sink.on_ack = acks.append
    first = sample_packets(0)
    first[-1].meta = {"n_events": 20}
    partial = [first[0], first[1], first[-1]]  # one events message lost to a restart
    for p in partial + first + first:  # cut sample, then the whole one twice (a re-send)
        sink.process(p)
    assert sink.incomplete == 1 and sink.duplicates == 1
    assert sink.records == 4  # start + 2 events + end, once
    assert acks == [first[0].origin, first[0].origin]


def test_sink_memory_stays_bounded_and_still_removes_late_duplicates():
    """An endless stream with recovery: the sink forgets what the source can no longer re-send,
    but keeps what it still may, so a late re-send is still recognised as a duplicate."""
    ledger = SampleLedger(RecoveryConfig(max_unacked=8, resend_after_s=100), n_ackers=1)
    sink = SinkNode("sink")
    sink.setup()
    lost_ack = 3  # this sample's acknowledgement never reaches the source
    sink.on_ack = lambda o: None if o.sample == lost_ack else ledger.ack("sink", ("cam", o.epoch, o.sample))
    for s in range(500):
        for p in sample_packets(s):
            ledger.record(p)
            sink.process(p)
        assert sink.gauges["remembered_samples"] <= 8 + 1
    assert list(ledger.kept) == [("cam", 5, lost_ack)]
    records = sink.records
    for packets in ledger.due(now=0.0, all_unacked=True):  # the source re-sends sample 3
        for p in packets:
            sink.process(p)
    assert sink.duplicates == 1 and sink.records == records


def test_sink_without_recovery_remembers_a_bounded_number_of_samples():
    sink = SinkNode("sink", {"remember": 50})
    sink.setup()
    for s in range(2000):
        packets = sample_packets(s)
        for p in packets if s % 7 else packets[:-1]:  # every 7th sample is cut: it never ends
            sink.process(p)
    assert sink.gauges["remembered_samples"] <= 2 * 50
    assert sink.records == (2000 - 2000 // 7 - 1) * 4
    assert sink.incomplete >= 2000 // 7 - 50
