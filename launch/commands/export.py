"""`rram-lsm export --nir PATH --run RUN`: a trained run's reservoirs and heads as a NIR file."""
from __future__ import annotations

from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser(
        "export", help="export a trained run (reservoirs and heads) to NIR",
        description="Writes the reservoirs (Input -> Affine W_in -> LIF with the recurrent "
                    "Affine W_rec on a cycle -> Output) and the projection heads of a "
                    "`rram-lsm train --out RUN` folder to one NIR file (docs/nir.md). The lsm "
                    "node loads it back with its 'nir' parameter, the projection node with "
                    "weights = the file.")
    p.add_argument("--nir", type=Path, required=True, help="the NIR file to write (.nir)")
    p.add_argument("--run", type=Path, required=True, help="the output folder of `rram-lsm train`")
    p.add_argument("--dt", type=float, default=None,
                   help="step in seconds the LIF's tau is derived at (default: each preset's "
                        "nominal bin width); 1e-4 for snnTorch, whose importer assumes it")
    p.add_argument("--reservoir", default=None, metavar="MODALITY",
                   help="write only this modality's reservoir, as the whole graph (for "
                        "importers that take one network, such as snnTorch)")
    p.set_defaults(func=run)


def run(args) -> int:
    from rram_lsm.experiments.nir_export import export_nir, load_system

    if args.nir.suffix != ".nir":
        raise ValueError(f"--nir must name a .nir file, got {args.nir}")
    path = export_nir(args.run, args.nir, dt_s=args.dt, reservoir_only=args.reservoir)
    for m, (res, head) in load_system(path).items():
        c = res.config
        print(f"{m}: reservoir {c.n_inputs} -> {c.n_neurons} (decay {c.decay}, vth {c.vth}, "
              f"const {c.const:.4g})" + (f", head {head.n_features} -> {head.pd}" if head else ""))
    print(f"wrote {path}")
    return 0
