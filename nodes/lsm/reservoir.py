"""The fixed random LIF reservoir (PAPER.md) whose weights come from an RRAM crossbar model,
and the one place that picks the Numba kernel it runs (:func:`kernel_for`).

The kernels (:mod:`nodes.lsm.kernels` for the ideal device, :mod:`nodes.lsm.kernels_rram` for
read noise and an ADC) take the arrays and a :data:`nodes.lsm.config.ReservoirParams`; this
module holds the arrays (weights, conductances, noise table, state) and calls them, as do the
batched encoder (:mod:`nodes.lsm.encode`) and the node's fused packet path
(:mod:`nodes.lsm.packet_path`), each through :func:`kernel_for`.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Callable

import numba
import numpy as np

from rram_lsm.stream.node import ConfigError

from . import kernels, kernels_rram
from .columns import ColumnParts
from .config import DeviceConfig, LsmConfig, check_threads, make_device, reservoir_params
from .rram import RramCrossbar

# Pre-drawn standard normals for read noise (a run of n_neurons of them per read, random offset).
NOISE_TABLE_SIZE = 1 << 20

# (entry, rram device, neurons in column parts) -> kernel; an entry's kernels share arguments
KERNELS = {
    ("bins", False, False): kernels.lif_ideal,
    ("bins", False, True): kernels.lif_ideal_cols,
    ("bins", True, False): kernels_rram.lif_rram,
    ("bins", True, True): kernels_rram.lif_rram_cols,
    ("packet", False, False): kernels.packet_ideal,
    ("packet", False, True): kernels.packet_ideal_cols,
    ("packet", True, False): kernels_rram.packet_rram,
    ("packet", True, True): kernels_rram.packet_rram_cols,
    ("batch", False, False): kernels.batch_ideal,
    ("batch", True, False): kernels_rram.batch_rram,
}


@dataclass
class RunResult:
    """Output of one reservoir run. ``features`` is the mean rate per neuron (float32)."""

    features: np.ndarray
    n_bins: int
    spike_counts: np.ndarray
    final_mem: np.ndarray
    spikes: np.ndarray | None = None          # (T, n_neurons) uint8 when recorded
    window_rates: np.ndarray | None = None    # (n_windows, n_neurons) float32 when asked
    ops: dict[str, int] | None = None


def segment_totals(g: np.ndarray, n_in: int, tile_rows: int) -> np.ndarray:
    """Column sums of the stacked rows ``g`` over each row tile's input rows (row ``2 * tile``)
    and its recurrent rows (``2 * tile + 1``), in float64; an empty segment sums to 0."""
    n_tiles = -(-g.shape[0] // tile_rows)
    out = np.zeros((2 * n_tiles, g.shape[1]))
    for tl in range(n_tiles):
        lo, hi = tl * tile_rows, min((tl + 1) * tile_rows, g.shape[0])
        mid = min(max(n_in, lo), hi)
        out[2 * tl] = g[lo:mid].sum(axis=0, dtype=np.float64)
        out[2 * tl + 1] = g[mid:hi].sum(axis=0, dtype=np.float64)
    return out.astype(g.dtype)


class LifReservoir:
    """A fixed random LIF reservoir whose weights are read from an :class:`RramCrossbar`.

    ``w_in``/``w_rec`` are the explicit weight arrays (``const * (G+ - G-)`` at
    ``t_inference``); with a device that has read noise or an ADC, runs use the conductances
    and draw the noise per read.  ``dtype`` float32 is the production path, float64 the
    exact path used by tests.  State (``mem``, ``spk``) is explicit and only carried by
    :meth:`step_bins`; :meth:`run` always starts from rest.  ``threads`` above 1 runs each
    sample with the neurons split over that many cores (:mod:`nodes.lsm.columns`): the same
    bits, worth it for large reservoirs (1,000 neurons and up); the batched encoder is
    parallel over samples instead.
    """

    def __init__(self, config: LsmConfig, device: DeviceConfig | str | dict = "ideal",
                 dtype=np.float32, threads: int = 1):
        if not isinstance(config, LsmConfig):
            raise ConfigError(f"config must be an LsmConfig, got {type(config).__name__}")
        self.config = config
        self.device = make_device(device)
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
            raise ConfigError(f"dtype must be float32 or float64, got {self.dtype}")
        c = config
        self.crossbar = RramCrossbar(c.n_inputs, c.n_neurons, mu_in=c.mu_in, sigma_in=c.sigma_in,
                                     mu_rec=c.mu_rec, sigma_rec=c.sigma_rec, device=self.device,
                                     seed=c.seed)
        self.w_in, self.w_rec = self.crossbar.weights(c.const, self.dtype)
        self.noisy = self.device.runtime_noisy
        if self.noisy:
            self.g_diff = np.ascontiguousarray(self.crossbar.g_diff, dtype=self.dtype)
            self.g_sq_row = np.ascontiguousarray(self.crossbar.g_sq.mean(axis=1), dtype=np.float64)
            # float32 sums a tile's mostly-driven input (or recurrent) rows as their total -
            # silent rows (as the ideal kernel does with its inputs)
            self.seg_total = (segment_totals(self.g_diff, c.n_inputs, self.device.macro_rows)
                              if self.dtype == np.float32 else np.zeros((0, c.n_neurons), self.dtype))
            self.noise_table = np.random.default_rng(self.crossbar.read_seed).standard_normal(
                NOISE_TABLE_SIZE + c.n_neurons).astype(self.dtype)
        self.tile_rows = self.device.macro_rows
        self.n_row_tiles, self.n_col_tiles = self.crossbar.tiles
        self.params = reservoir_params(c, self.device, self.n_row_tiles)
        self.ops: Counter[str] = Counter()
        # (read seed, kernel calls so far): advances the read-noise stream from call to call
        self.read_state = np.array([self.crossbar.read_seed, 0], dtype=np.int64)
        self.threads = check_threads(threads)
        self.columns = None
        if self.threads > 1:
            self.columns = ColumnParts(self, self.threads)
            self.mem, self.spk = self.columns.state_views()
        else:
            self.mem = np.zeros(c.n_neurons, dtype=self.dtype)
            self.spk = np.zeros(c.n_neurons, dtype=np.uint8)
        self.touched = np.zeros(self.n_row_tiles, dtype=np.uint8)   # kernel scratch (tiles read per bin)
        self._no_raster = np.zeros((0, c.n_neurons), dtype=np.uint8)

    @property
    def w_in(self) -> np.ndarray:
        """Input weights ``(n_inputs, n_neurons)``; assign a new array rather than editing in
        place, so the column sums the kernel's dense-bin shortcut uses stay current."""
        return self._w_in

    @w_in.setter
    def w_in(self, value: np.ndarray) -> None:
        self._w_in = value
        # float32 (production) may sum a dense bin as total - silent rows; float64 stays the
        # exact row-by-row path the tests compare with the dense reference
        self.w_in_total = (value.astype(np.float64).sum(axis=0).astype(self.dtype)
                           if value.dtype == np.float32 else np.zeros(0, value.dtype))

    @property
    def n_neurons(self) -> int:
        return self.config.n_neurons

    @property
    def n_inputs(self) -> int:
        return self.config.n_inputs

    def reset(self) -> None:
        """Back to rest: zero membrane, no spikes from the previous bin."""
        self.mem[:] = 0
        self.spk[:] = 0

    def _check(self, bin_ptr: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        bin_ptr = np.ascontiguousarray(bin_ptr, dtype=np.int64)
        idx = np.ascontiguousarray(idx, dtype=np.int32)
        if bin_ptr.ndim != 1 or bin_ptr.size < 1 or bin_ptr[0] != 0 or bin_ptr[-1] != idx.size \
                or np.any(np.diff(bin_ptr) < 0):
            raise ValueError("bin_ptr must be a non-decreasing CSR pointer from 0 to len(idx)")
        if idx.size and (idx.min() < 0 or idx.max() >= self.n_inputs):
            bad = int(idx.min() if idx.min() < 0 else idx.max())
            raise ValueError(f"input index {bad} out of range [0, {self.n_inputs})")
        return bin_ptr, idx

    def _kernel(self, bin_ptr, idx, counts, raster, record, cnt=None) -> np.ndarray:
        """Run the bins from the carried state; kernel counters are added into ``cnt``."""
        if cnt is None:
            cnt = np.zeros(kernels.N_COUNTERS, dtype=np.int64)
        fn, args = self._bins or self._bind()
        fn(bin_ptr, idx, *args, counts, raster, record, cnt)
        return cnt

    def _bind(self) -> tuple[Callable, tuple]:
        """The ``bins`` kernel and its arguments, kept until an attribute is assigned."""
        self._bins = kernel_for(self, "bins")
        return self._bins

    def __setattr__(self, name: str, value) -> None:
        # an array replaced (``w_in``, ``seg_total``, ...) is bound again at the next run:
        # binding per call cost ~1 µs, a tenth of a 1 ms packet's work
        object.__setattr__(self, name, value)
        if name != "_bins":
            object.__setattr__(self, "_bins", None)

    def op_counts(self, cnt: np.ndarray) -> dict[str, int]:
        """DESIGN.md's vocabulary from the kernel counters (rows, digitised tiles, spikes, bins)."""
        n, n_in = self.n_neurons, self.n_inputs
        rows, tiles, spikes, bins = (int(v) for v in cnt[:4])
        return {
            "dac_row_activations": rows * self.n_col_tiles,
            "cell_reads": rows * n * 2,
            "adc_conversions": tiles * n,
            "synaptic_ops": rows * n,
            "neuron_updates": bins * n,
            "spikes": spikes,
            "dense_macs": bins * (n_in + n) * n,
        }

    def run(self, bin_ptr: np.ndarray, idx: np.ndarray, *, record: bool = False,
            n_windows: int = 0) -> RunResult:
        """One sample from rest. ``record`` keeps the raster; ``n_windows`` adds windowed rates."""
        bin_ptr, idx = self._check(bin_ptr, idx)
        self.reset()
        n_bins = bin_ptr.size - 1
        keep = record or n_windows > 0
        counts = np.zeros(self.n_neurons, dtype=np.int64)
        raster = np.zeros((n_bins if keep else 0, self.n_neurons), dtype=np.uint8)
        cnt = self._kernel(bin_ptr, idx, counts, raster, keep)
        ops = self.op_counts(cnt)
        self.ops.update(ops)
        feats = (counts / max(n_bins, 1)).astype(np.float32)
        win = None
        if n_windows > 0:
            win = np.zeros(n_windows * self.n_neurons, dtype=np.float32)
            kernels.sample_rates(counts, n_bins, raster, n_windows, win)
            win = win.reshape(n_windows, self.n_neurons)
        return RunResult(features=feats, n_bins=n_bins, spike_counts=counts,
                         final_mem=self.mem.copy(), spikes=raster if record else None,
                         window_rates=win, ops=ops)

    def step_bins(self, bin_ptr: np.ndarray, idx: np.ndarray, *, trusted: bool = False) -> RunResult:
        """Continue from the carried state over more bins (continuous mode); raster recorded.

        ``trusted=True`` skips the CSR checks for arrays that ``bin_events`` just built.
        """
        if not trusted:
            bin_ptr, idx = self._check(bin_ptr, idx)
        n_bins = bin_ptr.size - 1
        counts = np.zeros(self.n_neurons, dtype=np.int64)
        raster = np.zeros((n_bins, self.n_neurons), dtype=np.uint8)
        cnt = self._kernel(bin_ptr, idx, counts, raster, True)
        ops = self.op_counts(cnt)
        self.ops.update(ops)
        feats = (counts / max(n_bins, 1)).astype(np.float32)
        return RunResult(features=feats, n_bins=n_bins, spike_counts=counts,
                         final_mem=self.mem.copy(), spikes=raster, ops=ops)

    def accumulate(self, bin_ptr: np.ndarray, idx: np.ndarray, counts: np.ndarray, cnt: np.ndarray,
                   raster: np.ndarray | None = None) -> None:
        """Continue from the carried state over a CSR that binning just built (not checked),
        adding spike counts into ``counts`` and kernel counters into ``cnt`` (turn them into
        op counts with :meth:`op_counts`); ``raster`` ``(n_bins, n_neurons)`` records spikes.
        The live node's hot path: no per-call allocation of results or dicts."""
        record = raster is not None
        self._kernel(bin_ptr, idx, counts, raster if record else self._no_raster, record, cnt)

    @staticmethod
    def health(features: np.ndarray, saturated_rate: float = 0.9) -> dict[str, float]:
        """Fractions of silent neurons (rate 0) and saturated ones (rate >= ``saturated_rate``).

        Works on one feature vector or a batch (fractions over all rows).
        """
        f = np.asarray(features)
        return {"silent_frac": float(np.mean(f <= 0.0)),
                "saturated_frac": float(np.mean(f >= saturated_rate)),
                "mean_rate": float(np.mean(f)) if f.size else 0.0}

    def warmup(self) -> None:
        """Compile (or load from cache) the kernels this reservoir uses; state is left at rest."""
        bp = np.array([0, 1, 1], dtype=np.int64)
        self.run(bp, np.zeros(1, dtype=np.int32))
        self.step_bins(bp, np.zeros(1, dtype=np.int32))
        self.reset()
        self.ops.clear()


def window_rates(raster: np.ndarray, windows: int) -> np.ndarray:
    """The rates of a sample's spike ``raster`` ``(n_bins, n_neurons)`` in ``windows``
    consecutive windows, window-major ``float32 (windows * n_neurons,)``: the batched
    encoder's cut (:func:`nodes.lsm.kernels.window_edges`), for the live node."""
    raster = np.ascontiguousarray(raster, dtype=np.uint8)
    out = np.zeros(windows * raster.shape[1], dtype=np.float32)
    # the counts give the one-window (mean-rate) case, so every ``windows`` is right
    kernels.sample_rates(raster.sum(axis=0, dtype=np.int64), raster.shape[0], raster, windows, out)
    return out


def numba_threads() -> int:
    """Threads the parallel kernels (batched encoding, a split reservoir) can use."""
    return numba.get_num_threads()


def kernel_for(reservoir: "LifReservoir", entry: str) -> tuple[Callable, tuple]:
    """The kernel that runs ``entry`` on ``reservoir``, and the reservoir's arguments to it.

    ``entry`` is ``"bins"`` (bins from the carried state: ``fn(bin_ptr, idx, *args, counts,
    raster, record, cnt)``), ``"packet"`` (a DVS packet through live binning first:
    ``fn(events, dvs, st, seen, part, width, align, max_gap, *args, counts, cnt)``) or
    ``"batch"`` (samples in parallel from rest: ``fn(sample_bins, bin_ptrs, idx, *args, seeds,
    windows, out, cnts)``).  The device picks ideal or ``rram`` kernels, ``threads`` the
    column-part ones (not for ``batch``, which is parallel over samples).  ``args`` are the
    weights, the kernel parameters (a plain tuple, see ReservoirParams) and, but for
    ``batch``, the state the kernel carries.
    """
    r = reservoir
    split = r.columns is not None and entry != "batch"
    cols = r.columns
    params = tuple(r.params)
    if r.noisy:
        weights = ((cols.g_p, r.g_sq_row, cols.seg_total_p, cols.table) if split
                   else (r.g_diff, r.g_sq_row, r.seg_total, r.noise_table))
        state = (cols.mem_p, cols.spk_p, r.read_state) if split else (r.mem, r.spk, r.read_state)
    else:
        weights = cols.weights() if split else (r.w_in, r.w_rec, r.w_in_total)
        state = (cols.mem_p, cols.spk_p, r.touched) if split else (r.mem, r.spk, r.touched)
    args = (*weights, params) if entry == "batch" else (*weights, params, *state)
    return KERNELS[entry, r.noisy, split], args
