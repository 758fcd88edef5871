"""PrototypeBank: per-class reference embeddings of the other modality (numpy, hot path).

Scoring is cosine similarity.  In ``mean`` mode a class scores by its prototype (the
L2-normalised mean of its L2-normalised references, the default of DESIGN.md); in
``exemplars`` mode by its best-matching reference (at most ``k`` kept per class).  A best
score below ``threshold`` gives label -1 ("unknown").  Classes can be added, extended and
removed at run time, without retraining.

The bank knows its ``seen`` classes (those the heads were trained on) and a ``calibration``
constant: the ranking is calibrated stacking (``gzsl.decide``: ``calibration`` subtracted from
seen-class scores; 0 is the plain cosine ranking), so seen and unseen prototypes compete
fairly.  Classes added at run time are not seen.  The cosine is computed row by row, not as
one matrix product, so a query scores bit-identically alone or in a batch (BLAS kernels sum in
a different order for one row and for many), and the node's predictions equal offline ones.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rram_lsm.stream.validate import all_finite

from .gzsl import UNKNOWN, calibration_offset, decide

MODES = ("mean", "exemplars")
_CHUNK = 1 << 22            # products per scoring chunk (bounds the temporary's memory)


def _unit(x: np.ndarray) -> np.ndarray:
    # the norm in float64: float32 squares of large (finite) inputs would overflow to inf
    x = np.asarray(x, dtype=np.float64)
    return (x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)).astype(np.float32)


@dataclass
class Prediction:
    """Top-k classes with their calibrated cosine scores (the plain cosine for unseen classes
    or calibration 0); ``label`` is -1 when its cosine is below the reject threshold."""

    label: int
    topk: list[int]
    scores: list[float]


class PrototypeBank:
    """Class -> reference embeddings, with cosine top-k, calibrated stacking, rejection and
    run-time edits."""

    def __init__(self, dim: int, mode: str = "mean", k: int | None = None,
                 threshold: float | None = None, modality: str = "", seed: int = 0,
                 seen: list[int] | None = None, calibration: float = 0.0):
        if mode not in MODES:
            raise ValueError(f"bank mode {mode!r} is not one of {MODES}")
        if int(dim) <= 0:
            raise ValueError(f"bank dim must be > 0, got {dim}")
        if k is not None and int(k) <= 0:
            raise ValueError(f"bank k must be > 0, got {k}")
        if threshold is not None and not -1.0 <= float(threshold) <= 1.0:
            raise ValueError(f"bank threshold {threshold} must lie in [-1, 1] (cosine)")
        self.dim, self.mode, self.k = int(dim), mode, (int(k) if k is not None else None)
        self.threshold = None if threshold is None else float(threshold)
        self.modality = modality            # the modality the references come from
        self._rng = np.random.default_rng(seed)
        self._refs: dict[int, np.ndarray] = {}
        self._matrix: np.ndarray | None = None      # cached (n_rows, dim) scoring matrix
        self._row_class: np.ndarray | None = None
        self.seen: tuple[int, ...] | None = None     # None: not known (no calibration)
        self.calibration = 0.0
        self.set_calibration(calibration, seen)

    def set_calibration(self, calibration: float, seen: list[int] | None = None) -> None:
        """Set the calibrated-stacking constant (and the seen classes, when given)."""
        try:
            gamma = float(calibration)
        except (TypeError, ValueError):
            raise ValueError(f"bank calibration must be a number, got {calibration!r}") from None
        if not np.isfinite(gamma):
            raise ValueError(f"bank calibration must be finite, got {calibration!r}")
        if seen is not None:
            self.seen = tuple(sorted({int(c) for c in seen}))
        if gamma != 0.0 and not self.seen:
            raise ValueError("a calibration constant needs the seen classes (bank 'seen')")
        self.calibration = gamma
        self._matrix = None  # rebuilt with its calibration row on the next query

    # ----------------------------------------------------------------- building
    @classmethod
    def from_embeddings(cls, embeddings: np.ndarray, labels: np.ndarray, mode: str = "mean",
                        k: int | None = None, threshold: float | None = None,
                        modality: str = "", seed: int = 0, seen: list[int] | None = None,
                        calibration: float = 0.0) -> "PrototypeBank":
        """A bank from labelled embeddings (e.g. the other modality's training samples)."""
        embeddings = np.asarray(embeddings)
        if embeddings.ndim != 2:
            raise ValueError(f"embeddings must be (N, dim), got {embeddings.shape}")
        bank = cls(embeddings.shape[1], mode, k, threshold, modality, seed, seen, calibration)
        labels = np.asarray(labels).astype(int)
        for c in np.unique(labels):
            bank.add_class(int(c), embeddings[labels == c])
        return bank

    def _check(self, embeddings: np.ndarray) -> np.ndarray:
        e = np.asarray(embeddings, dtype=np.float32)
        if e.ndim == 1:
            e = e[None, :]
        if e.ndim != 2 or e.shape[1] != self.dim:
            raise ValueError(f"embedding of shape {e.shape} does not match the bank's "
                             f"dimension {self.dim}")
        if len(e) == 0:
            raise ValueError("no embeddings given")
        if not all_finite(e):
            raise ValueError("embeddings contain NaN or inf")
        return e

    def add_class(self, label: int, embeddings: np.ndarray) -> None:
        """Add (or replace) a class from its reference embeddings."""
        e = _unit(self._check(embeddings))
        if self.mode == "exemplars" and self.k is not None and len(e) > self.k:
            e = e[np.sort(self._rng.choice(len(e), self.k, replace=False))]
        self._refs[int(label)] = e
        self._matrix = None

    def add_examples(self, label: int, embeddings: np.ndarray) -> None:
        """Append references to a class (created if new): a bank accumulated at run time."""
        e = _unit(self._check(embeddings))
        old = self._refs.get(int(label))
        merged = e if old is None else np.concatenate([old, e])
        if self.mode == "exemplars" and self.k is not None and len(merged) > self.k:
            merged = merged[-self.k:]          # keep the most recent k
        self._refs[int(label)] = merged
        self._matrix = None

    def remove_class(self, label: int) -> None:
        if int(label) not in self._refs:
            raise KeyError(f"class {label} is not in the bank (has {self.classes})")
        del self._refs[int(label)]
        self._matrix = None

    @property
    def classes(self) -> list[int]:
        return sorted(self._refs)

    @property
    def n_references(self) -> int:
        """Rows compared per query (prototypes or exemplars): the classifier's MAC count / dim."""
        self._build()
        return 0 if self._matrix is None else len(self._matrix)

    @property
    def macs_per_query(self) -> int:
        """MACs to score one query: ``dim`` to normalise it, ``dim`` per reference row."""
        return (self.n_references + 1) * self.dim

    @property
    def chance(self) -> float:
        """Chance accuracy of the bank in use: 1 / number of classes (uniform guess)."""
        return 1.0 / len(self._refs) if self._refs else 0.0

    def references(self, label: int) -> np.ndarray:
        return self._refs[int(label)].copy()

    def prototype(self, label: int) -> np.ndarray:
        return _unit(self._refs[int(label)].mean(axis=0))

    # ----------------------------------------------------------------- scoring
    def _build(self) -> None:
        if self._matrix is not None or not self._refs:
            return
        classes = self.classes
        self._classes = np.asarray(classes)  # the score columns, and their calibration row
        self._offset = calibration_offset(self._classes, self.seen, self.calibration)
        if self.mode == "mean":
            self._matrix = np.stack([self.prototype(c) for c in classes])
            self._row_class = np.asarray(classes)
        else:
            self._matrix = np.concatenate([self._refs[c] for c in classes])
            self._row_class = np.concatenate([np.full(len(self._refs[c]), c) for c in classes])

    def scores(self, embeddings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-class cosine scores ``(rows, n_classes)`` and the class order."""
        if not self._refs:
            raise ValueError("the bank is empty: add a class first")
        q = _unit(self._check(embeddings))
        self._build()
        m = self._matrix
        step = max(1, _CHUNK // m.size)
        # Products summed along each row (not q @ m.T): the same bits alone or in a batch.
        if len(q) <= step:  # one chunk (a live query): the same products, no concatenate
            sims = (q[:, None, :] * m[None]).sum(axis=-1)
        else:
            sims = np.concatenate([(q[i:i + step, None, :] * m[None]).sum(axis=-1)
                                   for i in range(0, len(q), step)])
        classes = self._classes
        if self.mode == "mean":
            return sims, classes
        out = np.full((len(q), len(classes)), -np.inf, dtype=np.float32)
        for j, c in enumerate(classes):
            out[:, j] = sims[:, self._row_class == c].max(axis=1)
        return out, classes

    def classify(self, embeddings: np.ndarray, topk: int = 1) -> list[Prediction]:
        """Top-k classes per row by calibrated stacking, the reject threshold applied to the
        top class's cosine (``gzsl.decide``, the rule offline evaluation uses too)."""
        sims, classes = self.scores(embeddings)
        order, labels, cal = decide(sims, classes, self.seen, self.calibration, topk,
                                    self.threshold, self._offset)
        return [Prediction(int(label), [int(c) for c in classes[idx]],
                           [float(row[i]) for i in idx])
                for label, row, idx in zip(labels, cal, order)]

    def predict(self, embeddings: np.ndarray) -> np.ndarray:
        """Top-1 labels (with -1 for rejected rows)."""
        return np.array([p.label for p in self.classify(embeddings, 1)], dtype=int)

    # ----------------------------------------------------------------- files
    def save(self, path: str | Path) -> Path:
        path = Path(path)
        if path.suffix != ".npz":
            raise ValueError(f"{path}: a bank is saved as .npz")
        meta = {"dim": self.dim, "mode": self.mode, "k": self.k, "threshold": self.threshold,
                "modality": self.modality, "classes": self.classes,
                "seen": None if self.seen is None else list(self.seen),
                "calibration": self.calibration}
        arrays = {f"class_{c}": self._refs[c] for c in self.classes}
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, __bank__=np.array(json.dumps(meta)), **arrays)
        return path

    @classmethod
    def load(cls, path: str | Path, threshold: float | None = None) -> "PrototypeBank":
        """Load a bank; ``threshold`` overrides the saved one when given.  Files saved before
        banks knew their seen classes load with ``seen`` None and calibration 0."""
        path = Path(path)
        if not path.exists():
            raise ValueError(f"bank file {path} does not exist")
        with np.load(path, allow_pickle=False) as z:
            if "__bank__" not in z.files:
                raise ValueError(f"{path}: no '__bank__' entry; not a bank file")
            meta = json.loads(str(z["__bank__"]))
            bank = cls(meta["dim"], meta["mode"], meta["k"],
                       meta["threshold"] if threshold is None else threshold, meta["modality"],
                       seen=meta.get("seen"), calibration=meta.get("calibration", 0.0))
            for c in meta["classes"]:
                refs = z[f"class_{c}"]
                if refs.ndim != 2 or refs.shape[1] != bank.dim:
                    raise ValueError(f"{path}: class {c} references have shape {refs.shape}, "
                                     f"expected (n, {bank.dim})")
                bank._refs[int(c)] = refs.astype(np.float32)
        return bank
