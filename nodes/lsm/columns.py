"""One reservoir run on several cores: the neurons (crossbar columns) split into parts.

A sample's bins are sequential (bin ``t`` reads the spikes of ``t - 1``), so a single stream
cannot be parallel over time or samples.  It can be parallel over neurons: each part sums the
driven rows over its own columns and updates its own neurons, and the parts swap spike lists
once per bin.  Each part then streams only its share of the weights, which on a large
reservoir is what bounds a bin (a 1,000-neuron float32 reservoir is 5 MB of weights against a
2 MB L2 cache per core here).

The bits are those of the serial kernels: every column is summed over the same rows in the
same order, the ``rram`` read noise of column ``j`` is the same table entry, and spike lists
are merged in ascending neuron order.  Parts are :func:`part_width` columns wide; the padding
columns at the end have zero weight and their spikes are never fed back or counted.
"""
from __future__ import annotations

import numpy as np

from .reservoir import (_adc_scale, _add_rows, _lif_update, _mark_tiles, _plan_arrays, _plan_reads,
                        _read_part, _seed_state, _seg_sq, _silent_inputs, _stack_rows, _widest_bin)

from numba import njit, prange  # noqa: E402  (reservoir configured Numba's cache first)


def part_width(n: int, parts: int) -> int:
    """Columns per part: ``n / parts`` rounded up to 16, so a part's float32 rows start on
    64-byte cache lines."""
    return -(-n // (16 * parts)) * 16


def split_columns(a: np.ndarray, parts: int) -> np.ndarray:
    """``a`` (rows, n) as ``(parts, rows, part_width(n, parts))`` contiguous parts, zero padded
    at the end."""
    rows, n = a.shape
    m = part_width(n, parts)
    out = np.zeros((parts, rows, m), dtype=a.dtype)
    for h in range(parts):
        block = a[:, h * m:(h + 1) * m]
        out[h, :, :block.shape[1]] = block
    return out


@njit(cache=True, nogil=True)
def _merge_spikes(prev_p, n_new, prev, counts, raster, t, record):
    """The parts' spike lists (local indices) as one ascending list of the ``len(counts)``
    neurons (padding left out), counted in ``counts`` and, if ``record``, in ``raster[t]``."""
    n = counts.shape[0]
    m = prev_p.shape[1]
    if record:
        raster[t, :] = 0
    n_prev = 0
    for h in range(prev_p.shape[0]):
        for k in range(n_new[h]):
            j = h * m + prev_p[h, k]
            if j < n:
                prev[n_prev] = j
                n_prev += 1
                counts[j] += 1
                if record:
                    raster[t, j] = 1
    return n_prev


@njit(cache=True, nogil=True)
def _part_scratch(parts, m, like):
    """Per-part work arrays of a kernel call, allocated here: in a ``parallel=True`` function
    Numba would turn each ``np.zeros`` into a parallel region of its own.  Returns spike
    counts (scratch: the merge counts), an empty raster, three current buffers of ``like``'s
    dtype, per-part spike lists and their lengths, and the merged spike list."""
    return (np.zeros((parts, m), dtype=np.int64), np.zeros((0, m), dtype=np.uint8),
            np.zeros((parts, m), dtype=like.dtype), np.zeros((parts, m), dtype=like.dtype),
            np.zeros((parts, m), dtype=like.dtype), np.empty((parts, m), dtype=np.int64),
            np.zeros(parts, dtype=np.int64), np.empty(parts * m, dtype=np.int64))


@njit(cache=True, nogil=True)
def _first_spikes(spk_p, n, prev):
    """Neurons below ``n`` that spiked in the carried state, ascending."""
    m = spk_p.shape[1]
    n_prev = 0
    for h in range(spk_p.shape[0]):
        for j in range(m):
            if spk_p[h, j] and h * m + j < n:
                prev[n_prev] = h * m + j
                n_prev += 1
    return n_prev


@njit(cache=True, parallel=True)
def _lif_ideal_cols(bin_ptr, idx, w_in_p, w_rec_p, w_in_total_p, decay, vth, mem_p, spk_p,
                    counts, raster, record, tile_rows, touched, cnt):
    """:func:`nodes.lsm.reservoir._lif_ideal` with the columns in ``w_in_p.shape[0]`` parts
    (``(parts, rows, m)`` weights, ``(parts, m)`` state); ``counts``/``raster`` are the
    ``n`` neurons' own, as in the serial kernel."""
    parts, n_in, m = w_in_p.shape
    n = counts.shape[0]
    n_bins = bin_ptr.shape[0] - 1
    counts_p, no_raster, cur_p, _, _, prev_p, n_new, prev = _part_scratch(parts, m, mem_p)
    complement = w_in_total_p.shape[1] == m
    silent = np.empty(n_in, dtype=np.int64)
    fired = np.empty(n_in, dtype=np.uint8)
    for i in range(n_in):
        fired[i] = 0
    n_prev = _first_spikes(spk_p, n, prev)
    for t in range(n_bins):
        for r in range(touched.shape[0]):   # (a loop: ``[:] = 0`` would be a parallel region)
            touched[r] = 0
        a0 = bin_ptr[t]
        a1 = bin_ptr[t + 1]
        _mark_tiles(touched, idx, a0, a1, 0, tile_rows)
        dense = complement and 2 * (a1 - a0) > n_in
        n_silent = _silent_inputs(idx, a0, a1, fired, silent) if dense else 0
        _mark_tiles(touched, prev, 0, n_prev, n_in, tile_rows)
        for h in prange(parts):
            cur = cur_p[h]
            if dense:
                for j in range(m):
                    cur[j] = -w_in_total_p[h, j]
                _add_rows(cur, w_in_p[h], silent, 0, n_silent)
                for j in range(m):
                    cur[j] = -cur[j]
            else:
                for j in range(m):
                    cur[j] = 0.0
                _add_rows(cur, w_in_p[h], idx, a0, a1)
            _add_rows(cur, w_rec_p[h], prev, 0, n_prev)
            n_new[h] = _lif_update(cur, 1.0, decay, vth, mem_p[h], spk_p[h], prev_p[h],
                                   counts_p[h], no_raster, t, False)
        cnt[0] += (a1 - a0) + n_prev
        for r in range(touched.shape[0]):
            cnt[1] += touched[r]
        n_prev = _merge_spikes(prev_p, n_new, prev, counts, raster, t, record)
        cnt[2] += n_prev
    cnt[3] += n_bins


@njit(cache=True, parallel=True)
def _lif_rram_cols(bin_ptr, idx, g_p, g_sq_row, seg_total_p, n_in, const, read_noise, adc_bits,
                   adc_fs, decay, vth, mem_p, spk_p, counts, raster, record, tile_rows, cnt, seed,
                   table):
    """:func:`nodes.lsm.reservoir._lif_rram` with the columns in parts: the reads are planned
    once per bin (:func:`_plan_reads`), then each part sums, reads and updates its columns
    (column ``j`` of part ``h`` reads noise ``table[off + h * m + j]``, as column ``h * m + j``
    does in the serial kernel; ``table`` has ``parts * m - n`` extra entries)."""
    state = _seed_state(seed)
    parts, n_stacked, m = g_p.shape
    n = counts.shape[0]
    n_bins = bin_ptr.shape[0] - 1
    counts_p, no_raster, cur_p, acc_p, tmp_p, prev_p, n_new, prev = _part_scratch(parts, m, mem_p)
    span = np.uint64(table.shape[0] - parts * m)
    top, lsb, inv_lsb = _adc_scale(adc_bits, adc_fs)
    n_prev = _first_spikes(spk_p, n, prev)
    most = _widest_bin(bin_ptr) + n    # rows (and reads) of a bin at most
    rows = np.empty(most, dtype=np.int64)
    complement = seg_total_p.shape[1] > 0
    seg_sq = _seg_sq(g_sq_row, n_in, tile_rows, seg_total_p.shape[1])
    silent = np.empty(n_stacked, dtype=np.int64)
    r_end, r_sq, r_off, p_dense, p_lo, p_hi, p_seg = _plan_arrays(most)
    sink_p = np.empty((parts, 1), dtype=table.dtype)
    for t in range(n_bins):
        n_inputs = bin_ptr[t + 1] - bin_ptr[t]
        n_rows = _stack_rows(idx, bin_ptr[t], bin_ptr[t + 1], prev, n_prev, n_in, rows)
        n_reads, state = _plan_reads(rows, n_rows, n_inputs, n_in, tile_rows, n_stacked, complement,
                                     g_sq_row, seg_sq, silent, r_end, r_sq, r_off, p_dense, p_lo,
                                     p_hi, p_seg, state, span)
        for h in prange(parts):
            _read_part(n_reads, r_end, r_sq, r_off, p_dense, p_lo, p_hi, p_seg, rows, silent, g_p[h],
                       seg_total_p[h], acc_p[h], tmp_p[h], cur_p[h], read_noise, table, h * m,
                       adc_bits, inv_lsb, lsb, top, sink_p[h])
            n_new[h] = _lif_update(cur_p[h], const, decay, vth, mem_p[h], spk_p[h], prev_p[h],
                                   counts_p[h], no_raster, t, False)
        cnt[0] += n_rows
        cnt[1] += n_reads
        n_prev = _merge_spikes(prev_p, n_new, prev, counts, raster, t, record)
        cnt[2] += n_prev
    cnt[3] += n_bins


class ColumnParts:
    """A reservoir's weights and state in column parts, and its single-sample kernel on them.

    The parts are built from the reservoir's current weight arrays and rebuilt when one is
    replaced (assign ``w_in``/``w_rec`` anew, as :class:`LifReservoir` asks).  The
    reservoir's ``mem``/``spk`` are views of the parts' state, so both see one state.
    """

    def __init__(self, reservoir, parts: int):
        self.r, self.parts = reservoir, parts
        n = reservoir.n_neurons
        self.m = part_width(n, parts)
        self.mem_p = np.zeros((parts, self.m), dtype=reservoir.dtype)
        self.spk_p = np.zeros((parts, self.m), dtype=np.uint8)
        self._src: tuple = (None, None, None)
        if reservoir.noisy:
            r = reservoir
            self.g_p = split_columns(r.g_diff, parts)
            self.seg_total_p = split_columns(r.seg_total, parts)
            self.table = np.concatenate([r.noise_table, np.zeros(parts * self.m - n, r.dtype)])

    def state_views(self) -> tuple[np.ndarray, np.ndarray]:
        """``(mem, spk)`` of the reservoir's ``n`` neurons, as views of the parts' state."""
        n = self.r.n_neurons
        return self.mem_p.reshape(-1)[:n], self.spk_p.reshape(-1)[:n]

    def weights(self) -> tuple:
        """``(w_in, w_rec, w_in_total)`` in parts, from the reservoir's current arrays."""
        r = self.r
        src = (r.w_in, r.w_rec, r.w_in_total)   # held, so an identity test is sound
        if any(a is not b for a, b in zip(src, self._src)):
            total = r.w_in_total
            self.w_in_p = split_columns(r.w_in, self.parts)
            self.w_rec_p = split_columns(r.w_rec, self.parts)
            self.total_p = (split_columns(total[None], self.parts)[:, 0] if total.size
                            else np.zeros((self.parts, 0), r.dtype))
            self._src = src
        return self.w_in_p, self.w_rec_p, self.total_p

    def kernel(self, bin_ptr, idx, counts, raster, record, cnt, seed) -> None:
        """Run the bins from the carried state, as the serial kernels do (``seed``: the read
        noise's, ``rram`` only)."""
        r, c = self.r, self.r.config
        if r.noisy:
            d = r.device
            _lif_rram_cols(bin_ptr, idx, self.g_p, r.g_sq_row, self.seg_total_p, c.n_inputs, c.const,
                           d.read_noise_scale, d.adc_bits, d.adc_full_scale_us, c.decay, c.vth,
                           self.mem_p, self.spk_p, counts, raster, record, r.tile_rows, cnt,
                           seed, self.table)
        else:
            w_in_p, w_rec_p, total_p = self.weights()
            _lif_ideal_cols(bin_ptr, idx, w_in_p, w_rec_p, total_p, c.decay, c.vth, self.mem_p,
                            self.spk_p, counts, raster, record, r.tile_rows, r.touched, cnt)
