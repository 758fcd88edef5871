"""The RRAM liquid state machine: device model, event-driven Numba reservoir, and the ``lsm`` node.

Numba's on-disk cache is pointed into the project cache directory here, before any submodule
imports numba.  No torch anywhere in this package except ``reference.py`` (tests/benchmarks).
"""
from rram_lsm.stream.cache import configure_numba_cache

configure_numba_cache()
