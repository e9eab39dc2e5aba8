"""Loss and activation values against plain, independently written formulas (PyTorch's documented semantics)."""

import math

import numpy as np
import pytest

from descentlab import ACTIVATIONS, LOSSES, MLP
from descentlab.losses import accuracy


def plain_sigmoid(z):
    return 1.0 / (1.0 + math.exp(-z))


def test_mse_is_mean_over_all_elements():
    # torch.nn.MSELoss(reduction="mean"): mean of (ŷ − y)² over every element.
    out = np.array([[[1.0, 2.0], [3.0, 4.0], [0.0, -1.0]]])
    y = np.array([[0.0, 2.0], [1.0, 1.0], [0.5, 0.5]])
    expected = (1 + 0 + 4 + 9 + 0.25 + 2.25) / 6
    assert LOSSES["mse"].value(out, y)[0] == pytest.approx(expected, rel=1e-15)
    assert LOSSES["mse"].value_and_grad(out, y)[0][0] == pytest.approx(expected, rel=1e-15)
    assert LOSSES["half_mse"].value(out, y)[0] == pytest.approx(expected / 2, rel=1e-15)


def test_bce_with_logits_matches_the_textbook_formula():
    # torch.nn.BCEWithLogitsLoss: mean of −[y log σ(z) + (1 − y) log(1 − σ(z))].
    rng = np.random.default_rng(0)
    z = rng.normal(0, 3, (2, 5, 1))
    y = rng.integers(0, 2, (5, 1)).astype(float)
    for r in range(2):
        terms = [
            -(y[n, 0] * math.log(plain_sigmoid(z[r, n, 0])) + (1 - y[n, 0]) * math.log(1 - plain_sigmoid(z[r, n, 0])))
            for n in range(5)
        ]
        expected = sum(terms) / 5
        assert LOSSES["bce_logits"].value(z, y)[r] == pytest.approx(expected, rel=1e-12)
        assert LOSSES["bce_logits"].value_and_grad(z, y)[0][r] == pytest.approx(expected, rel=1e-12)


def test_softmax_cross_entropy_matches_the_textbook_formula():
    # torch.nn.CrossEntropyLoss with class indices: mean over samples of −log softmax(z)[class].
    rng = np.random.default_rng(1)
    z = rng.normal(0, 2, (3, 4, 5))
    classes = rng.integers(0, 5, 4)
    y = np.eye(5)[classes]
    for r in range(3):
        terms = [-(z[r, n, classes[n]] - math.log(sum(math.exp(v) for v in z[r, n]))) for n in range(4)]
        expected = sum(terms) / 4
        assert LOSSES["softmax_ce"].value(z, y)[r] == pytest.approx(expected, rel=1e-12)
        assert LOSSES["softmax_ce"].value_and_grad(z, y)[0][r] == pytest.approx(expected, rel=1e-12)


def test_loss_gradients_with_respect_to_outputs_in_closed_form():
    rng = np.random.default_rng(2)
    z = rng.normal(size=(2, 4, 3))
    y = np.eye(3)[rng.integers(0, 3, 4)]
    sigma = 1 / (1 + np.exp(-z))
    softmax = np.exp(z) / np.exp(z).sum(axis=2, keepdims=True)
    np.testing.assert_allclose(LOSSES["mse"].value_and_grad(z, y)[1], 2 * (z - y) / 12, rtol=1e-14)
    np.testing.assert_allclose(LOSSES["half_mse"].value_and_grad(z, y)[1], (z - y) / 12, rtol=1e-14)
    np.testing.assert_allclose(LOSSES["bce_logits"].value_and_grad(z, y)[1], (sigma - y) / 12, rtol=1e-12)
    np.testing.assert_allclose(LOSSES["softmax_ce"].value_and_grad(z, y)[1], (softmax - y) / 4, rtol=1e-12)


def test_extreme_logits_stay_finite_without_warnings():
    z = np.array([[[1000.0], [-1000.0]]])
    y = np.array([[0.0], [1.0]])
    loss, grad = LOSSES["bce_logits"].value_and_grad(z, y)
    assert loss[0] == pytest.approx(1000.0) and np.isfinite(grad).all()
    z3 = np.array([[[1000.0, 0.0, -1000.0]]])
    loss, grad = LOSSES["softmax_ce"].value_and_grad(z3, np.array([[0.0, 0.0, 1.0]]))
    assert loss[0] == pytest.approx(2000.0) and np.isfinite(grad).all()
    for activation in ACTIVATIONS.values():
        assert np.isfinite(activation.forward(np.array([-1000.0, 1000.0]))).all()


@pytest.mark.parametrize(
    "name, plain",
    [
        ("identity", lambda z: z),
        ("tanh", math.tanh),
        ("sigmoid", plain_sigmoid),
        ("relu", lambda z: max(z, 0.0)),
        ("leaky_relu", lambda z: z if z > 0 else 0.01 * z),
        ("softplus", lambda z: math.log1p(math.exp(z))),
    ],
)
def test_activation_values(name, plain):
    z = np.array([-3.0, -0.5, 0.25, 2.0])
    np.testing.assert_allclose(ACTIVATIONS[name].forward(z), [plain(v) for v in z], rtol=1e-14)


def test_mlp_loss_value_matches_a_plain_forward_pass():
    model = MLP([2, 3, 1], activation="sigmoid", loss="bce_logits")
    rng = np.random.default_rng(3)
    params = model.init_params([0, 1]) + 0.2 * rng.standard_normal((2, model.layout.size))
    x = rng.standard_normal((5, 2))
    y = rng.integers(0, 2, (5, 1)).astype(float)
    v = model.layout.unflatten(params)
    for r in range(2):
        hidden = 1 / (1 + np.exp(-(x @ v["W1"][r] + v["b1"][r])))
        z = (hidden @ v["W2"][r] + v["b2"][r])[:, 0]
        p = 1 / (1 + np.exp(-z))
        expected = -np.mean(y[:, 0] * np.log(p) + (1 - y[:, 0]) * np.log(1 - p))
        assert model.loss_value(params, x, y)[r] == pytest.approx(expected, rel=1e-12)
        assert model.loss_and_grad(params, x, y)[0][r] == pytest.approx(expected, rel=1e-12)


def test_accuracy_conventions():
    logits = np.array([[[2.0], [-1.0], [0.5]]])
    assert accuracy("bce_logits", logits, np.array([[1.0], [0.0], [0.0]]))[0] == pytest.approx(2 / 3)
    scores = np.array([[[0.1, 0.9], [0.8, 0.2]]])
    assert accuracy("softmax_ce", scores, np.array([[0.0, 1.0], [0.0, 1.0]]))[0] == pytest.approx(0.5)
