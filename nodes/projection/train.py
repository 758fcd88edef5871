"""Contrastive training of the projection heads (torch; offline only, never in the hot path).

Follows PAPER.md's zero-shot protocol: one head per modality (Linear(n_features -> pd) ->
GELU, deeper variants optional), pairs formed by class (the k-th sample of class c in
modality A with the k-th sample of c in modality B, cycling the shorter list), seen classes
1-7 for training and 8-9 held out, features standardised with the training mean/std, Adam
lr 1e-3, batch 8, temperature 1.  Modality A plays the paper's audio role (the query of
``logits = A·Iᵀ``), modality B the image role.

Model selection is on the validation split (honest); the authors' rule (best test epoch
among those with unseen >= 85 % and seen >= 65 %, audio->image) is reported beside it.
"""
from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rram_lsm.nodes.classifier.metrics import pool_pairs, retrieval_chance
from rram_lsm.nodes.projection.heads import HeadConfig, ProjectionHead
from rram_lsm.nodes.projection.train_config import LOSS_NAMES, TrainConfig

TRAIN, VAL, TEST = 0, 1, 2


# ----------------------------------------------------------------------------- losses
# Every loss takes embeddings (..., B, pd) and returns the batch mean per leading index, so
# one call trains a stack of independent runs (different seeds or splits) at once.
def paper_clip_loss(img: torch.Tensor, aud: torch.Tensor,
                    temperature: float = 1.0) -> torch.Tensor:
    """The paper's loss, exactly as PAPER.md writes it (rows are not normalised).

    logits = A·Iᵀ/T; targets = softmax_rows((I·Iᵀ + A·Aᵀ)/2 · T);
    loss = (CE(logits, targets) + CE(logitsᵀ, targetsᵀ)) / 2, CE(L, Y) = mean_rows(-Σ Y·log_softmax(L)).
    Gradients flow through the soft targets too, as in the reference code.
    """
    logits = aud @ img.mT / temperature
    targets = F.softmax((img @ img.mT + aud @ aud.mT) / 2 * temperature, dim=-1)
    loss_a = -(targets * F.log_softmax(logits, dim=-1)).sum(dim=-1)
    loss_i = -(targets.mT * F.log_softmax(logits.mT, dim=-1)).sum(dim=-1)
    return ((loss_a + loss_i) / 2).mean(dim=-1)


def paper_clip_loss_grad(img: torch.Tensor, aud: torch.Tensor, temperature: float = 1.0
                         ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``paper_clip_loss`` and its gradients w.r.t. ``img`` and ``aud``, written out by hand.

    Autograd costs more than the arithmetic at batch 8, so training uses this closed form
    (checked against autograd in tests/test_loss.py).  With P = softmax(L), Q = softmax(Lᵀ),
    c = 1/(2B): dL = c·[(P − Y) + (Q·colsum(Y) − Yᵀ)ᵀ]; dY = −c·(log P + (log Q)ᵀ);
    dS = Y ⊙ (dY − rowsum(dY ⊙ Y)); then through S = T/2·(I·Iᵀ + A·Aᵀ) and L = A·Iᵀ/T.
    """
    t = temperature
    logits = aud @ img.mT / t
    targets = torch.softmax((img @ img.mT + aud @ aud.mT) * (t / 2), dim=-1)
    lp = torch.log_softmax(logits, dim=-1)
    lq = torch.log_softmax(logits.mT, dim=-1)
    loss = -((targets * lp).sum(-1) + (targets.mT * lq).sum(-1)).mean(-1) / 2
    c = 1.0 / (2 * img.shape[-2])
    g_logits = c * ((lp.exp() - targets)
                    + (lq.exp() * targets.sum(-2).unsqueeze(-1) - targets.mT).mT)
    g_targets = -c * (lp + lq.mT)
    g_sim = targets * (g_targets - (g_targets * targets).sum(-1, keepdim=True))
    g_sym = (g_sim + g_sim.mT) * (t / 2)
    g_aud = g_sym @ aud + g_logits @ img / t
    g_img = g_sym @ img + g_logits.mT @ aud / t
    return loss, g_img, g_aud


def infonce_loss(img: torch.Tensor, aud: torch.Tensor, temperature: float = 0.1,
                 labels: torch.Tensor | None = None) -> torch.Tensor:
    """Plain symmetric InfoNCE (CLIP): cosine logits, the diagonal is the positive."""
    logits = F.normalize(aud, dim=-1) @ F.normalize(img, dim=-1).mT / temperature
    diag_a = torch.diagonal(F.log_softmax(logits, dim=-1), dim1=-2, dim2=-1)
    diag_i = torch.diagonal(F.log_softmax(logits.mT, dim=-1), dim1=-2, dim2=-1)
    return -((diag_a + diag_i) / 2).mean(dim=-1)


def supcon_loss(img: torch.Tensor, aud: torch.Tensor, temperature: float = 0.1,
                labels: torch.Tensor | None = None) -> torch.Tensor:
    """Cross-modal supervised contrastive loss: every same-class item is a positive."""
    if labels is None:
        raise ValueError("supcon loss needs the class labels of the batch")
    logits = F.normalize(aud, dim=-1) @ F.normalize(img, dim=-1).mT / temperature
    pos = (labels[..., :, None] == labels[..., None, :]).to(logits.dtype)
    pos = pos / pos.sum(dim=-1, keepdim=True)     # every row has its own pair as a positive
    loss_a = -(pos * F.log_softmax(logits, dim=-1)).sum(dim=-1)
    loss_i = -(pos.mT * F.log_softmax(logits.mT, dim=-1)).sum(dim=-1)
    return ((loss_a + loss_i) / 2).mean(dim=-1)


def _paper(img, aud, temperature, labels=None):
    return paper_clip_loss(img, aud, temperature)


LOSSES: dict[str, Callable[..., torch.Tensor]] = {
    "paper": _paper, "infonce": infonce_loss, "supcon": supcon_loss,
}
assert tuple(LOSSES) == LOSS_NAMES, "train_config.LOSS_NAMES must name every loss"


# ----------------------------------------------------------------------------- heads
class HeadModule(nn.Module):
    """Linear -> activation per layer (the paper: one Linear(200 -> pd) then GELU)."""

    def __init__(self, config: HeadConfig):
        super().__init__()
        config.validate()
        self.config = config
        self.linears = nn.ModuleList()
        fan_in = int(config.n_features)
        for width in config.layers:
            self.linears.append(nn.Linear(fan_in, int(width)))
            fan_in = int(width)
        self.act = {"gelu": nn.GELU(), "relu": nn.ReLU(), "identity": nn.Identity()}[
            config.activation]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        last = len(self.linears) - 1
        for i, lin in enumerate(self.linears):
            x = lin(x)
            if i < last or self.config.final_activation:
                x = self.act(x)
        return x

    @classmethod
    def from_head(cls, head: ProjectionHead) -> "HeadModule":
        """A torch module with a numpy head's weights (standardisation not included)."""
        module = cls(copy.deepcopy(head.config))
        with torch.no_grad():
            for lin, w, b in zip(module.linears, head.weights, head.biases):
                lin.weight.copy_(torch.as_tensor(w))
                lin.bias.copy_(torch.as_tensor(b))
        return module

    def to_numpy(self, mean: np.ndarray, std: np.ndarray,
                 train_info: dict | None = None) -> ProjectionHead:
        """The same head for numpy inference (``nodes.projection.heads``)."""
        return ProjectionHead(
            config=copy.deepcopy(self.config), mean=mean, std=std,
            weights=[l.weight.detach().numpy().copy() for l in self.linears],
            biases=[l.bias.detach().numpy().copy() for l in self.linears],
            train_info=dict(train_info or {}),
        )


# ----------------------------------------------------------------------------- data
@dataclass
class ModalityData:
    """Frozen LSM features of one modality with labels and split (0/1/2 = train/val/test)."""

    name: str
    preset: str
    features: np.ndarray
    labels: np.ndarray
    split: np.ndarray

    def __post_init__(self) -> None:
        self.features = np.asarray(self.features, dtype=np.float32)
        self.labels = np.asarray(self.labels).astype(int)
        self.split = np.asarray(self.split).astype(int)
        if self.features.ndim != 2:
            raise ValueError(f"{self.name}: features must be (N, n_features), "
                             f"got {self.features.shape}")
        n = len(self.features)
        if len(self.labels) != n or len(self.split) != n:
            raise ValueError(f"{self.name}: {n} feature rows but {len(self.labels)} labels "
                             f"and {len(self.split)} split entries")

    def rows(self, split: int, classes: Sequence[int]) -> np.ndarray:
        return np.flatnonzero((self.split == split) & np.isin(self.labels, list(classes)))


def pair_by_class(labels_a: np.ndarray, labels_b: np.ndarray, classes: Sequence[int],
                  max_per_class: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Training pairs: k-th sample of class c in A with k-th of c in B, cycling the shorter.

    Returns index arrays into ``labels_a`` / ``labels_b``; a class missing from either
    modality is a ValueError.
    """
    ia, ib = [], []
    for c in classes:
        a = np.flatnonzero(np.asarray(labels_a) == c)
        b = np.flatnonzero(np.asarray(labels_b) == c)
        if len(a) == 0 or len(b) == 0:
            raise ValueError(f"class {c} has {len(a)} samples in modality A and {len(b)} "
                             f"in modality B; both need at least one to form pairs")
        n = max(len(a), len(b))
        if max_per_class is not None:
            n = min(n, int(max_per_class))
        k = np.arange(n)
        ia.append(a[k % len(a)])
        ib.append(b[k % len(b)])
    return np.concatenate(ia), np.concatenate(ib)


def standardisation(features: np.ndarray, eps: float = 1e-6) -> tuple[np.ndarray, np.ndarray]:
    """Training mean and std per feature; a constant feature (silent neuron) gets std 1."""
    mean = features.mean(axis=0)
    std = features.std(axis=0)
    std = np.where(std < eps, 1.0, std)
    return mean.astype(np.float32), std.astype(np.float32)


# ----------------------------------------------------------------------------- training
@dataclass
class EpochRecord:
    """Loss and pool retrieval (val and test) after one epoch."""

    epoch: int
    loss: float
    val: dict | None
    test: dict | None


@dataclass
class TrainResult:
    heads: dict[str, ProjectionHead]
    history: list[EpochRecord]
    selected_epoch: int                    # chosen on validation (or the last epoch)
    selected_test: dict                    # the test report at that epoch
    authors_rule: dict                     # best test epoch under the authors' rule, or a note
    seconds: float                         # wall time (shared among runs trained together)
    train_macs: int                        # forward + backward MACs of head training, all epochs
    n_pairs: int
    config: TrainConfig

    def summary(self) -> dict:
        return {"seed": self.config.seed, "seen": list(self.config.seen),
                "unseen": list(self.config.unseen), "selected_epoch": self.selected_epoch,
                "selected_test": self.selected_test, "authors_rule": self.authors_rule,
                "seconds": self.seconds, "train_macs": self.train_macs,
                "n_pairs": self.n_pairs,
                "final_loss": self.history[-1].loss if self.history else None}


def head_train_macs(cfg_a: HeadConfig, cfg_b: HeadConfig, n_pairs: int, epochs: int,
                    batch_size: int) -> int:
    """Forward + backward MACs of head training (backward ≈ 2× forward for dense layers),
    plus the loss's three B×B×pd similarity products per batch (×3 with backward)."""
    def layer_macs(c: HeadConfig) -> int:
        fan_in, total = int(c.n_features), 0
        for w in c.layers:
            total += fan_in * int(w)
            fan_in = int(w)
        return total
    per_sample = 3 * (layer_macs(cfg_a) + layer_macs(cfg_b))
    n_batches = -(-n_pairs // batch_size)
    loss_macs = 3 * 3 * batch_size * batch_size * cfg_a.pd * n_batches
    return int(epochs * (per_sample * n_pairs + loss_macs))


class _StackedHead:
    """E independent heads of one modality as stacked tensors, trained in one pass.

    Parameters are initialised per member from that member's seed exactly as
    ``nn.Linear`` does (U(±1/√fan_in) for weight and bias), so a run's result does not
    depend on which other runs share the stack.
    """

    def __init__(self, config: HeadConfig, seeds: Sequence[int], salt: int,
                 mean: np.ndarray, std: np.ndarray):
        self.config = config
        self.mean = torch.as_tensor(mean)[:, None, :]          # (E, 1, F)
        self.inv_std = 1.0 / torch.as_tensor(std)[:, None, :]
        self.weights: list[torch.Tensor] = []                   # (E, in, out)
        self.biases: list[torch.Tensor] = []                    # (E, 1, out)
        fan_in = int(config.n_features)
        for layer, width in enumerate(config.layers):
            ws, bs = [], []
            for seed in seeds:
                g = torch.Generator().manual_seed(int(seed) * 1000 + salt * 100 + layer)
                bound = 1.0 / np.sqrt(fan_in)
                ws.append((torch.rand(int(width), fan_in, generator=g) * 2 - 1) * bound)
                bs.append((torch.rand(int(width), generator=g) * 2 - 1) * bound)
            self.weights.append(torch.stack(ws).mT.contiguous().requires_grad_())
            self.biases.append(torch.stack(bs)[:, None, :].contiguous().requires_grad_())
            fan_in = int(width)
        self.act = {"gelu": F.gelu, "relu": F.relu, "identity": lambda t: t}[config.activation]

    def parameters(self) -> list[torch.Tensor]:
        return [*self.weights, *self.biases]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Raw features (E, B, F) -> unnormalised embeddings (E, B, pd)."""
        h = (x - self.mean) * self.inv_std
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            h = torch.baddbmm(b, h, w)
            if i < last or self.config.final_activation:
                h = self.act(h)
        return h

    def forward_cached(self, x: torch.Tensor) -> tuple[torch.Tensor, list]:
        """Forward without autograd, keeping what ``backward`` needs."""
        h = (x - self.mean) * self.inv_std
        cache = []
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            z = torch.baddbmm(b, h, w)
            act = i < last or self.config.final_activation
            cache.append((h, z, act))
            h = self.act(z) if act else z
        return h, cache

    def backward(self, cache: list, grad: torch.Tensor) -> None:
        """Set ``.grad`` of every parameter from the gradient of the output."""
        for i in range(len(cache) - 1, -1, -1):
            h, z, act = cache[i]
            if act:
                grad = grad * _act_grad(z, self.config.activation)
            self.weights[i].grad = h.mT @ grad
            self.biases[i].grad = grad.sum(-2, keepdim=True)
            if i:
                grad = grad @ self.weights[i].mT

    def member(self, e: int, train_info: dict) -> ProjectionHead:
        return ProjectionHead(
            config=copy.deepcopy(self.config),
            mean=self.mean[e, 0].numpy(), std=(1.0 / self.inv_std[e, 0]).numpy(),
            weights=[w[e].detach().mT.numpy().copy() for w in self.weights],
            biases=[b[e, 0].detach().numpy().copy() for b in self.biases],
            train_info=train_info,
        )


def _act_grad(z: torch.Tensor, name: str) -> torch.Tensor:
    if name == "gelu":      # d/dz [z·Φ(z)] = Φ(z) + z·φ(z), exact erf form
        return 0.5 * (1 + torch.erf(z * 0.7071067811865476)) + \
            z * torch.exp(-0.5 * z * z) * 0.3989422804014327
    if name == "relu":
        return (z > 0).to(z.dtype)
    return torch.ones_like(z)


def _top1(q: np.ndarray, lq: np.ndarray, g: np.ndarray, lg: np.ndarray) -> float:
    return float(np.mean(lg[np.argmax(q @ g.T, axis=1)] == lq))


class _Pools:
    """Pre-computed evaluation pools of one run for one split (seen and unseen)."""

    def __init__(self, a: ModalityData, b: ModalityData, split: int, cfg: TrainConfig):
        self.pools = {}
        for name, classes in (("seen", cfg.seen), ("unseen", cfg.unseen)):
            ra, rb = a.rows(split, classes), b.rows(split, classes)
            ia, ib = pool_pairs(a.labels[ra], b.labels[rb], classes, cfg.eval_max_per_class)
            if len(ia) and len(set(a.labels[ra[ia]])) == len(classes):
                la, lb = a.labels[ra[ia]], b.labels[rb[ib]]
                self.pools[name] = (ra[ia], rb[ib], la, lb, list(map(int, classes)),
                                    retrieval_chance(la, lb))

    def report(self, ea: np.ndarray, eb: np.ndarray) -> dict | None:
        """Pool retrieval of full-dataset unit embeddings ``ea``/``eb`` (rows = samples)."""
        if "seen" not in self.pools:
            return None
        out: dict = {"unseen": None}
        for name, (ia, ib, la, lb, classes, chance) in self.pools.items():
            qa, gb = ea[ia], eb[ib]
            out[name] = {"classes": classes, "n_pairs": int(len(ia)),
                         "a_to_b": _top1(qa, la, gb, lb), "b_to_a": _top1(gb, lb, qa, la),
                         "chance": chance}
        return out


def _score(report: dict | None, key: str) -> float:
    if report is None:
        return -np.inf
    seen = report["seen"]
    s = (seen["a_to_b"] + seen["b_to_a"]) / 2
    if key == "val_all" and report["unseen"] is not None:
        u = report["unseen"]
        s = (s + (u["a_to_b"] + u["b_to_a"]) / 2) / 2
    return s


def _embed_all(head: _StackedHead, x: torch.Tensor, chunk: int = 16) -> np.ndarray:
    """Unit embeddings (E, N, pd) of every sample under every member."""
    out = []
    with torch.no_grad():
        for e0 in range(0, head.mean.shape[0], chunk):
            sub = slice(e0, e0 + chunk)
            h = (x[None] - head.mean[sub]) * head.inv_std[sub]
            last = len(head.weights) - 1
            for i, (w, b) in enumerate(zip(head.weights, head.biases)):
                h = torch.baddbmm(b[sub], h, w[sub])
                if i < last or head.config.final_activation:
                    h = head.act(h)
            out.append(F.normalize(h, dim=-1).numpy())
    return np.concatenate(out)


def train_heads(a: ModalityData, b: ModalityData, cfg: TrainConfig | None = None,
                progress: Callable[[int, float], None] | None = None) -> TrainResult:
    """Train one head per modality with the configured contrastive loss (one run).

    ``a`` plays the paper's audio role (query side of ``logits = A·Iᵀ``), ``b`` the image.
    Returns numpy heads of the validation-selected epoch and the per-epoch history.
    """
    return train_heads_many(a, b, [cfg or TrainConfig()], progress)[0]


def train_heads_many(a: ModalityData, b: ModalityData, configs: Sequence[TrainConfig],
                     progress: Callable[[int, float], None] | None = None,
                     eval_every: int = 1) -> list[TrainResult]:
    """Train several independent runs at once (vectorised over runs).

    The runs may differ in ``seed``, ``seen``/``unseen``, ``pairing`` and
    ``max_pairs_per_class``; everything else (architecture, loss, optimiser, epochs) must
    match.  When runs have different pair counts, each epoch lasts as many batches as the
    largest run needs and the smaller runs continue into a fresh permutation of their pairs.
    """
    configs = list(configs)
    if not configs:
        raise ValueError("train_heads_many needs at least one TrainConfig")
    for c in configs:
        c.validate()
        if c.loss not in LOSSES:
            raise ValueError(f"loss {c.loss!r} is not one of {sorted(LOSSES)}")
    shared = ("pd", "hidden", "activation", "loss", "temperature", "lr", "batch_size",
              "epochs", "select_on", "threads")
    for c in configs[1:]:
        diff = [k for k in shared if getattr(c, k) != getattr(configs[0], k)]
        if diff:
            raise ValueError(f"runs trained together must share {diff}")
    if a.name == b.name:
        raise ValueError(f"the two modalities need different names, both are {a.name!r}")
    c0 = configs[0]
    start = time.perf_counter()
    torch.set_num_threads(int(c0.threads))
    n_runs = len(configs)
    rngs = [np.random.default_rng(c.seed) for c in configs]

    # Training pairs per run (indices into the full arrays) and standardisation per run.
    pairs = []
    for c, rng in zip(configs, rngs):
        ra, rb = a.rows(TRAIN, c.seen), b.rows(TRAIN, c.seen)
        ia, ib = pair_by_class(a.labels[ra], b.labels[rb], c.seen, c.max_pairs_per_class)
        ia, ib = ra[ia], rb[ib]
        if c.pairing == "shuffled":
            ib = ib[rng.permutation(len(ib))]
        pairs.append((ia, ib))
    stats = {m.name: [standardisation(m.features[m.rows(TRAIN, c.seen)]) for c in configs]
             for m in (a, b)}
    layers = [*map(int, c0.hidden), int(c0.pd)]
    head_cfg = {m.name: HeadConfig(preset=m.preset, modality=m.name,
                                   n_features=int(m.features.shape[1]), layers=layers,
                                   activation=c0.activation) for m in (a, b)}
    seeds = [c.seed for c in configs]
    heads = {m.name: _StackedHead(head_cfg[m.name], seeds, salt, np.stack([s[0] for s in stats[m.name]]),
                                  np.stack([s[1] for s in stats[m.name]]))
             for salt, m in enumerate((a, b))}
    params = [p for h in heads.values() for p in h.parameters()]
    opt = torch.optim.Adam(params, lr=c0.lr, fused=True)
    loss_fn = LOSSES[c0.loss]
    xa, xb = torch.as_tensor(a.features), torch.as_tensor(b.features)
    ya = torch.as_tensor(a.labels)
    n_pairs = [len(p[0]) for p in pairs]
    n_max, bs = max(n_pairs), c0.batch_size
    val_pools = [_Pools(a, b, VAL, c) for c in configs]
    test_pools = [_Pools(a, b, TEST, c) for c in configs]

    histories: list[list[EpochRecord]] = [[] for _ in configs]
    best = [(-np.inf, -1, None)] * n_runs
    for epoch in range(1, c0.epochs + 1):
        # Per-run sample order for this epoch, padded with fresh permutations if shorter.
        order = np.empty((n_runs, n_max), dtype=np.int64)
        for e, (rng, n) in enumerate(zip(rngs, n_pairs)):
            seq = rng.permutation(n)
            while len(seq) < n_max:
                seq = np.concatenate([seq, rng.permutation(n)])
            order[e] = seq[:n_max]
        ia_ep = torch.as_tensor(np.stack([pairs[e][0][order[e]] for e in range(n_runs)]))
        ib_ep = torch.as_tensor(np.stack([pairs[e][1][order[e]] for e in range(n_runs)]))
        totals = torch.zeros(n_runs, dtype=torch.float64)
        for s in range(0, n_max, bs):
            ia, ib = ia_ep[:, s:s + bs], ib_ep[:, s:s + bs]
            if c0.loss == "paper":      # closed-form gradients: no autograd overhead
                with torch.no_grad():
                    eb, cache_b = heads[b.name].forward_cached(xb[ib])
                    ea, cache_a = heads[a.name].forward_cached(xa[ia])
                    per_run, g_img, g_aud = paper_clip_loss_grad(eb, ea, c0.temperature)
                    heads[b.name].backward(cache_b, g_img)
                    heads[a.name].backward(cache_a, g_aud)
            else:
                per_run = loss_fn(heads[b.name](xb[ib]), heads[a.name](xa[ia]),
                                  c0.temperature, labels=ya[ia])
                opt.zero_grad(set_to_none=True)
                per_run.sum().backward()
            opt.step()
            totals += per_run.detach().double() * ia.shape[1]
        losses = (totals / n_max).tolist()
        evaluate = epoch % eval_every == 0 or epoch == c0.epochs
        if evaluate:
            ea_all, eb_all = _embed_all(heads[a.name], xa), _embed_all(heads[b.name], xb)
        for e in range(n_runs):
            val = val_pools[e].report(ea_all[e], eb_all[e]) if evaluate else None
            test = test_pools[e].report(ea_all[e], eb_all[e]) if evaluate else None
            histories[e].append(EpochRecord(epoch, losses[e], val, test))
            if not evaluate:
                continue
            score = epoch if c0.select_on == "last" else _score(val, c0.select_on)
            if score > best[e][0]:
                snap = {m: [p[e].detach().clone() for p in heads[m].parameters()] for m in heads}
                best[e] = (score, epoch, snap)
        if progress is not None:
            progress(epoch, float(np.mean(losses)))

    seconds = time.perf_counter() - start
    results = []
    for e, c in enumerate(configs):
        _, epoch_sel, snap = best[e]
        if snap is None:   # no validation pool: fall back to the last epoch
            epoch_sel = c0.epochs
            snap = {m: [p[e].detach().clone() for p in heads[m].parameters()] for m in heads}
        info = {"config": asdict(c), "selected_epoch": epoch_sel, "modalities": [a.name, b.name]}
        np_heads = {}
        for m, h in heads.items():
            with torch.no_grad():
                saved = [p[e].clone() for p in h.parameters()]
                for p, v in zip(h.parameters(), snap[m]):
                    p[e] = v
                np_heads[m] = h.member(e, info)
                for p, v in zip(h.parameters(), saved):
                    p[e] = v
        results.append(TrainResult(
            heads=np_heads, history=histories[e], selected_epoch=epoch_sel,
            selected_test=histories[e][epoch_sel - 1].test,
            authors_rule=authors_rule(histories[e], c.rule_unseen, c.rule_seen),
            seconds=seconds,
            train_macs=head_train_macs(head_cfg[a.name], head_cfg[b.name], n_pairs[e],
                                       c.epochs, c.batch_size),
            n_pairs=n_pairs[e], config=c,
        ))
    return results


def authors_rule(history: list[EpochRecord], min_unseen: float = 0.85,
                 min_seen: float = 0.65) -> dict:
    """The authors' test-set selection (A->B, i.e. audio->image): among epochs whose test
    unseen accuracy >= ``min_unseen`` and seen >= ``min_seen``, the one with the highest
    seen + unseen.  Selecting on the test set flatters the result; reported for comparison.
    """
    ok = [r for r in history if r.test is not None and r.test["unseen"] is not None
          and r.test["unseen"]["a_to_b"] >= min_unseen and r.test["seen"]["a_to_b"] >= min_seen]
    rule = f"test unseen >= {min_unseen:.0%} and seen >= {min_seen:.0%} (A->B), best test epoch"
    if not ok:
        return {"rule": rule, "met": False, "note": "no epoch meets it"}
    best = max(ok, key=lambda r: r.test["seen"]["a_to_b"] + r.test["unseen"]["a_to_b"])
    return {"rule": rule, "met": True, "epoch": best.epoch,
            "seen": best.test["seen"]["a_to_b"], "unseen": best.test["unseen"]["a_to_b"]}
