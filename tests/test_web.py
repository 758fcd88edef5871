"""The live web dashboard: the sources' preview frames, the JSON the page polls, the refusals
of `--web`, and the page itself in a real headless chromium while a real graph runs
(no console errors, numbers that change and match the telemetry, source views drawn)."""
from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

import numpy as np
import pytest

from browser import Browser, chromium_or_skip
from rram_lsm.launch.cli import main as cli
from rram_lsm.launch.dashboard import Dashboard
from rram_lsm.launch.web import WebDashboard, check_web
from rram_lsm.stream.packets import COCHLEA_DTYPE, DVS_DTYPE, NEURAL_DTYPE, Packet
from rram_lsm.stream.preview import EventPreview, activity_frame, decode_frame


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def dvs(x, y):
    ev = np.zeros(len(x), DVS_DTYPE)
    ev["t"], ev["x"], ev["y"] = np.arange(len(x)), x, y
    return Packet(kind="events", body=ev, geometry=(64, 48))


def test_dvs_preview_accumulates_downsampled_counts_at_most_rate_hz():
    clock = Clock()
    pv = EventPreview(rate_hz=10, side=32, clock=clock)
    for k in range(50):  # 50 packets over 0.49 s: 5 frames, not 50
        clock.now = k * 0.01
        pv.add(dvs(np.full(10, 63), np.full(10, 2 * (k % 2))))
    frames = pv.take()
    assert len(frames) == 5 and pv.take() == []
    assert sum(f["events"] for f in frames) == 500
    img = decode_frame(frames[0])
    assert img.shape == (24, 32)  # 64 x 48 downsampled by 2, aspect kept
    # x 63 -> column 31; y 0 and 2 -> rows 0 and 1; the frame closes with the packet at
    # 0.10 s: 6 packets (60 events) on row 0, 5 (50) on row 1, scaled to the peak
    assert frames[0]["events"] == 110 and frames[0]["peak"] == 60
    assert img[0, 31] == 255 and img[1, 31] == -(-50 * 255 // 60) and img.sum() == 255 + 213


def test_raster_preview_bins_channels_over_the_frames_event_time():
    clock = Clock()
    pv = EventPreview(rate_hz=10, side=32, columns=16, clock=clock)
    ev = np.zeros(128, COCHLEA_DTYPE)
    ev["t"] = np.arange(128) * 1000          # 128 ms of events
    ev["x"] = np.arange(128) % 64            # channel = time: a diagonal
    pv.add(Packet(kind="events", body=ev, geometry=(64,)))
    pv.add(Packet(kind="features", body=np.zeros((1, 4), np.float32)))  # ignored
    (frame,) = pv.take()
    assert frame["view"] == "cochlea" and frame["shape"] == [32, 16]
    img = decode_frame(frame)
    # two sweeps of 64 channels, 8 ms a column: rows (channel pairs) r lit at r // 4 and 8 + r // 4
    expected = np.zeros((32, 16), bool)
    expected[np.arange(32), np.arange(32) // 4] = expected[np.arange(32), 8 + np.arange(32) // 4] = True
    assert np.array_equal(img > 0, expected) and img.max() == 255
    assert frame["t0_us"] == 0 and frame["t1_us"] == 127_000
    neural = np.zeros(8, NEURAL_DTYPE)
    neural["x"] = np.arange(8) * 12
    pv = EventPreview()
    pv.add(Packet(kind="events", body=neural, geometry=(96,)))
    (frame,) = pv.take()
    assert frame["view"] == "neural" and frame["shape"] == [32, 16]  # 96 electrodes, 3 a row


def test_a_preview_keeps_only_its_latest_frames():
    clock = Clock()
    pv = EventPreview(rate_hz=10, keep=3, clock=clock)
    for k in range(20):
        clock.now = k * 0.2
        pv.add(dvs([k], [0]))
    assert len(pv.take()) == 3


def test_activity_frame_is_the_rates_in_neuron_order_block_averaged():
    rates = np.zeros(2000)
    rates[0], rates[1999] = 1.0, 0.5  # rows of 46 neurons (23 blocks of 2), 2 x 2 blocks averaged
    a = activity_frame(rates, silent_frac=0.999, saturated_frac=0.0, mean_rate=0.00075)
    img = decode_frame(a)
    assert a["shape"] == [23, 23] and a["neurons"] == 2000 and a["peak"] == 0.25
    assert img[0, 0] == 255 and img[1999 // 46 // 2, 1999 % 46 // 2] == 128 and (img > 0).sum() == 2
    assert a["silent_frac"] == 0.999


def fetch(url, host=None):
    req = urllib.request.Request(url, headers={"Host": host} if host else {})
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.status, r.headers.get("Content-Type"), r.read()


def test_state_json_is_the_dashboards_telemetry():
    dash = Dashboard()
    report = {"node": "lsm", "kind": "lsm", "epoch": 1, "uptime_s": 1.0, "events_in": 100,
              "msgs_in": 4, "msgs_out": 2, "latency_us": {"n": 4, "p50": 12.5, "p99": 40.0},
              "age_ms": {"n": 0}, "queue_depth": 3, "gauges": {"inferences": 2},
              "edges": {"out": {"events_dropped": {"credit": 5}}},
              "energy_pj": {"rram_macro": {"total": 2000.0}, "digital": {"total": 9000.0}},
              "view": {"frames": [{"t": 1.0, "view": "dvs", "shape": [1, 1], "data": "AA==",
                                   "events": 1, "dt": 0.1}]}}
    dash.update(report)
    dash.update(dict(report, uptime_s=2.0, events_in=300, msgs_in=9))
    web = WebDashboard(dash, port=0, title="unit")
    try:
        code, ctype, body = fetch(web.url + "api/state")
        state = json.loads(body)
        assert code == 200 and ctype == "application/json"
        (row,) = state["nodes"]
        assert row["events_per_s"] == 200.0 and row["msgs_in"] == 9 and row["queue"] == 3
        assert row["dropped"] == 5 and row["latency_p50_us"] == 12.5 and row["age_p50_ms"] is None
        assert row["energy_per_inference_pj"] == {"rram_macro": 1000.0, "digital": 4500.0}
        assert state["profiles"] == ["rram_macro", "digital"]
        assert state["sources"][0]["node"] == "lsm" and state["accuracy"] is None
        assert fetch(web.url + "dashboard.js")[1].startswith("text/javascript")
        assert fetch(web.url)[1].startswith("text/html")
        with pytest.raises(urllib.error.HTTPError, match="404"):
            fetch(web.url + "nothing")
        with pytest.raises(urllib.error.HTTPError, match="403"):  # DNS rebinding
            fetch(web.url + "api/state", host="evil.example:80")
    finally:
        web.close()


def test_run_refuses_a_web_host_off_loopback_without_allow_remote(capsys):
    assert cli(["run", "launch/graphs/smoke.toml", "--web-host", "0.0.0.0", "--web", "0"]) == 2
    assert "--web-host 0.0.0.0: not a loopback address" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["demo", "live"])
def test_demo_and_live_refuse_a_bad_web_option_before_any_work(command, tmp_path, capsys):
    argv = [command, "--out", str(tmp_path / "run"), "--web-host", "192.0.2.7", "--web", "0"]
    assert cli(argv + (["--visual", "replay", "--audio", "replay"] if command == "live" else [])) == 2
    assert "--web-host 192.0.2.7: not a loopback address" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()  # refused before the run folder, data or training


def test_web_takes_a_port_and_says_how_when_given_something_else(capsys):
    with pytest.raises(SystemExit):
        cli(["run", "--web", "launch/graphs/smoke.toml"])
    assert "--web takes a port 0-65535" in capsys.readouterr().err


def test_check_web_names_a_port_in_use():
    dash = Dashboard()
    web = WebDashboard(dash, port=0)
    try:
        port = web.httpd.server_address[1]
        with pytest.raises(ValueError, match=f"cannot listen on 127.0.0.1:{port}"):
            check_web(port)
    finally:
        web.close()


LIVE = """
[graph]
name = "web-live"
telemetry_interval_s = 0.5
energy_profiles = ["rram_macro", "digital_45nm_event"]
[nodes.camera]
kind = "synthetic_dvs"
params = {{ samples = 0, rate_hz = 40000, sample_ms = 300, geometry = [34, 34], pattern = "bar", speed = 1.0 }}
[nodes.lsm]
kind = "lsm"
params = {{ preset = "zs_image" }}
[nodes.sink]
kind = "null_sink"
[nodes.cochlea]
kind = "graphnodes:CochleaSweep"
params = {{ seconds = 120, channels = 64 }}
[nodes.ears]
kind = "null_sink"
[nodes.queries]
kind = "graphnodes:EmbeddingSource"
params = {{ bank = "{bank}", samples = 1000, every_ms = 150 }}
[nodes.classifier]
kind = "crossmodal_classifier"
params = {{ banks = {{ audio = "{bank}" }}, seen = [1, 2, 3], unseen = [4] }}
[nodes.out]
kind = "null_sink"
[[edges]]
from = "camera"
to = "lsm"
[[edges]]
from = "lsm"
to = "sink"
[[edges]]
from = "cochlea"
to = "ears"
[[edges]]
from = "queries"
to = "classifier"
[[edges]]
from = "classifier"
to = "out"
"""

READ = """(() => {
  const cell = (node, col) => document.querySelector(`tr[data-node="${node}"] td[data-col="${col}"]`);
  const n = (node, col) => Number(cell(node, col).textContent.replace(/,/g, ''));
  const row = (node) => document.querySelector(`tr[data-node="${node}"]`);
  const canvas = (node) => document.querySelector(`figure[data-source="${node}"] canvas`);
  const lit = (node) => {
    const c = canvas(node), d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let k = 0;
    for (let i = 0; i < d.length; i += 4) if (d[i] > 0) k++;
    return k;
  };
  return {
    lsm_in: n('lsm', 'msgs_in'), lsm_uptime: Number(row('lsm').dataset.uptime),
    cls_uptime: Number(row('classifier').dataset.uptime),
    seen: document.querySelector('[data-value="seen"]').textContent,
    unseen: document.querySelector('[data-value="unseen"]').textContent,
    chance: document.querySelector('[data-value="chance"]').textContent,
    energy: cell('classifier', 'energy:rram_macro').textContent,
    drawn: {camera: Number(canvas('camera').dataset.drawn), cochlea: Number(canvas('cochlea').dataset.drawn)},
    lit: {camera: lit('camera'), cochlea: lit('cochlea')},
    predictions: document.querySelectorAll('#predictions tbody tr').length,
    reservoir: Number(document.querySelector('figure[data-reservoir="lsm"] canvas').dataset.drawn),
  };
})()"""


def reports(path, node):
    """Every telemetry report of ``node`` in a run's telemetry.jsonl, by uptime."""
    out = {}
    for line in path.read_text().splitlines():
        r = json.loads(line)
        if r.get("node") == node and "msgs_in" in r:
            out[r["uptime_s"]] = r
    return out


def test_the_page_in_a_real_browser_while_a_graph_runs(tmp_path):
    """`rram-lsm run --web 0`: chromium loads the page without console errors; its numbers
    change between two reads and equal the telemetry report they came from; both source
    views draw; a screenshot is kept in the test's folder."""
    binary = chromium_or_skip()
    from rram_lsm.nodes.classifier.bank import PrototypeBank

    rng = np.random.default_rng(0)
    protos = rng.standard_normal((4, 16))
    emb = np.concatenate([protos[i] + 0.2 * rng.standard_normal((5, 16)) for i in range(4)])
    bank = PrototypeBank.from_embeddings(emb, np.repeat([1, 2, 3, 4], 5), modality="visual")
    bank.save(tmp_path / "bank.npz")
    (tmp_path / "graph.toml").write_text(LIVE.format(bank=tmp_path / "bank.npz"))
    run_dir = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "rram_lsm", "run", str(tmp_path / "graph.toml"),
                             "--run-dir", str(run_dir), "--no-dashboard", "--timeout", "90",
                             "--web", "0"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    browser = None
    try:
        url = None
        for line in proc.stderr:
            m = re.search(r"web dashboard: (http://127\.0\.0\.1:\d+/)", line)
            if m:
                url = m.group(1)
                break
        assert url, "the launcher never printed the dashboard's address"
        browser = Browser(binary, tmp_path / "chromium")
        browser.open(url)
        browser.wait_for("window.rramState && rramState.accuracy && rramState.accuracy.seen.n > 0"
                         " && document.querySelector('figure[data-source=cochlea] canvas')"
                         " && Number(document.querySelector('figure[data-source=cochlea] canvas')"
                         ".dataset.drawn) > 0 && Number(document.querySelector("
                         "'figure[data-source=camera] canvas').dataset.drawn) > 0"
                         " && document.querySelector('figure[data-reservoir=lsm] canvas')",
                         timeout_s=60)
        first = browser.evaluate(READ)
        time.sleep(1.5)
        second = browser.evaluate(READ)
        browser.screenshot(tmp_path / "dashboard.png")
        assert browser.evaluate("document.title").endswith("· live")
        errors = list(browser.errors)
    finally:
        if browser is not None:
            browser.close()
        proc.send_signal(signal.SIGINT)
        try:
            proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
    assert errors == []
    assert second["lsm_in"] > first["lsm_in"] and second["lsm_uptime"] > first["lsm_uptime"]
    lsm = reports(run_dir / "telemetry.jsonl", "lsm")
    for read in (first, second):
        assert lsm[read["lsm_uptime"]]["msgs_in"] == read["lsm_in"]
    cls = reports(run_dir / "telemetry.jsonl", "classifier")[second["cls_uptime"]]
    g = cls["gauges"]
    assert second["seen"] == f"{100 * g['seen_correct'] / g['seen_n']:.1f}%"
    if g["unseen_n"]:
        assert second["unseen"] == f"{100 * g['unseen_correct'] / g['unseen_n']:.1f}%"
    assert second["chance"].startswith("chance 25.0% (1/4 classes)")
    nj = cls["energy_pj"]["rram_macro"]["total"] / g["inferences"] / 1e3
    assert second["energy"] == f"{nj:.2f}"
    assert second["drawn"]["camera"] > first["drawn"]["camera"]
    assert min(second["lit"].values()) > 0 and second["predictions"] > 0
    assert second["reservoir"] > 0  # the lsm's per-neuron rates of its last sample
    png = (tmp_path / "dashboard.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
