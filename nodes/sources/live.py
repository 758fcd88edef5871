"""Live sources: a Lab Streaming Layer inlet (pylsl); the iniVation inputs are in dv.py.

Live packages are optional (``pip install 'rram-lsm[live]'``); they are imported in
``setup()`` so the node can be configured anywhere, and a missing package or device gives
an error that says what is missing.  Live streams are continuous (sample -1); a segmenter
(segmenter.py) makes samples of them.
"""
from __future__ import annotations

import importlib
import time
from typing import Any, Iterator

import numpy as np

from rram_lsm.stream.node import ConfigError, SourceNode
from rram_lsm.stream.packets import NEURAL_DTYPE, Origin, Packet, new_epoch
from rram_lsm.stream.params import Param

EXTRA = "pip install 'rram-lsm[live]'"


class LiveSourceError(RuntimeError):
    """A live source's package or device is absent."""


def optional_import(module: str, package: str, user: str = "live source"):
    """Import an optional package, or LiveSourceError naming it and the pip extra."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise LiveSourceError(f"{user} needs the package {package!r} ({err}); install it with {EXTRA}") from err


def lsl_chunk_to_events(samples: np.ndarray, stamps_s: np.ndarray, t0_s: float) -> np.ndarray:
    """Neural events from an LSL chunk (samples x channels of spike counts): count c -> c events."""
    counts = np.rint(np.clip(np.asarray(samples, dtype=float), 0, None)).astype(np.int64)
    if counts.ndim != 2 or len(counts) != len(stamps_s):
        raise ValueError(f"LSL chunk of shape {counts.shape} does not match {len(stamps_s)} timestamps")
    i, ch = np.nonzero(counts)
    reps = counts[i, ch]
    ev = np.empty(int(reps.sum()), NEURAL_DTYPE)
    ev["t"] = np.repeat(np.round((np.asarray(stamps_s)[i] - t0_s) * 1e6).astype(np.int64), reps)
    ev["x"] = np.repeat(ch, reps)
    return ev[np.argsort(ev["t"], kind="stable")]


class LslSource(SourceNode):
    """Reads a spike-count LSL stream; each channel is an electrode, each value a spike count."""

    PARAMS = (
        Param("name", str, None, "", "the LSL stream's name (give it or 'type')"),
        Param("type", str, None, "", "the LSL stream's type"),
        Param("resolve_timeout_s", float, 5.0, "s", "how long to look for the stream"),
        Param("chunk", int, 1024, "samples", "most samples per pull"),
        Param("idle_timeout_s", float, None, "s", "end after this long without data (unset: never)"),
    )

    def __init__(self, name: str, params: dict[str, Any] | None = None):
        super().__init__(name, params)
        self.stream_name = self.param("name")
        self.stream_type = self.param("type")
        if not (self.stream_name or self.stream_type):
            raise ConfigError(f"node {name!r}: give the LSL stream's 'name' or 'type'")
        self.timeout = float(self.param("resolve_timeout_s"))
        self.max_chunk = self.param("chunk")
        # End the stream after this long without data (None: wait for ever, as live data does).
        self.idle_timeout = self.param("idle_timeout_s")
        self.epoch = new_epoch()
        self.inlet = None

    def setup(self) -> None:
        pylsl = optional_import("pylsl", "pylsl")
        prop, value = ("name", self.stream_name) if self.stream_name else ("type", self.stream_type)
        found = pylsl.resolve_byprop(prop, value, timeout=self.timeout)
        if not found:
            raise LiveSourceError(f"no LSL stream with {prop}={value!r} found within {self.timeout} s")
        self.inlet = pylsl.StreamInlet(found[0])
        self.inlet.open_stream(timeout=self.timeout)  # connect now, so no early sample is missed
        self.geometry = (found[0].channel_count(),)

    def packets(self) -> Iterator[Packet]:
        if self.inlet is None:
            self.setup()
        t0_s = None
        last_data = time.monotonic()
        while True:
            samples, stamps = self.inlet.pull_chunk(timeout=0.05, max_samples=self.max_chunk)
            if not stamps:
                if self.idle_timeout is not None and time.monotonic() - last_data > self.idle_timeout:
                    return
                continue
            now = time.time_ns()
            last_data = time.monotonic()
            t0_s = stamps[0] if t0_s is None else t0_s
            ev = lsl_chunk_to_events(np.asarray(samples), np.asarray(stamps), t0_s)
            if len(ev):
                yield Packet(kind="events", body=ev, t0=int(ev["t"][0]), t1=int(ev["t"][-1]), origin_ns=now,
                             origin=Origin(self.name, self.epoch, -1), geometry=self.geometry)

    def close(self) -> None:
        if self.inlet is not None:
            self.inlet.close_stream()
