"""Split-sweep intervals on simulated sweeps with a known true accuracy."""
import time

import numpy as np
import pytest
from scipy import stats

from rram_lsm.experiments.sweep import plot_sweep, run_sweep, seen_for, summarise, unseen_splits

TRUE = 0.62
SPLITS = unseen_splits()


def _simulate(rng, splits, n_seeds, class_sd=0.04, pair_sd=0.03, seed_sd=0.04, n_test=200):
    """Accuracy of split {i, j}, seed s: Binomial(n_test, TRUE + d_i + d_j + u_ij + e_ijs)/n_test.

    d: per-class effects (a class easy or hard to recognise zero-shot, shared by every split
    that holds it), u: split effects, e: seed noise, then test-sample noise.  The mean over a
    new draw of classes is TRUE.
    """
    d = rng.normal(0, class_sd, 10)
    acc = np.empty((len(splits), n_seeds))
    for k, (i, j) in enumerate(splits):
        p = TRUE + d[i] + d[j] + rng.normal(0, pair_sd) + rng.normal(0, seed_sd, n_seeds)
        acc[k] = rng.binomial(n_test, np.clip(p, 0, 1)) / n_test
    return acc


def _coverage_and_width(method, n_sims=300, splits=SPLITS, n_seeds=3, seed=0, **kw):
    rng = np.random.default_rng(seed)
    hits, widths = 0, []
    for _ in range(n_sims):
        s = summarise(_simulate(rng, splits, n_seeds, **kw), splits, 0.5, method)
        hits += s.ci_low <= TRUE <= s.ci_high
        widths.append(s.ci_high - s.ci_low)
    return hits / n_sims, float(np.mean(widths))


def _is_honest(coverage):
    return 0.90 <= coverage <= 0.99


def test_splits_are_all_36_pairs():
    assert len(SPLITS) == 36 and len(set(SPLITS)) == 36
    assert SPLITS[0] == (1, 2) and SPLITS[-1] == (8, 9)
    assert seen_for((8, 9)) == (1, 2, 3, 4, 5, 6, 7)


def _oracle_width(class_sd=0.04, pair_sd=0.03, seed_sd=0.04, n_test=200, n_seeds=3, n=9):
    """Width of the exact 95 % normal interval for the mean over all pairs of n classes:
    Var = 4·σ_d²/n + 2·σ_u²/(n(n-1)), σ_u² holding split, seed and test-sample noise."""
    su2 = pair_sd ** 2 + (seed_sd ** 2 + TRUE * (1 - TRUE) / n_test) / n_seeds
    return 2 * 1.96 * np.sqrt(4 * class_sd ** 2 / n + 2 * su2 / (n * (n - 1)))


def test_class_jackknife_covers_the_truth():
    coverage, width = _coverage_and_width("class_jackknife")
    assert _is_honest(coverage), coverage
    assert width < 1.5 * _oracle_width()
    # When classes barely matter and split effects dominate, the jackknife is conservative
    # (the delete-one variance is biased upward, Efron-Stein) but not uselessly wide.
    kw = dict(class_sd=0.005, pair_sd=0.06)
    coverage, width = _coverage_and_width("class_jackknife", seed=1, **kw)
    assert coverage >= 0.90, coverage
    assert width < 2.0 * _oracle_width(**kw)


def test_trivial_and_naive_intervals_fail_the_check():
    # [0, 1] always covers the truth: the coverage check must reject it.
    assert not _is_honest(1.0)
    # A t-interval over split means ignores that splits share classes: it is too narrow.
    coverage, _ = _coverage_and_width("split_t")
    assert coverage < 0.90, coverage


def test_width_shrinks_with_more_splits_and_seeds():
    rng = np.random.default_rng(5)
    few = [SPLITS[i] for i in rng.choice(36, 12, replace=False)]
    few = few if len(set().union(*map(set, few))) == 9 else SPLITS[::3]
    cov_few, w_few = _coverage_and_width("class_jackknife", splits=few, seed=2)
    cov_all, w_all = _coverage_and_width("class_jackknife", seed=2)
    assert w_all < 0.85 * w_few
    assert cov_few >= 0.90
    _, w_one_seed = _coverage_and_width("class_jackknife", n_seeds=1, seed=3, seed_sd=0.08)
    _, w_five_seeds = _coverage_and_width("class_jackknife", n_seeds=5, seed=3, seed_sd=0.08)
    assert w_five_seeds < 0.85 * w_one_seed


def test_summary_fields_and_errors(tmp_path):
    acc = np.full((36, 3), 0.5)
    acc[:, 0] = 0.6
    s = summarise(acc, SPLITS, chance=np.full(36, 0.5))
    assert s.mean == pytest.approx(0.5 + 0.1 / 3) and s.chance == 0.5
    assert s.ci_low == pytest.approx(s.mean) and s.ci_high == pytest.approx(s.mean)
    assert s.n_splits == 36 and s.n_seeds == 3 and "chance 50.0%" in s.line()
    with pytest.raises(ValueError, match="36 splits"):
        summarise(acc[:5], SPLITS, 0.5)
    with pytest.raises(ValueError, match="method"):
        summarise(acc, SPLITS, 0.5, method="bootstrap")
    with pytest.raises(ValueError, match="every split"):
        summarise(np.full((1, 1), 0.5), [(8, 9)], 0.5, method="class_jackknife")
    with pytest.raises(ValueError, match="at least 2 splits"):
        summarise(np.full((1, 1), 0.5), [(8, 9)], 0.5)
    out = plot_sweep(acc, SPLITS, s, tmp_path / "sweep.png")
    assert out.stat().st_size > 1000


def test_run_sweep_calls_every_split_and_seed():
    calls = []

    def fake_train_eval(seen, unseen, seed):
        calls.append((seen, unseen, seed))
        return 0.5 + 0.01 * unseen[0] + 0.001 * seed
    acc = run_sweep(fake_train_eval, SPLITS[:3], seeds=[0, 1])
    assert acc.shape == (3, 2) and len(calls) == 6
    assert calls[0] == ((3, 4, 5, 6, 7, 8, 9), (1, 2), 0)
    assert acc[2, 1] == pytest.approx(0.5 + 0.01 + 0.001)


# ------------------------------------------------------------------ few splits, Beta split rates

BETA_MEAN, BETA_SD = 0.52, 0.13   # the spread between splits the audio-visual sweeps show


def _beta_sweeps(rng, n_trials, n_splits, n_seeds=3, seed_sd=0.05, n_test=200):
    """``acc[trial, split, seed]``: each split's true rate drawn from a Beta with mean 0.52 and
    sd 0.13; seeds nested inside a split (their own spread), then test-sample noise.  The
    true mean over splits is BETA_MEAN."""
    k = BETA_MEAN * (1 - BETA_MEAN) / BETA_SD ** 2 - 1
    p = rng.beta(BETA_MEAN * k, (1 - BETA_MEAN) * k, size=(n_trials, n_splits))
    p_seed = np.clip(p[..., None] + rng.normal(0, seed_sd, (n_trials, n_splits, n_seeds)), 0, 1)
    return rng.binomial(n_test, p_seed) / n_test


def _pooled_binomial(acc, n_test=200, confidence=0.95):
    """Clopper-Pearson interval over every test query of a sweep, pooled (vectorised)."""
    n = acc[0].size * n_test
    k = np.rint(acc.reshape(len(acc), -1) * n_test).sum(axis=1)
    a = (1 - confidence) / 2
    low = np.where(k > 0, stats.beta.ppf(a, k, n - k + 1), 0.0)
    high = np.where(k < n, stats.beta.ppf(1 - a, k + 1, n - k), 1.0)
    return low, high


@pytest.mark.parametrize("n_splits", [3, 5, 20])
def test_interval_covers_the_mean_over_splits_at_few_splits(n_splits):
    rng = np.random.default_rng(100 + n_splits)
    n_trials = 2000
    acc = _beta_sweeps(rng, n_trials, n_splits)
    start = time.perf_counter()
    lows, highs, methods = [], [], set()
    for trial in acc:
        splits = [SPLITS[i] for i in rng.choice(len(SPLITS), n_splits, replace=False)]
        s = summarise(trial, splits, 0.5)
        lows.append(s.ci_low)
        highs.append(s.ci_high)
        methods.add(s.method)
    lows, highs = np.asarray(lows), np.asarray(highs)
    assert time.perf_counter() - start < 5
    assert methods == {"split_t"}  # random splits: the interval over splits
    assert lows.min() >= 0 and highs.max() <= 1
    coverage = np.mean((lows <= BETA_MEAN) & (BETA_MEAN <= highs))
    assert 0.93 <= coverage <= 0.975, coverage
    # honest, not vacuous: at 3 splits about +-0.3, shrinking like t / sqrt(n)
    assert np.mean(highs - lows) < {3: 0.75, 5: 0.4, 20: 0.15}[n_splits]
    # a pooled binomial interval ignores the spread between splits and fails the same check
    low, high = _pooled_binomial(acc)
    assert np.mean((low <= BETA_MEAN) & (BETA_MEAN <= high)) < 0.6


def test_few_split_intervals_stay_inside_0_100():
    from rram_lsm.experiments.sweep import pick_splits

    splits = pick_splits(3)   # the demo's reduced sweep
    # spread like the demo's 3-split sweep that printed 48.4%, 95% CI [-9.7%, 106.4%]
    s = summarise(np.array([[0.05], [0.55], [0.85]]), splits, 0.5)
    assert s.method == "split_t" and 0 <= s.ci_low < s.mean < s.ci_high <= 1
    assert s.ci_low == 0.0 and s.ci_high == 1.0 or s.ci_high - s.ci_low < 1
    high = summarise(np.array([[1.0, 0.99], [0.97, 1.0], [0.9, 0.95]]), splits, 0.5)
    assert high.ci_high == 1.0 and high.ci_low > 0.5
    low = summarise(np.array([[0.0], [0.02], [0.1]]), splits, 0.5, method="class_jackknife")
    assert low.ci_low == 0.0 and low.ci_high < 0.5
    # the full 36-split enumeration keeps the class jackknife
    assert summarise(np.full((36, 2), 0.5), SPLITS, 0.5).method == "class_jackknife"
