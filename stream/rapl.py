"""Measured CPU energy through Linux powercap RAPL counters, where the host exposes them.

Reads ``/sys/class/powercap/intel-rapl:N/energy_uj`` of the top-level (package) zones only —
sub-zones (core, uncore, dram) are parts of their package and would count twice.  AMD CPUs
expose the same interface.  Since Linux 5.10 (CVE-2020-8694) ``energy_uj`` is readable by root
only on most distributions, and containers and VMs often have no powercap at all: then
``open_rapl`` returns ``None`` with the reason, and callers show "not measured" rather than 0.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path

POWERCAP_ROOT = Path("/sys/class/powercap")
_PACKAGE_ZONE = re.compile(r"^intel-rapl:\d+$")


@dataclass(frozen=True)
class RaplZone:
    """One package zone: its name (e.g. ``package-0``), counter file and wrap-around range."""

    name: str
    energy_file: Path
    max_energy_uj: int


@dataclass(frozen=True)
class RaplSample:
    """Counter values (µJ) of every zone and the monotonic time they were read."""

    uj: tuple[int, ...]
    t_ns: int


class RaplMeter:
    """Reads package energy counters and turns two samples into joules, handling wrap-around."""

    def __init__(self, zones: list[RaplZone]):
        if not zones:
            raise ValueError("RaplMeter needs at least one zone")
        self.zones = zones

    def sample(self) -> RaplSample:
        return RaplSample(tuple(int(z.energy_file.read_text().strip()) for z in self.zones),
                          time.monotonic_ns())

    def joules(self, start: RaplSample, end: RaplSample) -> float:
        """Energy of all package zones between two samples (one wrap per zone at most)."""
        total_uj = 0
        for zone, a, b in zip(self.zones, start.uj, end.uj):
            delta = b - a
            if delta < 0:  # the counter wrapped at max_energy_range_uj
                delta += zone.max_energy_uj + 1
            total_uj += delta
        return total_uj * 1e-6

    def watts(self, start: RaplSample, end: RaplSample) -> float:
        dt = (end.t_ns - start.t_ns) * 1e-9
        return self.joules(start, end) / dt if dt > 0 else 0.0


def open_rapl(root: Path = POWERCAP_ROOT) -> tuple[RaplMeter | None, str]:
    """A meter over the readable package zones under ``root``, or ``None`` and why not."""
    root = Path(root)
    if not root.is_dir():
        return None, f"{root} does not exist (no powercap: not Linux, a container or a VM)"
    zone_dirs = sorted(p for p in root.iterdir() if _PACKAGE_ZONE.match(p.name))
    if not zone_dirs:
        return None, f"no intel-rapl package zones under {root} (CPU or kernel without RAPL)"
    zones, problems = [], []
    for d in zone_dirs:
        energy = d / "energy_uj"
        try:
            int(energy.read_text().strip())
            max_uj = int((d / "max_energy_range_uj").read_text().strip())
            name = (d / "name").read_text().strip() if (d / "name").is_file() else d.name
        except PermissionError:
            problems.append(f"{energy}: permission denied (root-only since Linux 5.10, CVE-2020-8694)")
            continue
        except (OSError, ValueError) as exc:
            problems.append(f"{d}: unreadable ({exc})")
            continue
        zones.append(RaplZone(name, energy, max_uj))
    if not zones:
        return None, "; ".join(problems)
    return RaplMeter(zones), f"RAPL: {len(zones)} package zone(s): {', '.join(z.name for z in zones)}"
