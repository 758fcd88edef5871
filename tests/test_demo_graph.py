"""The demo's and live's graphs are graph files (launch/graphs/demo.toml, demo_pair.toml,
live.toml) whose [args] the commands fill in: node names and table keys take arguments, a
table argument replaces the included default whole, the three-source graph shares the visual
encoder between its two pairs, and the run folder's record reads back as the same graph."""
from __future__ import annotations

import pytest

from rram_lsm.launch.demo import GRAPHS, write_graph
from functools import partial

from rram_lsm.launch.graph import GraphError
from rram_lsm.launch.graph import load_graph as _load_graph

# The structure of the graph files, not the models they name (made by the demo's first stage).
load_graph = partial(_load_graph, check_files=False)

NEURAL = {"name": "demo-neural-visual", "query": "neural", "query_preset": "bmi_neural",
          "query_const": 0.002, "banks": {"neural": "n.npz", "visual": "v.npz"},
          "query_source": {"size": "tiny", "modality": "neural", "split": "test", "n_samples": 5},
          "visual_source": {"size": "tiny", "modality": "visual", "split": "test", "n_samples": 5,
                            "half": 0}}


def test_three_source_graph_shares_the_visual_encoder_between_two_pairs():
    g = load_graph(GRAPHS / "demo.toml")
    assert g.sources == ["src_audio", "src_neural", "src_visual"]
    assert len(g.nodes) == 14
    out = {n: sorted(e.name.split("->")[1] for e in s.outputs) for n, s in g.nodes.items()}
    assert out["lsm_visual"] == ["proj_visual_av", "proj_visual_nv"]   # one encoder, both pairs
    into = {}
    for n, targets in out.items():
        for t in targets:
            into.setdefault(t, []).append(n)
    assert sorted(into["classifier_av"]) == ["proj_audio", "proj_visual_av"]
    assert sorted(into["classifier_nv"]) == ["proj_neural", "proj_visual_nv"]
    assert (into["sink_av"], into["sink_nv"]) == (["classifier_av"], ["classifier_nv"])
    # each pair's heads and banks; every edge lossless, so live labels equal offline ones
    assert g.nodes["proj_visual_nv"].params["weights"] == g.nodes["proj_neural"].params["weights"]
    assert g.nodes["proj_visual_av"].params["weights"] != g.nodes["proj_visual_nv"].params["weights"]
    assert set(g.nodes["classifier_nv"].params["banks"]) == {"neural", "visual"}
    assert {e.policy for s in g.nodes.values() for e in s.outputs} == {"block"}
    # the visual source replays half A: neural trials are written from half B
    assert g.nodes["src_visual"].params["half"] == 0


def test_demo_graph_takes_the_pair_from_its_args():
    g = load_graph(GRAPHS / "demo_pair.toml", NEURAL)
    assert g.name == "demo-neural-visual"
    assert sorted(g.nodes) == ["classifier", "lsm_neural", "lsm_visual", "proj_neural",
                               "proj_visual", "sink", "src_neural", "src_visual"]
    assert g.sources == ["src_neural", "src_visual"]
    # the banks table is the argument as given, not merged with the audio-visual default
    assert g.nodes["classifier"].params["banks"] == {"neural": "n.npz", "visual": "v.npz"}
    assert g.nodes["src_visual"].params == NEURAL["visual_source"]
    lsm = g.nodes["lsm_neural"].params
    assert (lsm["preset"], lsm["overrides"]["const"]) == ("bmi_neural", 0.002)
    assert g.nodes["proj_neural"].params["modality"] == "neural"
    # defaults: the audio-visual graph
    assert sorted(load_graph(GRAPHS / "demo_pair.toml").nodes)[1:3] == ["lsm_audio", "lsm_visual"]


def test_run_record_reads_back_as_the_same_graph(tmp_path):
    path = write_graph(GRAPHS / "demo_pair.toml", NEURAL, tmp_path / "graph.toml")
    again, direct = load_graph(path), load_graph(GRAPHS / "demo_pair.toml", NEURAL)
    assert {n: (s.kind, s.params) for n, s in again.nodes.items()} == \
           {n: (s.kind, s.params) for n, s in direct.nodes.items()}
    with pytest.raises(ValueError, match="query_source.half"):
        write_graph(GRAPHS / "demo_pair.toml", {**NEURAL, "query_source": {"half": None}},
                    tmp_path / "bad.toml")


def test_live_graph_segments_live_inputs_and_passes_replays_through():
    args = {"query": "audio", "visual_kind": "builtin_replay",
            "visual_source": {"size": "tiny", "modality": "visual"},
            "visual_segmenter": "passthrough", "visual_segment": {}, "visual_policy": "block"}
    g = load_graph(GRAPHS / "live.toml", args)
    kinds = {n: s.kind for n, s in g.nodes.items() if n[:3] in ("src", "seg")}
    assert kinds == {"src_audio": "microphone", "seg_audio": "segmenter",
                     "src_visual": "builtin_replay", "seg_visual": "passthrough"}
    assert g.nodes["seg_visual"].params == {}   # not the segmenter's default settings
    policy = {e.name: e.policy for s in g.nodes.values() for e in s.outputs}
    assert policy["src_audio->seg_audio"] == "drop" and policy["src_visual->seg_visual"] == "block"


def test_an_argument_in_a_node_name_must_be_declared(tmp_path):
    (tmp_path / "g.toml").write_text('[nodes."src_${who}"]\nkind = "synthetic_dvs"\n')
    with pytest.raises(GraphError, match=r"unknown argument \$\{who\}"):
        load_graph(tmp_path / "g.toml")
