"""Dataset -> frozen LSM features, cached: the encoder is fixed, so each (data, preset, device,
seed) is encoded once and every later experiment re-reads the ``.npz``.

The cache key covers everything that shaped the features (DESIGN.md): where the samples came
from (the built-in dataset's build key, or a content hash), the preset with its overrides,
the device settings, the reservoir seed and the code version (``stream.cache.cache_key``).
Local copies of N-MNIST / N-TIDIGITS / SHD become :class:`ModalitySet`s through
``nodes.sources.readers`` (:func:`load_folder`).
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from rram_lsm.stream.cache import cache_dir, cache_key, save_npz
from rram_lsm.stream.node import ConfigError

from rram_lsm.nodes.lsm.binning import bin_events, event_addresses, to_dense
from rram_lsm.nodes.lsm.config import LsmConfig, check_windows, make_device
from rram_lsm.nodes.lsm.encode import encode_samples
from rram_lsm.nodes.lsm.presets import get_preset
from rram_lsm.nodes.lsm.reservoir import LifReservoir
from rram_lsm.nodes.sources import readers
from rram_lsm.nodes.sources.builtin import BuiltinSpec, ModalitySet

from .executor import LocalExecutor, current

FEATURES_FORMAT = 3   # 2: the float32 kernels sum dense bins as total minus silent rows (rounding)
                      # 3: the rram kernel sums a tile's input and recurrent rows apart (rounding)
# Which preset encodes which modality of the built-in dataset by default (PAPER.md: the
# zero-shot image and audio encoders; the neural one is the BMI encoder).
DEFAULT_PRESETS = {"visual": "zs_image", "audio": "zs_audio", "neural": "bmi_neural"}
EXTERNAL = ("nmnist", "ntidigits", "shd")


@dataclass
class FeatureSet:
    """Features ``(N, windows * n_neurons)`` of one modality, aligned with its
    labels/split/ids/half (``windows`` 1: one mean rate per neuron; ``health`` is of these
    values, so of the windowed rates when ``windows`` > 1)."""

    modality: str
    preset: str
    features: np.ndarray
    labels: np.ndarray
    split: np.ndarray
    ids: np.ndarray
    half: np.ndarray
    config: dict
    device: dict
    health: dict
    path: Path
    cached: bool = False          # True when read back from the cache (no encoding ran)
    seconds: float = 0.0          # encoding wall time (0 when cached)
    ops: dict = field(default_factory=dict)
    windows: int = 1

    def __len__(self) -> int:
        return len(self.features)

    def select(self, half: int | None = None) -> "FeatureSet":
        """The rows of one image half (neural<->visual uses visual half A)."""
        keep = np.ones(len(self), bool) if half is None else self.half == half
        return FeatureSet(self.modality, self.preset, self.features[keep], self.labels[keep],
                          self.split[keep], self.ids[keep], self.half[keep], self.config,
                          self.device, self.health, self.path, self.cached, self.seconds, self.ops,
                          self.windows)

    def modality_data(self, name: str | None = None):
        """``nodes.projection.train.ModalityData`` for head training (imports torch)."""
        from rram_lsm.nodes.projection.train import ModalityData
        return ModalityData(name or self.modality, self.preset, self.features, self.labels,
                            self.split)


def source_key(ms) -> str:
    """A content hash of a ModalitySet (events, labels, split, ids, half, geometry)."""
    h = hashlib.sha256()
    h.update(repr((ms.name, tuple(ms.geometry), ms.dtype_name)).encode())
    for arr in (ms.labels, ms.split, ms.ids, ms.half):
        h.update(np.ascontiguousarray(arr).tobytes())
    for ev in ms.events:
        h.update(len(ev).to_bytes(8, "little"))
        h.update(np.ascontiguousarray(ev).tobytes())
    return h.hexdigest()[:16]


def builtin_source(size: str, seed: int, modality: str) -> str:
    """The cache identity of a built-in modality: its build key (every generator parameter)."""
    return f"builtin:{size}:{seed}:{BuiltinSpec.for_size(size).key(seed)}:{modality}"


def resolve_config(ms, preset: str, overrides: dict | None = None, seed: int = 0) -> LsmConfig:
    """The preset with overrides and reservoir seed, checked against the data's input count."""
    config = get_preset(preset, **{**(overrides or {}), "seed": int(seed)})
    n_in = input_count(ms, config)
    if n_in != config.n_inputs:
        raise ConfigError(f"preset {preset!r} expects n_inputs={config.n_inputs}, but "
                          f"{ms.name} data ({ms.dtype_name}, geometry {tuple(ms.geometry)}, crop "
                          f"{config.crop}, polarity {config.polarity}) gives {n_in} inputs")
    return config


def input_count(ms, config: LsmConfig) -> int:
    """Input addresses the data gives under the preset's crop/polarity."""
    if ms.dtype_name == "dvs":
        w, h = config.crop or tuple(ms.geometry[:2])
        return w * h * (2 if config.polarity is None else 1)
    return int(ms.geometry[0])


def addresses(ms, config: LsmConfig) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(t_us, addr)`` of every sample under the preset's crop/polarity."""
    out = []
    for ev in ms.events:
        t, a, _ = event_addresses(ev, ms.geometry, polarity=config.polarity, crop=config.crop)
        out.append((t, a))
    return out


def feature_path(source: str, config: LsmConfig, device, windows: int = 1) -> Path:
    dev = make_device(device)
    extra = {"windows": windows} if windows > 1 else {}   # mean-rate caches keep their keys
    key = cache_key(kind="lsm-features", format=FEATURES_FORMAT, source=source,
                    config=config.as_dict(), device=dev.as_dict(), **extra)
    return cache_dir("features") / f"{dev.name}-{key}.npz"


def encode_modality(ms, preset: str | None = None, device="ideal", seed: int = 0,
                    progress: Callable[[int, int], None] | None = None, *,
                    overrides: dict | None = None, source: str | None = None,
                    use_cache: bool = True, windows: int = 1) -> FeatureSet:
    """Encode every sample of ``ms`` (a ``ModalitySet``) through the LSM, or read the cache.

    ``windows`` > 1 gives the rates in that many consecutive windows of each sample instead
    of one mean rate (what the ``lsm`` node's ``windows`` parameter emits).

    ``source`` names the data for the cache key (e.g. :func:`builtin_source`); without it a
    content hash of the samples is used.  ``progress(done, total)`` follows the encoder.
    On the command's Ray executor each chunk of samples is a task (:func:`encode_pieces`).
    """
    preset = preset or DEFAULT_PRESETS.get(ms.name)
    if preset is None:
        raise ConfigError(f"no default preset for modality {ms.name!r}; pass preset=")
    config = resolve_config(ms, preset, overrides, seed)
    windows = check_windows(windows)
    dev = make_device(device)
    path = feature_path(source or source_key(ms), config, dev, windows)
    if use_cache and path.exists():
        fs = read_features(path)
        fs.cached = True
        return fs
    start = time.perf_counter()
    reservoir = LifReservoir(config, dev)
    feats = encode_pieces(addresses(ms, config), reservoir, progress, windows)
    seconds = time.perf_counter() - start
    fs = FeatureSet(ms.name, preset, feats, np.asarray(ms.labels, np.int64),
                    np.asarray(ms.split, np.int8), np.asarray(ms.ids, np.int64),
                    np.asarray(ms.half, np.int8), config.as_dict(), dev.as_dict(),
                    LifReservoir.health(feats), path, False, seconds, dict(reservoir.ops), windows)
    write_features(fs)
    return fs


CHUNK = 512   # samples per encoding piece (encode_samples' own chunk)


def encode_pieces(samples: list[tuple[np.ndarray, np.ndarray]], reservoir: LifReservoir,
                  progress: Callable[[int, int], None] | None = None, windows: int = 1
                  ) -> np.ndarray:
    """``encode_samples`` here, or one Ray task per :data:`CHUNK` samples on the command's
    Ray executor: the samples go into the object store once, packed as three flat arrays,
    and every task builds the same reservoir from its config (same features, same op
    counts, added to ``reservoir.ops``)."""
    ex = current()
    if isinstance(ex, LocalExecutor):
        return encode_samples(samples, reservoir, progress=progress, windows=windows)
    n = len(samples)
    bounds = [(s, min(s + CHUNK, n)) for s in range(0, n, CHUNK)]
    on_done = None if progress is None else (lambda k, _: progress(min(k * CHUNK, n), n))
    parts = ex.map(_encode_chunk, bounds, _pack(samples), reservoir.config, reservoir.device,
                   windows, int(ex.cpus(None)), progress=on_done)
    feats = np.zeros((n, windows * reservoir.n_neurons), np.float32)
    for (start, stop), (f, ops) in zip(bounds, parts):
        feats[start:stop] = f
        reservoir.ops.update(ops)
    return feats


def _pack(samples: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, ...]:
    """``(offsets, t, addr)``: every sample's events end to end, one object to put."""
    offsets = np.zeros(len(samples) + 1, np.int64)
    offsets[1:] = np.cumsum([len(t) for t, _ in samples])
    if not samples:
        return offsets, np.zeros(0, np.int64), np.zeros(0, np.int64)
    return (offsets, np.concatenate([t for t, _ in samples]),
            np.concatenate([a for _, a in samples]))


def _encode_chunk(bounds: tuple[int, int], packed: tuple[np.ndarray, ...], config: LsmConfig,
                  device, windows: int, threads: int) -> tuple[np.ndarray, dict]:
    """One piece on a Ray worker: features and op counts of samples ``start:stop``, on as
    many numba threads as the task holds CPUs (one sample per thread: the same features)."""
    import numba

    numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))
    start, stop = bounds
    offsets, t, a = packed
    samples = [(t[offsets[i]:offsets[i + 1]], a[offsets[i]:offsets[i + 1]])
               for i in range(start, stop)]
    reservoir = LifReservoir(config, device)
    feats = encode_samples(samples, reservoir, windows=windows, first=start)
    return feats, dict(reservoir.ops)


def cache_here(fs: FeatureSet) -> FeatureSet:
    """``fs`` (computed by a Ray task, perhaps on another host) in this machine's feature
    cache: written unless already there, so later steps read it as if encoded here."""
    path = cache_dir("features") / fs.path.name
    fs = replace(fs, path=path)
    if not path.exists():
        write_features(fs)
    return fs


def write_features(fs: FeatureSet) -> Path:
    """Save a FeatureSet as ``.npz`` (arrays + JSON metadata, no pickle), atomically."""
    meta = {"format": FEATURES_FORMAT, "modality": fs.modality, "preset": fs.preset,
            "config": fs.config, "device": fs.device, "health": fs.health,
            "seconds": fs.seconds, "ops": {k: int(v) for k, v in fs.ops.items()},
            "windows": fs.windows}
    fs.path.parent.mkdir(parents=True, exist_ok=True)
    return save_npz(fs.path, meta, {"features": fs.features, "labels": fs.labels,
                                     "split": fs.split, "ids": fs.ids, "half": fs.half})


def read_features(path: str | Path) -> FeatureSet:
    """A FeatureSet written by :func:`write_features`."""
    path = Path(path)
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(str(z["meta"]))
        if meta.get("format") != FEATURES_FORMAT:
            raise ValueError(f"{path}: feature format {meta.get('format')} is not {FEATURES_FORMAT}")
        return FeatureSet(meta["modality"], meta["preset"], z["features"], z["labels"], z["split"],
                          z["ids"], z["half"], meta["config"], meta["device"], meta["health"],
                          path, False, float(meta.get("seconds", 0.0)), meta.get("ops", {}),
                          int(meta.get("windows", 1)))


def binned(ms, config: LsmConfig) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Each sample's CSR frames ``(bin_ptr, idx)`` under the preset's binning, as the encoder
    bins them (``chunk_pad`` on a 1 ms raster)."""
    mode = config.binning
    n_bins = None if mode == "fixed_width" else config.n_bins
    width = 1000 if mode == "chunk_pad" else config.bin_width_us
    for t, a in addresses(ms, config):
        yield bin_events(t, a, config.n_inputs, mode=mode, n_bins=n_bins, width_us=width)


def raw_frames(ms, config: LsmConfig) -> np.ndarray:
    """The binarised input frames the reservoir sees, flattened: ``uint8 (N, n_bins * n_inputs)``.

    Used by the raw-input linear probe, so the reservoir's cost in information is visible.
    """
    rows = []
    for bp, ix in binned(ms, config):
        frames = to_dense(bp, ix, config.n_inputs)
        if config.binning == "fixed_width":  # variable length: pad/cut to the preset's n_bins
            fixed = np.zeros((config.n_bins, config.n_inputs), np.uint8)
            k = min(config.n_bins, len(frames))
            fixed[:k] = frames[:k]
            frames = fixed
        rows.append(frames.ravel())
    return np.stack(rows) if rows else np.zeros((0, config.n_bins * config.n_inputs), np.uint8)


# ------------------------------------------------------------------ external datasets

def load_folder(kind: str, path: str | Path, val_fraction: float = 0.2, seed: int = 0,
                limit: int | None = None):
    """N-MNIST (folder), N-TIDIGITS or SHD (HDF5 file / folder of them) as a ``ModalitySet``.

    The datasets have train and test parts; validation is a per-class ``val_fraction`` of the
    training part drawn with ``seed``.  ``limit`` keeps the first samples of each part (quick runs).
    """
    if kind not in EXTERNAL:
        raise ConfigError(f"unknown dataset {kind!r}; expected builtin or one of {EXTERNAL}")
    path = Path(path)
    parts: dict[str, list] = {}
    if kind == "nmnist":
        for split in ("train", "test"):
            items = []
            for k, item in enumerate(readers.iter_nmnist(path, split)):
                if limit is not None and k >= limit:
                    break
                items.append(item)
            parts[split] = items
        geometry, dtype, name = readers.NMNIST_SENSOR, "dvs", "visual"
    elif kind == "ntidigits":
        h5 = path if path.is_file() else path / "n-tidigits.hdf5"
        parts = {s: readers.read_ntidigits(h5, s)[:limit] for s in ("train", "test")}
        geometry, dtype, name = (64,), "cochlea", "audio"
    else:
        files = {"train": path / "shd_train.h5", "test": path / "shd_test.h5"} if path.is_dir() \
            else {"train": path}
        parts = {s: readers.read_shd(f)[:limit] for s, f in files.items()}
        geometry, dtype, name = (700,), "cochlea", "audio"
    events, labels, split = [], [], []
    rng = np.random.default_rng(seed)
    for s, items in parts.items():
        lab = np.array([int(c) for _, c in items], np.int64)
        code = np.zeros(len(items), np.int8) if s == "train" else np.full(len(items), 2, np.int8)
        if s == "train":
            for c in np.unique(lab):
                rows = rng.permutation(np.flatnonzero(lab == c))
                code[rows[:int(round(len(rows) * val_fraction))]] = 1
        events += [ev for ev, _ in items]
        labels.append(lab)
        split.append(code)
    n = len(events)
    return ModalitySet(name, events, np.concatenate(labels), np.concatenate(split),
                       np.arange(n), np.full(n, -1, np.int8), tuple(geometry), dtype)


def external_source(kind: str, path: str | Path, seed: int, limit: int | None) -> str:
    """Cache identity of a local dataset: its kind, path, file sizes and times, split seed."""
    path = Path(path)
    files = sorted(p for p in ([path] if path.is_file() else path.rglob("*")) if p.is_file())
    h = hashlib.sha256()
    for p in files:
        st = p.stat()
        h.update(f"{p}:{st.st_size}:{int(st.st_mtime)}".encode())
    return f"{kind}:{path.resolve()}:{seed}:{limit}:{h.hexdigest()[:16]}"
