"""Any tonic dataset as a timed stream (replay format "tonic"): small fixtures in the on-disk
layouts of DVS Gesture, POKER-DVS and SSC, read by tonic's own classes."""
from __future__ import annotations

import tarfile
import zipfile
from collections import Counter
from pathlib import Path

import h5py
import numpy as np
import pytest

from conftest import run_graph
from rram_lsm.nodes.sources.readers import DatasetError
from rram_lsm.nodes.sources.replay import ReplaySource
from rram_lsm.stream.node import ConfigError


def archive(folder: Path, name: str) -> None:
    """The archive tonic would have extracted ``folder`` from (tonic checks it is there)."""
    with tarfile.open(folder.parent / name, "w:gz") as tar:
        tar.add(folder, arcname=folder.name)


def dvs_gesture(root: Path, rng) -> list[tuple[int, np.ndarray]]:
    """DVSGesture/ibmGestureTrain/userNN_<lighting>/<class>.npy, rows (x, y, p, t in ms); tonic
    wants at least 100 .npy files: 10 users x 10 classes."""
    folder = root / "DVSGesture" / "ibmGestureTrain"
    written = []
    for user in range(1, 11):
        d = folder / f"user{user:02d}_{'fluorescent' if user % 2 else 'led'}"
        d.mkdir(parents=True)
        for label in range(10):
            n = int(rng.integers(5, 30))
            rows = np.stack([rng.integers(0, 128, n), rng.integers(0, 128, n), rng.integers(0, 2, n),
                             np.sort(rng.integers(0, 200, n))], axis=1)
            np.save(d / f"{label}.npy", rows)
            written.append((label, np.stack([rows[:, 3] * 1000, rows[:, 0], rows[:, 1], rows[:, 2]], 1)))
    archive(folder, "ibmGestureTrain.tar.gz")
    return written


def poker_dvs(root: Path, rng) -> list[tuple[int, np.ndarray]]:
    """POKERDVS/pips_train/<cl|he|di|sp>/*.npy, rows (t µs, x, y, p); tonic wants >= 20 files."""
    folder = root / "POKERDVS" / "pips_train"
    written = []
    for label, suit in enumerate(["cl", "he", "di", "sp"]):
        (folder / suit).mkdir(parents=True)
        for k in range(5):
            n = int(rng.integers(20, 60))
            rows = np.stack([np.sort(rng.integers(0, 20_000, n)), rng.integers(0, 35, n),
                             rng.integers(0, 35, n), rng.integers(0, 2, n)], axis=1)
            np.save(folder / suit / f"{suit}{k}.npy", rows)
            written.append((label, rows))
    archive(folder, "pips_train.tar.gz")
    return written


def ssc(root: Path, rng) -> list[tuple[int, np.ndarray]]:
    """SSC/ssc_train.h5 (spikes/times in s, spikes/units, labels, extra/keys, extra/speaker)
    beside the ssc_train.h5.zip it comes in."""
    folder = root / "SSC"
    folder.mkdir(parents=True)
    written, times, units, labels = [], [], [], []
    for i in range(6):
        n = int(rng.integers(10, 50))
        t = np.sort(rng.uniform(0, 0.9, n)).astype(np.float32)
        u = rng.integers(0, 700, n).astype(np.uint16)
        times.append(t), units.append(u), labels.append(i % 35)
        written.append((i % 35, np.stack([(t.astype(np.float64) * 1e6).astype(np.int64), u, np.ones(n, int)], 1)))
    with h5py.File(folder / "ssc_train.h5", "w") as f:
        f.create_dataset("spikes/times", data=np.array(times, dtype=object), dtype=h5py.vlen_dtype(np.float32))
        f.create_dataset("spikes/units", data=np.array(units, dtype=object), dtype=h5py.vlen_dtype(np.uint16))
        f.create_dataset("labels", data=np.array(labels, dtype=np.uint8))
        f.create_dataset("extra/keys", data=np.array([f"word{i}".encode() for i in range(35)]))
        f.create_dataset("extra/speaker", data=np.arange(6, dtype=np.uint16))
    with zipfile.ZipFile(folder / "ssc_train.h5.zip", "w") as z:
        z.write(folder / "ssc_train.h5", "ssc_train.h5")
    return written


def replayed(params: dict) -> tuple[list[tuple[int, np.ndarray]], tuple]:
    """(label, events as rows of the wire fields) of every sample the replay sends, and its geometry."""
    src = ReplaySource("src", {"format": "tonic", "speed": None, "max_events": 16, **params})
    samples, current = [], {}
    for p in src.packets():
        if p.kind == "events":
            assert p.geometry == src.geometry
            current.setdefault(p.sample, []).append(p.body)
        elif p.control == "end_of_sample":
            ev = np.concatenate(current.pop(p.sample))
            samples.append((p.label, np.stack([ev[f].astype(np.int64) for f in ev.dtype.names], 1)))
    return samples, src.geometry


def same_samples(got, written) -> bool:
    key = lambda s: (s[0], s[1].tobytes())  # noqa: E731
    return Counter(map(key, got)) == Counter((label, rows.astype(np.int64).tobytes()) for label, rows in written)


@pytest.mark.parametrize("name, make, geometry", [("DVSGesture", dvs_gesture, (128, 128)),
                                                  ("POKERDVS", poker_dvs, (35, 35)),
                                                  ("SSC", ssc, (700,))])
def test_tonic_classes_read_their_own_layouts(tmp_path, name, make, geometry):
    written = make(tmp_path, np.random.default_rng(len(name)))
    got, geom = replayed({"dataset": name, "path": str(tmp_path)})
    assert geom == geometry  # the class's own sensor size
    assert len(got) == len(written) and same_samples(got, written)


GRAPH = """
[nodes.src]
kind = "replay"
params = {{ format = "tonic", dataset = "POKERDVS", path = "{root}", speed = 1.0, gap_us = 10000 }}
[nodes.log]
kind = "eventlog:EventLog"
params = {{ path = "{out}" }}
[[edges]]
from = "src"
to = "log"
"""


def test_poker_dvs_paced_through_a_graph(tmp_path, sockdir):
    """Real time: 20 samples of up to 20 ms with 10 ms gaps arrive over their own duration."""
    written = poker_dvs(tmp_path / "data", np.random.default_rng(7))
    out = tmp_path / "events.npy"
    launcher = run_graph(GRAPH.format(root=tmp_path / "data", out=out), tmp_path, sockdir, timeout_s=90)
    assert launcher.exit_code == 0
    ev, rows = np.load(out), np.load(str(out) + ".samples.npy")
    assert len(ev) == sum(len(r) for _, r in written) == launcher.latest["src"]["events_out"]
    labels = {int(s): int(lab) for s, lab, *_ in rows}
    assert sorted(Counter(labels.values()).items()) == [(0, 5), (1, 5), (2, 5), (3, 5)]
    # Each sample is one message, due when its first event is (origin_ns) and sent when its last
    # one is: nothing arrives before it is due, and the last sample is due after every earlier
    # sample's span (<= 20 ms each) and the 19 gaps.
    received, due = rows[:, 3], rows[:, 4]
    assert np.all(received >= due)
    due_s = sum(int(r[:, 0].max() - r[:, 0].min()) for _, r in written) / 1e6 + 19 * 0.01
    assert (due[-1] - due[0]) / 1e9 == pytest.approx(due_s, abs=0.021)


def test_missing_data_is_refused_without_downloading(tmp_path):
    with pytest.raises(DatasetError, match=r"DVSGesture found no dataset.*download = true"):
        ReplaySource("src", {"format": "tonic", "dataset": "DVSGesture", "path": str(tmp_path)})
    with pytest.raises(DatasetError, match="POKERDVS found no dataset"):
        ReplaySource("src", {"format": "tonic", "dataset": "POKERDVS", "path": str(tmp_path)})
    poker_dvs(tmp_path, np.random.default_rng(0))
    next((tmp_path / "POKERDVS" / "pips_train" / "sp").glob("*.npy")).unlink()  # 19 files: tonic's check fails
    with pytest.raises(DatasetError, match="POKERDVS found no dataset"):
        ReplaySource("src", {"format": "tonic", "dataset": "POKERDVS", "path": str(tmp_path)})
    with pytest.raises(ConfigError, match=r"tonic.datasets class \(.*DVSGesture.*\), got 'DvsGesture'"):
        ReplaySource("src", {"format": "tonic", "dataset": "DvsGesture", "path": str(tmp_path)})
    with pytest.raises(ConfigError, match="train and test splits only"):
        ReplaySource("src", {"format": "tonic", "dataset": "POKERDVS", "path": str(tmp_path), "split": "valid"})
