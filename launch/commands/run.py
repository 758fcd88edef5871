"""`rram-lsm run GRAPH`: start a graph, one process per node, with a live telemetry table."""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from ..cluster_option import add_cluster_option
from ..metrics import add_metrics_options
from ..web import add_web_args

PREFIX = "rram-lsm-"


def register(sub) -> None:
    p = sub.add_parser("run", help="run a graph file (one process per node)",
                       description="Start every node of GRAPH as its own process, supervise them "
                                   "(restart with back-off), show live telemetry, write it as JSON "
                                   "lines, and stop everything on Ctrl-C or end of stream.")
    p.add_argument("graph", help="graph file (TOML), e.g. launch/graphs/smoke.toml")
    p.add_argument("args", nargs="*", metavar="NAME:=VALUE", help="override graph arguments")
    p.add_argument("--run-dir", help="folder for telemetry, logs and outputs (default runs/NAME-TIME)")
    p.add_argument("--timeout", type=float, help="stop the graph after this many seconds")
    p.add_argument("--no-dashboard", action="store_true", help="no live table (plain log lines)")
    p.add_argument("--host", help="run only the nodes with this `host` (one half of a multi-host graph)")
    add_metrics_options(p)
    add_web_args(p)
    add_cluster_option(p)
    p.set_defaults(func=run)


def run(args) -> int:
    """Run the graph; its ipc socket folder (mode 0700) is removed whatever the exit."""
    from ..binds import remove_stale_socket_dirs

    remove_stale_socket_dirs(Path(tempfile.gettempdir()), PREFIX)  # left by a SIGKILLed launcher
    socket_dir = Path(tempfile.mkdtemp(prefix=PREFIX))  # mkdtemp: mode 0700
    (socket_dir / "launcher.pid").write_text(str(os.getpid()))
    try:
        return _run(args, socket_dir)
    finally:
        shutil.rmtree(socket_dir, ignore_errors=True)


def _run(args, socket_dir: Path) -> int:
    from ..graph import load_graph, parse_overrides

    cluster = getattr(args, "cluster", None)
    if cluster is not None and args.host:
        raise ValueError("--cluster places every node itself; --host is for a graph started by hand on each host")
    # on a cluster a node's files exist where it lands, not necessarily here
    graph = load_graph(args.graph, parse_overrides(args.args), socket_dir, host=args.host,
                       check_files=cluster is None)
    backend = _backend(graph, cluster)
    try:
        return _supervise(args, graph, socket_dir, backend)
    finally:
        if backend is not None:
            backend.close()


def _backend(graph, cluster: str | None):
    """The Ray backend that places ``graph``'s nodes on the cluster, or None to run them here."""
    if cluster is None:
        return None
    from rram_lsm.experiments.cluster import connect

    from ..ray_backend import RayBackend
    return RayBackend(graph, connect(cluster))


def _supervise(args, graph, socket_dir: Path, backend) -> int:
    from rich.console import Console
    from rich.live import Live

    from ..dashboard import Dashboard
    from ..supervisor import Launcher
    from ..web import start_web

    run_dir = Path(args.run_dir or Path("runs") / f"{graph.name}-{time.strftime('%Y%m%d-%H%M%S')}")
    console = Console(stderr=True)
    if not console.is_terminal:
        console = Console(stderr=True, width=200)
    dash = Dashboard()
    metrics = None
    if getattr(args, "metrics_port", None):
        from ..metrics import start_metrics
        metrics = start_metrics(args.metrics_port, lambda m: console.print(m, markup=False),
                                args.metrics_host, args.allow_remote)
    live_table = console.is_terminal and not args.no_dashboard

    def on_event(ev: dict) -> None:
        dash.on_event(ev)
        if metrics is not None:
            metrics.on_event(ev)
        if not live_table and ev["event"] != "started":
            console.print(f"launcher: {dash.events[-1] if dash.events else ev}", markup=False)

    web = start_web(dash, args.web, args.web_host, args.allow_remote, graph.name,
                    lambda m: console.print(m, markup=False))  # a daemon thread: gone on exit
    placement = {} if backend is None else {"start": backend.start,
                                            "telemetry_endpoint": backend.telemetry_endpoint}
    launcher = Launcher(graph, run_dir, socket_dir, log_nodes=live_table or backend is not None,
                        on_report=dash.update, on_event=on_event, host=args.host, **placement)
    console.print(f"launcher: graph {graph.name!r}, {len(graph.nodes)} nodes, run folder {run_dir}", markup=False)
    for name, where in (backend.placed if backend is not None else {}).items():
        launcher.event("placed", node=name, ray_node=where["node_id"], ip=where["ip"],
                       endpoint=graph.nodes[name].bind)
    if live_table:
        with Live(dash.table(graph.name), console=console, refresh_per_second=2) as live:
            launcher.on_report = lambda r: (dash.update(r), metrics and metrics.update(r),
                                            live.update(dash.table(graph.name)))
            code = launcher.run(args.timeout)
    else:
        if metrics is not None:
            launcher.on_report = lambda r: (dash.update(r), metrics.update(r))
        code = launcher.run(args.timeout)
    console.print(dash.table(f"{graph.name} (final)"))
    console.print(f"launcher: telemetry in {run_dir / 'telemetry.jsonl'}", markup=False)
    if web is not None:
        web.close()
    sys.stdout.flush()
    return code
