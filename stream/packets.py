"""Packet types and compact little-endian wire dtypes (DESIGN.md, Packets)."""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

SCHEMA_VERSION = 1

KINDS = ("events", "features", "embedding", "prediction", "control", "telemetry")
# `bank` edits a classifier's reference bank at run time (meta: op, label, embeddings).
CONTROLS = ("start", "end_of_sample", "end_of_stream", "heartbeat", "bank")

# Event dtypes on the wire: packed, little-endian, time in integer microseconds (as in tonic).
DVS_DTYPE = np.dtype([("t", "<i8"), ("x", "<u2"), ("y", "<u2"), ("p", "u1")])
COCHLEA_DTYPE = np.dtype([("t", "<i8"), ("x", "<u2"), ("p", "u1")])
NEURAL_DTYPE = np.dtype([("t", "<i8"), ("x", "<u2")])
# Dense bodies (features, embeddings, scores).
F32 = np.dtype("<f4")
F64 = np.dtype("<f8")

WIRE_DTYPES: dict[str, np.dtype] = {
    "dvs": DVS_DTYPE,
    "cochlea": COCHLEA_DTYPE,
    "neural": NEURAL_DTYPE,
    "f32": F32,
    "f64": F64,
}
EVENT_DTYPES = ("dvs", "cochlea", "neural")


def dtype_name(dtype: np.dtype) -> str:
    """The wire name of a numpy dtype, or ValueError if it is not a wire dtype."""
    for name, dt in WIRE_DTYPES.items():
        if dt == dtype:
            return name
    raise ValueError(f"dtype {dtype} is not a wire dtype; use one of {sorted(WIRE_DTYPES)}")


def new_epoch() -> int:
    """A random 63-bit id a sender draws at start-up so a restarted sender is recognised."""
    return int.from_bytes(os.urandom(8), "little") >> 1


@dataclass(frozen=True)
class Origin:
    """End-to-end identity of a sample: source stream, source epoch and sample id."""

    stream: str
    epoch: int
    sample: int

    def as_list(self) -> list:
        return [self.stream, self.epoch, self.sample]


@dataclass
class Packet:
    """One message. ``body`` is a numpy array sent as a raw frame (never through msgpack).

    Fields the runtime stamps on send: ``stream``, ``epoch``, ``seq``, ``sent_ns``.
    Fields a node sets: ``kind``, ``body``, ``sample``, ``t0``/``t1``, ``label``, ``control``
    and small ``meta`` values; ``origin`` and ``origin_ns`` are carried unchanged.
    """

    kind: str
    stream: str = ""
    epoch: int = 0
    seq: int = 0
    origin: Origin | None = None
    n: int = 0
    sample: int = -1
    t0: int = 0
    t1: int = 0
    sent_ns: int = 0
    origin_ns: int = 0
    label: int | None = None
    body: np.ndarray | None = None
    geometry: tuple[int, ...] | None = None
    control: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.body is not None and self.n == 0:
            self.n = int(self.body.shape[0]) if self.body.ndim else 1

    def derive(self, kind: str, body: np.ndarray | None = None, **changes) -> "Packet":
        """A new packet that carries this one's sample identity, label, times and origin."""
        base = dict(
            kind=kind, origin=self.origin, sample=self.sample, t0=self.t0, t1=self.t1,
            origin_ns=self.origin_ns, label=self.label, body=body, n=0,
        )
        base.update(changes)
        return Packet(**base)

    @property
    def is_control(self) -> bool:
        return self.kind == "control"

    def replace(self, **changes) -> "Packet":
        return dataclasses.replace(self, **changes)


def control(name: str, **fields) -> Packet:
    """A control packet (`start`, `end_of_sample`, `end_of_stream`, `heartbeat`)."""
    if name not in CONTROLS:
        raise ValueError(f"unknown control {name!r}; expected one of {CONTROLS}")
    return Packet(kind="control", control=name, **fields)
