"""Build, run and watch a graph from Python: a script or a notebook, no graph file.

    from rram_lsm.launch.api import Graph
    g = Graph("hello")
    g.node("source", "synthetic_dvs", samples=5)
    g.node("lsm", "lsm", preset="nmnist")
    g.node("sink", "null_sink")
    g.edge("source", "lsm"); g.edge("lsm", "sink")
    with g.start() as run:                    # real processes, under the launcher's supervisor
        for item in run.results(timeout=60):  # what reaches the sinks, as Python objects
            print(item.sample, item.label, item.data.shape)

A graph built here is validated by the same function as a graph file (graph.graph_from_tables),
parameters included, before any process starts.  ``start`` adds a ``tap`` node beside the
sinks (nodes/tap.py) that forwards every whole sample's packets to this process, and runs the
launcher in a background thread; ``stop()`` (or leaving the ``with``) ends every process.
"""
from __future__ import annotations

import atexit
import os
import shutil
import signal
import tempfile
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import zmq

from rram_lsm.stream import codec
from rram_lsm.stream.clock import now_ns

from . import graph as graphfile
from .graph import GraphError


@dataclass(frozen=True)
class Result:
    """One packet that reached the sinks: features, an embedding or a prediction (or events).

    ``data`` is its body (read-only); ``meta`` its small fields (``pred``, ``topk``, ``scores``
    for predictions); ``stream`` the node that produced it."""

    kind: str
    stream: str
    sample: int
    label: int | None
    data: np.ndarray | None
    meta: dict = field(default_factory=dict)
    latency_ms: float | None = None  # from the first event of its data to its arrival here
    origin: tuple | None = None  # (source stream, source epoch, sample): the sample's identity

    @property
    def pred(self) -> Any:
        """The predicted class of a prediction (None for other kinds)."""
        return self.meta.get("pred")


class _Feed:
    """A bounded queue one thread fills and another iterates; the oldest item goes when full."""

    def __init__(self, maxlen: int):
        self.items: deque = deque(maxlen=maxlen)
        self.cv = threading.Condition()
        self.closed = False
        self.dropped = 0

    def put(self, item) -> None:
        with self.cv:
            if len(self.items) == self.items.maxlen:
                self.dropped += 1
            self.items.append(item)
            self.cv.notify_all()

    def close(self) -> None:
        with self.cv:
            self.closed = True
            self.cv.notify_all()

    def iterate(self, timeout: float | None, what: str) -> Iterator:
        while True:
            with self.cv:
                if not self.cv.wait_for(lambda: self.items or self.closed, timeout):
                    raise TimeoutError(f"no {what} for {timeout} s while the graph runs")
                if not self.items:
                    return
                item = self.items.popleft()
            yield item


class Graph:
    """A graph built in code: nodes with their parameters, and edges.

    ``options`` are the ``[graph]`` table of a file (transport, restart, telemetry_interval_s,
    recovery ...)."""

    def __init__(self, name: str, **options):
        self.name = name
        self.options = options
        self.nodes: dict[str, dict] = {}
        self.edges: list[dict] = []

    def node(self, name: str, kind: str, /, *, host: str | None = None, restart: dict | None = None,
             resources: dict | None = None, **params) -> "Graph":
        """Add a node of ``kind`` (``rram-lsm kinds`` lists them) with its parameters;
        ``resources``: the Ray resources it asks for on a cluster (``start(cluster=...)``)."""
        if name in self.nodes:
            raise GraphError(f"graph {self.name!r}: a node named {name!r} exists already")
        table: dict[str, Any] = {"kind": kind, "params": params}
        if host is not None:
            table["host"] = host
        if restart is not None:
            table["restart"] = restart
        if resources is not None:
            table["resources"] = resources
        self.nodes[name] = table
        return self

    def edge(self, src: str, dst: str, policy: str = "block", **options) -> "Graph":
        """Connect ``src`` to ``dst``; ``policy`` block (lossless) or drop (live data)."""
        self.edges.append({"from": src, "to": dst, "policy": policy, **options})
        return self

    def tables(self) -> dict:
        """The tables a graph file would hold."""
        return {"graph": {"name": self.name, **self.options},
                "nodes": {n: dict(t, params=dict(t["params"])) for n, t in self.nodes.items()},
                "edges": [dict(e) for e in self.edges]}

    def check(self, host: str | None = None) -> graphfile.Graph:
        """Validate as a graph file is validated; raises GraphError naming what is wrong."""
        return graphfile.graph_from_tables(self.tables(), f"graph {self.name!r}", None,
                                           tempfile.gettempdir(), on_host=host)

    def start(self, *, run_dir: str | Path | None = None, timeout: float | None = None,
              host: str | None = None, tap: bool | list[str] = True,
              max_results: int = 100_000, cluster: str | None = None) -> "Run":
        """Start every node (those on ``host`` only, if given) and return the running graph.

        ``tap``: True receives what reaches the sinks; a list of node names receives those
        nodes' outputs; False receives nothing.  ``timeout`` stops the graph after that many
        seconds; ``max_results`` bounds the results kept unread (the oldest go first).
        ``cluster``: run every node in a Ray actor on that cluster, as `rram-lsm run
        --cluster` does (docs/cluster.md); the tap then runs on this machine's Ray node."""
        if cluster is not None and host is not None:
            raise GraphError("cluster= places every node itself; host= is for a graph started by hand on each host")
        socket_dir = Path(tempfile.mkdtemp(prefix="rram-lsm-"))
        tables = self.tables()
        endpoint, backend = None, None
        try:
            ray = _cluster(cluster)
            if tap is not False:
                endpoint = f"ipc://{socket_dir / 'api-tap.sock'}"
                name = _add_tap(tables, None if tap is True else list(tap), endpoint, host)
                if ray is not None:
                    _tap_here(tables, name, ray)
            loaded = graphfile.graph_from_tables(tables, f"graph {self.name!r}", None, socket_dir,
                                                 on_host=host, check_files=ray is None)
            if ray is not None:
                from .ray_backend import RayBackend
                backend = RayBackend(loaded, ray)
        except BaseException:
            shutil.rmtree(socket_dir, ignore_errors=True)
            raise
        run_dir = Path(run_dir or Path("runs") / f"{self.name}-{time.strftime('%Y%m%d-%H%M%S')}")
        return Run(loaded, run_dir, socket_dir, endpoint, host, timeout, max_results, backend)


def _cluster(cluster: str | None):
    """The connected `ray` module for ``cluster=`` (None: run here)."""
    if cluster is None:
        return None
    from rram_lsm.experiments.cluster import connect
    return connect(cluster)


def _tap_here(tables: dict, name: str, ray) -> None:
    """On a cluster the tap runs on this machine's Ray node (it hands results to this process
    over ipc), with a CurveZMQ key pair of its own, made in the graph's key folder if missing."""
    from rram_lsm.stream.security import make_keypair

    here = ray.util.get_node_ip_address()
    if not any(n["Alive"] and n["NodeManagerAddress"] == here for n in ray.nodes()):
        raise GraphError(f"tap: this machine ({here}) is not a node of the Ray cluster, so results "
                         "cannot come back here; start(tap=False) and read the graph's own sinks")
    tables["nodes"][name]["resources"] = {f"node:{here}": 0.001}  # Ray's resource of that node
    keys = (tables["graph"].get("curve") or {}).get("keys")
    if isinstance(keys, str) and not (Path(keys) / f"{name}.key_secret").exists():
        make_keypair(keys, name)


def _add_tap(tables: dict, tapped: list[str] | None, endpoint: str, host: str | None) -> str:
    """A ``tap`` node fed by the tapped nodes; by default by what feeds each sink, and by the
    nodes that end the graph without being sinks (an lsm with nothing after it)."""
    nodes, edges = tables["nodes"], tables["edges"]
    name = next(f"tap{i or ''}" for i in range(len(nodes) + 1) if f"tap{i or ''}" not in nodes)
    if tapped is None:
        ends = [n for n in nodes if not any(e["from"] == n for e in edges)]
        sinks = {n for n in ends if _is_sink(nodes[n]["kind"])}
        tapped = list(dict.fromkeys([*(e["from"] for e in edges if e["to"] in sinks),
                                     *(n for n in ends if n not in sinks)]))
    for n in tapped:
        if n not in nodes:
            raise GraphError(f"tap: no node named {n!r} (nodes: {sorted(nodes)})")
    policy = {e["from"]: e.get("policy", "block") for e in reversed(edges)}
    nodes[name] = {"kind": "tap", "params": {"endpoint": endpoint}}
    if host is not None:
        nodes[name]["host"] = host
    edges.extend({"from": n, "to": name, "policy": policy.get(n, "block")} for n in tapped)
    return name


def _is_sink(kind: str) -> bool:
    from rram_lsm.nodes.sinks import SinkNode

    from .registry import node_class
    try:
        return issubclass(node_class(kind), SinkNode)
    except ValueError:
        return True  # a kind that does not load is reported by the validation


class Run:
    """A running graph: its results and telemetry as they come; ``stop()`` ends it."""

    def __init__(self, graph: graphfile.Graph, run_dir: Path, socket_dir: Path, endpoint: str | None,
                 host: str | None, timeout: float | None, max_results: int, backend=None):
        from .supervisor import Launcher

        self.graph, self.run_dir, self.socket_dir = graph, Path(run_dir), socket_dir
        self.backend = backend  # the Ray backend (ray_backend.RayBackend) or None
        placement = {} if backend is None else {"start": backend.start,
                                                "telemetry_endpoint": backend.telemetry_endpoint}
        self.events: list[dict] = []
        self.returncode: int | None = None
        self._results, self._reports = _Feed(max_results), _Feed(10_000)
        self._ctx = zmq.Context()
        self._pull = None
        try:
            if endpoint is not None:
                self._pull = self._ctx.socket(zmq.PULL)
                self._pull.setsockopt(zmq.LINGER, 0)
                self._pull.bind(endpoint)
            self.launcher = Launcher(graph, self.run_dir, socket_dir, log_nodes=True,
                                     on_report=self._reports.put, on_event=self.events.append, host=host,
                                     **placement)
        except BaseException:
            if backend is not None:
                backend.close()
            self._ctx.destroy(linger=0)
            shutil.rmtree(socket_dir, ignore_errors=True)
            raise
        self._done = threading.Event()
        self._stopped = False
        self._supervisor = threading.Thread(target=self._supervise, args=(timeout,),
                                            name=f"rram-lsm {graph.name}", daemon=True)
        self._receiver = threading.Thread(target=self._receive, name="rram-lsm tap", daemon=True)
        atexit.register(self.stop)
        self._supervisor.start()
        self._receiver.start()

    # -- what a user reads ------------------------------------------------------------------
    def results(self, timeout: float | None = None) -> Iterator[Result]:
        """Each result as it arrives, until the graph has ended and all were read.

        ``timeout``: the longest wait for the next one (TimeoutError after it)."""
        return self._results.iterate(timeout, "result")

    def reports(self, timeout: float | None = None) -> Iterator[dict]:
        """Every telemetry report as it arrives (one per node per interval, and a final one)."""
        return self._reports.iterate(timeout, "telemetry report")

    def telemetry(self) -> dict[str, dict]:
        """The latest telemetry report of every node, by node name."""
        return dict(self.launcher.latest)

    @property
    def running(self) -> bool:
        return not self._done.is_set()

    @property
    def dropped(self) -> int:
        """Results that arrived while ``max_results`` were unread (the oldest were dropped)."""
        return self._results.dropped

    def wait(self, timeout: float | None = None) -> int | None:
        """Wait for the graph to end by itself; its exit code (0: every node ended well)."""
        self._done.wait(timeout)
        return self.returncode

    def stop(self) -> int | None:
        """Stop the graph (end of stream first, then signals) and leave no process behind."""
        if self._stopped:
            return self.returncode
        self._stopped = True
        atexit.unregister(self.stop)
        if self._supervisor.is_alive():
            self.launcher.request_stop()
            self._supervisor.join(60)
        for pid in self.launcher.pids().values() if self.backend is None else ():
            try:  # only if the supervisor could not finish (on a cluster, the backend's close)
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self._receiver.join(10)
        if self._pull is not None:
            self._pull.close()
        self._ctx.term()
        shutil.rmtree(self.socket_dir, ignore_errors=True)
        return self.returncode

    def __enter__(self) -> "Run":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else f"ended ({self.returncode})"
        return f"<Run {self.graph.name!r} {state}, run folder {self.run_dir}>"

    # -- threads ----------------------------------------------------------------------------
    def _supervise(self, timeout: float | None) -> None:
        try:
            self.returncode = self.launcher.run(timeout)
        finally:
            if self.backend is not None:  # every actor of the run, and its node processes
                self.backend.close()
            self._done.set()
            self._reports.close()

    def _receive(self) -> None:
        """Results from the tap until the graph has ended and nothing more is on the way."""
        try:
            while self._pull is not None:
                if not self._pull.poll(200):
                    if self._done.is_set():
                        return
                    continue
                try:
                    pkt = codec.decode(self._pull.recv_multipart())
                except codec.DecodeError:
                    continue
                latency = round((now_ns() - pkt.origin_ns) / 1e6, 3) if pkt.origin_ns else None
                self._results.put(Result(pkt.kind, pkt.stream, pkt.sample, pkt.label, pkt.body,
                                         dict(pkt.meta), latency,
                                         tuple(pkt.origin.as_list()) if pkt.origin else None))
        finally:
            self._results.close()
