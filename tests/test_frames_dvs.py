"""A video (written here with cv2.VideoWriter) or a webcam as a DVS: nodes/sources/frames_dvs.py, camera.py."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")

from conftest import run_graph  # noqa: E402
from rram_lsm.nodes.sources.camera import VideoSource, WebcamSource  # noqa: E402
from rram_lsm.nodes.sources.frames_dvs import FrameDvs, FrameDvsParams  # noqa: E402
from rram_lsm.nodes.sources.live import LiveSourceError  # noqa: E402
from rram_lsm.stream.packets import DVS_DTYPE  # noqa: E402

FPS = 100
PERIOD_US = 1e6 / FPS
SIDE = 68  # frames are written at 68x68 and seen on the default 34x34 sensor


def write_video(path: Path, frames: list[np.ndarray]) -> Path:
    """Grey frames as an MJPG .avi (each frame coded alone, so still frames stay identical)."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), FPS, (SIDE, SIDE), isColor=False)
    assert writer.isOpened()
    for f in frames:
        writer.write(f)
    writer.release()
    return path


def bar_frames(n: int, bar: int, background: int = 60, width: int = 12, start: int = 4,
               px_per_frame: float = 1.0) -> list[np.ndarray]:
    """A bright vertical bar moving right by ``px_per_frame`` (at 68x68) each frame."""
    x = np.arange(SIDE)[None, :].repeat(SIDE, 0)
    out = []
    for i in range(n):
        right = start + width + i * px_per_frame
        out.append(np.where((x < right) & (x >= right - width), bar, background).astype(np.uint8))
    return out


def video_events(path: Path, **params) -> np.ndarray:
    """Every event the ``video`` node emits for ``path``, as fast as possible."""
    src = VideoSource("cam", {"path": str(path), "speed": None, **params})
    src.setup()
    try:
        packets = list(src.packets())
    finally:
        src.close()
    assert all(p.geometry == (34, 34) and p.sample == -1 for p in packets)
    return np.concatenate([p.body for p in packets]) if packets else np.zeros(0, DVS_DTYPE)


def test_moving_edge_on_leads_off_trails_and_both_move_right(tmp_path):
    path = write_video(tmp_path / "bar.avi", bar_frames(40, bar=220))
    ev = video_events(path, noise_hz=0.0)
    on, off = ev[ev["p"] == 1], ev[ev["p"] == 0]
    assert len(on) > 500 and len(off) > 500
    speed = 0.5 / PERIOD_US  # px/µs on the 34-px sensor
    for e in (on, off):  # each edge moves right at the bar's speed
        slope = np.polyfit(e["t"], e["x"].astype(float), 1)[0]
        assert slope == pytest.approx(speed, rel=0.2)
    # ON (the leading, brightening edge) is to the right of OFF (the trailing edge) all along,
    # by about the bar's width (6 px on the sensor).
    for t0 in np.arange(0, 39 * PERIOD_US, 5 * PERIOD_US):
        w_on = on[(on["t"] >= t0) & (on["t"] < t0 + 5 * PERIOD_US)]
        w_off = off[(off["t"] >= t0) & (off["t"] < t0 + 5 * PERIOD_US)]
        assert 4 < w_on["x"].mean() - w_off["x"].mean() < 8
    # Events are stamped between frames (interpolated crossings), within the video's span.
    assert ev["t"].min() > 0 and ev["t"].max() <= 39 * PERIOD_US
    on_frame_times = np.isclose(ev["t"] % PERIOD_US, 0) | np.isclose(ev["t"] % PERIOD_US, PERIOD_US - 1)
    assert on_frame_times.mean() < 0.1
    assert np.all(np.diff(ev["t"]) >= 0)


def test_event_rate_grows_with_contrast(tmp_path):
    counts = [len(video_events(write_video(tmp_path / f"bar{b}.avi", bar_frames(30, bar=b)), noise_hz=0.0))
              for b in (85, 120, 170, 250)]
    assert all(a < b for a, b in zip(counts, counts[1:])), counts
    assert counts[0] > 0 and counts[-1] > 3 * counts[0], counts


def test_still_frames_fire_only_at_the_noise_rate(tmp_path):
    still = bar_frames(1, bar=220) * 50
    path = write_video(tmp_path / "still.avi", still)
    assert len(video_events(path, noise_hz=0.0)) == 0
    noise_hz = 5.0
    ev = video_events(path, noise_hz=noise_hz, seed=3)
    expected = noise_hz * 34 * 34 * 49 * PERIOD_US * 1e-6
    assert abs(len(ev) - expected) < 5 * np.sqrt(expected)
    assert 0.4 < ev["p"].mean() < 0.6  # random polarity


def test_crossing_times_are_interpolated_between_frames():
    """Uniform frames, no mismatch: the k-th crossing of the log-intensity line comes at
    t0 + (ref + k theta - L0) / (L1 - L0) * dt, each pixel from its own start level."""
    p = FrameDvsParams(threshold=0.1, threshold_mismatch=0.0, refractory_us=0, noise_hz=0.0)
    emu = FrameDvs((4, 3), p, seed=0)
    lo, hi = 0.1, 0.8
    emu(np.full((3, 4), lo), 1_000)
    ref = emu.ref.copy()
    ev = emu(np.full((3, 4), hi), 11_000)
    l0, l1 = np.log(lo + p.dark_level), np.log(hi + p.dark_level)
    assert np.all(ev["p"] == 1)
    for pix in range(12):
        got = ev[(ev["y"] * 4 + ev["x"]) == pix]["t"]
        k = np.arange(1, int(np.floor((l1 - ref[pix]) / 0.1)) + 1)
        expected = np.floor(1_000 + (ref[pix] + k * 0.1 - l0) / (l1 - l0) * 10_000)
        assert np.array_equal(got, expected)
    # ... and back down: OFF crossings, from the levels the ON crossings left
    ev = emu(np.full((3, 4), lo), 21_000)
    assert np.all(ev["p"] == 0) and len(ev) > 0 and ev["t"].min() > 11_000


def test_refractory_period_spaces_each_pixels_events():
    p = FrameDvsParams(threshold=0.05, threshold_mismatch=0.01, refractory_us=3_000, noise_hz=0.0)
    emu = FrameDvs((8, 8), p, seed=1)
    ramp = np.linspace(0.02, 1.0, 20)
    ev = np.concatenate([emu(np.full((8, 8), v), i * 2_000) for i, v in enumerate(ramp)])
    for pix in np.unique(ev["y"].astype(int) * 8 + ev["x"]):
        t = ev[(ev["y"].astype(int) * 8 + ev["x"]) == pix]["t"]
        assert np.all(np.diff(t) >= 3_000 - 1)  # floor() of the stamps may take 1 µs
    unlimited = FrameDvs((8, 8), FrameDvsParams(threshold=0.05, threshold_mismatch=0.01, refractory_us=0,
                                                noise_hz=0.0), seed=1)
    n_free = sum(len(unlimited(np.full((8, 8), v), i * 2_000)) for i, v in enumerate(ramp))
    assert n_free > 1.5 * len(ev)  # crossings inside the refractory period are lost


def test_seeded_mismatch_and_noise(tmp_path):
    path = write_video(tmp_path / "bar.avi", bar_frames(20, bar=200))
    a, b = video_events(path, seed=5, noise_hz=20.0), video_events(path, seed=5, noise_hz=20.0)
    c = video_events(path, seed=6, noise_hz=20.0)
    assert np.array_equal(a, b) and not np.array_equal(a, c)


GRAPH = """
[nodes.cam]
kind = "video"
params = {{ path = "{video}", speed = 4.0, seed = 2, noise_hz = 1.0 }}
[nodes.log]
kind = "eventlog:EventLog"
params = {{ path = "{out}" }}
[[edges]]
from = "cam"
to = "log"
"""


def test_video_node_in_a_graph_streams_what_the_emulator_computes(tmp_path, sockdir):
    video, out = write_video(tmp_path / "bar.avi", bar_frames(30, bar=200)), tmp_path / "events.npy"
    launcher = run_graph(GRAPH.format(video=video, out=out), tmp_path, sockdir, timeout_s=60)
    assert launcher.exit_code == 0
    got = np.load(out)
    assert np.array_equal(got, video_events(video, seed=2, noise_hz=1.0))
    assert launcher.latest["cam"]["gauges"]["frames"] == 30


def test_webcam_absent_is_named(capsys):
    from rram_lsm.launch.cli import main

    if cv2.VideoCapture(0).isOpened():
        pytest.skip("this machine has a webcam")
    with pytest.raises(LiveSourceError, match=r"no webcam at OpenCV index 0"):
        WebcamSource("cam", {}).setup()
    assert main(["live", "--visual", "webcam", "--audio", "replay"]) == 2
    assert "no webcam at OpenCV index 0" in capsys.readouterr().err


def test_bad_parameters_are_named(tmp_path):
    from rram_lsm.stream.node import ConfigError

    with pytest.raises(ConfigError, match="'path'"):
        VideoSource("cam", {})
    with pytest.raises(ConfigError, match="'size'"):
        VideoSource("cam", {"path": "x.avi", "size": [34]})
    with pytest.raises(ConfigError, match="'threshold'"):
        VideoSource("cam", {"path": "x.avi", "threshold": 0})
    with pytest.raises(LiveSourceError, match="not found"):
        VideoSource("cam", {"path": str(tmp_path / "none.avi")}).setup()


def test_live_command_puts_a_video_or_webcam_onto_the_visual_models_sensor(tmp_path, capsys):
    from rram_lsm.launch.cli import build_parser, main
    from rram_lsm.launch.commands.live import live_args

    args = build_parser().parse_args(["live", "--visual", "video", "--video", "clip.avi"])
    graph_args = live_args(args, "visual", replay={})
    assert graph_args["visual_kind"] == "video" and graph_args["visual_segmenter"] == "segmenter"
    assert graph_args["visual_source"] == {"path": "clip.avi", "size": [34, 34], "speed": 1.0, "loop": 0}
    args = build_parser().parse_args(["live", "--visual", "webcam", "--webcam", "2"])
    assert live_args(args, "visual", replay={})["visual_source"] == {"device": 2, "size": [34, 34]}
    assert main(["live", "--visual", "video", "--video", str(tmp_path / "none.avi"), "--audio", "replay"]) == 2
    assert "--video FILE" in capsys.readouterr().err
