"""`rram-lsm eval`: every experiment the data allows -> results.md, results.json and plots."""
from __future__ import annotations

import json
from pathlib import Path

from rram_lsm.experiments.config import LOSS_NAMES, check_loss, check_windows
from rram_lsm.launch.cluster_option import add_cluster_option, cluster_executor


def register(sub) -> None:
    p = sub.add_parser(
        "eval", help="run the paper's experiments and write results.md / results.json",
        description="Linear probes, zero-shot audio<->visual and neural<->visual (ideal and "
                    "rram devices), the unseen-class split sweep and optionally the RRAM "
                    "robustness sweep, on the built-in dataset; our numbers beside the "
                    "paper's, with chance levels.")
    p.add_argument("--size", choices=("full", "tiny"), default="full",
                   help="built-in dataset size (default %(default)s)")
    p.add_argument("--sweep", choices=("reduced", "full"), default="reduced",
                   help="split sweep: reduced (9 splits x 2 seeds) or full (36 x 3)")
    p.add_argument("--splits", default=None, help="override: 'all' or a number of splits")
    p.add_argument("--seeds", type=int, default=None, help="override: seeds per split")
    p.add_argument("--robustness", choices=("off", "reduced", "full"), nargs="?", const="reduced",
                   default="off", help="RRAM robustness sweep (flag alone = reduced)")
    p.add_argument("--ideas", action="store_true",
                   help="also measure the ideas past the paper (losses, deeper head, windowed "
                        "rates, reservoir-seed ensemble) on the split sweep, each one change "
                        "on top of this run's --loss and --windows")
    p.add_argument("--baselines", type=int, nargs="?", const=5, default=0, metavar="EPOCHS",
                   help="also train the paper's baselines (LSM and SRNN prototypical nets, "
                        "SRNN-CLIP by BPTT, SRNN and RNN readouts) and compare training costs; "
                        "EPOCHS = BPTT epochs actually run (flag alone = 5)")
    p.add_argument("--devices", default="ideal,rram", help="devices (default ideal,rram)")
    p.add_argument("--epochs", type=int, default=100, help="head epochs (default 100)")
    p.add_argument("--pd", type=int, default=64, help="embedding dimension (default 64)")
    add_loss_args(p)
    add_windows_arg(p)
    p.add_argument("--train-seeds", type=int, default=3, help="seeds of the fixed-split runs")
    p.add_argument("--no-raw-probe", action="store_true", help="skip the raw-frame probe")
    p.add_argument("--gain-factors", default="0.5,1,2",
                   help="gain candidates as multiples of each preset's const (default %(default)s)")
    p.add_argument("--neural-neurons", type=int, default=None,
                   help="reservoir size of the neural encoder (default: bmi_neural's 2048)")
    p.add_argument("--pairs", default="audio-visual,neural-visual",
                   help="zero-shot settings; 'neural-visual-letters' alone runs the BMI protocol "
                        "on the built-in letters instead (experiments/bmi.py: --splits random "
                        "4-letter sets, default 20, x --seeds, default 3; R S T U x --train-seeds; "
                        "--epochs; --neural-neurons sizes both reservoirs)")
    p.add_argument("--gzsl-folds", type=int, default=3,
                   help="pseudo-unseen validation folds choosing the generalised zero-shot "
                        "calibration (default 3; 0 skips GZSL)")
    p.add_argument("--reservoir-seed", type=int, default=0)
    p.add_argument("--data-seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("results"), help="output folder")
    add_cluster_option(p)
    p.set_defaults(func=run)


def add_loss_args(p) -> None:
    """``--loss`` and ``--temperature`` of the projection heads (train, eval, demo)."""
    p.add_argument("--loss", choices=LOSS_NAMES, default="paper",
                   help="head loss: the paper's (default), symmetric InfoNCE, or supervised "
                        "contrastive (supcon at T=0.1 is what validation chose for "
                        "neural-visual in `eval --ideas`)")
    p.add_argument("--temperature", type=float, default=None,
                   help="loss temperature (default 1 for the paper's loss, 0.1 otherwise)")


def add_windows_arg(p) -> None:
    """``--windows``: rate windows per sample in the LSM features (train, eval, demo)."""
    p.add_argument("--windows", type=int, default=1,
                   help="LSM features: each neuron's rate in this many consecutive windows of "
                        "the sample (default 1: the paper's one mean rate; 4 with --loss supcon "
                        "is what validation chose for neural-visual)")


def loss_args(args) -> dict:
    """``{"loss", "temperature"}`` from the parsed ``--loss`` / ``--temperature``."""
    t = args.temperature if args.temperature is not None else (1.0 if args.loss == "paper" else 0.1)
    check_loss(args.loss, t)
    return {"loss": args.loss, "temperature": float(t)}


def config_from_args(args):
    from rram_lsm.experiments.config import ExperimentConfig
    from rram_lsm.experiments.eval import EvalConfig
    from rram_lsm.experiments.robustness import ROBUSTNESS_FULL, ROBUSTNESS_REDUCED
    from rram_lsm.nodes.projection.train_config import TrainConfig

    devices = tuple(d.strip() for d in args.devices.split(",") if d.strip())
    if not devices or any(d not in ("ideal", "rram") for d in devices):
        raise ValueError(f"--devices must list ideal and/or rram, got {args.devices!r}")
    n_splits, seeds = (9, 2) if args.sweep == "reduced" else (None, 3)
    if args.splits is not None:
        if args.splits == "all":
            n_splits = None
        elif args.splits.isdigit() and int(args.splits) >= 2:
            n_splits = int(args.splits)
        else:
            raise ValueError(f"--splits must be 'all' or a number >= 2, got {args.splits!r}")
    if args.seeds is not None:
        if args.seeds < 1:
            raise ValueError(f"--seeds must be >= 1, got {args.seeds}")
        seeds = args.seeds
    if args.epochs < 1 or args.pd < 1 or args.train_seeds < 1:
        raise ValueError("--epochs, --pd and --train-seeds must be positive")
    if args.gzsl_folds < 0:
        raise ValueError(f"--gzsl-folds must be >= 0, got {args.gzsl_folds}")
    if args.baselines < 0:
        raise ValueError(f"--baselines must be a number of epochs >= 1, got {args.baselines}")
    factors = parse_factors(args.gain_factors)
    pairs = tuple(x.strip() for x in args.pairs.split(",") if x.strip())
    if not pairs or any(x not in ("audio-visual", "neural-visual") for x in pairs):
        raise ValueError(f"--pairs must list audio-visual and/or neural-visual, got {args.pairs!r}")
    neural = {}
    if args.neural_neurons is not None:
        if args.neural_neurons < 1:
            raise ValueError(f"--neural-neurons must be >= 1, got {args.neural_neurons}")
        neural["n_neurons"] = args.neural_neurons
    grid = {"off": None, "reduced": ROBUSTNESS_REDUCED, "full": ROBUSTNESS_FULL}[args.robustness]
    experiment = ExperimentConfig(
        size=args.size, data_seed=args.data_seed, reservoir_seed=args.reservoir_seed,
        gain_factors=factors, windows=check_windows(args.windows), neural_overrides=neural,
        heads=TrainConfig(pd=args.pd, epochs=args.epochs, threads=2, **loss_args(args)))
    return EvalConfig(experiment=experiment, devices=devices,
                      train_seeds=tuple(range(args.train_seeds)), sweep_splits=n_splits,
                      sweep_seeds=tuple(range(seeds)), robustness=grid,
                      raw_probe=not args.no_raw_probe, pairs=pairs, ideas=args.ideas,
                      baselines=args.baselines, gzsl_folds=args.gzsl_folds)


def parse_factors(text: str) -> tuple[float, ...]:
    try:
        out = tuple(float(f) for f in text.split(",") if f.strip())
    except ValueError:
        raise ValueError(f"--gain-factors must be comma-separated numbers, got {text!r}") from None
    if not out or any(f <= 0 for f in out):
        raise ValueError(f"--gain-factors must be positive numbers, got {text!r}")
    return out


def run(args) -> int:
    with cluster_executor(args):
        return _run(args)


def _run(args) -> int:
    import numpy as np

    from rram_lsm.launch.eval_letters import LETTERS_PAIR, run_letters
    if LETTERS_PAIR in args.pairs.split(","):
        return run_letters(args)

    from rram_lsm.experiments.eval import run_all
    from rram_lsm.experiments.markdown import results_markdown
    from rram_lsm.experiments.robustness import plot_robustness
    from rram_lsm.experiments.sweep import plot_sweep

    cfg = config_from_args(args)
    res = run_all(cfg, cfg.pairs, log=lambda s: print(s, flush=True))
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    for pair, sw in res.sweep.items():
        path = out / f"sweep_{pair}.png"
        plot_sweep(np.asarray(sw.unseen_a_to_b.acc), [tuple(s) for s in sw.splits],
                   sw.unseen_a_to_b.summary, path, title=f"{pair}: unseen-pair retrieval over splits")
        res.plots.append(path.name)
    if res.robustness:
        plot_robustness(res.robustness, out / "robustness.png")
        res.plots.append("robustness.png")
    md = results_markdown(res) + "\n" + "\n".join(f"![{p}]({p})" for p in res.plots) + "\n"
    (out / "results.md").write_text(md)
    (out / "results.json").write_text(json.dumps(res.to_json(), indent=1, default=_default))
    print(f"wrote {out / 'results.md'} and {out / 'results.json'} ({res.seconds:.0f} s)")
    return 0


def _default(v):
    import numpy as np
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    return str(v)
