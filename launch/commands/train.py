"""`rram-lsm train`: train the two projection heads of a modality pair on the seen classes and
save what the projection and classifier nodes load (heads, config, prototype banks)."""
from __future__ import annotations

import json
from pathlib import Path

from rram_lsm.experiments.config import check_windows
from rram_lsm.launch.commands.eval import add_loss_args, add_windows_arg, loss_args, parse_factors


def register(sub) -> None:
    p = sub.add_parser(
        "train", help="train the contrastive projection heads of a modality pair",
        description="Encodes (cached) and gain-calibrates both modalities of the built-in "
                    "dataset, trains one head per modality on the seen classes with the "
                    "paper's loss (or --loss), selects the epoch on validation, and saves "
                    "heads + config + prototype banks for the classifier node.")
    p.add_argument("--pair", choices=("audio-visual", "neural-visual"), default="audio-visual")
    p.add_argument("--size", choices=("full", "tiny"), default="full",
                   help="built-in dataset size (default %(default)s)")
    p.add_argument("--device", choices=("ideal", "rram"), default="ideal")
    p.add_argument("--pd", type=int, default=64, help="embedding dimension (default 64)")
    p.add_argument("--epochs", type=int, default=100, help="epochs (default 100, the paper's)")
    add_loss_args(p)
    add_windows_arg(p)
    p.add_argument("--seed", type=int, default=0, help="head seed (default 0)")
    p.add_argument("--reservoir-seed", type=int, default=0, help="reservoir seed (default 0)")
    p.add_argument("--seen", default="1,2,3,4,5,6,7", help="seen classes (default 1-7)")
    p.add_argument("--unseen", default="8,9", help="unseen classes (default 8,9)")
    p.add_argument("--gain-factors", default="0.5,1,2",
                   help="gain candidates as multiples of each preset's const (default %(default)s)")
    p.add_argument("--neural-neurons", type=int, default=None,
                   help="reservoir size of the neural encoder (default: bmi_neural's 2048)")
    p.add_argument("--format", choices=("npz", "safetensors"), default="safetensors")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.set_defaults(func=run)


def _classes(text: str, flag: str) -> tuple[int, ...]:
    try:
        out = tuple(int(c) for c in text.split(",") if c.strip())
    except ValueError:
        raise ValueError(f"{flag} must be comma-separated digits, got {text!r}") from None
    if not out or any(not 0 <= c <= 9 for c in out):
        raise ValueError(f"{flag} must list digits 0-9, got {text!r}")
    return out


def run(args) -> int:
    from rram_lsm.experiments.config import ExperimentConfig
    from rram_lsm.experiments.runs import zero_shot
    from rram_lsm.experiments.store import FeatureStore, pair_data
    from rram_lsm.nodes.classifier.bank import PrototypeBank
    from rram_lsm.nodes.projection.heads import save_heads
    from rram_lsm.nodes.projection.train_config import TrainConfig

    seen, unseen = _classes(args.seen, "--seen"), _classes(args.unseen, "--unseen")
    if set(seen) & set(unseen):
        raise ValueError(f"--seen {seen} and --unseen {unseen} overlap")
    if args.pd <= 0 or args.epochs <= 0:
        raise ValueError("--pd and --epochs must be positive")
    loss = loss_args(args)
    windows = check_windows(args.windows)
    cfg = ExperimentConfig(
        size=args.size, reservoir_seed=args.reservoir_seed, windows=windows,
        gain_factors=parse_factors(args.gain_factors),
        neural_overrides={"n_neurons": args.neural_neurons} if args.neural_neurons else {},
        heads=TrainConfig(seen=seen, unseen=unseen, pd=args.pd, epochs=args.epochs,
                          seed=args.seed, threads=2, **loss))
    store = FeatureStore(cfg)
    a, b = pair_data(store, args.pair, args.device)
    z = zero_shot(a, b, cfg.heads, seeds=(args.seed,))
    result = z.trained[0]
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    consts = {m: store.calibration(m, args.device).const for m in (a.name, b.name)}
    info = {"pair": args.pair, "device": args.device, "size": args.size, "seen": list(seen),
            "unseen": list(unseen), "consts": consts, "selected_epoch": result.selected_epoch,
            "reservoir_seed": args.reservoir_seed, "seed": args.seed, "windows": windows,
            **loss}
    heads_path = save_heads(out / f"heads.{args.format}", result.heads, info)
    # Banks: the training samples of each modality embedded by its head, for queries of the other.
    banks = {}
    for m in (a, b):
        emb = result.heads[m.name].forward(m.features[m.split == 0])
        bank = PrototypeBank.from_embeddings(emb, m.labels[m.split == 0], modality=m.name)
        banks[m.name] = str(bank.save(out / f"bank_{m.name}.npz"))
    summary = z.summary
    (out / "config.json").write_text(json.dumps({**info, "heads": str(heads_path), "banks": banks,
                                                 "summary": summary.to_json()}, indent=1, default=str))
    an, bn = a.name, b.name
    print(f"heads: {heads_path}; banks: {', '.join(banks.values())}")
    print(f"gains (validation-calibrated): {consts}; selected epoch {result.selected_epoch} "
          f"(validation), {z.seconds_training:.1f} s training")
    for name in ("seen", "unseen"):
        pool = summary.pool(name)
        print(f"  {name:6s} {an}->{bn} {pool.a_to_b.mean:.1%}  {bn}->{an} {pool.b_to_a.mean:.1%}  "
              f"(chance {pool.chance:.1%})")
    ar = result.authors_rule
    print("  authors' test-set rule: " + (f"epoch {ar['epoch']}: seen {ar['seen']:.1%}, "
                                          f"unseen {ar['unseen']:.1%}" if ar["met"]
                                          else f"{ar['note']} ({ar['rule']})"))
    return 0
