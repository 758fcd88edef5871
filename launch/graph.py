"""Graph files (TOML): nodes, their kinds and parameters, edges; arguments and includes.

```toml
include = ["common.toml"]          # merged first; this file wins
[graph]
name = "smoke"
transport = "ipc"                  # ipc | tcp (endpoints derived) -- or give `bind` per node
[args]
samples = 20                       # default; override with `rram-lsm run G samples:=5`
[nodes.source]                     # a name may use arguments too: [nodes."lsm_${modality}"]
kind = "synthetic_dvs"
params = { samples = "${samples}" }
[[edges]]
from = "source"
to = "sink"
policy = "block"                   # block (lossless, credits) | drop (bounded queue)
```
Every error names the file, the key and what is wrong.  Node parameters are checked against
their kinds' declarations (stream.params) here, before any process starts.  A file and the
Python API (api.py) go through the same function, :func:`graph_from_tables`.
"""
from __future__ import annotations

import ipaddress
import re
import socket
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rram_lsm.stream.params import ConfigError, check_params, check_paths
from rram_lsm.stream.recovery import RecoveryConfig
from rram_lsm.stream.runtime import NodeSpec
from rram_lsm.stream.transport import POLICIES, EdgeConfig

from .registry import NODE_KINDS, is_known, node_class

_ARG = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
GRAPH_KEYS = {"name", "transport", "host", "allow_remote", "telemetry_interval_s", "restart",
              "energy_profiles", "description", "curve", "recovery", "hang_timeout_s"}
RECOVERY_KEYS = {"enabled", "max_unacked", "max_sample_bytes", "resend_after_s", "final_wait_s"}
NODE_KEYS = {"kind", "params", "bind", "address", "restart", "description", "host", "resources"}
EDGE_KEYS = {"from", "to", "policy", "window", "queue_msgs", "queue_bytes"}
RESTART_KEYS = {"policy", "max_restarts", "backoff_s", "backoff_max_s"}
RESTART_POLICIES = ("on-failure", "never")


class GraphError(ValueError):
    """A bad graph file; the message names the file and the key."""


@dataclass
class RestartPolicy:
    policy: str = "on-failure"
    max_restarts: int = 5
    backoff_s: float = 0.5
    backoff_max_s: float = 8.0


@dataclass
class Graph:
    name: str
    path: Path | None  # the graph file (None for a graph built in Python)
    nodes: dict[str, NodeSpec]
    restart: dict[str, RestartPolicy]
    args: dict[str, Any]
    telemetry_interval_s: float = 1.0
    hang_timeout_s: float = 15.0  # a node silent this long (after its first report) is killed
    transport: str = "ipc"
    sources: list[str] = field(default_factory=list)
    hosts: dict[str, str | None] = field(default_factory=dict)  # node -> host name (None: any)
    curve_keys: Path | None = None  # folder of key pairs when the graph uses CurveZMQ
    # node -> the Ray resources its actor asks for under `--cluster` (CPU, GPU or custom)
    resources: dict[str, dict[str, float]] = field(default_factory=dict)

    def local_nodes(self, host: str | None) -> list[str]:
        """Nodes this launcher runs: those on ``host`` (all nodes when no host is given)."""
        if host is None:
            return list(self.nodes)
        return [n for n, h in self.hosts.items() if h == host]


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``name:=value`` (ROS style) or ``name=value``; values are read as TOML literals."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition(":=") if ":=" in item else item.partition("=")
        if not sep or not key:
            raise GraphError(f"argument {item!r}: expected name:=value")
        try:
            out[key] = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            out[key] = raw  # a bare word is a string
    return out


def read_graph_tables(path: Path, seen: tuple[Path, ...] = ()) -> dict:
    """A graph file's tables with its includes merged (this file wins); no validation."""
    path = path.resolve()
    if path in seen:
        raise GraphError(f"{path}: include: cycle through {' -> '.join(map(str, seen))}")
    if not path.is_file():
        raise GraphError(f"{path}: graph file not found")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise GraphError(f"{path}: not valid TOML: {exc}") from None
    includes = data.pop("include", [])
    if not isinstance(includes, list) or not all(isinstance(i, str) for i in includes):
        raise GraphError(f"{path}: include: must be a list of file names")
    merged: dict = {}
    for inc in includes:
        _merge(merged, read_graph_tables(path.parent / inc, seen + (path,)))
    _merge(merged, data)
    return merged


def _merge(base: dict, top: dict) -> None:
    for key, value in top.items():
        if key == "edges":
            base.setdefault("edges", []).extend(value)
        elif key == "args":   # an argument is one value: a table argument replaces, whole
            base.setdefault("args", {}).update(value)
        elif isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value


def _substitute(value: Any, args: dict, where: str) -> Any:
    if isinstance(value, str):
        m = _ARG.fullmatch(value)
        if m:
            if m.group(1) not in args:
                raise GraphError(f"{where}: unknown argument ${{{m.group(1)}}}")
            return args[m.group(1)]

        def repl(mm: re.Match) -> str:
            if mm.group(1) not in args:
                raise GraphError(f"{where}: unknown argument ${{{mm.group(1)}}}")
            return str(args[mm.group(1)])
        return _ARG.sub(repl, value)
    if isinstance(value, dict):   # keys too: a node's name or a bank's modality may be an argument
        return {str(_substitute(k, args, where)): _substitute(v, args, f"{where}.{k}")
                for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, args, f"{where}[{i}]") for i, v in enumerate(value)]
    return value


def _check_keys(table: Any, allowed: set, where: str) -> dict:
    if not isinstance(table, dict):
        raise GraphError(f"{where}: must be a table")
    unknown = set(table) - allowed
    if unknown:
        raise GraphError(f"{where}: unknown key(s) {sorted(unknown)}; allowed: {sorted(allowed)}")
    return table


def _restart(table: Any, where: str, default: RestartPolicy) -> RestartPolicy:
    if table is None:
        return default
    _check_keys(table, RESTART_KEYS, where)
    rp = RestartPolicy(**{**default.__dict__, **table})
    if rp.policy not in RESTART_POLICIES:
        raise GraphError(f"{where}.policy: {rp.policy!r} is not one of {RESTART_POLICIES}")
    if not isinstance(rp.max_restarts, int) or rp.max_restarts < 0:
        raise GraphError(f"{where}.max_restarts: must be an integer >= 0")
    for key in ("backoff_s", "backoff_max_s"):
        if not isinstance(getattr(rp, key), (int, float)) or getattr(rp, key) < 0:
            raise GraphError(f"{where}.{key}: must be a number >= 0")
    return rp


def free_tcp_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _is_loopback(endpoint: str) -> bool:
    if endpoint.startswith(("ipc://", "inproc://")):
        return True
    host = endpoint.split("://", 1)[-1].rsplit(":", 1)[0].strip("[]")
    if host in ("localhost",):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def load_graph(path: str | Path, overrides: dict[str, Any] | None = None,
               socket_dir: str | Path = "/tmp", host: str | None = None,
               check_files: bool = True) -> Graph:
    """Read, merge, substitute and validate a graph file into runnable node specs.

    ``host``: the nodes this invocation starts (None: all); only their paths are checked, and
    ``check_files=False`` checks none (a path that exists only where its node runs)."""
    path = Path(path)
    return graph_from_tables(read_graph_tables(path), str(path), overrides, socket_dir,
                             path=path, on_host=host, check_files=check_files)


def graph_from_tables(data: dict, f: str, overrides: dict[str, Any] | None = None,
                      socket_dir: str | Path = "/tmp", *, path: Path | None = None,
                      on_host: str | None = None, check_files: bool = True) -> Graph:
    """Validate a graph's tables (``graph``, ``args``, ``nodes``, ``edges``, as in a file)
    into runnable node specs; ``f`` names the graph in every error (its file, usually);
    relative key folders resolve beside ``path`` (or the working folder); ``on_host`` and
    ``check_files`` as in :func:`load_graph`."""
    unknown = set(data) - {"graph", "args", "nodes", "edges"}
    if unknown:
        raise GraphError(f"{f}: unknown top-level key(s) {sorted(unknown)}")
    args = dict(data.get("args", {}))
    for key in (overrides or {}):
        if key not in args:
            raise GraphError(f"{f}: args.{key}: no such argument (declared: {sorted(args)})")
    args.update(overrides or {})
    g = _check_keys(_substitute(data.get("graph", {}), args, f"{f}: graph"), GRAPH_KEYS, f"{f}: graph")
    transport = g.get("transport", "ipc")
    if transport not in ("ipc", "tcp"):
        raise GraphError(f"{f}: graph.transport: {transport!r} is not 'ipc' or 'tcp'")
    host = g.get("host", "127.0.0.1")
    allow_remote = bool(g.get("allow_remote", False))
    default_restart = _restart(g.get("restart"), f"{f}: graph.restart", RestartPolicy())
    interval = g.get("telemetry_interval_s", 1.0)
    if not isinstance(interval, (int, float)) or interval <= 0:
        raise GraphError(f"{f}: graph.telemetry_interval_s: must be a number > 0")
    hang = g.get("hang_timeout_s", max(15.0, 10 * float(interval)))
    if not isinstance(hang, (int, float)) or hang <= interval:
        raise GraphError(f"{f}: graph.hang_timeout_s: must be a number > telemetry_interval_s")
    profiles = g.get("energy_profiles", [])
    if not isinstance(profiles, list):
        raise GraphError(f"{f}: graph.energy_profiles: must be a list of profile names")

    nodes_raw = data.get("nodes", {})
    if not isinstance(nodes_raw, dict) or not nodes_raw:
        raise GraphError(f"{f}: nodes: the graph has no nodes")
    nodes_raw = {str(_substitute(n, args, f"{f}: nodes")): raw for n, raw in nodes_raw.items()}
    specs: dict[str, NodeSpec] = {}
    restarts: dict[str, RestartPolicy] = {}
    hosts: dict[str, str | None] = {}
    resources: dict[str, dict[str, float]] = {}
    for name, raw in nodes_raw.items():
        where = f"{f}: nodes.{name}"
        raw = _check_keys(_substitute(raw, args, where), NODE_KEYS, where)
        kind = raw.get("kind")
        if not isinstance(kind, str) or not is_known(kind):
            raise GraphError(f"{where}.kind: unknown node kind {kind!r}; known: {sorted(NODE_KINDS)}")
        params = raw.get("params", {})
        if not isinstance(params, dict):
            raise GraphError(f"{where}.params: must be a table")
        specs[name] = NodeSpec(name=name, kind=kind, params=params, bind=raw.get("bind"),
                               address=raw.get("address"),
                               telemetry_interval_s=float(interval), energy_profiles=list(profiles))
        restarts[name] = _restart(raw.get("restart"), f"{where}.restart", default_restart)
        hosts[name] = raw.get("host")
        if hosts[name] is not None and not isinstance(hosts[name], str):
            raise GraphError(f"{where}.host: must be a host name (string)")
        resources[name] = _resources(raw.get("resources", {}), f"{where}.resources")

    edges = data.get("edges", [])
    if not isinstance(edges, list):
        raise GraphError(f"{f}: edges: must be an array of tables ([[edges]])")
    incoming: dict[str, int] = {n: 0 for n in specs}
    for i, raw in enumerate(edges):
        where = f"{f}: edges[{i}]"
        raw = _check_keys(_substitute(raw, args, where), EDGE_KEYS, where)
        src, dst = raw.get("from"), raw.get("to")
        for key, node in (("from", src), ("to", dst)):
            if node not in specs:
                raise GraphError(f"{where}.{key}: no node named {node!r} (nodes: {sorted(specs)})")
        policy = raw.get("policy", "block")
        if policy not in POLICIES:
            raise GraphError(f"{where}.policy: {policy!r} is not one of {POLICIES}")
        incoming[dst] += 1
        if specs[dst].bind is None:
            specs[dst].bind = (f"ipc://{Path(socket_dir) / (dst + '.sock')}" if transport == "ipc"
                               else f"tcp://{host}:{free_tcp_port(host)}")
        try:
            cfg = EdgeConfig(name=f"{src}->{dst}", endpoint=specs[dst].address or specs[dst].bind, policy=policy,
                             **{k: raw[k] for k in ("window", "queue_msgs", "queue_bytes") if k in raw})
        except (TypeError, ValueError) as exc:
            raise GraphError(f"{where}: {exc}") from None
        specs[src].outputs.append(cfg)
    for name, spec in specs.items():
        spec.upstream = incoming[name]
        if spec.bind and not allow_remote and not _is_loopback(spec.bind):
            raise GraphError(f"{f}: nodes.{name}.bind: {spec.bind} is not a loopback address; "
                             "set graph.allow_remote = true (with CurveZMQ keys) to expose it")
    _check_node_params(specs, hosts, on_host, check_files, f)
    sources = [n for n, c in incoming.items() if c == 0]
    for name in sources:
        if not specs[name].outputs:
            raise GraphError(f"{f}: nodes.{name}: connected to nothing")
    _wire_recovery(specs, sources, g.get("recovery", {}), edges, f, transport, host, socket_dir)
    curve_keys = _wire_curve(specs, g.get("curve"), path.parent if path else Path.cwd(), f) \
        if "curve" in g else None
    if allow_remote and curve_keys is None:
        import warnings
        warnings.warn(f"{f}: graph.allow_remote without [graph.curve]: traffic is unauthenticated")
    return Graph(name=g.get("name", path.stem if path else "graph"), path=path, nodes=specs, restart=restarts,
                 args=args, telemetry_interval_s=float(interval), hang_timeout_s=float(hang),
                 transport=transport,
                 sources=sources, hosts=hosts, curve_keys=curve_keys, resources=resources)


def _resources(table: Any, where: str) -> dict[str, float]:
    """A node's Ray resources (``{ CPU = 1, camera = 1 }``): names to amounts >= 0; only a
    run on a Ray cluster (`--cluster`) reads them, to choose the machine its actor lands on."""
    if not isinstance(table, dict):
        raise GraphError(f"{where}: must be a table of Ray resource names and amounts, "
                         "e.g. { CPU = 1, camera = 1 }")
    for key, amount in table.items():
        if isinstance(amount, bool) or not isinstance(amount, (int, float)) or amount < 0:
            raise GraphError(f"{where}.{key}: must be a number >= 0 (got {amount!r})")
    return {str(k): float(v) for k, v in table.items()}


def _check_node_params(specs: dict[str, NodeSpec], hosts: dict[str, str | None],
                       on_host: str | None, check_files: bool, f: str) -> None:
    """Every node's parameters against its kind's declaration; the paths of the nodes this
    invocation starts must exist (outputs: be writable) here."""
    for name, spec in specs.items():
        where = f"{f}: nodes.{name}"
        local = on_host is None or hosts[name] == on_host
        try:
            cls = node_class(spec.kind)
        except ValueError as exc:
            if local or spec.kind in NODE_KINDS:
                raise GraphError(f"{where}.kind: {exc}") from None
            continue  # a user's own class may be installed only where its node runs
        try:
            check_params(cls, spec.params, f"{where}.params")
            if local and check_files:
                check_paths(cls, spec.params, f"{where}.params")
        except ConfigError as exc:
            raise GraphError(str(exc)) from None


def _wire_recovery(specs: dict[str, NodeSpec], sources: list[str], table: Any, edges: list, f: str,
                   transport: str, host: str, socket_dir) -> None:
    """Sources keep samples until every sink they reach acknowledges them (lossless graphs).

    On by default when every edge is `block`; live graphs with `drop` edges have no recovery
    unit.  ``[graph.recovery] enabled = false`` turns it off.
    """
    table = _check_keys(table, RECOVERY_KEYS, f"{f}: graph.recovery")
    lossless = all(e.policy == "block" for s in specs.values() for e in s.outputs)
    if not table.get("enabled", lossless):
        return
    opts = {k: v for k, v in table.items() if k != "enabled"}
    try:
        RecoveryConfig(**{k: v for k, v in opts.items() if k != "final_wait_s"})
    except (TypeError, ValueError) as exc:
        raise GraphError(f"{f}: graph.recovery: {exc}") from None
    by_endpoint = {s.address or s.bind: n for n, s in specs.items() if s.bind}
    for src in sources:
        reached, todo = set(), [src]
        while todo:
            for e in specs[todo.pop()].outputs:
                dst = by_endpoint[e.endpoint]
                if dst not in reached:
                    reached.add(dst)
                    todo.append(dst)
        sinks = sorted(n for n in reached if not specs[n].outputs)
        spec = specs[src]
        spec.ack_bind = (f"ipc://{Path(socket_dir) / (src + '.ack')}" if transport == "ipc"
                         else f"tcp://{host}:{free_tcp_port(host)}")
        spec.recovery, spec.n_ackers = opts, len(sinks)
        for sink in sinks:
            specs[sink].ack_to.append(spec.ack_bind)


def _wire_curve(specs: dict[str, NodeSpec], table: Any, base: Path, f: str) -> Path:
    """CurveZMQ on every socket: each node accepts only the keys of its upstream nodes (and,
    on a source's acknowledgement socket, the sinks it waits for)."""
    from rram_lsm.stream.security import public_key

    table = _check_keys(table, {"keys"}, f"{f}: graph.curve")
    if not isinstance(table.get("keys"), str):
        raise GraphError(f"{f}: graph.curve.keys: the folder of key pairs (made by `rram-lsm keys`) is required")
    keys = (base / table["keys"]).resolve()
    try:
        pub = {n: public_key(keys / f"{n}.key") for n in specs}
    except (FileNotFoundError, ValueError) as exc:
        raise GraphError(f"{f}: graph.curve.keys: {exc}") from None
    owner = {s.address or s.bind: n for n, s in specs.items() if s.bind}
    ack_owner = {s.ack_bind: n for n, s in specs.items() if s.ack_bind}
    for name, spec in specs.items():
        mine = spec.address or spec.bind
        allow = {pub[m] for m, s in specs.items() if any(e.endpoint == mine for e in s.outputs)}
        allow |= {pub[m] for m, s in specs.items() if spec.ack_bind and spec.ack_bind in s.ack_to}
        servers = {e.endpoint: pub[owner[e.endpoint]] for e in spec.outputs}
        servers.update({ep: pub[ack_owner[ep]] for ep in spec.ack_to})
        spec.curve = {"secret_file": str(keys / f"{name}.key_secret"), "allow": sorted(allow),
                      "servers": servers}
    return keys
