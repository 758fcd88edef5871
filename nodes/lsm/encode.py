"""Batched offline encoding of whole datasets: bin every sample, then one parallel Numba pass.

The per-sample kernel is the same as the live node's (picked by
:func:`nodes.lsm.reservoir.kernel_for`); samples run in parallel over ``prange`` (all cores
Numba is allowed to use).
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from .binning import bin_events
from .config import check_windows
from .kernels import N_COUNTERS
from .reservoir import LifReservoir, kernel_for


def bin_samples(samples: Sequence[tuple[np.ndarray, np.ndarray]], n_inputs: int, *, mode: str,
                n_bins: int | None = None, width_us: int | None = None
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Concatenated CSR of many samples: ``(sample_bins, bin_ptrs, idx)``.

    Sample ``s`` owns ``bin_ptrs[sample_bins[s] : sample_bins[s+1] + 1]`` (absolute offsets
    into ``idx``).
    """
    ptrs, idxs, starts = [], [], [0]
    offset = 0
    for t, a in samples:
        bp, ix = bin_events(t, a, n_inputs, mode=mode, n_bins=n_bins, width_us=width_us)
        ptrs.append(bp[:-1] + offset)
        idxs.append(ix)
        offset += ix.size
        starts.append(starts[-1] + bp.size - 1)
    ptrs.append(np.array([offset], dtype=np.int64))
    bin_ptrs = np.concatenate(ptrs).astype(np.int64) if ptrs else np.zeros(1, np.int64)
    idx = np.concatenate(idxs).astype(np.int32) if idxs else np.zeros(0, np.int32)
    return np.asarray(starts, dtype=np.int64), bin_ptrs, idx


def encode_binned(sample_bins: np.ndarray, bin_ptrs: np.ndarray, idx: np.ndarray,
                  reservoir: LifReservoir, *, first_sample: int = 0, windows: int = 1
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Features ``(N, windows * n_neurons)`` float32 and kernel counters ``(N, 4)`` of
    pre-binned samples (``windows`` > 1: rates per window, window-major)."""
    n = reservoir.n_neurons
    n_samples = sample_bins.size - 1
    out = np.zeros((n_samples, windows * n), dtype=reservoir.dtype)
    cnts = np.zeros((n_samples, N_COUNTERS), dtype=np.int64)
    if n_samples == 0:
        return out.astype(np.float32), cnts
    # read noise of sample i depends only on (crossbar seed, i): batching does not change it
    seeds = ((reservoir.crossbar.read_seed + 7919 * (first_sample + np.arange(n_samples)))
             % (2 ** 32)).astype(np.int64)
    fn, args = kernel_for(reservoir, "batch")
    fn(sample_bins, bin_ptrs, idx, *args, seeds, windows, out, cnts)
    return out.astype(np.float32), cnts


def encode_samples(samples: Sequence[tuple[np.ndarray, np.ndarray]], reservoir: LifReservoir, *,
                   mode: str | None = None, n_bins: int | None = None, width_us: int | None = None,
                   chunk: int = 512, progress: Callable[[int, int], None] | None = None,
                   windows: int = 1, first: int = 0) -> np.ndarray:
    """Mean-rate features ``float32 (N, n_neurons)`` of ``(t_us, addr)`` samples, each from rest;
    with ``windows`` > 1, the rates in that many consecutive windows of each sample
    ``(N, windows * n_neurons)``, window-major (``LifReservoir.run(n_windows=)``'s order).

    ``mode``/``n_bins``/``width_us`` default to the reservoir's config (``chunk_pad`` uses a
    1 ms raster). Samples are processed ``chunk`` at a time; ``progress(done, total)`` is
    called after each chunk. Op counts are added to ``reservoir.ops``.  ``first`` is the
    index of ``samples[0]`` in its dataset (its read noise depends on it), so a dataset encoded
    in pieces gives the features it gives in one pass.
    """
    c = reservoir.config
    mode = mode or c.binning
    if n_bins is None and mode != "fixed_width":
        n_bins = c.n_bins
    if width_us is None:
        width_us = 1000 if mode == "chunk_pad" else c.bin_width_us
    total = len(samples)
    windows = check_windows(windows)
    feats = np.zeros((total, windows * reservoir.n_neurons), dtype=np.float32)
    for start in range(0, total, chunk):
        part = samples[start:start + chunk]
        sb, bp, ix = bin_samples(part, c.n_inputs, mode=mode, n_bins=n_bins, width_us=width_us)
        f, cnts = encode_binned(sb, bp, ix, reservoir, first_sample=first + start,
                                windows=windows)
        feats[start:start + len(part)] = f
        reservoir.ops.update(reservoir.op_counts(cnts.sum(axis=0)))
        if progress is not None:
            progress(min(start + chunk, total), total)
    return feats
