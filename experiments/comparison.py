"""The paper's comparison, measured in one run: accuracy and training cost of LSM-CLIP against
the LSM prototypical network, SRNN-CLIP and the SRNN prototypical network (audio->image,
seen 1-7 / unseen 8-9), and the supervised SRNN + ANN readout and RNN baselines.

Costs are forward + backward MACs of training (backward = 2x forward for dense layers; BPTT
counts every time step of both encoders) and wall time on this machine.  The LSM's one-time
encoding is inference, not training: it is reported on its own row, never added to a
training cost.  BPTT is slow on 2 cores, so the SRNN models train for ``srnn_epochs`` (the
epoch chosen on validation among those), and the paper-protocol totals (100 epochs) are the
measured per-epoch cost x 100.  Every model is selected on the validation split.  The SRNN
models run in float64 (see ``_srnn_tower``); the surrogate's reset is detached.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rram_lsm.nodes.classifier.metrics import evaluate_embeddings
from rram_lsm.nodes.projection.heads import HeadConfig
from rram_lsm.nodes.projection.train import (TEST, TRAIN, VAL, HeadModule, ModalityData,
                                             head_train_macs, pair_by_class, paper_clip_loss,
                                             standardisation, train_heads)
from rram_lsm.nodes.projection.train_config import TrainConfig

from .baselines import RnnReadout, SrnnEncoder, proto_logits
from .config import default_heads
from .executor import LocalExecutor, current
from .features import raw_frames, resolve_config

# PAPER.md's figures (%): zero-shot audio->image at pd 64, supervised probes, cost ratios.
PAPER_ZERO_SHOT = {"LSM-CLIP": (66.1, 88.0), "LSM prototypical net": (50.25, 81.69),
                   "SRNN-CLIP": (82.28, 74.0), "SRNN prototypical net": (50.25, 82.14)}
PAPER_SUPERVISED = {"SRNN + ANN readout": (96.96, 82.62), "RNN (200 tanh units)": (96.23, 75.54)}
PAPER_COST_RATIO = {"SRNN-CLIP": 152.83, "prototypical networks": 393.07}


@dataclass
class ComparisonConfig:
    """The heads (classes, pd, the paper's 100 epochs for every method, CLIP batch 8, lr, seed,
    threads) and what only the baselines need."""

    heads: TrainConfig = field(default_factory=default_heads)
    srnn_epochs: int = 5       # BPTT epochs actually run; 100-epoch costs are extrapolated
    rnn_epochs: int = 10       # supervised RNN / SRNN readout epochs actually run
    proto_batch: int = 64

    def validate(self) -> None:
        for key in ("srnn_epochs", "rnn_epochs", "proto_batch"):
            if int(getattr(self, key)) <= 0:
                raise ValueError(f"comparison: {key} must be > 0, got {getattr(self, key)!r}")
        for key in ("pd", "epochs", "batch_size"):
            if int(getattr(self.heads, key)) <= 0:
                raise ValueError(f"comparison: {key} must be > 0, got {getattr(self.heads, key)!r}")

    def as_dict(self) -> dict:
        """The ``config`` of the comparison's results, with the field names it has always had."""
        h = self.heads
        return {"seen": h.seen, "unseen": h.unseen, "pd": h.pd, "epochs": h.epochs,
                "srnn_epochs": self.srnn_epochs, "rnn_epochs": self.rnn_epochs,
                "batch_size": h.batch_size, "proto_batch": self.proto_batch, "lr": h.lr,
                "seed": h.seed, "threads": h.threads}


@dataclass
class Frames:
    """One modality's binary input frames ``(N, T, n_in)`` with the LSM encoder's settings."""

    data: ModalityData          # LSM features, labels and split of the same samples
    frames: np.ndarray          # uint8 (N, T, n_in)
    decay: float
    vth: float
    const: float                # the calibrated LSM gain: SRNN encoders start from the LSM

    @property
    def steps(self) -> int:
        return int(self.frames.shape[1])

    def encoder(self, seed: int) -> SrnnEncoder:
        return SrnnEncoder(self.frames.shape[2], self.data.features.shape[1], self.decay,
                           self.vth, gain=self.const, seed=seed)


def frames_for(store, modality: str, device) -> Frames:
    """The binary frames the LSM encoder of ``modality`` sees, with its calibrated settings."""
    fs = store.features(modality, device)
    ms = store.dataset.modality(modality)
    config = resolve_config(ms, fs.preset, store.overrides(modality), store.cfg.reservoir_seed)
    frames = raw_frames(ms, config).reshape(len(fs), config.n_bins, config.n_inputs)
    return Frames(fs.modality_data(), frames, config.decay, config.vth,
                  store.calibration(modality, device).const)


def encoding_cost(store, modality: str, device) -> dict:
    """The LSM's one-time encoding of every sample of ``modality`` (inference, not training)."""
    fs = store.features(modality, device)
    return {"modality": modality, "samples": len(fs), "seconds": float(fs.seconds),
            "dense_macs": int(fs.ops.get("dense_macs", 0)),
            "synaptic_ops": int(fs.ops.get("synaptic_ops", 0))}


class Tower(nn.Module):
    """One modality's path to the embedding: an optional trainable SRNN encoder, a fixed
    standardisation (training mean/std of the starting rates) and a head."""

    def __init__(self, head: nn.Module, encoder: SrnnEncoder | None, mean, std):
        super().__init__()
        self.head, self.encoder = head, encoder
        self.register_buffer("mean", torch.as_tensor(mean))
        self.register_buffer("std", torch.as_tensor(std))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r = self.encoder(x) if self.encoder is not None else x
        return self.head((r - self.mean) / self.std)

    def embed(self, x: torch.Tensor, chunk: int = 256) -> np.ndarray:
        with torch.no_grad():
            return torch.cat([self(x[i:i + chunk]) for i in range(0, len(x), chunk)]).numpy()


def _tower(d: ModalityData, x: torch.Tensor, encoder: SrnnEncoder | None, cfg: ComparisonConfig,
           salt: int, activation: str, width: int | None = None) -> Tower:
    """A tower whose standardisation is the training mean/std of its starting rates (the LSM
    features themselves when there is no encoder) and whose head (``width`` outputs, default
    pd) is seeded by ``salt``."""
    rates = Tower(nn.Identity(), encoder, 0.0, 1.0).embed(x) if encoder is not None else d.features
    mean, std = standardisation(rates[d.split == TRAIN])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.heads.seed * 1000 + salt)
        head = HeadModule(HeadConfig("srnn" if encoder is not None else d.preset, d.name,
                                     rates.shape[1], [width or cfg.heads.pd], activation=activation)
                          ).to(x.dtype)
    return Tower(head, encoder, mean.astype(rates.dtype), std.astype(rates.dtype))


def _srnn_tower(fr: Frames, cfg: ComparisonConfig, salt: int, activation: str = "gelu",
                width: int | None = None) -> tuple[Tower, torch.Tensor]:
    """An SRNN tower starting from the LSM's weights law and gain, in float64: at the LSM's
    gain BPTT gradients reach ~1e46 over the audio's 129 bins (the recurrent Jacobian through
    the box surrogate has gain > 1), which overflows float32 to inf/NaN; Adam's normalised
    steps train fine on them in float64."""
    x = torch.as_tensor(fr.frames, dtype=torch.float64)
    encoder = fr.encoder(cfg.heads.seed * 1000 + salt).double()
    return _tower(fr.data, x, encoder, cfg, salt, activation, width), x


def _scores(ea, eb, a: ModalityData, b: ModalityData, cfg: ComparisonConfig, split: int) -> dict:
    ev = evaluate_embeddings(ea, a.labels, a.split, eb, b.labels, b.split, cfg.heads.seen, cfg.heads.unseen,
                             test_split=split)
    r, p = ev["retrieval"], ev["prototype"]
    return {"retrieval_seen": r["seen"]["a_to_b"], "retrieval_unseen": r["unseen"]["a_to_b"],
            "proto_seen": p["seen"]["a_to_b"]["accuracy"],
            "proto_unseen": p["unseen"]["a_to_b"]["accuracy"],
            "retrieval_seen_chance": r["seen"]["chance"], "retrieval_unseen_chance": r["unseen"]["chance"],
            "proto_seen_chance": p["seen"]["a_to_b"]["chance"],
            "proto_unseen_chance": p["unseen"]["a_to_b"]["chance"]}


def _finite(loss: torch.Tensor, what: str, epoch: int) -> torch.Tensor:
    """The loss, or a clear error when training has diverged (never train on silently)."""
    if not torch.isfinite(loss):
        raise FloatingPointError(f"{what}: the training loss became {float(loss)} in epoch {epoch + 1}")
    return loss


def train_two_towers(kind: str, ta: Tower, tb: Tower, xa: torch.Tensor, xb: torch.Tensor,
                     a: ModalityData, b: ModalityData, cfg: ComparisonConfig, epochs: int,
                     log: Callable[[str], None] = print) -> dict:
    """BPTT through both towers with the paper's CLIP loss (``kind="clip"``: class pairs,
    batch 8) or the prototype cross-entropy (``"proto"``: A queries against a B support set
    of every seen class); the epoch with the best validation score on the seen classes wins
    (pool retrieval for CLIP, nearest prototype for the prototypical net)."""
    if kind not in ("clip", "proto"):
        raise ValueError(f"kind must be 'clip' or 'proto', got {kind!r}")
    rng = np.random.default_rng(cfg.heads.seed)
    opt = torch.optim.Adam([*ta.parameters(), *tb.parameters()], lr=cfg.heads.lr)
    ra, rb = a.rows(TRAIN, cfg.heads.seen), b.rows(TRAIN, cfg.heads.seen)
    ia, ib = pair_by_class(a.labels[ra], b.labels[rb], cfg.heads.seen)
    ia, ib = ra[ia], rb[ib]
    seen_t, la, lb = torch.as_tensor(cfg.heads.seen), torch.as_tensor(a.labels), torch.as_tensor(b.labels)
    n_support = max(1, cfg.proto_batch // len(cfg.heads.seen))
    key = "retrieval_seen" if kind == "clip" else "proto_seen"
    best, history = None, []
    for epoch in range(epochs):
        t0 = time.perf_counter()
        samples = [0, 0]          # samples through tower A / B this epoch (for the MAC count)
        if kind == "clip":
            order = rng.permutation(len(ia))
            for s in range(0, len(order), cfg.heads.batch_size):
                k = order[s:s + cfg.heads.batch_size]
                loss = _finite(paper_clip_loss(tb(xb[ib[k]]), ta(xa[ia[k]])), kind, epoch)
                opt.zero_grad()
                loss.backward()
                opt.step()
                samples[0] += len(k)
                samples[1] += len(k)
        else:
            for _ in range(max(len(ra), len(rb)) // cfg.proto_batch or 1):  # ~one pass over the data
                q = rng.choice(ra, cfg.proto_batch)
                sb = np.concatenate([rng.choice(rb[b.labels[rb] == c], n_support) for c in cfg.heads.seen])
                target = torch.searchsorted(seen_t, la[q])
                loss = _finite(F.cross_entropy(proto_logits(ta(xa[q]), tb(xb[sb]), lb[sb], seen_t),
                                               target), kind, epoch)
                opt.zero_grad()
                loss.backward()
                opt.step()
                samples[0] += len(q)
                samples[1] += len(sb)
        seconds = time.perf_counter() - t0
        ea, eb = ta.embed(xa), tb.embed(xb)
        val = _scores(ea, eb, a, b, cfg, VAL)
        history.append({"epoch": epoch + 1, "seconds": seconds, "loss": float(loss.detach()),
                        "val": val[key]})
        log(f"    {kind} epoch {epoch + 1}/{epochs}: {seconds:.1f} s, val {key} {val[key]:.1%}")
        if best is None or val[key] > best["val"][key]:
            best = {"epoch": epoch + 1, "val": val, "test": _scores(ea, eb, a, b, cfg, TEST)}
    return {"best": best, "history": history, "samples_per_epoch": samples}


def bptt_clip_macs(ta: Tower, steps_a: int, tb: Tower, steps_b: int, n_pairs: int,
                   batch_size: int) -> int:
    """Training MACs of one SRNN-CLIP epoch: BPTT through both encoders (forward + backward
    = 3x forward over every bin) plus exactly the heads' and loss's cost in LSM-CLIP."""
    encoders = ta.encoder.macs_per_sample(steps_a) + tb.encoder.macs_per_sample(steps_b)
    return 3 * n_pairs * encoders + head_train_macs(ta.head.config, tb.head.config, n_pairs, 1,
                                                     batch_size)


def _forward_macs(t: Tower, steps: int) -> int:
    """Forward MACs of one sample through a tower: its encoder over ``steps`` bins (if any)
    and the head's linear layers."""
    head = sum(m.in_features * m.out_features for m in t.head.modules() if isinstance(m, nn.Linear))
    return head + (t.encoder.macs_per_sample(steps) if t.encoder is not None else 0)


def proto_macs(ta: Tower, steps_a: int, tb: Tower, steps_b: int, n_queries: int, n_support: int,
               n_classes: int) -> int:
    """Training MACs of one prototypical-net epoch: forward + backward (3x) of every query
    and support sample through its tower, and of the query-to-prototype distances."""
    pd = ta.head.config.pd
    return 3 * (n_queries * _forward_macs(ta, steps_a) + n_support * _forward_macs(tb, steps_b)
                + n_queries * n_classes * pd)


def _row(method: str, kind: str, metric: str, scores: dict, epochs_run: int, selected: int,
         sec_per_epoch: float, macs_per_epoch: int, cfg: ComparisonConfig, paper) -> dict:
    return {"method": method, "kind": kind, "metric": metric,
            "seen": scores[f"{metric}_seen"], "unseen": scores[f"{metric}_unseen"],
            "seen_chance": scores[f"{metric}_seen_chance"],
            "unseen_chance": scores[f"{metric}_unseen_chance"],
            "epochs_run": epochs_run, "selected_epoch": selected,
            "seconds_per_epoch": sec_per_epoch, "macs_per_epoch": int(macs_per_epoch),
            "seconds_protocol": sec_per_epoch * cfg.heads.epochs, "macs_protocol": int(macs_per_epoch) * cfg.heads.epochs,
            "paper_seen": paper[0] if paper else None, "paper_unseen": paper[1] if paper else None}


ZERO_SHOT_METHODS = ("LSM-CLIP", "LSM prototypical net", "SRNN-CLIP", "SRNN prototypical net")


def zero_shot_comparison(fa: Frames, fb: Frames, cfg: ComparisonConfig,
                         log: Callable[[str], None] = print) -> list[dict]:
    """LSM-CLIP, LSM protonet, SRNN-CLIP and SRNN protonet on the same data and splits (one
    piece each: a Ray task each on the command's cluster, the frames put once)."""
    cfg.validate()
    return _pieces(_zero_shot_row, ZERO_SHOT_METHODS, (fa, fb, cfg), cfg, log)


def _pieces(fn: Callable, items, shared: tuple, cfg: ComparisonConfig, log) -> list[dict]:
    """``fn(item, *shared, log)`` per item on the command's executor; a Ray task's log lines
    come back with its row and are logged here, in item order."""
    ex = current()
    here = isinstance(ex, LocalExecutor)
    out = ex.map(_logged, items, fn, *shared, log if here else None, threads=cfg.heads.threads)
    rows = []
    for row, lines in out:
        for line in lines:
            log(line)
        rows.append(row)
    return rows


def _logged(item, fn: Callable, *args):
    """``fn(item, *args[:-1], log)``, logging to ``args[-1]`` or, when None, into the lines
    returned beside the result."""
    *shared, log = args
    lines: list[str] = []
    return fn(item, *shared, log or lines.append), lines


def _zero_shot_row(name: str, fa: Frames, fb: Frames, cfg: ComparisonConfig,
                   log: Callable[[str], None]) -> dict:
    """One method of the zero-shot comparison."""
    torch.set_num_threads(cfg.heads.threads)
    a, b = fa.data, fb.data
    if name == "LSM-CLIP":      # the heads of the main experiment, on frozen LSM features
        t0 = time.perf_counter()
        res = train_heads(a, b, cfg.heads)
        sec = (time.perf_counter() - t0) / cfg.heads.epochs
        ea, eb = res.heads[a.name].forward(a.features), res.heads[b.name].forward(b.features)
        log(f"  LSM-CLIP: {sec * cfg.heads.epochs:.1f} s for {cfg.heads.epochs} epochs")
        return _row("LSM-CLIP", "zero-shot", "retrieval", _scores(ea, eb, a, b, cfg, TEST),
                    cfg.heads.epochs, res.selected_epoch, sec, res.train_macs // cfg.heads.epochs,
                    cfg, PAPER_ZERO_SHOT["LSM-CLIP"])
    # The prototypical nets (linear heads, as the paper's) and SRNN-CLIP: one trainer; the
    # LSM protonet trains heads on the frozen features, the SRNN models BPTT through both
    # encoders as well.
    kind = "clip" if name.endswith("CLIP") else "proto"
    epochs = cfg.heads.epochs if name.startswith("LSM") else cfg.srnn_epochs
    activation = "gelu" if kind == "clip" else "identity"
    if name.startswith("LSM"):
        xa, xb = torch.as_tensor(a.features), torch.as_tensor(b.features)
        ta, tb = _tower(a, xa, None, cfg, 1, activation), _tower(b, xb, None, cfg, 2, activation)
    else:
        log(f"  {name} ({epochs} BPTT epochs)")
        (ta, xa), (tb, xb) = _srnn_tower(fa, cfg, 1, activation), _srnn_tower(fb, cfg, 2, activation)
    out = train_two_towers(kind, ta, tb, xa, xb, a, b, cfg, epochs,
                           log if name.startswith("SRNN") else lambda s: None)
    n_a, n_b = out["samples_per_epoch"]
    macs = (bptt_clip_macs(ta, fa.steps, tb, fb.steps, n_a, cfg.heads.batch_size) if kind == "clip"
            else proto_macs(ta, fa.steps, tb, fb.steps, n_a, n_b, len(cfg.heads.seen)))
    sec = float(np.median([h["seconds"] for h in out["history"]]))
    if name.startswith("LSM"):
        log(f"  {name}: {sec * epochs:.1f} s for {epochs} epochs")
    return _row(name, "zero-shot", "retrieval" if kind == "clip" else "proto",
                out["best"]["test"], epochs, out["best"]["epoch"], sec, macs, cfg,
                PAPER_ZERO_SHOT[name])


def train_supervised(model: nn.Module, x: torch.Tensor, labels: np.ndarray, split: np.ndarray,
                     epochs: int, macs_per_sample: int, batch: int = 32, lr: float = 1e-3,
                     seed: int = 0) -> dict:
    """Cross-entropy training on the train split; the epoch with the best validation accuracy
    is tested.  Returns test/val accuracy, chance and the per-epoch cost."""
    classes = np.unique(labels)
    y = torch.as_tensor(np.searchsorted(classes, labels))
    tr = np.flatnonzero(split == TRAIN)
    rng = np.random.default_rng(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    best, secs = None, []

    def accuracy(rows) -> float:
        with torch.no_grad():
            pred = torch.cat([model(x[rows[i:i + 256]]).argmax(1) for i in range(0, len(rows), 256)])
        return float((pred == y[rows]).float().mean())
    for epoch in range(epochs):
        t0 = time.perf_counter()
        order = rng.permutation(tr)
        for s in range(0, len(order), batch):
            k = order[s:s + batch]
            loss = _finite(F.cross_entropy(model(x[k]), y[k]), type(model).__name__, epoch)
            opt.zero_grad()
            loss.backward()
            opt.step()
        secs.append(time.perf_counter() - t0)
        val = accuracy(np.flatnonzero(split == VAL))
        if best is None or val > best["val"]:
            best = {"epoch": epoch + 1, "val": val, "test": accuracy(np.flatnonzero(split == TEST))}
    test_labels = labels[split == TEST]
    chance = float(np.max(np.unique(test_labels, return_counts=True)[1]) / len(test_labels))
    return {**best, "chance": chance, "seconds_per_epoch": float(np.median(secs)),
            "macs_per_epoch": int(3 * macs_per_sample * len(tr))}


SUPERVISED_METHODS = ("SRNN + ANN readout", "RNN (200 tanh units)")


def supervised_comparison(fr: Frames, cfg: ComparisonConfig,
                          log: Callable[[str], None] = print) -> list[dict]:
    """SRNN + ANN readout and a plain RNN on one modality's frames (all its classes), one
    piece each."""
    return _pieces(_supervised_row, SUPERVISED_METHODS, (fr, cfg), cfg, log)


def _supervised_row(name: str, fr: Frames, cfg: ComparisonConfig,
                    log: Callable[[str], None]) -> dict:
    """One supervised baseline on one modality."""
    torch.set_num_threads(cfg.heads.threads)
    d = fr.data
    n_classes = len(np.unique(d.labels))
    if name.startswith("SRNN"):   # an SRNN tower whose head is a linear readout to the classes
        model, x = _srnn_tower(fr, cfg, 3, activation="identity", width=n_classes)
        macs, epochs = _forward_macs(model, fr.steps), cfg.srnn_epochs
    else:
        x = torch.as_tensor(fr.frames, dtype=torch.float32)
        model = RnnReadout(x.shape[2], n_classes, seed=cfg.heads.seed)
        macs, epochs = model.macs_per_sample(fr.steps), cfg.rnn_epochs
    out = train_supervised(model, x, d.labels, d.split, epochs, macs, lr=cfg.heads.lr,
                           seed=cfg.heads.seed)
    log(f"  {name} on {d.name}: test {out['test']:.1%} (epoch {out['epoch']}/{epochs}, "
        f"{out['seconds_per_epoch']:.1f} s/epoch)")
    return {"method": name, "kind": "supervised", "modality": d.name, "test": out["test"],
            "chance": out["chance"], "epochs_run": epochs, "selected_epoch": out["epoch"],
            "seconds_per_epoch": out["seconds_per_epoch"],
            "macs_per_epoch": out["macs_per_epoch"],
            "seconds_protocol": out["seconds_per_epoch"] * cfg.heads.epochs,
            "macs_protocol": out["macs_per_epoch"] * cfg.heads.epochs,
            "paper": PAPER_SUPERVISED[name][0 if d.name == "visual" else 1]}


def cost_ratios(rows: list[dict]) -> dict:
    """Training MACs (100 epochs) of each baseline over LSM-CLIP's."""
    base = next(r for r in rows if r["method"] == "LSM-CLIP")["macs_protocol"]
    return {r["method"]: r["macs_protocol"] / base for r in rows
            if r["kind"] == "zero-shot" and r["method"] != "LSM-CLIP"}




def run_comparison(store, device, cfg: ComparisonConfig,
                   log: Callable[[str], None] = print) -> dict:
    """Every row of the comparison on the built-in audio and visual data."""
    fa, fb = frames_for(store, "audio", device), frames_for(store, "visual", device)
    zs = zero_shot_comparison(fa, fb, cfg, log)
    sup = [row for fr in (fb, fa) for row in supervised_comparison(fr, cfg, log)]
    return {"config": cfg.as_dict(), "device": str(device), "zero_shot": zs, "supervised": sup,
            "encoding": [encoding_cost(store, m, device) for m in ("audio", "visual")],
            "cost_ratio": cost_ratios(zs), "paper_cost_ratio": PAPER_COST_RATIO}


def _times(x: float) -> str:
    return f"{x:.0f}×" if x >= 10 else f"{x:.2f}×"


def comparison_markdown(res: dict, probes: dict | None = None) -> str:
    """The comparison tables; ``probes`` (the main run's ``ProbeReport`` per modality) adds
    the LSM rows to the supervised table."""
    cfg = res["config"]
    pct = lambda v: "—" if v is None else f"{100 * v:.1f}"   # noqa: E731
    lines = [f"Audio→image, seen 1–7 / unseen 8–9, test split, {res['device']} device. "
             f"Training MACs are forward + backward (backward = 2× forward; BPTT counts every "
             f"bin of both encoders). SRNN models ran {cfg['srnn_epochs']} BPTT epochs (RNN "
             f"{cfg['rnn_epochs']}), the best on validation kept; their 100-epoch cost is the "
             "measured per-epoch cost × 100.", "",
             "| method | metric | seen | unseen | chance seen / unseen | paper seen / unseen "
             "| epochs run (chosen) | s / epoch | training MACs / epoch | × LSM-CLIP |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    ratio = res["cost_ratio"]
    for r in res["zero_shot"]:
        lines.append(
            f"| {r['method']} | {'pool retrieval' if r['metric'] == 'retrieval' else 'nearest prototype'} "
            f"| {pct(r['seen'])} | {pct(r['unseen'])} | {pct(r['seen_chance'])} / "
            f"{pct(r['unseen_chance'])} | {r['paper_seen']} / {r['paper_unseen']} | {r['epochs_run']} "
            f"({r['selected_epoch']}) | {r['seconds_per_epoch']:.2f} | {r['macs_per_epoch']:.3g} | "
            f"{_times(ratio.get(r['method'], 1.0))} |")
    enc = "; ".join(f"{e['modality']}: {e['samples']} samples, {e['seconds']:.1f} s, "
                    f"{e['dense_macs']:.3g} dense-equivalent MACs ({e['synaptic_ops']:.3g} "
                    "event-driven synaptic ops)" for e in res["encoding"])
    lines += ["", f"One-time LSM encoding (inference, not counted as training): {enc}. "
              f"The paper reports training {res['paper_cost_ratio']['SRNN-CLIP']}× cheaper than "
              f"SRNN-CLIP and {res['paper_cost_ratio']['prototypical networks']}× than "
              "prototypical networks.", "",
              "| supervised model | modality | test top-1 | chance | paper | epochs run (chosen) "
              "| s / epoch | training MACs / epoch |", "|---|---|---|---|---|---|---|---|"]
    for m, paper in (("visual", 89.11), ("audio", 70.79)):
        if probes and m in probes:
            lsm = probes[m].lsm
            lines.append(f"| LSM + linear readout (probe) | {m} | {pct(lsm.test)} | "
                         f"{pct(lsm.chance)} | {paper} | — | — | — |")
    for r in res["supervised"]:
        lines.append(f"| {r['method']} | {r['modality']} | {pct(r['test'])} | {pct(r['chance'])} "
                     f"| {r['paper']} | {r['epochs_run']} ({r['selected_epoch']}) | "
                     f"{r['seconds_per_epoch']:.2f} | {r['macs_per_epoch']:.3g} |")
    return "\n".join(lines)
