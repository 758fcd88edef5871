"""The launcher's Ray backend: every node of a graph in its own Ray actor, on the machine the
graph asks for (`rram-lsm run GRAPH --cluster ADDRESS`).

An actor (:class:`NodeHost`) is a thin host: it starts the real node as its child OS process
with the launcher's own :func:`supervisor.start_process` (``python -m rram_lsm node --spec``)
and reports its exit.  So a crashed node is restarted by the launcher's policy -- a new child
in the same actor, on the same machine and endpoints, with a source's resume point in its
spec -- never by Ray's ``max_restarts`` (which would re-run the constructor behind the
launcher's back); an actor that dies itself is re-created on the same Ray node.  The nodes
still talk ZeroMQ to each other: every endpoint is chosen where its node lands (the actor's
node IP and a free port there), and every socket uses CurveZMQ, so a graph on a cluster needs
``[graph.curve]`` keys, present at the same path on every machine.

Only plain data (spec dicts, ints, strings) crosses Ray calls.
"""
from __future__ import annotations

import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from rram_lsm.experiments.cluster import ClusterError
from rram_lsm.stream.runtime import NodeSpec

from .graph import Graph, free_tcp_port
from .nodeproc import spec_from_dict, spec_to_dict, write_spec

NAMESPACE = "rram-lsm"  # every node actor is named "RUN:NODE:ATTEMPT" in this Ray namespace
PLACE_TIMEOUT_S = 120.0  # actors not placed by then: the cluster lacks what the graph asks
CALL_TIMEOUT_S = 30.0
HOST_LOST = -signal.SIGKILL  # the exit a node is given when its actor (or machine) died


class NodeHost:
    """Ray actor hosting one node as a child process on the machine Ray placed it on."""

    def __init__(self, name: str):
        self.name = name
        self.dir = Path(tempfile.mkdtemp(prefix=f"rram-lsm-ray-{name}-"))  # 0700: specs hold the run token
        self.procs: dict[int, subprocess.Popen] = {}
        # One long-lived thread forks every child: PR_SET_PDEATHSIG fires when the forking
        # *thread* ends, so the node dies with this actor and not with a pool thread.
        self.spawner = ThreadPoolExecutor(1)

    def where(self, n_ports: int) -> dict:
        """This actor's machine (Ray node id and IP), and ``n_ports`` free tcp ports there."""
        import ray

        ip = ray.util.get_node_ip_address()
        holders = [socket.socket() for _ in range(n_ports)]
        try:
            for s in holders:  # held together, so the ports differ
                s.bind((ip, 0))
            ports = [s.getsockname()[1] for s in holders]
        finally:
            for s in holders:
                s.close()
        return {"ip": ip, "node_id": ray.get_runtime_context().get_node_id(), "ports": ports}

    def start(self, spec: dict) -> int:
        """Start the node of ``spec`` as a child process; its pid."""
        from .supervisor import start_process

        # SIGKILL if this actor dies: the node is lost with its host, like a crash (SIGTERM
        # would end it cleanly and, for a middle node, end its downstream's input too)
        proc = self.spawner.submit(start_process, spec_from_dict(spec), self.dir / "spec.json",
                                   self.dir / "node.log", signal.SIGKILL).result()
        self.procs[proc.pid] = proc
        return proc.pid

    def wait(self, pid: int) -> int:
        """Block until child ``pid`` exits; its return code (negative: killed by a signal)."""
        return self.procs[pid].wait()

    def signal(self, pid: int, sig: int) -> None:
        proc = self.procs.get(pid)
        if proc is not None and proc.poll() is None:
            proc.send_signal(sig)

    def log(self, offset: int, limit: int = 1 << 20) -> tuple[bytes, int]:
        """The node's output from byte ``offset`` on (at most ``limit`` bytes), and the next offset."""
        try:
            with open(self.dir / "node.log", "rb") as f:
                f.seek(offset)
                data = f.read(limit)
        except OSError:
            return b"", offset
        return data, offset + len(data)

    def ping(self) -> bool:
        return True

    def close(self) -> None:
        """Leave nothing behind on this machine: end every child, remove the spec folder."""
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


class RayNodeProcess:
    """The launcher's handle on a node process in a Ray actor: the part of
    :class:`subprocess.Popen` the launcher uses (``pid``, ``poll``, ``wait``, ``send_signal``,
    ``kill``).  ``pid`` is the process id on the node's machine."""

    def __init__(self, ray, name: str, actor, pid: int, log_path: Path | None):
        self.ray, self.name, self.actor, self.pid = ray, name, actor, pid
        self.log_path, self.returncode = log_path, None
        self._exit = actor.wait.remote(pid)
        self._log_offset = 0

    def poll(self) -> int | None:
        if self.returncode is None:
            ready, _ = self.ray.wait([self._exit], timeout=0)
            if ready:
                self._finish()
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            ready, _ = self.ray.wait([self._exit], timeout=timeout)
            if not ready:
                raise subprocess.TimeoutExpired(f"node {self.name}", timeout)
            self._finish()
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            self.actor.signal.remote(self.pid, int(sig))

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def _finish(self) -> None:
        try:
            self.returncode = self.ray.get(self._exit)
        except self.ray.exceptions.RayError as exc:
            self.returncode = HOST_LOST
            self._append_log(f"[launcher] error: the Ray actor hosting node {self.name!r} is gone "
                             f"({type(exc).__name__})\n".encode())
            return
        self.copy_log()

    def copy_log(self) -> None:
        """Bring the node's output from its machine into the run folder (where the launcher
        looks for a failed node's last error)."""
        if self.log_path is None:
            return
        try:
            while True:
                data, self._log_offset = self.ray.get(self.actor.log.remote(self._log_offset),
                                                      timeout=CALL_TIMEOUT_S)
                if not data:
                    return
                self._append_log(data)
        except self.ray.exceptions.RayError:
            return

    def _append_log(self, data: bytes) -> None:
        if self.log_path is not None:
            with open(self.log_path, "ab") as f:
                f.write(data)


class HostLost:
    """A handle for a node whose actor could not be (re)started: it has already exited."""

    def __init__(self, name: str, why: str, log_path: Path | None):
        self.pid, self.returncode = -1, HOST_LOST
        if log_path is not None:
            with open(log_path, "ab") as f:
                f.write(f"[launcher] error: cannot start node {name!r} on the Ray cluster: {why}\n".encode())

    def poll(self) -> int:
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        return self.returncode

    def send_signal(self, sig: int) -> None:
        pass

    def kill(self) -> None:
        pass


def _actor_options(resources: dict[str, float]) -> dict:
    """Ray actor options for a node's ``resources`` (CPU and GPU have options of their own;
    a node asks for no CPU unless its graph says, so a graph never waits for free cores)."""
    custom = dict(resources)
    return {"num_cpus": custom.pop("CPU", 0.0), "num_gpus": custom.pop("GPU", 0.0),
            "resources": custom, "max_restarts": 0, "max_task_retries": 0, "max_concurrency": 8,
            "namespace": NAMESPACE}


def check_placeable(graph: Graph, nodes: list[dict]) -> None:
    """ClusterError naming every node whose resources no alive machine of the cluster has."""
    alive = [n for n in nodes if n.get("Alive")]
    problems = []
    for name, want in graph.resources.items():
        if not any(all(n["Resources"].get(k, 0.0) >= v for k, v in want.items() if v > 0) for n in alive):
            problems.append(f"node {name!r} asks for {want}")
    if problems:
        machines = "; ".join(f"{n['NodeManagerAddress']} has {_offered(n['Resources'])}" for n in alive)
        raise ClusterError(f"graph {graph.name!r}: no machine of the Ray cluster has what "
                           f"{'; '.join(problems)} (machines: {machines})")


def _offered(resources: dict) -> dict:
    """A machine's resources a graph can ask for (not Ray's per-node bookkeeping ones)."""
    return {k: v for k, v in sorted(resources.items())
            if not k.startswith(("node:", "memory", "object_store_memory"))}


def rewrite_endpoints(graph: Graph, where: dict[str, dict]) -> None:
    """Give every bound socket an endpoint on its node's machine (``where[name]``: its ``ip``
    and free ``ports``) and rewire every peer, ack and Curve server entry to it."""
    new: dict[str, str] = {}
    for name, spec in graph.nodes.items():
        ports = iter(where[name]["ports"])
        for attr in ("bind", "ack_bind"):
            old = getattr(spec, attr)
            if old is None:
                continue
            endpoint = f"tcp://{where[name]['ip']}:{next(ports)}"
            new[old] = endpoint
            if attr == "bind" and spec.address:
                new[spec.address] = endpoint
            setattr(spec, attr, endpoint)
        spec.address = None
    for spec in graph.nodes.values():
        for edge in spec.outputs:
            edge.endpoint = new[edge.endpoint]
        spec.ack_to = [new[e] for e in spec.ack_to]
        if spec.curve is not None:
            spec.curve["servers"] = {new.get(e, e): key for e, key in spec.curve["servers"].items()}


class RayBackend:
    """Places a graph's nodes in Ray actors and starts them for the launcher.

    Use: ``backend = RayBackend(graph, ray)``, then ``Launcher(graph, ..., start=backend.start,
    telemetry_endpoint=backend.telemetry_endpoint)``, and ``backend.close()`` at the end."""

    def __init__(self, graph: Graph, ray, *, place_timeout_s: float = PLACE_TIMEOUT_S):
        if graph.curve_keys is None:
            raise ClusterError(f"graph {graph.name!r}: on a Ray cluster the nodes talk across machines, "
                               "so every socket uses CurveZMQ: make keys with `rram-lsm keys DIR --graph "
                               "GRAPH` and set [graph.curve] keys = \"DIR\" (the folder at the same path "
                               "on every machine)")
        self.ray, self.graph = ray, graph
        self.run_id = secrets.token_hex(4)
        self.actor_class = ray.remote(NodeHost)
        self.actors: dict[str, object] = {}
        self.placed: dict[str, dict] = {}
        self.attempts: dict[str, int] = {}
        try:
            check_placeable(graph, ray.nodes())
            for name in graph.nodes:
                self.actors[name] = self._create(name)
            self._place(place_timeout_s)
            rewrite_endpoints(graph, self.placed)
        except BaseException:
            self.close()
            raise
        # nodes on every machine report to this launcher's machine, as the cluster sees it
        ip = ray.util.get_node_ip_address()
        self.telemetry_endpoint = f"tcp://{ip}:{free_tcp_port(ip)}"

    def _create(self, name: str, node_id: str | None = None):
        options = _actor_options(self.graph.resources.get(name, {}))
        self.attempts[name] = self.attempts.get(name, 0) + 1
        options["name"] = f"{self.run_id}:{name}:{self.attempts[name]}"
        if node_id is not None:  # a re-created actor goes back to its machine (its endpoints)
            from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
            options["scheduling_strategy"] = NodeAffinitySchedulingStrategy(node_id, soft=False)
        return self.actor_class.options(**options).remote(name)

    def _place(self, timeout_s: float) -> None:
        ports = {n: int(s.bind is not None) + int(s.ack_bind is not None) for n, s in self.graph.nodes.items()}
        refs = {self.actors[n].where.remote(ports[n]): n for n in self.graph.nodes}
        ready, pending = self.ray.wait(list(refs), num_returns=len(refs), timeout=timeout_s)
        if pending:
            names = sorted(refs[r] for r in pending)
            raise ClusterError(f"graph {self.graph.name!r}: node(s) {names} not placed on the Ray cluster "
                               f"within {timeout_s:g} s (is a machine with their resources busy or gone?)")
        for ref in ready:
            try:
                self.placed[refs[ref]] = self.ray.get(ref)
            except self.ray.exceptions.RayError as exc:  # its actor could not start there
                raise ClusterError(f"graph {self.graph.name!r}: node {refs[ref]!r} could not start on "
                                   f"the Ray cluster: {str(exc).strip().splitlines()[0]}") from None

    def start(self, spec: NodeSpec, spec_path: Path, log_path: Path | None):
        """The launcher's start function: run ``spec`` in its node's actor (re-created on the
        same Ray node if it died); a handle like subprocess.Popen's."""
        write_spec(spec, spec_path)  # the run folder's record of what ran (0700)
        name = spec.name
        try:
            actor = self._alive(name)
            pid = self.ray.get(actor.start.remote(spec_to_dict(spec)), timeout=CALL_TIMEOUT_S)
        except (self.ray.exceptions.RayError, ClusterError) as exc:
            return HostLost(name, str(exc).splitlines()[0], log_path)
        return RayNodeProcess(self.ray, name, actor, pid, log_path)

    def _alive(self, name: str):
        """The node's actor, re-created on its Ray node when it died (same machine and IP)."""
        actor = self.actors[name]
        try:
            self.ray.get(actor.ping.remote(), timeout=CALL_TIMEOUT_S)
            return actor
        except self.ray.exceptions.RayError:
            pass
        placed = self.placed[name]
        actor = self.actors[name] = self._create(name, placed["node_id"])
        try:
            here = self.ray.get(actor.where.remote(0), timeout=CALL_TIMEOUT_S)
        except self.ray.exceptions.GetTimeoutError:
            raise ClusterError(f"its Ray node {placed['node_id']} ({placed['ip']}) is gone") from None
        if here["ip"] != placed["ip"]:
            raise ClusterError(f"its Ray node now has address {here['ip']}, not {placed['ip']}")
        return actor

    def close(self) -> None:
        """End every node process and every actor of this run, and wait until Ray has them dead."""
        placed = [self.actors[n] for n in self.placed if n in self.actors]
        closing = [actor.close.remote() for actor in placed]  # its children, its spec folder
        if closing:
            self.ray.wait(closing, num_returns=len(closing), timeout=CALL_TIMEOUT_S)
        for actor in self.actors.values():
            self.ray.kill(actor, no_restart=True)
        for actor in self.actors.values():  # returns once Ray reports each one dead
            try:
                self.ray.get(actor.ping.remote(), timeout=CALL_TIMEOUT_S)
            except self.ray.exceptions.RayError:
                pass
        self.actors.clear()
