"""Head training on synthetic class-structured features (real training, small and seeded)."""
import numpy as np
import pytest

from rram_lsm.nodes.classifier.metrics import cross_modal_retrieval
from rram_lsm.nodes.projection.heads import ProjectionHead, save_heads
from rram_lsm.nodes.projection.train import (ModalityData, TrainConfig, pair_by_class, standardisation,
                                    train_heads, train_heads_many)

N_PER = {0: 24, 1: 10, 2: 12}     # train / val / test samples per class


def _modality(name: str, seed: int, sep: float = 0.7, d: int = 100) -> ModalityData:
    """Class-conditional Gaussians; each modality draws its own class means (no shared
    structure, like audio and images of a digit)."""
    rng = np.random.default_rng(seed)
    means = rng.normal(size=(10, d))
    labels, split = [], []
    for c in range(1, 10):
        for s, n in N_PER.items():
            labels += [c] * n
            split += [s] * n
    labels = np.array(labels)
    feats = sep * means[labels] + rng.normal(size=(len(labels), d)) + 3.0   # non-zero mean
    return ModalityData(name, f"{name}-preset", feats, labels, np.array(split))


@pytest.fixture(scope="module")
def data():
    return _modality("audio", 1), _modality("visual", 2)


@pytest.fixture(scope="module")
def runs(data):
    cfgs = [TrainConfig(epochs=10, pd=16, seed=0),
            TrainConfig(epochs=10, pd=16, seed=0, pairing="shuffled")]
    return train_heads_many(*data, cfgs)


def test_pair_by_class_cycles_the_shorter():
    la = np.array([1, 1, 1, 2, 2])
    lb = np.array([2, 1, 2, 2, 1])
    ia, ib = pair_by_class(la, lb, [1, 2])
    assert ia.tolist() == [0, 1, 2, 3, 4, 3]
    assert ib.tolist() == [1, 4, 1, 0, 2, 3]
    assert (la[ia] == lb[ib]).all()
    with pytest.raises(ValueError, match="class 3"):
        pair_by_class(la, lb, [1, 3])


def test_standardisation_guards_silent_features():
    x = np.array([[1.0, 5.0], [3.0, 5.0]])
    mean, std = standardisation(x)
    assert mean.tolist() == [2.0, 5.0] and std.tolist() == [1.0, 1.0]


def test_training_lowers_loss_and_beats_chance_where_shuffled_fails(runs):
    paired, shuffled = runs
    losses = [r.loss for r in paired.history]
    assert losses[-1] < 0.6 * losses[0]
    seen = paired.selected_test["seen"]
    assert seen["chance"] == pytest.approx(1 / 7)
    # Class pairing aligns the modalities: far above the 14 % chance, both directions.
    assert seen["a_to_b"] > 0.6 and seen["b_to_a"] > 0.6
    # Shuffled pairing (the negative control) stays near chance at every epoch.
    best_shuffled = max(max(r.test["seen"]["a_to_b"], r.test["seen"]["b_to_a"])
                        for r in shuffled.history)
    assert best_shuffled < seen["chance"] + 0.15
    assert min(seen["a_to_b"], seen["b_to_a"]) > best_shuffled + 0.35
    # Unseen pool is reported with its own chance (two classes).
    assert paired.selected_test["unseen"]["chance"] == pytest.approx(0.5)


def test_history_matches_numpy_heads_and_metrics(data, runs, tmp_path):
    a, b = data
    result = runs[0]
    path = save_heads(tmp_path / "heads.safetensors", result.heads,
                      {"selected_epoch": result.selected_epoch})
    head_a = ProjectionHead.load(path, "audio", preset="audio-preset")
    head_b = ProjectionHead.load(path, "visual")
    test_a, test_b = a.split == 2, b.split == 2
    report = cross_modal_retrieval(head_a(a.features[test_a]), a.labels[test_a],
                                   head_b(b.features[test_b]), b.labels[test_b],
                                   seen=range(1, 8), unseen=(8, 9))
    assert report.seen.a_to_b == pytest.approx(result.selected_test["seen"]["a_to_b"])
    assert report.unseen.b_to_a == pytest.approx(result.selected_test["unseen"]["b_to_a"])
    assert head_a.train_info["selected_epoch"] == result.selected_epoch


def test_selection_and_authors_rule(runs):
    result = runs[0]
    val_scores = [np.mean([r.val["seen"]["a_to_b"], r.val["seen"]["b_to_a"]])
                  for r in result.history]
    assert result.selected_epoch == int(np.argmax(val_scores)) + 1
    rule = result.authors_rule
    assert "85%" in rule["rule"]
    if rule["met"]:
        rec = result.history[rule["epoch"] - 1].test
        assert rec["unseen"]["a_to_b"] >= 0.85 and rec["seen"]["a_to_b"] >= 0.65
    else:
        assert rule["note"] == "no epoch meets it"
        assert all(r.test["unseen"]["a_to_b"] < 0.85 or r.test["seen"]["a_to_b"] < 0.65
                   for r in result.history)


def test_stacked_runs_equal_single_runs_and_are_seeded(data):
    a, b = data
    cfg = TrainConfig(epochs=2, pd=8, seed=3, unseen=(1, 2), seen=(3, 4, 5, 6, 7, 8, 9))
    together = train_heads_many(a, b, [TrainConfig(epochs=2, pd=8, seed=5), cfg])[1]
    alone = train_heads(a, b, cfg)
    np.testing.assert_allclose(alone.heads["audio"].weights[0],
                               together.heads["audio"].weights[0], atol=1e-5)
    assert alone.history[-1].loss == pytest.approx(together.history[-1].loss, rel=1e-5)
    assert together.selected_test["unseen"]["classes"] == [1, 2]
    assert alone.train_macs > 0 and alone.n_pairs == 7 * N_PER[0]


def test_bad_configs_are_named(data):
    a, b = data
    with pytest.raises(ValueError, match="loss"):
        train_heads(a, b, TrainConfig(loss="hinge"))
    with pytest.raises(ValueError, match="overlap"):
        train_heads(a, b, TrainConfig(seen=(1, 2, 8), unseen=(8, 9)))
    with pytest.raises(ValueError, match="share"):
        train_heads_many(a, b, [TrainConfig(pd=8), TrainConfig(pd=16)])


def test_sweep_heads_feeds_the_sweep_statistics(data):
    from rram_lsm.experiments.sweep import summarise, unseen_splits
    from rram_lsm.experiments.runs import sweep_heads
    a, b = data
    splits = unseen_splits(range(1, 10))[::6]                 # 6 of the 36 splits
    runs = sweep_heads(a, b, TrainConfig(epochs=2, pd=8), splits, seeds=[0, 1])
    assert runs.acc["unseen_a_to_b"].shape == (6, 2) and len(runs.results) == 12
    assert not np.isnan(runs.acc["seen_b_to_a"]).any()
    assert runs.results[3].config.unseen == splits[1] and runs.results[3].config.seed == 1
    for r in runs.results:
        assert set(r.config.seen) | set(r.config.unseen) == set(range(1, 10))
        assert not set(r.config.seen) & set(r.config.unseen)
    np.testing.assert_allclose(runs.chance["unseen"], 0.5)
    s = summarise(runs.acc["unseen_a_to_b"], splits, runs.chance["unseen"])
    assert s.n_splits == 6 and s.n_seeds == 2 and s.ci_low <= s.mean <= s.ci_high
