"""One-pass validation of bodies (Numba): events' time order, coordinate ranges, polarity;
dense bodies' finiteness.

A single compiled loop replaces several numpy reductions, so checking a message costs about
a memory pass, not a dozen Python-level calls.  Codes: 0 ok, 1 time goes backwards (or is
negative), 2 x out of range, 3 y out of range, 4 polarity above 1.
"""
from __future__ import annotations

from .cache import configure_numba_cache

configure_numba_cache()

import numba  # noqa: E402
import numpy as np  # noqa: E402

OK, TIME_BACKWARDS, X_RANGE, Y_RANGE, POLARITY = range(5)


@numba.njit(cache=True, nogil=True)
def _check_dvs(ev, width, height):  # pragma: no cover - compiled
    prev = 0
    for i in range(ev.shape[0]):
        t = ev[i].t
        if t < prev:
            return TIME_BACKWARDS
        prev = t
        if ev[i].x >= width:
            return X_RANGE
        if ev[i].y >= height:
            return Y_RANGE
        if ev[i].p > 1:
            return POLARITY
    return OK


@numba.njit(cache=True, nogil=True)
def _check_cochlea(ev, channels):  # pragma: no cover - compiled
    prev = 0
    for i in range(ev.shape[0]):
        t = ev[i].t
        if t < prev:
            return TIME_BACKWARDS
        prev = t
        if ev[i].x >= channels:
            return X_RANGE
        if ev[i].p > 1:
            return POLARITY
    return OK


@numba.njit(cache=True, nogil=True)
def _check_neural(ev, electrodes):  # pragma: no cover - compiled
    prev = 0
    for i in range(ev.shape[0]):
        t = ev[i].t
        if t < prev:
            return TIME_BACKWARDS
        prev = t
        if ev[i].x >= electrodes:
            return X_RANGE
    return OK


@numba.njit(cache=True, nogil=True)
def _all_finite(flat):  # pragma: no cover - compiled
    for v in flat:
        if not np.isfinite(v):
            return False
    return True


def all_finite(body: np.ndarray) -> bool:
    """True when no value of a float body is NaN or infinite: one compiled pass (a process
    waking once per sample paid ~65 µs for ``np.all(np.isfinite(...))`` cold, ~20 µs this)."""
    return _all_finite(body.reshape(-1))


def check_events(ev: np.ndarray, name: str, geometry) -> int:
    """Validation code for an event body of wire dtype ``name`` against ``geometry``."""
    if name == "dvs":
        return _check_dvs(ev, geometry[0], geometry[1])
    if name == "cochlea":
        return _check_cochlea(ev, geometry[0])
    return _check_neural(ev, geometry[0])


def warm_up() -> None:
    """Load (or compile) every checker now, so the first message does not pay for it."""
    from .packets import COCHLEA_DTYPE, DVS_DTYPE, NEURAL_DTYPE

    for name, dtype in (("dvs", DVS_DTYPE), ("cochlea", COCHLEA_DTYPE), ("neural", NEURAL_DTYPE)):
        check_events(np.zeros(1, dtype), name, (1, 1))
    for dtype in (np.float32, np.float64):  # bodies from a frame are writable, from bytes not
        body = np.zeros(1, dtype)
        all_finite(body)
        body.setflags(write=False)
        all_finite(body)
