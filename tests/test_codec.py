"""Codec round trips (every kind, property-based) and rejection of malformed messages."""
from __future__ import annotations

import msgpack
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rram_lsm.stream import codec
from rram_lsm.stream.codec import DecodeError, decode, encode
from rram_lsm.stream.packets import (COCHLEA_DTYPE, CONTROLS, DVS_DTYPE, NEURAL_DTYPE, Origin, Packet,
                            control)


def dvs(n, t0=0):
    ev = np.zeros(n, DVS_DTYPE)
    ev["t"] = np.arange(t0, t0 + n) * 10
    ev["x"] = np.arange(n) % 34
    ev["y"] = np.arange(n) % 17
    ev["p"] = np.arange(n) % 2
    return ev


def roundtrip(p: Packet) -> Packet:
    # bytes() of every frame: what actually crosses a socket
    return decode([bytes(f) for f in encode(p)])


@pytest.mark.parametrize("kind", ["events", "features", "embedding", "prediction", "control", "telemetry"])
def test_roundtrip_every_kind(kind):
    origin = Origin("cam", 7, 3)
    if kind == "events":
        p = Packet(kind=kind, body=dvs(100), geometry=(34, 34), origin=origin, sample=3, label=5)
    elif kind == "control":
        p = control("end_of_sample", origin=origin, sample=3, label=5)
    elif kind == "telemetry":
        p = Packet(kind=kind, meta={"msgs_in": 3, "latency_us": {"p50": 1.5}})
    else:
        p = Packet(kind=kind, body=np.arange(12, dtype="<f4").reshape(3, 4), origin=origin,
                   meta={"pred": 2, "topk": [2, 1]})
    p.stream, p.epoch, p.seq, p.sent_ns, p.origin_ns = "s", 99, 4, 123, 120
    q = roundtrip(p)
    for field in ("kind", "stream", "epoch", "seq", "origin", "n", "sample", "label", "sent_ns",
                  "origin_ns", "control", "meta", "geometry"):
        assert getattr(q, field) == getattr(p, field), field
    if p.body is not None:
        assert q.body.dtype == p.body.dtype and q.body.shape == p.body.shape
        assert np.array_equal(q.body, p.body)


def test_body_is_not_copied():
    frames = encode(Packet(kind="events", body=dvs(64), geometry=(34, 34)))
    buf = bytearray(frames[1])
    q = decode([frames[0], buf])
    buf[0:8] = (12345).to_bytes(8, "little")  # mutate the frame: the decoded view sees it
    assert q.body["t"][0] == 12345


@st.composite
def event_packets(draw):
    name = draw(st.sampled_from(["dvs", "cochlea", "neural"]))
    dtype = {"dvs": DVS_DTYPE, "cochlea": COCHLEA_DTYPE, "neural": NEURAL_DTYPE}[name]
    n = draw(st.integers(0, 300))
    w = draw(st.integers(1, 512))
    h = draw(st.integers(1, 512))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    ev = np.zeros(n, dtype)
    ev["t"] = np.sort(rng.integers(0, 2**40, n))
    ev["x"] = rng.integers(0, w, n)
    if "y" in dtype.names:
        ev["y"] = rng.integers(0, h, n)
    if "p" in dtype.names:
        ev["p"] = rng.integers(0, 2, n)
    geom = (w, h) if name == "dvs" else (w,)
    origin = Origin(draw(st.text(max_size=20)), draw(st.integers(0, 2**62)), draw(st.integers(-1, 2**31)))
    return Packet(kind="events", body=ev, geometry=geom, origin=origin,
                  seq=draw(st.integers(0, 2**62)), epoch=draw(st.integers(0, 2**62)),
                  sample=draw(st.integers(-1, 2**31)), label=draw(st.none() | st.integers(0, 1000)),
                  stream=draw(st.text(max_size=30)),
                  meta=draw(st.dictionaries(st.text(max_size=8), st.integers(-2**63, 2**64 - 1) | st.text(max_size=8), max_size=5)))


@settings(max_examples=150, deadline=None)
@given(event_packets())
def test_roundtrip_property_events(p):
    q = roundtrip(p)
    assert np.array_equal(q.body, p.body) and q.body.dtype == p.body.dtype
    assert (q.origin, q.seq, q.epoch, q.sample, q.label, q.stream, q.meta, q.geometry) == \
           (p.origin, p.seq, p.epoch, p.sample, p.label, p.stream, p.meta, p.geometry)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.lists(st.floats(allow_nan=False, allow_infinity=False, width=32), min_size=3, max_size=3),
                min_size=0, max_size=20),
       st.sampled_from(["features", "embedding", "prediction"]))
def test_roundtrip_property_dense(rows, kind):
    body = np.array(rows, dtype="<f4").reshape(len(rows), 3)
    q = roundtrip(Packet(kind=kind, body=body))
    assert q.n == len(rows) and np.array_equal(q.body, body)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=200), min_size=1, max_size=3))
def test_random_bytes_never_crash(frames):
    try:
        decode(frames)
    except DecodeError as exc:
        assert exc.reason


def _header(p: Packet) -> dict:
    return msgpack.unpackb(encode(p)[0])


def good_events():
    p = Packet(kind="events", body=dvs(20), geometry=(34, 34), origin=Origin("s", 1, 0))
    return _header(p), bytes(encode(p)[1])


def malformed_messages() -> list[tuple[str, list]]:
    """(expected reason, frames) for each distinct kind of bad message."""
    h, body = good_events()
    cases = [("garbage", [b"\xc1\xff\x00garbage"]), ("not_a_map", [msgpack.packb([1, 2, 3])])]

    def variant(reason, change=None, drop=None, frames_body=body):
        hh = dict(h)
        if change:
            hh.update(change)
        if drop:
            del hh[drop]
        cases.append((reason, [msgpack.packb(hh), frames_body] if frames_body is not None else [msgpack.packb(hh)]))

    variant("version", {"v": 99})
    variant("kind", {"kind": "bogus"})
    variant("dtype", {"dtype": "f32", "shape": [65]}, frames_body=body)  # floats in an events packet
    variant("n_mismatch", {"n": 19})  # n disagrees with the body
    variant("body_size", {}, frames_body=body[:-5])  # truncated frame
    bad = np.frombuffer(body, DVS_DTYPE).copy()
    bad["x"][3] = 40
    variant("coord_range", {}, frames_body=bad.tobytes())
    bad = np.frombuffer(body, DVS_DTYPE).copy()
    bad["t"][5] = 0
    variant("time_backwards", {}, frames_body=bad.tobytes())
    cases.append(("too_large", [b"\x80" + b"\x00" * (codec.DEFAULT_LIMITS.max_header_bytes + 1)]))
    variant("missing_field", drop="seq")
    variant("field_type", {"seq": "seven"})
    variant("field_type", {"origin": ["s", "x", 1]})
    variant("frame_count", frames_body=body)
    cases[-1] = ("frame_count", cases[-1][1] + [b"extra"])
    variant("control", {"kind": "control", "control": "explode", "n": 0}, frames_body=None)
    variant("n_mismatch", {"n": 5}, frames_body=None)
    variant("dtype", {"dtype": "pickle"})
    return cases


@pytest.mark.parametrize("reason,frames", malformed_messages(), ids=lambda v: v if isinstance(v, str) else "")
def test_malformed_rejected_with_reason(reason, frames):
    with pytest.raises(DecodeError) as info:
        decode(frames)
    assert info.value.reason == reason


def test_at_least_ten_distinct_reasons():
    assert len({r for r, _ in malformed_messages()}) >= 10


def test_unencodable_meta_is_a_clear_error():
    with pytest.raises(ValueError, match="meta"):
        encode(Packet(kind="prediction", meta={"big": 2**70}))
    with pytest.raises(ValueError, match="wire dtype"):
        encode(Packet(kind="features", body=np.zeros(3, np.complex64)))


def test_control_names_are_validated():
    with pytest.raises(ValueError, match="unknown control"):
        control("reboot")
    for name in CONTROLS:
        assert roundtrip(control(name)).control == name
