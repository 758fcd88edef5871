"""The experiment pipeline end to end on the tiny built-in dataset: eval, train, sweep, devices."""
from __future__ import annotations

import json

import numpy as np
import pytest

import rram_lsm.nodes.lsm  # noqa: F401
from rram_lsm.launch.cli import main
from rram_lsm.nodes.lsm.rram import DeviceConfig
from rram_lsm.experiments.config import ExperimentConfig
from rram_lsm.experiments.eval import PAPER, EvalConfig
from rram_lsm.experiments.markdown import results_markdown
from rram_lsm.experiments.results import EvalResults
from rram_lsm.experiments.robustness import ROBUSTNESS_FULL, device_label, robustness_device
from rram_lsm.experiments.store import FeatureStore, pair_data
from rram_lsm.experiments.sweep import pick_splits
from rram_lsm.nodes.projection.train_config import TrainConfig

FAST = ["--devices", "ideal", "--epochs", "8", "--train-seeds", "2", "--no-raw-probe",
        "--splits", "3", "--seeds", "1", "--neural-neurons", "100", "--gain-factors", "1"]


def _md_table(md: str) -> list[list[str]]:
    rows = []
    for line in md.splitlines():
        if line.startswith("| ") and not line.startswith("| experiment") and "---" not in line:
            rows.append([c.strip() for c in line.strip().strip("|").split("|")])
    return rows


def test_eval_writes_markdown_equal_to_json(tmp_path, capsys):
    out = tmp_path / "res"
    assert main(["eval", "--size", "tiny", "--sweep", "reduced", *FAST, "--out", str(out)]) == 0
    res = json.loads((out / "results.json").read_text())
    md = (out / "results.md").read_text()
    table = res["table"]
    rows = _md_table(md.split("## ")[0])
    assert len(rows) == len(table) > 10
    for r, row in zip(table, rows):
        assert row[0] == r["experiment"]
        # the Markdown number is the JSON number ("—" only where no epoch met the authors' rule)
        if r["ours"] is None:
            assert row[2] == "—" and "no epoch meets it" in r["note"]
        else:
            assert row[2] == f"{r['ours']:.2f}" and 0 <= r["ours"] <= 100
        assert r["chance"] is not None and row[4] == f"{r['chance']:.2f}"
        assert row[5] == ("—" if r["paper"] is None else f"{r['paper']:.2f}")
        assert 0 < r["chance"] < 100
    papers = {r["paper"] for r in table}
    assert {PAPER["probe_visual"], PAPER["probe_audio"], PAPER["av_seen"], PAPER["av_unseen"]} <= papers
    by = {r["experiment"]: r for r in table}
    # chance levels of the paper's pools: 7 seen classes, 2 unseen
    assert by["audio->image retrieval seen 1-7 (ideal)"]["chance"] == pytest.approx(100 / 7, abs=0.01)
    assert by["audio->image retrieval unseen 8-9 (ideal)"]["chance"] == pytest.approx(50.0)
    # the JSON agrees with itself: table rows come from the per-experiment results
    z = res["zero_shot"]["ideal"]["audio-visual"]["summary"]
    assert by["audio->image retrieval seen 1-7 (ideal)"]["ours"] == round(100 * z["seen_a_to_b"]["mean"], 2)
    assert by["linear probe, audio, LSM (ideal)"]["ours"] == round(
        100 * res["probes"]["ideal"]["audio"]["lsm"]["test"], 2)
    # the sweep: mean, a 95% interval around it and chance, for both settings
    for pair in ("audio-visual", "neural-visual"):
        sm = res["sweep"][pair]["summary"]["unseen_a_to_b"]
        assert sm["ci_low"] <= sm["mean"] <= sm["ci_high"] and sm["chance"] == pytest.approx(0.5)
        assert sm["n_splits"] == 3 and (out / f"sweep_{pair}.png").stat().st_size > 1000
        assert np.asarray(res["sweep"][pair]["acc"]["unseen_a_to_b"]).shape == (3, 1)
    assert "95% CI" in md and "authors' test-set rule" in md
    # the heads learned the seen classes: clearly above the 1/7 chance on the probe's data
    assert z["proto_seen_a_to_b"]["mean"] > 1 / 7 + 0.1
    assert res["calibration"]["visual/ideal"]["points"]
    # generalised zero-shot for every pair, both directions; the Markdown table is the JSON
    gz = md.split("## Generalised zero-shot")[1].split("## ")[0]
    gz_rows = [r for r in _md_table(gz) if r[0] != "pair"]
    assert len(gz_rows) == 4
    for row in gz_rows:
        g = res["gzsl"]["ideal"][row[0]]
        d = "a_to_b" if row[2].startswith(("audio", "neural")) else "b_to_a"
        sm = g["summary"][d]
        assert row[3] == f"{sm['gamma']['mean']:.3f}"
        assert row[6].split(" ")[0] == f"{100 * sm['h_0']['mean']:.1f}"
        assert row[9].split(" ")[0] == f"{100 * sm['h_cal']['mean']:.1f}"
        assert row[10] == "11.1" and row[12] == "3.6"
        for run in g["runs"]:
            assert not {c for p in run["pseudo_unseen"] for c in p} & {8, 9}


def test_train_saves_heads_banks_and_config(tmp_path, capsys):
    from rram_lsm.nodes.classifier.bank import PrototypeBank
    from rram_lsm.nodes.projection.heads import load_heads

    out = tmp_path / "heads"
    assert main(["train", "--pair", "audio-visual", "--size", "tiny", "--epochs", "8",
                 "--gain-factors", "1", "--format", "npz", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "selected epoch" in text and "authors' test-set rule" in text
    heads = load_heads(out / "heads.npz")
    assert set(heads) == {"audio", "visual"} and heads["audio"].pd == 64
    emb = heads["visual"].forward(np.zeros((3, 200), np.float32))
    assert emb.shape == (3, 64) and np.allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-5)
    bank = PrototypeBank.load(out / "bank_visual.npz")
    assert bank.classes == list(range(10)) and bank.dim == 64
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["seen"] == [1, 2, 3, 4, 5, 6, 7] and cfg["selected_epoch"] >= 1
    assert (cfg["loss"], cfg["temperature"]) == ("paper", 1.0)
    # the validation-chosen neural-visual loss is one option away, and really trains with it
    sup = tmp_path / "supcon"
    assert main(["train", "--pair", "audio-visual", "--size", "tiny", "--epochs", "8",
                 "--gain-factors", "1", "--format", "npz", "--loss", "supcon", "--out", str(sup)]) == 0
    cfg = json.loads((sup / "config.json").read_text())
    assert (cfg["loss"], cfg["temperature"]) == ("supcon", 0.1)
    other = load_heads(sup / "heads.npz")["visual"].forward(np.ones((3, 200), np.float32))
    assert not np.allclose(other, heads["visual"].forward(np.ones((3, 200), np.float32)))
    # windowed rates: heads take 3 x 200 features, the config says so, the gain is the same
    win = tmp_path / "windows"
    assert main(["train", "--pair", "audio-visual", "--size", "tiny", "--epochs", "8",
                 "--gain-factors", "1", "--format", "npz", "--windows", "3", "--out", str(win)]) == 0
    wcfg = json.loads((win / "config.json").read_text())
    assert wcfg["windows"] == 3 and wcfg["consts"] == cfg["consts"]
    assert load_heads(win / "heads.npz")["audio"].n_features == 600
    assert main(["train", "--size", "tiny", "--seen", "1,2", "--unseen", "2,3",
                 "--out", str(out)]) == 2
    assert "overlap" in capsys.readouterr().err
    assert main(["train", "--size", "tiny", "--windows", "0", "--out", str(out)]) == 2
    assert "--windows" in capsys.readouterr().err


def test_bad_eval_options_are_plain_errors(tmp_path, capsys):
    assert main(["eval", "--size", "tiny", "--splits", "1", "--out", str(tmp_path)]) == 2
    assert "--splits" in capsys.readouterr().err
    assert main(["eval", "--size", "tiny", "--devices", "gpu", "--out", str(tmp_path)]) == 2
    assert "--devices" in capsys.readouterr().err
    assert main(["eval", "--size", "tiny", "--baselines", "-1", "--out", str(tmp_path)]) == 2
    assert "--baselines" in capsys.readouterr().err
    assert main(["eval", "--size", "tiny", "--temperature", "0", "--out", str(tmp_path)]) == 2
    assert "--temperature" in capsys.readouterr().err


def test_loss_names_of_the_cli_are_the_trainer_losses():
    from rram_lsm.launch.commands.eval import LOSS_NAMES
    from rram_lsm.nodes.projection.train import LOSSES
    assert sorted(LOSS_NAMES) == sorted(LOSSES)


def test_eval_baselines_compare_accuracy_and_training_cost(tmp_path, capsys):
    out = tmp_path / "res"
    assert main(["eval", "--size", "tiny", *FAST, "--pairs", "audio-visual", "--baselines", "1",
                 "--out", str(out)]) == 0
    res = json.loads((out / "results.json").read_text())["baselines"]
    md = (out / "results.md").read_text()
    zs = {r["method"]: r for r in res["zero_shot"]}
    assert list(zs) == ["LSM-CLIP", "LSM prototypical net", "SRNN-CLIP", "SRNN prototypical net"]
    assert zs["SRNN-CLIP"]["epochs_run"] == 1 and zs["LSM-CLIP"]["epochs_run"] == 8
    # the paper's claim, on the paper's encoder sizes: head-only training >100x cheaper
    assert res["cost_ratio"]["SRNN-CLIP"] > 100
    assert res["cost_ratio"]["SRNN-CLIP"] == pytest.approx(
        zs["SRNN-CLIP"]["macs_protocol"] / zs["LSM-CLIP"]["macs_protocol"])
    sup = [(r["method"], r["modality"]) for r in res["supervised"]]
    assert sup == [("SRNN + ANN readout", "visual"), ("RNN (200 tanh units)", "visual"),
                   ("SRNN + ANN readout", "audio"), ("RNN (200 tanh units)", "audio")]
    assert [e["modality"] for e in res["encoding"]] == ["audio", "visual"]
    assert all(e["dense_macs"] > 0 for e in res["encoding"])
    section = md.split("## The paper's comparison")[1]
    for r in res["zero_shot"]:
        assert f"| {r['method']} |" in section and f"{100 * r['seen']:.1f}" in section
    assert "LSM + linear readout (probe)" in section


def test_splits_and_robustness_devices():
    assert len(pick_splits(None)) == 36
    nine = pick_splits(9)
    assert len(set(nine)) == 9 and set().union(*map(set, nine)) == set(range(1, 10))
    rram = DeviceConfig.rram()
    for param, values in ROBUSTNESS_FULL.items():
        for v in values:
            d = robustness_device(param, v)
            changed = {k for k in rram.as_dict() if getattr(d, k) != getattr(rram, k)}
            if param == "stuck_frac":
                assert d.stuck_on_prob + d.stuck_off_prob == pytest.approx(v)
                assert changed <= {"stuck_on_prob", "stuck_off_prob"}
            else:
                assert getattr(d, param) == v and changed <= {param}
    with pytest.raises(ValueError, match="unknown"):
        robustness_device("cosmic_rays", 1)
    # every device setting of the sweep has its own label in the results
    labels = [device_label(robustness_device(p, v)) for p, vs in ROBUSTNESS_FULL.items() for v in vs]
    assert device_label(DeviceConfig.rram()) == "rram" and "rram(adc_bits=4)" in labels
    assert len(set(labels)) == len({repr(robustness_device(p, v)) for p, vs in
                                    ROBUSTNESS_FULL.items() for v in vs})


def test_robustness_recalibrates_per_device_and_plots(tmp_path):
    from rram_lsm.experiments.robustness import plot_robustness, robustness
    exp = ExperimentConfig(size="tiny", gain_factors=(1.0,), heads=TrainConfig(epochs=2, threads=2))
    store = FeatureStore(exp, log=lambda s: None)
    rows = robustness(store, {"adc_bits": [8, 3], "read_noise_scale": [0.02]}, exp.heads, 0,
                      modalities=("visual", "audio"), log=lambda s: None)
    assert [(r.param, r.value) for r in rows] == [("adc_bits", 8), ("adc_bits", 3),
                                                 ("read_noise_scale", 0.02)]
    assert rows[0].is_default and not rows[1].is_default and rows[2].is_default
    # the default device appears twice and is computed once; 3-bit ADCs got their own gain sweep
    assert rows[2].modalities["visual"].probe == rows[0].modalities["visual"].probe
    assert len(store.cal) == 4  # (visual, audio) x (rram, rram with 3-bit ADCs)
    for r in rows:
        assert 0 <= r.modalities["visual"].probe <= 1 and 0 <= r.av_seen <= 1
        assert r.modalities["visual"].const == pytest.approx(0.3)
    # results.json keeps its flat columns
    assert rows[1].to_json()["probe_audio"] == rows[1].modalities["audio"].probe
    assert list(rows[0].columns()) == ["probe_visual", "const_visual", "probe_audio",
                                       "const_audio", "av_seen", "av_unseen"]
    plot_robustness(rows, tmp_path / "rob.png")
    assert (tmp_path / "rob.png").stat().st_size > 1000
    md = results_markdown(EvalResults(EvalConfig(experiment=exp), PAPER, robustness=rows))
    assert "| adc_bits | 3 |" in md and "| adc_bits | 8* |" in md


def test_feature_variants_unit_norm_and_larger_reservoirs():
    """Per-sample normalisation keeps each sample's direction at unit length; a larger
    reservoir really has more neurons (gain re-calibrated), and an encoder already that large
    is left as it is."""
    from rram_lsm.experiments.ideas import variant_features
    cfg = ExperimentConfig(size="tiny", gain_factors=(1.0,), neural_overrides={"n_neurons": 900})
    store = FeatureStore(cfg, log=lambda s: None)
    fs = store.features("audio", "ideal")
    u = variant_features(store, "audio", "ideal", {"unit_norm": True})
    fired = fs.features.sum(axis=1) > 0
    assert fired.mean() > 0.9 and np.all(u[~fired] == 0)
    np.testing.assert_allclose(np.linalg.norm(u[fired], axis=1), 1, rtol=1e-5)
    cos = (u[fired] * fs.features[fired]).sum(axis=1) / np.linalg.norm(fs.features[fired], axis=1)
    np.testing.assert_allclose(cos, 1, rtol=1e-5)     # the same direction, only rescaled
    big = variant_features(store, "audio", "ideal", {"n_neurons": 800})
    assert big.shape == (len(fs.labels), 800) and 0 < big.mean() < 1
    neural = variant_features(store, "neural", "ideal", {"n_neurons": 800})
    np.testing.assert_array_equal(neural, store.features("neural", "ideal").features)
    with pytest.raises(ValueError, match="unknown features variant"):
        variant_features(store, "audio", "ideal", {"pca": 3})
    # a store of windowed rates: same calibrated gain, features widened; ideas stay on mean rates
    import dataclasses
    wstore = FeatureStore(dataclasses.replace(cfg, windows=2), log=lambda s: None)
    wfs = wstore.features("audio", "ideal")
    assert wfs.features.shape == (len(fs.labels), 400) and wfs.windows == 2
    assert wstore.calibration("audio", "ideal").const == store.calibration("audio", "ideal").const
    a, _ = pair_data(wstore, "audio-visual", "ideal", windows=1)
    np.testing.assert_array_equal(a.features, fs.features)
    md = results_markdown(EvalResults(EvalConfig(experiment=wstore.cfg), PAPER))
    assert "rates in 2 windows per sample, not the paper's" in md
    assert "windows" not in results_markdown(EvalResults(EvalConfig(experiment=cfg), PAPER))


def test_ideas_on_the_split_sweep_beside_a_negative_control():
    """Feature and training variants run on the same sweep; a shuffled pairing (audio paired
    with images of random classes) learns nothing, so the baseline must beat it on seen
    classes; windowed rates and the seed ensemble really widen the features."""
    from rram_lsm.experiments.ideas import BASELINE, chosen_on_validation, ideas_markdown, ideas_sweep
    cfg = ExperimentConfig(size="tiny", gain_factors=(1.0,), heads=TrainConfig(epochs=8, threads=2))
    store = FeatureStore(cfg, log=lambda s: None)
    windows, ensemble = "time-windowed rates (4 windows)", "ensemble of 3 reservoir seeds"
    shuffled = "shuffled pairing (negative control)"
    rows = ideas_sweep(store, "audio-visual", "ideal", cfg.heads, 3, (0, 1),
                       [BASELINE, windows, ensemble, shuffled], log=lambda s: None)
    by = {r.idea: r for r in rows}
    n = store.features("audio", "ideal").features.shape[1]
    assert by[windows].n_features == 4 * n and by[ensemble].n_features == 3 * n
    base, control = by[BASELINE].seen, by[shuffled].seen
    assert base.mean > base.chance + 0.1 and base.mean > control.mean
    assert by[BASELINE].unseen_vs_baseline == 0
    for r in rows:
        u = r.unseen
        assert u.ci_low <= u.mean <= u.ci_high and u.chance == pytest.approx(0.5)
    # validation (seen classes only) scores every idea, and never picks the negative control
    assert all(0 <= r.val_seen <= 1 for r in rows)
    assert by[shuffled].val_seen < by[BASELINE].val_seen
    best = max((r for r in rows if r.idea != shuffled), key=lambda r: r.val_seen).idea
    assert chosen_on_validation(rows, "audio-visual") == best
    md = ideas_markdown(rows)
    assert all(f"| {name} |" in md for name in by) and f"**{best}**" in md
    # on a supcon run with 2 windows, ideas change that setting: "supcon" is the baseline
    # itself (not re-run), "one mean rate" goes back to n features, "paper loss" trains anew
    import dataclasses
    wcfg = dataclasses.replace(cfg, windows=2, heads=cfg.train(loss="supcon", temperature=0.1))
    wstore = FeatureStore(wcfg, log=lambda s: None)
    supcon, mean, paper = ("supervised contrastive, T=0.1", "one mean rate per neuron (the paper's)",
                           "paper loss, T=1")
    rows = ideas_sweep(wstore, "audio-visual", "ideal", wcfg.heads, 3, (0,),
                       [BASELINE, supcon, mean, paper], log=lambda s: None)
    by = {r.idea: r for r in rows}
    assert by[BASELINE].n_features == 2 * n and by[mean].n_features == n
    assert by[BASELINE].train == {"loss": "supcon", "temperature": 0.1}
    assert by[supcon].same_as == BASELINE and by[supcon].unseen == by[BASELINE].unseen
    assert by[paper].train["loss"] == "paper" and by[paper].same_as is None
    assert "same_as" in by[supcon].to_json() and "same_as" not in by[paper].to_json()
    assert by[paper].seen.mean != by[BASELINE].seen.mean
    assert f"{supcon} (= {BASELINE}, not re-run)" in ideas_markdown(rows)
