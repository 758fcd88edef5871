"""A minimal AEDAT4 writer (iniVation's DV file format): one event stream, uncompressed.

Layout (https://docs.inivation.com/software/software-advanced-usage/file-formats/aedat-4.0.html):
the magic line, a size-prefixed ``IOHE`` flatbuffer (compression NONE, no file table, and an
XML description of stream 0 with its sensor size), then one record per packet: stream id
(int32), payload size (int32) and a size-prefixed ``EVTS`` flatbuffer holding a vector of
16-byte events (t int64 µs, x int16, y int16, polarity bool, 3 padding bytes).

Each packet goes to the file in one unbuffered write, so a process that dies loses at most
the packet being written; readers (dv-processing, ``aedat``) read such a file up to its last
whole packet.  The flatbuffers are laid out by hand (fixed, aligned offsets), so writing
needs nothing beyond numpy.
"""
from __future__ import annotations

import os
import struct
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np

MAGIC = b"#!AER-DAT4.0\r\n"
DV_EVENT = np.dtype([("t", "<i8"), ("x", "<i2"), ("y", "<i2"), ("p", "u1"), ("_pad", "V3")])
STREAM_ID = 0


def header_bytes(width: int, height: int, source: str) -> bytes:
    """The IOHeader flatbuffer: table {compression: NONE, dataTablePosition: -1, infoNode: XML}."""
    xml = (
        '<dv version="2.0">\n'
        '    <node name="outInfo" path="/outInfo/">\n'
        f'        <node name="{STREAM_ID}" path="/outInfo/{STREAM_ID}/">\n'
        '            <attr key="compression" type="string">NONE</attr>\n'
        '            <attr key="originalModuleName" type="string">rram-lsm</attr>\n'
        '            <attr key="originalOutputName" type="string">events</attr>\n'
        '            <attr key="typeDescription" type="string">Array of events (polarity ON/OFF).</attr>\n'
        '            <attr key="typeIdentifier" type="string">EVTS</attr>\n'
        f'            <node name="info" path="/outInfo/{STREAM_ID}/info/">\n'
        f'                <attr key="sizeX" type="int">{int(width)}</attr>\n'
        f'                <attr key="sizeY" type="int">{int(height)}</attr>\n'
        f'                <attr key="source" type="string">{escape(source)}</attr>\n'
        '            </node>\n'
        '        </node>\n'
        '    </node>\n'
        '</dv>\n').encode()
    text = struct.pack("<I", len(xml)) + xml + b"\0"
    text += b"\0" * (-len(text) % 4)
    # offsets from the size prefix: root 4, id 8, vtable 12 (10 bytes + 2 pad), table 24
    body = (struct.pack("<I4s", 20, b"IOHE")
            + struct.pack("<HHHHH", 10, 20, 4, 8, 16) + b"\0\0"
            + struct.pack("<iiqI", 12, 0, -1, 4) + text)
    return struct.pack("<I", len(body)) + body


def packet_bytes(events: np.ndarray) -> bytes:
    """One AEDAT4 packet record of DVS events (fields t, x, y, p; t in absolute µs)."""
    n = len(events)
    arr = np.zeros(n, DV_EVENT)
    arr["t"], arr["x"], arr["y"], arr["p"] = events["t"], events["x"], events["y"], events["p"] != 0
    # offsets from the size prefix: root 4, id 8, vtable 12 (6 bytes + 2 pad), table 20, vector 28
    fb = (struct.pack("<I4s", 16, b"EVTS") + struct.pack("<HHH", 6, 8, 4) + b"\0\0"
          + struct.pack("<iII", 8, 4, n) + arr.tobytes())
    payload = struct.pack("<I", len(fb)) + fb
    return struct.pack("<ii", STREAM_ID, len(payload)) + payload


class Aedat4Writer:
    """Appends DVS event packets to an AEDAT4 file as they come (timestamps must not decrease)."""

    def __init__(self, path: str | Path, width: int, height: int, source: str = "rram-lsm"):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.width, self.height = int(width), int(height)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        self._put(MAGIC + header_bytes(width, height, source))
        self.last_t: int | None = None
        self.events = 0
        self.packets = 0

    def _put(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view):]

    def write(self, events: np.ndarray) -> None:
        """Write one packet; ValueError for decreasing time or coordinates off the sensor."""
        if len(events) == 0:
            return
        t = events["t"]
        if (np.diff(t) < 0).any() or (self.last_t is not None and int(t[0]) < self.last_t):
            raise ValueError(f"AEDAT4 file {self.path}: event timestamps must not decrease")
        if int(events["x"].max()) >= self.width or int(events["y"].max()) >= self.height:
            raise ValueError(f"AEDAT4 file {self.path}: events outside the {self.width}x{self.height} sensor")
        self._put(packet_bytes(events))
        self.last_t = int(t[-1])
        self.events += len(events)
        self.packets += 1

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
