"""One compiled call per DVS event packet of a trial: map, bin, and run the bins it closes.

The ``lsm`` node's hot path.  Binning a packet and then running the reservoir as two Numba
calls costs ~4 µs a packet more than one call (argument unboxing, boxing the CSR that binning
returns), a sixth of the work at 1 ms packets of a 1 M events/s sensor.  Here the CSR never
leaves compiled code, and the per-node constants travel as small packed arrays.

The bits are those of :meth:`LiveBinner.feed` followed by :meth:`LifReservoir.accumulate`
on every packet, read noise included (the same seed per kernel call); tests check this.
"""
from __future__ import annotations

import numpy as np

from rram_lsm.stream.packets import DVS_DTYPE

from .binning import warm_bodies
from .live_binning import LiveBinner, _feed_dvs
from .columns import _lif_ideal_cols, _lif_rram_cols
from .reservoir import LifReservoir, _lif_ideal, _lif_rram, next_read_seed

from numba import njit  # noqa: E402  (binning imported rram, which configured Numba's cache)


@njit(cache=True, nogil=True)
def _map_and_bin(ev, geo, st, seen, part, bin_p):
    """``_feed_dvs`` with its constants unpacked from ``geo`` and ``bin_p``."""
    bp, idx, _, bad = _feed_dvs(ev, geo[0], geo[1], geo[2], geo[3], geo[4], geo[5], geo[6],
                                st, seen, part, bin_p[0], bin_p[1] != 0, bin_p[2])
    return bp, idx, bad


@njit(cache=True, nogil=True)
def _packet_ideal(ev, geo, st, seen, part, bin_p, w_in, w_rec, w_in_total, lif_p, mem, spk,
                  touched, counts, cnt):
    """One packet through binning and the ideal kernel; True when a coordinate is out of range."""
    bp, idx, bad = _map_and_bin(ev, geo, st, seen, part, bin_p)
    if bp.shape[0] > 1:
        _lif_ideal(bp, idx, w_in, w_rec, w_in_total, lif_p[0], lif_p[1], mem, spk, counts,
                   np.zeros((0, mem.shape[0]), dtype=np.uint8), False, bin_p[3], touched, cnt)
    return bad


@njit(cache=True, nogil=True)
def _packet_rram(ev, geo, st, seen, part, bin_p, g_diff, g_sq_row, seg_total, lif_p, mem, spk,
                 touched, read_state, noise_table, counts, cnt):
    """As :func:`_packet_ideal` with the ``rram`` kernel (its read-noise seed advanced here)."""
    bp, idx, bad = _map_and_bin(ev, geo, st, seen, part, bin_p)
    if bp.shape[0] > 1:
        _lif_rram(bp, idx, g_diff, g_sq_row, seg_total, bin_p[4], lif_p[2], lif_p[3], bin_p[5],
                  lif_p[4], lif_p[0], lif_p[1], mem, spk, counts,
                  np.zeros((0, mem.shape[0]), dtype=np.uint8), False, bin_p[3], touched, cnt,
                  next_read_seed(read_state), noise_table)
    return bad


@njit(cache=True, nogil=True)
def _packet_ideal_cols(ev, geo, st, seen, part, bin_p, w_in_p, w_rec_p, total_p, lif_p, mem_p,
                       spk_p, touched, counts, cnt):
    """:func:`_packet_ideal` on a reservoir split in column parts (:mod:`nodes.lsm.columns`)."""
    bp, idx, bad = _map_and_bin(ev, geo, st, seen, part, bin_p)
    if bp.shape[0] > 1:
        _lif_ideal_cols(bp, idx, w_in_p, w_rec_p, total_p, lif_p[0], lif_p[1], mem_p, spk_p, counts,
                        np.zeros((0, counts.shape[0]), dtype=np.uint8), False, bin_p[3], touched, cnt)
    return bad


@njit(cache=True, nogil=True)
def _packet_rram_cols(ev, geo, st, seen, part, bin_p, g_p, g_sq_row, seg_total_p, lif_p, mem_p,
                      spk_p, read_state, noise_table, counts, cnt):
    """:func:`_packet_rram` on a reservoir split in column parts."""
    bp, idx, bad = _map_and_bin(ev, geo, st, seen, part, bin_p)
    if bp.shape[0] > 1:
        _lif_rram_cols(bp, idx, g_p, g_sq_row, seg_total_p, bin_p[4], lif_p[2], lif_p[3], bin_p[5],
                       lif_p[4], lif_p[0], lif_p[1], mem_p, spk_p, counts,
                       np.zeros((0, counts.shape[0]), dtype=np.uint8), False, bin_p[3], cnt,
                       next_read_seed(read_state), noise_table)
    return bad


class PacketPath:
    """The fused per-packet call of a trial-mode ``fixed_width`` node (on one core, or on the
    column parts of a reservoir with ``threads`` above 1).

    It follows the DVS geometry the binner last checked on its slow path (:meth:`bind`);
    then ``path(events, counts, cnt)`` runs a packet of that geometry in one compiled call and
    returns True when a coordinate lies outside the sensor (nothing is binned then).
    """

    def __init__(self, binner: LiveBinner, reservoir: LifReservoir):
        self.binner, self.reservoir = binner, reservoir
        self.geometry = None
        self._fn = None
        self._args: tuple = ()

    def bind(self) -> None:
        """Take the binner's checked DVS geometry and the reservoir's arrays (no-op before the
        binner has checked one)."""
        b, r, c = self.binner, self.reservoir, self.reservoir.config
        if b.dvs_mapping is None:
            return
        self.geometry = b.dvs_mapping[0]
        head = (np.array(b.dvs_mapping[1], dtype=np.int64), b.st, b.seen, b.part)
        cols = r.columns
        if r.noisy:
            d = r.device
            bin_p = np.array([b.width, b.align, b.max_gap, r.tile_rows, c.n_inputs, d.adc_bits],
                             dtype=np.int64)
            lif_p = np.array([c.decay, c.vth, c.const, d.read_noise_scale, d.adc_full_scale_us])
            if cols is None:
                self._fn = _packet_rram
                self._args = (*head, bin_p, r.g_diff, r.g_sq_row, r.seg_total, lif_p, r.mem, r.spk,
                              r.touched, r.read_state, r.noise_table)
            else:
                self._fn = _packet_rram_cols
                self._args = (*head, bin_p, cols.g_p, r.g_sq_row, cols.seg_total_p, lif_p,
                              cols.mem_p, cols.spk_p, r.read_state, cols.table)
        else:
            bin_p = np.array([b.width, b.align, b.max_gap, r.tile_rows], dtype=np.int64)
            lif_p = np.array([c.decay, c.vth])
            if cols is None:
                self._fn = _packet_ideal
                self._args = (*head, bin_p, r.w_in, r.w_rec, r.w_in_total, lif_p, r.mem, r.spk,
                              r.touched)
            else:
                self._fn = _packet_ideal_cols
                self._args = (*head, bin_p, *cols.weights(), lif_p, cols.mem_p, cols.spk_p,
                              r.touched)

    def __call__(self, events: np.ndarray, counts: np.ndarray, cnt: np.ndarray) -> bool:
        return self._fn(events, *self._args, counts, cnt)

    def warmup(self) -> None:
        """Compile (or load) the fused call on a one-event packet (no bin closes, so no kernel
        runs and the read-noise stream does not advance); the binner is left reset, unbound."""
        b = self.binner
        b.dvs_mapping = ((1, 1), (1, 1, -1, 0, 0, 1, 1))
        self.bind()
        for ev in warm_bodies(DVS_DTYPE):
            self(ev, np.zeros(self.reservoir.n_neurons, np.int64), np.zeros(4, np.int64))
            b.reset()
        b.dvs_mapping, self.geometry, self._fn = None, None, None
