"""Energy profiles, energy accounting, RAPL reading and the `rram-lsm energy` command."""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from rram_lsm.stream.energy import (CrossbarGeometry, ProfileError, ReservoirActivity, check_ops, compare,
                           list_profiles, load_profile, reservoir_ops, sensitivity)
from rram_lsm.stream.node import OP_COUNTS
from rram_lsm.stream.rapl import open_rapl

REPO = Path(__file__).resolve().parent.parent
SHIPPED = ["digital_45nm_dense", "digital_45nm_event", "loihi", "rram_macro"]

GOOD = """
name = "tiny"
description = "a hand-checkable profile"

[ops.cell_reads]
value = 0.25
unit = "pJ"
citation = "test constant"

[ops.adc_conversions]
value = 1.5
unit = "nJ"
citation = "test constant"
note = "nJ to check the unit conversion"

[weights]
heads = "on_chip_sram"
reservoir = "in_array"
rule = "test rule"
"""


def write(tmp_path: Path, text: str, name: str = "tiny") -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    return path


def test_hand_computed_case_matches_exactly(tmp_path):
    prof = load_profile(write(tmp_path, GOOD))
    e = prof.energy_pj({"cell_reads": 8, "adc_conversions": 3, "spikes": 100})
    # 8 × 0.25 pJ = 2 pJ; 3 × 1.5 nJ = 4500 pJ; spikes are not priced by this profile.
    assert e == {"cell_reads": 2.0, "adc_conversions": 4500.0, "total": 4502.0}
    # Loading by name from an explicit directory gives the same profile.
    assert load_profile("tiny", dirs=[tmp_path]).energy_pj({"cell_reads": 4})["total"] == 1.0


BAD = {
    "missing value": ("value = 0.25\n", "", "ops.cell_reads.value"),
    "negative": ("value = 0.25", "value = -0.25", "ops.cell_reads.value"),
    "non-numeric": ("value = 0.25", 'value = "0.25"', "ops.cell_reads.value"),
    "boolean": ("value = 0.25", "value = true", "ops.cell_reads.value"),
    "nan": ("value = 0.25", "value = nan", "ops.cell_reads.value"),
    "uncited": ('citation = "test constant"\n\n[ops.adc', '\n[ops.adc', "ops.cell_reads.citation"),
    "empty citation": ('citation = "test constant"\n\n[ops.adc', 'citation = " "\n\n[ops.adc',
                       "ops.cell_reads.citation"),
    "unknown op": ("[ops.cell_reads]", "[ops.cell_reeds]", "ops.cell_reeds"),
    "unknown unit": ('unit = "pJ"', 'unit = "mJ"', "ops.cell_reads.unit"),
    "unknown entry key": ('unit = "pJ"', 'unit = "pJ"\nsource = "x"', "ops.cell_reads.source"),
    "missing name": ('name = "tiny"', "", "name"),
    "unknown top key": ('name = "tiny"', 'name = "tiny"\nversion = 2', "version"),
    "weights unsaid": ('[weights]\nheads = "on_chip_sram"\nreservoir = "in_array"\n'
                       'rule = "test rule"\n', "", "weights"),
    "unknown weight location": ('heads = "on_chip_sram"', 'heads = "cloud"', "weights.heads"),
    "no accounting rule": ('rule = "test rule"', 'rule = ""', "weights.rule"),
    # a profile that prices MACs must say which part is the weight read, and price DRAM bytes
    "macs without the weight read": ("[weights]", '[ops.macs]\nvalue = 2.8\nunit = "pJ"\n'
                                     'citation = "t"\n\n[weights]', "weights.mac_weight_fetch"),
    "weight read dearer than the mac": (
        'rule = "test rule"', 'rule = "r"\n[weights.mac_weight_fetch]\nvalue = 9.0\nunit = "pJ"\n'
        'citation = "t"\n[ops.macs]\nvalue = 2.8\nunit = "pJ"\ncitation = "t"',
        "weights.mac_weight_fetch"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_profiles_are_refused_naming_file_and_key(tmp_path, case):
    old, new, key = BAD[case]
    assert old in GOOD
    path = write(tmp_path, GOOD.replace(old, new, 1), name=case.replace(" ", "_"))
    with pytest.raises(ProfileError) as info:
        load_profile(path)
    assert f"'{key}'" in str(info.value)
    assert str(path) in str(info.value)


def test_profile_without_ops_and_invalid_toml_are_refused(tmp_path):
    with pytest.raises(ProfileError, match="'ops'"):
        load_profile(write(tmp_path, 'name = "x"\ndescription = "y"\n', "noops"))
    with pytest.raises(ProfileError, match="not valid TOML"):
        load_profile(write(tmp_path, "name = \n", "broken"))
    with pytest.raises(FileNotFoundError, match="rram_macro"):
        load_profile("no_such_profile")


def test_every_shipped_profile_loads_with_a_citation_for_every_constant():
    assert set(SHIPPED) <= set(list_profiles())
    for name in SHIPPED:
        prof = load_profile(name)
        assert prof.name == name and prof.description and prof.prices
        for op, price in prof.prices.items():
            assert op in OP_COUNTS
            # A citation points at a findable source (DOI or URL) and the note derives the value.
            assert "doi:" in price.citation or "https://" in price.citation, (name, op)
            assert price.note, (name, op)
            assert price.value_pj >= 0


def test_shipped_profiles_carry_the_published_anchor_values():
    loihi = load_profile("loihi")
    assert loihi.prices["synaptic_ops"].value_pj == 23.6  # Davies et al. 2018, Table 2
    assert loihi.prices["neuron_updates"].value_pj == 81.0
    rram = load_profile("rram_macro")
    # V²·G·t with 0.2 V, 20 µS, 20 ns.
    assert math.isclose(rram.prices["cell_reads"].value_pj, 0.2 ** 2 * 20e-6 * 20e-9 * 1e12)
    dense = load_profile("digital_45nm_dense")
    # Horowitz: 32 KB SRAM 20 pJ / 64 bit per 8-bit weight, 8-bit mult 0.2, 32-bit add 0.1.
    assert math.isclose(dense.prices["macs"].value_pj, 20 / 8 + 0.2 + 0.1)


def test_reservoir_ops_hand_computed():
    ops = reservoir_ops(4, 3, 2, ReservoirActivity(0.5, 1 / 3))
    # Per bin: 2 active inputs + 1 spike = 3 driven rows, read across 3 pairs = 6 columns.
    assert ops["dac_row_activations"] == pytest.approx(6)
    assert ops["cell_reads"] == pytest.approx(36)
    assert ops["synaptic_ops"] == pytest.approx(18)
    assert ops["adc_conversions"] == 6
    assert ops["neuron_updates"] == 6
    assert ops["spikes"] == pytest.approx(2)
    assert ops["dense_macs"] == 2 * 7 * 3
    # Tiled over 4×4 macros: 7 rows -> 2 row tiles (ADC per tile), 6 columns -> 2 column tiles.
    tiled = reservoir_ops(4, 3, 2, ReservoirActivity(0.5, 1 / 3), CrossbarGeometry(4, 4))
    assert tiled["adc_conversions"] == 12
    assert tiled["dac_row_activations"] == pytest.approx(12)
    assert tiled["cell_reads"] == pytest.approx(ops["cell_reads"])


def test_op_counts_are_checked():
    with pytest.raises(ValueError, match="cell_reeds"):
        check_ops({"cell_reeds": 1})
    with pytest.raises(ValueError, match="spikes"):
        load_profile("loihi").energy_pj({"spikes": -1})
    with pytest.raises(Exception, match="firing_rate"):
        ReservoirActivity(0.1, 1.5)


def test_compare_and_sensitivity_move_the_right_way():
    ops = reservoir_ops(256, 200, 50)
    rram, dense, event = (load_profile(n) for n in ("rram_macro", "digital_45nm_dense",
                                                    "digital_45nm_event"))
    rows = compare(ops, [rram, dense, event])
    assert rows[0].ratio == 1.0
    assert rows[1].ratio == rows[1].total_pj / rows[0].total_pj
    assert rows[1].total_pj == dense.energy_pj(ops)["total"]
    for digital in (dense, event):
        srows = sensitivity(ops, rram, digital)
        base = srows[0].base_ratio
        for s in srows:
            priced = (rram if s.profile == rram.name else digital).energy_pj(ops)[s.op] > 0
            if not priced:  # e.g. bytes_moved, zero for an on-chip reservoir
                assert s.ratio == pytest.approx(base)
            elif s.profile == rram.name:  # dearer RRAM -> smaller digital/RRAM advantage
                assert (s.ratio < base) if s.factor > 1 else (s.ratio > base)
            else:
                assert (s.ratio > base) if s.factor > 1 else (s.ratio < base)


def test_energy_command_json_equals_energy_pj_of_the_same_ops(capsys):
    from rram_lsm.launch.cli import main

    assert main(["energy", "--preset", "zs_image", "--json", "--sensitivity"]) == 0
    out = json.loads(capsys.readouterr().out)
    ops = reservoir_ops(256, 200, 50, ReservoirActivity(0.1, 0.1))
    assert out["ops"] == ops
    assert out["reference"] == "rram_macro"
    ref_total = load_profile("rram_macro").total_pj(ops)
    for name in SHIPPED:
        expected = load_profile(name).energy_pj(ops)
        assert out["profiles"][name]["energy_pj"] == expected
        assert out["profiles"][name]["ratio"] == expected["total"] / ref_total
    assert out["paper_ratios"] == [23.34, 160.0]
    assert set(out["sensitivity"]) == set(SHIPPED) - {"rram_macro"}


def test_energy_command_prints_profiles_side_by_side_with_ratio(capsys):
    from rram_lsm.launch.cli import main

    assert main(["energy", "--preset", "zs_image", "--firing-rate", "0.05"]) == 0
    text = capsys.readouterr().out
    ops = reservoir_ops(256, 200, 50, ReservoirActivity(0.1, 0.05))
    rram = load_profile("rram_macro").total_pj(ops)
    for name in SHIPPED:
        assert name in text
        total = load_profile(name).total_pj(ops)
        assert f"{total:.4g}" in text
        assert f"{total / rram:.4g}x" in text
    assert "23.34x" in text and "160x" in text
    assert main(["energy", "--preset", "no_such_preset"]) == 2


def test_stream_energy_does_not_import_launch():
    code = ("import sys, stream.energy as e; e.load_profile('loihi'); "
            "assert 'launch' not in sys.modules, 'stream imported launch'")
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)


def _zone(root: Path, name: str, label: str, uj: int, max_uj: int) -> Path:
    d = root / name
    d.mkdir(parents=True)
    (d / "name").write_text(label + "\n")
    (d / "energy_uj").write_text(f"{uj}\n")
    (d / "max_energy_range_uj").write_text(f"{max_uj}\n")
    return d


def test_rapl_reads_package_zones_with_wraparound(tmp_path):
    root = tmp_path / "powercap"
    p0 = _zone(root, "intel-rapl:0", "package-0", 1_000_000, 9_999_999)
    p1 = _zone(root, "intel-rapl:1", "package-1", 9_500_000, 9_999_999)
    _zone(root, "intel-rapl:0:0", "core", 5, 9_999_999)  # a sub-zone: must not count twice
    meter, reason = open_rapl(root)
    assert meter is not None and "package-0" in reason and "core" not in reason
    start = meter.sample()
    (p0 / "energy_uj").write_text("3500000\n")          # +2.5 J
    (p1 / "energy_uj").write_text("500000\n")           # wrapped at 9_999_999: +1.0 J
    end = meter.sample()
    assert meter.joules(start, end) == pytest.approx(3.5, abs=1e-12)


def test_rapl_absent_or_unreadable_gives_none_and_reason(tmp_path):
    meter, reason = open_rapl(tmp_path / "missing")
    assert meter is None and "does not exist" in reason
    (tmp_path / "empty").mkdir()
    meter, reason = open_rapl(tmp_path / "empty")
    assert meter is None and "no intel-rapl" in reason
    d = tmp_path / "bad" / "intel-rapl:0"
    (d / "energy_uj").mkdir(parents=True)  # not a readable counter file
    meter, reason = open_rapl(tmp_path / "bad")
    assert meter is None and "unreadable" in reason


def test_one_inference_of_a_tiny_head_and_bank_counted_by_hand(tmp_path):
    """A real ProjectionNode and ClassifierNode count one inference as a hand count does, and
    every shipped profile prices it once: weights on chip, their read inside each MAC."""
    import tomllib

    import numpy as np

    from rram_lsm.nodes.classifier.bank import PrototypeBank
    from rram_lsm.nodes.classifier.node import ClassifierNode
    from rram_lsm.nodes.projection.heads import HeadConfig, ProjectionHead, save_heads
    from rram_lsm.nodes.projection.node import ProjectionNode
    from rram_lsm.stream.energy import bank_ops, head_ops
    from rram_lsm.stream.packets import Origin, Packet

    n, pd, refs = 5, 3, 4
    rng = np.random.default_rng(0)
    head = ProjectionHead(HeadConfig("tiny", "visual", n, [pd]), rng.normal(size=n),
                          rng.uniform(0.5, 2.0, n), [rng.normal(size=(pd, n))], [rng.normal(size=pd)])
    proj = ProjectionNode("proj", {"weights": str(save_heads(tmp_path / "h.npz", [head]))})
    proj.setup()
    bank = PrototypeBank.from_embeddings(rng.normal(size=(2 * refs, pd)), np.repeat(np.arange(refs), 2))
    cls = ClassifierNode("cls", {"bank": str(bank.save(tmp_path / "bank.npz"))})
    cls.setup()

    x = rng.uniform(size=(1, n)).astype(np.float32)
    (emb,) = proj.process(Packet(kind="features", body=x, sample=0, label=1,
                                 origin=Origin("dvs", 1, 0), origin_ns=1))
    (pred,) = cls.process(emb)
    assert pred.kind == "prediction"

    head_macs = n + n * pd + pd      # standardise every feature, the 5 -> 3 layer, the L2 norm
    bank_macs = pd + refs * pd       # normalise the query, one 3-long dot product per prototype
    assert dict(proj.ops) == {"macs": head_macs}   # no bytes_moved: the weights are on chip
    assert dict(cls.ops) == {"macs": bank_macs}
    assert head_ops(n, [pd]) == {"macs": head_macs, "bytes_moved": 0}
    assert bank_ops(refs, pd) == {"macs": bank_macs, "bytes_moved": 0}

    for name in SHIPPED:
        raw = tomllib.loads((REPO / "launch" / "profiles" / f"{name}.toml").read_text())
        mac, fetch, dram = (raw["ops"]["macs"], raw["weights"]["mac_weight_fetch"],
                            raw["ops"]["bytes_moved"])
        assert mac["unit"] == fetch["unit"] == dram["unit"] == "pJ"
        assert raw["weights"]["heads"] == "on_chip_sram"
        prof = load_profile(name)
        for node, macs in ((proj, head_macs), (cls, bank_macs)):
            assert prof.energy_pj(node.ops) == pytest.approx(
                {**{op: 0.0 for op in prof.prices}, "macs": macs * mac["value"],
                 "total": macs * mac["value"]})
            # weights streamed from DRAM: each MAC's 1-byte weight read comes from DRAM
            # *instead of* SRAM — priced once, never on top of the SRAM read
            assert prof.weights_from_dram().total_pj(node.ops) == pytest.approx(
                macs * (mac["value"] - fetch["value"] + dram["value"]))


def test_energy_command_prices_the_pipeline_per_node_and_with_weights_from_dram(capsys):
    from rram_lsm.launch.cli import main
    from rram_lsm.stream.energy import bank_ops, head_ops

    assert main(["energy", "--preset", "zs_image", "--json", "--pd", "32", "--bank-refs", "5"]) == 0
    out = json.loads(capsys.readouterr().out)
    res = reservoir_ops(256, 200, 50, ReservoirActivity(0.1, 0.1))
    node_ops = {"lsm": res, "projection": head_ops(200, [32]), "classifier": bank_ops(5, 32)}
    assert out["node_ops"] == node_ops
    rram = load_profile("rram_macro")
    for name in SHIPPED:
        prof = load_profile(name)
        e = {k: prof.total_pj(o) for k, o in node_ops.items()}
        pipe = sum(e.values())
        got = out["pipeline"][name]
        assert got["energy_pj"]["pipeline"] == pytest.approx(pipe)
        ref = sum(rram.total_pj(o) for o in node_ops.values())
        assert got["ratio"]["pipeline"] == pytest.approx(pipe / ref)
        assert got["ratio"]["lsm"] == pytest.approx(e["lsm"] / rram.total_pj(res))
        assert got["ratio"]["projection"] == pytest.approx(1.0)  # the same digital head everywhere
        dram = out["pipeline_weights_from_dram"][f"{name}+dram_weights"]
        extra = (node_ops["projection"]["macs"] + node_ops["classifier"]["macs"]) * (
            prof.prices["bytes_moved"].value_pj - prof.weights.mac_weight_fetch.value_pj)
        assert dram["energy_pj"]["pipeline"] == pytest.approx(pipe + extra)
    assert [p["ratios"] for p in out["published_ratios"]] == [[23.34, 160.0], [37.8, 62.5]]
    assert main(["energy", "--preset", "zs_image"]) == 0
    text = capsys.readouterr().out
    assert "ratio, pipeline" in text and "streamed from DRAM" in text
    assert "PRIME 37.8x / 62.5x" in text and "paper 23.34x / 160x" in text
