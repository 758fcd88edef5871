"""Prophesee event files: EVT 2.0 and EVT 3.0 ``.raw`` and ``.dat``, read with ``expelliarmus``.

A Prophesee file starts with ASCII header lines beginning with ``%``; Metavision writes the
sensor size as ``% geometry WxH`` (also in ``% format EVT3;height=H;width=W``, and DAT files as
``% Height H`` / ``% Width W``), and the encoding as ``% evt 2.0`` / ``% evt 3.0`` or
``% format EVT2...``.  expelliarmus (installed with tonic; C, no torch) decodes the body; it
writes no geometry, so files without one need the replay's ``geometry`` parameter.  The header
is checked here first: expelliarmus loops for ever on a file that ends inside its header.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from rram_lsm.stream.node import ConfigError
from rram_lsm.stream.packets import DVS_DTYPE

from .readers import DatasetError

ENCODINGS = ("evt2", "evt3", "dat")
SUFFIXES = (".raw", ".dat")
_HEADER_LIMIT = 1 << 20  # no real header is near 1 MiB; stop looking there


def read_header(path: str | Path) -> tuple[list[str], int]:
    """The ``%`` header lines of a Prophesee file (without the ``% ``) and the body's offset."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"Prophesee file {path} not found")
    with open(path, "rb") as f:
        head = f.read(_HEADER_LIMIT)
    lines, pos = [], 0
    while head[pos:pos + 1] == b"%":
        end = head.find(b"\n", pos)
        if end < 0:
            raise DatasetError(f"Prophesee file {path} ends inside its header (truncated?)")
        lines.append(head[pos + 1:end].decode("ascii", "replace").strip())
        pos = end + 1
    return lines, pos


def header_geometry(lines: list[str]) -> tuple[int, int] | None:
    """(width, height) from ``geometry WxH``, ``format ...;width=W;height=H`` or DAT's Width/Height."""
    fields: dict[str, str] = {}
    for line in lines:
        key, _, value = line.partition(" ")
        fields.setdefault(key.lower(), value.strip())
    if m := re.fullmatch(r"(\d+)\s*x\s*(\d+)", fields.get("geometry", "")):
        return int(m[1]), int(m[2])
    fmt = dict(kv.split("=", 1) for kv in fields.get("format", "").split(";")[1:] if "=" in kv)
    for w, h in ((fmt.get("width"), fmt.get("height")), (fields.get("width"), fields.get("height"))):
        if w and h and w.isdigit() and h.isdigit():
            return int(w), int(h)
    return None


def file_encoding(path: str | Path, lines: list[str]) -> str:
    """``dat`` for ``.dat``; for ``.raw`` the header's ``evt`` or ``format`` line (EVT 2.0 or 3.0)."""
    path = Path(path)
    if path.suffix == ".dat":
        return "dat"
    for line in lines:
        key, _, value = line.partition(" ")
        key, value = key.lower(), value.strip().upper()
        if key == "evt" and value in ("2.0", "3.0"):
            return f"evt{value[0]}"
        if key == "format" and value.split(";")[0] in ("EVT2", "EVT3"):
            return value.split(";")[0].lower()
    raise DatasetError(f"Prophesee file {path}: its header names no EVT 2.0 / 3.0 encoding "
                       f"(no '% evt 2.0' or '% format EVT3' line); give the replay's 'encoding' parameter")


def check_file(path: str | Path, encoding: str | None = None) -> tuple[str, int]:
    """The file's encoding (``encoding`` if given, else from suffix and header) and body offset."""
    path = Path(path)
    if path.suffix not in SUFFIXES:
        raise DatasetError(f"Prophesee file {path}: expected a .raw (EVT 2.0/3.0) or .dat file")
    lines, body = read_header(path)
    encoding = encoding or file_encoding(path, lines)
    if encoding not in ENCODINGS:
        raise ConfigError(f"Prophesee file {path}: parameter 'encoding' must be one of {ENCODINGS}, got {encoding!r}")
    if (encoding == "dat") != (path.suffix == ".dat"):
        raise ConfigError(f"Prophesee file {path}: encoding {encoding!r} needs a "
                          f"{'.dat' if encoding == 'dat' else '.raw'} file")
    return encoding, body


def read_prophesee(path: str | Path, encoding: str | None = None) -> np.ndarray:
    """Events (DVS wire dtype, t from the first event) of an EVT2/EVT3 ``.raw`` or a ``.dat`` file."""
    path = Path(path)
    encoding, body = check_file(path, encoding)
    size = path.stat().st_size
    try:
        from expelliarmus import Wizard
    except ImportError:
        raise DatasetError(f"reading the Prophesee file {path} needs the 'expelliarmus' package "
                           "(it comes with tonic): pip install expelliarmus") from None
    raw = Wizard(encoding=encoding).read(path) if size > body + (2 if encoding == "dat" else 0) else None
    if raw is None:
        if size > body + (2 if encoding == "dat" else 0):
            raise DatasetError(f"Prophesee file {path}: expelliarmus decoded no {encoding.upper()} "
                               f"events from its {size - body} bytes (damaged, or not {encoding.upper()})")
        raw = np.zeros(0, [("t", "<i8"), ("x", "<i2"), ("y", "<i2"), ("p", "u1")])
    ev = np.empty(len(raw), DVS_DTYPE)
    ev["t"] = raw["t"] - (int(raw["t"][0]) if len(raw) else 0)
    ev["x"], ev["y"], ev["p"] = raw["x"], raw["y"], raw["p"]
    return ev


def prophesee_geometry(path: str | Path, geometry=None) -> tuple[int, int]:
    """The sensor size: the ``geometry`` parameter if given, else the file header's; else an error."""
    if geometry:
        return int(geometry[0]), int(geometry[1])
    found = header_geometry(read_header(path)[0])
    if found is None:
        raise ConfigError(f"Prophesee file {path} declares no geometry (no '% geometry WxH' header line; "
                           f"expelliarmus writes none): give the replay's 'geometry' parameter, [width, height]")
    return found
