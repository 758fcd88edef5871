"""A webcam or a video file as a DVS: OpenCV frames through the frame emulator (frames_dvs.py).

Frames are converted to grey, scaled to the sensor size with area averaging (34x34 by
default, the built-in visual model's sensor) and fed to ``FrameDvs``; each frame interval
becomes one events message.  Both are continuous streams (sample -1), like a DVS camera, so
``rram-lsm live`` puts a segmenter after them.  OpenCV (``opencv-python-headless``, in the
``live`` extra) is imported in ``setup()``.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from rram_lsm.stream.node import ConfigError, SourceNode
from rram_lsm.stream.packets import Origin, Packet, new_epoch
from rram_lsm.stream.params import REQUIRED, Param

from .frames_dvs import FrameDvs, FrameDvsParams
from .live import LiveSourceError, optional_import
from .pacing import Pacer, check_speed

DEFAULT_SIZE = (34, 34)


def cv2_module():
    """OpenCV, with its own warnings (e.g. about absent cameras) silenced: errors say it all."""
    cv2 = optional_import("cv2", "opencv-python-headless")
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    return cv2


def sensor_frame(cv2, frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A BGR or grey uint8 OpenCV frame as (H, W) intensities in [0, 1] at ``size`` (W, H)."""
    grey = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY) if frame.ndim == 3 else frame
    if grey.shape != (size[1], size[0]):
        grey = cv2.resize(grey, size, interpolation=cv2.INTER_AREA)
    return grey.astype(np.float64) / 255.0


_D = FrameDvsParams()


class _FrameDvsSource(SourceNode):
    """Shared by ``video`` and ``webcam``: the sensor size and the emulator's settings."""

    PARAMS = (
        Param("size", list, list(DEFAULT_SIZE), "px", "sensor [width, height] the frames are scaled to"),
        Param("threshold", float, _D.threshold, "log intensity", "contrast threshold, ON and OFF"),
        Param("threshold_mismatch", float, _D.threshold_mismatch, "log intensity",
              "std of each pixel's thresholds around 'threshold'"),
        Param("refractory_us", int, _D.refractory_us, "us", "a pixel's blind time after an event"),
        Param("noise_hz", float, _D.noise_hz, "Hz", "background noise events per pixel per second"),
        Param("dark_level", float, _D.dark_level, "", "added to intensities in [0, 1] before the log"),
        Param("seed", int, 0, "", "seed of the threshold mismatch, start levels and noise"),
    )

    def __init__(self, name: str, params: dict[str, Any] | None = None):
        super().__init__(name, params)
        size = self.param("size")
        if len(size) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size):
            raise ConfigError(f"node {name!r}: parameter 'size' must be [width, height] in pixels, got {size!r}")
        self.size = (int(size[0]), int(size[1]))
        self.dvs = FrameDvsParams(
            threshold=float(self.param("threshold")),
            threshold_mismatch=float(self.param("threshold_mismatch")),
            refractory_us=int(self.param("refractory_us")),
            noise_hz=float(self.param("noise_hz")),
            dark_level=float(self.param("dark_level")))
        try:
            self.dvs.check()
        except ConfigError as err:
            raise ConfigError(f"node {name!r}: {err}") from None
        self.seed = self.param("seed")
        self.geometry = self.size
        self.epoch = new_epoch()
        self.cap = None
        self.cv2 = None

    def frames(self) -> Iterator[tuple[np.ndarray, float, int]]:
        """(OpenCV frame, time in µs, wall-clock ns when it was seen), in order."""
        raise NotImplementedError

    def packets(self) -> Iterator[Packet]:
        if self.cap is None:
            self.setup()
        emulator = FrameDvs(self.size, self.dvs, self.seed)
        origin = Origin(self.name, self.epoch, -1)
        for frame, t_us, seen_ns in self.frames():
            ev = emulator(sensor_frame(self.cv2, frame, self.size), t_us)
            self.gauges["frames"] = self.gauges.get("frames", 0) + 1
            if len(ev):
                yield Packet(kind="events", body=ev, t0=int(ev["t"][0]), t1=int(ev["t"][-1]),
                             origin_ns=seen_ns, origin=origin, geometry=self.geometry)

    def close(self) -> None:
        if self.cap is not None:
            self.cap.release()


class VideoSource(_FrameDvsSource):
    """A video file as a DVS (params ``path``, ``speed``, ``loop``, ``fps``, and the emulator's).

    Frame times come from the file's frame rate (or ``fps`` where the file has none); ``speed``
    1.0 plays it in real time, null or 0 as fast as possible; ``loop`` passes (0 = forever),
    with time running on across passes.
    """

    PARAMS = _FrameDvsSource.PARAMS + (
        Param("path", str, REQUIRED, "", "the video file (any format OpenCV's FFmpeg reads)", path="file"),
        Param("speed", (float, type(None)), 1.0, "x real time", "1.0 = real time; 0 or null = as fast as possible"),
        Param("loop", int, 1, "passes", "passes over the video (0 = forever)"),
        Param("fps", float, None, "Hz", "frame rate, where the file declares none"),
    )

    def __init__(self, name: str, params: dict[str, Any] | None = None):
        super().__init__(name, params)
        self.path = self.param("path")
        self.speed = check_speed(self.param("speed"))
        self.loop = self.param("loop")
        self.fps = self.param("fps")
        if self.loop < 0 or (self.fps is not None and not self.fps > 0):
            raise ConfigError(f"node {name!r}: 'loop' must be >= 0 and 'fps' > 0")

    def _open(self):
        cap = self.cv2.VideoCapture(self.path)
        if not cap.isOpened():
            raise LiveSourceError(f"node {self.name!r}: OpenCV {self.cv2.__version__} cannot open the video "
                                  f"{self.path} (missing, or a codec it lacks)")
        return cap

    def setup(self) -> None:
        self.cv2 = cv2_module()
        if not Path(self.path).is_file():
            raise LiveSourceError(f"node {self.name!r}: video file {self.path} not found")
        self.cap = self._open()
        fps = self.fps or self.cap.get(self.cv2.CAP_PROP_FPS)
        if not fps or not np.isfinite(fps) or fps <= 0:
            raise ConfigError(f"node {self.name!r}: the video {self.path} declares no frame rate; give 'fps'")
        self.period_us = 1e6 / float(fps)

    def frames(self) -> Iterator[tuple[np.ndarray, float, int]]:
        pacer, anchor = Pacer(), time.time_ns()
        pacer.start()
        i, passes = 0, 0
        while self.loop == 0 or passes < self.loop:
            if passes:
                self.cap.release()
                self.cap = self._open()
            passes += 1
            start = i
            while True:
                ok, frame = self.cap.read()
                if not ok:
                    break
                t_us = i * self.period_us
                if self.speed is not None:
                    offset = int(t_us * 1000 / self.speed)
                    pacer.wait_until(offset)
                    seen = anchor + offset
                else:
                    seen = time.time_ns()
                yield frame, t_us, seen
                i += 1
            if i == start:
                break  # an empty file would loop for ever


class WebcamSource(_FrameDvsSource):
    """A webcam as a DVS (params ``device``: OpenCV camera index, ``fps``: requested rate,
    ``duration_s``: stop after this long, null = run until stopped; and the emulator's).

    Frame times are the wall clock when each frame is read, in µs from the first frame.
    """

    PARAMS = _FrameDvsSource.PARAMS + (
        Param("device", int, 0, "", "OpenCV camera index (0: the first, /dev/video0 on Linux)"),
        Param("fps", float, None, "Hz", "frame rate to ask the camera for (unset: its own)"),
        Param("duration_s", float, None, "s", "stop after this long (unset: run until stopped)"),
    )

    def __init__(self, name: str, params: dict[str, Any] | None = None):
        super().__init__(name, params)
        self.device = self.param("device")
        self.fps = self.param("fps")
        self.duration_s = self.param("duration_s")

    def setup(self) -> None:
        self.cv2 = cv2_module()
        self.cap = open_webcam(self.cv2, self.device)
        if self.fps:
            self.cap.set(self.cv2.CAP_PROP_FPS, float(self.fps))

    def frames(self) -> Iterator[tuple[np.ndarray, float, int]]:
        t0 = None
        while True:
            ok, frame = self.cap.read()
            now = time.monotonic_ns()
            if not ok:
                self.end_meta = {"reason": "disconnected"}  # unplugged, or the driver gave up
                return
            t0 = now if t0 is None else t0
            if self.duration_s is not None and now - t0 > self.duration_s * 1e9:
                return
            yield frame, (now - t0) / 1000.0, time.time_ns()


def open_webcam(cv2, device: int = 0):
    """An opened ``cv2.VideoCapture`` of camera ``device``, or LiveSourceError saying none is there."""
    cap = cv2.VideoCapture(device)
    if not cap.isOpened():
        cap.release()
        raise LiveSourceError(f"no webcam at OpenCV index {device} (OpenCV {cv2.__version__} could not open "
                              f"it; /dev/video{device} {'exists' if Path(f'/dev/video{device}').exists() else 'does not exist'}); "
                              f"plug one in, pick another index (param 'device', --webcam INDEX), or play a recording with node kind 'video'")
    return cap
