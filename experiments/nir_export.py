"""A trained run (``rram-lsm train --out RUN``) as one NIR file, and back.

The file's graph holds, per modality ``m``, the reservoir under prefix ``m``
(:mod:`nodes.lsm.nir_io`) and its head under ``m_head`` (:mod:`nodes.projection.nir_io`), as
two separate chains: between them is the rate readout (mean spike count per bin), which NIR
cannot express, so it is stated in the metadata.  ``reservoir_only`` writes one reservoir as
the whole graph, the form single-network importers (snnTorch) take: snnTorch's import did not
return on a graph of two unconnected chains (docs/nir.md).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from rram_lsm.nodes.lsm.nir_io import (CONVENTIONS, read_graph, reservoir_from_graph, reservoir_nodes,
                                        reservoir_prefixes)
from rram_lsm.nodes.lsm.presets import get_preset
from rram_lsm.nodes.lsm.reservoir import LifReservoir
from rram_lsm.nodes.lsm.rram import make_device
from rram_lsm.nodes.projection.heads import ProjectionHead, load_heads
from rram_lsm.nodes.projection.nir_io import head_from_graph, head_nodes
from rram_lsm.stream.node import ConfigError

FORMAT = 1


def run_system(run_dir: str | Path) -> tuple[dict, dict[str, tuple[LifReservoir, ProjectionHead]]]:
    """``(run info, {modality: (reservoir, head)})`` of a trained run: each reservoir rebuilt
    from its head's preset, the run's calibrated gain, reservoir seed and device."""
    run_dir = Path(run_dir)
    cfg_path = run_dir / "config.json"
    if not cfg_path.is_file():
        raise ConfigError(f"{run_dir}: no config.json; not the output folder of `rram-lsm train`")
    info = json.loads(cfg_path.read_text())
    heads = load_heads(info["heads"] if Path(info["heads"]).is_file() else run_dir / Path(info["heads"]).name)
    device = make_device(info.get("device", "ideal"))
    windows = int(info.get("windows", 1))
    system = {}
    for m, head in heads.items():
        if m not in info.get("consts", {}):
            raise ConfigError(f"{cfg_path}: no calibrated gain ('consts') for modality {m!r}")
        base = get_preset(head.config.preset)
        over = {"const": float(info["consts"][m]), "seed": int(info.get("reservoir_seed", 0))}
        if head.n_features != windows * base.n_neurons:
            over["n_neurons"] = head.n_features // windows
        system[m] = (LifReservoir(get_preset(head.config.preset, **over), device), head)
    return info, system


def device_note(reservoir: LifReservoir) -> str:
    d = reservoir.device
    note = f"device {d.name!r}"
    if reservoir.noisy:
        note += ("; its per-read noise and ADC are applied at run time by rram-lsm and are not "
                 "in this file (an importer runs the ideal weights read at t_inference)")
    return note


def export_nir(run_dir: str | Path, path: str | Path, dt_s: float | None = None,
               reservoir_only: str | None = None) -> Path:
    """Write the run's reservoirs and heads (or only reservoir ``reservoir_only``) to ``path``.

    ``dt_s`` is the step the continuous LIF parameters are derived at (default: each
    preset's nominal bin, ``bin_width_us``); the per-bin dynamics do not depend on it.
    """
    import nir
    info, system = run_system(run_dir)
    nodes, edges = {}, []
    if reservoir_only is not None and reservoir_only not in system:
        raise ConfigError(f"run {run_dir} has no modality {reservoir_only!r}; it has {sorted(system)}")
    for m, (res, head) in system.items():
        if reservoir_only is not None and m != reservoir_only:
            continue
        dt = dt_s if dt_s is not None else res.config.bin_width_us * 1e-6
        n, e = reservoir_nodes(res, m, dt, device_note(res))
        nodes.update(n)
        edges += e
        if reservoir_only is None:
            n, e = head_nodes(head, f"{m}_head")
            nodes.update(n)
            edges += e
    meta = {"rram_lsm_format": FORMAT, "run": json.dumps({k: v for k, v in info.items() if k != "summary"},
                                                        default=str),
            "readout": CONVENTIONS["readout"] + f"; windows={int(info.get('windows', 1))} "
                       "(window-major rates when > 1), then each m_head"}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    nir.write(str(path), nir.NIRGraph(nodes=nodes, edges=edges, metadata=meta))
    return path


def load_system(path: str | Path) -> dict[str, tuple[LifReservoir, ProjectionHead | None]]:
    """``{modality: (reservoir, head or None)}`` of a NIR file written by :func:`export_nir`."""
    graph = read_graph(path)
    out = {}
    for m in reservoir_prefixes(graph):
        head = head_from_graph(graph, f"{m}_head") if f"{m}_head.standardise" in graph.nodes else None
        out[m] = (reservoir_from_graph(graph, m), head)
    if not out:
        raise ConfigError(f"{path}: NIR file holds no rram-lsm reservoir")
    return out


def spike_agreement(ours, theirs) -> dict[str, float]:
    """How far two spike rasters ``(bins, neurons)`` of one input agree: ``count_corr``, the
    Pearson correlation over neurons of their spike counts (1.0 when both are equal and
    constant); ``prefix_frac``, the fraction of bins before the first bin where any neuron
    differs (1.0: identical); ``mismatch_frac``, the fraction of (bin, neuron) entries that
    differ."""
    a, b = np.asarray(ours, np.float64), np.asarray(theirs, np.float64)
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"rasters must be (bins, neurons) of one shape, got {a.shape} and {b.shape}")
    ca, cb = a.sum(axis=0), b.sum(axis=0)
    if np.array_equal(ca, cb):
        corr = 1.0
    elif ca.std() == 0 or cb.std() == 0:
        corr = 0.0
    else:
        corr = float(np.corrcoef(ca, cb)[0, 1])
    diff = np.flatnonzero((a != b).any(axis=1))
    first = int(diff[0]) if diff.size else a.shape[0]
    return {"count_corr": corr, "prefix_frac": first / max(a.shape[0], 1),
            "mismatch_frac": float(np.mean(a != b)) if a.size else 0.0}
