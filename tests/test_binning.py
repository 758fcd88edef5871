"""Binning: the three modes, binarisation, address mapping, errors."""
from __future__ import annotations

import math

import numpy as np
import pytest

from rram_lsm.nodes.lsm.binning import bin_events, event_addresses, from_dense, to_dense
from rram_lsm.stream.packets import COCHLEA_DTYPE, DVS_DTYPE, NEURAL_DTYPE


def csr_lists(bp, ix):
    return [ix[bp[t]:bp[t + 1]].tolist() for t in range(len(bp) - 1)]


def test_fixed_count_by_hand():
    t = np.array([0, 10, 20, 30, 35, 99])
    a = np.array([2, 2, 0, 1, 1, 3])
    bp, ix = bin_events(t, a, 4, mode="fixed_count", n_bins=4)   # span 100 -> bins of 25 µs
    assert bp.dtype == np.int64 and ix.dtype == np.int32
    assert csr_lists(bp, ix) == [[0, 2], [1], [], [3]]             # repeats collapse (binarised)


def test_fixed_count_window_and_unsorted_input():
    rng = np.random.default_rng(0)
    t = rng.integers(0, 1000, 500)
    a = rng.integers(0, 16, 500)
    bp, ix = bin_events(t, a, 16, mode="fixed_count", n_bins=10, t_start=0, t_end=1000)
    dense = np.zeros((10, 16), np.uint8)
    dense[t // 100, a] = 1
    np.testing.assert_array_equal(to_dense(bp, ix, 16), dense)
    for row in csr_lists(bp, ix):
        assert row == sorted(set(row))
    bp2, ix2 = bin_events(t, a, 16, mode="fixed_count", n_bins=10, t_start=500, t_end=1000)
    keep = t >= 500
    dense2 = np.zeros((10, 16), np.uint8)
    dense2[(t[keep] - 500) // 50, a[keep]] = 1
    np.testing.assert_array_equal(to_dense(bp2, ix2, 16), dense2)


def test_fixed_width():
    t = np.array([1000, 1500, 2999, 3000, 9000])
    a = np.array([0, 1, 0, 2, 1])
    bp, ix = bin_events(t, a, 3, mode="fixed_width", width_us=1000)
    assert csr_lists(bp, ix) == [[0, 1], [0], [2], [], [], [], [], [], [1]]
    bp, ix = bin_events(t, a, 3, mode="fixed_width", width_us=1000, t_start=0, n_bins=3)
    assert csr_lists(bp, ix) == [[], [0, 1], [0]]                 # later events dropped


def authors_chunk_pad(t, a, n_inputs, n_bins):
    """The authors' N-TIDIGITS protocol, literally: 1 ms raster, torch.chunk, binarise, pad."""
    import torch
    ms = (t - t.min()) // 1000
    raster = torch.zeros(int(ms.max()) + 1, n_inputs)
    for m, x in zip(ms, a):
        raster[m, x] += 1
    pieces = [c.sum(0) for c in torch.chunk(raster, n_bins, dim=0)]
    out = torch.zeros(n_bins, n_inputs)
    out[:len(pieces)] = (torch.stack(pieces) > 0).float()
    return out.numpy().astype(np.uint8), len(pieces)


@pytest.mark.parametrize("duration_ms", [50, 129, 130, 300, 517, 1000])
def test_chunk_pad_matches_torch_chunk_protocol(duration_ms):
    rng = np.random.default_rng(duration_ms)
    t = np.sort(rng.integers(0, duration_ms * 1000, 800))
    t[-1] = duration_ms * 1000 - 1
    a = rng.integers(0, 64, t.size)
    want, n_pieces = authors_chunk_pad(t, a, 64, 129)
    bp, ix = bin_events(t, a, 64, mode="chunk_pad", n_bins=129)
    np.testing.assert_array_equal(to_dense(bp, ix, 64), want)
    d = (t[-1] - t[0]) // 1000 + 1
    assert n_pieces == math.ceil(d / math.ceil(d / 129))
    if n_pieces < 129:
        assert bp[n_pieces] == bp[-1]                              # zero padding at the end


def test_empty_and_errors():
    bp, ix = bin_events(np.zeros(0), np.zeros(0), 8, mode="fixed_count", n_bins=5)
    assert bp.tolist() == [0] * 6 and ix.size == 0
    with pytest.raises(ValueError, match="address 8 out of range"):
        bin_events(np.array([0, 1]), np.array([0, 8]), 8, mode="fixed_count", n_bins=2)
    with pytest.raises(ValueError, match="address -1 out of range"):
        bin_events(np.array([0]), np.array([-1]), 8, mode="fixed_count", n_bins=2)
    with pytest.raises(ValueError, match="binning mode"):
        bin_events(np.array([0]), np.array([0]), 8, mode="bogus", n_bins=2)
    with pytest.raises(ValueError, match="width_us"):
        bin_events(np.array([0]), np.array([0]), 8, mode="fixed_width")


def test_dense_roundtrip():
    f = (np.random.default_rng(1).random((7, 13)) < 0.3).astype(np.uint8)
    np.testing.assert_array_equal(to_dense(*from_dense(f), 13), f)


def test_dvs_addresses_crop_and_polarity():
    ev = np.zeros(5, DVS_DTYPE)
    ev["t"] = [0, 1, 2, 3, 4]
    ev["x"] = [9, 24, 8, 10, 33]
    ev["y"] = [9, 24, 12, 11, 33]
    ev["p"] = [1, 1, 1, 0, 1]
    t, a, n = event_addresses(ev, (34, 34), polarity=1, crop=(16, 16))
    assert n == 256 and t.tolist() == [0, 1] and a.tolist() == [0, 15 * 16 + 15]
    t, a, n = event_addresses(ev, (34, 34))
    assert n == 34 * 34 * 2 and a.tolist()[:2] == [(9 * 34 + 9) * 2 + 1, (24 * 34 + 24) * 2 + 1]
    t, a, n = event_addresses(ev, (34, 34), crop=(16, 16))
    assert n == 512 and a.tolist() == [1, (15 * 16 + 15) * 2 + 1, (2 * 16 + 1) * 2 + 0]
    ev["x"][0] = 34
    with pytest.raises(ValueError, match="'x' value 34 out of range"):
        event_addresses(ev, (34, 34))


def test_cochlea_and_neural_addresses():
    co = np.zeros(3, COCHLEA_DTYPE)
    co["x"], co["p"] = [0, 63, 5], [0, 1, 1]
    assert event_addresses(co, (64,))[1].tolist() == [0, 63, 5]
    assert event_addresses(co, (64,), polarity=1)[1].tolist() == [63, 5]
    ne = np.zeros(2, NEURAL_DTYPE)
    ne["x"] = [191, 0]
    t, a, n = event_addresses(ne, (192,))
    assert n == 192 and a.tolist() == [191, 0]
    with pytest.raises(ValueError, match="out of range"):
        event_addresses(ne, (100,))


@pytest.mark.parametrize("n_inputs", [8, 256, 4096])  # dense bins scan the marks, sparse ones sort
def test_in_order_fast_path_equals_the_counting_sort(n_inputs):
    """Events in time order take a one-pass path; it must give the counting sort's CSR exactly,
    and out-of-order events must fall back to the counting sort."""
    from rram_lsm.nodes.lsm.binning import csr, csr_in_order

    rng = np.random.default_rng(n_inputs)
    for n_events, n_bins in [(0, 3), (1, 1), (500, 7), (20_000, 300)]:
        bins = np.sort(rng.integers(-1, n_bins, n_events)).astype(np.int64)
        addr = rng.integers(0, n_inputs, n_events).astype(np.int64)
        ok, bp, ix = csr_in_order(bins, addr, n_bins, n_inputs)
        ref_bp, ref_ix = csr(bins, addr, n_bins, n_inputs)
        assert ok and np.array_equal(bp, ref_bp) and np.array_equal(ix, ref_ix)
    shuffled = rng.permutation(bins)
    assert not csr_in_order(shuffled, addr, n_bins, n_inputs)[0]
    t = rng.integers(0, 10_000, 3000)  # unsorted times through the public function
    a = rng.integers(0, n_inputs, 3000)
    got = bin_events(t, a, n_inputs, mode="fixed_width", width_us=100)
    order = np.argsort(t, kind="stable")
    want = bin_events(t[order], a[order], n_inputs, mode="fixed_width", width_us=100)
    assert all(np.array_equal(g, w) for g, w in zip(got, want))


@pytest.mark.parametrize("n_inputs,n_events,width", [(256, 20_000, 1000), (2048, 3_000, 200), (16, 500, 50)])
def test_live_binner_equals_bin_events_over_any_packet_split(n_inputs, n_events, width):
    """Streaming fixed_width bins (packets cut anywhere) == bin_events on the whole sample:
    dense bins (read from the marks), sparse ones (sorted list) and empty ones."""
    from rram_lsm.nodes.lsm.live_binning import LiveBinner
    rng = np.random.default_rng(n_inputs)
    ev = np.zeros(n_events, NEURAL_DTYPE)
    ev["t"] = np.sort(rng.integers(5_000, 5_000 + 300 * width, n_events))
    ev["t"][n_events // 2:] += 7 * width                  # a silence: empty bins
    ev["x"] = rng.integers(0, n_inputs, n_events)
    t, a, n = event_addresses(ev, (n_inputs,))
    want_bp, want_ix = bin_events(t, a, n, mode="fixed_width", width_us=width)
    for split_seed in range(3):
        binner = LiveBinner(n_inputs, width)
        cuts = np.sort(np.random.default_rng(split_seed).integers(0, n_events, 12))
        rows = []
        for part in np.split(ev, cuts):
            bp, ix, gap = binner.feed(part, (n_inputs,))
            assert gap == -1
            rows += csr_lists(bp, ix)
        rows += csr_lists(*binner.close())
        assert binner.t_origin == int(ev["t"][0]) and binner.open_bin == len(want_bp) - 2
        assert rows == csr_lists(want_bp, want_ix)


def test_live_binner_counts_late_events_and_stops_at_gaps():
    from rram_lsm.nodes.lsm.live_binning import LiveBinner
    binner = LiveBinner(8, 100, align=True, max_gap=5)
    ev = np.zeros(3, NEURAL_DTYPE)
    ev["t"], ev["x"] = [250, 260, 420], [1, 2, 3]
    bp, ix, gap = binner.feed(ev, (8,))
    assert binner.t_origin == 200 and csr_lists(bp, ix) == [[1, 2], []] and gap == -1
    late = np.zeros(2, NEURAL_DTYPE)
    late["t"], late["x"] = [150, 399], [4, 5]          # both before the open bin [400, 500)
    bp, ix, gap = binner.feed(late, (8,))
    assert bp.size == 1 and binner.late == 2
    far = np.zeros(1, NEURAL_DTYPE)
    far["t"], far["x"] = [2_000], [6]                  # bin 18: 15 empty bins > max_gap
    bp, ix, gap = binner.feed(far, (8,))
    assert csr_lists(bp, ix) == [[3]] and gap == 18 and binner.open_bin == 3
    binner.jump(gap - 5)
    bp, ix, gap = binner.resume()
    assert csr_lists(bp, ix) == [[]] * 5 and gap == -1 and binner.open_bin == 18
    assert csr_lists(*binner.close()) == [[6]]
    with pytest.raises(ValueError, match="'x' value 9"):
        bad = np.zeros(1, NEURAL_DTYPE)
        bad["t"], bad["x"] = [2_050], [9]
        binner.feed(bad, (8,))


def test_live_binner_dvs_gap_resumes_on_the_mapped_events():
    """DVS records take the one-call map-and-bin path; a gap there resumes where it stopped."""
    from rram_lsm.nodes.lsm.live_binning import LiveBinner
    binner = LiveBinner(4 * 4, 100, crop=(4, 4), polarity=1, align=True, max_gap=3)
    ev = np.zeros(6, DVS_DTYPE)
    ev["t"] = [10, 20, 30, 150, 5_000, 5_010]
    ev["x"] = [1, 3, 3, 4, 2, 5]          # sensor 6x6, crop 4x4 from x, y = 1
    ev["y"] = [1, 1, 1, 4, 2, 5]
    ev["p"] = [1, 0, 1, 1, 1, 1]          # the p = 0 event is dropped
    for first in (True, False):           # second feed: the cached geometry, one compiled call
        binner.reset()
        bp, ix, gap = binner.feed(ev, (6, 6))
        assert csr_lists(bp, ix) == [[0, 2], [15]] and gap == 50
        binner.jump(gap - 3)
        bp, ix, gap = binner.resume()
        assert csr_lists(bp, ix) == [[]] * 3 and gap == -1
        assert csr_lists(*binner.close()) == [[5]]
