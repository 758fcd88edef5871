"""The ideal reservoir's Numba kernels, and the LIF pieces the ``rram`` kernels share.

Per bin ``t`` (PAPER.md)::

    mem[t] = decay * mem[t-1] * (1 - s[t-1]) + x[t] @ W_in + s[t-1] @ W_rec
    s[t]   = mem[t] >= vth
    feature = mean over bins of s

``W_in`` is ``(n_inputs, n_neurons)`` and ``W_rec`` ``(n_neurons, n_neurons)``: rows are the
crossbar rows (pre-synaptic), so a bin only touches the rows of the inputs that fired and of the
neurons that spiked in the previous bin — work proportional to activity.  Inputs arrive as CSR
``(bin_ptr, idx)`` from :mod:`nodes.lsm.binning`.

Four entry points, each with the same arguments as its twin in :mod:`nodes.lsm.kernels_rram`
(so :func:`nodes.lsm.reservoir.kernel_for` can pick one): ``lif_ideal`` (bins from the carried
state), ``lif_ideal_cols`` (the same, neurons split in column parts, :mod:`nodes.lsm.columns`),
``batch_ideal`` (samples in parallel, each from rest) and ``packet_ideal``/``packet_ideal_cols``
(a DVS packet through live binning and the kernel in one call).  The reservoir's constants
arrive as ``params``, a :data:`nodes.lsm.config.ReservoirParams`.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from .config import ReservoirParams
from .live_binning import feed_dvs

# Kernel counters: rows driven, (row tile, bin) pairs digitised, spikes, bins.
N_COUNTERS = 4


@njit(cache=True, nogil=True)
def add_rows(cur, w, rows, r0, r1):
    """``cur += w[rows[r0:r1]].sum(axis=0)``, eight (then four) rows per pass over ``cur``.

    The reservoir's inner loop: one load and store of ``cur`` per eight weight rows instead of
    per row (the loop is load/store bound), ~1.6x faster; the rows are taken as 1-D views so
    the vector loop has one address per row (~1.2x more on a 1,000-neuron reservoir).  The
    summation order is fixed by the row order, so every entry point (live node, offline
    batch) gives the same bits.
    """
    n = cur.shape[0]
    k = r0
    while k + 8 <= r1:
        w0 = w[rows[k]]
        w1 = w[rows[k + 1]]
        w2 = w[rows[k + 2]]
        w3 = w[rows[k + 3]]
        w4 = w[rows[k + 4]]
        w5 = w[rows[k + 5]]
        w6 = w[rows[k + 6]]
        w7 = w[rows[k + 7]]
        for j in range(n):
            cur[j] += ((w0[j] + w1[j]) + (w2[j] + w3[j])) + ((w4[j] + w5[j]) + (w6[j] + w7[j]))
        k += 8
    while k + 4 <= r1:
        w0 = w[rows[k]]
        w1 = w[rows[k + 1]]
        w2 = w[rows[k + 2]]
        w3 = w[rows[k + 3]]
        for j in range(n):
            cur[j] += (w0[j] + w1[j]) + (w2[j] + w3[j])
        k += 4
    while k < r1:
        w0 = w[rows[k]]
        for j in range(n):
            cur[j] += w0[j]
        k += 1


@njit(cache=True, nogil=True)
def mark_tiles(touched, rows, r0, r1, offset, tile_rows):
    """``touched[(offset + rows[r0:r1]) // tile_rows] = 1`` with a division per run of rows
    in one tile (rows arrive ascending), not per row."""
    lo = 0
    hi = 0
    for k in range(r0, r1):
        r = offset + rows[k]
        if r >= hi or r < lo:
            tl = r // tile_rows
            touched[tl] = 1
            lo = tl * tile_rows
            hi = lo + tile_rows


@njit(cache=True, nogil=True)
def silent_inputs(idx, a0, a1, fired, silent):
    """The inputs not in ``idx[a0:a1]`` into ``silent``, ascending; returns how many.
    ``fired`` (zeros, one per input) is left zero; the scan has no branch."""
    for k in range(a0, a1):
        fired[idx[k]] = 1
    n_silent = 0
    for i in range(fired.shape[0]):
        silent[n_silent] = i
        n_silent += 1 - fired[i]
        fired[i] = 0
    return n_silent


@njit(cache=True, nogil=True)
def lif_update(cur, gain, decay, vth, mem, spk, prev, counts, raster, t, record):
    """One bin of PAPER.md's LIF for every neuron, from its summed input ``cur``:
    ``mem = decay * mem * (1 - spk) + gain * cur``; spike where ``mem >= vth``.

    Writes this bin's spiking neurons to ``prev`` (the next bin's recurrent rows), counts them
    in ``counts`` and ``raster[t]`` (if ``record``); returns how many spiked.  ``gain`` 1.0
    leaves ``cur`` exact (the ideal kernel's weights already carry the gain).
    """
    n_new = 0
    for j in range(mem.shape[0]):
        inp = gain * cur[j]
        if spk[j]:
            m = inp
        else:
            m = decay * mem[j] + inp
        mem[j] = m
        if m >= vth:
            spk[j] = 1
            prev[n_new] = j
            n_new += 1
            counts[j] += 1
        else:
            spk[j] = 0
        if record:
            raster[t, j] = spk[j]
    return n_new


@njit(cache=True, nogil=True)
def lif_ideal(bin_ptr, idx, w_in, w_rec, w_in_total, params, mem, spk, touched, counts, raster,
              record, cnt):
    """Event-driven LIF over ``len(bin_ptr) - 1`` bins; mutates mem/spk/counts/raster/cnt.

    With ``w_in_total`` (the column sums of ``w_in``; empty to disable) a bin where more than
    half the inputs fired starts from the total and subtracts the rows that did not fire, so
    the input work is proportional to min(fired, silent).  The counters still count the rows
    a crossbar drives (the fired ones): this is a simulation shortcut, not the hardware's.
    """
    p = ReservoirParams(*params)
    decay, vth, tile_rows = p.decay, p.vth, p.tile_rows
    n = mem.shape[0]
    n_in = w_in.shape[0]
    n_bins = bin_ptr.shape[0] - 1
    cur = np.zeros(n, dtype=mem.dtype)
    prev = np.empty(n, dtype=np.int64)
    complement = w_in_total.shape[0] == n
    silent = np.empty(n_in, dtype=np.int64)
    fired = np.zeros(n_in, dtype=np.uint8)
    n_prev = 0
    for j in range(n):
        if spk[j]:
            prev[n_prev] = j
            n_prev += 1
    for t in range(n_bins):
        touched[:] = 0
        a0 = bin_ptr[t]
        a1 = bin_ptr[t + 1]
        mark_tiles(touched, idx, a0, a1, 0, tile_rows)
        if complement and 2 * (a1 - a0) > n_in:
            n_silent = silent_inputs(idx, a0, a1, fired, silent)
            for j in range(n):   # -(-total + silent rows): negation is exact
                cur[j] = -w_in_total[j]
            add_rows(cur, w_in, silent, 0, n_silent)
            for j in range(n):
                cur[j] = -cur[j]
        else:
            for j in range(n):
                cur[j] = 0.0
            add_rows(cur, w_in, idx, a0, a1)
        mark_tiles(touched, prev, 0, n_prev, n_in, tile_rows)
        add_rows(cur, w_rec, prev, 0, n_prev)
        cnt[0] += (a1 - a0) + n_prev
        for r in range(touched.shape[0]):
            cnt[1] += touched[r]
        n_prev = lif_update(cur, 1.0, decay, vth, mem, spk, prev, counts, raster, t, record)
        cnt[2] += n_prev
    cnt[3] += n_bins


@njit(cache=True, nogil=True)
def window_edges(n_bins, n_windows):
    """Bin edges of ``n_windows`` consecutive windows over ``n_bins`` bins: window ``k`` is
    bins ``[edges[k], edges[k+1])``, edges at ``k * n_bins / n_windows`` rounded half up
    (integer arithmetic, so every entry point cuts a sample the same way)."""
    edges = np.empty(n_windows + 1, dtype=np.int64)
    for k in range(n_windows + 1):
        edges[k] = (2 * k * n_bins + n_windows) // (2 * n_windows)
    return edges


@njit(cache=True, nogil=True)
def sample_rates(counts, n_bins, raster, n_windows, out):
    """A sample's features into ``out``: the mean rate per neuron over its ``n_bins`` bins
    (``n_windows`` 1), or the mean rate in each of ``n_windows`` windows of ``raster``,
    window-major (``out[k * n + j]``); a window without bins gives 0."""
    n = counts.shape[0]
    if n_windows <= 1:
        for j in range(n):
            out[j] = counts[j] / n_bins if n_bins > 0 else 0.0
        return
    edges = window_edges(raster.shape[0], n_windows)
    acc = np.zeros(n, dtype=np.int64)
    for k in range(n_windows):
        a = edges[k]
        b = edges[k + 1]
        acc[:] = 0
        for i in range(a, b):
            for j in range(n):
                acc[j] += raster[i, j]
        for j in range(n):
            out[k * n + j] = acc[j] / (b - a) if b > a else 0.0


@njit(cache=True, parallel=True)
def batch_ideal(sample_bins, bin_ptrs, idx, w_in, w_rec, w_in_total, params, seeds, n_windows,
                out, cnts):
    """Samples in parallel, each from rest: sample s uses
    ``bin_ptrs[sample_bins[s]:sample_bins[s+1]+1]``; ``out[s]`` gets its rates
    (:func:`sample_rates`).  ``seeds`` (the ``rram`` twin's read noise) is not used."""
    p = ReservoirParams(*params)
    n = w_in.shape[1]
    for s in prange(out.shape[0]):
        bp = bin_ptrs[sample_bins[s]:sample_bins[s + 1] + 1]
        mem = np.zeros(n, dtype=w_in.dtype)
        spk = np.zeros(n, dtype=np.uint8)
        counts = np.zeros(n, dtype=np.int64)
        touched = np.zeros(p.n_row_tiles, dtype=np.uint8)
        cnt = np.zeros(N_COUNTERS, dtype=np.int64)
        raster = np.zeros((bp.shape[0] - 1 if n_windows > 1 else 0, n), dtype=np.uint8)
        lif_ideal(bp, idx, w_in, w_rec, w_in_total, p, mem, spk, touched, counts, raster,
                  n_windows > 1, cnt)
        sample_rates(counts, bp.shape[0] - 1, raster, n_windows, out[s])
        cnts[s, :] = cnt


@njit(cache=True, nogil=True)
def merge_spikes(prev_p, n_new, prev, counts, raster, t, record):
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
def part_scratch(parts, m, like):
    """Per-part work arrays of a kernel call, allocated here: in a ``parallel=True`` function
    Numba would turn each ``np.zeros`` into a parallel region of its own.  Returns spike
    counts (scratch: the merge counts), an empty raster, three current buffers of ``like``'s
    dtype, per-part spike lists and their lengths, and the merged spike list."""
    return (np.zeros((parts, m), dtype=np.int64), np.zeros((0, m), dtype=np.uint8),
            np.zeros((parts, m), dtype=like.dtype), np.zeros((parts, m), dtype=like.dtype),
            np.zeros((parts, m), dtype=like.dtype), np.empty((parts, m), dtype=np.int64),
            np.zeros(parts, dtype=np.int64), np.empty(parts * m, dtype=np.int64))


@njit(cache=True, nogil=True)
def first_spikes(spk_p, n, prev):
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
def lif_ideal_cols(bin_ptr, idx, w_in_p, w_rec_p, w_in_total_p, params, mem_p, spk_p, touched,
                   counts, raster, record, cnt):
    """:func:`lif_ideal` with the columns in ``w_in_p.shape[0]`` parts (``(parts, rows, m)``
    weights, ``(parts, m)`` state); ``counts``/``raster`` are the ``n`` neurons' own, as in
    the serial kernel."""
    p = ReservoirParams(*params)
    decay, vth, tile_rows = p.decay, p.vth, p.tile_rows
    parts, n_in, m = w_in_p.shape
    n = counts.shape[0]
    n_bins = bin_ptr.shape[0] - 1
    counts_p, no_raster, cur_p, _, _, prev_p, n_new, prev = part_scratch(parts, m, mem_p)
    complement = w_in_total_p.shape[1] == m
    silent = np.empty(n_in, dtype=np.int64)
    fired = np.empty(n_in, dtype=np.uint8)
    for i in range(n_in):
        fired[i] = 0
    n_prev = first_spikes(spk_p, n, prev)
    for t in range(n_bins):
        for r in range(touched.shape[0]):   # (a loop: ``[:] = 0`` would be a parallel region)
            touched[r] = 0
        a0 = bin_ptr[t]
        a1 = bin_ptr[t + 1]
        mark_tiles(touched, idx, a0, a1, 0, tile_rows)
        dense = complement and 2 * (a1 - a0) > n_in
        n_silent = silent_inputs(idx, a0, a1, fired, silent) if dense else 0
        mark_tiles(touched, prev, 0, n_prev, n_in, tile_rows)
        for h in prange(parts):
            cur = cur_p[h]
            if dense:
                for j in range(m):
                    cur[j] = -w_in_total_p[h, j]
                add_rows(cur, w_in_p[h], silent, 0, n_silent)
                for j in range(m):
                    cur[j] = -cur[j]
            else:
                for j in range(m):
                    cur[j] = 0.0
                add_rows(cur, w_in_p[h], idx, a0, a1)
            add_rows(cur, w_rec_p[h], prev, 0, n_prev)
            n_new[h] = lif_update(cur, 1.0, decay, vth, mem_p[h], spk_p[h], prev_p[h],
                                   counts_p[h], no_raster, t, False)
        cnt[0] += (a1 - a0) + n_prev
        for r in range(touched.shape[0]):
            cnt[1] += touched[r]
        n_prev = merge_spikes(prev_p, n_new, prev, counts, raster, t, record)
        cnt[2] += n_prev
    cnt[3] += n_bins


@njit(cache=True, nogil=True)
def packet_ideal(ev, dvs, st, seen, part, width, align, max_gap, w_in, w_rec, w_in_total, params,
                 mem, spk, touched, counts, cnt):
    """One DVS packet through live binning (:func:`nodes.lsm.live_binning.feed_dvs`) and
    :func:`lif_ideal` on the bins it closes; True when a coordinate is off the sensor (then
    nothing is binned)."""
    bp, idx, _, bad = feed_dvs(ev, dvs, st, seen, part, width, align, max_gap)
    if bp.shape[0] > 1:
        lif_ideal(bp, idx, w_in, w_rec, w_in_total, params, mem, spk, touched, counts,
                  np.zeros((0, counts.shape[0]), dtype=np.uint8), False, cnt)
    return bad


@njit(cache=True, nogil=True)
def packet_ideal_cols(ev, dvs, st, seen, part, width, align, max_gap, w_in_p, w_rec_p, total_p,
                      params, mem_p, spk_p, touched, counts, cnt):
    """:func:`packet_ideal` on a reservoir split in column parts."""
    bp, idx, _, bad = feed_dvs(ev, dvs, st, seen, part, width, align, max_gap)
    if bp.shape[0] > 1:
        lif_ideal_cols(bp, idx, w_in_p, w_rec_p, total_p, params, mem_p, spk_p, touched, counts,
                       np.zeros((0, counts.shape[0]), dtype=np.uint8), False, cnt)
    return bad
