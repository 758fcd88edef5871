"""The one experiment configuration: what every offline run (train, eval, demo, live) shares.

The data (built-in set size and seed), the encoders (reservoir seed, gain candidates, rate
windows, neural overrides) and the heads (a ``TrainConfig``: seen/unseen classes, pd,
epochs, loss, temperature, seed, threads) are declared here once.  ``EvalConfig``,
``ModelConfig`` (the demo's model) and ``ComparisonConfig`` hold one of these, or its
``heads``, instead of copies of its fields.  No torch here: the command line checks its
flags with it.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

from rram_lsm.nodes.projection.train_config import LOSS_NAMES, TrainConfig

SIZES = ("full", "tiny")


def check_loss(loss: str, temperature: float) -> None:
    """A ValueError naming ``--loss`` or ``--temperature`` when either is unusable."""
    if loss not in LOSS_NAMES:
        raise ValueError(f"--loss must be one of {LOSS_NAMES}, got {loss!r}")
    if not (temperature > 0 and math.isfinite(temperature)):
        raise ValueError(f"--temperature must be a positive number, got {temperature!r}")


def check_windows(windows) -> int:
    """``--windows`` as a positive int, or a ValueError naming it."""
    if isinstance(windows, bool) or not isinstance(windows, int) or windows < 1:
        raise ValueError(f"--windows must be a positive integer, got {windows!r}")
    return windows


def default_heads() -> TrainConfig:
    """The heads of an experiment unless told otherwise: the paper's, on two threads."""
    return TrainConfig(threads=2)


@dataclass
class ExperimentConfig:
    """The data, the encoders and the heads of an offline run; defaults are the paper's
    settings on the full built-in dataset."""

    size: str = "full"
    data_seed: int = 0
    reservoir_seed: int = 0
    gain_factors: tuple[float, ...] = (0.5, 1.0, 2.0)   # gain candidates x each preset's const
    windows: int = 1                      # rate windows per sample (1 = the paper's mean rate)
    neural_overrides: dict = field(default_factory=dict)   # preset overrides of the neural encoder
    heads: TrainConfig = field(default_factory=default_heads)

    def check(self) -> None:
        """A ValueError naming the flag of the first unusable setting."""
        if self.size not in SIZES:
            raise ValueError(f"--size must be full or tiny, got {self.size!r}")
        h = self.heads
        if set(h.seen) & set(h.unseen):
            raise ValueError(f"seen {h.seen} and unseen {h.unseen} overlap")
        if h.epochs <= 0 or h.pd <= 0:
            raise ValueError("epochs and pd must be positive")
        check_loss(h.loss, h.temperature)
        check_windows(self.windows)
        if not self.gain_factors or any(f <= 0 for f in self.gain_factors):
            raise ValueError(f"--gain-factors must be positive numbers, got {self.gain_factors!r}")
        h.validate()

    def overrides(self, modality: str) -> dict:
        """Preset overrides of one modality's encoder (the neural one's only)."""
        return dict(self.neural_overrides) if modality == "neural" else {}

    def train(self, seed: int | None = None, **changes) -> TrainConfig:
        """The heads' training config for one run: ``seed`` and ``changes`` on top."""
        if seed is not None:
            changes["seed"] = int(seed)
        return dataclasses.replace(self.heads, **changes)

    def as_dict(self) -> dict:
        """The flat fields results files have always carried (size, data_seed, ..., pd,
        epochs, loss, temperature, windows, threads)."""
        return {"size": self.size, "data_seed": self.data_seed,
                "reservoir_seed": self.reservoir_seed, "gain_factors": self.gain_factors,
                "pd": self.heads.pd, "epochs": self.heads.epochs, "loss": self.heads.loss,
                "temperature": self.heads.temperature, "windows": self.windows,
                "neural_overrides": dict(self.neural_overrides), "threads": self.heads.threads}
