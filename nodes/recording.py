"""Recorder sink: saves any stream to ``.npz`` for later replay; and the reader for it.

Events are stored concatenated with per-sample offsets (no pickle); dense bodies (features,
embeddings, predictions) are stacked with their sample ids.  ``read_recording`` gives back
(events, label) samples, the form `ReplaySource` replays.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from stream.node import ConfigError
from stream.packets import WIRE_DTYPES, Packet, dtype_name

from .sinks import SinkNode


class RecorderSink(SinkNode):
    """Params: ``path`` (.npz).  Keeps whole samples only (as every sink does)."""

    kind = "recorder"

    def setup(self) -> None:
        super().setup()
        path = self.param("path", None, str)
        if not path:
            raise ConfigError(f"node {self.name!r}: parameter 'path' (.npz file) is required")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.bodies: dict[str, list[np.ndarray]] = {}
        self.rows: dict[str, list[tuple[int, int, int]]] = {}  # kind -> (sample, label, n)
        self.geometry: list[int] | None = None
        self._current: dict[tuple, list[Packet]] = {}

    def process(self, packet: Packet):
        key = self._key(packet)
        if key is not None and not packet.is_control and packet.body is not None:
            # keep the array itself until the sample commits (bodies are views of frames)
            self._current.setdefault(key, []).append(packet)
        return super().process(packet)

    def _commit(self, key, end, recs) -> None:
        before = len(self.committed)
        super()._commit(key, end, recs)
        packets = self._current.pop(key, [])
        if len(self.committed) == before:
            return  # duplicate or incomplete: nothing new to keep
        for p in packets:
            self.bodies.setdefault(p.kind, []).append(np.array(p.body))
            self.rows.setdefault(p.kind, []).append((p.sample, -1 if p.label is None else p.label, len(p.body)))
            self.geometry = list(p.geometry) if p.geometry else self.geometry

    def close(self) -> None:
        arrays: dict[str, np.ndarray] = {}
        meta = {"geometry": self.geometry, "kinds": {}}
        for kind, bodies in self.bodies.items():
            rows = np.asarray(self.rows[kind], dtype=np.int64).reshape(-1, 3)
            arrays[f"{kind}_body"] = np.concatenate(bodies)
            arrays[f"{kind}_rows"] = rows
            meta["kinds"][kind] = dtype_name(bodies[0].dtype)
        arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
        tmp = self.path.with_suffix(".tmp.npz")
        np.savez(tmp, **arrays)
        tmp.replace(self.path)


def read_recording(path: str | Path, kind: str = "events") -> tuple[list[tuple[np.ndarray, int]], list | None]:
    """Samples of one kind from a recording: ([(body of sample, label)], geometry)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"recording {path} not found")
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(bytes(z["meta"]).decode())
            if kind not in meta["kinds"]:
                raise ValueError(f"recording {path} holds no {kind!r} stream (it has {sorted(meta['kinds'])})")
            body, rows = z[f"{kind}_body"], z[f"{kind}_rows"]
    except (OSError, KeyError, json.JSONDecodeError) as exc:
        raise ValueError(f"recording {path}: truncated or not a recording ({exc})") from None
    if body.dtype != WIRE_DTYPES[meta["kinds"][kind]] or rows.sum(axis=0)[2] != len(body):
        raise ValueError(f"recording {path}: {kind} body and row table disagree")
    out: list[tuple[np.ndarray, int]] = []
    start = 0
    for sample in dict.fromkeys(rows[:, 0]):  # samples in recorded order
        sel = rows[rows[:, 0] == sample]
        n = int(sel[:, 2].sum())
        out.append((body[start:start + n], int(sel[0, 1])))
        start += n
    return out, meta["geometry"]
