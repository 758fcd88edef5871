"""The built-in letters: cold build time, size, and a montage of a few letters by a few writers.

Builds the letters dataset in a fresh, temporary cache folder (cold: nothing cached), prints
the wall time, the file size and per-modality counts, and draws ``docs/letters.png``: glyph
images of image writers (each row one writer, its hand in the label), one writer's rate code
(spikes per pixel over the 49-step window), pen paths of neural writers, and one neural
writer's electrode raster.  ``--probe`` adds two checks that each modality carries the letter
for writers never seen: an image's nearest glyph (cosine) among other writers' images, and a
logistic regression on neural spike counts (20 bins x 192 electrodes) trained on the training
writers and scored on the test writers (26 classes, chance 3.8%); and that the modalities share structure a map learnt on
other letters transfers through: ridge regression from those counts to the (blurred) glyph of
the paired image, fitted on the training pairs of 22 letters, then retrieval among the test
pairs of the 4 others (R, S, T, U and 19 random sets; chance 25%).  A raw-data check of the
data, not the paper's protocol (LSM features, contrastive heads: experiments/).

    python benchmarks/letters.py [--size full|tiny] [--out docs/letters.png] [--probe] [--image-cases lower]
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

SHOW = "AEKMRSTUW"     # R, S, T, U: the authors' held-out letters


def montage(ds, out: Path, letters: str = SHOW, n_image: int = 4, n_neural: int = 3) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from rram_lsm.nodes.sources.letters import CASES, FONTS, LETTERS

    img, neu = ds.modality("image"), ds.modality("neural")
    hand = lambda w: f"{FONTS[ds.writers['font'][w]]} {CASES[ds.writers['case'][w]]}"  # noqa: E731
    # one writer per hand first, so the rows show the variety
    def pick(ms, n):
        seen, out_ = set(), []
        for w in np.unique(ms.ids):
            if hand(w) not in seen:
                seen.add(hand(w))
                out_.append(int(w))
        rest = [int(w) for w in np.unique(ms.ids) if int(w) not in out_]
        return (out_ + rest)[:n]

    rows = [("glyph", w) for w in pick(img, n_image)] + [("rate", pick(img, 1)[0])] + \
           [("path", w) for w in pick(neu, n_neural)] + [("raster", pick(neu, 1)[0])]
    fig, axes = plt.subplots(len(rows), len(letters), figsize=(1.25 * len(letters), 1.3 * len(rows)))
    for r, (what, w) in enumerate(rows):
        ms = img if what in ("glyph", "rate") else neu
        for c, ch in enumerate(letters):
            ax = axes[r, c]
            i = int(np.flatnonzero((ms.ids == w) & (ms.labels == LETTERS.index(ch) + 1))[0])
            if what == "glyph":
                ax.imshow(ds.images[i], cmap="gray", vmin=0, vmax=255)
            elif what == "rate":
                counts = np.bincount(ms.events[i]["x"], minlength=784).reshape(28, 28)
                ax.imshow(counts, cmap="magma", vmin=0, vmax=49)
            elif what == "path":
                pos = ds.trajectories[i]
                ax.plot(pos[:, 0], pos[:, 1], lw=0.9)
                ax.plot(pos[0, 0], pos[0, 1], "k.", ms=3)
                ax.set_xlim(-0.1, 1.1)
                ax.set_ylim(1.3, 0.0)
                ax.set_aspect("equal")
            else:
                ev = ms.events[i]
                ax.scatter(ev["t"] * 1e-3, ev["x"], s=0.05, c="k", marker=".", linewidths=0)
                ax.set_xlim(0, 2010)
                ax.set_ylim(-0.5, 191.5)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(ch, fontsize=9)
            if c == 0:
                label = {"glyph": f"image w{w}\n{hand(w)}", "rate": f"rate code w{w}\n(49 steps)",
                         "path": f"pen w{w}\n{hand(w)}", "raster": f"neural w{w}\n192 el., 2 s"}[what]
                ax.set_ylabel(label, fontsize=6)
    fig.suptitle(f"built-in letters ({ds.size}, seed {ds.seed}): image writers and neural writers differ",
                 fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)


def probe(ds) -> None:
    from scipy import ndimage
    from sklearn.linear_model import LogisticRegression

    img = ds.modality("image")
    x = ds.images.reshape(len(img), -1).astype(float)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    sim = x @ x.T
    sim[img.ids[:, None] == img.ids[None, :]] = -np.inf       # never the same writer
    print(f"  image: nearest glyph of another writer has the letter {np.mean(img.labels[sim.argmax(1)] == img.labels):.1%}")
    neu = ds.modality("neural")
    feats = np.zeros((len(neu), 20, 192))
    for i, ev in enumerate(neu.events):
        np.add.at(feats[i], (np.minimum(ev["t"] // 100_500, 19), ev["x"]), 1.0)
    feats = np.log1p(feats.reshape(len(neu), -1))
    tr, te = neu.split == 0, neu.split == 2
    mu, sd = feats[tr].mean(0), feats[tr].std(0) + 1e-6
    clf = LogisticRegression(max_iter=300, C=0.01).fit((feats[tr] - mu) / sd, neu.labels[tr])
    print(f"  neural: logistic regression on spike counts, test writers {clf.score((feats[te] - mu) / sd, neu.labels[te]):.1%}")
    glyphs = np.stack([ndimage.gaussian_filter(im.astype(float), 1.5).ravel() for im in ds.images])
    train, test = ds.pairs_of("train"), ds.pairs_of("test")
    rng = np.random.default_rng(0)
    acc = []
    for k in range(20):
        unseen = np.array([18, 19, 20, 21]) if k == 0 else rng.choice(np.arange(1, 27), 4, replace=False)
        fit = train[~np.isin(img.labels[train[:, 0]], unseen)]
        x, y = feats[fit[:, 1]], glyphs[fit[:, 0]]
        mx, sx, my = x.mean(0), x.std(0) + 1e-6, y.mean(0)
        xs = (x - mx) / sx
        w = np.linalg.solve(xs.T @ xs + 1000.0 * np.eye(xs.shape[1]), xs.T @ (y - my))
        pool = test[np.isin(img.labels[test[:, 0]], unseen)]
        pred = ((feats[pool[:, 1]] - mx) / sx) @ w
        target = glyphs[pool[:, 0]] - my
        sim = (pred / np.linalg.norm(pred, axis=1, keepdims=True)) @ (target / np.linalg.norm(target, axis=1, keepdims=True)).T
        lab = img.labels[pool[:, 0]]
        acc.append((np.mean(lab[sim.argmax(1)] == lab), np.mean(lab[sim.argmax(0)] == lab)))
    acc = np.array(acc)
    print(f"  shared structure (ridge counts -> glyph, unseen 4-letter pool, chance 25%): R S T U "
          f"neural->image {acc[0, 0]:.1%}, image->neural {acc[0, 1]:.1%}; 19 random sets "
          f"{acc[1:, 0].mean():.1%} / {acc[1:, 1].mean():.1%} (min {acc[1:].min():.1%})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", choices=("full", "tiny"), default="full")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "docs" / "letters.png")
    ap.add_argument("--probe", action="store_true", help="also measure how well each modality tells the letters apart")
    ap.add_argument("--image-cases", default="upper,lower", help="cases the image writers use (default %(default)s)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="letters-cold-") as cold:
        os.environ["RRAM_LSM_CACHE"] = cold
        from rram_lsm.nodes.sources.builtin_letters import build_letters, read_letters

        start = time.perf_counter()
        path = build_letters(args.size, 0, progress=False, image_cases=tuple(args.image_cases.split(",")))
        built = time.perf_counter() - start
        start = time.perf_counter()
        ds = read_letters(path)
        read = time.perf_counter() - start
        print(f"cold build ({args.size}, seed 0, {os.cpu_count()} CPUs): {built:.1f} s; "
              f"file {path.stat().st_size / 1e6:.1f} MB; read {read:.1f} s")
        for name, ms in ds.modalities.items():
            n_ev = np.array([len(e) for e in ms.events])
            print(f"  {name}: {len(ms)} samples (train/val/test {np.bincount(ms.split, minlength=3).tolist()}), "
                  f"{len(np.unique(ms.ids))} writers, {n_ev.mean():.0f} events/sample")
        print(f"  pairs: {len(ds.pairs)} (train/val/test {np.bincount(ds.pair_split, minlength=3).tolist()})")
        montage(ds, args.out)
        print(f"montage: {args.out}")
        if args.probe:
            probe(ds)


if __name__ == "__main__":
    main()
