"""Energy accounting: operation counts × per-operation costs from a cited TOML profile.

A profile prices some of DESIGN.md's operation counts (``stream.node.OP_COUNTS``); every
constant carries its unit and a citation, and a profile that lacks either is refused, so no
figure this project prints rests on an unstated number.  Profiles are read with ``tomllib``
(data only, nothing executes).  Ops a profile does not list cost nothing on that hardware
(e.g. the RRAM macro does its synaptic work as ``cell_reads``, not ``synaptic_ops``).

Every profile also says where weights live (its ``[weights]`` table), and the accounting
follows one rule: **each weight access is priced once**.  The projection heads and the class
bank are small (a 200 -> 64 head of 8-bit weights is 12.8 KB, the 9 x 64 bank 0.6 KB), so
they sit in on-chip SRAM; their weight read is part of the ``macs`` price (Horowitz's 2.8 pJ
= 2.5 pJ SRAM read + multiply + add), and the nodes count no main-memory ``bytes_moved`` for
them.  ``EnergyProfile.weights_from_dram`` prices the sensitivity case where those weights are
streamed from DRAM instead: the SRAM read inside each MAC is *replaced* by a DRAM byte (one
8-bit weight per MAC), never added to it.

``stream`` must not import ``launch``: the packaged profiles (``launch/profiles/*.toml``) are
found by path, in the ``launch`` folder beside this one.
"""
from __future__ import annotations

import dataclasses
import math
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from .node import OP_COUNTS, ConfigError

# Units a constant may be written in, and their factor to pJ.
UNITS_TO_PJ: dict[str, float] = {"fJ": 1e-3, "pJ": 1.0, "nJ": 1e3}
_TOP_KEYS = {"name", "description", "assumptions", "ops", "weights"}
_ENTRY_KEYS = {"value", "unit", "citation", "note"}
_WEIGHT_KEYS = {"heads", "reservoir", "rule", "mac_weight_fetch"}
# Where a profile may keep weights: in the analogue array itself, in on-chip SRAM, in DRAM.
WEIGHT_LOCATIONS = ("in_array", "on_chip_sram", "dram")
# Published energy-efficiency ratios to set ours beside (what each compares against is the
# authors'; neither method is published in enough detail to recompute here).
PUBLISHED_RATIOS: tuple[tuple[str, tuple[float, float], str], ...] = (
    ("paper", (23.34, 160.0), "Lin et al., Nat. Comput. Sci. 5, 37-47 (2025), "
                              "doi:10.1038/s43588-024-00751-z"),
    ("PRIME", (37.8, 62.5), "same group and 40 nm RRAM macro, Sci. Adv. (2025), "
                            "doi:10.1126/sciadv.ads5340"),
)
# The constant 256 Kb macro of the paper; its row × column split is not published.
MACRO_ROWS = 512
MACRO_COLS = 512


class ProfileError(ConfigError):
    """A profile file that cannot be trusted; the message names the file and the key."""


@dataclass(frozen=True)
class Price:
    """One priced operation: energy per op in pJ, as written, with its source."""

    op: str
    value_pj: float
    value: float
    unit: str
    citation: str
    note: str = ""


@dataclass(frozen=True)
class WeightRule:
    """Where a profile keeps its weights, and the rule that prices each access once.

    ``heads``: the projection heads and class bank (digital MACs); ``reservoir``: the
    reservoir's synaptic weights; ``mac_weight_fetch``: the part of the ``macs`` price that
    is the on-chip read of the MAC's 8-bit weight (what a DRAM read would replace).
    """

    heads: str
    reservoir: str
    rule: str
    mac_weight_fetch: Price | None = None


@dataclass(frozen=True)
class EnergyProfile:
    """Per-operation energies of one kind of hardware, and where its weights live."""

    name: str
    description: str
    prices: dict[str, Price]
    assumptions: tuple[str, ...] = ()
    path: Path | None = None
    weights: WeightRule | None = None

    def energy_pj(self, ops: Mapping[str, float]) -> dict[str, float]:
        """Energy per priced op and ``total`` (pJ) for the given operation counts."""
        counts = check_ops(ops)
        out = {op: counts.get(op, 0) * price.value_pj for op, price in self.prices.items()}
        out["total"] = math.fsum(out.values())
        return out

    def total_pj(self, ops: Mapping[str, float]) -> float:
        return self.energy_pj(ops)["total"]

    def scaled(self, op: str, factor: float) -> "EnergyProfile":
        """A copy with one constant multiplied by ``factor`` (for sensitivity tables)."""
        if op not in self.prices:
            raise KeyError(f"profile {self.name!r} does not price {op!r}")
        price = self.prices[op]
        new = dataclasses.replace(price, value_pj=price.value_pj * factor, value=price.value * factor)
        return dataclasses.replace(self, prices={**self.prices, op: new})

    def weights_from_dram(self) -> "EnergyProfile":
        """Sensitivity copy: heads' and bank's weights streamed from DRAM, not held on chip.

        Each MAC reads its 8-bit weight (1 byte) from DRAM at this profile's ``bytes_moved``
        price *instead of* from SRAM: ``macs`` becomes macs - mac_weight_fetch + bytes_moved.
        The op counts stay the same, so the difference is exactly the weight traffic.
        """
        rule = self.weights
        if "macs" not in self.prices or rule is None or rule.heads == "dram":
            return dataclasses.replace(self, name=f"{self.name}+dram_weights")
        mac, dram = self.prices["macs"], self.prices["bytes_moved"]
        value_pj = mac.value_pj - rule.mac_weight_fetch.value_pj + dram.value_pj
        new = Price("macs", value_pj, value_pj, "pJ", f"{mac.citation}; {dram.citation}",
                    f"{self.name} macs with the weight read from DRAM: {mac.value_pj:g} - "
                    f"{rule.mac_weight_fetch.value_pj:g} + {dram.value_pj:g} pJ")
        heads = dataclasses.replace(rule, heads="dram")
        return dataclasses.replace(self, name=f"{self.name}+dram_weights",
                                   prices={**self.prices, "macs": new}, weights=heads)


def check_ops(ops: Mapping[str, float]) -> dict[str, float]:
    """Operation counts checked against the vocabulary: known names, finite, non-negative."""
    out: dict[str, float] = {}
    for op, count in ops.items():
        if op not in OP_COUNTS:
            raise ValueError(f"unknown operation count {op!r}; expected one of {OP_COUNTS}")
        if isinstance(count, bool) or not isinstance(count, (int, float)):
            raise ValueError(f"operation count {op!r} must be a number, got {count!r}")
        if not math.isfinite(count) or count < 0:
            raise ValueError(f"operation count {op!r} must be finite and >= 0, got {count!r}")
        out[op] = count
    return out


# ---------------------------------------------------------------- loading and validation

def profiles_dirs() -> list[Path]:
    """Where packaged profiles live: ``launch/profiles`` beside ``stream`` (the source tree and
    an installed ``rram_lsm`` both keep the two folders side by side)."""
    d = Path(__file__).resolve().parent.parent / "launch" / "profiles"
    return [d] if d.is_dir() else []


def list_profiles(dirs: Sequence[Path] | None = None) -> list[str]:
    """Names (file stems) of the profiles found in ``dirs`` (default: the packaged ones)."""
    names: set[str] = set()
    for d in dirs if dirs is not None else profiles_dirs():
        names.update(p.stem for p in Path(d).glob("*.toml"))
    return sorted(names)


def load_profile(name_or_path: str | Path, dirs: Sequence[Path] | None = None) -> EnergyProfile:
    """Load a profile from a ``.toml`` path, or by name from ``dirs`` (default: packaged)."""
    candidate = Path(name_or_path)
    if candidate.suffix == ".toml" or candidate.is_file():
        if not candidate.is_file():
            raise FileNotFoundError(f"energy profile file {candidate} does not exist")
        return _parse(candidate)
    search = list(dirs) if dirs is not None else profiles_dirs()
    for d in search:
        path = Path(d) / f"{name_or_path}.toml"
        if path.is_file():
            return _parse(path)
    known = list_profiles(search)
    raise FileNotFoundError(f"no energy profile named {str(name_or_path)!r}; known: {known}")


def _parse(path: Path) -> EnergyProfile:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"profile {path}: not valid TOML: {exc}") from None

    def fail(key: str, why: str) -> ProfileError:
        return ProfileError(f"profile {path}: key {key!r}: {why}")

    extra = set(data) - _TOP_KEYS
    if extra:
        raise fail(sorted(extra)[0], f"unknown top-level key; allowed: {sorted(_TOP_KEYS)}")
    for key in ("name", "description"):
        if not isinstance(data.get(key), str) or not data[key].strip():
            raise fail(key, "missing or not a non-empty string")
    assumptions = data.get("assumptions", [])
    if not isinstance(assumptions, list) or not all(isinstance(a, str) for a in assumptions):
        raise fail("assumptions", "must be a list of strings")
    ops = data.get("ops")
    if not isinstance(ops, dict) or not ops:
        raise fail("ops", "missing or empty: a profile must price at least one operation count")

    prices: dict[str, Price] = {}
    for op, entry in ops.items():
        key = f"ops.{op}"
        if op not in OP_COUNTS:
            raise fail(key, f"unknown operation count; expected one of {OP_COUNTS}")
        prices[op] = _price(op, entry, key, fail)
    weights = _weights(data.get("weights"), prices, fail)
    return EnergyProfile(data["name"].strip(), data["description"].strip(), prices,
                         tuple(assumptions), path, weights)


def _price(op: str, entry, key: str, fail) -> Price:
    """One ``{value, unit, citation, note}`` table, checked, as a :class:`Price`."""
    if not isinstance(entry, dict):
        raise fail(key, "must be a table with value, unit and citation")
    extra = set(entry) - _ENTRY_KEYS
    if extra:
        raise fail(f"{key}.{sorted(extra)[0]}", f"unknown key; allowed: {sorted(_ENTRY_KEYS)}")
    if "value" not in entry:
        raise fail(f"{key}.value", "missing constant")
    value = entry["value"]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise fail(f"{key}.value", f"must be a number, got {value!r}")
    if not math.isfinite(value) or value < 0:
        raise fail(f"{key}.value", f"must be finite and >= 0, got {value!r}")
    unit = entry.get("unit")
    if unit not in UNITS_TO_PJ:
        raise fail(f"{key}.unit", f"must be one of {sorted(UNITS_TO_PJ)}, got {unit!r}")
    citation = entry.get("citation")
    if not isinstance(citation, str) or not citation.strip():
        raise fail(f"{key}.citation", "missing or empty: every constant must cite its source")
    note = entry.get("note", "")
    if not isinstance(note, str):
        raise fail(f"{key}.note", "must be a string")
    return Price(op, float(value) * UNITS_TO_PJ[unit], float(value), unit, citation.strip(),
                 note.strip())


def _weights(table, prices: dict[str, Price], fail) -> WeightRule:
    """The ``[weights]`` table: required, so no profile leaves where weights live unsaid."""
    if not isinstance(table, dict):
        raise fail("weights", "missing: a profile must say where weights live ([weights] with "
                              "heads, reservoir, rule)")
    extra = set(table) - _WEIGHT_KEYS
    if extra:
        raise fail(f"weights.{sorted(extra)[0]}", f"unknown key; allowed: {sorted(_WEIGHT_KEYS)}")
    for key in ("heads", "reservoir"):
        if table.get(key) not in WEIGHT_LOCATIONS:
            raise fail(f"weights.{key}", f"must be one of {WEIGHT_LOCATIONS}, got {table.get(key)!r}")
    if not isinstance(table.get("rule"), str) or not table["rule"].strip():
        raise fail("weights.rule", "missing: say in words how each weight access is priced once")
    fetch = None
    if "mac_weight_fetch" in table:
        fetch = _price("macs", table["mac_weight_fetch"], "weights.mac_weight_fetch", fail)
    if "macs" in prices and table["heads"] != "dram":
        if fetch is None:
            raise fail("weights.mac_weight_fetch", "missing: the part of ops.macs that is the "
                                                   "on-chip weight read (for the DRAM sensitivity)")
        if fetch.value_pj > prices["macs"].value_pj:
            raise fail("weights.mac_weight_fetch", f"{fetch.value_pj:g} pJ exceeds ops.macs "
                                                   f"({prices['macs'].value_pj:g} pJ) it is part of")
        if "bytes_moved" not in prices:
            raise fail("ops.bytes_moved", "missing: the DRAM byte price the weights-from-DRAM "
                                          "sensitivity uses")
    return WeightRule(table["heads"], table["reservoir"], table["rule"].strip(), fetch)


# ---------------------------------------------------------------- comparison

@dataclass(frozen=True)
class CompareRow:
    """One profile's energy for the same op counts, and its ratio to the reference profile."""

    profile: str
    energy_pj: dict[str, float]
    total_pj: float
    ratio: float


def compare(ops: Mapping[str, float], profiles: Sequence[EnergyProfile]) -> list[CompareRow]:
    """Energy of ``ops`` on each profile; ``ratio`` = total / total of ``profiles[0]``."""
    if not profiles:
        raise ValueError("compare needs at least one profile")
    rows = []
    ref = profiles[0].total_pj(ops)
    for prof in profiles:
        e = prof.energy_pj(ops)
        ratio = e["total"] / ref if ref > 0 else math.inf
        rows.append(CompareRow(prof.name, e, e["total"], ratio))
    return rows


@dataclass(frozen=True)
class SensitivityRow:
    """How the ratio B/A moves when one constant of one profile is scaled."""

    profile: str
    op: str
    factor: float
    ratio: float
    base_ratio: float


def sensitivity(ops: Mapping[str, float], profile_a: EnergyProfile, profile_b: EnergyProfile,
                factors: Iterable[float] = (0.5, 2.0)) -> list[SensitivityRow]:
    """Ratio total_B / total_A with each constant of A, then of B, halved and doubled."""
    a0, b0 = profile_a.total_pj(ops), profile_b.total_pj(ops)
    base = b0 / a0 if a0 > 0 else math.inf
    rows = []
    for which, prof in (("a", profile_a), ("b", profile_b)):
        for op in prof.prices:
            for f in factors:
                scaled = prof.scaled(op, f).total_pj(ops)
                a, b = (scaled, b0) if which == "a" else (a0, scaled)
                rows.append(SensitivityRow(prof.name, op, f, b / a if a > 0 else math.inf, base))
    return rows


# ---------------------------------------------------------------- analytic LSM op counts

@dataclass(frozen=True)
class ReservoirActivity:
    """Stated activity of one inference: inputs active per bin and reservoir firing rate."""

    input_activity: float = 0.1   # fraction of (binarised) inputs that are 1 in a bin
    firing_rate: float = 0.1      # spikes per neuron per bin

    def __post_init__(self) -> None:
        for key in ("input_activity", "firing_rate"):
            v = getattr(self, key)
            if not (isinstance(v, (int, float)) and 0.0 <= v <= 1.0):
                raise ConfigError(f"{key} must be a fraction in [0, 1], got {v!r}")


@dataclass(frozen=True)
class CrossbarGeometry:
    """How the reservoir maps onto 256 Kb macros (the split is an assumption)."""

    macro_rows: int = MACRO_ROWS
    macro_cols: int = MACRO_COLS
    differential: bool = True     # each weight is a pair G+ − G− in two columns

    def tiles(self, n_inputs: int, n_neurons: int) -> tuple[int, int]:
        """(row tiles, column tiles) for a (n_inputs + n_neurons) × n_neurons weight matrix."""
        rows = n_inputs + n_neurons
        cols = n_neurons * (2 if self.differential else 1)
        return math.ceil(rows / self.macro_rows), math.ceil(cols / self.macro_cols)


def reservoir_ops(n_inputs: int, n_neurons: int, n_bins: int,
                  activity: ReservoirActivity = ReservoirActivity(),
                  geometry: CrossbarGeometry = CrossbarGeometry()) -> dict[str, float]:
    """Expected op counts of one reservoir inference (expected values, hence floats).

    Per bin, the driven rows are the active inputs plus the neurons that spiked in the
    previous bin (input and recurrent weights share one crossbar).  Each driven row is read
    across every column (both cells of each pair) and needs one driver per column tile; every
    row tile digitises one partial sum per neuron (the differential current is subtracted in
    analogue before the ADC).  ``synaptic_ops`` is the event-driven work (fan-out of every
    driven row), ``dense_macs`` the dense-equivalent work of a clocked accelerator.  Weights stay
    on chip, so ``bytes_moved`` (main memory) is 0.
    """
    for key, v in (("n_inputs", n_inputs), ("n_neurons", n_neurons), ("n_bins", n_bins)):
        if not isinstance(v, int) or v <= 0:
            raise ConfigError(f"{key} must be a positive integer, got {v!r}")
    row_tiles, col_tiles = geometry.tiles(n_inputs, n_neurons)
    spikes_per_bin = activity.firing_rate * n_neurons
    rows_per_bin = activity.input_activity * n_inputs + spikes_per_bin
    cols = n_neurons * (2 if geometry.differential else 1)
    return {
        "dac_row_activations": n_bins * rows_per_bin * col_tiles,
        "cell_reads": n_bins * rows_per_bin * cols,
        "adc_conversions": float(n_bins * n_neurons * row_tiles),
        "synaptic_ops": n_bins * rows_per_bin * n_neurons,
        "neuron_updates": float(n_bins * n_neurons),
        "spikes": n_bins * spikes_per_bin,
        "dense_macs": float(n_bins * (n_inputs + n_neurons) * n_neurons),
        "bytes_moved": 0.0,
    }


# ---------------------------------------------------------------- analytic head and bank op counts

def head_ops(n_features: int, layers: Sequence[int], rows: int = 1) -> dict[str, float]:
    """Op counts of a projection head on ``rows`` feature rows (as ProjectionNode counts them).

    Per row: ``n_features`` standardisation MACs, ``in x out`` per dense layer, ``pd`` for the
    L2 norm.  The weights are in on-chip SRAM, their read inside each MAC's price, so there is
    no main-memory traffic (``bytes_moved`` 0).
    """
    widths = [int(n_features), *(int(w) for w in layers)]
    if not layers or any(w <= 0 for w in widths) or rows < 0:
        raise ConfigError(f"head sizes must be positive, got n_features={n_features}, layers={layers}")
    per_row = widths[0] + sum(a * b for a, b in zip(widths, widths[1:])) + widths[-1]
    return {"macs": float(rows * per_row), "bytes_moved": 0.0}


def bank_ops(n_references: int, dim: int, rows: int = 1) -> dict[str, float]:
    """Op counts of cosine classification of ``rows`` queries against a bank (as the
    classifier node counts them): ``dim`` MACs to normalise the query, then one ``dim``-long
    dot product per reference row; the bank is in on-chip SRAM (no ``bytes_moved``)."""
    if n_references <= 0 or dim <= 0 or rows < 0:
        raise ConfigError(f"bank sizes must be positive, got n_references={n_references}, dim={dim}")
    return {"macs": float(rows * (n_references + 1) * dim), "bytes_moved": 0.0}
