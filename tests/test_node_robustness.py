"""A running node rejects each malformed message with its reason counted and keeps going."""
from __future__ import annotations

import json
import struct
import subprocess
import sys
import collections

import numpy as np
import zmq

from conftest import TelemetryListener
from rram_lsm.stream.codec import encode
from rram_lsm.stream.packets import DVS_DTYPE, Origin, Packet, control
from test_codec import malformed_messages

TAGGED = struct.Struct("<cQ")  # the edge envelope: tag + running count


def good(i):
    ev = np.zeros(10, DVS_DTYPE)
    ev["t"] = np.arange(10) + 100 * i
    return Packet(kind="events", body=ev, geometry=(34, 34), origin=Origin("test", 1, i),
                  sample=i, stream="test", seq=i + 1)


def test_node_survives_malformed_messages(tmp_path, sockdir):
    mid_ep, sink_ep, tele_ep = (f"ipc://{sockdir}/{n}" for n in ("mid", "sink", "tele"))
    listener = TelemetryListener(tele_ep)
    out = tmp_path / "out.jsonl"
    node = [sys.executable, "-m", "rram_lsm", "node"]
    procs = [
        subprocess.Popen(node + ["jsonl_sink", "--name", "sink", "--bind", sink_ep,
                                 "--telemetry", tele_ep, "--param", f"path='{out}'"]),
        subprocess.Popen(node + ["passthrough", "--name", "mid", "--bind", mid_ep, "--output", sink_ep,
                                 "--telemetry", tele_ep]),
    ]
    try:
        dealer = zmq.Context.instance().socket(zmq.DEALER)
        dealer.setsockopt(zmq.LINGER, 1000)
        dealer.setsockopt(zmq.IDENTITY, b"test:0")  # an upstream's edge identity: NAME:EPOCH
        dealer.connect(mid_ep)
        dealer.send(TAGGED.pack(b"H", 0))
        assert dealer.poll(30000), "no credit granted"
        tag, limit = TAGGED.unpack(dealer.recv())
        assert tag == b"C" and limit >= 30
        count = 0

        def send(frames):
            nonlocal count
            count += 1
            dealer.send_multipart([TAGGED.pack(b"D", count), *frames])

        expected = collections.Counter()
        bad = malformed_messages()
        for i, (reason, frames) in enumerate(bad):
            send(frames)
            expected[reason] += 1
            if i % 4 == 0:  # a whole good sample between the bad messages
                origin = Origin("test", 1, i)
                for p in (control("start", origin=origin, sample=i, stream="test"), good(i),
                          control("end_of_sample", origin=origin, sample=i, stream="test")):
                    send([bytes(f) for f in encode(p)])
        dealer.send_multipart([b"X", b"not our envelope", b""])
        expected["envelope"] += 1
        send([bytes(f) for f in encode(control("end_of_stream", stream="test", origin=Origin("test", 1, -1)))])
        reports = listener.wait_final(["mid", "sink"], 60)
        for p in procs:
            p.wait(30)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        listener.close()
    mid = reports["mid"]
    assert mid["final"]
    assert mid["rejected"] == dict(expected)
    n_good = len(range(0, len(bad), 4))
    assert mid["consumed"] == 3 * n_good + 1  # good samples (start, events, end) + end_of_stream
    assert mid["msgs_in"] == mid["consumed"] + mid["rejected_total"]
    recs = [json.loads(l) for l in open(out)]
    assert sorted(r["sample"] for r in recs if r["kind"] == "events") == list(range(0, len(bad), 4))
    assert all(p.returncode == 0 for p in procs)
