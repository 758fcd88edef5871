"""The BMI protocol on the built-in letters (PAPER.md, "BMI neural<->letter alignment").

Neural trials (``bmi_neural``: 192 -> 2,048 LSM) and letter images (``bmi_image``: 784 -> 2,048)
are encoded once by frozen reservoirs; one ``Linear(2048 -> 256)`` + GELU head per modality is
trained on 22 seen letters with our supervised contrastive loss (``supcon_loss``: every
same-letter item of the other modality in the batch is a positive, cosine logits / T, both
directions; the authors' own formula is not published) at T = 0.5, Adam lr 1e-3, 100 epochs.
4 letters are held out: the authors' split R S T U (18-21) and random 4-letter sets, each
over several seeds.

Keeping instances apart: every pair is one of the dataset's pairs (``ds.pairs_of``: an image
and a trial by different writers, writers split 60/20/20).  The rows of both modalities are
laid out in pair order, so the trainer's class pairing (k-th of a class in A with k-th in B)
reproduces exactly those pairs; :func:`training_pairs` checks it.  Unseen letters never enter
training, standardisation or any choice; the test writers enter only the final scores.

Choices on validation (validation writers, seen letters only): the epoch (best mean of both
directions' top-1 in the validation seen pool, checked every ``eval_every`` epochs) and the batch size among ``batch_sizes``
(the authors ran 128 and 1,024), picked once on the authors' split (a tie keeps the first)
and used for every set.

Scores: pool retrieval in the test writers' pairs, the seen pool (22 letters) and the unseen
pool (4 letters, chance 25 %) apart, top-1 and item-level top-5 (``retrieval_topk``), both
directions; over random sets a Student's t-interval over sets (``sweep.summarise``).
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from rram_lsm.nodes.classifier.metrics import retrieval_topk, retrieval_topk_chance
from rram_lsm.nodes.projection.train_config import TrainConfig

from .bmi_results import (AUTHORS_SPLIT, PAIR_NAME, BmiResult, MetricSummary, SetRuns,
                          letters_name)
from .sweep import summarise

LETTERS = tuple(range(1, 27))
TRAIN, VAL, TEST = 0, 1, 2
POOLS = ("seen", "unseen")
DIRECTIONS = ("n2i", "i2n")       # neural -> image (query neural), image -> neural
KS = (1, 5)


@dataclass
class BmiConfig:
    """Every knob of the protocol (defaults: the authors' settings where they are known)."""

    size: str = "full"
    data_seed: int = 0
    reservoir_seed: int = 0
    n_random: int = 20               # random 4-letter unseen sets
    set_seed: int = 0                # draws the random sets
    seeds: tuple[int, ...] = (0, 1, 2)          # per random set
    authors_seeds: tuple[int, ...] = (0, 1, 2)  # on R S T U
    epochs: int = 100
    eval_every: int = 5              # validation (epoch choice) every this many epochs
    neurons: int | None = None       # both reservoirs' size (None: the presets' 2,048)
    pd: int = 256
    temperature: float = 0.5
    lr: float = 1e-3
    batch_sizes: tuple[int, ...] = (128, 1024)
    n_unseen: int = 4
    threads: int = 1                 # torch threads (2 stall on a shared 2-core host)
    chunk: int = 12                  # runs trained together (vectorised)
    gzsl_folds: int = 3              # pseudo-unseen folds choosing the GZSL constant; 0 = skip

    def validate(self) -> None:
        if self.n_random < 2:
            raise ValueError(f"the random-set sweep needs at least 2 sets, got {self.n_random}")
        if not self.seeds or not self.authors_seeds or not self.batch_sizes:
            raise ValueError("need at least one seed and one batch size")
        if not 1 <= self.n_unseen < len(LETTERS) - 1:
            raise ValueError(f"n_unseen must be in 1..24, got {self.n_unseen}")
        if self.epochs < 1 or self.pd < 1 or self.eval_every < 1 or self.temperature <= 0:
            raise ValueError("epochs, pd and eval_every must be >= 1 and the temperature > 0")
        if self.gzsl_folds < 0:
            raise ValueError(f"gzsl_folds must be >= 0, got {self.gzsl_folds}")
        if self.neurons is not None and self.neurons < 1:
            raise ValueError(f"neurons must be >= 1, got {self.neurons}")


def random_sets(n: int, seed: int, n_unseen: int = 4,
                exclude: Sequence[int] = AUTHORS_SPLIT) -> list[tuple[int, ...]]:
    """``n`` distinct random ``n_unseen``-letter sets (sorted), the authors' set excluded."""
    rng = np.random.default_rng(seed)
    out: list[tuple[int, ...]] = []
    while len(out) < n:
        s = tuple(sorted(int(c) for c in rng.choice(LETTERS, n_unseen, replace=False)))
        if s != tuple(exclude) and s not in out:
            out.append(s)
    return out


def letters_data(size: str, data_seed: int = 0, reservoir_seed: int = 0,
                 log: Callable[[str], None] = print, neurons: int | None = None):
    """Both modalities' frozen LSM features as ``ModalityData`` rows in pair order:
    row i of ``neural`` and row i of ``image`` are the dataset's pair i (different writers)."""
    from rram_lsm.nodes.projection.train import ModalityData
    from rram_lsm.nodes.sources.builtin_letters import PRESETS, letters_source, load_letters

    from .features import encode_modality

    ds = load_letters(size, seed=data_seed, progress=False)
    feats = {}
    for m in ("neural", "image"):
        start = time.perf_counter()
        fs = encode_modality(ds.modality(m), PRESETS[m], seed=reservoir_seed,
                             overrides={"n_neurons": int(neurons)} if neurons else None,
                             source=letters_source(size, data_seed, m))
        log(f"bmi: {m} features {fs.features.shape} "
            f"({'cached' if fs.cached else f'encoded in {time.perf_counter() - start:.0f} s'})")
        feats[m] = fs
    img_rows, neu_rows = ds.pairs[:, 0], ds.pairs[:, 1]
    split = np.asarray(ds.pair_split).astype(int)
    fn, fi = feats["neural"], feats["image"]
    if not (np.array_equal(fn.split[neu_rows], split) and np.array_equal(fi.split[img_rows], split)
            and np.array_equal(fn.labels[neu_rows], fi.labels[img_rows])):
        raise ValueError("letters pairs disagree with the samples' split or letter")
    neural = ModalityData("neural", fn.preset, fn.features[neu_rows], fn.labels[neu_rows], split)
    image = ModalityData("image", fi.preset, fi.features[img_rows], fi.labels[img_rows], split)
    writers = {"neural": np.asarray(ds.modality("neural").ids)[neu_rows],
               "image": np.asarray(ds.modality("image").ids)[img_rows]}
    return neural, image, writers


def training_pairs(neural, image, seen: Sequence[int]) -> np.ndarray:
    """Row indices of the training pairs the trainer forms for ``seen`` (its own
    ``pair_by_class``); a ValueError unless they are the dataset's pairs (same row in both)."""
    from rram_lsm.nodes.projection.train import pair_by_class

    ra, rb = neural.rows(TRAIN, seen), image.rows(TRAIN, seen)
    ia, ib = pair_by_class(neural.labels[ra], image.labels[rb], seen)
    if not np.array_equal(ra[ia], rb[ib]):
        raise ValueError("the trainer's class pairing does not reproduce the dataset's pairs")
    return ra[ia]


def pool_scores(emb_n: np.ndarray, emb_i: np.ndarray, labels: np.ndarray, split: np.ndarray,
                classes: Sequence[int], which: int = TEST) -> dict:
    """Top-1 and top-5 retrieval in one pool of pairs (rows of one split with those letters),
    both directions, with the chance of each."""
    r = np.flatnonzero((split == which) & np.isin(labels, list(classes)))   # row i = pair i
    if len(np.unique(labels[r])) != len(classes):
        raise ValueError(f"split {which} lacks pairs of some of the letters {list(classes)}")
    lab = labels[r]
    out = {"n_pairs": int(len(r))}
    for k in KS:
        out[f"n2i_top{k}"] = retrieval_topk(emb_n[r], lab, emb_i[r], lab, k)
        out[f"i2n_top{k}"] = retrieval_topk(emb_i[r], lab, emb_n[r], lab, k)
        out[f"chance_top{k}"] = retrieval_topk_chance(lab, lab, k)
    return out


def train_sets(neural, image, sets: Sequence[tuple[int, ...]], cfg: BmiConfig, batch_size: int,
               seeds: Sequence[int], log: Callable[[str], None] = print,
               trained: list | None = None) -> SetRuns:
    """Train every unseen set x seed (vectorised ``cfg.chunk`` at a time, or one Ray task
    each: ``runs.train_runs``) and score the validation-selected heads on the test writers'
    seen and unseen pools; ``trained`` (a list) receives every run's ``TrainResult`` in
    set x seed order (GZSL scores them again)."""
    from .runs import train_runs

    seeds = [int(s) for s in seeds]
    jobs = [(i, tuple(u), s) for i, u in enumerate(sets) for s in seeds]
    base = TrainConfig(pd=cfg.pd, loss="supcon", temperature=cfg.temperature, lr=cfg.lr,
                       batch_size=int(batch_size), epochs=cfg.epochs, select_on="val_seen",
                       threads=cfg.threads, eval_max_per_class=None)
    configs = [dataclasses.replace(base, seed=s, unseen=u,
                                   seen=tuple(c for c in LETTERS if c not in u))
               for _, u, s in jobs]
    for c in configs:
        training_pairs(neural, image, c.seen)
    shape = (len(sets), len(seeds))
    acc = {f"{p}_{d}_top{k}": np.full(shape, np.nan) for p in POOLS for d in DIRECTIONS
           for k in KS}
    chance = {f"{p}_top{k}": np.full(len(sets), np.nan) for p in POOLS for k in KS}
    val_seen = np.full(shape, np.nan)
    epochs = np.zeros(shape, dtype=int)
    start = time.perf_counter()
    for c0 in range(0, len(configs), cfg.chunk):
        results = train_runs(neural, image, configs[c0:c0 + cfg.chunk], cfg.chunk,
                             eval_every=cfg.eval_every)
        if trained is not None:
            trained.extend(results)
        for (i, u, s), r in zip(jobs[c0:c0 + cfg.chunk], results):
            j = seeds.index(s)
            en = r.heads["neural"].forward(neural.features)
            ei = r.heads["image"].forward(image.features)
            seen = r.config.seen
            for pool, classes in (("seen", seen), ("unseen", u)):
                sc = pool_scores(en, ei, neural.labels, neural.split, classes)
                for d in DIRECTIONS:
                    for k in KS:
                        acc[f"{pool}_{d}_top{k}"][i, j] = sc[f"{d}_top{k}"]
                for k in KS:
                    chance[f"{pool}_top{k}"][i] = sc[f"chance_top{k}"]
            v = pool_scores(en, ei, neural.labels, neural.split, seen, VAL)
            val_seen[i, j] = (v["n2i_top1"] + v["i2n_top1"]) / 2
            epochs[i, j] = r.selected_epoch
        log(f"bmi: batch {batch_size}: {min(c0 + cfg.chunk, len(configs))}/{len(configs)} runs "
            f"({time.perf_counter() - start:.0f} s)")
    for p in POOLS:
        for k in KS:
            acc[f"{p}_mean_top{k}"] = (acc[f"{p}_n2i_top{k}"] + acc[f"{p}_i2n_top{k}"]) / 2
    return SetRuns([list(s) for s in sets], seeds, int(batch_size),
                   {k: v.tolist() for k, v in acc.items()},
                   {k: v.tolist() for k, v in chance.items()}, val_seen.tolist(),
                   epochs.tolist(), time.perf_counter() - start)


def summarise_sets(runs: SetRuns) -> dict[str, MetricSummary]:
    """Mean, t-interval over sets and chance of every metric of a random-set sweep."""
    out = {}
    for key, acc in runs.acc.items():
        pool, k = key.split("_")[0], key.split("_")[-1]
        s = summarise(np.asarray(acc), [tuple(x) for x in runs.sets],
                      np.asarray(runs.chance[f"{pool}_{k}"]), method="split_t")
        out[key] = MetricSummary.of(s)
    return out


def run_bmi(cfg: BmiConfig, log: Callable[[str], None] = print) -> BmiResult:
    """The whole protocol: features, the batch size chosen on validation (authors' split),
    the authors' split over seeds and the random-set sweep at the chosen batch size; GZSL
    (``gzsl_eval.gzsl_experiment``) of the authors' split's heads at that batch size, each
    seed's constant chosen on pseudo-unseen folds of seen letters (validation writers)."""
    from .gzsl_eval import gzsl_experiment

    cfg.validate()
    start = time.perf_counter()
    neural, image, writers = letters_data(cfg.size, cfg.data_seed, cfg.reservoir_seed, log,
                                          cfg.neurons)
    authors, heads = {}, {}
    for bs in cfg.batch_sizes:
        heads[bs] = []
        authors[bs] = train_sets(neural, image, [AUTHORS_SPLIT], cfg, bs, cfg.authors_seeds, log,
                                 heads[bs])
    chosen = max(cfg.batch_sizes, key=lambda bs: float(np.mean(authors[bs].val_seen)))
    log(f"bmi: batch size {chosen} chosen on validation (seen letters, validation writers): "
        + ", ".join(f"{bs}: {np.mean(authors[bs].val_seen):.1%}" for bs in cfg.batch_sizes))
    sets = random_sets(cfg.n_random, cfg.set_seed, cfg.n_unseen)
    sweep = train_sets(neural, image, sets, cfg, chosen, cfg.seeds, log)
    gz = None
    if cfg.gzsl_folds:
        gz = gzsl_experiment(neural, image, heads[chosen][0].config, heads[chosen],
                             cfg.gzsl_folds, PAIR_NAME, eval_every=cfg.eval_every)
        log(f"bmi: GZSL on {letters_name()} ({gz.seconds:.0f} s)")
    return BmiResult(
        name=PAIR_NAME, config=dataclasses.asdict(cfg), batch_size=chosen,
        authors=authors[chosen], authors_by_batch=list(authors.values()),
        sweep=sweep, summary=summarise_sets(sweep),
        n_pairs={s: int(np.sum(neural.split == i)) for i, s in enumerate(("train", "val", "test"))},
        same_writer_pairs=int(np.sum(writers["neural"] == writers["image"])),
        seconds=time.perf_counter() - start, gzsl=gz)
