"""The rules of plugins/rules_new.py, step by step: Lion and signSGD against plain-Python loops written from
their papers, Adafactor against torch.optim.Adafactor tensor by tensor, schedule-free SGD and AdamW against
a plain-Python loop of the reference implementation's algorithm; and a first step (two for schedule-free)
worked by hand each.

The loops here are written from the published algorithms, coordinate by coordinate, without calling the
plugin. The torch comparisons are skipped when torch is not importable.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from descentlab.layout import ParamLayout
from descentlab.registry import load_registry

STEPS = 40
RTOL, ATOL = 1e-12, 1e-14

NEW_RULES = ("lion", "signsgd", "adafactor", "sgd_schedule_free", "adamw_schedule_free")


@pytest.fixture(scope="module")
def rules():
    registry = load_registry(entry_points=False, use_env=False)
    assert registry.errors == []
    return registry.rules


def hyper_arrays(rule, rows):
    """Declared hyperparameters as (R, 1) float arrays, one row per run (defaults filled in)."""
    return {h.name: np.array([[float(row.get(h.name, h.default))] for row in rows]) for h in rule.hyperparams}


def ours_path(rule, rows, rates, grads, start, layout=None, keep_states=False):
    """(steps + 1, R, P) iterates. ``grads`` is (steps, R, P), or a function of the params (the gradient at
    the point the runner holds); ``rates`` is (R,) or (R, steps)."""
    hyper = hyper_arrays(rule, rows)
    params = np.array(start, dtype=float)
    rates = np.asarray(rates, dtype=float).reshape(len(rows), -1)
    state = rule.start(params, hyper, layout)
    path, states = [params.copy()], []
    steps = len(grads) if not callable(grads) else STEPS
    for t in range(steps):
        grad = grads(params) if callable(grads) else grads[t]
        grad_before, params_before = grad.copy(), params.copy()
        alpha = rates[:, min(t, rates.shape[1] - 1)][:, None]
        updates, state = rule.update(grad, state, params, alpha, hyper, t)
        np.testing.assert_array_equal(grad, grad_before)
        np.testing.assert_array_equal(params, params_before)
        assert updates.shape == params.shape and updates.dtype == params.dtype
        params = params + updates
        path.append(params.copy())
        if keep_states:
            states.append(
                state._replace(**{k: np.copy(v) for k, v in state._asdict().items() if isinstance(v, np.ndarray)})
            )
    return (np.array(path), states) if keep_states else np.array(path)


def random_problem(seed, runs, size):
    rng = np.random.default_rng(seed)
    start = rng.normal(size=(runs, size))
    grads = rng.normal(size=(STEPS, runs, size))
    grads[20, :, 1] = 0.0  # an exact zero
    return start, grads


def changing(rates):
    """(R, STEPS) α_t from (R,) α: a schedule that moves every step."""
    return np.asarray(rates)[:, None] * (1.0 + 0.5 * np.sin(np.arange(STEPS)))[None, :]


G0 = np.array([0.3, -2.0, 0.0, 1e-3])
THETA0 = np.array([1.0, -0.5, 2.0, 0.25])


def sign(v):
    return float(v > 0) - float(v < 0)


# --- Lion ------------------------------------------------------------------------------------------


def lion_reference(theta, grads, rates, beta1, beta2, wd):
    """Chen et al. 2023, Algorithm 2, one run, coordinate by coordinate: a list of iterates."""
    theta, m = list(theta), [0.0] * len(theta)
    out = [list(theta)]
    for t, g in enumerate(grads):
        lr = rates[t]
        for i in range(len(theta)):
            c = beta1 * m[i] + (1 - beta1) * g[i]
            theta[i] = theta[i] - lr * (sign(c) + wd * theta[i])
            m[i] = beta2 * m[i] + (1 - beta2) * g[i]
        out.append(list(theta))
    return out


def test_lion_first_step_by_hand(rules):
    # m₀ = 0: c = (1 − β₁)g, so sign(c) = sign(g) and θ₁ = θ₀ − α(sign(g) + λθ₀); sign(0) = 0
    lr, wd = 0.01, 0.5
    expected = THETA0 - lr * (np.array([1.0, -1.0, 0.0, 1.0]) + wd * THETA0)
    got = ours_path(rules["lion"], [{"weight_decay": wd}], [lr], G0[None, None], THETA0[None])[1, 0]
    np.testing.assert_allclose(got, expected, rtol=1e-15)


def test_lion_second_step_takes_the_sign_of_the_interpolation_not_of_the_gradient(rules):
    # m₁ = (1 − β₂)g₀ = 0.01·(1, −1);  g₁ = (−0.05, 0.2):  c = 0.9·m₁ + 0.1·g₁ = (0.004, 0.011): step −α·(1, 1)
    lr, g0, g1 = 0.1, np.array([1.0, -1.0]), np.array([-0.05, 0.2])
    got = ours_path(rules["lion"], [{}], [lr], np.array([g0, g1])[:, None], np.zeros((1, 2)))
    np.testing.assert_allclose(got[1:, 0], [[-0.1, 0.1], [-0.2, 0.0]], rtol=1e-15, atol=1e-17)


@pytest.mark.parametrize("scheduled", [False, True], ids=["constant", "changing-lr"])
def test_lion_rows_stacked_match_the_papers_algorithm(rules, scheduled):
    rows = [
        {},
        {"beta1": 0.5, "beta2": 0.9, "weight_decay": 0.1},
        {"beta1": 0.95, "beta2": 0.999, "weight_decay": 0.01},
        {"beta1": 0.0},
    ]
    rates = np.array([1e-4, 0.01, 0.05, 0.003])
    rates = changing(rates) if scheduled else rates[:, None].repeat(STEPS, 1)
    start, grads = random_problem(1, len(rows), 5)
    grads[5:9, :, 0] = grads[4, :, 0]
    ours = ours_path(rules["lion"], rows, rates, grads, start)
    for r, row in enumerate(rows):
        expected = lion_reference(
            start[r], grads[:, r], rates[r], row.get("beta1", 0.9), row.get("beta2", 0.99), row.get("weight_decay", 0.0)
        )
        np.testing.assert_allclose(ours[:, r], expected, rtol=RTOL, atol=ATOL, err_msg=f"row {r}")


# --- signSGD ---------------------------------------------------------------------------------------


def test_signsgd_first_step_by_hand(rules):
    lr, wd = 0.1, 0.5
    expected = THETA0 - lr * (np.array([1.0, -1.0, 0.0, 1.0]) + wd * THETA0)
    got = ours_path(rules["signsgd"], [{"weight_decay": wd}], [lr], G0[None, None], THETA0[None])[1, 0]
    np.testing.assert_allclose(got, expected, rtol=1e-15)


def test_signsgd_rows_stacked_match_a_plain_loop(rules):
    rows, rates = [{}, {"weight_decay": 0.2}], changing(np.array([0.01, 0.1]))
    start, grads = random_problem(2, 2, 4)
    ours = ours_path(rules["signsgd"], rows, rates, grads, start)
    for r, row in enumerate(rows):
        theta, expected = list(start[r]), [list(start[r])]
        for t in range(STEPS):
            theta = [
                th - rates[r, t] * (sign(g) + row.get("weight_decay", 0.0) * th) for th, g in zip(theta, grads[t, r])
            ]
            expected.append(theta)
        np.testing.assert_allclose(ours[:, r], expected, rtol=RTOL, atol=ATOL)


# --- Adafactor -------------------------------------------------------------------------------------

# a matrix, a vector, a 3-D tensor (factored over its last two axes, batched over the first) and a scalar
LAYOUT = ParamLayout([("W", (3, 4), "one"), ("b", (4,), "one"), ("K", (2, 2, 3), "two"), ("s", (), "two")])


def test_adafactor_first_step_by_hand(rules):
    # β̂₁ = 1^c = 1: R = row means of g², C = column means, v̂ = R C/mean(R); ρ₁ = min(α, 1) = α, RMS(θ₀) = 1
    layout = ParamLayout([("W", (2, 2), "l"), ("b", (2,), "l")])
    g = np.array([1.0, 2.0, 3.0, 4.0, 0.5, -3.0])
    theta = np.ones(6)
    lr = 0.01
    v_hat = np.array([2.5 * 5, 2.5 * 10, 12.5 * 5, 12.5 * 10]) / 7.5  # R = (2.5, 12.5), C = (5, 10)
    u_matrix = g[:4] / np.sqrt(v_hat)  # RMS(u) = √0.96 < d = 1: no clip
    assert math.isclose(np.sqrt(np.mean(u_matrix**2)), math.sqrt(0.96))
    u_vector = np.sign(g[4:])  # v = g²: u = g/|g|
    expected = theta - lr * np.concatenate([u_matrix, u_vector])
    got = ours_path(rules["adafactor"], [{}], [lr], g[None, None], theta[None], layout=layout)[1, 0]
    np.testing.assert_allclose(got, expected, rtol=1e-15)
    # without a layout the row is one vector: u = sign(g) everywhere
    flat = ours_path(rules["adafactor"], [{}], [lr], g[None, None], theta[None])[1, 0]
    np.testing.assert_allclose(flat, theta - lr * np.sign(g), rtol=1e-15)


def test_adafactor_first_step_floors_at_eps1_and_eps2_by_hand(rules):
    # a vector g = (1, 0, 0, 0) with ε₁ = 0.5: v = g², u = g/max(|g|, ε₁) = (1, 0, 0, 0), RMS(u) = ½ < d.
    # θ₀ = 0: RMS(θ) = 0 < ε₂, so the step is ε₂ ρ u with ρ = min(α, 1) = α
    g, eps2, lr = np.array([1.0, 0.0, 0.0, 0.0]), 0.05, 0.2
    got = ours_path(rules["adafactor"], [{"eps1": 0.5, "eps2": eps2}], [lr], g[None, None], np.zeros((1, 4)))[1, 0]
    np.testing.assert_allclose(got, -eps2 * lr * g, rtol=1e-15)
    # g = 0.1 everywhere with ε₁ = 0.5: v̂ = 0.01 is floored at ε₁² = 0.25, so u = 0.1/0.5 = 0.2
    g = np.full(4, 0.1)
    got = ours_path(rules["adafactor"], [{"eps1": 0.5, "eps2": eps2}], [lr], g[None, None], np.zeros((1, 4)))[1, 0]
    np.testing.assert_allclose(got, -eps2 * lr * 0.2 * np.ones(4), rtol=1e-15)


def adafactor_torch_kwargs(row):
    return {
        "beta2_decay": row.get("beta2_decay", -0.8),
        "eps": (row.get("eps1") or None, row.get("eps2", 1e-3)),
        "d": row.get("d", 1.0),
        "weight_decay": row.get("weight_decay", 0.0),
    }


def torch_adafactor_path(torch, layout, kwargs, rates, grads, start):
    """One run of torch.optim.Adafactor over the layout's tensors: (steps + 1, P) flat iterates."""
    tensors = [
        torch.tensor(layout.view(start[None], e.name)[0].copy(), dtype=torch.float64, requires_grad=True)
        for e in layout.entries
    ]
    opt = torch.optim.Adafactor(tensors, lr=float(rates[0]), foreach=False, **kwargs)
    flat = [np.concatenate([t.detach().numpy().reshape(-1) for t in tensors])]
    for step, grad in enumerate(grads):
        opt.param_groups[0]["lr"] = float(rates[min(step, len(rates) - 1)])
        for entry, tensor in zip(layout.entries, tensors):
            tensor.grad = torch.tensor(layout.view(grad[None], entry.name)[0].copy(), dtype=torch.float64)
        opt.step()
        flat.append(np.concatenate([t.detach().numpy().reshape(-1) for t in tensors]))
    return np.array(flat)


@pytest.fixture(scope="module")
def torch64():
    """torch with float64 as the default dtype (its step counts are then float64)."""
    torch = pytest.importorskip("torch")
    if not hasattr(torch.optim, "Adafactor"):
        pytest.skip("torch.optim.Adafactor needs torch >= 2.5")
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield torch
    torch.set_default_dtype(before)


ADAFACTOR_ROWS = [
    ({}, 0.01),
    ({"beta2_decay": -0.5, "eps1": 1e-3, "eps2": 1e-2, "d": 1.2, "weight_decay": 0.1}, 0.3),
    ({"beta2_decay": 0.0, "weight_decay": 0.5}, 0.05),  # β̂ = 1: v is this step's g² alone
    ({"d": 1.0, "eps2": 0.5, "beta2_decay": -1.0}, 2.0),  # ρ_t = 1/√t < α: the relative step size caps
]


@pytest.mark.parametrize("scheduled", [False, True], ids=["constant", "changing-lr"])
def test_adafactor_rows_stacked_match_torch_tensor_by_tensor(rules, torch64, scheduled):
    rows = [row for row, _ in ADAFACTOR_ROWS]
    rates = np.array([lr for _, lr in ADAFACTOR_ROWS])
    rates = changing(rates) if scheduled else rates[:, None].repeat(STEPS, 1)
    start, grads = random_problem(3, len(rows), LAYOUT.size)
    grads[10:14] *= 30.0  # a burst: RMS(u) > d, the update is clipped
    ours = ours_path(rules["adafactor"], rows, rates, grads, start, layout=LAYOUT)
    for r, row in enumerate(rows):
        expected = torch_adafactor_path(torch64, LAYOUT, adafactor_torch_kwargs(row), rates[r], grads[:, r], start[r])
        np.testing.assert_allclose(ours[:, r], expected, rtol=RTOL, atol=ATOL, err_msg=f"row {r}")


def test_adafactor_without_a_layout_is_torchs_on_one_vector(rules, torch64):
    start, grads = random_problem(4, 2, 7)
    rows = [row for row, _ in ADAFACTOR_ROWS[:2]]
    rates = np.array([lr for _, lr in ADAFACTOR_ROWS[:2]])
    ours = ours_path(rules["adafactor"], rows, rates, grads, start)
    vector = ParamLayout([("theta", (7,), "all")])
    for r, row in enumerate(rows):
        expected = torch_adafactor_path(
            torch64, vector, adafactor_torch_kwargs(row), rates[r : r + 1], grads[:, r], start[r]
        )
        np.testing.assert_allclose(ours[:, r], expected, rtol=RTOL, atol=ATOL)


def test_adafactor_defaults_are_torchs(rules, torch64):
    defaults = torch64.optim.Adafactor([torch64.zeros(1, requires_grad=True)]).defaults
    declared = {h.name: h.default for h in rules["adafactor"].hyperparams}
    assert declared == {
        "beta2_decay": defaults["beta2_decay"],
        "eps1": 0.0,
        "eps2": defaults["eps"][1],
        "d": defaults["d"],
        "weight_decay": defaults["weight_decay"],
    }
    assert defaults["eps"][0] is None  # what eps1 = 0 stands for: the dtype's machine epsilon
    assert rules["adafactor"].default_learning_rate == defaults["lr"]
    assert defaults["maximize"] is False


def test_adafactor_through_the_runner_factors_the_networks_matrices_as_torch(rules, torch64):
    # descentlab's own training loop on a small network: the runner hands the rule the problem's layout;
    # torch replays the gradients the loop computed, one Adafactor per run over the same tensors
    from descentlab.chunk import one_rule_experiment, run_chunk

    registry = load_registry(entry_points=False, use_env=False)
    problem = registry.problem("moons")
    settings = {s.name: s.default for s in problem.settings}
    instance = problem.build({**settings, "hidden": [5, 3], "samples": 64})
    rule = rules["adafactor"]
    row = ADAFACTOR_ROWS[1][0]
    experiment = one_rule_experiment(
        rule, {h.name: row.get(h.name, h.default) for h in rule.hyperparams}, [0, 1, 2], 25, 0.05
    )
    seen = {}

    def probe(view):
        seen[view.t] = (view.params.copy(), view.grad.copy())
        return False

    run_chunk(instance, registry, experiment, experiment.runs(), probe=probe)
    steps = sorted(seen)
    assert len(steps) >= 25 and any(len(e.shape) == 2 for e in instance.layout.entries)
    ours = np.array([seen[t][0] for t in steps])
    grads = np.array([seen[t][1] for t in steps[:-1]])
    for r in range(3):
        expected = torch_adafactor_path(
            torch64, instance.layout, adafactor_torch_kwargs(row), [0.05], grads[:, r], ours[0, r]
        )
        np.testing.assert_allclose(ours[:, r], expected, rtol=RTOL, atol=ATOL)
    # and the factored estimate differs from treating the row as one vector
    flat = ours_path(rule, [row], [0.05], grads[:, :1], ours[0, :1])
    assert not np.allclose(flat[:, 0], ours[:, 0], rtol=1e-6)


# --- schedule-free SGD and AdamW -------------------------------------------------------------------


def schedule_free_reference(
    theta, grad_at, rates, *, adam, beta, wd=0.0, r=0.0, p=2.0, warmup=0, beta2=0.999, eps=1e-8
):
    """Defazio et al. 2024 as the reference implementation runs it, one run, coordinate by coordinate.

    ``grad_at(y)`` is the gradient at the list y (gradients are taken at y); ``rates`` the base α per step,
    warmed up here as the reference's warmup_steps does. Returns the iterates y_t and the averages x_t."""
    z, x, y, v = list(theta), list(theta), list(theta), [0.0] * len(theta)
    lr_max, weight_sum = -1.0, 0.0
    ys, xs = [list(y)], [list(x)]
    for k in range(len(rates)):
        lr = rates[k] * ((k + 1) / warmup if k < warmup else 1.0)
        lr_max = max(lr_max, lr)
        weight = (k + 1) ** r * lr_max**p
        weight_sum += weight
        c = weight / weight_sum if weight_sum else 0.0
        g = grad_at(y)
        for i in range(len(theta)):
            if adam:
                v[i] = beta2 * v[i] + (1 - beta2) * g[i] ** 2
                denom = math.sqrt(v[i] / (1 - beta2 ** (k + 1))) + eps
                z[i] = z[i] - lr * wd * y[i] - lr * g[i] / denom
            else:
                z[i] = z[i] - lr * (g[i] + wd * y[i])
            x[i] = (1 - c) * x[i] + c * z[i]
            y[i] = beta * x[i] + (1 - beta) * z[i]
        ys.append(list(y))
        xs.append(list(x))
    return ys, xs


A_DIAG = np.array([0.5, 2.0, 1.0, 3.0])
B_SHIFT = np.array([1.0, -1.0, 0.5, 0.0])


def quadratic_grad(y):
    """∇ of Σ ½ a_i (y_i − b_i)² + ¼ y_i⁴/10 (a little curvature that changes with y)."""
    return [a * (yi - b) + 0.1 * yi**3 for a, b, yi in zip(A_DIAG, B_SHIFT, y)]


def quadratic_grads(params):
    return np.array([quadratic_grad(row) for row in params])


def test_sgd_schedule_free_first_two_steps_by_hand(rules):
    # g(y) = 2y, α = 0.1, β = 0.9.  Step 1: c = 1, z₁ = x₁ = y₁ = θ₀ − 0.2θ₀ = 0.8θ₀.
    # Step 2 (r = 0): c = ½, z₂ = 0.8θ₀ − 0.16θ₀ = 0.64θ₀, x₂ = 0.72θ₀, y₂ = 0.9·0.72θ₀ + 0.1·0.64θ₀ = 0.712θ₀.
    # r = 1: weights 1·α², 2·α²: c = ⅔, x₂ = (0.8 + 2·0.64)/3 θ₀, y₂ = (0.9·2.08/3 + 0.064)θ₀ = 0.688θ₀.
    # λ = 0.5: g + λy = 2.5y: z₁ = y₁ = 0.75θ₀, z₂ = 0.5625θ₀, x₂ = 0.65625θ₀, y₂ = 0.646875θ₀.
    theta = np.array([1.0, -2.0, 0.5])
    rows = [{}, {"r": 1.0}, {"weight_decay": 0.5}]
    start = np.tile(theta, (3, 1))
    path, states = ours_path(
        rules["sgd_schedule_free"], rows, [0.1] * 3, lambda params: 2.0 * params, start, keep_states=True
    )
    np.testing.assert_allclose(path[1], [0.8 * theta, 0.8 * theta, 0.75 * theta], rtol=1e-15)
    np.testing.assert_allclose(path[2], [0.712 * theta, 0.688 * theta, 0.646875 * theta], rtol=1e-14)
    np.testing.assert_allclose(states[1].x, [0.72 * theta, 2.08 / 3 * theta, 0.65625 * theta], rtol=1e-14)
    np.testing.assert_allclose(states[1].z, [0.64 * theta, 0.64 * theta, 0.5625 * theta], rtol=1e-14)


def test_adamw_schedule_free_first_two_steps_by_hand(rules):
    # A constant gradient g: v₁/(1 − β₂) = v₂/(1 − β₂²) = g², so both z steps are s = α g/(|g| + ε).
    # Step 1: c = 1, z₁ = x₁ = y₁ = θ₀ − s.  Step 2: c = ½, z₂ = θ₀ − 2s, x₂ = θ₀ − 1.5s,
    # y₂ = β₁x₂ + (1 − β₁)z₂ = θ₀ − (2 − ½β₁)s.  With λ: z₁ = θ₀ − s − αλθ₀, z₂ = z₁ − s − αλz₁ (y₁ = z₁).
    lr, b1, eps, wd = 0.05, 0.8, 1e-3, 0.3
    s = lr * G0 / (np.abs(G0) + eps)
    y2 = THETA0 - (2 - 0.5 * b1) * s
    z1 = THETA0 - s - lr * wd * THETA0
    z2 = z1 - s - lr * wd * z1
    y2_decay = b1 * 0.5 * (z1 + z2) + (1 - b1) * z2
    rows = [{"beta1": b1, "eps": eps}, {"beta1": b1, "eps": eps, "weight_decay": wd}]
    path = ours_path(rules["adamw_schedule_free"], rows, [lr, lr], np.tile(G0, (2, 2, 1)), np.tile(THETA0, (2, 1)))
    np.testing.assert_allclose(path[1], [THETA0 - s, z1], rtol=1e-14)
    np.testing.assert_allclose(path[2], [y2, y2_decay], rtol=1e-14)


SCHEDULE_FREE_ROWS = {
    "sgd_schedule_free": [
        ({}, {}, 0.2),
        ({"momentum": 0.5, "weight_decay": 0.1}, {"beta": 0.5, "wd": 0.1}, 0.3),
        ({"r": 1.0, "weight_lr_power": 0.0}, {"r": 1.0, "p": 0.0}, 0.1),
        ({"momentum": 0.99, "r": 0.5, "weight_lr_power": 4.0}, {"beta": 0.99, "r": 0.5, "p": 4.0}, 0.05),
    ],
    "adamw_schedule_free": [
        ({}, {}, 0.0025),
        ({"beta1": 0.5, "beta2": 0.9, "weight_decay": 0.1}, {"beta": 0.5, "beta2": 0.9, "wd": 0.1}, 0.05),
        ({"eps": 1e-3, "r": 1.0, "weight_lr_power": 0.0}, {"eps": 1e-3, "r": 1.0, "p": 0.0}, 0.1),
        ({"beta1": 0.0, "weight_decay": 0.5, "weight_lr_power": 1.0}, {"beta": 0.0, "wd": 0.5, "p": 1.0}, 0.02),
    ],
}


@pytest.mark.parametrize("name", sorted(SCHEDULE_FREE_ROWS))
@pytest.mark.parametrize("scheduled", [False, True], ids=["constant", "changing-lr"])
def test_schedule_free_rows_stacked_match_the_reference_algorithm_with_gradients_at_y(rules, name, scheduled):
    cases = SCHEDULE_FREE_ROWS[name]
    rates = np.array([lr for _, _, lr in cases])
    rates = changing(rates) if scheduled else rates[:, None].repeat(STEPS, 1)
    start = np.random.default_rng(5).normal(size=(len(cases), len(A_DIAG)))
    ours, states = ours_path(rules[name], [row for row, _, _ in cases], rates, quadratic_grads, start, keep_states=True)
    for r, (_, kwargs, _) in enumerate(cases):
        kwargs = dict(kwargs)
        beta = kwargs.pop("beta", 0.9)
        ys, xs = schedule_free_reference(
            start[r], quadratic_grad, rates[r], adam=name.startswith("adam"), beta=beta, **kwargs
        )
        np.testing.assert_allclose(ours[:, r], ys, rtol=RTOL, atol=ATOL, err_msg=f"{name} row {r}: y")
        np.testing.assert_allclose([s.x[r] for s in states], xs[1:], rtol=RTOL, atol=ATOL, err_msg=f"row {r}: x")


@pytest.mark.parametrize("name", sorted(SCHEDULE_FREE_ROWS))
def test_schedule_free_warmup_is_the_schedules_warmup(rules, name):
    # the reference's warmup_steps W scales α by (k + 1)/W for k < W: descentlab's schedule warmup gives the
    # same α_t, and the average's weights (max α)^p follow it
    from descentlab.schedule_values import schedule_values

    registry = load_registry(entry_points=False, use_env=False)
    warmup, base = 8, 0.2 if name.startswith("sgd") else 0.05
    rates = schedule_values(registry.schedule("constant"), np.array([base]), {}, STEPS, warmup).T  # (1, STEPS)
    start = np.array([[0.5, -1.0, 2.0, 0.1]])
    ours = ours_path(rules[name], [{}], rates, quadratic_grads, start)
    ys, _ = schedule_free_reference(
        start[0], quadratic_grad, [base] * STEPS, adam=name.startswith("adam"), beta=0.9, warmup=warmup
    )
    np.testing.assert_allclose(ours[:, 0], ys, rtol=RTOL, atol=ATOL)
    plain, _ = schedule_free_reference(start[0], quadratic_grad, [base] * STEPS, adam=name.startswith("adam"), beta=0.9)
    assert not np.allclose(ys, plain)  # the warmup did change the run


def test_schedule_free_defaults_are_the_reference_implementations(rules):
    sgd = {h.name: h.default for h in rules["sgd_schedule_free"].hyperparams}
    adamw = {h.name: h.default for h in rules["adamw_schedule_free"].hyperparams}
    assert sgd == {"momentum": 0.9, "weight_decay": 0.0, "r": 0.0, "weight_lr_power": 2.0}
    assert adamw == {"beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.0, "r": 0.0, "weight_lr_power": 2.0}
    assert rules["sgd_schedule_free"].default_learning_rate == 1.0
    assert rules["adamw_schedule_free"].default_learning_rate == 0.0025


# --- the module --------------------------------------------------------------------------------------


def test_every_rule_of_the_module_has_a_step_by_hand_and_says_why_it_has_no_threshold():
    from descentlab.plugins import rules_new

    assert {rule.name for rule in rules_new.RULES} == set(NEW_RULES)
    for rule in rules_new.RULES:
        assert any(key.startswith(f"test_{rule.name}_first_") for key in globals()), rule.name
        assert rule.stability_threshold is None and "no" in rule.threshold_note and "threshold" in rule.threshold_note
        assert rule.update.__doc__ and rule.formula and rule.summary


def test_only_adafactor_and_muon_use_the_layout(rules):
    assert {name for name, rule in rules.items() if rule.uses_layout} == {"adafactor", "muon"}


def test_sgd_schedule_free_has_a_moving_edge_not_a_fixed_threshold(rules):
    # J = ½θ² (λ = 1), β = 0.9. Step one is a GD step: θ₁ = (1 − α)θ₀, growing for α > 2. In the long run
    # c_t → 0 and the edge is α(1 − β) < 2, i.e. α < 20: α = 19 first grows by orders of magnitude, then
    # converges; α = 21 diverges. Neither edge is an α·λ threshold of the kind rules declare.
    rule = rules["sgd_schedule_free"]
    alphas = np.array([[1.9], [2.1], [19.0], [21.0]])
    hyper = hyper_arrays(rule, [{}] * len(alphas))
    params = np.ones((len(alphas), 1))
    state = rule.init(params, hyper)
    largest, first = np.ones(len(alphas)), None
    with np.errstate(all="ignore"):
        for t in range(3000):
            updates, state = rule.update(params.copy(), state, params, alphas, hyper, t)
            params = params + updates
            first = params[:, 0].copy() if t == 0 else first
            largest = np.fmax(largest, np.abs(params[:, 0]))
    np.testing.assert_allclose(first, 1.0 - alphas[:, 0], rtol=1e-15)
    assert abs(first[0]) < 1 < abs(first[1])
    assert np.all(np.abs(params[:3, 0]) < 1e-3) and largest[2] > 1e6
    assert not np.abs(params[3, 0]) < 1e6


def test_adafactor_state_survives_the_runners_row_drop(rules):
    # the plan (tensor shapes, the same for every run) is passed through; the factors lose the dropped rows
    from descentlab.chunk import _take_rows

    rule = rules["adafactor"]
    rows = [{}, {"d": 2.0}, {"weight_decay": 0.1}]
    start, grads = random_problem(6, 3, LAYOUT.size)
    hyper = hyper_arrays(rule, rows)
    state = rule.start(start, hyper, LAYOUT)
    _, state = rule.update(grads[0], state, start, np.full((3, 1), 0.01), hyper, 0)
    keep = np.array([True, False, True])
    kept = _take_rows(state, keep, 3)
    assert kept.plan == state.plan
    for name in ("row_var", "col_var", "variance"):
        np.testing.assert_array_equal(getattr(kept, name), getattr(state, name)[keep])
