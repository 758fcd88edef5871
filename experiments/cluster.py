"""The optional Ray cluster (`pip install -e '.[cluster]'`).

The one place that imports Ray for offline work and the launcher's Ray backend, so that
`--cluster` without Ray installed fails with one line naming the extra, and every command
reads `--cluster` the same way: no option means no cluster, the flag alone reads
``RAY_ADDRESS``, ``local`` starts a Ray instance on this machine.
"""
from __future__ import annotations

import os

EXTRA = "pip install -e '.[cluster]'"
LOCAL = "local"


class ClusterError(ValueError):
    """`--cluster` cannot be honoured: Ray is missing or no address was given."""


def require_ray():
    """The `ray` module, or a ClusterError naming the optional extra."""
    try:
        import ray
    except ImportError as exc:
        raise ClusterError(f"--cluster needs Ray, an optional extra: {EXTRA}") from exc
    return ray


def resolve_address(value: str | None) -> str | None:
    """The Ray address meant by `--cluster VALUE` (None: run locally, no Ray)."""
    if value is None:
        return None
    if value == "":
        address = os.environ.get("RAY_ADDRESS", "")
        if not address:
            raise ClusterError("--cluster without an address reads RAY_ADDRESS, which is not set; "
                               "give --cluster ADDRESS or --cluster local")
        return address
    return value


def connect(value: str | None, *, num_cpus: int | None = None,
            object_store_memory: int | None = None):
    """Join (or, for ``local``, start) the Ray cluster `--cluster VALUE` names.

    Returns the `ray` module, or None when `value` is None (no cluster asked for).  A
    process already connected keeps its connection (tests share one cluster per session).
    """
    address = resolve_address(value)
    if address is None:
        return None
    ray = require_ray()
    if ray.is_initialized():
        return ray
    if address == LOCAL:
        # address="local": a new instance even when another Ray runs on this machine
        ray.init(address="local", num_cpus=num_cpus, object_store_memory=object_store_memory,
                 include_dashboard=False, log_to_driver=False)
    else:
        ray.init(address=address, log_to_driver=False)
    return ray
