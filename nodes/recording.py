"""Recorder sink: saves any stream as it goes, for later replay; and the reader for it.

``format = "npz"`` (the default) writes a recording as it goes, so memory stays bounded and a
crash loses at most the last second: ``path`` is an appended JSON-lines index, and the bodies
go to one ``.npz`` per committed sample, or per ``chunk_s`` of a continuous stream (sample
-1, by stream time or wall clock, whichever comes first; the wall clock is checked whenever a
message arrives, as nodes have no timer), in the folder ``<path stem>.chunks`` beside it.  Each chunk is written whole to a temporary name and renamed before its index line
is appended, so every line of the index names a whole file; a line cut by a crash is ignored,
and ``append = true`` lets a restarted recorder continue the recording (the reader keeps a
sample written twice once, by its origin).
Events and dense bodies (features, embeddings, predictions) are grouped by kind, dtype and row
shape, so streams of different sensors coexist (no pickle).  ``read_recording`` gives back
(body, label) samples, the form `ReplaySource` replays; a continuous stream comes back as one
sample per stream and epoch.  Single-file ``.npz`` recordings of older versions still read.

``format = "aedat4"`` writes DVS events to an AEDAT4 file instead (nodes/aedat4.py), packet
by packet as they are committed: whole samples, and continuous streams (sample -1) as they
arrive.  Samples follow one another on one time line (each starts where the last ended);
events from a DV source keep their DV timestamps (``dv_t0_us``).
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Iterator

import numpy as np

from rram_lsm.stream.node import ConfigError
from rram_lsm.stream.packets import WIRE_DTYPES, Packet, dtype_name
from rram_lsm.stream.params import REQUIRED, Param

from .sinks import SinkNode

FORMATS = ("npz", "aedat4")
INDEX_VERSION = 1


def chunk_folder(index: Path) -> Path:
    """Where the chunk files of the recording indexed by ``index`` live."""
    return index.with_name(index.stem + ".chunks")


def _group(p: Packet) -> str:
    """One group per kind, dtype and row shape (e.g. ``events-dvs``, ``features-float32-200``)."""
    return "-".join([p.kind, dtype_name(p.body.dtype), *map(str, p.body.shape[1:])])


class NpzRecordingWriter:
    """Appends chunks (one sample, or a stretch of a continuous stream) to a recording."""

    def __init__(self, index: Path, append: bool = False):
        self.index = index
        self.folder = chunk_folder(index)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.chunks = self._resume() if append and index.is_file() else None
        if self.chunks is None:
            for old in self.folder.glob("*.npz"):  # a recording is rewritten, never mixed with an old one
                old.unlink()
            self.fh = open(index, "w", buffering=1)
            self.fh.write(json.dumps({"recording": INDEX_VERSION, "chunks": self.folder.name}) + "\n")
            self.chunks = 0

    def _resume(self) -> int:
        """Continue a recording (a restarted recorder): cut a torn last line, drop chunks that
        no line names, and number on from the last one."""
        data = self.index.read_bytes()
        data = data[:data.rfind(b"\n") + 1]
        lines = [json.loads(raw) for raw in data.splitlines()]
        if not lines or lines[0].get("recording") != INDEX_VERSION:
            raise ConfigError(f"recording {self.index} cannot be appended to: not a recording index")
        named = {line["file"] for line in lines[1:]}
        for f in self.folder.glob("*.npz"):
            if f.name not in named:
                f.unlink()  # written, never indexed (or a temporary): the crash took it
        with open(self.index, "r+b") as fh:
            fh.truncate(len(data))
        self.fh = open(self.index, "a", buffering=1)
        return max((int(f.split(".")[0]) + 1 for f in named), default=0)

    def write(self, packets: list[Packet], origin: list, sample: int, label: int | None) -> None:
        groups: dict[str, list[Packet]] = {}
        for p in packets:
            groups.setdefault(_group(p), []).append(p)
        arrays, info = {}, {}
        for g, ps in groups.items():
            arrays[g] = np.concatenate([np.asarray(p.body) for p in ps])
            geometry = next((list(p.geometry) for p in reversed(ps) if p.geometry), None)
            info[g] = {"kind": ps[0].kind, "dtype": dtype_name(arrays[g].dtype), "n": len(arrays[g]),
                       "geometry": geometry}
        name = f"{self.chunks:06d}.npz"
        tmp = self.folder / f".{name}.tmp.npz"
        np.savez(tmp, **arrays)
        os.replace(tmp, self.folder / name)  # whole, or not there
        t0 = [p.t0 for p in packets if p.t0 is not None]
        t1 = [p.t1 for p in packets if p.t1 is not None]
        line = {"file": name, "origin": origin, "sample": sample, "label": label, "groups": info,
                "t0": min(t0) if t0 else None, "t1": max(t1) if t1 else None}
        self.fh.write(json.dumps(line) + "\n")  # one write per line: a kill cuts at most this one
        self.chunks += 1

    def close(self) -> None:
        self.fh.close()


class RecorderSink(SinkNode):
    """Saves whole samples and continuous streams of any stream as it goes, for later replay."""

    kind = "recorder"
    PARAMS = SinkNode.PARAMS + (
        Param("path", str, REQUIRED, "", "npz: the JSON-lines index (chunks beside it in "
              "<stem>.chunks/); aedat4: the .aedat4 file", path="out"),
        Param("format", str, "npz", "", "npz: every stream; aedat4: DVS events", choices=FORMATS),
        Param("geometry", (list, type(None)), None, "px", "[width, height] for aedat4 when packets carry none"),
        Param("chunk_s", float, 1.0, "s", "npz: a continuous stream is written every this long "
              "(stream time or wall clock, whichever is first); a crash loses at most this much"),
        Param("append", bool, False, "", "npz: continue the recording at path if there is one "
              "(for a recorder the supervisor may restart) instead of rewriting it"))

    def setup(self) -> None:
        super().setup()
        self.path = Path(self.param("path"))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._current: dict[tuple, list[Packet]] = {}
        self.format = self.param("format")
        if self.format not in FORMATS:
            raise ConfigError(f"node {self.name!r}: parameter 'format' must be one of {FORMATS}, got {self.format!r}")
        self.chunk_s = float(self.param("chunk_s"))
        if self.chunk_s <= 0:
            raise ConfigError(f"node {self.name!r}: parameter 'chunk_s' must be > 0, got {self.chunk_s}")
        self.npz = NpzRecordingWriter(self.path, self.param("append")) if self.format == "npz" else None
        # continuous streams: (stream, epoch) -> (packets, wall time of the first)
        self._continuous: dict[tuple, tuple[list[Packet], float]] = {}
        self.aedat = None  # Aedat4Writer, opened at the first events (they carry the geometry)
        self._t_offset: tuple[tuple | None, int] = (None, 0)  # (origin, µs added to its times)
        if self.format == "aedat4" and self.param("geometry"):
            from .aedat4 import Aedat4Writer

            self.aedat = Aedat4Writer(self.path, *self.param("geometry"))  # a file even if nothing comes

    def process(self, packet: Packet):
        key = self._key(packet)
        if self.format == "aedat4" and not packet.is_control and packet.body is not None:
            self._check_aedat(packet)
            if key is None:  # a continuous stream: no sample to wait for
                self._write_aedat(packet)
                return ()
        if key is None and self.npz is not None and not packet.is_control and packet.body is not None:
            self._add_continuous(packet)
        elif self._continuous:  # any message also writes out a stream that went quiet
            now = time.monotonic()
            for ckey in [k for k, (_, wall0) in self._continuous.items() if now - wall0 >= self.chunk_s]:
                self._flush_continuous(ckey)
        if key is not None and packet.control == "start":
            self._current.pop(key, None)  # a re-sent sample starts over: drop any cut attempt
        elif key is not None and not packet.is_control and packet.body is not None:
            # keep the array itself until the sample commits (bodies are views of frames)
            self._current.setdefault(key, []).append(packet)
        return super().process(packet)

    def _add_continuous(self, p: Packet) -> None:
        """Buffer a continuous packet; a chunk is written once it spans ``chunk_s`` of stream
        time (at the first packet beyond it) or has waited ``chunk_s`` of wall clock."""
        ckey = (p.origin.stream, p.origin.epoch) if p.origin else (p.stream, None)
        if ckey in self._continuous:
            t_start = self._continuous[ckey][0][0].t0
            if p.t0 is not None and t_start is not None and p.t0 - t_start >= self.chunk_s * 1e6:
                self._flush_continuous(ckey)
        packets, wall0 = self._continuous.setdefault(ckey, ([], time.monotonic()))
        packets.append(replace(p, body=np.array(p.body)))  # own copy of the frame
        if time.monotonic() - wall0 >= self.chunk_s:
            self._flush_continuous(ckey)

    def _flush_continuous(self, ckey: tuple) -> None:
        packets, _ = self._continuous.pop(ckey)
        self.npz.write(packets, [ckey[0], ckey[1], -1], -1, None)
        self.gauges["chunks_written"] = self.npz.chunks

    def _forget(self, key, unacked) -> None:
        super()._forget(key, unacked)
        for k in [k for k in self._current if k not in self.pending]:
            del self._current[k]  # a sample the sink gave up on: its bodies go too

    def _commit(self, key, end, recs) -> bool:
        packets = self._current.pop(key, [])
        if not super()._commit(key, end, recs):
            return False  # duplicate or incomplete: nothing new to keep
        if self.format == "aedat4":
            for p in packets:
                self._write_aedat(p)
            return True
        if packets:
            label = next((p.label for p in packets if p.label is not None), end.label)
            self.npz.write(packets, list(key), key[2], label)
            self.gauges["chunks_written"] = self.npz.chunks
        return True

    def _check_aedat(self, p: Packet) -> None:
        if p.kind != "events" or p.body.dtype != WIRE_DTYPES["dvs"]:
            raise ValueError(f"recorder {self.name!r}: format 'aedat4' records DVS events only, "
                             f"got {p.kind} of dtype {p.body.dtype}")
        geometry = self.param("geometry") or p.geometry
        if self.aedat is None and (not geometry or len(geometry) != 2):
            raise ValueError(f"recorder {self.name!r}: the events carry no (width, height) geometry; "
                             f"give the recorder a 'geometry' parameter")

    def _write_aedat(self, p: Packet) -> None:
        """One AEDAT4 packet per wire packet, on one non-decreasing time line."""
        if len(p.body) == 0:
            return
        if self.aedat is None:
            from .aedat4 import Aedat4Writer

            self.aedat = Aedat4Writer(self.path, *p.geometry, source=p.origin.stream if p.origin else "rram-lsm")
        origin = (p.origin.stream, p.origin.epoch, p.sample) if p.origin else None
        if origin != self._t_offset[0]:
            offset = int(p.meta.get("dv_t0_us", 0))
            last = self.aedat.last_t
            if last is not None and int(p.body["t"][0]) + offset < last:
                offset = last - int(p.body["t"][0])
            self._t_offset = (origin, offset)
        ev = np.array(p.body)
        ev["t"] += self._t_offset[1]
        self.aedat.write(ev)
        self.gauges["aedat4_events"] = self.aedat.events

    def close(self) -> None:
        if self.format == "aedat4":
            if self.aedat is not None:
                self.aedat.close()
            return
        for ckey in list(self._continuous):
            self._flush_continuous(ckey)
        self.npz.close()


def _index_lines(path: Path) -> Iterator[dict]:
    """The whole lines of a recording's index (a line cut by a crash ends it)."""
    with open(path, "rb") as fh:
        for raw in fh:
            if not raw.endswith(b"\n"):
                return
            try:
                yield json.loads(raw)
            except json.JSONDecodeError:
                raise ValueError(f"recording {path}: damaged index line {raw[:80]!r}") from None


def _match(groups: dict[str, dict], kind: str) -> list[str]:
    return [g for g, m in groups.items() if kind in (g, m["kind"])]


def _chunks(path: Path, kind: str) -> Iterator[tuple[dict, str]]:
    """(index line, group) of every chunk holding ``kind``, in recorded order."""
    lines = _index_lines(path)
    head = next(lines, None)
    if not isinstance(head, dict) or head.get("recording") != INDEX_VERSION:
        raise ValueError(f"recording {path}: not a recording index (first line {head!r})")
    for line in lines:
        groups = _match(line["groups"], kind)
        if len(groups) > 1:
            raise ValueError(f"recording {path}: {len(groups)} streams match {kind!r}; "
                             f"it holds {sorted(line['groups'])}")
        if groups:
            yield line, groups[0]


def _is_legacy(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(2) == b"PK"  # a zip: the single .npz of older versions


def recording_geometry(path: str | Path, kind: str = "events") -> list | None:
    """The geometry of ``kind`` in a recording, from its index alone."""
    path = _existing(path)
    if _is_legacy(path):
        return _read_legacy(path, kind)[1]
    for line, group in _chunks(path, kind):
        if line["groups"][group]["geometry"]:
            return line["groups"][group]["geometry"]
    return None


def _existing(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"recording {path} not found")
    return path


def iter_recording(path: str | Path, kind: str = "events") -> Iterator[tuple[np.ndarray, int | None]]:
    """(body, label) of each sample of one kind, read chunk by chunk (memory: one sample).

    A continuous stream (sample -1) comes back, after the samples, as one sample per source
    stream and epoch (label None), its chunks joined in order."""
    path = _existing(path)
    if _is_legacy(path):
        yield from _read_legacy(path, kind)[0]
        return
    folder = path.parent / next(_index_lines(path))["chunks"]
    continuous: dict[tuple, list[np.ndarray]] = {}
    seen: set[tuple] = set()
    found = False
    for line, group in _chunks(path, kind):
        found = True
        try:
            with np.load(folder / line["file"], allow_pickle=False) as z:
                body = z[group]
        except (OSError, KeyError, ValueError) as exc:
            raise ValueError(f"recording {path}: chunk {line['file']} unreadable ({exc})") from None
        info = line["groups"][group]
        if body.dtype != WIRE_DTYPES[info["dtype"]] or len(body) != info["n"]:
            raise ValueError(f"recording {path}: chunk {line['file']} disagrees with its index line")
        if line["sample"] < 0:
            continuous.setdefault(tuple(line["origin"][:2]), []).append(body)
        elif tuple(line["origin"]) not in seen:  # a sample written again by a restarted recorder
            seen.add(tuple(line["origin"]))
            yield body, line["label"]
    if not found:
        raise ValueError(f"recording {path}: holds no {kind!r} stream")
    for bodies in continuous.values():
        yield np.concatenate(bodies), None


def read_recording(path: str | Path, kind: str = "events") -> tuple[list[tuple[np.ndarray, int | None]], list | None]:
    """Samples of one kind from a recording: ([(body of sample, label)], geometry).

    A recording holding that kind from several sensors (dtypes) asks for ``kind`` to be the
    full group name (e.g. ``events-cochlea``)."""
    return list(iter_recording(path, kind)), recording_geometry(path, kind)


def _read_legacy(path: Path, kind: str) -> tuple[list[tuple[np.ndarray, int]], list | None]:
    """A single-file recording of older versions (bodies with per-sample row tables)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(bytes(z["meta"]).decode())
            groups = _match(meta["groups"], kind)
            if len(groups) != 1:
                raise ValueError(f"recording {path}: {len(groups)} streams match {kind!r}; "
                                 f"it holds {sorted(meta['groups'])}")
            group = groups[0]
            body, rows = z[f"{group}_body"], z[f"{group}_rows"]
    except (OSError, KeyError, json.JSONDecodeError) as exc:
        raise ValueError(f"recording {path}: truncated or not a recording ({exc})") from None
    info = meta["groups"][group]
    if body.dtype != WIRE_DTYPES[info["dtype"]] or len(rows) == 0 or rows[:, 2].sum() != len(body):
        raise ValueError(f"recording {path}: {kind} body and row table disagree")
    out: list[tuple[np.ndarray, int]] = []
    start = 0
    for sample in dict.fromkeys(rows[:, 0]):  # samples in recorded order
        sel = rows[rows[:, 0] == sample]
        n = int(sel[:, 2].sum())
        out.append((body[start:start + n], int(sel[0, 1])))
        start += n
    return out, info["geometry"]
