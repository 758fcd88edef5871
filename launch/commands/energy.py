"""`rram-lsm energy`: per-inference energy of an LSM preset on each energy profile.

The op counts of one inference are computed analytically from the preset's sizes and a stated
activity (fraction of inputs active per bin, reservoir firing rate), then priced by every
profile side by side with the ratio to the RRAM macro.  Beside the reservoir it prices the
rest of the pipeline (a projection head on the reservoir's features and a class bank), with
weights held where each profile's ``[weights]`` rule says (heads on chip, each access priced
once) and, as a sensitivity row, streamed from DRAM; per-node, reservoir-only and pipeline
ratios are set beside the paper's 23.34x / 160x and PRIME's 37.8x / 62.5x.
"""
from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass

# The six settings of PAPER.md (inputs, reservoir neurons, bins), used when the LSM presets
# module (nodes.lsm.presets.PRESETS) is not importable.
PAPER_SIZES: dict[str, tuple[int, int, int]] = {
    "nmnist": (256, 200, 50),
    "ntidigits": (64, 200, 129),
    "zs_image": (256, 200, 50),
    "zs_audio": (64, 200, 129),
    "bmi_neural": (192, 2048, 201),
    "bmi_image": (784, 2048, 49),
}
PAPER_RATIOS = (23.34, 160.0)
REFERENCE = "rram_macro"
DEFAULT_INPUT_ACTIVITY = 0.1
DEFAULT_FIRING_RATE = 0.1
DEFAULT_PD = 64             # the paper's projection dimension
DEFAULT_BANK_REFS = 9       # one prototype per digit 1-9, as in the demo's bank


@dataclass(frozen=True)
class PresetSize:
    name: str
    n_inputs: int
    n_neurons: int
    n_bins: int
    source: str


def preset_sizes() -> dict[str, PresetSize]:
    """Sizes of every LSM preset: from nodes.lsm.presets when present, else PAPER.md's table."""
    try:
        from rram_lsm.nodes.lsm.presets import PRESETS
    except ImportError:
        return {k: PresetSize(k, *v, "PAPER.md table") for k, v in PAPER_SIZES.items()}
    return {k: PresetSize(k, int(c.n_inputs), int(c.n_neurons), int(c.n_bins), "nodes.lsm.presets")
            for k, c in PRESETS.items()}


def register(sub) -> None:
    p = sub.add_parser(
        "energy", help="per-inference energy of an LSM preset on each energy profile",
        description="Price the op counts of one reservoir inference (computed from the preset's "
                    "sizes and a stated activity) on every energy profile, side by side with "
                    "their ratio to the RRAM macro, then the whole pipeline (reservoir, head, "
                    "bank) per node, with the heads' weights on chip and, as a sensitivity, "
                    "streamed from DRAM, beside the paper's 23.34x / 160x and PRIME's 37.8x / 62.5x.")
    p.add_argument("--preset", default="zs_image",
                   help="LSM preset (default zs_image; see --list)")
    p.add_argument("--input-activity", type=float, default=DEFAULT_INPUT_ACTIVITY,
                   help="fraction of binarised inputs that are 1 in a bin (default %(default)s)")
    p.add_argument("--firing-rate", type=float, default=DEFAULT_FIRING_RATE,
                   help="reservoir spikes per neuron per bin (default %(default)s)")
    p.add_argument("--pd", type=int, default=DEFAULT_PD,
                   help="projection dimension of the head on the reservoir's features "
                        "(default %(default)s)")
    p.add_argument("--bank-refs", type=int, default=DEFAULT_BANK_REFS,
                   help="reference rows in the classifier's bank (default %(default)s)")
    p.add_argument("--profile", action="append", default=None, metavar="NAME_OR_TOML",
                   help="profile to include (repeatable; default: every packaged profile)")
    p.add_argument("--reference", default=REFERENCE,
                   help="profile the ratios are taken against (default %(default)s)")
    p.add_argument("--sensitivity", action="store_true",
                   help="also show how each ratio moves when each constant is halved or doubled "
                        "(the weights-from-DRAM row is always shown)")
    p.add_argument("--json", action="store_true", help="print the numbers as one JSON object")
    p.add_argument("--list", action="store_true", help="list presets and profiles, then exit")
    p.set_defaults(func=run)


def run(args) -> int:
    from rram_lsm.stream.energy import (CrossbarGeometry, ReservoirActivity, bank_ops, compare,
                                        head_ops, list_profiles, load_profile, reservoir_ops,
                                        sensitivity)
    from rram_lsm.stream.rapl import open_rapl

    presets = preset_sizes()
    if args.list:
        for p in presets.values():
            print(f"preset  {p.name:12s} {p.n_inputs} inputs, {p.n_neurons} neurons, {p.n_bins} bins")
        for name in list_profiles():
            print(f"profile {name:20s} {load_profile(name).description.splitlines()[0][:70]}")
        return 0
    if args.preset not in presets:
        raise ValueError(f"unknown preset {args.preset!r}; known: {sorted(presets)}")
    size = presets[args.preset]
    activity = ReservoirActivity(args.input_activity, args.firing_rate)
    geometry = CrossbarGeometry()
    ops = reservoir_ops(size.n_inputs, size.n_neurons, size.n_bins, activity, geometry)
    # One feature per reservoir neuron (the trial-mode feature), one head, one bank.
    node_ops = {"lsm": ops, "projection": head_ops(size.n_neurons, [args.pd]),
                "classifier": bank_ops(args.bank_refs, args.pd)}

    names = args.profile or list_profiles()
    ref = load_profile(args.reference)
    others = [load_profile(n) for n in names]
    profiles = [ref] + [p for p in others if p.name != ref.name]
    rows = compare(ops, profiles)
    nodes = per_node(node_ops, profiles)
    dram = per_node(node_ops, [p.weights_from_dram() for p in profiles])
    sens = {p.name: sensitivity(ops, ref, p) for p in profiles[1:]} if args.sensitivity else {}
    meter, rapl_reason = open_rapl()

    if args.json:
        out = {
            "preset": vars(size), "activity": vars(activity), "geometry": vars(geometry),
            "ops": ops, "reference": ref.name,
            "profiles": {r.profile: {"energy_pj": r.energy_pj, "total_pj": r.total_pj,
                                     "ratio": r.ratio} for r in rows},
            "node_ops": node_ops, "pipeline": nodes, "pipeline_weights_from_dram": dram,
            "paper_ratios": list(PAPER_RATIOS), "published_ratios": _published(),
            "rapl": {"available": meter is not None, "reason": rapl_reason},
        }
        if sens:
            out["sensitivity"] = {b: [vars(s) for s in srows] for b, srows in sens.items()}
        json.dump(out, sys.stdout, indent=2)
        print()
        return 0

    _print_table(size, activity, geometry, ops, rows)
    _print_pipeline(size, args, nodes, dram, profiles)
    _print_assumptions(activity, profiles)
    if sens:
        _print_sensitivity(ref.name, sens)
    print(f"\nmeasured CPU energy (RAPL): {'available — ' if meter else 'not available: '}"
          f"{rapl_reason}")
    return 0


def per_node(node_ops: dict[str, dict], profiles) -> dict[str, dict]:
    """Per profile: energy (pJ) of each node and of the pipeline, and each one's ratio to the
    first profile's same node (``ratio``: {node or "pipeline": x})."""
    out: dict[str, dict] = {}
    for prof in profiles:
        e = {n: prof.total_pj(o) for n, o in node_ops.items()}
        e["pipeline"] = math.fsum(e.values())
        out[prof.name] = {"energy_pj": e}
    ref = out[profiles[0].name]["energy_pj"]
    for v in out.values():
        v["ratio"] = {k: (x / ref[k] if ref[k] > 0 else math.inf) for k, x in v["energy_pj"].items()}
    return out


def _published() -> list[dict]:
    from rram_lsm.stream.energy import PUBLISHED_RATIOS
    return [{"who": who, "ratios": list(r), "source": src} for who, r, src in PUBLISHED_RATIOS]


def published_line() -> str:
    """``paper 23.34x / 160x · PRIME 37.8x / 62.5x``: the ratios ours are set beside."""
    from rram_lsm.stream.energy import PUBLISHED_RATIOS
    return " · ".join(f"{who} {a:g}x / {b:g}x" for who, (a, b), _ in PUBLISHED_RATIOS)


def _print_pipeline(size, args, nodes: dict, dram: dict, profiles) -> None:
    names = list(nodes)
    width = max(12, *(len(n) for n in names))
    labels = {"lsm": f"lsm (reservoir {size.n_neurons})",
              "projection": f"projection ({size.n_neurons} -> {args.pd})",
              "classifier": f"classifier ({args.bank_refs} x {args.pd})", "pipeline": "pipeline"}
    print(f"\n{'per node, per inference (pJ)':34s}" + "".join(f"{n:>{width + 2}s}" for n in names))
    for key, label in labels.items():
        print(f"{label:34s}" + "".join(f"{_fmt(nodes[n]['energy_pj'][key]):>{width + 2}s}"
                                        for n in names))
    for key, label in labels.items():
        print(f"{'ratio, ' + label:34s}" + "".join(
            f"{_fmt(nodes[n]['ratio'][key]) + 'x':>{width + 2}s}" for n in names))
    print("sensitivity: heads + bank weights")
    print(f"{'  streamed from DRAM, pipeline pJ':34s}" + "".join(
        f"{_fmt(v['energy_pj']['pipeline']):>{width + 2}s}" for v in dram.values()))
    print(f"{'  ratio, pipeline':34s}" + "".join(
        f"{_fmt(v['ratio']['pipeline']) + 'x':>{width + 2}s}" for v in dram.values()))
    print("\nwhere weights live ([weights] of each profile; each access is priced once):")
    for prof in profiles:
        w = prof.weights
        if w is None:
            continue
        fetch = (f"; DRAM row: macs {_fmt(prof.prices['macs'].value_pj)} -> "
                 f"{_fmt(prof.weights_from_dram().prices['macs'].value_pj)} pJ (the "
                 f"{_fmt(w.mac_weight_fetch.value_pj)} pJ SRAM weight read replaced by one DRAM "
                 f"byte)" if w.mac_weight_fetch and "macs" in prof.prices else "")
        print(f"  {prof.name}: reservoir weights {w.reservoir}, heads and bank {w.heads}{fetch}")
    print(f"published ratios: {published_line()} (their baselines and methods are the authors'; "
          "not recomputable here).")


def _print_table(size, activity, geometry, ops, rows) -> None:
    rt, ct = geometry.tiles(size.n_inputs, size.n_neurons)
    print(f"preset {size.name}: {size.n_inputs} inputs, {size.n_neurons} neurons, "
          f"{size.n_bins} bins (sizes from {size.source})")
    print(f"activity (stated, not measured): {activity.input_activity:g} of inputs active per bin "
          f"({activity.input_activity * size.n_inputs:g} of {size.n_inputs}), "
          f"{activity.firing_rate:g} spikes per neuron per bin")
    print(f"crossbar: {rt} x {ct} = {rt * ct} macro(s) of {geometry.macro_rows}x{geometry.macro_cols}"
          f" cells, differential pairs: {geometry.differential}\n")
    width = max(12, *(len(r.profile) for r in rows))
    print(f"{'energy per inference (pJ)':26s}{'count':>14s}" +
          "".join(f"{r.profile:>{width + 2}s}" for r in rows))
    for op, count in ops.items():
        cells = "".join(f"{(_fmt(r.energy_pj[op]) if op in r.energy_pj else '-'):>{width + 2}s}"
                        for r in rows)
        print(f"{op:26s}{_fmt(count):>14s}{cells}")
    print(f"{'total':26s}{'':14s}" + "".join(f"{_fmt(r.total_pj):>{width + 2}s}" for r in rows))
    print(f"{'ratio to ' + rows[0].profile:26s}{'':14s}" +
          "".join(f"{_fmt(r.ratio) + 'x':>{width + 2}s}" for r in rows))
    ours = ", ".join(f"{_fmt(r.ratio)}x on {r.profile}" for r in rows[1:])
    print(f"\npaper (Lin et al. 2025): energy efficiency {PAPER_RATIOS[0]:g}x and {PAPER_RATIOS[1]:g}x"
          " better than 'cutting-edge digital hardware' for its two tasks; its method and\n"
          "device-level figures are not published, so they cannot be recomputed here.")
    print(f"ours, reservoir only ({rows[0].profile} as 1x): {ours}.")


def _print_assumptions(activity, profiles) -> None:
    print("\nassumptions:")
    print(f"  - activity is stated: {activity.input_activity:g} input activity, "
          f"{activity.firing_rate:g} firing rate (change with --input-activity/--firing-rate);")
    print("  - rows driven per bin = active inputs + neurons that spiked; input and recurrent "
          "weights share one crossbar;")
    print("  - ops a profile does not list cost nothing on that hardware; the table above is the "
          "reservoir only (head and bank below);")
    for prof in profiles:
        for a in prof.assumptions:
            print(f"  - [{prof.name}] {a}")
        if prof.weights is not None:
            print(f"  - [{prof.name}] weights: heads {prof.weights.heads}, reservoir "
                  f"{prof.weights.reservoir}: {prof.weights.rule}")
        for op, price in prof.prices.items():
            print(f"  - [{prof.name}] {op} = {price.value:g} {price.unit}: {price.note} "
                  f"({price.citation})")


def _print_sensitivity(ref: str, sens) -> None:
    for b, srows in sens.items():
        base = srows[0].base_ratio if srows else math.nan
        print(f"\nsensitivity of {b} / {ref} (base {_fmt(base)}x): ratio when one constant is "
              "halved / doubled")
        by_key: dict[tuple[str, str], dict[float, float]] = {}
        for s in srows:
            by_key.setdefault((s.profile, s.op), {})[s.factor] = s.ratio
        for (prof, op), ratios in by_key.items():
            print(f"  {prof + '.' + op:42s} x0.5 -> {_fmt(ratios.get(0.5, math.nan)):>8s}x"
                  f"   x2 -> {_fmt(ratios.get(2.0, math.nan)):>8s}x")


def _fmt(x: float) -> str:
    return f"{x:.4g}"
