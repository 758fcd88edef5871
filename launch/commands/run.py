"""`rram-lsm run GRAPH`: start a graph, one process per node, with a live telemetry table."""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

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
    from rich.console import Console
    from rich.live import Live

    from ..dashboard import Dashboard
    from ..graph import load_graph, parse_overrides
    from ..supervisor import Launcher
    from ..web import start_web

    graph = load_graph(args.graph, parse_overrides(args.args), socket_dir, host=args.host)
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
    launcher = Launcher(graph, run_dir, socket_dir, log_nodes=live_table,
                        on_report=dash.update, on_event=on_event, host=args.host)
    console.print(f"launcher: graph {graph.name!r}, {len(graph.nodes)} nodes, run folder {run_dir}", markup=False)
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
