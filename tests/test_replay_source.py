"""ReplaySource and SyntheticDvsSource driven directly: every event of every sample, in order."""
import numpy as np
import pytest

from rram_lsm.nodes.sources.dv import DvsCameraSource
from rram_lsm.nodes.sources.live import LiveSourceError, LslSource, lsl_chunk_to_events
from rram_lsm.nodes.sources.pacing import Pacer
from rram_lsm.nodes.sources.replay import ReplaySource
from rram_lsm.nodes.sources.synthetic import SyntheticDvsSource
from rram_lsm.stream.node import ConfigError
from rram_lsm.stream.packets import COCHLEA_DTYPE, DVS_DTYPE

from test_readers import nmnist_bytes


def dvs_samples(n=4, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        m = int(rng.integers(50, 400))
        ev = np.zeros(m, DVS_DTYPE)
        ev["t"] = np.sort(rng.integers(0, 300_000, m))
        ev["x"], ev["y"], ev["p"] = rng.integers(0, 16, m), rng.integers(0, 16, m), rng.integers(0, 2, m)
        out.append((ev, k % 3))
    return out


def split_by_sample(packets):
    """Check the control order per sample and return {sample: (events, label)}."""
    got, open_sample = {}, None
    for p in packets:
        if p.kind == "control" and p.control == "start":
            assert open_sample is None
            open_sample = p.sample
            got[p.sample] = ([], p.label)
        elif p.kind == "events":
            assert p.sample == open_sample and p.label == got[p.sample][1]
            assert p.origin.sample == p.sample and p.n == len(p.body)
            assert p.t0 == p.body["t"][0] and p.t1 == p.body["t"][-1]
            got[p.sample][0].append(p.body)
        else:
            assert p.control == "end_of_sample" and p.sample == open_sample
            assert p.label == got[p.sample][1] and p.meta["n_events"] == sum(map(len, got[p.sample][0]))
            open_sample = None
    assert open_sample is None
    return {k: (np.concatenate(v) if v else np.zeros(0, DVS_DTYPE), lab) for k, (v, lab) in got.items()}


def test_every_event_of_every_sample_with_labels():
    samples = dvs_samples()
    src = ReplaySource("dvs", {"max_events": 64, "geometry": [16, 16]}, samples=samples)
    packets = list(src.packets())
    got = split_by_sample(packets)
    assert sorted(got) == [0, 1, 2, 3]
    for k, (ev, label) in enumerate(samples):
        assert np.array_equal(got[k][0], ev) and got[k][1] == label
    assert all(len(p.body) <= 64 for p in packets if p.kind == "events")
    assert {p.origin.epoch for p in packets} == {src.epoch}
    assert all(p.geometry == (16, 16) for p in packets if p.kind == "events")


def test_framing_by_time_span_and_looping():
    samples = dvs_samples(2)
    src = ReplaySource("dvs", {"span_us": 50_000, "max_events": None, "loop": 2, "geometry": [16, 16]},
                       samples=samples)
    packets = list(src.packets())
    got = split_by_sample(packets)
    assert sorted(got) == [0, 1, 2, 3]  # ids keep counting over the second pass
    assert np.array_equal(got[3][0], samples[1][0]) and got[2][1] == samples[0][1]
    first = {}
    for p in packets:
        if p.kind == "control" and p.control == "start":
            first[p.sample] = p.t0  # windows start at the sample's first event
        if p.kind == "events":
            rel = p.body["t"] - first[p.sample]
            assert rel[-1] // 50_000 == rel[0] // 50_000


def test_real_time_pacing_on_a_fake_clock():
    now = [0]

    def sleep(s):
        now[0] += int(round(s * 1e9))

    samples = dvs_samples(2)
    src = ReplaySource("dvs", {"speed": 2.0, "max_events": 32, "gap_us": 100_000, "geometry": [16, 16]},
                       samples=samples)
    src.pacer = Pacer(clock=lambda: now[0], sleep=sleep)
    src.clock_ns = lambda: 10**12
    releases = []
    for p in src.packets():
        releases.append((now[0], p))
    base = 0
    for k, (ev, _) in enumerate(samples):
        events = [(t, p) for t, p in releases if p.kind == "events" and p.sample == k]
        for t, p in events:
            # released when its last event is due, at (t - t_first) / speed after the sample start
            assert t == base + (int(p.body["t"][-1]) - int(ev["t"][0])) * 1000 // 2
            assert p.origin_ns == 10**12 + base + (int(p.body["t"][0]) - int(ev["t"][0])) * 1000 // 2
        base += (int(ev["t"][-1]) - int(ev["t"][0])) * 1000 // 2 + 100_000 * 1000 // 2
    times = [t for t, _ in releases]
    assert times == sorted(times)


def test_replay_from_an_nmnist_folder(tmp_path):
    for digit in (1, 4):
        d = tmp_path / "Train" / str(digit)
        d.mkdir(parents=True)
        (d / "x.bin").write_bytes(nmnist_bytes([9, 10, 30], [9, 12, 30], [1, 1, 1], [5, 6, 7]))
    src = ReplaySource("nmnist", {"format": "nmnist", "path": str(tmp_path)})
    got = split_by_sample(list(src.packets()))
    assert [got[k][1] for k in sorted(got)] == [1, 4]
    assert got[0][0]["x"].tolist() == [0, 1]  # centre crop 16x16: (30, 30) is outside
    assert src.geometry == (16, 16)


def test_replay_of_a_recorder_file(tmp_path):
    from rram_lsm.nodes.recording import RecorderSink

    samples = dvs_samples(3, seed=4)
    rec = RecorderSink("rec", {"path": str(tmp_path / "r.npz")})
    rec.setup()
    for p in ReplaySource("dvs", {"max_events": 100, "geometry": [16, 16]}, samples=samples).packets():
        rec.process(p)
    rec.close()
    src = ReplaySource("again", {"format": "recording", "path": str(tmp_path / "r.npz")})
    got = split_by_sample(list(src.packets()))
    assert src.geometry == (16, 16)
    for k, (ev, label) in enumerate(samples):
        assert np.array_equal(got[k][0], ev) and got[k][1] == label


def test_cochlea_samples_and_bad_config():
    ev = np.zeros(3, COCHLEA_DTYPE)
    ev["t"], ev["x"] = [0, 1, 2], [0, 63, 5]
    got = split_by_sample(list(ReplaySource("c", {"geometry": [64]}, samples=[(ev, 2)]).packets()))
    assert np.array_equal(got[0][0], ev)
    with pytest.raises(ValueError, match="outside geometry"):
        list(ReplaySource("c", {"geometry": [32]}, samples=[(ev, 2)]).packets())
    with pytest.raises(ConfigError, match="speed"):
        ReplaySource("c", {"speed": -1}, samples=[])
    with pytest.raises(ConfigError, match="format"):
        ReplaySource("c", {"format": "wav", "path": "x"})
    with pytest.raises(ConfigError, match="loop"):
        ReplaySource("c", {"loop": 2}, samples=iter([(ev, 1)]))


def test_synthetic_bar_source():
    src = SyntheticDvsSource("syn", {"n_samples": 4, "rate_hz": 20_000, "sample_ms": 100, "max_events": 500})
    got = split_by_sample(list(src.packets()))
    assert [got[k][1] for k in range(4)] == [0, 1, 2, 3]
    right, left = got[0][0], got[1][0]
    assert 0.5 * 2000 < len(right) < 1.5 * 2000
    on_r, on_l = right[right["p"] == 1], left[left["p"] == 1]
    # the bar's leading edge moves right in sample 0 and left in sample 1
    assert np.corrcoef(on_r["t"], on_r["x"])[0, 1] > 0.9
    assert np.corrcoef(on_l["t"], on_l["x"])[0, 1] < -0.9
    again = split_by_sample(list(SyntheticDvsSource("syn", {"samples": 4, "sample_ms": 100, "speed": 0}).packets()))
    assert sorted(again) == [0, 1, 2, 3]
    assert np.array_equal(again[2][0], got[2][0])  # seeded
    with pytest.raises(ConfigError, match="pattern"):
        SyntheticDvsSource("syn", {"pattern": "spiral"})


@pytest.mark.parametrize("pattern", ["bar", "random"])
def test_synthetic_source_delivers_its_nominal_rate(pattern):
    """``rate_hz`` is the rate of events on the sensor (a soak at 1 M events/s means it)."""
    from rram_lsm.nodes.sources.synthetic import synthetic_sample

    rng = np.random.default_rng(1)
    counts = [len(synthetic_sample(rng, pattern, k, (16, 16), 200_000, 500_000)) for k in range(8)]
    assert abs(np.mean(counts) / 100_000 - 1) < 0.01  # Poisson spread here is about 0.1%


def test_live_sources_name_missing_package_or_device():
    import importlib.util

    if importlib.util.find_spec("dv_processing") is None:
        with pytest.raises(LiveSourceError, match=r"dv-processing.*rram-lsm\[live\]"):
            DvsCameraSource("cam", {}).setup()
    if importlib.util.find_spec("pylsl") is None:
        with pytest.raises(LiveSourceError, match=r"pylsl.*rram-lsm\[live\]"):
            LslSource("lsl", {"name": "x"}).setup()
    with pytest.raises(ConfigError, match="name"):
        LslSource("live", {})
    ev = lsl_chunk_to_events(np.array([[0, 2], [1, 0]]), np.array([10.0, 10.5]), 10.0)
    assert ev["t"].tolist() == [0, 0, 500_000] and ev["x"].tolist() == [1, 1, 0]


def test_lsl_inlet_against_a_real_outlet():
    pylsl = pytest.importorskip("pylsl")
    name = f"rram-lsm-test-{np.random.default_rng().integers(1 << 30)}"
    outlet = pylsl.StreamOutlet(pylsl.StreamInfo(name, "spikes", 4, 100.0, "float32", name))
    src = LslSource("lsl", {"name": name, "resolve_timeout_s": 10.0, "idle_timeout_s": 2.0})
    src.setup()
    try:
        counts = np.array([[1, 0, 0, 2], [0, 0, 3, 0], [0, 1, 0, 0]], np.float32)
        base = pylsl.local_clock()
        for i, row in enumerate(counts):
            outlet.push_sample(row.tolist(), base + 0.01 * i)
        got = []
        for p in src.packets():
            got.append(p.body)
            if sum(map(len, got)) >= counts.sum():
                break
        ev = np.concatenate(got)
        assert src.geometry == (4,)
        assert sorted(zip(ev["t"].tolist(), ev["x"].tolist())) == [
            (0, 0), (0, 3), (0, 3), (10_000, 2), (10_000, 2), (10_000, 2), (20_000, 1)]
    finally:
        src.close()
    with pytest.raises(LiveSourceError, match="no LSL stream"):
        LslSource("lsl", {"name": name + "-absent", "resolve_timeout_s": 0.5}).setup()


def test_recorder_keeps_a_resent_sample_once_without_its_cut_attempt(tmp_path):
    """A sample cut upstream (start and part of its events, never ended) and then re-sent whole
    must be recorded once, with exactly the events of the whole sample."""
    from rram_lsm.nodes.recording import RecorderSink

    samples = dvs_samples(2, seed=5)
    packets = list(ReplaySource("dvs", {"max_events": 50, "geometry": [16, 16]}, samples=samples).packets())
    first = [p for p in packets if p.sample == 0]
    assert sum(not p.is_control for p in first) >= 2
    rec = RecorderSink("rec", {"path": str(tmp_path / "r.npz")})
    rec.setup()
    for p in first[:2] + packets:  # the cut attempt (start + first events), then everything
        rec.process(p)
    rec.close()
    got = split_by_sample(list(ReplaySource("again", {"format": "recording", "path": str(tmp_path / "r.npz")}).packets()))
    for k, (ev, label) in enumerate(samples):
        assert np.array_equal(got[k][0], ev) and got[k][1] == label
