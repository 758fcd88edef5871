"""The demo: built-in data -> encode -> train -> the full multi-process graph, live -> report.

Stages (each timed and printed):

1. ``dataset``: build or reuse the built-in dataset;
2. ``encode``: encode both modalities of the pair through the LSM with the chosen device,
   the reservoir gain calibrated on validation (``nodes.projection.calibrate``; cached);
3. ``train``: train both projection heads on the seen digits (1-7), epoch chosen on
   validation, saved as ``.npz``; build one prototype bank per query modality from the OTHER
   modality's training embeddings of digits 1-9, so the unseen 8 and 9 are labelled zero-shot;
4. ``stream``: write a graph (two ``builtin_replay`` sources of held-out test samples, two
   ``lsm``, two ``projection``, one ``crossmodal_classifier``, a ``jsonl_sink``) and run it
   as separate processes with live telemetry (accuracy, latency, energy);
5. ``report``: HTML + PNG figures + the data of every figure (``launch.report``).

Torch is used only in this process (training); node processes never import it.  Ctrl-C at
any point stops every process and still writes a report of what there is.
"""
from __future__ import annotations

import json
import math
import tempfile
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

PAIRS = {"audio-visual": ("audio", "visual"), "neural-visual": ("neural", "visual")}
ENERGY_PROFILES = ["rram_macro", "digital_45nm_event", "digital_45nm_dense", "loihi"]
CLASSES = tuple(range(1, 10))


@dataclass
class DemoConfig:
    """Everything the demo does; defaults are ``rram-lsm demo`` with no options."""

    pair: str = "audio-visual"
    size: str = "full"
    samples: int = 60                 # held-out test samples per modality
    speed: float | None = 1.0         # real-time factor of the replay (None = as fast as possible)
    device: str = "rram"
    out: Path | None = None
    data_seed: int = 0
    reservoir_seed: int = 0
    seed: int = 0                     # head training + sample choice
    epochs: int = 30                  # paper: 100; validation picks an early epoch anyway
    pd: int = 64
    loss: str = "paper"               # head loss and temperature (EvalConfig's)
    temperature: float = 1.0
    windows: int = 1                  # rate windows per sample in the LSM features (EvalConfig's)
    seen: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7)
    unseen: tuple[int, ...] = (8, 9)
    gain_factors: tuple[float, ...] = (0.5, 1.0, 2.0)
    stream_budget_s: float = 75.0     # the replay is sped up to fit this (and says so)
    sweep_splits: int = 3             # reduced split sweep when no cached full eval exists
    sweep_epochs: int = 30
    eval_results: Path | None = None  # a results.json of `rram-lsm eval` (default: results/)
    dashboard: bool = True
    metrics_port: int | None = None
    energy_profiles: list[str] = field(default_factory=lambda: list(ENERGY_PROFILES))
    raster_samples: int = 3

    def check(self) -> None:
        if self.pair not in PAIRS:
            raise ValueError(f"--pair must be one of {sorted(PAIRS)}, got {self.pair!r}")
        if self.size not in ("full", "tiny"):
            raise ValueError(f"--size must be full or tiny, got {self.size!r}")
        if self.device not in ("rram", "ideal"):
            raise ValueError(f"--device must be rram or ideal, got {self.device!r}")
        if self.samples <= 0:
            raise ValueError(f"--samples must be > 0, got {self.samples}")
        if self.speed is not None and not (self.speed > 0 and math.isfinite(self.speed)):
            raise ValueError(f"--speed must be > 0 (or 0 for as fast as possible), got {self.speed}")
        if set(self.seen) & set(self.unseen):
            raise ValueError(f"seen {self.seen} and unseen {self.unseen} overlap")
        if self.epochs <= 0 or self.pd <= 0:
            raise ValueError("epochs and pd must be positive")
        from rram_lsm.launch.commands.eval import check_loss, check_windows
        check_loss(self.loss, self.temperature)
        check_windows(self.windows)


class Stages:
    """Times each stage, prints it, and keeps the record for the report."""

    def __init__(self, log: Callable[[str], None]):
        self.log, self.times, self.started = log, {}, time.perf_counter()

    @contextmanager
    def stage(self, name: str, what: str):
        self.log(f"[{name}] {what} ...")
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.times[name] = round(time.perf_counter() - t0, 2)
            self.log(f"[{name}] done in {self.times[name]:.1f} s")

    def total(self) -> float:
        return round(time.perf_counter() - self.started, 2)


# ----------------------------------------------------------------------------- preparation

@dataclass
class Prepared:
    """What the graph and the report need from the offline stages."""

    heads_path: Path
    banks: dict[str, str]                 # query modality -> bank file (other modality's refs)
    consts: dict[str, float]
    train_summary: dict
    selected_epoch: int
    similarity: dict                      # cross-modal class-prototype cosine matrix (test)
    rasters: list[dict]                   # input events + reservoir spikes of a few samples
    sweep: dict
    durations_us: dict[str, float]        # sum of replayed sample durations per modality


def prepare(cfg: DemoConfig, run_dir: Path, stages: Stages, log: Callable[[str], None]) -> Prepared:
    """Dataset, encoding, training and banks: everything before the graph starts."""
    from rram_lsm.nodes.projection.experiments import EvalConfig, FeatureStore
    from rram_lsm.nodes.sources.builtin import load_builtin

    a_name, b_name = PAIRS[cfg.pair]
    with stages.stage("dataset", f"built-in dataset ({cfg.size}, seed {cfg.data_seed})"):
        load_builtin(cfg.size, cfg.data_seed, progress=True)
    ecfg = EvalConfig(size=cfg.size, data_seed=cfg.data_seed, reservoir_seed=cfg.reservoir_seed,
                      devices=(cfg.device,), pd=cfg.pd, epochs=cfg.epochs,
                      train_seeds=(cfg.seed,), gain_factors=tuple(cfg.gain_factors),
                      sweep_splits=cfg.sweep_splits, sweep_seeds=(cfg.seed,), windows=cfg.windows)
    with stages.stage("encode", f"LSM encoding of {a_name} and {b_name} ({cfg.device}, gain "
                                f"calibrated on validation, cached)"):
        store = FeatureStore(ecfg, log=lambda s: log("  " + s.strip()))
        feats = {m: _calibrated_features(cfg, store, m, log) for m in (a_name, b_name)}
        consts = {m: float(feats[m].config["const"]) for m in (a_name, b_name)}
        fa, fb = feats[a_name], feats[b_name]
        if a_name == "neural":
            fb = fb.select(half=0)  # neural trials are written from half B (pair_data's rule)
        a, b = fa.modality_data(), fb.modality_data()
    cached = _cached_model(cfg, consts, a, b)
    if cached is not None:
        with stages.stage("train", f"trained heads and banks from the cache ({cached})"):
            heads_path, banks, summary, epoch, heads, sweep = _load_model(cached, run_dir)
    else:
        with stages.stage("train", f"projection heads on seen digits {list(cfg.seen)} "
                                   f"({cfg.epochs} epochs, {cfg.loss} loss at T={cfg.temperature:g}, "
                                   + (f"rates in {cfg.windows} windows, " if cfg.windows > 1 else "")
                                   + "epoch chosen on validation)"):
            heads_path, banks, summary, epoch, heads = _train(cfg, a, b, run_dir, log)
        with stages.stage("sweep", "split-sweep result"):
            sweep = _sweep(cfg, a, b, log)
        _store_model(cfg, consts, a, b, run_dir, summary, epoch, sweep)
    ds = store.dataset
    similarity = _similarity(heads, a, b)
    rasters = _rasters(cfg, ds, consts)
    durations = {m: _replay_duration_us(cfg, ds, m) for m in (a_name, b_name)}
    return Prepared(heads_path, banks, consts, summary, epoch, similarity, rasters, sweep, durations)


def _calibrated_features(cfg: DemoConfig, store, modality: str, log):
    """Features at the validation-calibrated gain; the chosen gain is remembered in the cache
    so a second demo reads the cached features directly instead of re-running the probes."""
    from rram_lsm.nodes.lsm.features import DEFAULT_PRESETS, FEATURES_FORMAT, builtin_source, encode_modality
    from rram_lsm.stream.cache import cache_dir, cache_key

    key = cache_key(kind="demo-gain", features=FEATURES_FORMAT, size=cfg.size,
                    data_seed=cfg.data_seed, modality=modality,
                    device=cfg.device, reservoir_seed=cfg.reservoir_seed,
                    factors=list(cfg.gain_factors), overrides=store.overrides(modality))
    path = cache_dir("demo") / f"gain-{key}.json"
    if path.exists():
        const = float(json.loads(path.read_text())["const"])
        ms = store.dataset.modality(modality)
        fs = encode_modality(ms, DEFAULT_PRESETS[modality], cfg.device, cfg.reservoir_seed,
                             overrides={**store.overrides(modality), "const": const},
                             source=builtin_source(cfg.size, cfg.data_seed, modality),
                             windows=cfg.windows)
        log(f"  gain {modality}/{cfg.device}: const {const:.4g} (chosen on validation earlier; "
            f"features {'cached' if fs.cached else 'encoded'})")
        return fs
    cal = store.calibration(modality, cfg.device)
    path.write_text(json.dumps({"const": cal.const, "calibration": cal.as_dict()}))
    return store.features(modality, cfg.device)   # with the config's windows


MODEL_FILES = ("heads.npz", "bank_for_{a}.npz", "bank_for_{b}.npz", "model.json")


def _model_key(cfg: DemoConfig, consts: dict, a, b) -> str:
    """Everything that shaped the heads, banks and sweep: config, gains and the features."""
    from rram_lsm.stream.cache import cache_key

    digest = {m.name: float(np.asarray(m.features, np.float64).sum()) for m in (a, b)}
    return cache_key(kind="demo-model", pair=cfg.pair, device=cfg.device, size=cfg.size,
                     data_seed=cfg.data_seed, reservoir_seed=cfg.reservoir_seed, seed=cfg.seed,
                     epochs=cfg.epochs, pd=cfg.pd, loss=[cfg.loss, cfg.temperature],
                     windows=cfg.windows,
                     seen=list(cfg.seen), unseen=list(cfg.unseen),
                     consts=consts, sweep=[cfg.sweep_splits, cfg.sweep_epochs],
                     eval_results=str(find_eval_results(cfg)), features=digest,
                     shapes={m.name: list(m.features.shape) for m in (a, b)})


def _cached_model(cfg: DemoConfig, consts: dict, a, b) -> Path | None:
    from rram_lsm.stream.cache import cache_dir

    folder = cache_dir("demo") / _model_key(cfg, consts, a, b)
    files = [folder / f.format(a=a.name, b=b.name) for f in MODEL_FILES]
    return folder if all(f.exists() for f in files) else None


def _store_model(cfg: DemoConfig, consts: dict, a, b, run_dir: Path, summary: dict, epoch: int,
                 sweep: dict) -> None:
    """Keep heads, banks, training summary and sweep, so a second demo skips training."""
    import shutil

    from rram_lsm.stream.cache import cache_dir

    model = run_dir / "model"
    (model / "model.json").write_text(json.dumps({"summary": summary, "selected_epoch": epoch,
                                                  "sweep": sweep}, default=_json_default))
    folder = cache_dir("demo") / _model_key(cfg, consts, a, b)
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(model, tmp)
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)


def _load_model(folder: Path, run_dir: Path):
    import shutil

    from rram_lsm.nodes.projection.heads import load_heads

    model = run_dir / "model"
    shutil.copytree(folder, model, dirs_exist_ok=True)
    meta = json.loads((model / "model.json").read_text())
    heads = load_heads(model / "heads.npz")
    banks = {p.stem.removeprefix("bank_for_"): str(p) for p in sorted(model.glob("bank_for_*.npz"))}
    return (model / "heads.npz", banks, meta["summary"], int(meta["selected_epoch"]), heads,
            meta["sweep"])


def _json_default(v):
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    return str(v)


def _train(cfg: DemoConfig, a, b, run_dir: Path, log):
    from rram_lsm.nodes.classifier.bank import PrototypeBank
    from rram_lsm.nodes.projection.experiments import EvalConfig, zero_shot
    from rram_lsm.nodes.projection.heads import save_heads

    ecfg = EvalConfig(size=cfg.size, pd=cfg.pd, epochs=cfg.epochs, train_seeds=(cfg.seed,),
                      loss=cfg.loss, temperature=cfg.temperature, windows=cfg.windows)
    z = zero_shot(a, b, ecfg, seeds=(cfg.seed,), seen=cfg.seen, unseen=cfg.unseen, keep_heads=True)
    result = z.pop("_results")[0]
    model = run_dir / "model"
    model.mkdir(parents=True, exist_ok=True)
    heads_path = save_heads(model / "heads.npz", result.heads,
                            {"pair": cfg.pair, "device": cfg.device, "seen": list(cfg.seen),
                             "unseen": list(cfg.unseen), "selected_epoch": result.selected_epoch,
                             "loss": cfg.loss, "temperature": cfg.temperature,
                             "windows": cfg.windows})
    banks = {}
    for query, ref in ((a, b), (b, a)):
        train = (ref.split == 0) & np.isin(ref.labels, CLASSES)
        emb = result.heads[ref.name].forward(ref.features[train])
        bank = PrototypeBank.from_embeddings(emb, ref.labels[train], modality=ref.name)
        banks[query.name] = str(bank.save(model / f"bank_for_{query.name}.npz"))
    s = z["summary"]
    log(f"  selected epoch {result.selected_epoch} (validation); offline retrieval (paper's "
        f"metric, test): seen {s['seen_a_to_b']['mean']:.1%} (chance {s['seen_chance']:.1%}), "
        f"unseen {s['unseen_a_to_b']['mean']:.1%} (chance {s['unseen_chance']:.1%})")
    return heads_path, banks, s, int(result.selected_epoch), result.heads


def find_eval_results(cfg: DemoConfig) -> Path | None:
    """A cached ``rram-lsm eval`` results.json on the same dataset size, loss and features,
    if one exists."""
    cands = [cfg.eval_results] if cfg.eval_results else [Path("results") / "results.json"]
    for p in cands:
        if p and Path(p).exists():
            try:
                res = json.loads(Path(p).read_text())
            except (OSError, json.JSONDecodeError):
                continue
            rc = res.get("config", {})
            same = (rc.get("size"), rc.get("loss", "paper"), rc.get("temperature", 1.0),
                    rc.get("windows", 1)) == (cfg.size, cfg.loss, cfg.temperature, cfg.windows)
            if same and cfg.pair in res.get("sweep", {}):
                return Path(p)
    return None


def _sweep(cfg: DemoConfig, a, b, log) -> dict:
    """The split sweep from a cached full eval run, or a reduced one run here (labelled)."""
    path = find_eval_results(cfg)
    if path is not None:
        sw = json.loads(path.read_text())["sweep"][cfg.pair]
        log(f"  split sweep from the cached eval run {path}")
        return {"source": f"cached `rram-lsm eval` run ({path})", "reduced": False, **sw}
    if cfg.sweep_splits < 2:
        return {"source": "not run (sweep_splits < 2)", "reduced": True}
    from rram_lsm.nodes.projection.experiments import EvalConfig, split_sweep

    ecfg = EvalConfig(size=cfg.size, pd=cfg.pd, epochs=cfg.sweep_epochs, loss=cfg.loss,
                      temperature=cfg.temperature, sweep_splits=cfg.sweep_splits,
                      sweep_seeds=(cfg.seed,), windows=cfg.windows)
    sw = split_sweep(a, b, ecfg)
    log(f"  reduced split sweep: {len(sw['splits'])} splits x 1 seed, {cfg.sweep_epochs} epochs "
        f"({sw['seconds']:.0f} s); unseen {sw['summary']['unseen_a_to_b']['mean']:.1%}")
    return {"source": f"REDUCED sweep run by the demo ({len(sw['splits'])} splits x 1 seed, "
                      f"{cfg.sweep_epochs} epochs); run `rram-lsm eval` for the full one",
            "reduced": True, **sw}


def _similarity(heads, a, b) -> dict:
    """Cosine similarity of test-set class prototypes across modalities (digits 1-9)."""
    from rram_lsm.nodes.classifier.metrics import class_prototypes

    out = {}
    protos = {}
    for m in (a, b):
        test = (m.split == 2) & np.isin(m.labels, CLASSES)
        emb = heads[m.name].forward(m.features[test])
        p = class_prototypes(emb, m.labels[test], CLASSES)
        protos[m.name] = p / np.maximum(np.linalg.norm(p, axis=1, keepdims=True), 1e-12)
    out["rows"] = a.name
    out["cols"] = b.name
    out["classes"] = list(CLASSES)
    out["matrix"] = (protos[a.name] @ protos[b.name].T).round(6).tolist()
    return out


def source_params(cfg: DemoConfig, modality: str) -> dict:
    """The ``builtin_replay`` params of one modality (visual half A in neural-visual)."""
    p = {"size": cfg.size, "seed": cfg.data_seed, "modality": modality, "split": "test",
         "classes": list(CLASSES), "n_samples": cfg.samples, "pick_seed": cfg.seed}
    if cfg.pair == "neural-visual" and modality == "visual":
        p["half"] = 0
    return p


def chosen_samples(cfg: DemoConfig, ds, modality: str):
    from rram_lsm.nodes.sources.builtin_source import pick_samples
    ms = ds.modality(modality)
    p = source_params(cfg, modality)
    return ms, pick_samples(ms.labels, ms.split, 2, p["classes"], p["n_samples"], p["pick_seed"],
                            ms.half, p.get("half"))


def _replay_duration_us(cfg: DemoConfig, ds, modality: str) -> float:
    ms, idx = chosen_samples(cfg, ds, modality)
    return float(sum(int(ms.events[i]["t"][-1] - ms.events[i]["t"][0]) for i in idx
                     if len(ms.events[i])))


def _rasters(cfg: DemoConfig, ds, consts: dict) -> list[dict]:
    """Input events and reservoir spikes of the first few replayed samples per modality."""
    from rram_lsm.nodes.lsm.binning import bin_events
    from rram_lsm.nodes.lsm.features import DEFAULT_PRESETS, addresses, resolve_config
    from rram_lsm.nodes.lsm.reservoir import LifReservoir

    out = []
    for m in PAIRS[cfg.pair]:
        ms, idx = chosen_samples(cfg, ds, m)
        config = resolve_config(ms, DEFAULT_PRESETS[m], {"const": consts[m]}, cfg.reservoir_seed)
        res = LifReservoir(config, cfg.device)
        sub = ms.select()
        sub.events = [ms.events[i] for i in idx[:cfg.raster_samples]]
        for k, (t, addr) in enumerate(addresses(sub, config)):
            width = 1000 if config.binning == "chunk_pad" else (
                config.bin_width_us if config.binning == "fixed_width" else None)
            n_bins = config.n_bins if config.binning != "fixed_width" else None
            bp, ix = bin_events(t, addr, config.n_inputs, mode=config.binning, n_bins=n_bins,
                                width_us=width)
            res.reset()
            run = res.run(bp, ix, record=True)
            sp = np.argwhere(np.asarray(run.spikes) > 0)
            out.append({"modality": m, "sample": k, "label": int(ms.labels[idx[k]]),
                        "events_t_us": (t - (t[0] if len(t) else 0)).tolist(),
                        "events_addr": addr.tolist(), "spike_bin": sp[:, 0].tolist(),
                        "spike_neuron": sp[:, 1].tolist(), "n_bins": int(run.n_bins),
                        "n_inputs": int(config.n_inputs), "n_neurons": int(config.n_neurons)})
    return out


# ----------------------------------------------------------------------------- the graph

def pacing(cfg: DemoConfig, durations_us: dict[str, float]) -> tuple[float | None, str]:
    """The replay speed and a sentence saying why (real time unless it would not fit)."""
    if cfg.speed is None:
        return None, "as fast as possible (--speed 0)"
    longest = max(durations_us.values()) / 1e6
    if longest / cfg.speed <= cfg.stream_budget_s:
        return cfg.speed, (f"{cfg.speed:g}x real time ({longest:.0f} s of recorded events per "
                           f"modality take {longest / cfg.speed:.0f} s)")
    speed = longest / cfg.stream_budget_s
    return speed, (f"{speed:.2f}x real time, FASTER than the requested {cfg.speed:g}x: "
                   f"{longest:.0f} s of recorded events would not fit the "
                   f"{cfg.stream_budget_s:.0f} s streaming budget")


def _toml(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{json.dumps(str(k))} = {_toml(x)}" for k, x in v.items()
                                if x is not None) + " }"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


SourceChain = list[tuple[str, str, dict]]  # (node name, kind, params), first one is the source


def replay_chain(cfg: DemoConfig, modality: str, speed: float | None) -> SourceChain:
    """The demo's source of one modality: held-out built-in test samples, paced."""
    params = {**source_params(cfg, modality), "speed": speed if speed is not None else 0,
              "max_events": 512}
    return [(f"src_{modality}", "builtin_replay", params)]


def graph_text(cfg: DemoConfig, prep: Prepared, run_dir: Path, speed: float | None,
               chains: dict[str, SourceChain] | None = None, name: str | None = None) -> str:
    """The demo graph as TOML (written into the run folder, runnable with `rram-lsm run`).

    ``chains`` replaces a modality's replay source with other nodes (``rram-lsm live``: a
    live source and a segmenter); each chain's last node feeds that modality's LSM.
    """
    from rram_lsm.nodes.lsm.features import DEFAULT_PRESETS

    lines = [f"# Written by `rram-lsm {'live' if chains else 'demo'}`; run it again with "
             f"`rram-lsm run` on this file.",
             "[graph]", f'name = "{name or "demo-" + cfg.pair}"', 'transport = "ipc"',
             f"energy_profiles = {_toml(cfg.energy_profiles)}", ""]
    edges = []
    for m in PAIRS[cfg.pair]:
        chain = (chains or {}).get(m) or replay_chain(cfg, m, speed)
        lsm = {"preset": DEFAULT_PRESETS[m], "device": cfg.device, "windows": cfg.windows,
               "overrides": {"const": prep.consts[m], "seed": cfg.reservoir_seed}}
        proj = {"weights": str(prep.heads_path), "modality": m}
        nodes = chain + [(f"lsm_{m}", "lsm", lsm), (f"proj_{m}", "projection", proj)]
        for node, kind, params in nodes:
            lines += [f"[nodes.{node}]", f'kind = "{kind}"', f"params = {_toml(params)}", ""]
        names = [n for n, _, _ in nodes] + ["classifier"]
        edges += list(zip(names[:-1], names[1:]))
    cls = {"banks": prep.banks, "topk": 3, "seen": list(cfg.seen), "unseen": list(cfg.unseen)}
    lines += ["[nodes.classifier]", 'kind = "crossmodal_classifier"', f"params = {_toml(cls)}", "",
              "[nodes.sink]", 'kind = "jsonl_sink"',
              f"params = {_toml({'path': str(run_dir / 'predictions.jsonl')})}", ""]
    edges.append(("classifier", "sink"))
    for a, b in edges:
        policy = "drop" if chains and a in {n for c in chains.values() for n, _, _ in c[:1]} else "block"
        lines += ["[[edges]]", f'from = "{a}"', f'to = "{b}"', f'policy = "{policy}"', ""]
    return "\n".join(lines)


def stream(cfg: DemoConfig, graph_path: Path, run_dir: Path, log, timeout_s: float) -> tuple[int, dict]:
    """Run the graph with the live dashboard (or plain progress lines); return (code, latest)."""
    from rich.console import Console
    from rich.live import Live

    from .dashboard import Dashboard
    from .graph import load_graph
    from .metrics import start_metrics
    from .supervisor import Launcher

    socket_dir = Path(tempfile.mkdtemp(prefix="rram-demo-"))
    graph = load_graph(graph_path, None, socket_dir)
    dash = Dashboard()
    dash.seen, dash.unseen = tuple(cfg.seen), tuple(cfg.unseen)
    metrics = start_metrics(cfg.metrics_port, log) if cfg.metrics_port else None
    console = Console(stderr=True)
    if not console.is_terminal:
        console = Console(stderr=True, width=200)
    live_table = cfg.dashboard and console.is_terminal
    last_line = [0.0]

    def on_report(r: dict) -> None:
        dash.update(r)
        if metrics is not None:
            metrics.update(r)
        if not live_table and time.monotonic() - last_line[0] > 10:
            last_line[0] = time.monotonic()
            from .dashboard import summary_lines
            for line in summary_lines(dash.latest, cfg.seen, cfg.unseen):
                log("  live: " + line)

    def on_event(ev: dict) -> None:
        dash.on_event(ev)
        if not live_table and ev["event"] not in ("started", "exited"):
            log(f"  launcher: {dash.events[-1] if dash.events else ev}")

    launcher = Launcher(graph, run_dir, socket_dir, log_nodes=True, on_report=on_report,
                        on_event=on_event)
    title = f"rram-lsm demo: {cfg.pair} ({cfg.device})"
    if live_table:
        with Live(dash.table(title), console=console, refresh_per_second=2) as live:
            launcher.on_report = lambda r: (on_report(r), live.update(dash.table(title)))
            code = launcher.run(timeout_s)
    else:
        code = launcher.run(timeout_s)
    if metrics is not None:
        metrics.update_many(launcher.latest.values())
    console.print(dash.table(f"{title} (final)"))
    if launcher.stop_requested and code == 0:
        code = 130  # stopped by Ctrl-C (or the time limit) before the sources finished
    return code, dict(launcher.latest)


# ----------------------------------------------------------------------------- entry point

def run_demo(cfg: DemoConfig, log: Callable[[str], None] = print) -> tuple[int, Path]:
    """Run the whole demo; returns (exit code, report path).  Ctrl-C -> partial report, 130."""
    from .report import write_report

    cfg.check()
    run_dir = Path(cfg.out or Path("runs") / f"demo-{cfg.pair}-{time.strftime('%Y%m%d-%H%M%S')}")
    run_dir.mkdir(parents=True, exist_ok=True)
    stages = Stages(log)
    info: dict[str, Any] = {"config": {k: (str(v) if isinstance(v, Path) else v)
                                       for k, v in asdict(cfg).items()},
                            "stage_seconds": stages.times, "interrupted": False,
                            "sources": {f"src_{m}": m for m in PAIRS[cfg.pair]}}
    prep: Prepared | None = None
    code = 0
    try:
        prep = prepare(cfg, run_dir, stages, log)
        speed, why = pacing(cfg, prep.durations_us)
        log(f"[stream] pacing: {why}")
        info.update(pacing=why, speed=speed, consts=prep.consts, selected_epoch=prep.selected_epoch,
                    train_summary=prep.train_summary, sweep=prep.sweep, banks=prep.banks)
        graph_path = run_dir / "graph.toml"
        graph_path.write_text(graph_text(cfg, prep, run_dir, speed))
        longest = max(prep.durations_us.values()) / 1e6
        timeout = (longest / speed if speed else 0) + 120 + 2 * cfg.samples
        with stages.stage("stream", f"{cfg.samples} test samples per modality through "
                                    f"{len(PAIRS[cfg.pair]) * 3 + 2} processes"):
            code, _ = stream(cfg, graph_path, run_dir, log, timeout)
        info["stream_exit_code"] = code
        if code == 130:
            info["interrupted"] = True
    except KeyboardInterrupt:
        info["interrupted"] = True
        log("interrupted: writing the report of what there is")
        code = 130
    try:
        with stages.stage("report", "HTML report and figures"):
            info["stage_seconds"] = stages.times
            info["total_seconds"] = stages.total()
            path = write_report(run_dir, info, prep)
    except KeyboardInterrupt:
        path = run_dir / "report.html"
        code = 130
    log(f"report: {path.resolve()}")
    if info.get("interrupted"):
        code = 130
    return code, path
