"""The demo end to end as real processes (tiny built-in set, few samples, fast pacing): the
default three-source graph (audio-visual and neural-visual, the visual encoder shared), the
report exists, every figure sits beside the data it plots, and the report's accuracy per pair,
latency and energy equal what each pair's sink and the telemetry logged; one node's energy is
checked by hand (known op counts x the profile's constants read from its TOML)."""
from __future__ import annotations

import csv
import json
import tomllib
from pathlib import Path

import numpy as np
import pytest

from rram_lsm.launch.accuracy import RunningAccuracy, clopper_pearson, from_gauges, from_records
from rram_lsm.nodes.projection.train_config import TrainConfig
from rram_lsm.nodes.sources.builtin_source import BuiltinReplaySource, pick_samples
from rram_lsm.stream.node import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def test_pick_samples_balanced_held_out_and_seeded():
    labels = np.repeat(np.arange(10), 6)
    split = np.tile([0, 1, 2, 2, 2, 0], 10)
    idx = pick_samples(labels, split, 2, range(1, 10), 20, seed=3)
    assert len(idx) == 20 and len(set(idx.tolist())) == 20
    assert (split[idx] == 2).all() and (labels[idx] != 0).all()
    counts = np.bincount(labels[idx], minlength=10)[1:]
    assert counts.max() - counts.min() <= 1  # round-robin over the classes
    assert not np.array_equal(idx, pick_samples(labels, split, 2, range(1, 10), 20, seed=4))
    # asking for more than there is gives everything there is, once
    assert len(pick_samples(labels, split, 2, range(1, 10), 100, seed=0)) == 27


@pytest.mark.parametrize("params, key", [({"modality": "smell"}, "modality"),
                                         ({"modality": "audio", "size": "huge"}, "size"),
                                         ({"modality": "audio", "n_samples": 0}, "n_samples"),
                                         ({"modality": "audio", "split": "dev"}, "split")])
def test_builtin_source_bad_params_name_the_key(params, key):
    with pytest.raises(ConfigError, match=key):
        BuiltinReplaySource("src", params)


def test_running_accuracy_pools_and_chance():
    acc = RunningAccuracy((1, 2), (8, 9), 1 / 9)
    for label, pred in ((1, 1), (2, 1), (8, 8), (9, 9), (9, 3), (5, 5)):
        acc.add(label, pred, "audio")
    d = acc.as_dict()
    assert (d["seen"]["n"], d["seen"]["correct"]) == (2, 1)
    assert (d["unseen"]["n"], d["unseen"]["correct"]) == (3, 2)  # label 5 is in neither pool
    assert "chance 11.1% (1/9 classes)" in acc.line()
    # H of the per-sample rates 1/2 and 2/3, and the exact (Clopper-Pearson) interval of 2/3
    assert acc.h == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))
    low, high = d["unseen"]["ci95_exact"]
    assert (low, high) == pytest.approx((0.094299, 0.991596), abs=1e-6)
    assert "H 57.1%" in acc.line() and "exact 95% CI 9.4%-99.2%" in acc.line()
    assert clopper_pearson(0, 10)[0] == 0.0 and clopper_pearson(10, 10)[1] == 1.0
    assert clopper_pearson(0, 0) is None


def test_unseen_trials_split_into_pool_and_transfer():
    """Calibration can send unseen trials to the unseen pool without transfer: the line
    counts both, and the right-label rate inside the pool is against 1/|unseen|."""
    from rram_lsm.launch.demo import within_unseen_line

    recs = [{"kind": "prediction", "label": lab, "pred": pred}
            for lab, pred in ((8, 8), (8, 9), (9, 9), (9, 3), (1, 8), (9, 8))]
    recs.append({"kind": "control", "label": 8, "pred": 8})
    line = within_unseen_line(recs, (8, 9))
    lo, hi = clopper_pearson(2, 4)
    assert f"unseen class: 4/5; of those, the right one 2/4 = 50.0% (exact 95% CI " \
           f"{lo:.1%}-{hi:.1%}) vs chance 50.0% inside the unseen pool" in line


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    from rram_lsm.experiments.config import ExperimentConfig
    from rram_lsm.experiments.demo_model import ModelConfig
    from rram_lsm.launch.demo import BOTH, DemoConfig, run_demo

    out = tmp_path_factory.mktemp("demo") / "run"
    # windowed rates (2 per sample): the lsm nodes emit 400 values, the heads take them
    exp = ExperimentConfig(size="tiny", gain_factors=(1.0,), windows=2,
                           heads=TrainConfig(epochs=5, threads=2))
    # ideal LSM: the live features equal the offline ones (RRAM read noise is drawn per read)
    cfg = DemoConfig(ModelConfig(device="ideal", experiment=exp, sweep_splits=2, sweep_epochs=2),
                     pairs=BOTH, samples=9, speed=50.0, out=out, dashboard=False, raster_samples=1)
    code, report = run_demo(cfg, log=lambda s: None)
    return cfg, code, report, out


def _final_reports(path: Path) -> dict[str, dict]:
    latest = {}
    for line in path.read_text().splitlines():
        r = json.loads(line)
        if "node" in r and "event" not in r:
            latest[r["node"]] = r
    return latest


def test_demo_report_matches_the_logs(demo_run):
    cfg, code, report, run = demo_run
    assert code == 0
    assert report.exists() and report.name == "report.html"
    html = report.read_text()
    # every figure is saved beside the data it plots (per pair where a pair has its own)
    pngs = sorted((run / "figures").glob("*.png"))
    names = {p.stem for p in pngs}
    assert {"latency", "energy_nodes", "energy_ops", "raster_audio", "raster_neural",
            "raster_visual"} <= names
    for pair in PAIRS:
        assert {f"{f}_{pair}" for f in ("accuracy", "confusion_seen", "confusion_unseen",
                                        "similarity", "sweep")} <= names
    for p in pngs:
        assert p.with_suffix(".json").exists() or p.with_suffix(".csv").exists(), p
        assert f'src="figures/{p.name}"' in html

    summary = json.loads((run / "summary.json").read_text())
    tel = _final_reports(run / "telemetry.jsonl")
    heads = cfg.model.experiment.heads
    n_preds = 0
    for pair, k in PAIRS.items():
        preds = _predictions(run, pair)
        n_preds += len(preds)
        assert len(preds) == 2 * cfg.samples  # every held-out sample of both modalities, once
        assert len({tuple(r["origin"]) for r in preds}) == len(preds)
        # accuracy: the report = the pair's sink = its classifier's telemetry counts
        acc = summary["pairs"][pair]["accuracy"]
        for pool, classes in (("seen", heads.seen), ("unseen", heads.unseen)):
            rows = [r for r in preds if r["label"] in classes]
            correct = sum(r["pred"] == r["label"] for r in rows)
            assert acc[pool]["n"] == len(rows) > 0
            assert acc[pool]["correct"] == correct
            g = tel[f"classifier_{k}"]["gauges"]
            assert (g[f"{pool}_n"], g[f"{pool}_correct"]) == (len(rows), correct)
            assert f"{correct / len(rows):.1%} ({correct}/{len(rows)})" in html
        assert acc["chance"] == pytest.approx(1 / 9)
        conf = list(csv.reader(open(run / "figures" / f"confusion_unseen_{pair}.csv")))
        assert sum(int(v) for row in conf[1:] for v in row[1:]) == acc["unseen"]["n"]
    assert summary["accuracy"]["unseen"]["n"] == sum(
        summary["pairs"][p]["accuracy"]["unseen"]["n"] for p in PAIRS)   # pooled over pairs

    # latency: per node p50/p99 as the final telemetry logged them, in the report and its data
    lat = json.loads((run / "figures" / "latency.json").read_text())["per_node_us"]
    for node in ("lsm_audio", "lsm_neural", "lsm_visual", "proj_audio", "proj_neural",
                 "proj_visual_av", "proj_visual_nv", "classifier_av", "classifier_nv"):
        for q in ("p50", "p99"):
            logged = tel[node]["latency_us"][q]
            assert summary["latency_us"][node][q] == logged == lat[node][q]
        assert f"<td>{node}</td><td>{tel[node]['latency_us']['n']}</td><td>" \
               f"{tel[node]['latency_us']['p50']:.0f} µs" in html

    # energy: per node as telemetry logged it; per inference = sum over nodes / inferences
    e = json.loads((run / "figures" / "energy_nodes.json").read_text())
    n_inf = sum(tel[f"classifier_{k}"]["gauges"]["inferences"] for k in PAIRS.values())
    assert e["inferences"] == n_inf == n_preds      # both classifiers' inferences
    for prof in ("rram_macro", "digital_45nm_event"):
        logged = {n: r["energy_pj"][prof]["total"] for n, r in tel.items() if r.get("energy_pj")}
        assert e["per_node_pj"][prof] == logged
        per_inf = sum(logged.values()) / n_inf
        assert summary["energy"]["per_inference_pj"][prof] == pytest.approx(per_inf, rel=1e-12)
        assert f"{per_inf / 1e3:.3f} nJ" in html
    ratio = (summary["energy"]["per_inference_pj"]["digital_45nm_event"]
             / summary["energy"]["per_inference_pj"]["rram_macro"])
    assert summary["energy"]["ratio_to_rram"]["digital_45nm_event"] == pytest.approx(ratio)
    assert any(r.get("op") == "cell_reads" for r in summary["sensitivity"])

    # the graph asks the lsm nodes for the windowed rates the heads were trained on
    from rram_lsm.nodes.projection.heads import load_heads
    # (2 x 200 neurons for audio and visual, 2 x 2,048 for neural)
    n_features = {m: h.n_features for pair in PAIRS
                  for m, h in load_heads(run / f"model-{pair}" / "heads.npz").items()}
    assert n_features == {"audio": 400, "visual": 400, "neural": 4096}
    # the run folder's graph.toml is launch/graphs/demo.toml with this run's args
    from rram_lsm.launch.graph import load_graph
    graph = load_graph(run / "graph.toml")
    assert {n: s.params["windows"] for n, s in graph.nodes.items() if s.kind == "lsm"} \
        == {"lsm_audio": 2, "lsm_neural": 2, "lsm_visual": 2}
    assert graph.nodes["proj_audio"].params["weights"] == \
        str(run / "model-audio-visual" / "heads.npz")
    assert graph.nodes["proj_visual_nv"].params["weights"] == \
        str(run / "model-neural-visual" / "heads.npz")
    assert graph.nodes["src_visual"].params["n_samples"] == cfg.samples
    assert graph.nodes["src_visual"].params["half"] == 0   # neural trials come from half B
    assert tomllib.loads((run / "graph.toml").read_text())["include"] == \
        [str(ROOT / "launch" / "graphs" / "demo.toml")]

    # no process left behind: every node exited 0
    events = [json.loads(l) for l in (run / "telemetry.jsonl").read_text().splitlines()]
    exited = {r["node"]: r["returncode"] for r in events if r.get("event") == "exited"}
    assert len(exited) == 14 and set(exited.values()) == {0}


def test_classifier_energy_by_hand(demo_run):
    """The classifier's op counts follow from the bank's size; priced by the TOML's constants."""
    cfg, _, _, run = demo_run
    r = _final_reports(run / "telemetry.jsonl")["classifier_nv"]
    heads = cfg.model.experiment.heads
    n, dim, refs = r["gauges"]["inferences"], heads.pd, len(heads.seen + heads.unseen)
    macs = n * (refs + 1) * dim   # normalise the query, then one cosine per prototype of 1-9
    assert r["ops"] == {"macs": macs}  # the bank is in on-chip SRAM: no bytes_moved
    prof = tomllib.loads((ROOT / "launch" / "profiles" / "rram_macro.toml").read_text())["ops"]
    assert prof["macs"]["unit"] == "pJ"
    assert r["energy_pj"]["rram_macro"]["total"] == macs * prof["macs"]["value"]
    assert r["energy_pj"]["rram_macro"]["macs"] == macs * prof["macs"]["value"]


def test_gauge_accuracy_equals_record_accuracy(demo_run):
    cfg, _, _, run = demo_run
    heads = cfg.model.experiment.heads
    tel = _final_reports(run / "telemetry.jsonl")
    for pair, k in PAIRS.items():
        a = from_records(_predictions(run, pair), heads.seen, heads.unseen).as_dict()
        g = from_gauges(tel[f"classifier_{k}"]["gauges"], heads.seen, heads.unseen).as_dict()
        assert [(a[p]["n"], a[p]["correct"]) for p in ("seen", "unseen")] == \
               [(g[p]["n"], g[p]["correct"]) for p in ("seen", "unseen")]


def test_ctrl_c_mid_stream_stops_every_process_and_still_writes_the_report(tmp_path):
    """Ctrl-C (SIGINT to the foreground process group, as a terminal sends it) while the graph
    streams: exit code 130, every process the demo started gone, and a report of what there was."""
    import os
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "run"
    proc = subprocess.Popen(
        # one pair and the paper's recipe keep this test's encoding cost (the fixture runs
        # the three-source graph)
        [sys.executable, "-m", "rram_lsm", "demo", "--size", "tiny", "--samples", "9",
         "--pair", "audio-visual", "--loss", "paper", "--windows", "1",
         "--speed", "1", "--epochs", "3", "--no-dashboard", "--out", str(out)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True)
    lines = []
    try:
        for line in proc.stdout:  # wait until the nodes stream, then a little more
            lines.append(line)
            if "sources_started" in line:
                break
        time.sleep(1.0)
        assert proc.poll() is None, "".join(lines)
        started = _descendants(proc.pid)
        os.killpg(proc.pid, signal.SIGINT)
        rest, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    log = "".join(lines) + rest
    assert proc.returncode == 130, log
    # the nodes (own sessions) and every helper; multiprocessing's resource tracker ends by
    # itself once its parent has gone, so it is not the demo's to stop
    nodes = {p: c for p, c in started.items() if "resource_tracker" not in c}
    assert sum(" node --spec " in c for c in nodes.values()) == 8, started  # the whole graph
    deadline = time.monotonic() + 5
    while [p for p in nodes if _running(p)] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert [nodes[p] for p in nodes if _running(p)] == [], "processes outlived the demo"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["info"]["interrupted"] is True
    assert (out / "report.html").is_file() and "report:" in log


def _stat(pid: int) -> list[str] | None:
    try:
        text = open(f"/proc/{pid}/stat").read()
    except OSError:
        return None
    return text[text.rindex(")") + 2:].split()  # state, ppid, ...


def _running(pid: int) -> bool:
    """Alive and not a zombie (a zombie has exited; only its exit status is left)."""
    st = _stat(pid)
    return st is not None and st[0] != "Z"


def _descendants(root: int) -> dict[int, str]:
    """Every process below ``root``, with its command line."""
    import os

    parent = {}
    for name in filter(str.isdigit, os.listdir("/proc")):
        st = _stat(int(name))
        if st is not None:
            parent[int(name)] = int(st[1])
    found, frontier = {}, [root]
    while frontier:
        p = frontier.pop()
        for child, par in parent.items():
            if par == p and child not in found:
                try:
                    found[child] = open(f"/proc/{child}/cmdline").read().replace("\0", " ")
                except OSError:
                    found[child] = ""
                frontier.append(child)
    return found


def test_demo_config_names_a_bad_loss_or_temperature():
    from rram_lsm.experiments.config import ExperimentConfig
    from rram_lsm.experiments.demo_model import ModelConfig
    from rram_lsm.launch.demo import DemoConfig

    def demo(windows=1, **heads):
        exp = ExperimentConfig(windows=windows, heads=TrainConfig(**heads))
        return DemoConfig(ModelConfig(experiment=exp))
    with pytest.raises(ValueError, match="--loss"):
        demo(loss="triplet").check()
    with pytest.raises(ValueError, match="--temperature"):
        demo(loss="supcon", temperature=0.0).check()
    with pytest.raises(ValueError, match="--windows"):
        demo(windows=0).check()
    demo(loss="supcon", temperature=0.1, windows=4).check()


def test_live_predictions_are_the_offline_gzsl_predictions(demo_run):
    """Lossless (block) edges, zero drops: in both pairs of the three-source graph, every
    live label is calibrated stacking (``gzsl.predict``) on the offline features of the same
    replayed sample, through the same pair's head, row by row (a one-row matmul sums in
    another order than a batch), and the bank the run used carries the seen classes and the
    validation-chosen constant."""
    from rram_lsm.experiments.store import FeatureStore

    cfg, code, _, run = demo_run
    assert code == 0
    exp = cfg.model.experiment
    tel = _final_reports(run / "telemetry.jsonl")
    assert len(tel) == 14
    for node, r in tel.items():
        assert sum(sum(e.get("events_dropped", {}).values())
                   for e in (r.get("edges") or {}).values()) == 0, node
    store = FeatureStore(exp, log=lambda s: None)
    gammas = set()
    for m in cfg.models():
        _live_equals_offline(m, cfg.samples, run, store, gammas)
    assert gammas != {0.0}       # the live banks do calibrate (a constant was chosen)


def _live_equals_offline(m, samples: int, run: Path, store, gammas: set) -> None:
    """One pair of the run: its live labels against ``gzsl.predict`` offline."""
    from rram_lsm.experiments.demo_model import chosen_samples
    from rram_lsm.experiments.features import DEFAULT_PRESETS, encode_modality
    from rram_lsm.nodes.classifier import gzsl
    from rram_lsm.nodes.classifier.bank import PrototypeBank
    from rram_lsm.nodes.projection.heads import load_heads

    exp, model = m.experiment, run / f"model-{m.pair}"
    info_gzsl = json.loads((model / "model.json").read_text())["gzsl"]
    heads = load_heads(model / "heads.npz")
    recs = _predictions(run, m.pair)
    for query in m.modalities:
        bank = PrototypeBank.load(model / f"bank_for_{query}.npz")
        assert bank.seen == tuple(exp.heads.seen)
        assert bank.calibration == pytest.approx(info_gzsl[query]["gamma"])
        gammas.add(bank.calibration)
        ms, idx = chosen_samples(m, store.dataset, query, samples)
        fs = encode_modality(ms, DEFAULT_PRESETS[query], m.device, exp.reservoir_seed,
                             overrides={"const": _const(run, query)},
                             source=store.source(query), windows=exp.windows)
        emb = np.stack([heads[query].forward(fs.features[i][None])[0] for i in idx])
        scores, classes = bank.scores(emb)
        offline = gzsl.predict(scores, classes, bank.seen, bank.calibration)
        live = {r["origin"][2]: r for r in recs if r["origin"][0] == f"src_{query}"}
        assert sorted(live) == list(range(len(idx)))
        assert [live[k]["label"] for k in range(len(idx))] == ms.labels[idx].tolist()
        assert [live[k]["pred"] for k in range(len(idx))] == offline.tolist()


PAIRS = {"audio-visual": "av", "neural-visual": "nv"}   # pair -> its node suffix


def _predictions(run: Path, pair: str) -> list[dict]:
    """The prediction records of one pair's sink."""
    recs = [json.loads(l) for l in (run / f"predictions-{pair}.jsonl").read_text().splitlines()]
    return [r for r in recs if r["kind"] == "prediction"]


def _const(run: Path, modality: str) -> float:
    """The reservoir gain the run's graph gave ``modality``'s lsm node."""
    from rram_lsm.launch.graph import load_graph

    node = load_graph(run / "graph.toml").nodes[f"lsm_{modality}"]
    return float(node.params["overrides"]["const"])
