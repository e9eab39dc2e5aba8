"""The comparison statistics against independent computations: direct resampling, scipy, hand examples."""

from __future__ import annotations

import math

import numpy as np
import pytest

from descentlab import stats


def test_bootstrap_interval_equals_a_direct_resampling_loop():
    values = [0.31, 0.12, 0.55, 0.27, 0.40, 0.19, 0.33]
    rng = np.random.default_rng(11)
    draws = rng.integers(0, len(values), size=(stats.RESAMPLES, len(values)))
    medians = sorted(float(np.median([values[i] for i in row])) for row in draws)
    expected = (float(np.quantile(medians, 0.025)), float(np.quantile(medians, 0.975)))
    assert stats.bootstrap_interval(values, seed=11) == pytest.approx(expected, rel=1e-12)


def test_bootstrap_interval_keeps_blown_up_seeds_as_worst():
    low, high = stats.bootstrap_interval([0.1, 0.2, math.inf, math.inf, math.inf])
    assert high == math.inf and low <= 0.2


def test_rank_sum_p_value_equals_scipy_exact_without_ties():
    scipy_stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(5)
    for n_a, n_b in [(3, 3), (5, 4), (8, 8), (9, 10)]:
        a, b = rng.normal(0, 1, n_a), rng.normal(0.8, 1, n_b)
        ours = stats.compare_samples(a, b)
        theirs = scipy_stats.mannwhitneyu(a, b, alternative="two-sided", method="exact").pvalue
        assert ours.p_value == pytest.approx(theirs, rel=1e-9, abs=1e-12), (n_a, n_b)


def test_rank_sum_verdicts_on_cases_known_by_hand():
    # 2 vs 2, fully separated: 2 of the C(4, 2) = 6 splits are as extreme, p = 1/3: never "better".
    two = stats.compare_samples([1.0, 2.0], [3.0, 4.0])
    assert two.p_value == pytest.approx(1 / 3) and two.verdict == "cannot tell apart"
    assert "cannot tell apart at 2 and 2 seeds" in two.sentence("gd", "adam")
    # every seed blew up against 5 finite seeds: p = 2 / C(10, 5) = 2/252 < 0.05
    worse = stats.compare_samples([math.inf] * 5, [0.1, 0.2, 0.3, 0.4, 0.5])
    assert worse.p_value == pytest.approx(2 / 252) and worse.verdict == "worse"
    better = stats.compare_samples([0.1, 0.2, 0.3, 0.4, 0.5], [math.inf] * 5)
    assert better.verdict == "better" and better.sentence("adam", "gd").startswith("adam is better than gd")
    same = stats.compare_samples([1.0, 1.0, 1.0], [1.0, 1.0, 1.0])
    assert same.p_value == 1.0 and same.verdict == "cannot tell apart"


def test_rank_sum_sampled_beyond_the_exact_limit_agrees_with_scipy():
    scipy_stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(8)
    a, b = rng.normal(0, 1, 15), rng.normal(0.6, 1, 15)  # C(30, 15) ≈ 1.6e8 splits: sampled
    ours = stats.compare_samples(a, b)
    assert "random permutations" in ours.test
    theirs = scipy_stats.mannwhitneyu(a, b, alternative="two-sided", method="exact").pvalue
    assert abs(ours.p_value - theirs) < 5 * math.sqrt(theirs * (1 - theirs) / stats.PERMUTATIONS) + 1e-4


def test_performance_profile_on_a_hand_computed_example():
    # problems p1..p3; costs (steps to target): A = 10, 20, inf; B = 20, 10, 30; C = 40, 40, 60
    costs = {
        "A": {"p1": 10, "p2": 20, "p3": math.inf},
        "B": {"p1": 20, "p2": 10, "p3": 30},
        "C": {"p1": 40, "p2": 40, "p3": 60},
    }
    # ratios: A = 1, 2, inf; B = 2, 1, 1; C = 4, 4, 2
    taus = [1.0, 2.0, 3.0, 4.0]
    profile = stats.performance_profile(costs, taus)
    np.testing.assert_allclose(profile["A"], [1 / 3, 2 / 3, 2 / 3, 2 / 3])
    np.testing.assert_allclose(profile["B"], [2 / 3, 1, 1, 1])
    np.testing.assert_allclose(profile["C"], [0, 1 / 3, 1 / 3, 1])
    # step integral over [1, 4]: B = (2/3 + 1 + 1) / 3
    assert stats.profile_area(taus, profile["B"]) == pytest.approx((2 / 3 + 1 + 1) / 3)
    with pytest.raises(ValueError, match="> 0"):
        stats.performance_profile({"A": {"p": 0.0}}, taus)
    with pytest.raises(ValueError, match="no cost for problem"):
        stats.performance_profile({"A": {"p": 1.0}, "B": {"q": 1.0}}, taus)


def test_best_so_far_is_the_running_minimum():
    np.testing.assert_array_equal(
        stats.best_so_far([3.0, math.nan, 5.0, 1.0, math.inf, 2.0]), [3.0, 3.0, 3.0, 1.0, 1.0, 1.0]
    )


def test_random_search_is_seeded_in_range_and_log_uniform():
    space = {"learning_rate": (1e-4, 1.0, True), "momentum": (0.0, 0.99, False)}
    trials = stats.random_search(space, 4000, seed=3)
    assert trials == stats.random_search(space, 4000, seed=3) and trials != stats.random_search(space, 4000, seed=4)
    lr = np.array([t["learning_rate"] for t in trials])
    mu = np.array([t["momentum"] for t in trials])
    assert lr.min() >= 1e-4 and lr.max() <= 1.0 and mu.min() >= 0 and mu.max() <= 0.99
    # log-uniform: each decade holds a quarter of the draws (binomial sd ≈ 0.7 % of 4000)
    decades = np.histogram(np.log10(lr), bins=[-4, -3, -2, -1, 0])[0] / lr.size
    np.testing.assert_allclose(decades, 0.25, atol=0.03)
    assert abs(np.median(mu) - 0.495) < 0.03
    with pytest.raises(ValueError, match="budget"):
        stats.random_search(space, 0, seed=0)
    with pytest.raises(ValueError, match="low > 0 on a log scale"):
        stats.random_search({"learning_rate": (0.0, 1.0, True)}, 3, seed=0)


def test_bootstrap_interval_equals_scipys_percentile_bootstrap_of_the_median():
    # scipy.stats.bootstrap(method="percentile") with the same generator draws the same resamples
    # (one integers(0, n, (B, n)) call) and takes the same quantiles: an independent implementation
    scipy_stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(2)
    for n in (3, 6, 8, 11):
        values = rng.lognormal(size=n)
        theirs = scipy_stats.bootstrap(
            (values,),
            np.median,
            n_resamples=stats.RESAMPLES,
            confidence_level=stats.LEVEL,
            method="percentile",
            rng=np.random.default_rng(7),
            vectorized=True,
            axis=-1,
        ).confidence_interval
        assert stats.bootstrap_interval(values, seed=7) == pytest.approx((theirs.low, theirs.high), rel=1e-12), n


def test_paired_p_value_equals_scipys_permutation_wilcoxon_with_ties_and_zeros():
    # scipy's exact Wilcoxon refuses ties; its permutation version (every sign pattern, zeros dropped
    # by zero_method="wilcox", mid-ranks for tied |d|) is the reference for the cases the runs produce
    scipy_stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(4)
    checked = 0
    for _ in range(60):
        n = int(rng.integers(6, 13))
        diffs = rng.integers(-3, 4, size=n).astype(float)  # small integers: many ties and zeros
        if not diffs.any():
            continue
        theirs = scipy_stats.wilcoxon(diffs, method=scipy_stats.PermutationMethod(n_resamples=np.inf)).pvalue
        assert stats.compare_paired(diffs, np.zeros(n)).p_value == pytest.approx(theirs, abs=1e-12), diffs
        checked += 1
    assert checked > 50


def test_profile_score_is_the_exact_area_under_the_step_profile():
    # AlgoPerf's score: 1/(τ_max − 1) ∫₁^τ_max ρ(τ) dτ. Ratios A = 1, 1.01, inf; B = 1.5, 1, 1.
    # A: (3 + 2.99 + 0) / 3 / 3 problems; B: (2.5 + 3 + 3) / 3 / 3
    costs = {"A": {"p": 1.0, "q": 1.01, "r": math.inf}, "B": {"p": 1.5, "q": 1.0, "r": 2.0}}
    score = stats.profile_score(costs, 4.0)
    assert score["A"] == pytest.approx((3 + 2.99) / 9) and score["B"] == pytest.approx((2.5 + 3 + 3) / 9)
    # a Riemann sum of ρ on a fine τ grid converges to it (the 0.05 grid's sum would not be exact)
    taus = np.linspace(1.0, 4.0, 300_001)
    profile = stats.performance_profile(costs, taus)
    for label in costs:
        assert stats.profile_area(taus, profile[label]) == pytest.approx(score[label], abs=1e-4)
    # a ratio beyond τ_max adds nothing; every problem best: 1
    assert stats.profile_score({"A": {"p": 1.0}, "B": {"p": 5.0}}) == {"A": 1.0, "B": 0.0}
    with pytest.raises(ValueError, match="tau_max"):
        stats.profile_score(costs, 1.0)


def test_rank_sum_p_value_with_ties_is_scipys_permutation_test_of_the_distance_from_the_mean():
    # With ties the rank-sum distribution is not symmetric, and two-sided p-values differ by convention:
    # ours counts splits at least as far from the mean rank sum as observed (docstring); scipy's
    # mannwhitneyu doubles the smaller tail. scipy's own permutation_test of our statistic, with its
    # rankdata's mid-ranks, is the independent reference.
    scipy_stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(1)
    for _ in range(25):
        a = rng.integers(0, 4, int(rng.integers(3, 7))).astype(float)
        b = rng.integers(0, 5, int(rng.integers(3, 7))).astype(float)
        n_a, total = a.size, a.size + b.size

        def distance(x, y, axis=-1):
            ranks = scipy_stats.rankdata(np.concatenate([x, y], axis=axis), axis=axis)
            return np.abs(ranks[..., :n_a].sum(axis=-1) - n_a * (total + 1) / 2)

        theirs = scipy_stats.permutation_test(
            (a, b), distance, permutation_type="independent", alternative="greater", n_resamples=np.inf
        ).pvalue
        assert stats.compare_samples(a, b).p_value == pytest.approx(theirs, abs=1e-9), (a, b)
