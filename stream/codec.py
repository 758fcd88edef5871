"""Packets on the wire: a msgpack header frame, then the body as one raw frame.

Encoding never copies the body (the frame is a view of the array's buffer).  Decoding never
trusts its input: every check failure raises :class:`DecodeError` with a short ``reason``
code that the runtime counts, and the body is read with ``np.frombuffer`` (no copy).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import msgpack
import numpy as np

from .packets import (
    CONTROLS, EVENT_DTYPES, KINDS, SCHEMA_VERSION, WIRE_DTYPES, Origin, Packet, dtype_name,
)


class DecodeError(ValueError):
    """A message that failed validation; ``reason`` is a short counter key."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


@dataclass(frozen=True)
class Limits:
    """Size limits applied before and during msgpack decoding."""

    max_header_bytes: int = 64 * 1024
    max_body_bytes: int = 64 * 1024 * 1024
    max_str_len: int = 4096
    max_array_len: int = 4096
    max_map_len: int = 256


DEFAULT_LIMITS = Limits()

# field -> accepted python types (None allowed where listed)
_REQUIRED = {
    "v": (int,), "kind": (str,), "stream": (str,), "epoch": (int,), "seq": (int,),
    "n": (int,), "sample": (int,), "t0": (int,), "t1": (int,), "sent_ns": (int,),
    "origin_ns": (int,),
}
_OPTIONAL = {
    "origin": (list, type(None)), "label": (int, type(None)), "dtype": (str, type(None)),
    "shape": (list, type(None)), "geometry": (list, type(None)),
    "control": (str, type(None)), "meta": (dict, type(None)),
}
_REQUIRED_ITEMS = tuple(_REQUIRED.items())
_INT64 = (-2**63, 2**63)
# integer field -> smallest value allowed (all are below 2**63, so they re-encode after any
# arithmetic a node does on them); -1 is the sample id of continuous streams
_MIN = {"epoch": 0, "seq": 0, "n": 0, "sample": -1, "t0": _INT64[0], "t1": _INT64[0],
        "sent_ns": 0, "origin_ns": 0}
_MIN_ITEMS = tuple(_MIN.items())
MAX_N = 2**32
_OPTIONAL_ITEMS = tuple(_OPTIONAL.items())


def encode(p: Packet) -> list:
    """Frames for ``p``: ``[header]`` or ``[header, body-buffer]``."""
    header = {
        "v": SCHEMA_VERSION, "kind": p.kind, "stream": p.stream, "epoch": p.epoch,
        "seq": p.seq, "n": p.n, "sample": p.sample, "t0": p.t0, "t1": p.t1,
        "sent_ns": p.sent_ns, "origin_ns": p.origin_ns,
        "origin": p.origin.as_list() if p.origin else None,
        "label": p.label, "control": p.control, "meta": p.meta,
        "geometry": list(p.geometry) if p.geometry else None,
    }
    if p.body is None:
        return [_pack(header)]
    body = p.body if p.body.flags.c_contiguous else np.ascontiguousarray(p.body)
    header["dtype"] = dtype_name(body.dtype)
    header["shape"] = list(body.shape)
    return [_pack(header), memoryview(body.reshape(-1).view(np.uint8))]


def _pack(header: dict) -> bytes:
    try:
        return msgpack.packb(header)
    except (TypeError, ValueError, OverflowError) as exc:
        raise ValueError(f"packet header/meta cannot be encoded: {exc}") from None


def _buffer(frame) -> memoryview:
    """A memoryview over a zmq.Frame, bytes or memoryview, without copying."""
    buf = getattr(frame, "buffer", frame)
    return memoryview(buf)


def decode(frames: Sequence, limits: Limits = DEFAULT_LIMITS) -> Packet:
    """Validate and decode one multipart message into a :class:`Packet`."""
    if not frames:
        raise DecodeError("empty", "no frames")
    if len(frames) > 2:
        raise DecodeError("frame_count", f"{len(frames)} frames, expected 1 or 2")
    head = _buffer(frames[0])
    if head.nbytes > limits.max_header_bytes:
        raise DecodeError("too_large", f"header of {head.nbytes} bytes")
    try:
        h = msgpack.unpackb(
            head, raw=False, strict_map_key=True, max_str_len=limits.max_str_len,
            max_bin_len=limits.max_header_bytes, max_array_len=limits.max_array_len,
            max_map_len=limits.max_map_len, max_ext_len=0,
        )
    except Exception as exc:  # msgpack raises several unrelated types on garbage
        raise DecodeError("garbage", type(exc).__name__) from None
    if not isinstance(h, dict):
        raise DecodeError("not_a_map", type(h).__name__)
    # exact type checks (msgpack yields plain int/str/list/dict; a bool is not an int here)
    for key, types in _REQUIRED_ITEMS:
        try:
            if type(h[key]) not in types:
                raise DecodeError("field_type", key)
        except KeyError:
            raise DecodeError("missing_field", key) from None
    for key, types in _OPTIONAL_ITEMS:
        if type(h.get(key)) not in types:
            raise DecodeError("field_type", key)
    if h["v"] != SCHEMA_VERSION:
        raise DecodeError("version", str(h["v"]))
    kind = h["kind"]
    if kind not in KINDS:
        raise DecodeError("kind", kind[:32])
    control = h.get("control")
    if kind == "control" and control not in CONTROLS:
        raise DecodeError("control", str(control)[:32])
    if h["n"] < 0:
        raise DecodeError("n_mismatch", "negative n")
    for key, low in _MIN_ITEMS:
        if not low <= h[key] < _INT64[1]:
            raise DecodeError("sample_id" if key == "sample" else "field_range", f"{key}={h[key]}")
    if h["n"] >= MAX_N:
        raise DecodeError("field_range", f"n={h['n']}")
    label = h.get("label")
    if label is not None and not _INT64[0] <= label < _INT64[1]:
        raise DecodeError("field_range", "label")
    origin = h.get("origin")
    if origin is not None:
        if len(origin) != 3 or not isinstance(origin[0], str) or not all(
                isinstance(v, int) and not isinstance(v, bool) for v in origin[1:]):
            raise DecodeError("field_type", "origin")
        if not 0 <= origin[1] < _INT64[1]:
            raise DecodeError("field_range", f"origin epoch {origin[1]}")
        if not -1 <= origin[2] < _INT64[1]:
            raise DecodeError("sample_id", f"origin sample {origin[2]}")
        origin = Origin(origin[0], origin[1], origin[2])
    geometry = h.get("geometry")
    if geometry is not None and not (0 < len(geometry) <= 3 and all(
            isinstance(g, int) and not isinstance(g, bool) and 0 < g < 2**31 for g in geometry)):
        raise DecodeError("field_type", "geometry")
    body = None
    if len(frames) == 2:
        body = _decode_body(h, _buffer(frames[1]), geometry, limits)
    elif h["n"] != 0 and kind != "control":
        raise DecodeError("n_mismatch", f"n={h['n']} but no body")
    return Packet(
        kind=kind, stream=h["stream"], epoch=h["epoch"], seq=h["seq"], origin=origin,
        n=h["n"], sample=h["sample"], t0=h["t0"], t1=h["t1"], sent_ns=h["sent_ns"],
        origin_ns=h["origin_ns"], label=h.get("label"), body=body,
        geometry=tuple(geometry) if geometry else None, control=control,
        meta=h.get("meta") or {},
    )


def _decode_body(h: dict, buf: memoryview, geometry, limits: Limits) -> np.ndarray:
    name = h.get("dtype")
    if name not in WIRE_DTYPES:
        raise DecodeError("dtype", str(name)[:32])
    if buf.nbytes > limits.max_body_bytes:
        raise DecodeError("too_large", f"body of {buf.nbytes} bytes")
    if (h["kind"] == "events") != (name in EVENT_DTYPES):
        raise DecodeError("dtype", f"{name} body in a {h['kind']} packet")
    dtype = WIRE_DTYPES[name]
    shape = h.get("shape") or [h["n"]]
    if len(shape) > 4 or not all(type(s) is int and s >= 0 for s in shape):
        raise DecodeError("field_type", "shape")
    count = math.prod(shape)
    if count * dtype.itemsize != buf.nbytes:
        raise DecodeError("body_size", f"{buf.nbytes} bytes for shape {shape} of {name}")
    if shape[0] != h["n"]:
        raise DecodeError("n_mismatch", f"n={h['n']} but body has {shape[0]} rows")
    body = np.frombuffer(buf, dtype=dtype, count=count).reshape(shape)
    if name in EVENT_DTYPES:
        _check_events(body, name, geometry)
    elif count and not _checkers()[1](body):
        raise DecodeError("not_finite", name)
    return body


_CHECK_REASONS = {1: ("time_backwards", "time goes backwards"), 2: ("coord_range", "x outside geometry"),
                  3: ("coord_range", "y outside geometry"), 4: ("coord_range", "polarity > 1")}


_CHECKS = None


def _checkers():
    """The compiled event and finiteness checkers, imported on first use."""
    global _CHECKS
    if _CHECKS is None:
        from .validate import all_finite, check_events

        _CHECKS = (check_events, all_finite)
    return _CHECKS


def _check_events(ev: np.ndarray, name: str, geometry) -> None:
    if ev.ndim != 1:
        raise DecodeError("field_type", "shape")
    if geometry is None or (name == "dvs" and len(geometry) < 2):
        raise DecodeError("missing_field", "geometry")
    if len(ev) == 0:
        return
    code = _checkers()[0](ev, name, geometry)
    if code:
        raise DecodeError(*_CHECK_REASONS[code])
