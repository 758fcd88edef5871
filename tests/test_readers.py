"""Dataset readers, each fed small files written in the dataset's own on-disk format."""
import h5py
import numpy as np
import pytest
from scipy.io import savemat

from rram_lsm.nodes.sources.readers import (
    DatasetError, counts_to_events, event_file_label, iter_nmnist, nmnist_preprocess,
    read_event_file, read_nmnist_file, read_ntidigits, read_shd, read_spike_array,
)
from rram_lsm.stream.packets import COCHLEA_DTYPE, DVS_DTYPE, NEURAL_DTYPE


def nmnist_bytes(x, y, p, t, overflow_before=()):
    """N-MNIST 5-byte records: x, y, p<<7 | t[22:16], t[15:8], t[7:0]; y=240 marks an overflow."""
    out = bytearray()
    for i in range(len(x)):
        if i in overflow_before:
            out += bytes([0, 240, 0, 0, 0])
        out += bytes([x[i], y[i], (p[i] << 7) | ((t[i] >> 16) & 0x7F), (t[i] >> 8) & 0xFF, t[i] & 0xFF])
    return bytes(out)


def test_nmnist_records_with_overflow(tmp_path):
    x, y, p = [0, 33, 5, 17], [1, 2, 33, 16], [1, 0, 1, 0]
    t = [10, 300_000, 5, 4_000_000]
    f = tmp_path / "00002.bin"
    f.write_bytes(nmnist_bytes(x, y, p, t, overflow_before={2}))
    ev = read_nmnist_file(f)
    assert ev.dtype == DVS_DTYPE
    assert ev["x"].tolist() == x and ev["y"].tolist() == y and ev["p"].tolist() == p
    # tonic's convention: every overflow record adds 2**13 µs to all later timestamps
    assert ev["t"].tolist() == [10, 300_000, 5 + 2**13, 4_000_000 + 2**13]


def test_nmnist_folder_layout_and_preprocessing(tmp_path):
    for split, digit, name in [("Train", 3, "a.bin"), ("Train", 0, "b.bin"), ("Test", 7, "c.bin")]:
        (tmp_path / split / str(digit)).mkdir(parents=True, exist_ok=True)
        (tmp_path / split / str(digit) / name).write_bytes(nmnist_bytes([9, 20], [9, 30], [1, 0], [1, 2]))
    train = list(iter_nmnist(tmp_path, "train"))
    assert [label for _, label in train] == [0, 3]
    assert [label for _, label in iter_nmnist(tmp_path, "test")] == [7]
    ev = nmnist_preprocess(train[0][0], crop=16, polarity=1)
    assert ev["x"].tolist() == [0] and ev["y"].tolist() == [0]  # (9,9) -> crop origin; (20,30) dropped


def test_nmnist_missing_and_truncated(tmp_path):
    with pytest.raises(DatasetError, match=r"Train.*N-MNIST|N-MNIST.*Train"):
        list(iter_nmnist(tmp_path / "nowhere", "train"))
    f = tmp_path / "bad.bin"
    f.write_bytes(nmnist_bytes([1], [1], [1], [1]) + b"\x01\x02")
    with pytest.raises(DatasetError, match="truncated"):
        read_nmnist_file(f)


def test_ntidigits_layout(tmp_path):
    path = tmp_path / "n-tidigits.hdf5"
    samples = {"man-ae-1": (np.array([0.001, 0.5]), np.array([3, 63])),
               "woman-bb-z": (np.array([0.25]), np.array([10])),
               "man-cc-12": (np.array([0.1]), np.array([1]))}
    with h5py.File(path, "w") as f:
        f["train_labels"] = np.array([k.encode() for k in samples])
        for k, (t, a) in samples.items():
            f[f"train_timestamps/{k}"] = t.astype(np.float32)
            f[f"train_addresses/{k}"] = a.astype(np.uint8)
    out = read_ntidigits(path, "train")
    assert [label for _, label in out] == [1, 10]  # multi-digit "12" skipped
    ev = out[0][0]
    assert ev.dtype == COCHLEA_DTYPE
    assert ev["x"].tolist() == [3, 63] and ev["p"].tolist() == [1, 1]
    expected_t = (np.float32([0.001, 0.5]).astype(np.float64) * 1e6).astype(np.int64)
    assert ev["t"].tolist() == expected_t.tolist()


def test_shd_layout(tmp_path):
    path = tmp_path / "shd_train.h5"
    vf, vu = h5py.vlen_dtype(np.float32), h5py.vlen_dtype(np.uint16)
    with h5py.File(path, "w") as f:
        times = f.create_dataset("spikes/times", (2,), dtype=vf)
        units = f.create_dataset("spikes/units", (2,), dtype=vu)
        times[0], units[0] = np.float32([0.0, 0.125, 0.75]), np.uint16([699, 0, 5])
        times[1], units[1] = np.float32([0.5]), np.uint16([42])
        f["labels"] = np.uint16([19, 4])
    out = read_shd(path)
    assert [label for _, label in out] == [19, 4]
    assert out[0][0]["x"].tolist() == [699, 0, 5] and out[0][0]["t"].tolist() == [0, 125_000, 750_000]
    assert out[1][0]["t"].tolist() == [500_000]


def test_hdf5_missing_and_truncated(tmp_path):
    with pytest.raises(DatasetError, match="not found.*shd_train"):
        read_shd(tmp_path / "shd_train.h5")
    good = tmp_path / "good.h5"
    with h5py.File(good, "w") as f:
        f["labels"] = np.arange(1000)
    bad = tmp_path / "n-tidigits.hdf5"
    bad.write_bytes(good.read_bytes()[:600])
    with pytest.raises(DatasetError, match="truncated"):
        read_ntidigits(bad)


def test_event_files(tmp_path):
    ev = np.zeros(3, DVS_DTYPE)
    ev["t"], ev["x"], ev["y"], ev["p"] = [0, 5, 9], [1, 2, 3], [4, 5, 6], [1, 0, 1]
    np.save(tmp_path / "a.npy", ev)
    assert np.array_equal(read_event_file(tmp_path / "a.npy"), ev)
    tonic_like = np.zeros(3, np.dtype([("x", int), ("y", int), ("t", int), ("p", int)]))
    for k in "xytp":
        tonic_like[k] = ev[k]
    np.savez(tmp_path / "b.npz", events=tonic_like, label=7)
    assert np.array_equal(read_event_file(tmp_path / "b.npz"), ev)
    assert event_file_label(tmp_path / "b.npz") == 7
    neural = np.zeros(2, np.dtype([("t", "<i8"), ("x", "<i4")]))
    np.save(tmp_path / "n.npy", neural)
    assert read_event_file(tmp_path / "n.npy").dtype == NEURAL_DTYPE
    (tmp_path / "cut.npy").write_bytes((tmp_path / "a.npy").read_bytes()[:-5])
    with pytest.raises(DatasetError, match="truncated"):
        read_event_file(tmp_path / "cut.npy")
    np.save(tmp_path / "odd.npy", np.zeros(2, np.dtype([("a", int)])))
    with pytest.raises(ValueError, match="match no event dtype"):
        read_event_file(tmp_path / "odd.npy")


def test_spike_arrays_npz_and_mat(tmp_path):
    cube = np.zeros((2, 3, 4), np.int32)  # trials, bins, electrodes
    cube[0, 1, 2] = 2
    cube[1, 0, 3] = 1
    cube[1, 2, 0] = 3
    np.savez(tmp_path / "s.npz", spikes=cube, labels=np.array([5, 6]))
    savemat(tmp_path / "s.mat", {"neuralActivityCube": cube.astype(float), "labels": np.array([[5, 6]])})
    for name in ("s.npz", "s.mat"):
        out = read_spike_array(tmp_path / name, bin_us=1000)
        assert [label for _, label in out] == [5, 6]
        for (ev, _), c in zip(out, cube):
            assert ev.dtype == NEURAL_DTYPE
            back = np.zeros_like(c)
            np.add.at(back, (ev["t"] // 1000, ev["x"]), 1)
            assert np.array_equal(back, c)
    ev = counts_to_events(np.array([[0, 2]]), 1000)
    assert ev["t"].tolist() == [0, 500]  # spread evenly over the bin
    with pytest.raises(KeyError, match="no array named"):
        read_spike_array(tmp_path / "s.npz", key="missing")


AEDAT4_MAGIC = b"#!AER-DAT4.0\r\n"


def aedat4_bytes(packets, width=34, height=34) -> bytes:
    """An uncompressed AEDAT4 file (iniVation DV): magic, a size-prefixed IOHeader flatbuffer
    whose XML names one EVTS stream with its sensor size, then (stream id, size, EventPacket)
    records; an EventPacket is a vector of 16-byte structs (t int64, x int16, y int16, on bool)."""
    import flatbuffers

    desc = (f'<dv version="2.0"><node name="outInfo" path="/mainloop/Recorder/outInfo/">'
            f'<node name="0" path="/mainloop/Recorder/outInfo/0/">'
            f'<attr key="typeIdentifier" type="string">EVTS</attr>'
            f'<node name="info" path="/mainloop/Recorder/outInfo/0/info/">'
            f'<attr key="sizeX" type="int">{width}</attr><attr key="sizeY" type="int">{height}</attr>'
            f'</node></node></node></dv>')
    b = flatbuffers.Builder(256)
    d = b.CreateString(desc)
    b.StartObject(3)
    b.PrependUOffsetTRelativeSlot(2, d, 0)
    b.FinishSizePrefixed(b.EndObject(), b"IOHE")
    out = AEDAT4_MAGIC + bytes(b.Output())
    for ev in packets:
        b = flatbuffers.Builder(1024)
        b.StartVector(16, len(ev), 8)
        for e in ev[::-1]:
            b.Prep(8, 16)
            b.Pad(3)
            b.PrependBool(bool(e["p"]))
            b.PrependInt16(int(e["y"]))
            b.PrependInt16(int(e["x"]))
            b.PrependInt64(int(e["t"]))
        vec = b.EndVector()
        b.StartObject(1)
        b.PrependUOffsetTRelativeSlot(0, vec, 0)
        b.FinishSizePrefixed(b.EndObject(), b"EVTS")
        payload = bytes(b.Output())
        out += (0).to_bytes(4, "little") + len(payload).to_bytes(4, "little") + payload
    return out


def test_aedat4_recording_is_read_exactly(tmp_path):
    from rram_lsm.nodes.sources.readers import aedat4_geometry
    from rram_lsm.nodes.sources.replay import ReplaySource

    rng = np.random.default_rng(3)
    ev = np.zeros(50, DVS_DTYPE)
    t0 = 1_700_000_000_000_000  # DV stamps events with absolute microseconds
    ev["t"] = t0 + np.sort(rng.integers(0, 100_000, 50))
    ev["x"], ev["y"], ev["p"] = rng.integers(0, 40, 50), rng.integers(0, 30, 50), rng.integers(0, 2, 50)
    path = tmp_path / "rec.aedat4"
    path.write_bytes(aedat4_bytes([ev[:20], ev[20:]], width=40, height=30))
    got = read_event_file(path)
    assert got.dtype == DVS_DTYPE and len(got) == 50
    assert np.array_equal(got["t"], ev["t"] - ev["t"][0])
    for f in ("x", "y", "p"):
        assert np.array_equal(got[f], ev[f])
    assert aedat4_geometry(path) == (40, 30)
    src = ReplaySource("cam", {"format": "event_file", "path": str(path), "max_events": 16})
    assert src.geometry == (40, 30)
    sent = [p for p in src.packets() if not p.is_control]
    assert sum(p.n for p in sent) == 50 and all(p.geometry == (40, 30) for p in sent)


def test_aedat4_missing_truncated_or_not_aedat(tmp_path):
    with pytest.raises(DatasetError, match="not found"):
        read_event_file(tmp_path / "none.aedat4")
    ev = np.zeros(10, DVS_DTYPE)
    ev["t"] = np.arange(10)
    whole = aedat4_bytes([ev])
    (tmp_path / "cut.aedat4").write_bytes(whole[:-7])
    with pytest.raises(DatasetError, match="truncated"):
        read_event_file(tmp_path / "cut.aedat4")
    (tmp_path / "junk.aedat4").write_bytes(b"not an aedat file at all")
    with pytest.raises(DatasetError, match="cut.aedat4|junk.aedat4"):
        read_event_file(tmp_path / "junk.aedat4")
