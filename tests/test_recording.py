"""The npz recorder writes as it goes (one .npz per sample or per chunk of a continuous stream,
plus a JSON-lines index), and replay reads what it wrote: whole, or cut off by a SIGKILL of a
real recorder process; a truncated AEDAT4 file replays up to its last whole packet."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from rram_lsm.nodes.aedat4 import Aedat4Writer
from rram_lsm.nodes.recording import RecorderSink, chunk_folder, read_recording
from rram_lsm.nodes.sources.readers import DatasetError, aedat4_cut_inside_packet
from rram_lsm.nodes.sources.replay import ReplaySource
from test_replay_source import dvs_samples, split_by_sample

# The continuous stream both this test and the killed child generate: packet k covers
# [k * 50 ms, (k + 1) * 50 ms) with 100 events.
STREAM = r"""
import numpy as np
from rram_lsm.stream.packets import DVS_DTYPE, Origin, Packet

def live_packet(k):
    i = np.arange(100)
    ev = np.zeros(100, DVS_DTYPE)
    ev["t"], ev["x"], ev["y"], ev["p"] = k * 50_000 + i * 500, (k + i) % 16, i % 16, i % 2
    return Packet(kind="events", body=ev, sample=-1, origin=Origin("live", 9, -1), geometry=(16, 16),
                  t0=int(ev["t"][0]), t1=int(ev["t"][-1]))
"""
exec(STREAM)


def feed_samples(rec, samples):
    for p in ReplaySource("dvs", {"max_events": 100, "geometry": [16, 16]}, samples=samples).packets():
        rec.process(p)


def index_lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_recorder_writes_as_it_goes_and_replays_samples_and_a_continuous_stream(tmp_path):
    path = tmp_path / "rec.jsonl"
    rec = RecorderSink("rec", {"path": str(path), "chunk_s": 0.2})
    rec.setup()
    samples = dvs_samples(3, seed=2)
    feed_samples(rec, samples)
    for k in range(13):  # 0.65 s of stream: three whole 0.2 s chunks on disk, the rest buffered
        rec.process(live_packet(k))
    lines = index_lines(path)[1:]
    assert [line["sample"] for line in lines] == [0, 1, 2, -1, -1, -1]
    assert len(list(chunk_folder(path).glob("*.npz"))) == 6
    buffered = sum(len(p.body) for ps, _ in rec._continuous.values() for p in ps)
    assert buffered == 100  # memory holds less than one chunk of the stream
    live = np.concatenate([live_packet(k).body for k in range(13)])
    got, geometry = read_recording(path)  # before close: what is on disk
    assert geometry == [16, 16] and len(got) == 4
    assert np.array_equal(got[3][0], live[:1200]) and got[3][1] is None
    rec.close()
    with open(path, "ab") as fh:  # a line cut by a crash is ignored
        fh.write(b'{"file": "0000')
    replay = split_by_sample(list(ReplaySource("again", {"format": "recording", "path": str(path)}).packets()))
    for k, (ev, label) in enumerate(samples):
        assert np.array_equal(replay[k][0], ev) and replay[k][1] == label
    assert np.array_equal(replay[3][0], live) and replay[3][1] is None
    with pytest.raises(ValueError, match="holds no 'features'"):
        read_recording(path, "features")


def test_recorder_rewrites_a_recording_and_refuses_a_bad_chunk_s(tmp_path):
    path = tmp_path / "rec.jsonl"
    for n in (3, 1):
        rec = RecorderSink("rec", {"path": str(path)})
        rec.setup()
        feed_samples(rec, dvs_samples(n, seed=n))
        rec.close()
    assert len(read_recording(path)[0]) == 1 and len(list(chunk_folder(path).glob("*.npz"))) == 1
    from rram_lsm.stream.node import ConfigError

    with pytest.raises(ConfigError, match="chunk_s"):
        RecorderSink("rec", {"path": str(path), "chunk_s": 0.0}).setup()


KILLED = STREAM + r"""
import sys, time
from rram_lsm.nodes.recording import RecorderSink
from rram_lsm.nodes.sources.replay import ReplaySource
sys.path.insert(0, sys.argv[2])
from test_replay_source import dvs_samples
rec = RecorderSink("rec", {"path": sys.argv[1]})
rec.setup()
for p in ReplaySource("dvs", {"max_events": 100, "geometry": [16, 16]}, samples=dvs_samples(2, seed=7)).packets():
    rec.process(p)
k = 0
while True:  # 1 s of stream every 0.2 s of wall clock, until killed
    p = live_packet(k)
    rec.process(p)
    print(p.t1, flush=True)
    k += 1
    time.sleep(0.01)
"""


def test_a_recorder_killed_mid_stream_replays_all_but_the_last_second(tmp_path):
    path = tmp_path / "killed.jsonl"
    tests = str(__import__("pathlib").Path(__file__).parent)
    proc = subprocess.Popen([sys.executable, "-c", KILLED, str(path), tests], stdout=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        reported = 0
        while reported < 3_500_000 and time.monotonic() < deadline:  # 3.5 s of stream recorded
            reported = int(proc.stdout.readline() or 0) or reported
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == -signal.SIGKILL and reported >= 3_500_000
    replay = split_by_sample(list(ReplaySource("again", {"format": "recording", "path": str(path)}).packets()))
    for k, (ev, label) in enumerate(dvs_samples(2, seed=7)):
        assert np.array_equal(replay[k][0], ev) and replay[k][1] == label
    live = replay[2][0]
    n_packets = len(live) // 100
    assert len(live) % 100 == 0
    expected = np.concatenate([live_packet(k).body for k in range(n_packets)])
    assert np.array_equal(live, expected)  # an in-order prefix of what was sent
    assert int(live["t"][-1]) >= reported - 1_000_000 - 50_000  # lost: at most the last second


def test_a_truncated_aedat4_file_replays_up_to_its_last_whole_packet(tmp_path):
    path = tmp_path / "cut.aedat4"
    writer = Aedat4Writer(path, 16, 16)
    packets = [live_packet(k).body for k in range(5)]
    for ev in packets:
        writer.write(ev)
    writer.close()
    whole = path.read_bytes()
    path.write_bytes(whole[:-700])  # inside the last packet (1640 bytes each)
    assert aedat4_cut_inside_packet(path)
    src = ReplaySource("cut", {"format": "event_file", "path": str(path)})
    got = split_by_sample(list(src.packets()))[0][0]
    expected = np.concatenate(packets[:4])
    assert src.geometry == (16, 16)
    assert np.array_equal(got["t"], expected["t"]) and np.array_equal(got["x"], expected["x"])
    damaged = bytearray(whole)
    damaged[-1640 + 4:-1640 + 8] = (-5).to_bytes(4, "little", signed=True)  # the last packet's size field
    path.write_bytes(bytes(damaged))
    assert not aedat4_cut_inside_packet(path)
    with pytest.raises(DatasetError, match="damaged"):
        list(ReplaySource("bad", {"format": "event_file", "path": str(path)}).packets())


def test_a_single_file_recording_of_older_versions_still_reads(tmp_path):
    samples = dvs_samples(2, seed=3)
    meta = {"groups": {"events-dvs": {"kind": "events", "dtype": "dvs", "geometry": [16, 16]}}}
    rows = [(k, label, len(ev)) for k, (ev, label) in enumerate(samples)]
    np.savez(tmp_path / "old.npz", meta=np.frombuffer(json.dumps(meta).encode(), np.uint8),
             **{"events-dvs_body": np.concatenate([ev for ev, _ in samples]),
                "events-dvs_rows": np.asarray(rows, np.int64)})
    got, geometry = read_recording(tmp_path / "old.npz")
    assert geometry == [16, 16]
    for (ev, label), (g, gl) in zip(samples, got):
        assert np.array_equal(ev, g) and label == gl


def test_a_quiet_continuous_stream_is_written_after_chunk_s_of_wall_clock(tmp_path):
    from rram_lsm.stream.packets import control

    path = tmp_path / "quiet.jsonl"
    rec = RecorderSink("rec", {"path": str(path), "chunk_s": 0.05})
    rec.setup()
    rec.process(live_packet(0))  # 50 ms of stream time: not a whole chunk by stream time
    assert len(index_lines(path)) == 1
    time.sleep(0.06)
    rec.process(control("heartbeat"))  # any message checks the wall clock
    assert [line["sample"] for line in index_lines(path)[1:]] == [-1]
    assert np.array_equal(read_recording(path)[0][0][0], live_packet(0).body)
    rec.close()


def test_a_restarted_recorder_appends_and_a_sample_written_twice_reads_once(tmp_path):
    path = tmp_path / "rec.jsonl"
    samples = dvs_samples(3, seed=6)
    first = RecorderSink("rec", {"path": str(path)})
    first.setup()
    feed_samples(first, samples[:2])  # then it "dies": no close; a torn line and an unindexed chunk
    with open(path, "ab") as fh:
        fh.write(b'{"file": "000002.npz", "ori')
    (chunk_folder(path) / "000002.npz").write_bytes(b"PK\x03\x04 half a zip")
    again = RecorderSink("rec", {"path": str(path), "append": True})
    again.setup()
    packets = list(ReplaySource("dvs", {"max_events": 100, "geometry": [16, 16]}, samples=samples).packets())
    for p in [p for p in packets if p.sample >= 1]:  # sample 1 again (its ack was lost), then 2
        if p.origin:
            p.origin = Origin("dvs", first_epoch(first), p.origin.sample)
        again.process(p)
    again.close()
    got, _ = read_recording(path)
    assert len(got) == 3 and len(index_lines(path)) == 1 + 4
    for (ev, label), (g, gl) in zip(samples, got):
        assert np.array_equal(ev, g) and label == gl
    assert sorted(f.name for f in chunk_folder(path).glob("*.npz")) == [f"{k:06d}.npz" for k in range(4)]


def first_epoch(rec):
    return index_lines(rec.path)[1]["origin"][1]


GRAPH = """
[graph]
name = "record-restart"
restart = {{ backoff_s = 0.2 }}
telemetry_interval_s = 0.2
recovery = {{ enabled = true, resend_after_s = 0.5, max_unacked = 4 }}
[nodes.src]
kind = "replay"
params = {{ format = "recording", path = "{data}", speed = 2.0, max_events = 50 }}
[nodes.rec]
kind = "recorder"
params = {{ path = "{out}", append = true }}
[[edges]]
from = "src"
to = "rec"
"""


def test_a_recorder_node_killed_in_a_graph_is_restarted_and_keeps_every_sample_once(tmp_path, sockdir):
    """A real graph: a paced replay into a recorder node (append = true) that is SIGKILLed
    mid-stream; the supervisor restarts it, the source re-sends what was not acknowledged, and
    the recording holds every sample once."""
    import os

    from conftest import run_graph

    samples = dvs_samples(8, seed=8)
    data = tmp_path / "data.jsonl"
    rec = RecorderSink("rec", {"path": str(data)})
    rec.setup()
    feed_samples(rec, samples)
    rec.close()
    killed = []

    def kill_mid_stream(launcher, report):
        if report.get("node") == "rec" and report.get("gauges", {}).get("chunks_written", 0) >= 2 and not killed:
            killed.append(launcher.states["rec"].proc.pid)
            os.kill(killed[0], signal.SIGKILL)

    out = tmp_path / "out.jsonl"
    launcher = run_graph(GRAPH.format(data=data, out=out), tmp_path, sockdir, during=kill_mid_stream)
    assert launcher.exit_code == 0 and killed
    got, geometry = read_recording(out)
    assert geometry == [16, 16] and len(got) == len(samples)
    for (ev, label), (g, gl) in zip(samples, got):
        assert np.array_equal(ev, g) and label == gl
