"""Fixed-width bins built as events stream in: the ``lsm`` node's hot path.

:class:`LiveBinner` turns each event packet into the CSR of the bins it completes: one Numba
pass maps the wire records to input addresses (``event_addresses``), a second marks them bin
by bin (stores only, one integer division per bin, not per event).  Nothing is re-buffered or
re-sorted: the bin still open stays inside the binner as marks until a later event closes it
or :meth:`LiveBinner.close` runs it at the end of a sample.

The bins are exactly those of ``bin_events(..., mode="fixed_width")`` over the concatenated
sample (same addresses, ascending within a bin); tests check this.  Events must arrive in time
order (the codec enforces it within a packet); one that falls in a bin already closed is
counted in :attr:`LiveBinner.late` and skipped.
"""
from __future__ import annotations

from collections import namedtuple

import numpy as np
from numba import njit

from rram_lsm.stream.node import ConfigError
from rram_lsm.stream.packets import DVS_DTYPE

from .binning import dvs_map, event_addresses, warm_bodies

# st[] slots of the carried state
_ORIGIN_SET, _ORIGIN, _CUR, _START, _END, _N_PART, _LATE, _GAP = range(8)
_NO_GAP = -1

DvsMap = namedtuple("DvsMap", ["w", "h", "polarity", "x0", "y0", "cw", "ch"])
DvsMap.__doc__ = """How :func:`nodes.lsm.binning.dvs_map` maps a checked DVS geometry onto the
inputs: sensor ``w`` x ``h``, kept ``polarity`` (-1: both), the crop's corner ``x0``/``y0`` and size
``cw`` x ``ch``.  It enters compiled code as a plain tuple (``tuple(DvsMap(...))``, typed by
Numba in C) and :func:`feed_dvs` names it again."""


@njit(cache=True, nogil=True)
def _grow(a, need):
    """``a`` with room for at least ``need`` entries (doubling), contents kept."""
    if need <= a.shape[0]:
        return a
    b = np.empty(max(need, 2 * a.shape[0]), dtype=a.dtype)
    b[:a.shape[0]] = a
    return b


@njit(cache=True, nogil=True)
def _emit_open(st, seen, part, idx, nnz):
    """Write the open bin's distinct addresses, ascending, to ``idx[nnz:]``; clear its marks.

    ``part`` lists the bin's first ``len(part)`` addresses (repeats included); a bin that
    filled it, or is dense anyway, is read from the marks instead.  Returns the new ``nnz``.
    """
    n_part = st[_N_PART]
    n_in = seen.shape[0]
    st[_N_PART] = 0
    if n_part * 16 >= n_in:
        for a in range(n_in):   # branch-free: half the marks set is the worst case for a branch
            idx[nnz] = a
            nnz += seen[a]
            seen[a] = 0
        return nnz
    run = np.sort(part[:n_part])
    last = -1
    for q in range(n_part):
        a = run[q]
        if a != last:
            idx[nnz] = a
            nnz += 1
            seen[a] = 0
            last = a
    return nnz


@njit(cache=True, nogil=True)
def _advance(t, st, seen, part, width, align, max_gap, bin_ptr, nb, idx, nnz):
    """A kept event at ``t`` lies past the open bin: close it (and any empty bins between).

    Returns ``(bin_ptr, nb, nnz, gap)``; ``gap`` is the event's bin when more than ``max_gap``
    empty bins would be needed (nothing is closed past the open bin then), else -1.
    """
    if st[_ORIGIN_SET] == 0:  # the sample's first kept event starts bin 0
        st[_ORIGIN_SET] = 1
        st[_ORIGIN] = (t // width) * width if align else t
        st[_CUR] = 0
        st[_START] = st[_ORIGIN]
        st[_END] = st[_ORIGIN] + width
        return bin_ptr, nb, nnz, _NO_GAP
    b = (t - st[_ORIGIN]) // width
    nnz = _emit_open(st, seen, part, idx, nnz)
    empties = b - st[_CUR] - 1
    gap = _NO_GAP
    if max_gap >= 0 and empties > max_gap:
        gap = b
        empties = 0
        b = st[_CUR] + 1
    bin_ptr = _grow(bin_ptr, nb + empties + 2)
    for q in range(empties + 1):
        bin_ptr[nb + 1 + q] = nnz
    nb += empties + 1
    st[_CUR] = b
    st[_START] = st[_ORIGIN] + b * width
    st[_END] = st[_START] + width
    return bin_ptr, nb, nnz, gap


@njit(cache=True, nogil=True)
def _mark_run(t, addr, k, start, end, seen, part, n_part):
    """Mark the addresses of events ``k, k+1, ...`` while they fall in ``[start, end)``.

    The tight loop of live binning: stores only (no load waits on an earlier store).  Returns
    the first event outside the bin (or ``len(t)``) and the new ``n_part``.
    """
    m = t.shape[0]
    cap = part.shape[0]
    while k < m:
        tk = t[k]
        if (tk >= end) | (tk < start):
            break
        a = addr[k]
        seen[a] = 1
        if n_part < cap:
            part[n_part] = a
            n_part += 1
        k += 1
    return k, n_part


@njit(cache=True, nogil=True)
def _bin_live(t, addr, k0, st, seen, part, width, align, max_gap):
    """Kept events ``(t, addr)[k0:]`` -> CSR of the bins they close; see :class:`LiveBinner`.

    Returns ``(bin_ptr, idx, k_next)``: a gap longer than ``max_gap`` stops the pass at
    ``k_next`` (``st[_GAP]`` then holds the bin of that event, else -1).
    """
    m = t.shape[0]
    n_in = seen.shape[0]
    bin_ptr = np.zeros(8, dtype=np.int64)
    idx = np.empty(m - k0 + n_in + 1, dtype=np.int32)   # + 1: the branch-free scan writes one past
    nb = 0
    nnz = 0
    n_part = st[_N_PART]
    st[_GAP] = _NO_GAP
    k = k0
    while k < m:
        k, n_part = _mark_run(t, addr, k, st[_START], st[_END], seen, part, n_part)
        if k == m:
            break
        tk = t[k]
        if tk < st[_START]:
            st[_LATE] += 1
            k += 1
            continue
        st[_N_PART] = n_part
        bin_ptr, nb, nnz, gap = _advance(tk, st, seen, part, width, align, max_gap,
                                         bin_ptr, nb, idx, nnz)
        n_part = 0
        if gap != _NO_GAP:
            st[_GAP] = gap
            return bin_ptr[:nb + 1], idx[:nnz], k
    st[_N_PART] = n_part
    return bin_ptr[:nb + 1], idx[:nnz], m


@njit(cache=True, nogil=True)
def _close_open(st, seen, part):
    """CSR of the open bin alone (end of a trial); the binner is left empty."""
    idx = np.empty(seen.shape[0], dtype=np.int32)
    bin_ptr = np.zeros(2, dtype=np.int64)
    bin_ptr[1] = _emit_open(st, seen, part, idx, 0)
    return bin_ptr, idx[:bin_ptr[1]]


@njit(cache=True, nogil=True)
def feed_dvs(ev, dvs, st, seen, part, width, align, max_gap):
    """``dvs_map`` (by ``dvs``, a :data:`DvsMap`) then ``_bin_live`` without a return to
    Python between them; a packet with a coordinate outside the sensor (``bad``) is not binned
    at all."""
    m = DvsMap(*dvs)
    t, addr, bad = dvs_map(ev, m.w, m.h, m.polarity, m.x0, m.y0, m.cw, m.ch)
    if bad:
        return np.zeros(1, dtype=np.int64), np.zeros(0, dtype=np.int32), 0, bad
    bp, idx, k = _bin_live(t, addr, 0, st, seen, part, width, align, max_gap)
    return bp, idx, k, bad


class LiveBinner:
    """Streaming ``fixed_width`` binning of one sensor's packets into CSR frames.

    ``align=False`` (trial mode) starts bin 0 at the first kept event; ``align=True``
    (continuous mode) at the multiple of ``width_us`` below it.  ``max_gap`` (bins, or None)
    stops a pass at a silence longer than that, so a continuous node can restart from rest
    instead of running thousands of empty bins: :meth:`feed` then reports the gap's bin and
    :meth:`jump` moves the binner there.
    """

    def __init__(self, n_inputs: int, width_us: int, *, polarity: int | None = None,
                 crop: tuple[int, int] | None = None, align: bool = False,
                 max_gap: int | None = None):
        if width_us <= 0:
            raise ValueError(f"width_us must be > 0, got {width_us!r}")
        self.n_inputs, self.width = int(n_inputs), int(width_us)
        self.polarity, self.crop, self.align = polarity, crop, bool(align)
        self.max_gap = -1 if max_gap is None else int(max_gap)
        self.seen = np.zeros(self.n_inputs, dtype=np.uint8)
        self.part = np.empty(self.n_inputs, dtype=np.int32)
        self.st = np.zeros(8, dtype=np.int64)
        self.dvs_mapping = None   # (geometry, DvsMap as a tuple) of the last checked DVS packet
        self.reset()

    def reset(self) -> None:
        """A new sample: no origin, nothing open (the late count is kept)."""
        self.seen[:] = 0
        self._pending = (np.zeros(0, np.int64), np.zeros(0, np.int64), 0)
        late = self.st[_LATE]
        self.st[:] = 0
        self.st[_START] = np.iinfo(np.int64).min
        self.st[_END] = np.iinfo(np.int64).min
        self.st[_LATE] = late

    @property
    def started(self) -> bool:
        return bool(self.st[_ORIGIN_SET])

    @property
    def t_origin(self) -> int:
        return int(self.st[_ORIGIN])

    @property
    def open_bin(self) -> int:
        """Index of the bin still open (the number of bins closed so far)."""
        return int(self.st[_CUR])

    @property
    def late(self) -> int:
        return int(self.st[_LATE])

    def feed(self, events: np.ndarray, geometry: tuple[int, ...]):
        """``(bin_ptr, idx, gap)``: the CSR of the bins these events closed.

        ``gap`` is -1, or the bin of the next event when a silence longer than ``max_gap``
        stopped the pass: call :meth:`jump`, then :meth:`resume`.  Coordinates outside the
        geometry are a ValueError naming the field.
        """
        if self.dvs_mapping is not None and self.dvs_mapping[0] == geometry and events.dtype == DVS_DTYPE:
            # the wire's DVS records on a checked geometry: map and bin in one compiled call
            bp, idx, k, bad = feed_dvs(events, self.dvs_mapping[1], self.st, self.seen, self.part,
                                       self.width, self.align, self.max_gap)
            if bad:
                event_addresses(events, geometry, self.polarity, self.crop)   # raises, naming the field
            gap = int(self.st[_GAP])
            if gap >= 0:  # rare: keep the mapped events for resume()
                t, addr, _ = event_addresses(events, geometry, self.polarity, self.crop)
                self._pending = (t, addr, k)
            return bp, idx, gap
        else:
            t, addr, n = event_addresses(events, geometry, self.polarity, self.crop)
            if n != self.n_inputs:
                raise ConfigError(f"geometry {tuple(geometry)} (polarity {self.polarity}, crop {self.crop}) "
                                 f"gives {n} inputs but 'n_inputs' is {self.n_inputs}")
            if events.dtype == DVS_DTYPE:  # remember the mapping: later packets skip the checks
                w, h = int(geometry[0]), int(geometry[1])
                cw, ch = self.crop or (w, h)
                pol = -1 if self.polarity is None else int(self.polarity)
                dvs = DvsMap(w, h, pol, (w - cw) // 2, (h - ch) // 2, cw, ch)
                self.dvs_mapping = (geometry, tuple(dvs))
        self._pending = (t, addr, 0)
        return self.resume()

    def resume(self):
        """Continue the last :meth:`feed` after a gap (same result shape)."""
        t, addr, k = self._pending
        bp, idx, k = _bin_live(t, addr, k, self.st, self.seen, self.part, self.width, self.align,
                               self.max_gap)
        self._pending = (t, addr, k)
        return bp, idx, int(self.st[_GAP])

    def jump(self, to_bin: int) -> None:
        """Continue at bin ``to_bin`` (after a reported gap): the bins before it are skipped."""
        st = self.st
        st[_CUR] = to_bin
        st[_START] = st[_ORIGIN] + to_bin * self.width
        st[_END] = st[_START] + self.width

    def close(self) -> tuple[np.ndarray, np.ndarray]:
        """The open bin as a one-bin CSR (end of sample); empty CSR if nothing was kept."""
        if not self.started:
            return np.zeros(1, np.int64), np.zeros(0, np.int32)
        return _close_open(self.st, self.seen, self.part)

    def warmup(self) -> None:
        """Compile (or load) the binning passes; state is left reset."""
        for ev in warm_bodies(DVS_DTYPE):
            feed_dvs(ev, tuple(DvsMap(1, 1, -1, 0, 0, 1, 1)), self.st, self.seen, self.part,
                     self.width, self.align, self.max_gap)
            self.reset()
        _bin_live(np.array([0, 2 * self.width]), np.zeros(2, np.int64), 0, self.st, self.seen,
                  self.part, self.width, self.align, self.max_gap)
        _close_open(self.st, self.seen, self.part)
        self.reset()
