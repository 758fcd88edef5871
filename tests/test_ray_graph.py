"""The graph on a real multi-node Ray cluster (this machine: a head and two worker nodes on
127.0.0.2 and 127.0.0.3 with a custom resource each): nodes in Ray actors on the machines the
graph asks for, talking ZeroMQ over tcp with CurveZMQ; a SIGKILLed node is restarted by the
launcher's policy with nothing lost or duplicated; no actor or process is left behind."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import psutil
import pytest

from rram_lsm.launch.cli import main as cli

from graphs import chain, events_per_sample

ray = pytest.importorskip("ray")

WORKERS = {"worker_a": "127.0.0.2", "worker_b": "127.0.0.3"}  # custom resource -> node address
SAMPLES, MESSAGES, EVENTS = 8, 30, 64


# ray_cluster: the session's cluster of tests/conftest.py (tests/raycluster.py), shared with
# tests/test_cluster_offline.py: head + worker_a / worker_b on 127.0.0.2 / 127.0.0.3.


def graph_text(out: Path, *, samples: int = SAMPLES, delay_ms: float = 3) -> str:
    """source and middle on worker_a, sink on worker_b; Curve keys; recovery on, quick restarts."""
    return chain(out, name="raysplit", samples=samples, messages=MESSAGES, events=EVENTS,
                 delay_ms=delay_ms,
                 graph="""curve = { keys = "keys" }
telemetry_interval_s = 0.2
restart = { backoff_s = 0.2 }
recovery = { enabled = true, resend_after_s = 2.0, max_unacked = 4 }""",
                 nodes={"src": "resources = { worker_a = 0.01 }",
                        "mid": "resources = { worker_a = 0.01 }",
                        "sink": "resources = { worker_b = 0.01 }"})


def write_graph(tmp_path: Path, **kw) -> Path:
    path = tmp_path / "g.toml"
    path.write_text(graph_text(tmp_path / "out.jsonl", **kw))
    assert cli(["keys", str(tmp_path / "keys"), "--graph", str(path)]) == 0
    return path


def assert_every_sample_once(out: Path, samples: int = SAMPLES) -> None:
    recs = [json.loads(line) for line in open(out)]
    assert events_per_sample(out) == {s: MESSAGES * EVENTS for s in range(samples)}
    assert Counter(r["sample"] for r in recs if r.get("control") == "end_of_sample") == {s: 1 for s in range(samples)}


def node_pids(run_dir: Path) -> dict[int, str]:
    """Every node process that reported (all on this machine here): pid -> node."""
    try:
        recs = [json.loads(line) for line in open(run_dir / "telemetry.jsonl")]
    except OSError:
        return {}
    return {r["pid"]: r["node"] for r in recs if "pid" in r and "node" in r}


def assert_nothing_left(run_dir: Path) -> None:
    from rram_lsm.launch.ray_backend import NAMESPACE

    left = [a for a in ray.util.list_named_actors(all_namespaces=True) if a["namespace"] == NAMESPACE]
    assert left == []
    alive = [p for p in node_pids(run_dir) if psutil.pid_exists(p)
             and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
    assert alive == []


def test_graph_split_across_two_ray_nodes_over_curve_tcp(ray_cluster, tmp_path):
    """`rram-lsm run G --cluster ADDRESS` (a separate driver): the sink lands on worker_b, the
    others on worker_a, every endpoint is tcp on its node's address with Curve, the sink has
    every sample once, telemetry reached the launcher, and no actor or process is left."""
    cluster, ids = ray_cluster, ray_cluster.node_ids
    path = write_graph(tmp_path)
    run_dir = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "rram_lsm", "run", str(path), "--no-dashboard",
                           "--cluster", cluster.address, "--run-dir", str(run_dir)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    log = [json.loads(line) for line in open(run_dir / "telemetry.jsonl")]
    placed = {e["node"]: e for e in log if e.get("event") == "placed"}
    assert {n: e["ray_node"] for n, e in placed.items()} == {
        "src": ids["worker_a"], "mid": ids["worker_a"], "sink": ids["worker_b"]}
    for name, worker in (("src", "worker_a"), ("mid", "worker_a"), ("sink", "worker_b")):
        spec = json.loads((run_dir / "specs" / f"{name}.json").read_text())
        ends = [spec["bind"], spec["ack_bind"], *(e["endpoint"] for e in spec["outputs"]), *spec["ack_to"]]
        assert all(e is None or e.startswith("tcp://") for e in ends)
        assert all(e is None or e.startswith(f"tcp://{ray_cluster.node_ips[worker]}:") for e in (spec["bind"], spec["ack_bind"]))
        assert spec["curve"]["secret_file"].endswith(f"{name}.key_secret")
    assert json.loads((run_dir / "specs" / "mid.json").read_text())["outputs"][0]["endpoint"] == placed["sink"]["endpoint"]
    finals = {r["node"]: r for r in log if r.get("final")}
    assert set(finals) == {"src", "mid", "sink"}  # telemetry from both machines reached the launcher
    assert finals["sink"]["auth_refused"] == 0
    assert_every_sample_once(tmp_path / "out.jsonl")
    assert_nothing_left(run_dir)


@pytest.mark.parametrize("victim, kills", [("mid", ("process", "actor")), ("src", ("process",))])
def test_a_node_killed_mid_stream_on_the_cluster_loses_and_duplicates_nothing(ray_cluster, tmp_path, sockdir,
                                                                                victim, kills):
    """SIGKILL of a node's process mid-stream (its actor stays, the launcher starts a new
    process in it, a source from its resume point), then, for the middle node, ``ray.kill`` of
    its actor (the launcher re-creates it on the same Ray node): unacknowledged samples come
    again, and the sink ends with every sample once."""
    from rram_lsm.launch.graph import load_graph
    from rram_lsm.launch.ray_backend import RayBackend
    from rram_lsm.launch.supervisor import Launcher

    graph = load_graph(write_graph(tmp_path), None, sockdir)
    backend = RayBackend(graph, ray)
    killed = []
    busy = "msgs_out" if victim == "src" else "msgs_in"
    try:
        launcher = Launcher(graph, tmp_path / "run", sockdir, start=backend.start,
                            telemetry_endpoint=backend.telemetry_endpoint)

        def kill_when_busy(report):
            proc = launcher.states[victim].proc
            acked = victim != "src" or (report.get("resume") or {}).get("from_sample", 0) > 0
            if (report.get("node") == victim and proc is not None and report.get("pid") == proc.pid
                    and report.get(busy, 0) > 45 and acked and len(killed) < len(kills)):
                how = kills[len(killed)]
                killed.append(proc.pid)
                if how == "process":
                    os.kill(proc.pid, signal.SIGKILL)
                else:
                    ray.kill(backend.actors[victim])

        launcher.on_report = kill_when_busy
        assert launcher.run(timeout_s=120) == 0
        assert backend.attempts[victim] == 1 + kills.count("actor")  # a new actor only for a dead one
        # ... back on the machine the graph asked for
        assert ray.get(backend.actors[victim].where.remote(0))["node_id"] == ray_cluster.node_ids["worker_a"]
    finally:
        backend.close()
    assert len(killed) == len(kills)
    assert_every_sample_once(tmp_path / "out.jsonl")
    log = [json.loads(line) for line in open(tmp_path / "run" / "telemetry.jsonl") if '"event"' in line]
    restarts = [e for e in log if e["event"] == "restarted"]
    assert [e["node"] for e in restarts] == [victim] * len(kills)
    assert all(e["pid"] != pid for e, pid in zip(restarts, killed))  # a new process each time
    if victim == "src":
        assert restarts[0]["resume_from"] > 0
    else:
        assert launcher.latest["src"]["recovery"]["resent_samples"] > 0
    assert_nothing_left(tmp_path / "run")


def test_ctrl_c_leaves_no_actor_or_process(ray_cluster, tmp_path):
    """SIGINT to `rram-lsm run --cluster` mid-stream ends every node and every actor."""
    cluster = ray_cluster
    path = write_graph(tmp_path, samples=1000, delay_ms=10)
    run_dir = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "rram_lsm", "run", str(path), "--no-dashboard",
                             "--cluster", cluster.address, "--run-dir", str(run_dir)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and set(node_pids(run_dir).values()) != {"src", "mid", "sink"}:
            time.sleep(0.2)
        assert set(node_pids(run_dir).values()) == {"src", "mid", "sink"}
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
    assert "Traceback" not in out
    finals = {r["node"] for r in map(json.loads, open(run_dir / "telemetry.jsonl")) if r.get("final")}
    assert finals == {"src", "mid", "sink"}  # each stopped cleanly, with its final telemetry
    assert_nothing_left(run_dir)


def test_a_cluster_graph_without_curve_or_with_resources_nobody_has_is_refused_plainly(ray_cluster, tmp_path, capsys):
    """Refused before any actor starts, in one line naming what to fix."""
    cluster = ray_cluster
    plain = tmp_path / "plain.toml"
    plain.write_text(graph_text(tmp_path / "out.jsonl").replace('curve = { keys = "keys" }\n', ""))
    assert cli(["run", str(plain), "--no-dashboard", "--cluster", cluster.address]) == 2
    assert "CurveZMQ" in capsys.readouterr().err
    camera = write_graph(tmp_path)
    camera.write_text(camera.read_text().replace("worker_b = 0.01", "camera = 1"))
    assert cli(["run", str(camera), "--no-dashboard", "--cluster", cluster.address]) == 2
    err = capsys.readouterr().err
    assert "node 'sink' asks for {'camera': 1.0}" in err and f"{cluster.node_ips['worker_b']} has {{'CPU': 1.0, 'worker_b': 1.0}}" in err
    assert "Traceback" not in err
    assert cli(["run", str(camera), "--cluster", cluster.address, "--host", "a"]) == 2
    assert "--host" in capsys.readouterr().err
    from rram_lsm.launch.ray_backend import NAMESPACE
    assert [a for a in ray.util.list_named_actors(all_namespaces=True) if a["namespace"] == NAMESPACE] == []


@pytest.mark.parametrize("value", ['"worker_a"', "{ CPU = -1 }", '{ worker_a = "x" }'])
def test_a_bad_resources_key_is_refused_at_load(tmp_path, value):
    from rram_lsm.launch.graph import GraphError, load_graph

    path = tmp_path / "g.toml"
    path.write_text(graph_text(tmp_path / "out.jsonl").replace("{ worker_a = 0.01 }", value, 1)
                    .replace('curve = { keys = "keys" }\n', ""))
    with pytest.raises(GraphError, match=r"nodes\.src\.resources"):
        load_graph(path)


def test_the_python_api_runs_a_graph_on_the_cluster_and_its_results_come_back(ray_cluster, tmp_path, monkeypatch):
    """Graph.start(cluster=...): nodes in actors on the machines asked for, the tap on this
    machine's Ray node (its key pair made beside the others), every sample back once."""
    from rram_lsm.launch.api import Graph

    cluster = ray_cluster
    monkeypatch.chdir(tmp_path)
    g = Graph("rayapi", curve={"keys": "keys"}, telemetry_interval_s=0.2)
    g.node("src", "graphnodes:CountingSource", resources={"worker_a": 0.01},
           samples=4, messages=5, events=16, delay_ms=2)
    g.node("sink", "null_sink", resources={"worker_b": 0.01})
    g.edge("src", "sink")
    assert cli(["keys", "keys", "src", "sink", "launcher"]) == 0
    with g.start(cluster=cluster.address, run_dir=tmp_path / "run") as run:
        got = Counter()
        for item in run.results(timeout=60):
            got[item.sample] += len(item.data)
        assert run.wait(30) == 0
    assert got == {s: 5 * 16 for s in range(4)}
    assert (tmp_path / "keys" / "tap.key_secret").exists()
    assert_nothing_left(tmp_path / "run")


BLOCK_RAY = """
import importlib.abc, sys
class _Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == "ray" or name.startswith("ray."):
            raise ImportError("no module named " + name)
sys.meta_path.insert(0, _Block())
from rram_lsm.launch.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_run_cluster_without_ray_names_the_extra(tmp_path):
    path = write_graph(tmp_path)
    proc = subprocess.run([sys.executable, "-c", BLOCK_RAY, "run", str(path), "--cluster", "local"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "pip install -e '.[cluster]'" in proc.stderr and "Traceback" not in proc.stderr
