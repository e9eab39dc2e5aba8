"""Built-in descent rules against their published update formulas, written out here in plain Python."""

import math

import numpy as np
import pytest

from descentlab.registry import load_registry

# The quadratic J(θ) = ½ θᵀ A θ with A = diag(1, 4): the gradient is (θ₁, 4θ₂).
A = (1.0, 4.0)
THETA0 = (1.0, -0.5)


@pytest.fixture(scope="module")
def rules():
    registry = load_registry(entry_points=False, use_env=False)
    assert registry.errors == []
    return registry.rules


def hyper_arrays(rule, rows):
    """Declared hyperparameters as (R, 1) float arrays, one row per run (defaults filled in)."""
    return {h.name: np.array([[float(row.get(h.name, h.default))] for row in rows]) for h in rule.hyperparams}


def run_rule(rule, rows, learning_rates, steps=3, curvature=A, start=THETA0):
    """Trajectory (steps+1, R, P) of the implementation on the quadratic; checks grad/params stay untouched."""
    hyper = hyper_arrays(rule, rows)
    params = np.tile(np.asarray(start, dtype=float), (len(rows), 1))
    rates = np.asarray(learning_rates, dtype=float).reshape(len(rows), -1)
    state = rule.init(params, hyper)
    path = [params.copy()]
    for t in range(steps):
        grad = np.asarray(curvature) * params
        grad_before, params_before = grad.copy(), params.copy()
        alpha = rates[:, min(t, rates.shape[1] - 1)][:, None]
        updates, state = rule.update(grad, state, params, alpha, hyper, t)
        np.testing.assert_array_equal(grad, grad_before)
        np.testing.assert_array_equal(params, params_before)
        assert updates.shape == params.shape
        params = params + updates
        path.append(params.copy())
    return np.array(path)


# --- plain-Python references, one coordinate at a time (the gradient of coordinate i is a_i θ_i) -------


def ref_gd(theta, a, lr, steps=3, weight_decay=0.0):
    path = [theta]
    for _ in range(steps):
        g = a * theta + weight_decay * theta
        theta = theta - lr * g
        path.append(theta)
    return path


def ref_torch_sgd(theta, a, lr, steps=3, momentum=0.0, dampening=0.0, nesterov=False, weight_decay=0.0):
    """torch.optim.SGD's documented algorithm."""
    path, buf = [theta], None
    for _ in range(steps):
        g = a * theta
        if weight_decay:
            g = g + weight_decay * theta
        if momentum:
            buf = g if buf is None else momentum * buf + (1 - dampening) * g
            g = g + momentum * buf if nesterov else buf
        theta = theta - lr * g
        path.append(theta)
    return path


def ref_classical(theta, a, lrs, steps=3, momentum=0.9):
    path, v = [theta], 0.0
    for t in range(steps):
        v = momentum * v + lrs[t] * a * theta
        theta = theta - v
        path.append(theta)
    return path


def ref_adagrad(theta, a, lr, steps=3, lr_decay=0.0, eps=1e-10, initial_accumulator_value=0.0, weight_decay=0.0):
    """torch.optim.Adagrad's documented algorithm (t counts from 1)."""
    path, s = [theta], initial_accumulator_value
    for t in range(1, steps + 1):
        g = a * theta + weight_decay * theta
        clr = lr / (1 + (t - 1) * lr_decay)
        s = s + g * g
        theta = theta - clr * g / (math.sqrt(s) + eps)
        path.append(theta)
    return path


def ref_rmsprop(theta, a, lr, steps=3, alpha=0.99, eps=1e-8, centered=False, momentum=0.0, weight_decay=0.0):
    """torch.optim.RMSprop's documented algorithm."""
    path, v, g_ave, b = [theta], 0.0, 0.0, 0.0
    for _ in range(steps):
        g = a * theta + weight_decay * theta
        v = alpha * v + (1 - alpha) * g * g
        v_tilde = v
        if centered:
            g_ave = alpha * g_ave + (1 - alpha) * g
            v_tilde = v - g_ave * g_ave
        if momentum > 0:
            b = momentum * b + g / (math.sqrt(v_tilde) + eps)
            theta = theta - lr * b
        else:
            theta = theta - lr * g / (math.sqrt(v_tilde) + eps)
        path.append(theta)
    return path


def ref_adam(
    theta,
    a,
    lr,
    steps=3,
    beta1=0.9,
    beta2=0.999,
    eps=1e-8,
    amsgrad=False,
    weight_decay=0.0,
    decoupled=False,
    grads=None,
):
    """torch.optim.Adam / AdamW as implemented (amsgrad keeps the max of the raw v, then bias-corrects)."""
    path, m, v, v_max = [theta], 0.0, 0.0, 0.0
    for t in range(1, steps + 1):
        g = a * theta if grads is None else grads[t - 1]
        if decoupled:
            theta = theta - lr * weight_decay * theta
        elif weight_decay:
            g = g + weight_decay * theta
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        if amsgrad:
            v_max = max(v_max, v)
            second = v_max
        else:
            second = v
        denom = math.sqrt(second) / math.sqrt(1 - beta2**t) + eps
        theta = theta - lr / (1 - beta1**t) * m / denom
        path.append(theta)
    return path


def reference(fn, lrs, rows, steps=3, **fixed):
    """(steps+1, R, 2) trajectories of a scalar reference, per run row and coordinate."""
    out = np.empty((steps + 1, len(rows), 2))
    for r, row in enumerate(rows):
        for i in range(2):
            out[:, r, i] = fn(THETA0[i], A[i], lrs[r], steps, **row, **fixed)
    return out


# --- first three steps against hand-computed numbers ---------------------------------------------


def test_gd_three_steps_by_hand(rules):
    # α = 0.1: θ₁ ← 0.9 θ₁ and θ₂ ← (1 − 0.4) θ₂ = 0.6 θ₂ each step.
    path = run_rule(rules["gd"], [{}, {"weight_decay": 1.0}], [0.1, 0.1])
    np.testing.assert_allclose(path[:, 0], [[1, -0.5], [0.9, -0.3], [0.81, -0.18], [0.729, -0.108]], rtol=1e-14)
    # λ = 1 adds θ to the gradient: factors 0.8 and 0.5.
    np.testing.assert_allclose(path[:, 1], [[1, -0.5], [0.8, -0.25], [0.64, -0.125], [0.512, -0.0625]], rtol=1e-14)


def test_momentum_three_steps_by_hand(rules):
    # μ = 0.5, α = 0.1, first coordinate (a = 1): v₁ = g₀ = 1 → θ = 0.9; g₁ = 0.9, v₂ = 0.5 + 0.9 = 1.4
    # → θ = 0.76; g₂ = 0.76, v₃ = 0.7 + 0.76 = 1.46 → θ = 0.614.
    path = run_rule(rules["momentum"], [{"momentum": 0.5}], [0.1])
    np.testing.assert_allclose(path[:, 0, 0], [1.0, 0.9, 0.76, 0.614], rtol=1e-14)


def test_adam_first_step_is_learning_rate_times_sign(rules):
    # Bias correction makes the first step m̂/√v̂ = g/|g|: θ moves by α against the gradient's sign.
    path = run_rule(rules["adam"], [{}], [0.01], steps=1)
    np.testing.assert_allclose(path[1, 0], [1.0 - 0.01, -0.5 + 0.01], rtol=1e-7)


# --- first three steps against the published formulas, two runs with different hyperparameters -----

CASES = [
    ("gd", ref_gd, [{}, {"weight_decay": 0.3}], [0.1, 0.05]),
    (
        "momentum",
        ref_torch_sgd,
        [{"momentum": 0.9}, {"momentum": 0.5, "dampening": 0.3, "weight_decay": 0.1}],
        [0.1, 0.2],
    ),
    (
        "momentum",
        ref_torch_sgd,
        [{"momentum": 0.9, "nesterov": True}, {"momentum": 0.7, "weight_decay": 0.2}],
        [0.05, 0.1],
    ),
    ("nesterov", ref_torch_sgd, [{"momentum": 0.9}, {"momentum": 0.6, "weight_decay": 0.1}], [0.05, 0.1]),
    (
        "adagrad",
        ref_adagrad,
        [{}, {"lr_decay": 0.5, "eps": 1e-3, "initial_accumulator_value": 0.2, "weight_decay": 0.1}],
        [0.1, 0.3],
    ),
    (
        "rmsprop",
        ref_rmsprop,
        [{}, {"alpha": 0.9, "eps": 1e-3, "centered": True, "momentum": 0.5, "weight_decay": 0.1}],
        [0.01, 0.05],
    ),
    ("rmsprop", ref_rmsprop, [{"centered": True}, {"momentum": 0.9}], [0.01, 0.02]),
    (
        "adam",
        ref_adam,
        [{}, {"beta1": 0.5, "beta2": 0.9, "eps": 1e-3, "amsgrad": True, "weight_decay": 0.1}],
        [0.01, 0.1],
    ),
    ("adamw", ref_adam, [{}, {"beta1": 0.8, "beta2": 0.99, "amsgrad": True, "weight_decay": 0.5}], [0.01, 0.1]),
]


@pytest.mark.parametrize("name, fn, rows, lrs", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_first_three_steps_match_published_formula(rules, name, fn, rows, lrs):
    rule = rules[name]
    declared = {h.name: h.default for h in rule.hyperparams}
    ref_rows = []
    for row in rows:
        full = dict(declared, **row)
        if name == "nesterov":
            full.update(nesterov=True)
        if name == "adamw":
            full.update(decoupled=True)
        ref_rows.append(full)
    expected = reference(fn, lrs, ref_rows)
    np.testing.assert_allclose(run_rule(rule, rows, lrs), expected, rtol=1e-12, atol=1e-15)


def test_classical_momentum_three_steps(rules):
    rows, lrs = [{"momentum": 0.9}, {"momentum": 0.5}], [[0.1, 0.05, 0.02], [0.2, 0.2, 0.2]]
    expected = np.empty((4, 2, 2))
    for r in range(2):
        for i in range(2):
            expected[:, r, i] = ref_classical(THETA0[i], A[i], lrs[r], 3, **rows[r])
    np.testing.assert_allclose(run_rule(rules["classical_momentum"], rows, lrs), expected, rtol=1e-13)


def test_every_builtin_rule_has_a_three_step_test(rules):
    # their steps by hand: test_rules_more.py, test_rules_new.py, test_rules_muon.py
    from descentlab.plugins import rules_more, rules_muon, rules_new

    tested = (
        {case[0] for case in CASES}
        | {"classical_momentum"}
        | {rule.name for rule in rules_more.RULES}
        | {rule.name for rule in rules_new.RULES}
        | {rule.name for rule in rules_muon.RULES}
    )
    assert tested == set(rules)


# --- PyTorch conventions -------------------------------------------------------------------------


def test_momentum_buffer_starts_at_the_first_gradient_even_with_dampening(rules):
    # PyTorch sets buf = g on the first step (no (1 − d) factor): the first step equals plain GD.
    path = run_rule(rules["momentum"], [{"momentum": 0.9, "dampening": 0.5}], [0.1], steps=1)
    np.testing.assert_allclose(path[1, 0], [0.9, -0.3], rtol=1e-15)


def test_nesterov_first_step_is_one_plus_mu_times_gradient(rules):
    # v₁ = g, step g + μv = (1 + μ) g.
    for name, row in (("nesterov", {"momentum": 0.5}), ("momentum", {"momentum": 0.5, "nesterov": True})):
        path = run_rule(rules[name], [row], [0.1], steps=1)
        np.testing.assert_allclose(path[1, 0], [1 - 0.15, -0.5 + 0.3], rtol=1e-15)


def _adam_step_on(rule, grads, hyper_row, lr=0.1, params=None):
    """Apply a rule to a given gradient sequence (no objective needed), one run, one coordinate."""
    hyper = hyper_arrays(rule, [hyper_row])
    p = np.array([[1.0]]) if params is None else np.array([[params]])
    state = rule.init(p, hyper)
    out = [p[0, 0]]
    for t, g in enumerate(grads):
        upd, state = rule.update(np.array([[g]]), state, p, np.array([[lr]]), hyper, t)
        p = p + upd
        out.append(p[0, 0])
    return out


def test_amsgrad_divides_by_the_running_maximum(rules):
    # A large gradient then small ones: v decays, v_max keeps the peak, so AMSGrad's steps are smaller.
    grads = [10.0, 0.1, 0.1, 0.1]
    plain = _adam_step_on(rules["adam"], grads, {})
    ams = _adam_step_on(rules["adam"], grads, {"amsgrad": True})
    np.testing.assert_allclose(ams, ref_adam(1.0, 0.0, 0.1, 4, amsgrad=True, grads=grads), rtol=1e-13)
    np.testing.assert_allclose(plain, ref_adam(1.0, 0.0, 0.1, 4, grads=grads), rtol=1e-13)
    assert abs(ams[-1] - ams[-2]) < abs(plain[-1] - plain[-2])


def test_adamw_decay_is_decoupled_and_adam_decay_is_l2(rules):
    # With a zero gradient AdamW still shrinks θ by αλθ; Adam's L2 decay goes through the moments.
    adamw = _adam_step_on(rules["adamw"], [0.0], {"weight_decay": 0.5}, lr=0.1, params=2.0)
    assert adamw[1] == pytest.approx(2.0 - 0.1 * 0.5 * 2.0, rel=1e-15)
    adam = _adam_step_on(rules["adam"], [0.0], {"weight_decay": 0.5}, lr=0.1, params=2.0)
    assert adam[1] == pytest.approx(2.0 - 0.1, rel=1e-7)  # first Adam step: α·sign(λθ)


# --- the run axis: a batch of different hyperparameters equals separate runs ---------------------

GRID_ROWS = {
    "gd": [{}, {"weight_decay": 0.1}, {"weight_decay": 0.01}],
    "momentum": [{"momentum": 0.9}, {"momentum": 0.5, "nesterov": True}, {"dampening": 0.3, "weight_decay": 0.1}],
    "nesterov": [{"momentum": 0.9}, {"momentum": 0.3, "weight_decay": 0.05}, {}],
    "classical_momentum": [{"momentum": 0.9}, {"momentum": 0.1}, {}],
    "adagrad": [{}, {"lr_decay": 0.1, "initial_accumulator_value": 0.5}, {"eps": 1e-3, "weight_decay": 0.1}],
    "rmsprop": [{}, {"centered": True, "alpha": 0.9}, {"momentum": 0.8, "weight_decay": 0.1}],
    "adam": [{}, {"amsgrad": True, "beta1": 0.5}, {"weight_decay": 0.1, "beta2": 0.9}],
    "adamw": [{}, {"amsgrad": True, "weight_decay": 0.0}, {"weight_decay": 0.3, "eps": 1e-4}],
}


@pytest.mark.parametrize("name", sorted(GRID_ROWS))
def test_batch_of_a_grid_equals_separate_runs(rules, name):
    rule, rows = rules[name], GRID_ROWS[name]
    rng = np.random.default_rng(0)
    curvature = rng.uniform(0.5, 5.0, size=6)
    start = rng.normal(size=6)
    lrs = [0.01, 0.03, 0.02]
    together = run_rule(rule, rows, lrs, steps=6, curvature=curvature, start=start)
    for r, row in enumerate(rows):
        alone = run_rule(rule, [row], [lrs[r]], steps=6, curvature=curvature, start=start)
        np.testing.assert_allclose(together[:, r], alone[:, 0], rtol=1e-15, atol=0)


# --- convergence on an ill-conditioned bowl --------------------------------------------------------

CONVERGENCE = [
    ("gd", {}, 0.015, None),
    ("momentum", {"momentum": 0.9}, 0.01, None),
    ("nesterov", {"momentum": 0.9}, 0.01, None),
    ("classical_momentum", {"momentum": 0.9}, 0.01, None),
    ("adagrad", {}, 0.5, None),
    ("rmsprop", {}, 0.01, 0.995),
    ("adam", {}, 0.05, 0.995),
    ("adamw", {"weight_decay": 0.0}, 0.05, 0.995),
]


@pytest.mark.parametrize("name, row, lr, decay", CONVERGENCE, ids=[c[0] for c in CONVERGENCE])
def test_converges_on_ill_conditioned_bowl(rules, name, row, lr, decay):
    # κ = 100. Adaptive rules hover at a scale set by α, so they get an exponentially decaying α.
    curvature, steps = (1.0, 100.0), 2000
    lrs = [lr * (decay ** np.arange(steps) if decay else np.ones(steps))]
    path = run_rule(rules[name], [row], lrs, steps=steps, curvature=curvature, start=(1.0, 1.0))
    loss = 0.5 * (np.asarray(curvature) * path[:, 0] ** 2).sum(axis=1)
    assert loss[-1] < 1e-8 * loss[0]


# --- stability thresholds on a quadratic ------------------------------------------------------------

THRESHOLD_CASES = [
    ("gd", {}, 2.0),
    ("momentum", {"momentum": 0.9}, 2 + 2 * 0.9),
    ("momentum", {"momentum": 0.5, "dampening": 0.5}, (2 + 2 * 0.5) / (1 - 0.5)),
    ("momentum", {"momentum": 0.8, "nesterov": True}, (2 + 2 * 0.8) / (1 + 2 * 0.8)),
    # μ = 0: torch's SGD keeps no buffer and ignores the dampening, so the edge is GD's α·λ < 2
    ("momentum", {"momentum": 0.0, "dampening": 0.5}, 2.0),
    ("nesterov", {"momentum": 0.9}, (2 + 2 * 0.9) / (1 + 2 * 0.9)),
    ("classical_momentum", {"momentum": 0.9}, 2 + 2 * 0.9),
]


@pytest.mark.parametrize(
    "name, row, expected", THRESHOLD_CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(THRESHOLD_CASES)]
)
def test_stability_threshold_brackets_divergence(rules, name, row, expected):
    rule = rules[name]
    hyper = hyper_arrays(rule, [row])
    threshold = np.broadcast_to(rule.stability_threshold(hyper), (1, 1))[0, 0]
    assert threshold == pytest.approx(expected, rel=1e-14)
    # The same threshold from scalar hyperparameters (what the theory module passes).
    scalar = rule.stability_threshold({k: float(v[0, 0]) for k, v in hyper.items()})
    assert float(scalar) == pytest.approx(expected, rel=1e-14)
    # J = ½λθ²: α 3% below c/λ stays bounded and shrinks, 3% above blows up.
    lam, steps = 3.0, 3000
    below, above = 0.97 * threshold / lam, 1.03 * threshold / lam
    with np.errstate(over="ignore", invalid="ignore"):
        path = run_rule(rule, [row, row], [below, above], steps=steps, curvature=(lam,), start=(1.0,))
    assert np.all(np.abs(path[:, 0, 0]) < 50) and abs(path[-1, 0, 0]) < 1e-3
    assert not abs(path[-1, 1, 0]) < 1e6


def test_dampened_heavy_ball_threshold_matches_iteration_matrix():
    # Independent check of (2 + 2μ)/(1 − d): bisect the spectral radius of the linear map
    # (x, αv) ↦ (x − a(1−d)x − μαv, μαv + a(1−d)x) with a = αλ (PyTorch heavy ball after step one).
    for mu, d in ((0.9, 0.0), (0.5, 0.5), (0.3, 0.8)):

        def radius(a):
            m = np.array([[1 - a * (1 - d), -mu], [a * (1 - d), mu]])
            return max(abs(np.linalg.eigvals(m)))

        low, high = 1e-6, 100.0
        for _ in range(200):
            mid = 0.5 * (low + high)
            low, high = (mid, high) if radius(mid) < 1 else (low, mid)
        assert low == pytest.approx((2 + 2 * mu) / (1 - d), rel=1e-6)


def test_nesterov_threshold_matches_iteration_matrix():
    # PyTorch Nesterov with dampening d: v' = μv + (1−d)λx; x' = x − α(λx + μv').
    for mu, d in ((0.9, 0.0), (0.5, 0.3), (0.2, 0.0)):

        def radius(a):
            m = np.array([[1 - a - mu * (1 - d) * a, -mu * mu], [(1 - d) * a, mu]])
            return max(abs(np.linalg.eigvals(m)))

        low, high = 1e-6, 50.0
        for _ in range(200):
            mid = 0.5 * (low + high)
            low, high = (mid, high) if radius(mid) < 1 else (low, mid)
        from descentlab.plugins.rules import momentum_threshold

        assert low == pytest.approx(momentum_threshold({"momentum": mu, "dampening": d, "nesterov": 1.0}), rel=1e-6)


def test_adaptive_rules_say_why_they_have_no_threshold(rules):
    for name in ("adagrad", "rmsprop", "adam", "adamw"):
        assert rules[name].stability_threshold is None
        assert "adaptive" in rules[name].threshold_note


# --- classical momentum vs PyTorch's convention -----------------------------------------------------


def test_classical_and_pytorch_momentum_agree_at_constant_alpha_and_differ_under_a_schedule(rules):
    steps, row = 50, {"momentum": 0.9}
    constant = [[0.05] * steps]
    torch_style = run_rule(rules["momentum"], [row], constant, steps=steps)
    classical = run_rule(rules["classical_momentum"], [row], constant, steps=steps)
    np.testing.assert_allclose(classical, torch_style, rtol=1e-12, atol=1e-15)

    decaying = [list(0.05 * 0.9 ** np.arange(steps))]
    torch_style = run_rule(rules["momentum"], [row], decaying, steps=steps)
    classical = run_rule(rules["classical_momentum"], [row], decaying, steps=steps)
    np.testing.assert_allclose(classical[:2], torch_style[:2], rtol=1e-14)  # one step: both α₀ g₀
    assert np.max(np.abs(classical[2:] - torch_style[2:])) > 1e-3
    # The references agree: PyTorch rescales the whole buffer by α_t, classical keeps the old α's.
    expected = [
        ref_classical(THETA0[0], A[0], decaying[0], steps, momentum=0.9)[-1],
        ref_classical(THETA0[1], A[1], decaying[0], steps, momentum=0.9)[-1],
    ]
    np.testing.assert_allclose(classical[-1, 0], expected, rtol=1e-12)


# --- an optional comparison against torch.optim ------------------------------------------------------

TORCH_CASES = [
    ("gd", {}, "SGD", {}),
    (
        "momentum",
        {"momentum": 0.9, "dampening": 0.2, "weight_decay": 0.1},
        "SGD",
        {"momentum": 0.9, "dampening": 0.2, "weight_decay": 0.1},
    ),
    ("nesterov", {"momentum": 0.8}, "SGD", {"momentum": 0.8, "nesterov": True}),
    (
        "adagrad",
        {"lr_decay": 0.1, "initial_accumulator_value": 0.1},
        "Adagrad",
        {"lr_decay": 0.1, "initial_accumulator_value": 0.1},
    ),
    (
        "rmsprop",
        {"centered": True, "momentum": 0.5, "weight_decay": 0.1},
        "RMSprop",
        {"centered": True, "momentum": 0.5, "weight_decay": 0.1},
    ),
    ("adam", {"amsgrad": True, "weight_decay": 0.1}, "Adam", {"amsgrad": True, "weight_decay": 0.1}),
    ("adamw", {"weight_decay": 0.1}, "AdamW", {"weight_decay": 0.1}),
]


@pytest.mark.parametrize("name, row, optimizer, kwargs", TORCH_CASES, ids=[c[0] for c in TORCH_CASES])
def test_matches_torch_optim(rules, name, row, optimizer, kwargs):
    torch = pytest.importorskip("torch")
    steps, lr = 20, 0.05
    theta = torch.tensor(THETA0, dtype=torch.float64, requires_grad=True)
    opt = getattr(torch.optim, optimizer)([theta], lr=lr, **kwargs)
    curvature = torch.tensor(A, dtype=torch.float64)
    expected = [theta.detach().numpy().copy()]
    for _ in range(steps):
        opt.zero_grad()
        (0.5 * (curvature * theta * theta).sum()).backward()
        opt.step()
        expected.append(theta.detach().numpy().copy())
    path = run_rule(rules[name], [row], [lr], steps=steps)
    np.testing.assert_allclose(path[:, 0], np.array(expected), rtol=1e-10, atol=1e-13)


# --- dtype: float32 runs stay float32 (no silent upcast that would cost the float32 speed-up) ------


@pytest.mark.parametrize("name", sorted(GRID_ROWS))
def test_float32_stays_float32(rules, name):
    rule, rows = rules[name], GRID_ROWS[name]
    hyper = {k: v.astype(np.float32) for k, v in hyper_arrays(rule, rows).items()}
    params = np.linspace(-1, 1, 3 * 4, dtype=np.float32).reshape(3, 4)
    state = rule.init(params, hyper)
    for t in range(3):
        grad = (2 * params).astype(np.float32)
        updates, state = rule.update(grad, state, params, np.full((3, 1), 0.01, np.float32), hyper, t)
        assert updates.dtype == np.float32
        assert all(a.dtype == np.float32 and a.shape[0] == 3 for a in state)
        params = params + updates
