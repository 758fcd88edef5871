"""CurveZMQ for graphs that cross hosts: key pairs, an allow-list authenticator, socket setup.

Keys are ZeroMQ certificate files (``NAME.key`` public, ``NAME.key_secret`` secret) made by
``rram-lsm keys``; they are parsed as text, never executed.  A node's bound sockets (its
input, its acknowledgement socket) accept only the public keys the graph allows; a refused
peer is logged and counted.
"""
from __future__ import annotations

import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator


@dataclass
class CurveConfig:
    """Plain-data Curve settings for one process.

    ``secret_file``: this process's certificate (``NAME.key_secret``); ``allow``: z85 public
    keys accepted on bound sockets; ``servers``: endpoint -> z85 public key of the peer bound
    there (for sockets this process connects).
    """

    secret_file: str
    allow: list[str] = field(default_factory=list)
    servers: dict[str, str] = field(default_factory=dict)


def make_keypair(folder: str | Path, name: str) -> tuple[Path, Path]:
    """Create ``folder/NAME.key`` and ``folder/NAME.key_secret`` (refuses to overwrite)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if (folder / f"{name}.key_secret").exists():
        raise FileExistsError(f"{folder / (name + '.key_secret')} exists; remove it to make a new pair")
    pub, sec = zmq.auth.create_certificates(str(folder), name)
    Path(sec).chmod(0o600)
    return Path(pub), Path(sec)


def public_key(path: str | Path) -> str:
    """The z85 public key in a certificate file (public or secret)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"key file {path} not found (make keys with `rram-lsm keys`)")
    try:
        pub, _ = zmq.auth.load_certificate(str(path))
    except Exception as exc:
        raise ValueError(f"key file {path}: not a ZeroMQ certificate ({exc})") from None
    return pub.decode()


def load_secret(path: str | Path) -> tuple[bytes, bytes]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"secret key file {path} not found (make keys with `rram-lsm keys`)")
    try:
        pub, sec = zmq.auth.load_certificate(str(path))
    except Exception as exc:
        raise ValueError(f"key file {path}: not a ZeroMQ certificate ({exc})") from None
    if not sec:
        raise ValueError(f"key file {path}: holds no secret key (use the .key_secret file)")
    return pub, sec


class _AllowList:
    def __init__(self, allowed: set[bytes], refused: Counter, name: str):
        self.allowed, self.refused, self.name = allowed, refused, name

    def callback(self, domain: str, key: bytes) -> bool:
        if key in self.allowed:
            return True
        self.refused[key.decode(errors="replace")] += 1
        print(f"[{self.name}] refused a peer with unknown public key {key.decode(errors='replace')}",
              file=sys.stderr, flush=True)
        return False


class CurveContext:
    """Applies one process's Curve settings to its sockets and runs its authenticator."""

    def __init__(self, ctx: zmq.Context, cfg: CurveConfig, name: str):
        self.cfg = cfg
        self.public, self.secret = load_secret(cfg.secret_file)
        self.refused: Counter = Counter()
        self.auth = ThreadAuthenticator(ctx)
        self.auth.start()
        self.auth.configure_curve_callback(
            domain="*", credentials_provider=_AllowList({k.encode() for k in cfg.allow}, self.refused, name))

    def server(self, sock: zmq.Socket) -> None:
        sock.curve_secretkey = self.secret
        sock.curve_publickey = self.public
        sock.curve_server = True

    def client(self, sock: zmq.Socket, endpoint: str) -> None:
        server_key = self.cfg.servers.get(endpoint)
        if server_key is None:
            raise ValueError(f"curve: no server public key known for {endpoint}")
        sock.curve_secretkey = self.secret
        sock.curve_publickey = self.public
        sock.curve_serverkey = server_key.encode()

    def stop(self) -> None:
        self.auth.stop()
