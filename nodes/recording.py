"""Recorder sink: saves any stream to ``.npz`` for later replay; and the reader for it.

Events are stored concatenated with per-sample offsets (no pickle); dense bodies (features,
embeddings, predictions) are stacked with their sample ids.  ``read_recording`` gives back
(events, label) samples, the form `ReplaySource` replays.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from rram_lsm.stream.packets import WIRE_DTYPES, Packet, dtype_name
from rram_lsm.stream.params import REQUIRED, Param

from .sinks import SinkNode


class RecorderSink(SinkNode):
    """Saves whole samples of any stream to an ``.npz`` file, for later replay."""

    kind = "recorder"
    PARAMS = SinkNode.PARAMS + (Param("path", str, REQUIRED, "", "the .npz file written at the end", path="out"),)

    def setup(self) -> None:
        super().setup()
        self.path = Path(self.param("path"))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.bodies: dict[str, list[np.ndarray]] = {}
        self.rows: dict[str, list[tuple[int, int, int]]] = {}  # kind -> (sample, label, n)
        self.geometries: dict[str, list[int]] = {}
        self._current: dict[tuple, list[Packet]] = {}

    def process(self, packet: Packet):
        key = self._key(packet)
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
        for p in packets:
            # one group per kind, dtype and row shape, so streams of different sensors coexist
            group = "-".join([p.kind, dtype_name(p.body.dtype), *map(str, p.body.shape[1:])])
            self.bodies.setdefault(group, []).append(np.array(p.body))
            self.rows.setdefault(group, []).append((p.sample, -1 if p.label is None else p.label, len(p.body)))
            if p.geometry:
                self.geometries[group] = list(p.geometry)
        return True

    def close(self) -> None:
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
