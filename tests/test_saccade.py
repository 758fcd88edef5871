"""Saccade DVS emulator: events follow edges, the three saccades, and both polarities."""
import numpy as np
import pytest
from scipy import ndimage
from sklearn.datasets import load_digits

from rram_lsm.nodes.sources.saccade import SaccadeParams, emulate_saccades, placed_image
from rram_lsm.stream.node import ConfigError
from rram_lsm.stream.packets import DVS_DTYPE


@pytest.fixture(scope="module")
def digits():
    d = load_digits()
    return [ndimage.zoom(d.images[i] / 16.0, 2, order=1).clip(0, 1) for i in range(6)]


def test_wire_dtype_geometry_and_order(digits):
    ev = emulate_saccades(digits[0], np.random.default_rng(0))
    assert ev.dtype == DVS_DTYPE
    assert len(ev) > 500
    assert (np.diff(ev["t"]) >= 0).all()
    assert ev["x"].max() < 16 and ev["y"].max() < 16
    assert 0 <= ev["t"].min() and ev["t"].max() <= SaccadeParams().duration_us
    same = emulate_saccades(digits[0], np.random.default_rng(0))
    assert np.array_equal(ev, same)  # seeded
    assert not np.array_equal(ev, emulate_saccades(digits[0], np.random.default_rng(1)))


def test_events_concentrate_on_edges(digits):
    params = SaccadeParams(sensor_size=(24, 24))  # a wider sensor leaves flat margins
    ratios = []
    for img in digits:
        ev = emulate_saccades(img, np.random.default_rng(3), params)
        counts = np.zeros((24, 24))
        np.add.at(counts, (ev["y"], ev["x"]), 1)
        placed = placed_image(img, params)
        grad = np.hypot(ndimage.sobel(placed, 0), ndimage.sobel(placed, 1))
        high = grad >= np.quantile(grad, 0.8)
        flat = ndimage.maximum_filter(grad, size=7) == 0  # no edge within the saccade's reach
        assert flat.sum() > 20 and high.sum() > 20
        ratios.append(counts[high].mean() / max(counts[flat].mean(), 1e-3))
    assert min(ratios) > 10, ratios


def test_three_bursts_follow_saccade_timing(digits):
    p = SaccadeParams()
    for img in digits[:3]:
        ev = emulate_saccades(img, np.random.default_rng(5), p)
        moving_len = p.saccade_us * p.move_fraction
        for k in range(3):
            t = ev["t"] - k * p.saccade_us
            moving = ((t >= 0) & (t < moving_len)).sum()
            resting = ((t >= moving_len + 5_000) & (t < p.saccade_us)).sum()
            rest_len = p.saccade_us - moving_len - 5_000
            assert moving > 0.15 * len(ev)  # every saccade makes a burst
            assert moving / moving_len > 10 * resting / rest_len


def test_polarity_balance(digits):
    for img in digits:
        ev = emulate_saccades(img, np.random.default_rng(7))
        on = ev["p"].mean()
        assert 0.3 < on < 0.7, on


def test_noise_only_for_a_blank_image():
    p = SaccadeParams(noise_hz=2.0)
    ev = emulate_saccades(np.zeros((16, 16)), np.random.default_rng(0), p)
    expected = 2.0 * 256 * 0.3
    assert 0.5 * expected < len(ev) < 1.5 * expected


def test_bad_input_is_named():
    with pytest.raises(ConfigError, match="sensor_size"):
        emulate_saccades(np.zeros((16, 16)), np.random.default_rng(0), SaccadeParams(sensor_size=(0, 16)))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        emulate_saccades(np.full((16, 16), 2.0), np.random.default_rng(0))
    with pytest.raises(ValueError, match="2-D"):
        emulate_saccades(np.zeros(16), np.random.default_rng(0))


def test_frames_are_the_bilinear_shift_of_the_image():
    """All frames at once equal scipy's order-1 shift of the canvas, frame by frame."""
    from rram_lsm.nodes.sources.saccade import _log_frames

    rng = np.random.default_rng(3)
    canvas = rng.uniform(0, 1, (24, 28))
    offsets = rng.uniform(-3, 3, (50, 2))
    frames = _log_frames(canvas, offsets, 4, (16, 20), 0.05)
    for (dx, dy), frame in zip(offsets, frames):
        moved = ndimage.shift(canvas, (dy, dx), order=1, mode="constant", cval=0.0)
        assert np.allclose(frame, np.log(moved[4:20, 4:24] + 0.05), atol=1e-12)
