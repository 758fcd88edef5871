"""The live web dashboard (``--web [PORT]`` on ``run``, ``demo`` and ``live``).

A ``ThreadingHTTPServer`` on a thread of the launcher process serves one page (plain HTML,
canvas and a little JavaScript, shipped in ``launch/webui/``: no network access, no CDN)
and ``/api/state``, a JSON snapshot of the same :class:`~.dashboard.Dashboard` the terminal
table draws: per-node rates, latency, drops, queue depth and energy per inference on each
profile, the running accuracy (seen / unseen / H beside chance), the sources' preview frames
(``stream.preview``, carried in their telemetry), each reservoir's per-neuron rates of its
last sample and the classifier's last predictions.  The
page polls it twice a second.

It listens on 127.0.0.1 unless ``--web-host`` says otherwise, and off loopback only with
``--allow-remote``; requests naming another host (DNS rebinding) are refused.
"""
from __future__ import annotations

import argparse
import json
import math
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable

from .accuracy import from_gauges
from .binds import add_allow_remote, check_listen_host
from .dashboard import Dashboard, dropped_events, energy_per_inference, summary_lines

DEFAULT_PORT = 8787
STATIC = Path(__file__).resolve().parent / "webui"
FILES = {"/": ("index.html", "text/html; charset=utf-8"),
         "/index.html": ("index.html", "text/html; charset=utf-8"),
         "/dashboard.js": ("dashboard.js", "text/javascript; charset=utf-8"),
         "/dashboard.css": ("dashboard.css", "text/css; charset=utf-8")}
LOCAL_NAMES = {"127.0.0.1", "localhost", "::1"}


def port(text: str) -> int:
    """``--web``'s PORT: 1-65535, or 0 for any free port."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(
            f"--web takes a port 0-65535 (0: any free one), got {text!r}; "
            "give positional arguments before --web, or write --web=PORT")
    return value


def add_web_args(parser) -> None:
    """``--web [PORT]``, ``--web-host`` and ``--allow-remote`` on a command's parser."""
    parser.add_argument("--web", type=port, nargs="?", const=DEFAULT_PORT, default=None,
                        metavar="PORT",
                        help=f"serve the live web dashboard on http://127.0.0.1:PORT (default "
                             f"port {DEFAULT_PORT}; 0 = any free port); docs/dashboard.md")
    parser.add_argument("--web-host", default="127.0.0.1", metavar="HOST",
                        help="address the web dashboard listens on (default 127.0.0.1; off "
                             "loopback needs --allow-remote)")
    add_allow_remote(parser)


def check_web(web_port: int | None, host: str = "127.0.0.1", allow_remote: bool = False) -> None:
    """Fail before any work starts: a bad port, a host off loopback without
    ``--allow-remote``, or an address that cannot be listened on now."""
    if web_port is None:
        return
    if not 0 <= int(web_port) <= 65535:
        raise ValueError(f"--web: port must be 0-65535, got {web_port}")
    check_listen_host(host, "--web-host", allow_remote)
    try:
        info = socket.getaddrinfo(host, int(web_port), type=socket.SOCK_STREAM)[0]
        with socket.socket(info[0], socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(info[4])
    except OSError as exc:
        raise ValueError(f"--web: cannot listen on {host}:{web_port}: "
                         f"{exc.strerror or exc}") from None


def node_row(name: str, r: dict, rate: float, restarts: int) -> dict:
    """One node's line of the dashboard, as numbers (None where nothing was measured)."""
    lat, age = r.get("latency_us") or {}, r.get("age_ms") or {}
    return {"node": name, "kind": r.get("kind", ""), "restarts": restarts,
            "msgs_in": r.get("msgs_in", 0), "msgs_out": r.get("msgs_out", 0),
            "events_per_s": rate, "rejected": r.get("rejected_total", 0),
            "dropped": dropped_events(r),
            "latency_p50_us": lat.get("p50") if lat.get("n") else None,
            "latency_p99_us": lat.get("p99") if lat.get("n") else None,
            "age_p50_ms": age.get("p50") if age.get("n") else None,
            "queue": r.get("queue_depth", 0), "cpu_s": r.get("cpu_s", 0.0),
            "rss_mb": round(r.get("rss_bytes", 0) / 2**20, 1),
            "energy_per_inference_pj": energy_per_inference(r),
            "uptime_s": r.get("uptime_s"), "final": bool(r.get("final"))}


def state(dash: Dashboard, title: str) -> dict:
    """The page's JSON: everything it shows, read from ``dash`` under its lock."""
    with dash.lock:
        latest, rates = dict(dash.latest), dict(dash.rates)
        restarts, events = dict(dash.restarts), list(dash.events)
        seen, unseen, classifiers = dash.seen, dash.unseen, dict(dash.classifiers)
    nodes = [node_row(n, r, rates.get(n, 0.0), restarts.get(n, 0)) for n, r in sorted(latest.items())]
    profiles = list(dict.fromkeys(p for row in nodes for p in row["energy_per_inference_pj"]))
    accuracy = None
    gauges = next(((n, r["gauges"]) for n, r in sorted(latest.items())
                   if "seen_n" in (r.get("gauges") or {})), None)
    if gauges is not None:
        acc = from_gauges(gauges[1], seen, unseen)
        accuracy = {"node": gauges[0], "line": acc.line(), **acc.as_dict()}
    sources, reservoirs, predictions = [], [], []
    for n, r in sorted(latest.items()):
        view = r.get("view") or {}
        if "frames" in view:
            sources.append({"node": n, "kind": r.get("kind", ""), "report": r.get("uptime_s"),
                            "frames": view["frames"]})
        if "activity" in view:
            reservoirs.append({"node": n, "activity": view["activity"]})
        predictions += [dict(p, node=n) for p in view.get("predictions", ())]
    return {"title": title, "time": time.time(), "nodes": nodes, "profiles": profiles,
            "accuracy": accuracy, "sources": sources, "reservoirs": reservoirs, "predictions": predictions,
            "summary": summary_lines(latest, seen, unseen, classifiers), "events": events}


def _finite(obj):
    """``obj`` with NaN and infinities as None (JSON has neither)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


class _Handler(BaseHTTPRequestHandler):
    server: "_Server"

    def log_message(self, format, *args) -> None:  # noqa: A002 - http.server's signature
        pass  # the terminal belongs to the live table

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        host = (self.headers.get("Host") or "").rsplit(":", 1)[0].strip("[]")
        if not self.server.allow_remote and host not in LOCAL_NAMES | {self.server.host}:
            self._send(403, "text/plain", b"forbidden: this dashboard answers to its own address only\n")
            return
        path = self.path.split("?", 1)[0]
        if path == "/api/state":
            body = json.dumps(_finite(state(self.server.dash, self.server.title)),
                              allow_nan=False, default=str).encode()
            self._send(200, "application/json", body)
        elif path in FILES:
            name, ctype = FILES[path]
            self._send(200, ctype, (STATIC / name).read_bytes())
        else:
            self._send(404, "text/plain", b"not found\n")

    def _send(self, code: int, ctype: str, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()
        self.wfile.write(body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    dash: Dashboard
    title: str
    host: str
    allow_remote: bool


class _Server6(_Server):
    address_family = socket.AF_INET6


class WebDashboard:
    """The page and its JSON, served on a daemon thread until :meth:`close`."""

    def __init__(self, dash: Dashboard, host: str = "127.0.0.1", port: int = DEFAULT_PORT,
                 title: str = "rram-lsm", allow_remote: bool = False):
        check_listen_host(host, "--web-host", allow_remote)
        server = _Server6 if ":" in host else _Server
        try:
            self.httpd = server((host, int(port)), _Handler)
        except OSError as exc:
            raise ValueError(f"--web: cannot listen on {host}:{port}: {exc.strerror or exc}") from None
        self.httpd.dash, self.httpd.title = dash, title
        self.httpd.host, self.httpd.allow_remote = host, allow_remote
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="web-dashboard",
                                       daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{f'[{host}]' if ':' in host else host}:{port}/"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def start_web(dash: Dashboard, web_port: int | None, host: str, allow_remote: bool,
              title: str, log: Callable[[str], None] = print) -> WebDashboard | None:
    """The web dashboard of ``dash`` when ``--web`` was given (its URL logged), else None."""
    if web_port is None:
        return None
    web = WebDashboard(dash, host, web_port, title, allow_remote)
    log(f"web dashboard: {web.url}")
    return web
