"""`rram-lsm node KIND`: run one node on its own, so a graph can be split across hosts."""
from __future__ import annotations

import json

from ..graph import parse_overrides


def register(sub) -> None:
    p = sub.add_parser("node", help="run a single node process",
                       description="Run one node with explicit endpoints (or a --spec file the "
                                   "launcher wrote).")
    p.add_argument("kind", nargs="?", help="node kind (`rram-lsm kinds` lists them)")
    p.add_argument("--spec", help="JSON node spec written by the launcher")
    p.add_argument("--name", help="node (and stream) name; defaults to the kind")
    p.add_argument("--bind", help="input endpoint to bind, e.g. tcp://127.0.0.1:5555")
    p.add_argument("--output", action="append", default=[], metavar="ENDPOINT",
                   help="downstream endpoint to connect (repeatable)")
    p.add_argument("--policy", default="block", choices=["block", "drop"],
                   help="edge policy for the outputs")
    p.add_argument("--upstream", type=int, default=None,
                   help="number of upstream nodes (end-of-stream count); default 1 if --bind")
    p.add_argument("--telemetry", help="launcher telemetry endpoint to connect")
    p.add_argument("--param", action="append", default=[], metavar="KEY:=VALUE",
                   help="node parameter (TOML literal value; repeatable)")
    p.add_argument("--params-json", help="all node parameters as one JSON object")
    p.set_defaults(func=run)


def run(args) -> int:
    from rram_lsm.stream.runtime import NodeSpec
    from rram_lsm.stream.transport import EdgeConfig

    from ..nodeproc import read_spec, run_spec

    if args.spec:
        return run_spec(read_spec(args.spec))
    if not args.kind:
        raise ValueError("give a node KIND or --spec FILE")
    params = json.loads(args.params_json) if args.params_json else {}
    params.update(parse_overrides(args.param))
    name = args.name or args.kind
    outputs = [EdgeConfig(name=f"{name}->{i}", endpoint=ep, policy=args.policy)
               for i, ep in enumerate(args.output)]
    upstream = args.upstream if args.upstream is not None else (1 if args.bind else 0)
    spec = NodeSpec(name=name, kind=args.kind, params=params, bind=args.bind, outputs=outputs,
                    upstream=upstream, telemetry=args.telemetry)
    return run_spec(spec)
