"""Pacing accuracy of replay sources: achieved release time against the schedule.

A replay source releases each message when its last event is due (timestamp / speed).  This
measures, on this machine, how late messages actually leave (p50/p99/max, µs) for a 5 s
stream at several speeds and message sizes.  Order is always kept (checked).

    python benchmarks/pacing.py
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rram_lsm.nodes.sources.replay import ReplaySource  # noqa: E402
from rram_lsm.nodes.sources.synthetic import synthetic_sample  # noqa: E402


def measure(speed: float, max_events: int, rate_hz: float = 200_000, seconds: float = 5.0):
    ev = synthetic_sample(np.random.default_rng(0), "random", 0, (34, 34), rate_hz, int(seconds * 1e6))
    src = ReplaySource("bench", {"speed": speed, "max_events": max_events, "geometry": [34, 34]}, samples=[(ev, 0)])
    late, last_t1 = [], -1
    for pkt in src.packets():
        now = time.monotonic_ns()  # the pacer's own clock
        start = src.pacer.anchor_ns  # the moment the first event was due
        if pkt.kind != "events":
            continue
        assert pkt.t0 >= last_t1, "order broken"
        last_t1 = pkt.t1
        due = start + int((pkt.t1 - ev["t"][0]) * 1000 / speed)
        late.append((now - due) / 1e3)
    late = np.asarray(late)
    return len(late), np.percentile(late, 50), np.percentile(late, 99), late.max()


def main() -> None:
    print("| speed | events/message | messages | late p50 µs | late p99 µs | late max µs |")
    print("|---|---|---|---|---|---|")
    for speed in (1.0, 4.0):
        for max_events in (256, 4096):
            n, p50, p99, mx = measure(speed, max_events)
            print(f"| {speed} | {max_events} | {n} | {p50:.0f} | {p99:.0f} | {mx:.0f} |", flush=True)


if __name__ == "__main__":
    main()
