"""Replay source: a sequence of recorded samples released as a timed event stream.

Per sample it yields a ``start`` control (sample id, label), the events framed into messages
(by count and/or time span) with the wire dtype and sensor geometry, and an
``end_of_sample`` control with the label.  In real time (``speed`` > 0) a message is
released when its last event is due — a sensor cannot send an event before it happens —
and its ``origin_ns`` is the wall-clock time its first event was due; as fast as possible
(``speed`` null) ``origin_ns`` is the release time.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable, Iterator

import numpy as np

from rram_lsm.stream.clock import now_ns
from rram_lsm.stream.node import ConfigError, SourceNode
from rram_lsm.stream.packets import EVENT_DTYPES, Origin, Packet, control, dtype_name, new_epoch

from .pacing import Pacer, check_speed, frame_slices, release_schedule

Sample = tuple[np.ndarray, "int | None"]
SampleSource = Iterable[Sample] | Callable[[], Iterable[Sample]]

FORMATS = ("nmnist", "ntidigits", "shd", "event_file", "spike_array", "recording")


def _dataset(params: dict[str, Any], name: str) -> tuple[Callable[[], Iterable[Sample]], tuple[int, ...] | None]:
    """A sample factory and its sensor geometry for the ``format``/``path`` parameters."""
    from . import readers

    fmt, path = params.get("format"), params.get("path")
    if fmt not in FORMATS:
        raise ConfigError(f"node {name!r}: parameter 'format' must be one of {FORMATS}, got {fmt!r}")
    if not isinstance(path, str):
        raise ConfigError(f"node {name!r}: parameter 'path' (dataset file or folder) is required")
    split = params.get("split", "train")
    if fmt == "nmnist":
        crop, pol = params.get("crop", 16), params.get("polarity", 1)
        geom = (crop, crop) if crop else readers.NMNIST_SENSOR
        return (lambda: ((readers.nmnist_preprocess(e, crop, pol), y)
                         for e, y in readers.iter_nmnist(path, split))), geom
    if fmt == "ntidigits":
        return (lambda: readers.read_ntidigits(path, split)), (64,)
    if fmt == "shd":
        return (lambda: readers.read_shd(path)), (700,)
    if fmt == "recording":  # what the recorder sink saved (nodes/recording.py)
        from rram_lsm.nodes.recording import read_recording

        _, geom = read_recording(path)
        return (lambda: read_recording(path)[0]), tuple(geom) if geom else None
    if fmt == "spike_array":
        return (lambda: readers.read_spike_array(path, params.get("key"), params.get("bin_us", 10_000))), None
    geom = readers.aedat4_geometry(path) if path.endswith(".aedat4") else None
    return (lambda: [(readers.read_event_file(path), readers.event_file_label(path))]), geom


class ReplaySource(SourceNode):
    """Replays (events, label) samples; params: speed, loop, max_events, span_us, gap_us, geometry.

    Samples come from the ``samples`` argument (an iterable, or a callable returning one per
    pass) or from the ``format``/``path`` parameters (readers.py).  ``loop`` is the number of
    passes (0 = forever); sample ids keep counting across passes.
    """

    kind = "source"

    def __init__(self, name: str, params: dict[str, Any] | None = None, samples: SampleSource | None = None):
        super().__init__(name, params)
        self.speed = check_speed(self.param("speed", None))
        self.loop = self.param("loop", 1, int)
        self.max_events = self.param("max_events", 4096, int)
        self.span_us = self.param("span_us", None, int)
        self.gap_us = self.param("gap_us", 0, int)
        if self.loop < 0 or self.gap_us < 0:
            raise ConfigError(f"node {name!r}: parameters 'loop' and 'gap_us' must be >= 0")
        geometry = self.param("geometry", None, (list, tuple))
        if samples is None:
            self._factory, known = _dataset(self.params, name)
            geometry = geometry or known
        elif callable(samples):
            self._factory = samples
        elif isinstance(samples, (list, tuple)):
            self._factory = lambda: samples
        else:
            if self.loop != 1:
                raise ConfigError(f"node {name!r}: 'loop' needs a list or a callable of samples, not a one-shot iterator")
            self._factory = lambda: samples
        self.geometry: tuple[int, ...] | None = tuple(int(g) for g in geometry) if geometry else None
        # Across a restart the runtime sets both: the data's origin epoch (the launcher keeps
        # it, so a re-sent sample keeps its identity and sinks drop it as a duplicate) and the
        # first sample not yet acknowledged (earlier ones are skipped, not sent again).
        self.epoch = new_epoch()
        self.resume_from = 0
        self.clock_ns: Callable[[], int] = now_ns  # stream.clock: one clock for every origin_ns
        self.pacer = Pacer()

    def _check(self, events: np.ndarray, sample: int) -> np.ndarray:
        name = dtype_name(events.dtype) if events.dtype.names else None
        if name not in EVENT_DTYPES:
            raise ValueError(f"node {self.name!r}: sample {sample} has dtype {events.dtype}, not an event wire dtype")
        if len(events) and (np.diff(events["t"]) < 0).any():
            events = events[np.argsort(events["t"], kind="stable")]
        if self.geometry is None and len(events):
            dims = ("x", "y") if "y" in events.dtype.names else ("x",)
            self.geometry = tuple(int(events[d].max()) + 1 for d in dims)
        if self.geometry is not None and len(events):
            for d, size in zip(("x", "y"), self.geometry):
                if d in events.dtype.names and int(events[d].max()) >= size:
                    raise ValueError(f"node {self.name!r}: sample {sample} has {d} up to "
                                     f"{int(events[d].max())}, outside geometry {self.geometry}")
        return events

    def packets(self) -> Iterator[Packet]:
        """Every sample, paced: start, events messages, end_of_sample."""
        pacer, paced = self.pacer, self.speed is not None
        anchor_wall = self.clock_ns()
        pacer.start()
        base_ns, sample, passes = 0, 0, 0
        while self.loop == 0 or passes < self.loop:
            passes += 1
            empty_pass = True
            for events, label in self._factory():
                empty_pass = False
                if sample < self.resume_from:  # delivered before a restart (the data is still
                    sample += 1                # generated, so what follows is the same data)
                    continue
                events = self._check(np.asarray(events), sample)
                label = None if label is None else int(label)
                origin = Origin(self.name, self.epoch, sample)
                sched = release_schedule(events["t"], self.speed)
                t_first = int(events["t"][0]) if len(events) else 0
                t_last = int(events["t"][-1]) if len(events) else 0
                if paced:
                    pacer.wait_until(base_ns)
                now = anchor_wall + base_ns if paced else self.clock_ns()
                yield control("start", sample=sample, label=label, origin=origin, origin_ns=now,
                              t0=t_first, t1=t_last, geometry=self.geometry)
                for sl in frame_slices(events["t"], self.max_events, self.span_us, t_first):
                    chunk = events[sl]
                    if paced:
                        pacer.wait_until(base_ns + int(sched[sl.stop - 1]))
                        origin_ns = anchor_wall + base_ns + int(sched[sl.start])
                    else:
                        origin_ns = self.clock_ns()
                    yield Packet(kind="events", body=chunk, sample=sample, label=label, origin=origin,
                                 origin_ns=origin_ns, t0=int(chunk["t"][0]), t1=int(chunk["t"][-1]),
                                 geometry=self.geometry)
                yield control("end_of_sample", sample=sample, label=label, origin=origin,
                              origin_ns=now, t0=t_first, t1=t_last, meta={"n_events": int(len(events))})
                if paced:
                    base_ns += int(sched[-1] if len(sched) else 0) + int(self.gap_us * 1000 / self.speed)
                sample += 1
            if empty_pass:
                break
