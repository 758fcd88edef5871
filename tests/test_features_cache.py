"""Feature cache: the tiny built-in dataset through the real LSM, encoded once and re-read."""
from __future__ import annotations

import json

import numpy as np
import pytest

import rram_lsm.nodes.lsm  # noqa: F401  (configures Numba's cache first)
from rram_lsm.launch.cli import main
from rram_lsm.nodes.lsm.binning import bin_events
from rram_lsm.experiments.features import (builtin_source, encode_modality, feature_path, load_folder,
                                raw_frames, read_features, resolve_config, source_key)
from rram_lsm.stream.node import ConfigError


@pytest.fixture(scope="module")
def tiny():
    from rram_lsm.nodes.sources.builtin import load_builtin
    return load_builtin("tiny", 0, progress=False)


def test_encode_is_cached_and_reused(tiny, tmp_path, monkeypatch):
    # a private cache: other tests in the session may already have encoded these features
    monkeypatch.setenv("RRAM_LSM_CACHE", str(tmp_path / "cache"))
    ms = tiny.modality("audio")
    src = builtin_source("tiny", 0, "audio")
    first = encode_modality(ms, "zs_audio", "ideal", 0, source=src)
    assert not first.cached and first.path.exists()
    assert first.features.shape == (len(ms), 200) and first.features.dtype == np.float32
    assert 0 < first.health["mean_rate"] < 1
    calls = []
    second = encode_modality(ms, "zs_audio", "ideal", 0, source=src,
                             progress=lambda d, t: calls.append(d))
    assert second.cached and second.path == first.path
    assert calls == []  # the encoder did not run again
    np.testing.assert_array_equal(second.features, first.features)
    np.testing.assert_array_equal(second.labels, ms.labels)
    np.testing.assert_array_equal(second.split, ms.split)
    # the file is plain .npz, readable without pickle
    assert read_features(first.path).preset == "zs_audio"


def test_cache_key_covers_device_seed_gain_and_data(tiny):
    ms = tiny.modality("audio")
    src = builtin_source("tiny", 0, "audio")
    base = encode_modality(ms, "zs_audio", "ideal", 0, source=src)
    other_seed = encode_modality(ms, "zs_audio", "ideal", 1, source=src)
    rram = encode_modality(ms, "zs_audio", "rram", 0, source=src)
    gain = encode_modality(ms, "zs_audio", "ideal", 0, source=src, overrides={"const": 0.2})
    windowed = encode_modality(ms, "zs_audio", "ideal", 0, source=src, windows=3)
    paths = {base.path, other_seed.path, rram.path, gain.path, windowed.path}
    assert len(paths) == 5
    assert windowed.features.shape == (len(ms), 600) and windowed.windows == 3
    assert read_features(windowed.path).windows == 3 and read_features(base.path).windows == 1
    assert not np.array_equal(base.features, other_seed.features)  # another reservoir
    assert not np.array_equal(base.features, rram.features)        # device non-idealities
    assert rram.device["name"] == "rram" and rram.device["adc_bits"] == 8
    # a stronger gain makes the reservoir fire more
    assert gain.health["mean_rate"] > base.health["mean_rate"]
    # without a named source the key is a content hash: changing one event changes it
    h0 = source_key(ms)
    ev = ms.events[0].copy()
    ev["x"][0] = (int(ev["x"][0]) + 1) % 64
    ms2 = ms.select()
    ms2.events[0] = ev
    assert source_key(ms2) != h0 and source_key(ms.select()) == h0
    cfg = resolve_config(ms, "zs_audio", None, 0)
    assert feature_path(h0, cfg, "ideal") != feature_path(source_key(ms2), cfg, "ideal")


def test_wrong_preset_for_the_data_is_a_config_error(tiny):
    with pytest.raises(ConfigError, match="n_inputs"):
        encode_modality(tiny.modality("audio"), "zs_image", "ideal", 0)
    with pytest.raises(ConfigError, match="unknown LSM preset"):
        encode_modality(tiny.modality("audio"), "nope", "ideal", 0)
    with pytest.raises(ConfigError, match="device"):
        encode_modality(tiny.modality("audio"), "zs_audio", "perfect", 0)


def test_raw_frames_are_the_binarised_inputs(tiny):
    ms = tiny.modality("visual").select(split="val")
    cfg = resolve_config(ms, "zs_image", None, 0)
    frames = raw_frames(ms, cfg)
    assert frames.shape == (len(ms), 50 * 256) and set(np.unique(frames)) <= {0, 1}
    from rram_lsm.nodes.lsm.binning import event_addresses
    t, a, _ = event_addresses(ms.events[0], ms.geometry, polarity=1, crop=(16, 16))
    bp, ix = bin_events(t, a, 256, mode="fixed_count", n_bins=50)
    assert frames[0].sum() == len(ix) > 0


def test_encode_command_prints_path_and_health(tiny, capsys):
    assert main(["encode", "--dataset", "builtin:tiny", "--modality", "audio"]) == 0
    out = capsys.readouterr().out
    assert "silent" in out and "saturated" in out and ".npz" in out
    assert main(["encode", "--dataset", "builtin:tiny", "--modality", "audio"]) == 0
    assert capsys.readouterr().out.startswith("cached: ")
    assert main(["encode", "--dataset", "builtin:tiny", "--modality", "audio", "--windows", "3",
                 "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["windows"] == 3 and info["features"][1] == 600
    assert main(["encode", "--dataset", "nope"]) == 2
    assert "nope" in capsys.readouterr().err


def test_ntidigits_file_is_encoded_through_the_real_reader(tmp_path, capsys):
    """A small HDF5 file in N-TIDIGITS' own layout, read by the real reader and encoded."""
    import h5py
    rng = np.random.default_rng(0)
    path = tmp_path / "n-tidigits.hdf5"
    with h5py.File(path, "w") as f:
        for split, n in (("train", 12), ("test", 4)):
            names = [f"{split}-spk{k}-{'123'[k % 3]}" for k in range(n)]
            f[f"{split}_labels"] = np.array([s.encode() for s in names])
            for s in names:
                m = 300
                f[f"{split}_addresses/{s}"] = rng.integers(0, 64, m).astype(np.uint8)
                f[f"{split}_timestamps/{s}"] = np.sort(rng.uniform(0, 0.5, m))
    ms = load_folder("ntidigits", path, seed=0)
    assert len(ms) == 16 and set(ms.split.tolist()) == {0, 1, 2}
    assert sorted(set(ms.labels.tolist())) == [1, 2, 3]
    assert main(["encode", "--dataset", "ntidigits", "--data", str(path), "--json"]) == 0
    import json
    info = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert info["preset"] == "ntidigits" and info["features"] == [16, 200]
    assert main(["encode", "--dataset", "ntidigits"]) == 2  # no --data
    assert "--data" in capsys.readouterr().err
