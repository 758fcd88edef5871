"""Graceful everything: a hung node is killed and restarted; SIGTERM to the launcher ends
every node with its final telemetry written and no process left."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter

from conftest import run_graph
from graphs import chain

def hang_graph(marker, out):
    """The chain whose middle node hangs once; the launcher must find and restart it."""
    return chain(out, name="hang", samples=4, messages=20, events=32, delay_ms=5,
                 mid="graphnodes:HangsOnce", mid_params=f'marker = "{marker}", at = 10',
                 graph="telemetry_interval_s = 0.2\nhang_timeout_s = 2.0\nrestart = { backoff_s = 0.2 }")


def test_hung_node_is_killed_reported_and_the_graph_resumes(tmp_path, sockdir):
    out = tmp_path / "out.jsonl"
    launcher = run_graph(hang_graph(marker=tmp_path / "hung", out=out), tmp_path, sockdir)
    assert launcher.exit_code == 0
    assert (tmp_path / "hung").exists()  # it really hung once
    events = [json.loads(l) for l in open(tmp_path / "run" / "telemetry.jsonl") if '"event"' in l]
    kinds = [e["event"] for e in events if e.get("node") == "mid"]
    assert "hung" in kinds and "restarted" in kinds
    # the restarted node announced itself with a new epoch
    epochs = {json.loads(l)["epoch"] for l in open(tmp_path / "run" / "telemetry.jsonl")
              if '"node": "mid"' in l and '"epoch"' in l}
    assert len(epochs) == 2
    # recovery re-sent what the hung node swallowed: every sample, whole, once
    recs = [json.loads(l) for l in open(out)]
    got = Counter()
    for r in recs:
        if r["kind"] == "events":
            got[r["sample"]] += r["n"]
    assert got == {s: 20 * 32 for s in range(4)}


LONG = chain(name="long", samples=100000, messages=10, events=32, delay_ms=2,
             graph="telemetry_interval_s = 0.2")


def test_sigterm_to_launcher_stops_all_with_final_telemetry(tmp_path):
    """... and its ipc socket folder, private to the user while it runs, is gone after."""
    (tmp_path / "g.toml").write_text(LONG)
    run_dir = tmp_path / "run"
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "rram_lsm", "run", str(tmp_path / "g.toml"),
                             "--run-dir", str(run_dir), "--no-dashboard"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "TMPDIR": str(tmp)})
    tele = run_dir / "telemetry.jsonl"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        text = tele.read_text() if tele.exists() else ""
        if text.count('"node": "sink"') >= 3 and text.count('"node": "src"') >= 2:  # data flows
            break
        time.sleep(0.1)
    (sockets,) = tmp.glob("rram-lsm-*")
    assert sockets.stat().st_mode & 0o777 == 0o700 and (sockets / "mid.sock").exists()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert not list(tmp.iterdir())
    reports = [json.loads(l) for l in open(tele) if '"node"' in l and '"event"' not in l]
    pids = {r["pid"] for r in reports}
    finals = {r["node"] for r in reports if r["final"]}
    assert finals == {"src", "mid", "sink"}
    for pid in pids:
        try:
            os.kill(pid, 0)
            raise AssertionError(f"node process {pid} outlived the launcher")
        except ProcessLookupError:
            pass
