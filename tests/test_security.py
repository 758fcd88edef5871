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

from graphs import chain

def make_graph(tmp_path, samples=3, delay=0):
    (tmp_path / "g.toml").write_text(chain(tmp_path / "out.jsonl", name="secure", samples=samples,
                                           messages=20, delay_ms=delay,
                                           graph='transport = "tcp"\ncurve = { keys = "keys" }'))
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


def test_a_local_stranger_on_a_loopback_tcp_graph_gets_nothing_in(tmp_path, sockdir):
    """Without Curve, a tcp graph on loopback carries a per-run token in every envelope and
    acknowledgement: another process that can reach the port (another user, say) is granted
    no credit, its data and its end_of_stream are refused, its forged acknowledgement cannot
    make the source forget a sample, and every sample still arrives once."""
    from rram_lsm.stream.codec import encode
    from rram_lsm.stream.packets import Origin, control
    from rram_lsm.stream.recovery import encode_ack

    (tmp_path / "g.toml").write_text(chain(
        tmp_path / "out.jsonl", name="loopback", samples=30, delay_ms=5,
        graph='transport = "tcp"\nrecovery = { enabled = true, resend_after_s = 30.0 }'))
    graph = load_graph(tmp_path / "g.toml", None, sockdir)
    launcher = Launcher(graph, tmp_path / "run", sockdir)
    for spec in graph.nodes.values():
        spec.telemetry_interval_s = 0.2
    mid, src = graph.nodes["mid"], graph.nodes["src"]
    assert mid.run_token and mid.run_token == src.run_token
    seen = {}

    def attack(report):
        if report.get("node") == "mid" and report.get("msgs_in", 0) > 20 and not seen:
            ctx = zmq.Context.instance()
            dealer, push = ctx.socket(zmq.DEALER), ctx.socket(zmq.PUSH)
            dealer.setsockopt(zmq.IDENTITY, b"src:1")
            for s in (dealer, push):
                s.setsockopt(zmq.LINGER, 500)
            dealer.connect(mid.bind)
            push.connect(src.ack_bind)
            dealer.send(struct.pack("<cQ", b"H", 0))
            eos = control("end_of_stream", stream="src", epoch=1, origin=Origin("src", 1, -1))
            dealer.send_multipart([struct.pack("<cQ", b"D", 1), *encode(eos)])
            for sample in range(30):  # "sink: I have them all" without the token
                push.send(encode_ack("sink", Origin("src", src.origin_epoch, sample)))
            seen["granted"] = bool(dealer.poll(1500))
            dealer.close()
            push.close()

    launcher.on_report = attack
    assert launcher.run(timeout_s=120) == 0
    assert seen and not seen["granted"]
    final = launcher.latest
    assert final["mid"]["rejected"] == {"unauthenticated": 2}
    assert final["src"]["rejected"] == {"bad_ack": 30}
    recs = [json.loads(l) for l in open(tmp_path / "out.jsonl")]
    ends = sorted(r["sample"] for r in recs if r.get("control") == "end_of_sample")
    assert ends == list(range(30))
