"""Two hosts on this machine (network namespaces + veth), half a graph on each over tcp://
with CurveZMQ; an unauthorised client in a third namespace is refused; the clock offset
between hosts is estimated (one side's clock is shifted by a known amount)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time

import pytest

from rram_lsm.launch.cli import main as cli

OFFSET_MS = 250
PORT = 5701


def sh(*cmd: str) -> None:
    subprocess.run(cmd, check=True, capture_output=True, timeout=30)


@pytest.fixture
def hosts():
    """Namespaces a <-> b (10.77.k.0/24) and b <-> c (10.78.k.0/24); skipped where impossible."""
    if shutil.which("ip") is None or os.geteuid() != 0:
        pytest.skip("network namespaces need root and iproute2 (`ip`)")
    k = os.getpid() % 200 + 20
    ns = {h: f"rl{h}{os.getpid()}" for h in "abc"}
    try:
        for name in ns.values():
            sh("ip", "netns", "add", name)
    except (subprocess.CalledProcessError, OSError) as exc:
        for name in ns.values():
            subprocess.run(["ip", "netns", "del", name], capture_output=True)
        pytest.skip(f"cannot create network namespaces here: {exc}")
    try:
        for left, right, net in (("a", "b", 77), ("c", "b", 78)):
            va, vb = f"v{left}{right}{k}", f"v{right}{left}{k}"
            sh("ip", "link", "add", va, "type", "veth", "peer", "name", vb)
            sh("ip", "link", "set", va, "netns", ns[left])
            sh("ip", "link", "set", vb, "netns", ns[right])
            for host, dev, ip in ((left, va, 2 if left == "c" else 1), (right, vb, 1 if left == "c" else 2)):
                sh("ip", "-n", ns[host], "addr", "add", f"10.{net}.{k}.{ip}/24", "dev", dev)
                sh("ip", "-n", ns[host], "link", "set", dev, "up")
        for name in ns.values():
            sh("ip", "-n", name, "link", "set", "lo", "up")
        yield ns, k
    finally:
        for name in ns.values():
            subprocess.run(["ip", "netns", "del", name], capture_output=True)


GRAPH = """
[graph]
name = "twohost"
allow_remote = true
curve = {{ keys = "keys" }}
recovery = {{ enabled = false }}
[nodes.src]
kind = "graphnodes:CountingSource"
host = "a"
params = {{ samples = 30, messages = 10, events = 64, delay_ms = 8 }}
[nodes.mid]
kind = "passthrough"
host = "a"
[nodes.sink]
kind = "jsonl_sink"
host = "b"
bind = "tcp://0.0.0.0:{port}"
address = "tcp://10.77.{k}.2:{port}"
params = {{ path = "{out}" }}
[[edges]]
from = "src"
to = "mid"
[[edges]]
from = "mid"
to = "sink"
"""

INTRUDER = textwrap.dedent("""
    import struct, sys, zmq, zmq.auth
    pub, sec = zmq.auth.create_certificates(sys.argv[1], "intruder")
    ipub, isec = zmq.auth.load_certificate(sec)
    spub, _ = zmq.auth.load_certificate(sys.argv[2])
    s = zmq.Context().socket(zmq.DEALER)
    s.curve_publickey, s.curve_secretkey, s.curve_serverkey = ipub, isec, spub
    s.setsockopt(zmq.LINGER, 0)
    s.connect(sys.argv[3])
    s.send(struct.pack("<cQ", b"H", 0))
    print("GRANTED" if s.poll(3000) else "REFUSED", flush=True)
""")


def test_two_hosts_curve_refusal_and_clock_offset(hosts, tmp_path):
    ns, k = hosts
    out = tmp_path / "out.jsonl"
    (tmp_path / "g.toml").write_text(GRAPH.format(port=PORT, k=k, out=out))
    assert cli(["keys", str(tmp_path / "keys"), "--graph", str(tmp_path / "g.toml")]) == 0
    env = dict(os.environ)
    run = [sys.executable, "-m", "rram_lsm", "run", str(tmp_path / "g.toml"), "--no-dashboard"]
    host_b = subprocess.Popen(["ip", "netns", "exec", ns["b"], *run, "--host", "b", "--run-dir", str(tmp_path / "b")],
                              env={**env, "RRAM_LSM_CLOCK_OFFSET_NS": str(OFFSET_MS * 1_000_000)},
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    host_a = subprocess.Popen(["ip", "netns", "exec", ns["a"], *run, "--host", "a", "--run-dir", str(tmp_path / "a")],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60  # the intruder knocks once the sink is up
        tele = tmp_path / "b" / "telemetry.jsonl"
        while time.monotonic() < deadline and not (tele.exists() and '"node": "sink"' in tele.read_text()):
            time.sleep(0.1)
        intruder = subprocess.run(
            ["ip", "netns", "exec", ns["c"], sys.executable, "-c", INTRUDER, str(tmp_path),
             str(tmp_path / "keys" / "sink.key"), f"tcp://10.78.{k}.1:{PORT}"],
            capture_output=True, text=True, timeout=60)
        out_a, _ = host_a.communicate(timeout=120)
        out_b, _ = host_b.communicate(timeout=120)
    finally:
        for p in (host_a, host_b):
            if p.poll() is None:
                p.kill()
    assert host_a.returncode == 0, out_a
    assert host_b.returncode == 0, out_b
    assert intruder.stdout.strip() == "REFUSED", intruder.stderr
    # results and accounting across the hosts
    recs = [json.loads(l) for l in open(out)]
    assert sum(r["n"] for r in recs if r["kind"] == "events") == 30 * 10 * 64
    tele_a = [json.loads(l) for l in open(tmp_path / "a" / "telemetry.jsonl") if '"final": true' in l]
    tele_b = [json.loads(l) for l in open(tmp_path / "b" / "telemetry.jsonl") if '"final": true' in l]
    mid = next(r for r in tele_a if r["node"] == "mid")
    sink = next(r for r in tele_b if r["node"] == "sink")
    assert mid["edges"]["mid->sink"]["offered"] == sink["received"] + mid["edges"]["mid->sink"]["dropped"]
    assert sink["auth_refused"] >= 1
    # clock: the sink's host runs 250 ms ahead, so mid's clock minus the sink's is -250 ms
    clock = sink["clock"]["mid"]
    assert abs(clock["offset_ms"] + OFFSET_MS) <= clock["uncertainty_ms"] + 5
    lat = sorted(r["latency_ms"] for r in recs if r["kind"] == "events")
    assert -5 < lat[len(lat) // 2] < OFFSET_MS / 2  # corrected: not inflated by the offset
