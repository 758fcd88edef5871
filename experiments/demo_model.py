"""The demo's model, prepared offline before its graph starts: the built-in dataset, both
modalities' features at the validation-calibrated gain, the two projection heads and one
prototype bank per query modality, the split-sweep result, and the figures' data that need
the model (class-prototype similarity, reservoir rasters).  Heads, banks and sweep are kept
in the cache, so a second demo with the same settings skips training.
"""
from __future__ import annotations

import json
import shutil
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from rram_lsm.nodes.classifier.bank import PrototypeBank
from rram_lsm.nodes.classifier.metrics import class_prototypes
from rram_lsm.nodes.lsm.binning import bin_events
from rram_lsm.nodes.lsm.reservoir import LifReservoir
from rram_lsm.nodes.projection.heads import load_heads, save_heads
from rram_lsm.nodes.projection.train_config import TrainConfig
from rram_lsm.nodes.sources.builtin import load_builtin
from rram_lsm.nodes.sources.builtin_source import pick_samples
from rram_lsm.stream.cache import cache_dir, cache_key

from .config import ExperimentConfig
from .gzsl_eval import DIRECTIONS, calibrations, score_direction
from .features import DEFAULT_PRESETS, FEATURES_FORMAT, addresses, encode_modality, resolve_config
from .results import SweepNotRun, SweepResult, ZeroShotSummary, sweep_from_json
from .runs import split_sweep, zero_shot
from .store import PAIRS, FeatureStore, pair_features

CLASSES = tuple(range(1, 10))
MODEL_FILES = ("heads.npz", "bank_for_{a}.npz", "bank_for_{b}.npz", "model.json")
GZSL_FOLDS = 3                    # pseudo-unseen folds choosing each bank's calibration
SWEEP_DOCS = "docs/results.md#probes-retrieval-and-split-sweeps"
Stage = Callable[[str, str], AbstractContextManager]   # stage(name, what): times one stage


def demo_experiment() -> ExperimentConfig:
    """The demo's experiment: the paper's, with 30 head epochs (validation picks an early
    epoch anyway; the paper trains 100)."""
    return ExperimentConfig(heads=TrainConfig(epochs=30, threads=2))


@dataclass
class ModelConfig:
    """What the demo's model is made of: the pair, the device, the experiment (whose
    ``heads.seed`` also picks the replayed samples) and the split sweep to show.
    ``visual_half``: the visual test half replayed (None: half A against neural trials,
    which are written from half B, and all of it otherwise); the three-source demo shares
    one visual source between its pairs, so it gives half A to both."""

    pair: str = "audio-visual"
    device: str = "rram"
    experiment: ExperimentConfig = field(default_factory=demo_experiment)
    sweep_splits: int = 3             # reduced split sweep when no cached full eval exists
    sweep_epochs: int = 30
    eval_results: Path | None = None  # a results.json of `rram-lsm eval` (default: results/)
    visual_half: int | None = None

    @property
    def half(self) -> int | None:
        """The visual half the replay source sends (see the class docstring)."""
        if self.visual_half is not None:
            return self.visual_half
        return 0 if self.pair == "neural-visual" else None

    def check(self) -> None:
        if self.pair not in PAIRS:
            raise ValueError(f"--pair must be one of {sorted(PAIRS)}, got {self.pair!r}")
        if self.device not in ("rram", "ideal"):
            raise ValueError(f"--device must be rram or ideal, got {self.device!r}")
        self.experiment.check()

    @property
    def modalities(self) -> tuple[str, str]:
        return PAIRS[self.pair]


@dataclass
class DemoModel:
    """What the graph and the report need from the offline stages."""

    heads_path: Path
    banks: dict[str, str]                 # query modality -> bank file (other modality's refs)
    consts: dict[str, float]
    train_summary: ZeroShotSummary
    selected_epoch: int
    sweep: SweepResult | SweepNotRun
    gzsl: dict                            # query modality -> offline test GZSL (GzslDirection JSON)
    similarity: dict                      # cross-modal class-prototype cosine matrix (test)
    dataset: object = field(repr=False)   # the built-in dataset


def prepare_model(cfg: ModelConfig, model_dir: Path, stage: Stage,
                  log: Callable[[str], None], store: FeatureStore | None = None) -> DemoModel:
    """Dataset, encoding, training, banks and sweep: everything before the graph starts;
    heads and banks are written into ``model_dir``.  ``store``: a ``FeatureStore`` of the same
    experiment another pair already loaded (its dataset and features are reused)."""
    exp, (a_name, b_name) = cfg.experiment, cfg.modalities
    if store is None:
        with stage("dataset", f"built-in dataset ({exp.size}, seed {exp.data_seed})"):
            load_builtin(exp.size, exp.data_seed, progress=True)
    with stage("encode", f"LSM encoding of {a_name} and {b_name} ({cfg.device}, gain "
                         f"calibrated on validation, cached)"):
        store = store or FeatureStore(exp, log=lambda s: log("  " + s.strip()))
        feats = {m: calibrated_features(cfg, store, m, log) for m in (a_name, b_name)}
        consts = {m: float(feats[m].config["const"]) for m in (a_name, b_name)}
        a, b = pair_features(feats[a_name], feats[b_name])
    cached = cached_model(cfg, consts, a, b)
    h = exp.heads
    if cached is not None:
        with stage("train", f"{cfg.pair}: trained heads and banks from the cache ({cached})"):
            heads_path, banks, summary, epoch, heads, sweep, gz = load_model(cached, model_dir)
    else:
        with stage("train", f"{cfg.pair}: projection heads on seen digits {list(h.seen)} "
                            f"({h.epochs} epochs, {h.loss} loss at T={h.temperature:g}, "
                            + (f"rates in {exp.windows} windows, " if exp.windows > 1 else "")
                            + "epoch chosen on validation)"):
            heads_path, banks, summary, epoch, heads, gz = train_model(cfg, a, b, model_dir, log)
        with stage("sweep", f"{cfg.pair}: split-sweep result"):
            sweep = demo_sweep(cfg, a, b, log)
        store_model(cfg, consts, a, b, model_dir, summary, epoch, sweep, gz)
    return DemoModel(heads_path, banks, consts, summary, epoch, sweep, gz,
                     similarity(heads, a, b), store.dataset)


def calibrated_features(cfg: ModelConfig, store: FeatureStore, modality: str, log):
    """Features at the validation-calibrated gain; the chosen gain is remembered in the cache
    so a second demo reads the cached features directly instead of re-running the probes."""
    exp = cfg.experiment
    key = cache_key(kind="demo-gain", features=FEATURES_FORMAT, size=exp.size,
                    data_seed=exp.data_seed, modality=modality,
                    device=cfg.device, reservoir_seed=exp.reservoir_seed,
                    factors=list(exp.gain_factors), overrides=store.overrides(modality))
    path = cache_dir("demo") / f"gain-{key}.json"
    if path.exists():
        const = float(json.loads(path.read_text())["const"])
        ms = store.dataset.modality(modality)
        fs = encode_modality(ms, DEFAULT_PRESETS[modality], cfg.device, exp.reservoir_seed,
                             overrides={**store.overrides(modality), "const": const},
                             source=store.source(modality), windows=exp.windows)
        log(f"  gain {modality}/{cfg.device}: const {const:.4g} (chosen on validation earlier; "
            f"features {'cached' if fs.cached else 'encoded'})")
        return fs
    cal = store.calibration(modality, cfg.device)
    path.write_text(json.dumps({"const": cal.const, "calibration": cal.as_dict()}))
    return store.features(modality, cfg.device)   # with the config's windows


def model_key(cfg: ModelConfig, consts: dict, a, b) -> str:
    """Everything that shaped the heads, banks and sweep: config, gains and the features."""
    exp, h = cfg.experiment, cfg.experiment.heads
    digest = {m.name: float(np.asarray(m.features, np.float64).sum()) for m in (a, b)}
    return cache_key(kind="demo-model", pair=cfg.pair, device=cfg.device, size=exp.size,
                     data_seed=exp.data_seed, reservoir_seed=exp.reservoir_seed, seed=h.seed,
                     epochs=h.epochs, pd=h.pd, loss=[h.loss, h.temperature],
                     windows=exp.windows, seen=list(h.seen), unseen=list(h.unseen),
                     consts=consts, sweep=[cfg.sweep_splits, cfg.sweep_epochs],
                     gzsl_folds=GZSL_FOLDS,
                     eval_results=str(find_eval_results(cfg)), features=digest,
                     shapes={m.name: list(m.features.shape) for m in (a, b)})


def cached_model(cfg: ModelConfig, consts: dict, a, b) -> Path | None:
    folder = cache_dir("demo") / model_key(cfg, consts, a, b)
    files = [folder / f.format(a=a.name, b=b.name) for f in MODEL_FILES]
    return folder if all(f.exists() for f in files) else None


def store_model(cfg: ModelConfig, consts: dict, a, b, model: Path, summary: ZeroShotSummary,
                epoch: int, sweep, gzsl: dict) -> None:
    """Keep heads, banks, training summary, GZSL and sweep, so a second demo skips training."""
    (model / "model.json").write_text(json.dumps(
        {"summary": summary.to_json(), "selected_epoch": epoch, "sweep": sweep.to_json(),
         "gzsl": gzsl}, default=_json_default))
    folder = cache_dir("demo") / model_key(cfg, consts, a, b)
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(model, tmp)
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)


def load_model(folder: Path, model: Path):
    shutil.copytree(folder, model, dirs_exist_ok=True)
    meta = json.loads((model / "model.json").read_text())
    heads = load_heads(model / "heads.npz")
    banks = {p.stem.removeprefix("bank_for_"): str(p) for p in sorted(model.glob("bank_for_*.npz"))}
    return (model / "heads.npz", banks, ZeroShotSummary.from_json(meta["summary"]),
            int(meta["selected_epoch"]), heads, sweep_from_json(meta["sweep"]), meta["gzsl"])


def _json_default(v):
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    return str(v)


def train_model(cfg: ModelConfig, a, b, model: Path, log):
    """Both heads on the seen classes (epoch chosen on validation), saved, and one bank per
    query modality from the other modality's training embeddings of digits 1-9, carrying the
    seen classes and the calibrated-stacking constant chosen on pseudo-unseen validation
    folds (``experiments.gzsl_eval``: no unseen class touched)."""
    exp, h = cfg.experiment, cfg.experiment.heads
    z = zero_shot(a, b, h, seeds=(h.seed,))
    result = z.trained[0]
    _, chosen = calibrations(a, b, h, (h.seed,), GZSL_FOLDS)[h.seed]
    model.mkdir(parents=True, exist_ok=True)
    heads_path = save_heads(model / "heads.npz", result.heads,
                            {"pair": cfg.pair, "device": cfg.device, "seen": list(h.seen),
                             "unseen": list(h.unseen), "selected_epoch": result.selected_epoch,
                             "loss": h.loss, "temperature": h.temperature,
                             "windows": exp.windows})
    banks, gz = {}, {}
    seen, unseen = sorted(map(int, h.seen)), sorted(map(int, h.unseen))
    for d in DIRECTIONS:
        query, ref = (a, b) if d == "a_to_b" else (b, a)
        train = (ref.split == 0) & np.isin(ref.labels, CLASSES)
        emb = result.heads[ref.name].forward(ref.features[train])
        bank = PrototypeBank.from_embeddings(emb, ref.labels[train], modality=ref.name,
                                             seen=seen, calibration=chosen[d].gamma)
        banks[query.name] = str(bank.save(model / f"bank_for_{query.name}.npz"))
        g = score_direction(result.heads, a, b, d, seen, unseen, chosen[d])
        gz[query.name] = g.to_json()
        log(f"  GZSL {cfg.pair} {query.name}->{ref.name} (offline test, per-class mean): gamma "
            f"{g.gamma:.3f} (validation); H {g.uncalibrated.h:.1%} -> {g.calibrated.h:.1%} "
            f"(seen {g.calibrated.seen:.1%}, unseen {g.calibrated.unseen:.1%}, chance "
            f"{g.chance:.1%})")
    s = z.summary
    log(f"  selected epoch {result.selected_epoch} (validation); offline retrieval (paper's "
        f"metric, test): seen {s.seen.a_to_b.mean:.1%} (chance {s.seen.chance:.1%}), "
        f"unseen {s.unseen.a_to_b.mean:.1%} (chance {s.unseen.chance:.1%})")
    return heads_path, banks, s, int(result.selected_epoch), result.heads, gz


def find_eval_results(cfg: ModelConfig) -> Path | None:
    """A cached ``rram-lsm eval`` results.json on the same dataset size, loss and features,
    if one exists."""
    exp = cfg.experiment
    cands = [cfg.eval_results] if cfg.eval_results else [Path("results") / "results.json"]
    for p in cands:
        if p and Path(p).exists():
            try:
                res = json.loads(Path(p).read_text())
            except (OSError, json.JSONDecodeError):
                continue
            rc = res.get("config", {})
            same = (rc.get("size"), rc.get("loss", "paper"), rc.get("temperature", 1.0),
                    rc.get("windows", 1)) == (exp.size, exp.heads.loss, exp.heads.temperature,
                                              exp.windows)
            if same and cfg.pair in res.get("sweep", {}):
                return Path(p)
    return None


def demo_sweep(cfg: ModelConfig, a, b, log) -> SweepResult | SweepNotRun:
    """The split sweep from a cached full eval run, or a reduced one run here (labelled)."""
    path = find_eval_results(cfg)
    if path is not None:
        log(f"  split sweep from the cached eval run {path}")
        return SweepResult.from_json(json.loads(path.read_text())["sweep"][cfg.pair],
                                     source=f"cached `rram-lsm eval` run ({path})", reduced=False)
    if cfg.sweep_splits < 2:
        return SweepNotRun(f"the split sweep over every choice of unseen digits (not run by "
                           f"the demo): `rram-lsm eval --sweep full`, {SWEEP_DOCS}")
    h = cfg.experiment.heads
    sw = split_sweep(a, b, TrainConfig(pd=h.pd, epochs=cfg.sweep_epochs, loss=h.loss,
                                       temperature=h.temperature, threads=h.threads),
                     cfg.sweep_splits, (h.seed,))
    log(f"  reduced split sweep: {len(sw.splits)} splits x 1 seed, {cfg.sweep_epochs} epochs "
        f"({sw.seconds:.0f} s); unseen {sw.unseen_a_to_b.summary.mean:.1%}")
    sw.source = (f"REDUCED sweep run by the demo ({len(sw.splits)} splits x 1 seed, "
                 f"{cfg.sweep_epochs} epochs); run `rram-lsm eval` for the full one")
    sw.reduced = True
    return sw


def similarity(heads, a, b) -> dict:
    """Cosine similarity of test-set class prototypes across modalities (digits 1-9)."""
    protos = {}
    for m in (a, b):
        test = (m.split == 2) & np.isin(m.labels, CLASSES)
        emb = heads[m.name].forward(m.features[test])
        p = class_prototypes(emb, m.labels[test], CLASSES)
        protos[m.name] = p / np.maximum(np.linalg.norm(p, axis=1, keepdims=True), 1e-12)
    return {"rows": a.name, "cols": b.name, "classes": list(CLASSES),
            "matrix": (protos[a.name] @ protos[b.name].T).round(6).tolist()}


def replay_params(cfg: ModelConfig, modality: str, n_samples: int) -> dict:
    """The ``builtin_replay`` params of one modality's held-out test samples (visual: the
    half ``cfg.half``)."""
    exp = cfg.experiment
    p = {"size": exp.size, "seed": exp.data_seed, "modality": modality, "split": "test",
         "classes": list(CLASSES), "n_samples": n_samples, "pick_seed": exp.heads.seed}
    if modality == "visual" and cfg.half is not None:
        p["half"] = cfg.half
    return p


def chosen_samples(cfg: ModelConfig, ds, modality: str, n_samples: int):
    """The modality set and the indices of the samples its replay source sends."""
    ms = ds.modality(modality)
    p = replay_params(cfg, modality, n_samples)
    return ms, pick_samples(ms.labels, ms.split, 2, p["classes"], p["n_samples"], p["pick_seed"],
                            ms.half, p.get("half"))


def replay_duration_us(cfg: ModelConfig, ds, modality: str, n_samples: int) -> float:
    """Recorded time span of the replayed samples of one modality, summed."""
    ms, idx = chosen_samples(cfg, ds, modality, n_samples)
    return float(sum(int(ms.events[i]["t"][-1] - ms.events[i]["t"][0]) for i in idx
                     if len(ms.events[i])))


def rasters(cfg: ModelConfig, ds, consts: dict, n_samples: int, per_modality: int) -> list[dict]:
    """Input events and reservoir spikes of the first few replayed samples per modality."""
    out = []
    for m in cfg.modalities:
        ms, idx = chosen_samples(cfg, ds, m, n_samples)
        config = resolve_config(ms, DEFAULT_PRESETS[m], {"const": consts[m]},
                                cfg.experiment.reservoir_seed)
        res = LifReservoir(config, cfg.device)
        sub = ms.select()
        sub.events = [ms.events[i] for i in idx[:per_modality]]
        for k, (t, addr) in enumerate(addresses(sub, config)):
            width = 1000 if config.binning == "chunk_pad" else (
                config.bin_width_us if config.binning == "fixed_width" else None)
            n_bins = config.n_bins if config.binning != "fixed_width" else None
            bp, ix = bin_events(t, addr, config.n_inputs, mode=config.binning, n_bins=n_bins,
                                width_us=width)
            res.reset()
            run = res.run(bp, ix, record=True)
            sp = np.argwhere(np.asarray(run.spikes) > 0)
            out.append({"modality": m, "sample": k, "label": int(ms.labels[idx[k]]),
                        "events_t_us": (t - (t[0] if len(t) else 0)).tolist(),
                        "events_addr": addr.tolist(), "spike_bin": sp[:, 0].tolist(),
                        "spike_neuron": sp[:, 1].tolist(), "n_bins": int(run.n_bins),
                        "n_inputs": int(config.n_inputs), "n_neurons": int(config.n_neurons)})
    return out
