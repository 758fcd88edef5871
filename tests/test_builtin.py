"""The built-in multimodal dataset (tiny size): content, splits, halves, determinism, cache."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_digits

from rram_lsm.nodes.sources import builtin as B
from rram_lsm.stream.packets import WIRE_DTYPES


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    """The tiny dataset, built once (on the 2-process pool) in a private cache folder."""
    cache = tmp_path_factory.mktemp("builtin-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RRAM_LSM_CACHE", str(cache))
        ds = B.load_builtin("tiny", seed=0, progress=False)
    return cache, ds


def test_modalities_have_the_wire_format(tiny):
    _, ds = tiny
    expected = {"visual": ("dvs", (16, 16), 80), "audio": ("cochlea", (64,), 60),
                "neural": ("neural", (192,), 40)}
    for name, (dtype, geometry, n) in expected.items():
        ms = ds.modality(name)
        assert (ms.dtype_name, ms.geometry, len(ms)) == (dtype, geometry, n)
        assert len(ms.labels) == len(ms.split) == len(ms.ids) == len(ms.half) == n
        assert np.array_equal(np.bincount(ms.labels, minlength=10), np.full(10, n // 10))
        for ev in ms.events:
            assert ev.dtype == WIRE_DTYPES[dtype] and len(ev) > 50
            assert np.all(np.diff(ev["t"]) >= 0)
            assert ev["x"].max() < geometry[0]
            if dtype == "dvs":
                assert ev["y"].max() < geometry[1]
    with pytest.raises(KeyError, match="smell"):
        ds.modality("smell")


def test_visual_samples_are_the_digits_they_claim(tiny):
    _, ds = tiny
    vis = ds.modality("visual")
    assert np.array_equal(vis.labels, load_digits().target[vis.ids])
    assert len(np.unique(vis.ids)) == len(vis)
    # Events fall on the edges of the very image the sample claims to be: its event footprint
    # matches its own image's edge map better than another class's image's edge map.
    from scipy import ndimage

    images, _ = B.digit_images()
    def edges(i):
        img = images[i]
        return np.hypot(ndimage.sobel(img, 0), ndimage.sobel(img, 1)).ravel()
    def footprint(ev):
        f = np.zeros((16, 16))
        np.add.at(f, (ev["y"], ev["x"]), 1)
        return f.ravel()
    wins = 0
    for k, ev in enumerate(vis.events):
        other = int(np.flatnonzero(vis.labels != vis.labels[k])[k % 40])
        fp = footprint(ev)
        wins += np.corrcoef(fp, edges(vis.ids[k]))[0, 1] > np.corrcoef(fp, edges(vis.ids[other]))[0, 1]
    assert wins >= 0.9 * len(vis)


def test_halves_and_splits(tiny):
    _, ds = tiny
    vis, neu = ds.modality("visual"), ds.modality("neural")
    half_a, half_b = set(vis.ids[vis.half == 0]), set(vis.ids[vis.half == 1])
    assert half_a and half_b and not half_a & half_b
    # The neural emulator writes only half-B images, with the image's label and split.
    assert set(neu.ids) == half_b and np.all(neu.half == -1)
    by_id = {int(i): (int(l), int(s)) for i, l, s in zip(vis.ids, vis.labels, vis.split)}
    assert all(by_id[int(i)] == (int(l), int(s)) for i, l, s in zip(neu.ids, neu.labels, neu.split))
    # 60/20/20 within each class and half: 4 images per half -> 2/1/1.
    for h in (0, 1):
        for c in range(10):
            codes = vis.split[(vis.half == h) & (vis.labels == c)]
            assert sorted(codes.tolist()) == [0, 0, 1, 2]


def test_test_speakers_are_never_heard_in_training(tiny):
    _, ds = tiny
    au = ds.modality("audio")
    speakers = {s: set(au.ids[au.split == i]) for i, s in enumerate(B.SPLITS)}
    assert all(speakers.values())
    assert not speakers["train"] & speakers["test"]
    assert not speakers["train"] & speakers["val"] and not speakers["val"] & speakers["test"]
    assert len(au.id_names) == 6 and len(set(au.id_names)) == 6
    # Every speaker says every digit.
    for s in range(6):
        assert sorted(au.labels[au.ids == s].tolist()) == list(range(10))


def test_select(tiny):
    _, ds = tiny
    vis = ds.modality("visual")
    sub = vis.select(split="train", half=0, classes=[1, 2])
    assert len(sub) == 4 and set(sub.labels) == {1, 2}  # 2 train images per class and half
    assert np.all(sub.split == 0) and np.all(sub.half == 0)
    assert all(np.array_equal(e, vis.events[int(np.flatnonzero(vis.ids == i)[0])])
               for e, i in zip(sub.events, sub.ids))
    assert len(vis.select(split=["val", 2])) == 40
    with pytest.raises(ValueError, match="split"):
        vis.select(split="holdout")


def test_same_seed_same_events_and_cache_reuse(tiny, tmp_path, monkeypatch):
    cache, ds = tiny
    monkeypatch.setenv("RRAM_LSM_CACHE", str(cache))
    path = B.builtin_path("tiny", 0)
    stamp = path.stat().st_mtime_ns
    again = B.load_builtin("tiny", 0, progress=False)
    assert path.stat().st_mtime_ns == stamp and again.path == path  # read, not rebuilt
    # A rebuild from scratch in another cache, in-process (no pool): identical content.
    monkeypatch.setenv("RRAM_LSM_CACHE", str(tmp_path))
    rebuilt = B.read_builtin(B.build_builtin("tiny", 0, progress=False, workers=1))
    for name in B.MODALITIES:
        a, b = ds.modality(name), rebuilt.modality(name)
        for key in ("labels", "split", "ids", "half"):
            assert np.array_equal(getattr(a, key), getattr(b, key))
        assert all(np.array_equal(x, y) for x, y in zip(a.events, b.events))
    assert [p.name for p in B.clear_builtin()] == [path.name]
    assert not B.builtin_path("tiny", 0).exists()


def test_different_seed_changes_plan_and_events():
    spec = B.BuiltinSpec.for_size("tiny")
    images, labels = B.digit_images()
    idx0, half0, _ = B.plan_images(labels, spec, 0)
    idx1, half1, _ = B.plan_images(labels, spec, 1)
    assert set(idx0) != set(idx1)
    a0, a1 = B.plan_audio(spec, 0), B.plan_audio(spec, 1)
    assert not np.array_equal(a0["split"], a1["split"]) or not np.array_equal(a0["pitch"], a1["pitch"])
    # The same image through the same job code with another seed gives other events.
    items = [(int(idx0[0]), images[idx0[0]])]
    (_, e0), = B._make(("visual", 0, spec, items))
    (_, e0b), = B._make(("visual", 0, spec, items))
    (_, e1), = B._make(("visual", 1, spec, items))
    assert np.array_equal(e0, e0b) and not np.array_equal(e0, e1)
    assert B.builtin_path("tiny", 0) != B.builtin_path("tiny", 1)


def test_full_plan_sizes():
    spec = B.BuiltinSpec.for_size("full")
    _, labels = B.digit_images()
    idx, half, split = B.plan_images(labels, spec, 0)
    assert len(idx) == 1797 and len(set(idx)) == 1797
    for c in range(10):
        in_c = labels[idx] == c
        assert abs(int((half[in_c] == 0).sum()) - int((half[in_c] == 1).sum())) <= 1
    assert 0.57 < np.mean(split == 0) < 0.63 and 0.17 < np.mean(split == 2) < 0.23
    audio = B.plan_audio(spec, 0)
    assert len(audio["names"]) == 96 and len(audio["labels"]) == 96 * 10 * 2
    counts = np.bincount(audio["split"][::20], minlength=3)  # one row per speaker
    assert counts.tolist() == [58, 19, 19]
    with pytest.raises(ValueError, match="size"):
        B.BuiltinSpec.for_size("huge")


def test_truncated_cache_file_is_reported(tmp_path):
    bad = tmp_path / "builtin-bad.npz"
    np.savez(bad, meta=np.array('{"format": 999}'))
    with pytest.raises(ValueError, match="format"):
        B.read_builtin(bad)
    with pytest.raises(FileNotFoundError, match="nowhere"):
        B.read_builtin(tmp_path / "nowhere.npz")
