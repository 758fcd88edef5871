"""One compiled call for a one-layer head's forward (the paper's Linear -> activation -> L2).

A process that wakes once per sample pays every numpy call at its cold price (~15 calls,
~200 µs after a pause on the development VM); one compiled loop over a transposed,
contiguous float32 weight matrix costs a fraction of that.  Each output is summed over the
inputs in order, so a row gets the same bits alone or in a batch.
"""
from __future__ import annotations

import math

from rram_lsm.stream.cache import configure_numba_cache

configure_numba_cache()

import numba  # noqa: E402
import numpy as np  # noqa: E402

ACT_CODES = {"identity": 0, "gelu": 1, "relu": 2}


@numba.njit(cache=True, nogil=True)
def forward_one_layer(x, mean, inv_std, wt, b, act, out):  # pragma: no cover - compiled
    """``out[r] = l2norm(act(((x[r] - mean) * inv_std) @ wt + b))``; ``wt`` is ``(in, out)``."""
    rows, n = x.shape
    pd = wt.shape[1]
    acc = np.empty(pd, np.float32)
    for r in range(rows):
        acc[:] = b
        for i in range(n):
            h = (x[r, i] - mean[i]) * inv_std[i]
            for j in range(pd):
                acc[j] += wt[i, j] * h
        ss = 0.0
        for j in range(pd):
            v = acc[j]
            if act == 1:
                v = np.float32(0.5 * v * (1.0 + math.erf(v / math.sqrt(2.0))))
            elif act == 2:
                v = max(v, np.float32(0.0))
            acc[j] = v
            ss += float(v) * float(v)
        norm = max(math.sqrt(ss), 1e-12)
        for j in range(pd):
            out[r, j] = np.float32(acc[j] / norm)
    return out
