"""One compiled call per DVS event packet of a trial: map, bin, and run the bins it closes.

The ``lsm`` node's hot path.  Binning a packet and then running the reservoir as two Numba
calls costs ~4 µs a packet more than one call (argument unboxing, boxing the CSR that binning
returns), a sixth of the work at 1 ms packets of a 1 M events/s sensor.  Here the CSR never
leaves compiled code; the kernel (``packet_*`` in :mod:`nodes.lsm.kernels` and
:mod:`nodes.lsm.kernels_rram`) is the one :func:`nodes.lsm.reservoir.kernel_for` picks.

The bits are those of :meth:`LiveBinner.feed` followed by :meth:`LifReservoir.accumulate`
on every packet, read noise included (the same seed per kernel call); tests check this.
"""
from __future__ import annotations

import numpy as np

from rram_lsm.stream.packets import DVS_DTYPE

from .binning import warm_bodies
from .kernels import N_COUNTERS
from .live_binning import DvsMap, LiveBinner
from .reservoir import LifReservoir, kernel_for


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
        b = self.binner
        if b.dvs_mapping is None:
            return
        self.geometry, dvs = b.dvs_mapping
        self._fn, args = kernel_for(self.reservoir, "packet")
        self._args = (dvs, b.st, b.seen, b.part, b.width, b.align, b.max_gap, *args)

    def __call__(self, events: np.ndarray, counts: np.ndarray, cnt: np.ndarray) -> bool:
        return self._fn(events, *self._args, counts, cnt)

    def warmup(self) -> None:
        """Compile (or load) the fused call on a one-event packet (no bin closes, so no kernel
        runs and the read-noise stream does not advance); the binner is left reset, unbound."""
        b = self.binner
        b.dvs_mapping = ((1, 1), tuple(DvsMap(1, 1, -1, 0, 0, 1, 1)))
        self.bind()
        for ev in warm_bodies(DVS_DTYPE):
            self(ev, np.zeros(self.reservoir.n_neurons, np.int64), np.zeros(N_COUNTERS, np.int64))
            b.reset()
        b.dvs_mapping, self.geometry, self._fn = None, None, None
