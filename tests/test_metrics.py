"""The Prometheus endpoint by the book: `rram-lsm run --metrics-port` scraped over HTTP while a
real graph runs, parsed with prometheus_client's own parser; types, `_total` counters that
grow and equal the telemetry's counts, cumulative histogram buckets, documented names, and
the loopback rule."""
from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from graphs import chain
from rram_lsm.launch.cli import main
from rram_lsm.launch.graph import free_tcp_port
from rram_lsm.launch.metrics import ALL_FAMILIES, COUNTER, HISTOGRAM, PREFIX, MetricsServer

parser = pytest.importorskip("prometheus_client.parser")
ROOT = Path(__file__).resolve().parents[1]


def scrape(port: int) -> dict:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return {f.name: f for f in parser.text_string_to_metric_families(text)}


def value(fams: dict, sample: str, **labels) -> float | None:
    """One sample's value (the family is the sample's name less its suffix)."""
    for fam in fams.values():
        for s in fam.samples:
            if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
    return None


def _scrape_while_running(port: int, proc: subprocess.Popen, node: str, want: int) -> list[dict]:
    """Scrapes until ``want`` of them show ``node``'s count still growing (or the run ends)."""
    seen, last = [], None
    deadline = time.monotonic() + 60
    while proc.poll() is None and len(seen) < want and time.monotonic() < deadline:
        try:
            fams = scrape(port)
        except OSError:
            time.sleep(0.1)
            continue
        n = value(fams, PREFIX + "messages_received_total", node=node)
        if n and n != last:
            seen.append(fams)
            last = n
        time.sleep(0.15)
    return seen


def test_scraped_while_a_graph_runs(tmp_path):
    port = free_tcp_port()
    graph = tmp_path / "chain.toml"
    graph.write_text(chain(samples=6, messages=10, delay_ms=40, graph="telemetry_interval_s = 0.2"))
    proc = subprocess.Popen([sys.executable, "-m", "rram_lsm", "run", str(graph), "--no-dashboard",
                             "--run-dir", str(tmp_path / "run"), "--metrics-port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        scrapes = _scrape_while_running(port, proc, "mid", 2)
        out, _ = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, out
    assert f"metrics: http://127.0.0.1:{port}/metrics" in out
    assert len(scrapes) == 2, "the graph ended before two scrapes saw it run"
    reports = [r for r in map(json.loads, open(tmp_path / "run" / "telemetry.jsonl")) if "msgs_in" in r]
    first, second = scrapes
    for fams in scrapes:  # every family with its declared type and labels, no quantile labels
        for f in ALL_FAMILIES:
            assert fams[PREFIX + f.name].type == f.type, f.name
        labels = {k for fam in fams.values() for s in fam.samples for k in s.labels}
        assert not labels & {"quantile", "p50", "p99"}
    total = PREFIX + "messages_received_total"
    assert value(second, total, node="mid") > value(first, total, node="mid")
    assert value(second, PREFIX + "events_sent_total", node="src") >= value(first, PREFIX + "events_sent_total", node="src")
    for fams in scrapes:
        # the scraped counts are one telemetry report's counts, exactly
        n = value(fams, total, node="mid")
        match = [r for r in reports if r["node"] == "mid" and r["msgs_in"] == n]
        assert match, f"no report of 'mid' with msgs_in == {n}"
        r = match[0]
        assert value(fams, PREFIX + "events_received_total", node="mid") == r["events_in"]
        assert value(fams, PREFIX + "edge_messages_sent_total", node="mid", edge="mid->sink") == \
            r["edges"]["mid->sink"]["sent"]
        # histogram: cumulative buckets, +Inf = count = the telemetry's n, sum in seconds
        hist = PREFIX + "processing_latency_seconds"
        buckets = sorted((float(s.labels["le"]), s.value) for s in fams[hist].samples
                         if s.name == hist + "_bucket" and s.labels["node"] == "mid")
        counts = [c for _, c in buckets]
        assert counts == sorted(counts) and buckets[-1][0] == float("inf")
        assert counts[-1] == value(fams, hist + "_count", node="mid") == r["latency_us"]["n"]
        assert value(fams, hist + "_sum", node="mid") == pytest.approx(r["latency_us"]["sum"] / 1e6)
        assert len(buckets) == len(r["latency_us"]["le"]) + 1


def test_restarted_node_counts_add_up_and_gauges_are_the_latest():
    port = free_tcp_port()
    m = MetricsServer(port)
    try:
        base = {"node": "lsm", "kind": "lsm", "uptime_s": 1.0, "queue_depth": 3,
                "latency_us": {"n": 2, "le": [10, 100], "buckets": [1, 1, 0], "sum": 60.0},
                "energy_pj": {"rram_macro": {"total": 2.5e12}}}
        m.update({**base, "epoch": 1, "msgs_in": 7, "events_in": 70})
        m.update({**base, "epoch": 2, "msgs_in": 5, "events_in": 10, "queue_depth": 1})  # restarted
        m.on_event({"event": "restarted", "node": "lsm", "attempt": 1})
        fams = scrape(port)
    finally:
        m.close()
    assert value(fams, PREFIX + "messages_received_total", node="lsm") == 12
    assert value(fams, PREFIX + "energy_joules_total", node="lsm", profile="rram_macro") == 5.0
    assert value(fams, PREFIX + "processing_latency_seconds_bucket", node="lsm", le="0.0001") == 4
    assert value(fams, PREFIX + "processing_latency_seconds_count", node="lsm") == 4
    assert value(fams, PREFIX + "queue_depth", node="lsm") == 1
    assert value(fams, PREFIX + "node_restarts_total", node="lsm") == 1
    assert value(fams, PREFIX + "node_info", node="lsm", kind="lsm") == 1


def test_off_loopback_needs_allow_remote(tmp_path, capsys):
    graph = tmp_path / "chain.toml"
    graph.write_text(chain())
    port = str(free_tcp_port())
    code = main(["run", str(graph), "--metrics-port", port, "--metrics-host", "0.0.0.0",
                 "--run-dir", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert "--metrics-host 0.0.0.0 is not a loopback address" in err and "--allow-remote" in err
    assert not (tmp_path / "run").exists()  # refused before anything started
    from rram_lsm.launch.demo import DemoConfig
    from rram_lsm.launch.metrics import check_metrics_bind
    with pytest.raises(ValueError, match="not a loopback address"):
        DemoConfig(metrics_port=9000, metrics_host="192.0.2.1").check()
    check_metrics_bind(9000, "0.0.0.0", allow_remote=True)
    check_metrics_bind(9000, "::1")
    with pytest.raises(ValueError, match="1-65535"):
        check_metrics_bind(0)


def test_every_family_is_documented():
    doc = (ROOT / "docs" / "metrics.md").read_text()
    names = {f.exported for f in ALL_FAMILIES}
    missing = sorted(n for n in names if f"`{n}`" not in doc)
    assert not missing, f"docs/metrics.md does not list {missing}"
    listed = set(re.findall(r"`(rram_lsm_\w+)`", doc))
    assert listed <= names | {n + s for n in names for s in ("_bucket", "_sum", "_count")}
    assert all(f.type != COUNTER or f.exported.endswith("_total") for f in ALL_FAMILIES)
    assert all(f.type != HISTOGRAM or f.name.endswith("_seconds") for f in ALL_FAMILIES)
