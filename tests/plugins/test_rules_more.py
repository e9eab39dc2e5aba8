"""The rules of plugins/rules_more.py against torch.optim, step by step, and one first step worked by hand each.

The hand-computed first steps run without torch. The torch comparisons (skipped when torch is not
importable) stack rows with different hyperparameters in one call, feed both sides the same random
gradients for 40 steps in float64, and compare every iterate; the runner test replays in torch the
gradients descentlab's own training loop computed.
"""

from __future__ import annotations

import numpy as np
import pytest

from descentlab.registry import load_registry

STEPS, P = 40, 5
RTOL, ATOL = 1e-12, 1e-14

NEW_RULES = ("adamax", "nadam", "radam", "adadelta", "rprop", "asgd")


@pytest.fixture(scope="module")
def rules():
    registry = load_registry(entry_points=False, use_env=False)
    assert registry.errors == []
    return registry.rules


def hyper_arrays(rule, rows):
    """Declared hyperparameters as (R, 1) float arrays, one row per run (defaults filled in)."""
    return {h.name: np.array([[float(row.get(h.name, h.default))] for row in rows]) for h in rule.hyperparams}


def ours_path(rule, rows, rates, grads, start):
    """(steps + 1, R, P) iterates; ``rates`` is (R,) or (R, steps); grads (steps, R, P) are used as given."""
    hyper = hyper_arrays(rule, rows)
    params = np.array(start, dtype=float)
    rates = np.asarray(rates, dtype=float).reshape(len(rows), -1)
    state = rule.init(params, hyper)
    path = [params.copy()]
    for t, grad in enumerate(grads):
        grad_before, params_before = grad.copy(), params.copy()
        alpha = rates[:, min(t, rates.shape[1] - 1)][:, None]
        updates, state = rule.update(grad, state, params, alpha, hyper, t)
        np.testing.assert_array_equal(grad, grad_before)
        np.testing.assert_array_equal(params, params_before)
        assert updates.shape == params.shape and updates.dtype == params.dtype
        params = params + updates
        path.append(params.copy())
    return np.array(path)


def first_step(rule, row, lr, grad, theta):
    """θ₁ of one run from θ₀ = theta with gradient grad (1-D arrays)."""
    return ours_path(rule, [row], [lr], np.asarray(grad, dtype=float)[None, None], np.asarray(theta)[None])[1, 0]


G0 = np.array([0.3, -2.0, 0.0, 1e-3])
THETA0 = np.array([1.0, -0.5, 2.0, 0.25])


# --- first steps worked by hand (no torch needed) ---------------------------------------------------


def test_adamax_first_step_by_hand(rules):
    # m₁ = (1 − β₁)g, u₁ = max(0, |g| + ε) = |g| + ε, θ₁ = θ₀ − α/(1 − β₁) · m₁/u₁ = θ₀ − α g/(|g| + ε)
    lr, eps, wd = 0.1, 1e-3, 0.5
    g = G0 + wd * THETA0
    expected = THETA0 - lr * g / (np.abs(g) + eps)
    got = first_step(rules["adamax"], {"eps": eps, "weight_decay": wd, "beta1": 0.7}, lr, G0, THETA0)
    np.testing.assert_allclose(got, expected, rtol=1e-15)


def test_nadam_first_step_by_hand(rules):
    # μ₁ = β₁(1 − ½·0.96^ψ), μ₂ = β₁(1 − ½·0.96^{2ψ}), Π = μ₁; m₁ = (1 − β₁)g, v₁ = (1 − β₂)g², so
    # d = √(v₁/(1 − β₂)) + ε = |g| + ε and θ₁ = θ₀ − α g/d · (1 + μ₂(1 − β₁)/(1 − μ₁μ₂))
    lr, b1, psi, eps, wd = 0.05, 0.8, 0.3, 1e-2, 0.2
    mu1, mu2 = b1 * (1 - 0.5 * 0.96**psi), b1 * (1 - 0.5 * 0.96 ** (2 * psi))
    g = G0 + wd * THETA0
    expected = THETA0 - lr * g / (np.abs(g) + eps) * (1 + mu2 * (1 - b1) / (1 - mu1 * mu2))
    row = {"beta1": b1, "beta2": 0.9, "momentum_decay": psi, "eps": eps, "weight_decay": wd}
    np.testing.assert_allclose(first_step(rules["nadam"], row, lr, G0, THETA0), expected, rtol=1e-14)


def test_nadam_and_radam_first_step_with_decoupled_weight_decay_by_hand(rules):
    # decoupled_weight_decay: θ ← θ(1 − αλ), then the step of the undecayed gradient (the NAdam step above
    # with g = G0; RAdam's first step is θ − α g, ρ₁ = 1 ≤ 5)
    lr, b1, psi, eps, wd = 0.05, 0.8, 0.3, 1e-2, 0.2
    mu1, mu2 = b1 * (1 - 0.5 * 0.96**psi), b1 * (1 - 0.5 * 0.96 ** (2 * psi))
    step = lr * G0 / (np.abs(G0) + eps) * (1 + mu2 * (1 - b1) / (1 - mu1 * mu2))
    row = {"beta1": b1, "beta2": 0.9, "momentum_decay": psi, "eps": eps, "weight_decay": wd}
    got = first_step(rules["nadam"], {**row, "decoupled_weight_decay": True}, lr, G0, THETA0)
    np.testing.assert_allclose(got, THETA0 * (1 - lr * wd) - step, rtol=1e-14)
    got = first_step(rules["radam"], {"weight_decay": wd, "decoupled_weight_decay": True}, lr, G0, THETA0)
    np.testing.assert_allclose(got, THETA0 * (1 - lr * wd) - lr * G0, rtol=1e-15)


def test_radam_first_step_by_hand_and_rectified_steps_under_a_constant_gradient(rules):
    # ρ₁ = ρ_∞ − 2β₂/(1 − β₂) = 1 ≤ 5 for every β₂: the first step is θ₀ − α m̂₁ = θ₀ − α g.
    lr, wd = 0.1, 0.5
    g = G0 + wd * THETA0
    np.testing.assert_allclose(
        first_step(rules["radam"], {"weight_decay": wd}, lr, G0, THETA0), THETA0 - lr * g, rtol=1e-15
    )
    # A constant gradient g (no decay): m̂_t = g and v_t = (1 − β₂ᵗ)g², so each step is
    # α g · r_t √(1 − β₂ᵗ)/(√(1 − β₂ᵗ)|g| + ε) once ρ_t > 5, else α g.
    b2, eps, steps = 0.9, 1e-3, 12
    rho_inf = 2 / (1 - b2) - 1
    theta, expected = THETA0.copy(), [THETA0.copy()]
    for t in range(1, steps + 1):
        c2 = 1 - b2**t
        rho = rho_inf - 2 * t * b2**t / c2
        if rho > 5:
            r = np.sqrt((rho - 4) * (rho - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho))
            theta = theta - lr * G0 * r * np.sqrt(c2) / (np.sqrt(c2) * np.abs(G0) + eps)
        else:
            theta = theta - lr * G0
        expected.append(theta)
    assert rho_inf - 2 * b2 / (1 - b2) == pytest.approx(1.0)  # ρ₁ = 19 − 18
    got = ours_path(rules["radam"], [{"beta2": b2, "eps": eps}], [lr], np.tile(G0, (steps, 1, 1)), THETA0[None])
    np.testing.assert_allclose(got[:, 0], np.array(expected), rtol=1e-13)
    assert not np.allclose(got[-1, 0], THETA0 - steps * lr * G0)  # the rectified branch was taken


def test_adadelta_first_step_by_hand(rules):
    # s₁ = (1 − ρ)g², a₀ = 0: Δ = √ε/√((1 − ρ)g² + ε) · g, θ₁ = θ₀ − αΔ
    lr, rho, eps, wd = 0.5, 0.7, 1e-4, 0.1
    g = G0 + wd * THETA0
    expected = THETA0 - lr * np.sqrt(eps) / np.sqrt((1 - rho) * g**2 + eps) * g
    got = first_step(rules["adadelta"], {"rho": rho, "eps": eps, "weight_decay": wd}, lr, G0, THETA0)
    np.testing.assert_allclose(got, expected, rtol=1e-15)


def test_rprop_first_three_steps_by_hand(rules):
    # Δ starts at α = 0.1 (g_prev = 0: Δ only clamped); then ×1.2 on an unchanged sign, ×0.5 and no step
    # on a flip (the stored gradient becomes 0, so the next product is 0: Δ kept), capped at Δ_max = 0.13.
    lr = 0.1
    grads = np.array([[1.0, -1.0, 1.0, 0.0], [2.0, 3.0, 0.0, -1.0], [1.0, 1.0, 1.0, 1.0]])[:, None]
    row = {"step_size_max": 0.13}
    theta1 = THETA0 - np.array([0.1, -0.1, 0.1, 0.0])
    theta2 = theta1 - np.array([0.12, 0.0, 0.0, -0.1])  # Δ₂ = (0.12, 0.05, 0.1, 0.1)
    theta3 = theta2 - np.array([0.13, 0.05, 0.1, 0.0])  # Δ₃ = (min(0.144, 0.13), 0.05, 0.1, 0.05)
    got = ours_path(rules["rprop"], [row], [lr], grads, THETA0[None])
    np.testing.assert_allclose(got[1:, 0], [theta1, theta2, theta3], rtol=1e-15)
    # later learning rates are ignored (torch reads lr once, to start Δ)
    again = ours_path(rules["rprop"], [row], [[lr, 7.0, 9.0]], grads, THETA0[None])
    np.testing.assert_array_equal(again, got)


def test_asgd_first_two_steps_by_hand(rules):
    # η₁ = α: θ₁ = θ₀(1 − λ_d α) − α(g₀ + λθ₀);  η₂ = α/(1 + λ_d α)^a: θ₂ = θ₁(1 − λ_d η₂) − η₂(g₁ + λθ₁)
    lr, lambd, a, wd = 0.3, 0.2, 0.6, 0.1
    g1 = np.array([-1.0, 0.5, 0.25, 2.0])
    theta1 = THETA0 * (1 - lambd * lr) - lr * (G0 + wd * THETA0)
    eta2 = lr / (1 + lambd * lr) ** a
    theta2 = theta1 * (1 - lambd * eta2) - eta2 * (g1 + wd * theta1)
    got = ours_path(
        rules["asgd"],
        [{"lambd": lambd, "alpha": a, "weight_decay": wd}],
        [lr],
        np.array([G0, g1])[:, None],
        THETA0[None],
    )
    np.testing.assert_allclose(got[1:, 0], [theta1, theta2], rtol=1e-14)


def test_every_rule_of_the_module_has_a_step_by_hand():
    from descentlab.plugins import rules_more

    assert {rule.name for rule in rules_more.RULES} == set(NEW_RULES)
    for name in NEW_RULES:
        assert any(key.startswith(f"test_{name}_first_") for key in globals()), name


# --- against torch.optim ---------------------------------------------------------------------------


def torch_paths(torch, optimizer, rows, rates, grads, start):
    """(steps + 1, R, P) iterates of torch.optim.<optimizer>, one optimizer per row, the group's lr set per step."""
    rates = np.asarray(rates, dtype=float).reshape(len(rows), -1)
    out = np.empty((len(grads) + 1,) + np.shape(start))
    for r, kwargs in enumerate(rows):
        theta = torch.tensor(np.array(start[r]), dtype=torch.float64, requires_grad=True)
        opt = getattr(torch.optim, optimizer)([theta], lr=float(rates[r, 0]), foreach=False, **kwargs)
        out[0, r] = theta.detach().numpy()
        for t, grad in enumerate(grads):
            opt.param_groups[0]["lr"] = float(rates[r, min(t, rates.shape[1] - 1)])
            theta.grad = torch.tensor(grad[r], dtype=torch.float64)
            opt.step()
            out[t + 1, r] = theta.detach().numpy()
    return out


@pytest.fixture(scope="module")
def torch64():
    """torch with float64 as the default dtype: its scalar state (step counts, NAdam's μ product) is then float64."""
    torch = pytest.importorskip("torch")
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield torch
    torch.set_default_dtype(before)


def random_problem(seed, runs, scale=1.0):
    rng = np.random.default_rng(seed)
    start = rng.normal(size=(runs, P))
    grads = rng.normal(scale=scale, size=(STEPS, runs, P))
    grads[5:9, :, 0] = grads[4, :, 0]  # runs of equal sign (Rprop grows its step) ...
    grads[10:14, :, 1] *= (-1) ** np.arange(4)[:, None]  # ... and of alternating sign
    grads[20, :, 2] = 0.0  # an exact zero
    return start, grads


# Each case: descentlab rule, torch optimizer, rows of (descentlab hyper, torch kwargs, α).
CASES = {
    "adamax": (
        "adamax",
        "Adamax",
        [
            ({}, {}, 0.002),
            ({"beta1": 0.5, "beta2": 0.9, "weight_decay": 0.1}, {"betas": (0.5, 0.9), "weight_decay": 0.1}, 0.05),
            ({"eps": 1e-2, "weight_decay": 0.3}, {"eps": 1e-2, "weight_decay": 0.3}, 0.1),
            ({"beta1": 0.0, "beta2": 0.99}, {"betas": (0.0, 0.99)}, 0.01),
        ],
    ),
    "nadam": (
        "nadam",
        "NAdam",
        [
            ({}, {}, 0.002),
            ({"beta1": 0.5, "beta2": 0.9, "weight_decay": 0.1}, {"betas": (0.5, 0.9), "weight_decay": 0.1}, 0.05),
            (
                {"momentum_decay": 0.1, "eps": 1e-3, "weight_decay": 0.3},
                {"momentum_decay": 0.1, "eps": 1e-3, "weight_decay": 0.3},
                0.1,
            ),
            ({"momentum_decay": 0.0, "beta1": 0.95}, {"momentum_decay": 0.0, "betas": (0.95, 0.999)}, 0.01),
            # NAdamW: θ ← θ(1 − αλ), the gradient undecayed; stacked with the L2 rows above
            (
                {"weight_decay": 0.2, "decoupled_weight_decay": True},
                {"weight_decay": 0.2, "decoupled_weight_decay": True},
                0.05,
            ),
        ],
    ),
    "radam": (
        "radam",
        "RAdam",
        [
            ({}, {}, 0.001),
            ({"beta1": 0.5, "beta2": 0.9, "weight_decay": 0.1}, {"betas": (0.5, 0.9), "weight_decay": 0.1}, 0.05),
            ({"beta2": 0.6, "eps": 1e-3}, {"betas": (0.9, 0.6), "eps": 1e-3}, 0.02),  # ρ_∞ = 4: never rectified
            (
                {"beta2": 0.99, "eps": 1e-2, "weight_decay": 0.3},
                {"betas": (0.9, 0.99), "eps": 1e-2, "weight_decay": 0.3},
                0.1,
            ),
            (
                {"beta2": 0.99, "weight_decay": 0.3, "decoupled_weight_decay": True},
                {"betas": (0.9, 0.99), "weight_decay": 0.3, "decoupled_weight_decay": True},
                0.1,
            ),
        ],
    ),
    "adadelta": (
        "adadelta",
        "Adadelta",
        [
            ({}, {}, 1.0),
            ({"rho": 0.5, "weight_decay": 0.1}, {"rho": 0.5, "weight_decay": 0.1}, 0.5),
            ({"eps": 1e-3, "weight_decay": 0.3}, {"eps": 1e-3, "weight_decay": 0.3}, 2.0),
            ({"rho": 0.99, "eps": 1e-8}, {"rho": 0.99, "eps": 1e-8}, 1.0),
        ],
    ),
    "rprop": (
        "rprop",
        "Rprop",
        [
            ({}, {}, 0.01),
            (
                {"etaminus": 0.3, "etaplus": 1.5, "step_size_max": 0.2},
                {"etas": (0.3, 1.5), "step_sizes": (1e-6, 0.2)},
                0.05,
            ),
            ({"step_size_min": 0.004}, {"step_sizes": (0.004, 50.0)}, 0.01),  # Δ reaches Δ_min
            (
                {"etaplus": 2.0, "step_size_min": 0.0, "step_size_max": 1.0},
                {"etas": (0.5, 2.0), "step_sizes": (0.0, 1.0)},
                0.1,
            ),
        ],
    ),
    "asgd": (
        "asgd",
        "ASGD",
        [
            ({}, {}, 0.01),
            ({"lambd": 0.1, "alpha": 0.5, "weight_decay": 0.2}, {"lambd": 0.1, "alpha": 0.5, "weight_decay": 0.2}, 0.5),
            ({"lambd": 0.0}, {"lambd": 0.0, "t0": 5.0}, 0.1),  # t0 moves only torch's average ax, not θ
            ({"alpha": 1.0, "weight_decay": 0.05}, {"alpha": 1.0, "weight_decay": 0.05, "t0": 0.0}, 0.2),
        ],
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("scheduled", [False, True], ids=["constant", "changing-lr"])
def test_rows_stacked_in_one_call_match_torch_optim(rules, torch64, case, scheduled):
    name, optimizer, rows = CASES[case]
    start, grads = random_problem(len(case), len(rows))
    rates = np.array([lr for _, _, lr in rows])
    if scheduled:  # α_t changes every step, as a schedule makes it (torch: the group's lr set before each step)
        rates = rates[:, None] * (1.0 + 0.5 * np.sin(np.arange(STEPS)))[None, :]
    ours = ours_path(rules[name], [row for row, _, _ in rows], rates, grads, start)
    expected = torch_paths(torch64, optimizer, [kwargs for _, kwargs, _ in rows], rates, grads, start)
    for r in range(len(rows)):
        np.testing.assert_allclose(ours[:, r], expected[:, r], rtol=RTOL, atol=ATOL, err_msg=f"{case} row {r}")


TORCH_NAMES = {
    "adamax": "Adamax",
    "nadam": "NAdam",
    "radam": "RAdam",
    "adadelta": "Adadelta",
    "rprop": "Rprop",
    "asgd": "ASGD",
}


def test_every_new_rule_is_compared_with_torch_and_with_weight_decay_if_it_has_one(rules):
    assert set(TORCH_NAMES) == set(NEW_RULES) == {case[0] for case in CASES.values()}
    for name, _, rows in CASES.values():
        if any(h.name == "weight_decay" for h in rules[name].hyperparams):
            assert any(row.get("weight_decay") and kwargs.get("weight_decay") for row, kwargs, _ in rows), name


def torch_default(defaults, name):
    pairs = {
        "beta1": ("betas", 0),
        "beta2": ("betas", 1),
        "etaminus": ("etas", 0),
        "etaplus": ("etas", 1),
        "step_size_min": ("step_sizes", 0),
        "step_size_max": ("step_sizes", 1),
    }
    if name in pairs:
        key, index = pairs[name]
        return defaults[key][index]
    return defaults[name]


@pytest.mark.parametrize("name", NEW_RULES)
def test_defaults_are_torchs(rules, torch64, name):
    opt = getattr(torch64.optim, TORCH_NAMES[name])([torch64.zeros(1, requires_grad=True)])
    defaults = opt.defaults
    for h in rules[name].hyperparams:
        assert h.default == torch_default(defaults, h.name), h.name
    assert rules[name].default_learning_rate == defaults["lr"]
    assert not defaults.get("decoupled_weight_decay", False)  # NAdam, RAdam: L2 unless the flag is set
    assert not defaults.get("maximize", False)
    if name == "asgd":  # the one torch argument not declared: it moves only the average ax, never θ
        assert defaults["t0"] == 1e6 and "t0" not in {h.name for h in rules[name].hyperparams}


# small enough for the steep Rosenbrock valley (RAdam's first steps and ASGD are plain momentum / SGD steps)
RUNNER_LR = {"adamax": 0.05, "nadam": 0.05, "radam": 1e-3, "adadelta": 0.5, "rprop": 0.05, "asgd": 1e-3}


@pytest.mark.parametrize("name", NEW_RULES)
def test_through_the_runner_matches_torch_on_the_gradients_it_computed(rules, torch64, name):
    # descentlab's own training loop (run_chunk) on a landscape, 3 seeds stacked; a probe records θ_t and
    # ∇J(θ_t) of every run, and torch.optim replays those gradients from the same start.
    from descentlab.chunk import one_rule_experiment, run_chunk

    registry = load_registry(entry_points=False, use_env=False)
    problem = registry.problem("rosenbrock")
    instance = problem.build({s.name: s.default for s in problem.settings})
    optimizer, rows = CASES[name][1], CASES[name][2]
    ours_row, kwargs, lr = rows[1]
    hyper = {h.name: ours_row.get(h.name, h.default) for h in rules[name].hyperparams}
    experiment = one_rule_experiment(rules[name], hyper, [0, 1, 2], 30, RUNNER_LR[name])
    seen = {}

    def probe(view):
        seen[view.t] = (view.live.copy(), view.params.copy(), view.grad.copy())
        return False

    run_chunk(instance, registry, experiment, experiment.runs(), probe=probe)
    steps = sorted(seen)
    assert len(steps) >= 30 and all(len(seen[t][0]) == 3 for t in steps)
    start = seen[0][1]
    grads = np.array([seen[t][2] for t in steps[:-1]])
    ours = np.array([seen[t][1] for t in steps])
    alpha = experiment.entries[0].learning_rate[0]
    expected = torch_paths(torch64, optimizer, [kwargs] * 3, [alpha] * 3, grads, start)
    np.testing.assert_allclose(ours, expected, rtol=RTOL, atol=ATOL)
