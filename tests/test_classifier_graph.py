"""source -> lsm -> projection -> classifier -> sink as real processes: labels samples, takes a
new class at run time and then predicts it, rejects an input far from every prototype."""
from __future__ import annotations

import json

import numpy as np

from conftest import run_graph
from rram_lsm.nodes.classifier.bank import PrototypeBank
from rram_lsm.nodes.lsm.binning import bin_events, event_addresses
from rram_lsm.nodes.lsm.presets import get_preset
from rram_lsm.nodes.lsm.reservoir import LifReservoir
from rram_lsm.nodes.projection.heads import HeadConfig, ProjectionHead, save_heads
from rram_lsm.nodes.sources.synthetic import SyntheticDvsSource, synthetic_sample

SRC = {"n_samples": 12, "n_classes": 4, "rate_hz": 40000, "sample_ms": 100, "geometry": [16, 16]}

GRAPH = """
[graph]
name = "zero-shot"
[nodes.src]
kind = "graphnodes:ScriptedDvsSource"
params = {{ n_samples = 12, n_classes = 4, rate_hz = 40000, sample_ms = 100, geometry = [16, 16], seed = 1, bank_after = 3, bank_file = "{edit}" }}
[nodes.lsm]
kind = "lsm"
params = {{ preset = "zs_image" }}
[nodes.proj]
kind = "projection"
params = {{ weights = "{heads}", modality = "visual" }}
[nodes.cls]
kind = "classifier"
params = {{ bank = "{bank}", threshold = {threshold}, topk = 2 }}
[nodes.sink]
kind = "jsonl_sink"
params = {{ path = "{out}" }}
[[edges]]
from = "src"
to = "lsm"
[[edges]]
from = "lsm"
to = "proj"
[[edges]]
from = "proj"
to = "cls"
[[edges]]
from = "cls"
to = "sink"
"""


def features(samples):
    cfg = get_preset("zs_image")
    res = LifReservoir(cfg, "ideal")
    out = []
    for ev, _ in samples:
        t, addr, n_in = event_addresses(ev, (16, 16), polarity=cfg.polarity, crop=cfg.crop)
        ptr, idx = bin_events(t, addr, n_in, mode="fixed_count", n_bins=cfg.n_bins)
        res.reset()
        out.append(res.run(ptr, idx).features)
    return np.array(out)


def test_zero_shot_graph(tmp_path, sockdir):
    rng = np.random.default_rng(0)
    train = list(SyntheticDvsSource("t", {**SRC, "n_samples": 24, "seed": 99})._samples())
    f_train = features(train)
    y_train = np.array([y for _, y in train])
    # a closed-form head: the first rows point at the standardised class means of 0-3
    mean, std = f_train.mean(0), f_train.std(0) + 1e-3
    z = (f_train - mean) / std
    w = np.vstack([np.stack([z[y_train == c].mean(0) for c in range(4)]), rng.normal(0, 0.01, (60, 200))])
    head = ProjectionHead(HeadConfig("zs_image", "visual", 200, [64]), mean, std, [w], [np.zeros(64)])
    save_heads(tmp_path / "heads.npz", {"visual": head})
    e_train = head.forward(f_train)
    seen = y_train < 3
    bank = PrototypeBank.from_embeddings(e_train[seen], y_train[seen])
    # the threshold sits between the noise sample's best score and every real sample's
    test = list(SyntheticDvsSource("t", {**SRC, "seed": 1})._samples())
    noise = synthetic_sample(np.random.default_rng(123), "random", 0, (16, 16), 40000, 100_000)
    e_test, e_noise = head.forward(features(test)), head.forward(features([(noise, 99)]))
    full = PrototypeBank.from_embeddings(e_train, y_train)
    best_real = full.scores(e_test)[0].max(axis=1).min()
    best_noise = full.scores(e_noise)[0].max()
    assert best_noise < best_real, "test setup: noise must be separable from real samples"
    threshold = float((best_noise + best_real) / 2)
    bank.save(tmp_path / "bank.npz")
    edit = {"op": "add_class", "label": 3, "embeddings": e_train[y_train == 3].tolist()}
    (tmp_path / "edit.json").write_text(json.dumps(edit))
    out = tmp_path / "out.jsonl"
    launcher = run_graph(GRAPH.format(edit=tmp_path / "edit.json", heads=tmp_path / "heads.npz",
                                      bank=tmp_path / "bank.npz", threshold=threshold, out=out),
                         tmp_path, sockdir)
    assert launcher.exit_code == 0
    preds = {r["sample"]: (r["label"], r["pred"]) for r in map(json.loads, open(out))
             if r["kind"] == "prediction"}
    assert len(preds) == 13
    assert preds[999] == (99, -1)  # far from every prototype: rejected as unknown
    assert preds[3][1] != 3  # class 3 not in the bank yet
    assert preds[7] == (3, 3) and preds[11] == (3, 3)  # added at run time, then predicted
    correct = [label == pred for s, (label, pred) in preds.items() if s not in (3, 999)]
    assert np.mean(correct) >= 0.9
