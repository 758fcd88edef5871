"""`rram-lsm check GRAPH`: validate a graph file (every node's parameters too) without running it."""
from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("check", help="validate a graph file without running it",
                       description="Load GRAPH as `rram-lsm run` would (includes, arguments, edges, "
                                   "every node's parameters against its kind, input paths and "
                                   "output folders) and start nothing. Exit 0 if it is valid, "
                                   "2 with the problem otherwise.")
    p.add_argument("graph", help="graph file (TOML)")
    p.add_argument("args", nargs="*", metavar="NAME:=VALUE", help="override graph arguments")
    p.add_argument("--host", help="check as `rram-lsm run --host HOST` would: only the paths of "
                                  "the nodes on HOST")
    p.set_defaults(func=run)


def run(args) -> int:
    import tempfile

    from ..graph import load_graph, parse_overrides

    graph = load_graph(args.graph, parse_overrides(args.args), tempfile.gettempdir(), host=args.host)
    edges = sum(len(s.outputs) for s in graph.nodes.values())
    nodes = ", ".join(f"{n} ({s.kind})" for n, s in graph.nodes.items())
    print(f"{args.graph}: graph {graph.name!r} is valid: {len(graph.nodes)} nodes, {edges} edges")
    print(f"  nodes: {nodes}")
    return 0
