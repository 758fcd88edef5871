"""The launcher: restarts under SIGKILL with messages in flight, clean stops, graph errors."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from conftest import ROOT, run_graph
from graphs import chain
from rram_lsm.launch.graph import GraphError, load_graph, parse_overrides
from rram_lsm.launch.supervisor import start_process

def launcher_chain(samples, messages, delay, out):
    """The chain, restarting a crashed node quickly."""
    return chain(out, samples=samples, messages=messages, delay_ms=delay,
                 graph="restart = { backoff_s = 0.2 }")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def recording_start(pids):
    def start(spec, spec_path, log_path):
        proc = start_process(spec, spec_path, log_path)
        pids.append(proc.pid)
        return proc
    return start


def events_of(run_dir):
    return [json.loads(l) for l in open(run_dir / "telemetry.jsonl") if '"event"' in l]


def test_restart_after_sigkill_with_messages_in_flight(tmp_path, sockdir):
    from rram_lsm.launch.graph import load_graph
    from rram_lsm.launch.supervisor import Launcher

    out = tmp_path / "out.jsonl"
    path = tmp_path / "g.toml"
    path.write_text(launcher_chain(samples=3, messages=120, delay=4, out=out))
    pids: list[int] = []
    launcher = Launcher(load_graph(path, None, sockdir), tmp_path / "run", sockdir,
                        start=recording_start(pids))
    killed = {}

    def kill_mid_when_busy(l, report):
        if report.get("node") == "mid" and report.get("msgs_in", 0) > 10 and not killed:
            killed["pid"] = l.states["mid"].proc.pid
            killed["msgs_at_kill"] = report["msgs_in"]
            os.kill(killed["pid"], signal.SIGKILL)

    launcher.on_report = lambda r: kill_mid_when_busy(launcher, r)
    for spec in launcher.graph.nodes.values():
        spec.telemetry_interval_s = 0.1
    code = launcher.run(timeout_s=120)
    assert killed, "mid never reported while busy"
    assert code == 0
    evs = events_of(tmp_path / "run")
    crashed = [e for e in evs if e["event"] == "crashed" and e["node"] == "mid"]
    restarted = [e for e in evs if e["event"] == "restarted" and e["node"] == "mid"]
    assert crashed and crashed[0]["returncode"] == -signal.SIGKILL and restarted
    recs = [json.loads(l) for l in open(out)]
    # the stream continued through the restarted node to the last sample's end
    assert ("end_of_sample", 2) in [(r.get("control"), r["sample"]) for r in recs]
    new_mid = launcher.latest["mid"]
    assert new_mid["final"] and new_mid["pid"] != killed["pid"] and new_mid["msgs_in"] > 0
    # nothing left behind
    assert not [p for p in pids if alive(p)]


def test_stop_leaves_no_process_and_writes_final_telemetry(tmp_path, sockdir):
    from rram_lsm.launch.graph import load_graph
    from rram_lsm.launch.supervisor import Launcher

    path = tmp_path / "g.toml"
    path.write_text(launcher_chain(samples=100000, messages=10, delay=2, out=tmp_path / "o.jsonl"))
    pids: list[int] = []
    launcher = Launcher(load_graph(path, None, sockdir), tmp_path / "run", sockdir,
                        start=recording_start(pids))
    launcher.on_report = lambda r: launcher.request_stop() if r.get("msgs_in", 0) > 20 else None
    code = launcher.run(timeout_s=120)  # the timeout only guards against a hang
    assert code == 0
    assert len(pids) == 3 and not [p for p in pids if alive(p)]
    assert all(launcher.latest[n]["final"] for n in ("src", "mid", "sink"))
    # graceful: the end of stream reached the sink
    assert launcher.latest["sink"]["controls_in"].get("end_of_stream", 0) == 1


def test_cli_run_smoke_graph_end_to_end(tmp_path):
    """`rram-lsm run launch/graphs/smoke.toml` as a user runs it (a real subprocess tree)."""
    out = tmp_path / "smoke.jsonl"
    proc = subprocess.run(
        [sys.executable, "-m", "rram_lsm", "run", str(ROOT / "launch/graphs/smoke.toml"),
         "samples:=3", "speed:=0", f"out:='{out}'", "--run-dir", str(tmp_path / "run"), "--no-dashboard"],
        capture_output=True, text=True, timeout=180, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    recs = [json.loads(l) for l in open(out)]
    assert [r["sample"] for r in recs if r.get("control") == "end_of_sample"] == [0, 1, 2]
    assert sum(r["n"] for r in recs if r["kind"] == "events") > 0
    assert "smoke (final)" in proc.stderr


def write(tmp_path, text, name="g.toml"):
    p = tmp_path / name
    p.write_text(text)
    return p


BASE = """
[args]
n = 3
[nodes.src]
kind = "graphnodes:CountingSource"
params = { samples = "${n}", name = "src-${n}" }
[nodes.sink]
kind = "null_sink"
[[edges]]
from = "src"
to = "sink"
"""


def test_includes_and_argument_overrides(tmp_path, sockdir):
    write(tmp_path, BASE, "base.toml")
    top = write(tmp_path, 'include = ["base.toml"]\n[graph]\nname = "top"\n[args]\nn = 4\n')
    g = load_graph(top, None, sockdir)
    assert g.name == "top" and g.nodes["src"].params == {"samples": 4, "name": "src-4"}
    g = load_graph(top, parse_overrides(["n:=7"]), sockdir)
    assert g.nodes["src"].params["samples"] == 7
    assert g.nodes["src"].outputs[0].endpoint == g.nodes["sink"].bind
    assert g.sources == ["src"] and g.nodes["sink"].upstream == 1


@pytest.mark.parametrize("text,needle", [
    ("[nodes.a]\nkind = 'nope'\n", "nodes.a.kind"),
    ("[nodes.a]\nkind = 'passthrough'\ncolour = 1\n", "nodes.a: unknown key"),
    (BASE + "[[edges]]\nfrom = 'src'\nto = 'ghost'\n", "edges[1].to"),
    (BASE.replace('to = "sink"', 'to = "sink"\npolicy = "maybe"'), "edges[0].policy"),
    (BASE.replace('"${n}"', '"${m}"'), "unknown argument ${m}"),
    (BASE + "[graph]\ntransport = 'carrier-pigeon'\n", "graph.transport"),
    (BASE.replace('kind = "null_sink"', 'kind = "null_sink"\nbind = "tcp://0.0.0.0:5999"'), "nodes.sink.bind"),
    ("include = ['g.toml']\n" + BASE, "include: cycle"),
    ("[nodes.a\nkind=1", "not valid TOML"),
    (BASE.replace('to = "sink"', 'to = "sink"\nwindow = 0'), "window must be >= 1"),
    (BASE + "[graph]\nrestart = { policy = 'sometimes' }\n", "graph.restart.policy"),
    (BASE.replace('kind = "null_sink"', 'kind = "null_sink"\nparams = { remembr = 3 }'),
     "nodes.sink.params: unknown parameter 'remembr'; did you mean 'remember'?"),
    (BASE.replace('kind = "null_sink"', 'kind = "null_sink"\nparams = { remember = "all" }'),
     "nodes.sink.params: parameter 'remember' must be int"),
])
def test_bad_graph_errors_name_file_and_key(tmp_path, sockdir, text, needle):
    path = write(tmp_path, text)
    with pytest.raises(GraphError) as info:
        load_graph(path, None, sockdir)
    assert needle in str(info.value) and str(path.name) in str(info.value)


def test_unknown_override_is_refused(tmp_path, sockdir):
    with pytest.raises(GraphError, match="args.colour"):
        load_graph(write(tmp_path, BASE), {"colour": 1}, sockdir)


def test_cli_reports_bad_graph_without_traceback(tmp_path):
    path = write(tmp_path, "[nodes.a]\nkind = 'nope'\n")
    proc = subprocess.run([sys.executable, "-m", "rram_lsm", "run", str(path)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "nodes.a.kind" in proc.stderr and "Traceback" not in proc.stderr


def test_sources_start_only_when_the_rest_of_the_graph_is_ready(tmp_path, sockdir):
    """A node with a slow setup (a model to load, a kernel to compile) must not leave the first
    samples queued behind it: the launcher starts sources after every other node reported."""
    out = tmp_path / "out.jsonl"
    text = launcher_chain(samples=2, messages=3, delay=0, out=out).replace(
        'kind = "passthrough"', 'kind = "graphnodes:SlowSetup"\nparams = { setup_s = 2.0 }')
    launcher = run_graph(text, tmp_path, sockdir)
    assert launcher.exit_code == 0
    lines = [json.loads(l) for l in open(tmp_path / "run" / "telemetry.jsonl")]
    first_mid = next(i for i, r in enumerate(lines) if r.get("node") == "mid" and "event" not in r)
    started = next(i for i, r in enumerate(lines) if r.get("event") == "sources_started")
    first_src = next(i for i, r in enumerate(lines) if r.get("node") == "src" and "event" not in r)
    assert first_mid < started < first_src
    assert lines[started]["ready"] is True
    ends = [json.loads(l) for l in open(out) if '"end_of_sample"' in l]
    assert len(ends) == 2
