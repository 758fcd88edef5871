"""The demo: built-in data -> encode -> train -> the full multi-process graph, live -> report.

By default two pairs run at once from three sources: audio<->visual (the paper's
association) and neural<->visual (modalities that share structure), the visual source and
encoder shared.  ``--pair`` runs one pair alone.  Stages (each timed and printed):

1. ``dataset``: build or reuse the built-in dataset;
2. ``encode``: encode every modality through the LSM with the chosen device, the reservoir
   gain calibrated on validation (cached);
3. ``train``: per pair, both projection heads on the seen digits (1-7), epoch chosen on
   validation, saved as ``.npz``; one prototype bank per query modality from the OTHER
   modality's training embeddings of digits 1-9, so the unseen 8 and 9 are labelled zero-shot,
   with the calibrated-stacking constant chosen on pseudo-unseen validation folds
   (1-3 are ``experiments.demo_model``);
4. ``stream``: fill in the [args] of ``launch/graphs/demo.toml`` (three ``builtin_replay``
   sources, three ``lsm``, a ``projection`` per modality of each pair, a
   ``crossmodal_classifier`` and a ``jsonl_sink`` per pair; ``demo_pair.toml`` for one pair)
   and run it as separate processes with live telemetry (accuracy per pair, latency, energy);
5. ``report``: HTML + PNG figures + the data of every figure (``launch.report``).

Torch is used only in this process (training); node processes never import it.  Ctrl-C at
any point stops every process and still writes a report of what there is.
"""
from __future__ import annotations

import dataclasses
import json
import math
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from rram_lsm.experiments.demo_model import (DemoModel, ModelConfig, prepare_model, rasters,
                                             replay_duration_us, replay_params)
from rram_lsm.experiments.features import DEFAULT_PRESETS

from .graph import load_graph
from .report import write_report

ENERGY_PROFILES = ["rram_macro", "digital_45nm_event", "digital_45nm_dense", "loihi"]
GRAPHS = Path(__file__).resolve().parent / "graphs"
BOTH = ("audio-visual", "neural-visual")       # the default demo's pairs (demo.toml)
SHORT = {"audio-visual": "av", "neural-visual": "nv"}   # their node and argument suffixes
SHARED_STRUCTURE = ("neural-visual",)          # pairs whose unseen classes can transfer


@dataclass
class DemoConfig:
    """Everything the demo does; defaults are ``rram-lsm demo`` with no options."""

    model: ModelConfig = field(default_factory=ModelConfig)   # one pair's, or every pair's template
    samples: int = 162                # held-out test samples per modality
    speed: float | None = 1.0         # real-time factor of the replay (None = as fast as possible)
    out: Path | None = None
    stream_budget_s: float = 90.0     # the replay is sped up to fit this (and says so)
    pairs: tuple[str, ...] | None = None   # BOTH: the three-source graph; None: model.pair alone
    dashboard: bool = True
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"   # off loopback only with allow_remote
    web: int | None = None            # --web PORT: the live web dashboard (launch.web)
    web_host: str = "127.0.0.1"
    allow_remote: bool = False
    energy_profiles: list[str] = field(default_factory=lambda: list(ENERGY_PROFILES))
    raster_samples: int = 3

    def check(self) -> None:
        self.model.check()
        if self.pairs is not None and sorted(self.pairs) != sorted(BOTH):
            raise ValueError(f"pairs: the three-source demo runs {list(BOTH)} together "
                             f"(--pair runs one alone), got {list(self.pairs)}")
        if self.samples <= 0:
            raise ValueError(f"--samples must be > 0, got {self.samples}")
        if self.speed is not None and not (self.speed > 0 and math.isfinite(self.speed)):
            raise ValueError(f"--speed must be > 0 (or 0 for as fast as possible), got {self.speed}")
        if self.metrics_port is not None:  # before anything is trained
            from .metrics import check_metrics_bind
            check_metrics_bind(self.metrics_port, self.metrics_host, self.allow_remote)
        from .web import check_web
        check_web(self.web, self.web_host, self.allow_remote)  # before minutes of training

    @property
    def pair_names(self) -> tuple[str, ...]:
        return tuple(self.pairs) if self.pairs else (self.model.pair,)

    @property
    def label(self) -> str:
        return " + ".join(self.pair_names)

    def models(self) -> list[ModelConfig]:
        """One ``ModelConfig`` per pair (the three-source demo replays visual half A to both)."""
        if not self.pairs:
            return [self.model]
        return [dataclasses.replace(self.model, pair=p, visual_half=0) for p in self.pairs]

    @property
    def modalities(self) -> tuple[str, ...]:
        """Every modality streamed, each once, in pair order."""
        return tuple(dict.fromkeys(m for mc in self.models() for m in mc.modalities))

    def as_dict(self) -> dict:
        """The flat record the report and summary.json carry."""
        m, e = self.model, self.model.experiment
        return {"pair": self.label, "pairs": list(self.pair_names), "size": e.size, "samples": self.samples, "speed": self.speed,
                "device": m.device, "out": str(self.out) if self.out else None,
                "data_seed": e.data_seed, "reservoir_seed": e.reservoir_seed,
                "seed": e.heads.seed, "epochs": e.heads.epochs, "pd": e.heads.pd,
                "loss": e.heads.loss, "temperature": e.heads.temperature, "windows": e.windows,
                "seen": list(e.heads.seen), "unseen": list(e.heads.unseen),
                "gain_factors": list(e.gain_factors), "stream_budget_s": self.stream_budget_s,
                "sweep_splits": m.sweep_splits, "sweep_epochs": m.sweep_epochs,
                "eval_results": str(m.eval_results) if m.eval_results else None,
                "dashboard": self.dashboard, "metrics_port": self.metrics_port,
                "metrics_host": self.metrics_host, "web": self.web,
                "energy_profiles": list(self.energy_profiles),
                "raster_samples": self.raster_samples}


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
            took = time.perf_counter() - t0    # a stage run once per pair adds up
            self.times[name] = round(self.times.get(name, 0.0) + took, 2)
            self.log(f"[{name}] done in {took:.1f} s")

    def total(self) -> float:
        return round(time.perf_counter() - self.started, 2)


# ----------------------------------------------------------------------------- preparation

@dataclass
class Prepared:
    """What the graph and the report need from the offline stages."""

    model: DemoModel                      # the first pair's (the only one with --pair)
    rasters: list[dict]                   # input events + reservoir spikes of a few samples
    durations_us: dict[str, float]        # sum of replayed sample durations per modality
    models: dict[str, DemoModel] = field(default_factory=dict)   # pair -> its model


def model_dir(cfg: DemoConfig, run_dir: Path, pair: str) -> Path:
    """Where a pair's heads and banks go: ``model/`` alone, ``model-PAIR/`` beside others."""
    return run_dir / ("model" if not cfg.pairs else f"model-{pair}")


def prepare(cfg: DemoConfig, run_dir: Path, stages: Stages, log: Callable[[str], None]) -> Prepared:
    """Every pair's model (``experiments.demo_model``; one dataset and feature store shared)
    and the report's rasters."""
    from rram_lsm.experiments.store import FeatureStore
    from rram_lsm.nodes.sources.builtin import load_builtin

    exp = cfg.model.experiment
    with stages.stage("dataset", f"built-in dataset ({exp.size}, seed {exp.data_seed})"):
        load_builtin(exp.size, exp.data_seed, progress=True)
    store = FeatureStore(exp, log=lambda s: log("  " + s.strip()))
    models, raster, durations = {}, [], {}
    for mc in cfg.models():
        m = prepare_model(mc, model_dir(cfg, run_dir, mc.pair), stages.stage, log, store)
        models[mc.pair] = m
        new = [x for x in mc.modalities if x not in durations]
        raster += [r for r in rasters(mc, m.dataset, m.consts, cfg.samples, cfg.raster_samples)
                   if r["modality"] in new]
        durations.update({x: replay_duration_us(mc, m.dataset, x, cfg.samples) for x in new})
    return Prepared(next(iter(models.values())), raster, durations, models)


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


def graph_args(cfg: DemoConfig, prep: Prepared, run_dir: Path, name: str) -> dict[str, Any]:
    """The [args] of ``launch/graphs/zero_shot.toml`` (and so of demo.toml and live.toml)
    for this run's model."""
    m, e = cfg.models()[0], cfg.model.experiment
    query, _ = m.modalities
    return {"name": name, "query": query, "query_preset": DEFAULT_PRESETS[query],
            "device": m.device, "windows": e.windows, "reservoir_seed": e.reservoir_seed,
            "query_const": prep.model.consts[query], "visual_const": prep.model.consts["visual"],
            "heads": str(prep.model.heads_path), "banks": dict(prep.model.banks),
            "seen": list(e.heads.seen), "unseen": list(e.heads.unseen),
            "out": str(run_dir / "predictions.jsonl")}


def replay_source(cfg: DemoConfig, modality: str, speed: float | None) -> dict:
    """The ``builtin_replay`` params of one modality: held-out built-in test samples, paced."""
    return {**replay_params(cfg.models()[0], modality, cfg.samples),
            "speed": speed if speed is not None else 0, "max_events": 512}


def pair_demo_args(cfg: DemoConfig, prep: Prepared, run_dir: Path, speed: float | None) -> dict:
    """The [args] of ``launch/graphs/demo_pair.toml`` (one pair) for this run."""
    query, _ = cfg.model.modalities
    return {**graph_args(cfg, prep, run_dir, f"demo-{cfg.model.pair}"),
            "query_source": replay_source(cfg, query, speed),
            "visual_source": replay_source(cfg, "visual", speed)}


def three_source_args(cfg: DemoConfig, prep: Prepared, run_dir: Path,
                      speed: float | None) -> dict:
    """The [args] of ``launch/graphs/demo.toml`` (both pairs, three sources) for this run."""
    e = cfg.model.experiment
    consts: dict[str, float] = {}
    for pair, m in prep.models.items():
        for mod, c in m.consts.items():
            if consts.setdefault(mod, c) != c:   # one encoder per modality serves both pairs
                raise ValueError(f"{mod}: reservoir gain {c} for {pair}, {consts[mod]} before")
    args = {"name": "demo", "device": cfg.model.device, "windows": e.windows,
            "reservoir_seed": e.reservoir_seed, "seen": list(e.heads.seen),
            "unseen": list(e.heads.unseen)}
    args.update({f"{mod}_const": c for mod, c in consts.items()})
    args.update({f"{mod}_source": replay_source(cfg, mod, speed) for mod in cfg.modalities})
    for pair, m in prep.models.items():
        k = SHORT[pair]
        args.update({f"heads_{k}": str(m.heads_path), f"banks_{k}": dict(m.banks),
                     f"out_{k}": str(run_dir / pair_runs(cfg)[pair]["predictions"])})
    return args


def pair_runs(cfg: DemoConfig) -> dict[str, dict]:
    """Per pair: its classifier node, its sink's file (in the run folder) and its sources
    (node -> modality), as the graph names them."""
    if not cfg.pairs:
        return {cfg.model.pair: {"classifier": "classifier", "predictions": "predictions.jsonl",
                                 "sources": {f"src_{m}": m for m in cfg.model.modalities}}}
    return {mc.pair: {"classifier": f"classifier_{SHORT[mc.pair]}",
                      "predictions": f"predictions-{mc.pair}.jsonl",
                      "sources": {f"src_{m}": m for m in mc.modalities}} for mc in cfg.models()}


def n_processes(cfg: DemoConfig) -> int:
    """Sources and lsm per modality, a projection per modality of each pair, a classifier
    and a sink per pair."""
    n = len(cfg.pair_names)
    return 2 * len(cfg.modalities) + 4 * n


def _literal(v, name: str) -> str:
    """A string, number, bool or list of them as a TOML literal (its JSON spelling)."""
    if v is None or isinstance(v, dict) or (isinstance(v, float) and not math.isfinite(v)):
        raise ValueError(f"graph argument {name}: {v!r} has no TOML literal here")
    return json.dumps(v)


def write_graph(template: Path, args: dict, path: Path) -> Path:
    """``path``: a graph file that includes ``template`` with ``args`` as its [args] (the
    run's record: ``rram-lsm run path`` runs the same graph again).  Only the args are
    written, as JSON literals (which TOML reads the same); tables go in as sub-tables."""
    lines = [f"# Written by rram-lsm: {template.name} with the args of this run.",
             f"include = [{json.dumps(str(template))}]", "", "[args]"]
    tables = {k: v for k, v in args.items() if isinstance(v, dict)}
    lines += [f"{k} = {_literal(v, k)}" for k, v in args.items() if k not in tables]
    for k, table in tables.items():
        lines += ["", f"[args.{k}]"] + [f"{json.dumps(str(n))} = {_literal(v, f'{k}.{n}')}"
                                        for n, v in table.items()]
    path.write_text("\n".join(lines) + "\n")
    load_graph(path, None, tempfile.gettempdir(), check_files=False)  # reads back as a graph
    return path


def stream(cfg: DemoConfig, template: Path, args: dict, run_dir: Path, log,
           timeout_s: float, classifiers: dict[str, str] | None = None) -> tuple[int, dict]:
    """Run the graph file ``template`` with ``args`` filled in (its overrides), with the live
    dashboard (or plain progress lines); return (code, latest).  ``classifiers``: classifier
    node -> the pair its live accuracy line is labelled with."""
    from rich.console import Console
    from rich.live import Live

    from .dashboard import Dashboard
    from .metrics import start_metrics
    from .supervisor import Launcher
    from .web import start_web

    socket_dir = Path(tempfile.mkdtemp(prefix="rram-demo-"))
    graph = load_graph(template, args, socket_dir)
    dash = Dashboard()
    heads = cfg.model.experiment.heads
    dash.seen, dash.unseen = tuple(heads.seen), tuple(heads.unseen)
    dash.classifiers = dict(classifiers or {})
    metrics = (start_metrics(cfg.metrics_port, log, cfg.metrics_host, cfg.allow_remote)
               if cfg.metrics_port else None)
    title = f"rram-lsm demo: {cfg.label} ({cfg.model.device})"
    web = start_web(dash, cfg.web, cfg.web_host, cfg.allow_remote, title, log)
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
            for line in summary_lines(dash.latest, heads.seen, heads.unseen, dash.classifiers):
                log("  live: " + line)

    def on_event(ev: dict) -> None:
        dash.on_event(ev)
        if metrics is not None:
            metrics.on_event(ev)
        if not live_table and ev["event"] not in ("started", "exited"):
            log(f"  launcher: {dash.events[-1] if dash.events else ev}")

    launcher = Launcher(graph, run_dir, socket_dir, log_nodes=True, on_report=on_report,
                        on_event=on_event)
    if live_table:
        with Live(dash.table(title), console=console, refresh_per_second=2) as live:
            launcher.on_report = lambda r: (on_report(r), live.update(dash.table(title)))
            code = launcher.run(timeout_s)
    else:
        code = launcher.run(timeout_s)
    if metrics is not None:
        metrics.update_many(launcher.latest.values())
    console.print(dash.table(f"{title} (final)"))
    if web is not None:
        web.close()
    if launcher.stop_requested and code == 0:
        code = 130  # stopped by Ctrl-C (or the time limit) before the sources finished
    return code, dict(launcher.latest)


# ----------------------------------------------------------------------------- entry point

def model_info(m: DemoModel) -> dict:
    """What the report says about one pair's offline stages (JSON-able)."""
    return {"consts": m.consts, "selected_epoch": m.selected_epoch,
            "train_summary": m.train_summary.to_json(), "sweep": m.sweep.to_json(),
            "banks": m.banks, "gzsl": m.gzsl}


def run_info(prep: Prepared) -> dict:
    """What the report says about the offline stages: the first pair's at the top level
    (as with one pair), every pair's under ``models``."""
    models = prep.models or {"": prep.model}
    return {**model_info(prep.model), "consts": {k: v for m in models.values()
                                                 for k, v in m.consts.items()},
            "models": {p: model_info(m) for p, m in models.items() if p}}


def gzsl_lines(gzsl: dict, pair: str = "") -> list[str]:
    """The offline generalised zero-shot figures of the demo's heads, per query modality:
    seen / unseen / H at gamma 0 and at the validation-chosen gamma the live banks use."""
    out = []
    for query, g in gzsl.items():
        u, c = g["uncalibrated"], g["calibrated"]
        out.append(f"offline GZSL {pair + ' ' if pair else ''}{query}->{g['bank']} (test, "
                   f"per-class mean, chance "
                   f"{g['chance']:.1%} each): gamma 0: seen {u['seen']:.1%} · unseen "
                   f"{u['unseen']:.1%} · H {u['h']:.1%}; gamma {g['gamma']:.3f} (validation): "
                   f"seen {c['seen']:.1%} · unseen {c['unseen']:.1%} · H {c['h']:.1%}; "
                   f"AUSUC {g['ausuc']:.3f} (chance {g['ausuc_chance']:.3f})")
    return out


def live_lines(run_dir: Path, cfg: DemoConfig, prep: Prepared | None = None) -> list[str]:
    """The live accuracy (each pair's sink records) of each pair and direction, and per pair
    whether its unseen accuracy clears chance (the lower end of its exact interval)."""
    from .accuracy import RunningAccuracy, from_records, read_records

    heads = cfg.model.experiment.heads
    lines = []
    for pair, run in pair_runs(cfg).items():
        records = read_records(run_dir / run["predictions"])
        acc = from_records(records, heads.seen, heads.unseen,
                           1 / len(set(heads.seen) | set(heads.unseen)), run["sources"])
        lines.append(f"live {pair} (calibrated): {acc.line()}")
        for m, pools in sorted(acc.by_modality.items()):
            one = RunningAccuracy(acc.seen, acc.unseen, acc.chance, pools)
            lines.append(f"live {pair} {m} queries: {one.line()}")
        model = (prep.models.get(pair) if prep and prep.models else prep.model if prep else None)
        lines.append(verdict(pair, acc, getattr(model, "sweep", None)))
        lines.append(within_unseen_line(records, heads.unseen))
    return lines


def within_unseen_line(records: list[dict], unseen) -> str:
    """Unseen trials split in two: how many the classifier sent to some unseen class (which
    calibration controls), and of those how many got the right one, against chance
    1/|unseen| inside the unseen pool (what only transfer between the modalities can beat)."""
    from .accuracy import clopper_pearson

    unseen = {int(c) for c in unseen}
    rows = [r for r in records if r.get("kind") == "prediction" and r.get("label") in unseen]
    pool = [r for r in rows if r.get("pred") in unseen]
    right = sum(r["pred"] == r["label"] for r in pool)
    ci = clopper_pearson(right, len(pool))
    if ci is None:
        return f"  unseen trials labelled with an unseen class: 0/{len(rows)}"
    return (f"  unseen trials labelled with an unseen class: {len(pool)}/{len(rows)}; of those, "
            f"the right one {right}/{len(pool)} = {right / len(pool):.1%} (exact 95% CI "
            f"{ci[0]:.1%}-{ci[1]:.1%}) vs chance {1 / len(unseen):.1%} inside the unseen pool")


def verdict(pair: str, acc, sweep=None) -> str:
    """Does the live unseen accuracy clear chance?  The lower end of its exact 95% interval
    against chance, H beside it; for a pair without shared structure, where to find the
    split sweep that says what its unseen figure means."""
    ci, n = acc.interval("unseen"), acc.pools["unseen"].n
    if ci is None or not acc.chance:
        return f"{pair}: no unseen-class trials streamed"
    h = f"H {acc.h:.1%}" if acc.h is not None else "H -"
    clears = "clears" if ci[0] > acc.chance else "does NOT clear"
    line = (f"{pair}: unseen exact 95% CI lower end {ci[0]:.1%} vs chance {acc.chance:.1%} "
            f"({n} unseen trials): {clears} chance; {h}")
    if pair in SHARED_STRUCTURE:
        return line
    sm = getattr(getattr(sweep, "unseen_a_to_b", None), "summary", None)
    where = (f"split sweep ({sweep.source}): unseen retrieval {sm.mean:.1%} [{sm.ci_low:.1%}, "
             f"{sm.ci_high:.1%}], chance {sm.chance:.1%}" if sm is not None else
             getattr(sweep, "source", "the split sweep: `rram-lsm eval --sweep full`"))
    return (line + f" -- the paper's association: spoken and written digits share no "
            f"structure, so nothing learnt on 1-7 need transfer to 8-9; {where}")


def run_demo(cfg: DemoConfig, log: Callable[[str], None] = print) -> tuple[int, Path]:
    """Run the whole demo; returns (exit code, report path).  Ctrl-C -> partial report, 130."""
    cfg.check()
    pair = cfg.model.pair
    run_dir = Path(cfg.out or Path("runs") / f"demo-{'both' if cfg.pairs else pair}-"
                                             f"{time.strftime('%Y%m%d-%H%M%S')}")
    run_dir.mkdir(parents=True, exist_ok=True)
    stages = Stages(log)
    runs = pair_runs(cfg)
    info: dict[str, Any] = {"config": cfg.as_dict(), "stage_seconds": stages.times,
                            "interrupted": False, "pairs": runs,
                            "sources": {s: m for r in runs.values() for s, m in r["sources"].items()}}
    prep: Prepared | None = None
    code = 0
    try:
        prep = prepare(cfg, run_dir, stages, log)
        speed, why = pacing(cfg, prep.durations_us)
        log(f"[stream] pacing: {why}")
        info.update(pacing=why, speed=speed, **run_info(prep))
        template = GRAPHS / ("demo.toml" if cfg.pairs else "demo_pair.toml")
        args = (three_source_args if cfg.pairs else pair_demo_args)(cfg, prep, run_dir, speed)
        write_graph(template, args, run_dir / "graph.toml")
        longest = max(prep.durations_us.values()) / 1e6
        timeout = (longest / speed if speed else 0) + 120 + 2 * cfg.samples
        with stages.stage("stream", f"{cfg.samples} test samples per modality "
                                    f"({', '.join(cfg.modalities)}) through "
                                    f"{n_processes(cfg)} processes"):
            code, _ = stream(cfg, template, args, run_dir, log, timeout,
                             {r["classifier"]: p for p, r in runs.items()})
        info["stream_exit_code"] = code
        for p, m in (prep.models or {pair: prep.model}).items():
            for line in gzsl_lines(m.gzsl, p if cfg.pairs else ""):
                log(line)
        for line in live_lines(run_dir, cfg, prep):
            log(line)
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
