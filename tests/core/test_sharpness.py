"""Sharpness (top Hessian eigenvalue) against closed forms and a finite-difference Hessian built here."""

import numpy as np
import pytest

from descentlab.layout import ParamLayout
from descentlab.network import MLP
from descentlab.problem import Dataset, ProblemInstance, SupervisedInstance
from descentlab.sharpness import (
    adam_preconditioner,
    hessian_extreme_eigenvalues,
    hessian_matrix,
    hessian_vector_product,
    preconditioned_top_eigenvalue,
    top_hessian_eigenvalue,
)


class Quadratic(ProblemInstance):
    """J(θ) = ½ (θ − c)ᵀ A (θ − c) with a chosen symmetric A."""

    kind = "landscape"

    def __init__(self, matrix, center=None):
        self.matrix = np.asarray(matrix, dtype=float)
        size = self.matrix.shape[0]
        self.center = np.zeros(size) if center is None else np.asarray(center, dtype=float)
        self.layout = ParamLayout([("theta", (size,), "theta")])

    def init_params(self, seeds, dtype=np.float64):
        return np.stack([np.random.default_rng(s).normal(size=self.layout.size) for s in seeds]).astype(dtype)

    def loss_and_grad(self, params, batch=None, out=None):
        d = params - self.center
        g = d @ self.matrix
        return 0.5 * np.einsum("rp,rp->r", d, g), g


def rotated(eigenvalues, seed=0):
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(len(eigenvalues),) * 2))
    return q @ np.diag(eigenvalues) @ q.T


def test_quadratic_bowl_top_eigenvalue_exact():
    bowl = Quadratic(np.diag([10.0, 1.0]), center=[1.0, -2.0])
    params = np.array([[3.0, 4.0], [-1.0, 0.5], [1.0, -2.0]])
    lam = top_hessian_eigenvalue(bowl, params)
    assert lam.shape == (3,)
    np.testing.assert_allclose(lam, 10.0, rtol=1e-6)


def test_negative_eigenvalue_of_larger_magnitude_does_not_fool_it():
    # A saddle: |−50| > 3, so power iteration would report −50; λ_max is 3.
    eig = [3.0, 1.0, 0.5, -50.0, -2.0]
    saddle = Quadratic(rotated(eig, seed=1))
    params = saddle.init_params([0, 1])
    top, bottom = hessian_extreme_eigenvalues(saddle, params, iters=20)
    np.testing.assert_allclose(top, 3.0, rtol=1e-6)
    np.testing.assert_allclose(bottom, -50.0, rtol=1e-6)


def test_few_iterations_on_a_large_quadratic_converge_to_a_separated_top():
    eig = np.concatenate([[25.0], np.linspace(0.1, 5.0, 199)])
    q = Quadratic(rotated(eig, seed=2))
    lam = top_hessian_eigenvalue(q, q.init_params([3]), iters=20)
    np.testing.assert_allclose(lam, 25.0, rtol=1e-6)


def linear_regression(samples=50, features=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(loc=0.7, scale=1.5, size=(samples, features))
    y = x @ rng.normal(size=(features, 1)) + 0.3 + 0.1 * rng.normal(size=(samples, 1))
    data = Dataset(x, y, x[:0], y[:0], "regression")
    return SupervisedInstance(data, MLP([features, 1], activation="tanh", loss="half_mse")), x


def test_linear_regression_equals_second_moment_eigenvalue():
    instance, x = linear_regression()
    augmented = np.hstack([x, np.ones((len(x), 1))])  # parameters are W1 (d, 1) then b1
    second_moment = augmented.T @ augmented / len(x)
    expected = np.linalg.eigvalsh(second_moment)[-1]
    params = instance.init_params([0, 1, 2]) * 5.0
    lam = top_hessian_eigenvalue(instance, params)
    np.testing.assert_allclose(lam, expected, rtol=1e-6)


def test_linear_regression_mini_batch_uses_that_batch():
    instance, x = linear_regression(samples=40)
    batch = np.array([np.arange(0, 10), np.arange(20, 30)])
    params = instance.init_params([0, 1])
    lam = top_hessian_eigenvalue(instance, params, batch=batch)
    for r in range(2):
        a = np.hstack([x[batch[r]], np.ones((10, 1))])
        np.testing.assert_allclose(lam[r], np.linalg.eigvalsh(a.T @ a / 10)[-1], rtol=1e-6)


def tiny_mlp(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(30, 2))
    y = np.sin(x[:, :1]) + 0.5 * x[:, 1:]
    data = Dataset(x, y, x[:0], y[:0], "regression")
    return SupervisedInstance(data, MLP([2, 4, 1], activation="tanh", loss="mse"))


def hessian_by_hand(instance, theta, h=1e-5):
    """Central differences of the engine's gradient, one coordinate at a time (the reference)."""
    size = theta.size
    out = np.empty((size, size))
    for j in range(size):
        e = np.zeros(size)
        e[j] = h
        gp = instance.loss_and_grad((theta + e)[None])[1][0]
        gm = instance.loss_and_grad((theta - e)[None])[1][0]
        out[:, j] = (gp - gm) / (2 * h)
    return 0.5 * (out + out.T)


def test_small_mlp_agrees_with_finite_difference_hessian():
    instance = tiny_mlp()
    params = instance.init_params([0, 1, 2]) * 2.0
    size = params.shape[1]
    lam_max, lam_min = hessian_extreme_eigenvalues(instance, params, iters=size)
    full = hessian_matrix(instance, params)
    for r in range(3):
        reference = hessian_by_hand(instance, params[r])
        np.testing.assert_allclose(full[r], reference, atol=1e-7 * np.abs(reference).max())
        eig = np.linalg.eigvalsh(reference)
        np.testing.assert_allclose(lam_max[r], eig[-1], rtol=1e-6)
        np.testing.assert_allclose(lam_min[r], eig[0], rtol=1e-5, atol=1e-7 * abs(eig).max())
    # The default 20 iterations already find the separated top eigenvalue.
    np.testing.assert_allclose(top_hessian_eigenvalue(instance, params), lam_max, rtol=1e-5)


def test_hessian_vector_product_matches_matrix_and_batch_independence():
    instance = tiny_mlp(seed=3)
    params = instance.init_params([5, 6])
    v = np.random.default_rng(0).normal(size=params.shape)
    hv = hessian_vector_product(instance, params, v)
    full = hessian_matrix(instance, params)
    np.testing.assert_allclose(hv, np.einsum("rpq,rq->rp", full, v), rtol=1e-6, atol=1e-8)
    # A run's sharpness does not depend on the other runs in the batch.
    alone = top_hessian_eigenvalue(instance, params[1:])
    np.testing.assert_allclose(top_hessian_eigenvalue(instance, params)[1:], alone, rtol=1e-12)


def test_float32_parameters_and_non_finite_runs():
    bowl = Quadratic(np.diag([4.0, 2.0]))
    params = np.array([[1.0, 1.0], [np.nan, 0.0], [np.inf, 1.0]], dtype=np.float32)
    lam = top_hessian_eigenvalue(bowl, params)
    assert lam.dtype == np.float64
    np.testing.assert_allclose(lam[0], 4.0, rtol=1e-6)
    assert np.isnan(lam[1:]).all()
    # far away but finite: the step ε scales with the weights; where the loss overflows, NaN not 0
    lam = top_hessian_eigenvalue(bowl, np.array([[1e100, -3e99], [1e200, 1e200]]))
    np.testing.assert_allclose(lam[0], 4.0, rtol=1e-6)
    assert np.isnan(lam[1])


def test_preconditioned_sharpness_is_eigenvalue_of_p_inverse_h():
    a = rotated([6.0, 2.0, 1.0], seed=4)
    q = Quadratic(a)
    params = q.init_params([0, 1])
    diag = np.array([[1.0, 2.0, 4.0], [0.5, 0.5, 3.0]])
    lam = preconditioned_top_eigenvalue(q, params, diag)
    for r in range(2):
        expected = np.max(np.linalg.eigvals(np.diag(1 / diag[r]) @ a).real)
        np.testing.assert_allclose(lam[r], expected, rtol=1e-6)


def test_adam_preconditioner_formula():
    v = np.array([[4.0, 0.0]])
    p = adam_preconditioner(v, 0, beta1=0.9, beta2=0.999, eps=1e-8)
    np.testing.assert_allclose(p, 0.1 * (np.sqrt(v / 0.001) + 1e-8))


def test_adam_run_preconditioned_sharpness_matches_hand_adam():
    from descentlab.sharpness import adam_limit, adam_sharpness_run

    a = rotated([8.0, 0.5], seed=7)
    q = Quadratic(a, center=[0.3, -0.2])
    alpha, steps = 0.05, 12
    out = adam_sharpness_run(q, alpha, steps, every=5, seeds=[4])
    assert out["steps"] == [0, 5, 10, 12]
    assert np.isnan(out["preconditioned"][0, 0])
    np.testing.assert_allclose(out["sharpness"], 8.0, rtol=1e-6)
    # Adam by hand (β1 = 0.9, β2 = 0.999, ε = 1e-8), then P = (1 − β1ᵗ)(√(v/(1 − β2ᵗ)) + ε)
    theta = q.init_params([4])[0]
    m = np.zeros(2)
    v = np.zeros(2)
    for t in range(1, steps + 1):
        g = a @ (theta - q.center)
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        theta = theta - alpha / (1 - 0.9**t) * m / (np.sqrt(v / (1 - 0.999**t)) + 1e-8)
    p = (1 - 0.9**steps) * (np.sqrt(v / (1 - 0.999**steps)) + 1e-8)
    expected = np.max(np.linalg.eigvals(np.diag(1 / p) @ a).real)
    np.testing.assert_allclose(out["preconditioned"][0, -1], expected, rtol=1e-6)
    np.testing.assert_allclose(out["losses"][0, -1], 0.5 * (theta - q.center) @ a @ (theta - q.center), rtol=1e-9)
    assert adam_limit(alpha) == pytest.approx(38 / alpha)


def test_meta_records_what_sharpness_tracking_cost(tmp_path):
    # meta.json says how many batched λ_max measurements and Hessian-vector products a run used
    import json

    from descentlab.experiment import Experiment
    from descentlab.records import load_results, save_results
    from descentlab.registry import load_registry
    from descentlab.runner import run_experiment

    registry = load_registry(entry_points=False, use_env=False)
    spec = {
        "name": "cost",
        "steps": 20,
        "seeds": 2,
        "problem": {"name": "xor", "samples": 16, "hidden": [3]},
        "rules": [{"rule": "gd", "learning_rate": 0.5}],
    }
    plain = run_experiment(Experiment.from_dict(spec, registry), registry=registry, workers=1)
    assert "sharpness_cost" not in plain.meta
    tracked = run_experiment(
        Experiment.from_dict({**spec, "sharpness_every": 5}, registry), registry=registry, workers=1
    )
    measured_steps = tracked.metrics.dropna(subset=["sharpness"])["step"].unique()
    cost = tracked.meta["sharpness_cost"]
    assert cost["measurements"] == len(measured_steps)  # one chunk: one batched measurement per step
    assert cost["measurements"] <= cost["hessian_vector_products"] <= cost["measurements"] * 21
    folder = save_results(tracked, tmp_path)
    assert json.loads((folder / "meta.json").read_text())["sharpness_cost"] == cost
    assert load_results(folder).meta["sharpness_cost"] == cost


# ---- the tracker: warm-started Lanczos with a Ritz-residual stop, on the reused R-operator --------

# documented (SharpnessTracker): Ritz residual <= 3e-4 |θ|, so |θ − λ_max| <~ 1e-7 |θ|² / gap, within
# 1e-6 relative wherever the top eigenvalue is separated from the next by at least a tenth of it
TRACKER_RTOL = 1e-6


def test_hessian_operator_equals_dense_hessian_and_restricts_to_rows():
    instance = tiny_mlp(seed=4)
    params = instance.init_params([1, 2, 3]) * 2.0
    v = np.random.default_rng(1).normal(size=params.shape)
    op = instance.hessian_operator(params)
    dense = np.stack([hessian_by_hand(instance, params[r]) for r in range(3)])
    expected = np.einsum("rpq,rq->rp", dense, v)
    np.testing.assert_allclose(op(v), expected, rtol=1e-6, atol=1e-8 * np.abs(expected).max())
    np.testing.assert_allclose(op(v), hessian_vector_product(instance, params, v), rtol=1e-12, atol=1e-15)
    keep = np.array([2, 0])
    np.testing.assert_allclose(op.rows(keep)(v[keep]), op(v)[keep], rtol=1e-14, atol=1e-16)
    # mini-batches: per-run inputs
    batch = np.array([np.arange(0, 10), np.arange(10, 20), np.arange(5, 15)])
    np.testing.assert_allclose(
        instance.hessian_operator(params, batch)(v),
        hessian_vector_product(instance, params, v, batch=batch),
        rtol=1e-12,
        atol=1e-15,
    )


def _gd_trajectory(instance, params, steps, lr, every):
    out = []
    params = params.copy()
    for t in range(steps + 1):
        if t % every == 0:
            out.append(params.copy())
        params -= lr * instance.loss_and_grad(params)[1]
    return out


def exact_dense_hessian(instance, theta):
    """H column by column from MLP.hessian_vector_product (the R-operator checked against torch), symmetrised."""
    size = theta.size
    x, y, _, _ = instance._data(np.float64)
    columns = instance.model.hessian_vector_product(np.repeat(theta[None], size, axis=0), np.eye(size), x, y)
    return 0.5 * (columns + columns.T)


def test_tracker_follows_the_dense_hessian_top_eigenvalue_along_training():
    from descentlab.sharpness import SharpnessTracker

    instance = tiny_mlp(seed=5)
    snapshots = _gd_trajectory(instance, instance.init_params([0, 1, 2]) * 2.0, 60, 0.2, 10)
    tracker = SharpnessTracker(3, snapshots[0].shape[1])
    for params in snapshots:
        lam = tracker.measure(instance, params, np.arange(3))
        for r in range(3):
            dense = exact_dense_hessian(instance, params[r])
            np.testing.assert_allclose(dense, hessian_by_hand(instance, params[r]), atol=1e-6 * np.abs(dense).max())
            np.testing.assert_allclose(lam[r], np.linalg.eigvalsh(dense)[-1], rtol=TRACKER_RTOL)
    assert tracker.measurements == len(snapshots)
    assert tracker.measurements <= tracker.products <= tracker.measurements * 20


def test_tracker_on_a_saddle_and_on_stale_warm_starts():
    from descentlab.sharpness import SharpnessTracker

    eig = np.array([3.0, 1.0, 0.5, -50.0, -2.0, 2.0])
    matrix = rotated(eig, seed=8)
    saddle = Quadratic(matrix)
    params = saddle.init_params([0, 1, 2, 3])
    tracker = SharpnessTracker(4, 6)
    np.testing.assert_allclose(tracker.measure(saddle, params, np.arange(4)), 3.0, rtol=TRACKER_RTOL)
    warm = tracker.products
    # now a constant Hessian: the warm start is the top eigenvector, one product is enough
    np.testing.assert_allclose(tracker.measure(saddle, params, np.arange(4)), 3.0, rtol=TRACKER_RTOL)
    assert tracker.products - warm == 1
    # a stale start mostly along the λ = 2 eigenvector: the residual test does not accept the
    # Rayleigh quotient near 2, Lanczos goes on until the top pair is found
    vectors = np.linalg.eigh(matrix)[1]  # columns, eigenvalues ascending
    stale = vectors[:, -2] + 0.05 * vectors[:, -1]
    tracker.vectors[:] = stale / np.linalg.norm(stale)
    before = tracker.products
    np.testing.assert_allclose(tracker.measure(saddle, params, np.arange(4)), 3.0, rtol=TRACKER_RTOL)
    assert tracker.products - before > 1


def test_tracker_mini_batch_non_finite_runs_and_subsets():
    from descentlab.sharpness import SharpnessTracker

    instance, x = linear_regression(samples=40)
    batch = np.array([np.arange(0, 10), np.arange(20, 30), np.arange(5, 15)])
    params = instance.init_params([0, 1, 2])
    params[1] = np.nan
    tracker = SharpnessTracker(5, params.shape[1])
    lam = tracker.measure(instance, params, np.array([4, 0, 2]), batch)
    assert np.isnan(lam[1])
    for r in (0, 2):
        a = np.hstack([x[batch[r]], np.ones((10, 1))])
        np.testing.assert_allclose(lam[r], np.linalg.eigvalsh(a.T @ a / 10)[-1], rtol=TRACKER_RTOL)
    # a run's value does not depend on what else is measured with it
    alone = SharpnessTracker(5, params.shape[1]).measure(instance, params[2:], np.array([2]), batch[2:])
    np.testing.assert_allclose(alone, lam[2:], rtol=TRACKER_RTOL)


def test_hessian_operator_from_the_training_steps_trace_is_the_same_operator():
    from descentlab.sharpness import forward_trace

    instance = tiny_mlp(seed=6)
    params = instance.init_params([0, 1]) * 2.0
    batch = np.array([np.arange(0, 12), np.arange(8, 20)])
    v = np.random.default_rng(2).normal(size=params.shape)
    for b in (None, batch):
        trace = forward_trace(instance, params)
        assert trace == {}
        loss, grad = instance.loss_and_grad(params, b, trace=trace)
        plain_loss, plain_grad = instance.loss_and_grad(params, b)
        assert np.array_equal(loss, plain_loss) and np.array_equal(grad, plain_grad)  # training unchanged
        np.testing.assert_allclose(
            instance.hessian_operator(params, b, trace=trace)(v),
            hessian_vector_product(instance, params, v, batch=b),
            rtol=1e-12,
            atol=1e-15,
        )
    assert forward_trace(instance, params.astype(np.float32)) is None  # float32 passes are not reused
    assert forward_trace(Quadratic(np.eye(2)), np.zeros((1, 2))) is None

    class OtherModel(Quadratic):  # a plugin problem with some other model and its own operator
        model = object()

        def hessian_operator(self, params, batch=None):
            raise AssertionError("not called by forward_trace")

    assert forward_trace(OtherModel(np.eye(2)), np.zeros((1, 2))) is None


def test_tracker_on_landscapes_against_closed_form_eigenvalues():
    from descentlab.experiment import Experiment
    from descentlab.registry import get_registry
    from descentlab.runner import run_experiment
    from descentlab.sharpness import SharpnessTracker

    # Rosenbrock (a = 1, b = 100): H = [[2 − 4b(y − x²) + 8b x², −4b x], [−4b x, 2b]], written out here
    problem = get_registry().problem("rosenbrock")
    rosenbrock = problem.build({h.name: h.default for h in problem.settings})
    points = np.array([[-1.2, 1.0], [0.5, 0.25], [1.0, 1.0], [0.0, 2.0]])
    tracker = SharpnessTracker(4, 2)
    for shift in (0.0, 1e-3):  # a cold, then a warm measurement
        p = points + shift
        lam = tracker.measure(rosenbrock, p, np.arange(4))
        for r, (x, y) in enumerate(p):
            h = np.array([[2 - 400 * (y - x * x) + 800 * x * x, -400 * x], [-400 * x, 200.0]])
            np.testing.assert_allclose(lam[r], np.linalg.eigvalsh(h)[-1], rtol=TRACKER_RTOL)
    # a quadratic bowl of chosen λ_max, through the runner: every measurement is that constant
    spec = {
        "steps": 30,
        "seeds": [0, 1, 2],
        "sharpness_every": 5,
        "eval_every": 0,
        "problem": {"name": "quadratic", "lambda_max": 3.0, "condition": 7.0, "angle": 20.0},
        "rules": [{"rule": "gd", "learning_rate": 0.1}],
    }
    results = run_experiment(Experiment.from_dict(spec), workers=1)
    measured = results.metrics["sharpness"].dropna().to_numpy()
    assert len(measured) == 3 * 7
    np.testing.assert_allclose(measured, 3.0, rtol=TRACKER_RTOL)
