"""The results of ``rram-lsm eval`` as Markdown: the main table (ours beside the paper, with
chance), generalised zero-shot, the gain calibrations, the ideas, the baselines comparison
and the robustness table."""
from __future__ import annotations

from .comparison import comparison_markdown
from .ideas import ideas_markdown
from .results import GZSL_METRICS, EvalResults, pct


def _fmt(v) -> str:
    return "—" if v is None else f"{v:.2f}"


def _pm(stat) -> str:
    return f"{100 * stat.mean:.1f}" + (f" ± {100 * stat.std:.1f}" if len(stat.values) > 1 else "")


def gzsl_markdown(res: EvalResults) -> str:
    """The generalised zero-shot table of ``eval``'s pairs (:func:`gzsl_table`)."""
    return gzsl_table(res.gzsl)


def gzsl_table(by_device: dict) -> str:
    """The generalised zero-shot table (``{device: {pair: GzslResult}}``): seen / unseen / H at
    gamma 0 and at the constant chosen on pseudo-unseen validation folds, AUSUC, each with its
    chance."""
    lines = ["## Generalised zero-shot (seen and unseen prototypes compete)", "",
             "Test queries of every class against a bank of all classes (the other modality's "
             "training embeddings, the demo's bank); accuracies are per-class means in %, mean ± "
             "std over training seeds. gamma (subtracted from seen-class cosines, calibrated "
             "stacking) is chosen per direction on validation folds whose pseudo-unseen seen "
             "classes were held out of their heads' training: no unseen class is touched. "
             "Chance: 1/classes for seen, unseen and H; 1/(2·|seen|·|unseen|) for AUSUC.", "",
             "| pair | device | direction | gamma (val) | seen γ=0 | unseen γ=0 | H γ=0 | "
             "seen cal. | unseen cal. | H cal. | chance | AUSUC | AUSUC chance |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for dev, per in by_device.items():
        for pair, g in per.items():
            for d in ("a_to_b", "b_to_a"):
                first = g.runs[0].direction(d)
                st = {m: g.stat(d, m) for m in GZSL_METRICS}
                lines.append(
                    f"| {pair} | {dev} | {first.query}->{first.bank} | "
                    f"{st['gamma'].mean:.3f} | " + " | ".join(
                        _pm(st[m]) for m in ("seen_0", "unseen_0", "h_0", "seen_cal",
                                             "unseen_cal", "h_cal"))
                    + f" | {100 * first.chance:.1f} | {_pm(st['ausuc'])} | "
                    f"{100 * first.ausuc_chance:.1f} |")
    return "\n".join(lines)


def results_markdown(res: EvalResults) -> str:
    """The results as Markdown: the main table (ours beside the paper, chance), the sweep
    intervals, the gain calibrations, the ideas and the robustness table."""
    cfg = res.config.experiment
    h = cfg.heads
    lines = ["# rram-lsm results", "",
             f"Built-in dataset `{cfg.size}` (seed {cfg.data_seed}), reservoir seed "
             f"{cfg.reservoir_seed}, heads pd {h.pd}, {h.epochs} epochs, "
             + ("the paper's loss" if h.loss == "paper" else
                f"**{h.loss} loss at T = {h.temperature:g}, not the paper's**")
             + (". " if cfg.windows == 1 else
                f", **features: rates in {cfg.windows} windows per sample, not the paper's "
                "one mean rate** (gain calibrated on mean rates). ") +
             "Every hyper-parameter (gain, probe C, head epoch) is chosen on the validation "
             "split; numbers are test accuracy in %. The paper's numbers are on N-MNIST / "
             "N-TIDIGITS / BMI recordings, not on this dataset.", "",
             "| experiment | metric | ours (%) | ± | chance (%) | paper (%) | note |",
             "|---|---|---|---|---|---|---|"]
    for r in res.table:
        lines.append(f"| {r.experiment} | {r.metric} | {_fmt(r.ours)} | {_fmt(r.spread)} | "
                     f"{_fmt(r.chance)} | {_fmt(r.paper)} | {r.note} |")
    if res.gzsl:
        lines += ["", gzsl_markdown(res)]
    if res.calibration:
        lines += ["", "## Gain calibration (validation probe accuracy; health beside it)", ""]
        for name, c in res.calibration.items():
            lines.append(f"- `{name}` ({c.preset}): chosen const {c.const:.4g}; " + "; ".join(
                f"{p.const:.4g}: val {p.val_acc:.1%}, silent {p.silent_frac:.0%}, "
                f"saturated {p.saturated_frac:.0%}" for p in c.points))
    if res.ideas:
        lines += ["", "## Ideas past the paper, each one change on top of this run's loss and "
                  "features, on the same split sweep (validation-selected test accuracy; the "
                  "shuffled pairing is a negative control)", "",
                  ideas_markdown(res.ideas)]
    if res.baselines:
        lines += ["", "## The paper's comparison: accuracy and training cost", "",
                  comparison_markdown(res.baselines, res.probes.get(res.baselines["device"]))]
    if res.robustness:
        rows = res.robustness
        keys = list(rows[0].columns())
        lines += ["", "## RRAM robustness (rram defaults, one non-ideality varied; gain "
                  "re-calibrated on validation per setting; * = the cited default)", "",
                  "| non-ideality | value | " + " | ".join(keys) + " |",
                  "|---|---|" + "---|" * len(keys)]
        for r in rows:
            cols = r.columns()
            vals = [f"{cols[k]:.4g}" if k.startswith("const_") else _fmt(pct(cols[k])) for k in keys]
            lines.append(f"| {r.param} | {r.value:g}{'*' if r.is_default else ''} | "
                         + " | ".join(vals) + " |")
    lines.append("")
    return "\n".join(lines)
