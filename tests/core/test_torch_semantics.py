"""descentlab's losses, activations, MLP backprop, initialisation and descent rules against PyTorch.

PyTorch is the independent reference here (its documented semantics, run in float64): every test
skips when torch is not importable. test_rules.py already compares one configuration per rule
with torch.optim; the rule tests below cover what it does not (several hyperparameter rows in one
batch, weight decay for every rule, mixed flags, AMSGrad in AdamW, a dense quadratic, 25 steps).
"""

import math
import warnings
import zlib

import numpy as np
import pytest

from descentlab import ACTIVATIONS, LOSSES, MLP
from descentlab.network import init_scale
from descentlab.registry import load_registry

torch = pytest.importorskip("torch")
F = torch.nn.functional

R, N = 3, 7  # runs and samples: every check has more than one run


def as_torch(array, grad=False):
    return torch.tensor(np.asarray(array), dtype=torch.float64, requires_grad=grad)


def strict():
    """Any numpy floating-point warning (overflow, invalid, divide) or Python warning is an error."""

    class _Strict:
        def __enter__(self):
            self._warn = warnings.catch_warnings()
            self._warn.__enter__()
            warnings.simplefilter("error")
            self._err = np.errstate(over="raise", invalid="raise", divide="raise")
            self._err.__enter__()

        def __exit__(self, *exc):
            self._err.__exit__(*exc)
            self._warn.__exit__(*exc)
            return False

    return _Strict()


# --- losses ----------------------------------------------------------------------------------------


def torch_loss(name, output, target):
    """The PyTorch loss of one run's outputs (N, k): mean reduction, as descentlab documents."""
    if name == "mse":
        return F.mse_loss(output, target)
    if name == "half_mse":
        return 0.5 * F.mse_loss(output, target)
    if name == "bce_logits":
        return F.binary_cross_entropy_with_logits(output, target)
    if name == "softmax_ce":  # probability targets (soft labels); one-hot targets are tested separately
        return F.cross_entropy(output, target)
    raise KeyError(name)


def check_loss_against_torch(name, logits, target, rtol=1e-13, atol=1e-15):
    """descentlab's value, value_and_grad and gradient equal torch's loss and autograd, run by run."""
    loss = LOSSES[name]
    with strict():
        value, grad = loss.value_and_grad(logits, target)
        value_only = loss.value(logits, target)
    assert value.shape == (logits.shape[0],) and grad.shape == logits.shape
    assert np.all(np.isfinite(value)) and np.all(np.isfinite(grad))
    for r in range(logits.shape[0]):
        out = as_torch(logits[r], grad=True)
        tgt = as_torch(target[r] if target.ndim == 3 else target)
        expected = torch_loss(name, out, tgt)
        expected.backward()
        np.testing.assert_allclose(value[r], expected.item(), rtol=rtol, atol=atol)
        np.testing.assert_allclose(value_only[r], expected.item(), rtol=rtol, atol=atol)
        np.testing.assert_allclose(grad[r], out.grad.numpy(), rtol=rtol, atol=atol)


@pytest.mark.parametrize("name", ["mse", "half_mse", "bce_logits"])
@pytest.mark.parametrize("k", [1, 3])
@pytest.mark.parametrize("per_run_targets", [False, True], ids=["shared-targets", "per-run-targets"])
def test_elementwise_losses_match_torch(name, k, per_run_targets):
    rng = np.random.default_rng(k)
    logits = rng.normal(scale=2.0, size=(R, N, k))
    shape = (R, N, k) if per_run_targets else (N, k)
    target = rng.integers(0, 2, size=shape).astype(float) if name == "bce_logits" else rng.normal(size=shape)
    check_loss_against_torch(name, logits, target)


def test_half_mse_is_half_of_mse():
    rng = np.random.default_rng(1)
    logits, target = rng.normal(size=(R, N, 2)), rng.normal(size=(N, 2))
    mse, mse_grad = LOSSES["mse"].value_and_grad(logits, target)
    half, half_grad = LOSSES["half_mse"].value_and_grad(logits, target)
    np.testing.assert_allclose(half, 0.5 * mse, rtol=1e-15)
    np.testing.assert_allclose(half_grad, 0.5 * mse_grad, rtol=1e-15)


def test_bce_with_soft_targets_matches_torch():
    # BCEWithLogitsLoss accepts targets anywhere in [0, 1]; so does descentlab's formula.
    rng = np.random.default_rng(2)
    check_loss_against_torch("bce_logits", rng.normal(scale=3.0, size=(R, N, 2)), rng.uniform(size=(R, N, 2)))


def test_bce_extreme_logits_are_finite_silent_and_match_torch():
    # ±1e3: e^{1000} overflows a float64; both sides must use the log-sum-exp form. A confident wrong
    # answer costs |z| (softplus(1000) = 1000), a confident right one costs e^{-1000} = 0; the soft
    # target 0.3 at z = −40 costs softplus(−40) + 0.3·40 = 12.
    logits = np.array([[1e3, -1e3, 1e3, -1e3, 0.0, 40.0, -40.0]]).T[None].repeat(R, axis=0)
    logits[1] *= -1
    logits[2] *= 0.5
    target = np.array([[1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.3]]).T
    check_loss_against_torch("bce_logits", logits, target)
    value = LOSSES["bce_logits"].value(logits[:1], target)
    assert value[0] == pytest.approx((1e3 + 1e3 + math.log(2) + 40.0 + 0.3 * 40.0) / 7, rel=1e-14)


@pytest.mark.parametrize("k", [2, 4])
def test_softmax_ce_one_hot_equals_cross_entropy_with_class_indices(k):
    rng = np.random.default_rng(k)
    logits = rng.normal(scale=3.0, size=(R, N, k))
    for per_run in (False, True):
        classes = rng.integers(0, k, size=(R, N) if per_run else (N,))
        one_hot = np.eye(k)[classes]
        with strict():
            value, grad = LOSSES["softmax_ce"].value_and_grad(logits, one_hot)
        for r in range(R):
            out = as_torch(logits[r], grad=True)
            expected = F.cross_entropy(out, torch.as_tensor(classes[r] if per_run else classes))
            expected.backward()
            np.testing.assert_allclose(value[r], expected.item(), rtol=1e-13)
            np.testing.assert_allclose(grad[r], out.grad.numpy(), rtol=1e-13, atol=1e-16)


def test_softmax_ce_soft_targets_equal_cross_entropy_with_probabilities():
    rng = np.random.default_rng(3)
    logits = rng.normal(scale=3.0, size=(R, N, 3))
    soft = rng.dirichlet(np.ones(3), size=(R, N))
    check_loss_against_torch("softmax_ce", logits, soft)
    check_loss_against_torch("softmax_ce", logits, soft[0])  # shared targets
    # torch takes the cross-entropy formula at face value for rows that do not sum to 1; descentlab's
    # gradient softmax·Σy − y is the gradient of that same formula.
    check_loss_against_torch("softmax_ce", logits, 0.6 * soft)


def test_softmax_ce_extreme_logits_are_finite_and_match_torch():
    logits = np.array([[1e3, -1e3, 0.0], [-1e3, 1e3, 5e2], [0.0, 0.0, 0.0]])[None].repeat(R, axis=0)
    logits[1] *= -1
    classes = np.array([1, 0, 2])
    check_loss_against_torch("softmax_ce", logits, np.eye(3)[classes])


# --- activations -------------------------------------------------------------------------------------

TORCH_ACTIVATIONS = {
    "identity": lambda z: z,
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "relu": F.relu,
    "leaky_relu": F.leaky_relu,  # negative_slope 0.01 by default
    "softplus": F.softplus,  # beta 1, threshold 20
}


def test_every_activation_is_compared_with_torch():
    assert set(TORCH_ACTIVATIONS) == set(ACTIVATIONS)


def activation_against_torch(name, z):
    """(descentlab forward, torch forward, descentlab derivative·upstream, torch autograd) for inputs z."""
    act = ACTIVATIONS[name]
    upstream = np.random.default_rng(0).normal(size=z.shape)
    with strict():
        a = act.forward(z)
        grad = act.backward(z, a, upstream.copy())  # backward may overwrite its last argument
    zt = as_torch(z, grad=True)
    at = TORCH_ACTIVATIONS[name](zt)
    at.backward(as_torch(upstream))
    return a, at.detach().numpy(), grad, zt.grad.numpy()


ORDINARY = np.linspace(-6.0, 6.0, 4 * 25).reshape(4, 25)  # includes no exact 0; zero is tested alone


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activation_and_derivative_match_torch(name):
    a, at, grad, gt = activation_against_torch(name, ORDINARY)
    np.testing.assert_allclose(a, at, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(grad, gt, rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("name", ["relu", "leaky_relu"])
def test_derivative_at_zero_is_torchs(name):
    # torch: relu'(0) = 0 and leaky_relu'(0) = negative_slope (the "z > 0" branch is not taken).
    z = np.zeros((R, 2))
    a, at, grad, gt = activation_against_torch(name, z)
    np.testing.assert_array_equal(a, at)
    np.testing.assert_array_equal(grad, gt)


def test_leaky_relu_uses_torchs_default_slope():
    z = np.array([[-2.0, 3.0]])
    np.testing.assert_array_equal(ACTIVATIONS["leaky_relu"].forward(z), [[-0.02, 3.0]])
    assert torch.nn.LeakyReLU().negative_slope == 0.01


@pytest.mark.parametrize("name", ["tanh", "sigmoid", "relu", "leaky_relu", "identity"])
def test_activations_at_extreme_inputs_match_torch(name):
    z = np.array([[-1e3, -745.0, -50.0, -20.0, 20.0, 50.0, 745.0, 1e3]]).repeat(R, axis=0)
    a, at, grad, gt = activation_against_torch(name, z)
    assert np.all(np.isfinite(a)) and np.all(np.isfinite(grad))
    # atol: at z = −745 descentlab's σ(z) = e^z/(1 + e^z) is the subnormal 5e-324 (the true value
    # rounded), torch's 1/(1 + e^{745}) underflows to 0; both are right to float64 precision.
    np.testing.assert_allclose(a, at, rtol=1e-14, atol=1e-300)
    np.testing.assert_allclose(grad, gt, rtol=1e-12, atol=1e-300)


def test_softplus_matches_torch_within_its_threshold_linearisation():
    # torch returns z itself (derivative 1) when z > threshold = 20; descentlab keeps the exact
    # log(1 + e^z), which differs from z by log1p(e^{-z}) < 2.1e-9 there: a relative 1e-10.
    z = np.concatenate([np.linspace(-30, 30, 61), [-1e3, -745.0, 19.999, 20.0, 20.001, 100.0, 745.0, 1e3]])
    z = z[None].repeat(R, axis=0)
    a, at, grad, gt = activation_against_torch("softplus", z)
    assert np.all(np.isfinite(a)) and np.all(np.isfinite(grad))
    below = z <= 20.0
    np.testing.assert_allclose(a[below], at[below], rtol=1e-13, atol=1e-300)
    np.testing.assert_allclose(grad[below], gt[below], rtol=1e-13, atol=1e-300)
    above = ~below
    np.testing.assert_allclose(a[above], at[above], rtol=2e-10, atol=0)
    np.testing.assert_allclose(grad[above], gt[above], rtol=3e-9, atol=0)
    # The exact value, not torch's linearisation, is what descentlab computes above the threshold.
    np.testing.assert_allclose(a[0, z[0] == 20.001], 20.001 + math.log1p(math.exp(-20.001)), rtol=1e-15)


# --- the whole MLP -------------------------------------------------------------------------------------


def torch_mlp(model, params_row):
    """The same network in torch: Linear layers whose weight is W.T (torch stores (out, in))."""
    views = model.layout.unflatten(params_row[None])
    layers = []
    for i in range(1, model.n_layers + 1):
        w = views[f"W{i}"][0]
        linear = torch.nn.Linear(*w.shape, dtype=torch.float64)
        with torch.no_grad():
            linear.weight.copy_(as_torch(w.T))
            linear.bias.copy_(as_torch(views[f"b{i}"][0]))
        layers.append(linear)
    return layers


def torch_forward(layers, activation, x):
    act = TORCH_ACTIVATIONS[activation]
    for i, layer in enumerate(layers):
        x = layer(x)
        if i < len(layers) - 1:
            x = act(x)
    return x


def torch_mlp_loss(loss_name, output, target):
    if loss_name == "softmax_ce":  # one-hot targets -> class indices, PyTorch's usual form
        return F.cross_entropy(output, target.argmax(dim=-1))
    return torch_loss(loss_name, output, target)


def torch_loss_and_grad(model, params, inputs, targets, loss_name, activation):
    """(R,) losses and (R, P) gradients from torch autograd, one run at a time."""
    losses, grads = np.empty(params.shape[0]), np.empty_like(params)
    for r in range(params.shape[0]):
        layers = torch_mlp(model, params[r])
        x = as_torch(inputs[r] if inputs.ndim == 3 else inputs)
        t = as_torch(targets[r] if targets.ndim == 3 else targets)
        loss = torch_mlp_loss(loss_name, torch_forward(layers, activation, x), t)
        loss.backward()
        losses[r] = loss.item()
        tensors = {}
        for i, layer in enumerate(layers, start=1):
            tensors[f"W{i}"] = layer.weight.grad.numpy().T[None]
            tensors[f"b{i}"] = layer.bias.grad.numpy()[None]
        grads[r] = model.layout.flatten(tensors)[0]
    return losses, grads


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
@pytest.mark.parametrize("loss_name", sorted(LOSSES))
@pytest.mark.parametrize("minibatch", [False, True], ids=["shared-inputs", "per-run-inputs"])
def test_mlp_loss_and_every_gradient_match_torch_autograd(activation, loss_name, minibatch):
    rng = np.random.default_rng(zlib.crc32(f"{activation}-{loss_name}-{minibatch}".encode()))  # not hash(): salted
    k = 3 if loss_name == "softmax_ce" else (1 if minibatch else 2)  # k = 1: the outer-product branch
    model = MLP([3, 5, 4, k], activation=activation, loss=loss_name)
    params = model.init_params([11, 12, 13])
    params[:, model.layout.entry("b1").offset :] += rng.normal(
        scale=0.3, size=params.shape[1] - model.layout.entry("b1").offset
    )
    shape = (R, N, 3) if minibatch else (N, 3)
    inputs = rng.normal(size=shape)
    target_shape = shape[:-1] + (k,)
    if loss_name == "softmax_ce":
        targets = np.eye(k)[rng.integers(0, k, size=target_shape[:-1])]
    elif loss_name == "bce_logits":
        targets = rng.integers(0, 2, size=target_shape).astype(float)
    else:
        targets = rng.normal(size=target_shape)
    with strict():
        loss, grad = model.loss_and_grad(params, inputs, targets)
        value = model.loss_value(params, inputs, targets)
    expected_loss, expected_grad = torch_loss_and_grad(model, params, inputs, targets, loss_name, activation)
    np.testing.assert_allclose(loss, expected_loss, rtol=1e-12)
    np.testing.assert_allclose(value, expected_loss, rtol=1e-12)
    np.testing.assert_allclose(grad, expected_grad, rtol=1e-10, atol=1e-14)
    for r in range(R):  # the output logits, too
        x = as_torch(inputs[r] if minibatch else inputs)
        out = torch_forward(torch_mlp(model, params[r]), activation, x).detach().numpy()
        np.testing.assert_allclose(model.forward(params, inputs)[r], out, rtol=1e-12, atol=1e-14)


# --- initialisation ------------------------------------------------------------------------------------

FAN_IN, FAN_OUT = 400, 300


def torch_documented_scale(scheme, fan_in, fan_out):
    """torch.nn.init's documented bound / std (gain 1 for Xavier, calculate_gain('relu') for Kaiming)."""
    if scheme == "glorot_uniform":  # xavier_uniform_: a = gain · sqrt(6 / (fan_in + fan_out))
        return 1.0 * math.sqrt(6.0 / (fan_in + fan_out))
    if scheme == "glorot_normal":  # xavier_normal_: std = gain · sqrt(2 / (fan_in + fan_out))
        return 1.0 * math.sqrt(2.0 / (fan_in + fan_out))
    gain = torch.nn.init.calculate_gain("relu")
    if scheme == "he_uniform":  # kaiming_uniform_, mode fan_in: bound = gain · sqrt(3 / fan_in)
        return gain * math.sqrt(3.0 / fan_in)
    if scheme == "he_normal":  # kaiming_normal_, mode fan_in: std = gain / sqrt(fan_in)
        return gain / math.sqrt(fan_in)
    raise KeyError(scheme)


def torch_init(scheme, tensor):
    init = torch.nn.init
    return {
        "glorot_uniform": lambda t: init.xavier_uniform_(t),
        "glorot_normal": lambda t: init.xavier_normal_(t),
        "he_uniform": lambda t: init.kaiming_uniform_(t, nonlinearity="relu"),
        "he_normal": lambda t: init.kaiming_normal_(t, nonlinearity="relu"),
    }[scheme](tensor)


SCHEMES = ["glorot_uniform", "glorot_normal", "he_uniform", "he_normal"]


@pytest.mark.parametrize("scheme", SCHEMES)
def test_init_scale_equals_torch_documented_formula(scheme):
    assert torch.nn.init.calculate_gain("relu") == pytest.approx(math.sqrt(2.0), rel=1e-15)
    for fan_in, fan_out in ((FAN_IN, FAN_OUT), (3, 7), (1, 1)):
        distribution, scale = init_scale(scheme, fan_in, fan_out)
        assert distribution == scheme.split("_")[1]
        assert scale == pytest.approx(torch_documented_scale(scheme, fan_in, fan_out), rel=1e-15)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_init_empirical_variance_equals_torchs(scheme):
    # One large layer each: descentlab's W (fan_in, fan_out) and torch's weight (fan_out, fan_in).
    model = MLP([FAN_IN, FAN_OUT, 1], activation="relu", init=scheme)
    ours = model.layout.view(model.init_params([0]), "W1")[0].ravel()
    generator_state = torch.random.get_rng_state()
    try:
        torch.manual_seed(0)
        theirs = torch_init(scheme, torch.empty(FAN_OUT, FAN_IN, dtype=torch.float64)).numpy().ravel()
    finally:
        torch.random.set_rng_state(generator_state)
    scale = torch_documented_scale(scheme, FAN_IN, FAN_OUT)
    variance = scale**2 / 3.0 if scheme.endswith("uniform") else scale**2
    kurtosis = 1.8 if scheme.endswith("uniform") else 3.0
    tolerance = 5 * math.sqrt((kurtosis - 1.0) / ours.size)  # 5 standard errors of a sample variance
    assert abs(ours.var() / variance - 1.0) < tolerance
    assert abs(theirs.var() / variance - 1.0) < tolerance
    assert abs(ours.var() / theirs.var() - 1.0) < 2 * tolerance
    if scheme.endswith("uniform"):
        for w in (ours, theirs):
            assert scale * 0.999 < np.abs(w).max() <= scale


# --- descent rules vs torch.optim: the gaps of test_rules.py -------------------------------------------

STEPS, P = 25, 6


@pytest.fixture(scope="module")
def rules():
    registry = load_registry(entry_points=False, use_env=False)
    assert registry.errors == []
    return registry.rules


def dense_quadratic(seed=0):
    """J(θ) = ½ θᵀAθ − bᵀθ with a dense, well-conditioned A: gradients mix coordinates."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(P, P)))
    a = q @ np.diag(rng.uniform(0.3, 3.0, P)) @ q.T
    return a, rng.normal(size=P), rng.normal(size=P)


def descentlab_path(rule, rows, learning_rates, a, b, start):
    """(STEPS+1, R, P) trajectory of all rows at once, gradients A θ − b."""
    hyper = {h.name: np.array([[float(row.get(h.name, h.default))] for row in rows]) for h in rule.hyperparams}
    params = np.tile(start, (len(rows), 1))
    alpha = np.asarray(learning_rates, dtype=float)[:, None]
    state = rule.init(params, hyper)
    path = [params.copy()]
    for t in range(STEPS):
        updates, state = rule.update(params @ a - b, state, params, alpha, hyper, t)  # A symmetric
        params = params + updates
        path.append(params.copy())
    return np.array(path)


def torch_path(optimizer, kwargs, lr, a, b, start, after_init=None):
    theta = as_torch(start, grad=True)
    opt = getattr(torch.optim, optimizer)([theta], lr=lr, foreach=False, **kwargs)
    if after_init:
        after_init(opt)
    at, bt = as_torch(a), as_torch(b)
    path = [theta.detach().numpy().copy()]
    for _ in range(STEPS):
        opt.zero_grad()
        (0.5 * theta @ at @ theta - bt @ theta).backward()
        opt.step()
        path.append(theta.detach().numpy().copy())
    return np.array(path)


# Each case: descentlab rule, torch optimizer, rows of (descentlab hyper, torch kwargs, α).
RULE_ROWS = {
    "gd-weight_decay": (
        "gd",
        "SGD",
        [
            ({}, {}, 0.1),
            ({"weight_decay": 0.3}, {"weight_decay": 0.3}, 0.2),
            ({"weight_decay": 0.05}, {"weight_decay": 0.05}, 0.05),
        ],
    ),
    "momentum-mixed-nesterov-dampening-decay": (
        "momentum",
        "SGD",
        [
            ({"momentum": 0.9}, {"momentum": 0.9}, 0.05),
            (
                {"momentum": 0.7, "nesterov": True, "weight_decay": 0.1},
                {"momentum": 0.7, "nesterov": True, "weight_decay": 0.1},
                0.1,
            ),
            (
                {"momentum": 0.5, "dampening": 0.4, "weight_decay": 0.2},
                {"momentum": 0.5, "dampening": 0.4, "weight_decay": 0.2},
                0.2,
            ),
            ({"momentum": 0.8, "nesterov": True}, {"momentum": 0.8, "nesterov": True}, 0.03),
        ],
    ),
    # torch.optim.SGD keeps no buffer at momentum = 0, so its dampening changes nothing there: plain SGD
    # (rows with μ = 0 and d > 0 stacked with rows where the dampening acts)
    "momentum-zero-momentum-ignores-dampening": (
        "momentum",
        "SGD",
        [
            ({"momentum": 0.0, "dampening": 0.5}, {"momentum": 0.0, "dampening": 0.5}, 0.1),
            ({"momentum": 0.6, "dampening": 0.5}, {"momentum": 0.6, "dampening": 0.5}, 0.1),
            (
                {"momentum": 0.0, "dampening": 0.9, "weight_decay": 0.1},
                {"momentum": 0.0, "dampening": 0.9, "weight_decay": 0.1},
                0.2,
            ),
        ],
    ),
    "nesterov-weight_decay": (
        "nesterov",
        "SGD",
        [
            ({"momentum": 0.9, "weight_decay": 0.2}, {"momentum": 0.9, "nesterov": True, "weight_decay": 0.2}, 0.05),
            ({"momentum": 0.5}, {"momentum": 0.5, "nesterov": True}, 0.2),
            (
                {"momentum": 0.95, "weight_decay": 0.01},
                {"momentum": 0.95, "nesterov": True, "weight_decay": 0.01},
                0.02,
            ),
        ],
    ),
    "adagrad-all-options": (
        "adagrad",
        "Adagrad",
        [
            ({}, {}, 0.3),
            (
                {"lr_decay": 0.2, "initial_accumulator_value": 0.5, "weight_decay": 0.1},
                {"lr_decay": 0.2, "initial_accumulator_value": 0.5, "weight_decay": 0.1},
                0.5,
            ),
            ({"eps": 1e-2, "weight_decay": 0.3}, {"eps": 1e-2, "weight_decay": 0.3}, 0.2),
            (
                {"lr_decay": 0.05, "initial_accumulator_value": 2.0},
                {"lr_decay": 0.05, "initial_accumulator_value": 2.0},
                1.0,
            ),
        ],
    ),
    "rmsprop-centered-momentum-decay": (
        "rmsprop",
        "RMSprop",
        [
            ({}, {}, 0.01),
            (
                {"centered": True, "momentum": 0.9, "alpha": 0.9},
                {"centered": True, "momentum": 0.9, "alpha": 0.9},
                0.005,
            ),
            ({"centered": True, "weight_decay": 0.2}, {"centered": True, "weight_decay": 0.2}, 0.02),
            (
                {"momentum": 0.5, "weight_decay": 0.1, "eps": 1e-3},
                {"momentum": 0.5, "weight_decay": 0.1, "eps": 1e-3},
                0.01,
            ),
        ],
    ),
    "adam-decay-mixed-amsgrad": (
        "adam",
        "Adam",
        [
            ({}, {}, 0.05),
            ({"weight_decay": 0.2}, {"weight_decay": 0.2}, 0.1),
            ({"amsgrad": True, "beta1": 0.5, "beta2": 0.9}, {"amsgrad": True, "betas": (0.5, 0.9)}, 0.05),
            (
                {"eps": 1e-2, "beta2": 0.99, "weight_decay": 0.05},
                {"eps": 1e-2, "betas": (0.9, 0.99), "weight_decay": 0.05},
                0.2,
            ),
        ],
    ),
    "adamw-amsgrad": (
        "adamw",
        "AdamW",
        [
            ({"amsgrad": True}, {"amsgrad": True}, 0.05),
            (
                {"amsgrad": True, "weight_decay": 0.5, "beta1": 0.8},
                {"amsgrad": True, "weight_decay": 0.5, "betas": (0.8, 0.999)},
                0.1,
            ),
            ({"weight_decay": 0.0}, {"weight_decay": 0.0}, 0.05),
            ({"weight_decay": 1.0, "eps": 1e-3}, {"weight_decay": 1.0, "eps": 1e-3}, 0.02),
        ],
    ),
}


@pytest.mark.parametrize("case", sorted(RULE_ROWS))
def test_rule_batch_of_rows_matches_torch_optim_for_each_row(rules, case):
    name, optimizer, rows = RULE_ROWS[case]
    a, b, start = dense_quadratic()
    ours = descentlab_path(rules[name], [row for row, _, _ in rows], [lr for _, _, lr in rows], a, b, start)
    for r, (_, kwargs, lr) in enumerate(rows):
        expected = torch_path(optimizer, kwargs, lr, a, b, start)
        np.testing.assert_allclose(ours[:, r], expected, rtol=1e-10, atol=1e-12, err_msg=f"row {r}")


def test_every_rule_with_weight_decay_is_compared_with_torch(rules):
    # compared with weight decay in test_rules_more.py, test_rules_new.py and test_rules_muon.py (tests/plugins)
    from descentlab.plugins import rules_more, rules_muon, rules_new

    others = {rule.name for rule in rules_more.RULES + rules_new.RULES + rules_muon.RULES}
    with_decay = {
        name
        for name, rule in rules.items()
        if name not in others and any(h.name == "weight_decay" for h in rule.hyperparams)
    }
    compared = {RULE_ROWS[c][0] for c in RULE_ROWS if any(row.get("weight_decay") for row, _, _ in RULE_ROWS[c][2])}
    assert with_decay <= compared


def test_nesterov_with_dampening_follows_torchs_sgd_algorithm(rules):
    # torch.optim.SGD refuses nesterov with dampening at construction ("Nesterov momentum requires a
    # momentum and zero dampening"); descentlab allows it. Its update rule is still torch's algorithm:
    # set the dampening after construction and torch's SGD step runs the formula as documented.
    a, b, start = dense_quadratic(1)
    rows = [
        {"momentum": 0.8, "nesterov": True, "dampening": 0.3},
        {"momentum": 0.6, "nesterov": True, "dampening": 0.6, "weight_decay": 0.1},
    ]
    ours = descentlab_path(rules["momentum"], rows, [0.05, 0.1], a, b, start)
    with pytest.raises(ValueError):
        torch.optim.SGD([as_torch(start, grad=True)], lr=0.1, momentum=0.8, dampening=0.3, nesterov=True)
    for r, (row, lr) in enumerate(zip(rows, [0.05, 0.1])):

        def set_dampening(opt, d=row["dampening"]):
            opt.param_groups[0]["dampening"] = d

        expected = torch_path(
            "SGD",
            {"momentum": row["momentum"], "nesterov": True, "weight_decay": row.get("weight_decay", 0.0)},
            lr,
            a,
            b,
            start,
            after_init=set_dampening,
        )
        np.testing.assert_allclose(ours[:, r], expected, rtol=1e-10, atol=1e-12)


def test_rules_on_an_mlp_gradient_sequence_match_torch_optim(rules):
    # The full pipeline on a network: descentlab backprop + rule vs torch autograd + torch.optim.
    rng = np.random.default_rng(5)
    model = MLP([2, 6, 1], activation="tanh", loss="mse")
    inputs, targets = rng.normal(size=(16, 2)), rng.normal(size=(16, 1))
    cases = [
        ("adam", {"amsgrad": True, "weight_decay": 0.01}, "Adam", {"amsgrad": True, "weight_decay": 0.01}),
        ("momentum", {"momentum": 0.9, "nesterov": True}, "SGD", {"momentum": 0.9, "nesterov": True}),
        ("rmsprop", {"centered": True, "momentum": 0.3}, "RMSprop", {"centered": True, "momentum": 0.3}),
    ]
    lrs = [0.02, 0.05, 0.005]
    for (name, row, optimizer, kwargs), lr in zip(cases, lrs):
        rule = rules[name]
        params = model.init_params([0, 1])
        hyper = {h.name: np.array([[float(row.get(h.name, h.default))]] * 2) for h in rule.hyperparams}
        state = rule.init(params, hyper)
        layers = [torch_mlp(model, params[r]) for r in range(2)]
        opts = [
            getattr(torch.optim, optimizer)(
                [p for layer in ls for p in layer.parameters()], lr=lr, foreach=False, **kwargs
            )
            for ls in layers
        ]
        for t in range(STEPS):
            _, grad = model.loss_and_grad(params, inputs, targets)
            updates, state = rule.update(grad, state, params, np.full((2, 1), lr), hyper, t)
            params = params + updates
            for ls, opt in zip(layers, opts):
                opt.zero_grad()
                F.mse_loss(torch_forward(ls, "tanh", as_torch(inputs)), as_torch(targets)).backward()
                opt.step()
        for r in range(2):
            tensors = {}
            for i, layer in enumerate(layers[r], start=1):
                tensors[f"W{i}"] = layer.weight.detach().numpy().T[None]
                tensors[f"b{i}"] = layer.bias.detach().numpy()[None]
            np.testing.assert_allclose(params[r], model.layout.flatten(tensors)[0], rtol=1e-9, atol=1e-12, err_msg=name)


TORCH_OPTIMIZER = {
    "gd": "SGD",
    "momentum": "SGD",
    "nesterov": "SGD",
    "adagrad": "Adagrad",
    "rmsprop": "RMSprop",
    "adam": "Adam",
    "adamw": "AdamW",
}


@pytest.mark.parametrize("name", sorted(TORCH_OPTIMIZER))
def test_default_hyperparameters_are_torchs(rules, name):
    # Same names, same defaults: a run with a rule's defaults is the torch optimizer's default run.
    # The one deliberate exception: the momentum rules default to μ = 0.9 (torch's SGD: 0, which
    # is descentlab's "gd"). Learning rates: the adaptive rules' defaults are torch's too.
    defaults = getattr(torch.optim, TORCH_OPTIMIZER[name])([torch.zeros(1, requires_grad=True)]).defaults
    for h in rules[name].hyperparams:
        if h.name == "momentum" and name in ("momentum", "nesterov"):
            assert h.default == 0.9
            continue
        expected = defaults["betas"][int(h.name[-1]) - 1] if h.name in ("beta1", "beta2") else defaults[h.name]
        assert h.default == expected, h.name
    if name in ("adagrad", "rmsprop", "adam", "adamw"):
        assert rules[name].default_learning_rate == defaults["lr"]
