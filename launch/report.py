"""The demo's report: ``report.html`` + PNG figures, each beside the JSON/CSV data it plots.

Every number comes from what the run logged: accuracy from each pair's sink records
(``predictions.jsonl``, or ``predictions-PAIR.jsonl`` per pair of the three-source demo),
per pair beside its own classifier's gauges, latency and energy from the nodes' final telemetry
(``telemetry.jsonl``), the offline figures from the demo's own training stage.  The numbers
are also written to ``summary.json`` so they can be checked against the logs.
"""
from __future__ import annotations

import csv
import html
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from .accuracy import from_gauges, from_records, read_records

RRAM, DIGITAL = "rram_macro", "digital_45nm_event"
PAPER = {"seen": 66.1, "unseen": 88.0, "seen_rram": 67.42, "unseen_rram": 87.5}


# ----------------------------------------------------------------------------- log readers

def read_telemetry(path: Path) -> tuple[dict[str, dict], list[dict]]:
    """(final report per node, launcher events) from a ``telemetry.jsonl``."""
    latest: dict[str, dict] = {}
    events: list[dict] = []
    for rec in read_records(path):
        if "event" in rec:
            events.append(rec)
        elif "node" in rec:
            prev = latest.get(rec["node"])
            if prev is None or not prev.get("final") or rec.get("final"):
                latest[rec["node"]] = rec
    return latest, events


def percentile(values, q: float) -> float | None:
    return float(np.percentile(np.asarray(values, float), q)) if len(values) else None


def energy_summary(latest: dict[str, dict]) -> dict:
    """Per node and per op energy (pJ) for every profile, and the pipeline's per inference.

    Ratios to ``rram_macro`` come for the pipeline, the reservoir alone (lsm nodes), each node
    kind and each node; ``dram_weights_*`` re-prices the same op counts with the heads' and
    bank's weights streamed from DRAM (each profile's ``weights_from_dram``), the sensitivity
    row of the weights-on-chip rule.
    """
    from rram_lsm.stream.energy import load_profile
    from rram_lsm.stream.node import OP_COUNTS

    # every classifier's inferences (one classifier per pair in the three-source demo)
    inferences = sum(int((r.get("gauges") or {}).get("inferences", 0)) for r in latest.values()
                     if _kind_group(r.get("kind", "")) == "classifier")
    per_node: dict[str, dict[str, float]] = {}
    per_op: dict[str, dict[str, float]] = {}
    ops_total = {k: 0 for k in OP_COUNTS}
    for node, r in sorted(latest.items()):
        for k, v in (r.get("ops") or {}).items():
            if k in ops_total:
                ops_total[k] += v
        for prof, e in (r.get("energy_pj") or {}).items():
            per_node.setdefault(prof, {})[node] = float(e.get("total", 0.0))
            for op, v in e.items():
                if op != "total":
                    per_op.setdefault(prof, {})[op] = per_op.get(prof, {}).get(op, 0.0) + float(v)
    totals = {p: math.fsum(v.values()) for p, v in per_node.items()}
    kinds = {n: _kind_group(r.get("kind", "")) for n, r in latest.items()}
    by_kind = {p: {k: math.fsum(v for n, v in per.items() if kinds.get(n) == k)
                   for k in sorted({kinds.get(n) for n in per})} for p, per in per_node.items()}
    lsm = {p: v.get("lsm", 0.0) for p, v in by_kind.items()}
    dram: dict[str, float] = {}
    for prof in per_node:
        try:
            alt = load_profile(prof).weights_from_dram()
        except (OSError, ValueError):  # a profile not found or unreadable here: no DRAM row
            continue
        dram[prof] = math.fsum(alt.total_pj({k: v for k, v in (r.get("ops") or {}).items()
                                             if k in OP_COUNTS}) for r in latest.values())

    def per(d: dict) -> dict:
        return {p: t / inferences for p, t in d.items()} if inferences else {}

    def ratios(d: dict) -> dict:
        return {p: d[p] / d[RRAM] for p in d if RRAM in d and d[RRAM] > 0}

    def nested_ratios(d: dict) -> dict:
        ref = d.get(RRAM, {})
        return {p: {k: v / ref[k] for k, v in per_p.items() if ref.get(k)} for p, per_p in d.items()}

    per_inf, lsm_inf, dram_inf = per(totals), per(lsm), per(dram)
    return {"inferences": inferences, "per_node_pj": per_node, "per_op_pj": per_op,
            "total_pj": totals, "per_inference_pj": per_inf, "ratio_to_rram": ratios(per_inf),
            "lsm_per_inference_pj": lsm_inf, "lsm_ratio_to_rram": ratios(lsm_inf),
            "kind_pj": by_kind, "kind_ratio_to_rram": nested_ratios(by_kind),
            "node_ratio_to_rram": nested_ratios(per_node),
            "dram_weights_per_inference_pj": dram_inf,
            "dram_weights_ratio_to_rram": ratios(dram_inf),
            "published_ratios": _published_ratios(), "ops_total": ops_total}


def _kind_group(kind: str) -> str:
    """lsm / projection / classifier (both classifier kinds) / the node kind itself."""
    return "classifier" if kind.endswith("classifier") else kind


def _published_ratios() -> dict[str, list[float]]:
    from rram_lsm.stream.energy import PUBLISHED_RATIOS
    return {who: list(r) for who, r, _ in PUBLISHED_RATIOS}


def energy_lines(e: dict, digital: str = DIGITAL) -> list[str]:
    """The demo summary's energy lines: per inference on RRAM and digital, the pipeline,
    reservoir-only and per-kind ratios, the weights-from-DRAM row, the published ratios."""
    per_inf = e.get("per_inference_pj") or {}
    if RRAM not in per_inf or digital not in per_inf:
        return []
    kr = (e.get("kind_ratio_to_rram") or {}).get(digital, {})
    kinds = ", ".join(f"{k} {kr[k]:.1f}x" for k in ("projection", "classifier") if k in kr)
    dram = e.get("dram_weights_ratio_to_rram", {}).get(digital)
    lines = [f"energy/inference ({e['inferences']} inferences; heads and bank on chip, each weight "
             f"read priced once): RRAM {per_inf[RRAM] / 1e3:.1f} nJ · {digital} "
             f"{per_inf[digital] / 1e3:.1f} nJ",
             f"ratio {digital}/RRAM: pipeline {e['ratio_to_rram'].get(digital, math.nan):.1f}x · "
             f"reservoir only {e['lsm_ratio_to_rram'].get(digital, math.nan):.1f}x · {kinds}"
             + (f" · heads+bank weights from DRAM {dram:.2f}x" if dram else "")]
    pub = " · ".join(f"{who} {a:g}x / {b:g}x" for who, (a, b) in e["published_ratios"].items())
    lines.append(f"published (their baselines, not recomputable here): {pub}")
    return lines


def sensitivity_rows(ops: dict, a: str = RRAM, b: str = DIGITAL) -> list[dict]:
    """How the digital/RRAM ratio moves when each constant is halved or doubled."""
    from rram_lsm.stream.energy import load_profile, sensitivity

    try:
        pa, pb = load_profile(a), load_profile(b)
    except Exception as exc:  # a profile that cannot be read: say so in the report
        return [{"error": str(exc)}]
    rows = sensitivity({k: v for k, v in ops.items() if v}, pa, pb)
    return [{"profile": r.profile, "op": r.op, "factor": r.factor, "ratio": r.ratio,
             "base_ratio": r.base_ratio} for r in rows]


def pair_views(info: dict) -> dict[str, dict]:
    """Per pair: its classifier node, its sink's file and its sources (``info["pairs"]``, as
    the demo writes it; one pair in ``predictions.jsonl`` when the run names none)."""
    if info.get("pairs"):
        return info["pairs"]
    return {str(info.get("config", {}).get("pair")): {
        "classifier": "classifier", "predictions": "predictions.jsonl",
        "sources": info.get("sources") or {}}}


def pair_predictions(run_dir: Path, view: dict) -> list[dict]:
    return [r for r in read_records(run_dir / view["predictions"]) if r.get("kind") == "prediction"]


def summarise(run_dir: Path, info: dict) -> dict:
    """Every number of the report, from the run's logs: accuracy per pair (its sink's records
    and its classifier's gauges) and pooled over the pairs, latency, energy."""
    cfg = info.get("config", {})
    seen, unseen = tuple(cfg.get("seen", ())), tuple(cfg.get("unseen", ()))
    latest, events = read_telemetry(run_dir / "telemetry.jsonl")
    pairs, preds = {}, []
    for pair, view in pair_views(info).items():
        mine = pair_predictions(run_dir, view)
        gauges = (latest.get(view["classifier"]) or {}).get("gauges") or {}
        acc = from_records(mine, seen, unseen, gauges.get("chance"), view["sources"])
        pairs[pair] = {"accuracy": acc.as_dict(), "predictions": len(mine),
                       "accuracy_from_telemetry": from_gauges(gauges, seen, unseen).as_dict()
                       if "seen_n" in gauges else None}
        preds += mine
    chance = next((p["accuracy"]["chance"] for p in pairs.values()), None)
    acc = from_records(preds, seen, unseen, chance, info.get("sources"))
    latency = {}
    for node, r in sorted(latest.items()):
        lat = r.get("latency_us") or {}
        latency[node] = {k: lat.get(k) for k in ("n", "p50", "p90", "p95", "p99", "max")}
        latency[node]["age_ms"] = {k: (r.get("age_ms") or {}).get(k) for k in ("p50", "p99")}
    e2e = [r["latency_ms"] for r in preds if r.get("latency_ms") is not None]
    energy = energy_summary(latest)
    return {"accuracy": acc.as_dict(), "pairs": pairs,
            "predictions": len(preds), "latency_us": latency,
            "end_to_end_ms": {"n": len(e2e), "p50": percentile(e2e, 50), "p99": percentile(e2e, 99),
                              "values": e2e},
            "energy": energy, "sensitivity": sensitivity_rows(energy["ops_total"]),
            "failed": [e.get("node") for e in events if e.get("event") == "failed"],
            "restarts": sum(1 for e in events if e.get("event") == "restarted")}


# ----------------------------------------------------------------------------- figures

def _save_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=1, default=lambda v: v.tolist()
                               if isinstance(v, np.ndarray) else str(v)))


def confusion(preds: list[dict], true_classes, pred_classes) -> np.ndarray:
    """Counts [true, predicted]; the last column counts rejections / other predictions."""
    cols = list(pred_classes)
    m = np.zeros((len(true_classes), len(cols) + 1), np.int64)
    for r in preds:
        if r.get("label") in true_classes:
            i = list(true_classes).index(r["label"])
            j = cols.index(r["pred"]) if r.get("pred") in cols else len(cols)
            m[i, j] += 1
    return m


class Figures:
    """Writes ``figures/NAME.png`` beside ``figures/NAME.json`` (or ``.csv``)."""

    def __init__(self, run_dir: Path):
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        self.plt = plt
        self.dir = run_dir / "figures"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.made: list[tuple[str, str, str]] = []  # (png, data file, caption)

    def save(self, fig, name: str, data: Any, caption: str, csv_rows: list[list] | None = None) -> None:
        png = self.dir / f"{name}.png"
        fig.tight_layout()
        fig.savefig(png, dpi=90)
        self.plt.close(fig)
        if csv_rows is not None:
            with open(self.dir / f"{name}.csv", "w", newline="") as f:
                csv.writer(f).writerows(csv_rows)
            data_name = f"{name}.csv"
        else:
            _save_json(self.dir / f"{name}.json", data)
            data_name = f"{name}.json"
        self.made.append((f"figures/{name}.png", f"figures/{data_name}", caption))


def _offline(model, pool: str, direction: str = "a_to_b") -> tuple[float | None, float | None]:
    """The offline retrieval (mean over seeds) and its chance for one pool of one pair's
    ``DemoModel``, if trained."""
    if model is None:
        return None, None
    p = model.train_summary.pool(pool)
    return getattr(p, direction).mean, p.chance


def _model_of(prep, pair: str):
    """The ``DemoModel`` of ``pair`` (None without the offline stages)."""
    if prep is None:
        return None
    return (getattr(prep, "models", None) or {}).get(pair, prep.model)


def _fig_accuracy(F: Figures, acc: dict, info: dict, model, sfx_name: str = "",
                  pair: str = "") -> None:
    dev = info.get("config", {}).get("device", "rram")
    sfx = "_rram" if dev == "rram" else ""
    data = {"pipeline_9way": {p: acc[p]["accuracy"] for p in ("seen", "unseen")},
            "pipeline_chance": acc["chance"],
            "offline_retrieval": {p: _offline(model, p)[0] for p in ("seen", "unseen")},
            "offline_chance": {p: _offline(model, p)[1] for p in ("seen", "unseen")},
            "paper": {p: PAPER[f"{p}{sfx}"] / 100 for p in ("seen", "unseen")}}
    fig, ax = F.plt.subplots(figsize=(6, 3.2))
    x = np.arange(2)
    for k, (key, lab) in enumerate((("pipeline_9way", "pipeline (9-way bank)"),
                                    ("offline_retrieval", "offline, paper's metric"),
                                    ("paper", "paper"))):
        vals = [data[key][p] or 0 for p in ("seen", "unseen")]
        ax.bar(x + (k - 1) * 0.27, vals, 0.27, label=lab)
    if acc["chance"]:
        ax.axhline(acc["chance"], color="k", ls="--", lw=1, label=f"chance 9-way ({acc['chance']:.1%})")
    ax.set_xticks(x, ["seen 1-7", "unseen 8-9"])
    ax.set_ylim(0, 1)
    ax.set_ylabel("top-1 accuracy")
    ax.legend(fontsize=7)
    if pair:
        ax.set_title(pair, fontsize=9)
    F.save(fig, f"accuracy{sfx_name}", data, f"Accuracy{' of ' + pair if pair else ''}: the live "
           "pipeline (nearest prototype among digits 1-9, chance 1/9), the paper's retrieval "
           "metric offline, and the paper.")


def _fig_confusions(F: Figures, preds: list[dict], cfg: dict, sfx_name: str = "",
                    pair: str = "") -> None:
    classes = list(range(1, 10))
    for pool in ("seen", "unseen"):
        true = list(cfg.get(pool, []))
        m = confusion(preds, true, classes)
        fig, ax = F.plt.subplots(figsize=(5, 0.5 * len(true) + 1.6))
        ax.imshow(m, cmap="Blues", aspect="auto")
        for i in range(m.shape[0]):
            for j in range(m.shape[1]):
                if m[i, j]:
                    ax.text(j, i, str(m[i, j]), ha="center", va="center", fontsize=7)
        ax.set_xticks(range(len(classes) + 1), [str(c) for c in classes] + ["rej"])
        ax.set_yticks(range(len(true)), [str(c) for c in true])
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(f"{pair + ': ' if pair else ''}{pool} classes (both query modalities)")
        rows = [["true\\pred"] + [str(c) for c in classes] + ["rejected"]]
        rows += [[str(t)] + [int(v) for v in m[i]] for i, t in enumerate(true)]
        F.save(fig, f"confusion_{pool}{sfx_name}", None, f"Confusion matrix of the {pool} "
               f"classes{' of ' + pair if pair else ''} (pipeline predictions).", csv_rows=rows)


def _fig_similarity(F: Figures, sim: dict, sfx_name: str = "") -> None:
    m = np.asarray(sim["matrix"])
    fig, ax = F.plt.subplots(figsize=(4.6, 4))
    im = ax.imshow(m, cmap="viridis", vmin=-1, vmax=1)
    ax.set_xticks(range(len(sim["classes"])), sim["classes"])
    ax.set_yticks(range(len(sim["classes"])), sim["classes"])
    ax.set_xlabel(f"{sim['cols']} prototype")
    ax.set_ylabel(f"{sim['rows']} prototype")
    fig.colorbar(im, ax=ax, shrink=0.8)
    F.save(fig, f"similarity{sfx_name}", sim, "Cross-modal cosine similarity of test-set class prototypes "
                                   "(a bright diagonal = the two modalities agree, incl. 8 and 9).")


def _fig_rasters(F: Figures, rasters: list[dict]) -> None:
    for mod in sorted({r["modality"] for r in rasters}):
        rs = [r for r in rasters if r["modality"] == mod]
        fig, axes = F.plt.subplots(2, len(rs), figsize=(3.2 * len(rs), 4.4), squeeze=False)
        for k, r in enumerate(rs):
            axes[0, k].scatter(np.asarray(r["events_t_us"]) / 1e3, r["events_addr"], s=0.3, c="k")
            axes[0, k].set_title(f"{mod} sample {r['sample']} (digit {r['label']})", fontsize=8)
            axes[0, k].set_xlabel("ms")
            axes[0, k].set_ylabel("input address")
            axes[1, k].scatter(r["spike_bin"], r["spike_neuron"], s=0.5, c="tab:red")
            axes[1, k].set_xlim(0, r["n_bins"])
            axes[1, k].set_xlabel("bin")
            axes[1, k].set_ylabel("reservoir neuron")
        F.save(fig, f"raster_{mod}", rs, f"{mod}: input events (top) and reservoir spikes "
                                         f"(bottom) of the first replayed samples.")


def _fig_latency(F: Figures, s: dict) -> None:
    lat = s["latency_us"]
    nodes = [n for n in lat if lat[n].get("n")]
    fig, (a1, a2) = F.plt.subplots(1, 2, figsize=(9, 3.4))
    qs = ("p50", "p90", "p99", "max")
    for k, q in enumerate(qs):
        a1.bar(np.arange(len(nodes)) + (k - 1.5) * 0.2, [lat[n][q] or 0 for n in nodes], 0.2, label=q)
    a1.set_yscale("log")
    a1.set_xticks(range(len(nodes)), nodes, rotation=40, ha="right", fontsize=7)
    a1.set_ylabel("processing latency per message (µs)")
    a1.legend(fontsize=7)
    e2e = s["end_to_end_ms"]["values"]
    if e2e:
        a2.hist(e2e, bins=30, color="tab:purple")
    a2.set_xlabel("end-to-end latency at the sink (ms), first event -> prediction")
    a2.set_ylabel("predictions")
    F.save(fig, "latency", {"per_node_us": lat, "end_to_end_ms": s["end_to_end_ms"]},
           "Per-node processing latency percentiles (telemetry) and the histogram of end-to-end "
           "latency of every prediction (sink).")


def _fig_energy(F: Figures, e: dict) -> None:
    """Grouped (never stacked) bars on a log axis: each node and the pipeline side by side on
    every profile, so a small node stays readable beside a large one."""
    profs = list(e["per_node_pj"])
    if not profs:
        return
    n_inf = max(e["inferences"], 1)
    nodes = sorted({n for p in profs for n in e["per_node_pj"][p]}) + ["pipeline"]
    per = {p: {**e["per_node_pj"][p], "pipeline": e["total_pj"].get(p, 0.0)} for p in profs}
    fig, ax = F.plt.subplots(figsize=(8, 3.6))
    w = 0.8 / len(profs)
    for k, p in enumerate(profs):
        vals = [per[p].get(n, 0.0) / n_inf / 1e3 for n in nodes]
        ax.bar(np.arange(len(nodes)) + (k - len(profs) / 2 + 0.5) * w, vals, w, label=p)
    ax.set_yscale("log")
    ax.set_xticks(range(len(nodes)), nodes, rotation=30, ha="right", fontsize=7)
    ax.set_ylabel("nJ per inference (log)")
    ax.legend(fontsize=7)
    F.save(fig, "energy_nodes", {"inferences": e["inferences"], "per_node_pj": e["per_node_pj"]},
           "Energy per inference of each node and of the whole pipeline on each hardware profile "
           "(each node's op counts x profile / all inferences, so the nodes sum to the pipeline; "
           "bars side by side, log axis).")
    ops = sorted({o for p in profs for o in e["per_op_pj"].get(p, {})})
    fig, ax = F.plt.subplots(figsize=(7, 3.4))
    for k, p in enumerate(profs):
        ax.bar(np.arange(len(ops)) + (k - len(profs) / 2 + 0.5) * w,
               [e["per_op_pj"][p].get(o, 0.0) / n_inf / 1e3 for o in ops], w, label=p)
    ax.set_yscale("log")
    ax.set_xticks(range(len(ops)), ops, rotation=30, ha="right", fontsize=7)
    ax.set_ylabel("nJ per inference (log)")
    ax.legend(fontsize=7)
    F.save(fig, "energy_ops", {"inferences": e["inferences"], "per_op_pj": e["per_op_pj"]},
           "Energy per inference by operation type on each profile.")


def _fig_sweep(F: Figures, sweep, sfx_name: str = "") -> None:
    """``sweep``: the demo's ``SweepResult`` (nothing to plot for a ``SweepNotRun``)."""
    metric = getattr(sweep, "unseen_a_to_b", None)
    if metric is None or not metric.acc:
        return
    acc = np.asarray(metric.acc, float)
    means = acc.mean(axis=1) if acc.ndim == 2 else acc
    labels = ["/".join(map(str, s)) for s in sweep.splits]
    fig, ax = F.plt.subplots(figsize=(6, 3))
    ax.bar(range(len(means)), means)
    sm = metric.summary
    ax.axhline(sm.chance, color="k", ls="--", lw=1, label=f"chance {sm.chance:.0%}")
    ax.set_xticks(range(len(means)), labels, fontsize=7)
    ax.set_xlabel("unseen digits")
    ax.set_ylabel("unseen retrieval top-1")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=7)
    F.save(fig, f"sweep{sfx_name}", {"splits": sweep.splits, "acc_unseen_a_to_b": acc.tolist(),
                          "summary": sm.as_dict(), "source": sweep.source},
           f"Split sweep: unseen-pair retrieval for each choice of unseen digits "
           f"({sweep.source}).")


# ----------------------------------------------------------------------------- HTML

def _pct(v) -> str:
    return "-" if v is None else f"{v:.1%}"


def _table(head: list[str], rows: list[list]) -> str:
    h = "".join(f"<th>{html.escape(str(c))}</th>" for c in head)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>"
                   for r in rows)
    return f"<table><tr>{h}</tr>{body}</table>"


def _energy_html(e: dict, sensitivity: list[dict]) -> str:
    """Energy tables: pipeline, reservoir-only and per-kind ratios, weights from DRAM, per node,
    the published ratios beside ours, and the ratio's sensitivity to each constant."""
    def ratio(d: dict, p: str) -> str:
        v = d.get(p)
        return "-" if v is None else f"{v:.2f}x"

    kinds = [k for k in ("projection", "classifier")
             if any(k in v for v in e.get("kind_ratio_to_rram", {}).values())]
    rows = [[p, fmt_nj(v), ratio(e["ratio_to_rram"], p), fmt_nj(e["lsm_per_inference_pj"].get(p)),
             ratio(e["lsm_ratio_to_rram"], p)]
            + [ratio(e["kind_ratio_to_rram"].get(p, {}), k) for k in kinds]
            + [fmt_nj(e["dram_weights_per_inference_pj"].get(p)),
               ratio(e["dram_weights_ratio_to_rram"], p)]
            for p, v in e["per_inference_pj"].items()]
    pub = "; ".join(f"{who} {a:g}x / {b:g}x" for who, (a, b) in e["published_ratios"].items())
    parts = ["<h2>Energy per inference</h2>" + _table(
        ["profile", "pipeline / inference", "pipeline ratio to rram_macro",
         "reservoir (lsm nodes) / inference", "reservoir ratio"]
        + [f"{k} ratio" for k in kinds]
        + ["pipeline, heads+bank weights from DRAM", "its ratio"], rows)
        + f"<p>{e['inferences']} inferences; energy = each node's measured operation counts x "
          f"the profile's cited per-operation constants (launch/profiles/*.toml), summed over the "
          f"nodes. Where weights live: reservoir weights in the RRAM array (rram_macro) or in "
          f"on-chip SRAM (digital profiles); the projection heads and the class bank in on-chip "
          f"SRAM, read once per MAC and priced inside the MAC, so no access is priced twice. The "
          f"DRAM columns re-price the same counts with every head and bank weight read from DRAM "
          f"instead (a sensitivity, not the rule). Published, against their own baselines: "
          f"{html.escape(pub)}.</p>"]
    node_rows = []
    for p, per in e["per_node_pj"].items():
        for n, v in per.items():
            node_rows.append([p, n, fmt_nj(v / max(e["inferences"], 1)),
                              ratio(e["node_ratio_to_rram"].get(p, {}), n)])
    parts.append(_table(["profile", "node", "energy / inference", "ratio to rram_macro"],
                        node_rows))
    sens = [r for r in sensitivity if "error" not in r]
    if sens:
        parts.append("<h3>Sensitivity of the digital/RRAM ratio</h3>" + _table(
            ["profile", "constant", "factor", "ratio", "base ratio"],
            [[r["profile"], r["op"], f"{r['factor']:g}x", f"{r['ratio']:.2f}",
              f"{r['base_ratio']:.2f}"] for r in sens]))
    return "".join(parts)


def fmt_nj(pj: float | None) -> str:
    return "-" if pj is None else f"{pj / 1e3:.3f} nJ"


def fmt_us(v) -> str:
    return "-" if v is None else f"{v:.0f} µs"


def write_report(run_dir: Path, info: dict, prep=None) -> Path:
    """Write ``report.html``, ``summary.json`` and ``figures/`` into ``run_dir``."""
    run_dir = Path(run_dir)
    s = summarise(run_dir, info)
    cfg = info.get("config", {})
    (run_dir / "summary.json").write_text(json.dumps({**s, "info": info}, indent=1, default=str))
    F = Figures(run_dir)
    views = pair_views(info)
    for pair, view in views.items():
        sfx, model = (f"_{pair}" if len(views) > 1 else ""), _model_of(prep, pair)
        label = pair if len(views) > 1 else ""
        _fig_accuracy(F, s["pairs"][pair]["accuracy"], info, model, sfx, label)
        _fig_confusions(F, pair_predictions(run_dir, view), cfg, sfx, label)
        if model is not None:
            _fig_similarity(F, model.similarity, sfx)
            _fig_sweep(F, model.sweep, sfx)
    if prep is not None:
        _fig_rasters(F, prep.rasters)
    _fig_latency(F, s)
    _fig_energy(F, s["energy"])
    out = run_dir / "report.html"
    out.write_text(_html(s, info, F.made, prep))
    return out


def _pair_html(pair: str, acc: dict, info: dict, model, sfx: str) -> str:
    """One pair's accuracy table, its live GZSL line and its offline GZSL table."""
    rows = []
    for p, cls in (("seen", "1-7"), ("unseen", "8-9")):
        a = acc[p]
        rows.append([f"{p} ({cls})", f"{_pct(a['accuracy'])} ({a['correct']}/{a['n']})",
                     _pct(acc["chance"]), _pct(_offline(model, p)[0]),
                     _pct(_offline(model, p, "b_to_a")[0]), _pct(_offline(model, p)[1]),
                     f"{PAPER[p + sfx]:.2f}%"])
    parts = [f"<h3>{html.escape(pair)}</h3>" + _table(
        ["classes", "pipeline (live, 9-way bank)", "chance (bank)", "offline A->B retrieval",
         "offline B->A retrieval", "chance (retrieval)", f"paper ({'RRAM chip' if sfx else 'software'})"],
        rows)]
    ci = acc["unseen"].get("ci95_exact")
    parts.append(f"<p>Generalised zero-shot, live: H {_pct(acc.get('h'))} (harmonic mean of "
                 f"seen and unseen); unseen exact binomial 95% CI "
                 + (f"[{_pct(ci[0])}, {_pct(ci[1])}]" if ci else "-")
                 + f"; chance {_pct(acc['chance'])} for each.</p>")
    gzsl = ((info.get("models") or {}).get(pair) or info).get("gzsl") or {}
    gz_rows = [[f"{q}->{g['bank']}", f"{g['gamma']:.3f}"]
               + [_pct(g[w][k]) for w in ("uncalibrated", "calibrated")
                  for k in ("seen", "unseen", "h")] + [_pct(g["chance"])]
               for q, g in gzsl.items()]
    if gz_rows:
        parts.append("<h4>Generalised zero-shot offline (test, per-class mean)</h4>" + _table(
            ["queries", "gamma (validation)", "seen γ=0", "unseen γ=0", "H γ=0", "seen cal.",
             "unseen cal.", "H cal.", "chance"], gz_rows))
    return "".join(parts)


def _epochs(info: dict) -> str:
    """The validation-chosen head epoch, per pair when there are several."""
    models = info.get("models") or {}
    if len(models) > 1:
        return ", ".join(f"{p} {m.get('selected_epoch', '-')}" for p, m in models.items())
    return str(info.get("selected_epoch", "-"))


def _html(s: dict, info: dict, figs: list[tuple[str, str, str]], prep=None) -> str:
    cfg = info.get("config", {})
    dev = cfg.get("device", "rram")
    sfx = "_rram" if dev == "rram" else ""
    parts = [f"<h1>rram-lsm demo: {html.escape(str(cfg.get('pair')))} ({html.escape(dev)})</h1>"]
    if info.get("interrupted"):
        parts.append("<p><b>Interrupted (Ctrl-C): this report holds what was there.</b></p>")
    parts.append(f"<p>Dataset: built-in ({html.escape(str(cfg.get('size')))}); "
                 f"{cfg.get('samples')} held-out test samples per modality; pacing: "
                 f"{html.escape(str(info.get('pacing', '-')))}. Reservoir gains (validation): "
                 f"{html.escape(json.dumps(info.get('consts', {})))}; head epoch "
                 f"{_epochs(info)} (validation).</p>")
    parts.append("<h2>Stages</h2>" + _table(["stage", "seconds"],
                 [[k, f"{v:.1f}"] for k, v in (info.get("stage_seconds") or {}).items()]
                 + [["total", f"{info.get('total_seconds', 0):.1f}"]]))
    parts.append("<h2>Accuracy</h2>")
    for pair in pair_views(info):
        parts.append(_pair_html(pair, s["pairs"][pair]["accuracy"], info, _model_of(prep, pair),
                                sfx))
    parts.append("<p>The live pipeline labels every query with the nearest of 9 prototypes of "
                 "the other modality (digits 1-9; the unseen 8 and 9 never trained the heads), so "
                 "its chance is 1/9; seen-class scores are lowered by the calibration constant "
                 "gamma, chosen on validation folds whose pseudo-unseen classes are seen digits "
                 "held out of training (calibrated stacking). The paper's metric is retrieval "
                 "within the seen pool and within the unseen pool (chance 1/7 and 1/2), computed "
                 "offline here on the same test split.</p>")
    for pair in pair_views(info):
        model = _model_of(prep, pair)
        sw = model.sweep if model is not None else None
        if getattr(sw, "unseen_a_to_b", None) is not None:
            sm = sw.unseen_a_to_b.summary
            parts.append(f"<p>{html.escape(pair)} split sweep ({html.escape(str(sw.source))}): "
                         f"unseen retrieval {_pct(sm.mean)}, 95% CI [{_pct(sm.ci_low)}, "
                         f"{_pct(sm.ci_high)}], chance {_pct(sm.chance)} over {sm.n_splits} "
                         f"splits x {sm.n_seeds} seeds.</p>")
        else:
            parts.append(f"<p>{html.escape(pair)} split sweep: "
                         f"{html.escape(str(getattr(sw, 'source', 'not run')))}.</p>")
    lat_rows = [[n, v.get("n"), fmt_us(v.get("p50")), fmt_us(v.get("p99")), fmt_us(v.get("max"))]
                for n, v in s["latency_us"].items()]
    e2e = s["end_to_end_ms"]
    parts.append("<h2>Latency</h2>" + _table(["node", "messages", "p50", "p99", "max"], lat_rows)
                 + f"<p>End to end (first event of a sample to its prediction at the sink): "
                   f"p50 {e2e['p50'] or 0:.1f} ms, p99 {e2e['p99'] or 0:.1f} ms over {e2e['n']} "
                   f"predictions (a trial's prediction needs the whole sample, so this includes the "
                   f"sample's own duration).</p>")
    parts.append(_energy_html(s["energy"], s["sensitivity"]))
    parts.append("<h2>Figures</h2>")
    for png, data, cap in figs:
        parts.append(f'<figure><img src="{png}" alt="{html.escape(cap)}"><figcaption>'
                     f'{html.escape(cap)} Data: <a href="{data}">{data}</a></figcaption></figure>')
    style = ("body{font-family:sans-serif;max-width:1000px;margin:auto}table{border-collapse:"
             "collapse;margin:6px 0}td,th{border:1px solid #ccc;padding:2px 6px;font-size:13px}"
             "img{max-width:100%}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>rram-lsm demo</title>"
            f"<style>{style}</style></head><body>{''.join(parts)}</body></html>")
