"""LsmNode.process() with real packets: trial (both binning modes) and continuous mode."""
from __future__ import annotations

import numpy as np
import pytest

from rram_lsm.nodes.lsm.binning import bin_events, event_addresses
from rram_lsm.nodes.lsm.encode import encode_samples
from rram_lsm.nodes.lsm.kernels import window_edges
from rram_lsm.nodes.lsm.live_binning import LiveBinner
from rram_lsm.nodes.lsm.node import LsmNode
from rram_lsm.nodes.lsm.presets import get_preset
from rram_lsm.nodes.lsm.reservoir import LifReservoir
from rram_lsm.stream.node import ConfigError
from rram_lsm.stream.packets import DVS_DTYPE, NEURAL_DTYPE, Origin, Packet, control

from nodetest import drive, sample_packets


def dvs_sample(seed: int, n: int = 3000, duration_us: int = 300_000) -> np.ndarray:
    """A synthetic N-MNIST-like sample: events concentrated in the sensor's centre."""
    rng = np.random.default_rng(seed)
    ev = np.zeros(n, DVS_DTYPE)
    ev["t"] = np.sort(rng.integers(1_000_000, 1_000_000 + duration_us, n))
    ev["x"] = np.clip(rng.normal(17, 6, n), 0, 33).astype(np.uint16)
    ev["y"] = np.clip(rng.normal(17, 6, n), 0, 33).astype(np.uint16)
    ev["p"] = rng.integers(0, 2, n)
    return ev


def feed(node: LsmNode, events: np.ndarray, sample: int, n_packets: int = 7, label: int = 3):
    return drive(node, sample_packets(events, sample, n_packets=n_packets, label=label),
                 setup=False, flush=False)


def offline(events, cfg, mode, **kw):
    t, a, n = event_addresses(events, (34, 34), cfg.polarity, cfg.crop)
    bp, ix = bin_events(t, a, n, mode=mode, **kw)
    return LifReservoir(cfg).run(bp, ix).features


@pytest.mark.parametrize("binning", ["fixed_count", "fixed_width"])
def test_trial_mode_one_feature_per_sample_equal_to_offline(binning):
    params = {"preset": "zs_image", "binning": binning}
    node = LsmNode("lsm", params)
    node.setup()
    assert sum(node.ops.values()) == 0                 # warm-up is not counted
    cfg = get_preset("zs_image", binning=binning)
    total_bins = 0
    for sample in range(3):
        ev = dvs_sample(sample)
        out = feed(node, ev, sample)
        assert len(out) == 1
        f = out[0]
        assert f.kind == "features" and f.sample == sample and f.label == 3
        assert f.origin == Origin("dvs", 42, sample)
        assert f.body.shape == (1, 200) and f.body.dtype == np.float32
        assert f.t0 == int(ev["t"][0]) and f.t1 == int(ev["t"][-1])
        if binning == "fixed_count":
            want = offline(ev, cfg, "fixed_count", n_bins=50)
            n_bins = 50
        else:
            want = offline(ev, cfg, "fixed_width", width_us=6000)
            t, _, _ = event_addresses(ev, (34, 34), cfg.polarity, cfg.crop)
            n_bins = (t[-1] - t[0]) // 6000 + 1
        np.testing.assert_array_equal(f.body[0], want)
        assert f.meta["n_bins"] == n_bins
        total_bins += n_bins
        assert 0 < f.body.mean() < 1
    assert {"silent_frac", "saturated_frac"} <= set(node.gauges)
    assert node.ops["neuron_updates"] == total_bins * 200 and node.ops["spikes"] > 0
    assert node.ops["synaptic_ops"] == node.ops["dac_row_activations"] * 200


@pytest.mark.parametrize("binning", ["fixed_count", "fixed_width"])
def test_windowed_features_equal_the_offline_encoder(binning):
    """``windows`` 4: each feature is the batched encoder's windowed rates of the same sample
    (window-major), the first 200 values are the first window, and the mean rates weighted by
    window length are the node's ``windows`` 1 feature."""
    params = {"preset": "zs_image", "binning": binning}
    node, plain = LsmNode("lsm", {**params, "windows": 4}), LsmNode("lsm", params)
    for n in (node, plain):
        n.setup()
    assert node.path is None                        # windowed rates keep the raster
    cfg = get_preset("zs_image", binning=binning)
    evs = [dvs_sample(20 + s) for s in range(3)]
    samples = [event_addresses(ev, (34, 34), cfg.polarity, cfg.crop)[:2] for ev in evs]
    kw = {"n_bins": 50} if binning == "fixed_count" else {"width_us": 6000}
    want = encode_samples(samples, LifReservoir(cfg), mode=binning, windows=4, **kw)
    assert want.shape == (3, 800)
    for s, ev in enumerate(evs):
        f = feed(node, ev, s)[0]
        assert f.body.shape == (1, 800) and f.meta["windows"] == 4
        np.testing.assert_array_equal(f.body[0], want[s])
        n_bins = f.meta["n_bins"]
        edges = window_edges(n_bins, 4)
        mean = (f.body[0].reshape(4, 200) * np.diff(edges)[:, None]).sum(axis=0) / n_bins
        np.testing.assert_allclose(mean, feed(plain, ev, s)[0].body[0], atol=1e-6)
        assert not np.allclose(f.body[0, :200], f.body[0, 600:])   # windows differ in time


@pytest.mark.parametrize("binning,mode", [("fixed_count", "trial"), ("fixed_width", "trial"),
                                          ("fixed_width", "continuous")])
def test_setup_leaves_nothing_to_load_for_the_first_wire_packets(binning, mode):
    """After setup, wire-decoded (read-only) DVS packets run only kernels that are already
    loaded: no Numba signature is added on the first packets of a sample (a load from the
    cache took ~5 ms on the first packet)."""
    from rram_lsm.nodes.lsm import binning as binning_mod, kernels, kernels_rram, live_binning
    from rram_lsm.stream import codec
    node = LsmNode("lsm", {"preset": "zs_image", "binning": binning, "bin_width_us": 1000,
                           "mode": mode})
    node.setup()
    jitted = [f for mod in (binning_mod, live_binning, kernels, kernels_rram)
              for f in vars(mod).values() if hasattr(f, "signatures") and hasattr(f, "py_func")]
    before = {f.py_func.__qualname__: len(f.signatures) for f in jitted}
    ev = dvs_sample(3)
    frames = [codec.encode(control("start", sample=0))]
    frames += [codec.encode(Packet(kind="events", body=part, geometry=(34, 34), sample=0))
               for part in np.array_split(ev, 5)]
    frames.append(codec.encode(control("end_of_sample", sample=0)))
    packets = [codec.decode([bytes(memoryview(b)) for b in f]) for f in frames]   # as received
    assert not packets[1].body.flags.writeable
    out = [o for p in packets for o in node.process(p)]
    assert (len(out) == 1 if mode == "trial" else len(out) > 20) and out[0].body.mean() > 0
    assert {f.py_func.__qualname__: len(f.signatures) for f in jitted} == before


def test_trial_resets_state_between_samples():
    node = LsmNode("lsm", {"preset": "zs_image"})
    node.setup()
    a = feed(node, dvs_sample(0), 0)[0].body
    feed(node, dvs_sample(1), 1)
    again = feed(node, dvs_sample(0), 2)[0].body
    np.testing.assert_array_equal(a, again)


def test_rram_device_node_runs_and_differs_from_ideal():
    ev = dvs_sample(4)
    ideal = LsmNode("lsm", {"preset": "zs_image"})
    noisy = LsmNode("lsm", {"preset": "zs_image", "device": {"base": "rram", "adc_bits": 6}})
    for n in (ideal, noisy):
        n.setup()
    fi, fr = feed(ideal, ev, 0)[0].body, feed(noisy, ev, 0)[0].body
    assert fr.shape == (1, 200) and not np.array_equal(fi, fr)
    assert np.corrcoef(fi[0], fr[0])[0, 1] > 0.5        # the same reservoir, perturbed


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("device", ["ideal", {"base": "rram", "adc_bits": 6}])
def test_fused_packet_path_equals_binning_then_kernel_per_packet(device, threads):
    """The node's one-call packet path gives the bits (features, op counts, read-noise
    stream) of LiveBinner.feed + LifReservoir.accumulate packet by packet, on one core or
    with the neurons split over two; a packet with a coordinate off the sensor is rejected
    whole, naming the field, and the sample goes on."""
    params = {"preset": "zs_image", "binning": "fixed_width", "bin_width_us": 1000, "device": device,
              "threads": threads}
    node = LsmNode("lsm", params)
    node.setup()
    cfg = node.config
    ref = LifReservoir(cfg, device)
    ref.warmup()                          # the node's reservoir was warmed up the same way
    binner = LiveBinner(cfg.n_inputs, 1000, polarity=cfg.polarity, crop=cfg.crop)
    cnt = np.zeros(4, np.int64)
    for sample in range(2):
        ev = dvs_sample(10 + sample, n=20_000)
        parts = np.array_split(ev, 40)
        bad = parts[17].copy()
        bad["y"][3] = 34
        node.process(control("start", sample=sample))
        ref.reset()
        binner.reset()
        counts = np.zeros(cfg.n_neurons, np.int64)
        for k, part in enumerate(parts):
            if k == 17:
                with pytest.raises(ValueError, match="'y' value 34"):
                    node.process(Packet(kind="events", body=bad, geometry=(34, 34), sample=sample))
            node.process(Packet(kind="events", body=part, geometry=(34, 34), sample=sample))
            bp, idx, _ = binner.feed(part, (34, 34))
            if bp.size > 1:
                ref.accumulate(bp, idx, counts, cnt)
        assert node.path.geometry == (34, 34)       # packets after the first took the fused path
        out = node.process(control("end_of_sample", sample=sample))[0]
        bp, idx = binner.close()
        ref.accumulate(bp, idx, counts, cnt)
        n_bins = binner.open_bin + 1
        np.testing.assert_array_equal(out.body[0], (counts / n_bins).astype(np.float32))
        assert out.meta["n_bins"] == n_bins and 0 < out.body.mean() < 1
    np.testing.assert_array_equal(node.reservoir.read_state, ref.read_state)
    assert dict(node.ops) == ref.op_counts(cnt) and node.ops["spikes"] > 0


def test_continuous_mode_emits_every_hop_and_matches_offline():
    w = 6000
    node = LsmNode("lsm", {"preset": "zs_image", "binning": "fixed_width", "mode": "continuous",
                           "window_us": 10 * w, "hop_us": 5 * w})
    node.setup()
    ev = dvs_sample(7, n=6000, duration_us=600_000)
    outs = []
    for part in np.array_split(ev, 23):
        outs += list(node.process(Packet(kind="events", body=part, geometry=(34, 34), sample=-1)))
    t_origin = (int(ev["t"][0]) // w) * w
    done = (int(ev["t"][-1]) - t_origin) // w
    assert len(outs) == done // 5
    assert all(o.kind == "features" and o.body.shape == (1, 200) and o.sample == -1 for o in outs)
    cfg = get_preset("zs_image", binning="fixed_width")
    t, a, n = event_addresses(ev, (34, 34), cfg.polarity, cfg.crop)
    bp, ix = bin_events(t, a, n, mode="fixed_width", width_us=w, t_start=t_origin, n_bins=done)
    raster = LifReservoir(cfg).run(bp, ix, record=True).spikes
    for k, o in enumerate(outs):
        end = 5 * (k + 1)
        want = raster[max(0, end - 10):end].mean(axis=0)
        np.testing.assert_allclose(o.body[0], want, rtol=1e-6)
        assert o.t1 == t_origin + end * w and o.t0 == o.t1 - min(end, 10) * w
    assert node.ops["neuron_updates"] == done * 200
    # windows 2: the first and second half of each full window, window-major
    node = LsmNode("lsm", {"preset": "zs_image", "binning": "fixed_width", "mode": "continuous",
                           "window_us": 10 * w, "hop_us": 5 * w, "windows": 2})
    node.setup()
    wins = []
    for part in np.array_split(ev, 23):
        wins += list(node.process(Packet(kind="events", body=part, geometry=(34, 34), sample=-1)))
    assert len(wins) == len(outs) and all(o.body.shape == (1, 400) for o in wins)
    for k, o in enumerate(wins[1:], start=2):
        end = 5 * k
        np.testing.assert_allclose(o.body[0, :200], raster[end - 10:end - 5].mean(axis=0), rtol=1e-6)
        np.testing.assert_allclose(o.body[0, 200:], raster[end - 5:end].mean(axis=0), rtol=1e-6)


def test_continuous_gap_longer_than_window_restarts_from_rest():
    node = LsmNode("lsm", {"preset": "bmi_neural", "overrides": {"n_neurons": 50}, "mode": "continuous",
                           "window_us": 100_000, "hop_us": 50_000})
    node.setup()
    ev = np.zeros(4, NEURAL_DTYPE)
    ev["t"] = [0, 5_000, 10_000_000, 10_200_000]
    ev["x"] = [1, 2, 3, 4]
    out = list(node.process(Packet(kind="events", body=ev, geometry=(192,))))
    # the 1000-bin gap is skipped: bins of the last window + the final 20 bins at most
    assert node.ops["neuron_updates"] <= (10 + 20) * 50
    assert 1 <= len(out) <= 4 and all(o.body.shape == (1, 50) for o in out)


def test_bad_params():
    with pytest.raises(ConfigError, match="mode"):
        LsmNode("lsm", {"mode": "batchy"})
    with pytest.raises(ConfigError, match="fixed_width"):
        LsmNode("lsm", {"mode": "continuous", "binning": "fixed_count"})
    with pytest.raises(ConfigError, match="preset"):
        LsmNode("lsm", {"preset": "imagenet"})
    with pytest.raises(ConfigError, match="hop_us"):
        LsmNode("lsm", {"preset": "bmi_neural", "mode": "continuous", "hop_us": 15_000})
    with pytest.raises(ConfigError, match="device"):
        LsmNode("lsm", {"device": "pcm"})
    with pytest.raises(ConfigError, match="windows"):
        LsmNode("lsm", {"windows": 0})
    for bad in (0, -2):
        with pytest.raises(ConfigError, match="'threads' must be a positive integer"):
            LsmNode("lsm", {"threads": bad})
    with pytest.raises(ConfigError, match="'threads' must be int, got True"):  # the declared type
        LsmNode("lsm", {"threads": True})
    with pytest.raises(ConfigError, match="'threads' is 4096 but Numba has"):
        LsmNode("lsm", {"threads": 4096})
    node = LsmNode("lsm", {"preset": "zs_image", "overrides": {"crop": None}})
    with pytest.raises(ConfigError, match="n_inputs"):
        feed(node, dvs_sample(0), 0)


def test_node_does_not_import_torch():
    import subprocess
    import sys
    code = ("import sys, numpy as np; from nodes.lsm.node import LsmNode; "
            "n = LsmNode('lsm', {'preset': 'nmnist'}); n.setup(); "
            "print('torch' in sys.modules, 'tonic' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
