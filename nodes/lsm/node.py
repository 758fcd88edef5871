"""The ``lsm`` node: events in, reservoir features out (trial or continuous mode).

Params (plain data):

- ``preset`` (default ``nmnist``) and ``overrides`` (dict of :class:`LsmConfig` fields);
- ``device``: ``ideal`` | ``rram`` | dict (``{"base": "rram", "adc_bits": 6}``);
- ``binning``: ``fixed_count`` | ``fixed_width`` | ``chunk_pad`` (default: the preset's);
  ``bin_width_us`` overrides the preset's fixed_width bin;
- ``mode``: ``trial`` (reset at ``start``, one feature at ``end_of_sample``) or ``continuous``
  (state carried, a feature every ``hop_us`` over the last ``window_us``; fixed_width only);
- ``geometry``: sensor geometry used when a packet carries none;
- ``saturated_rate`` (0.9): the rate above which a neuron counts as saturated in health.

In ``fixed_width`` mode bins are run as soon as they complete (an event at or after a bin's
end closes it), so at ``end_of_sample`` only the last, partial bin is left to run; bins start
at the sample's first event (trial) or at multiples of the width (continuous).
"""
from __future__ import annotations

from typing import Iterable

import numpy as np

from stream.node import ConfigError, Node
from stream.packets import F32, Packet

from .binning import bin_events, event_addresses
from .presets import get_preset
from .reservoir import LifReservoir, LsmConfig

MODES = ("trial", "continuous")


class LsmNode(Node):
    kind = "lsm"

    def __init__(self, name: str, params: dict | None = None):
        super().__init__(name, params)
        overrides = dict(self.param("overrides", {}, dict))
        binning = self.param("binning", None, str)
        if binning is not None:
            overrides["binning"] = binning
        width = self.param("bin_width_us", None, int)
        if width is not None:
            overrides["bin_width_us"] = width
        self.config: LsmConfig = get_preset(self.param("preset", "nmnist", str), **overrides)
        self.mode = self.param("mode", "trial", str)
        if self.mode not in MODES:
            raise ConfigError(f"node {name!r}: parameter 'mode' must be one of {MODES}, got {self.mode!r}")
        self.saturated_rate = float(self.param("saturated_rate", 0.9, (int, float)))
        geom = self.param("geometry", None, (list, tuple))
        self.default_geometry = tuple(geom) if geom is not None else None
        self.reservoir = LifReservoir(self.config, self.param("device", "ideal", (str, dict)))
        c = self.config
        self.width = c.bin_width_us
        if self.mode == "continuous":
            if c.binning != "fixed_width":
                raise ConfigError(f"node {name!r}: continuous mode needs binning 'fixed_width', got {c.binning!r}")
            window = self.param("window_us", 50 * c.bin_width_us, int)
            hop = self.param("hop_us", window // 5, int)
            for key, v in (("window_us", window), ("hop_us", hop)):
                if v <= 0 or v % c.bin_width_us:
                    raise ConfigError(f"node {name!r}: parameter {key!r} ({v}) must be a positive multiple of bin_width_us ({c.bin_width_us})")
            self.window_bins = window // c.bin_width_us
            self.hop_bins = hop // c.bin_width_us
        self._reset_sample()

    # ------------------------------------------------------------------ lifecycle
    def setup(self) -> None:
        """Compile (or load from Numba's cache) the binning and reservoir kernels."""
        bin_events(np.zeros(1, np.int64), np.zeros(1, np.int64), self.config.n_inputs,
                   mode="fixed_count", n_bins=2)
        self.reservoir.warmup()
        self.ops.clear()

    def _reset_sample(self) -> None:
        self.reservoir.reset()
        self.chunks: list[tuple[np.ndarray, np.ndarray]] = []   # buffered (t, addr)
        self.t_origin: int | None = None   # start of bin 0 (µs)
        self.bins_done = 0                 # bins already run
        self.counts = np.zeros(self.config.n_neurons, dtype=np.int64)
        self.t_first = self.t_last = None
        self.t_last_kept = 0               # time of the last event that maps to an input
        self.ring: list[np.ndarray] = []   # continuous: per-bin spike rows of the window
        self.since_emit = 0

    # ------------------------------------------------------------------ packets
    def process(self, packet: Packet) -> Iterable[Packet]:
        if packet.is_control:
            if packet.control == "start":
                self._reset_sample()
            elif packet.control == "end_of_sample" and self.mode == "trial":
                return [self._end_sample(packet)]
            return ()
        if packet.kind != "events" or packet.body is None:
            return ()
        geometry = packet.geometry or self.default_geometry
        if geometry is None:
            raise ValueError(f"node {self.name!r}: events packet without geometry and no 'geometry' param")
        t, addr, n = event_addresses(packet.body, geometry, self.config.polarity, self.config.crop)
        if n != self.config.n_inputs:
            raise ConfigError(f"node {self.name!r}: geometry {tuple(geometry)} (polarity {self.config.polarity}, "
                              f"crop {self.config.crop}) gives {n} inputs but 'n_inputs' is {self.config.n_inputs}")
        if packet.body.size:
            t0, t1 = int(packet.body["t"][0]), int(packet.body["t"][-1])
            self.t_first = t0 if self.t_first is None else self.t_first
            self.t_last = t1
        if t.size == 0:
            return ()
        self.t_last_kept = int(t[-1])
        if self.mode == "continuous":
            return self._continuous(packet, t, addr)
        self.chunks.append((t, addr))
        if self.config.binning == "fixed_width":
            if self.t_origin is None:
                self.t_origin = int(t[0])
            self._run_complete_bins(int(t[-1]))
        return ()

    def _take(self, upto_bin: int) -> tuple[np.ndarray, np.ndarray]:
        """Buffered events of bins [bins_done, upto_bin); the rest stays buffered."""
        t = np.concatenate([c[0] for c in self.chunks]) if self.chunks else np.zeros(0, np.int64)
        a = np.concatenate([c[1] for c in self.chunks]) if self.chunks else np.zeros(0, np.int64)
        cut = self.t_origin + upto_bin * self.width
        k = int(np.searchsorted(t, cut, side="left"))
        self.chunks = [(t[k:], a[k:])] if k < t.size else []
        return t[:k], a[:k]

    def _run_bins(self, upto_bin: int) -> np.ndarray | None:
        """Run bins [bins_done, upto_bin) from buffered events; returns their raster."""
        n_new = upto_bin - self.bins_done
        if n_new <= 0:
            return None
        t, a = self._take(upto_bin)
        bp, ix = bin_events(t, a, self.config.n_inputs, mode="fixed_width", width_us=self.width,
                            n_bins=n_new, t_start=self.t_origin + self.bins_done * self.width)
        res = self.reservoir.step_bins(bp, ix, trusted=True)
        self.ops.update(res.ops)
        self.counts += res.spike_counts
        self.bins_done = upto_bin
        return res.spikes

    def _run_complete_bins(self, t_now: int) -> None:
        self._run_bins((t_now - self.t_origin) // self.width)

    def _end_sample(self, packet: Packet) -> Packet:
        c = self.config
        if c.binning == "fixed_width":
            if self.t_origin is not None:
                last = (self.t_last_kept - self.t_origin) // self.width + 1
                self._run_bins(max(last, self.bins_done))
            n_bins = self.bins_done
            feats = (self.counts / max(n_bins, 1)).astype(F32)
        else:
            t = np.concatenate([ch[0] for ch in self.chunks]) if self.chunks else np.zeros(0, np.int64)
            a = np.concatenate([ch[1] for ch in self.chunks]) if self.chunks else np.zeros(0, np.int64)
            width = 1000 if c.binning == "chunk_pad" else None
            bp, ix = bin_events(t, a, c.n_inputs, mode=c.binning, n_bins=c.n_bins, width_us=width)
            res = self.reservoir.run(bp, ix)
            self.ops.update(res.ops)
            feats, n_bins = res.features, res.n_bins
        health = LifReservoir.health(feats, self.saturated_rate)
        self.gauges.update(health)
        out = packet.derive("features", body=feats.reshape(1, -1),
                            meta={"n_bins": int(n_bins), **health})
        if self.t_first is not None:
            out.t0, out.t1 = self.t_first, self.t_last
        self._reset_sample()
        return out

    def flush(self) -> Iterable[Packet]:
        """End of stream: a trial without its ``end_of_sample`` is incomplete and is dropped
        (a partial feature vector would be mistaken for a whole sample); continuous mode has
        already emitted every complete hop."""
        self._reset_sample()
        return ()

    # ------------------------------------------------------------------ continuous mode
    def _continuous(self, packet: Packet, t: np.ndarray, addr: np.ndarray) -> list[Packet]:
        w = self.width
        if self.t_origin is None:
            self.t_origin = (int(t[0]) // w) * w
        done_to = (int(t[-1]) - self.t_origin) // w
        if done_to - self.bins_done > self.window_bins:
            # silence longer than a window: the reservoir is at rest again; jump over the gap
            skip_to = done_to - self.window_bins
            keep = t >= self.t_origin + skip_to * w
            self.chunks = [(c[0][c[0] >= self.t_origin + skip_to * w], c[1][c[0] >= self.t_origin + skip_to * w])
                           for c in self.chunks]
            t, addr = t[keep], addr[keep]
            self.reservoir.reset()
            self.ring.clear()
            self.bins_done = skip_to
        self.chunks.append((t, addr))
        out: list[Packet] = []
        while self.bins_done < done_to:
            step = min(self.hop_bins - self.since_emit, done_to - self.bins_done)
            raster = self._run_bins(self.bins_done + step)
            self.ring.extend(raster)
            del self.ring[:-self.window_bins]
            self.since_emit += step
            if self.since_emit >= self.hop_bins:
                self.since_emit = 0
                feats = np.mean(self.ring, axis=0).astype(F32)
                health = LifReservoir.health(feats, self.saturated_rate)
                self.gauges.update(health)
                end = self.t_origin + self.bins_done * w
                out.append(packet.derive("features", body=feats.reshape(1, -1),
                                         t0=end - len(self.ring) * w, t1=end,
                                         meta={"n_bins": len(self.ring), **health}))
        return out
