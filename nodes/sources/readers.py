"""Dataset readers: N-MNIST, N-TIDIGITS, SHD, event files (npy/npz/AEDAT4) and neural spike arrays.

Every reader returns events in the project's wire dtypes (stream.packets), time in integer
microseconds.  N-MNIST is read with tonic's own reader (``tonic.io.read_mnist_file``; tonic
imports torch, so it is imported here, lazily, and nowhere else); the HDF5 layouts are read
with h5py exactly the way tonic's dataset classes read them; AEDAT4 (iniVation DV recordings)
with the ``aedat`` package (an optional extra).
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np

from rram_lsm.stream.packets import COCHLEA_DTYPE, DVS_DTYPE, NEURAL_DTYPE

NMNIST_SENSOR = (34, 34)
NTIDIGITS_CLASSES = {"o": 0, "1": 1, "2": 2, "3": 3, "4": 4, "5": 5, "6": 6, "7": 7, "8": 8,
                     "9": 9, "z": 10}  # tonic's NTIDIGITS18 class map ('o' and 'z' are both zero)

_HOW = {
    "nmnist": "download N-MNIST (https://www.garrickorchard.com/datasets/n-mnist), unzip "
              "Train.zip/Test.zip so the folder holds Train/0/*.bin ... Test/9/*.bin",
    "ntidigits": "download n-tidigits.hdf5 (see tonic.datasets.NTIDIGITS18 for the URL)",
    "shd": "download shd_train.h5 / shd_test.h5 from https://zenkelab.org/datasets/ (gunzip them)",
}


class DatasetError(FileNotFoundError):
    """A dataset file or folder is missing or damaged; the message says how to get it."""


def read_nmnist_file(path: str | Path) -> np.ndarray:
    """Events (DVS_DTYPE, 34x34 sensor) of one N-MNIST ``.bin`` file of 5-byte records."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"N-MNIST file {path} not found; {_HOW['nmnist']}")
    size = path.stat().st_size
    if size % 5:
        raise DatasetError(f"N-MNIST file {path} is truncated ({size} bytes, not a multiple of "
                           f"5-byte records); re-extract it: {_HOW['nmnist']}")
    from tonic.io import read_mnist_file  # lazy: tonic imports torch

    raw = read_mnist_file(str(path), dtype=np.dtype([("x", int), ("y", int), ("t", int), ("p", int)]))
    ev = np.empty(len(raw), DVS_DTYPE)
    for f in ("t", "x", "y", "p"):
        ev[f] = raw[f]
    return ev


def iter_nmnist(folder: str | Path, split: str = "train") -> Iterator[tuple[np.ndarray, int]]:
    """(events, label) for every file of N-MNIST's own layout (``Train/<digit>/*.bin``), sorted."""
    if split not in ("train", "test"):
        raise ValueError(f"iter_nmnist: split must be 'train' or 'test', got {split!r}")
    root = Path(folder) / split.capitalize()
    if not root.is_dir():
        raise DatasetError(f"N-MNIST folder {root} not found; {_HOW['nmnist']}")
    files = sorted(root.glob("[0-9]/*.bin"), key=lambda p: (p.parent.name, p.name))
    if not files:
        raise DatasetError(f"N-MNIST folder {root} holds no <digit>/*.bin files; {_HOW['nmnist']}")
    for f in files:
        yield read_nmnist_file(f), int(f.parent.name)


def nmnist_preprocess(events: np.ndarray, crop: int | None = 16, polarity: int | None = 1,
                      sensor: tuple[int, int] = NMNIST_SENSOR) -> np.ndarray:
    """The paper's preprocessing: a centre crop (16x16) and one polarity, coordinates re-based."""
    ev = events
    if polarity is not None:
        ev = ev[ev["p"] == polarity]
    if crop is not None:
        x0, y0 = (sensor[0] - crop) // 2, (sensor[1] - crop) // 2
        keep = (ev["x"] >= x0) & (ev["x"] < x0 + crop) & (ev["y"] >= y0) & (ev["y"] < y0 + crop)
        ev = ev[keep].copy()
        ev["x"] -= x0
        ev["y"] -= y0
    return ev


def _open_h5(path: str | Path, kind: str):
    import h5py

    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{kind} file {path} not found; {_HOW[kind]}")
    try:
        return h5py.File(path, "r")
    except OSError as err:
        raise DatasetError(f"{kind} file {path} cannot be read as HDF5 ({err}); it may be "
                           f"truncated: {_HOW[kind]}") from err


def _cochlea(t_s: np.ndarray, ch: np.ndarray) -> np.ndarray:
    ev = np.empty(len(t_s), COCHLEA_DTYPE)
    ev["t"] = np.asarray(t_s, dtype=np.float64) * 1e6  # as tonic: seconds -> µs, truncated
    ev["x"] = ch
    ev["p"] = 1
    return ev


def read_ntidigits(h5path: str | Path, split: str = "train") -> list[tuple[np.ndarray, int]]:
    """Single-digit samples of N-TIDIGITS (``{split}_labels``, ``_addresses``, ``_timestamps``).

    Labels follow tonic's map ('o' -> 0, 'z' -> 10); multi-digit utterances are skipped.
    """
    if split not in ("train", "test"):
        raise ValueError(f"read_ntidigits: split must be 'train' or 'test', got {split!r}")
    with _open_h5(h5path, "ntidigits") as f:
        try:
            names = [x.decode() for x in f[f"{split}_labels"][()]]
            out = []
            for name in names:
                digit = name.split("-")[-1]
                if len(digit) != 1:
                    continue
                ch = np.asarray(f[f"{split}_addresses"][name])
                t = np.asarray(f[f"{split}_timestamps"][name])
                out.append((_cochlea(t, ch), NTIDIGITS_CLASSES[digit]))
        except KeyError as err:
            raise DatasetError(f"N-TIDIGITS file {h5path} lacks {err}; {_HOW['ntidigits']}") from err
    return out


def read_shd(h5path: str | Path) -> list[tuple[np.ndarray, int]]:
    """Samples of an SHD file (``spikes/times`` in s, ``spikes/units``, ``labels``), as tonic reads them."""
    with _open_h5(h5path, "shd") as f:
        try:
            times, units, labels = f["spikes/times"], f["spikes/units"], f["labels"][()]
            return [(_cochlea(times[i], units[i]), int(labels[i])) for i in range(len(labels))]
        except KeyError as err:
            raise DatasetError(f"SHD file {h5path} lacks {err}; {_HOW['shd']}") from err


def _to_wire(arr: np.ndarray, what: str) -> np.ndarray:
    names = set(arr.dtype.names or ())
    for dtype in (DVS_DTYPE, COCHLEA_DTYPE, NEURAL_DTYPE):
        if set(dtype.names) <= names:  # the richest dtype whose fields are all present
            ev = np.empty(len(arr), dtype)
            for f in dtype.names:
                ev[f] = arr[f]
            return ev
    raise ValueError(f"{what}: fields {sorted(names)} match no event dtype; expected "
                     f"(t, x, y, p) for DVS, (t, x, p) for cochlea or (t, x) for neural")


def _aedat_decoder(path: Path):
    try:
        import aedat
    except ImportError:
        raise DatasetError(f"reading the AEDAT4 file {path} needs the 'aedat' package: "
                           "pip install 'rram-lsm[aedat]' (or pip install aedat)") from None
    if not path.is_file():
        raise DatasetError(f"event file {path} not found")
    try:
        return aedat.Decoder(path)
    except Exception as err:  # the Rust decoder reports damage as a plain exception
        raise DatasetError(f"AEDAT4 file {path} cannot be read ({err}); it may be truncated or not AEDAT4") from err


def _aedat_events_stream(dec, path: Path) -> tuple[int, dict]:
    streams = {i: s for i, s in dec.id_to_stream().items() if s["type"] == "events"}
    if not streams:
        raise DatasetError(f"AEDAT4 file {path} has no event stream (only {sorted(s['type'] for s in dec.id_to_stream().values())})")
    sid = min(streams)
    return sid, streams[sid]


def aedat4_geometry(path: str | Path) -> tuple[int, int]:
    """Sensor size (width, height) of the first event stream of an AEDAT4 file."""
    path = Path(path)
    _, info = _aedat_events_stream(_aedat_decoder(path), path)
    return int(info["width"]), int(info["height"])


def aedat4_cut_inside_packet(path: str | Path) -> bool:
    """True when an AEDAT4 file ends inside a packet record: whole up to there, then cut.

    Walks the record framing (magic line, size-prefixed header, then per packet an int32
    stream id, an int32 size and that many bytes) up to the header's file-table position or
    the end of the file."""
    data = Path(path).read_bytes()
    magic = b"#!AER-DAT4.0\r\n"
    if not data.startswith(magic) or len(data) < len(magic) + 4:
        return False
    pos = len(magic)
    pos += 4 + int(np.frombuffer(data, "<u4", 1, pos)[0])
    if pos > len(data):
        return True
    end = len(data)
    while pos < end:
        if pos + 8 > end:
            return True
        sid, size = np.frombuffer(data, "<i4", 2, pos)
        if sid < 0 or size < 0:
            return False  # not a packet record: damage (or the file table), not a cut
        pos += 8 + int(size)
    return pos > end


def read_aedat4(path: str | Path) -> np.ndarray:
    """Events of an AEDAT4 file's first event stream (DVS wire dtype, t from its first event).

    A file cut inside a packet (a writer killed mid-write) reads up to its last whole packet,
    as dv-processing reads it; the ``aedat`` decoder alone refuses such a file."""
    path = Path(path)
    dec = _aedat_decoder(path)
    sid, _ = _aedat_events_stream(dec, path)
    chunks = []
    try:
        for p in dec:
            if p["stream_id"] == sid and "events" in p:
                chunks.append(p["events"])
    except Exception as err:  # a file cut inside a packet (a killed writer) reads up to its last whole one
        if not aedat4_cut_inside_packet(path):
            raise DatasetError(f"AEDAT4 file {path} cannot be read ({err}); it is damaged") from err
        if not chunks:
            raise DatasetError(f"AEDAT4 file {path} is truncated inside its first events packet: "
                               "no whole packet to read") from err
    raw = np.concatenate(chunks) if chunks else np.zeros(0, [("t", "<u8"), ("x", "<u2"), ("y", "<u2"), ("on", "?")])
    ev = np.empty(len(raw), DVS_DTYPE)
    ev["t"] = raw["t"].astype(np.int64) - (int(raw["t"][0]) if len(raw) else 0)
    ev["x"], ev["y"], ev["p"] = raw["x"], raw["y"], raw["on"]
    return ev


def read_event_file(path: str | Path) -> np.ndarray:
    """Events of a ``.npy`` structured array, an ``.npz`` with an ``events`` array or an
    ``.aedat4`` recording, in wire dtype."""
    path = Path(path)
    if path.suffix == ".aedat4":
        return read_aedat4(path)
    if not path.is_file():
        raise DatasetError(f"event file {path} not found")
    try:
        if path.suffix == ".npy":
            arr = np.load(path, allow_pickle=False)
        elif path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                if "events" not in z:
                    raise ValueError(f"event file {path} has no 'events' array (has {sorted(z.files)})")
                arr = z["events"]
        else:
            raise ValueError(f"event file {path}: expected .npy, .npz or .aedat4, got {path.suffix!r}")
    except (EOFError, OSError, ValueError) as err:
        if isinstance(err, ValueError) and "event file" in str(err):
            raise
        raise DatasetError(f"event file {path} cannot be read ({err}); it may be truncated") from err
    return _to_wire(arr, str(path))


def event_file_label(path: str | Path) -> int | None:
    """The ``label`` stored beside the events of an ``.npz`` event file, or None."""
    path = Path(path)
    if path.suffix != ".npz":
        return None
    with np.load(path, allow_pickle=False) as z:
        return int(z["label"]) if "label" in z else None


_COUNT_KEYS = ("spikes", "counts", "neuralActivityCube", "binned_spikes")


def counts_to_events(counts: np.ndarray, bin_us: int) -> np.ndarray:
    """Neural events from spike counts (bins, electrodes): each count spread evenly over its bin."""
    counts = np.asarray(counts)
    if counts.ndim != 2 or (counts < 0).any():
        raise ValueError(f"spike counts must be a non-negative (bins, electrodes) array, got {counts.shape}")
    c = np.rint(counts).astype(np.int64)
    b, e = np.nonzero(c)
    reps = c[b, e]
    k = np.arange(reps.sum()) - np.repeat(np.cumsum(reps) - reps, reps)  # index within the bin
    ev = np.empty(int(reps.sum()), NEURAL_DTYPE)
    ev["t"] = np.repeat(b * bin_us, reps) + (k * bin_us) // np.repeat(reps, reps)
    ev["x"] = np.repeat(e, reps)
    return ev[np.argsort(ev["t"], kind="stable")]


def read_spike_array(path: str | Path, key: str | None = None, bin_us: int = 10_000,
                     label_key: str = "labels") -> list[tuple[np.ndarray, int | None]]:
    """Trials of a ``.npz``/``.mat`` spike-count array ((trials,) bins, electrodes) as neural events.

    ``key`` names the array (default: the first of spikes, counts, neuralActivityCube,
    binned_spikes); labels come from ``label_key`` when present.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"spike array file {path} not found")
    if path.suffix == ".mat":
        from scipy.io import loadmat

        try:
            data = {k: v for k, v in loadmat(path).items() if not k.startswith("__")}
        except Exception as err:  # scipy raises several types for damaged files
            raise DatasetError(f"spike array file {path} cannot be read ({err}); it may be truncated") from err
    elif path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    else:
        raise ValueError(f"spike array file {path}: expected .npz or .mat, got {path.suffix!r}")
    key = key or next((k for k in _COUNT_KEYS if k in data), None)
    if key is None or key not in data:
        raise KeyError(f"spike array file {path}: no array named {key or _COUNT_KEYS} (has {sorted(data)})")
    arr = np.asarray(data[key])
    trials = arr[None] if arr.ndim == 2 else arr
    if trials.ndim != 3:
        raise ValueError(f"spike array {key!r} in {path} must be 2-D or 3-D, got shape {arr.shape}")
    labels = np.asarray(data[label_key]).ravel() if label_key in data else None
    if labels is not None and len(labels) != len(trials):
        raise ValueError(f"{path}: {len(labels)} labels for {len(trials)} trials")
    return [(counts_to_events(tr, bin_us), None if labels is None else int(labels[i]))
            for i, tr in enumerate(trials)]
