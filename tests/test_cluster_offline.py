"""Offline work on a real multi-node Ray cluster (tests/raycluster.py): the same results as
here, pieces spread over both worker nodes, inputs put once, and plain errors without Ray
or without an address."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from rram_lsm.experiments import executor, features
from rram_lsm.experiments.cluster import EXTRA
from rram_lsm.launch.cli import main
from rram_lsm.stream.cache import cache_dir

SWEEP = ["--size", "tiny", "--devices", "ideal", "--epochs", "6", "--train-seeds", "2",
         "--no-raw-probe", "--splits", "3", "--seeds", "2", "--neural-neurons", "100",
         "--gain-factors", "0.5,1", "--gzsl-folds", "2", "--pairs", "audio-visual",
         "--reservoir-seed", "3"]   # a seed no other test encodes: the cluster encodes afresh


def _metrics(obj):
    """results.json without its wall times (every key naming seconds)."""
    if isinstance(obj, dict):
        return {k: _metrics(v) for k, v in obj.items() if "seconds" not in k}
    if isinstance(obj, list):
        return [_metrics(v) for v in obj]
    return obj


def _fresh_local_cache(tmp_path, monkeypatch):
    """A cache of this process only (the cluster's workers keep the session's), holding the
    built datasets but no features, so the local run encodes everything itself."""
    datasets = cache_dir("datasets")
    monkeypatch.setenv("RRAM_LSM_CACHE", str(tmp_path / "local-cache"))
    shutil.copytree(datasets, cache_dir("datasets"), dirs_exist_ok=True)


def test_sweep_on_the_cluster_gives_the_local_metrics(ray_cluster, tmp_path, monkeypatch):
    ray_out, local_out = tmp_path / "ray", tmp_path / "local"
    assert main(["eval", *SWEEP, "--cluster", ray_cluster.address, "--out", str(ray_out)]) == 0
    _fresh_local_cache(tmp_path, monkeypatch)
    assert main(["eval", *SWEEP, "--out", str(local_out)]) == 0
    on_ray = json.loads((ray_out / "results.json").read_text())
    here = json.loads((local_out / "results.json").read_text())
    assert on_ray["sweep"]["audio-visual"]["acc"]["unseen_a_to_b"]      # the sweep ran
    assert len(on_ray["calibration"]["visual/ideal"]["points"]) >= 2    # so did the gain grid
    assert _metrics(on_ray) == _metrics(here)


def test_encoding_in_pieces_on_both_nodes_gives_the_same_features(ray_cluster, tmp_path,
                                                                  monkeypatch, capsys):
    monkeypatch.setattr(features, "CHUNK", 16)     # several pieces of the tiny set
    args = ["encode", "--dataset", "builtin:tiny", "--modality", "audio", "--device", "rram",
            "--seed", "4", "--json"]
    assert main([*args, "--cluster", ray_cluster.address]) == 0
    on_ray = json.loads(capsys.readouterr().out)
    assert not on_ray["cached"] and on_ray["samples"] > 2 * features.CHUNK
    _fresh_local_cache(tmp_path, monkeypatch)
    assert main(args) == 0
    here = json.loads(capsys.readouterr().out)
    assert not here["cached"]
    a, b = features.read_features(on_ray["path"]), features.read_features(here["path"])
    assert np.array_equal(a.features, b.features) and a.ops == b.ops and a.health == b.health


def test_pieces_spread_over_the_workers_and_inputs_are_put_once(ray_cluster, monkeypatch):
    import ray

    ex = executor.for_cluster(ray_cluster.address)
    puts = []
    real_put = ray.put
    monkeypatch.setattr(ray, "put", lambda v: puts.append(v) or real_put(v))
    data = np.arange(1_000_000, dtype=np.float64)
    seen = []
    out = ex.map(_where_and_sum, list(range(8)), data, progress=lambda d, t: seen.append((d, t)))
    assert [s for s, _ in out] == [float(data.sum()) + i for i in range(8)]
    assert {n for _, n in out} == set(ray_cluster.node_ids.values())   # both worker nodes
    assert len(puts) == 1 and seen == [(k, 8) for k in range(1, 9)]
    # the standard-library pool (the dataset build) runs a task too
    with ex.futures() as pool:
        assert pool.submit(divmod, 7, 2).result(timeout=60) == (3, 1)


def test_baselines_on_the_cluster_give_the_local_rows(ray_cluster):
    from test_comparison import _frames

    from rram_lsm.experiments.comparison import (ComparisonConfig, supervised_comparison,
                                                 zero_shot_comparison)
    from rram_lsm.nodes.projection.train_config import TrainConfig

    fa, fb = _frames("audio", 1, 12, 12), _frames("visual", 2, 16, 10)
    cfg = ComparisonConfig(TrainConfig(pd=16, epochs=3, threads=1), srnn_epochs=1,
                           rnn_epochs=1, proto_batch=28)

    def rows(log):
        return (zero_shot_comparison(fa, fb, cfg, log) + supervised_comparison(fb, cfg, log))

    here_log, ray_log = [], []
    here = rows(here_log.append)
    with executor.using(executor.for_cluster(ray_cluster.address)):
        on_ray = rows(ray_log.append)
    assert [r["method"] for r in on_ray] == [r["method"] for r in here] and len(here) == 6
    assert _metrics(on_ray) == _metrics(here)
    # the workers' log lines come back, in the order the pieces were listed
    assert [line.split(":")[0] for line in ray_log] == [line.split(":")[0] for line in here_log]


def _where_and_sum(i, data):
    import ray
    return float(data.sum()) + i, ray.get_runtime_context().get_node_id()


def test_cluster_without_ray_names_the_extra(tmp_path):
    code = ("import sys; sys.modules['ray'] = None\n"
            "from rram_lsm.launch.cli import main\n"
            f"sys.exit(main(['encode', '--dataset', 'builtin:tiny', '--cluster', 'local']))")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                       cwd=tmp_path)
    assert p.returncode == 2, p.stderr
    assert EXTRA in p.stderr and "Traceback" not in p.stderr


@pytest.mark.parametrize("command", [["encode"], ["eval", "--size", "tiny"],
                                     ["demo", "--size", "tiny"]])
def test_cluster_without_an_address_says_so(command, monkeypatch, capsys):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert main([*command, "--cluster"]) == 2
    err = capsys.readouterr().err
    assert "RAY_ADDRESS" in err and "--cluster local" in err
