"""`rram-lsm data`: build, inspect, plot and clear the built-in multimodal dataset."""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

SIZES = ("full", "tiny")


def register(sub) -> None:
    p = sub.add_parser(
        "data", help="build, inspect, plot or clear the built-in multimodal dataset",
        description="The built-in dataset: scikit-learn digits through a saccade DVS emulator, "
                    "eSpeak NG spoken digits through a cochlea emulator, and emulated "
                    "handwriting neural activity; cached outside the repository.")
    actions = p.add_subparsers(dest="action", metavar="ACTION")

    def common(q, seed: bool = True) -> None:
        q.add_argument("--size", choices=SIZES, default="full",
                       help="full dataset or a tiny one for tests (default %(default)s)")
        if seed:
            q.add_argument("--seed", type=int, default=0, help="generator seed (default 0)")

    b = actions.add_parser("build", help="build the dataset (once; later calls reuse the cache)")
    common(b)
    b.add_argument("--force", action="store_true", help="rebuild even if it is cached")
    b.add_argument("--workers", type=int, default=None,
                   help="processes to build with (default: up to 2)")
    b.add_argument("--quiet", action="store_true", help="no progress bar")
    b.set_defaults(func=run_build)

    i = actions.add_parser("inspect", help="counts, event rates and per-class samples")
    common(i)
    i.add_argument("--build", action="store_true", help="build it first if it is not cached")
    i.add_argument("--json", action="store_true", help="print one JSON object")
    i.set_defaults(func=run_inspect)

    s = actions.add_parser("show", help="save a PNG of a few samples per modality")
    common(s)
    s.add_argument("--build", action="store_true", help="build it first if it is not cached")
    s.add_argument("--samples", type=int, default=4, help="samples per modality (default 4)")
    s.add_argument("--out", type=Path, default=None,
                   help="PNG path (default: in the cache's plots folder)")
    s.set_defaults(func=run_show)

    c = actions.add_parser("clear", help="delete every cached built-in dataset")
    c.set_defaults(func=run_clear)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _load(args):
    from rram_lsm.nodes.sources.builtin import builtin_path, build_builtin, read_builtin

    path = builtin_path(args.size, args.seed)
    if not path.exists():
        if not getattr(args, "build", False):
            raise FileNotFoundError(
                f"the {args.size} built-in dataset (seed {args.seed}) is not built yet; run "
                f"`rram-lsm data build --size {args.size} --seed {args.seed}` (or add --build)")
        build_builtin(args.size, args.seed, progress=True)
    return read_builtin(path)


def run_build(args) -> int:
    from rram_lsm.nodes.sources.builtin import build_builtin, builtin_path

    if args.workers is not None and args.workers < 1:
        raise ValueError(f"--workers must be >= 1, got {args.workers}")
    cached = builtin_path(args.size, args.seed).exists() and not args.force
    start = time.perf_counter()
    path = build_builtin(args.size, args.seed, progress=not args.quiet, workers=args.workers,
                         force=args.force)
    took = time.perf_counter() - start
    print(f"{'cached' if cached else f'built in {took:.1f} s'}: {path}")
    return 0


def run_inspect(args) -> int:
    from rram_lsm.nodes.sources.builtin import MODALITIES, modality_stats

    ds = _load(args)
    stats = {m: modality_stats(ds.modality(m)) for m in MODALITIES}
    if args.json:
        json.dump({"path": str(ds.path), "size": ds.size, "seed": ds.seed, "modalities": stats},
                  sys.stdout, indent=2)
        print()
        return 0
    print(f"built-in dataset {ds.size}, seed {ds.seed}: {ds.path}")
    for m, s in stats.items():
        print(f"\n{m} ({s['dtype']}, geometry {tuple(s['geometry'])}): {s['samples']} samples, "
              f"{s['distinct_ids']} distinct {'speakers' if m == 'audio' else 'images'}")
        print(f"  events/sample mean {s['events_mean']:.0f} (min {s['events_min']}, "
              f"max {s['events_max']}), duration mean {s['duration_ms_mean']:.0f} ms, "
              f"rate mean {s['rate_hz_mean']:.0f} ev/s")
        print("  per class     " + " ".join(f"{c:>4d}" for c in range(10)))
        for split, counts in s["per_class"].items():
            print(f"  {split:12s}  " + " ".join(f"{n:>4d}" for n in counts))
    return 0


def run_show(args) -> int:
    from rram_lsm.nodes.sources.builtin import MODALITIES
    from rram_lsm.stream.cache import cache_dir

    if args.samples < 1:
        raise ValueError(f"--samples must be >= 1, got {args.samples}")
    ds = _load(args)
    out = args.out or cache_dir("plots") / f"builtin-{ds.size}-seed{ds.seed}.png"
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    plot_samples(ds, MODALITIES, args.samples, out)
    print(out)
    return 0


def plot_samples(ds, modalities, n: int, out: Path) -> None:
    """One row per modality: DVS as an accumulated event-count frame, cochlea and neural as rasters."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, axes = plt.subplots(len(modalities), n, figsize=(2.6 * n, 2.4 * len(modalities)),
                             squeeze=False)
    for row, name in enumerate(modalities):
        ms = ds.modality(name)
        # Spread the shown samples over the classes.
        picks = [int(np.flatnonzero(ms.labels == c % 10)[0]) for c in range(n)
                 if np.any(ms.labels == c % 10)]
        for col in range(n):
            ax = axes[row, col]
            if col >= len(picks):
                ax.axis("off")
                continue
            k = picks[col]
            ev = ms.events[k]
            if ms.dtype_name == "dvs":
                w, h = ms.geometry
                # ON and OFF both count: a saccade crosses each edge both ways, so the
                # signed sum would cancel out; the count shows where the edges are.
                frame = np.zeros((h, w))
                np.add.at(frame, (ev["y"], ev["x"]), 1.0)
                ax.imshow(frame, cmap="magma")
                ax.set_xticks([])
                ax.set_yticks([])
            else:
                ax.scatter(ev["t"] * 1e-3, ev["x"], s=0.3, c="k", marker=".", linewidths=0)
                ax.set_ylim(-0.5, ms.geometry[0] - 0.5)
                ax.set_xlabel("ms", fontsize=7)
                ax.tick_params(labelsize=6)
                if col == 0:
                    ax.set_ylabel("channel" if ms.dtype_name == "cochlea" else "electrode",
                                  fontsize=7)
            who = (ms.id_names[ms.ids[k]] if ms.id_names else f"#{ms.ids[k]}")
            ax.set_title(f"{name} '{ms.labels[k]}' {who} ({len(ev)} ev)", fontsize=7)
    fig.suptitle(f"built-in dataset ({ds.size}, seed {ds.seed})", fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def run_clear(args) -> int:
    from rram_lsm.nodes.sources.builtin import clear_builtin

    removed = clear_builtin()
    for p in removed:
        print(f"removed {p}")
    print(f"{len(removed)} built-in dataset file(s) removed")
    return 0
