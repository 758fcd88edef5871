"""`rram-lsm demo`: the whole system of the paper on the built-in data, live, with a report."""
from __future__ import annotations

import sys
from pathlib import Path

from ..cluster_option import add_cluster_option, cluster_executor
from ..metrics import add_metrics_options
from ..web import add_web_args
from .eval import add_loss_args, add_windows_arg, loss_args


def register(sub) -> None:
    p = sub.add_parser(
        "demo", help="the full pipeline on the built-in data, live, then an HTML report",
        description="Builds or reuses the built-in dataset, encodes DVS, cochlea and "
                    "handwriting-neural digits with the LSM, trains the projection heads of "
                    "two pairs (audio-visual, the paper's association, and neural-visual, "
                    "modalities that share structure) on digits 1-7, then runs the whole graph "
                    "(three sources, three LSMs, four projections, a zero-shot classifier and a "
                    "sink per pair) as separate processes with a live dashboard: seen / unseen "
                    "/ H per pair beside chance.  Writes a report with figures into the run "
                    "folder.  Its heads default to the recipe validation chose for "
                    "neural-visual (--loss supcon --windows 4); --loss paper --windows 1 gives "
                    "the paper's.")
    p.add_argument("--pair", choices=("both", "audio-visual", "neural-visual"), default="both",
                   help="both pairs from three sources (default), or one pair alone")
    p.add_argument("--size", choices=("full", "tiny"), default="full",
                   help="built-in dataset size (default %(default)s)")
    p.add_argument("--samples", type=int, default=162,
                   help="held-out test samples per modality, balanced over digits 1-9 "
                        "(default %(default)s: every visual half-A and neural test sample, so "
                        "each pair streams about 70 unseen-class trials; fewer for a faster demo)")
    p.add_argument("--speed", type=float, default=1.0,
                   help="replay speed, 1.0 = real time, 0 = as fast as possible (default 1.0)")
    p.add_argument("--device", choices=("rram", "ideal"), default="rram",
                   help="RRAM device model or ideal software LSM (default %(default)s)")
    p.add_argument("--epochs", type=int, default=30,
                   help="head training epochs (default 30, epoch chosen on validation; the "
                        "paper trains 100: --epochs 100)")
    add_loss_args(p)
    add_windows_arg(p)
    # the demo's recipe: the loss and windows validation chose for neural-visual (eval --ideas)
    p.set_defaults(loss="supcon", windows=4)
    p.add_argument("--sweep-splits", type=int, default=0,
                   help="run a reduced split sweep of this many splits per pair (default 0: "
                        "none; a cached `rram-lsm eval` results/results.json is used if there "
                        "is one, else the demo points to the full sweep)")
    p.add_argument("--out", type=Path, default=None, help="run folder (default runs/demo-PAIR-TIME)")
    p.add_argument("--no-dashboard", action="store_true", help="plain progress lines, no live table")
    add_metrics_options(p)
    add_web_args(p)
    add_cluster_option(p)   # the model preparation's pieces; the graph itself runs here
    p.set_defaults(func=run)


def run(args) -> int:
    from rram_lsm.experiments.config import ExperimentConfig
    from rram_lsm.experiments.demo_model import ModelConfig
    from rram_lsm.nodes.projection.train_config import TrainConfig

    from ..demo import BOTH, DemoConfig, run_demo

    experiment = ExperimentConfig(size=args.size, windows=args.windows,
                                  heads=TrainConfig(epochs=args.epochs, threads=2, **loss_args(args)))
    if args.sweep_splits < 0:
        raise ValueError(f"--sweep-splits must be >= 0, got {args.sweep_splits}")
    pairs = BOTH if args.pair == "both" else None
    model = ModelConfig(pair="audio-visual" if pairs else args.pair, device=args.device,
                        experiment=experiment, sweep_splits=args.sweep_splits)
    cfg = DemoConfig(model=model, pairs=pairs, samples=args.samples,
                     speed=None if args.speed == 0 else args.speed,
                     out=args.out, dashboard=not args.no_dashboard, metrics_port=args.metrics_port,
                     metrics_host=args.metrics_host, allow_remote=args.allow_remote,
                     web=args.web, web_host=args.web_host)
    with cluster_executor(args):
        code, _ = run_demo(cfg, log=lambda s: print(s, flush=True))
    sys.stdout.flush()
    return code
