"""Offline work here against a local Ray cluster: wall time and what Ray costs per task.

One workload and one executor per call, printed as one JSON line (docs/performance.md, "Ray
cluster", has the table and the commands):

* ``sweep``: the reduced split sweep (9 splits x 2 seeds, audio-visual, ideal, cached
  features of the full built-in set) with ``--epochs`` epochs (default 5);
* ``encode``: the LSM encoding of every modality of the built-in set (cache not read);
* ``build``: building the tiny built-in dataset (the chunks of samples);
* ``overhead``: ``--tasks`` empty pieces sharing one 8 MB array, and one ``ray.put`` of the
  sweep's features.

``--workers 0`` is the local default (the vectorised sweep, numba's threads, the dataset's
2 processes); ``--workers N`` starts a Ray instance here with N CPUs (``ray.init(num_cpus=N)``:
N pieces at a time) and reports its start-up time apart.

    python benchmarks/cluster_offline.py sweep --workers 0
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import numpy as np


def _sweep(args) -> dict:
    from rram_lsm.experiments.config import ExperimentConfig
    from rram_lsm.experiments.runs import split_sweep
    from rram_lsm.experiments.store import FeatureStore, pair_data
    from rram_lsm.nodes.projection.train_config import TrainConfig

    store = FeatureStore(ExperimentConfig(size=args.size), log=lambda s: None)
    a, b = pair_data(store, "audio-visual", "ideal")
    t0 = time.perf_counter()
    sw = split_sweep(a, b, TrainConfig(epochs=args.epochs, threads=2), 9, (0, 1))
    return {"seconds": time.perf_counter() - t0, "pieces": 18,
            "unseen_mean": sw.unseen_a_to_b.summary.mean}


def _encode(args) -> dict:
    from rram_lsm.experiments.features import DEFAULT_PRESETS, builtin_source, encode_modality
    from rram_lsm.nodes.sources.builtin import load_builtin

    ds = load_builtin(args.size, 0, progress=False)
    t0 = time.perf_counter()      # on Ray: fresh workers, so their first pieces load the kernels
    for m in ("visual", "audio", "neural"):
        encode_modality(ds.modality(m), DEFAULT_PRESETS[m], "ideal", 0, use_cache=False,
                        source=builtin_source(args.size, 0, m))
    return {"seconds": time.perf_counter() - t0,
            "samples": sum(len(ds.modality(m)) for m in ("visual", "audio", "neural"))}


def _build(args) -> dict:
    from rram_lsm.experiments.executor import current
    from rram_lsm.nodes.sources.builtin import build_builtin

    os.environ["RRAM_LSM_CACHE"] = tempfile.mkdtemp(prefix="rl-build-")
    t0 = time.perf_counter()
    build_builtin("tiny", 0, progress=False, pool=current().futures())
    return {"seconds": time.perf_counter() - t0}


def _noop(item, data):
    return item


def _overhead(args) -> dict:
    from rram_lsm.experiments.executor import current

    ex = current()
    data = np.zeros(1 << 20)
    ex.map(_noop, list(range(4)), data)            # start the workers first
    t0 = time.perf_counter()
    ex.map(_noop, list(range(args.tasks)), data)
    per_task = (time.perf_counter() - t0) / args.tasks
    out = {"seconds_per_task": per_task, "tasks": args.tasks}
    if ex.name == "ray":
        from rram_lsm.experiments.config import ExperimentConfig
        from rram_lsm.experiments.store import FeatureStore, pair_data

        store = FeatureStore(ExperimentConfig(size=args.size), log=lambda s: None)
        a, b = pair_data(store, "audio-visual", "ideal")
        nbytes = a.features.nbytes + b.features.nbytes
        t0 = time.perf_counter()
        ex.put((a, b))
        out.update(put_seconds=time.perf_counter() - t0, put_mb=nbytes / 1e6)
    return out


WORK = {"sweep": _sweep, "encode": _encode, "build": _build, "overhead": _overhead}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("what", choices=sorted(WORK))
    p.add_argument("--workers", type=int, default=0, help="0: local; N: a Ray instance of N CPUs")
    p.add_argument("--size", default="full")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--tasks", type=int, default=200)
    p.add_argument("--nice", action="store_true", help="keep Ray's worker niceness (15)")
    args = p.parse_args()

    from rram_lsm.experiments.executor import LocalExecutor, RayExecutor, using

    start = 0.0
    ex = LocalExecutor()
    if args.workers:
        from rram_lsm.experiments.cluster import require_ray
        ray = require_ray()
        # Ray runs its workers at niceness 15; on a shared host that alone makes them slower
        # than this process, so measure like with like (--nice keeps Ray's default)
        if not args.nice:
            os.environ.setdefault("RAY_worker_niceness", "0")
        t0 = time.perf_counter()
        ray.init(address="local", num_cpus=args.workers, object_store_memory=300 * 2**20,
                 include_dashboard=False, log_to_driver=False)
        start = time.perf_counter() - t0
        ex = RayExecutor(ray)
    with using(ex):
        res = WORK[args.what](args)
    print(json.dumps({"what": args.what, "workers": args.workers, "executor": ex.name,
                      "ray_start_seconds": round(start, 2),
                      **{k: (round(v, 4) if isinstance(v, float) else v) for k, v in res.items()}}))


if __name__ == "__main__":
    main()
