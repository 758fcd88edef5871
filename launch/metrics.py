"""Optional Prometheus endpoint (``--metrics-port``) exposing the nodes' telemetry.

Uses ``prometheus-client`` when it is installed; otherwise ``start_metrics`` raises a clear
error naming the package.  Gauges are labelled by node (and profile / pool where it applies).
"""
from __future__ import annotations

from typing import Callable, Iterable


class MetricsServer:
    """Prometheus gauges updated from telemetry reports."""

    def __init__(self, port: int):
        from prometheus_client import CollectorRegistry, Gauge, start_http_server

        self.registry = CollectorRegistry()
        g = lambda name, doc, labels: Gauge(f"rram_lsm_{name}", doc, labels, registry=self.registry)
        self.msgs_in = g("messages_in", "messages received", ["node"])
        self.msgs_out = g("messages_out", "messages sent", ["node"])
        self.latency = g("latency_us", "processing latency per message (µs)", ["node", "quantile"])
        self.dropped = g("events_dropped", "events dropped on the node's output edges", ["node"])
        self.energy = g("energy_pj", "energy so far from op counts x profile (pJ)", ["node", "profile"])
        self.gauge = g("gauge", "node gauges (reservoir health, accuracy counts...)", ["node", "name"])
        self.port = port
        start_http_server(port, addr="127.0.0.1", registry=self.registry)

    def update(self, r: dict) -> None:
        node = str(r.get("node", "?"))
        self.msgs_in.labels(node).set(r.get("msgs_in", 0))
        self.msgs_out.labels(node).set(r.get("msgs_out", 0))
        for q in ("p50", "p99", "max"):
            v = (r.get("latency_us") or {}).get(q)
            if v is not None:
                self.latency.labels(node, q).set(v)
        self.dropped.labels(node).set(sum(sum((e.get("events_dropped") or {}).values())
                                          for e in (r.get("edges") or {}).values()))
        for prof, e in (r.get("energy_pj") or {}).items():
            if isinstance(e, dict):
                self.energy.labels(node, prof).set(e.get("total", 0.0))
        for k, v in (r.get("gauges") or {}).items():
            if isinstance(v, (int, float)):
                self.gauge.labels(node, k).set(v)

    def update_many(self, reports: Iterable[dict]) -> None:
        for r in reports:
            self.update(r)


def start_metrics(port: int, log: Callable[[str], None] = print) -> MetricsServer:
    """Serve ``http://127.0.0.1:PORT/metrics``; a clear error if the package is missing."""
    if not 0 < int(port) < 65536:
        raise ValueError(f"--metrics-port must be 1-65535, got {port}")
    try:
        import prometheus_client  # noqa: F401
    except ImportError:
        raise ValueError("--metrics-port needs the optional package 'prometheus-client' "
                         "(pip install prometheus-client)") from None
    server = MetricsServer(int(port))
    log(f"metrics: http://127.0.0.1:{port}/metrics")
    return server
