"""Typed result records of the offline runs, and their JSON.

The Markdown, the demo and its report read these by attribute (``summary.unseen.a_to_b.mean``);
``to_json`` writes exactly the field names ``results.json`` has always had (``summary``'s
``"unseen_a_to_b": {"mean", "std", "values"}`` ...), so old and new outputs compare, and
``from_json`` reads them back (the demo's model cache, a cached ``rram-lsm eval`` run).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from .probe import ProbeResult
from .sweep import SweepSummary

POOLS = ("seen", "unseen")


@dataclass
class Stat:
    """Mean and sample standard deviation of a metric over runs, with every run's value."""

    mean: float
    std: float
    values: list[float]

    @classmethod
    def of(cls, values) -> "Stat":
        v = np.asarray(list(values), dtype=float)
        return cls(float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0, v.tolist())

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class PoolSummary:
    """One pool (seen or unseen) over runs: the paper's retrieval both ways and the nearest
    prototype both ways, each with its chance."""

    a_to_b: Stat
    b_to_a: Stat
    chance: float
    proto_a_to_b: Stat
    proto_b_to_a: Stat
    proto_chance: float


@dataclass
class AuthorsRuleSummary:
    """How many runs met the authors' test-set rule, and their mean accuracies."""

    met_runs: int
    runs: int
    seen: float | None
    unseen: float | None
    rule: str


@dataclass
class ZeroShotSummary:
    """Mean/std over seeds of the validation-selected test accuracies of a zero-shot run."""

    seen: PoolSummary
    unseen: PoolSummary
    authors_rule: AuthorsRuleSummary

    def pool(self, name: str) -> PoolSummary:
        return {"seen": self.seen, "unseen": self.unseen}[name]

    def to_json(self) -> dict:
        out: dict[str, Any] = {}
        for name in POOLS:
            p = self.pool(name)
            out[f"{name}_a_to_b"] = p.a_to_b.to_json()
            out[f"proto_{name}_a_to_b"] = p.proto_a_to_b.to_json()
            out[f"{name}_b_to_a"] = p.b_to_a.to_json()
            out[f"proto_{name}_b_to_a"] = p.proto_b_to_a.to_json()
            out[f"{name}_chance"] = p.chance
            out[f"proto_{name}_chance"] = p.proto_chance
        out["authors_rule"] = asdict(self.authors_rule)
        return out

    @classmethod
    def from_json(cls, d: dict) -> "ZeroShotSummary":
        def pool(n: str) -> PoolSummary:
            return PoolSummary(Stat(**d[f"{n}_a_to_b"]), Stat(**d[f"{n}_b_to_a"]), d[f"{n}_chance"],
                               Stat(**d[f"proto_{n}_a_to_b"]), Stat(**d[f"proto_{n}_b_to_a"]),
                               d[f"proto_{n}_chance"])
        return cls(pool("seen"), pool("unseen"), AuthorsRuleSummary(**d["authors_rule"]))


@dataclass
class ZeroShotRun:
    """One seed of a zero-shot run: its selected epoch, the authors' rule and both metrics
    (``eval`` as ``nodes.classifier.metrics.evaluate_embeddings`` reports them)."""

    seed: int
    selected_epoch: int
    authors_rule: dict
    eval: dict
    n_pairs: int
    train_macs: int


@dataclass
class ZeroShotResult:
    """Heads trained on one pair (one run per seed) and evaluated with both metrics;
    ``trained`` keeps the trainer's results (the heads) and is not written out."""

    pair: str
    seen: list[int]
    unseen: list[int]
    seconds_training: float
    runs: list[ZeroShotRun]
    summary: ZeroShotSummary
    trained: list = field(default_factory=list, repr=False)

    def to_json(self) -> dict:
        return {"pair": self.pair, "seen": list(self.seen), "unseen": list(self.unseen),
                "seconds_training": self.seconds_training,
                "runs": [asdict(r) for r in self.runs], "summary": self.summary.to_json()}


@dataclass
class GzslDirection:
    """Test-set GZSL of one direction (queries of ``query`` against a bank of ``bank``):
    seen, unseen and H at gamma 0 and at the validation-chosen ``gamma`` (per-class mean
    accuracies among all the bank's classes), AUSUC, and their chance levels."""

    query: str
    bank: str
    gamma: float
    validation: dict                 # the pseudo-unseen folds' mean h / seen / unseen at gamma
    uncalibrated: Any                # nodes.classifier.gzsl.GzslScore at gamma 0
    calibrated: Any                  # ... at the chosen gamma
    ausuc: float
    chance: float                    # seen, unseen and H: 1 / number of classes
    ausuc_chance: float              # 1 / (2 |seen| |unseen|)
    n_seen: int
    n_unseen: int

    def to_json(self) -> dict:
        return {**asdict(self), "uncalibrated": self.uncalibrated.as_dict(),
                "calibrated": self.calibrated.as_dict()}


@dataclass
class GzslRun:
    """One training seed: its pseudo-unseen folds and both directions."""

    seed: int
    pseudo_unseen: list[list[int]]
    a_to_b: GzslDirection
    b_to_a: GzslDirection

    def direction(self, name: str) -> GzslDirection:
        return {"a_to_b": self.a_to_b, "b_to_a": self.b_to_a}[name]

    def to_json(self) -> dict:
        return {"seed": self.seed, "pseudo_unseen": self.pseudo_unseen,
                "a_to_b": self.a_to_b.to_json(), "b_to_a": self.b_to_a.to_json()}


GZSL_METRICS = ("gamma", "seen_0", "unseen_0", "h_0", "seen_cal", "unseen_cal", "h_cal", "ausuc")


@dataclass
class GzslResult:
    """Generalised zero-shot of one pair on one device over training seeds
    (``experiments.gzsl_eval``)."""

    pair: str
    device: str
    seen: list[int]
    unseen: list[int]
    n_folds: int
    seconds: float
    runs: list[GzslRun]

    def stat(self, direction: str, metric: str) -> Stat:
        """Mean/std over seeds of one of ``GZSL_METRICS`` in one direction."""
        def value(d: GzslDirection) -> float:
            if metric in ("gamma", "ausuc"):
                return getattr(d, metric)
            name, which = metric.rsplit("_", 1)
            return getattr(d.uncalibrated if which == "0" else d.calibrated, name)
        return Stat.of(value(r.direction(direction)) for r in self.runs)

    def to_json(self) -> dict:
        first = self.runs[0].a_to_b
        summary = {d: {m: self.stat(d, m).to_json() for m in GZSL_METRICS}
                   for d in ("a_to_b", "b_to_a")}
        return {"pair": self.pair, "device": self.device, "seen": list(self.seen),
                "unseen": list(self.unseen), "n_folds": self.n_folds, "seconds": self.seconds,
                "accuracy": "per-class mean", "chance": first.chance,
                "ausuc_chance": first.ausuc_chance, "summary": summary,
                "runs": [r.to_json() for r in self.runs]}


SWEEP_METRICS = ("seen_a_to_b", "seen_b_to_a", "unseen_a_to_b", "unseen_b_to_a",
                 "seen_mean", "unseen_mean")


@dataclass
class SweepMetric:
    """One metric of a split sweep: ``acc[split][seed]`` and its summary."""

    acc: list[list[float]]
    summary: SweepSummary


@dataclass
class SweepResult:
    """A split sweep: per metric (pool x direction, and both directions' mean) the
    accuracies and their interval.  ``source`` says where a demo's sweep came from."""

    splits: list[list[int]]
    seeds: list[int]
    seconds: float
    seen_a_to_b: SweepMetric
    seen_b_to_a: SweepMetric
    unseen_a_to_b: SweepMetric
    unseen_b_to_a: SweepMetric
    seen_mean: SweepMetric
    unseen_mean: SweepMetric
    source: str | None = None
    reduced: bool | None = None

    def to_json(self) -> dict:
        head = {} if self.source is None else {"source": self.source, "reduced": self.reduced}
        return {**head, "splits": self.splits, "seeds": self.seeds, "seconds": self.seconds,
                "acc": {k: getattr(self, k).acc for k in SWEEP_METRICS},
                "summary": {k: getattr(self, k).summary.as_dict() for k in SWEEP_METRICS}}

    @classmethod
    def from_json(cls, d: dict, **changes) -> "SweepResult":
        metrics = {k: SweepMetric(d["acc"][k], SweepSummary(**d["summary"][k]))
                   for k in SWEEP_METRICS}
        fields = {"splits": d["splits"], "seeds": d["seeds"], "seconds": d["seconds"], **metrics,
                  "source": d.get("source"), "reduced": d.get("reduced")}
        return cls(**{**fields, **changes})


@dataclass
class SweepNotRun:
    """A demo's sweep that was not run, and why."""

    source: str
    reduced: bool = True

    def to_json(self) -> dict:
        return {"source": self.source, "reduced": self.reduced}


def sweep_from_json(d: dict) -> "SweepResult | SweepNotRun":
    return SweepResult.from_json(d) if "summary" in d else SweepNotRun(d["source"], d["reduced"])


@dataclass
class IdeaRow:
    """One idea's split sweep (query->image, validation-selected) beside the baseline's;
    ``same_as`` names the earlier row whose setting it is (then it was not trained again)."""

    idea: str
    pair: str
    device: str
    unseen: SweepSummary
    seen: SweepSummary
    val_seen: float                # seen-class validation retrieval: what may choose an idea
    n_features: int
    train: dict                    # the training changes it ran with
    features: dict                 # the features variant it ran with
    seconds: float
    same_as: str | None = None
    unseen_vs_baseline: float | None = None

    def to_json(self) -> dict:
        out = {"idea": self.idea, "pair": self.pair, "device": self.device,
               "unseen": self.unseen.as_dict(), "seen": self.seen.as_dict(),
               "val_seen": self.val_seen, "n_features": self.n_features, "train": self.train,
               "features": self.features, "seconds": self.seconds}
        if self.same_as is not None:
            out["same_as"] = self.same_as
        out["unseen_vs_baseline"] = self.unseen_vs_baseline
        return out


@dataclass
class ModalityUnderDevice:
    """One modality on one device setting: probe test accuracy and chance, the gain chosen
    on validation and the reservoir health at it."""

    probe: float
    probe_chance: float
    const: float
    silent: float
    saturated: float


@dataclass
class RobustnessRow:
    """One non-ideality at one magnitude (the rest at the rram defaults)."""

    param: str
    value: float
    is_default: bool
    modalities: dict[str, ModalityUnderDevice]
    av_seen: float | None = None          # audio->image retrieval, when both are measured
    av_unseen: float | None = None

    def to_json(self) -> dict:
        out: dict[str, Any] = {"param": self.param, "value": self.value,
                               "is_default": self.is_default}
        for m, x in self.modalities.items():
            out.update({f"probe_{m}": x.probe, f"probe_{m}_chance": x.probe_chance,
                        f"const_{m}": x.const, f"silent_{m}": x.silent,
                        f"saturated_{m}": x.saturated})
        if self.av_seen is not None:
            out.update(av_seen=self.av_seen, av_unseen=self.av_unseen)
        return out

    def columns(self) -> dict[str, float]:
        """The results table's columns: each modality's probe and gain, then the retrieval."""
        out: dict[str, float] = {}
        for m, x in self.modalities.items():
            out.update({f"probe_{m}": x.probe, f"const_{m}": x.const})
        if self.av_seen is not None:
            out.update(av_seen=self.av_seen, av_unseen=self.av_unseen)
        return out

    def accuracies(self) -> dict[str, float]:
        """The accuracy columns: each probe, then the retrieval (when measured)."""
        out = {f"probe_{m}": x.probe for m, x in self.modalities.items()}
        if self.av_seen is not None:
            out.update(av_seen=self.av_seen, av_unseen=self.av_unseen)
        return out


@dataclass
class ProbeReport:
    """Linear probes of one modality on one device: on the calibrated LSM features (and on
    the raw frames), the chosen gain and the reservoir health at it."""

    lsm: ProbeResult
    const: float
    health: dict
    raw: ProbeResult | None = None

    def to_json(self) -> dict:
        out = {"lsm": self.lsm.as_dict(), "const": self.const, "health": self.health}
        if self.raw is not None:
            out["raw"] = self.raw.as_dict()
        return out


@dataclass
class TableRow:
    """One row of the main results table (percentages, None where there is no value)."""

    experiment: str
    metric: str
    ours: float | None
    spread: float | None
    chance: float | None
    paper: float | None
    note: str = ""

    @classmethod
    def of(cls, experiment: str, metric: str, ours, chance=None, paper=None, spread=None,
           note: str = "") -> "TableRow":
        """A row from fractions (``ours``, ``chance``, ``spread``) and the paper's percent."""
        return cls(experiment, metric, pct(ours), pct(spread), pct(chance), paper, note)


def pct(x) -> float | None:
    return None if x is None else round(100.0 * float(x), 2)


@dataclass
class EvalResults:
    """Everything ``rram-lsm eval`` measured; ``to_json`` is ``results.json``."""

    config: Any                                   # the EvalConfig of the run
    paper: dict
    probes: dict[str, dict[str, ProbeReport]] = field(default_factory=dict)    # device -> modality
    zero_shot: dict[str, dict[str, ZeroShotResult]] = field(default_factory=dict)  # device -> pair
    gzsl: dict[str, dict[str, GzslResult]] = field(default_factory=dict)       # device -> pair
    sweep: dict[str, SweepResult] = field(default_factory=dict)                 # pair
    robustness: list[RobustnessRow] | None = None
    ideas: list[IdeaRow] | None = None
    baselines: dict | None = None
    calibration: dict = field(default_factory=dict)   # "modality/device" -> Calibration
    table: list[TableRow] = field(default_factory=list)
    seconds: float = 0.0
    plots: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"config": self.config.as_dict(), "paper": self.paper,
                "probes": {d: {m: p.to_json() for m, p in per.items()}
                           for d, per in self.probes.items()},
                "zero_shot": {d: {p: z.to_json() for p, z in per.items()}
                              for d, per in self.zero_shot.items()},
                "gzsl": {d: {p: g.to_json() for p, g in per.items()}
                         for d, per in self.gzsl.items()},
                "sweep": {p: s.to_json() for p, s in self.sweep.items()},
                "robustness": None if self.robustness is None else [r.to_json() for r in self.robustness],
                "ideas": None if self.ideas is None else [r.to_json() for r in self.ideas],
                "baselines": self.baselines,
                "calibration": {k: c.as_dict() for k, c in self.calibration.items()},
                "table": [asdict(r) for r in self.table], "seconds": self.seconds,
                "plots": list(self.plots)}
