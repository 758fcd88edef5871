"""iniVation inputs through dv-processing: a DVS camera and a DV network stream.

dv-processing (``pip install 'rram-lsm[live]'``) is imported in ``setup()``, so a graph can be
configured where it is absent.  Cameras open with ``dv.io.camera.open()`` on dv-processing
2.x and with ``dv.io.CameraCapture`` on 1.x.  A DV network stream (DV software's network
output, or a ``dv.io.NetworkWriter``) is read with ``dv.io.NetworkReader`` over TCP or a
local (UNIX) socket, and carries its own sensor geometry.

Both are continuous streams (sample -1).  Event times on the wire are microseconds since the
first event received; that event's DV timestamp (absolute µs) rides along as ``dv_t0_us``.
"""
from __future__ import annotations

import time
from typing import Any, Callable, Iterator

import numpy as np

from rram_lsm.stream.node import ConfigError, SourceNode
from rram_lsm.stream.params import REQUIRED, Param
from rram_lsm.stream.packets import DVS_DTYPE, Origin, Packet, new_epoch

from .live import LiveSourceError, optional_import


def dv_to_events(store: np.ndarray, t0_us: int) -> np.ndarray:
    """Wire DVS events from dv-processing's structured array (timestamp, x, y, polarity)."""
    ev = np.empty(len(store), DVS_DTYPE)
    ev["t"] = store["timestamp"] - t0_us
    ev["x"], ev["y"], ev["p"] = store["x"], store["y"], store["polarity"]
    return ev


def resize_events(ev: np.ndarray, sensor: tuple[int, int], size: tuple[int, int]) -> np.ndarray:
    """Events of a ``sensor``-sized array mapped onto a ``size`` grid (x * w' // w), in place."""
    ev["x"] = (ev["x"].astype(np.int64) * size[0]) // sensor[0]
    ev["y"] = (ev["y"].astype(np.int64) * size[1]) // sensor[1]
    return ev


def dv_error(err: Exception) -> str:
    """The readable line of a dv-processing exception (which may carry a C++ stack trace)."""
    lines = [ln.strip() for ln in str(err).split("Stacktrace:")[0].splitlines() if ln.strip()]
    return (lines[-1] if lines else type(err).__name__).split(" [")[0]


def _dv():
    return optional_import("dv_processing", "dv-processing")


def cameras(dv) -> list[tuple[str, str, Callable[[], Any]]]:
    """(name, serial, open) of every camera dv-processing finds on USB, 2.x or 1.x API."""
    if hasattr(dv.io, "camera") and hasattr(dv.io.camera, "discover"):  # 2.x
        return [(f"{getattr(d.cameraModel, 'name', d.cameraModel)}_{d.serialNumber}", d.serialNumber,
                 lambda d=d: dv.io.camera.open(d)) for d in dv.io.camera.discover()]
    if hasattr(dv.io, "CameraCapture"):  # 1.x: names are MODEL_SERIAL
        return [(n, n.rpartition("_")[2], lambda n=n: dv.io.CameraCapture(n)) for n in dv.io.discoverDevices()]
    raise LiveSourceError(f"dv-processing {getattr(dv, '__version__', '?')} has neither dv.io.camera.open "
                          f"(2.x) nor dv.io.CameraCapture (1.x); install dv-processing>=1.7,<3")


def open_camera(dv, name: str = ""):
    """Open the camera ``name`` (MODEL_SERIAL, or the serial alone; empty: the first found)."""
    found = cameras(dv)
    if not found:
        raise LiveSourceError(f"no DVS camera is attached (dv-processing {getattr(dv, '__version__', '?')} "
                              f"found none on USB); plug one in, or use a DV network stream (node kind "
                              f"'dv_network') or a recording (replay format 'event_file')")
    pick = [c for c in found if not name or name == c[1] or name.endswith(f"_{c[1]}")]
    if not pick:
        raise LiveSourceError(f"no DVS camera named {name!r}; attached: {', '.join(c[0] for c in found)}")
    try:
        return pick[0][2]()
    except Exception as err:  # dv-processing raises plain RuntimeErrors (busy, no permission)
        raise LiveSourceError(f"DVS camera {pick[0][0]} could not be opened: {dv_error(err)}") from err


def parse_address(address: str) -> tuple[str, Any]:
    """``tcp://host:port`` -> ("tcp", (host, port)); ``unix:///path`` or a path -> ("unix", path)."""
    if address.startswith("tcp://"):
        host, sep, port = address[6:].rpartition(":")
        if not sep or not port.isdigit() or not host:
            raise ConfigError(f"DV network address {address!r}: expected tcp://HOST:PORT")
        return "tcp", (host.strip("[]"), int(port))
    path = address[7:] if address.startswith("unix://") else address
    if not path or "://" in path:
        raise ConfigError(f"DV network address {address!r}: expected tcp://HOST:PORT or unix:///PATH")
    return "unix", path


class _DvInputSource(SourceNode):
    """Yields the event batches of a dv-processing input until it stops running.

    Param ``resize`` ([width, height], optional) maps the sensor onto a smaller grid (the
    live demo's visual model expects 34x34); without it the sensor's own geometry is kept.
    """

    input_what = "DV input"
    PARAMS = (Param("resize", (list, type(None)), None, "px",
                    "[width, height] grid to map the sensor onto (unset: the sensor's own)"),)

    def __init__(self, name: str, params: dict[str, Any] | None = None):
        super().__init__(name, params)
        self.epoch = new_epoch()
        self.input = None
        self.geometry: tuple[int, int] | None = None
        self.end_meta: dict[str, Any] = {}
        self.gauges["disconnects"] = 0
        resize = self.param("resize")
        if resize is not None and (len(resize) != 2 or not all(isinstance(v, int) and v > 0 for v in resize)):
            raise ConfigError(f"node {name!r}: parameter 'resize' must be [width, height] in pixels, got {resize!r}")
        self.resize = tuple(resize) if resize else None
        self.sensor: tuple[int, int] | None = None

    def open(self, dv):
        """The dv-processing input (a camera or a network reader) to read."""
        raise NotImplementedError

    def setup(self) -> None:
        dv = _dv()
        self.input = self.open(dv)
        if not self.input.isEventStreamAvailable():
            raise LiveSourceError(f"{self.input_what} {self.input.getCameraName()} provides no event stream")
        res = self.input.getEventResolution()
        if res is None:
            raise LiveSourceError(f"{self.input_what} {self.input.getCameraName()} declares no event resolution")
        self.sensor = (int(res[0]), int(res[1]))
        self.geometry = self.resize or self.sensor

    def packets(self) -> Iterator[Packet]:
        if self.input is None:
            self.setup()
        t0 = None
        while True:
            batch = self.input.getNextEventBatch()
            if batch is None or batch.size() == 0:
                if self.input.isRunning():
                    time.sleep(0.001)
                    continue
                batch = self.input.getNextEventBatch()  # what arrived just before it stopped
                if batch is None or batch.size() == 0:
                    break
            store = batch.numpy()
            if t0 is None:
                t0 = int(store["timestamp"][0])
            ev = dv_to_events(store, t0)
            if self.resize:
                resize_events(ev, self.sensor, self.resize)
            yield Packet(kind="events", body=ev, t0=int(ev["t"][0]), t1=int(ev["t"][-1]),
                         origin_ns=time.time_ns(), origin=Origin(self.name, self.epoch, -1),
                         geometry=self.geometry, meta={"dv_t0_us": t0})
        # the runtime sends end_of_stream with this reason; telemetry counts it
        self.gauges["disconnects"] += 1
        self.end_meta = {"reason": "disconnected"}


class DvsCameraSource(_DvInputSource):
    """Events from an iniVation camera (param ``camera``: model_serial or serial, optional)."""

    input_what = "DVS camera"
    PARAMS = _DvInputSource.PARAMS + (
        Param("camera", str, "", "", "MODEL_SERIAL or serial (empty: the first camera found)"),)

    def __init__(self, name: str, params: dict[str, Any] | None = None):
        super().__init__(name, params)
        self.camera_name = self.param("camera")

    def open(self, dv):
        return open_camera(dv, self.camera_name)


class DvNetworkSource(_DvInputSource):
    """Events from a DV network stream (param ``address``: tcp://HOST:PORT or unix:///PATH).

    A DV stream carries no sequence numbers, so events lost before they reach this node
    cannot be counted; a writer that goes away ends the stream with ``end_of_stream`` of
    reason ``disconnected`` (gauge ``disconnects``), and what arrived is an in-order prefix
    of what was written.
    """

    input_what = "DV network stream"
    PARAMS = _DvInputSource.PARAMS + (
        Param("address", str, REQUIRED, "", "tcp://HOST:PORT, unix:///PATH or a socket path"),
        Param("connect_timeout_s", float, 5.0, "s", "how long to wait for the writer"))

    def __init__(self, name: str, params: dict[str, Any] | None = None):
        super().__init__(name, params)
        address = self.param("address")
        if not address:
            raise ConfigError(f"node {name!r}: parameter 'address' (tcp://HOST:PORT or unix:///PATH) is required")
        try:
            self.transport, self.where = parse_address(address)
        except ConfigError as err:
            raise ConfigError(f"node {name!r}: {err}") from None
        self.address = address
        self.connect_timeout = float(self.param("connect_timeout_s"))

    def open(self, dv):
        deadline = time.monotonic() + self.connect_timeout
        while True:  # the writer may start after us: retry until the timeout
            try:
                if self.transport == "tcp":
                    return dv.io.NetworkReader(*self.where)
                return dv.io.NetworkReader(getattr(dv, "Path", str)(self.where))  # 1.x takes a str
            except Exception as err:  # boost::asio errors arrive as RuntimeError
                if time.monotonic() >= deadline:
                    raise LiveSourceError(f"no DV network stream at {self.address} within "
                                          f"{self.connect_timeout} s ({dv_error(err)})") from err
                time.sleep(0.1)
