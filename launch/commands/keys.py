"""`rram-lsm keys`: make CurveZMQ key pairs for the nodes of a graph that crosses hosts."""
from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("keys", help="make CurveZMQ key pairs (NAME.key, NAME.key_secret)",
                       description="Make one key pair per name in FOLDER. A graph with "
                                   "[graph.curve] keys = FOLDER needs one per node plus 'launcher'; "
                                   "copy each host only the secrets of the nodes it runs.")
    p.add_argument("folder", help="folder for the key files")
    p.add_argument("names", nargs="*", help="node names (default: the nodes of --graph)")
    p.add_argument("--graph", help="make a pair for every node of this graph file, and the launcher")
    p.set_defaults(func=run)


def run(args) -> int:
    from pathlib import Path

    from rram_lsm.stream.security import make_keypair

    from ..graph import read_graph_tables

    names = list(args.names)
    if args.graph:
        data = read_graph_tables(Path(args.graph))  # with its includes
        names += list(data.get("nodes", {})) + ["launcher"]
    if not names:
        raise ValueError("give node names or --graph GRAPH")
    for name in dict.fromkeys(names):
        pub, sec = make_keypair(args.folder, name)
        print(f"{name}: {pub} (public), {sec} (secret)")
    return 0
