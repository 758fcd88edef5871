"""Prometheus endpoint (``--metrics-port``, ``--metrics-host``) for the nodes' telemetry, by
Prometheus's conventions: running counts are counters named ``*_total``, latency and age are
histograms in seconds, one family per quantity labelled by ``node`` (and ``edge``, ``reason``
...), gauges only for what goes up and down.  docs/metrics.md lists every name.

A custom collector renders the latest telemetry at scrape time (the way exporters of another
system's counts are written).  A node that restarts starts its counts again, so each family
sums a node's processes (epochs): the exported counters never go down.  Needs the optional
package ``prometheus-client``; the endpoint binds loopback unless ``--allow-remote``.
"""
from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass
from typing import Callable, Iterable

from .binds import add_allow_remote, host_is_loopback

PREFIX = "rram_lsm_"
COUNTER, GAUGE, HISTOGRAM = "counter", "gauge", "histogram"


@dataclass(frozen=True)
class Family:
    """One metric family: its name (without ``_total``), type, labels after ``node``, meaning,
    and how to read its samples from a report: ``values(report)`` -> [(label values, value)]
    (for a histogram the value is a latency summary, in ``per_second`` units per second)."""

    name: str
    type: str
    labels: tuple[str, ...]
    doc: str
    values: Callable[[dict], Iterable[tuple[tuple, object]]]
    per_second: float = 1.0

    @property
    def exported(self) -> str:
        return PREFIX + self.name + ("_total" if self.type == COUNTER else "")


def _one(key: str):
    return lambda r: [((), r[key])] if _is_num(r.get(key)) else []


def _per(key: str):
    """A ``{label: count}`` field as one sample per label."""
    return lambda r: [((str(k),), v) for k, v in (r.get(key) or {}).items() if _is_num(v)]


def _edge(key: str):
    return lambda r: [((str(e),), s[key]) for e, s in (r.get("edges") or {}).items()
                      if isinstance(s, dict) and _is_num(s.get(key))]


def _sub(table: str, key: str):
    return lambda r: ([((), r[table][key])] if isinstance(r.get(table), dict)
                      and _is_num(r[table].get(key)) else [])


def _is_num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _edge_events_dropped(r: dict):
    return [((str(e), str(why)), n) for e, s in (r.get("edges") or {}).items() if isinstance(s, dict)
            for why, n in (s.get("events_dropped") or {}).items() if _is_num(n)]


def _energy(r: dict):
    return [((str(p),), e["total"] / 1e12) for p, e in (r.get("energy_pj") or {}).items()
            if isinstance(e, dict) and _is_num(e.get("total"))]


FAMILIES = (
    # counters: running counts since start, summed over a node's restarts
    Family("messages_received", COUNTER, (), "messages received (data and control)", _one("msgs_in")),
    Family("events_received", COUNTER, (), "events received in data messages", _one("events_in")),
    Family("messages_consumed", COUNTER, (), "received messages the node processed", _one("consumed")),
    Family("messages_rejected", COUNTER, ("reason",), "received messages refused (bad, foreign, "
           "or the node raised), by reason", _per("rejected")),
    Family("messages_dropped", COUNTER, ("reason",), "received messages dropped on arrival, by "
           "reason (e.g. the tail of a sample begun before a restart)", _per("dropped_in")),
    Family("control_messages_received", COUNTER, ("control",), "control messages received, by "
           "control", _per("controls_in")),
    Family("messages_lost_upstream", COUNTER, (), "gaps in the upstream senders' sequence numbers",
           _one("lost_upstream")),
    Family("messages_sent", COUNTER, (), "messages the node emitted", _one("msgs_out")),
    Family("events_sent", COUNTER, (), "events in the messages the node emitted", _one("events_out")),
    Family("edge_messages_offered", COUNTER, ("edge",), "messages handed to an output edge",
           _edge("offered")),
    Family("edge_messages_sent", COUNTER, ("edge",), "messages put on an output edge's wire",
           _edge("sent")),
    Family("edge_messages_dropped", COUNTER, ("edge",), "messages an output edge dropped (drop "
           "policy, or undelivered at shutdown)", _edge("dropped")),
    Family("edge_events_sent", COUNTER, ("edge",), "events sent on an output edge", _edge("events_sent")),
    Family("edge_events_dropped", COUNTER, ("edge", "reason"), "events an output edge dropped, by "
           "reason", _edge_events_dropped),
    Family("edge_credit_waits", COUNTER, ("edge",), "times a block edge waited for the receiver's "
           "credit", _edge("credit_waits")),
    Family("edge_bad_grants", COUNTER, ("edge",), "malformed credit grants from the receiver, "
           "ignored", _edge("bad_grants")),
    Family("samples_resent", COUNTER, (), "samples a source re-sent after a restart downstream "
           "(recovery)", _sub("recovery", "resent_samples")),
    Family("samples_acknowledged", COUNTER, (), "samples a source was told are committed by every "
           "sink", _sub("recovery", "acked")),
    Family("stale_acknowledgements", COUNTER, (), "acknowledgements for samples a source no "
           "longer keeps", _sub("recovery", "stale_acks")),
    Family("acknowledgements_sent", COUNTER, (), "acknowledgements a sink sent to sources",
           _one("acks_sent")),
    Family("auth_refused", COUNTER, (), "connections CurveZMQ refused", _one("auth_refused")),
    Family("operations", COUNTER, ("op",), "operation counts of the energy vocabulary (DESIGN.md)",
           _per("ops")),
    Family("energy_joules", COUNTER, ("profile",), "energy of the operation counts on each energy "
           "profile", _energy),
    Family("cpu_seconds", COUNTER, (), "CPU time of the node's process", _one("cpu_s")),
    # histograms: cumulative buckets since start, in seconds
    Family("processing_latency_seconds", HISTOGRAM, (), "time the node spent on one message",
           lambda r: [((), r.get("latency_us"))], 1e6),
    Family("sample_age_seconds", HISTOGRAM, (), "age of arriving data since its first event "
           "entered the graph (origin_ns)", lambda r: [((), r.get("age_ms"))], 1e3),
    # gauges: values that go up and down (latest report of the node's current process)
    Family("queue_depth", GAUGE, (), "messages queued on the node's output edges", _one("queue_depth")),
    Family("edge_queue_depth", GAUGE, ("edge",), "messages queued on an output edge", _edge("queue")),
    Family("edge_max_queue_depth", GAUGE, ("edge",), "the most messages an output edge has queued",
           _edge("max_queue")),
    Family("samples_unacknowledged", GAUGE, (), "samples a source keeps until every sink commits "
           "them", _sub("recovery", "unacked")),
    Family("events_per_second", GAUGE, (), "events received per second between the last two "
           "reports (sent, for a source)", _one("_events_per_s")),
    Family("resident_memory_bytes", GAUGE, (), "resident memory of the node's process", _one("rss_bytes")),
    Family("uptime_seconds", GAUGE, (), "time since the node's process started", _one("uptime_s")),
    Family("node_gauge", GAUGE, ("name",), "the node kind's own values (reservoir health, "
           "running accuracy counts, records written ...), by name", _per("gauges")),
)
# Families the launcher's events feed (not a node's report).
RESTARTS = Family("node_restarts", COUNTER, (), "times the launcher restarted the node", lambda r: [])
INFO = Family("node_info", GAUGE, ("kind",), "1 for every node, labelled with its kind", lambda r: [])
ALL_FAMILIES = FAMILIES + (RESTARTS, INFO)


def _summed(reports: Iterable[dict], fam: Family) -> dict[tuple, object]:
    """A counter's or histogram's samples summed over a node's processes."""
    out: dict[tuple, object] = {}
    for r in reports:
        for labels, v in fam.values(r):
            if fam.type == HISTOGRAM:
                h = _histogram(v, fam.per_second)
                if h is not None:
                    out[labels] = h if labels not in out else _add(out[labels], h)
            else:
                out[labels] = out.get(labels, 0) + v
    return out


def _histogram(summary, per_second: float):
    """(upper bounds in s, per-bucket counts incl. +Inf, sum in s) of a latency summary."""
    if not isinstance(summary, dict) or not isinstance(summary.get("buckets"), list):
        return None
    return ([b / per_second for b in summary["le"]], list(summary["buckets"]),
            summary["sum"] / per_second)


def _add(a, b):
    if a[0] != b[0]:  # processes of different bucket bounds: keep the newer
        return b
    return a[0], [x + y for x, y in zip(a[1], b[1])], a[2] + b[2]


class TelemetryCollector:
    """Holds the nodes' latest reports (one per process) and renders them at each scrape."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.epochs: dict[str, dict] = {}   # node -> {epoch: latest report of that process}
        self.latest: dict[str, dict] = {}
        self.restarts: Counter[str] = Counter()

    def update(self, r: dict) -> None:
        node = str(r.get("node", "?"))
        with self.lock:
            r = dict(r)
            prev = self.latest.get(node)
            if prev and prev.get("epoch") == r.get("epoch"):
                dt = (r.get("uptime_s") or 0) - (prev.get("uptime_s") or 0)
                key = "events_in" if r.get("events_in") else "events_out"
                if dt > 0:
                    r["_events_per_s"] = ((r.get(key) or 0) - (prev.get(key) or 0)) / dt
                elif "_events_per_s" in prev:
                    r["_events_per_s"] = prev["_events_per_s"]
            self.epochs.setdefault(node, {})[r.get("epoch")] = r
            self.latest[node] = r

    def on_event(self, ev: dict) -> None:
        if ev.get("event") == "restarted":
            with self.lock:
                self.restarts[str(ev.get("node"))] += 1

    def collect(self):
        from prometheus_client.core import (CounterMetricFamily, GaugeMetricFamily,
                                            HistogramMetricFamily)

        kinds = {COUNTER: CounterMetricFamily, GAUGE: GaugeMetricFamily, HISTOGRAM: HistogramMetricFamily}
        with self.lock:
            epochs = {n: list(e.values()) for n, e in self.epochs.items()}
            latest, restarts = dict(self.latest), dict(self.restarts)
        for fam in FAMILIES:
            m = kinds[fam.type](PREFIX + fam.name, fam.doc, labels=("node",) + fam.labels)
            for node in sorted(latest):
                if fam.type == GAUGE:
                    samples = {labels: v for labels, v in fam.values(latest[node])}
                else:
                    samples = _summed(epochs[node], fam)
                for labels, v in sorted(samples.items()):
                    if fam.type == HISTOGRAM:
                        bounds, counts, total = v
                        cum = [sum(counts[:i + 1]) for i in range(len(counts))]
                        buckets = [(repr(float(b)), c) for b, c in zip(bounds, cum)]
                        m.add_metric((node,) + labels, buckets + [("+Inf", cum[-1])], total)
                    else:
                        m.add_metric((node,) + labels, float(v))
            yield m
        m = CounterMetricFamily(PREFIX + RESTARTS.name, RESTARTS.doc, labels=("node",))
        for node in sorted(set(latest) | set(restarts)):
            m.add_metric((node,), float(restarts.get(node, 0)))
        yield m
        m = GaugeMetricFamily(PREFIX + INFO.name, INFO.doc, labels=("node", "kind"))
        for node, r in sorted(latest.items()):
            m.add_metric((node, str(r.get("kind", ""))), 1.0)
        yield m


class MetricsServer:
    """The HTTP endpoint serving a :class:`TelemetryCollector` (``update`` it per report)."""

    def __init__(self, port: int, host: str = "127.0.0.1"):
        from prometheus_client import CollectorRegistry, start_http_server

        self.collector = TelemetryCollector()
        self.registry = CollectorRegistry()
        self.registry.register(self.collector)
        self.host, self.port = host, port
        self.server, self.thread = start_http_server(port, addr=host, registry=self.registry)

    def update(self, r: dict) -> None:
        self.collector.update(r)

    def update_many(self, reports: Iterable[dict]) -> None:
        for r in reports:
            self.update(r)

    def on_event(self, ev: dict) -> None:
        self.collector.on_event(ev)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def add_metrics_options(p) -> None:
    """``--metrics-port``, ``--metrics-host`` and ``--allow-remote`` on a command's parser."""
    p.add_argument("--metrics-port", type=int, default=None,
                   help="serve Prometheus metrics on this port (needs prometheus-client; "
                        "names in docs/metrics.md)")
    p.add_argument("--metrics-host", default="127.0.0.1",
                   help="address the metrics endpoint binds (default %(default)s; off loopback "
                        "needs --allow-remote)")
    add_allow_remote(p)


def check_metrics_bind(port: int, host: str = "127.0.0.1", allow_remote: bool = False) -> None:
    """Refuse a bad port, an off-loopback host without ``allow_remote``, a missing package."""
    if not 0 < int(port) < 65536:
        raise ValueError(f"--metrics-port must be 1-65535, got {port}")
    if not host_is_loopback(host) and not allow_remote:
        raise ValueError(f"--metrics-host {host} is not a loopback address: the metrics would be "
                         "served to other hosts' network; give --allow-remote to expose them")
    try:
        import prometheus_client  # noqa: F401
    except ImportError:
        raise ValueError("--metrics-port needs the optional package 'prometheus-client' "
                         "(pip install prometheus-client)") from None


def start_metrics(port: int, log: Callable[[str], None] = print, host: str = "127.0.0.1",
                  allow_remote: bool = False) -> MetricsServer:
    """Serve ``http://HOST:PORT/metrics`` (checked by :func:`check_metrics_bind` first)."""
    check_metrics_bind(port, host, allow_remote)
    server = MetricsServer(int(port), host)
    shown = f"[{host}]" if ":" in host else host
    log(f"metrics: http://{shown}:{port}/metrics"
        + ("" if host_is_loopback(host) else " (off loopback, no authentication)"))
    return server
