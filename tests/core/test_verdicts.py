"""Run verdicts on loss curves and runs whose behaviour is known by construction."""

from __future__ import annotations

import math

import numpy as np
import pytest

from descentlab.experiment import Experiment
from descentlab.registry import get_registry
from descentlab.runner import run_experiment
from descentlab.verdicts import FLAGGED, STABLE, STATUSES, classify, smoothing_window, stability_edge


def verdict(curve, given="finished", **options):
    curve = np.asarray(curve, dtype=float)
    statuses, onsets = classify(curve[None, :], [curve.size - 1], [given], **options)
    return statuses[0], onsets[0]


STEPS = np.arange(201)


# ---- loss curves built by hand --------------------------------------------------------------------


def test_geometric_decay_converges():
    assert verdict(0.9**STEPS) == ("converged", pytest.approx(math.nan, nan_ok=True))


def test_a_steady_fall_is_progressing():
    # linear from 1 to 0.5: the last 20 steps are 0.05 lower than the 20 before, 10 % of the progress
    assert verdict(1.0 - 0.0025 * STEPS)[0] == "progressing"


def test_a_flat_curve_and_a_rounding_wobble_are_stalled():
    assert verdict(np.ones(201))[0] == "stalled"
    wobble = 1.0 - 1e-12 * (STEPS % 2)  # below J₀ by rounding only
    assert verdict(wobble)[0] == "stalled"
    assert verdict(1.0 - 0.005 * (1 - 0.9**STEPS))[0] == "stalled"  # 0.5 % of J₀, below STALL = 1 %


def test_ending_above_the_start_is_unstable_from_the_first_step_above_it():
    rising = 1.0 + 0.01 * STEPS
    assert verdict(rising) == ("unstable", 1.0)
    dip_then_rise = np.concatenate([1.0 - 0.01 * np.arange(11), 0.9 + 0.02 * np.arange(1, 191)])
    status, onset = verdict(dip_then_rise)
    # best 0.9 at step 10, progress 0.1: the first step more than 0.05 above the best is 0.9 + 0.02·3
    assert (status, onset) == ("unstable", 13.0)


def test_losing_more_than_half_the_progress_is_unstable_even_below_the_start():
    curve = np.concatenate([1.0 - 0.009 * np.arange(101), 0.1 + 0.007 * np.arange(1, 101)])  # back to 0.8 < J₀
    status, onset = verdict(curve)
    # best 0.1 at step 100, progress 0.9: unstable from the first step above 0.1 + 0.45 (0.1 + 0.007·65 = 0.555)
    assert (status, onset) == ("unstable", 165.0)
    assert verdict(np.concatenate([curve[:101], 0.1 + 0.004 * np.arange(1, 101)]))[0] != "unstable"  # 0.5 < 0.55


def test_a_spike_that_recovers_is_judged_by_where_the_run_ends():
    curve = 0.9**STEPS
    curve[50:55] = 5.0  # above J₀ for a moment, then back on the curve
    assert verdict(curve)[0] == "converged"


def test_the_runners_diverged_and_failed_are_kept_and_non_finite_is_diverged():
    assert verdict(0.9**STEPS, "diverged")[0] == "diverged"
    assert verdict(0.9**STEPS, "failed")[0] == "failed"
    assert verdict([1.0, 0.5, math.inf])[0] == "diverged"


def test_a_slow_crawl_far_from_a_known_minimum_is_progressing():
    crawl = 10.0 - 9.0 * (1 - 0.5**STEPS) - 0.001 * STEPS  # fast drop to 1, then 0.2 % of the progress per 20 steps
    assert verdict(crawl)[0] == "converged"  # minimum unknown: the run has settled
    assert verdict(crawl, minimum=0.0)[0] == "progressing"  # J* = 0 is far: still on its way
    assert verdict(0.9**STEPS, minimum=0.0)[0] == "converged"


def test_mini_batch_noise_is_not_a_blow_up():
    rng = np.random.default_rng(0)
    trend = 0.2 + 0.5 * 0.97**STEPS
    noisy = trend * (1 + 0.3 * rng.standard_normal(STEPS.size))
    noisy[0] = trend[0]
    window = smoothing_window(200, batch_size=10, n_train=100)
    assert window == 10
    status, _ = verdict(noisy, smooth=window)
    assert status in STABLE
    # the whole-training-set losses decide "ended above its start": the same curve, but J_T > J₀ there
    status, _ = verdict(noisy, smooth=window, ends=np.array([[0.7, 0.75]]))
    assert status == "unstable"


def test_smoothing_window_is_one_epoch_at_most_half_the_run():
    assert smoothing_window(500, 0, 400) == 1
    assert smoothing_window(500, 32, 400) == 12
    assert smoothing_window(10, 32, 4000) == 5


def test_stability_edge_ignores_lucky_alphas_and_stalled_seeds():
    alphas = [0.1, 1.0, 3.0, 10.0, 30.0]
    statuses = [
        ["stalled", "converged"],
        ["converged", "progressing"],
        ["converged", "unstable"],
        ["diverged", "diverged"],
        ["converged", "converged"],
    ]
    assert stability_edge(alphas, statuses) == (1.0, 3.0)
    assert stability_edge([0.1, 1.0], [["converged"], ["progressing"]]) == (1.0, pytest.approx(math.nan, nan_ok=True))
    largest, edge = stability_edge([1.0], [["stalled"]])
    assert math.isnan(largest) and math.isnan(edge)


def test_vocabulary():
    assert set(STABLE) | set(FLAGGED) | {"stalled", "failed"} == set(STATUSES)


# ---- real runs ------------------------------------------------------------------------------------


def run(problem, rule, alphas, steps, **settings):
    spec = {
        "steps": steps,
        "seeds": [0],
        "eval_every": 0,
        "problem": problem,
        "rules": [{"rule": rule, "learning_rate": [float(a) for a in alphas]}],
        **settings,
    }
    return run_experiment(Experiment.from_dict(spec), workers=1).runs.sort_values("run_id")


def test_gd_on_a_quadratic_either_side_of_its_limit():
    """λ = 1 and 0.1: α = 1.9 contracts every direction by at least max(|1 − 1.9|, |1 − 0.19|) = 0.9 per
    step, so the loss by 0.81: after 30 steps it is below 0.81³⁰ ≈ 0.2 % of J₀ (J* = 0): converged.
    α = 2.1 grows the top direction by 1.1 per step: in 30 steps the loss grows by at most
    1.1⁶⁰ ≈ 304 < 10⁴, so it is not yet diverged but unstable from step 1; in 400 steps it passes
    10⁴ × J₀ and is diverged. A tiny α = 1e-6 moves the loss by about 2e-6 of J₀: stalled.
    """
    bowl = {"name": "quadratic", "lambda_max": 1.0, "condition": 10.0, "angle": 30.0}
    runs = run(bowl, "gd", [1e-6, 1.9, 2.1], 30)
    assert list(runs["status"]) == ["stalled", "converged", "unstable"]
    assert runs["unstable_at"].iloc[2] == 1.0
    runs = run(bowl, "gd", [1.9, 2.1], 400)
    assert list(runs["status"]) == ["converged", "diverged"]


def test_a_network_at_tiny_good_and_huge_alpha():
    moons = {"name": "moons", "samples": 128, "hidden": [8], "activation": "tanh"}
    runs = run(moons, "gd", [1e-7, 1.0, 1e4], 300, divergence_factor=1e6)
    assert runs["status"].iloc[0] == "stalled"
    assert runs["status"].iloc[1] in STABLE
    assert runs["status"].iloc[2] in FLAGGED
    assert runs["final_loss"].iloc[2] > runs["final_loss"].iloc[0]


def problems_with_defaults():
    registry = get_registry()
    names = []
    for name, problem in sorted(registry.problems.items()):
        try:
            problem.build({h.name: h.default for h in problem.settings})
        except Exception:  # e.g. the CSV problem needs a path
            continue
        names.append(name)
    return names


@pytest.mark.parametrize("rule", ["gd", "momentum", "adam"])
@pytest.mark.parametrize("problem", problems_with_defaults())
def test_a_huge_alpha_is_never_reported_stable(problem, rule):
    """10³ × the rule's default α on every problem: a run that ends above its start is flagged."""
    alpha = 1e3 * get_registry().rule(rule).default_learning_rate
    spec = {
        "steps": 40,
        "seeds": [0, 1],
        "eval_every": 0,
        "problem": {"name": problem},
        "rules": [{"rule": rule, "learning_rate": alpha}],
    }
    results = run_experiment(Experiment.from_dict(spec), workers=1)
    for row in results.runs.itertuples():
        losses = results.run_metrics(row.run_id)["loss"].to_numpy()
        if not losses[-1] <= losses[0]:  # above its start, or not finite
            assert row.status in FLAGGED, (problem, rule, row.status, losses[0], losses[-1])
        if row.status in FLAGGED:
            assert row.divergence_reason, (problem, rule)
