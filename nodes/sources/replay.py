"""Replay source: a sequence of recorded samples released as a timed event stream.

Per sample it yields a ``start`` control (sample id, label), the events framed into messages
(by count and/or time span) with the wire dtype and sensor geometry, and an
``end_of_sample`` control with the label.  In real time (``speed`` > 0) a message is
released when its last event is due — a sensor cannot send an event before it happens —
and its ``origin_ns`` is the wall-clock time its first event was due; as fast as possible
(``speed`` null) ``origin_ns`` is the release time.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any, Callable, Iterable, Iterator

import numpy as np

from rram_lsm.stream.clock import now_ns
from rram_lsm.stream.node import ConfigError, SourceNode
from rram_lsm.stream.packets import EVENT_DTYPES, Origin, Packet, control, dtype_name, new_epoch
from rram_lsm.stream.params import REQUIRED, Param

from .pacing import Pacer, check_speed, frame_slices, release_schedule

Sample = tuple[np.ndarray, "int | None"]
SampleSource = Iterable[Sample] | Callable[[], Iterable[Sample]]

FORMATS = ("nmnist", "ntidigits", "shd", "event_file", "spike_array", "recording", "prophesee", "tonic")

# What every replaying source accepts: pacing and framing.
PACING = (
    Param("speed", float, None, "x real time", "pacing: 1.0 = real time; 0 or unset = as fast as possible"),
    Param("loop", int, 1, "passes", "passes over the samples (0 = forever)"),
    Param("max_events", (int, type(None)), 4096, "events", "most events per message (None: no limit)"),
    Param("span_us", int, None, "us", "most time one message covers (unset: no limit)"),
    Param("gap_us", int, 0, "us", "silence between samples (real time only)"),
    Param("geometry", list, None, "", "sensor geometry [W, H] or [channels] (default: the data's)"),
)


def _dataset(param: Callable[[str], Any], name: str) -> tuple[Callable[[], Iterable[Sample]], tuple[int, ...] | None]:
    """A sample factory and its sensor geometry for the ``format``/``path`` parameters."""
    from . import readers

    fmt, path = param("format"), param("path")
    if fmt is None or path is None:
        raise ConfigError(f"node {name!r}: parameters 'format' and 'path' (dataset file or folder) are required")
    split = param("split")
    if fmt == "nmnist":
        crop, pol = param("crop"), param("polarity")
        geom = (crop, crop) if crop else readers.NMNIST_SENSOR
        return (lambda: ((readers.nmnist_preprocess(e, crop, pol), y)
                         for e, y in readers.iter_nmnist(path, split))), geom
    if fmt == "ntidigits":
        return (lambda: readers.read_ntidigits(path, split)), (64,)
    if fmt == "shd":
        return (lambda: readers.read_shd(path)), (700,)
    if fmt == "recording":  # what the recorder sink saved (nodes/recording.py)
        from rram_lsm.nodes.recording import iter_recording, recording_geometry

        geom = recording_geometry(path)  # read chunk by chunk: memory holds one sample
        return (lambda: iter_recording(path)), tuple(geom) if geom else None
    if fmt == "prophesee" or (fmt == "event_file" and path.endswith((".raw", ".dat"))):
        from . import prophesee  # EVT 2.0 / EVT 3.0 .raw and .dat, through expelliarmus

        encoding = param("encoding")
        prophesee.check_file(path, encoding)  # at configuration, not at the first pass
        geom = prophesee.prophesee_geometry(path, param("geometry"))
        return (lambda: [(prophesee.read_prophesee(path, encoding), None)]), geom
    if fmt == "tonic":  # any tonic.datasets class, its own layout under path (imports torch)
        from .tonic_datasets import tonic_samples

        return tonic_samples(param("dataset"), path, split, param("download"), param("dataset_args"),
                             bool(param("geometry")))
    if fmt == "spike_array":
        return (lambda: readers.read_spike_array(path, param("key"), param("bin_us"))), None
    geom = readers.aedat4_geometry(path) if path.endswith(".aedat4") else None
    return (lambda: [(readers.read_event_file(path), readers.event_file_label(path))]), geom


class ReplaySource(SourceNode):
    """Replays (events, label) samples, given in code or read from a dataset, as a timed stream.

    Samples come from the ``samples`` argument (an iterable, or a callable returning one per
    pass) or from the ``format``/``path`` parameters (readers.py).  ``loop`` is the number of
    passes (0 = forever); sample ids keep counting across passes.
    """

    kind = "source"
    PARAMS = PACING + (
        Param("format", str, None, "", "what ``path`` holds (required without in-code samples)",
              choices=FORMATS),
        Param("path", str, None, "", "dataset folder or file (required without in-code samples)",
              path="exists"),
        Param("split", str, "train", "", "dataset split (nmnist, ntidigits, tonic: train/test or the class's own)"),
        Param("crop", (int, type(None)), 16, "pixels", "nmnist: centre crop (None: whole sensor)"),
        Param("polarity", (int, type(None)), 1, "", "nmnist: the polarity kept (None: both)"),
        Param("key", str, None, "", "spike_array: the array's name in the .npz"),
        Param("bin_us", int, 10_000, "us", "spike_array: the width of one bin of counts"),
        Param("encoding", str, None, "", "prophesee: the file's encoding (unset: from its header)",
              choices=("evt2", "evt3", "dat")),
        Param("dataset", str, None, "", "tonic: the tonic.datasets class, e.g. DVSGesture"),
        Param("download", bool, False, "", "tonic: let tonic download a dataset it does not find"),
        Param("dataset_args", dict, None, "", "tonic: further arguments of the dataset class"),
    )

    def __init__(self, name: str, params: dict[str, Any] | None = None, samples: SampleSource | None = None):
        super().__init__(name, params)
        self.speed = check_speed(self.param("speed"))
        self.loop = self.param("loop")
        self.max_events = self.param("max_events")
        self.span_us = self.param("span_us")
        self.gap_us = self.param("gap_us")
        if self.loop < 0 or self.gap_us < 0:
            raise ConfigError(f"node {name!r}: parameters 'loop' and 'gap_us' must be >= 0")
        geometry = self.param("geometry")
        if samples is None:
            self._factory, known = _dataset(self.param, name)
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
        anchor_wall = None  # set at the first sample: loading the data must not count as
        base_ns, sample, passes = 0, 0, 0  # time already played (it would release a burst)
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
                if anchor_wall is None:
                    anchor_wall = self.clock_ns()
                    pacer.start()
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


class DatasetReplaySource(ReplaySource):
    """Replays a recorded dataset or event file as a timed event stream (kind ``replay``)."""

    PARAMS = tuple(replace(p, default=REQUIRED, doc=p.doc.split(" (required")[0])
                   if p.name in ("format", "path") else p for p in ReplaySource.PARAMS)
