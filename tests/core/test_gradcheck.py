"""The public gradient checker: passes correct gradients, catches wrong ones, and says where."""

import numpy as np
import pytest

from descentlab import GradientCheckError, check_grads, check_hessian, numeric_grad


def cubic(params):
    """J(θ) = Σ a_p θ_p³/3 + Σ θ_p, per run; ∇J = a θ² + 1, Hessian diag(2 a θ)."""
    a = np.arange(1, params.shape[1] + 1)
    return (a * params**3 / 3).sum(axis=1) + params.sum(axis=1), a * params**2 + 1.0


def test_correct_gradient_passes_and_returns_the_worst_error():
    params = np.random.default_rng(0).standard_normal((4, 6))
    worst = check_grads(cubic, params)
    assert 0.0 <= worst < 1e-8


def test_wrong_gradient_in_one_run_is_caught_and_named():
    params = np.random.default_rng(1).standard_normal((4, 6))

    def broken(p):
        loss, grad = cubic(p)
        grad = grad.copy()
        grad[2, 3] *= 1.01  # a 1 % error in one coordinate of run 2
        return loss, grad

    with pytest.raises(GradientCheckError) as caught:
        check_grads(broken, params, directions=5)
    message = str(caught.value)
    assert isinstance(caught.value, AssertionError)
    assert "worst relative error" in message and "run 2" in message and "\n" not in message


def test_at_a_stationary_point_the_noise_floor_applies():
    # ∇(Σ θ²) = 0 at θ = 0: finite differences give rounding noise only; the check must pass.
    def bowl(p):
        return (p**2).sum(axis=1) + 1.0, 2 * p

    assert check_grads(bowl, np.zeros((3, 5))) <= 1e-6


def test_shape_mistakes_are_reported():
    with pytest.raises(GradientCheckError, match="must return"):
        check_grads(lambda p: (p.sum(axis=1), p[:, :2]), np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"\(R, P\)"):
        check_grads(cubic, np.ones(3))


def test_numeric_grad_matches_the_closed_form():
    params = np.random.default_rng(2).standard_normal((3, 5))
    numeric = numeric_grad(lambda p: cubic(p)[0], params)
    np.testing.assert_allclose(numeric, cubic(params)[1], rtol=1e-8, atol=1e-9)


def test_check_hessian_accepts_exact_and_rejects_wrong():
    params = np.random.default_rng(3).standard_normal((3, 4))
    a = np.arange(1, 5)
    exact = np.stack([np.diag(2 * a * row) for row in params])
    assert check_hessian(lambda p: cubic(p)[1], exact, params) < 1e-7
    assert check_hessian(lambda p: cubic(p)[1], lambda p: exact, params) < 1e-7
    wrong = exact.copy()
    wrong[1, 0, 1] = wrong[1, 1, 0] = 0.05
    with pytest.raises(GradientCheckError, match="run 1"):
        check_hessian(lambda p: cubic(p)[1], wrong, params)


def test_integer_params_are_checked_in_float64():
    assert check_grads(cubic, np.ones((2, 3), dtype=int)) < 1e-8


def test_non_finite_losses_fail_the_check_without_warnings():
    def overflowing(p):
        with np.errstate(over="ignore"):
            return np.exp(1000.0 * p).sum(axis=1), 1000.0 * np.exp(1000.0 * p)

    with pytest.raises(GradientCheckError, match="inf"):
        check_grads(overflowing, np.ones((2, 2)))
