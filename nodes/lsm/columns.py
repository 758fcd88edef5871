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
Arrays only: :func:`nodes.lsm.reservoir.kernel_for` picks the kernel that runs on them.
"""
from __future__ import annotations

import numpy as np


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


class ColumnParts:
    """A reservoir's weights and state in column parts, for the ``*_cols`` kernels
    (:mod:`nodes.lsm.kernels`, :mod:`nodes.lsm.kernels_rram`).

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
