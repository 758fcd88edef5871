"""Numpy inference for trained projection heads (no torch: this runs in the hot path).

A head is: standardise with the training mean/std -> (Linear -> activation) per layer ->
L2 normalise.  Weights use torch's ``Linear`` layout (``W`` is ``(out, in)``), so a head
trained in ``nodes.projection.train`` loads here unchanged.

File format (``.npz`` or ``.safetensors``), one file may hold several heads (one per
modality): arrays ``{modality}/mean``, ``{modality}/std``, ``{modality}/W{i}``,
``{modality}/b{i}``, and a JSON config (in the npz as a 0-d unicode array ``__config__``,
in safetensors as the metadata entry ``config``) with ``{"heads": {modality: HeadConfig},
"train": {...}}``.  Nothing is pickled.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy.special import erf

ACTIVATIONS = ("gelu", "relu", "identity")
FORMAT_VERSION = 1


@dataclass
class HeadConfig:
    """What made a head: the LSM preset and feature size it expects, and its layers."""

    preset: str
    modality: str
    n_features: int
    layers: list[int]                  # output width of each Linear; the last is pd
    activation: str = "gelu"
    final_activation: bool = True      # the paper's head is Linear -> GELU (activation last)

    @property
    def pd(self) -> int:
        return int(self.layers[-1])

    def validate(self) -> None:
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"head {self.modality!r}: activation {self.activation!r} "
                             f"is not one of {ACTIVATIONS}")
        if not self.layers or any(int(w) <= 0 for w in self.layers):
            raise ValueError(f"head {self.modality!r}: layers must be positive widths, "
                             f"got {self.layers!r}")
        if int(self.n_features) <= 0:
            raise ValueError(f"head {self.modality!r}: n_features must be > 0")


def gelu(x: np.ndarray) -> np.ndarray:
    """Exact GELU, 0.5·x·(1 + erf(x/√2)), the form torch's ``nn.GELU()`` uses by default."""
    return 0.5 * x * (1.0 + erf(x / np.sqrt(2.0)))


def _activate(x: np.ndarray, name: str) -> np.ndarray:
    if name == "gelu":
        return gelu(x)
    if name == "relu":
        return np.maximum(x, 0.0)
    return x


def l2_normalise(x: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero), as float32."""
    x = np.asarray(x, dtype=np.float64)  # no float32 overflow in the squares
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return (x / np.maximum(norm, eps)).astype(np.float32)


@dataclass
class ProjectionHead:
    """One trained head: feature standardisation, dense layers, L2 normalisation."""

    config: HeadConfig
    mean: np.ndarray
    std: np.ndarray
    weights: list[np.ndarray]
    biases: list[np.ndarray]
    train_info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.config.validate()
        self.mean = np.asarray(self.mean, np.float32).reshape(-1)
        self.std = np.asarray(self.std, np.float32).reshape(-1)
        self.weights = [np.ascontiguousarray(w, np.float32) for w in self.weights]
        self.biases = [np.asarray(b, np.float32).reshape(-1) for b in self.biases]
        self._check_shapes()
        # Precomputed for the hot path: (x - mean) / std == x * inv_std - mean * inv_std.
        self._inv_std = (1.0 / self.std).astype(np.float32)
        # A one-layer head (the paper's) runs as one compiled call (nodes.projection.kernel)
        # over its weights transposed, contiguous float32.
        self._wt = np.ascontiguousarray(self.weights[0].T) if len(self.weights) == 1 else None

    def _check_shapes(self) -> None:
        cfg, who = self.config, f"head {self.config.modality!r} (preset {self.config.preset!r})"
        n = int(cfg.n_features)
        if self.mean.shape != (n,) or self.std.shape != (n,):
            raise ValueError(f"{who}: standardisation mean/std have shapes {self.mean.shape}/"
                             f"{self.std.shape}, expected ({n},) for n_features={n}")
        if np.any(~np.isfinite(self.std)) or np.any(self.std <= 0):
            raise ValueError(f"{who}: standardisation std must be finite and > 0")
        if len(self.weights) != len(cfg.layers) or len(self.biases) != len(cfg.layers):
            raise ValueError(f"{who}: {len(self.weights)} weight and {len(self.biases)} bias "
                             f"arrays for {len(cfg.layers)} layers {cfg.layers}")
        fan_in = n
        for i, (w, b, out) in enumerate(zip(self.weights, self.biases, cfg.layers)):
            if w.shape != (int(out), fan_in):
                raise ValueError(f"{who}: layer {i} weight W{i} has shape {w.shape}, "
                                 f"expected ({int(out)}, {fan_in})")
            if b.shape != (int(out),):
                raise ValueError(f"{who}: layer {i} bias b{i} has shape {b.shape}, "
                                 f"expected ({int(out)},)")
            fan_in = int(out)

    @property
    def n_features(self) -> int:
        return int(self.config.n_features)

    @property
    def pd(self) -> int:
        return self.config.pd

    @property
    def macs_per_row(self) -> int:
        """Multiply-accumulates per feature row: standardisation, layers, normalisation."""
        return self.n_features + sum(w.size for w in self.weights) + self.pd

    @property
    def param_bytes(self) -> int:
        arrays = [self.mean, self.std, *self.weights, *self.biases]
        return int(sum(a.nbytes for a in arrays))

    def forward(self, x: np.ndarray) -> np.ndarray:
        """L2-normalised float32 embeddings ``(rows, pd)`` of feature rows ``(rows, n_features)``."""
        x = np.asarray(x, dtype=np.float32)
        if x.ndim == 1:
            x = x[None, :]
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise ValueError(f"head {self.config.modality!r} (preset {self.config.preset!r}) "
                             f"expects features of shape (rows, {self.n_features}), "
                             f"got {x.shape}")
        if self._wt is not None:
            from .kernel import ACT_CODES, forward_one_layer

            act = ACT_CODES[self.config.activation] if self.config.final_activation else 0
            out = np.empty((len(x), self.pd), np.float32)
            return forward_one_layer(np.ascontiguousarray(x), self.mean, self._inv_std,
                                     self._wt, self.biases[0], act, out)
        h = (x - self.mean) * self._inv_std
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            h = h @ w.T + b
            if i < last or self.config.final_activation:
                h = _activate(h, self.config.activation)
        return l2_normalise(h)

    __call__ = forward

    @classmethod
    def load(cls, path: str | Path, modality: str | None = None,
             preset: str | None = None, n_features: int | None = None) -> "ProjectionHead":
        """Load one head; ``modality`` picks it when the file holds several.

        ``preset`` / ``n_features`` are what the caller's LSM produces: a head trained on
        another preset or feature size is refused with a ValueError naming both.
        """
        return select_head(load_heads(path), path, modality, preset, n_features)


def select_head(heads: dict[str, "ProjectionHead"], path, modality: str | None = None,
                preset: str | None = None, n_features: int | None = None) -> "ProjectionHead":
    """The head for ``modality`` among ``heads`` (read from ``path``), checked against the
    caller's ``preset`` / ``n_features`` (:meth:`ProjectionHead.load`)."""
    if modality is None:
        if len(heads) != 1:
            raise ValueError(f"{path}: holds heads {sorted(heads)}; say which modality")
        head = next(iter(heads.values()))
    elif modality not in heads:
        raise ValueError(f"{path}: no head for modality {modality!r}; has {sorted(heads)}")
    else:
        head = heads[modality]
    if preset is not None and head.config.preset != preset:
        raise ValueError(f"{path}: head {head.config.modality!r} was trained on preset "
                         f"{head.config.preset!r}, not the expected preset {preset!r}")
    if n_features is not None and head.n_features != int(n_features):
        raise ValueError(f"{path}: head {head.config.modality!r} expects "
                         f"{head.n_features} features, the LSM gives {n_features}")
    return head


def save_heads(path: str | Path, heads: dict[str, ProjectionHead] | list[ProjectionHead],
               train_info: dict[str, Any] | None = None) -> Path:
    """Write heads (keyed by modality) with their configs to ``.npz`` or ``.safetensors``."""
    path = Path(path)
    if isinstance(heads, list):
        heads = {h.config.modality: h for h in heads}
    arrays: dict[str, np.ndarray] = {}
    for mod, h in heads.items():
        if "/" in mod:
            raise ValueError(f"modality name {mod!r} must not contain '/'")
        arrays[f"{mod}/mean"] = h.mean
        arrays[f"{mod}/std"] = h.std
        for i, (w, b) in enumerate(zip(h.weights, h.biases)):
            arrays[f"{mod}/W{i}"] = w
            arrays[f"{mod}/b{i}"] = b
    config = {"format": FORMAT_VERSION,
              "heads": {mod: asdict(h.config) for mod, h in heads.items()},
              "train": train_info or {}}
    blob = json.dumps(config, sort_keys=True, default=_json_default)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".npz":
        np.savez(path, __config__=np.array(blob), **arrays)
    elif path.suffix == ".safetensors":
        from safetensors.numpy import save_file
        save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, str(path),
                  metadata={"config": blob})
    else:
        raise ValueError(f"{path}: heads are saved as .npz or .safetensors, not {path.suffix!r}")
    return path


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def load_heads(path: str | Path) -> dict[str, ProjectionHead]:
    """All heads in a ``.npz`` or ``.safetensors`` file, keyed by modality."""
    path = Path(path)
    if not path.exists():
        raise ValueError(f"weights file {path} does not exist")
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as z:
            if "__config__" not in z.files:
                raise ValueError(f"{path}: no '__config__' entry; not a heads file")
            blob = str(z["__config__"])
            arrays = {k: z[k] for k in z.files if k != "__config__"}
    elif path.suffix == ".safetensors":
        from safetensors import safe_open
        with safe_open(str(path), framework="np") as f:
            meta = f.metadata() or {}
            arrays = {k: f.get_tensor(k) for k in f.keys()}
        if "config" not in meta:
            raise ValueError(f"{path}: no 'config' metadata; not a heads file")
        blob = meta["config"]
    else:
        raise ValueError(f"{path}: heads are loaded from .npz or .safetensors, not {path.suffix!r}")
    config = json.loads(blob)
    if config.get("format") != FORMAT_VERSION:
        raise ValueError(f"{path}: heads format {config.get('format')!r}, "
                         f"this code reads {FORMAT_VERSION}")
    heads: dict[str, ProjectionHead] = {}
    for mod, cfg_dict in config["heads"].items():
        try:
            cfg = HeadConfig(**cfg_dict)
        except TypeError as exc:
            raise ValueError(f"{path}: bad config for head {mod!r}: {exc}") from None
        n_layers = len(cfg.layers)
        missing = [k for k in [f"{mod}/mean", f"{mod}/std"]
                   + [f"{mod}/{p}{i}" for i in range(n_layers) for p in ("W", "b")]
                   if k not in arrays]
        if missing:
            raise ValueError(f"{path}: head {mod!r} is missing arrays {missing}")
        heads[mod] = ProjectionHead(
            config=cfg, mean=arrays[f"{mod}/mean"], std=arrays[f"{mod}/std"],
            weights=[arrays[f"{mod}/W{i}"] for i in range(n_layers)],
            biases=[arrays[f"{mod}/b{i}"] for i in range(n_layers)],
            train_info=config.get("train", {}),
        )
    return heads
