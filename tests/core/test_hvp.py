"""Exact Hessian-vector products (the R-operator through backprop) against torch, closed forms and differences."""

from __future__ import annotations

import numpy as np
import pytest

from descentlab import ACTIVATIONS, LOSSES, MLP
from descentlab import sharpness
from descentlab.problem import HessianVectorProduct


def _data(loss: str, rng, n=9, d=3, k=2):
    x = rng.standard_normal((n, d))
    if loss == "softmax_ce":
        k = 3
        y = np.eye(k)[rng.integers(0, k, n)]
    elif loss == "bce_logits":
        y = rng.integers(0, 2, (n, k)).astype(float)
    else:
        y = rng.standard_normal((n, k))
    return x, y, k


def _torch_hvp(net: MLP, params, vectors, x, y):
    """H v of the same network written in torch, by double backward (autograd, float64)."""
    torch = pytest.importorskip("torch")
    act = {
        "identity": lambda z: z,
        "tanh": torch.tanh,
        "sigmoid": torch.sigmoid,
        "relu": torch.relu,
        "leaky_relu": lambda z: torch.nn.functional.leaky_relu(z, 0.01),
        "softplus": torch.nn.functional.softplus,
    }[net.activation.name]
    xt, yt = torch.tensor(x), torch.tensor(y)

    def loss_of(flat):
        a, offset = xt, 0
        for i in range(1, net.n_layers + 1):
            n_in, n_out = net.layout.entry(f"W{i}").shape
            w = flat[offset : offset + n_in * n_out].reshape(n_in, n_out)
            offset += n_in * n_out
            b = flat[offset : offset + n_out]
            offset += n_out
            z = a @ w + b
            a = z if i == net.n_layers else act(z)
        if net.loss.name == "mse":
            return ((a - yt) ** 2).mean()
        if net.loss.name == "half_mse":
            return 0.5 * ((a - yt) ** 2).mean()
        if net.loss.name == "bce_logits":
            return torch.nn.functional.binary_cross_entropy_with_logits(a, yt)
        return -(yt * torch.log_softmax(a, dim=1)).sum(dim=1).mean()

    rows = []
    for p, v in zip(params, vectors):
        _, hv = torch.autograd.functional.hvp(loss_of, torch.tensor(p), torch.tensor(v))
        rows.append(hv.numpy())
    return np.array(rows)


@pytest.mark.parametrize("activation", list(ACTIVATIONS))
@pytest.mark.parametrize("loss", list(LOSSES))
def test_exact_hvp_equals_torch_double_backward(activation, loss):
    rng = np.random.default_rng(hash((activation, loss)) % 2**32)
    x, y, k = _data(loss, rng)
    net = MLP([3, 4, 5, k], activation=activation, loss=loss)
    params = net.init_params([0, 1, 2]) + 0.2 * rng.standard_normal((3, net.layout.size))
    vectors = rng.standard_normal(params.shape)
    ours = net.hessian_vector_product(params, vectors, x, y)
    theirs = _torch_hvp(net, params, vectors, x, y)
    scale = np.max(np.abs(theirs), axis=1, keepdims=True)
    assert np.max(np.abs(ours - theirs) / scale) < 1e-10


@pytest.mark.parametrize("activation", ["tanh", "softplus", "sigmoid"])
def test_exact_hvp_agrees_with_central_differences_and_builds_a_symmetric_hessian(activation):
    rng = np.random.default_rng(7)
    x, y, k = _data("bce_logits", rng)
    net = MLP([3, 4, k], activation=activation, loss="bce_logits")
    params = net.init_params([3]) + 0.1 * rng.standard_normal((1, net.layout.size))
    vectors = rng.standard_normal(params.shape)
    ours = net.hessian_vector_product(params, vectors, x, y)
    eps = 1e-5
    differences = (
        net.loss_and_grad(params + eps * vectors, x, y)[1] - net.loss_and_grad(params - eps * vectors, x, y)[1]
    ) / (2 * eps)
    np.testing.assert_allclose(ours, differences, rtol=1e-6, atol=1e-9)
    size = net.layout.size
    columns = net.hessian_vector_product(np.repeat(params, size, 0), np.eye(size), x, y)  # row j = H e_j
    assert np.max(np.abs(columns - columns.T)) <= 1e-13 * np.max(np.abs(columns))


def test_exact_hvp_of_linear_regression_is_the_second_moment_matrix():
    # one linear layer, half MSE: J = ½ mean_n (x_n w + b − y_n)², H = mean_n [x_n, 1]ᵀ[x_n, 1]
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((11, 2)), rng.standard_normal((11, 1))
    net = MLP([2, 1], activation="identity", loss="half_mse")
    features = np.hstack([x, np.ones((11, 1))])
    hessian = features.T @ features / 11
    params, vectors = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    np.testing.assert_allclose(
        net.hessian_vector_product(params, vectors, x, y), vectors @ hessian, rtol=1e-13, atol=1e-15
    )


def test_per_run_mini_batches_give_each_runs_own_hessian():
    rng = np.random.default_rng(4)
    net = MLP([2, 3, 1], activation="tanh", loss="mse")
    params, vectors = net.init_params([0, 1]), rng.standard_normal((2, net.layout.size))
    x, y = rng.standard_normal((2, 6, 2)), rng.standard_normal((2, 6, 1))
    together = net.hessian_vector_product(params, vectors, x, y)
    for r in range(2):
        alone = net.hessian_vector_product(params[r : r + 1], vectors[r : r + 1], x[r], y[r])
        np.testing.assert_allclose(together[r : r + 1], alone, rtol=1e-14, atol=1e-16)


def test_networks_offer_exact_products_and_sharpness_uses_them():
    from descentlab import get_registry

    problem = get_registry().problem("xor")
    instance = problem.build({h.name: h.default for h in problem.settings})
    assert isinstance(instance, HessianVectorProduct)
    params = instance.init_params([0, 1])
    vectors = np.random.default_rng(0).standard_normal(params.shape)
    np.testing.assert_array_equal(
        sharpness.hessian_vector_product(instance, params, vectors), instance.hessian_vector_product(params, vectors)
    )
    # an explicit eps still asks for the central difference, which agrees to its own accuracy
    np.testing.assert_allclose(
        sharpness.hessian_vector_product(instance, params, vectors, eps=1e-5),
        instance.hessian_vector_product(params, vectors),
        rtol=1e-6,
        atol=1e-8,
    )


def test_warm_started_tracking_equals_cold_lanczos_with_fewer_products():
    from descentlab import get_registry

    problem = get_registry().problem("moons")
    instance = problem.build({h.name: h.default for h in problem.settings})
    params = instance.init_params([0, 1, 2])
    tracker = sharpness.SharpnessTracker(3, params.shape[1])
    cold_products = 0
    for _ in range(6):  # small moves, as between two measurements of a run
        _, grad = instance.loss_and_grad(params)
        params = params - 0.5 * grad
        warm = tracker.measure(instance, params, np.arange(3))
        info: dict = {}
        start = np.tile(sharpness._start_vector(params.shape[1], 0), (3, 1))
        cold, _ = sharpness._lanczos_extremes(
            lambda v: instance.hessian_vector_product(params, v), start, 20, 1e-10, info=info
        )
        cold_products += info["products"]
        np.testing.assert_allclose(warm, cold, rtol=1e-6)  # the tracker's documented tolerance
        dense = np.linalg.eigvalsh(sharpness.hessian_matrix(instance, params))[:, -1]
        np.testing.assert_allclose(warm, dense, rtol=1e-6)
    assert tracker.measurements == 6 and tracker.products < cold_products
