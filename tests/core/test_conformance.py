"""descentlab check: every built-in passes, and each broken rule fails the check that names its mistake."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pytest

from descentlab import DescentRule, HyperParam, load_registry
from descentlab.conformance import CHECKS, check_rule
from descentlab.registry import _load_file

NAMES = [name for name, _ in CHECKS]


class Empty(NamedTuple):
    pass


class Velocity(NamedTuple):
    v: np.ndarray


def _init(params, hyper):
    return Empty()


def _gd(grad, state, params, lr, hyper, step):
    return -lr * grad, state


def _rule(update, init=_init, **fields):
    return DescentRule(fields.pop("name", "broken"), init, update, **fields)


def _failed(rule) -> set[str]:
    return {r.name for r in check_rule(rule) if not r.passed}


def test_every_builtin_and_example_rule_passes_every_check():
    registry = load_registry(entry_points=False, use_env=False)
    rules = dict(registry.rules)
    from pathlib import Path

    examples = Path(__file__).resolve().parents[2] / "examples" / "plugins"
    for path in sorted(examples.glob("*.py")):
        if path.name.startswith("test_"):  # a plugin's own test, not a plugin
            continue
        module = _load_file(str(path))
        if hasattr(module, "register_optimizers"):  # the others register problems or transforms
            module.register_optimizers(register=lambda rule: rules.setdefault(f"example {rule.name}", rule))
    assert {"example sign_descent", "example my_lion"} <= set(rules)
    assert len(rules) >= 10
    for name, rule in rules.items():
        failures = [f"{r.name}: {r.reason}" for r in check_rule(rule) if not r.passed]
        assert not failures, (name, failures)


def test_only_updates_returned_fails_the_contract_and_skips_the_rest():
    results = check_rule(_rule(lambda g, s, p, lr, h, t: -lr * g))
    assert not results[0].passed and "not the pair (updates, state)" in results[0].reason
    assert all(not r.passed and r.reason.startswith("skipped") for r in results[1:])


def test_writing_into_grad_is_caught():
    def update(grad, state, params, lr, hyper, step):
        grad *= -lr
        return grad, state

    assert _failed(_rule(update)) == {"never writes into grad or params"}


def test_writing_into_params_is_caught():
    def update(grad, state, params, lr, hyper, step):
        params -= lr * grad  # takes the step itself: the runner would then apply it a second time
        return -lr * grad, state

    assert "never writes into grad or params" in _failed(_rule(update))


def test_mixing_runs_is_caught():
    def update(grad, state, params, lr, hyper, step):
        return -lr * grad / np.sqrt(np.mean(grad**2)), state  # one scale over every run

    failed = _failed(_rule(update))
    assert "runs are independent" in failed
    assert "returns (updates, state) shaped and typed like params" not in failed


def test_mixing_runs_through_their_hyperparameters_is_caught():
    # one branch for the whole batch, decided by any run's flag: a grid of runs with and without it
    # gives each run what it would not get alone (with the same hyperparameters it is invisible)
    def update(grad, state, params, lr, hyper, step):
        scale = 0.5 if np.any(hyper["halve"]) else 1.0
        return -lr * grad * scale, state

    rule = _rule(update, hyperparams=(HyperParam("halve", False, kind="bool"),))
    results = {r.name: r for r in check_rule(rule)}
    independent = results["runs are independent"]
    assert not independent.passed and "different hyperparameters" in independent.reason
    assert "run 0" in independent.reason and "\n" not in independent.reason

    def fair(grad, state, params, lr, hyper, step):
        return -lr * grad * np.where(hyper["halve"] != 0, 0.5, 1.0).astype(grad.dtype), state

    assert not _failed(_rule(fair, hyperparams=(HyperParam("halve", False, kind="bool"),)))


def test_state_without_the_run_axis_is_caught_when_rows_are_dropped():
    def init(params, hyper):
        return Velocity(np.zeros((params.shape[1], params.shape[0]), params.dtype))  # (P, R): runs last

    def update(grad, state, params, lr, hyper, step):
        v = 0.9 * state.v + grad.T
        return -lr * (grad + v.T), Velocity(v)

    failed = _failed(_rule(update, init))
    assert failed == {"dropping runs' state rows leaves the others unchanged"}


def test_a_dict_state_is_dropped_by_rows_as_the_runner_drops_it():
    # the runner (chunk._take_rows) drops rows of NamedTuple, tuple and dict states alike: a dict is not a fault
    def init(params, hyper):
        return {"velocity": np.zeros_like(params)}

    def update(grad, state, params, lr, hyper, step):
        v = 0.9 * state["velocity"] + grad
        return -lr * v, {"velocity": v}

    assert not _failed(_rule(update, init))

    def init_runs_last(params, hyper):
        return {"velocity": np.zeros((params.shape[1], params.shape[0]), params.dtype)}

    def update_runs_last(grad, state, params, lr, hyper, step):
        v = 0.9 * state["velocity"] + grad.T
        return -lr * (grad + v.T), {"velocity": v}

    assert _failed(_rule(update_runs_last, init_runs_last)) == {"dropping runs' state rows leaves the others unchanged"}


def test_randomness_is_caught_as_non_determinism():
    def update(grad, state, params, lr, hyper, step):
        return -lr * grad * (1 + 0.01 * np.random.standard_normal(grad.shape)), state

    assert "deterministic" in _failed(_rule(update))


def test_float64_updates_for_float32_params_are_caught():
    def update(grad, state, params, lr, hyper, step):
        return np.asarray(-lr * grad, dtype=np.float64), state

    assert _failed(_rule(update)) == {"float32 stays float32"}


def test_undeclared_motion_at_zero_gradient_is_caught():
    def update(grad, state, params, lr, hyper, step):
        return -lr * (grad + 0.1 * params), state

    rule = _rule(update)
    assert _failed(rule) == {"a zero gradient is a fixed point"}
    assert not _failed(_rule(update, moves_without_gradient=True))


def test_a_declared_but_unused_hyperparameter_is_caught():
    rule = _rule(_gd, hyperparams=(HyperParam("momentum", 0.9, low=0.0, high=0.99),))
    failed = check_rule(rule)
    unused = next(r for r in failed if r.name == "every declared hyperparameter is used")
    assert not unused.passed and "momentum" in unused.reason


def test_a_flag_that_matters_only_with_another_hyperparameter_moved_counts_as_used():
    # NAdam's decoupled_weight_decay changes nothing at weight_decay = 0, its default
    def update(grad, state, params, lr, hyper, step):
        decay = hyper["weight_decay"] * params
        decoupled = hyper["decoupled"] != 0
        return -lr * (np.where(decoupled, grad, grad + decay) + np.where(decoupled, decay * 0.5, 0.0)), state

    flag = HyperParam("decoupled", False, kind="bool")
    assert not _failed(_rule(update, hyperparams=(HyperParam("weight_decay", 0.0, low=0.0), flag)))
    # a flag that never matters is still caught beside another hyperparameter
    unused = _rule(_gd, hyperparams=(HyperParam("weight_decay", 0.0, low=0.0), flag))
    reason = next(r.reason for r in check_rule(unused) if r.name == "every declared hyperparameter is used")
    assert "decoupled" in reason and "weight_decay" in reason


def test_a_rule_that_ignores_the_learning_rate_is_caught():
    def update(grad, state, params, lr, hyper, step):
        return -0.01 * grad, state  # a hard-coded step size: α, and every schedule, silently ignored

    reason = next(r.reason for r in check_rule(_rule(update)) if r.name == "every declared hyperparameter is used")
    assert "learning_rate" in reason


def test_a_choice_hyperparameter_is_varied_through_its_choices():
    def update(grad, state, params, lr, hyper, step):
        scale = np.where(hyper["norm"] == "sign", 1.0, 0.0).astype(grad.dtype)
        return -lr * (scale * np.sign(grad) + (1 - scale) * grad), state

    used = HyperParam("norm", "none", kind="choice", choices=("none", "sign"))
    assert not _failed(_rule(update, hyperparams=(used,)))
    unused = _rule(_gd, hyperparams=(used,))
    reason = next(r.reason for r in check_rule(unused) if r.name == "every declared hyperparameter is used")
    assert "norm (tried 'sign')" in reason


def test_a_hyperparameter_that_breaks_at_its_bound_is_caught():
    def update(grad, state, params, lr, hyper, step):
        with np.errstate(all="ignore"):
            return -lr * grad / (1.0 - hyper["beta"]), state

    rule = _rule(update, hyperparams=(HyperParam("beta", 0.5, low=0.0, high=1.0),))
    assert _failed(rule) == {"hyperparameters work at their bounds"}


@pytest.mark.parametrize("declared, fails", [(2.0, False), (4.0, True), (1.0, True), (2.03, True), (1.97, True)])
def test_a_declared_threshold_is_confirmed_on_a_quadratic(declared, fails):
    rule = _rule(_gd, stability_threshold=lambda hyper: declared)  # GD's true threshold is 2 (|1 − αλ| < 1)
    assert ("the declared stability threshold holds on a quadratic" in _failed(rule)) == fails


THRESHOLD = "the declared stability threshold holds on a quadratic"


def _reason(rule, name=THRESHOLD):
    return next(r.reason for r in check_rule(rule) if r.name == name)


def test_a_threshold_off_by_two_percent_names_the_measured_bracket():
    reason = _reason(_rule(_gd, stability_threshold=lambda hyper: 2.04))
    # |1 − αλ| < 1: the grid's points nearest α·λ = 2 are 2·1.01^(±½) = 1.99 and 2.01
    assert "α·λ < 2.04 at the defaults" in reason and "last stable α·λ is 1.99 and the first diverging 2.01" in reason
    assert "\n" not in reason


def _heavy_ball(threshold):
    """PyTorch-style heavy ball v ← μv + g, θ ← θ − αv: on ½λθ² stable iff αλ < 2 + 2μ (the roots of
    z² − (1 + μ − αλ)z + μ inside the unit circle)."""

    def init(params, hyper):
        return Velocity(np.zeros_like(params))

    def update(grad, state, params, lr, hyper, step):
        v = hyper["momentum"] * state.v + grad
        return -lr * v, Velocity(v)

    momentum = HyperParam("momentum", 0.9, low=0.0, high=1.0, high_open=True)
    return _rule(update, init, hyperparams=(momentum,), stability_threshold=threshold)


def test_a_threshold_right_only_at_the_defaults_fails_at_another_setting():
    def mu(hyper):
        return float(np.asarray(hyper["momentum"]).reshape(-1)[0])

    assert not _failed(_heavy_ball(lambda hyper: 2 + 2 * mu(hyper)))
    reason = _reason(_heavy_ball(lambda hyper: 3.8))  # 2 + 2·0.9, whatever μ is
    assert "α·λ < 3.8 at momentum=0.45" in reason  # the edge there is 2 + 2·0.45 = 2.9
    last, first = (float(x) for x in reason.split("last stable α·λ is ")[1].split(" and the first diverging "))
    assert last < 2.9 < first and first / last < 1.011


def test_l2_weight_decay_moves_the_edge_to_c_over_lambda_plus_decay():
    # g + wθ on ½λθ²: GD stable iff α(λ + w) < 2, the convention of descentlab.stability
    def update(grad, state, params, lr, hyper, step):
        return -lr * (grad + hyper["weight_decay"] * params), state

    decay = HyperParam("weight_decay", 0.0, low=0.0)
    assert not _failed(_rule(update, hyperparams=(decay,), stability_threshold=lambda hyper: 2.0))


def test_a_raising_rule_is_reported_in_one_line():
    def update(grad, state, params, lr, hyper, step):
        raise KeyError("exp_avg\nsecond line")

    (first, *_) = check_rule(_rule(update))
    assert not first.passed and first.reason.startswith("raised KeyError") and "\n" not in first.reason
    # named by the file and line where the rule raised, as every plugin fault is
    line = next(n for n, text in enumerate(open(__file__, encoding="utf-8"), 1) if 'raise KeyError("exp_avg' in text)
    assert f"raised KeyError at {__file__}:{line}: " in first.reason


def test_testing_helper_raises_naming_every_failed_check():
    from descentlab.testing import check_rule as assert_rule

    def update(grad, state, params, lr, hyper, step):
        grad *= -lr
        return np.asarray(grad, dtype=np.float64), state

    with pytest.raises(AssertionError) as error:
        assert_rule(_rule(update, name="leaky"))
    text = str(error.value)
    assert "rule 'leaky' fails 2 of" in text
    assert "never writes into grad or params" in text and "float32 stays float32" in text
    assert len(assert_rule(_rule(_gd))) == len(CHECKS)


def test_a_hyperparameter_that_matters_only_under_a_changing_learning_rate_counts_as_used():
    # weighted by a power of α_t/α₀ (as schedule-free weights its average by (max α)^p): a constant α never shows it
    class First(NamedTuple):
        first: np.ndarray

    def init(params, hyper):
        return First(np.zeros((params.shape[0], 1), params.dtype))

    def update(grad, state, params, lr, hyper, step):
        if step == 0:
            state.first[...] = lr
        return -lr * grad * (lr / state.first) ** hyper["power"], state

    rule = _rule(update, init, hyperparams=(HyperParam("power", 2.0, low=0.0),))
    assert not _failed(rule)


def test_a_rule_that_uses_the_layout_is_given_one_matching_the_checks_params():
    from descentlab.conformance import LAYOUT, PARAMS

    seen = []

    def init(params, hyper, layout=None):
        seen.append(layout)
        return Empty()

    assert not _failed(_rule(_gd, init, uses_layout=True))
    assert LAYOUT.size == PARAMS and seen and all(layout == LAYOUT for layout in seen)
    assert _rule(_gd).start(np.zeros((1, PARAMS)), {}, LAYOUT) == Empty()  # others are called as init(params, hyper)
