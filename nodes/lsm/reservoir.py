"""Recurrent LIF reservoir (PAPER.md) with an event-driven Numba kernel.

Per bin ``t``::

    mem[t] = decay * mem[t-1] * (1 - s[t-1]) + x[t] @ W_in + s[t-1] @ W_rec
    s[t]   = mem[t] >= vth
    feature = mean over bins of s

``W_in`` is ``(n_inputs, n_neurons)`` and ``W_rec`` ``(n_neurons, n_neurons)``: rows are the
crossbar rows (pre-synaptic), so a bin only touches the rows of the inputs that fired and of the
neurons that spiked in the previous bin — work proportional to activity.  Inputs arrive as CSR
``(bin_ptr, idx)`` from :mod:`nodes.lsm.binning`.
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import asdict, dataclass, fields

import numpy as np

from rram_lsm.stream.node import ConfigError

from . import rram as _rram  # noqa: F401  (nodes.lsm.__init__ configured Numba's cache first)
from .rram import DeviceConfig, RramCrossbar, make_device

import numba  # noqa: E402
from numba import njit, prange  # noqa: E402

BINNING_MODES = ("fixed_count", "fixed_width", "chunk_pad")
# Kernel counters: rows driven, (row tile, bin) pairs digitised, spikes, bins.
_N_COUNTERS = 4
# Pre-drawn standard normals for read noise (a run of n_neurons of them per read, random offset).
NOISE_TABLE_SIZE = 1 << 20


@dataclass(frozen=True)
class LsmConfig:
    """Everything that defines one reservoir; validated on construction (errors name the key).

    ``mu_*``/``sigma_*`` are the differential-conductance law of formed cells in µS (PAPER.md);
    weights are that conductance times ``const``.  ``binning``/``bin_width_us`` say how events
    become frames (``bin_width_us`` is the live fixed_width bin, or the raster step of
    ``chunk_pad``); ``crop``/``polarity`` map DVS sensors onto ``n_inputs`` (e.g. 16x16, one
    polarity, for N-MNIST).
    """

    n_inputs: int
    n_neurons: int = 200
    n_bins: int = 50
    decay: float = 0.9
    vth: float = 5.0
    const: float = 0.07
    seed: int = 0
    mu_in: float = 0.002
    sigma_in: float = 6.6
    mu_rec: float = 0.006
    sigma_rec: float = 6.7
    binning: str = "fixed_count"
    bin_width_us: int | None = None
    crop: tuple[int, int] | None = None
    polarity: int | None = None

    def __post_init__(self) -> None:
        for key in ("n_inputs", "n_neurons", "n_bins"):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v <= 0:
                raise ConfigError(f"LSM parameter {key!r} must be a positive integer, got {v!r}")
        if not isinstance(self.seed, (int, np.integer)) or isinstance(self.seed, bool) or self.seed < 0:
            raise ConfigError(f"LSM parameter 'seed' must be a non-negative integer, got {self.seed!r}")
        for key in ("decay", "vth", "const", "mu_in", "sigma_in", "mu_rec", "sigma_rec"):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ConfigError(f"LSM parameter {key!r} must be a finite number, got {v!r}")
        if not 0.0 <= self.decay <= 1.0:
            raise ConfigError(f"LSM parameter 'decay' must lie in [0, 1], got {self.decay!r}")
        if self.vth <= 0:
            raise ConfigError(f"LSM parameter 'vth' must be > 0, got {self.vth!r}")
        if self.const <= 0:
            raise ConfigError(f"LSM parameter 'const' must be > 0, got {self.const!r}")
        for key in ("sigma_in", "sigma_rec"):
            if getattr(self, key) < 0:
                raise ConfigError(f"LSM parameter {key!r} must be >= 0, got {getattr(self, key)!r}")
        if self.binning not in BINNING_MODES:
            raise ConfigError(f"LSM parameter 'binning' must be one of {BINNING_MODES}, got {self.binning!r}")
        if self.bin_width_us is not None and (not isinstance(self.bin_width_us, (int, np.integer)) or self.bin_width_us <= 0):
            raise ConfigError(f"LSM parameter 'bin_width_us' must be a positive integer (µs), got {self.bin_width_us!r}")
        if self.binning == "fixed_width" and self.bin_width_us is None:
            raise ConfigError("LSM parameter 'bin_width_us' is required when binning is 'fixed_width'")
        if self.polarity not in (None, 0, 1):
            raise ConfigError(f"LSM parameter 'polarity' must be None, 0 or 1, got {self.polarity!r}")
        if self.crop is not None:
            if len(self.crop) != 2 or any(not isinstance(c, (int, np.integer)) or c <= 0 for c in self.crop):
                raise ConfigError(f"LSM parameter 'crop' must be (width, height) positive ints, got {self.crop!r}")
            object.__setattr__(self, "crop", (int(self.crop[0]), int(self.crop[1])))

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def field_names(cls) -> set[str]:
        return {f.name for f in fields(cls)}


def _positive_int(key: str, value) -> int:
    """``value`` as a positive int, or a ConfigError naming the LSM parameter ``key``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ConfigError(f"LSM parameter {key!r} must be a positive integer, got {value!r}")
    return int(value)


def check_windows(windows) -> int:
    """``windows`` (rate windows per sample) as a positive int, or a ConfigError naming it."""
    return _positive_int("windows", windows)


def check_threads(threads) -> int:
    """``threads`` (cores one sample runs on) as a positive int, or a ConfigError naming it."""
    return _positive_int("threads", threads)


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


# ---------------------------------------------------------------------------- kernels

@njit(cache=True, nogil=True)
def _add_rows(cur, w, rows, r0, r1):
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
def _mark_tiles(touched, rows, r0, r1, offset, tile_rows):
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
def _silent_inputs(idx, a0, a1, fired, silent):
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
def _lif_update(cur, gain, decay, vth, mem, spk, prev, counts, raster, t, record):
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
def _lif_ideal(bin_ptr, idx, w_in, w_rec, w_in_total, decay, vth, mem, spk, counts, raster,
               record, tile_rows, touched, cnt):
    """Event-driven LIF over ``len(bin_ptr) - 1`` bins; mutates mem/spk/counts/raster/cnt.

    With ``w_in_total`` (the column sums of ``w_in``; empty to disable) a bin where more than
    half the inputs fired starts from the total and subtracts the rows that did not fire, so
    the input work is proportional to min(fired, silent).  The counters still count the rows
    a crossbar drives (the fired ones): this is a simulation shortcut, not the hardware's.
    """
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
        _mark_tiles(touched, idx, a0, a1, 0, tile_rows)
        if complement and 2 * (a1 - a0) > n_in:
            n_silent = _silent_inputs(idx, a0, a1, fired, silent)
            for j in range(n):   # -(-total + silent rows): negation is exact
                cur[j] = -w_in_total[j]
            _add_rows(cur, w_in, silent, 0, n_silent)
            for j in range(n):
                cur[j] = -cur[j]
        else:
            for j in range(n):
                cur[j] = 0.0
            _add_rows(cur, w_in, idx, a0, a1)
        _mark_tiles(touched, prev, 0, n_prev, n_in, tile_rows)
        _add_rows(cur, w_rec, prev, 0, n_prev)
        cnt[0] += (a1 - a0) + n_prev
        for r in range(touched.shape[0]):
            cnt[1] += touched[r]
        n_prev = _lif_update(cur, 1.0, decay, vth, mem, spk, prev, counts, raster, t, record)
        cnt[2] += n_prev
    cnt[3] += n_bins


@njit(cache=True, nogil=True)
def next_read_seed(read_state):
    """The read-noise seed of the next ``rram`` kernel call; counts the call in ``read_state``
    (``[read seed, calls so far]``), so noise differs from call to call but replays exactly."""
    seed = (read_state[0] + 1_000_003 * read_state[1]) % (2 ** 32)
    read_state[1] += 1
    return seed


@njit(cache=True, nogil=True)
def _seed_state(seed):
    """The xorshift64* state of a kernel call's read-noise stream (never zero)."""
    state = np.uint64(seed) * np.uint64(0x9E3779B97F4A7C15) + np.uint64(0x2545F4914F6CDD1D)
    return np.uint64(1) if state == np.uint64(0) else state


@njit(cache=True, nogil=True)
def _next_offset(state, span):
    """One xorshift64* step: ``(offset in [0, span), new state)`` of the next read's draws."""
    state ^= state >> np.uint64(12)
    state ^= state << np.uint64(25)
    state ^= state >> np.uint64(27)
    return np.int64(((state * np.uint64(0x2545F4914F6CDD1D)) >> np.uint64(11)) % span), state


@njit(cache=True, nogil=True)
def _adc_scale(adc_bits, adc_fs):
    """``(top code, LSB, 1 / LSB)`` of the signed ADC (zeros without one)."""
    if adc_bits <= 0:
        return 0.0, 0.0, 0.0
    top = 2.0 ** (adc_bits - 1) - 1.0
    lsb = adc_fs / top
    return top, lsb, 1.0 / lsb


@njit(cache=True, nogil=True)
def _widest_bin(bin_ptr):
    """The most inputs any bin of the CSR holds."""
    widest = 0
    for t in range(bin_ptr.shape[0] - 1):
        widest = max(widest, bin_ptr[t + 1] - bin_ptr[t])
    return widest


@njit(cache=True, nogil=True)
def _stack_rows(idx, a0, a1, prev, n_prev, n_in, rows):
    """A bin's driven crossbar rows into ``rows``: its inputs, then the previous bin's spiking
    neurons (offset by ``n_in``), both ascending; returns how many."""
    for q in range(a1 - a0):
        rows[q] = idx[a0 + q]
    for q in range(n_prev):
        rows[a1 - a0 + q] = n_in + prev[q]
    return (a1 - a0) + n_prev


@njit(cache=True, nogil=True)
def _tile_run(rows, q, n_rows, tile_rows, n_stacked):
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
def _silent_rows(rows, q, e, lo, hi, silent, n_silent):
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
def _seg_sq(g_sq_row, n_in, tile_rows, n_segs):
    """Each segment's sum of its rows' mean squared conductances: segment ``2 * tile`` is a row
    tile's input rows, ``2 * tile + 1`` its recurrent rows (none when ``n_segs`` is 0)."""
    out = np.zeros(n_segs)
    if n_segs == 0:
        return out
    for r in range(g_sq_row.shape[0]):
        out[2 * (r // tile_rows) + (1 if r >= n_in else 0)] += g_sq_row[r]
    return out


@njit(cache=True, nogil=True)
def _plan_reads(rows, n_rows, n_inputs, n_in, tile_rows, n_stacked, complement, g_sq_row, seg_sq,
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
        tl, lo, hi, e = _tile_run(rows, q, n_rows, tile_rows, n_stacked)
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
                n_silent = _silent_rows(rows, qa, ea, sa, sb, silent, n_silent)
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
        r_off[n_reads], state = _next_offset(state, span)
        n_reads += 1
        q = e
    return n_reads, state


@njit(cache=True, nogil=True)
def _read_part(n_reads, r_end, r_sq, r_off, p_dense, p_lo, p_hi, p_seg, rows, silent, g, seg_total,
               acc, tmp, cur, read_noise, table, col0, adc_bits, inv_lsb, lsb, top, sink):
    """A planned bin over the columns of ``g`` (``col0``: the first, for the noise draws):
    ``cur`` = sum over reads of ADC(partial current + read noise); a dense piece adds
    ``-(-total + silent rows)`` (exact negations)."""
    m = acc.shape[0]
    if read_noise > 0.0:
        for u in range(n_reads):
            _touch(table, r_off[u] + col0, m, sink)
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
                _add_rows(tmp, g, silent, p_lo[p], p_hi[p])
                for j in range(m):
                    acc[j] -= tmp[j]
            else:
                _add_rows(acc, g, rows, p_lo[p], p_hi[p])
            p += 1
        _read_tile(acc, r_sq[u], cur, read_noise, table, r_off[u] + col0, adc_bits, inv_lsb, lsb, top)


@njit(cache=True, nogil=True)
def _plan_arrays(most):
    """Buffers of :func:`_plan_reads` for bins of at most ``most`` driven rows: read ends,
    ``sq`` and noise offsets; piece dense flags, bounds and segments."""
    return (np.empty(most, dtype=np.int64), np.empty(most), np.empty(most, dtype=np.int64),
            np.empty(2 * most, dtype=np.uint8), np.empty(2 * most, dtype=np.int64),
            np.empty(2 * most, dtype=np.int64), np.empty(2 * most, dtype=np.int64))


@njit(cache=True, nogil=True)
def _touch(table, off, n, sink):
    """Load one value per cache line of ``table[off:off + n]`` (into ``sink``, so the loads
    stay): issued before a read's rows are summed, the noise draws' cache misses overlap
    that work instead of stalling the noise loop after it."""
    v = 0.0
    for j in range(0, n, 16):
        v += table[off + j]
    sink[0] = v


@njit(cache=True, nogil=True)
def _read_tile(acc, sq, cur, read_noise, table, off, adc_bits, inv_lsb, lsb, top):
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
def _lif_rram(bin_ptr, idx, g_diff, g_sq_row, seg_total, n_in, const, read_noise, adc_bits,
              adc_fs, decay, vth, mem, spk, counts, raster, record, tile_rows, touched, cnt, seed,
              table):
    """As ``_lif_ideal`` but reads the stacked conductances (µS) with per-read noise and an ADC.

    Each row tile gives a partial column current; read noise is added to it in closed form
    (std ``read_noise * sqrt(sum over driven rows of mean_j(G+^2 + G-^2))``, one draw per
    column per read; ``g_sq_row`` holds each row's column mean, which makes the variance exact
    in expectation and off by ~spread/sqrt(rows) per column, at a fraction of the cost), then the
    signed ADC quantises it; the membrane receives ``const * sum of tiles``.  Driven rows are
    visited in order (inputs ascending, then recurrent rows ascending, as binning emits them),
    so each tile's rows form one run and one read, summed by :func:`_add_rows`.  The normal
    draws of one read are a run of ``table`` (pre-drawn i.i.d. normals) at an offset from a
    xorshift64* generator seeded with ``seed``: vectorised per column, ~1 ns per draw instead
    of ~100 ns for Numba's ``np.random.standard_normal``.

    A read's rows are two pieces, its input rows and its recurrent rows (a dense input, where
    most inputs fire, sits beside a sparser recurrent layer in the same tile).  With
    ``seg_total`` (column sums of ``g_diff`` over each piece's segment, :func:`segment_totals`;
    empty to disable) a piece covering more than half its segment is summed as the segment
    total minus the silent rows (and its ``sq`` likewise): the same partial current up to
    rounding, read with the same noise and ADC.
    """
    state = _seed_state(seed)
    n = mem.shape[0]
    n_bins = bin_ptr.shape[0] - 1
    span = np.uint64(table.shape[0] - n)
    acc = np.zeros(n, dtype=mem.dtype)
    tmp = np.zeros(n, dtype=mem.dtype)
    cur = np.zeros(n, dtype=mem.dtype)
    prev = np.empty(n, dtype=np.int64)
    top, lsb, inv_lsb = _adc_scale(adc_bits, adc_fs)
    n_prev = 0
    for j in range(n):
        if spk[j]:
            prev[n_prev] = j
            n_prev += 1
    most = _widest_bin(bin_ptr) + n
    rows = np.empty(most, dtype=np.int64)   # one bin's driven rows, stacked
    n_stacked = g_diff.shape[0]
    complement = seg_total.shape[0] > 0
    seg_sq = _seg_sq(g_sq_row, n_in, tile_rows, seg_total.shape[0])
    silent = np.empty(n_stacked, dtype=np.int64)
    r_end, r_sq, r_off, p_dense, p_lo, p_hi, p_seg = _plan_arrays(most)
    sink = np.zeros(1, dtype=table.dtype)
    for t in range(n_bins):
        n_rows = _stack_rows(idx, bin_ptr[t], bin_ptr[t + 1], prev, n_prev, n_in, rows)
        n_reads, state = _plan_reads(rows, n_rows, bin_ptr[t + 1] - bin_ptr[t], n_in, tile_rows,
                                     n_stacked, complement, g_sq_row, seg_sq, silent, r_end, r_sq,
                                     r_off, p_dense, p_lo, p_hi, p_seg, state, span)
        _read_part(n_reads, r_end, r_sq, r_off, p_dense, p_lo, p_hi, p_seg, rows, silent, g_diff,
                   seg_total, acc, tmp, cur, read_noise, table, 0, adc_bits, inv_lsb, lsb, top, sink)
        cnt[0] += n_rows
        cnt[1] += n_reads
        n_prev = _lif_update(cur, const, decay, vth, mem, spk, prev, counts, raster, t, record)
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
def _sample_rates(counts, n_bins, raster, n_windows, out):
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
def _batch_ideal(sample_bins, bin_ptrs, idx, w_in, w_rec, w_in_total, decay, vth, tile_rows, n_tiles,
                 n_windows, out, cnts):
    """Samples in parallel: sample s uses ``bin_ptrs[sample_bins[s]:sample_bins[s+1]+1]``;
    ``out[s]`` gets its rates (:func:`_sample_rates`)."""
    n = w_in.shape[1]
    for s in prange(out.shape[0]):
        bp = bin_ptrs[sample_bins[s]:sample_bins[s + 1] + 1]
        mem = np.zeros(n, dtype=w_in.dtype)
        spk = np.zeros(n, dtype=np.uint8)
        counts = np.zeros(n, dtype=np.int64)
        touched = np.zeros(n_tiles, dtype=np.uint8)
        cnt = np.zeros(_N_COUNTERS, dtype=np.int64)
        raster = np.zeros((bp.shape[0] - 1 if n_windows > 1 else 0, n), dtype=np.uint8)
        _lif_ideal(bp, idx, w_in, w_rec, w_in_total, decay, vth, mem, spk, counts, raster,
                   n_windows > 1, tile_rows, touched, cnt)
        _sample_rates(counts, bp.shape[0] - 1, raster, n_windows, out[s])
        cnts[s, :] = cnt


@njit(cache=True, parallel=True)
def _batch_rram(sample_bins, bin_ptrs, idx, g_diff, g_sq_row, seg_total, n_in, const, read_noise, adc_bits,
                adc_fs, decay, vth, tile_rows, n_tiles, seeds, table, n_windows, out, cnts):
    n = g_diff.shape[1]
    for s in prange(out.shape[0]):
        bp = bin_ptrs[sample_bins[s]:sample_bins[s + 1] + 1]
        mem = np.zeros(n, dtype=g_diff.dtype)
        spk = np.zeros(n, dtype=np.uint8)
        counts = np.zeros(n, dtype=np.int64)
        touched = np.zeros(n_tiles, dtype=np.uint8)
        cnt = np.zeros(_N_COUNTERS, dtype=np.int64)
        raster = np.zeros((bp.shape[0] - 1 if n_windows > 1 else 0, n), dtype=np.uint8)
        _lif_rram(bp, idx, g_diff, g_sq_row, seg_total, n_in, const, read_noise, adc_bits, adc_fs, decay, vth,
                  mem, spk, counts, raster, n_windows > 1, tile_rows, touched, cnt, seeds[s], table)
        _sample_rates(counts, bp.shape[0] - 1, raster, n_windows, out[s])
        cnts[s, :] = cnt


# ---------------------------------------------------------------------------- reservoir

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
        self.ops: Counter[str] = Counter()
        # (read seed, kernel calls so far): advances the read-noise stream from call to call
        self.read_state = np.array([self.crossbar.read_seed, 0], dtype=np.int64)
        self.threads = check_threads(threads)
        self.columns = None
        if self.threads > 1:
            from .columns import ColumnParts
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
            cnt = np.zeros(_N_COUNTERS, dtype=np.int64)
        touched = self.touched
        c = self.config
        if self.columns is not None:
            seed = next_read_seed(self.read_state) if self.noisy else 0
            self.columns.kernel(bin_ptr, idx, counts, raster, record, cnt, seed)
        elif self.noisy:
            d = self.device
            seed = next_read_seed(self.read_state)
            _lif_rram(bin_ptr, idx, self.g_diff, self.g_sq_row, self.seg_total, c.n_inputs, c.const,
                      d.read_noise_scale, d.adc_bits, d.adc_full_scale_us, c.decay, c.vth,
                      self.mem, self.spk, counts, raster, record, self.tile_rows, touched, cnt, seed,
                      self.noise_table)
        else:
            _lif_ideal(bin_ptr, idx, self.w_in, self.w_rec, self.w_in_total, c.decay, c.vth, self.mem, self.spk,
                       counts, raster, record, self.tile_rows, touched, cnt)
        return cnt

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
            _sample_rates(counts, n_bins, raster, n_windows, win)
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
    encoder's cut (:func:`window_edges`), for the live node."""
    raster = np.ascontiguousarray(raster, dtype=np.uint8)
    out = np.zeros(windows * raster.shape[1], dtype=np.float32)
    # the counts give the one-window (mean-rate) case, so every ``windows`` is right
    _sample_rates(raster.sum(axis=0, dtype=np.int64), raster.shape[0], raster, windows, out)
    return out


def numba_threads() -> int:
    """Threads the parallel kernels (batched encoding, a split reservoir) can use."""
    return numba.get_num_threads()
