"""Analytic landscapes and linear regression: gradients, Hessians, minima, closed-form values."""

import math

import numpy as np
import pytest

from descentlab import LandscapeInstance, check_grads, check_hessian, load_registry
from descentlab.landscapes import Beale, Himmelblau, QuadraticBowl, Rosenbrock

LANDSCAPE_NAMES = ["quadratic", "rosenbrock", "himmelblau", "beale"]


@pytest.fixture(scope="module")
def registry():
    return load_registry(entry_points=False, use_env=False)


def build(registry, name, **overrides):
    problem = registry.problem(name)
    settings = {h.name: h.default for h in problem.settings}
    settings.update(
        {k: problem.settings[[h.name for h in problem.settings].index(k)].check(v) for k, v in overrides.items()}
    )
    return problem.build(settings)


@pytest.mark.parametrize("name", LANDSCAPE_NAMES)
def test_gradient_and_hessian_pass_the_checker(registry, name):
    instance = build(registry, name)
    assert isinstance(instance, LandscapeInstance) and instance.kind == "landscape"
    rng = np.random.default_rng(0)
    (x0, x1), (y0, y1) = instance.bounds
    points = np.column_stack([rng.uniform(x0, x1, 6), rng.uniform(y0, y1, 6)])
    check_grads(instance.loss_and_grad, points)
    check_hessian(lambda p: instance.loss_and_grad(p)[1], instance.hessian, points)
    loss, grad = instance.value_and_grad(points)
    np.testing.assert_array_equal(instance.loss(points), loss)
    np.testing.assert_array_equal(instance.value(points), loss)


@pytest.mark.parametrize(
    "instance", [QuadraticBowl(), Rosenbrock(), Rosenbrock(a=-0.5, b=10.0), Himmelblau(), Beale()], ids=repr
)
def test_known_minima_are_stationary_with_the_known_value(instance):
    minima = np.array(instance.minima)
    loss, grad = instance.value_and_grad(minima)
    np.testing.assert_allclose(loss, 0.0, atol=1e-24)
    np.testing.assert_allclose(grad, 0.0, atol=2e-14)
    # A minimum: the exact Hessian there is positive definite.
    assert (np.linalg.eigvalsh(instance.hessian(minima)) > 0).all()
    assert instance.minimum == tuple(instance.minima[0])


def test_closed_form_values():
    assert Rosenbrock().value(np.array([0.0, 0.0])) == 1.0  # (a − 0)² with a = 1
    assert Rosenbrock(a=2.0, b=3.0).value(np.array([1.0, 2.0])) == 1.0 + 3.0 * 1.0
    assert Himmelblau().value(np.array([0.0, 0.0])) == 121.0 + 49.0
    assert Beale().value(np.array([0.0, 0.0])) == pytest.approx(1.5**2 + 2.25**2 + 2.625**2)
    assert Beale().value(np.array([1.0, 1.0])) == pytest.approx(1.5**2 + 2.25**2 + 2.625**2)


def test_quadratic_hessian_eigenvalues_and_rotation(registry):
    instance = build(registry, "quadratic", condition=25.0, angle=60.0, lambda_max=4.0)
    info = instance.describe()
    hessian = np.array(info["hessian"])
    values, vectors = np.linalg.eigh(hessian)
    np.testing.assert_allclose(values[::-1], [4.0, 4.0 / 25.0], rtol=1e-13)
    np.testing.assert_allclose(info["eigenvalues"], [4.0, 0.16], rtol=1e-13)
    assert info["top_eigenvalue"] == pytest.approx(4.0)
    top = vectors[:, 1]
    assert abs(top @ [math.cos(math.radians(60)), math.sin(math.radians(60))]) == pytest.approx(1.0)
    # f(p) = ½ pᵀ A p exactly, and the Hessian is the same everywhere.
    p = np.array([[1.5, -2.0], [0.3, 0.7]])
    np.testing.assert_allclose(instance.loss(p), 0.5 * np.einsum("ri,ij,rj->r", p, hessian, p), rtol=1e-14)
    np.testing.assert_allclose(instance.hessian(p), np.stack([hessian, hessian]), rtol=1e-15)


def test_value_on_a_contour_grid(registry):
    instance = build(registry, "rosenbrock")
    (x0, x1), (y0, y1) = instance.bounds
    grid = np.stack(np.meshgrid(np.linspace(x0, x1, 7), np.linspace(y0, y1, 5)), axis=-1)
    z = instance.value(grid)
    assert z.shape == (5, 7)
    expected = (1 - grid[..., 0]) ** 2 + 100 * (grid[..., 1] - grid[..., 0] ** 2) ** 2
    np.testing.assert_allclose(z, expected, rtol=1e-14)


def test_start_point_and_seeded_spread(registry):
    same = build(registry, "himmelblau", start_x=1.0, start_y=-2.0)
    np.testing.assert_array_equal(same.init_params([0, 1, 2]), [[1.0, -2.0]] * 3)
    spread = build(registry, "himmelblau", start_x=1.0, start_y=-2.0, start_spread=0.5)
    batch = spread.init_params([4, 9, 4])
    assert batch[0].tobytes() == batch[2].tobytes() == spread.init_params([4])[0].tobytes()
    assert not np.array_equal(batch[0], batch[1])
    jitter = np.random.default_rng(9).standard_normal(2)
    np.testing.assert_allclose(batch[1], [1.0, -2.0] + 0.5 * jitter, rtol=1e-15)
    (x0, x1), (y0, y1) = spread.bounds
    assert x0 <= 1.0 <= x1 and y0 <= -2.0 <= y1


@pytest.mark.parametrize("name", LANDSCAPE_NAMES + ["linear_regression"])
def test_float32_runs_stay_float32(registry, name):
    instance = build(registry, name, start_spread=0.1)
    params = instance.init_params([0, 1], dtype=np.float32)
    loss, grad = instance.loss_and_grad(params)
    assert params.dtype == grad.dtype == loss.dtype == instance.loss(params).dtype == np.float32
    assert instance.hessian(params).dtype == np.float32
    loss64 = instance.loss(params.astype(np.float64))
    np.testing.assert_allclose(loss, loss64, rtol=1e-5)


@pytest.mark.parametrize("name", LANDSCAPE_NAMES + ["linear_regression"])
def test_describe_is_json_ready(registry, name):
    import json

    info = json.loads(json.dumps(build(registry, name).describe()))
    assert info["n_params"] == 2 and len(info["bounds"]) == 2 and info["minima"]


def test_diverging_points_give_inf_without_warnings():
    loss, grad = Rosenbrock().loss_and_grad(np.array([[1e200, 1e200]]))
    assert not np.isfinite(loss).all() and not np.isfinite(grad).all()


# -- linear regression ---------------------------------------------------------------------------


def test_linear_regression_hessian_is_the_second_moment_matrix(registry):
    instance = build(registry, "linear_regression", samples=80, noise=0.5, slope=-1.5, intercept=2.0)
    x = instance.dataset.x_train[:, 0]
    y = instance.dataset.y_train[:, 0]
    design = np.column_stack([x, np.ones_like(x)])
    second_moment = design.T @ design / len(x)  # E[[x, 1][x, 1]ᵀ], computed independently
    params = instance.init_params([0, 1, 2])
    np.testing.assert_allclose(instance.hessian(params), np.stack([second_moment] * 3), rtol=1e-13)
    info = instance.describe()
    assert info["top_eigenvalue"] == pytest.approx(np.linalg.eigvalsh(second_moment).max(), rel=1e-13)
    np.testing.assert_allclose(info["eigenvalues"], np.linalg.eigvalsh(second_moment)[::-1], rtol=1e-12)
    # Least squares: the known minimum is numpy's polyfit line, and the gradient vanishes there.
    slope, intercept = np.polyfit(x, y, 1)
    np.testing.assert_allclose(instance.minimum, [slope, intercept], rtol=1e-10)
    _, grad = instance.loss_and_grad(np.array([instance.minimum]))
    np.testing.assert_allclose(grad, 0.0, atol=1e-12)
    check_hessian(lambda p: instance.loss_and_grad(p)[1], instance.hessian, params + [[0.3, -0.2]])


def test_linear_regression_cost_and_gradient(registry):
    instance = build(registry, "linear_regression")
    x = instance.dataset.x_train[:, 0]
    y = instance.dataset.y_train[:, 0]
    points = np.array([[0.0, 0.0], [1.0, -0.5], [3.0, 2.0]])
    expected = [0.5 * np.mean((w * x + b - y) ** 2) for w, b in points]
    np.testing.assert_allclose(instance.loss(points), expected, rtol=1e-12)
    np.testing.assert_allclose(instance.value(points), expected, rtol=1e-10)
    np.testing.assert_allclose(instance.value(points.reshape(3, 1, 2))[:, 0], expected, rtol=1e-10)
    check_grads(instance.loss_and_grad, points)
    assert instance.layout.describe()[0]["name"] == "W1" and instance.layout.size == 2
    (w0, w1), (b0, b1) = instance.bounds
    assert w0 < instance.minimum[0] < w1 and b0 < instance.minimum[1] < b1
    np.testing.assert_array_equal(instance.init_params([0, 5]), [[0.0, 0.0], [0.0, 0.0]])


def test_linear_regression_standardized_inputs_make_the_bowl_round(registry):
    instance = build(registry, "linear_regression", standardize=True, test_fraction=0.0)
    np.testing.assert_allclose(instance.describe()["eigenvalues"], [1.0, 1.0], atol=1e-12)
