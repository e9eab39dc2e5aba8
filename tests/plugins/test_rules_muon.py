"""Muon (plugins/rules_muon.py) against torch.optim.Muon and by hand.

torch runs its Newton–Schulz iteration in bfloat16; descentlab in the runs' dtype. The exact comparison
therefore runs torch's own step with its iteration's source text changed in one place, ``grad.bfloat16()``
to ``grad.clone()`` (float64), so every other line is torch's; a second comparison with torch as shipped
holds to bfloat16's precision. The hand-computed first step needs no torch.
"""

from __future__ import annotations

import inspect

import numpy as np
import pytest

from descentlab.layout import ParamLayout
from descentlab.registry import load_registry

# two matrices, one wide and one tall (the iteration transposes a tall one), and a bias
LAYOUT = ParamLayout([("W1", (3, 5), "layer 1"), ("b1", (5,), "layer 1"), ("W2", (5, 2), "layer 2")])
STEPS = 12


@pytest.fixture(scope="module")
def rule():
    registry = load_registry(entry_points=False, use_env=False)
    assert registry.errors == []
    return registry.rules["muon"]


def hyper_rows(rule, rows):
    out = {}
    for h in rule.hyperparams:
        values = [row.get(h.name, h.default) for row in rows]
        out[h.name] = (
            np.array([[v] for v in values], dtype=object)
            if h.kind == "choice"
            else np.array([[float(v)] for v in values])
        )
    return out


def ours_path(rule, rows, rates, grads, start, layout=LAYOUT):
    hyper = hyper_rows(rule, rows)
    params = np.array(start, dtype=float)
    state = rule.start(params, hyper, layout)
    path = [params.copy()]
    for t, grad in enumerate(grads):
        before = grad.copy(), params.copy()
        updates, state = rule.update(grad, state, params, rates[:, t : t + 1], hyper, t)
        np.testing.assert_array_equal(grad, before[0])
        np.testing.assert_array_equal(params, before[1])
        params = params + updates
        path.append(params.copy())
    return np.array(path)


def torch_matrices(torch, row, rates, grads, start, float64_iteration):
    """torch.optim.Muon over the layout's matrices of one run (its nn.Linear-style (out, in) = Wᵀ), the
    group's lr set before each step; returns {name: (steps + 1, n_in, n_out)}."""
    import torch.optim._muon as muon_module

    original = muon_module._zeropower_via_newtonschulz
    if float64_iteration:
        source = inspect.getsource(original)
        assert source.count("grad.bfloat16()") == 1
        namespace: dict = {}
        exec(source.replace("grad.bfloat16()", "grad.clone()"), muon_module.__dict__, namespace)
        muon_module._zeropower_via_newtonschulz = namespace["_zeropower_via_newtonschulz"]
    try:
        entries = [e for e in LAYOUT.entries if len(e.shape) == 2]
        tensors = {
            e.name: torch.tensor(LAYOUT.view(start[None], e.name)[0].T.copy(), dtype=torch.float64, requires_grad=True)
            for e in entries
        }
        kwargs = {
            "momentum": row.get("momentum", 0.95),
            "nesterov": row.get("nesterov", True),
            "weight_decay": row.get("weight_decay", 0.1),
            "ns_coefficients": (row.get("ns_a", 3.4445), row.get("ns_b", -4.775), row.get("ns_c", 2.0315)),
            "ns_steps": row.get("ns_steps", 5),
            "eps": row.get("eps", 1e-7),
            "adjust_lr_fn": row.get("adjust_lr_fn"),
        }
        opt = torch.optim.Muon(list(tensors.values()), lr=float(rates[0]), **kwargs)
        out = {name: [t.detach().numpy().T.copy()] for name, t in tensors.items()}
        for step, grad in enumerate(grads):
            opt.param_groups[0]["lr"] = float(rates[step])
            for e in entries:
                tensors[e.name].grad = torch.tensor(LAYOUT.view(grad[None], e.name)[0].T.copy(), dtype=torch.float64)
            opt.step()
            for name, t in tensors.items():
                out[name].append(t.detach().numpy().T.copy())
        return {name: np.array(v) for name, v in out.items()}
    finally:
        muon_module._zeropower_via_newtonschulz = original


ROWS = [
    {},  # torch's defaults
    {"nesterov": False, "adjust_lr_fn": "match_rms_adamw", "weight_decay": 0.0},
    {"momentum": 0.5, "ns_steps": 3, "weight_decay": 0.3, "eps": 1e-3},
    {"ns_a": 2.0, "ns_b": -1.5, "ns_c": 0.5, "ns_steps": 7, "momentum": 0.0},
]


def problem(seed=0):
    rng = np.random.default_rng(seed)
    start = rng.normal(size=(len(ROWS), LAYOUT.size))
    grads = rng.normal(size=(STEPS, len(ROWS), LAYOUT.size))
    rates = 0.02 * (1.0 + 0.5 * np.sin(np.arange(STEPS)))[None, :] * np.array([1.0, 2.0, 0.5, 1.5])[:, None]
    return start, grads, rates


@pytest.fixture(scope="module")
def torch64():
    torch = pytest.importorskip("torch")
    if not hasattr(torch.optim, "Muon"):
        pytest.skip("torch.optim.Muon needs a newer torch")
    return torch


def test_rows_stacked_match_torchs_muon_step_with_a_float64_iteration(rule, torch64):
    start, grads, rates = problem()
    ours = ours_path(rule, ROWS, rates, grads, start)
    for r, row in enumerate(ROWS):
        expected = torch_matrices(torch64, row, rates[r], grads[:, r], start[r], float64_iteration=True)
        for name, path in expected.items():
            got = np.array([LAYOUT.view(p[r : r + 1], name)[0] for p in ours])
            np.testing.assert_allclose(got, path, rtol=1e-12, atol=1e-14, err_msg=f"row {r} {name}")


def test_rows_stacked_match_torch_as_shipped_to_bfloat16_precision(rule, torch64):
    start, grads, rates = problem(1)
    ours = ours_path(rule, ROWS, rates, grads, start)
    for r, row in enumerate(ROWS):
        expected = torch_matrices(torch64, row, rates[r], grads[:, r], start[r], float64_iteration=False)
        for name, path in expected.items():
            got = np.array([LAYOUT.view(p[r : r + 1], name)[0] for p in ours])
            moved = np.abs(path[-1] - path[0]).max()
            assert np.abs(got - path).max() < 0.05 * moved, (r, name)


def test_muon_first_step_by_hand_on_a_row_matrix_and_a_bias(rule):
    # A 1 × n matrix has one singular value: U/‖U‖ has σ = 1, and each Newton–Schulz iteration maps σ to
    # aσ + bσ³ + cσ⁵, so O = f⁵(1)·U/‖U‖. With B₁ = (1 − μ)g and nesterov, U = g + μ(B₁ − g) = (1 − μ²)g,
    # so O = f⁵(1)·g/‖g‖. α' = α√max(1, n/1) for 'original'. The bias takes α·U. θ₁ = θ₀(1 − αλ) − α'O.
    layout = ParamLayout([("W", (1, 4), "l"), ("b", (2,), "l")])
    g = np.array([0.3, -2.0, 0.5, 1.0, 0.4, -0.1])
    theta = np.array([1.0, -0.5, 2.0, 0.25, 0.1, 0.2])
    lr, mu, lam = 0.1, 0.9, 0.2
    sigma = 1.0
    for _ in range(5):
        sigma = 3.4445 * sigma - 4.775 * sigma**3 + 2.0315 * sigma**5
    matrix = theta[:4] * (1 - lr * lam) - lr * 2.0 * sigma * g[:4] / np.linalg.norm(g[:4])
    bias = theta[4:] * (1 - lr * lam) - lr * (1 - mu**2) * g[4:]
    got = ours_path(
        rule, [{"momentum": mu, "weight_decay": lam}], np.array([[lr]]), g[None, None], theta[None], layout
    )[1, 0]
    np.testing.assert_allclose(got, np.concatenate([matrix, bias]), rtol=1e-14)


def test_without_a_layout_the_row_is_one_vector_taking_the_momentum_step(rule):
    # a landscape's point: no matrix, so B ← (1 − μ)g and U = (1 − μ²)g on the first step
    g, theta = np.array([[1.0, -2.0]]), np.array([[0.5, 0.5]])
    got = ours_path(rule, [{"weight_decay": 0.0}], np.array([[0.1]]), g[None], theta, layout=None)[1]
    np.testing.assert_allclose(got, theta - 0.1 * (1 - 0.95**2) * g, rtol=1e-15)


def test_muon_defaults_are_torchs(rule, torch64):
    defaults = torch64.optim.Muon([torch64.zeros(2, 2, requires_grad=True)]).defaults
    own = {h.name: h.default for h in rule.hyperparams}
    assert rule.default_learning_rate == defaults["lr"]
    assert (own["ns_a"], own["ns_b"], own["ns_c"]) == tuple(defaults["ns_coefficients"])
    for name in ("momentum", "nesterov", "weight_decay", "ns_steps", "eps"):
        assert own[name] == defaults[name], name
    assert defaults["adjust_lr_fn"] is None and own["adjust_lr_fn"] == "original"  # torch's None is "original"
