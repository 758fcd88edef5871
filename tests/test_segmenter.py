"""Activity segmenter: onset/offset with hysteresis on a synthetic live stream."""
import numpy as np
import pytest

from rram_lsm.nodes.sources.segmenter import ActivitySegmenter, SegmenterNode, SegmenterParams
from rram_lsm.stream.node import ConfigError
from rram_lsm.stream.packets import NEURAL_DTYPE, Packet

from nodetest import drive


def stream(segments, rng, background_hz=100.0, total_us=3_000_000):
    """Neural events: background noise plus bursts at 10 kHz over the given (start, end) spans."""
    ts = [rng.integers(0, total_us, rng.poisson(background_hz * total_us * 1e-6))]
    for a, b in segments:
        ts.append(rng.integers(a, b, rng.poisson(10_000 * (b - a) * 1e-6)))
    t = np.sort(np.concatenate(ts))
    ev = np.zeros(len(t), NEURAL_DTYPE)
    ev["t"], ev["x"] = t, rng.integers(0, 8, len(t))
    return ev


def run(seg, ev, chunk=97):
    out = []
    for i in range(0, len(ev), chunk):
        out += seg.push(ev[i:i + chunk])
    return out + seg.flush()


def test_finds_bursts_and_delivers_their_events():
    rng = np.random.default_rng(0)
    spans = [(200_000, 500_000), (1_200_000, 1_900_000)]
    ev = stream(spans, rng)
    out = run(ActivitySegmenter(), ev)
    kinds = [o.what for o in out if o.what != "events"]
    assert kinds == ["start", "end", "start", "end"]
    starts = [o.t for o in out if o.what == "start"]
    ends = [o.t for o in out if o.what == "end"]
    for (a, b), s, e in zip(spans, starts, ends):
        assert a - 40_000 <= s <= a + 10_000  # onset within a bin or two, with pre-roll
        assert b <= e <= b + 120_000  # offset after the hangover
        inside = ((ev["t"] >= a) & (ev["t"] < b)).sum()
        got = sum(len(o.events) for o in out if o.what == "events" and s <= o.t < e)
        assert got >= inside  # every event of the burst is in the sample
    delivered = np.concatenate([o.events for o in out if o.what == "events"])
    assert (np.diff(delivered["t"]) >= 0).all()


def test_hysteresis_keeps_a_dipping_burst_whole():
    rng = np.random.default_rng(1)
    # a 40 ms gap inside a burst is shorter than the 100 ms hangover: one sample, not two
    ev = stream([(300_000, 600_000), (640_000, 900_000)], rng)
    out = run(ActivitySegmenter(), ev)
    assert [o.what for o in out if o.what != "events"] == ["start", "end"]
    out = run(ActivitySegmenter(SegmenterParams(hangover_bins=2)), ev)
    assert [o.what for o in out if o.what != "events"] == ["start", "end", "start", "end"]


def test_background_alone_makes_no_sample():
    out = run(ActivitySegmenter(), stream([], np.random.default_rng(2), background_hz=400.0))
    assert out == []


def test_node_emits_controls_in_order():
    rng = np.random.default_rng(3)
    ev = stream([(100_000, 300_000), (800_000, 1_000_000)], rng, total_us=1_500_000)
    node = SegmenterNode("seg", {"hangover_bins": 5})
    packets = drive(node, (Packet(kind="events", body=ev[i:i + 200], origin_ns=123)
                           for i in range(0, len(ev), 200)), setup=False)
    seq = [(p.control or p.kind, p.sample) for p in packets if p.kind == "control"]
    assert seq == [("start", 0), ("end_of_sample", 0), ("start", 1), ("end_of_sample", 1)]
    assert all(p.origin.sample == p.sample for p in packets)
    with pytest.raises(ConfigError, match="bogus"):
        SegmenterNode("seg", {"bogus": 1})
    with pytest.raises(ConfigError, match="off_rate_hz"):
        SegmenterNode("seg", {"off_rate_hz": 5_000.0})
