"""One reservoir as NIR nodes and back (the Neuromorphic Intermediate Representation, ``nir``).

Shape, under a name prefix ``m``: ``m.input`` (Input) -> ``m.w_in`` (Affine, W_in) -> ``m`` ->
``m.output`` (Output), where the spiking node ``m`` is a NIRGraph holding the LIF with the
recurrent Affine on a cycle::

    input -> lif -> output
             ^  |
             w_rec

The cycle sits inside a sub-graph because snnTorch rewrites a top-level LIF <-> Affine cycle
into a sub-graph whose input feeds W_rec instead of the LIF (docs/nir.md); nested, snnTorch
and nirtorch run it as written.

NIR's LIF is continuous: ``tau dv/dt = (v_leak - v) + R I``, spike when ``v > v_threshold``,
then ``v = v_reset``.  Forward Euler at step ``dt`` gives ``v <- (1 - dt/tau) v + (dt R/tau) I``;
our bin update is ``mem <- decay mem + I`` (``I = W_in x + W_rec s``), so
``tau = dt / (1 - decay)``, ``R = tau / dt = 1 / (1 - decay)``, ``v_leak = 0``,
``v_threshold = vth``, ``v_reset = 0`` (the multiplicative reset ``(1 - s)`` is a reset to 0).
Euler is what snnTorch's importer uses.  Our comparison is ``mem >= vth`` where
NIR states ``>``: the metadata says so (it only matters on exact ties).  The metadata carries
the discrete parameters and the full ``LsmConfig`` as JSON, so our importer rebuilds the same
reservoir bit for bit; a foreign file without it is read from tau/R/dt.  ``nir`` is imported
lazily (an optional extra): the lsm node needs it only when given a ``nir`` file.
"""
from __future__ import annotations

import json
import math

import numpy as np

from rram_lsm.stream.node import ConfigError

from .config import LsmConfig
from .reservoir import LifReservoir

CONVENTIONS = {
    "update": "mem[t] = decay * mem[t-1] * (1 - s[t-1]) + W_in @ x[t] + W_rec @ s[t-1]",
    "reset": "multiplicative reset to zero: the (1 - s[t-1]) term; this bin's input is kept",
    "threshold_comparison": ">= (s[t] = mem[t] >= v_threshold; NIR's LIF states >)",
    "input_binarisation": "x[t][i] = 1 if input i had at least one event in bin t, else 0",
    "lif_derivation": "forward Euler at dt: tau = dt / (1 - decay), r = 1 / (1 - decay), "
                      "v_leak = 0, v_reset = 0, v_threshold = vth",
    "readout": "feature = mean over the sample's bins of s (spike count / n_bins)",
}


def _nir():
    try:
        import nir
    except ImportError:
        raise ConfigError("NIR files need the 'nir' package: pip install 'rram-lsm[nir]'") from None
    return nir


def lif_params(decay: float, vth: float, dt_s: float, n: int) -> dict[str, np.ndarray]:
    """NIR LIF parameters (per neuron, float64) of our discrete LIF at bin width ``dt_s``."""
    if not 0.0 <= decay < 1.0:
        raise ConfigError(f"NIR export needs decay in [0, 1) (a leak), got {decay!r}")
    if not (dt_s > 0 and math.isfinite(dt_s)):
        raise ConfigError(f"NIR export needs a positive dt in seconds, got {dt_s!r}")
    tau = dt_s / (1.0 - decay)
    return {"tau": np.full(n, tau), "r": np.full(n, 1.0 / (1.0 - decay)),
            "v_leak": np.zeros(n), "v_threshold": np.full(n, float(vth)), "v_reset": np.zeros(n)}


def discrete_params(lif, dt_s: float) -> tuple[float, float]:
    """``(decay, vth)`` of a NIR LIF at step ``dt_s``; a ConfigError unless it is one of ours
    (uniform, v_leak 0, v_reset 0, input scale ``dt R / tau`` 1)."""
    for key in ("tau", "r", "v_leak", "v_threshold", "v_reset"):
        v = np.asarray(getattr(lif, key), dtype=np.float64)
        if v.size == 0 or not np.all(v == v.flat[0]):
            raise ConfigError(f"NIR LIF parameter {key!r} must be the same for every neuron")
    tau, r = float(np.ravel(lif.tau)[0]), float(np.ravel(lif.r)[0])
    if np.ravel(lif.v_leak)[0] != 0 or np.ravel(lif.v_reset)[0] != 0:
        raise ConfigError("NIR LIF with v_leak or v_reset other than 0 is not an rram-lsm reservoir")
    if not math.isclose(r * dt_s / tau, 1.0, rel_tol=1e-9):
        raise ConfigError(f"NIR LIF input scale dt*r/tau = {r * dt_s / tau:.6g} at dt {dt_s} s; "
                          "rram-lsm reservoirs have 1")
    return 1.0 - dt_s / tau, float(np.ravel(lif.v_threshold)[0])


def reservoir_nodes(reservoir: LifReservoir, prefix: str, dt_s: float,
                    device_note: str = "") -> tuple[dict, list[tuple[str, str]]]:
    """NIR nodes and edges of ``reservoir`` under ``prefix`` (see the module docstring).

    The weights are the arrays the reservoir runs on (for an RRAM device: the conductances
    read at ``t_inference`` times ``const``; per-read noise and the ADC are not exported).
    """
    nir = _nir()
    c = reservoir.config
    n, n_in = c.n_neurons, c.n_inputs
    meta = {**CONVENTIONS, "dt_s": float(dt_s), "decay": float(c.decay), "vth": float(c.vth),
            "lsm_config": json.dumps(c.as_dict()),
            "weights": "W = const * (G+ - G-) read at t_inference; " + (device_note or "ideal device")}
    cycle = nir.NIRGraph(
        nodes={"input": nir.Input(input_type=np.array([n])),
               "lif": nir.LIF(**lif_params(c.decay, c.vth, dt_s, n), metadata=meta),
               "w_rec": nir.Affine(weight=np.ascontiguousarray(reservoir.w_rec.T),
                                   bias=np.zeros(n, reservoir.w_rec.dtype)),
               "output": nir.Output(output_type=np.array([n]))},
        edges=[("input", "lif"), ("lif", "w_rec"), ("w_rec", "lif"), ("lif", "output")],
        metadata={"rram_lsm": "reservoir"})
    nodes = {
        f"{prefix}.input": nir.Input(input_type=np.array([n_in])),
        f"{prefix}.w_in": nir.Affine(weight=np.ascontiguousarray(reservoir.w_in.T),
                                     bias=np.zeros(n, reservoir.w_in.dtype)),
        prefix: cycle,
        f"{prefix}.output": nir.Output(output_type=np.array([n])),
    }
    edges = [(f"{prefix}.input", f"{prefix}.w_in"), (f"{prefix}.w_in", prefix),
             (prefix, f"{prefix}.output")]
    return nodes, edges


def reservoir_graph(reservoir: LifReservoir, prefix: str, dt_s: float, device_note: str = ""):
    """A NIRGraph holding only this reservoir (the form single-network importers take)."""
    nodes, edges = reservoir_nodes(reservoir, prefix, dt_s, device_note)
    return _nir().NIRGraph(nodes=nodes, edges=edges, metadata={"rram_lsm": "reservoir"})


def _is_dense(node) -> bool:
    return type(node).__name__ in ("Affine", "Linear")


def _flat_parts(graph, key: str):
    """``(w_in key, w_rec key)`` when LIF ``key`` of ``graph`` sits on a top-level cycle with a
    dense node and takes one other dense input (the flat form other tools write), else None."""
    if type(graph.nodes[key]).__name__ != "LIF":
        return None
    into = [a for a, b in graph.edges if b == key and _is_dense(graph.nodes[a])]
    rec = [a for a in into if (key, a) in graph.edges]
    inp = [a for a in into if a not in rec]
    return (inp[0], rec[0]) if len(rec) == 1 and len(inp) == 1 else None


def reservoir_prefixes(graph) -> list[str]:
    """The reservoirs in ``graph``: sub-graphs ``p`` holding ``lif`` and ``w_rec`` fed by an
    Affine ``p.w_in`` (our export), or a top-level LIF on a cycle with a dense node (named
    by the LIF's key)."""
    nested = [k for k, v in graph.nodes.items()
              if hasattr(v, "nodes") and {"lif", "w_rec"} <= set(v.nodes) and f"{k}.w_in" in graph.nodes]
    flat = [k for k in graph.nodes if _flat_parts(graph, k) is not None]
    return sorted(nested + flat)


def _parts(graph, prefix: str):
    """``(lif, w_in node key in graph, (graph holding w_rec, its key))`` of reservoir ``prefix``."""
    flat = _flat_parts(graph, prefix)
    if flat is not None:
        return graph.nodes[prefix], flat[0], (graph, flat[1], "")
    cycle = graph.nodes[prefix]
    return cycle.nodes["lif"], f"{prefix}.w_in", (cycle, "w_rec", f"{prefix}/")


def _affine_weight(graph, key: str, shape: tuple[int, int], where: str = "") -> np.ndarray:
    node = graph.nodes.get(key)
    key = where + key
    if node is None:
        raise ConfigError(f"NIR graph has no node {key!r}")
    w = np.asarray(node.weight)
    if w.shape != shape:
        raise ConfigError(f"NIR node {key!r} has weight shape {w.shape}, expected {shape}")
    bias = getattr(node, "bias", None)
    if bias is not None and np.any(np.asarray(bias) != 0):
        raise ConfigError(f"NIR node {key!r} has a bias; rram-lsm reservoirs have none")
    return w


def reservoir_from_graph(graph, prefix: str | None = None, dtype=np.float32,
                         config: LsmConfig | None = None) -> LifReservoir:
    """An ideal-device :class:`LifReservoir` running the weights of reservoir ``prefix`` of
    ``graph`` (the only one when None).  Its ``LsmConfig`` comes from the file's metadata,
    else from ``config`` with n_inputs/n_neurons/decay/vth taken from the file."""
    found = reservoir_prefixes(graph)
    if prefix is None:
        if len(found) != 1:
            raise ConfigError(f"NIR graph holds reservoirs {found}; say which")
        prefix = found[0]
    elif prefix not in found:
        raise ConfigError(f"NIR graph has no reservoir {prefix!r}; it has {found}")
    lif, w_in_key, (rec_graph, w_rec_key, where) = _parts(graph, prefix)
    meta = dict(lif.metadata or {})
    n = int(np.asarray(lif.v_threshold).size)
    w_in_t = np.asarray(graph.nodes[w_in_key].weight)
    n_in = int(w_in_t.shape[1]) if w_in_t.ndim == 2 else 0
    if "lsm_config" in meta:
        d = json.loads(meta["lsm_config"])
        if d.get("crop") is not None:
            d["crop"] = tuple(d["crop"])
        cfg = LsmConfig(**d)
        decay, vth = discrete_params(lif, float(meta["dt_s"]))
        if not (math.isclose(decay, cfg.decay, rel_tol=1e-9, abs_tol=1e-12) and vth == cfg.vth):
            raise ConfigError(f"NIR reservoir {prefix!r}: LIF parameters give decay {decay!r}, vth "
                              f"{vth!r}; its metadata says {cfg.decay!r}, {cfg.vth!r}")
    else:
        if "dt_s" not in meta and config is None:
            raise ConfigError(f"NIR reservoir {prefix!r} has no rram-lsm metadata; pass an LsmConfig")
        dt_s = float(meta.get("dt_s", (config.bin_width_us or 1000) * 1e-6))
        decay, vth = discrete_params(lif, dt_s)
        base = config or LsmConfig(n_inputs=n_in)
        cfg = LsmConfig(**{**base.as_dict(), "n_inputs": n_in, "n_neurons": n, "decay": decay, "vth": vth})
    if (cfg.n_neurons, cfg.n_inputs) != (n, n_in):
        raise ConfigError(f"NIR reservoir {prefix!r}: metadata says {cfg.n_inputs} inputs x "
                          f"{cfg.n_neurons} neurons, the nodes hold {n_in} x {n}")
    w_in = _affine_weight(graph, w_in_key, (n, n_in)).T
    w_rec = _affine_weight(rec_graph, w_rec_key, (n, n), where=where).T
    reservoir = LifReservoir(cfg, "ideal", dtype=dtype)
    reservoir.crossbar.release()
    reservoir.w_in = np.ascontiguousarray(w_in, dtype=reservoir.dtype)
    reservoir.w_rec = np.ascontiguousarray(w_rec, dtype=reservoir.dtype)
    return reservoir


def read_graph(path):
    """The NIRGraph of a ``.nir`` file, or a ConfigError naming the file."""
    nir = _nir()
    try:
        return nir.read(str(path))
    except (OSError, KeyError, ValueError) as exc:
        raise ConfigError(f"{path}: not a readable NIR file ({exc})") from None


def load_reservoir(path, prefix: str | None = None, dtype=np.float32) -> LifReservoir:
    """The reservoir ``prefix`` of the NIR file ``path`` (:func:`reservoir_from_graph`)."""
    return reservoir_from_graph(read_graph(path), prefix, dtype)
