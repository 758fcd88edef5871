"""`rram-lsm eval --pairs neural-visual-letters`: the BMI protocol (``experiments.bmi``) ->
results.md / results.json in ``--out``."""
from __future__ import annotations

import json
import shlex

from rram_lsm.experiments.bmi_results import PAIR_NAME as LETTERS_PAIR


def bmi_config_from_args(args):
    """``BmiConfig`` from `eval`'s arguments; a ValueError names an unusable one."""
    from rram_lsm.experiments.bmi import BmiConfig

    pairs = [x.strip() for x in args.pairs.split(",") if x.strip()]
    if pairs != [LETTERS_PAIR]:
        raise ValueError(f"--pairs {LETTERS_PAIR} runs the BMI protocol alone; run the other "
                         f"pairs ({', '.join(x for x in pairs if x != LETTERS_PAIR)}) separately")
    n_random = 20
    if args.splits is not None:
        if not (args.splits.isdigit() and int(args.splits) >= 2):
            raise ValueError(f"--splits must be a number of random 4-letter sets >= 2 for "
                             f"{LETTERS_PAIR}, got {args.splits!r}")
        n_random = int(args.splits)
    seeds = 3 if args.seeds is None else args.seeds
    if seeds < 1 or args.train_seeds < 1:
        raise ValueError("--seeds and --train-seeds must be >= 1")
    temperature = 0.5 if args.temperature is None else float(args.temperature)
    cfg = BmiConfig(size=args.size, data_seed=args.data_seed, reservoir_seed=args.reservoir_seed,
                    n_random=n_random, seeds=tuple(range(seeds)),
                    authors_seeds=tuple(range(args.train_seeds)), epochs=args.epochs,
                    temperature=temperature, neurons=args.neural_neurons)
    cfg.validate()
    return cfg


def run_letters(args) -> int:
    from rram_lsm.experiments.bmi import run_bmi
    from rram_lsm.experiments.bmi_results import bmi_markdown

    cfg = bmi_config_from_args(args)
    res = run_bmi(cfg, log=lambda s: print(s, flush=True))
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    command = command_line(cfg, out)
    (out / "results.md").write_text(bmi_markdown(res, command))
    (out / "results.json").write_text(json.dumps(res.to_json(), indent=1))
    u = res.summary["unseen_mean_top1"]
    print(f"unseen top-1 (both directions' mean) {u.mean:.1%}, 95% CI [{u.ci_low:.1%}, "
          f"{u.ci_high:.1%}] over {u.n_sets} sets x {u.n_seeds} seeds, chance {u.chance:.0%}")
    print(f"wrote {out / 'results.md'} and {out / 'results.json'} ({res.seconds:.0f} s)")
    return 0


def command_line(cfg, out) -> str:
    """The `rram-lsm eval` line that reproduces ``cfg`` (written beside the results)."""
    parts = ["rram-lsm", "eval", "--pairs", LETTERS_PAIR, "--size", cfg.size,
             "--splits", str(cfg.n_random), "--seeds", str(len(cfg.seeds)),
             "--train-seeds", str(len(cfg.authors_seeds)), "--epochs", str(cfg.epochs),
             "--temperature", f"{cfg.temperature:g}"]
    if cfg.neurons:
        parts += ["--neural-neurons", str(cfg.neurons)]
    if cfg.data_seed or cfg.reservoir_seed:
        parts += ["--data-seed", str(cfg.data_seed), "--reservoir-seed", str(cfg.reservoir_seed)]
    return " ".join(shlex.quote(x) for x in [*parts, "--out", str(out)])
