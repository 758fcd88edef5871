"""The ``rram`` device's Numba kernels: the ideal kernels' LIF (:mod:`nodes.lsm.kernels`) on
crossbar reads with read noise and a column ADC (:mod:`nodes.lsm.rram` holds the device model).

Each entry point takes the arguments of its ideal twin, with the conductances and the noise
table for the weights and ``read_state`` (``[read seed, calls so far]``) after the state:
``lif_rram``, ``lif_rram_cols``, ``batch_rram``, ``packet_rram``, ``packet_rram_cols``.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from .config import ReservoirParams
from .kernels import (N_COUNTERS, add_rows, first_spikes, lif_update, merge_spikes, part_scratch,
                      sample_rates)
from .live_binning import feed_dvs


@njit(cache=True, nogil=True)
def next_read_seed(read_state):
    """The read-noise seed of the next ``rram`` kernel call; counts the call in ``read_state``
    (``[read seed, calls so far]``), so noise differs from call to call but replays exactly."""
    seed = (read_state[0] + 1_000_003 * read_state[1]) % (2 ** 32)
    read_state[1] += 1
    return seed


@njit(cache=True, nogil=True)
def seed_state(seed):
    """The xorshift64* state of a kernel call's read-noise stream (never zero)."""
    state = np.uint64(seed) * np.uint64(0x9E3779B97F4A7C15) + np.uint64(0x2545F4914F6CDD1D)
    return np.uint64(1) if state == np.uint64(0) else state


@njit(cache=True, nogil=True)
def next_offset(state, span):
    """One xorshift64* step: ``(offset in [0, span), new state)`` of the next read's draws."""
    state ^= state >> np.uint64(12)
    state ^= state << np.uint64(25)
    state ^= state >> np.uint64(27)
    return np.int64(((state * np.uint64(0x2545F4914F6CDD1D)) >> np.uint64(11)) % span), state


@njit(cache=True, nogil=True)
def adc_scale(adc_bits, adc_fs):
    """``(top code, LSB, 1 / LSB)`` of the signed ADC (zeros without one)."""
    if adc_bits <= 0:
        return 0.0, 0.0, 0.0
    top = 2.0 ** (adc_bits - 1) - 1.0
    lsb = adc_fs / top
    return top, lsb, 1.0 / lsb


@njit(cache=True, nogil=True)
def widest_bin(bin_ptr):
    """The most inputs any bin of the CSR holds."""
    widest = 0
    for t in range(bin_ptr.shape[0] - 1):
        widest = max(widest, bin_ptr[t + 1] - bin_ptr[t])
    return widest


@njit(cache=True, nogil=True)
def stack_rows(idx, a0, a1, prev, n_prev, n_in, rows):
    """A bin's driven crossbar rows into ``rows``: its inputs, then the previous bin's spiking
    neurons (offset by ``n_in``), both ascending; returns how many."""
    for q in range(a1 - a0):
        rows[q] = idx[a0 + q]
    for q in range(n_prev):
        rows[a1 - a0 + q] = n_in + prev[q]
    return (a1 - a0) + n_prev


@njit(cache=True, nogil=True)
def tile_run(rows, q, n_rows, tile_rows, n_stacked):
    """The read starting at ``rows[q]``: ``(tile, first row, end row of the tile, end of the
    run in rows)`` — the driven rows that fall in the same row tile (rows are ascending)."""
    tl = rows[q] // tile_rows
    lo = tl * tile_rows
    hi = min(lo + tile_rows, n_stacked)
    e = q
    while e < n_rows and lo <= rows[e] < hi:
        e += 1
    return tl, lo, hi, e


@njit(cache=True, nogil=True)
def silent_rows(rows, q, e, lo, hi, silent, n_silent):
    """Append the rows of ``[lo, hi)`` not in the run ``rows[q:e]`` to ``silent`` (from
    ``n_silent``); returns the new count."""
    p = q
    for r in range(lo, hi):
        if p < e and rows[p] == r:
            p += 1
        else:
            silent[n_silent] = r
            n_silent += 1
    return n_silent


@njit(cache=True, nogil=True)
def segment_sq(g_sq_row, n_in, tile_rows, n_segs):
    """Each segment's sum of its rows' mean squared conductances: segment ``2 * tile`` is a row
    tile's input rows, ``2 * tile + 1`` its recurrent rows (none when ``n_segs`` is 0)."""
    out = np.zeros(n_segs)
    if n_segs == 0:
        return out
    for r in range(g_sq_row.shape[0]):
        out[2 * (r // tile_rows) + (1 if r >= n_in else 0)] += g_sq_row[r]
    return out


@njit(cache=True, nogil=True)
def plan_reads(rows, n_rows, n_inputs, n_in, tile_rows, n_stacked, complement, g_sq_row, seg_sq,
                silent, r_end, r_sq, r_off, p_dense, p_lo, p_hi, p_seg, state, span):
    """Cut a bin's driven ``rows`` (``rows[:n_inputs]`` the inputs) into reads, one per run of
    rows in a row tile, and each read into two pieces, its input rows and its recurrent rows;
    draw each read's noise offset.  Read ``u`` is pieces ``r_end[u-1]:r_end[u]``.  A piece
    with more than half of its segment driven is summed as the segment total minus its silent
    rows (``dense``; ``silent[p_lo:p_hi]``), else as its driven rows (``rows[p_lo:p_hi]``);
    the read's ``sq`` likewise.  Returns (reads, generator state)."""
    n_reads = 0
    n_pieces = 0
    n_silent = 0
    q = 0
    while q < n_rows:
        tl, lo, hi, e = tile_run(rows, q, n_rows, tile_rows, n_stacked)
        mid = min(max(n_in, lo), hi)
        split = min(max(q, n_inputs), e)
        sq = 0.0
        for part in range(2):
            qa, ea = (q, split) if part == 0 else (split, e)
            sa, sb = (lo, mid) if part == 0 else (mid, hi)
            if ea == qa:
                continue
            seg = 2 * tl + part
            if complement and 2 * (ea - qa) > sb - sa:
                s0 = n_silent
                n_silent = silent_rows(rows, qa, ea, sa, sb, silent, n_silent)
                v = seg_sq[seg]
                for k in range(s0, n_silent):
                    v -= g_sq_row[silent[k]]
                sq += v
                p_dense[n_pieces] = 1
                p_lo[n_pieces] = s0
                p_hi[n_pieces] = n_silent
            else:
                v = 0.0
                for k in range(qa, ea):
                    v += g_sq_row[rows[k]]
                sq += v
                p_dense[n_pieces] = 0
                p_lo[n_pieces] = qa
                p_hi[n_pieces] = ea
            p_seg[n_pieces] = seg
            n_pieces += 1
        r_end[n_reads] = n_pieces
        r_sq[n_reads] = sq
        r_off[n_reads], state = next_offset(state, span)
        n_reads += 1
        q = e
    return n_reads, state


@njit(cache=True, nogil=True)
def read_part(n_reads, r_end, r_sq, r_off, p_dense, p_lo, p_hi, p_seg, rows, silent, g, seg_total,
               acc, tmp, cur, read_noise, table, col0, adc_bits, inv_lsb, lsb, top, sink):
    """A planned bin over the columns of ``g`` (``col0``: the first, for the noise draws):
    ``cur`` = sum over reads of ADC(partial current + read noise); a dense piece adds
    ``-(-total + silent rows)`` (exact negations)."""
    m = acc.shape[0]
    if read_noise > 0.0:
        for u in range(n_reads):
            touch(table, r_off[u] + col0, m, sink)
    for j in range(m):
        cur[j] = 0.0
    p = 0
    for u in range(n_reads):
        for j in range(m):
            acc[j] = 0.0
        while p < r_end[u]:
            if p_dense[p]:
                for j in range(m):
                    tmp[j] = -seg_total[p_seg[p], j]
                add_rows(tmp, g, silent, p_lo[p], p_hi[p])
                for j in range(m):
                    acc[j] -= tmp[j]
            else:
                add_rows(acc, g, rows, p_lo[p], p_hi[p])
            p += 1
        read_tile(acc, r_sq[u], cur, read_noise, table, r_off[u] + col0, adc_bits, inv_lsb, lsb, top)


@njit(cache=True, nogil=True)
def plan_arrays(most):
    """Buffers of :func:`plan_reads` for bins of at most ``most`` driven rows: read ends,
    ``sq`` and noise offsets; piece dense flags, bounds and segments."""
    return (np.empty(most, dtype=np.int64), np.empty(most), np.empty(most, dtype=np.int64),
            np.empty(2 * most, dtype=np.uint8), np.empty(2 * most, dtype=np.int64),
            np.empty(2 * most, dtype=np.int64), np.empty(2 * most, dtype=np.int64))


@njit(cache=True, nogil=True)
def touch(table, off, n, sink):
    """Load one value per cache line of ``table[off:off + n]`` (into ``sink``, so the loads
    stay): issued before a read's rows are summed, the noise draws' cache misses overlap
    that work instead of stalling the noise loop after it."""
    v = 0.0
    for j in range(0, n, 16):
        v += table[off + j]
    sink[0] = v


@njit(cache=True, nogil=True)
def read_tile(acc, sq, cur, read_noise, table, off, adc_bits, inv_lsb, lsb, top):
    """One row tile's partial column currents -> read noise -> ADC -> added to ``cur``."""
    n = acc.shape[0]
    if read_noise > 0.0:
        sd = read_noise * math.sqrt(sq)
        for j in range(n):
            acc[j] += sd * table[off + j]
    if adc_bits > 0:
        for j in range(n):   # min/max rather than branches: the loop vectorises
            cur[j] += min(max(math.floor(acc[j] * inv_lsb + 0.5), -top), top) * lsb
    else:
        for j in range(n):
            cur[j] += acc[j]


@njit(cache=True, nogil=True)
def lif_rram(bin_ptr, idx, g_diff, g_sq_row, seg_total, table, params, mem, spk, read_state,
             counts, raster, record, cnt):
    """As ``lif_ideal`` but reads the stacked conductances (µS) with per-read noise and an ADC.

    Each row tile gives a partial column current; read noise is added to it in closed form
    (std ``read_noise * sqrt(sum over driven rows of mean_j(G+^2 + G-^2))``, one draw per
    column per read; ``g_sq_row`` holds each row's column mean, which makes the variance exact
    in expectation and off by ~spread/sqrt(rows) per column, at a fraction of the cost), then the
    signed ADC quantises it; the membrane receives ``const * sum of tiles``.  Driven rows are
    visited in order (inputs ascending, then recurrent rows ascending, as binning emits them),
    so each tile's rows form one run and one read, summed by :func:`add_rows`.  The normal
    draws of one read are a run of ``table`` (pre-drawn i.i.d. normals) at an offset from a
    xorshift64* generator seeded by :func:`next_read_seed` from ``read_state``: vectorised per
    column, ~1 ns per draw instead
    of ~100 ns for Numba's ``np.random.standard_normal``.

    A read's rows are two pieces, its input rows and its recurrent rows (a dense input, where
    most inputs fire, sits beside a sparser recurrent layer in the same tile).  With
    ``seg_total`` (column sums of ``g_diff`` over each piece's segment, :func:`nodes.lsm.reservoir.segment_totals`;
    empty to disable) a piece covering more than half its segment is summed as the segment
    total minus the silent rows (and its ``sq`` likewise): the same partial current up to
    rounding, read with the same noise and ADC.
    """
    p = ReservoirParams(*params)
    n_in, const, read_noise = p.n_inputs, p.const, p.read_noise
    adc_bits, adc_fs = p.adc_bits, p.adc_fs
    decay, vth, tile_rows = p.decay, p.vth, p.tile_rows
    state = seed_state(next_read_seed(read_state))
    n = mem.shape[0]
    n_bins = bin_ptr.shape[0] - 1
    span = np.uint64(table.shape[0] - n)
    acc = np.zeros(n, dtype=mem.dtype)
    tmp = np.zeros(n, dtype=mem.dtype)
    cur = np.zeros(n, dtype=mem.dtype)
    prev = np.empty(n, dtype=np.int64)
    top, lsb, inv_lsb = adc_scale(adc_bits, adc_fs)
    n_prev = 0
    for j in range(n):
        if spk[j]:
            prev[n_prev] = j
            n_prev += 1
    most = widest_bin(bin_ptr) + n
    rows = np.empty(most, dtype=np.int64)   # one bin's driven rows, stacked
    n_stacked = g_diff.shape[0]
    complement = seg_total.shape[0] > 0
    seg_sq = segment_sq(g_sq_row, n_in, tile_rows, seg_total.shape[0])
    silent = np.empty(n_stacked, dtype=np.int64)
    r_end, r_sq, r_off, p_dense, p_lo, p_hi, p_seg = plan_arrays(most)
    sink = np.zeros(1, dtype=table.dtype)
    for t in range(n_bins):
        n_rows = stack_rows(idx, bin_ptr[t], bin_ptr[t + 1], prev, n_prev, n_in, rows)
        n_reads, state = plan_reads(rows, n_rows, bin_ptr[t + 1] - bin_ptr[t], n_in, tile_rows,
                                     n_stacked, complement, g_sq_row, seg_sq, silent, r_end, r_sq,
                                     r_off, p_dense, p_lo, p_hi, p_seg, state, span)
        read_part(n_reads, r_end, r_sq, r_off, p_dense, p_lo, p_hi, p_seg, rows, silent, g_diff,
                   seg_total, acc, tmp, cur, read_noise, table, 0, adc_bits, inv_lsb, lsb, top, sink)
        cnt[0] += n_rows
        cnt[1] += n_reads
        n_prev = lif_update(cur, const, decay, vth, mem, spk, prev, counts, raster, t, record)
        cnt[2] += n_prev
    cnt[3] += n_bins


@njit(cache=True, parallel=True)
def batch_rram(sample_bins, bin_ptrs, idx, g_diff, g_sq_row, seg_total, table, params, seeds,
               n_windows, out, cnts):
    """:func:`nodes.lsm.kernels.batch_ideal` on :func:`lif_rram`: sample ``s`` reads its
    noise from seed ``seeds[s]`` (a read state ``[seeds[s], 0]``)."""
    p = ReservoirParams(*params)
    n = g_diff.shape[1]
    for s in prange(out.shape[0]):
        bp = bin_ptrs[sample_bins[s]:sample_bins[s + 1] + 1]
        mem = np.zeros(n, dtype=g_diff.dtype)
        spk = np.zeros(n, dtype=np.uint8)
        counts = np.zeros(n, dtype=np.int64)
        read_state = np.zeros(2, dtype=np.int64)
        read_state[0] = seeds[s]
        cnt = np.zeros(N_COUNTERS, dtype=np.int64)
        raster = np.zeros((bp.shape[0] - 1 if n_windows > 1 else 0, n), dtype=np.uint8)
        lif_rram(bp, idx, g_diff, g_sq_row, seg_total, table, p, mem, spk, read_state, counts,
                 raster, n_windows > 1, cnt)
        sample_rates(counts, bp.shape[0] - 1, raster, n_windows, out[s])
        cnts[s, :] = cnt


@njit(cache=True, parallel=True)
def lif_rram_cols(bin_ptr, idx, g_p, g_sq_row, seg_total_p, table, params, mem_p, spk_p,
                  read_state, counts, raster, record, cnt):
    """:func:`lif_rram` with the columns in parts: the reads are planned
    once per bin (:func:`plan_reads`), then each part sums, reads and updates its columns
    (column ``j`` of part ``h`` reads noise ``table[off + h * m + j]``, as column ``h * m + j``
    does in the serial kernel; ``table`` has ``parts * m - n`` extra entries)."""
    p = ReservoirParams(*params)
    n_in, const, read_noise = p.n_inputs, p.const, p.read_noise
    adc_bits, adc_fs = p.adc_bits, p.adc_fs
    decay, vth, tile_rows = p.decay, p.vth, p.tile_rows
    state = seed_state(next_read_seed(read_state))
    parts, n_stacked, m = g_p.shape
    n = counts.shape[0]
    n_bins = bin_ptr.shape[0] - 1
    counts_p, no_raster, cur_p, acc_p, tmp_p, prev_p, n_new, prev = part_scratch(parts, m, mem_p)
    span = np.uint64(table.shape[0] - parts * m)
    top, lsb, inv_lsb = adc_scale(adc_bits, adc_fs)
    n_prev = first_spikes(spk_p, n, prev)
    most = widest_bin(bin_ptr) + n    # rows (and reads) of a bin at most
    rows = np.empty(most, dtype=np.int64)
    complement = seg_total_p.shape[1] > 0
    seg_sq = segment_sq(g_sq_row, n_in, tile_rows, seg_total_p.shape[1])
    silent = np.empty(n_stacked, dtype=np.int64)
    r_end, r_sq, r_off, p_dense, p_lo, p_hi, p_seg = plan_arrays(most)
    sink_p = np.empty((parts, 1), dtype=table.dtype)
    for t in range(n_bins):
        n_inputs = bin_ptr[t + 1] - bin_ptr[t]
        n_rows = stack_rows(idx, bin_ptr[t], bin_ptr[t + 1], prev, n_prev, n_in, rows)
        n_reads, state = plan_reads(rows, n_rows, n_inputs, n_in, tile_rows, n_stacked, complement,
                                     g_sq_row, seg_sq, silent, r_end, r_sq, r_off, p_dense, p_lo,
                                     p_hi, p_seg, state, span)
        for h in prange(parts):
            read_part(n_reads, r_end, r_sq, r_off, p_dense, p_lo, p_hi, p_seg, rows, silent, g_p[h],
                       seg_total_p[h], acc_p[h], tmp_p[h], cur_p[h], read_noise, table, h * m,
                       adc_bits, inv_lsb, lsb, top, sink_p[h])
            n_new[h] = lif_update(cur_p[h], const, decay, vth, mem_p[h], spk_p[h], prev_p[h],
                                   counts_p[h], no_raster, t, False)
        cnt[0] += n_rows
        cnt[1] += n_reads
        n_prev = merge_spikes(prev_p, n_new, prev, counts, raster, t, record)
        cnt[2] += n_prev
    cnt[3] += n_bins


@njit(cache=True, nogil=True)
def packet_rram(ev, dvs, st, seen, part, width, align, max_gap, g_diff, g_sq_row, seg_total, table,
                params, mem, spk, read_state, counts, cnt):
    """:func:`nodes.lsm.kernels.packet_ideal` with :func:`lif_rram`."""
    bp, idx, _, bad = feed_dvs(ev, dvs, st, seen, part, width, align, max_gap)
    if bp.shape[0] > 1:
        lif_rram(bp, idx, g_diff, g_sq_row, seg_total, table, params, mem, spk, read_state, counts,
                 np.zeros((0, counts.shape[0]), dtype=np.uint8), False, cnt)
    return bad


@njit(cache=True, nogil=True)
def packet_rram_cols(ev, dvs, st, seen, part, width, align, max_gap, g_p, g_sq_row, seg_total_p,
                     table, params, mem_p, spk_p, read_state, counts, cnt):
    """:func:`packet_rram` on a reservoir split in column parts."""
    bp, idx, _, bad = feed_dvs(ev, dvs, st, seen, part, width, align, max_gap)
    if bp.shape[0] > 1:
        lif_rram_cols(bp, idx, g_p, g_sq_row, seg_total_p, table, params, mem_p, spk_p, read_state,
                      counts, np.zeros((0, counts.shape[0]), dtype=np.uint8), False, cnt)
    return bad
