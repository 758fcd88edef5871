"""Release schedule, framing and the Pacer (a fake clock: no wall-clock assertions)."""
import numpy as np
import pytest

from rram_lsm.nodes.sources.pacing import Pacer, frame_slices, release_schedule
from rram_lsm.stream.node import ConfigError


def test_schedule_follows_timestamps_over_speed():
    t = np.array([100, 100, 350, 1100, 5100])
    assert release_schedule(t, 1.0).tolist() == [0, 0, 250_000, 1_000_000, 5_000_000]
    assert release_schedule(t, 2.0).tolist() == [0, 0, 125_000, 500_000, 2_500_000]
    assert release_schedule(t, 0.5).tolist() == [0, 0, 500_000, 2_000_000, 10_000_000]
    assert release_schedule(t, None).tolist() == [0] * 5  # as fast as possible
    assert release_schedule(t, 0).tolist() == [0] * 5  # graph files write it as 0
    assert release_schedule(np.array([], np.int64), 1.0).size == 0


def test_schedule_keeps_event_order():
    t = np.array([0, 10, 5, 20])  # a timestamp stepping back is released after its predecessor
    s = release_schedule(t, 1.0)
    assert (np.diff(s) >= 0).all() and s.tolist() == [0, 10_000, 10_000, 20_000]


@pytest.mark.parametrize("speed", [-1.0, "fast", float("nan"), float("inf"), True])
def test_bad_speed_named(speed):
    with pytest.raises(ConfigError, match="speed"):
        release_schedule(np.arange(3), speed)


def test_framing_by_count_and_span():
    t = np.array([0, 1, 2, 3, 10, 11, 25])
    assert frame_slices(t, max_events=3) == [slice(0, 3), slice(3, 6), slice(6, 7)]
    assert frame_slices(t, span_us=10) == [slice(0, 4), slice(4, 6), slice(6, 7)]
    assert frame_slices(t, max_events=2, span_us=10) == [
        slice(0, 2), slice(2, 4), slice(4, 6), slice(6, 7)]
    assert frame_slices(t, span_us=10, t_origin=-5) == [slice(0, 4), slice(4, 6), slice(6, 7)]
    assert frame_slices(np.array([]), max_events=4) == []
    with pytest.raises(ConfigError, match="max_events"):
        frame_slices(t, max_events=0)


def test_pacer_sleeps_until_due_on_its_clock():
    now = [1_000]
    slept = []

    def sleep(s):
        slept.append(s)
        now[0] += int(s * 1e9) + 7  # sleeping overshoots a little, as real sleeps do

    pacer = Pacer(clock=lambda: now[0], sleep=sleep)
    pacer.start()
    late = pacer.wait_until(5_000)
    assert now[0] >= 6_000 and late == now[0] - 6_000
    assert slept[0] == pytest.approx(5e-6)
    n = len(slept)
    pacer.wait_until(2_000)  # already due: no sleep
    assert len(slept) == n
