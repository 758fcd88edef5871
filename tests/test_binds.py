"""Nothing listens where it should not, and a node can always be stopped: off-loopback binds
refused, binds checked before start, a bind failing at start ends the graph with rc 2 and a
plain message, `rram-lsm node` stops on SIGTERM/SIGINT in every state (real processes)."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from rram_lsm.launch.binds import BindError, remove_stale_socket_dirs
from rram_lsm.launch.cli import main as cli
from rram_lsm.launch.graph import load_graph
from rram_lsm.launch.supervisor import Launcher

NODE = [sys.executable, "-m", "rram_lsm", "node"]

TWO = """
[graph]
name = "binds"
[nodes.src]
kind = "graphnodes:CountingSource"
params = {{ samples = 2, messages = 3 }}
[nodes.a]
kind = "null_sink"
bind = "{a}"
[nodes.b]
kind = "null_sink"
bind = "{b}"
[[edges]]
from = "src"
to = "a"
[[edges]]
from = "src"
to = "b"
"""


@pytest.mark.parametrize("endpoint", ["tcp://0.0.0.0:5795", "tcp://*:5795", "tcp://eth0:5795",
                                      "tcp://192.0.2.7:5795"])
def test_node_refuses_an_off_loopback_bind(endpoint, capsys):
    assert cli(["node", "passthrough", "--bind", endpoint]) == 2
    assert "--allow-remote" in capsys.readouterr().err
    assert cli(["node", "passthrough", "--bind", endpoint, "--allow-remote"]) == 2
    assert "needs --keys" in capsys.readouterr().err


def _wait_for(path, timeout_s=60):
    deadline = time.monotonic() + timeout_s
    while not os.path.exists(path):
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.1)


def test_standalone_nodes_stop_on_a_signal_idle_or_with_no_receiver(sockdir):
    """An idle node (SIGINT), and one whose output nobody receives, so it waits for credit
    forever (SIGTERM; SIGTERM of a stuck source is also in test_hostile_peer.py)."""
    idle = subprocess.Popen(NODE + ["passthrough", "--name", "idle", "--bind", f"ipc://{sockdir}/idle"])
    stuck = subprocess.Popen(NODE + ["synthetic_dvs", "--name", "src", "--output", f"ipc://{sockdir}/nobody",
                                     "--param", "samples=0"])
    try:
        _wait_for(sockdir / "idle")
        time.sleep(3)  # the source is past its start-up and waiting for credit
        t0 = time.monotonic()
        idle.send_signal(signal.SIGINT)
        stuck.send_signal(signal.SIGTERM)
        assert idle.wait(20) == 0 and stuck.wait(20) == 0
        assert time.monotonic() - t0 < 12
    finally:
        for p in (idle, stuck):
            if p.poll() is None:
                p.kill()


def test_two_nodes_on_one_endpoint_are_refused_before_start(tmp_path, sockdir):
    ep = f"ipc://{sockdir}/same"
    (tmp_path / "g.toml").write_text(TWO.format(a=ep, b=ep))
    with pytest.raises(BindError, match=r"nodes 'a' and 'b' both bind ipc://"):
        Launcher(load_graph(tmp_path / "g.toml", None, sockdir), tmp_path / "run", sockdir)
    assert not (tmp_path / "run").exists()  # nothing started, nothing written


def test_a_taken_port_is_refused_before_start_with_a_plain_error(tmp_path, capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        (tmp_path / "g.toml").write_text(TWO.format(a=f"tcp://127.0.0.1:{port}", b="tcp://127.0.0.1:0"))
        rc = cli(["run", str(tmp_path / "g.toml"), "--run-dir", str(tmp_path / "run"), "--no-dashboard"])
    err = capsys.readouterr().err
    assert rc == 2
    assert f"node 'a' cannot bind its input tcp://127.0.0.1:{port}: Address already in use" in err
    assert "Traceback" not in err


def test_a_bind_failing_at_start_ends_the_graph_with_rc_2_and_no_restarts(tmp_path, sockdir):
    """The port is taken after the check (a race): the node says which endpoint, the launcher
    stops the graph at once with rc 2 instead of restarting it five times."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (tmp_path / "g.toml").write_text(TWO.format(a=f"tcp://127.0.0.1:{port}", b="tcp://127.0.0.1:0"))
    launcher = Launcher(load_graph(tmp_path / "g.toml", None, sockdir), tmp_path / "run", sockdir)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        t0 = time.monotonic()
        assert launcher.run(timeout_s=60) == 2
    assert time.monotonic() - t0 < 30
    events = [json.loads(l) for l in open(tmp_path / "run" / "telemetry.jsonl") if '"event"' in l]
    failed = [e for e in events if e["event"] == "failed"]
    assert [e["node"] for e in failed] == ["a"]
    assert f"node 'a' cannot bind tcp://127.0.0.1:{port}" in failed[0]["message"]
    assert not [e for e in events if e["event"] in ("crashed", "restarted")]
    assert "Traceback" not in (tmp_path / "run" / "logs" / "a.log").read_text()


def test_socket_folders_of_dead_launchers_are_swept(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale, live = tmp_path / "rram-lsm-old", tmp_path / "rram-lsm-live"
    for d, pid in ((stale, dead.pid), (live, os.getpid())):
        d.mkdir()
        (d / "launcher.pid").write_text(str(pid))
        (d / "x.sock").write_text("")
    assert remove_stale_socket_dirs(tmp_path, "rram-lsm-") == [stale]
    assert not stale.exists() and live.exists()


def test_allow_remote_with_keys_listens_with_curve_only(tmp_path):
    """`--allow-remote --keys` binds off loopback, and only an allowed key gets credit."""
    import struct

    import zmq
    import zmq.auth

    from rram_lsm.launch.graph import free_tcp_port

    assert cli(["keys", str(tmp_path / "k"), "mid", "up", "other"]) == 0
    port = free_tcp_port("0.0.0.0")
    proc = subprocess.Popen(NODE + ["passthrough", "--name", "mid", "--bind", f"tcp://0.0.0.0:{port}",
                                    "--allow-remote", "--keys", str(tmp_path / "k"), "--allow", "up"])
    ctx = zmq.Context.instance()
    server_key = zmq.auth.load_certificate(str(tmp_path / "k" / "mid.key"))[0]
    granted = {}
    try:
        for peer in ("up", "other"):  # the allowed peer first: once it is answered, the node is up
            sock = ctx.socket(zmq.DEALER)
            sock.curve_publickey, sock.curve_secretkey = zmq.auth.load_certificate(
                str(tmp_path / "k" / f"{peer}.key_secret"))
            sock.curve_serverkey = server_key
            sock.setsockopt(zmq.LINGER, 0)
            sock.connect(f"tcp://127.0.0.1:{port}")
            deadline = time.monotonic() + (60 if peer == "up" else 3)
            granted[peer] = False
            while time.monotonic() < deadline and not granted[peer]:
                try:
                    sock.send(struct.pack("<cQ", b"H", 0), zmq.NOBLOCK)
                except zmq.Again:
                    pass  # no connection (yet, or refused)
                if sock.poll(300):
                    granted[peer] = sock.recv()[:1] == b"C"
            sock.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert granted == {"up": True, "other": False}
