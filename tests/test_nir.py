"""NIR export/import of a trained run (issue 19, item 1): our round trip is exact; snnTorch's
NIR import runs the exported reservoir and its spikes are compared with ours."""
from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys

import numpy as np
import pytest

nir = pytest.importorskip("nir")

from conftest import run_graph  # noqa: E402
from rram_lsm.experiments.nir_export import export_nir, load_system, run_system, spike_agreement  # noqa: E402
from rram_lsm.nodes.lsm.binning import bin_events, event_addresses  # noqa: E402
from rram_lsm.nodes.lsm.node import LsmNode  # noqa: E402
from rram_lsm.nodes.recording import read_recording  # noqa: E402
from rram_lsm.nodes.sources.synthetic import SyntheticDvsSource  # noqa: E402
from rram_lsm.nodes.projection.heads import HeadConfig, ProjectionHead, save_heads  # noqa: E402
from rram_lsm.nodes.projection.node import ProjectionNode  # noqa: E402
from rram_lsm.stream.node import ConfigError  # noqa: E402

T = 60   # bins of the test input


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A folder shaped like `rram-lsm train --out`: config.json and two random heads."""
    out = tmp_path_factory.mktemp("run")
    rng = np.random.default_rng(0)
    heads = {m: ProjectionHead(HeadConfig(preset, m, 200, [32, 16]), mean=rng.random(200),
                               std=rng.random(200) + 0.5,
                               weights=[rng.normal(size=(32, 200)), rng.normal(size=(16, 32))],
                               biases=[rng.normal(size=32), rng.normal(size=16)])
             for m, preset in (("audio", "zs_audio"), ("visual", "zs_image"))}
    path = save_heads(out / "heads.safetensors", heads)
    (out / "config.json").write_text(json.dumps(
        {"pair": "audio-visual", "device": "ideal", "consts": {"audio": 0.1, "visual": 0.3},
         "reservoir_seed": 3, "windows": 1, "heads": str(path)}))
    return out


def export(run_dir, path, *extra) -> None:
    """`rram-lsm export` in its own process, as a user runs it."""
    proc = subprocess.run([sys.executable, "-m", "rram_lsm", "export", "--nir", str(path),
                           "--run", str(run_dir), *extra], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert f"wrote {path}" in proc.stdout


def binned(n_inputs: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A random binary input ``(T, n_inputs)`` and its CSR ``(bin_ptr, idx)``."""
    x = (np.random.default_rng(seed).random((T, n_inputs)) < 0.3).astype(np.uint8)
    bp = np.concatenate([[0], np.cumsum(x.sum(axis=1))]).astype(np.int64)
    idx = np.concatenate([np.flatnonzero(r) for r in x]).astype(np.int32)
    return x, bp, idx


@pytest.fixture(scope="module")
def model(run_dir):
    """The run exported by `rram-lsm export --nir` (reservoirs and heads)."""
    path = run_dir / "model.nir"
    export(run_dir, path)
    return path


def test_round_trip_reproduces_spikes_and_embeddings_exactly(run_dir, model):
    path = model
    _, original = run_system(run_dir)
    loaded = load_system(path)
    assert sorted(loaded) == ["audio", "visual"]
    for m, (res, head) in original.items():
        res2, head2 = loaded[m]
        assert res2.config == res.config
        _, bp, idx = binned(res.n_inputs, seed=len(m))
        a, b = res.run(bp, idx, record=True), res2.run(bp, idx, record=True)
        assert a.spikes.sum() > 0 and (a.spikes == 0).any()      # a raster worth comparing
        np.testing.assert_array_equal(a.spikes, b.spikes)
        np.testing.assert_array_equal(a.features, b.features)
        np.testing.assert_array_equal(head.forward(a.features), head2.forward(b.features))
    # the nodes load the same file: the lsm node's reservoir and the projection node's head
    node = LsmNode("lsm", {"nir": str(path), "nir_reservoir": "visual"})
    np.testing.assert_array_equal(node.reservoir.w_rec, original["visual"][0].w_rec)
    assert node.config == original["visual"][0].config
    proj = ProjectionNode("proj", {"weights": str(path), "modality": "audio"})
    proj.setup()
    np.testing.assert_array_equal(proj.head.weights[1], original["audio"][1].weights[1])
    with pytest.raises(ConfigError, match="holds reservoirs"):
        LsmNode("lsm", {"nir": str(path)})


def test_exported_parameters_state_the_conventions(run_dir, tmp_path):
    path = export_nir(run_dir, tmp_path / "audio.nir", reservoir_only="audio")
    g = nir.read(str(path))
    lif = g.nodes["audio"].nodes["lif"]
    dt = lif.metadata["dt_s"]
    assert dt == pytest.approx(7e-3)            # zs_audio's nominal bin
    np.testing.assert_allclose(1 - dt / lif.tau, 0.97)     # decay, forward Euler
    np.testing.assert_allclose(lif.r * dt / lif.tau, 1.0)  # input enters unscaled
    np.testing.assert_array_equal(lif.v_reset, 0.0)
    np.testing.assert_array_equal(lif.v_threshold, 5.3)
    assert ">=" in lif.metadata["threshold_comparison"]
    assert "t_inference" in lif.metadata["weights"]
    assert "audio_head.input" not in g.nodes    # reservoir only


def snntorch_spikes(path, x: np.ndarray) -> np.ndarray:
    """snnTorch's NIR import of ``path`` run bin by bin over ``x``."""
    torch = pytest.importorskip("torch")
    import_nir = pytest.importorskip("snntorch.import_nir")
    with contextlib.redirect_stdout(io.StringIO()):   # its importer prints warnings
        net = import_nir.import_from_nir(nir.read(str(path)))
    state, out = None, []
    with torch.no_grad():
        for t in range(x.shape[0]):
            s, state = net(torch.tensor(x[t:t + 1], dtype=torch.float32), state)
            out.append(s.numpy()[0])
    return np.array(out, dtype=np.uint8)


def test_snntorch_runs_the_export(run_dir, tmp_path, record_property):
    """At dt 1e-4 (snnTorch's fixed step) its spikes should equal ours; at our nominal bin its
    importer's fixed dt changes beta and the threshold, and the figures show by how much."""
    _, original = run_system(run_dir)
    res = original["audio"][0]
    x, bp, idx = binned(res.n_inputs, seed=5)
    ours = res.run(bp, idx, record=True).spikes
    figures = {}
    for label, dt in (("dt_1e-4", 1e-4), ("dt_nominal", None)):
        path = export_nir(run_dir, tmp_path / f"{label}.nir", dt_s=dt, reservoir_only="audio")
        figures[label] = spike_agreement(ours, snntorch_spikes(path, x))
        record_property(label, figures[label])
    print(figures)
    assert figures["dt_1e-4"]["count_corr"] > 0.99
    assert figures["dt_1e-4"]["prefix_frac"] >= 0.5
    assert figures["dt_nominal"]["mismatch_frac"] > figures["dt_1e-4"]["mismatch_frac"]


def test_spike_agreement_metric():
    a = np.zeros((4, 3), np.uint8)
    a[1, 0] = a[2, 1] = a[3, 2] = a[3, 0] = 1
    assert spike_agreement(a, a) == {"count_corr": 1.0, "prefix_frac": 1.0, "mismatch_frac": 0.0}
    b = a.copy()
    b[2, 1] = 0
    got = spike_agreement(a, b)
    assert got["prefix_frac"] == 0.5 and got["mismatch_frac"] == pytest.approx(1 / 12)


GRAPH = """
[graph]
name = "nir"
[nodes.src]
kind = "synthetic_dvs"
params = {{ n_samples = 2, rate_hz = 40000, sample_ms = 100, geometry = [16, 16], seed = 4 }}
[nodes.lsm]
kind = "lsm"
params = {{ nir = "{model}", nir_reservoir = "visual" }}
[nodes.proj]
kind = "projection"
params = {{ weights = "{model}", modality = "visual" }}
[nodes.feat]
kind = "recorder"
params = {{ path = "{feat}" }}
[nodes.emb]
kind = "recorder"
params = {{ path = "{emb}" }}
[[edges]]
from = "src"
to = "lsm"
[[edges]]
from = "lsm"
to = "feat"
[[edges]]
from = "lsm"
to = "proj"
[[edges]]
from = "proj"
to = "emb"
"""


def test_graph_runs_the_nir_file(run_dir, model, tmp_path, sockdir):
    """lsm and projection nodes loading the NIR file, in real processes, give the features
    and embeddings of the original reservoir and head on the source's events."""
    feat, emb = tmp_path / "feat.npz", tmp_path / "emb.npz"
    launcher = run_graph(GRAPH.format(model=model, feat=feat, emb=emb), tmp_path, sockdir)
    assert launcher.exit_code == 0
    res, head = run_system(run_dir)[1]["visual"]
    c = res.config
    src = SyntheticDvsSource("src", {"n_samples": 2, "rate_hz": 40000, "sample_ms": 100,
                                     "geometry": [16, 16], "seed": 4})
    events = list(src._samples())
    feats, _ = read_recording(feat, "features")
    embs, _ = read_recording(emb, "embedding")
    assert len(events) == len(feats) == len(embs) == 2
    for (ev, _), (f, _), (e, _) in zip(events, feats, embs):
        t, addr, n_in = event_addresses(ev, (16, 16), polarity=c.polarity, crop=c.crop)
        expected = res.run(*bin_events(t, addr, n_in, mode=c.binning, n_bins=c.n_bins)).features
        np.testing.assert_array_equal(np.asarray(f).reshape(-1), expected)
        np.testing.assert_array_equal(np.asarray(e).reshape(1, -1), head.forward(expected))


def test_imports_a_flat_foreign_file_of_this_shape(run_dir, tmp_path):
    """A file another tool writes: LIF on a top-level cycle with W_rec, our names and
    metadata absent; read from tau/r at the config's bin (dt), it runs our spikes."""
    from rram_lsm.nodes.lsm.nir_io import lif_params, load_reservoir, reservoir_from_graph
    res = run_system(run_dir)[1]["visual"][0]
    c = res.config
    n = c.n_neurons
    g = nir.NIRGraph(
        nodes={"in": nir.Input(input_type=np.array([c.n_inputs])),
               "fc": nir.Linear(weight=res.w_in.T.copy()),
               "neurons": nir.LIF(**lif_params(c.decay, c.vth, c.bin_width_us * 1e-6, n)),
               "rec": nir.Linear(weight=res.w_rec.T.copy()),
               "out": nir.Output(output_type=np.array([n]))},
        edges=[("in", "fc"), ("fc", "neurons"), ("neurons", "rec"), ("rec", "neurons"),
               ("neurons", "out")])
    nir.write(str(tmp_path / "flat.nir"), g)
    with pytest.raises(ConfigError, match="no rram-lsm metadata"):
        load_reservoir(tmp_path / "flat.nir")
    got = reservoir_from_graph(nir.read(str(tmp_path / "flat.nir")), config=c)
    assert got.config.decay == pytest.approx(c.decay, rel=1e-12) and got.config.vth == c.vth
    _, bp, idx = binned(c.n_inputs, seed=9)
    np.testing.assert_array_equal(got.run(bp, idx, record=True).spikes,
                                  res.run(bp, idx, record=True).spikes)
