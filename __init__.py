"""rram-lsm: the resistive-memory zero-shot liquid state machine as a streaming pipeline.

The folders beside this file are its sub-packages, one direction of imports:
``stream`` ← ``nodes`` ← ``experiments`` ← ``launch``.
"""
from importlib.metadata import PackageNotFoundError, version as _version

try:
    __version__ = _version("rram-lsm")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"
