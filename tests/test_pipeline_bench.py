"""The pipeline benchmark's graph is the zero-shot graph a user runs (two sources, two
200-neuron lsm nodes, two heads, one classifier, one sink), its model files load as the
nodes load them, and its sink's decision times join a prediction to its sample's last event."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

import pipeline  # noqa: E402
from pipeline_nodes import StampedSink  # noqa: E402

from rram_lsm.launch.graph import load_graph  # noqa: E402
from rram_lsm.nodes.classifier.bank import PrototypeBank  # noqa: E402
from rram_lsm.nodes.lsm.presets import get_preset  # noqa: E402
from rram_lsm.nodes.projection.heads import ProjectionHead  # noqa: E402
from rram_lsm.stream.packets import Origin, Packet, control  # noqa: E402


def test_graph_is_the_audio_visual_pair(tmp_path):
    g = load_graph(pipeline.GRAPH, pipeline.graph_args(tmp_path, "audio", 3, 1.0), tmp_path)
    kinds = {n: s.kind for n, s in g.nodes.items()}
    assert kinds == {"src_audio": "pipeline_nodes:StampedReplay", "src_visual": "pipeline_nodes:StampedReplay",
                     "lsm_audio": "lsm", "lsm_visual": "lsm", "proj_audio": "projection",
                     "proj_visual": "projection", "classifier": "crossmodal_classifier",
                     "sink": "pipeline_nodes:StampedSink"}
    for name in ("lsm_audio", "lsm_visual"):
        assert get_preset(g.nodes[name].params["preset"]).n_neurons == 200
    edges = sorted(e.name for s in g.nodes.values() for e in s.outputs)
    assert edges == sorted(["src_audio->lsm_audio", "src_visual->lsm_visual", "lsm_audio->proj_audio",
                            "lsm_visual->proj_visual", "proj_audio->classifier",
                            "proj_visual->classifier", "classifier->sink"])
    assert {e.policy for s in g.nodes.values() for e in s.outputs} == {"block"}
    # the seeded model files load the way the nodes load them
    args = pipeline.graph_args(tmp_path, "audio", 3, 1.0)
    head = ProjectionHead.load(args["heads"], modality="audio", preset="zs_audio", n_features=200)
    assert head.forward(np.ones((1, 200), np.float32)).shape == (1, pipeline.PD)
    assert PrototypeBank.load(args["banks"]["visual"]).classes == pipeline.CLASSES


def test_sink_joins_each_prediction_to_its_last_event(tmp_path):
    sink = StampedSink("sink", {"path": str(tmp_path / "p.jsonl"), "times": str(tmp_path / "t.json")})
    sink.setup()
    origin = Origin("src_audio", 5, 0)
    sink.process(control("start", origin=origin, sample=0))
    sink.process(Packet(kind="prediction", body=np.zeros((1, 3), np.float32), origin=origin, sample=0,
                        meta={"pred": 1}))
    sink.process(control("end_of_sample", origin=origin, sample=0, meta={"last_ns": 123}))
    sink.close()
    (row,) = json.loads((tmp_path / "t.json").read_text())
    assert (row["stream"], row["sample"], row["last_ns"]) == ("src_audio", 0, 123)
    assert row["pred_ns"] > 123
