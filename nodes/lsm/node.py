"""The ``lsm`` node: events in, reservoir features out (trial or continuous mode).

Its parameters are declared in ``LsmNode.PARAMS`` (``rram-lsm kinds lsm`` prints them).
``windows`` above 1 makes a feature hold each neuron's rate in that many consecutive windows
of the sample (or of the continuous window), window-major, as ``encode_modality(windows=)``
computes them offline; ``threads`` splits the neurons between cores (:mod:`nodes.lsm.columns`;
same features), for reservoirs of ~1,000 neurons and more.

In ``fixed_width`` mode bins are run as soon as they complete (an event at or after a bin's
end closes it), so at ``end_of_sample`` only the last, partial bin is left to run; bins start
at the sample's first event (trial) or at multiples of the width (continuous).  An event for a
bin already run (out of time order across packets) is skipped and counted in the
``late_events`` gauge.
"""
from __future__ import annotations

from typing import Iterable

import numpy as np

from rram_lsm.stream.node import ConfigError, Node
from rram_lsm.stream.packets import DVS_DTYPE, F32, Packet
from rram_lsm.stream.params import Param
from rram_lsm.stream.preview import activity_frame

from .binning import bin_events, event_addresses, warm_addresses
from .live_binning import LiveBinner
from .packet_path import PacketPath
from .config import BINNING_MODES, DEVICE_SETTINGS, LsmConfig, check_threads, check_windows
from .presets import PRESETS, get_preset
from .reservoir import LifReservoir, numba_threads, window_rates

MODES = ("trial", "continuous")


class LsmNode(Node):
    """The RRAM LIF reservoir: events in, one feature vector per sample (or per hop) out."""

    kind = "lsm"
    PARAMS = (
        Param("preset", str, "nmnist", "", "the reservoir's configuration", choices=tuple(PRESETS)),
        Param("overrides", dict, {}, "", "LsmConfig fields that replace the preset's"),
        Param("device", (str, dict), "ideal", "", "ideal | rram | a dict such as "
              "{base = \"rram\", adc_bits = 6}", choices=DEVICE_SETTINGS),
        Param("binning", str, None, "", "time binning (default: the preset's)", choices=BINNING_MODES),
        Param("bin_width_us", int, None, "us", "fixed_width bin (default: the preset's)"),
        Param("mode", str, "trial", "", "trial: reset at start, a feature at end_of_sample; "
              "continuous: a feature every hop_us (fixed_width only)", choices=MODES),
        Param("window_us", int, None, "us", "continuous: the window a feature covers (default 50 bins)"),
        Param("hop_us", int, None, "us", "continuous: time between features (default window_us / 5)"),
        Param("geometry", list, None, "", "sensor geometry for packets that carry none"),
        Param("saturated_rate", float, 0.9, "spikes/bin", "rate above which a neuron counts as saturated"),
        Param("windows", int, 1, "windows", "rate windows per feature"),
        Param("threads", int, 1, "threads", "cores one sample runs on (neurons split between them)"),
        Param("nir", str, None, "", "a NIR file from `rram-lsm export --nir`: run its reservoir "
              "(weights and LsmConfig) instead of the preset's and device's", path="file"),
        Param("nir_reservoir", str, None, "", "which reservoir of the NIR file (its modality), "
              "when it holds several"),
    )

    def __init__(self, name: str, params: dict | None = None):
        super().__init__(name, params)
        overrides = dict(self.param("overrides"))
        binning = self.param("binning")
        if binning is not None:
            overrides["binning"] = binning
        width = self.param("bin_width_us")
        if width is not None:
            overrides["bin_width_us"] = width
        nir_path = self.param("nir")
        if nir_path is None:
            self.config: LsmConfig = get_preset(self.param("preset"), **overrides)
        else:   # the file's reservoir; binning/bin_width_us may still be set (they shape no weight)
            loaded = self._load_nir(nir_path, overrides)
            self.config = loaded.config
        self.mode = self.param("mode")
        self.saturated_rate = float(self.param("saturated_rate"))
        try:
            self.windows = check_windows(self.param("windows"))
            threads = check_threads(self.param("threads"))
        except ConfigError as exc:
            raise ConfigError(f"node {name!r}: {exc}") from None
        geom = self.param("geometry")
        self.default_geometry = tuple(geom) if geom is not None else None
        if threads > numba_threads():
            raise ConfigError(f"node {name!r}: parameter 'threads' is {threads} but Numba has "
                              f"{numba_threads()} threads here (cores, or NUMBA_NUM_THREADS)")
        if nir_path is None:
            self.reservoir = LifReservoir(self.config, self.param("device"), threads=threads)
            self.reservoir.crossbar.release()   # the weights are read out; the node runs on those
        elif threads > 1:
            raise ConfigError(f"node {name!r}: parameter 'threads' must be 1 with 'nir'")
        else:
            self.reservoir = loaded
        c = self.config
        self.width = c.bin_width_us
        self.window_bins = self.hop_bins = 0
        if self.mode == "continuous":
            if c.binning != "fixed_width":
                raise ConfigError(f"node {name!r}: continuous mode needs binning 'fixed_width', got {c.binning!r}")
            window = self.param("window_us")
            window = 50 * c.bin_width_us if window is None else window
            hop = self.param("hop_us")
            hop = window // 5 if hop is None else hop
            for key, v in (("window_us", window), ("hop_us", hop)):
                if v <= 0 or v % c.bin_width_us:
                    raise ConfigError(f"node {name!r}: parameter {key!r} ({v}) must be a positive multiple of bin_width_us ({c.bin_width_us})")
            self.window_bins = window // c.bin_width_us
            self.hop_bins = hop // c.bin_width_us
        # fixed_width bins run as packets complete them; the other modes need the whole sample
        self.live = LiveBinner(c.n_inputs, c.bin_width_us, polarity=c.polarity, crop=c.crop,
                               align=self.mode == "continuous",
                               max_gap=self.window_bins if self.mode == "continuous" else None) \
            if c.binning == "fixed_width" else None
        # trial-mode DVS packets of a checked geometry: binning + kernel in one compiled call
        # (mean rates only: windowed rates need the raster, which the fused call does not keep)
        self.path = PacketPath(self.live, self.reservoir) \
            if self.live is not None and self.mode == "trial" and self.windows == 1 else None
        self.cnt = np.zeros(4, dtype=np.int64)   # kernel counters not yet folded into ops
        self._reset_sample()

    def _load_nir(self, path: str, overrides: dict) -> LifReservoir:
        """The reservoir of NIR file ``path`` (:mod:`nodes.lsm.nir_io`), with only
        ``binning``/``bin_width_us`` overridable (weights come from the file, as exported)."""
        from dataclasses import replace

        from .nir_io import load_reservoir
        extra = sorted(set(overrides) - {"binning", "bin_width_us"})
        if extra:
            raise ConfigError(f"node {self.name!r}: with 'nir' the reservoir comes from the file; "
                              f"overrides {extra} cannot apply")
        try:
            reservoir = load_reservoir(path, self.param("nir_reservoir"))
            if overrides:
                reservoir.config = replace(reservoir.config, **overrides)
        except ConfigError as exc:
            raise ConfigError(f"node {self.name!r}: parameter 'nir': {exc}") from None
        return reservoir

    # ------------------------------------------------------------------ lifecycle
    def setup(self) -> None:
        """Compile (or load from Numba's cache) the binning and reservoir kernels."""
        bin_events(np.zeros(1, np.int64), np.zeros(1, np.int64), self.config.n_inputs,
                   mode="fixed_count", n_bins=2)
        warm_addresses()
        if self.live is not None:
            self.live.warmup()
        if self.path is not None:
            self.path.warmup()
        self.reservoir.warmup()
        self.ops.clear()

    def _reset_sample(self) -> None:
        self.reservoir.reset()
        if self.live is not None:
            self.live.reset()
        self.chunks: list[tuple[np.ndarray, np.ndarray]] = []   # fixed_count/chunk_pad: (t, addr)
        self.counts = np.zeros(self.config.n_neurons, dtype=np.int64)
        self.t_first = self.t_last = None
        self.bins_done = 0                 # continuous: bins run so far
        self.ring: list[np.ndarray] = []   # continuous: per-bin spike rows of the window
        self.rasters: list[np.ndarray] = []  # trial, fixed_width, windows > 1: the spike raster
        self.since_emit = 0

    def _fold_ops(self) -> None:
        """Kernel counters -> the node's op counts (once per sample or hop, not per packet)."""
        if self.cnt.any():
            self.ops.update(self.reservoir.op_counts(self.cnt))
            self.cnt[:] = 0
        if self.live is not None and self.live.late:
            self.gauges["late_events"] = self.live.late

    # ------------------------------------------------------------------ packets
    def process(self, packet: Packet) -> Iterable[Packet]:
        if packet.is_control:
            if packet.control == "start":
                self._reset_sample()
            elif packet.control == "end_of_sample" and self.mode == "trial":
                return [self._end_sample(packet)]
            return ()
        body = packet.body
        if packet.kind != "events" or body is None:
            return ()
        geometry = packet.geometry or self.default_geometry
        if geometry is None:
            raise ValueError(f"node {self.name!r}: events packet without geometry and no 'geometry' param")
        if body.size:
            ts = body["t"]
            if self.t_first is None:
                self.t_first = int(ts[0])
            self.t_last = int(ts[-1])
        if self.live is None:
            t, addr, n = event_addresses(body, geometry, self.config.polarity, self.config.crop)
            self._check_inputs(n, geometry)
            if t.size:
                self.chunks.append((t, addr))
            return ()
        if self.mode == "continuous":
            return self._continuous(packet, body, geometry)
        path = self.path
        if path is not None and geometry == path.geometry and body.dtype == DVS_DTYPE:
            if path(body, self.counts, self.cnt):   # a coordinate off the sensor: nothing binned
                event_addresses(body, geometry, self.config.polarity, self.config.crop)  # raises, naming it
            return ()
        bp, idx, _ = self._feed(body, geometry)
        if bp.size > 1:
            self._accumulate(bp, idx)
        if path is not None:
            path.bind()   # the binner has checked this geometry: next packets take the fused path
        return ()

    def _accumulate(self, bp: np.ndarray, idx: np.ndarray) -> None:
        """Run closed trial bins; keep their raster when features are windowed."""
        raster = None
        if self.windows > 1:
            raster = np.zeros((bp.size - 1, self.config.n_neurons), dtype=np.uint8)
            self.rasters.append(raster)
        self.reservoir.accumulate(bp, idx, self.counts, self.cnt, raster)

    def _feed(self, body: np.ndarray, geometry):
        try:
            return self.live.feed(body, geometry)
        except ConfigError as exc:
            raise ConfigError(f"node {self.name!r}: {exc}") from None

    def _check_inputs(self, n: int, geometry) -> None:
        if n != self.config.n_inputs:
            raise ConfigError(f"node {self.name!r}: geometry {tuple(geometry)} (polarity {self.config.polarity}, "
                              f"crop {self.config.crop}) gives {n} inputs but 'n_inputs' is {self.config.n_inputs}")

    def _end_sample(self, packet: Packet) -> Packet:
        c = self.config
        if self.live is not None:
            n_bins = 0
            if self.live.started:
                bp, idx = self.live.close()
                self._accumulate(bp, idx)
                n_bins = self.live.open_bin + 1
            rates = (self.counts / max(n_bins, 1)).astype(F32)
            feats = rates if self.windows == 1 else window_rates(
                np.concatenate(self.rasters) if self.rasters else np.zeros((0, c.n_neurons), np.uint8),
                self.windows)
        else:
            t = np.concatenate([ch[0] for ch in self.chunks]) if self.chunks else np.zeros(0, np.int64)
            a = np.concatenate([ch[1] for ch in self.chunks]) if self.chunks else np.zeros(0, np.int64)
            width = 1000 if c.binning == "chunk_pad" else None
            bp, ix = bin_events(t, a, c.n_inputs, mode=c.binning, n_bins=c.n_bins, width_us=width)
            res = self.reservoir.run(bp, ix, n_windows=self.windows if self.windows > 1 else 0)
            self.ops.update(res.ops)
            n_bins, rates = res.n_bins, res.features
            feats = rates if self.windows == 1 else res.window_rates.ravel()
        self._fold_ops()
        health = LifReservoir.health(rates, self.saturated_rate)   # of the mean rates
        self.gauges.update(health)
        self.view["activity"] = activity_frame(rates, **health)  # for live displays
        out = packet.derive("features", body=feats.reshape(1, -1),
                            meta={"n_bins": int(n_bins), "windows": self.windows, **health})
        if self.t_first is not None:
            out.t0, out.t1 = self.t_first, self.t_last
        self._reset_sample()
        return out

    def flush(self) -> Iterable[Packet]:
        """End of stream: a trial without its ``end_of_sample`` is incomplete and is dropped
        (a partial feature vector would be mistaken for a whole sample); continuous mode has
        already emitted every complete hop."""
        self._fold_ops()
        self._reset_sample()
        return ()

    # ------------------------------------------------------------------ continuous mode
    def _continuous(self, packet: Packet, body: np.ndarray, geometry) -> list[Packet]:
        out: list[Packet] = []
        bp, idx, gap = self._feed(body, geometry)
        while True:
            self._run_hops(packet, bp, idx, out)
            if gap < 0:
                break
            # silence longer than a window: the reservoir is at rest again; jump over the gap
            self.reservoir.reset()
            self.ring.clear()
            self.bins_done = gap - self.window_bins
            self.live.jump(self.bins_done)
            bp, idx, gap = self.live.resume()
        self._fold_ops()
        return out

    def _run_hops(self, packet: Packet, bp: np.ndarray, idx: np.ndarray, out: list[Packet]) -> None:
        """Run closed bins in steps that end on hop boundaries; emit a feature at each."""
        w, n_bins, i = self.width, bp.size - 1, 0
        while i < n_bins:
            step = min(self.hop_bins - self.since_emit, n_bins - i)
            raster = np.zeros((step, self.config.n_neurons), dtype=np.uint8)
            self.reservoir.accumulate(bp[i:i + step + 1], idx, self.counts, self.cnt, raster)
            self.ring.extend(raster)
            del self.ring[:-self.window_bins]
            i += step
            self.bins_done += step
            self.since_emit += step
            if self.since_emit >= self.hop_bins:
                self.since_emit = 0
                ring = np.array(self.ring)
                rates = ring.mean(axis=0).astype(F32)
                feats = rates if self.windows == 1 else window_rates(ring, self.windows)
                health = LifReservoir.health(rates, self.saturated_rate)
                self.gauges.update(health)
                self.view["activity"] = activity_frame(rates, **health)
                end = self.live.t_origin + self.bins_done * w
                out.append(packet.derive("features", body=feats.reshape(1, -1),
                                         t0=end - len(self.ring) * w, t1=end,
                                         meta={"n_bins": len(self.ring), "windows": self.windows,
                                               **health}))
