"""Typed records of the BMI protocol (``experiments.bmi``), their JSON and Markdown, with the
authors' figures beside ours."""
from __future__ import annotations

import datetime as _dt
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

PAIR_NAME = "neural-visual-letters"
AUTHORS_SPLIT = (18, 19, 20, 21)          # R S T U, the authors' best runs
# The authors' BMI scripts' comments, seen / unseen top-1 (%); direction not always stated.
PAPER_FIGURES = (
    ("T 0.5, batch 1,024", 52.27, 70.83),
    ("T 0.5, batch 128", 50.15, 68.33),
    ("T 0.001, batch 128", 49.84, 60.0),
)
GOAL = {"unseen_top1_mean": 0.60, "unseen_top1_ci_low": 0.40}


def letters_name(classes=AUTHORS_SPLIT) -> str:
    """'R S T U' for (18, 19, 20, 21)."""
    return " ".join(chr(64 + int(c)) for c in classes)


@dataclass
class MetricSummary:
    """A sweep metric over random sets: mean, spread, 95 % t-interval over sets, chance."""

    mean: float
    std_runs: float
    std_sets: float
    ci_low: float
    ci_high: float
    method: str
    n_sets: int
    n_seeds: int
    chance: float

    @classmethod
    def of(cls, s) -> "MetricSummary":
        """From ``experiments.sweep.SweepSummary``."""
        return cls(s.mean, s.std_runs, s.std_splits, s.ci_low, s.ci_high, s.method,
                   s.n_splits, s.n_seeds, s.chance)


@dataclass
class SetRuns:
    """Test accuracies ``acc[metric][set][seed]`` of unseen sets x seeds at one batch size.

    Metrics ``{seen,unseen}_{n2i,i2n,mean}_top{1,5}``; ``chance[{pool}_top{k}][set]``;
    ``val_seen[set][seed]`` the validation score that chose the epoch ``epochs[set][seed]``.
    """

    sets: list[list[int]]
    seeds: list[int]
    batch_size: int
    acc: dict[str, list[list[float]]]
    chance: dict[str, list[float]]
    val_seen: list[list[float]]
    epochs: list[list[int]]
    seconds: float

    def seed_stat(self, key: str, i: int = 0) -> tuple[float, float]:
        """Mean and sample std over seeds of one set's metric."""
        v = np.asarray(self.acc[key][i], dtype=float)
        return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0


@dataclass
class BmiResult:
    """Everything the protocol measured (``experiments.bmi.run_bmi``)."""

    name: str
    config: dict
    batch_size: int                      # chosen on validation
    authors: SetRuns                     # R S T U at the chosen batch size
    authors_by_batch: list[SetRuns]      # R S T U at every candidate batch size
    sweep: SetRuns                       # random sets at the chosen batch size
    summary: dict[str, MetricSummary]    # per sweep metric
    n_pairs: dict[str, int]
    same_writer_pairs: int
    seconds: float
    gzsl: Any = None                     # results.GzslResult of R S T U (None: skipped)

    def goal_met(self, direction: str = "mean") -> bool:
        s = self.summary[f"unseen_{direction}_top1"]
        return s.mean >= GOAL["unseen_top1_mean"] and s.ci_low >= GOAL["unseen_top1_ci_low"]

    def to_json(self) -> dict:
        out = asdict(self)
        out["gzsl"] = self.gzsl.to_json() if self.gzsl is not None else None
        out["pair"] = PAIR_NAME
        out["paper"] = [{"setting": s, "seen": a, "unseen": b} for s, a, b in PAPER_FIGURES]
        out["goal"] = dict(GOAL, met_mean=self.goal_met("mean"), met_n2i=self.goal_met("n2i"),
                           met_i2n=self.goal_met("i2n"))
        return out


def _p(v: float) -> str:
    return f"{100 * v:.1f}"


def bmi_markdown(res: BmiResult, command: str = "") -> str:
    """The protocol's results: sweep means with intervals and chance, the authors' split
    over seeds, the authors' comment figures beside, the validation choices."""
    c = res.config
    date = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    sw = res.sweep
    lines = [
        f"# BMI letters (neural <-> image): `{PAIR_NAME}`", "",
        f"{date}" + (f", `{command}`" if command else "") + f", {res.seconds:.0f} s.", "",
        f"Built-in letters `{c['size']}` (data seed {c['data_seed']}, reservoir seed "
        f"{c['reservoir_seed']}): pairs train / val / test {res.n_pairs['train']} / "
        f"{res.n_pairs['val']} / {res.n_pairs['test']}, image and trial of every pair by "
        f"different writers (same-writer pairs: {res.same_writer_pairs}), test writers in no "
        f"training or validation pair. Heads Linear({c['neurons'] or 2048} -> {c['pd']}) + GELU "
        f"per modality, "
        f"our supervised contrastive loss (the authors' is not published) at T = "
        f"{c['temperature']:g}, Adam lr {c['lr']:g}, {c['epochs']} epochs. Chosen on "
        f"validation (validation writers, seen letters only): the epoch per run (checked "
        f"every {c['eval_every']}), and the batch "
        f"size **{res.batch_size}** among {list(c['batch_sizes'])} on R S T U ("
        + ", ".join(f"{r.batch_size}: val seen {_p(float(np.mean(r.val_seen)))}%"
                    for r in res.authors_by_batch) + "). Test: pool retrieval among the test "
        "writers' pairs, seen pool (22 letters) and unseen pool (4 letters) apart; top-5 is "
        "item-level (one of the 5 nearest items has the letter), its chance beside it. "
        "n2i = neural query, image gallery; i2n the reverse.", "",
        f"## Random 4-letter unseen sets: {len(sw.sets)} sets x {len(sw.seeds)} seeds "
        f"(batch {sw.batch_size})", "",
        "| pool | direction | top-1 (%) | 95% CI (over sets) | chance (%) | top-5 (%) | "
        "95% CI | chance top-5 (%) |",
        "|---|---|---|---|---|---|---|---|"]
    for pool in ("unseen", "seen"):
        for d in ("n2i", "i2n", "mean"):
            s1, s5 = res.summary[f"{pool}_{d}_top1"], res.summary[f"{pool}_{d}_top5"]
            lines.append(f"| {pool} | {d} | {_p(s1.mean)} ± {_p(s1.std_runs)} | "
                         f"[{_p(s1.ci_low)}, {_p(s1.ci_high)}] | {_p(s1.chance)} | "
                         f"{_p(s5.mean)} | [{_p(s5.ci_low)}, {_p(s5.ci_high)}] | "
                         f"{_p(s5.chance)} |")
    u = res.summary["unseen_mean_top1"]
    lines += ["", f"Goal (unseen top-1 >= 60 % with the interval's lower end >= 40 %), both "
              f"directions' mean: **{'met' if res.goal_met() else 'not met'}** "
              f"({_p(u.mean)} %, CI [{_p(u.ci_low)}, {_p(u.ci_high)}]); n2i "
              f"{'met' if res.goal_met('n2i') else 'not met'}, i2n "
              f"{'met' if res.goal_met('i2n') else 'not met'}. "
              f"± is the spread of single runs; the interval is Student's t over per-set means "
              f"({u.method}).", "",
              "## The authors' split R S T U, beside the authors' comment figures", "",
              "| setting | seen top-1 (%) | unseen top-1 (%) | seen top-5 (%) | "
              "unseen top-5 (%) | unseen chance (%) |", "|---|---|---|---|---|---|"]
    for r in res.authors_by_batch:
        for d in ("n2i", "i2n"):
            cells = []
            for key in (f"seen_{d}_top1", f"unseen_{d}_top1", f"seen_{d}_top5",
                        f"unseen_{d}_top5"):
                m, sd = r.seed_stat(key)
                cells.append(f"{_p(m)} ± {_p(sd)}")
            mark = " (chosen)" if r.batch_size == res.batch_size else ""
            lines.append(f"| ours, batch {r.batch_size}{mark}, {d}, {len(r.seeds)} seeds | "
                         + " | ".join(cells) + f" | {_p(r.chance['unseen_top1'][0])} |")
    for setting, seen, unseen in PAPER_FIGURES:
        lines.append(f"| authors' scripts, {setting} (their recordings, direction not always "
                     f"stated) | {seen:.2f} | {unseen:.2f} | — | — | 25.0 |")
    lines += ["", "± over seeds. The authors' figures come from their recordings and "
              "E-MNIST, not this data, and their epochs were chosen on the test set.", "",
              "Per set (unseen top-1, mean of both directions, over seeds): " + "; ".join(
                  f"{letters_name(s)} {_p(float(np.mean(a)))}"
                  for s, a in zip(sw.sets, sw.acc["unseen_mean_top1"])) + "."]
    if res.gzsl is not None:
        from .markdown import gzsl_table

        g = res.gzsl
        lines += ["", gzsl_table({"—": {f"{PAIR_NAME}, unseen {letters_name(g.unseen)}": g}})
                  .replace("## Generalised zero-shot", "## Generalised zero-shot on R S T U", 1),
                  "", f"{len(g.runs)} training seeds (the authors' split's heads at batch "
                  f"{res.batch_size}), {g.n_folds} pseudo-unseen folds of 4 seen letters per "
                  "seed on the validation writers; the test writers enter only the final "
                  "scores. neural->image = n2i. GZSL over the random sets: not run (each "
                  "needs its own fold heads)."]
    return "\n".join(lines) + "\n"
