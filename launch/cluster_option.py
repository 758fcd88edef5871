"""`--cluster [ADDRESS]`, the one spelling shared by encode, eval, demo and run."""
from __future__ import annotations

import argparse


def add_cluster_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--cluster", nargs="?", const="", default=None, metavar="ADDRESS",
        help="run on a Ray cluster: ADDRESS, 'local' (start one here) or, alone, $RAY_ADDRESS "
             "(needs the optional extra: pip install -e '.[cluster]')")
