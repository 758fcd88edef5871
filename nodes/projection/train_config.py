"""What one run of head training is: the classes, the head, the loss and the optimiser.

Plain data and no torch, so the command line and the experiment configuration
(``experiments.config``) can build and check it without loading the trainer; the trainer
itself is ``nodes.projection.train``.
"""
from __future__ import annotations

from dataclasses import dataclass

LOSS_NAMES = ("paper", "infonce", "supcon")   # nodes.projection.train.LOSSES
SELECT_ON = ("val_seen", "val_all", "last")


@dataclass
class TrainConfig:
    """Every knob of head training; defaults are the paper's zero-shot settings."""

    seen: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7)
    unseen: tuple[int, ...] = (8, 9)
    pd: int = 64
    hidden: tuple[int, ...] = ()          # extra hidden widths before pd (deeper variant)
    activation: str = "gelu"
    loss: str = "paper"
    temperature: float = 1.0
    lr: float = 1e-3
    batch_size: int = 8
    epochs: int = 100
    seed: int = 0
    max_pairs_per_class: int | None = None
    eval_max_per_class: int | None = 100   # test pools: up to 100 pairs per class
    select_on: str = "val_seen"            # "val_seen" | "val_all" | "last"
    rule_unseen: float = 0.85              # the authors' test-set selection rule
    rule_seen: float = 0.65
    pairing: str = "class"                 # "class"; "shuffled" is a negative control
    threads: int = 1

    def validate(self) -> None:
        """A ValueError naming the first unusable field (the loss is checked by the trainer,
        which knows every loss it has)."""
        if self.select_on not in SELECT_ON:
            raise ValueError(f"select_on {self.select_on!r} is not val_seen, val_all or last")
        if self.pairing not in ("class", "shuffled"):
            raise ValueError(f"pairing {self.pairing!r} is not 'class' or 'shuffled'")
        if set(self.seen) & set(self.unseen):
            raise ValueError(f"seen {self.seen} and unseen {self.unseen} classes overlap")
        for key in ("pd", "batch_size", "epochs", "threads"):
            if int(getattr(self, key)) <= 0:
                raise ValueError(f"{key} must be > 0, got {getattr(self, key)!r}")
        if self.temperature <= 0 or self.lr <= 0:
            raise ValueError("temperature and lr must be > 0")
