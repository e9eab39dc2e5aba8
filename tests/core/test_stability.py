"""Stability theory against runs: critical α brackets, optimal rates, divergence sentences."""

import math

import numpy as np
import pytest

from descentlab.registry import get_registry
from descentlab.stability import (
    critical_learning_rate,
    divergence_reason,
    gd_optimal,
    gd_rate,
    heavy_ball_optimal,
    measured_rate,
    quadratic_rate,
    rule_threshold,
)

from descentlab.experiment import Experiment
from descentlab.runner import run_experiment


def run_losses(problem, settings, rule, hyper, alphas, steps, factor=1e4):
    """Train with the real runner: losses (R, steps+1) (NaN after divergence), flagged (unstable or diverged),
    results."""
    spec = {
        "steps": steps,
        "seeds": [0],
        "divergence_factor": factor,
        "eval_every": steps,
        "problem": {"name": problem, **settings},
        "rules": [{"rule": rule, "learning_rate": [float(a) for a in alphas], **hyper}],
    }
    results = run_experiment(Experiment.from_dict(spec), workers=1)
    runs = results.runs.sort_values("run_id")
    assert list(runs["learning_rate"]) == pytest.approx(list(alphas))
    table = results.metrics.pivot(index="run_id", columns="step", values="loss").reindex(columns=range(steps + 1))
    return table.to_numpy(), runs["status"].isin(("unstable", "diverged")).to_numpy(), results


BOWL = {"lambda_max": 2.5, "condition": 10.0, "angle": 30.0}
LINE = {"samples": 40, "noise": 0.3}


RULE_CASES = [
    ("gd", {}),
    ("momentum", {"momentum": 0.9}),
    ("nesterov", {"momentum": 0.9}),
    ("momentum", {"momentum": 0.5}),
    ("classical_momentum", {"momentum": 0.7}),
]


def test_critical_learning_rate_is_threshold_over_lambda():
    lam = 4.0
    assert critical_learning_rate("gd", {}, lam) == pytest.approx(2 / lam)
    assert critical_learning_rate("momentum", {"momentum": 0.9}, lam) == pytest.approx(3.8 / lam)
    assert critical_learning_rate("nesterov", {"momentum": 0.9}, lam) == pytest.approx(3.8 / 2.8 / lam)
    assert critical_learning_rate("momentum", {"momentum": 0.9, "nesterov": True}, lam) == pytest.approx(
        3.8 / 2.8 / lam
    )
    # weight decay w adds w to every eigenvalue
    assert critical_learning_rate("gd", {"weight_decay": 1.0}, lam) == pytest.approx(2 / 5)
    assert critical_learning_rate("adam", {}, lam) is None
    assert critical_learning_rate("gd", {}, None) is None
    assert critical_learning_rate("gd", {}, -1.0) is None
    assert rule_threshold("gd") == 2.0


@pytest.mark.parametrize("rule,hyper", RULE_CASES)
def test_spectral_radius_crosses_one_at_the_declared_threshold(rule, hyper):
    eig = [3.0, 0.2]
    crit = critical_learning_rate(rule, hyper, 3.0)
    assert quadratic_rate(rule, hyper, crit * (1 - 1e-6), eig) < 1.0
    assert quadratic_rate(rule, hyper, crit * (1 + 1e-6), eig) > 1.0


def bracket(problem, settings, lam, rule, hyper, steps=1500):
    crit = critical_learning_rate(rule, hyper, lam)
    # a fine grid (1 % apart) around the prediction, not containing it exactly
    alphas = crit * (1.005 + 0.01 * np.arange(-8, 8))
    _, diverged, results = run_losses(problem, settings, rule, hyper, alphas, steps)
    # monotone: every α below the edge is stable, every α above blows up
    assert not diverged[:8].any() and diverged[8:].all(), (rule, hyper, diverged)
    statuses = results.runs.sort_values("run_id")["status"].to_numpy()
    assert set(statuses[:8]) <= {"converged", "progressing"}, statuses
    last_stable, first_diverged = alphas[~diverged].max(), alphas[diverged].min()
    assert last_stable < crit < first_diverged
    # every flagged run's record explains it with the same theory: α·λ_max at or above the rule's limit
    reasons = results.runs.sort_values("run_id")["divergence_reason"].to_numpy()
    assert all(" ≥ " in r and "'s limit" in r and "critical α = " in r for r in reasons[diverged]), reasons[diverged]
    assert all(r == "" for r in reasons[~diverged])
    return results


@pytest.mark.parametrize("rule,hyper", RULE_CASES[:3])
def test_runs_bracket_the_predicted_critical_alpha_on_a_quadratic_bowl(rule, hyper):
    results = bracket("quadratic", BOWL, 2.5, rule, hyper)
    assert results.problem_info["top_eigenvalue"] == pytest.approx(2.5)


@pytest.mark.parametrize("rule,hyper", RULE_CASES[:3])
def test_runs_bracket_the_predicted_critical_alpha_on_linear_regression(rule, hyper):
    problem = get_registry().problem("linear_regression")
    instance = problem.build({**{h.name: h.default for h in problem.settings}, **LINE})
    x = instance.dataset.x_train
    augmented = np.hstack([x, np.ones((len(x), 1))])  # half-MSE: H = E[[x,1][x,1]ᵀ]
    lam = np.linalg.eigvalsh(augmented.T @ augmented / len(x))[-1]
    results = bracket("linear_regression", LINE, lam, rule, hyper)
    assert results.problem_info["top_eigenvalue"] == pytest.approx(lam, rel=1e-12)


def test_measured_gd_rate_matches_theory_at_the_optimal_alpha():
    eig = [10.0, 1.0]
    bowl = {"lambda_max": 10.0, "condition": 10.0, "angle": 20.0}
    best = gd_optimal(1.0, 10.0)
    assert best["rate"] == pytest.approx(9 / 11)
    assert gd_rate(best["learning_rate"], eig) == pytest.approx(9 / 11)
    losses, diverged, _ = run_losses("quadratic", bowl, "gd", {}, [best["learning_rate"]], 150)
    assert not diverged.any()
    assert measured_rate(losses[0]) == pytest.approx(best["rate"], rel=1e-6)
    # and at a non-optimal α the slowest direction sets the rate |1 − αλ_min|
    losses, _, _ = run_losses("quadratic", bowl, "gd", {}, [0.05], 400)
    assert measured_rate(losses[0]) == pytest.approx(0.95, rel=1e-6)


def test_heavy_ball_optimal_rate_is_reached_asymptotically():
    lam_min, lam_max = 0.1, 10.0
    best = heavy_ball_optimal(lam_min, lam_max)
    kappa = lam_max / lam_min
    assert best["rate"] == pytest.approx((math.sqrt(kappa) - 1) / (math.sqrt(kappa) + 1))
    assert best["momentum"] == pytest.approx(best["rate"] ** 2)
    assert quadratic_rate(
        "momentum", {"momentum": best["momentum"]}, best["learning_rate"], [lam_min, 1.0, lam_max]
    ) == pytest.approx(best["rate"], rel=1e-6)
    bowl = {"lambda_max": lam_max, "condition": lam_max / lam_min, "angle": -40.0}
    for rule in ("momentum", "classical_momentum"):
        losses, _, _ = run_losses(
            "quadratic", bowl, rule, {"momentum": best["momentum"]}, [best["learning_rate"]], 1500
        )
        # the double root adds a factor t to the error: the estimate approaches ρ like ρ·exp(1/t)
        assert measured_rate(losses[0], floor=1e-250) == pytest.approx(best["rate"], rel=3e-3)
    # far better than GD's best on the same bowl
    assert best["rate"] < gd_optimal(lam_min, lam_max)["rate"]


def test_measured_rate_edge_cases():
    assert math.isnan(measured_rate([1.0, 2.0]))
    assert math.isnan(measured_rate([0.0, 0.0, 0.0]))
    curve = 3.0 * 0.25 ** np.arange(40) + 1.5
    assert measured_rate(curve, minimum=1.5) == pytest.approx(0.5, rel=1e-6)
    assert measured_rate(2.0 * 0.7 ** np.arange(60), order=1) == pytest.approx(0.7, rel=1e-9)


def test_divergence_sentences():
    text = divergence_reason("gd", {}, 0.27, 10.0, 41)
    assert text == (
        "diverged at step 41; α·λ_max reached 2.7, above gradient descent's limit of 2 (critical α = 2/λ_max = 0.2)"
    )
    text = divergence_reason("momentum", {"momentum": 0.9}, 0.5, 10.0, 7)
    assert "heavy-ball momentum's limit of 3.8" in text and "reached 5" in text
    text = divergence_reason("momentum", {"momentum": 0.9, "nesterov": 1.0}, 0.5, 10.0, 7)
    assert "Nesterov momentum's limit of 1.36" in text
    assert "below gradient descent's limit of 2" in divergence_reason("gd", {}, 0.1, 10.0, 3)
    assert "no fixed stability limit" in divergence_reason("adam", {}, 0.1, 10.0, 3)
    assert divergence_reason("gd", {}, 0.1, None, 41, divergence_factor=1e4).startswith(
        "loss exceeded 10000× its initial value (or became NaN/inf) at step 41"
    )
    assert "not measured" in divergence_reason("gd", {}, 0.1, float("nan"), 41)
    assert "diverged at step 5" in divergence_reason("unknown_rule", {}, 1.0, 10.0, 5)


def test_declared_optimal_hyperparameters_equal_the_closed_forms():
    """The rules' ``optimal`` declarations (what the Stability page reads) agree with the theory module,
    and on a quadratic their declared rate is the spectral radius at those hyperparameters."""
    registry = get_registry()
    lam_min, lam_max = 0.1, 10.0
    gd = registry.rule("gd").optimal(lam_min, lam_max)
    assert gd["learning_rate"] == pytest.approx(gd_optimal(lam_min, lam_max)["learning_rate"])
    assert quadratic_rate("gd", {}, gd["learning_rate"], [lam_min, lam_max]) == pytest.approx(gd["rate"])
    hb = registry.rule("momentum").optimal(lam_min, lam_max)
    reference = heavy_ball_optimal(lam_min, lam_max)
    assert (hb["learning_rate"], hb["momentum"], hb["rate"]) == pytest.approx(
        (reference["learning_rate"], reference["momentum"], reference["rate"])
    )
    assert quadratic_rate(
        "momentum", {"momentum": hb["momentum"]}, hb["learning_rate"], [lam_min, lam_max]
    ) == pytest.approx(hb["rate"], rel=1e-6)
    assert registry.rule("adam").optimal is None
