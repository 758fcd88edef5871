"""The built-in dataset loaded once, each (modality, device) calibrated and encoded once,
and the modality pairs of the zero-shot experiments built from them."""
from __future__ import annotations

import time
from typing import Callable

from rram_lsm.nodes.lsm.rram import DeviceConfig, make_device
from rram_lsm.nodes.sources.builtin import load_builtin

from .calibrate import Calibration, calibrate_gain
from .config import ExperimentConfig
from .executor import current
from .features import DEFAULT_PRESETS, FeatureSet, builtin_source, encode_modality

# query side (the paper's audio role) and visual side of each zero-shot setting
PAIRS = {"audio-visual": ("audio", "visual"), "neural-visual": ("neural", "visual")}


class FeatureStore:
    """Loads the built-in dataset once and calibrates/encodes each (modality, device) once."""

    def __init__(self, cfg: ExperimentConfig, log: Callable[[str], None] = print):
        self.cfg, self.log = cfg, log
        self.dataset = load_builtin(cfg.size, cfg.data_seed, progress=False,
                                    pool=current().futures())
        self.cal: dict[tuple, Calibration] = {}
        self.windowed: dict[tuple, FeatureSet] = {}
        self.cal_devices: dict[tuple, tuple[Calibration, DeviceConfig]] = {}

    def overrides(self, modality: str) -> dict:
        return self.cfg.overrides(modality)

    def source(self, modality: str) -> str:
        """The cache identity of one modality of the store's dataset."""
        return builtin_source(self.cfg.size, self.cfg.data_seed, modality)

    def calibration(self, modality: str, device, overrides: dict | None = None) -> Calibration:
        """The validation-calibrated gain (and its features) of ``modality`` on ``device``;
        ``overrides`` (a larger reservoir, say) go on top of the store's own, cached apart."""
        dev = make_device(device)
        extra = tuple(sorted((overrides or {}).items()))
        key = (modality, repr(dev), extra)
        if key not in self.cal:
            ms = self.dataset.modality(modality)
            start = time.perf_counter()
            self.cal[key] = calibrate_gain(
                ms, DEFAULT_PRESETS[modality], dev, self.cfg.reservoir_seed,
                factors=self.cfg.gain_factors, overrides={**self.overrides(modality), **dict(extra)},
                source=self.source(modality))
            c = self.cal[key]
            self.cal_devices[key] = (c, dev)
            self.log(f"  gain {modality}/{dev.name}{extra_label(extra)}: const {c.const:.4g} "
                     f"({time.perf_counter() - start:.0f} s)")
        return self.cal[key]

    def features(self, modality: str, device, overrides: dict | None = None,
                 windows: int | None = None) -> FeatureSet:
        """Features at the calibrated gain, with ``windows`` rate windows per sample (default:
        the config's).  The gain is calibrated on mean rates either way."""
        cal = self.calibration(modality, device, overrides)
        windows = self.cfg.windows if windows is None else windows
        if windows == 1:
            return cal.features
        key = (modality, repr(make_device(device)), tuple(sorted((overrides or {}).items())), windows)
        if key not in self.windowed:
            self.windowed[key] = encode_modality(
                self.dataset.modality(modality), DEFAULT_PRESETS[modality], device,
                self.cfg.reservoir_seed, windows=windows,
                overrides={**self.overrides(modality), **(overrides or {}), "const": cal.const},
                source=self.source(modality))
        return self.windowed[key]


def extra_label(extra: tuple) -> str:
    """`` n_neurons=800`` for a calibration's extra overrides ('' for none)."""
    return "".join(f" {k}={v}" for k, v in extra)


def pair_features(fa: FeatureSet, fb: FeatureSet):
    """(A, B) ``ModalityData`` of a pair's query and visual features: against neural trials
    (written from image half B) only visual half A is used, so no trial meets its own image."""
    if fa.modality == "neural":
        fb = fb.select(half=0)
    return fa.modality_data(), fb.modality_data()


def pair_data(store: FeatureStore, pair: str, device, windows: int | None = None):
    """(A, B) ``ModalityData``: A is the query side (audio or neural), B the visual side;
    ``windows`` as :meth:`FeatureStore.features`."""
    if pair not in PAIRS:
        raise ValueError(f"unknown pair {pair!r}; expected one of {sorted(PAIRS)}")
    a_name, b_name = PAIRS[pair]
    return pair_features(store.features(a_name, device, windows=windows),
                         store.features(b_name, device, windows=windows))
