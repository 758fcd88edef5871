"""A live terminal table of node telemetry (rich), and the same table as plain text."""
from __future__ import annotations

import threading
import time

from rich.table import Table

COLUMNS = ("node", "kind", "restarts", "msgs in", "events/s", "out", "rejected", "dropped",
           "p50 µs", "p99 µs", "age p50 ms", "queue", "cpu s", "RSS MB", "energy/inf")


def energy_per_inference(r: dict) -> dict[str, float]:
    """Energy per inference (pJ) of one node's report on each energy profile, in the
    report's profile order (inferences: the node's gauge, else its messages out)."""
    e = r.get("energy_pj") or {}
    inferences = max(1, int((r.get("gauges") or {}).get("inferences", 0)) or r.get("msgs_out", 0))
    return {name: v.get("total", 0.0) / inferences for name, v in e.items() if isinstance(v, dict)}


def _energy_cell(r: dict) -> str:
    """Energy per inference on the first profile, and the ratio of the second to the first."""
    totals = list(energy_per_inference(r).values())
    if not totals:
        return "-"
    cell = f"{totals[0] / 1e3:.1f} nJ"
    if len(totals) > 1 and totals[0] > 0:
        cell += f" ({totals[1] / totals[0]:.0f}x)"
    return cell


def dropped_events(r: dict) -> int:
    """Events a node dropped on its output edges."""
    return sum(sum(e.get("events_dropped", {}).values()) for e in r.get("edges", {}).values())


def summary_lines(latest: dict[str, dict], seen=(), unseen=(),
                  classifiers: dict[str, str] | None = None) -> list[str]:
    """The accuracy line of every classifier (seen / unseen with its exact interval / H /
    chance; labelled with its pair from ``classifiers``, node -> pair, when there are
    several) and energy per inference, RRAM vs digital, with the pipeline, reservoir-only and
    per-node-kind ratios beside the published ones."""
    from .accuracy import from_gauges
    from .report import energy_lines, energy_summary

    lines = []
    for node, r in sorted(latest.items()):
        g = r.get("gauges") or {}
        if "seen_n" in g:
            label = (classifiers or {}).get(node)
            named = f" {label}" if label and len(classifiers or {}) > 1 else ""
            lines.append(f"accuracy{named}: " + from_gauges(g, seen, unseen).line())
    lines += energy_lines(energy_summary(latest))
    return lines


class Dashboard:
    """Keeps the latest report per node and derives rates between reports.

    The launcher's thread updates it; the web dashboard's threads read it (:meth:`state`),
    so both views show the same telemetry; a lock keeps a read whole."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.latest: dict[str, dict] = {}
        self.rates: dict[str, float] = {}
        self.restarts: dict[str, int] = {}
        self.events: list[str] = []
        self.seen: tuple[int, ...] = ()
        self.unseen: tuple[int, ...] = ()
        self.classifiers: dict[str, str] = {}   # classifier node -> its pair

    def update(self, report: dict) -> None:
        with self.lock:
            self._update(report)

    def _update(self, report: dict) -> None:
        name = report.get("node", "?")
        prev = self.latest.get(name)
        if prev and prev.get("epoch") == report.get("epoch"):
            dt = report.get("uptime_s", 0) - prev.get("uptime_s", 0)
            if dt > 0:
                de = report.get("events_in", 0) - prev.get("events_in", 0)
                if not report.get("events_in"):
                    de = report.get("events_out", 0) - prev.get("events_out", 0)
                self.rates[name] = de / dt
        self.latest[name] = report

    def on_event(self, ev: dict) -> None:
        with self.lock:
            self._on_event(ev)

    def _on_event(self, ev: dict) -> None:
        if ev["event"] in ("crashed", "restarted"):
            self.restarts[ev["node"]] = max(self.restarts.get(ev["node"], 0), ev.get("attempt", 0))
        if ev["event"] not in ("started",):
            self.events.append(f"{time.strftime('%H:%M:%S')} {ev['event']} "
                               + " ".join(f"{k}={v}" for k, v in ev.items() if k not in ("event", "time")))
            self.events = self.events[-5:]

    def rows(self) -> list[tuple[str, ...]]:
        out = []
        for name, r in sorted(self.latest.items()):
            lat, age = r.get("latency_us", {}), r.get("age_ms", {})
            dropped = dropped_events(r)
            out.append((
                name, r.get("kind", ""), str(self.restarts.get(name, 0)), str(r.get("msgs_in", 0)),
                f"{self.rates.get(name, 0.0):,.0f}", str(r.get("msgs_out", 0)),
                str(r.get("rejected_total", 0)), str(dropped),
                f"{lat.get('p50', 0):.0f}" if lat.get("n") else "-",
                f"{lat.get('p99', 0):.0f}" if lat.get("n") else "-",
                f"{age.get('p50', 0):.1f}" if age.get("n") else "-",
                str(r.get("queue_depth", 0)), f"{r.get('cpu_s', 0):.1f}",
                f"{r.get('rss_bytes', 0) / 2**20:.0f}", _energy_cell(r),
            ))
        return out

    def table(self, title: str = "rram-lsm") -> Table:
        lines = summary_lines(self.latest, self.seen, self.unseen, self.classifiers) + self.events
        t = Table(title=title, caption="\n".join(lines) or None)
        for c in COLUMNS:
            t.add_column(c, justify="left" if c in ("node", "kind") else "right")
        for row in self.rows():
            t.add_row(*row)
        return t
