"""A projection head as NIR nodes and back.

Shape, under a name prefix ``h``::

    h.input -> h.standardise (Affine: diag(1/std), -mean/std) -> h.fc0 (Affine) -> ... -> h.output

NIR has no GELU (nor ReLU) node, so each layer's activation and the final L2 normalisation
are stated in the metadata of its Affine (``activation``, ``then``); another framework runs
the affine part and must apply those itself.  ``mean``/``std`` are kept exactly in the
standardise node's metadata, so our importer rebuilds the head bit for bit.
"""
from __future__ import annotations

import json
from dataclasses import asdict

import numpy as np

from rram_lsm.stream.node import ConfigError

from .heads import HeadConfig, ProjectionHead


def _nir():
    try:
        import nir
    except ImportError:
        raise ConfigError("NIR files need the 'nir' package: pip install 'rram-lsm[nir]'") from None
    return nir


def head_nodes(head: ProjectionHead, prefix: str) -> tuple[dict, list[tuple[str, str]]]:
    """NIR nodes and edges of ``head`` under ``prefix`` (see the module docstring)."""
    nir = _nir()
    cfg = head.config
    inv = (1.0 / head.std.astype(np.float64))
    nodes = {
        f"{prefix}.input": nir.Input(input_type=np.array([head.n_features])),
        f"{prefix}.standardise": nir.Affine(
            weight=np.diag(inv).astype(np.float32), bias=(-head.mean * inv).astype(np.float32),
            metadata={"mean": head.mean, "std": head.std, "head_config": json.dumps(asdict(cfg)),
                      "input": "the reservoir's features: mean spike rate per neuron over a sample"}),
    }
    order = [f"{prefix}.standardise"]
    last = len(head.weights) - 1
    for i, (w, b) in enumerate(zip(head.weights, head.biases)):
        act = cfg.activation if (i < last or cfg.final_activation) else "identity"
        meta = {"activation": act}
        if act == "gelu":
            meta["activation_form"] = "exact: 0.5 x (1 + erf(x / sqrt 2))"
        if i == last:
            meta["then"] = "L2 normalisation of each row (the embedding)"
        nodes[f"{prefix}.fc{i}"] = nir.Affine(weight=w, bias=b, metadata=meta)
        order.append(f"{prefix}.fc{i}")
    nodes[f"{prefix}.output"] = nir.Output(output_type=np.array([head.pd]))
    chain = [f"{prefix}.input", *order, f"{prefix}.output"]
    return nodes, list(zip(chain[:-1], chain[1:]))


def head_prefixes(graph) -> list[str]:
    """The prefixes of the heads in ``graph`` (each ``p.standardise`` with a head config)."""
    return sorted(k[:-12] for k, v in graph.nodes.items()
                  if k.endswith(".standardise") and "head_config" in (v.metadata or {}))


def head_from_graph(graph, prefix: str) -> ProjectionHead:
    """The :class:`ProjectionHead` stored under ``prefix`` in ``graph``."""
    std_node = graph.nodes.get(f"{prefix}.standardise")
    if std_node is None or "head_config" not in (std_node.metadata or {}):
        raise ConfigError(f"NIR graph has no head {prefix!r}; it has {head_prefixes(graph)}")
    meta = std_node.metadata
    cfg = HeadConfig(**json.loads(meta["head_config"]))
    weights, biases = [], []
    for i in range(len(cfg.layers)):
        node = graph.nodes.get(f"{prefix}.fc{i}")
        if node is None:
            raise ConfigError(f"NIR head {prefix!r} lacks layer node {prefix}.fc{i}")
        weights.append(np.asarray(node.weight))
        biases.append(np.asarray(node.bias))
    try:
        return ProjectionHead(config=cfg, mean=np.asarray(meta["mean"]), std=np.asarray(meta["std"]),
                              weights=weights, biases=biases)
    except ValueError as exc:
        raise ConfigError(f"NIR head {prefix!r}: {exc}") from None


def load_heads_nir(path) -> dict[str, ProjectionHead]:
    """Every head of the NIR file ``path``, keyed by modality (what ``load_heads`` returns)."""
    nir = _nir()
    try:
        graph = nir.read(str(path))
    except (OSError, KeyError, ValueError) as exc:
        raise ValueError(f"{path}: not a readable NIR file ({exc})") from None
    heads = {}
    for p in head_prefixes(graph):
        h = head_from_graph(graph, p)
        heads[h.config.modality] = h
    if not heads:
        raise ValueError(f"{path}: NIR file holds no rram-lsm projection heads")
    return heads
