"""Dense, time-stepped torch reference of the LIF reservoir, the way the authors' scripts run it.

Imported only by tests and benchmarks (never by the node): it imports torch.
"""
from __future__ import annotations

import numpy as np
import torch


def reference_run(frames: np.ndarray, w_in: np.ndarray, w_rec: np.ndarray, decay: float,
                  vth: float) -> tuple[np.ndarray, np.ndarray]:
    """Spikes ``(B, T, n)`` uint8 and final membrane ``(B, n)`` for binary frames ``(B, T, n_in)``.

    Same equations as the kernel: ``mem = decay * mem * (1 - s) + x @ W_in + s @ W_rec``,
    ``s = mem >= vth``; computed in the dtype of ``w_in`` (float64 for exactness tests).
    """
    dtype = torch.float64 if w_in.dtype == np.float64 else torch.float32
    x = torch.as_tensor(np.asarray(frames), dtype=dtype)
    if x.ndim == 2:
        x = x[None]
    wi = torch.as_tensor(w_in, dtype=dtype)
    wr = torch.as_tensor(w_rec, dtype=dtype)
    b, t_len, _ = x.shape
    n = wi.shape[1]
    mem = torch.zeros(b, n, dtype=dtype)
    s = torch.zeros(b, n, dtype=dtype)
    out = torch.zeros(b, t_len, n, dtype=torch.uint8)
    with torch.no_grad():
        for t in range(t_len):
            mem = decay * mem * (1 - s) + x[:, t] @ wi + s @ wr
            s = (mem >= vth).to(dtype)
            out[:, t] = s.to(torch.uint8)
    return out.numpy(), mem.numpy()


def reference_features(frames: np.ndarray, w_in: np.ndarray, w_rec: np.ndarray, decay: float,
                       vth: float) -> np.ndarray:
    """Mean firing rate per neuron ``(B, n)``."""
    spikes, _ = reference_run(frames, w_in, w_rec, decay, vth)
    return spikes.mean(axis=1)
