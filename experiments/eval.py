"""The paper's experiments on cached LSM features, with honest selection and chance levels:
what ``rram-lsm eval`` runs.

* probes: linear probe on LSM features and on the raw binarised frames, per modality;
* zero-shot audio<->visual (PAPER.md protocol: digit 0 dropped, seen 1-7, unseen 8-9) and
  neural<->visual (visual half A against neural trials written from half B, so no neural trial
  meets its own image), validation-selected with the authors' test-set rule beside it;
* generalised zero-shot (``gzsl_eval``): seen and unseen prototypes competing, with and
  without calibrated stacking chosen on pseudo-unseen validation folds;
* the split sweep over choices of two unseen digits from 1-9 x seeds, with a 95 % interval;
* optionally the ideas (``ideas``), the baselines (``comparison``) and RRAM robustness
  (``robustness``).

Everything runs on the built-in dataset; every random thing takes a seed.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from rram_lsm.nodes.projection.train_config import TrainConfig

from .config import ExperimentConfig
from .comparison import ComparisonConfig, run_comparison
from .features import raw_frames, resolve_config
from .gzsl_eval import gzsl_experiment
from .ideas import ideas_sweep
from .probe import linear_probe
from .results import EvalResults, ProbeReport, TableRow
from .robustness import device_label, robustness
from .runs import split_sweep, zero_shot
from .store import PAIRS, FeatureStore, extra_label, pair_data

# PAPER.md's published figures (%), keyed like our results.
PAPER = {
    "probe_visual": 89.11, "probe_audio": 70.79,            # LSM software, N-MNIST / N-TIDIGITS
    "probe_visual_rram": 89.66, "probe_audio_rram": 70.11,  # LSM on the RRAM chip
    "av_seen": 66.1, "av_unseen": 88.0,                     # LSM-CLIP software, pd 64
    "av_seen_rram": 67.42, "av_unseen_rram": 87.5,          # LSM-CLIP RRAM chip, pd 64
    "av_seen_pd128": 67.4, "av_unseen_pd128": 88.5,
    "bmi_seen": 51.0, "bmi_unseen": 69.5,                    # BMI letters, "about 50-52 / 68-71"
}


@dataclass
class EvalConfig:
    """What ``rram-lsm eval`` runs: the experiment (data, encoders, heads) and which parts;
    defaults are the paper's settings on the full built-in set."""

    experiment: ExperimentConfig = field(default_factory=ExperimentConfig)
    devices: tuple[str, ...] = ("ideal", "rram")
    train_seeds: tuple[int, ...] = (0, 1, 2)
    sweep_splits: int | None = 9          # None = all 36
    sweep_seeds: tuple[int, ...] = (0, 1)
    robustness: dict | None = None        # parameter -> values; None = skip
    robustness_modalities: tuple[str, ...] = ("visual", "audio")
    ideas: bool = False                   # measure experiments.ideas on the split sweep
    baselines: int = 0                    # BPTT epochs of the paper's baselines; 0 = skip
    raw_probe: bool = True
    pairs: tuple[str, ...] = ("audio-visual", "neural-visual")
    gzsl_folds: int = 3                   # pseudo-unseen folds choosing the GZSL constant; 0 = skip

    def as_dict(self) -> dict:
        """The ``config`` of results.json, with the field names it has always had."""
        e = self.experiment.as_dict()
        return {"size": e["size"], "data_seed": e["data_seed"], "reservoir_seed": e["reservoir_seed"],
                "devices": self.devices, "gain_factors": e["gain_factors"], "pd": e["pd"],
                "epochs": e["epochs"], "loss": e["loss"], "temperature": e["temperature"],
                "windows": e["windows"], "train_seeds": self.train_seeds,
                "sweep_splits": self.sweep_splits, "sweep_seeds": self.sweep_seeds,
                "robustness": self.robustness, "robustness_modalities": self.robustness_modalities,
                "neural_overrides": e["neural_overrides"], "ideas": self.ideas,
                "baselines": self.baselines, "raw_probe": self.raw_probe, "pairs": self.pairs,
                "threads": e["threads"], "gzsl_folds": self.gzsl_folds}


def probe_experiment(store: FeatureStore, modality: str, device, raw: bool = True) -> ProbeReport:
    """Linear probe on the calibrated LSM features (and on the raw frames when ``raw``)."""
    fs = store.features(modality, device)
    cal = store.calibration(modality, device)
    out = ProbeReport(lsm=linear_probe(fs.features, fs.labels, fs.split,
                                       seed=store.cfg.reservoir_seed),
                      const=cal.const, health=cal.features.health)   # mean rates
    if raw:
        ms = store.dataset.modality(modality)
        config = resolve_config(ms, fs.preset, store.overrides(modality), store.cfg.reservoir_seed)
        frames = raw_frames(ms, config)
        out.raw = linear_probe(frames.astype(np.float32), ms.labels, ms.split,
                               Cs=(0.01, 0.1), max_iter=150)
    return out


# ------------------------------------------------------------------------------ the whole run

PAPER_NAMES = {"audio-visual": ("audio", "image"), "neural-visual": ("neural", "image")}


def run_all(cfg: EvalConfig, pairs: tuple[str, ...] | None = None,
            log: Callable[[str], None] = print) -> EvalResults:
    """Every experiment the built-in dataset allows, with the main table."""
    start = time.perf_counter()
    pairs = tuple(pairs or cfg.pairs)
    heads = cfg.experiment.heads
    store = FeatureStore(cfg.experiment, log)
    res = EvalResults(config=cfg, paper=PAPER)
    table = res.table
    for dev in cfg.devices:
        log(f"probes ({dev})")
        res.probes[dev] = {}
        needed = {m for p in pairs for m in PAIRS[p]} | {"visual", "audio"}
        for m in [m for m in ("visual", "audio", "neural") if m in needed]:
            t0 = time.perf_counter()
            # raw frames: visual and audio only (neural raw frames are 38,592-wide)
            raw = cfg.raw_probe and dev == cfg.devices[0] and m != "neural"
            pr = probe_experiment(store, m, dev, raw=raw)
            log(f"  probe {m}/{dev}: LSM {pr.lsm.test:.1%}"
                + (f", raw {pr.raw.test:.1%}" if raw else "")
                + f" ({time.perf_counter() - t0:.0f} s)")
            res.probes[dev][m] = pr
            paper = PAPER.get(f"probe_{m}" + ("_rram" if dev == "rram" else ""))
            table.append(TableRow.of(f"linear probe, {m}, LSM ({dev})", "test top-1", pr.lsm.test,
                                     pr.lsm.chance, paper,
                                     note=f"const {pr.const:.4g}, C {pr.lsm.C:g} (val)"))
            if pr.raw is not None:
                table.append(TableRow.of(f"linear probe, {m}, raw binary frames", "test top-1",
                                         pr.raw.test, pr.raw.chance,
                                         note=f"{pr.raw.n_features} inputs"))
        for pair in pairs:
            log(f"zero-shot {pair} ({dev})")
            a, b = pair_data(store, pair, dev)
            z = zero_shot(a, b, heads, seeds=cfg.train_seeds)
            s = z.summary
            log(f"  {pair}/{dev}: seen {s.seen.a_to_b.mean:.1%}, unseen "
                f"{s.unseen.a_to_b.mean:.1%} ({z.seconds_training:.0f} s)")
            res.zero_shot.setdefault(dev, {})[pair] = z
            if cfg.gzsl_folds:
                g = gzsl_experiment(a, b, heads, z.trained, cfg.gzsl_folds, pair, dev)
                res.gzsl.setdefault(dev, {})[pair] = g
                log(f"  GZSL {pair}/{dev} a->b: H {g.stat('a_to_b', 'h_0').mean:.1%} at gamma 0, "
                    f"{g.stat('a_to_b', 'h_cal').mean:.1%} calibrated ({g.seconds:.0f} s)")
            an, bn = PAPER_NAMES[pair]
            sfx = "_rram" if dev == "rram" else ""
            pk = "av" if pair == "audio-visual" else "bmi"
            for name, cls in (("seen", "1-7"), ("unseen", "8-9")):
                pool = s.pool(name)
                paper = PAPER.get(f"{pk}_{name}{sfx}") if pk == "av" or dev == "ideal" else None
                note = "paper: BMI letters (different data)" if pk == "bmi" else ""
                table.append(TableRow.of(f"{an}->{bn} retrieval {name} {cls} ({dev})", "val-selected",
                                         pool.a_to_b.mean, pool.chance, paper, pool.a_to_b.std,
                                         note or f"{len(cfg.train_seeds)} seeds"))
                table.append(TableRow.of(f"{bn}->{an} retrieval {name} {cls} ({dev})", "val-selected",
                                         pool.b_to_a.mean, pool.chance, None, pool.b_to_a.std))
                table.append(TableRow.of(f"{an} query vs {bn} prototypes, {name} ({dev})",
                                         "nearest prototype", pool.proto_a_to_b.mean,
                                         pool.proto_chance, None, pool.proto_a_to_b.std))
            ar = s.authors_rule
            table.append(TableRow.of(f"{an}->{bn} unseen 8-9, authors' test-set rule ({dev})",
                                     "best test epoch", ar.unseen, s.unseen.chance,
                                     PAPER.get(f"{pk}_unseen{sfx}") if pk == "av" else None,
                                     note=f"met in {ar.met_runs}/{ar.runs} runs"
                                          + ("" if ar.met_runs else ": no epoch meets it")))
    for pair in pairs:
        log(f"split sweep {pair}")
        a, b = pair_data(store, pair, cfg.devices[0])
        sw = split_sweep(a, b, heads, cfg.sweep_splits, cfg.sweep_seeds)
        log(f"  sweep {pair}: unseen {sw.unseen_a_to_b.summary.mean:.1%} ({sw.seconds:.0f} s)")
        res.sweep[pair] = sw
        an, bn = PAPER_NAMES[pair]
        for metric, key, label in ((sw.unseen_a_to_b, "unseen_a_to_b", f"{an}->{bn}"),
                                   (sw.unseen_mean, "unseen_mean", "both directions")):
            sm = metric.summary
            table.append(TableRow.of(
                f"split sweep {pair}, unseen pair, {label} ({cfg.devices[0]})",
                "mean (spread = std of runs)", sm.mean, sm.chance,
                PAPER["av_unseen"] if pair == "audio-visual" and key == "unseen_a_to_b" else None,
                sm.std_runs,
                f"95% CI [{sm.ci_low:.1%}, {sm.ci_high:.1%}], {sm.n_splits} splits x "
                f"{sm.n_seeds} seeds" + ("; paper: fixed 8/9 split" if pair == "audio-visual" else "")))
    if cfg.ideas:
        log(f"ideas on the split sweep ({cfg.devices[0]})")
        res.ideas = [row for pair in pairs
                     for row in ideas_sweep(store, pair, cfg.devices[0], heads, cfg.sweep_splits,
                                            cfg.sweep_seeds, log=log)]
    if cfg.baselines:
        log(f"the paper's baselines and training costs ({cfg.devices[0]})")
        # the comparison trains LSM-CLIP with the paper's loss, whatever this run's loss is
        paper_heads = TrainConfig(pd=heads.pd, epochs=heads.epochs, threads=heads.threads)
        res.baselines = run_comparison(store, cfg.devices[0], ComparisonConfig(
            heads=paper_heads, srnn_epochs=cfg.baselines), log)
    if cfg.robustness:
        log("robustness")
        res.robustness = robustness(store, cfg.robustness, heads, cfg.train_seeds[0],
                                    cfg.robustness_modalities, log)
    res.calibration = {f"{m}/{device_label(dev)}{extra_label(extra)}": c
                       for (m, _, extra), (c, dev) in store.cal_devices.items()}
    res.seconds = time.perf_counter() - start
    return res
