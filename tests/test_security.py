"""CurveZMQ: graphs with keys work; a peer without an allowed key is refused and logged."""
from __future__ import annotations

import json
import struct

import pytest
import zmq
import zmq.auth

from rram_lsm.launch.cli import main as cli
from rram_lsm.launch.graph import GraphError, load_graph
from rram_lsm.launch.supervisor import Launcher

GRAPH = """
[graph]
name = "secure"
transport = "tcp"
curve = {{ keys = "keys" }}
[nodes.src]
kind = "graphnodes:CountingSource"
params = {{ samples = {samples}, messages = 20, events = 64, delay_ms = {delay} }}
[nodes.mid]
kind = "passthrough"
[nodes.sink]
kind = "jsonl_sink"
params = {{ path = "{out}" }}
[[edges]]
from = "src"
to = "mid"
[[edges]]
from = "mid"
to = "sink"
"""


def make_graph(tmp_path, samples=3, delay=0):
    (tmp_path / "g.toml").write_text(GRAPH.format(samples=samples, delay=delay, out=tmp_path / "out.jsonl"))
    assert cli(["keys", str(tmp_path / "keys"), "--graph", str(tmp_path / "g.toml")]) == 0
    return tmp_path / "g.toml"


def test_keys_command_makes_pairs_and_refuses_overwrite(tmp_path, capsys):
    path = make_graph(tmp_path)
    for name in ("src", "mid", "sink", "launcher"):
        pub, sec = zmq.auth.load_certificate(str(tmp_path / "keys" / f"{name}.key_secret"))
        assert len(pub) == 40 and len(sec) == 40
    assert cli(["keys", str(tmp_path / "keys"), "mid"]) == 2  # FileExistsError -> plain error
    assert "exists" in capsys.readouterr().err
    assert path.exists()


def test_missing_key_is_a_graph_error(tmp_path, sockdir):
    path = make_graph(tmp_path)
    (tmp_path / "keys" / "mid.key").unlink()
    with pytest.raises(GraphError, match="graph.curve.keys"):
        load_graph(path, None, sockdir)


def test_curve_graph_delivers_and_refuses_an_unknown_peer(tmp_path, sockdir):
    path = make_graph(tmp_path, samples=60, delay=5)
    graph = load_graph(path, None, sockdir)
    mid = graph.nodes["mid"]
    assert mid.curve and mid.bind.startswith("tcp://127.0.0.1:")
    launcher = Launcher(graph, tmp_path / "run", sockdir)
    for spec in graph.nodes.values():
        spec.telemetry_interval_s = 0.2
    intruder = {}

    def attack(report):
        if report.get("node") == "mid" and report.get("msgs_in", 0) > 20 and not intruder:
            ctx = zmq.Context.instance()
            sock = ctx.socket(zmq.DEALER)
            pub, sec = zmq.auth.create_certificates(str(tmp_path), "intruder")
            ipub, isec = zmq.auth.load_certificate(sec)
            sock.curve_publickey, sock.curve_secretkey = ipub, isec
            sock.curve_serverkey = mid.curve["servers"].get(mid.bind) or \
                zmq.auth.load_certificate(str(tmp_path / "keys" / "mid.key"))[0]
            sock.setsockopt(zmq.LINGER, 0)
            sock.connect(mid.bind)
            sock.send(struct.pack("<cQ", b"H", 0), zmq.NOBLOCK)
            intruder["granted"] = bool(sock.poll(1500))
            sock.close()
            launcher.request_stop()

    launcher.on_report = attack
    assert launcher.run(timeout_s=120) == 0
    assert intruder and not intruder["granted"]
    final = launcher.latest["mid"]
    assert final["auth_refused"] >= 1
    assert "refused a peer" in (tmp_path / "run" / "logs" / "mid.log").read_text()
    recs = [json.loads(l) for l in open(tmp_path / "out.jsonl")]
    assert sum(r["n"] for r in recs if r["kind"] == "events") > 0
    src = launcher.latest["src"]
    assert final["received"] == src["edges"]["src->mid"]["sent"]  # only the real upstream got in
