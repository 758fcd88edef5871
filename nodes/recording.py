"""Recorder sink: saves any stream to ``.npz`` for later replay; and the reader for it.

Events are stored concatenated with per-sample offsets (no pickle); dense bodies (features,
embeddings, predictions) are stacked with their sample ids.  ``read_recording`` gives back
(events, label) samples, the form `ReplaySource` replays.

``format = "aedat4"`` writes DVS events to an AEDAT4 file instead (nodes/aedat4.py), packet
by packet as they are committed: whole samples, and continuous streams (sample -1) as they
arrive.  Samples follow one another on one time line (each starts where the last ended);
events from a DV source keep their DV timestamps (``dv_t0_us``).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from rram_lsm.stream.packets import WIRE_DTYPES, Packet, dtype_name
from rram_lsm.stream.params import REQUIRED, Param

from .sinks import SinkNode

FORMATS = ("npz", "aedat4")


class RecorderSink(SinkNode):
    """Saves whole samples of any stream to an ``.npz`` file, for later replay."""

    kind = "recorder"
    PARAMS = SinkNode.PARAMS + (
        Param("path", str, REQUIRED, "", "the file written (.npz at the end; .aedat4 as it goes)", path="out"),
        Param("format", str, "npz", "", "npz: every stream, whole samples; aedat4: DVS events", choices=FORMATS),
        Param("geometry", (list, type(None)), None, "px", "[width, height] for aedat4 when packets carry none"))

    def setup(self) -> None:
        super().setup()
        self.path = Path(self.param("path"))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.bodies: dict[str, list[np.ndarray]] = {}
        self.rows: dict[str, list[tuple[int, int, int]]] = {}  # kind -> (sample, label, n)
        self.geometries: dict[str, list[int]] = {}
        self._current: dict[tuple, list[Packet]] = {}
        self.format = self.param("format")
        if self.format not in FORMATS:
            raise ConfigError(f"node {self.name!r}: parameter 'format' must be one of {FORMATS}, got {self.format!r}")
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
        if key is not None and packet.control == "start":
            self._current.pop(key, None)  # a re-sent sample starts over: drop any cut attempt
        elif key is not None and not packet.is_control and packet.body is not None:
            # keep the array itself until the sample commits (bodies are views of frames)
            self._current.setdefault(key, []).append(packet)
        return super().process(packet)

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
        for p in packets:
            # one group per kind, dtype and row shape, so streams of different sensors coexist
            group = "-".join([p.kind, dtype_name(p.body.dtype), *map(str, p.body.shape[1:])])
            self.bodies.setdefault(group, []).append(np.array(p.body))
            self.rows.setdefault(group, []).append((p.sample, -1 if p.label is None else p.label, len(p.body)))
            if p.geometry:
                self.geometries[group] = list(p.geometry)
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
        arrays: dict[str, np.ndarray] = {}
        meta = {"groups": {}}
        for group, bodies in self.bodies.items():
            arrays[f"{group}_body"] = np.concatenate(bodies)
            arrays[f"{group}_rows"] = np.asarray(self.rows[group], dtype=np.int64).reshape(-1, 3)
            meta["groups"][group] = {"kind": group.split("-")[0], "dtype": dtype_name(bodies[0].dtype),
                                     "geometry": self.geometries.get(group)}
        arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
        tmp = self.path.with_suffix(".tmp.npz")
        np.savez(tmp, **arrays)
        tmp.replace(self.path)


def read_recording(path: str | Path, kind: str = "events") -> tuple[list[tuple[np.ndarray, int]], list | None]:
    """Samples of one kind from a recording: ([(body of sample, label)], geometry).

    A recording holding that kind from several sensors (dtypes) asks for ``kind`` to be the
    full group name (e.g. ``events-cochlea``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"recording {path} not found")
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(bytes(z["meta"]).decode())
            groups = [g for g, m in meta["groups"].items() if kind in (g, m["kind"])]
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
