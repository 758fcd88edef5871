"""`--cluster [ADDRESS]`, the one spelling shared by encode, eval, demo and run."""
from __future__ import annotations

import argparse
import contextlib


def add_cluster_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--cluster", nargs="?", const="", default=None, metavar="ADDRESS",
        help="run on a Ray cluster: ADDRESS, 'local' (start one here) or, alone, $RAY_ADDRESS "
             "(needs the optional extra: pip install -e '.[cluster]')")


@contextlib.contextmanager
def cluster_executor(args):
    """The command's pieces on the cluster its ``--cluster`` names (or here, without it)
    for the duration of the block; a ClusterError (a ValueError: exit code 2) before any
    work when Ray is missing or no address was given."""
    from rram_lsm.experiments.executor import for_cluster, using

    with using(for_cluster(getattr(args, "cluster", None))) as executor:
        yield executor
