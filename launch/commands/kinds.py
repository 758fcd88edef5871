"""`rram-lsm kinds [KIND]`: the node kinds, or one kind's declared parameters."""
from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("kinds", help="list node kinds, or one kind's parameters",
                       description="Without KIND: every node kind with a one-line description. "
                                   "With KIND (a name or package.module:Class): its parameters "
                                   "with type, default, unit and meaning.")
    p.add_argument("kind", nargs="?", help="a node kind, e.g. lsm")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..registry import NODE_KINDS, describe, node_class, params_table

    if args.kind is None:
        width = max(map(len, NODE_KINDS))
        for kind in NODE_KINDS:
            print(f"{kind:<{width}}  {describe(node_class(kind))}")
        print("\n`rram-lsm kinds KIND` prints a kind's parameters.")
        return 0
    cls = node_class(args.kind)
    print(f"{args.kind}: {describe(cls)}")
    print(params_table(cls))
    return 0
