"""Ideas past the paper, each measured on the unseen-class split sweep (never on one split).

Every variant changes one thing against the run's own setting (its loss, temperature and
rate windows: the paper's by default), with the same splits, seeds, epochs and
validation-based epoch selection, and is reported as the sweep's mean unseen retrieval with
its 95% interval, the seen-class retrieval, and the difference to the baseline.  A variant
that resolves to the baseline's own setting (supcon on a supcon run, say) is not trained
again: its row repeats the baseline's numbers and says so.  Variants:

- loss: the paper's at T = 1, supervised-contrastive or symmetric InfoNCE at temperature 0.1;
- temperature alone: the paper's loss at 0.1 (separates the loss's form from its sharpness);
- a deeper head (one hidden layer of 128);
- per-sample normalisation: each sample's feature vector scaled to unit length, so the head
  sees which neurons fire rather than how much the whole sample drove the reservoir
  (per-neuron standardisation with training statistics is already part of every head);
- time-windowed rates: the rates in 4 consecutive windows of the sample, or one mean rate;
- larger reservoirs: the 200-neuron encoders at 800 neurons, gain re-calibrated on validation
  (the neural encoder already has 2,048 and is left as it is);
- an ensemble over reservoir seeds: the features of 3 reservoirs (seeds 0-2) side by side.

A shuffled-pairing row (images paired with audio of random classes) is the negative control:
it must fall to chance on seen classes, or the harness is broken.
"""
from __future__ import annotations

import dataclasses
import time
from typing import Callable

import numpy as np

from rram_lsm.nodes.lsm.presets import get_preset
from rram_lsm.nodes.projection.train_config import TrainConfig

from .features import DEFAULT_PRESETS, encode_modality
from .results import IdeaRow
from .runs import sweep_heads
from .store import pair_data
from .sweep import pick_splits, summarise

BASELINE = "baseline (the run's loss and features)"
IDEAS: dict[str, dict] = {
    BASELINE: {},
    "paper loss, T=1": {"train": {"loss": "paper", "temperature": 1.0}},
    "supervised contrastive, T=0.1": {"train": {"loss": "supcon", "temperature": 0.1}},
    "symmetric InfoNCE, T=0.1": {"train": {"loss": "infonce", "temperature": 0.1}},
    "paper loss, T=0.1 (temperature alone)": {"train": {"loss": "paper", "temperature": 0.1}},
    "deeper head (hidden 128)": {"train": {"hidden": (128,)}},
    "features L2-normalised per sample": {"features": {"unit_norm": True}},
    "time-windowed rates (4 windows)": {"features": {"windows": 4}},
    "one mean rate per neuron (the paper's)": {"features": {"windows": 1}},
    "larger reservoirs (800 neurons)": {"features": {"n_neurons": 800}},
    "ensemble of 3 reservoir seeds": {"features": {"seeds": (0, 1, 2)}},
    "shuffled pairing (negative control)": {"train": {"pairing": "shuffled"}},
}


def resolve(heads: TrainConfig, windows: int, idea: dict) -> tuple[dict, dict]:
    """The (training changes, features) an idea runs with on top of the run's ``heads`` and
    rate ``windows``: the run's loss, temperature and windows unless the idea changes them."""
    train = {"loss": heads.loss, "temperature": heads.temperature, **idea.get("train", {})}
    features = {"windows": windows, **idea.get("features", {})}
    return train, features


def seed_ensemble_features(store, modality: str, device, seeds, windows: int) -> np.ndarray:
    """Features of reservoirs with each seed (at the calibrated gain), side by side."""
    ms = store.dataset.modality(modality)
    const = store.calibration(modality, device).const
    parts = [encode_modality(ms, DEFAULT_PRESETS[modality], device, int(s), windows=windows,
                             overrides={**store.overrides(modality), "const": const},
                             source=store.source(modality)).features for s in seeds]
    return np.concatenate(parts, axis=1)


def larger_reservoir_features(store, modality: str, device, n_neurons: int,
                              windows: int) -> np.ndarray:
    """Features of a reservoir with at least ``n_neurons`` neurons, its gain re-calibrated on
    validation as the store's own are (an encoder already that large is returned as it is)."""
    if get_preset(DEFAULT_PRESETS[modality], **store.overrides(modality)).n_neurons >= n_neurons:
        return store.features(modality, device, windows=windows).features
    return store.features(modality, device, {"n_neurons": int(n_neurons)}, windows=windows).features


def unit_norm_features(store, modality: str, device, windows: int) -> np.ndarray:
    """Each sample's feature vector over its L2 norm (a silent sample stays 0): the pattern of
    which neurons fired, without the sample's overall drive."""
    x = store.features(modality, device, windows=windows).features.astype(np.float64)
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.where(norm > 0, norm, 1.0)).astype(np.float32)


def variant_features(store, modality: str, device, features: dict) -> np.ndarray:
    """All samples' features of ``modality`` under a features variant of :data:`IDEAS`
    (``windows``: rate windows per sample, default 1; at most one other key)."""
    windows = int(features.get("windows", 1))
    other = {k: v for k, v in features.items() if k != "windows"}
    if not other:
        return store.features(modality, device, windows=windows).features
    if "seeds" in other:
        return seed_ensemble_features(store, modality, device, other["seeds"], windows)
    if "n_neurons" in other:
        return larger_reservoir_features(store, modality, device, int(other["n_neurons"]), windows)
    if other.get("unit_norm"):
        return unit_norm_features(store, modality, device, windows)
    raise ValueError(f"unknown features variant {features!r}")


def variant_data(store, pair: str, device, features: dict):
    """The (query, visual) ``ModalityData`` of ``pair`` with the variant's features."""
    windows = int(features.get("windows", 1))
    a, b = pair_data(store, pair, device, windows=windows)
    if set(features) <= {"windows"}:
        return a, b
    out = []
    for md, fs_select in ((a, None), (b, 0 if a.name == "neural" else None)):
        x = variant_features(store, md.name, device, features)
        if fs_select is not None:   # the visual side of neural<->visual uses image half A only
            x = x[store.features(md.name, device, windows=1).half == fs_select]
        out.append(dataclasses.replace(md, features=x))
    return out[0], out[1]


def ideas_sweep(store, pair: str, device, heads: TrainConfig, n_splits: int | None, seeds,
                names=None, log: Callable[[str], None] = print) -> list[IdeaRow]:
    """Each idea's split sweep (``n_splits`` splits x ``seeds``, each run ``heads`` with the
    idea's change) beside the baseline's."""
    splits = pick_splits(n_splits)
    rows, done = [], {}
    for name in names or IDEAS:
        if name not in IDEAS:
            raise ValueError(f"unknown idea {name!r}; expected one of {list(IDEAS)}")
        train, features = resolve(heads, store.cfg.windows, IDEAS[name])
        key = repr((sorted(train.items()), sorted(features.items())))
        if key in done:   # the same setting as an earlier row (e.g. the baseline): not re-run
            rows.append(dataclasses.replace(done[key], idea=name, same_as=done[key].idea))
            log(f"  idea {name} ({pair}): the setting of {done[key].idea!r}, not re-run")
            continue
        start = time.perf_counter()
        a, b = variant_data(store, pair, device, features)
        runs = sweep_heads(a, b, dataclasses.replace(heads, seed=0, **train), splits, list(seeds))
        unseen = summarise(runs.acc["unseen_a_to_b"], splits, runs.chance["unseen"])
        seen = summarise(runs.acc["seen_a_to_b"], splits, runs.chance["seen"])
        rows.append(IdeaRow(name, pair, str(device), unseen, seen, validation_seen(runs),
                            int(a.features.shape[1]), train, features,
                            time.perf_counter() - start))
        done[key] = rows[-1]
        log(f"  idea {name} ({pair}): unseen {unseen.mean:.1%} "
            f"[{unseen.ci_low:.1%}, {unseen.ci_high:.1%}], seen {seen.mean:.1%} "
            f"({rows[-1].seconds:.0f} s)")
    base = next((r for r in rows if r.idea == BASELINE), None)
    for r in rows:
        r.unseen_vs_baseline = r.unseen.mean - base.unseen.mean if base else None
    return rows


def validation_seen(runs) -> float:
    """Mean validation retrieval on the seen classes (query->image) at each run's selected
    epoch: a score that never looks at an unseen class or at the test split."""
    vals = [r.history[r.selected_epoch - 1].val for r in runs.results]
    return float(np.mean([v["seen"]["a_to_b"] for v in vals if v]))


def chosen_on_validation(rows: list[IdeaRow], pair: str) -> str:
    """The idea of ``pair`` with the best validation seen-class retrieval (controls excluded):
    the honest way to pick one row of the table."""
    cands = [r for r in rows if r.pair == pair and "control" not in r.idea and r.same_as is None]
    return max(cands, key=lambda r: r.val_seen).idea


def ideas_markdown(rows: list[IdeaRow]) -> str:
    """The ideas table: unseen (with interval and chance), seen and validation seen, per pair,
    and the idea validation would choose."""
    lines = ["| setting | idea | unseen, query→image | 95% CI | Δ vs baseline (points) | chance "
             "| seen, query→image | val seen |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        u, d = r.unseen, r.unseen_vs_baseline
        name = r.idea + (f" (= {r.same_as}, not re-run)" if r.same_as is not None else "")
        lines.append(f"| {r.pair} | {name} | {u.mean:.1%} | [{u.ci_low:.1%}, "
                     f"{u.ci_high:.1%}] | {'—' if d is None else f'{d * 100:+.1f}'} | "
                     f"{u.chance:.1%} | {r.seen.mean:.1%} | {r.val_seen:.1%} |")
    lines.append("")
    for pair in dict.fromkeys(r.pair for r in rows):
        lines.append(f"- {pair}: chosen on validation (best seen-class validation retrieval, "
                     f"controls excluded): **{chosen_on_validation(rows, pair)}**")
    return "\n".join(lines)
