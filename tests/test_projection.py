"""Numpy projection heads equal the torch forward; bad weights and inputs give clear errors."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rram_lsm.nodes.projection.heads import HeadConfig, ProjectionHead, gelu, load_heads, save_heads
from rram_lsm.nodes.projection.node import ProjectionNode
from rram_lsm.nodes.projection.train import HeadModule
from rram_lsm.stream.node import ConfigError
from rram_lsm.stream.packets import Origin, Packet


def _head(layers=(64,), activation="gelu", seed=0, preset="zeroshot-visual",
          modality="visual", n=200) -> ProjectionHead:
    torch.manual_seed(seed)
    module = HeadModule(HeadConfig(preset, modality, n, list(layers), activation))
    rng = np.random.default_rng(seed)
    return module.to_numpy(rng.normal(size=n).astype(np.float32),
                           rng.uniform(0.5, 2.0, size=n).astype(np.float32))


def _torch_forward(head: ProjectionHead, x: np.ndarray) -> np.ndarray:
    module = HeadModule.from_head(head)
    xt = (torch.as_tensor(x) - torch.as_tensor(head.mean)) / torch.as_tensor(head.std)
    with torch.no_grad():
        return F.normalize(module(xt), dim=1).numpy()


@pytest.mark.parametrize("layers,activation", [((64,), "gelu"), ((128,), "gelu"),
                                               ((96, 64), "gelu"), ((32,), "relu")])
def test_numpy_equals_torch(layers, activation):
    head = _head(layers, activation)
    x = np.random.default_rng(1).uniform(0, 1, size=(50, 200)).astype(np.float32)
    got = head.forward(x)
    assert got.dtype == np.float32 and got.shape == (50, layers[-1])
    np.testing.assert_allclose(got, _torch_forward(head, x), atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-6)


def test_gelu_is_the_exact_erf_form():
    x = np.linspace(-6, 6, 1001)
    np.testing.assert_allclose(gelu(x), F.gelu(torch.as_tensor(x)).numpy(), atol=1e-12)
    # The tanh approximation differs by more than our tolerance somewhere.
    approx = F.gelu(torch.as_tensor(x), approximate="tanh").numpy()
    assert np.abs(gelu(x) - approx).max() > 1e-5


@pytest.mark.parametrize("suffix", [".npz", ".safetensors"])
def test_save_load_roundtrip(tmp_path, suffix):
    heads = {"visual": _head(), "audio": _head(modality="audio", preset="zeroshot-audio",
                                               n=200, seed=4)}
    path = save_heads(tmp_path / f"h{suffix}", heads, {"loss": "paper"})
    loaded = load_heads(path)
    assert sorted(loaded) == ["audio", "visual"]
    x = np.random.default_rng(2).normal(size=(3, 200)).astype(np.float32)
    for mod in heads:
        np.testing.assert_array_equal(loaded[mod].forward(x), heads[mod].forward(x))
        assert loaded[mod].train_info == {"loss": "paper"}
    with pytest.raises(ValueError, match="say which modality"):
        ProjectionHead.load(path)


def test_bad_weights_are_named(tmp_path):
    head = _head()
    with pytest.raises(ValueError, match=r"W0 has shape \(64, 199\), expected \(64, 200\)"):
        ProjectionHead(head.config, head.mean, head.std, [head.weights[0][:, :199]], head.biases)
    with pytest.raises(ValueError, match="b0"):
        ProjectionHead(head.config, head.mean, head.std, head.weights, [head.biases[0][:5]])
    with pytest.raises(ValueError, match="std"):
        ProjectionHead(head.config, head.mean, np.zeros(200), head.weights, head.biases)
    path = save_heads(tmp_path / "v.npz", [head])
    with pytest.raises(ValueError, match="preset 'zeroshot-visual', not the expected preset "
                                         "'zeroshot-audio'"):
        ProjectionHead.load(path, preset="zeroshot-audio")
    with pytest.raises(ValueError, match="expects 200 features, the LSM gives 2048"):
        ProjectionHead.load(path, n_features=2048)
    with pytest.raises(ValueError, match="no head for modality 'audio'"):
        ProjectionHead.load(path, modality="audio")
    # A file whose arrays disagree with its config (another head's weights pasted in).
    arrays = dict(np.load(path, allow_pickle=False))
    arrays["visual/W0"] = np.zeros((64, 256), np.float32)
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(ValueError, match="W0"):
        ProjectionHead.load(tmp_path / "bad.npz")
    with pytest.raises(ValueError, match="expects features of shape"):
        head.forward(np.zeros((2, 100), np.float32))
    with pytest.raises(ValueError, match="not a heads file"):
        np.savez(tmp_path / "other.npz", a=np.zeros(3))
        ProjectionHead.load(tmp_path / "other.npz")


def _features_packet(x: np.ndarray, sample: int = 7) -> Packet:
    return Packet(kind="features", body=x, sample=sample, label=3,
                  origin=Origin("dvs", 11, sample), origin_ns=123456)


def test_projection_node(tmp_path):
    head = _head()
    path = save_heads(tmp_path / "heads.npz", [head])
    node = ProjectionNode("proj", {"weights": str(path), "preset": "zeroshot-visual",
                                   "n_features": 200})
    node.setup()
    x = np.random.default_rng(3).uniform(size=(1, 200)).astype(np.float32)
    (out,) = node.process(_features_packet(x))
    assert out.kind == "embedding" and out.meta == {"modality": "visual"}
    assert out.origin == Origin("dvs", 11, 7) and out.origin_ns == 123456 and out.label == 3
    np.testing.assert_allclose(out.body, _torch_forward(head, x), atol=1e-5)
    assert node.ops["macs"] == 200 + 200 * 64 + 64
    assert "bytes_moved" not in node.ops  # weights on chip, priced inside the MACs
    # A features packet of the wrong dimension is rejected; the node keeps working.
    with pytest.raises(ValueError, match="n_features=200"):
        node.process(_features_packet(np.zeros((1, 64), np.float32)))
    (again,) = node.process(_features_packet(x, sample=8))
    np.testing.assert_array_equal(again.body, out.body)
    assert list(node.process(Packet(kind="control", control="end_of_sample"))) == []


def test_projection_node_config_errors(tmp_path):
    path = save_heads(tmp_path / "heads.npz", [_head()])
    with pytest.raises(ConfigError, match="'weights'"):
        ProjectionNode("p", {}).setup()
    with pytest.raises(ConfigError, match="zeroshot-audio"):
        ProjectionNode("p", {"weights": str(path), "preset": "zeroshot-audio"}).setup()
    with pytest.raises(ConfigError, match="does not exist"):
        ProjectionNode("p", {"weights": str(tmp_path / "missing.npz")}).setup()


def test_hot_path_modules_do_not_import_torch():
    code = ("import sys; import rram_lsm.nodes.projection.node, rram_lsm.nodes.projection.heads, "
            "rram_lsm.nodes.classifier.node, rram_lsm.nodes.classifier.bank, "
            "rram_lsm.nodes.classifier.metrics, rram_lsm.nodes.lsm.node, "
            "rram_lsm.nodes.projection.train_config, rram_lsm.experiments.config, "
            "rram_lsm.experiments.sweep, rram_lsm.launch.cli; "
            "rram_lsm.launch.cli.build_parser(); "   # every command's flags, as --help builds them
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[1])
