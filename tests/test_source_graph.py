"""Sources as real nodes in a two-process graph deliver every event of every sample, with labels."""
from __future__ import annotations

import numpy as np

from conftest import run_graph
from rram_lsm.nodes.recording import read_recording
from rram_lsm.nodes.sources.readers import iter_nmnist, nmnist_preprocess
from test_readers import nmnist_bytes

GRAPH = """
[graph]
name = "sources"
[nodes.src]
kind = "replay"
params = {{ format = "nmnist", path = "{data}", split = "test", max_events = 64 }}
[nodes.rec]
kind = "recorder"
params = {{ path = "{out}" }}
[[edges]]
from = "src"
to = "rec"
"""


def write_nmnist(root, rng):
    for i, digit in enumerate([3, 1, 4, 1, 5]):
        folder = root / "Test" / str(digit)
        folder.mkdir(parents=True, exist_ok=True)
        n = 500
        t = np.sort(rng.integers(0, 300_000, n))
        (folder / f"{i:05d}.bin").write_bytes(nmnist_bytes(
            rng.integers(0, 34, n), rng.integers(0, 34, n), rng.integers(0, 2, n), t, overflow_before=(250,)))


def test_nmnist_replay_delivers_every_event_with_labels(tmp_path, sockdir):
    write_nmnist(tmp_path / "nmnist", np.random.default_rng(5))
    out = tmp_path / "rec.npz"
    launcher = run_graph(GRAPH.format(data=tmp_path / "nmnist", out=out), tmp_path, sockdir)
    assert launcher.exit_code == 0
    got, geometry = read_recording(out, "events")
    expected = [(nmnist_preprocess(ev, 16, 1), y) for ev, y in iter_nmnist(tmp_path / "nmnist", "test")]
    assert geometry == [16, 16] and len(got) == len(expected) == 5
    for (ev, label), (ex, exl) in zip(got, expected):
        assert label == exl
        assert np.array_equal(ev, ex)
    # framed into many messages (max_events = 64), all of them delivered
    assert launcher.latest["rec"]["msgs_in"] > 5 * 3
