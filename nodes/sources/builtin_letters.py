"""The built-in letters dataset: 26 letters as neural trials and as rate-coded glyph images.

The paper's BMI setting (PAPER.md) pairs a neural recording of a letter being written with a
rate-coded E-MNIST image of that letter: 26 classes, labelled 1..26 (A = 1).  Here both come
from the emulated writers of ``letters.py``:

- ``neural``: pen trajectories through the handwriting emulator, 192 electrodes, 201 bins of
  10 ms (the ``bmi_neural`` preset; wire dtype ``neural``, geometry (192,));
- ``image``: 28x28 glyphs through the E-MNIST rate code, 49 steps of 1 ms, one event per
  spiking pixel and step, ``x`` = pixel ``y * 28 + x`` (the ``bmi_image`` preset; wire dtype
  ``neural``, geometry (784,)).

Instances are kept apart, or retrieval would match a writer instead of a letter: the two
modalities have disjoint writer populations (as in the paper: one person's recordings,
E-MNIST's many writers), so the image and the trajectory of a pair always come from different
writers; and writers, not samples, are split 60/20/20 into train/val/test, so the writers of
the test split appear in no training or validation pair.  By default the neural writers write
lower case (the participant of Willett et al. 2021 did) and the image writers either case
(E-MNIST's letter classes merge them); both are parameters.  Pairs are formed by class within
a split: the k-th neural trial of a letter with the k-th image of it, both shuffled by seed.

Every sample draws from its own generator seeded by (seed, modality, writer, letter, repeat).
The build is cached as an ``.npz`` (no pickle) under ``cache_dir("datasets")`` keyed by every
generator parameter, the stroke data and the code version.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from rram_lsm.stream.cache import cache_dir, cache_key, load_npz, save_npz
from rram_lsm.stream.packets import NEURAL_DTYPE

from .builtin import ModalitySet, _split_code, split_counts
from .handwriting import HandwritingParams
from .letters import (CASES, FONTS, LETTERS, GlyphParams, RateCode, StyleParams, Writer, draw_writer,
                      glyph_image, neural_trial, quantise, rate_code, strokes_digest, write_letter)

FORMAT_VERSION = 1
GENERATOR_VERSION = 1          # bump when letters.py changes what it generates
MODALITIES = ("neural", "image")
PRESETS = {"neural": "bmi_neural", "image": "bmi_image"}   # nodes/lsm/presets.py
_MOD_CODE = {"neural": 11, "image": 12, "split": 19}
_WRITER_FIELDS = ("slant", "width", "size", "rotation", "pace", "speed_profile", "pen_up_time",
                  "tremor_amp", "tremor_hz", "ink_px")


@dataclass(frozen=True)
class LettersSpec:
    """Everything that shapes the letters dataset (all of it goes into the cache key)."""

    size: str = "full"
    n_writers: int = 40          # per modality; split by ``fractions`` (full: 24/8/8)
    repeats: int = 2             # instances per writer and letter
    fractions: tuple[float, float, float] = (0.6, 0.2, 0.2)
    fonts: tuple[str, ...] = FONTS
    neural_cases: tuple[str, ...] = ("lower",)
    image_cases: tuple[str, ...] = CASES
    style: StyleParams = field(default_factory=StyleParams)
    glyph: GlyphParams = field(default_factory=GlyphParams)
    rate: RateCode = field(default_factory=RateCode)
    handwriting: HandwritingParams = field(default_factory=HandwritingParams)

    @staticmethod
    def for_size(size: str, **overrides) -> "LettersSpec":
        """The spec of ``size`` ('full' | 'tiny') with field ``overrides`` (checked)."""
        if size == "full":
            spec = LettersSpec(size="full")
        elif size == "tiny":
            spec = LettersSpec(size="tiny", n_writers=5, repeats=1)
        else:
            raise ValueError(f"letters dataset size must be 'full' or 'tiny', got {size!r}")
        known = set(LettersSpec.__dataclass_fields__) - {"size"}
        unknown = set(overrides) - known
        if unknown:
            raise ValueError(f"unknown letters parameter(s) {sorted(unknown)}; known: {sorted(known)}")
        spec = replace(spec, **{k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()})
        spec.check()
        return spec

    def check(self) -> None:
        if self.n_writers < 3 or self.repeats < 1:
            raise ValueError(f"letters need n_writers >= 3 (one per split) and repeats >= 1, "
                             f"got {self.n_writers}, {self.repeats}")
        for name, values, allowed in (("fonts", self.fonts, FONTS), ("neural_cases", self.neural_cases, CASES),
                                      ("image_cases", self.image_cases, CASES)):
            if not values or any(v not in allowed for v in values):
                raise ValueError(f"letters {name} must be a non-empty subset of {allowed}, got {values!r}")
        self.rate.check()
        self.handwriting.check()

    def key(self, seed: int) -> str:
        return cache_key(dataset="letters", format=FORMAT_VERSION, generator=GENERATOR_VERSION,
                         strokes=strokes_digest(), seed=int(seed), **asdict(self))


@dataclass
class LettersDataset:
    """Both modalities, the glyph images and pen trajectories behind them, the pairs and writers.

    ``images[i]`` (28x28 uint8) is what ``modalities['image'].events[i]`` rate-codes;
    ``trajectories[i]`` (n_bins, 2, image widths) is the pen path of ``modalities['neural']``'s
    trial i.  ``pairs`` rows are (image index, neural index), ``pair_split`` their split.
    Writer ``w`` (the ``ids`` of both modalities) has ``writers['split'][w]``, ``['modality']``
    (0 neural, 1 image), ``['font']``, ``['case']`` and its style parameters.
    """

    size: str
    seed: int
    path: Path
    meta: dict
    modalities: dict[str, ModalitySet]
    images: np.ndarray
    trajectories: np.ndarray
    pairs: np.ndarray
    pair_split: np.ndarray
    writers: dict[str, np.ndarray]

    def modality(self, name: str) -> ModalitySet:
        if name not in self.modalities:
            raise KeyError(f"letters dataset has no modality {name!r}; use one of {MODALITIES}")
        return self.modalities[name]

    def pairs_of(self, split: int | str) -> np.ndarray:
        """(image index, neural index) rows of one split ('train'/'val'/'test' or 0/1/2)."""
        return self.pairs[self.pair_split == _split_code(split)]


# ---------------------------------------------------------------- planning

def plan_writers(spec: LettersSpec, seed: int) -> tuple[list[Writer], np.ndarray, np.ndarray]:
    """Writers (neural ones first, then image ones), their split and modality (0/1)."""
    writers, split, modality = [], [], []
    for m, name in enumerate(MODALITIES):
        order = np.random.default_rng([seed, _MOD_CODE["split"], m]).permutation(spec.n_writers)
        codes = np.empty(spec.n_writers, np.int8)
        codes[order] = np.repeat(np.arange(3, dtype=np.int8), split_counts(spec.n_writers, spec.fractions))
        cases = spec.neural_cases if name == "neural" else spec.image_cases
        hands = [(f, c) for c in cases for f in spec.fonts]
        for w in range(spec.n_writers):
            # hands cycle within each split, so every split holds every hand it has room for
            rank = int(np.sum(codes[:w] == codes[w]))
            font, case = hands[(rank + int(codes[w])) % len(hands)]
            rng = np.random.default_rng([seed, _MOD_CODE[name], w])
            writers.append(draw_writer(rng, font, case, spec.style))
        split.append(codes)
        modality.append(np.full(spec.n_writers, m, np.int8))
    return writers, np.concatenate(split), np.concatenate(modality)


def plan_samples(spec: LettersSpec, modality: str) -> np.ndarray:
    """Rows (writer, letter 1..26, repeat) of one modality, writer-major."""
    first = 0 if modality == "neural" else spec.n_writers
    return np.array([(first + w, k, r) for w in range(spec.n_writers) for k in range(1, 27)
                     for r in range(spec.repeats)], np.int64)


def make_pairs(labels_img: np.ndarray, split_img: np.ndarray, labels_neu: np.ndarray,
               split_neu: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Pairs by class within each split: k-th (shuffled) image with k-th (shuffled) trial."""
    rng = np.random.default_rng([seed, _MOD_CODE["split"], 9])
    rows, splits = [], []
    for s in range(3):
        for k in range(1, 27):
            a = rng.permutation(np.flatnonzero((labels_img == k) & (split_img == s)))
            b = rng.permutation(np.flatnonzero((labels_neu == k) & (split_neu == s)))
            n = min(len(a), len(b))
            rows.append(np.stack([a[:n], b[:n]], axis=1))
            splits.append(np.full(n, s, np.int8))
    return np.concatenate(rows).astype(np.int64), np.concatenate(splits)


# ---------------------------------------------------------------- generation

def make_sample(modality: str, row: tuple[int, int, int], writer: Writer, spec: LettersSpec,
                seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(events, image uint8 or trajectory) of one sample, from its own generator."""
    w, k, r = (int(v) for v in row)
    rng = np.random.default_rng([seed, _MOD_CODE[modality], w, k, r])
    path = write_letter(k, writer, rng, spec.style)
    if modality == "neural":
        ev, pos = neural_trial(path, rng, spec.handwriting)
        return ev, pos.astype(np.float32)
    img = quantise(glyph_image(path, writer.ink_px, spec.glyph))
    return rate_code(img, rng, spec.rate), img


def _make_chunk(job: tuple) -> list[tuple[np.ndarray, np.ndarray]]:
    modality, rows, writers, spec, seed = job
    return [make_sample(modality, row, writers[int(row[0])], spec, seed) for row in rows]


def letters_path(size: str = "full", seed: int = 0, **overrides) -> Path:
    """Where the letters dataset of this size, seed and overrides is (or would be) cached."""
    spec = LettersSpec.for_size(size, **overrides)
    return cache_dir("datasets") / f"letters-{size}-seed{seed}-{spec.key(seed)}.npz"


def build_letters(size: str = "full", seed: int = 0, progress: bool = True, workers: int | None = None,
                  force: bool = False, **overrides) -> Path:
    """Build the letters dataset (unless cached and not ``force``); return the file's path."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    spec = LettersSpec.for_size(size, **overrides)
    path = letters_path(size, seed, **overrides)
    if path.exists() and not force:
        return path
    writers, w_split, w_mod = plan_writers(spec, seed)
    plans = {m: plan_samples(spec, m) for m in MODALITIES}
    jobs = [(m, plans[m][i:i + 104], writers, spec, seed) for m in MODALITIES
            for i in range(0, len(plans[m]), 104)]
    if workers is None:
        workers = 1 if spec.size == "tiny" else max(1, min(2, os.cpu_count() or 1))
    from tqdm import tqdm

    with tqdm(total=sum(len(p) for p in plans.values()), desc="building built-in letters",
              unit="sample", disable=not progress) as bar:
        if workers <= 1:
            chunks = []
            for job in jobs:
                chunks.append(_make_chunk(job))
                bar.update(len(job[1]))
        else:
            import multiprocessing as mp
            from concurrent.futures import ProcessPoolExecutor

            with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as pool:
                chunks = []
                for job, out in zip(jobs, pool.map(_make_chunk, jobs)):
                    chunks.append(out)
                    bar.update(len(job[1]))
    results = {m: [s for job, out in zip(jobs, chunks) if job[0] == m for s in out] for m in MODALITIES}

    arrays: dict[str, np.ndarray] = {}
    for m in MODALITIES:
        events = [ev for ev, _ in results[m]]
        arrays[f"{m}_events"] = np.concatenate(events) if events else np.zeros(0, NEURAL_DTYPE)
        arrays[f"{m}_offsets"] = np.concatenate([[0], np.cumsum([len(e) for e in events])]).astype(np.int64)
        arrays[f"{m}_ids"] = plans[m][:, 0]
        arrays[f"{m}_labels"] = plans[m][:, 1]
        arrays[f"{m}_repeat"] = plans[m][:, 2]
        arrays[f"{m}_split"] = w_split[plans[m][:, 0]]
    arrays["images"] = np.stack([img for _, img in results["image"]])
    arrays["trajectories"] = np.stack([pos for _, pos in results["neural"]])
    arrays["pairs"], arrays["pair_split"] = make_pairs(
        arrays["image_labels"], arrays["image_split"], arrays["neural_labels"], arrays["neural_split"], seed)
    arrays["writer_split"], arrays["writer_modality"] = w_split, w_mod
    arrays["writer_font"] = np.array([FONTS.index(w.font) for w in writers], np.int8)
    arrays["writer_case"] = np.array([CASES.index(w.case) for w in writers], np.int8)
    for f in _WRITER_FIELDS:
        arrays[f"writer_{f}"] = np.array([getattr(w, f) for w in writers], np.float64)
    meta = {"format": FORMAT_VERSION, "generator": GENERATOR_VERSION, "size": size, "seed": int(seed),
            "key": spec.key(seed), "letters": LETTERS, "fonts": list(FONTS), "cases": list(CASES),
            "geometry": {"neural": [spec.handwriting.n_electrodes], "image": [spec.glyph.size ** 2]},
            "image_shape": [spec.glyph.size, spec.glyph.size], "presets": PRESETS, "spec": asdict(spec)}
    return save_npz(path, meta, arrays, compressed=True)


def read_letters(path: str | Path) -> LettersDataset:
    """Load a cached letters file (no pickle), checking its arrays agree with each other."""
    path = Path(path)
    data, meta = load_npz(path, "letters dataset", FORMAT_VERSION, "delete it (clear_letters())")
    mods = {}
    for m in MODALITIES:
        offsets, events = data[f"{m}_offsets"], data[f"{m}_events"]
        if events.dtype != NEURAL_DTYPE or offsets[-1] != len(events):
            raise ValueError(f"{path}: {m} events are inconsistent (dtype or offsets)")
        n = len(offsets) - 1
        for k in ("labels", "split", "ids", "repeat"):
            if len(data[f"{m}_{k}"]) != n:
                raise ValueError(f"{path}: {m}_{k} has {len(data[f'{m}_{k}'])} rows, expected {n}")
        mods[m] = ModalitySet(name=m, events=[events[offsets[i]:offsets[i + 1]] for i in range(n)],
                              labels=data[f"{m}_labels"], split=data[f"{m}_split"], ids=data[f"{m}_ids"],
                              half=np.full(n, -1, np.int8), geometry=tuple(meta["geometry"][m]),
                              dtype_name="neural")
    if len(data["images"]) != len(mods["image"]) or len(data["trajectories"]) != len(mods["neural"]):
        raise ValueError(f"{path}: images or trajectories do not match their events")
    writers = {k[len("writer_"):]: v for k, v in data.items() if k.startswith("writer_")}
    return LettersDataset(size=meta["size"], seed=meta["seed"], path=path, meta=meta, modalities=mods,
                          images=data["images"], trajectories=data["trajectories"], pairs=data["pairs"],
                          pair_split=data["pair_split"], writers=writers)


def load_letters(size: str = "full", seed: int = 0, progress: bool = True, **overrides) -> LettersDataset:
    """The letters dataset, built on first use and read from the cache afterwards."""
    return read_letters(build_letters(size, seed, progress, **overrides))


def letters_source(size: str, seed: int, modality: str, **overrides) -> str:
    """The feature-cache identity of a letters modality (``encode_modality(source=...)``)."""
    if modality not in MODALITIES:
        raise ValueError(f"letters modality must be one of {MODALITIES}, got {modality!r}")
    return f"letters:{size}:{seed}:{LettersSpec.for_size(size, **overrides).key(seed)}:{modality}"


def cached_letters() -> list[Path]:
    """Every letters dataset file in the cache."""
    return sorted(cache_dir("datasets").glob("letters-*.npz"))


def clear_letters() -> list[Path]:
    """Delete every cached letters dataset; return the files removed."""
    removed = cached_letters()
    for p in removed:
        p.unlink(missing_ok=True)
    return removed
