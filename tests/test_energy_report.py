"""The demo's energy summary, lines, tables and chart from node telemetry: ratios per pipeline,
reservoir, node kind and node, the weights-from-DRAM row, and grouped (not stacked) bars."""
import math

import pytest

from rram_lsm.launch.dashboard import summary_lines
from rram_lsm.launch.report import Figures, _energy_html, _fig_energy, energy_lines, energy_summary
from rram_lsm.stream.energy import (ReservoirActivity, bank_ops, head_ops, load_profile,
                                    reservoir_ops)

PROFILES = ("rram_macro", "digital_45nm_event", "digital_45nm_dense")
N_INF = 10


def _telemetry() -> dict[str, dict]:
    """Final reports of an lsm, a projection and a classifier node after N_INF inferences,
    as the runtime writes them (op counts and their energy on each profile)."""
    kinds = {"lsm_visual": ("lsm", reservoir_ops(256, 200, 50, ReservoirActivity(0.1, 0.1))),
             "proj_visual": ("projection", head_ops(200, [64])),
             "classifier": ("crossmodal_classifier", bank_ops(9, 64))}
    latest = {}
    for node, (kind, ops) in kinds.items():
        ops = {k: v * N_INF for k, v in ops.items() if v}
        latest[node] = {"node": node, "kind": kind, "ops": ops,
                        "gauges": {"inferences": N_INF} if kind.endswith("classifier") else {},
                        "energy_pj": {p: load_profile(p).energy_pj(ops) for p in PROFILES}}
    return latest


def test_summary_ratios_follow_from_the_node_op_counts():
    latest = _telemetry()
    e = energy_summary(latest)
    rram, event = load_profile("rram_macro"), load_profile("digital_45nm_event")
    per = {n: {p: r["energy_pj"][p]["total"] for p in PROFILES} for n, r in latest.items()}
    pipe = {p: sum(per[n][p] for n in per) / N_INF for p in PROFILES}
    assert e["per_inference_pj"] == pytest.approx(pipe)
    assert e["ratio_to_rram"]["digital_45nm_event"] == pytest.approx(
        pipe["digital_45nm_event"] / pipe["rram_macro"])
    assert e["lsm_ratio_to_rram"]["digital_45nm_event"] == pytest.approx(
        per["lsm_visual"]["digital_45nm_event"] / per["lsm_visual"]["rram_macro"])
    kr = e["kind_ratio_to_rram"]["digital_45nm_event"]
    assert kr["projection"] == kr["classifier"] == pytest.approx(1.0)  # same digital head
    assert kr["lsm"] == pytest.approx(e["lsm_ratio_to_rram"]["digital_45nm_event"])
    assert e["node_ratio_to_rram"]["digital_45nm_dense"]["proj_visual"] == pytest.approx(1.0)
    # pipeline < reservoir-only ratio: the heads cost the same everywhere and dilute it
    assert 1 < e["ratio_to_rram"]["digital_45nm_event"] < e["lsm_ratio_to_rram"]["digital_45nm_event"]
    # weights from DRAM: every head/bank MAC pays a DRAM byte instead of its SRAM read
    head_macs = (head_ops(200, [64])["macs"] + bank_ops(9, 64)["macs"])
    for prof in (rram, event):
        extra = head_macs * (prof.prices["bytes_moved"].value_pj
                             - prof.weights.mac_weight_fetch.value_pj)
        assert e["dram_weights_per_inference_pj"][prof.name] == pytest.approx(
            pipe[prof.name] + extra)
    assert e["published_ratios"] == {"paper": [23.34, 160.0], "PRIME": [37.8, 62.5]}


def test_summary_lines_and_html_carry_every_ratio():
    latest = _telemetry()
    e = energy_summary(latest)
    lines = summary_lines(latest)
    text = "\n".join(lines)
    r = e["ratio_to_rram"]["digital_45nm_event"]
    assert f"pipeline {r:.1f}x" in text
    assert f"reservoir only {e['lsm_ratio_to_rram']['digital_45nm_event']:.1f}x" in text
    assert "projection 1.0x" in text and "classifier 1.0x" in text
    assert "weights from DRAM" in text and "PRIME 37.8x / 62.5x" in text
    assert "paper 23.34x / 160x" in text
    assert lines[-3:] == energy_lines(e)
    page = _energy_html(e, [])
    assert f"{r:.2f}x" in page and "PRIME 37.8x / 62.5x" in page
    assert f"{e['dram_weights_per_inference_pj']['rram_macro'] / 1e3:.3f} nJ" in page


def test_energy_chart_has_no_stacked_bars(tmp_path):
    captured = []

    class Capture(Figures):
        def save(self, fig, name, data, caption, csv_rows=None):
            captured.append((name, [(b.get_x(), b.get_y(), b.get_height())
                                    for ax in fig.axes for b in ax.patches],
                             [ax.get_yscale() for ax in fig.axes]))
            super().save(fig, name, data, caption, csv_rows)

    e = energy_summary(_telemetry())
    _fig_energy(Capture(tmp_path), e)
    (name, bars, scales), _ = captured
    assert name == "energy_nodes" and scales == ["log"]
    # 3 nodes + the pipeline, one bar per profile, every bar from the axis (none on another)
    assert len(bars) == 4 * len(PROFILES)
    assert all(y == 0 for _, y, _ in bars)
    assert len({round(x, 9) for x, _, _ in bars}) == len(bars)
    heights = sorted(h for _, _, h in bars)
    assert heights[-1] == pytest.approx(max(e["per_inference_pj"].values()) / 1e3)
    assert (tmp_path / "figures" / "energy_nodes.png").stat().st_size > 1000
    assert not math.isnan(sum(heights))
