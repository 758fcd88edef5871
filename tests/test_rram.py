"""The RRAM crossbar model: statistics match the configuration; reads, ADC, macros."""
from __future__ import annotations

import math

import numpy as np
import pytest

from rram_lsm.nodes.lsm.binning import from_dense
from rram_lsm.nodes.lsm.config import DeviceConfig, LsmConfig, make_device
from rram_lsm.nodes.lsm.presets import PRESETS
from rram_lsm.nodes.lsm.reservoir import LifReservoir
from rram_lsm.nodes.lsm.node import LsmNode
from rram_lsm.nodes.lsm.rram import RramCrossbar, adc_quantise, crossbar_tiles
from rram_lsm.stream.node import ConfigError

LAW = dict(mu_in=0.002, sigma_in=6.6, mu_rec=0.006, sigma_rec=6.7)


def xbar(device, n_in=400, n=300, seed=0):
    return RramCrossbar(n_in, n, device=device, seed=seed, **LAW)


def test_forming_spread_is_the_weight_law():
    x = xbar("ideal")
    assert abs(x.g_pos.mean() - 30.0) < 0.05 and abs(x.g_neg.mean() - 30.0) < 0.05
    # each formed cell spreads by sigma/sqrt2 so that the pair difference has the paper's sigma
    assert abs(x.g_pos[:400].std() - 6.6 / math.sqrt(2)) < 0.05
    d_in, d_rec = x.g_diff[:400], x.g_diff[400:]
    assert abs(d_in.std() - 6.6) < 0.08 and abs(d_in.mean() - 0.002) < 0.05
    assert abs(d_rec.std() - 6.7) < 0.1 and abs(d_rec.mean() - 0.006) < 0.06
    w_in, w_rec = x.weights(0.07, np.float64)
    np.testing.assert_allclose(w_in, 0.07 * (x.g_pos[:400] - x.g_neg[:400]))
    assert w_rec.shape == (300, 300)


def test_ideal_and_rram_share_formed_cells_and_streams_are_independent():
    a, b = xbar("ideal"), xbar("rram")
    np.testing.assert_array_equal(a.g_pos, b.g_pos)
    only_stuck = xbar({"base": "ideal", "stuck_on_prob": 0.01})
    with_prog = xbar({"base": "ideal", "stuck_on_prob": 0.01, "prog_noise_scale": 2.0})
    np.testing.assert_array_equal(only_stuck.stuck_on, with_prog.stuck_on)


def test_programming_noise_widens_spread():
    base, noisy = xbar("ideal"), xbar({"base": "ideal", "prog_noise_scale": 3.0})
    extra = noisy.g_pos_eff - base.g_pos_eff
    assert abs(extra.std() - 3.0) < 0.05 and abs(extra.mean()) < 0.05


def test_stuck_cell_fractions_and_values():
    x = xbar({"base": "ideal", "stuck_on_prob": 0.02, "stuck_off_prob": 0.05})
    n = x.stuck_on.size
    assert abs(x.stuck_on.mean() - 0.02) < 4 * math.sqrt(0.02 * 0.98 / n)
    assert abs(x.stuck_off.mean() - 0.05) < 4 * math.sqrt(0.05 * 0.95 / n)
    assert not (x.stuck_on & x.stuck_off).any()
    g = np.stack([x.g_pos_eff, x.g_neg_eff])
    assert (g[x.stuck_on] == 100.0).all() and (g[x.stuck_off] == 0.0).all()


@pytest.mark.parametrize("levels", [4, 16])
def test_finite_levels(levels):
    x = xbar({"base": "ideal", "n_levels": levels, "g_max_us": 60.0})
    vals = np.unique(np.concatenate([x.g_pos_eff.ravel(), x.g_neg_eff.ravel()]))
    step = 60.0 / (levels - 1)
    assert len(vals) <= levels and len(vals) >= min(levels, 3)
    np.testing.assert_allclose(vals / step, np.rint(vals / step), atol=1e-9)
    assert len(np.unique(xbar("ideal").g_pos_eff)) > 1000


def test_drift_power_law_exponent():
    dev = {"base": "ideal", "drift_nu": 0.05, "drift_nu_std": 0.01, "t_inference": 86400.0}
    fresh, aged = xbar("ideal"), xbar(dev)
    ratio = aged.g_pos_eff / fresh.g_pos_eff
    nu = -np.log(ratio) / np.log((86400.0 + 20.0) / 20.0)
    assert abs(nu.mean() - 0.05) < 0.001 and abs(nu.std() - 0.01) < 0.001
    np.testing.assert_allclose(nu, aged.nu[0], atol=1e-9)
    assert aged.g_pos_eff.mean() < fresh.g_pos_eff.mean()
    at_zero = xbar({**dev, "t_inference": 0.0})
    np.testing.assert_array_equal(at_zero.g_pos_eff, fresh.g_pos_eff)


def test_ir_drop_attenuates_far_cells_only():
    x = xbar({"base": "ideal", "ir_drop": 0.2})
    ideal = xbar("ideal")
    assert x.g_pos_eff[0, 0] == ideal.g_pos_eff[0, 0]
    np.testing.assert_allclose(x.g_pos_eff[511, 0] / ideal.g_pos_eff[511, 0], 1 - 0.1 * 511 / 512)


def test_adc_codes():
    i = np.linspace(-300, 300, 20001)
    q = adc_quantise(i, 4, 200.0)
    lsb = 200.0 / 7
    codes = np.unique(np.rint(q / lsb))
    assert codes.tolist() == list(range(-7, 8))          # 2^4 - 1 signed codes
    np.testing.assert_allclose(q / lsb, np.rint(q / lsb), atol=1e-9)
    inside = np.abs(i) <= 200
    assert np.abs(q - i)[inside].max() <= lsb / 2 + 1e-9
    assert q.max() == pytest.approx(200.0) and q.min() == pytest.approx(-200.0)
    np.testing.assert_array_equal(adc_quantise(i, 0, 200.0), i)


def test_kernel_applies_adc_to_column_currents():
    cfg = LsmConfig(n_inputs=8, n_neurons=50, n_bins=1, decay=0.9, vth=1e9, const=1.0, seed=2)
    r = LifReservoir(cfg, {"base": "ideal", "adc_bits": 4, "adc_full_scale_us": 20.0}, dtype=np.float64)
    res = r.run(np.array([0, 2]), np.array([1, 5], np.int32))
    want = adc_quantise(r.crossbar.g_diff[1] + r.crossbar.g_diff[5], 4, 20.0)
    np.testing.assert_allclose(res.final_mem, want)
    assert len(np.unique(res.final_mem)) <= 15


def test_read_noise_per_read_statistics():
    rel = 0.05
    cfg = LsmConfig(n_inputs=8, n_neurons=200, n_bins=1, decay=0.9, vth=1e9, const=1.0, seed=3)
    r = LifReservoir(cfg, {"base": "ideal", "read_noise_scale": rel}, dtype=np.float64)
    rows = np.array([0, 3, 4], np.int32)
    mems = np.array([r.run(np.array([0, 3]), rows).final_mem for _ in range(400)])
    g = r.crossbar
    np.testing.assert_allclose(mems.mean(axis=0), g.g_diff[rows].sum(axis=0), atol=4 * rel * 60 / 20)
    want_sd = rel * math.sqrt(g.g_sq[rows].mean(axis=1).sum())
    assert abs(mems.std(axis=0).mean() / want_sd - 1) < 0.05
    # independent across columns and reads
    z = (mems - mems.mean(axis=0)) / mems.std(axis=0)
    assert abs(np.corrcoef(z[:, 0], z[:, 1])[0, 1]) < 0.2
    # the numpy read model has the same statistics
    reads = np.array([g.read(rows, np.random.default_rng(k)) for k in range(400)])
    assert abs(reads.std(axis=0).mean() / want_sd - 1) < 0.05


def test_rram_setting_defaults_and_summary():
    d = DeviceConfig.rram()
    assert d.read_noise_scale > 0 and d.adc_bits == 8 and d.stuck_off_prob > 0 and d.drift_nu > 0
    ideal = DeviceConfig.ideal()
    assert not ideal.runtime_noisy and ideal.prog_noise_scale == 0 and ideal.adc_bits == 0
    assert make_device({"base": "rram", "adc_bits": 6}).adc_bits == 6
    s = xbar("rram").summary()
    assert s["n_macros"] == 4 and 0 < s["stuck_off_frac"] < 0.01


def test_macro_counts_for_paper_settings():
    # 512 x 512-cell macros (256 Kb), differential pairs take two columns
    assert crossbar_tiles(256, 200) == (1, 1)               # the 256 -> 200 encoder: one macro
    assert crossbar_tiles(64, 200) == (1, 1)
    assert crossbar_tiles(192, 2048) == (5, 8)              # BMI neural: 40 macros
    assert crossbar_tiles(784, 2048) == (6, 8)              # BMI image: 48 macros
    r = LifReservoir(PRESETS["nmnist"])
    assert r.crossbar.n_macros == 1
    assert xbar("ideal", 400, 300).tiles == (2, 2)


def test_multi_tile_op_counts():
    cfg = LsmConfig(n_inputs=600, n_neurons=10, n_bins=2, decay=0.9, vth=1e9, const=0.01)
    r = LifReservoir(cfg)
    frames = np.zeros((2, 600), np.uint8)
    frames[0, [3, 100, 550]] = 1      # rows in tiles 0, 0, 1
    frames[1, [7]] = 1                # tile 0 only
    ops = r.run(*from_dense(frames)).ops
    assert ops["dac_row_activations"] == 4 and ops["adc_conversions"] == (2 + 1) * 10
    assert ops["cell_reads"] == 4 * 10 * 2 and ops["synaptic_ops"] == 40
    noisy = LifReservoir(cfg, {"base": "ideal", "adc_bits": 8})
    assert noisy.run(*from_dense(frames)).ops == ops


@pytest.mark.parametrize("key,value", [
    ("stuck_on_prob", 1.5), ("read_noise_scale", -0.1), ("n_levels", 1), ("adc_bits", -2),
    ("drift_nu", -0.01), ("g_form_us", 500.0), ("ir_drop", 1.0),
])
def test_bad_device_config_names_the_parameter(key, value):
    with pytest.raises(ConfigError, match=key):
        make_device({"base": "rram", key: value})


def test_unknown_device_setting():
    with pytest.raises(ConfigError, match="unknown device setting"):
        make_device("pcm")
    with pytest.raises(ConfigError, match="bogus"):
        make_device({"bogus": 1})


def test_rram_mostly_driven_segments_as_total_minus_silent_rows():
    """float32 sums a tile's input (or recurrent) rows that are mostly driven as (segment total
    - silent rows): the same partial currents up to rounding, read with the same noise draws
    and ADC, so the spikes match those of summing the driven rows, and the crossbar's op
    counts are unchanged.  Tile 1 holds dense inputs beside the sparser neurons."""
    cfg = LsmConfig(n_inputs=600, n_neurons=100, n_bins=30, decay=0.5, vth=1.0, const=0.02, seed=4)
    fast, rows = LifReservoir(cfg, "rram"), LifReservoir(cfg, "rram")
    # 700 stacked rows, 512-row macros: tile 0 = inputs 0-511; tile 1 = inputs 512-599 + neurons
    assert fast.noisy and fast.seg_total.shape == (4, 100)
    g = fast.g_diff.astype(np.float64)
    for seg, (lo, hi) in enumerate([(0, 512), (512, 512), (512, 600), (600, 700)]):
        np.testing.assert_allclose(fast.seg_total[seg], g[lo:hi].sum(axis=0), rtol=1e-5, atol=1e-3)
    rows.seg_total = np.zeros((0, 100), np.float32)          # disables the shortcut
    rng = np.random.default_rng(1)
    frames = (rng.random((cfg.n_bins, cfg.n_inputs)) < rng.uniform(0.3, 1.0, (cfg.n_bins, 1))).astype(np.uint8)
    assert (frames[:, :512].sum(axis=1) > 256).sum() >= 10      # the first tile is often mostly driven
    assert (frames[:, 512:].sum(axis=1) > 44).sum() >= 10       # and tile 1's inputs too
    bp, ix = from_dense(frames)
    a, b = fast.run(bp, ix, record=True), rows.run(bp, ix, record=True)
    assert (a.spikes == b.spikes).mean() >= 0.99 and a.spikes.sum() > 100
    assert a.ops == b.ops


def test_release_drops_the_per_cell_arrays_and_keeps_the_summary():
    """A running node keeps only the weights it read out: the crossbar's per-cell arrays go,
    its summary and layout stay, and reads or weights from the released model are refused."""
    x = RramCrossbar(64, 100, mu_in=0.002, sigma_in=6.6, mu_rec=0.006, sigma_rec=6.7,
                     device="rram", seed=2)
    summary = x.summary()
    x.release()
    assert all(getattr(x, name) is None for name in RramCrossbar.PER_CELL)
    assert x.summary() == summary and x.tiles == (1, 1)
    with pytest.raises(RuntimeError, match="released"):
        x.read(np.array([0, 1]), np.random.default_rng(0))
    with pytest.raises(RuntimeError, match="released"):
        x.weights(0.07)
    node = LsmNode("lsm", {"preset": "zs_image", "device": "rram"})
    assert node.reservoir.crossbar.g_diff is None and node.reservoir.g_diff.shape == (456, 200)
