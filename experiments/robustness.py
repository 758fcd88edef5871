"""RRAM robustness: accuracy against each non-ideality's magnitude around the ``rram``
defaults, the gain re-calibrated on validation for every device setting."""
from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np

from rram_lsm.nodes.lsm.rram import DeviceConfig, make_device

from .probe import linear_probe
from .results import ModalityUnderDevice, RobustnessRow
from .runs import zero_shot
from .store import FeatureStore, pair_data

# Each non-ideality's magnitudes, around the cited rram defaults (DeviceConfig docstring).
ROBUSTNESS_FULL: dict[str, list] = {
    "prog_noise_scale": [0.0, 0.5, 1.0, 2.0, 4.0],
    "read_noise_scale": [0.0, 0.02, 0.05, 0.1, 0.2],
    "n_levels": [0, 64, 16, 8, 4],
    "t_inference": [0.0, 3600.0, 86400.0, 3.15e7],
    "stuck_frac": [0.0, 0.006, 0.03, 0.1],
    "adc_bits": [0, 8, 6, 4],
}
ROBUSTNESS_REDUCED: dict[str, list] = {
    "prog_noise_scale": [0.0, 1.0, 4.0],
    "read_noise_scale": [0.0, 0.02, 0.2],
    "n_levels": [0, 8],
    "t_inference": [0.0, 3600.0, 3.15e7],
    "stuck_frac": [0.0, 0.006, 0.1],
    "adc_bits": [0, 8, 4],
}


def robustness_device(param: str, value) -> DeviceConfig:
    """The ``rram`` device with one non-ideality set to ``value`` (``stuck_frac`` splits 1:5
    between stuck-on and stuck-off, as the defaults do)."""
    base = DeviceConfig.rram()
    if param == "stuck_frac":
        return dataclasses.replace(base, stuck_on_prob=value / 6, stuck_off_prob=value * 5 / 6)
    if param not in {f.name for f in dataclasses.fields(DeviceConfig)}:
        raise ValueError(f"unknown non-ideality {param!r}")
    return dataclasses.replace(base, **{param: type(getattr(base, param))(value)})



def robustness(store: FeatureStore, grid: dict, heads, seed: int = 0,
               modalities=("visual", "audio"),
               log: Callable[[str], None] = print) -> list[RobustnessRow]:
    """Per non-ideality value: gain re-calibrated on validation, probe test accuracy per
    modality and (when both audio and visual are present) seen/unseen audio->image retrieval
    of ``heads`` (a ``TrainConfig``) trained with ``seed``."""
    rows, done = [], {}
    for param, values in grid.items():
        for v in values:
            dev = robustness_device(param, v)
            here = {"param": param, "value": v, "is_default": _is_default(param, v)}
            if repr(dev) in done:  # the same device as an earlier row (e.g. the defaults)
                rows.append(dataclasses.replace(done[repr(dev)], **here))
                continue
            row = RobustnessRow(**here, modalities={})
            for m in modalities:
                cal = store.calibration(m, dev)
                fs = store.features(m, dev)
                p = linear_probe(fs.features, fs.labels, fs.split, seed=store.cfg.reservoir_seed)
                health = cal.features.health   # of the mean rates
                row.modalities[m] = ModalityUnderDevice(p.test, p.chance, cal.const,
                                                        health["silent_frac"],
                                                        health["saturated_frac"])
            if {"audio", "visual"} <= set(modalities):
                a, b = pair_data(store, "audio-visual", dev)
                z = zero_shot(a, b, heads, seeds=(seed,)).summary
                row.av_seen, row.av_unseen = z.seen.a_to_b.mean, z.unseen.a_to_b.mean
            rows.append(row)
            done[repr(dev)] = row
            log(f"  robustness {param}={v}: " + ", ".join(
                f"{k} {x:.1%}" for k, x in row.accuracies().items()))
    return rows


def device_label(dev: DeviceConfig) -> str:
    """``ideal`` / ``rram``, or ``rram(param=value, ...)`` for a variant of a named setting."""
    ref = make_device(dev.name) if dev.name in ("ideal", "rram") else DeviceConfig.ideal()
    diff = [f"{k}={v:g}" for k, v in dev.as_dict().items()
            if k != "name" and v != getattr(ref, k)]
    return dev.name + (f"({', '.join(diff)})" if diff else "")


def _is_default(param: str, value) -> bool:
    d = DeviceConfig.rram()
    if param == "stuck_frac":
        return abs(value - (d.stuck_on_prob + d.stuck_off_prob)) < 1e-12
    return getattr(d, param) == value


def plot_robustness(rows: list[RobustnessRow], path) -> None:
    """One panel per non-ideality: probe accuracy (and retrieval) against its magnitude."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    params = list(dict.fromkeys(r.param for r in rows))
    fig, axes = plt.subplots(1, len(params), figsize=(3.2 * len(params), 3.0), squeeze=False)
    for ax, param in zip(axes[0], params):
        sub = [r for r in rows if r.param == param]
        x = np.arange(len(sub))
        for key in sub[0].accuracies():
            ax.plot(x, [r.accuracies()[key] for r in sub], "o-", ms=3, label=key)
        for i, r in enumerate(sub):
            if r.is_default:
                ax.axvline(i, color="0.7", ls=":")
        ax.set_xticks(x, [f"{r.value:g}" for r in sub], fontsize=7)
        ax.set_title(param, fontsize=8)
        ax.set_ylim(0, 1)
    axes[0][0].set_ylabel("test accuracy")
    axes[0][-1].legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


