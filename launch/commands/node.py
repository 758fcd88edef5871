"""`rram-lsm node KIND`: run one node on its own, so a graph can be split across hosts."""
from __future__ import annotations

import json

from ..binds import is_loopback
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
    p.add_argument("--from", dest="upstream_names", action="append", default=[], metavar="NODE",
                   help="an upstream node's name (repeatable): only these can end this node's input "
                        "with end_of_stream (default: any peer that connects)")
    p.add_argument("--telemetry", help="launcher telemetry endpoint to connect")
    p.add_argument("--param", action="append", default=[], metavar="KEY:=VALUE",
                   help="node parameter (TOML literal value; repeatable)")
    p.add_argument("--params-json", help="all node parameters as one JSON object")
    p.add_argument("--allow-remote", action="store_true",
                   help="allow a --bind off loopback (0.0.0.0, *, an interface, another address); "
                        "needs --keys, as a graph with allow_remote needs [graph.curve]")
    p.add_argument("--keys", metavar="FOLDER",
                   help="CurveZMQ key pairs made by `rram-lsm keys`: this node uses NAME.key_secret "
                        "and accepts the peers named by --allow")
    p.add_argument("--allow", action="append", default=[], metavar="PEER",
                   help="with --keys: a peer (FOLDER/PEER.key) allowed to connect (repeatable)")
    p.add_argument("--server", action="append", default=[], metavar="PEER",
                   help="with --keys: the peer bound at each --output, in the same order")
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
    if args.bind and not is_loopback(args.bind):
        if not args.allow_remote:
            raise ValueError(f"--bind {args.bind} is not a loopback address: it would listen on other "
                             "hosts' network; give --allow-remote with --keys to expose it")
        if not args.keys:
            raise ValueError("--allow-remote needs --keys FOLDER (CurveZMQ), as a graph's allow_remote "
                             "needs [graph.curve]")
    outputs = [EdgeConfig(name=f"{name}->{i}", endpoint=ep, policy=args.policy)
               for i, ep in enumerate(args.output)]
    upstream = args.upstream if args.upstream is not None else (1 if args.bind else 0)
    spec = NodeSpec(name=name, kind=args.kind, params=params, bind=args.bind, outputs=outputs,
                    upstream=upstream, upstream_names=args.upstream_names, telemetry=args.telemetry,
                    curve=_curve(args, name) if args.keys else None)
    return run_spec(spec)


def _curve(args, name: str) -> dict:
    """CurveConfig fields from --keys/--allow/--server."""
    from pathlib import Path

    from rram_lsm.stream.security import public_key

    keys = Path(args.keys)
    if len(args.server) != len(args.output):
        raise ValueError(f"--keys: give one --server PEER per --output ({len(args.output)} outputs, "
                         f"{len(args.server)} servers)")
    return {"secret_file": str(keys / f"{name}.key_secret"),
            "allow": [public_key(keys / f"{peer}.key") for peer in args.allow],
            "servers": {ep: public_key(keys / f"{peer}.key") for ep, peer in zip(args.output, args.server)}}
