"""Supervised linear probe (the paper's "supervised readout"): one linear layer, softmax
cross-entropy, on frozen LSM features or on the raw binarised input frames.

A multinomial logistic regression (scikit-learn, L-BFGS) is exactly one linear layer trained
with cross-entropy; its L2 strength ``C`` is chosen on the validation split only, then the
model fitted on the training split is scored on train, val and test.  The raw-frame probe beside
the LSM probe shows what the 200-neuron reservoir costs in information.
"""
from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass

import numpy as np

TRAIN, VAL, TEST = 0, 1, 2
DEFAULT_CS = (0.01, 0.1, 1.0, 10.0)


@dataclass
class ProbeResult:
    """Accuracies of the validation-selected probe, with chance (most frequent test class)."""

    train: float
    val: float
    test: float
    chance: float
    C: float
    val_by_C: dict
    n_features: int
    n_classes: int

    def as_dict(self) -> dict:
        return asdict(self)


def standardise(x: np.ndarray, train_rows: np.ndarray) -> np.ndarray:
    """Features scaled by the training rows' mean and std (constant features left at 0)."""
    x = np.asarray(x, dtype=np.float64)
    mean = x[train_rows].mean(axis=0)
    std = x[train_rows].std(axis=0)
    return (x - mean) / np.where(std < 1e-9, 1.0, std)


def _fit(x: np.ndarray, y: np.ndarray, C: float, seed: int, max_iter: int):
    from sklearn.linear_model import LogisticRegression
    model = LogisticRegression(C=C, max_iter=max_iter, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence warnings: the iteration cap is a choice
        model.fit(x, y)
    return model


def linear_probe(x: np.ndarray, labels: np.ndarray, split: np.ndarray,
                 Cs: tuple[float, ...] = DEFAULT_CS, seed: int = 0,
                 max_iter: int = 300, test: bool = True) -> ProbeResult:
    """Fit on split 0, choose ``C`` by split-1 accuracy, report train/val/test accuracy.

    ``test=False`` never touches the test rows (their accuracy is reported as NaN): used by
    gain calibration, which must not see the test split at all.
    """
    labels = np.asarray(labels).astype(int)
    split = np.asarray(split).astype(int)
    tr, va, te = (np.flatnonzero(split == s) for s in (TRAIN, VAL, TEST))
    if len(tr) == 0 or len(va) == 0:
        raise ValueError(f"the probe needs train and validation rows, got {len(tr)} and {len(va)}")
    if len(np.unique(labels[tr])) < 2:
        raise ValueError("the probe needs at least two classes in the training split")
    z = standardise(x, tr)
    val_by_C, models = {}, {}
    for C in Cs:
        models[C] = _fit(z[tr], labels[tr], C, seed, max_iter)
        val_by_C[float(C)] = float(np.mean(models[C].predict(z[va]) == labels[va]))
    best = max(Cs, key=lambda c: (val_by_C[float(c)], -abs(np.log10(c))))  # ties: mid C
    m = models[best]
    acc = lambda rows: float(np.mean(m.predict(z[rows]) == labels[rows])) if len(rows) else float("nan")
    test_rows = te if test else np.zeros(0, int)
    ref = labels[te] if test and len(te) else labels[va]
    chance = float(np.bincount(ref).max() / len(ref))
    return ProbeResult(train=acc(tr), val=val_by_C[float(best)], test=acc(test_rows),
                       chance=chance, C=float(best), val_by_C=val_by_C,
                       n_features=int(z.shape[1]), n_classes=int(len(np.unique(labels[tr]))))
