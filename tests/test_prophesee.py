"""Prophesee EVT 2.0 / EVT 3.0 (.raw) and DAT files replayed (nodes/sources/prophesee.py, expelliarmus)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import run_graph
from rram_lsm.nodes.sources.prophesee import header_geometry, read_header, read_prophesee
from rram_lsm.nodes.sources.readers import DatasetError
from rram_lsm.nodes.sources.replay import ReplaySource
from rram_lsm.stream.node import ConfigError

Wizard = pytest.importorskip("expelliarmus").Wizard


def known_events(seed: int, n: int, width: int, height: int, max_gap_us: int) -> np.ndarray:
    """Seeded events in expelliarmus's dtype, time-sorted, gaps up to ``max_gap_us``."""
    rng = np.random.default_rng(seed)
    ev = np.zeros(n, [("t", "<i8"), ("x", "<i2"), ("y", "<i2"), ("p", "u1")])
    ev["t"] = 1_000 + np.cumsum(rng.integers(0, max_gap_us, n))
    ev["x"], ev["y"] = rng.integers(0, width, n), rng.integers(0, height, n)
    ev["p"] = rng.integers(0, 2, n)
    return ev


def replayed(params: dict) -> tuple[np.ndarray, tuple]:
    """Every event a replay node sends for ``params``, and the geometry it declares."""
    src = ReplaySource("src", {"speed": None, "max_events": 500, **params})
    packets = [p for p in src.packets() if p.kind == "events"]
    assert {p.geometry for p in packets} == {src.geometry}
    return np.concatenate([p.body for p in packets]), src.geometry


def same(got: np.ndarray, written: np.ndarray) -> bool:
    return len(got) == len(written) and all(np.array_equal(got[k].astype(np.int64), written[k].astype(np.int64)
                                                           - (written["t"][0] if k == "t" else 0)) for k in "txyp")


# expelliarmus's EVT3 writer mis-stamps events after a gap of more than 4095 µs (its 12-bit
# TIME_LOW wraps; open-neuromorphic/expelliarmus#20), so its EVT3 fixture keeps gaps shorter.
@pytest.mark.parametrize("encoding, name, max_gap", [("evt2", "cam.raw", 20_000), ("evt3", "cam.raw", 4_000),
                                                     ("dat", "cam.dat", 20_000)])
def test_replays_files_written_by_expelliarmus(tmp_path, encoding, name, max_gap):
    written = known_events(seed=1, n=3_000, width=640, height=480, max_gap_us=max_gap)
    path = tmp_path / name
    Wizard(encoding=encoding).save(path, written)
    assert len(Wizard(encoding=encoding).read(path)) == len(written)
    with pytest.raises(ConfigError, match=r"no geometry.*'geometry' parameter"):  # expelliarmus writes none
        ReplaySource("src", {"format": "prophesee", "path": str(path)})
    got, geometry = replayed({"format": "prophesee", "path": str(path), "geometry": [640, 480]})
    assert geometry == (640, 480) and same(got, written)


def evt2_words(ev: np.ndarray) -> np.ndarray:
    """EVT 2.0 words from Prophesee's published layout: type in bits 31..28 (CD_OFF 0x0, CD_ON 0x1,
    EVT_TIME_HIGH 0x8); a CD word holds t's low 6 bits in 27..22, x in 21..11, y in 10..0; a
    TIME_HIGH word holds t's upper 28 bits in 27..0, sent whenever they change."""
    words = []
    high = None
    for t, x, y, p in zip(ev["t"].tolist(), ev["x"].tolist(), ev["y"].tolist(), ev["p"].tolist()):
        if t >> 6 != high:
            high = t >> 6
            words.append((0x8 << 28) | (high & 0x0FFF_FFFF))
        words.append((p << 28) | ((t & 0x3F) << 22) | (x << 11) | y)
    return np.asarray(words, dtype="<u4")


def write_evt2(path: Path, ev: np.ndarray, header: str) -> Path:
    path.write_bytes(header.encode() + evt2_words(ev).tobytes())
    return path


HEADER = "% camera_integrator_name Prophesee\n% evt 2.0\n% format EVT2;height=240;width=320\n" \
         "% geometry 320x240\n% end\n"

GRAPH = """
[nodes.src]
kind = "replay"
params = {{ format = "event_file", path = "{path}", speed = 0, max_events = 400 }}
[nodes.log]
kind = "eventlog:EventLog"
params = {{ path = "{out}" }}
[[edges]]
from = "src"
to = "log"
"""


def test_self_encoded_evt2_replays_through_a_graph_with_its_header_geometry(tmp_path, sockdir):
    """Words encoded here from the format's layout, not by expelliarmus: a real graph (replay
    -> sink processes) delivers every event with its time, address and polarity."""
    written = known_events(seed=2, n=2_000, width=320, height=240, max_gap_us=300)
    written["t"][1000:] += 70_000_000  # a 70 s jump: far past the 6 low bits, carried by TIME_HIGH
    path = write_evt2(tmp_path / "rec.raw", written, HEADER)
    out = tmp_path / "events.npy"
    launcher = run_graph(GRAPH.format(path=path, out=out), tmp_path, sockdir, timeout_s=60)
    assert launcher.exit_code == 0
    got = np.load(out)
    assert same(got, written)
    assert launcher.latest["src"]["events_out"] == len(written)
    assert replayed({"format": "event_file", "path": str(path)})[1] == (320, 240)  # from '% geometry'


def test_header_geometry_forms():
    assert header_geometry(["evt 3.0", "format EVT3;height=720;width=1280"]) == (1280, 720)
    assert header_geometry(["Version 2", "Height 480", "Width 640"]) == (640, 480)  # DAT
    assert header_geometry(["geometry 346x260", "format EVT3;height=1;width=1"]) == (346, 260)
    assert header_geometry(["Date 2024-01-01 10:00:00"]) is None


def test_damaged_files_are_refused_plainly(tmp_path):
    ev = known_events(seed=3, n=50, width=64, height=64, max_gap_us=100)
    good = write_evt2(tmp_path / "good.raw", ev, HEADER)
    cut = tmp_path / "cut.raw"
    cut.write_bytes(HEADER.encode()[:30])  # ends inside the header: expelliarmus would spin for ever
    with pytest.raises(DatasetError, match="ends inside its header"):
        read_prophesee(cut)
    noenc = write_evt2(tmp_path / "noenc.raw", ev, "% geometry 64x64\n")
    with pytest.raises(DatasetError, match="names no EVT 2.0 / 3.0 encoding"):
        read_prophesee(noenc)
    assert same(read_prophesee(noenc, "evt2"), ev)
    with pytest.raises(DatasetError, match="not found"):
        read_prophesee(tmp_path / "none.raw")
    with pytest.raises(ConfigError, match="'encoding' must be one of"):  # at configuration
        ReplaySource("src", {"format": "prophesee", "path": str(good), "encoding": "evt4"})
    empty = tmp_path / "empty.dat"
    empty.write_bytes(b"% Version 2\n")
    assert len(read_prophesee(empty)) == 0  # a header and no events: an empty recording
    assert read_header(good)[1] == len(HEADER)
