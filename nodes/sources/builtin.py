"""The built-in multimodal dataset: visual, spoken and "neural" digits made offline from real data.

Why: a fresh machine can download nothing, yet the demo and tests need three event
modalities of the same ten classes.  Everything here comes from data that ships in packages:
- visual: scikit-learn's 1,797 handwritten 8x8 digits, scaled to 16x16, through the saccade
  DVS emulator;
- audio: eSpeak NG saying "zero" ... "nine" with many accents and voice variants ("speakers"),
  pitches and rates, through the 64-channel cochlea emulator;
- neural: the handwriting emulator writing the images of half B of each class.  Half A is what
  the visual source shows in the neural<->visual setting, so a neural trial is never compared
  with the image it was written from.

Splits (0 train, 1 val, 2 test) are 60/20/20 within each class and half for images, and by
speaker for audio (test voices are never heard in training).  Everything is deterministic by
seed: every sample draws from its own generator seeded by (seed, modality, index), so the
result does not depend on how work is spread over processes.  The build runs once on a
process pool and is cached as an ``.npz`` (concatenated events + offsets, no pickle) under
``cache_dir("datasets")``, keyed by every generator parameter.
"""
from __future__ import annotations

import os
from concurrent.futures import (FIRST_COMPLETED, Executor, Future, ProcessPoolExecutor,
                                ThreadPoolExecutor, wait)
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from rram_lsm.stream.cache import cache_dir, cache_key, load_npz, save_npz
from rram_lsm.stream.packets import WIRE_DTYPES

from .cochlea import CochleaParams, emulate_cochlea
from .espeak import Voice, synthesize_many, trim_silence
from .handwriting import HandwritingParams, emulate_neural
from .saccade import SaccadeParams, emulate_saccades

FORMAT_VERSION = 1
MODALITIES = ("visual", "audio", "neural")
SPLITS = ("train", "val", "test")
WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
ACCENTS = ("en", "en-us", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-us-nyc",
           "en-gb-x-gbclan", "en-gb-x-gbcwmd")
# Variants without eSpeak's breath noise, which is not reproducible across processes
# (see nodes/sources/espeak.py); +linda and +anika stand in for +f2 and +f3.
VARIANTS = ("", "+m1", "+m2", "+m3", "+m4", "+m5", "+m6", "+m7", "+f1", "+f4", "+linda", "+anika")
_MOD_CODE = {"visual": 1, "audio": 2, "neural": 3, "split": 9}


@dataclass(frozen=True)
class BuiltinSpec:
    """Everything that shapes the dataset (all of it goes into the cache key)."""

    size: str = "full"
    images_per_class: int | None = None   # None = all of scikit-learn's digits
    n_speakers: int | None = None         # None = every accent x variant
    repeats: int = 2                      # utterances per speaker and digit (pitch/rate differ)
    fractions: tuple[float, float, float] = (0.6, 0.2, 0.2)
    image_size: int = 16
    pitch: tuple[int, int] = (35, 65)     # eSpeak pitch, drawn uniformly per utterance
    rate: tuple[int, int] = (140, 220)    # words per minute
    pitch_range: tuple[int, int] = (30, 70)
    saccade: SaccadeParams = field(default_factory=SaccadeParams)
    cochlea: CochleaParams = field(default_factory=lambda: CochleaParams(target_rms=0.1))
    handwriting: HandwritingParams = field(default_factory=HandwritingParams)

    @staticmethod
    def for_size(size: str) -> "BuiltinSpec":
        if size == "full":
            return BuiltinSpec(size="full")
        if size == "tiny":
            return BuiltinSpec(size="tiny", images_per_class=8, n_speakers=6, repeats=1)
        raise ValueError(f"built-in dataset size must be 'full' or 'tiny', got {size!r}")

    def key(self, seed: int) -> str:
        return cache_key(dataset="builtin", format=FORMAT_VERSION, seed=seed, words=WORDS,
                         accents=ACCENTS, variants=VARIANTS, **asdict(self))


@dataclass
class ModalitySet:
    """The samples of one modality; arrays are aligned with ``events``."""

    name: str
    events: list[np.ndarray]
    labels: np.ndarray
    split: np.ndarray     # 0 train, 1 val, 2 test
    ids: np.ndarray       # image index (visual, neural) or speaker id (audio)
    half: np.ndarray      # visual: 0 = half A, 1 = half B; -1 otherwise
    geometry: tuple[int, ...]
    dtype_name: str       # 'dvs' / 'cochlea' / 'neural'
    id_names: tuple[str, ...] = ()   # audio: speaker names indexed by ids

    def __len__(self) -> int:
        return len(self.events)

    def select(self, split: int | str | Iterable | None = None, half: int | None = None,
               classes: Iterable[int] | None = None) -> "ModalitySet":
        """The subset with the given split(s) ('train'/'val'/'test' or 0/1/2), half and classes."""
        keep = np.ones(len(self), bool)
        if split is not None:
            wanted = [split] if isinstance(split, (int, str, np.integer)) else list(split)
            codes = [_split_code(s) for s in wanted]
            keep &= np.isin(self.split, codes)
        if half is not None:
            if half not in (0, 1):
                raise ValueError(f"half must be 0 (A) or 1 (B), got {half!r}")
            keep &= self.half == half
        if classes is not None:
            keep &= np.isin(self.labels, np.asarray(list(classes)))
        idx = np.flatnonzero(keep)
        return ModalitySet(self.name, [self.events[i] for i in idx], self.labels[idx],
                           self.split[idx], self.ids[idx], self.half[idx], self.geometry,
                           self.dtype_name, self.id_names)


def _split_code(split: int | str) -> int:
    if isinstance(split, str):
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS} or 0/1/2, got {split!r}")
        return SPLITS.index(split)
    if int(split) not in (0, 1, 2):
        raise ValueError(f"split must be one of {SPLITS} or 0/1/2, got {split!r}")
    return int(split)


@dataclass
class BuiltinDataset:
    """The three modalities plus how they were made."""

    size: str
    seed: int
    path: Path
    meta: dict
    modalities: dict[str, ModalitySet]

    def modality(self, name: str) -> ModalitySet:
        if name not in self.modalities:
            raise KeyError(f"built-in dataset has no modality {name!r}; use one of {MODALITIES}")
        return self.modalities[name]


# ---------------------------------------------------------------- planning (cheap, in-process)

def split_counts(n: int, fractions: tuple[float, float, float]) -> tuple[int, int, int]:
    """Train/val/test counts for n items; val and test get at least one when n >= 3."""
    n_val = int(round(n * fractions[1]))
    n_test = int(round(n * fractions[2]))
    if n >= 3:
        n_val, n_test = max(n_val, 1), max(n_test, 1)
    return n - n_val - n_test, n_val, n_test


def _split_codes(n: int, fractions: tuple[float, float, float]) -> np.ndarray:
    tr, va, te = split_counts(n, fractions)
    return np.repeat(np.arange(3, dtype=np.int8), [tr, va, te])


def digit_images(size: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits scaled (bilinear) to size x size in [0, 1], and their labels."""
    from scipy.ndimage import zoom
    from sklearn.datasets import load_digits

    digits = load_digits()
    raw = digits.images.astype(np.float64) / 16.0
    scaled = np.clip(zoom(raw, (1, size / 8, size / 8), order=1), 0.0, 1.0)
    return scaled, digits.target.astype(np.int64)


def plan_images(labels: np.ndarray, spec: BuiltinSpec, seed: int
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(image indices, half, split) for the visual modality, per class, deterministic by seed."""
    rng = np.random.default_rng([seed, _MOD_CODE["split"], 0])
    idx_all, half_all, split_all = [], [], []
    for c in range(10):
        idx = rng.permutation(np.flatnonzero(labels == c))
        if spec.images_per_class is not None:
            idx = idx[:spec.images_per_class]
        n_a = (len(idx) + 1) // 2
        for h, part in enumerate((idx[:n_a], idx[n_a:])):
            idx_all.append(part)
            half_all.append(np.full(len(part), h, np.int8))
            split_all.append(_split_codes(len(part), spec.fractions))
    idx = np.concatenate(idx_all)
    order = np.argsort(idx, kind="stable")  # store in image-index order
    return idx[order], np.concatenate(half_all)[order], np.concatenate(split_all)[order]


def speakers(n: int | None = None) -> list[str]:
    """Speaker names (eSpeak voice + variant), accents interleaved so a prefix is varied."""
    names = [acc + var for var in VARIANTS for acc in ACCENTS]
    return names if n is None else names[:n]


def plan_audio(spec: BuiltinSpec, seed: int) -> dict[str, np.ndarray]:
    """Per utterance: label, speaker id, split (by speaker), pitch, rate and pitch range."""
    names = speakers(spec.n_speakers)
    rng = np.random.default_rng([seed, _MOD_CODE["split"], 1])
    speaker_split = np.empty(len(names), np.int8)
    speaker_split[rng.permutation(len(names))] = _split_codes(len(names), spec.fractions)
    rows = [(c, s, r) for s in range(len(names)) for c in range(10) for r in range(spec.repeats)]
    label = np.array([r[0] for r in rows], np.int64)
    spk = np.array([r[1] for r in rows], np.int64)
    draw = np.random.default_rng([seed, _MOD_CODE["split"], 2])
    return {
        "labels": label, "ids": spk, "split": speaker_split[spk],
        "pitch": draw.integers(spec.pitch[0], spec.pitch[1] + 1, len(rows)),
        "rate": draw.integers(spec.rate[0], spec.rate[1] + 1, len(rows)),
        "pitch_range": draw.integers(spec.pitch_range[0], spec.pitch_range[1] + 1, len(rows)),
        "names": np.array(names),
    }


# ---------------------------------------------------------------- work (runs in the pool)

def _make(job: tuple) -> list[tuple[int, np.ndarray]]:
    """Generate the events of one chunk of samples: (modality, seed, spec, items)."""
    modality, seed, spec, items = job
    out = []
    for index, payload in items:
        rng = np.random.default_rng([seed, _MOD_CODE[modality], index])
        if modality == "visual":
            ev = emulate_saccades(payload, rng, spec.saccade)
        elif modality == "neural":
            ev = emulate_neural(payload, rng, spec.handwriting)
        else:
            audio, sr = payload
            ev = emulate_cochlea(trim_silence(audio), sr, rng, spec.cochlea)
        out.append((index, ev))
    return out


def _run_jobs(jobs: list[tuple], n_items: int, workers: int, progress: bool,
              later: Future, later_jobs: Callable[[object], list[tuple]],
              pool: Executor | None = None) -> dict[tuple[str, int], np.ndarray]:
    """Run ``jobs`` and, once the ``later`` future is done, ``later_jobs(its result)``: the
    speech synthesis (one process of its own) overlaps the other modalities' work.  ``pool``
    (a Ray cluster's, say) replaces the local process pool of ``workers``."""
    from tqdm import tqdm

    results: dict[tuple[str, int], np.ndarray] = {}
    with tqdm(total=n_items, desc="building built-in dataset", unit="sample",
              disable=not progress) as bar:
        if workers <= 1 and pool is None:
            for job in jobs + later_jobs(later.result()):
                for index, ev in _make(job):
                    results[(job[0], index)] = ev
                bar.update(len(job[3]))
            return results
        import multiprocessing as mp

        # spawn: eSpeak keeps global C state, so every worker starts its own clean copy.
        with pool or ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as pool:
            running = {pool.submit(_make, job): job for job in jobs}
            pending: set[Future] = {*running, later}
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    if fut is later:
                        more = {pool.submit(_make, job): job for job in later_jobs(fut.result())}
                        running.update(more)
                        pending |= set(more)
                        continue
                    job = running.pop(fut)
                    for index, ev in fut.result():
                        results[(job[0], index)] = ev
                    bar.update(len(job[3]))
    return results


def _chunks(modality: str, seed: int, spec: BuiltinSpec, items: list, size: int) -> list[tuple]:
    return [(modality, seed, spec, items[i:i + size]) for i in range(0, len(items), size)]


# ---------------------------------------------------------------- build, save, load

def builtin_path(size: str = "full", seed: int = 0) -> Path:
    """Where the dataset of this size and seed is (or would be) cached."""
    spec = BuiltinSpec.for_size(size)
    return cache_dir("datasets") / f"builtin-{size}-seed{seed}-{spec.key(seed)}.npz"


def build_builtin(size: str = "full", seed: int = 0, progress: bool = True,
                  workers: int | None = None, force: bool = False,
                  pool: Executor | None = None) -> Path:
    """Build the dataset (unless cached and not ``force``) and return the cache file's path;
    the chunks of samples run on ``pool`` when given, else on ``workers`` local processes."""
    spec = BuiltinSpec.for_size(size)
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    path = builtin_path(size, seed)
    if path.exists() and not force:
        return path
    if workers is None:
        workers = max(1, min(2, os.cpu_count() or 1))
    images, labels = digit_images(spec.image_size)
    img_idx, img_half, img_split = plan_images(labels, spec, seed)
    neural_sel = img_half == 1
    audio = plan_audio(spec, seed)
    voices = [Voice(str(audio["names"][s]), int(r), int(p), int(pr)) for s, r, p, pr in
              zip(audio["ids"], audio["rate"], audio["pitch"], audio["pitch_range"])]

    visual_items = [(int(i), images[i]) for i in img_idx]
    neural_items = [(int(i), images[i]) for i in img_idx[neural_sel]]
    # Speech in one fresh process and a fixed order (eSpeak keeps hidden state between
    # utterances), while the pool makes the visual and neural events; the cochlea then runs
    # on the pool.
    def audio_jobs(speech: tuple[list[np.ndarray], int]) -> list[tuple]:
        clips, sr = speech
        return _chunks("audio", seed, spec, [(k, (clips[k], sr)) for k in range(len(clips))], 48)

    jobs = _chunks("visual", seed, spec, visual_items, 24) + _chunks("neural", seed, spec, neural_items, 48)
    n_items = len(visual_items) + len(voices) + len(neural_items)
    with ThreadPoolExecutor(1) as speaker:
        speech = speaker.submit(synthesize_many, [(WORDS[int(c)], v) for c, v in zip(audio["labels"], voices)])
        results = _run_jobs(jobs, n_items, workers, progress, speech, audio_jobs, pool)

    arrays: dict[str, np.ndarray] = {}

    def put(name: str, keys: list[int], labels_: np.ndarray, split: np.ndarray,
            ids: np.ndarray, half: np.ndarray, dtype: str) -> None:
        events = [results[(name, k)] for k in keys]
        arrays[f"{name}_events"] = (np.concatenate(events) if events
                                    else np.zeros(0, WIRE_DTYPES[dtype]))
        arrays[f"{name}_offsets"] = np.concatenate([[0], np.cumsum([len(e) for e in events])]
                                                   ).astype(np.int64)
        arrays[f"{name}_labels"] = np.asarray(labels_, np.int64)
        arrays[f"{name}_split"] = np.asarray(split, np.int8)
        arrays[f"{name}_ids"] = np.asarray(ids, np.int64)
        arrays[f"{name}_half"] = np.asarray(half, np.int8)

    put("visual", list(img_idx), labels[img_idx], img_split, img_idx, img_half, "dvs")
    put("audio", list(range(len(voices))), audio["labels"], audio["split"], audio["ids"],
        np.full(len(voices), -1), "cochlea")
    put("neural", list(img_idx[neural_sel]), labels[img_idx[neural_sel]],
        img_split[neural_sel], img_idx[neural_sel], np.full(int(neural_sel.sum()), -1), "neural")
    arrays["audio_speakers"] = audio["names"].astype(str)
    for k in ("pitch", "rate", "pitch_range"):
        arrays[f"audio_{k}"] = audio[k].astype(np.int16)
    meta = {
        "format": FORMAT_VERSION, "size": size, "seed": int(seed),
        "geometry": {"visual": list(spec.saccade.sensor_size), "audio": [spec.cochlea.n_channels],
                     "neural": [spec.handwriting.n_electrodes]},
        "dtype": {"visual": "dvs", "audio": "cochlea", "neural": "neural"},
        "spec": asdict(spec),
    }
    return save_npz(path, meta, arrays)


def read_builtin(path: str | Path) -> BuiltinDataset:
    """Load a cached dataset file (no pickle), checking its arrays agree with each other."""
    path = Path(path)
    data, meta = load_npz(path, "built-in dataset", FORMAT_VERSION, "clear it with `rram-lsm data clear`")
    mods = {}
    for name in MODALITIES:
        offsets = data[f"{name}_offsets"]
        events = data[f"{name}_events"]
        dtype = meta["dtype"][name]
        if events.dtype != WIRE_DTYPES[dtype] or offsets[-1] != len(events):
            raise ValueError(f"{path}: {name} events are inconsistent (dtype or offsets)")
        n = len(offsets) - 1
        for k in ("labels", "split", "ids", "half"):
            if len(data[f"{name}_{k}"]) != n:
                raise ValueError(f"{path}: {name}_{k} has {len(data[f'{name}_{k}'])} rows, "
                                 f"expected {n}")
        names = tuple(str(s) for s in data["audio_speakers"]) if name == "audio" else ()
        mods[name] = ModalitySet(
            name=name, events=[events[offsets[i]:offsets[i + 1]] for i in range(n)],
            labels=data[f"{name}_labels"], split=data[f"{name}_split"],
            ids=data[f"{name}_ids"], half=data[f"{name}_half"],
            geometry=tuple(meta["geometry"][name]), dtype_name=dtype, id_names=names,
        )
    return BuiltinDataset(size=meta["size"], seed=meta["seed"], path=path, meta=meta,
                          modalities=mods)


def load_builtin(size: str = "full", seed: int = 0, progress: bool = True,
                 pool: Executor | None = None) -> BuiltinDataset:
    """The built-in dataset, built on first use (on ``pool`` when given) and read from the
    cache afterwards."""
    return read_builtin(build_builtin(size, seed, progress, pool=pool))


def cached_builtin() -> list[Path]:
    """Every built-in dataset file in the cache."""
    return sorted(cache_dir("datasets").glob("builtin-*.npz"))


def clear_builtin() -> list[Path]:
    """Delete every cached built-in dataset; return the files removed."""
    removed = cached_builtin()
    for p in removed:
        p.unlink(missing_ok=True)
    return removed


def modality_stats(ms: ModalitySet) -> dict:
    """Counts, events per sample, durations and event rates, and per-class/split counts."""
    n_events = np.array([len(e) for e in ms.events], np.int64)
    dur_s = np.array([(e["t"][-1] - e["t"][0]) * 1e-6 if len(e) > 1 else 0.0
                      for e in ms.events])
    rate = np.divide(n_events, dur_s, out=np.zeros(len(ms), float), where=dur_s > 0)
    per_class = {split: np.bincount(ms.labels[ms.split == i], minlength=10).tolist()
                 for i, split in enumerate(SPLITS)}
    return {
        "samples": len(ms), "dtype": ms.dtype_name, "geometry": list(ms.geometry),
        "events_mean": float(n_events.mean()) if len(ms) else 0.0,
        "events_min": int(n_events.min()) if len(ms) else 0,
        "events_max": int(n_events.max()) if len(ms) else 0,
        "duration_ms_mean": float(dur_s.mean() * 1e3) if len(ms) else 0.0,
        "rate_hz_mean": float(rate.mean()) if len(ms) else 0.0,
        "per_class": per_class,
        "distinct_ids": int(len(np.unique(ms.ids))),
    }
