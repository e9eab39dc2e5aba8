"""Backprop gradients against central finite differences: every activation x loss x shape, R > 1."""

import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from descentlab import ACTIVATIONS, LOSSES, MLP, Dataset, SupervisedInstance, check_grads, numeric_grad

SHAPES = [(2, 3), (3, 4, 2), (4, 6, 5, 3), (1, 8, 8, 2)]
RUNS = 3
KINKED = ("relu", "leaky_relu")


def targets_for(loss: str, rng, lead, k):
    """Targets of the kind each loss expects: reals, 0/1 labels, one-hot rows."""
    if loss in ("mse", "half_mse"):
        return rng.standard_normal((*lead, k))
    if loss == "bce_logits":
        return rng.integers(0, 2, (*lead, k)).astype(float)
    return np.eye(k)[rng.integers(0, k, lead)]


def perturbed_params(model: MLP, rng, runs=RUNS):
    """Initial weights plus noise on everything, so biases are nonzero and runs differ."""
    params = model.init_params(range(runs))
    return params + 0.3 * rng.standard_normal(params.shape)


def hidden_preactivations(model: MLP, params, x):
    """Pre-activations of every hidden layer, computed independently of MLP.forward."""
    views = model.layout.unflatten(params)
    a, zs = x, []
    for i in range(1, model.n_layers):
        z = np.matmul(a, views[f"W{i}"]) + views[f"b{i}"][:, None, :]
        zs.append(z)
        a = model.activation.forward(z)
    return zs


def min_distance_to_kink(model, params, x):
    zs = hidden_preactivations(model, params, x)
    return min((np.abs(z).min() for z in zs), default=np.inf)


@pytest.mark.parametrize("activation", list(ACTIVATIONS))
@pytest.mark.parametrize("loss", list(LOSSES))
@pytest.mark.parametrize("sizes", SHAPES, ids=lambda s: "-".join(map(str, s)))
def test_backprop_matches_finite_differences(activation, loss, sizes):
    rng = np.random.default_rng(zlib.crc32(repr((activation, loss, sizes)).encode()))
    model = MLP(sizes, activation=activation, loss=loss)
    x = rng.standard_normal((7, sizes[0]))
    y = targets_for(loss, rng, (7,), sizes[-1])
    params = perturbed_params(model, rng)
    # relu/leaky_relu have kinks at z = 0; finite differences are only valid away from them.
    while activation in KINKED and min_distance_to_kink(model, params, x) < 1e-4:
        params = perturbed_params(model, rng)
    worst = check_grads(lambda p: model.loss_and_grad(p, x, y), params, rtol=1e-6)
    assert worst <= 1e-6
    # Every coordinate, not just random directions, for the smallest nets.
    if model.layout.size <= 40:
        numeric = numeric_grad(lambda p: model.loss_value(p, x, y), params)
        grad = model.loss_and_grad(params, x, y)[1]
        np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-8)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    hidden=st.lists(st.integers(1, 6), min_size=0, max_size=3),
    n_in=st.integers(1, 4),
    n_out=st.integers(1, 3),
    activation=st.sampled_from(sorted(ACTIVATIONS)),
    loss=st.sampled_from(sorted(LOSSES)),
    runs=st.integers(1, 4),
    samples=st.integers(1, 9),
    per_run_inputs=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_hypothesis_architectures(hidden, n_in, n_out, activation, loss, runs, samples, per_run_inputs, seed):
    rng = np.random.default_rng(seed)
    model = MLP([n_in, *hidden, n_out], activation=activation, loss=loss)
    lead = (runs, samples) if per_run_inputs else (samples,)
    x = rng.standard_normal((*lead, n_in))
    y = targets_for(loss, rng, lead, n_out)
    params = perturbed_params(model, rng, runs)
    assume(activation not in KINKED or min_distance_to_kink(model, params, x) > 1e-4)
    # 1e-5, not 1e-6: where a directional derivative is tiny (2e-5 in one case found), the central
    # difference's own O(eps²) truncation error reaches 1e-6 relative; a wrong gradient is off by O(1).
    check_grads(lambda p: model.loss_and_grad(p, x, y), params, rtol=1e-5)


def test_per_run_minibatches_match_one_run_at_a_time():
    """The (R, B) batch path equals running each run alone on its own samples."""
    rng = np.random.default_rng(3)
    model = MLP([2, 5, 3], activation="tanh", loss="softmax_ce")
    x = rng.standard_normal((40, 2))
    y = targets_for("softmax_ce", rng, (40,), 3)
    data = Dataset(x, y, x[:0], y[:0], "classification")
    instance = SupervisedInstance(data, model)
    params = perturbed_params(model, rng, runs=4)
    batch = np.stack([rng.choice(40, 8, replace=False) for _ in range(4)])
    loss, grad = instance.loss_and_grad(params, batch)
    for r in range(4):
        loss_r, grad_r = model.loss_and_grad(params[r : r + 1], x[batch[r]], y[batch[r]])
        np.testing.assert_allclose(loss[r], loss_r[0], rtol=1e-13)
        np.testing.assert_allclose(grad[r], grad_r[0], rtol=1e-12, atol=1e-15)
    check_grads(lambda p: instance.loss_and_grad(p, batch), params)
    np.testing.assert_allclose(instance.loss(params, batch), loss, rtol=1e-13)


def test_one_forward_backward_serves_all_runs():
    """R = 1 is just the smallest batch: stacking runs changes nothing in any run."""
    rng = np.random.default_rng(4)
    model = MLP([3, 6, 1], activation="sigmoid", loss="bce_logits")
    x, y = rng.standard_normal((10, 3)), targets_for("bce_logits", rng, (10,), 1)
    params = perturbed_params(model, rng, runs=5)
    loss, grad = model.loss_and_grad(params, x, y)
    for r in range(5):
        loss_r, grad_r = model.loss_and_grad(params[r : r + 1].copy(), x, y)
        assert loss_r[0] == pytest.approx(loss[r], rel=1e-14)
        np.testing.assert_allclose(grad_r[0], grad[r], rtol=1e-13, atol=1e-16)


def test_out_buffer_is_filled_in_place():
    rng = np.random.default_rng(5)
    model = MLP([2, 4, 1], activation="relu", loss="mse")
    x, y = rng.standard_normal((6, 2)), rng.standard_normal((6, 1))
    params = perturbed_params(model, rng)
    out = np.full_like(params, np.nan)
    loss, grad = model.loss_and_grad(params, x, y, out=out)
    assert grad is out
    np.testing.assert_array_equal(out, model.loss_and_grad(params, x, y)[1])


@pytest.mark.parametrize("activation", ["tanh", "relu", "softplus"])
def test_float32_runs_in_float32_and_agrees_with_float64(activation):
    rng = np.random.default_rng(6)
    model = MLP([2, 8, 8, 1], activation=activation, loss="bce_logits")
    x = rng.standard_normal((50, 2))
    y = targets_for("bce_logits", rng, (50,), 1)
    data = Dataset(x, y, x[:10], y[:10], "classification")
    instance = SupervisedInstance(data, model)
    params64 = perturbed_params(model, rng)
    params32 = params64.astype(np.float32)
    loss32, grad32 = instance.loss_and_grad(params32)
    loss64, grad64 = instance.loss_and_grad(params64)
    assert loss32.dtype == np.float32 and grad32.dtype == np.float32
    assert instance.evaluate(params32)["test_loss"].dtype == np.float32
    np.testing.assert_allclose(loss32, loss64, rtol=1e-5)
    relative = np.linalg.norm(grad32 - grad64, axis=1) / np.linalg.norm(grad64, axis=1)
    assert relative.max() < 1e-4
    # The checker also works in float32 with a step and tolerance suited to single precision
    # (a step that large crosses relu's kinks, so only for the smooth activations).
    if activation not in KINKED:
        check_grads(instance.loss_and_grad, params32, eps=1e-2, rtol=1e-2)


def test_layer_gradient_norms_are_norms_of_the_layer_slices():
    rng = np.random.default_rng(7)
    model = MLP([3, 5, 4, 2], activation="tanh", loss="mse")
    x, y = rng.standard_normal((9, 3)), rng.standard_normal((9, 2))
    _, grad = model.loss_and_grad(perturbed_params(model, rng), x, y)
    norms = model.layout.layer_norms(grad)
    assert norms.shape == (RUNS, 3)
    views = model.layout.unflatten(grad)
    for i in range(1, 4):
        expected = np.sqrt((views[f"W{i}"] ** 2).sum(axis=(1, 2)) + (views[f"b{i}"] ** 2).sum(axis=1))
        np.testing.assert_allclose(norms[:, i - 1], expected, rtol=1e-14)
    np.testing.assert_allclose(np.linalg.norm(norms, axis=1), np.linalg.norm(grad, axis=1), rtol=1e-14)
