"""Statistics of an honest comparison: bootstrap intervals, a two-sample test, performance profiles, random search.

Conventions: lower is better (a loss, a number of steps); +inf is a run that blew up or never
reached its target, and counts as the worst value rather than being dropped; every random draw
takes an explicit seed, so a report is reproducible.
"""

from __future__ import annotations

import itertools
import math
from typing import NamedTuple, Sequence

import numpy as np

from .analysis import quantiles

__all__ = [
    "LEVEL",
    "RESAMPLES",
    "EXACT_LIMIT",
    "PERMUTATIONS",
    "PAIRED_EXACT_LIMIT",
    "bootstrap_interval",
    "Comparison",
    "compare_samples",
    "min_paired_seeds",
    "compare_paired",
    "performance_profile",
    "profile_area",
    "performance_ratios",
    "profile_score",
    "best_so_far",
    "random_search",
]

LEVEL = 0.95  # two-sided confidence level of intervals and tests
RESAMPLES = 2000  # bootstrap resamples: the interval's ends move by < 1 % of its width past this
EXACT_LIMIT = 200_000  # the permutation test enumerates every split up to this many, else samples
PERMUTATIONS = 20_000  # Monte Carlo permutations beyond EXACT_LIMIT (p-value standard error ≤ 0.0035)
PAIRED_EXACT_LIMIT = 16  # the paired test enumerates all 2^n sign patterns up to n = 16 (65 536), else samples


def _sample(values) -> np.ndarray:
    data = np.asarray(values, dtype=float).reshape(-1)
    data = data[~np.isnan(data)]
    if data.size == 0:
        raise ValueError("a sample needs at least one value that is not NaN")
    return data


def bootstrap_interval(values, level: float = LEVEL, resamples: int = RESAMPLES, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the median: the (1 − level)/2 and (1 + level)/2 quantiles of
    the medians of ``resamples`` resamples drawn with replacement (Efron & Tibshirani 1993, §13.3).

    With n values there are only so many distinct medians: for 3 seeds the interval is at best the
    range of the data, which is the honest answer at that number of seeds.
    """
    data = _sample(values)
    rng = np.random.default_rng(seed)
    draws = data[rng.integers(0, data.size, size=(resamples, data.size))]
    medians = quantiles(draws, [0.5], axis=1)[0]
    low, high = quantiles(medians, [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high)


def _mid_ranks(pooled: np.ndarray) -> np.ndarray:
    """Ranks 1..N with ties sharing their mean rank (+inf ties with +inf)."""
    order = np.argsort(pooled, kind="stable")
    ranks = np.empty(pooled.size)
    ranks[order] = np.arange(1, pooled.size + 1)
    for value in np.unique(pooled):
        tied = pooled == value
        if tied.sum() > 1:
            ranks[tied] = ranks[tied].mean()
    return ranks


class Comparison(NamedTuple):
    """How sample ``a`` compares with sample ``b`` (lower is better)."""

    verdict: str  # "better", "worse" or "cannot tell apart"
    p_value: float  # two-sided
    test: str  # the test used, for the report
    n_a: int
    n_b: int
    median_a: float
    median_b: float
    paired: bool = False  # compare_paired: n_a = n_b = the number of seeds both were run on

    def sentence(self, name_a: str = "a", name_b: str = "b") -> str:
        if self.verdict == "cannot tell apart":
            seeds = f"{self.n_a}" if self.paired else f"{self.n_a} and {self.n_b}"
            unit = "seed" if self.paired and self.n_a == 1 else "seeds"
            return f"{name_a} and {name_b}: cannot tell apart at {seeds} {unit} (p = {self.p_value:.2g}, {self.test})"
        return f"{name_a} is {self.verdict} than {name_b} (p = {self.p_value:.2g}, {self.test})"


def compare_samples(a, b, level: float = LEVEL, seed: int = 0) -> Comparison:
    """Two-sided Wilcoxon–Mann–Whitney rank-sum test of "a and b come from the same distribution".

    The statistic is the rank sum of ``a`` among the pooled values (mid-ranks for ties, so +inf
    runs tie with each other). Its null distribution is the permutation distribution: every way
    of splitting the pooled values into groups of sizes n_a and n_b, enumerated exactly up to
    ``EXACT_LIMIT`` splits and sampled ``PERMUTATIONS`` times beyond. The p-value is the share of
    splits whose rank sum is at least as far from its mean n_a(N + 1)/2 as the observed one. Without
    ties that equals scipy's exact ``mannwhitneyu``; with ties the distribution is not symmetric and
    scipy's permutation ``mannwhitneyu`` doubles the smaller tail instead, so the two differ there.
    Below 1 − level, ``a`` is "better" when its median is lower (else "worse"); otherwise the two
    "cannot tell apart". With 2 seeds against 2, no split is rare enough: the smallest possible
    p-value is 1/3, and the verdict says so rather than guessing.
    """
    xa, xb = _sample(a), _sample(b)
    pooled = np.concatenate([xa, xb])
    ranks = _mid_ranks(pooled)
    n_a, total = xa.size, pooled.size
    centre = n_a * (total + 1) / 2
    observed = abs(ranks[:n_a].sum() - centre)
    splits = math.comb(total, n_a)
    if splits <= EXACT_LIMIT:
        members = np.array(list(itertools.combinations(range(total), n_a)), dtype=np.intp)
        test = "exact permutation rank-sum test"
    else:
        rng = np.random.default_rng(seed)
        members = np.argsort(rng.random((PERMUTATIONS, total)), axis=1)[:, :n_a]
        test = f"rank-sum test, {PERMUTATIONS} random permutations"
    sums = np.abs(ranks[members].sum(axis=1) - centre)
    p_value = float(np.mean(sums >= observed - 1e-9))
    median_a, median_b = float(quantiles(xa, [0.5])[0]), float(quantiles(xb, [0.5])[0])
    if p_value < 1 - level and median_a != median_b:
        verdict = "better" if median_a < median_b else "worse"
    else:
        verdict = "cannot tell apart"
    return Comparison(verdict, p_value, test, n_a, int(xb.size), median_a, median_b)


def _signed_ranks(a, b) -> tuple[np.ndarray, int]:
    """Signed mid-ranks of the nonzero paired differences a − b, and the number of pairs kept.

    +inf is the worst value: inf − inf (both diverged) is a tie, a − b = ±inf when one side
    diverged ranks as the largest difference. A pair with NaN on either side is dropped; a zero
    difference carries no sign and is dropped (Wilcoxon's convention)."""
    xa = np.asarray(a, dtype=float).reshape(-1)
    xb = np.asarray(b, dtype=float).reshape(-1)
    if xa.size != xb.size:
        raise ValueError(f"a paired test needs samples of equal length (seed by seed), not {xa.size} and {xb.size}")
    kept = ~(np.isnan(xa) | np.isnan(xb))
    xa, xb = xa[kept], xb[kept]
    with np.errstate(invalid="ignore"):
        diff = xa - xb
    diff = np.where(np.isnan(diff), 0.0, diff)  # inf − inf: both runs diverged, a tie
    diff = diff[diff != 0]
    if diff.size == 0:
        return diff, int(xa.size)
    return np.sign(diff) * _mid_ranks(np.abs(diff)), int(xa.size)


def min_paired_seeds(level: float = LEVEL) -> int:
    """The fewest seeds at which :func:`compare_paired` can say "better" or "worse": with n nonzero
    differences the smallest two-sided p-value is 2 / 2^n (every difference the same sign), so
    n must satisfy 2 / 2^n < 1 − level (6 at the 95 % level: p ≥ 0.0625 at 5 seeds)."""
    n = 1
    while 2.0 / 2**n >= 1 - level:
        n += 1
    return n


def compare_paired(a, b, level: float = LEVEL, seed: int = 0) -> Comparison:
    """Two-sided paired test of "a and b are exchangeable seed by seed": ``a[i]`` and ``b[i]`` were run
    on the same seed, so only their difference says which is lower.

    The statistic is the sum of the signed mid-ranks of the nonzero differences a − b (Wilcoxon's
    signed-rank statistic). Its null distribution flips the sign of each difference independently
    (a sign-flip permutation test): all 2^n patterns are enumerated for n ≤ ``PAIRED_EXACT_LIMIT``,
    else ``PERMUTATIONS`` seeded random patterns are drawn and p = (1 + hits) / (1 + draws), so that
    a Monte Carlo p-value is never 0. The p-value is the share of patterns whose statistic is at
    least as far from 0 as the observed one. Below 1 − level, ``a`` is "better" when the statistic
    is negative (a is lower on the differences that weigh most), "worse" when positive; otherwise
    the two "cannot tell apart". Fewer than :func:`min_paired_seeds` nonzero differences can never
    reach the level, and the verdict says so rather than guessing.
    """
    signed, n = _signed_ranks(a, b)
    xa, xb = np.asarray(a, dtype=float).reshape(-1), np.asarray(b, dtype=float).reshape(-1)
    finite_a, finite_b = xa[~np.isnan(xa)], xb[~np.isnan(xb)]
    median_a = float(quantiles(finite_a, [0.5])[0]) if finite_a.size else math.nan
    median_b = float(quantiles(finite_b, [0.5])[0]) if finite_b.size else math.nan
    k = signed.size
    if k <= PAIRED_EXACT_LIMIT:
        test = "exact paired sign-flip signed-rank test"
    else:
        test = f"paired sign-flip signed-rank test, {PERMUTATIONS} random sign patterns"
    if k == 0:
        return Comparison("cannot tell apart", 1.0, test, n, n, median_a, median_b, paired=True)
    observed = abs(signed.sum())
    # ranks are multiples of 1/2, so sums are exact in float64; the tolerance only guards rounding
    if k <= PAIRED_EXACT_LIMIT:
        patterns = 1 - 2 * ((np.arange(2**k)[:, None] >> np.arange(k)[None, :]) & 1)  # every ±1 pattern
        p_value = float(np.mean(np.abs(patterns @ np.abs(signed)) >= observed - 1e-9))
    else:
        rng = np.random.default_rng(seed)
        patterns = rng.choice(np.array([-1.0, 1.0]), size=(PERMUTATIONS, k))
        hits = int(np.sum(np.abs(patterns @ np.abs(signed)) >= observed - 1e-9))
        p_value = (1 + hits) / (1 + PERMUTATIONS)
    if p_value < 1 - level and signed.sum() != 0:
        verdict = "better" if signed.sum() < 0 else "worse"
    else:
        verdict = "cannot tell apart"
    return Comparison(verdict, p_value, test, n, n, median_a, median_b, paired=True)


def performance_ratios(costs: dict[str, dict[str, float]]) -> tuple[list[str], list[str], np.ndarray]:
    """Dolan & Moré's performance ratios r_ps = cost_ps / min_s cost_ps: (solvers, problems, ratios)
    with ``ratios[i, j]`` the ratio of solver i on problem j (+inf: a failure, or a problem every
    solver failed).

    ``costs[solver][problem]`` must be > 0 (+inf: the solver failed on that problem); every solver
    must have a cost for every problem.
    """
    solvers = list(costs)
    problems = sorted({p for row in costs.values() for p in row})
    table = np.full((len(solvers), len(problems)), np.nan)
    for i, s in enumerate(solvers):
        for j, p in enumerate(problems):
            if p not in costs[s]:
                raise ValueError(f"performance profile: solver {s!r} has no cost for problem {p!r}")
            table[i, j] = costs[s][p]
    if np.isnan(table).any() or (table <= 0).any():
        raise ValueError("performance profile: costs must be > 0 (+inf for a failure), not NaN or ≤ 0")
    best = table.min(axis=0)
    with np.errstate(invalid="ignore"):
        ratios = np.where(np.isfinite(best), table / best, np.inf)
    return solvers, problems, np.where(np.isnan(ratios), np.inf, ratios)


def performance_profile(costs: dict[str, dict[str, float]], taus: Sequence[float]) -> dict[str, np.ndarray]:
    """Dolan & Moré (2002) profiles: for each solver s, ρ_s(τ) = share of problems p with r_ps ≤ τ,
    where r_ps = cost_ps / min_s cost_ps (:func:`performance_ratios`).

    ``costs[solver][problem]`` must be > 0 (+inf: the solver failed on that problem, never within
    any τ); a problem that every solver failed counts against all of them. Every solver must have
    a cost for every problem.
    """
    solvers, _, ratios = performance_ratios(costs)
    tau = np.asarray(taus, dtype=float)
    return {s: (ratios[i][None, :] <= tau[:, None]).mean(axis=1) for i, s in enumerate(solvers)}


def profile_score(costs: dict[str, dict[str, float]], tau_max: float = 4.0) -> dict[str, float]:
    """The area under each solver's profile over [1, τ_max], divided by τ_max − 1, integrated exactly
    (AlgoPerf's benchmark score, Dahl et al. 2023: B = 1/(τ_max − 1) ∫₁^τ_max ρ(τ) dτ).

    ρ is a sum of steps, one per problem, rising by 1/P at that problem's ratio r, so the integral is
    the mean over problems of (τ_max − r)/(τ_max − 1) for r ≤ τ_max (0 beyond): a ratio of 1.01 costs
    0.01/(τ_max − 1) of a problem, not a whole grid cell as a sum over a τ grid would.
    """
    if not (math.isfinite(tau_max) and tau_max > 1):
        raise ValueError(f"profile_score: tau_max {tau_max!r}: accepted is a finite number > 1")
    solvers, _, ratios = performance_ratios(costs)
    with np.errstate(invalid="ignore"):
        held = np.where(ratios <= tau_max, (tau_max - ratios) / (tau_max - 1), 0.0)
    return {s: float(held[i].mean()) for i, s in enumerate(solvers)}


def profile_area(taus: Sequence[float], profile: np.ndarray) -> float:
    """Area under a profile over [τ₁, τ_last], normalised by the width (1 = best on every problem).

    The profile is a right-continuous step function of τ, integrated exactly on the given τ grid
    by holding each value until the next τ.
    """
    tau = np.asarray(taus, dtype=float)
    if tau.size < 2:
        raise ValueError("profile_area needs at least two τ values")
    widths = np.diff(tau)
    return float(np.sum(np.asarray(profile, dtype=float)[:-1] * widths) / (tau[-1] - tau[0]))


def best_so_far(scores) -> np.ndarray:
    """The best (lowest) score after each trial, in trial order: the curve against the tuning budget."""
    data = np.asarray(scores, dtype=float)
    return np.minimum.accumulate(np.where(np.isnan(data), np.inf, data))


def random_search(space: dict[str, tuple[float, float, bool]], budget: int, seed: int) -> list[dict[str, float]]:
    """``budget`` trials drawn independently from ``space`` = {name: (low, high, log)}, seeded.

    A log-scale dimension is drawn log-uniformly, the others uniformly; ``low == high`` pins a
    value. The same (space, budget, seed) always gives the same trials, and every rule of a
    comparison gets the same ``budget``: no rule is favoured by a denser grid.
    """
    if not isinstance(budget, int) or isinstance(budget, bool) or budget < 1:
        raise ValueError(f"budget {budget!r}: accepted is an integer ≥ 1")
    rng = np.random.default_rng(seed)
    trials: list[dict[str, float]] = [{} for _ in range(budget)]
    for name in sorted(space):
        low, high, log = space[name]
        if not (math.isfinite(low) and math.isfinite(high)) or low > high or (log and low <= 0):
            raise ValueError(
                f"search range {name} = ({low}, {high}, log={log}): accepted is finite "
                "low ≤ high, with low > 0 on a log scale"
            )
        draws = rng.random(budget)
        values = np.exp(np.log(low) + draws * (np.log(high) - np.log(low))) if log else low + draws * (high - low)
        for trial, value in zip(trials, values):
            trial[name] = float(value)
    return trials
