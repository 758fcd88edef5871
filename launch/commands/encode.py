"""`rram-lsm encode`: run a dataset through the LSM once and cache the features."""
from __future__ import annotations

import json

from rram_lsm.launch.cluster_option import add_cluster_option, cluster_executor
from rram_lsm.launch.commands.eval import add_windows_arg, check_windows

EXTERNAL = ("nmnist", "ntidigits", "shd")  # as experiments.features (kept light: --help is fast)

MODALITIES = ("visual", "audio", "neural")
# Default encoder per external dataset: the paper's supervised presets (SHD: 700 channels).
EXTERNAL_PRESETS = {"nmnist": ("nmnist", {}), "ntidigits": ("ntidigits", {}),
                    "shd": ("ntidigits", {"n_inputs": 700})}


def add_dataset_args(p) -> None:
    p.add_argument("--dataset", default="builtin",
                   help="builtin, builtin:tiny, or one of " + ", ".join(EXTERNAL)
                        + " (with --data PATH) (default %(default)s)")
    p.add_argument("--modality", choices=MODALITIES, default="visual",
                   help="modality of the built-in dataset (default %(default)s)")
    p.add_argument("--data", default=None, help="local dataset folder or file (external datasets)")
    p.add_argument("--data-seed", type=int, default=0, help="dataset seed (default 0)")
    p.add_argument("--limit", type=int, default=None,
                   help="external datasets: keep the first N samples of each part")


def parse_builtin(dataset: str) -> str | None:
    """'builtin' -> 'full', 'builtin:tiny' -> 'tiny'; None for other datasets."""
    if dataset == "builtin":
        return "full"
    if dataset.startswith("builtin:"):
        size = dataset.split(":", 1)[1]
        if size not in ("full", "tiny"):
            raise ValueError(f"--dataset {dataset!r}: size must be full or tiny")
        return size
    return None


def load_modality(args):
    """(ModalitySet, cache source key) for the command's dataset options."""
    from rram_lsm.experiments.features import builtin_source, external_source, load_folder

    size = parse_builtin(args.dataset)
    if size is not None:
        from rram_lsm.experiments.executor import current
        from rram_lsm.nodes.sources.builtin import load_builtin
        ds = load_builtin(size, args.data_seed, progress=True, pool=current().futures())
        return ds.modality(args.modality), builtin_source(size, args.data_seed, args.modality)
    if args.dataset not in EXTERNAL:
        raise ValueError(f"--dataset {args.dataset!r} is not builtin[:tiny] or one of {EXTERNAL}")
    if not args.data:
        raise ValueError(f"--dataset {args.dataset} needs --data PATH (a local copy)")
    ms = load_folder(args.dataset, args.data, seed=args.data_seed, limit=args.limit)
    return ms, external_source(args.dataset, args.data, args.data_seed, args.limit)


def register(sub) -> None:
    p = sub.add_parser(
        "encode", help="encode a dataset with the LSM and cache its features",
        description="Runs every sample of a dataset (the built-in one, or N-MNIST / N-TIDIGITS "
                    "/ SHD from a local folder) through the LSM on all cores and caches the "
                    "features under a key covering data, preset, device and seed.")
    add_dataset_args(p)
    p.add_argument("--preset", default=None,
                   help="LSM preset (default: zs_image / zs_audio / bmi_neural by modality)")
    p.add_argument("--const", type=float, default=None, help="override the preset's gain")
    p.add_argument("--device", choices=("ideal", "rram"), default="ideal",
                   help="software LSM or the RRAM device model (default %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="reservoir seed (default 0)")
    add_windows_arg(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    add_cluster_option(p)
    p.set_defaults(func=run)


def run(args) -> int:
    with cluster_executor(args):
        return _run(args)


def _run(args) -> int:
    from tqdm import tqdm

    from rram_lsm.experiments.features import encode_modality

    ms, source = load_modality(args)
    preset, overrides = args.preset, {}
    if parse_builtin(args.dataset) is None:
        default_preset, default_overrides = EXTERNAL_PRESETS[args.dataset]
        if preset is None:
            preset, overrides = default_preset, dict(default_overrides)
    if args.const is not None:
        overrides["const"] = args.const
    bar = tqdm(total=len(ms), unit="sample", desc=f"encode {ms.name}", disable=args.json)

    def progress(done: int, total: int) -> None:
        bar.update(done - bar.n)

    fs = encode_modality(ms, preset, args.device, args.seed, progress,
                         overrides=overrides, source=source, windows=check_windows(args.windows))
    bar.close()
    info = {"path": str(fs.path), "cached": fs.cached, "samples": len(fs),
            "features": list(fs.features.shape), "windows": fs.windows, "preset": fs.preset,
            "device": args.device,
            "const": fs.config["const"], "seconds": round(fs.seconds, 2), "health": fs.health}
    if args.json:
        print(json.dumps(info))
    else:
        print(f"{'cached' if fs.cached else f'encoded in {fs.seconds:.1f} s'}: {fs.path}")
        h = fs.health
        what, of = ("neurons", "") if fs.windows == 1 else \
            (f"values ({fs.windows} windows of rates)", " of the windowed rates")
        print(f"{len(fs)} samples x {fs.features.shape[1]} {what} ({fs.preset}, {args.device}, "
              f"const {fs.config['const']:.4g}); health{of}: silent {h['silent_frac']:.1%}, "
              f"saturated {h['saturated_frac']:.1%}, mean rate {h['mean_rate']:.3f}")
    return 0
