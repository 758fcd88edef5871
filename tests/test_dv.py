"""iniVation inputs and files against the real dv-processing: a DV network stream (TCP and a
local socket) from a ``dv.io.NetworkWriter`` in another process, the camera path with no
camera attached, AEDAT4 files of dv-processing's own writer (LZ4, ZSTD), and the recorder's
AEDAT4 files read back by dv-processing."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from conftest import run_graph
from rram_lsm.nodes.sinks import SinkNode
from rram_lsm.stream.node import ConfigError
from rram_lsm.stream.packets import DVS_DTYPE, Origin, Packet, control

dv = pytest.importorskip("dv_processing")

WIDTH, HEIGHT = 40, 30
T_BASE = 1_700_000_000_000_000  # DV stamps events with absolute microseconds

# Streams the batches of an .npy file (t, x, y, p) through a NetworkWriter once a client is
# connected, then leaves: after every packet is out (exit) or on a SIGKILL from the test.
WRITER = r"""
import os, sys, time
import numpy as np
import dv_processing as dv
where, batches, pause = sys.argv[1], np.load(sys.argv[2]), float(sys.argv[3])
stream = dv.io.Stream.EventStream(0, "events", "DVXplorer_TEST01", (int(sys.argv[4]), int(sys.argv[5])))
if where.startswith("tcp:"):
    w = dv.io.NetworkWriter("127.0.0.1", int(where[4:]), stream)
else:
    w = dv.io.NetworkWriter(dv.Path(where), stream)
print("listening", flush=True)
while w.getClientCount() < int(sys.argv[6]):
    time.sleep(0.005)
print("connected", flush=True)
for b in np.unique(batches["b"]):
    store = dv.EventStore()
    for e in batches[batches["b"] == b]:
        store.push_back(int(e["t"]), int(e["x"]), int(e["y"]), bool(e["p"]))
    w.writeEvents(store)
    time.sleep(pause)
while w.getQueuedPacketCount():
    time.sleep(0.005)
time.sleep(0.3)
os._exit(0)
"""


class EndOfStreamLog(SinkNode):
    """Writes the meta of the end_of_stream it receives to ``path`` (JSON)."""

    def process(self, packet: Packet):
        if packet.is_control and packet.control == "end_of_stream":
            Path(self.params["path"]).write_text(json.dumps(packet.meta))
        return super().process(packet)


def known_batches(tmp_path: Path, seed: int, n_batches: int, per_batch: int) -> Path:
    """Seeded event batches (batch id, absolute t strictly increasing, x, y, p) as an .npy file."""
    rng = np.random.default_rng(seed)
    n = n_batches * per_batch
    ev = np.zeros(n, [("b", "<i4"), ("t", "<i8"), ("x", "<u2"), ("y", "<u2"), ("p", "u1")])
    ev["b"] = np.repeat(np.arange(n_batches), per_batch)
    ev["t"] = T_BASE + np.cumsum(rng.integers(1, 50, n))
    ev["x"], ev["y"], ev["p"] = rng.integers(0, WIDTH, n), rng.integers(0, HEIGHT, n), rng.integers(0, 2, n)
    path = tmp_path / f"batches-{seed}.npy"
    np.save(path, ev)
    return path


def start_writer(where: str, batches: Path, pause_s: float, clients: int = 1) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", WRITER, where, str(batches), str(pause_s), str(WIDTH),
                             str(HEIGHT), str(clients)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "listening"
    return proc


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def read_aedat4_with_dv(path: Path) -> tuple[np.ndarray, tuple[int, int]]:
    rec = dv.io.MonoCameraRecording(str(path))
    chunks = []
    while (batch := rec.getNextEventBatch()) is not None:
        chunks.append(batch.numpy().copy())
    return np.concatenate(chunks), tuple(rec.getEventResolution())


def same_events(got: np.ndarray, expected: np.ndarray) -> bool:
    names = ("timestamp", "x", "y", "polarity") if "timestamp" in got.dtype.names else ("t", "x", "y", "p")
    return len(got) == len(expected) and all(
        np.array_equal(got[g].astype(np.int64), expected[e].astype(np.int64))
        for g, e in zip(names, ("t", "x", "y", "p")))


GRAPH = """
include = ["{shipped}"]
[nodes.eos]
kind = "test_dv:EndOfStreamLog"
params = {{ path = "{eos}" }}
[[edges]]
from = "cam"
to = "eos"
"""


def test_tcp_stream_through_a_graph_arrives_whole_and_is_recorded_as_aedat4(tmp_path, sockdir, monkeypatch):
    """NetworkWriter -> launch/graphs/dv_record.toml (dv_network -> recorder, aedat4): every event
    once, in order, with its DV timestamp; the writer leaving ends the stream with reason
    'disconnected'."""
    # the child imports this file by its own name (a package may install a top-level 'tests')
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(Path(__file__).parent), os.environ["PYTHONPATH"]]))
    batches = known_batches(tmp_path, seed=1, n_batches=12, per_batch=150)
    written = np.load(batches)
    port = free_port()
    writer = start_writer(f"tcp:{port}", batches, pause_s=0.01)
    try:
        out, eos = tmp_path / "cam.aedat4", tmp_path / "eos.json"
        shipped = Path(__file__).parents[1] / "launch" / "graphs" / "dv_record.toml"
        launcher = run_graph(GRAPH.format(shipped=shipped, eos=eos), tmp_path, sockdir, timeout_s=60,
                             overrides={"address": f"tcp://127.0.0.1:{port}", "out": str(out)})
    finally:
        writer.kill()
        writer.wait()
    assert launcher.exit_code == 0
    got, resolution = read_aedat4_with_dv(out)
    assert resolution == (WIDTH, HEIGHT)  # the stream's own geometry, carried to the file
    assert same_events(got, written)
    assert json.loads(eos.read_text()) == {"reason": "disconnected"}
    assert launcher.latest["cam"]["gauges"]["disconnects"] == 1
    assert launcher.latest["cam"]["events_out"] == len(written)


def test_unix_socket_writer_killed_mid_stream_leaves_an_in_order_prefix(tmp_path):
    """Two readers of one local socket, one mapping the sensor onto a 20x15 grid."""
    from rram_lsm.nodes.sources.dv import DvNetworkSource

    batches = known_batches(tmp_path, seed=2, n_batches=400, per_batch=20)
    written = np.load(batches)
    where = str(Path("/tmp") / f"rl-dv-{os.getpid()}.sock")  # socket paths are short
    writer = start_writer(where, batches, pause_s=0.005, clients=2)
    src = DvNetworkSource("cam", {"address": f"unix://{where}", "connect_timeout_s": 10})
    small = DvNetworkSource("small", {"address": where, "resize": [20, 15]})
    try:
        src.setup()
        small.setup()
        assert (src.geometry, small.geometry) == ((WIDTH, HEIGHT), (20, 15))
        assert writer.stdout.readline().strip() == "connected"
        got, killed, got_small = [], False, []
        reader = threading.Thread(target=lambda: got_small.extend(small.packets()))
        reader.start()  # a reader drains its socket as it goes, or data dies with the writer
        for p in src.packets():
            got.append(p)
            if not killed and sum(q.n for q in got) > 500:
                os.kill(writer.pid, signal.SIGKILL)  # a writer that disappears mid-stream
                killed = True
        reader.join(10)
    finally:
        writer.kill()
        writer.wait()
        Path(where).unlink(missing_ok=True)
    ev = np.concatenate([p.body for p in got])
    ev["t"] += got[0].meta["dv_t0_us"]
    assert 500 < len(ev) < len(written)  # DV streams carry no sequence numbers: no loss count
    assert same_events(ev, written[:len(ev)])
    assert all(p.origin.sample == -1 and p.geometry == (WIDTH, HEIGHT) for p in got)
    assert src.end_meta == {"reason": "disconnected"} and src.gauges["disconnects"] == 1
    ev = np.concatenate([p.body for p in got_small])
    ev["t"] += got_small[0].meta["dv_t0_us"]
    expected = written[:len(ev)].copy()
    expected["x"], expected["y"] = expected["x"] // 2, expected["y"] // 2
    assert len(ev) > 500 and same_events(ev, expected)
    assert small.end_meta == {"reason": "disconnected"}
    with pytest.raises(ConfigError, match="resize"):
        DvNetworkSource("cam", {"address": where, "resize": [20]})


def test_network_source_errors_name_what_is_wrong():
    from rram_lsm.nodes.sources.dv import DvNetworkSource
    from rram_lsm.nodes.sources.live import LiveSourceError

    with pytest.raises(ConfigError, match="address"):
        DvNetworkSource("cam", {})
    with pytest.raises(ConfigError, match="tcp://HOST:PORT"):
        DvNetworkSource("cam", {"address": "tcp://nohost"})
    port = free_port()
    with pytest.raises(LiveSourceError, match=rf"no DV network stream at tcp://127.0.0.1:{port}.*refused"):
        DvNetworkSource("cam", {"address": f"tcp://127.0.0.1:{port}", "connect_timeout_s": 0.2}).setup()


def test_camera_path_says_no_camera_is_attached():
    from rram_lsm.nodes.sources.dv import DvsCameraSource, cameras
    from rram_lsm.nodes.sources.live import LiveSourceError

    if cameras(dv):
        pytest.skip("a DVS camera is attached to this machine")
    with pytest.raises(LiveSourceError, match=r"no DVS camera is attached .*dv-processing 2?"):
        DvsCameraSource("cam", {}).setup()
    with pytest.raises(LiveSourceError, match="no DVS camera is attached"):
        DvsCameraSource("cam", {"camera": "DVXplorer_DXA00080"}).setup()


@pytest.mark.parametrize("compression", ["LZ4", "ZSTD"])
def test_reads_aedat4_written_by_dv_processing(tmp_path, compression):
    from rram_lsm.nodes.sources.readers import aedat4_geometry, read_event_file

    written = np.load(known_batches(tmp_path, seed=3, n_batches=5, per_batch=300))
    path = tmp_path / f"{compression}.aedat4"
    cfg = dv.io.MonoCameraWriter.EventOnlyConfig("DVXplorer_TEST01", (WIDTH, HEIGHT),
                                                 getattr(dv.CompressionType, compression))
    writer = dv.io.MonoCameraWriter(str(path), cfg)
    for b in range(5):
        store = dv.EventStore()
        for e in written[written["b"] == b]:
            store.push_back(int(e["t"]), int(e["x"]), int(e["y"]), bool(e["p"]))
        writer.writeEvents(store)
    del writer  # closing writes the file table
    assert read_aedat4_with_dv(path)[0].size == len(written)  # the file is what dv-processing wrote
    got = read_event_file(path)
    assert aedat4_geometry(path) == (WIDTH, HEIGHT)
    expected = written.copy()
    expected["t"] -= expected["t"][0]  # the reader starts time at the first event
    assert same_events(got, expected)


def dvs_packet(sample: int, t: np.ndarray, rng, geometry=(WIDTH, HEIGHT), stream="cam") -> Packet:
    ev = np.zeros(len(t), DVS_DTYPE)
    ev["t"], ev["x"], ev["y"], ev["p"] = t, rng.integers(0, WIDTH, len(t)), rng.integers(0, HEIGHT, len(t)), 1
    return Packet(kind="events", body=ev, sample=sample, origin=Origin(stream, 7, sample),
                  geometry=geometry, t0=int(t[0]), t1=int(t[-1]))


def test_recorder_aedat4_is_read_back_by_dv_processing_packet_by_packet(tmp_path):
    """Whole samples on one time line, then a continuous stream; each packet is on disk once
    written (nothing waits for close), and only DVS events are accepted."""
    from rram_lsm.nodes.recording import RecorderSink

    rng = np.random.default_rng(4)
    path = tmp_path / "rec.aedat4"
    rec = RecorderSink("rec", {"path": str(path), "format": "aedat4"})
    rec.setup()
    expected = []
    for s in range(2):  # samples each start at t=0: the recorder lays them end to end
        origin = Origin("cam", 7, s)
        packets = [dvs_packet(s, np.arange(k * 100, k * 100 + 50), rng) for k in range(3)]
        rec.process(control("start", sample=s, origin=origin))
        for p in packets:
            rec.process(p)
        rec.process(control("end_of_sample", sample=s, origin=origin, meta={"n_events": 150}))
        expected += [p.body for p in packets]
    live = dvs_packet(-1, np.arange(5, 500, 7), rng, stream="live")
    live.meta["dv_t0_us"] = T_BASE
    rec.process(live)
    got, resolution = read_aedat4_with_dv(path)  # before close: written as it came
    assert resolution == (WIDTH, HEIGHT)
    first, second, cont = np.concatenate(expected[:3]), np.concatenate(expected[3:]), live.body
    assert len(got) == len(first) + len(second) + len(cont)
    for f, g in (("x", "x"), ("y", "y"), ("p", "polarity")):
        assert np.array_equal(got[g], np.concatenate([first[f], second[f], cont[f]]).astype(got[g].dtype))
    t = got["timestamp"]
    assert np.array_equal(t[:150], first["t"]) and (np.diff(t) >= 0).all()
    assert np.array_equal(t[150:300] - t[150], second["t"]) and t[150] >= first["t"][-1]
    assert np.array_equal(t[300:], cont["t"] + T_BASE)  # a DV source's own timestamps
    with pytest.raises(ValueError, match="DVS events only"):
        rec.process(Packet(kind="features", body=np.zeros((1, 4), np.float32), sample=-1))
    rec.close()
    assert np.array_equal(read_aedat4_with_dv(path)[0], got)
    from rram_lsm.nodes.sources.readers import read_event_file

    again = read_event_file(path)  # and the project's own reader (the aedat package)
    assert np.array_equal(again["t"], t - t[0]) and np.array_equal(again["x"], got["x"])


KILLED_RECORDER = r"""
import os, signal, sys
import numpy as np
from rram_lsm.nodes.recording import RecorderSink
from rram_lsm.stream.packets import DVS_DTYPE, Origin, Packet
rec = RecorderSink("rec", {"path": sys.argv[1], "format": "aedat4"})
rec.setup()
for k in range(int(sys.argv[2])):
    ev = np.zeros(100, DVS_DTYPE)
    ev["t"], ev["x"], ev["y"] = np.arange(k * 100, k * 100 + 100), k, np.arange(100) % 30
    rec.process(Packet(kind="events", body=ev, origin=Origin("cam", 1, -1), geometry=(40, 30)))
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_recorder_aedat4_killed_keeps_every_packet_it_wrote(tmp_path):
    path = tmp_path / "killed.aedat4"
    proc = subprocess.run([sys.executable, "-c", KILLED_RECORDER, str(path), "25"], timeout=60)
    assert proc.returncode == -signal.SIGKILL
    got, resolution = read_aedat4_with_dv(path)
    assert resolution == (WIDTH, HEIGHT) and len(got) == 2500
    assert np.array_equal(got["timestamp"], np.arange(2500)) and np.array_equal(got["x"], np.arange(2500) // 100)


def test_live_command_takes_a_dv_network_address(capsys):
    from rram_lsm.launch.cli import build_parser, main
    from rram_lsm.launch.commands.live import live_args

    args = build_parser().parse_args(["live", "--visual", "dv-network", "--dv-address", "tcp://10.0.0.2:7777"])
    graph_args = live_args(args, "visual", replay={})
    assert graph_args["visual_kind"] == "dv_network"
    assert graph_args["visual_source"] == {"address": "tcp://10.0.0.2:7777", "resize": [34, 34]}
    assert main(["live", "--visual", "dv-network", "--audio", "replay"]) == 2  # no address: one plain line
    assert "--dv-address" in capsys.readouterr().err
