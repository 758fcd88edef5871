"""Events -> binary frames as CSR (DESIGN.md, Binning): one function for offline and live use.

``bin_events`` returns ``(bin_ptr, idx)``: bin ``t`` holds the distinct inputs
``idx[bin_ptr[t]:bin_ptr[t+1]]`` that fired at least once in it (binarised), sorted ascending.
The CSR is built by a Numba counting sort, O(events + bins + inputs).
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from rram_lsm.stream.packets import COCHLEA_DTYPE, DVS_DTYPE, NEURAL_DTYPE

MODES = ("fixed_count", "fixed_width", "chunk_pad")


@njit(cache=True, nogil=True)
def csr(bins, addr, n_bins, n_inputs):
    """Counting sort by (bin, addr), dropping repeats of an address within a bin."""
    m = bins.shape[0]
    # sort by address first (counting sort), then stably by bin: rows come out ascending
    acount = np.zeros(n_inputs + 1, dtype=np.int64)
    for k in range(m):
        if bins[k] >= 0:
            acount[addr[k] + 1] += 1
    for i in range(n_inputs):
        acount[i + 1] += acount[i]
    order_a = np.empty(acount[n_inputs], dtype=np.int64)
    for k in range(m):
        if bins[k] >= 0:
            a = addr[k]
            order_a[acount[a]] = k
            acount[a] += 1
    bcount = np.zeros(n_bins + 1, dtype=np.int64)
    for q in range(order_a.shape[0]):
        bcount[bins[order_a[q]] + 1] += 1
    for b in range(n_bins):
        bcount[b + 1] += bcount[b]
    order = np.empty(order_a.shape[0], dtype=np.int64)
    for q in range(order_a.shape[0]):
        k = order_a[q]
        b = bins[k]
        order[bcount[b]] = k
        bcount[b] += 1
    # dedupe: within a bin addresses are now sorted, so repeats are adjacent
    bin_ptr = np.zeros(n_bins + 1, dtype=np.int64)
    idx = np.empty(order.shape[0], dtype=np.int32)
    nnz = 0
    last_bin = -1
    last_addr = -1
    for q in range(order.shape[0]):
        k = order[q]
        b = bins[k]
        a = addr[k]
        if b != last_bin or a != last_addr:
            idx[nnz] = a
            nnz += 1
            bin_ptr[b + 1] += 1
            last_bin = b
            last_addr = a
    for b in range(n_bins):
        bin_ptr[b + 1] += bin_ptr[b]
    return bin_ptr, idx[:nnz].copy()


@njit(cache=True, nogil=True)
def _close_bin(idx, start, end, seen):
    """Put a bin's addresses ``idx[start:end]`` in ascending order and clear their marks:
    a scan of the marks when the bin is dense, a sort when it is sparse."""
    n_inputs = seen.shape[0]
    if (end - start) * 16 >= n_inputs:
        q = start
        for a in range(n_inputs):
            if seen[a]:
                idx[q] = a
                q += 1
                seen[a] = 0
    else:
        idx[start:end].sort()
        for q in range(start, end):
            seen[idx[q]] = 0


@njit(cache=True, nogil=True)
def csr_in_order(bins, addr, n_bins, n_inputs):
    """The common case of events in time order: one pass, no sort of the whole stream.

    Returns ``(ok, bin_ptr, idx)`` with the same CSR as ``csr``; ``ok`` is False (and the
    caller falls back to ``csr``) as soon as a bin index goes backwards.
    """
    m = bins.shape[0]
    bin_ptr = np.zeros(n_bins + 1, dtype=np.int64)
    idx = np.empty(m, dtype=np.int32)
    seen = np.zeros(n_inputs, dtype=np.uint8)
    nnz = 0
    start = 0  # first idx entry of the current bin
    cur = -1
    for k in range(m):
        b = bins[k]
        if b < 0:
            continue
        if b != cur:
            if b < cur:
                return False, bin_ptr, idx[:0]
            if cur >= 0:
                _close_bin(idx, start, nnz, seen)
                bin_ptr[cur + 1] = nnz - start
            cur = b
            start = nnz
        a = addr[k]
        if seen[a] == 0:
            seen[a] = 1
            idx[nnz] = a
            nnz += 1
    if cur >= 0:
        _close_bin(idx, start, nnz, seen)
        bin_ptr[cur + 1] = nnz - start
    for b in range(n_bins):
        bin_ptr[b + 1] += bin_ptr[b]
    return True, bin_ptr, idx[:nnz].copy()


def _to_csr(bins: np.ndarray, addr: np.ndarray, n_bins: int, n_inputs: int) -> tuple[np.ndarray, np.ndarray]:
    ok, bin_ptr, idx = csr_in_order(bins, addr, n_bins, n_inputs)
    return (bin_ptr, idx) if ok else csr(bins, addr, n_bins, n_inputs)


@njit(cache=True, nogil=True)
def _bins_fixed_count(t, t0, t1, n_bins):
    out = np.empty(t.shape[0], dtype=np.int64)
    span = max(t1 - t0, 1)
    for k in range(t.shape[0]):
        tk = t[k]
        out[k] = ((tk - t0) * n_bins) // span if t0 <= tk < t1 else -1
    return out


@njit(cache=True, nogil=True)
def _bins_width(t, t0, width, n_bins, t_end, has_end):
    """Bin (or raster step) index of each event; -1 outside [t0, t_end) or past ``n_bins``."""
    out = np.empty(t.shape[0], dtype=np.int64)
    for k in range(t.shape[0]):
        tk = t[k]
        b = (tk - t0) // width if tk >= t0 else -1
        if (n_bins >= 0 and b >= n_bins) or (has_end and tk >= t_end):
            b = -1
        out[k] = b
    return out


def bin_events(t_us: np.ndarray, addr: np.ndarray, n_inputs: int, *, mode: str,
               n_bins: int | None = None, width_us: int | None = None,
               t_start: int | None = None, t_end: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Binary frames of the events as CSR ``(bin_ptr int64[T+1], idx int32[nnz])``.

    - ``fixed_count``: ``[t_start, t_end)`` (default: first event to last event + 1 µs) cut into
      ``n_bins`` equal bins; event at t goes to ``(t - t_start) * n_bins // (t_end - t_start)``.
    - ``fixed_width``: bins of ``width_us`` from ``t_start`` (default: first event); ``n_bins``
      defaults to enough bins to reach ``t_end`` (default: last event).
    - ``chunk_pad`` (the authors' N-TIDIGITS protocol): a raster of ``width_us`` (default
      1000 µs) steps from ``t_start`` (default first event) to the last event, D steps, cut
      like ``torch.chunk(raster, n_bins)`` into pieces of ``ceil(D / n_bins)`` steps (possibly
      fewer than ``n_bins`` pieces), binarised, and zero-padded to ``n_bins`` bins.

    Events outside the window are dropped. An address outside ``[0, n_inputs)`` is a ValueError.
    """
    if mode not in MODES:
        raise ValueError(f"binning mode must be one of {MODES}, got {mode!r}")
    if not isinstance(n_inputs, (int, np.integer)) or n_inputs <= 0:
        raise ValueError(f"n_inputs must be a positive integer, got {n_inputs!r}")
    t = np.asarray(t_us, dtype=np.int64).ravel()
    a = np.asarray(addr).ravel()
    if t.shape != a.shape:
        raise ValueError(f"t_us and addr differ in length ({t.size} vs {a.size})")
    if a.size:
        lo, hi = int(a.min()), int(a.max())
        if lo < 0 or hi >= n_inputs:
            raise ValueError(f"address {lo if lo < 0 else hi} out of range [0, {n_inputs})")
    a = a.astype(np.int64, copy=False)
    t0 = int(t_start) if t_start is not None else (int(t.min()) if t.size else 0)

    if mode == "fixed_count":
        if not n_bins or n_bins <= 0:
            raise ValueError(f"fixed_count binning needs n_bins > 0, got {n_bins!r}")
        t1 = int(t_end) if t_end is not None else (int(t.max()) + 1 if t.size else t0 + 1)
        nb = int(n_bins)
        bins = _bins_fixed_count(t, t0, t1, nb)
    elif mode == "fixed_width":
        if not width_us or width_us <= 0:
            raise ValueError(f"fixed_width binning needs width_us > 0, got {width_us!r}")
        if n_bins is None:
            t1 = int(t_end) if t_end is not None else (int(t.max()) + 1 if t.size else t0)
            nb = max(math.ceil((t1 - t0) / width_us), 0)
        else:
            nb = int(n_bins)
        bins = _bins_width(t, t0, int(width_us), nb, 0, False)
    else:  # chunk_pad
        if not n_bins or n_bins <= 0:
            raise ValueError(f"chunk_pad binning needs n_bins > 0, got {n_bins!r}")
        step = int(width_us) if width_us else 1000
        steps = _bins_width(t, t0, step, -1, int(t_end or 0), t_end is not None)
        d = int(steps.max()) + 1 if steps.size else 0
        chunk = max(math.ceil(d / n_bins), 1)
        bins = np.where(steps >= 0, steps // chunk, -1)
        nb = int(n_bins)
    return _to_csr(bins, a, nb, int(n_inputs))


def to_dense(bin_ptr: np.ndarray, idx: np.ndarray, n_inputs: int) -> np.ndarray:
    """``uint8[T, n_inputs]`` frames from the CSR."""
    n_bins = len(bin_ptr) - 1
    out = np.zeros((n_bins, n_inputs), dtype=np.uint8)
    rows = np.repeat(np.arange(n_bins), np.diff(bin_ptr))
    out[rows, idx] = 1
    return out


def from_dense(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """CSR of binary frames ``(T, n_inputs)`` (non-zero = fired)."""
    f = np.asarray(frames) != 0
    rows, cols = np.nonzero(f)
    bin_ptr = np.zeros(f.shape[0] + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=f.shape[0]), out=bin_ptr[1:])
    return bin_ptr, cols.astype(np.int32)


@njit(cache=True, nogil=True)
def dvs_map(ev, w, h, polarity, x0, y0, cw, ch):
    """One branch-free pass over DVS records: range check, polarity filter, crop, address.

    Returns ``(t, addr, bad)``; ``bad`` is True when an x or y lies outside the sensor.
    ``polarity < 0`` keeps both polarities, as ``addr * 2 + p``.
    """
    m = ev.shape[0]
    t = np.empty(m + 1, dtype=np.int64)
    addr = np.empty(m + 1, dtype=np.int64)
    n = 0
    bad = False
    both = polarity < 0
    for k in range(m):
        e = ev[k]
        x = np.int64(e.x)
        y = np.int64(e.y)
        p = np.int64(e.p)
        bad |= (x >= w) | (y >= h)
        xx = x - x0
        yy = y - y0
        keep = (xx >= 0) & (xx < cw) & (yy >= 0) & (yy < ch) & (both | (p == polarity))
        a = yy * cw + xx
        t[n] = e.t
        addr[n] = a * 2 + p if both else a
        n += np.int64(keep)
    return t[:n], addr[:n], bad


@njit(cache=True, nogil=True)
def _channel_map(ev, n_channels):
    """Cochlea/neural records: range-checked channel addresses (``bad`` = 1 and the value)."""
    m = ev.shape[0]
    t = np.empty(m, dtype=np.int64)
    addr = np.empty(m, dtype=np.int64)
    for k in range(m):
        x = np.int64(ev[k].x)
        if x >= n_channels:
            return t[:0], addr[:0], 1, x
        t[k] = ev[k].t
        addr[k] = x
    return t, addr, 0, 0


def event_addresses(events: np.ndarray, geometry: tuple[int, ...], polarity: int | None = None,
                    crop: tuple[int, int] | None = None) -> tuple[np.ndarray, np.ndarray, int]:
    """Flat input addresses of structured events: ``(t, addr, n_inputs)`` (int64 arrays).

    - DVS (fields t, x, y, p), geometry ``(W, H)``: ``addr = y * W + x`` for one polarity
      (``polarity`` 0 or 1, other events dropped), or ``(y * W + x) * 2 + p`` for both.
      ``crop=(w, h)`` keeps the centre ``w x h`` window (N-MNIST: 34x34 -> 16x16 from x, y = 9).
    - cochlea (t, x, p), geometry ``(channels,)``: ``addr = x`` (``polarity`` filters p).
    - neural (t, x), geometry ``(electrodes,)``: ``addr = x``.
    Coordinates outside the geometry are a ValueError naming the field.  One Numba pass over
    the records (wire dtypes are packed; Numba reads them in place).
    """
    names = events.dtype.names or ()
    if "t" not in names or "x" not in names:
        raise ValueError(f"events need fields 't' and 'x', got {names}")
    geometry = tuple(int(g) for g in geometry)
    if "y" in names:
        if len(geometry) < 2:
            raise ValueError(f"DVS events need a (width, height) geometry, got {geometry}")
        w, h = geometry[0], geometry[1]
        cw, ch = crop if crop is not None else (w, h)
        if cw > w or ch > h:
            raise ValueError(f"crop {crop} larger than the sensor {(w, h)}")
        x0, y0 = (w - cw) // 2, (h - ch) // 2
        pol = -1 if polarity is None else int(polarity)
        t, addr, bad = dvs_map(events, w, h, pol, x0, y0, cw, ch)
        if bad:
            for field, size in (("x", w), ("y", h)):
                _check_range(events[field], size, field)
        return t, addr, cw * ch * (2 if polarity is None else 1)
    if len(geometry) < 1:
        raise ValueError("events need a (channels,) geometry")
    n = geometry[0]
    t, addr, bad, value = _channel_map(events, n)
    if bad:
        raise ValueError(f"event field 'x' value {value} out of range [0, {n})")
    if polarity is not None and "p" in names:
        keep = events["p"] == polarity
        return t[keep], addr[keep], n
    return t, addr, n


def warm_bodies(dtype: np.dtype):
    """One-event bodies of ``dtype``, writable and read-only (bodies decoded from the wire are
    read-only views): Numba compiles a pass once for each, so a warm-up runs it on both."""
    for writable in (True, False):
        ev = np.zeros(1, dtype)
        ev.flags.writeable = writable
        yield ev


def warm_addresses() -> None:
    """Load :func:`event_addresses`' compiled passes for each wire event dtype: otherwise the
    first packet of a stream pays ~5 ms loading them from Numba's cache."""
    for dtype, geometry in ((DVS_DTYPE, (1, 1)), (COCHLEA_DTYPE, (1,)), (NEURAL_DTYPE, (1,))):
        for ev in warm_bodies(dtype):
            event_addresses(ev, geometry)


def _check_range(v: np.ndarray, n: int, field: str) -> None:
    if v.size and (v.min() < 0 or v.max() >= n):
        bad = int(v.max() if v.max() >= n else v.min())
        raise ValueError(f"event field {field!r} value {bad} out of range [0, {n})")
