"""`rram-lsm bench NAME`: run one of the benchmarks in the repository's `benchmarks/` folder."""
from __future__ import annotations

import argparse
from pathlib import Path

BENCHMARKS = {
    "transport": "rram-lsm edges vs bare pyzmq: one hop and four hops, ipc and tcp",
    "lsm": "the Numba reservoir vs the dense torch reference and snnTorch",
    "fuzz": "100,000 random and mutated messages into every node kind",
    "soak": "the full pipeline at 1 M events/s for 10 minutes: memory growth and accounting",
    "pacing": "replay pacing: achieved release times against the schedule",
}


def register(sub) -> None:
    p = sub.add_parser("bench", help="run a benchmark (see `rram-lsm bench --list`)",
                       description="Run a benchmark script from benchmarks/; extra arguments are "
                                   "passed to it (e.g. `rram-lsm bench soak --minutes 2`).")
    p.add_argument("name", nargs="?", choices=sorted(BENCHMARKS), help="benchmark to run")
    p.add_argument("--list", action="store_true", help="list the benchmarks")
    # REMAINDER: options such as --quick or --minutes belong to the benchmark, not to us
    p.add_argument("rest", nargs=argparse.REMAINDER, help="arguments for the benchmark")
    p.set_defaults(func=run)


def run(args) -> int:
    import subprocess
    import sys

    if args.list or not args.name:
        for name, what in BENCHMARKS.items():
            print(f"{name:10s} {what}")
        return 0
    script = Path(__file__).resolve().parents[2] / "benchmarks" / f"{args.name}.py"
    if not script.is_file():
        raise FileNotFoundError(f"{script} not found: benchmarks run from a source checkout "
                                "(git clone, then pip install -e .)")
    return subprocess.call([sys.executable, str(script), *args.rest])
