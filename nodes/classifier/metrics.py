"""Evaluation metrics, each with its chance level (numpy only).

* The paper's metric: top-1 cross-modal retrieval inside a pool.  A query of modality A is
  correct when the most cosine-similar item of modality B in the same pool has the query's
  class; the seen pool (classes 1-7) and the unseen pool (8-9) are scored separately, both
  directions.
* Top-k retrieval (the BMI protocol's top-5): one of the k nearest gallery items has the
  query's class, with its chance for k random picks.
* The streaming classifier's metric: nearest class prototype over the bank in use.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Iterable, Sequence

import numpy as np


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def retrieval_top1(queries: np.ndarray, query_labels: np.ndarray,
                   gallery: np.ndarray, gallery_labels: np.ndarray) -> float:
    """Fraction of queries whose most cosine-similar gallery item has the query's class."""
    queries, gallery = np.asarray(queries), np.asarray(gallery)
    if queries.ndim != 2 or gallery.ndim != 2 or queries.shape[1] != gallery.shape[1]:
        raise ValueError(f"queries {queries.shape} and gallery {gallery.shape} must be "
                         f"2-D with the same embedding dimension")
    if len(queries) != len(query_labels) or len(gallery) != len(gallery_labels):
        raise ValueError("each embedding needs exactly one label")
    if len(queries) == 0 or len(gallery) == 0:
        raise ValueError("retrieval needs a non-empty query set and gallery")
    sims = _unit(queries) @ _unit(gallery).T
    best = np.asarray(gallery_labels)[np.argmax(sims, axis=1)]
    return float(np.mean(best == np.asarray(query_labels)))


def retrieval_chance(query_labels: np.ndarray, gallery_labels: np.ndarray) -> float:
    """Accuracy of picking a gallery item at random: Σ_c P_query(c)·P_gallery(c)."""
    q, g = np.asarray(query_labels), np.asarray(gallery_labels)
    classes = np.union1d(q, g)
    pq = np.array([np.mean(q == c) for c in classes])
    pg = np.array([np.mean(g == c) for c in classes])
    return float(pq @ pg)


def retrieval_topk(queries: np.ndarray, query_labels: np.ndarray, gallery: np.ndarray,
                   gallery_labels: np.ndarray, k: int) -> float:
    """Fraction of queries whose ``k`` most cosine-similar gallery items include one of the
    query's class (item-level top-k; ``k`` = 1 is :func:`retrieval_top1`, ``k`` >= the
    gallery size is 1)."""
    if int(k) < 1:
        raise ValueError(f"top-k retrieval needs k >= 1, got {k}")
    retrieval_top1(queries[:1], query_labels[:1], gallery, gallery_labels)   # shape checks
    if len(queries) != len(query_labels):
        raise ValueError("each embedding needs exactly one label")
    sims = _unit(queries) @ _unit(gallery).T
    k = min(int(k), sims.shape[1])
    top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
    hit = np.asarray(gallery_labels)[top] == np.asarray(query_labels)[:, None]
    return float(np.mean(hit.any(axis=1)))


def retrieval_topk_chance(query_labels: np.ndarray, gallery_labels: np.ndarray, k: int) -> float:
    """Top-k accuracy of ``k`` gallery items drawn at random without replacement: the mean
    over queries of 1 - C(N - n_c, k) / C(N, k), n_c the gallery items of the query's class."""
    g = np.asarray(gallery_labels)
    n, k = len(g), min(int(k), len(g))
    if k < 1:
        raise ValueError(f"top-k chance needs k >= 1 and a non-empty gallery, got k={k}, N={n}")
    out = []
    for c in np.asarray(query_labels):
        miss = n - int(np.sum(g == c))
        out.append(1.0 - np.prod([(miss - i) / (n - i) for i in range(k)]) if miss >= k else 1.0)
    return float(np.mean(out))


@dataclass
class PoolScore:
    """Top-1 retrieval in one pool, both directions, with chance."""

    classes: list[int]
    n_pairs: int
    a_to_b: float
    b_to_a: float
    chance: float

    @property
    def mean(self) -> float:
        return 0.5 * (self.a_to_b + self.b_to_a)


def pool_pairs(labels_a: np.ndarray, labels_b: np.ndarray, classes: Iterable[int],
               max_per_class: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs for an evaluation pool: k-th sample of class c in A with k-th in B.

    No cycling (a test pool must not repeat samples): min(count_a, count_b) pairs per
    class, at most ``max_per_class`` (the paper: up to 100 test pairs per class).
    """
    ia, ib = [], []
    for c in classes:
        a = np.flatnonzero(np.asarray(labels_a) == c)
        b = np.flatnonzero(np.asarray(labels_b) == c)
        n = min(len(a), len(b))
        if max_per_class is not None:
            n = min(n, int(max_per_class))
        ia.append(a[:n])
        ib.append(b[:n])
    return np.concatenate(ia).astype(int), np.concatenate(ib).astype(int)


def pool_retrieval(emb_a: np.ndarray, labels_a: np.ndarray, emb_b: np.ndarray,
                   labels_b: np.ndarray, classes: Sequence[int],
                   max_per_class: int | None = 100) -> PoolScore:
    """The paper's metric for one pool (e.g. seen 1-7 or unseen 8-9), both directions."""
    ia, ib = pool_pairs(labels_a, labels_b, classes, max_per_class)
    if len(ia) == 0:
        raise ValueError(f"no pairs for pool {list(classes)}: a class is missing in a modality")
    la, lb = np.asarray(labels_a)[ia], np.asarray(labels_b)[ib]
    return PoolScore(
        classes=[int(c) for c in classes], n_pairs=int(len(ia)),
        a_to_b=retrieval_top1(emb_a[ia], la, emb_b[ib], lb),
        b_to_a=retrieval_top1(emb_b[ib], lb, emb_a[ia], la),
        chance=retrieval_chance(la, lb),
    )


@dataclass
class RetrievalReport:
    """Seen-pool and unseen-pool retrieval (the paper's table)."""

    seen: PoolScore
    unseen: PoolScore | None

    def as_dict(self) -> dict:
        out = {"seen": asdict(self.seen)}
        out["unseen"] = asdict(self.unseen) if self.unseen is not None else None
        return out


def cross_modal_retrieval(emb_a: np.ndarray, labels_a: np.ndarray, emb_b: np.ndarray,
                          labels_b: np.ndarray, seen: Sequence[int],
                          unseen: Sequence[int] | None,
                          max_per_class: int | None = 100) -> RetrievalReport:
    """Seen and unseen pools kept separate, as in the paper."""
    return RetrievalReport(
        seen=pool_retrieval(emb_a, labels_a, emb_b, labels_b, seen, max_per_class),
        unseen=(pool_retrieval(emb_a, labels_a, emb_b, labels_b, unseen, max_per_class)
                if unseen else None),
    )


def class_prototypes(emb: np.ndarray, labels: np.ndarray,
                     classes: Sequence[int]) -> np.ndarray:
    """Per class, the L2-normalised mean of L2-normalised embeddings ``(n_classes, dim)``."""
    e = _unit(emb)
    protos = []
    for c in classes:
        rows = e[np.asarray(labels) == c]
        if len(rows) == 0:
            raise ValueError(f"class {c} has no reference embeddings")
        protos.append(rows.mean(axis=0))
    return _unit(np.stack(protos))


def prototype_predict(queries: np.ndarray, prototypes: np.ndarray,
                      classes: Sequence[int]) -> np.ndarray:
    """Label of the most cosine-similar prototype for each query."""
    return np.asarray(classes)[np.argmax(_unit(queries) @ _unit(prototypes).T, axis=1)]


@dataclass
class PrototypeScore:
    accuracy: float
    chance: float
    classes: list[int]
    confusion: list[list[int]]


def prototype_accuracy(queries: np.ndarray, query_labels: np.ndarray,
                       references: np.ndarray, reference_labels: np.ndarray,
                       classes: Sequence[int]) -> PrototypeScore:
    """Nearest-prototype accuracy of queries against prototypes built from references.

    Chance is the share of the most frequent query class among ``classes`` when the
    classifier always guesses it; for balanced queries that is 1/len(classes).
    """
    classes = [int(c) for c in classes]
    ql = np.asarray(query_labels)
    keep = np.isin(ql, classes)
    protos = class_prototypes(references, reference_labels, classes)
    pred = prototype_predict(np.asarray(queries)[keep], protos, classes)
    counts = np.array([np.sum(ql[keep] == c) for c in classes])
    return PrototypeScore(
        accuracy=float(np.mean(pred == ql[keep])),
        chance=float(counts.max() / counts.sum()),
        classes=classes,
        confusion=confusion_matrix(ql[keep], pred, classes).tolist(),
    )


def confusion_matrix(true: np.ndarray, pred: np.ndarray, classes: Sequence[int],
                     with_unknown: bool = False) -> np.ndarray:
    """Counts ``[i, j]`` of true class ``classes[i]`` predicted as ``classes[j]``.

    With ``with_unknown`` an extra last column counts predictions outside ``classes``
    (the classifier's -1, "unknown"); without it such a prediction is a ValueError.
    """
    index = {int(c): i for i, c in enumerate(classes)}
    m = np.zeros((len(classes), len(classes) + int(with_unknown)), dtype=np.int64)
    for t, p in zip(np.asarray(true).tolist(), np.asarray(pred).tolist()):
        if int(t) not in index:
            raise ValueError(f"true label {t} is not one of the classes {list(classes)}")
        if int(p) in index:
            m[index[int(t)], index[int(p)]] += 1
        elif with_unknown:
            m[index[int(t)], -1] += 1
        else:
            raise ValueError(f"prediction {p} is not one of the classes {list(classes)}; "
                             f"pass with_unknown=True to count it as unknown")
    return m


def evaluate_embeddings(emb_a: np.ndarray, labels_a: np.ndarray, split_a: np.ndarray,
                        emb_b: np.ndarray, labels_b: np.ndarray, split_b: np.ndarray,
                        seen: Sequence[int], unseen: Sequence[int] | None,
                        test_split: int = 2, bank_split: int = 0,
                        max_per_class: int | None = 100) -> dict:
    """Both metrics of one trained model, each with its chance level.

    * ``retrieval``: the paper's pool retrieval on the ``test_split`` samples;
    * ``prototype``: the streaming classifier's metric, test queries of each modality
      against a bank of the other modality's ``bank_split`` samples (mean prototypes), for
      the seen classes, the unseen classes and all classes together.
    """
    la, lb = np.asarray(labels_a), np.asarray(labels_b)
    ta, tb = np.asarray(split_a) == test_split, np.asarray(split_b) == test_split
    ba, bb = np.asarray(split_a) == bank_split, np.asarray(split_b) == bank_split
    out = {"retrieval": cross_modal_retrieval(emb_a[ta], la[ta], emb_b[tb], lb[tb], seen,
                                              unseen, max_per_class).as_dict(),
           "prototype": {}}
    pools = {"seen": list(seen), "unseen": list(unseen or []),
             "all": list(seen) + list(unseen or [])}
    for name, classes in pools.items():
        if not classes:
            continue
        out["prototype"][name] = {
            "a_to_b": asdict(prototype_accuracy(emb_a[ta], la[ta], emb_b[bb], lb[bb], classes)),
            "b_to_a": asdict(prototype_accuracy(emb_b[tb], lb[tb], emb_a[ba], la[ba], classes)),
        }
    return out
