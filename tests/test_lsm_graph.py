"""The lsm node in a real multi-process graph: one feature message per sample, both binnings;
and the recorder saves a stream that replays exactly."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import run_graph
from rram_lsm.nodes.lsm.binning import bin_events, event_addresses
from rram_lsm.nodes.lsm.presets import get_preset
from rram_lsm.nodes.lsm.reservoir import LifReservoir
from rram_lsm.nodes.recording import read_recording
from rram_lsm.nodes.sources.synthetic import SyntheticDvsSource

GRAPH = """
[graph]
name = "lsm"
[nodes.src]
kind = "synthetic_dvs"
params = {{ n_samples = 3, rate_hz = 40000, sample_ms = 100, geometry = [16, 16], seed = 4 }}
[nodes.lsm]
kind = "lsm"
params = {{ preset = "zs_image", binning = "{binning}", bin_width_us = 2000, threads = {threads} }}
[nodes.rec]
kind = "recorder"
params = {{ path = "{feat}" }}
[nodes.raw]
kind = "recorder"
params = {{ path = "{raw}" }}
[[edges]]
from = "src"
to = "lsm"
[[edges]]
from = "lsm"
to = "rec"
[[edges]]
from = "src"
to = "raw"
"""


@pytest.mark.parametrize("binning,threads", [("fixed_count", 1), ("fixed_width", 2)])
def test_lsm_node_emits_one_feature_per_sample(binning, threads, tmp_path, sockdir):
    """(fixed_width runs its reservoir split over two threads: the same features.)"""
    feat, raw = tmp_path / "feat.npz", tmp_path / "raw.npz"
    launcher = run_graph(GRAPH.format(binning=binning, threads=threads, feat=feat, raw=raw),
                         tmp_path, sockdir)
    assert launcher.exit_code == 0
    rows, _ = read_recording(feat, "features")
    assert [r.shape for r, _ in rows] == [(1, 200)] * 3
    assert [label for _, label in rows] == [0, 1, 2]
    # the recorded raw events replay to exactly what the source generated
    events, geometry = read_recording(raw, "events")
    src = SyntheticDvsSource("src", {"n_samples": 3, "rate_hz": 40000, "sample_ms": 100,
                                     "geometry": [16, 16], "seed": 4})
    expected = list(src._samples())
    assert geometry == [16, 16] and len(events) == 3
    for (ev, label), (ex, exl) in zip(events, expected):
        assert label == exl and np.array_equal(ev, ex)
    # and the features equal the offline encoding of those events with the same preset
    cfg = get_preset("zs_image", binning=binning, bin_width_us=2000)
    res = LifReservoir(cfg, "ideal")
    for (ev, _), (f, _) in zip(events, rows):
        t, addr, n_in = event_addresses(ev, (16, 16), polarity=cfg.polarity, crop=cfg.crop)
        kw = {"n_bins": cfg.n_bins} if binning == "fixed_count" else {"width_us": 2000}
        ptr, idx = bin_events(t, addr, n_in, mode=binning, **kw)
        res.reset()
        assert np.allclose(res.run(ptr, idx).features, f[0])
