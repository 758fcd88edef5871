"""Bind checks before any process starts: loopback-only by default, no endpoint bound twice,
no local port or ipc socket already in use.

A graph's own check (``graph.py``) refuses non-loopback binds in graph files; this module
holds the rule itself (:func:`is_loopback`, also used by ``rram-lsm node``) and the checks
that need the machine (:func:`check_binds`, run by the launcher for the nodes it starts).
"""
from __future__ import annotations

import errno
import ipaddress
import os
import shutil
import socket
import stat
from pathlib import Path

from rram_lsm.stream.runtime import NodeSpec


class BindError(ValueError):
    """An endpoint that cannot be bound; the message names the node and the endpoint."""


def _host(endpoint: str) -> str:
    return endpoint.split("://", 1)[-1].rsplit(":", 1)[0].strip("[]")


def is_loopback(endpoint: str) -> bool:
    """True for ipc/inproc endpoints and tcp on a loopback address (or the ``lo`` interface);
    False for ``*``, ``0.0.0.0``, other addresses and interface names."""
    if endpoint.startswith(("ipc://", "inproc://")):
        return True
    host = _host(endpoint)
    if host in ("localhost", "lo"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def host_is_loopback(host: str) -> bool:
    """:func:`is_loopback` for a bare host or address (an HTTP endpoint's bind); the empty
    host (every interface) is not."""
    return bool(host) and is_loopback(f"tcp://[{host}]:0")


ALLOW_REMOTE_HELP = ("let this command's servers (--web-host, --metrics-host) listen off loopback, "
                     "where anyone on the network can read them without authentication")


def add_allow_remote(parser) -> None:
    """``--allow-remote`` on ``parser``, once: the one flag for every off-loopback listener
    of a command (several options may ask for it)."""
    if "--allow-remote" not in parser._option_string_actions:
        parser.add_argument("--allow-remote", action="store_true", help=ALLOW_REMOTE_HELP)


def check_listen_host(host: str, option: str, allow_remote: bool) -> None:
    """Refuse a server address off loopback unless ``--allow-remote`` was given."""
    if not host:
        raise ValueError(f"{option} needs a host name or address (default 127.0.0.1)")
    if not allow_remote and not host_is_loopback(host):
        raise ValueError(f"{option} {host}: not a loopback address, so anyone on the network "
                         f"could read it; add --allow-remote to listen there anyway")


def node_binds(spec: NodeSpec) -> list[tuple[str, str]]:
    """(what, endpoint) for every endpoint ``spec``'s process binds."""
    out = []
    if spec.bind:
        out.append(("input", spec.bind))
    if spec.ack_bind:
        out.append(("acknowledgement socket", spec.ack_bind))
    return out


def _tcp_in_use(endpoint: str) -> str | None:
    """Why a tcp endpoint on this machine cannot be bound now, or None (port 0/``*`` skipped)."""
    host, _, port = endpoint.split("://", 1)[1].rpartition(":")
    host = host.strip("[]")
    if not port.isdigit() or int(port) == 0 or host in ("*", ""):
        return None
    try:
        info = socket.getaddrinfo(host, int(port), type=socket.SOCK_STREAM)[0]
    except (socket.gaierror, UnicodeError):
        return None  # an interface name or a name this host cannot resolve: ZeroMQ decides
    with socket.socket(info[0], socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as ZeroMQ does
        try:
            s.bind(info[4])
        except OSError as exc:
            if exc.errno == errno.EADDRNOTAVAIL:
                return None  # an address of another host (a remote half of the graph)
            return os.strerror(exc.errno) if exc.errno else str(exc)
    return None


def _ipc_in_use(endpoint: str) -> str | None:
    """An ipc path where a process is listening (ZeroMQ would silently take it over)."""
    path = endpoint.split("://", 1)[1]
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None
    if not stat.S_ISSOCK(mode):
        return "the path exists and is not a socket"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        try:
            s.connect(path)
        except OSError:
            return None  # a stale socket file left by a dead process: binding replaces it
    return "another process is listening on it"


def check_binds(specs: dict[str, NodeSpec], local: list[str], hosts: dict | None = None) -> None:
    """Raise :class:`BindError` naming every node and endpoint that cannot be bound: two
    nodes of one host on one endpoint, or (for the nodes in ``local``, which this machine
    starts) a tcp port or ipc socket already in use."""
    problems, seen = [], {}
    for name, spec in specs.items():
        for what, ep in node_binds(spec):
            key = ((hosts or {}).get(name), ep)
            if key in seen and not ep.endswith(":0"):
                problems.append(f"nodes {seen[key]!r} and {name!r} both bind {ep}")
            seen.setdefault(key, name)
            if name not in local:
                continue
            why = _tcp_in_use(ep) if ep.startswith("tcp://") else _ipc_in_use(ep) if ep.startswith("ipc://") else None
            if why:
                problems.append(f"node {name!r} cannot bind its {what} {ep}: {why}")
    if problems:
        raise BindError("; ".join(problems))


def private_dir(path: str | Path) -> Path:
    """Make ``path`` (an ipc socket folder) private to this user: mode 0700."""
    path = Path(path)
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.chmod(0o700)
    return path


def remove_stale_socket_dirs(parent: Path, prefix: str) -> list[Path]:
    """Remove this user's ipc socket folders whose launcher (``launcher.pid``) is dead: a
    SIGKILLed launcher cannot clean up, so the next run does (best effort)."""
    removed = []
    for d in parent.glob(prefix + "*"):
        try:
            if d.stat().st_uid != os.getuid() or not d.is_dir():
                continue
            pid = int((d / "launcher.pid").read_text())
        except (OSError, ValueError):
            continue
        try:
            os.kill(pid, 0)
            continue  # still running
        except ProcessLookupError:
            pass
        except PermissionError:
            continue
        shutil.rmtree(d, ignore_errors=True)
        removed.append(d)
    return removed
