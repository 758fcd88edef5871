"""The launcher: one OS process per node, supervised, with telemetry collected on one SUB.

``start_process`` is the one replaceable function that starts a node (swap it to host nodes
elsewhere, e.g. in Ray actors); everything else works on the handles it returns.
"""
from __future__ import annotations

import ctypes
import json
import secrets
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import zmq

from rram_lsm.stream import codec
from rram_lsm.stream.packets import new_epoch
from rram_lsm.stream.runtime import NodeSpec

from .binds import check_binds, node_binds, private_dir
from .graph import Graph
from .nodeproc import write_spec

CONFIG_ERROR_EXIT = 2  # `rram-lsm node` exits 2 on a bad parameter or graph
EOS_GRACE_S = 5.0  # a node whose upstreams all ended is asked to stop after this long
STOP_GRACE_S = 10.0  # Ctrl-C: time for end-of-stream to drain before SIGTERM, then SIGKILL
READY_TIMEOUT_S = 120.0  # sources wait at most this long for the rest of the graph to be ready


def _die_with_parent(sig: int = signal.SIGTERM) -> None:
    """In the child: get ``sig`` if the launcher dies, so no node outlives it (Linux)."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, sig)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def start_process(spec: NodeSpec, spec_path: Path, log_path: Path | None,
                  death_signal: int = signal.SIGTERM) -> subprocess.Popen:
    """Start one node as a child OS process running `rram-lsm node --spec FILE`; it gets
    ``death_signal`` when its parent dies (SIGTERM: the graph stops with its launcher)."""
    write_spec(spec, spec_path)
    out = open(log_path, "ab") if log_path else None
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "rram_lsm", "node", "--spec", str(spec_path)],
            stdout=out, stderr=subprocess.STDOUT if out else None, stdin=subprocess.DEVNULL,
            start_new_session=True, preexec_fn=lambda: _die_with_parent(death_signal),
        )
    finally:
        if out:
            out.close()


@dataclass
class NodeState:
    spec: NodeSpec
    proc: subprocess.Popen | None = None
    restarts: int = 0
    restart_at: float | None = None
    done: bool = False
    failed: bool = False
    returncodes: list = field(default_factory=list)
    asked_to_stop: float | None = None
    last_report: float | None = None  # monotonic time of its latest telemetry (this process)
    resume_from: int | None = None  # sources: the resume point of their latest report
    down_since: float | None = None  # monotonic time its crash was seen


class Launcher:
    def __init__(self, graph: Graph, run_dir: Path, socket_dir: Path, *,
                 log_nodes: bool = True, on_report: Callable[[dict], None] | None = None,
                 on_event: Callable[[dict], None] | None = None,
                 start: Callable[..., subprocess.Popen] = start_process, host: str | None = None,
                 telemetry_endpoint: str | None = None):
        """``start``: the function that starts a node (:func:`start_process`, or a backend's
        that returns a handle with the same ``poll``/``wait``/``send_signal``/``kill``/``pid``);
        ``telemetry_endpoint``: where the launcher binds its telemetry SUB (default an ipc
        socket in ``socket_dir``; a tcp one when nodes run on other machines)."""
        self.graph, self.run_dir = graph, Path(run_dir)
        local = graph.local_nodes(host)
        check_binds(graph.nodes, local, graph.hosts)  # before anything is bound or started
        self.socket_dir = private_dir(socket_dir)  # 0700: other users cannot reach ipc sockets
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "specs").mkdir(exist_ok=True)
        (self.run_dir / "specs").chmod(0o700)  # specs hold the run token
        (self.run_dir / "logs").mkdir(exist_ok=True)
        self.log_nodes = log_nodes
        self.start = start
        self.on_report = on_report or (lambda r: None)
        self.on_event = on_event or (lambda e: None)
        self.ctx = zmq.Context.instance()
        self.sub = self.ctx.socket(zmq.SUB)
        self.sub.setsockopt(zmq.SUBSCRIBE, b"")
        self.sub.setsockopt(zmq.LINGER, 0)
        self.telemetry_endpoint = telemetry_endpoint or f"ipc://{Path(socket_dir) / 'telemetry.sock'}"
        self.curve = None
        if graph.curve_keys is not None:  # telemetry is authenticated like every other socket
            from rram_lsm.stream.security import CurveConfig, CurveContext, public_key
            allow = [public_key(graph.curve_keys / f"{n}.key") for n in graph.nodes]
            self.curve = CurveContext(self.ctx, CurveConfig(str(graph.curve_keys / "launcher.key_secret"), allow), "launcher")
            self.curve.server(self.sub)
            launcher_key = public_key(graph.curve_keys / "launcher.key")
            for spec in graph.nodes.values():
                spec.curve["servers"][self.telemetry_endpoint] = launcher_key
        self.sub.bind(self.telemetry_endpoint)
        self.telemetry_file = open(self.run_dir / "telemetry.jsonl", "a", buffering=1)
        self.latest: dict[str, dict] = {}
        self.states = {name: NodeState(graph.nodes[name]) for name in local}
        if not self.states:
            raise ValueError(f"graph {graph.name!r} has no node on host {host!r}")
        # A per-run secret on every envelope and acknowledgement, so another user's process
        # on this host (which can reach a loopback tcp port) is refused; a graph split across
        # hosts has one launcher per host and authenticates with CurveZMQ instead.
        token = secrets.token_hex(16) if len(local) == len(graph.nodes) else None
        for name, st in self.states.items():
            st.spec.telemetry = self.telemetry_endpoint
            st.spec.run_token = token
            mine = st.spec.address or st.spec.bind
            st.spec.upstream_names = [m for m, s in graph.nodes.items() if any(e.endpoint == mine for e in s.outputs)]
            if name in graph.sources:  # the data's identity outlives the source's process
                st.spec.origin_epoch = new_epoch()
        self.upstreams = {n: [m for m, s in graph.nodes.items() if m in self.states
                              and any(e.endpoint == (graph.nodes[n].address or graph.nodes[n].bind)
                                      for e in s.outputs)]
                          for n in self.states}
        self.local_sources = [n for n in graph.sources if n in self.states]
        self.upstreams_ended_at: dict[str, float] = {}
        self.stop_requested = False
        self.stopping_since: float | None = None

    # -- process handling -------------------------------------------------------------------
    def _start(self, name: str) -> None:
        st = self.states[name]
        if st.resume_from is not None:  # a restarted source resumes, it does not begin again
            st.spec.resume_from = st.resume_from
        log = self.run_dir / "logs" / f"{name}.log" if self.log_nodes else None
        st.proc = self.start(st.spec, self.run_dir / "specs" / f"{name}.json", log)
        st.restart_at = None
        st.last_report = None

    def event(self, kind: str, **fields) -> None:
        rec = {"event": kind, "time": time.time(), **fields}
        self.telemetry_file.write(json.dumps(rec) + "\n")
        self.on_event(rec)

    def _check_children(self) -> None:
        now = time.monotonic()
        for name, st in self.states.items():
            if st.done or st.failed:
                continue
            if st.proc is None:
                if st.restart_at is not None and now >= st.restart_at and not self.stop_requested:
                    self._start(name)
                    extra = {"resume_from": st.spec.resume_from} if name in self.local_sources else {}
                    self.event("restarted", node=name, attempt=st.restarts, pid=st.proc.pid,
                               down_s=round(now - (st.down_since or now), 3), **extra)
                    for src in self.local_sources:  # re-send every unacknowledged sample
                        if src != name:
                            self._signal(src, signal.SIGUSR1)
                continue
            rc = st.proc.poll()
            if rc is None:
                self._nudge_if_orphaned(name, st, now)
                self._kill_if_hung(name, st, now)
                continue
            st.returncodes.append(rc)
            st.proc = None
            st.down_since = now
            if rc == 0 or self.stop_requested:
                st.done = True
                self.event("exited", node=name, returncode=rc)
                continue
            policy = self.graph.restart[name]
            if rc == CONFIG_ERROR_EXIT or policy.policy == "never" or st.restarts >= policy.max_restarts:
                # a configuration error would fail again: stop the graph instead of retrying
                st.failed = True
                reason = "configuration error" if rc == CONFIG_ERROR_EXIT else "restart limit"
                self.event("failed", node=name, returncode=rc, restarts=st.restarts, reason=reason,
                           message=self._last_error(name))
                self.request_stop()
                continue
            delay = min(policy.backoff_s * (2 ** st.restarts), policy.backoff_max_s)
            st.restarts += 1
            st.restart_at = now + delay
            self.event("crashed", node=name, returncode=rc, restart_in_s=delay, attempt=st.restarts)

    def _last_error(self, name: str) -> str:
        """The node's own last error line (e.g. which endpoint it could not bind), if logged."""
        log = self.run_dir / "logs" / f"{name}.log"
        try:
            lines = [l for l in log.read_text(errors="replace").splitlines() if "error" in l.lower()]
        except OSError:
            return ""
        return lines[-1].strip()[:500] if lines else ""

    def _kill_if_hung(self, name: str, st: NodeState, now: float) -> None:
        """A node that reported once and then fell silent is stuck: kill it (then restart)."""
        if st.last_report is not None and now - st.last_report > self.graph.hang_timeout_s:
            self.event("hung", node=name, silent_s=round(now - st.last_report, 1), pid=st.proc.pid)
            st.last_report = None
            st.proc.kill()

    def _nudge_if_orphaned(self, name: str, st: NodeState, now: float) -> None:
        """All upstreams ended but this node did not (its end-of-stream died with a restart):
        ask it to finish, which flushes and sends end-of-stream downstream."""
        ups = self.upstreams[name]
        if not ups or st.asked_to_stop is not None:
            return
        if all(self.states[u].done or self.states[u].failed for u in ups):
            ended = self.upstreams_ended_at.setdefault(name, now)
            if now - ended > EOS_GRACE_S:
                st.asked_to_stop = now
                st.proc.send_signal(signal.SIGTERM)
                self.event("stop_requested", node=name, reason="upstreams ended")

    def _drain_telemetry(self, timeout_ms: int) -> None:
        if not self.sub.poll(timeout_ms, zmq.POLLIN):
            return
        while True:
            try:
                frames = self.sub.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            try:
                pkt = codec.decode(frames)
            except codec.DecodeError:
                continue
            if pkt.kind != "telemetry":
                continue
            report = dict(pkt.meta, time=time.time())
            name = report.get("node", pkt.stream)
            self.latest[name] = report
            st = self.states.get(name)
            if st is not None and st.proc is not None and report.get("pid") == st.proc.pid:
                st.last_report = time.monotonic()
                resume = report.get("resume")
                if isinstance(resume, dict) and isinstance(resume.get("from_sample"), int):
                    st.resume_from = max(st.resume_from or 0, resume["from_sample"])
            self.telemetry_file.write(json.dumps(report) + "\n")
            self.on_report(report)

    # -- lifecycle --------------------------------------------------------------------------
    def request_stop(self) -> None:
        if not self.stop_requested:
            self.stop_requested = True
            self.stopping_since = time.monotonic()
            self.event("stopping")
            for name in self.local_sources:
                self._signal(name, signal.SIGTERM)

    def _signal(self, name: str, sig: int) -> None:
        st = self.states[name]
        if st.proc is not None and st.proc.poll() is None:
            try:
                st.proc.send_signal(sig)
            except ProcessLookupError:
                pass

    def _escalate(self) -> None:
        waited = time.monotonic() - (self.stopping_since or time.monotonic())
        if waited > STOP_GRACE_S:
            for name in self.states:
                self._signal(name, signal.SIGTERM)
        if waited > STOP_GRACE_S + 5:
            for name in self.states:
                self._signal(name, signal.SIGKILL)

    def running(self) -> bool:
        return any(not (st.done or st.failed) for st in self.states.values())

    def run(self, timeout_s: float | None = None) -> int:
        """Start every node, supervise until all end (or a stop), and return an exit code."""
        # Ctrl-C stops the graph; a launcher in a thread (the Python API) is stopped by its owner.
        main = threading.current_thread() is threading.main_thread()
        old = {s: signal.signal(s, lambda *_: self.request_stop())
               for s in (signal.SIGINT, signal.SIGTERM)} if main else {}
        started = time.monotonic()
        self.event("started", graph=self.graph.name, run_dir=str(self.run_dir))
        try:
            order = sorted(self.states, key=lambda n: -len(self.states[n].spec.outputs))
            for name in order:  # downstream first, so binds exist before senders connect
                if name not in self.local_sources:
                    self._start(name)
            sources_waiting = bool(self.local_sources)
            while self.running():
                self._drain_telemetry(100)
                if sources_waiting and (self._ready() or self.stop_requested
                                        or time.monotonic() - started > READY_TIMEOUT_S):
                    sources_waiting = False
                    self._start_sources(started)
                self._check_children()
                if timeout_s is not None and time.monotonic() - started > timeout_s:
                    self.request_stop()
                if self.stop_requested:
                    self._escalate()
            self._drain_telemetry(200)
        finally:
            self.shutdown()
            for s, h in old.items():
                signal.signal(s, h)
        failed = [n for n, st in self.states.items() if st.failed]
        self.event("finished", failed=failed)
        self.telemetry_file.close()
        if any(st.returncodes[-1:] == [CONFIG_ERROR_EXIT] for st in self.states.values() if st.failed):
            return CONFIG_ERROR_EXIT  # a bad configuration (an endpoint taken...), not a crash
        return 1 if failed else 0

    def _ready(self) -> bool:
        """Every local non-source node has reported once (its setup and warm-up are done), so
        the first samples are not queued behind compilation and model loading."""
        return all(st.last_report is not None or st.done or st.failed
                   for n, st in self.states.items() if n not in self.local_sources)

    def _start_sources(self, started: float) -> None:
        if self.stop_requested:  # stopped before any data flowed: the sources have nothing to do
            for name in self.local_sources:
                self.states[name].done = True
            return
        self.event("sources_started", waited_s=round(time.monotonic() - started, 2), ready=self._ready())
        for name in self.local_sources:
            self._start(name)

    def shutdown(self) -> None:
        """Leave no child process behind, whatever happened."""
        for name, st in self.states.items():
            if st.proc is not None and st.proc.poll() is None:
                st.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 5
        for st in self.states.values():
            if st.proc is None:
                continue
            try:
                st.proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                st.proc.kill()
                st.proc.wait()
        self.sub.close()
        if self.curve is not None:
            self.curve.stop()
        self._remove_sockets()

    def _remove_sockets(self) -> None:
        """Remove the ipc socket files of this launcher's nodes, and their folder once empty."""
        paths = [self.telemetry_endpoint] + [ep for st in self.states.values() for _, ep in node_binds(st.spec)]
        for ep in paths:
            if ep.startswith("ipc://"):
                Path(ep[len("ipc://"):]).unlink(missing_ok=True)
        try:
            self.socket_dir.rmdir()
        except OSError:
            pass  # not empty (not only ours) or already gone

    def pids(self) -> dict[str, int]:
        return {n: st.proc.pid for n, st in self.states.items() if st.proc is not None}
