"""descentlab.lesson: the taken-apart step equals the engine, finite differences, hand formulas and the runner."""

from __future__ import annotations

import math

import numpy as np
import pytest

from descentlab import lesson as L
from descentlab.errors import SpecError
from descentlab.experiment import Experiment
from descentlab.registry import load_registry
from descentlab.runner import run_experiment


@pytest.fixture(scope="module")
def registry():
    registry = load_registry(entry_points=False, use_env=False)
    assert registry.errors == []
    return registry


# Small networks of every loss and activation the lesson offers: tanh + bce_logits (xor), relu and two
# hidden layers (moons), softmax cross-entropy over 3 classes (blobs), mse (sine), identity + half-mse
# (one-weight linear regression).
PROBLEMS = [
    {"name": "xor", "hidden": [3], "samples": 24},
    {"name": "moons", "hidden": [3, 2], "activation": "relu", "samples": 20},
    {"name": "blobs", "hidden": [4], "samples": 30},
    {"name": "sine", "hidden": [3], "activation": "sigmoid", "samples": 16},
    {"name": "linear_regression", "samples": 12},
]


@pytest.fixture(scope="module", params=PROBLEMS, ids=lambda p: p["name"])
def setup(request, registry):
    instance = L.build_instance(request.param, registry)
    params = instance.init_params([3], np.float64)[0]
    return instance, params


def test_trace_gradient_is_the_engines_and_matches_central_differences(setup):
    instance, params = setup
    trace = L.trace_step(instance, params, example=1)
    loss, grad = instance.loss_and_grad(params[None])
    assert trace.loss == loss[0]
    np.testing.assert_array_equal(trace.gradient, grad[0])
    fd = L.finite_difference_gradient(instance, params)
    np.testing.assert_allclose(fd, trace.gradient, rtol=1e-6, atol=1e-9)


def test_each_examples_chain_rule_products_average_to_the_batch_gradient(setup):
    # ∂J/∂w = mean over n of a_prev,i · δ_j for a mean loss: the example products, summed by hand.
    instance, params = setup
    x, _ = L.training_data(instance)
    traces = [L.trace_step(instance, params, n) for n in range(len(x))]
    for layer in traces[0].layers:
        n_in, n_out = layer.weights.shape
        for i in range(n_in):
            for j in range(n_out):
                mean = np.mean([t.chain_rule(layer.index, i, j)["example_gradient"] for t in traces])
                assert mean == pytest.approx(layer.grad_weights[i, j], rel=1e-9, abs=1e-13)
        np.testing.assert_allclose(
            np.mean([t.layers[layer.index - 1].delta for t in traces], axis=0), layer.grad_biases, rtol=1e-9, atol=1e-13
        )


def test_the_examples_delta_is_the_derivative_of_its_own_cost(setup):
    # δ·a_prev for example n against a central difference of Jₙ alone (the model on that row only).
    instance, params = setup
    model = L.lesson_model(instance)
    x, y = L.training_data(instance)
    n, eps = 2, 1e-6
    trace = L.trace_step(instance, params, n)
    assert trace.example_loss == pytest.approx(float(model.loss_value(params[None], x[n : n + 1], y[n : n + 1])[0]))
    for layer in trace.layers:
        offset = model.layout.entry(f"W{layer.index}").offset
        n_out = layer.weights.shape[1]
        for i in range(layer.weights.shape[0]):
            for j in range(n_out):
                shifted = np.repeat(params[None], 2, axis=0)
                shifted[0, offset + i * n_out + j] += eps
                shifted[1, offset + i * n_out + j] -= eps
                values = model.loss_value(shifted, x[n : n + 1], y[n : n + 1])
                fd = (values[0] - values[1]) / (2 * eps)
                assert trace.chain_rule(layer.index, i, j)["example_gradient"] == pytest.approx(fd, rel=1e-5, abs=1e-9)


def test_one_weight_regression_by_hand(registry):
    # ŷ = w x + b, Jₙ = ½(ŷ − y)², δ = ŷ − y, ∂Jₙ/∂w = x δ, ∂Jₙ/∂b = δ.
    instance = L.build_instance(
        {"name": "linear_regression", "samples": 10, "start_w": 0.5, "start_b": -0.25}, registry
    )
    params = instance.init_params([0])[0]
    assert params.tolist() == [0.5, -0.25]
    x, y = L.training_data(instance)
    trace = L.trace_step(instance, params, example=4)
    xn, yn = x[4, 0], y[4, 0]
    out = 0.5 * xn - 0.25
    assert trace.layers[0].z[0] == pytest.approx(out)
    assert trace.example_loss == pytest.approx(0.5 * (out - yn) ** 2)
    assert trace.layers[0].delta[0] == pytest.approx(out - yn)
    assert trace.chain_rule(1, 0, 0)["example_gradient"] == pytest.approx(xn * (out - yn))
    residual = 0.5 * x[:, 0] - 0.25 - y[:, 0]
    assert trace.gradient[0] == pytest.approx(np.mean(x[:, 0] * residual))
    assert trace.gradient[1] == pytest.approx(np.mean(residual))


def test_gradient_descent_step_and_other_rules_from_the_same_gradient(registry, setup):
    instance, params = setup
    trace = L.trace_step(instance, params)
    g, alpha = trace.gradient, 0.3
    gd = L.descent_step(L.start_track(registry.rule("gd"), params), params, g, alpha, 0)
    np.testing.assert_array_equal(gd, -alpha * g)
    # Adam's first step (t = 1): m̂ = g, v̂ = g², so Δ = −α g / (|g| + ε).
    adam = L.descent_step(L.start_track(registry.rule("adam"), params), params, g, alpha, 0)
    np.testing.assert_allclose(adam, -alpha * g / (np.abs(g) + 1e-8), rtol=1e-12)
    # Heavy ball (PyTorch): b₁ = g₁, b₂ = μ b₁ + g₂; Δ = −α b.
    track = L.start_track(registry.rule("momentum"), params, {"momentum": 0.9})
    first = L.descent_step(track, params, g, alpha, 0)
    second = L.descent_step(track, params + first, 2 * g, alpha, 1)
    np.testing.assert_allclose(first, -alpha * g, rtol=1e-15)
    np.testing.assert_allclose(second, -alpha * (0.9 * g + 2 * g), rtol=1e-14)


def test_the_lessons_steps_follow_the_runners_trajectory(registry):
    # Five steps on the page are five steps of `descentlab run` with the same problem, seed and α.
    problem = {"name": "xor", "hidden": [3], "samples": 24}
    for rule, alpha in (("gd", 0.7), ("adam", 0.05), ("adafactor", 0.05)):  # adafactor: the lesson has the layout too
        lesson = L.start_lesson(L.build_instance(problem, registry), registry.rule(rule), alpha, seed=2)
        for _ in range(5):
            L.advance(lesson)
        experiment = Experiment.from_dict(
            {
                "name": "lesson-check",
                "problem": problem,
                "steps": 5,
                "seeds": [2],
                "rules": [{"rule": rule, "learning_rate": alpha}],
            },
            registry,
        )
        results = run_experiment(experiment, registry=registry, workers=1)
        losses = results.metrics.sort_values("step")["loss"].to_numpy()[:5]
        np.testing.assert_allclose(lesson.losses, losses, rtol=1e-12)


def test_regimes_follow_the_contraction_one_minus_alpha_lambda():
    lam = 4.0
    assert [L.regime(a / lam, lam) for a in (0.1, 0.49, 0.5, 0.8, 1.0, 1.01, 1.9, 2.0, 2.5)] == [
        "crawl",
        "crawl",
        "glide",
        "glide",
        "glide",
        "bounce",
        "bounce",
        "escape",
        "escape",
    ]
    assert L.regime(1.0, 0.0) == "escape" and L.regime(1.0, -1.0) == "escape"
    t = L.regime_thresholds(lam)
    assert (t["glide"], t["bounce"], t["escape"]) == (0.125, 0.25, 0.5)


def test_one_weight_slice_has_the_closed_form_curvature_and_behaves_as_named(registry):
    # J(w) = ½ mean (w x + b − y)² with b held: J'' = mean x², and GD on w obeys e ← (1 − αλ) e.
    instance = L.build_instance({"name": "linear_regression", "samples": 20}, registry)
    params = instance.init_params([0])[0]
    x, y = L.training_data(instance)
    view = L.slice_view(instance, params, weight=0)
    lam = float(np.mean(x[:, 0] ** 2))
    assert view.curvature == pytest.approx(lam, rel=1e-12)
    assert view.label == "W1[0,0]" and view.offset == params[0]
    bottom = -view.slope / lam
    for ratio, name in ((0.2, "crawl"), (1.0, "glide"), (1.6, "bounce"), (2.3, "escape")):
        errors = view.steps(instance, params, ratio / lam, count=4) - bottom
        assert L.regime(ratio / lam, view.curvature) == name
        np.testing.assert_allclose(errors[1:], errors[:-1] * (1 - ratio), rtol=1e-9, atol=1e-12)
    glide = view.steps(instance, params, 1.0 / lam, count=1)
    assert glide[1] == pytest.approx(bottom, rel=1e-12)


def test_gradient_slice_curvature_matches_differences_of_gradients(registry):
    instance = L.build_instance(PROBLEMS[0], registry)
    params = instance.init_params([1])[0]
    view = L.slice_view(instance, params)
    _, g = instance.loss_and_grad(params[None])
    assert np.allclose(view.direction, -g[0] / np.linalg.norm(g[0]))
    eps = 1e-5
    _, plus = instance.loss_and_grad((params + eps * view.direction)[None])
    _, minus = instance.loss_and_grad((params - eps * view.direction)[None])
    assert view.curvature == pytest.approx(float((plus - minus)[0] @ view.direction) / (2 * eps), rel=1e-6)
    positions = np.array([-0.1, 0.0, 0.2])
    expected = [instance.loss((params + s * view.direction)[None])[0] for s in positions]
    np.testing.assert_allclose(L.slice_curve(instance, params, view, positions), expected, rtol=1e-14)


def test_predict_then_run_on_a_quadratic_agrees_with_two_over_lambda_max(registry):
    problem = {"name": "linear_regression", "samples": 32}
    instance = L.build_instance(problem, registry)
    lam_max = float(np.linalg.eigvalsh(instance.matrix)[-1])  # closed-form Hessian of ½ mean (wx + b − y)²
    prediction = L.predict_then_run(problem, 0.5, rule="gd", registry=registry, steps=300)
    assert prediction.sharpness == pytest.approx(lam_max, rel=1e-10)
    assert prediction.theory == pytest.approx(2 / lam_max, rel=1e-10)
    grid = np.array(prediction.learning_rates)
    assert prediction.measured == grid[grid < 2 / lam_max].max()
    assert prediction.first_flagged == grid[grid > 2 / lam_max].min()
    assert prediction.guess == 0.5


def test_predict_then_run_uses_the_rules_declared_threshold(registry):
    # Heavy ball with momentum μ on a quadratic is stable iff α·λ_max < 2 + 2μ (Polyak; docs/theory.md).
    problem = {"name": "linear_regression", "samples": 32}
    lam_max = float(np.linalg.eigvalsh(L.build_instance(problem, registry).matrix)[-1])
    prediction = L.predict_then_run(problem, 1.0, rule="momentum", registry=registry, steps=400)
    assert prediction.theory == pytest.approx((2 + 2 * 0.9) / lam_max, rel=1e-10)
    grid = np.array(prediction.learning_rates)
    assert prediction.measured == grid[grid < prediction.theory].max()
    assert prediction.first_flagged == grid[grid > prediction.theory].min()


def test_refuses_what_it_cannot_draw(registry):
    with pytest.raises(SpecError, match="problem.hidden.*at most 30 neurons"):
        L.lesson_model(L.build_instance({"name": "xor", "hidden": [40]}, registry))
    with pytest.raises(SpecError, match="a problem with a network"):
        L.lesson_model(L.build_instance("quadratic", registry))
    with pytest.raises(SpecError, match="example"):
        L.trace_step(L.build_instance(PROBLEMS[0], registry), np.zeros(13), example=999)
    with pytest.raises(SpecError, match="problem.bogus"):
        L.build_instance({"name": "xor", "bogus": 1}, registry)
    with pytest.raises(SpecError, match="guess"):
        L.predict_then_run("linear_regression", -1.0, rule="gd", registry=registry)
    assert not L.can_teach(L.build_instance("digits", registry))  # 64 inputs and 10 outputs
    assert L.can_teach(L.build_instance("iris", registry))


def test_parameter_names_follow_the_layout(registry):
    model = L.lesson_model(L.build_instance(PROBLEMS[0], registry))
    names = L.parameter_names(model)
    assert names[:7] == ["W1[0,0]", "W1[0,1]", "W1[0,2]", "W1[1,0]", "W1[1,1]", "W1[1,2]", "b1[0]"]
    assert len(names) == model.layout.size == 2 * 3 + 3 + 3 + 1
    assert math.isfinite(L.loss_at(L.build_instance(PROBLEMS[0], registry), np.zeros(13)))


def test_the_examples_central_difference_is_the_derivative_its_chain_rule_product_computes(setup):
    # The page sets ∂Jₙ/∂w = a_prev·δ beside a central difference of Jₙ: differenced here by hand, one
    # weight at a time, on the model restricted to that example's row.
    instance, params = setup
    model = L.lesson_model(instance)
    x, y = L.training_data(instance)
    n, eps = 1, 1e-6
    trace = L.trace_step(instance, params, n)
    fd = L.finite_difference_gradient(instance, params, example=n)
    names = L.parameter_names(model)
    for k, name in enumerate(names):
        plus, minus = params.copy(), params.copy()
        plus[k] += eps
        minus[k] -= eps
        by_hand = (
            model.loss_value(plus[None], x[n : n + 1], y[n : n + 1])[0]
            - model.loss_value(minus[None], x[n : n + 1], y[n : n + 1])[0]
        ) / (2 * eps)
        assert fd[k] == pytest.approx(by_hand, rel=1e-12, abs=1e-15)
        layer = int(name[1 : name.index("[")])
        index = [int(v) for v in name[name.index("[") + 1 : -1].split(",")]
        product = (
            trace.chain_rule(layer, *index)["example_gradient"]
            if name.startswith("W")
            else trace.layers[layer - 1].delta[index[0]]
        )
        assert product == pytest.approx(fd[k], rel=1e-5, abs=1e-9)
    with pytest.raises(SpecError, match="example"):
        L.finite_difference_gradient(instance, params, example=len(x))


# Rules that break each way the runner refuses; the lesson must say what the runner says, in one line.
def _no_state(params, hyper):
    return ()


def _init_raises(params, hyper):
    raise ValueError("init broke")


def _update_raises(grad, state, params, learning_rate, hyper, step):
    raise RuntimeError("update broke")


def _update_exits(grad, state, params, learning_rate, hyper, step):
    raise SystemExit(3)


def _not_a_pair(grad, state, params, learning_rate, hyper, step):
    return -learning_rate * grad


def _wrong_shape(grad, state, params, learning_rate, hyper, step):
    return np.zeros((1, 2)), state


def _writes_grad(grad, state, params, learning_rate, hyper, step):
    grad *= 2.0
    return -learning_rate * grad, state


def _writes_params(grad, state, params, learning_rate, hyper, step):
    params -= learning_rate * grad
    return np.zeros_like(grad), state


BROKEN = {
    "init_raises": (_init_raises, _update_raises, "ValueError: init broke"),
    "update_raises": (_no_state, _update_raises, "RuntimeError: update broke"),
    "update_exits": (_no_state, _update_exits, "called sys.exit(3)"),
    "not_a_pair": (_no_state, _not_a_pair, "update returned ndarray"),
    "wrong_shape": (_no_state, _wrong_shape, "returned updates of shape (1, 2); expected (1, 13)"),
    "writes_grad": (_no_state, _writes_grad, "update wrote into grad"),
    "writes_params": (_no_state, _writes_params, "update wrote into params"),
}


@pytest.mark.parametrize("name", list(BROKEN))
def test_a_broken_rule_is_the_runners_one_line_naming_its_file_and_line(registry, name):
    from descentlab.compare import compare
    from descentlab.declarations import DescentRule
    from descentlab.errors import PluginError

    init, update, what = BROKEN[name]
    rule = DescentRule(name, init, update)
    problem = PROBLEMS[0]
    instance = L.build_instance(problem, registry)
    with pytest.raises(PluginError) as caught:
        lesson = L.start_lesson(instance, rule, 0.5)
        L.advance(lesson)
    message = str(caught.value)
    assert "\n" not in message and f"rule '{name}' (" in message and what in message
    assert f"{__file__}:" in message  # the plugin's own file and line, not the engine's
    # the same rule in `descentlab run`: its runs fail with the very same line
    runs = compare(problem, [rule], learning_rates=[0.5], seeds=[0], steps=2, registry=registry, workers=1).runs
    assert runs["status"].tolist() == ["failed"]
    assert runs["error"].tolist() == [message]


def test_diverged_at_is_the_runners_verdict(registry):
    assert L.diverged_at([]) is None
    assert L.diverged_at([1.0, 5.0, 9999.0]) is None
    assert L.diverged_at([1.0, 5.0, 10000.5, 3.0]) == 2  # |J_t| > 10⁴·|J₀|
    assert L.diverged_at([2.0, float("nan")]) == 1 and L.diverged_at([2.0, float("inf")]) == 1
    # a lesson stepped with too large an α diverges at the step where `descentlab run` says it did
    problem = {"name": "linear_regression", "samples": 16}
    instance = L.build_instance(problem, registry)
    alpha = 3.0 * 2.0 / float(np.linalg.eigvalsh(instance.matrix)[-1])  # 3× GD's limit 2/λ_max
    lesson = L.start_lesson(instance, registry.rule("gd"), alpha)
    with np.errstate(all="raise"):  # overflow is a verdict, never a warning
        for _ in range(12):
            L.advance(lesson)
    experiment = Experiment.from_dict(
        {"name": "d", "problem": problem, "steps": 12, "seeds": [0], "rules": [{"rule": "gd", "learning_rate": alpha}]},
        registry,
    )
    runs = run_experiment(experiment, registry=registry, workers=1).runs
    assert runs["status"].tolist() == ["diverged"]
    assert L.diverged_at(lesson.losses) == int(runs["diverged_at"].iloc[0])


def test_predict_then_run_narrows_the_edge_around_two_over_lambda_max(registry):
    # A coarse grid brackets GD's edge on the quadratic, a fine one narrows it: the bracket holds the
    # closed-form 2/λ_max and is under 1 % wide; the guess's own run has its verdict.
    problem = {"name": "linear_regression", "samples": 64}
    lam_max = float(np.linalg.eigvalsh(L.build_instance(problem, registry).matrix)[-1])
    edge = 2.0 / lam_max
    below = L.predict_then_run(problem, 0.5 * edge, rule="gd", registry=registry)
    assert below.measured < edge < below.first_flagged
    assert below.first_flagged / below.measured < 1.01
    assert below.guess_status in ("converged", "progressing") and below.failure == ""
    above = L.predict_then_run(problem, 1.5 * edge, rule="gd", registry=registry)
    assert above.guess_status in ("unstable", "diverged")
    assert (above.measured, above.first_flagged) == (below.measured, below.first_flagged)
    coarse = L.predict_then_run(problem, 0.5 * edge, rule="gd", registry=registry, refine=0)
    assert coarse.first_flagged / coarse.measured > 1.1  # what the fine sweep improved on
    with pytest.raises(SpecError, match="refine"):
        L.predict_then_run(problem, 1.0, rule="gd", registry=registry, refine=-1)


def test_predict_then_run_widens_the_sweep_until_something_blows_up(registry):
    # Adam declares no threshold and its steps are bounded by α: nothing in the grid around 2/λ_max
    # blows up, so the sweep looks further up until it finds and narrows an edge.
    problem = {"name": "linear_regression", "samples": 32}
    prediction = L.predict_then_run(problem, 1.0, rule="adam", registry=registry)
    assert math.isnan(prediction.theory)
    assert math.isfinite(prediction.first_flagged) and prediction.measured < prediction.first_flagged
    assert prediction.first_flagged / prediction.measured < 1.01
    assert prediction.first_flagged > 4 * 2 / prediction.sharpness  # beyond the first grid


def test_predict_then_run_with_a_broken_rule_names_it(registry):
    from descentlab.declarations import DescentRule

    rule = DescentRule("update_raises", _no_state, _update_raises)
    prediction = L.predict_then_run({"name": "linear_regression"}, 1.0, rule=rule, registry=registry)
    assert math.isnan(prediction.measured)
    assert prediction.failure.startswith("rule 'update_raises' (") and f"{__file__}:" in prediction.failure


def test_predict_then_run_takes_the_rules_hyperparameters(registry):
    # heavy ball at μ = 0.5: stable iff α·λ_max < 2 + 2μ = 3; GD with L2 weight decay w: the gradient is
    # g + wθ, so λ_max becomes λ_max + w and the edge 2/(λ_max + w). Both against the closed form.
    problem = {"name": "linear_regression", "samples": 32}
    lam_max = float(np.linalg.eigvalsh(L.build_instance(problem, registry).matrix)[-1])
    heavy = L.predict_then_run(problem, 1.0, rule="momentum", hyper={"momentum": 0.5}, registry=registry, steps=400)
    assert heavy.theory == pytest.approx(3 / lam_max, rel=1e-10)
    assert heavy.measured < 3 / lam_max < heavy.first_flagged and heavy.first_flagged / heavy.measured < 1.01
    decayed = L.predict_then_run(problem, 1.0, rule="gd", hyper={"weight_decay": 0.5}, registry=registry)
    assert decayed.theory == pytest.approx(2 / (lam_max + 0.5), rel=1e-10)
    assert decayed.measured < decayed.theory < decayed.first_flagged
    with pytest.raises(SpecError, match="momentum"):
        L.predict_then_run(problem, 1.0, rule="momentum", hyper={"momentum": 7.0}, registry=registry)


def _threshold_raises(hyper):
    raise ZeroDivisionError("threshold broke")


def test_predict_then_run_names_a_broken_stability_threshold(registry):
    from descentlab.declarations import DescentRule
    from descentlab.errors import PluginError

    gd = registry.rule("gd")
    rule = DescentRule("bad_threshold", gd.init, gd.update, stability_threshold=_threshold_raises)
    with pytest.raises(PluginError) as caught:
        L.predict_then_run({"name": "linear_regression"}, 1.0, rule=rule, registry=registry)
    message = str(caught.value)
    assert message.startswith("rule 'bad_threshold' (") and f"{__file__}:" in message
    assert "stability_threshold failed: ZeroDivisionError: threshold broke" in message
