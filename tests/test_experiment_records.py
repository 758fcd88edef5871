"""The one experiment configuration and the typed result records: results.json keeps the
field names it has always had, and what the demo caches reads back as the same records."""
from __future__ import annotations

import json

import numpy as np
import pytest

from rram_lsm.experiments.config import ExperimentConfig
from rram_lsm.experiments.eval import EvalConfig
from rram_lsm.experiments.results import SweepResult, ZeroShotSummary, sweep_from_json
from rram_lsm.experiments.runs import split_sweep, zero_shot
from rram_lsm.nodes.projection.train import ModalityData
from rram_lsm.nodes.projection.train_config import TrainConfig

# results.json's "config" at c013266 (dataclasses.asdict of the EvalConfig of then)
RESULTS_CONFIG = ["size", "data_seed", "reservoir_seed", "devices", "gain_factors", "pd", "epochs",
                  "loss", "temperature", "windows", "train_seeds", "sweep_splits", "sweep_seeds",
                  "robustness", "robustness_modalities", "neural_overrides", "ideas", "baselines",
                  "raw_probe", "pairs", "threads", "gzsl_folds"]


def _modality(name: str, seed: int) -> ModalityData:
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(1, 10), 12)
    split = np.tile([0] * 6 + [1] * 3 + [2] * 3, 9)
    means = rng.normal(size=(10, 20))
    return ModalityData(name, "p", means[labels] + 0.5 * rng.normal(size=(len(labels), 20)),
                        labels, split)


@pytest.fixture(scope="module")
def pair():
    return _modality("audio", 1), _modality("visual", 2)


def test_eval_config_is_the_experiment_plus_what_to_run():
    cfg = EvalConfig(experiment=ExperimentConfig(size="tiny", heads=TrainConfig(pd=16, threads=2)))
    d = cfg.as_dict()
    assert list(d) == RESULTS_CONFIG
    assert (d["size"], d["pd"], d["epochs"], d["threads"]) == ("tiny", 16, 100, 2)
    # one declaration: a run's training config is the experiment's heads with its seed
    run = cfg.experiment.train(seed=3, epochs=7)
    assert (run.pd, run.seed, run.epochs, run.seen) == (16, 3, 7, (1, 2, 3, 4, 5, 6, 7))
    with pytest.raises(ValueError, match="--windows"):
        ExperimentConfig(windows=0).check()
    with pytest.raises(ValueError, match="overlap"):
        ExperimentConfig(heads=TrainConfig(seen=(1, 2), unseen=(2, 3))).check()


def test_zero_shot_summary_reads_by_attribute_and_writes_the_old_keys(pair):
    z = zero_shot(*pair, TrainConfig(epochs=3, pd=8), seeds=(0, 1))
    s = z.summary
    assert len(s.seen.a_to_b.values) == 2 and s.seen.a_to_b.mean == pytest.approx(
        np.mean([r.eval["retrieval"]["seen"]["a_to_b"] for r in z.runs]))
    assert s.unseen.chance == pytest.approx(0.5) and s.seen.chance == pytest.approx(1 / 7)
    j = json.loads(json.dumps(z.to_json()))
    keys = [f"{p}{pool}_{d}" for pool in ("seen", "unseen") for d in ("a_to_b", "b_to_a")
            for p in ("", "proto_")] + [f"{p}{pool}_chance" for pool in ("seen", "unseen")
                                        for p in ("", "proto_")] + ["authors_rule"]
    assert sorted(j["summary"]) == sorted(keys)
    assert j["summary"]["unseen_a_to_b"]["mean"] == s.unseen.a_to_b.mean
    assert ZeroShotSummary.from_json(j["summary"]) == s
    assert [r["seed"] for r in j["runs"]] == [0, 1] and "trained" not in j


def test_sweep_result_round_trips_with_its_source(pair):
    sw = split_sweep(*pair, TrainConfig(epochs=2, pd=8), 3, (0,))
    assert np.asarray(sw.unseen_mean.acc).shape == (3, 1)
    assert sw.unseen_mean.summary.mean == pytest.approx(
        (sw.unseen_a_to_b.summary.mean + sw.unseen_b_to_a.summary.mean) / 2)
    j = json.loads(json.dumps(sw.to_json()))
    assert list(j) == ["splits", "seeds", "seconds", "acc", "summary"]
    assert list(j["acc"]) == ["seen_a_to_b", "seen_b_to_a", "unseen_a_to_b", "unseen_b_to_a",
                              "seen_mean", "unseen_mean"]
    back = SweepResult.from_json(j, source="cached run", reduced=False)
    assert back.unseen_a_to_b.summary == sw.unseen_a_to_b.summary and back.source == "cached run"
    assert sweep_from_json(back.to_json()) == back
    assert sweep_from_json({"source": "not run", "reduced": True}).source == "not run"
