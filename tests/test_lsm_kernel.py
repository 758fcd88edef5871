"""The LIF reservoir kernel: hand-traced case, torch reference, float32 vs float64, op counts."""
from __future__ import annotations

import numpy as np
import pytest

from rram_lsm.nodes.lsm.binning import bin_events, from_dense, to_dense
from rram_lsm.nodes.lsm.config import LsmConfig
from rram_lsm.nodes.lsm.encode import encode_samples
from rram_lsm.nodes.lsm.kernels import window_edges
from rram_lsm.nodes.lsm.presets import PRESETS, get_preset
from rram_lsm.nodes.lsm.reservoir import LifReservoir, window_rates
from rram_lsm.stream.node import ConfigError


def hand_reservoir(dtype) -> LifReservoir:
    """2 inputs, 2 neurons, decay 0.5, Vth 1: every value below is an exact binary fraction."""
    r = LifReservoir(LsmConfig(n_inputs=2, n_neurons=2, n_bins=6, decay=0.5, vth=1.0, const=1.0),
                     dtype=dtype)
    r.w_in = np.array([[1.0, 0.5], [0.25, 0.0]], dtype=dtype)    # row = input, col = neuron
    r.w_rec = np.array([[0.0, 0.7], [0.25, 0.0]], dtype=dtype)   # row = pre, col = post
    return r


# bins: input0 | input1 | - | input0+input1 | - | -
HAND_FRAMES = np.array([[1, 0], [0, 1], [0, 0], [1, 1], [0, 0], [0, 0]], dtype=np.uint8)
# Traced by hand, mem[t] = 0.5*mem[t-1]*(1-s[t-1]) + x[t]@W_in + s[t-1]@W_rec, s = mem >= 1:
# t0: n0 = 1.0 (== Vth -> spike), n1 = 0.5
# t1: n0 = reset 0 + 0.25 = 0.25;            n1 = 0.25 + 0.7 (rec from n0) = 0.95
# t2: n0 = 0.125;                            n1 = 0.475
# t3: n0 = 0.0625 + 1.25 = 1.3125 (spike);   n1 = 0.2375 + 0.5 = 0.7375
# t4: n0 = reset 0 + 0 = 0;                  n1 = 0.36875 + 0.7 = 1.06875 (spike)
# t5: n0 = 0 + 0.25 (rec from n1) = 0.25;    n1 = reset 0
HAND_MEM = [[1.0, 0.5], [0.25, 0.95], [0.125, 0.475], [1.3125, 0.7375], [0.0, 1.06875], [0.25, 0.0]]
HAND_SPIKES = [[1, 0], [0, 0], [0, 0], [1, 0], [0, 1], [0, 0]]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_hand_traced_membranes_and_spikes(dtype):
    r = hand_reservoir(dtype)
    bp, ix = from_dense(HAND_FRAMES)
    for t in range(len(HAND_FRAMES)):  # one bin at a time through the carried state
        res = r.step_bins(bp[t:t + 2] - bp[t], ix[bp[t]:bp[t + 1]])
        np.testing.assert_allclose(res.final_mem, HAND_MEM[t], rtol=1e-6)
        assert res.spikes[0].tolist() == HAND_SPIKES[t], f"bin {t}"
    full = r.run(bp, ix, record=True)
    assert full.spikes.tolist() == HAND_SPIKES
    np.testing.assert_allclose(full.features, [2 / 6, 1 / 6], rtol=1e-6)
    np.testing.assert_allclose(full.final_mem, HAND_MEM[-1])


def test_hand_traced_reference_agrees():
    from rram_lsm.nodes.lsm.reference import reference_run
    r = hand_reservoir(np.float64)
    spikes, mem = reference_run(HAND_FRAMES[None], r.w_in, r.w_rec, 0.5, 1.0)
    assert spikes[0].tolist() == HAND_SPIKES
    np.testing.assert_allclose(mem[0], HAND_MEM[-1])


def test_hand_counted_op_counts():
    r = hand_reservoir(np.float64)
    bp, ix = from_dense(HAND_FRAMES)
    ops = r.run(bp, ix).ops
    # rows driven per bin: 1, 1+1 (n0 spiked), 0, 2, 0+1 (n0), 0+1 (n1) = 7
    assert ops == {
        "dac_row_activations": 7, "cell_reads": 7 * 2 * 2, "adc_conversions": 5 * 2,
        "synaptic_ops": 7 * 2, "neuron_updates": 6 * 2, "spikes": 3, "dense_macs": 6 * (2 + 2) * 2,
    }
    assert r.ops["spikes"] == 3
    r.run(bp, ix)
    assert r.ops["synaptic_ops"] == 28  # the counter accumulates


def random_frames(rng, b, t, n_in, density):
    return (rng.random((b, t, n_in)) < density).astype(np.uint8)


@pytest.mark.parametrize("seed", range(12))
def test_float64_kernel_equals_dense_torch_reference(seed):
    from rram_lsm.nodes.lsm.reference import reference_run
    rng = np.random.default_rng(seed)
    density = [0.0, 0.02, 0.1, 0.3, 0.6, 1.0][seed % 6]
    const = [0.05, 0.1, 0.3, 0.8][seed % 4]
    cfg = LsmConfig(n_inputs=40, n_neurons=30, n_bins=25, decay=0.9, vth=1.0, const=const, seed=seed)
    r = LifReservoir(cfg, dtype=np.float64)
    frames = random_frames(rng, 4, 25, 40, density)
    ref, ref_mem = reference_run(frames, r.w_in, r.w_rec, cfg.decay, cfg.vth)
    for b in range(4):
        res = r.run(*from_dense(frames[b]), record=True)
        np.testing.assert_array_equal(res.spikes, ref[b])
        np.testing.assert_allclose(res.features, ref[b].mean(axis=0), rtol=1e-6)
        np.testing.assert_allclose(res.final_mem, ref_mem[b], rtol=1e-9, atol=1e-9)
    if density == 0.0:
        assert ref.sum() == 0


def test_all_fire_and_empty_inputs_match_reference():
    from rram_lsm.nodes.lsm.reference import reference_run
    cfg = LsmConfig(n_inputs=10, n_neurons=8, n_bins=12, decay=0.9, vth=1.0, const=1.0)
    r = LifReservoir(cfg, dtype=np.float64)
    r.w_in = np.full((10, 8), 0.2)          # 10 active inputs -> 2.0 >= Vth: every neuron, every bin
    r.w_rec = np.abs(r.w_rec)               # no inhibition
    frames = np.ones((1, 12, 10), dtype=np.uint8)
    ref, _ = reference_run(frames, r.w_in, r.w_rec, cfg.decay, cfg.vth)
    res = r.run(*from_dense(frames[0]), record=True)
    np.testing.assert_array_equal(res.spikes, ref[0])
    assert res.spikes.all() and r.health(res.features)["saturated_frac"] == 1.0
    empty = r.run(np.zeros(13, np.int64), np.zeros(0, np.int32), record=True)
    assert not empty.spikes.any() and r.health(empty.features)["silent_frac"] == 1.0


def healthy_samples(n, seed=0):
    rng = np.random.default_rng(seed)
    return [random_frames(rng, 1, 20, 64, 0.15)[0] for _ in range(n)]


def test_float32_agrees_with_float64_on_1000_samples():
    cfg = LsmConfig(n_inputs=64, n_neurons=100, n_bins=20, decay=0.5, vth=1.0, const=0.07, seed=3)
    r32, r64 = LifReservoir(cfg, dtype=np.float32), LifReservoir(cfg, dtype=np.float64)
    both = either = 0
    feats = []
    for frames in healthy_samples(1000):
        bp, ix = from_dense(frames)
        s32 = r32.run(bp, ix, record=True).spikes.astype(bool)
        res64 = r64.run(bp, ix, record=True)
        s64 = res64.spikes.astype(bool)
        both += int((s32 & s64).sum())
        either += int((s32 | s64).sum())
        feats.append(res64.features)
    health = LifReservoir.health(np.array(feats))
    assert health["silent_frac"] < 0.2 and health["saturated_frac"] < 0.2, health
    assert either > 10_000
    assert both / either >= 0.99


def test_dense_bins_total_minus_silent_rows_equals_row_sums():
    """float32 sums a bin with most inputs fired as (column totals - silent rows): the same
    spikes and membranes as summing the fired rows, and the same crossbar op counts."""
    cfg = LsmConfig(n_inputs=64, n_neurons=100, n_bins=30, decay=0.5, vth=1.0, const=0.07, seed=5)
    fast, rows = LifReservoir(cfg), LifReservoir(cfg)
    rows.w_in_total = np.zeros(0, np.float32)          # disables the shortcut
    rng = np.random.default_rng(2)
    frames = (rng.random((cfg.n_bins, cfg.n_inputs)) < rng.uniform(0.3, 1.0, (cfg.n_bins, 1))).astype(np.uint8)
    assert (frames.sum(axis=1) > cfg.n_inputs // 2).sum() >= 10     # the shortcut is taken
    bp, ix = from_dense(frames)
    a, b = fast.run(bp, ix, record=True), rows.run(bp, ix, record=True)
    np.testing.assert_allclose(a.final_mem, b.final_mem, rtol=1e-4, atol=1e-4)
    assert (a.spikes == b.spikes).mean() >= 0.999 and a.spikes.sum() > 100
    assert a.ops == b.ops


@pytest.mark.parametrize("device,dtype", [("ideal", np.float32), ("ideal", np.float64),
                                          ({"base": "rram", "adc_bits": 6}, np.float32)])
def test_neurons_split_over_threads_give_the_serial_bits(device, dtype):
    """``threads`` 2 and 3 (203 neurons: the last part padded) give the serial kernel's
    spikes, membranes, op counts and read-noise stream, from rest and from a carried state,
    over sparse bins and bins dense enough for the total-minus-silent-rows sum; new weights
    assigned to the reservoir are used."""
    cfg = LsmConfig(n_inputs=64, n_neurons=203, n_bins=40, decay=0.9, vth=1.0, const=0.1, seed=3)
    rng = np.random.default_rng(8)
    density = rng.choice([0.02, 0.2, 0.8], size=(cfg.n_bins, 1))
    bp, ix = from_dense((rng.random((cfg.n_bins, cfg.n_inputs)) < density).astype(np.uint8))
    serial = LifReservoir(cfg, device, dtype=dtype)
    for threads in (2, 3):
        split = LifReservoir(cfg, device, dtype=dtype, threads=threads)
        for r in (serial, split):
            r.read_state[1] = 0
        a, b = serial.run(bp, ix, record=True), split.run(bp, ix, record=True)
        assert 0.05 < a.features.mean() < 0.8
        np.testing.assert_array_equal(a.spikes, b.spikes)
        np.testing.assert_array_equal(a.final_mem, b.final_mem)
        assert a.ops == b.ops
        a, b = serial.step_bins(bp, ix), split.step_bins(bp, ix)        # carried state
        np.testing.assert_array_equal(a.spikes, b.spikes)
        np.testing.assert_array_equal(a.final_mem, b.final_mem)
        np.testing.assert_array_equal(serial.read_state, split.read_state)
    if device == "ideal":
        before = serial.run(bp, ix).features
        serial.w_rec = serial.w_rec * dtype(0.5)
        split.w_rec = serial.w_rec
        after = serial.run(bp, ix).features
        assert not np.array_equal(before, after)            # the new weights are bound and used
        np.testing.assert_array_equal(after, split.run(bp, ix).features)
    with pytest.raises(ConfigError, match="'threads'"):
        LifReservoir(cfg, threads=0)


def test_batched_encoding_equals_single_runs():
    cfg = LsmConfig(n_inputs=64, n_neurons=50, n_bins=20, decay=0.9, vth=1.0, const=0.1, seed=1)
    rng = np.random.default_rng(5)
    samples = []
    for _ in range(30):
        t = np.sort(rng.integers(0, 100_000, rng.integers(0, 400)))
        samples.append((t, rng.integers(0, 64, t.size)))
    for device in ("ideal", "rram"):
        r = LifReservoir(cfg, device)
        calls = []
        feats = encode_samples(samples, r, chunk=8, progress=lambda d, n: calls.append((d, n)))
        assert feats.shape == (30, 50) and feats.dtype == np.float32
        assert calls[-1] == (30, 30) and len(calls) == 4
        again = encode_samples(samples, LifReservoir(cfg, device), chunk=30)
        np.testing.assert_array_equal(feats, again)  # batching does not change results
        if device == "ideal":
            for (t, a), f in zip(samples, feats):
                bp, ix = bin_events(t, a, 64, mode="fixed_count", n_bins=20)
                np.testing.assert_array_equal(r.run(bp, ix).features, f)


def test_same_seed_same_weights_and_features_different_seed_differs():
    frames = healthy_samples(1, seed=9)[0]
    bp, ix = from_dense(frames)
    cfg = LsmConfig(n_inputs=64, n_neurons=100, n_bins=20, decay=0.9, vth=1.0, const=0.1, seed=11)
    for device in ("ideal", "rram"):
        a, b = LifReservoir(cfg, device), LifReservoir(cfg, device)
        np.testing.assert_array_equal(a.w_in, b.w_in)
        np.testing.assert_array_equal(a.w_rec, b.w_rec)
        np.testing.assert_array_equal(a.run(bp, ix).features, b.run(bp, ix).features)
        c = LifReservoir(get_preset("nmnist", n_inputs=64, seed=12, const=0.1, vth=1.0), device)
        assert not np.array_equal(a.w_in, c.w_in)
        assert not np.array_equal(a.run(bp, ix).features, c.run(bp, ix).features)


def test_weight_law_matches_paper():
    r = LifReservoir(get_preset("nmnist", seed=4), dtype=np.float64)
    g_in = r.w_in / r.config.const
    g_rec = r.w_rec / r.config.const
    assert abs(g_in.std() - 6.6) < 0.15 and abs(g_in.mean() - 0.002) < 0.1
    assert abs(g_rec.std() - 6.7) < 0.15 and abs(g_rec.mean() - 0.006) < 0.15


@pytest.mark.parametrize("key,value", [
    ("decay", -0.1), ("decay", 1.5), ("vth", 0.0), ("vth", -1.0), ("n_inputs", 0),
    ("n_neurons", -3), ("const", 0.0), ("sigma_in", -1.0), ("binning", "weird"), ("seed", -1),
])
def test_bad_config_names_the_parameter(key, value):
    with pytest.raises(ConfigError, match=key):
        get_preset("nmnist", **{key: value})


def test_unknown_preset_and_override_and_bad_inputs():
    with pytest.raises(ConfigError, match="nope"):
        get_preset("nope")
    with pytest.raises(ConfigError, match="vthh"):
        get_preset("nmnist", vthh=1.0)
    r = LifReservoir(LsmConfig(n_inputs=4, n_neurons=3))
    with pytest.raises(ValueError, match="out of range"):
        r.run(np.array([0, 1], np.int64), np.array([4], np.int32))
    with pytest.raises(ConfigError, match="bin_width_us"):
        LsmConfig(n_inputs=4, binning="fixed_width")


def test_presets_match_paper_table():
    want = {"nmnist": (256, 200, 50, 0.9, 5.0, 0.07), "ntidigits": (64, 200, 129, 0.97, 5.3, 0.08),
            "zs_image": (256, 200, 50, 0.9, 5.0, 0.3), "zs_audio": (64, 200, 129, 0.97, 5.3, 0.1),
            "bmi_neural": (192, 2048, 201, 0.95, 0.1, 0.0005),
            "bmi_image": (784, 2048, 49, 0.95, 0.1, 0.0005)}
    assert set(PRESETS) == set(want)
    for name, row in want.items():
        c = PRESETS[name]
        assert (c.n_inputs, c.n_neurons, c.n_bins, c.decay, c.vth, c.const) == row
    assert PRESETS["nmnist"].crop == (16, 16) and PRESETS["ntidigits"].binning == "chunk_pad"


def test_windowed_rates_and_dense_roundtrip():
    cfg = LsmConfig(n_inputs=64, n_neurons=100, n_bins=20, decay=0.9, vth=1.0, const=0.1)
    r = LifReservoir(cfg)
    frames = healthy_samples(1, seed=2)[0]
    bp, ix = from_dense(frames)
    np.testing.assert_array_equal(to_dense(bp, ix, 64), frames)
    res = r.run(bp, ix, record=True, n_windows=4)
    np.testing.assert_allclose(res.window_rates, res.spikes.reshape(4, 5, 100).mean(axis=1))
    np.testing.assert_allclose(res.window_rates.mean(axis=0), res.features, rtol=1e-6)


def test_window_edges_round_half_up_and_empty_windows_are_zero():
    np.testing.assert_array_equal(window_edges(10, 4), [0, 3, 5, 8, 10])
    np.testing.assert_array_equal(window_edges(2, 4), [0, 1, 1, 2, 2])
    cfg = LsmConfig(n_inputs=64, n_neurons=100, n_bins=2, decay=0.9, vth=1.0, const=0.1)
    bp, ix = from_dense(healthy_samples(1, seed=3)[0][:2])
    res = LifReservoir(cfg).run(bp, ix, record=True, n_windows=4)
    np.testing.assert_array_equal(res.window_rates[[0, 2]], res.spikes)
    assert not res.window_rates[[1, 3]].any()
    np.testing.assert_array_equal(window_rates(res.spikes, 4), res.window_rates.ravel())
    np.testing.assert_array_equal(window_rates(res.spikes, 1), res.features)


@pytest.mark.parametrize("device", ["ideal", "rram"])
def test_batched_windowed_rates_match_the_per_sample_raster(device):
    """The batched encoder's windowed rates equal the windows of the same samples' rasters
    (ideal: from ``run``; both devices: weighted by window length they are the mean rates)."""
    cfg = LsmConfig(n_inputs=64, n_neurons=100, n_bins=20, decay=0.9, vth=1.0, const=0.1)
    frames = healthy_samples(12, seed=4)
    samples = []
    for fr in frames:
        t, a = np.nonzero(fr)
        samples.append((t.astype(np.int64), a.astype(np.int64)))
    r = LifReservoir(cfg, device)
    win = encode_samples(samples, r, mode="fixed_width", width_us=1, windows=5)
    mean = encode_samples(samples, r, mode="fixed_width", width_us=1)
    assert win.shape == (12, 500) and mean.shape == (12, 100)
    for s, (t, a) in enumerate(samples):
        n_bins = int(t.max() - t.min()) + 1      # fixed_width bins start at the first event
        w = np.diff(window_edges(n_bins, 5))
        np.testing.assert_allclose((win[s].reshape(5, 100) * w[:, None]).sum(0) / n_bins,
                                   mean[s], atol=1e-6)
        if device == "ideal":
            bp, ix = bin_events(t, a, 64, mode="fixed_width", width_us=1)
            res = LifReservoir(cfg).run(bp, ix, n_windows=5)
            np.testing.assert_array_equal(win[s], res.window_rates.ravel())
    assert not np.allclose(win[:, :100], win[:, 400:])
    with pytest.raises(ValueError, match="windows"):
        encode_samples(samples, r, windows=0)


def test_kernels_are_numba_only_and_picked_in_one_place():
    """nodes/lsm in parts: the kernel modules hold public Numba functions only (no classes);
    only ``reservoir.kernel_for`` names an entry kernel (so the choice of ideal/rram, serial/
    column parts is made once); no module of the package imports another's ``_private`` name."""
    import ast
    import inspect
    from pathlib import Path

    from rram_lsm.nodes.lsm import kernels, kernels_rram, reservoir
    for mod in (kernels, kernels_rram):
        tree = ast.parse(inspect.getsource(mod))
        assert not [n for n in tree.body if isinstance(n, ast.ClassDef)]
        for n in tree.body:
            if isinstance(n, ast.FunctionDef):
                assert not n.name.startswith("_"), f"{mod.__name__}.{n.name} is private"
                assert hasattr(getattr(mod, n.name), "py_func"), f"{mod.__name__}.{n.name} is not jitted"
    entries = {f.py_func.__name__ for f in reservoir.KERNELS.values()}
    assert len(entries) == len(reservoir.KERNELS) == 10
    for path in Path(reservoir.__file__).parent.glob("*.py"):
        tree = ast.parse(path.read_text())
        for n in ast.walk(tree):
            if isinstance(n, ast.ImportFrom):
                private = [a.name for a in n.names if a.name.startswith("_")]
                assert not private, f"{path.name} imports {private} from {n.module}"
            if path.stem not in ("kernels", "kernels_rram", "reservoir"):
                name = n.id if isinstance(n, ast.Name) else n.attr if isinstance(n, ast.Attribute) else None
                assert name not in entries, f"{path.name} picks kernel {name} itself"


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("device", ["ideal", "rram"])
def test_kernel_for_picks_by_device_and_split(device, threads):
    """The dispatch: the device picks ideal or rram kernels, ``threads`` the column-part ones
    (batch stays serial per sample); the parameters travel by name, resolved from the config."""
    from rram_lsm.nodes.lsm.config import ReservoirParams
    from rram_lsm.nodes.lsm.reservoir import kernel_for
    cfg = get_preset("zs_image", n_neurons=40)
    r = LifReservoir(cfg, device, threads=threads)
    kind = "ideal" if device == "ideal" else "rram"
    for entry, name in (("bins", f"lif_{kind}"), ("packet", f"packet_{kind}"), ("batch", f"batch_{kind}")):
        fn, args = kernel_for(r, entry)
        split = threads > 1 and entry != "batch"
        assert fn.py_func.__name__ == name + ("_cols" if split else "")
        params = ReservoirParams(*next(a for a in args if isinstance(a, tuple)))
        assert (params.decay, params.vth, params.const, params.n_inputs) == (cfg.decay, cfg.vth, cfg.const, 256)
        assert params.adc_bits == (8 if device == "rram" else 0) and params.n_row_tiles == r.n_row_tiles
