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


def test_state_without_the_run_axis_is_caught_when_rows_are_dropped():
    def init(params, hyper):
        return Velocity(np.zeros((params.shape[1], params.shape[0]), params.dtype))  # (P, R): runs last

    def update(grad, state, params, lr, hyper, step):
        v = 0.9 * state.v + grad.T
        return -lr * (grad + v.T), Velocity(v)

    failed = _failed(_rule(update, init))
    assert failed == {"dropping runs' state rows leaves the others unchanged"}


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


def test_a_hyperparameter_that_breaks_at_its_bound_is_caught():
    def update(grad, state, params, lr, hyper, step):
        with np.errstate(all="ignore"):
            return -lr * grad / (1.0 - hyper["beta"]), state

    rule = _rule(update, hyperparams=(HyperParam("beta", 0.5, low=0.0, high=1.0),))
    assert _failed(rule) == {"hyperparameters work at their bounds"}


@pytest.mark.parametrize("declared, fails", [(2.0, False), (4.0, True), (1.0, True)])
def test_a_declared_threshold_is_confirmed_on_a_quadratic(declared, fails):
    rule = _rule(_gd, stability_threshold=lambda hyper: declared)  # GD's true threshold is 2
    assert ("the declared stability threshold holds on a quadratic" in _failed(rule)) == fails


def test_a_raising_rule_is_reported_in_one_line():
    def update(grad, state, params, lr, hyper, step):
        raise KeyError("exp_avg\nsecond line")

    (first, *_) = check_rule(_rule(update))
    assert not first.passed and first.reason.startswith("raised KeyError") and "\n" not in first.reason


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
