"""The built-in letters (tiny size): 26 letters, writers kept apart, bits by seed, the cache
key, legible glyphs, letter-shaped pen paths, and trials the BMI presets and replay accept."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy import ndimage

from rram_lsm.nodes.lsm.binning import bin_events, to_dense
from rram_lsm.experiments.features import binned, resolve_config
from rram_lsm.nodes.sources import builtin_letters as BL
from rram_lsm.nodes.sources import letters as L
from rram_lsm.nodes.sources.replay import ReplaySource
from rram_lsm.stream import codec
from rram_lsm.stream.packets import NEURAL_DTYPE


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The tiny letters, built once in a private cache folder."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RRAM_LSM_CACHE", str(tmp_path_factory.mktemp("letters-cache")))
        yield BL.load_letters("tiny", seed=0, progress=False)


def test_26_distinct_letters_in_every_hand_and_split(tiny):
    for font in L.FONTS:
        for case in L.CASES:
            shapes = {repr([s.round(3).tolist() for s in L.glyph_strokes(font, case, k)])
                      for k in range(1, 27)}
            assert len(shapes) == 26, (font, case)
    for name in BL.MODALITIES:
        ms = tiny.modality(name)
        for s in range(3):
            assert np.array_equal(np.unique(ms.labels[ms.split == s]), np.arange(1, 27)), (name, s)
    # 26 different glyph images per image writer
    im = tiny.modality("image")
    for w in np.unique(im.ids):
        glyphs = tiny.images[im.ids == w].reshape(-1, 784)
        assert len({g.tobytes() for g in glyphs}) == len(glyphs)
    with pytest.raises(ValueError, match="1..26"):
        L.glyph_strokes("futural", "upper", 27)


def test_writers_are_kept_apart(tiny):
    neu, img = tiny.modality("neural"), tiny.modality("image")
    w_split = tiny.writers["split"]
    for ms in (neu, img):
        assert np.array_equal(ms.split, w_split[ms.ids])     # a writer lies in one split
    test_writers = set(neu.ids[neu.split == 2]) | set(img.ids[img.split == 2])
    assert test_writers
    assert len(tiny.pairs) == len(neu) == len(img)
    for split in ("train", "val", "test"):
        rows = tiny.pairs_of(split)
        assert len(rows)
        wi, wn = img.ids[rows[:, 0]], neu.ids[rows[:, 1]]
        assert np.all(wi != wn)                                # different writers in a pair
        assert np.array_equal(img.labels[rows[:, 0]], neu.labels[rows[:, 1]])
        code = ("train", "val", "test").index(split)
        assert np.all(img.split[rows[:, 0]] == code) and np.all(neu.split[rows[:, 1]] == code)
        if split != "test":
            assert not (set(wi) | set(wn)) & test_writers     # test writers in no train/val pair
    # every sample is in exactly one pair
    assert sorted(tiny.pairs[:, 0]) == list(range(len(img)))
    assert sorted(tiny.pairs[:, 1]) == list(range(len(neu)))
    # neural writers write lower case by default; image writers both cases
    assert set(tiny.writers["case"][tiny.writers["modality"] == 0]) == {L.CASES.index("lower")}


def test_samples_are_pure_functions_of_the_seed(tiny):
    spec = BL.LettersSpec.for_size("tiny")
    writers, _, _ = BL.plan_writers(spec, 0)
    for name in BL.MODALITIES:
        ms = tiny.modality(name)
        rows = BL.plan_samples(spec, name)
        for i in (0, len(rows) // 2, len(rows) - 1):
            ev, extra = BL.make_sample(name, rows[i], writers[rows[i][0]], spec, 0)
            assert ev.tobytes() == ms.events[i].tobytes()       # stored bits regenerate exactly
            stored = tiny.images[i] if name == "image" else tiny.trajectories[i]
            assert extra.tobytes() == stored.tobytes()
        other_writers, _, _ = BL.plan_writers(spec, 1)
        ev1, _ = BL.make_sample(name, rows[0], other_writers[rows[0][0]], spec, 1)
        assert ev1.tobytes() != ms.events[0].tobytes()
    assert BL.letters_path("tiny", 0) == tiny.path
    assert BL.letters_path("tiny", 0) != BL.letters_path("tiny", 1)


def _changed(value):
    """A different value of the same kind (for every field type the spec uses)."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value + 1 if isinstance(value, int) else value * 1.1 + 0.01
    if isinstance(value, str):
        return value + "x"
    if isinstance(value, tuple):
        return value[:-1] if len(value) > 1 and isinstance(value[0], str) else (_changed(value[0]),) + value[1:]
    raise TypeError(type(value))


def test_cache_key_covers_every_generator_parameter():
    base = BL.LettersSpec.for_size("tiny")
    keys = {base.key(0)}
    n = 1
    for f in dataclasses.fields(base):
        value = getattr(base, f.name)
        if dataclasses.is_dataclass(value):
            for g in dataclasses.fields(value):
                spec = dataclasses.replace(base, **{f.name: dataclasses.replace(
                    value, **{g.name: _changed(getattr(value, g.name))})})
                keys.add(spec.key(0))
                n += 1
        else:
            keys.add(dataclasses.replace(base, **{f.name: _changed(value)}).key(0))
            n += 1
    assert n > 50 and len(keys) == n      # every single change gives a new key
    assert base.key(1) not in keys
    assert BL.letters_path("tiny", 0, repeats=2) != BL.letters_path("tiny", 0)
    with pytest.raises(ValueError, match="unknown letters parameter"):
        BL.LettersSpec.for_size("tiny", writers=3)
    with pytest.raises(ValueError, match="neural_cases"):
        BL.LettersSpec.for_size("tiny", neural_cases=("italic",))


def _nearest_template(a: np.ndarray, b: np.ndarray) -> float:
    """Fraction of a's images whose most correlated image of b (both blurred: thin strokes
    of two writers rarely overlap pixel for pixel) has the same index."""
    a, b = (np.stack([ndimage.gaussian_filter(x, 2.0).ravel() for x in m]) for m in (a, b))
    a = a - a.mean(1, keepdims=True)
    b = b - b.mean(1, keepdims=True)
    a /= np.linalg.norm(a, axis=1, keepdims=True)
    b /= np.linalg.norm(b, axis=1, keepdims=True)
    return float(np.mean((a @ b.T).argmax(1) == np.arange(len(a))))


def test_glyph_images_look_like_their_letters():
    """Two writers of a hand: each glyph is nearest to the other writer's same letter."""
    accs = []
    for font in L.FONTS:
        for case in L.CASES:
            imgs = []
            for seed in (1, 2):
                rng = np.random.default_rng([seed, 7])
                w = L.draw_writer(rng, font, case)
                imgs.append(np.stack([L.glyph_image(L.write_letter(k, w, rng), w.ink_px)
                                      for k in range(1, 27)]))
            accs.append(_nearest_template(imgs[0], imgs[1]))
    assert min(accs) >= 0.5 and np.mean(accs) >= 0.7, accs      # chance is 1/26


def test_pen_paths_have_the_letters_shape():
    """A neural trial's pen path, drawn, is nearest to an image writer's glyph of its letter."""
    for font in L.FONTS:
        rng = np.random.default_rng([3, 7])
        pen, ink = L.draw_writer(rng, font, "lower"), L.draw_writer(rng, font, "lower")
        drawn, glyphs = [], []
        for k in range(1, 27):
            pos = L.trajectory(L.write_letter(k, pen, rng))
            moving = np.flatnonzero(np.hypot(*np.diff(pos, axis=0).T) > 1e-4)
            pos = pos[moving[0]:moving[-1] + 2]
            path = L.TimedPath(np.arange(len(pos), dtype=float), pos, np.ones(len(pos), bool))
            drawn.append(L.glyph_image(path, 1.2))
            glyphs.append(L.glyph_image(L.write_letter(k, ink, rng), ink.ink_px))
        assert _nearest_template(np.stack(drawn), np.stack(glyphs)) >= 0.4, font   # chance 1/26


def test_trials_fit_the_bmi_presets(tiny):
    neu, img = tiny.modality("neural"), tiny.modality("image")
    assert (neu.geometry, img.geometry) == ((192,), (784,))
    assert tiny.trajectories.shape == (len(neu), 201, 2) and tiny.images.shape == (len(img), 28, 28)
    ev = neu.events[0]
    assert ev.dtype == NEURAL_DTYPE and ev["x"].max() < 192 and 0 <= ev["t"].min() and ev["t"].max() < 2_010_000
    frames = to_dense(*bin_events(ev["t"], ev["x"], 192, mode="fixed_width", width_us=10_000,
                                  t_start=0, n_bins=201), 192)
    assert frames.shape == (201, 192) and frames.sum() == len(set(zip(ev["t"] // 10_000, ev["x"])))
    config = resolve_config(neu, "bmi_neural")
    assert config.n_inputs == 192 and config.bin_width_us == 10_000
    # the image: 49 rate-coded steps of 1 ms, one bmi_image bin each, rates follow intensity
    config = resolve_config(img, "bmi_image")
    for i, (bp, ix) in zip(range(3), binned(img, config)):
        ev = img.events[i]
        dense = to_dense(bp, ix, 784)
        assert dense.shape == (49, 784)
        direct = np.zeros((49, 784), np.uint8)
        direct[ev["t"] // 1000, ev["x"]] = 1
        assert np.array_equal(dense, direct)
        rate = dense.mean(0)
        assert np.corrcoef(rate, tiny.images[i].ravel())[0, 1] > 0.9
        assert np.all(rate[tiny.images[i].ravel() == 0] == 0)


@pytest.mark.parametrize("name", BL.MODALITIES)
def test_replay_streams_letters_through_the_codec(tiny, name):
    ms = tiny.modality(name)
    samples = [(ms.events[i], int(ms.labels[i])) for i in range(3)]
    src = ReplaySource(name, {"max_events": 2048, "geometry": list(ms.geometry)}, samples=samples)
    got: dict[int, list] = {}
    for p in src.packets():
        q = codec.decode(codec.encode(p))          # validated against the declared geometry
        if q.kind == "events":
            assert q.geometry == ms.geometry
            got.setdefault(q.sample, []).append(q.body)
    for k, (ev, _) in enumerate(samples):
        assert np.concatenate(got[k]).tobytes() == ev.tobytes()


def test_bad_files_are_named(tiny, tmp_path):
    bad = tmp_path / "letters-bad.npz"
    with np.load(tiny.path) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["image_offsets"] = arrays["image_offsets"][:-1]
    np.savez(bad, **arrays)
    with pytest.raises(ValueError, match="image"):
        BL.read_letters(bad)
    evil = tmp_path / "letters-evil.npz"
    np.savez(evil, **{**arrays, "image_offsets": np.array([{"x": 1}], dtype=object)})
    with pytest.raises(ValueError):           # object arrays need pickle: refused
        BL.read_letters(evil)
    with pytest.raises(FileNotFoundError, match="not found"):
        BL.read_letters(tmp_path / "nowhere.npz")
    with pytest.raises(ValueError, match="size"):
        BL.load_letters("huge", progress=False)
