"""Explanations of flagged runs: their numbers against λ_max computed independently in the test."""

from __future__ import annotations

import glob
import re
from pathlib import Path

import numpy as np
import pytest

from descentlab.experiment import Experiment, load_experiment_file
from descentlab.registry import get_registry
from descentlab.runner import run_experiment
from descentlab.verdicts import FLAGGED

ROOT = Path(__file__).resolve().parents[2]
# "α·λ_max = 3.97 at the start ≥ 2, gradient descent's limit (2.68 at step 4)"
PRODUCT = re.compile(r"(?<![\w.])(\d[\d.e+-]*) (at step (\d+)|at the start)")


def products(sentence: str) -> dict[int, float]:
    """{step: α·λ_max} quoted in a sentence (step 0 for "at the start")."""
    sentence = sentence[sentence.index("α·λ_max = ") :]
    return {int(m.group(3) or 0): float(m.group(1)) for m in PRODUCT.finditer(sentence)}


def dense_top_eigenvalue(instance, theta: np.ndarray, h: float = 1e-5) -> float:
    """λ_max of the Hessian built column by column from central differences of the gradient."""
    P = theta.size
    H = np.empty((P, P))
    for j in range(P):
        e = np.zeros(P)
        e[j] = h
        g_plus = instance.loss_and_grad((theta + e)[None, :])[1][0]
        g_minus = instance.loss_and_grad((theta - e)[None, :])[1][0]
        H[:, j] = (g_plus - g_minus) / (2 * h)
    return float(np.linalg.eigvalsh((H + H.T) / 2)[-1])


def gd_weights(instance, theta0: np.ndarray, alpha: float, steps: int) -> np.ndarray:
    """θ after ``steps`` plain GD steps θ ← θ − αg, written out."""
    theta = theta0.copy()
    for _ in range(steps):
        theta = theta - alpha * instance.loss_and_grad(theta[None, :])[1][0]
    return theta


def test_network_sentence_quotes_lambda_max_of_a_finite_difference_hessian():
    """xor with one hidden layer of 2 (9 weights): GD at α = 10 diverges after a few steps."""
    spec = {
        "steps": 60,
        "seeds": [0, 1],
        "eval_every": 0,
        "divergence_factor": 5,
        "problem": {"name": "xor", "hidden": [2]},
        "rules": [{"rule": "gd", "learning_rate": 10.0}],
    }
    experiment = Experiment.from_dict(spec)
    results = run_experiment(experiment, workers=1)
    problem = get_registry().problem("xor")
    instance = problem.build(dict(experiment.problem_settings))
    for row in results.runs.itertuples():
        assert row.status == "diverged" and row.diverged_at > 1
        theta0 = instance.init_params([row.seed])[0]
        before = int(row.diverged_at) - 1
        lam_0 = dense_top_eigenvalue(instance, theta0)
        lam_s = dense_top_eigenvalue(instance, gd_weights(instance, theta0, 10.0, before))
        assert row.lambda_max_start == pytest.approx(lam_0, rel=1e-4)
        assert row.lambda_max_flagged == pytest.approx(lam_s, rel=1e-4)
        quoted = products(row.divergence_reason)
        assert quoted[0] == pytest.approx(10.0 * lam_0, rel=5e-3)
        assert quoted[before] == pytest.approx(10.0 * lam_s, rel=5e-3)
        assert ("≥ 2, gradient descent's limit" in row.divergence_reason) == (10.0 * max(lam_0, lam_s) >= 2)


def rosenbrock_hessian(x: float, y: float, a: float = 1.0, b: float = 100.0) -> np.ndarray:
    """f = (a − x)² + b(y − x²)², differentiated by hand."""
    return np.array([[2 - 4 * b * (y - x * x) + 8 * b * x * x, -4 * b * x], [-4 * b * x, 2 * b]])


def test_landscape_sentence_uses_the_exact_hessian():
    spec = {
        "steps": 50,
        "seeds": [0],
        "eval_every": 0,
        "problem": {"name": "rosenbrock"},
        "rules": [{"rule": "gd", "learning_rate": 1e-2}],
    }
    results = run_experiment(Experiment.from_dict(spec), workers=1)
    row = results.runs.iloc[0]
    assert row.status in FLAGGED
    step = int(row.diverged_at if np.isfinite(row.diverged_at) else row.unstable_at)
    path = results.weights["path"][0]
    lam_s = np.linalg.eigvalsh(rosenbrock_hessian(*path[step - 1]))[-1]
    lam_0 = np.linalg.eigvalsh(rosenbrock_hessian(*path[0]))[-1]
    assert row.lambda_max_flagged == pytest.approx(lam_s, rel=1e-12)
    assert row.lambda_max_start == pytest.approx(lam_0, rel=1e-12)
    quoted = products(row.divergence_reason)
    assert quoted[max(step - 1, 0)] == pytest.approx(1e-2 * lam_s, rel=5e-3)


def test_adaptive_rule_is_told_it_has_no_curvature_limit_and_gets_its_update_size():
    spec = {
        "steps": 30,
        "seeds": [0],
        "eval_every": 0,
        "divergence_factor": 5,
        "problem": {"name": "moons", "samples": 64, "hidden": [4]},
        "rules": [{"rule": "adam", "learning_rate": 30.0}],
    }
    results = run_experiment(Experiment.from_dict(spec), workers=1)
    row = results.runs.iloc[0]
    assert row.status in FLAGGED
    text = row.divergence_reason
    assert "Adam has no fixed curvature limit" in text
    step = int(row.diverged_at if np.isfinite(row.diverged_at) else row.unstable_at) - 1
    ratio = float(re.search(r"its update at step \d+ was ([0-9.e+-]+)× the size", text).group(1))
    size = results.run_metrics(0)["step_size"][step]
    # θ at that step: the final weights of the same run stopped there
    short = run_experiment(Experiment.from_dict({**spec, "steps": step}), workers=1) if step else results
    prefix = "final." if step else "initial."
    weights = np.concatenate([short.weights[k][0].ravel() for k in short.weights if k.startswith(prefix)])
    assert ratio == pytest.approx(size / np.linalg.norm(weights), rel=5e-3)


def test_runs_that_did_not_blow_up_pay_nothing_and_say_nothing(monkeypatch):
    import descentlab.explain as explain

    calls = []
    monkeypatch.setattr(explain, "top_eigenvalues", lambda *a, **k: calls.append(1))
    spec = {
        "steps": 30,
        "seeds": [0, 1],
        "eval_every": 0,
        "problem": {"name": "quadratic"},
        "rules": [{"rule": "gd", "learning_rate": [0.1, 1.0]}],
    }
    runs = run_experiment(Experiment.from_dict(spec), workers=1).runs
    assert not calls and (runs["divergence_reason"] == "").all() and runs["lambda_max_start"].isna().all()


@pytest.mark.parametrize("path", sorted(glob.glob(str(ROOT / "examples" / "*.toml"))), ids=lambda p: Path(p).stem)
def test_every_flagged_run_of_the_shipped_examples_is_explained(path):
    results = run_experiment(load_experiment_file(path), workers=1)
    flagged = results.runs[results.runs["status"].isin(FLAGGED)]
    for row in flagged.itertuples():
        assert products(row.divergence_reason), row.divergence_reason
        assert np.isfinite(row.lambda_max_start)
    assert (results.runs.loc[~results.runs["status"].isin(FLAGGED), "divergence_reason"] == "").all()


def test_a_rule_without_a_declared_threshold_is_not_told_its_step_adapts():
    # plain gradient descent under another name, declaring no threshold and no note: the sentence
    # must not invent a reason (an adaptive step) the rule never gave
    from descentlab import DescentRule, hookimpl
    from descentlab.registry import load_registry

    class Plugin:
        @hookimpl
        def register_optimizers(self, register):
            register(DescentRule("plain_no_threshold", lambda p, h: (), lambda g, s, p, a, h, t: (-a * g, s), ()))

    registry = load_registry(extra_plugins=[("plain", Plugin())], entry_points=False, use_env=False)
    spec = {
        "steps": 30,
        "seeds": [0],
        "eval_every": 0,
        "divergence_factor": 5,
        "problem": {"name": "moons", "samples": 64, "hidden": [4]},
        "rules": [{"rule": "plain_no_threshold", "learning_rate": 500.0}],
    }
    results = run_experiment(Experiment.from_dict(spec, registry), registry=registry, workers=1)
    row = results.runs.iloc[0]
    assert row.status in FLAGGED
    assert "declares no stability threshold" in row.divergence_reason
    assert "adapt" not in row.divergence_reason
