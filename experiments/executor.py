"""Where the independent pieces of offline work run: here (``local``) or as Ray tasks.

A piece is a share of a sweep's split x seed runs (one share per CPU of the cluster, trained
vectorised as here), one gain of a calibration grid, one baseline, or one chunk of a dataset
being encoded or built.  :meth:`Executor.map` runs ``fn(item, *shared)`` for every item and
returns the results in item order:

* ``local`` calls it in this process, item after item: today's path, unchanged;
* ``ray`` makes each call a Ray remote task.  The ``shared`` inputs (features, datasets) go
  into Ray's object store once per map (``ray.put``; an ObjectRef passed in is used as it is)
  and every task receives the same reference, never its own copy.

``progress(done, total)`` is called as pieces finish (``ray.wait``), so a progress bar
advances the same way in both.  Torch's thread count is set explicitly in each piece, to the
same number in both (``threads``): Ray gives its workers one thread, this process has all.

The commands pick an executor with ``--cluster`` and install it for the whole command with
:func:`using`; the experiments ask :func:`current` (``local`` unless a command said otherwise).
"""
from __future__ import annotations

import concurrent.futures
import contextlib
import contextvars
from typing import Any, Callable, Iterator, Sequence

from .cluster import connect

Progress = Callable[[int, int], None]


def set_threads(threads: int | None) -> None:
    """Fix torch's intra-op threads where torch is loaded (encoding never loads it)."""
    import sys

    if threads is not None and "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(int(threads))


def _piece(fn: Callable, item: Any, threads: int | None, *shared: Any) -> Any:
    set_threads(threads)
    return fn(item, *shared)


class LocalExecutor:
    """Every piece in this process, one after another (the path without ``--cluster``)."""

    name = "local"

    def put(self, value: Any) -> Any:
        return value

    def futures(self) -> None:
        """No pool of our own: the caller keeps its local one (the dataset's processes)."""
        return None

    def map(self, fn: Callable, items: Sequence, *shared: Any, progress: Progress | None = None,
            threads: int | None = None) -> list:
        out = []
        for item in items:
            out.append(_piece(fn, item, threads, *shared))
            if progress is not None:
                progress(len(out), len(items))
        return out


class RayExecutor:
    """Every piece a Ray task (``num_cpus`` each, or its torch ``threads``), its shared inputs
    in the object store once."""

    name = "ray"

    def __init__(self, ray, num_cpus: float = 1):
        self.ray, self.num_cpus = ray, num_cpus
        self._task, self._call = ray.remote(_piece), ray.remote(_call)

    def cpus(self, threads: int | None) -> float:
        """The CPUs a piece running ``threads`` threads reserves: as many (so threads never
        outnumber cores, which costs 3x: docs/performance.md), but no more than the largest
        node has, or the piece could never be scheduled."""
        if threads is None:
            return self.num_cpus
        largest = max((n["Resources"].get("CPU", 0) for n in self.ray.nodes() if n["Alive"]),
                      default=1)
        return max(self.num_cpus, min(float(threads), largest))

    def slots(self, threads: int | None = None) -> int:
        """How many pieces of ``threads`` threads the cluster runs at once."""
        return max(1, int(self.ray.cluster_resources().get("CPU", 1) // self.cpus(threads)))

    def put(self, value: Any) -> Any:
        return value if isinstance(value, self.ray.ObjectRef) else self.ray.put(value)

    def futures(self) -> "RayPool":
        """A ``concurrent.futures.Executor`` whose ``submit`` starts a Ray task, for code below
        the experiments (the built-in dataset's build) that knows only the standard library."""
        return RayPool(self)

    def map(self, fn: Callable, items: Sequence, *shared: Any, progress: Progress | None = None,
            threads: int | None = None) -> list:
        refs = [self.put(s) for s in shared]
        cpus = self.cpus(threads)
        task = self._task.options(num_cpus=cpus)
        futures = [task.remote(fn, item, threads, *refs) for item in items]
        pending, done = list(futures), 0
        while pending:
            ready, pending = self.ray.wait(pending, num_returns=1)
            done += len(ready)
            if progress is not None:
                progress(done, len(futures))
        return self.ray.get(futures)


class RayPool(concurrent.futures.Executor):
    """``submit(fn, *args)`` as one Ray task; its future completes when the task does."""

    def __init__(self, executor: RayExecutor):
        self.executor = executor

    def submit(self, fn: Callable, /, *args: Any, **kwargs: Any) -> concurrent.futures.Future:
        if kwargs:
            raise TypeError("RayPool.submit takes positional arguments only")
        ex = self.executor
        return ex._call.options(num_cpus=ex.num_cpus).remote(fn, *args).future()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Nothing to stop: the cluster outlives the pool."""


def _call(fn: Callable, *args: Any) -> Any:
    return fn(*args)


Executor = LocalExecutor | RayExecutor
_CURRENT: contextvars.ContextVar[Executor] = contextvars.ContextVar("executor",
                                                                    default=LocalExecutor())


def current() -> Executor:
    """The executor the running command installed (``local`` by default)."""
    return _CURRENT.get()


@contextlib.contextmanager
def using(executor: Executor) -> Iterator[Executor]:
    """Run the pieces of everything inside the block on ``executor``."""
    token = _CURRENT.set(executor)
    try:
        yield executor
    finally:
        _CURRENT.reset(token)


def for_cluster(value: str | None) -> Executor:
    """The executor of ``--cluster VALUE``: local without it, Ray tasks with it (ClusterError
    naming the extra when Ray is missing, or naming RAY_ADDRESS when no address is given)."""
    ray = connect(value)
    return LocalExecutor() if ray is None else RayExecutor(ray)
