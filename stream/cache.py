"""One cache directory for datasets, features, models and Numba, never inside the repo."""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

CODE_VERSION = "0.1.0"


def cache_dir(sub: str | None = None) -> Path:
    """Root of the cache (``$RRAM_LSM_CACHE`` or ``~/.cache/rram-lsm``), or a sub-folder of it."""
    root = Path(os.environ.get("RRAM_LSM_CACHE") or Path.home() / ".cache" / "rram-lsm")
    path = root / sub if sub else root
    path.mkdir(parents=True, exist_ok=True)
    return path


def cache_key(**parts) -> str:
    """Stable short hash of everything that shaped a cached artefact (plus the code version)."""
    blob = json.dumps({"code": CODE_VERSION, **parts}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def save_npz(path: Path, meta: dict, arrays: dict, compressed: bool = False) -> Path:
    """Write ``arrays`` and JSON ``meta`` (key ``meta``; no pickle) as ``.npz``, atomically: a
    reader never sees half a file, and two processes building one artefact do not collide."""
    import numpy as np  # here, so `stream.cache` stays importable before Numba is configured

    tmp = path.with_name(path.name + f".tmp{os.getpid()}.npz")
    (np.savez_compressed if compressed else np.savez)(
        tmp, meta=np.array(json.dumps(meta, default=str)), **arrays)
    os.replace(tmp, path)
    return path


def load_npz(path: Path, what: str, fmt: int, rebuild: str) -> tuple[dict, dict]:
    """``(arrays, meta)`` of a file written by :func:`save_npz` (no pickle); clear errors for a
    missing file or another format, ``rebuild`` saying how to make it again."""
    import numpy as np

    if not path.is_file():
        raise FileNotFoundError(f"{what} file not found: {path}")
    with np.load(path, allow_pickle=False) as z:
        data = {k: z[k] for k in z.files}
    meta = json.loads(str(data.pop("meta")))
    if meta.get("format") != fmt:
        raise ValueError(f"{path}: format {meta.get('format')} is not {fmt}; {rebuild} and build again")
    return data, meta


def configure_numba_cache() -> None:
    """Point Numba's on-disk cache into our cache dir; call before numba is imported."""
    os.environ.setdefault("NUMBA_CACHE_DIR", str(cache_dir("numba")))
