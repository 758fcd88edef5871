"""The lsl_outlet sink against real pylsl inlets in this process, while a real graph runs:
source -> projection -> classifier -> jsonl_sink and lsl_outlet (predictions), and the
projection's embeddings into a second lsl_outlet; every result arrives once, with its fields
and its stream description, stamped on LSL's clock at the time its data entered the graph."""
from __future__ import annotations

import json
import os
import threading
import time

import numpy as np
import pytest

from conftest import run_graph
from graphnodes import feature_rows
from rram_lsm.nodes.classifier.bank import PrototypeBank
from rram_lsm.nodes.lsl_outlet import PREDICTION_CHANNELS, LslOutlet, lsl_time
from rram_lsm.nodes.projection.heads import HeadConfig, ProjectionHead, save_heads
from rram_lsm.stream.node import ConfigError
from rram_lsm.stream.packets import Packet

pylsl = pytest.importorskip("pylsl")

N, DIM, EMB, AGE_MS = 8, 20, 8, 400

GRAPH = """
[graph]
name = "lsl-out"
[nodes.src]
kind = "graphnodes:FeatureSource"
params = {{ samples = {n}, n_features = {dim}, seed = 5, age_ms = {age} }}
[nodes.proj]
kind = "projection"
params = {{ weights = "{heads}" }}
[nodes.cls]
kind = "classifier"
params = {{ bank = "{bank}", topk = 2 }}
[nodes.sink]
kind = "jsonl_sink"
params = {{ path = "{out}" }}
[nodes.lsl]
kind = "lsl_outlet"
params = {{ name = "{tag}-pred", wait_consumer_s = 15 }}
[nodes.lsl_emb]
kind = "lsl_outlet"
params = {{ publish = "embeddings", name = "{tag}-emb", dim = {emb}, wait_consumer_s = 15 }}
[[edges]]
from = "src"
to = "proj"
[[edges]]
from = "proj"
to = "cls"
[[edges]]
from = "proj"
to = "lsl_emb"
[[edges]]
from = "cls"
to = "sink"
[[edges]]
from = "cls"
to = "lsl"
"""


def _inlet(source_id: str):
    found = pylsl.resolve_byprop("source_id", source_id, timeout=10)
    assert found, f"no LSL stream {source_id!r}"
    inlet = pylsl.StreamInlet(found[0])
    inlet.open_stream(timeout=5)
    return inlet


def _drain(inlets: dict, got: dict, runner: threading.Thread) -> None:
    """Pull every sample of every inlet until the graph has ended and nothing more comes."""
    quiet_since = None
    while True:
        idle = True
        for key, inlet in inlets.items():
            sample, stamp = inlet.pull_sample(timeout=0.05)
            if sample is not None:
                got[key].append((sample, stamp, pylsl.local_clock()))
                idle = False
        if runner.is_alive() or not idle:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since > 0.5:
            return


def _channels(info) -> list[str]:
    ch, out = info.desc().child("channels").child("channel"), []
    while not ch.empty():
        out.append(ch.child_value("label"))
        ch = ch.next_sibling()
    return out


def test_lsl_time_and_clear_errors():
    assert lsl_time(100.0, 5_000_000_000, 4_750_000_000) == pytest.approx(99.75)
    assert lsl_time(100.0, 5_000_000_000, None) == 100.0
    with pytest.raises(ConfigError, match="'dim' is the embedding size"):
        LslOutlet("lsl", {"dim": 4}).setup()
    node = LslOutlet("lsl", {"publish": "embeddings"})
    node.setup()  # no dim: its stream opens at the first embedding
    with pytest.raises(ValueError, match="publishes embeddings, got a 'prediction' packet"):
        node.process(Packet(kind="prediction", sample=0, meta={"pred": 1}))


def test_predictions_and_embeddings_reach_real_inlets_once(tmp_path, sockdir):
    rng = np.random.default_rng(0)
    head = ProjectionHead(HeadConfig("zs_image", "visual", DIM, [EMB]), np.zeros(DIM), np.ones(DIM),
                          [rng.normal(size=(EMB, DIM))], [np.zeros(EMB)])
    save_heads(tmp_path / "heads.npz", {"visual": head})
    emb = head.forward(feature_rows(N, DIM, 5))
    PrototypeBank.from_embeddings(emb, np.arange(N) % 3).save(tmp_path / "bank.npz")
    tag, out = f"rram-lsm-test-{os.getpid()}-{time.monotonic_ns()}", tmp_path / "out.jsonl"
    text = GRAPH.format(n=N, dim=DIM, age=AGE_MS, heads=tmp_path / "heads.npz", emb=EMB,
                        bank=tmp_path / "bank.npz", out=out, tag=tag)
    result = {}
    runner = threading.Thread(target=lambda: result.update(
        launcher=run_graph(text, tmp_path, sockdir, timeout_s=60)))
    t_start = pylsl.local_clock()
    runner.start()
    inlets = {"pred": _inlet(f"rram-lsm:{tag}-pred:predictions"),
              "emb": _inlet(f"rram-lsm:{tag}-emb:embeddings")}
    info, einfo = (inlets[k].info(timeout=5) for k in ("pred", "emb"))  # the full description
    got = {"pred": [], "emb": []}
    _drain(inlets, got, runner)
    runner.join()
    assert result["launcher"].exit_code == 0

    assert (info.type(), info.channel_count(), info.nominal_srate(), info.channel_format()) == \
        ("Predictions", len(PREDICTION_CHANNELS), pylsl.IRREGULAR_RATE, pylsl.cf_string)
    assert _channels(info) == [c[0] for c in PREDICTION_CHANNELS]
    assert info.desc().child_value("manufacturer") == "rram-lsm"
    assert (einfo.type(), einfo.channel_count(), einfo.channel_format()) == ("Embeddings", EMB, pylsl.cf_float32)
    assert _channels(einfo) == [f"e{i}" for i in range(EMB)]

    written = {r["sample"]: r for r in map(json.loads, open(out)) if r["kind"] == "prediction"}
    assert sorted(written) == list(range(N))
    rows = [dict(zip([c[0] for c in PREDICTION_CHANNELS], s)) for s, _, _ in got["pred"]]
    assert sorted(int(r["sample"]) for r in rows) == list(range(N))  # each exactly once
    for (sample, stamp, received), r in zip(got["pred"], rows):
        w = written[int(r["sample"])]
        assert int(r["pred"]) == w["pred"] and json.loads(r["topk"]) == w["topk"]
        assert json.loads(r["topk_scores"]) == w["scores"] and float(r["score"]) == w["scores"][0]
        assert int(r["label"]) == w["label"] and [r["origin_stream"], int(r["origin_epoch"]),
                                                  int(r["sample"])] == w["origin"]
        assert (int(r["t0_us"]), int(r["t1_us"])) == (w["t0"], w["t1"])
        # stamped when the data entered the graph (AGE_MS before the source sent it), on LSL's clock
        assert stamp == pytest.approx(float(r["origin_time"]), abs=1e-6)
        assert t_start - AGE_MS / 1e3 - 0.05 < stamp < received - AGE_MS / 1e3
        assert AGE_MS <= float(r["latency_ms"]) < AGE_MS + 5000
    assert len(got["emb"]) == N
    np.testing.assert_allclose([s for s, _, _ in got["emb"]], emb, rtol=1e-5, atol=1e-6)
    # an embedding and its prediction carry the same time: its data's
    np.testing.assert_allclose([t for _, t, _ in got["emb"]],
                               [float(r["origin_time"]) for r in sorted(rows, key=lambda r: int(r["sample"]))],
                               atol=2e-3)
    final = result["launcher"].latest
    assert final["lsl"]["gauges"]["pushed"] == N and final["lsl_emb"]["gauges"]["pushed"] == N
    assert final["lsl"]["gauges"]["consumers"] == 1
