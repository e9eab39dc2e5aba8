"""``descentlab check``: a fixed battery of conformance checks that any descent rule must pass.

Each check states one clause of the rule contract (``descentlab.DescentRule``) and runs the rule on
inputs where the right answer is known without trusting the rule: a copy of the inputs, the same
runs computed alone, a zero gradient, a quadratic whose stability edge is c/λ. A check returns a
:class:`CheckResult` with a one-line reason; :func:`check_rule` runs them all and never raises
for a broken rule (the reason names what the rule did).
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple

import numpy as np

from .declarations import DescentRule
from .faults import where, wrote_into
from .layout import ParamLayout

__all__ = [
    "GRID_STEP",
    "GRID_POINTS",
    "EDGE_STEPS",
    "LAYOUT",
    "CheckResult",
    "check_contract",
    "check_no_writes",
    "check_runs_independent",
    "check_dropping_rows",
    "check_deterministic",
    "check_float32",
    "check_zero_gradient",
    "check_hyperparameters_used",
    "check_bounds",
    "check_stability_threshold",
    "CHECKS",
    "check_rule",
    "SKIPPED",
    "format_table",
    "one_line_reason",
]

RUNS, PARAMS, STEPS = 3, 5, 6  # small enough to run in milliseconds, big enough to mix rows
# The stability check's grid of α: c/λ · (1 + GRID_STEP)^(k + ½) for k = −GRID_POINTS .. GRID_POINTS − 1,
# from about half to twice c/λ, the two points nearest the edge ±0.5 % from it.
GRID_STEP = 0.01
GRID_POINTS = 70
EDGE_STEPS = 4000  # steps on the quadratic: a contraction 0.5 % from the edge still shows in this many
# what a rule that ``uses_layout`` is told the PARAMS columns hold: a 2×2 matrix and a vector of 1
LAYOUT = ParamLayout([("weight", (2, 2), "layer"), ("bias", (1,), "layer")])


class CheckResult(NamedTuple):
    """One conformance check: its name, whether the rule passed it, and why not."""

    name: str
    passed: bool
    reason: str = ""


def _hyper(rule: DescentRule, runs: int, dtype, overrides: dict | None = None) -> dict[str, np.ndarray]:
    """Every declared hyperparameter as an (R, 1) array of its default (flags 0.0/1.0), as the runner passes them."""
    out = {}
    for h in rule.hyperparams:
        value = (overrides or {}).get(h.name, h.default)
        if isinstance(value, (bool, int, float)):
            out[h.name] = np.full((runs, 1), float(value), dtype=dtype)
        else:
            out[h.name] = np.full((runs, 1), value, dtype=object)
    return out


def _mixed_rows(rule: DescentRule) -> list[dict]:
    """One setting per run of the checks' stacks (RUNS = 3): the defaults, every hyperparameter moved off
    its default, and every flag on. Runs of one batch then differ in their hyperparameters too, as a grid's
    do, so a value computed across the batch's hyperparameters (a max over runs, a branch decided for
    all of them) shows."""
    moved = {h.name: values[0] for h in rule.hyperparams if (values := _other_values(h))}
    flags = {h.name: not h.default for h in rule.hyperparams if h.kind == "bool"}
    return [{}, moved, flags]


def _hyper_rows(rule: DescentRule, rows: list[dict], dtype) -> dict[str, np.ndarray]:
    """Every declared hyperparameter as an (R, 1) array, run r taking ``rows[r]`` (else the default)."""
    out = {}
    for h in rule.hyperparams:
        values = [row.get(h.name, h.default) for row in rows]
        if all(isinstance(v, (bool, int, float)) for v in values):
            out[h.name] = np.array([[float(v)] for v in values], dtype=dtype)
        else:
            out[h.name] = np.array([[v] for v in values], dtype=object)
    return out


def _same(a, b) -> bool:
    """Bit for bit, a NaN equal to a NaN (a run that overflowed is a result here too)."""
    return np.array_equal(a, b, equal_nan=True)


def _start(rule: DescentRule, params, hyper):
    """``rule.init`` as the runner calls it: with :data:`LAYOUT` for a rule that uses the layout."""
    return rule.start(params, hyper, LAYOUT if params.shape[1] == LAYOUT.size else None)


def _inputs(dtype, runs: int = RUNS, seed: int = 0):
    rng = np.random.default_rng(seed)
    params = rng.standard_normal((runs, PARAMS)).astype(dtype)
    grads = [rng.standard_normal((runs, PARAMS)).astype(dtype) for _ in range(STEPS)]
    rates = np.linspace(0.01, 0.03, runs).reshape(runs, 1).astype(dtype)
    return params, grads, rates


def _trajectory(rule: DescentRule, params, grads, rates, hyper, keep_rows=None):
    """Parameters after each update, with the runner's conventions (``params += updates``). With
    ``keep_rows``, only those runs go on after the second update, their state rows taken as the
    runner takes them when other runs diverge. ``rates`` is (R, 1), or (R, steps) for an α_t that
    changes (column t at step t)."""
    params = params.copy()
    state = _start(rule, params, hyper)
    out = []
    for step, grad in enumerate(grads):
        if keep_rows is not None and step == 2:
            state = _take(state, keep_rows, params.shape[0])
            params, rates = params[keep_rows], rates[keep_rows]
            hyper = {k: v[keep_rows] for k, v in hyper.items()}
        if keep_rows is not None and step >= 2:
            grad = grad[keep_rows]
        with np.errstate(all="ignore"):  # an overflowing step is a result here, not an error
            rate = rates if rates.shape[1] == 1 else rates[:, step : step + 1]
            updates, state = rule.update(grad.copy(), state, params, rate, hyper, step)
            params = params + np.asarray(updates)
        out.append(params.copy())
    return out


def _take(state, rows, n_rows):
    """The state with only ``rows`` of its run axis, by the runner's own code for diverged runs
    (NamedTuples, tuples, dicts and arrays alike), so the check drops rows exactly as a run would."""
    from .chunk import _take_rows

    keep = np.zeros(n_rows, dtype=bool)
    keep[rows] = True
    return _take_rows(state, keep, n_rows)


def _result(name: str, check: Callable[[], str], rule: DescentRule | None = None) -> CheckResult:
    try:
        reason = check()
    except KeyboardInterrupt:
        raise
    except BaseException as error:  # a broken rule is reported, never raised (sys.exit in it too)
        message = " ".join(str(error).split()) or type(error).__name__
        # where it raised: the deepest frame in the rule's own code (its init, update, threshold ...)
        code = [] if rule is None else [rule.init, rule.update, rule.stability_threshold]
        place = where(error, *[c for c in code if c is not None]) if code else ""
        at = f" at {place}" if place else ""
        return CheckResult(name, False, f"raised {type(error).__name__}{at}: {message}"[:400])
    return CheckResult(name, not reason, reason)


def check_contract(rule: DescentRule, dtype=np.float64) -> str:
    params, grads, rates = _inputs(dtype)
    hyper = _hyper(rule, RUNS, dtype)
    state = _start(rule, params.copy(), hyper)
    result = rule.update(grads[0].copy(), state, params.copy(), rates, hyper, 0)
    if not (isinstance(result, tuple) and len(result) == 2):
        return f"update returned {type(result).__name__}, not the pair (updates, state): return updates, state"
    updates = np.asarray(result[0])
    if updates.shape != params.shape:
        return f"updates have shape {updates.shape}, params {params.shape}: return one update per parameter"
    if updates.dtype != params.dtype:
        return f"updates are {updates.dtype} for {params.dtype} params: keep the params' dtype"
    return ""


def check_no_writes(rule: DescentRule) -> str:
    params, grads, rates = _inputs(np.float64)
    hyper = _hyper(rule, RUNS, np.float64)
    p, g = params.copy(), grads[0].copy()
    state = _start(rule, p, hyper)
    for step in range(3):
        state = rule.update(g, state, p, rates, hyper, step)[1]
    return wrote_into(params, p, grads[0], g)


def check_runs_independent(rule: DescentRule) -> str:
    params, grads, rates = _inputs(np.float64)
    for rows, what in (([{}] * RUNS, "the same hyperparameters"), (_mixed_rows(rule), "different hyperparameters")):
        together = _trajectory(rule, params, grads, rates, _hyper_rows(rule, rows, np.float64))
        for r in range(RUNS):
            alone = _trajectory(
                rule,
                params[r : r + 1],
                [g[r : r + 1] for g in grads],
                rates[r : r + 1],
                _hyper_rows(rule, rows[r : r + 1], np.float64),
            )
            for step, (a, b) in enumerate(zip(alone, together)):
                if not _same(a[0], b[r]):
                    with np.errstate(all="ignore"):
                        gap = float(np.nanmax(np.abs(a[0] - b[r]), initial=0.0))
                    moved = {k: v for k, v in rows[r].items()}
                    return (
                        f"run {r} stacked with others of {what} differs from run {r} alone at step {step} "
                        f"(max gap {gap:.3g}{f'; run {r} has {moved}' if moved else ''}): no value may mix runs"
                    )
    return ""


def check_dropping_rows(rule: DescentRule) -> str:
    params, grads, rates = _inputs(np.float64)
    keep = np.array([0, 2])
    hyper = _hyper_rows(rule, _mixed_rows(rule), np.float64)  # run 1, dropped, differs from both kept runs
    full = _trajectory(rule, params, grads, rates, hyper)
    kept = _trajectory(rule, params, grads, rates, hyper, keep_rows=keep)
    for step in range(2, STEPS):
        if not _same(kept[step], full[step][keep]):
            return (
                f"after dropping run 1 from the state (as the runner does for a diverged run), runs 0 and 2 "
                f"changed at step {step}: every state field needs the run axis first"
            )
    return ""


def check_deterministic(rule: DescentRule) -> str:
    params, grads, rates = _inputs(np.float64)
    first = _trajectory(rule, params, grads, rates, _hyper(rule, RUNS, np.float64))
    second = _trajectory(rule, params, grads, rates, _hyper(rule, RUNS, np.float64))
    for step, (a, b) in enumerate(zip(first, second)):
        if not np.array_equal(a, b):
            return f"the same inputs gave different bits at step {step}"
    return ""


def check_float32(rule: DescentRule) -> str:
    reason = check_contract(rule, np.float32)
    return reason and f"float32: {reason}"


def check_zero_gradient(rule: DescentRule) -> str:
    if rule.moves_without_gradient:
        return ""
    params, _, rates = _inputs(np.float64)
    zeros = [np.zeros_like(params) for _ in range(STEPS)]
    path = _trajectory(rule, params, zeros, rates, _hyper(rule, RUNS, np.float64))
    moved = max(float(np.max(np.abs(p - params))) for p in path)
    if not moved == 0.0:
        return (
            f"a zero gradient moved the parameters by up to {moved:.3g}; a rule that should (decoupled "
            "weight decay) declares moves_without_gradient=True"
        )
    return ""


def _other_values(h):
    """Values of ``h`` inside its bounds that differ from its default (none for kinds one cannot vary).

    Several, tried in turn: a bound such as Rprop's largest step size 50 changes a step only once it
    is below the step sizes the check's few small steps reach, which 100 (twice the default) is not."""
    if h.kind == "bool":
        return [not h.default]
    if h.kind == "choice":
        return [c for c in h.choices if c != h.default]
    if h.kind not in ("float", "int"):
        return []
    low = h.low if h.low is not None else -math.inf
    high = h.high if h.high is not None else math.inf
    candidates = ([h.default * 2, h.default / 2] if h.default else []) + [
        h.default + 0.5,
        h.default - 0.5,
        h.default + 0.05,
        0.5,
        1e-3,
    ]
    values = []
    for value in candidates:
        value = int(round(value)) if h.kind == "int" else float(value)
        if value == h.default or value in values:
            continue
        try:
            h.check(value)
        except Exception:
            continue
        if low <= value <= high:
            values.append(value)
    return values


def check_hyperparameters_used(rule: DescentRule) -> str:
    params, grads, rates = _inputs(np.float64)
    base = _trajectory(rule, params, grads, rates, _hyper(rule, RUNS, np.float64))
    # a rising α_t, as a warmup makes it: schedule-free's weight_lr_power weights its average by max α^p,
    # which a constant α leaves unchanged
    rising = rates * (1.0 + 0.5 * np.arange(STEPS, dtype=rates.dtype))
    base_rising = None
    unused = []
    # the learning rate is every rule's first hyperparameter, set by the runner: α doubled must change a step
    doubled = _trajectory(rule, params, grads, rates * 2.0, _hyper(rule, RUNS, np.float64))
    if all(_same(a, b) for a, b in zip(doubled, base)):
        unused.append("learning_rate (tried α doubled)")
    for h in rule.hyperparams:
        values = _other_values(h)
        if not values:
            continue
        # a flag or rate may only matter together with another (dampening with momentum, NAdam's
        # decoupled_weight_decay with a weight_decay > 0): vary from the defaults, with every other flag
        # switched on, and with each other hyperparameter moved off its default in turn
        flags_on = {o.name: True for o in rule.hyperparams if o.kind == "bool" and o.name != h.name}
        moved = [{o.name: _other_values(o)[0]} for o in rule.hyperparams if o.name != h.name and _other_values(o)]
        changed = False
        for value in values:
            for extra in ({}, flags_on, *moved):
                path = _trajectory(rule, params, grads, rates, _hyper(rule, RUNS, np.float64, {**extra, h.name: value}))
                reference = (
                    base
                    if not extra
                    else _trajectory(rule, params, grads, rates, _hyper(rule, RUNS, np.float64, extra))
                )
                if any(not np.array_equal(a, b) for a, b in zip(path, reference)):
                    changed = True
                    break
            if not changed:
                base_rising = base_rising or _trajectory(rule, params, grads, rising, _hyper(rule, RUNS, np.float64))
                path = _trajectory(rule, params, grads, rising, _hyper(rule, RUNS, np.float64, {h.name: value}))
                changed = any(not np.array_equal(a, b) for a, b in zip(path, base_rising))
            if changed:
                break
        if not changed:
            unused.append(f"{h.name} (tried {', '.join(repr(v) for v in values)})")
    if unused:
        return f"declared but never changes a step: {', '.join(unused)}"
    return ""


def check_bounds(rule: DescentRule) -> str:
    params, grads, rates = _inputs(np.float64)
    for h in rule.hyperparams:
        for bound, open_ in ((h.low, h.low_open), (h.high, h.high_open)):
            if bound is None or open_ or h.kind not in ("float", "int"):
                continue
            path = _trajectory(rule, params, grads, rates, _hyper(rule, RUNS, np.float64, {h.name: bound}))
            if not all(np.isfinite(p).all() for p in path):
                return f"{h.name} = {bound:g} is accepted by its declaration but gives non-finite steps"
    return ""


def _threshold_settings(rule: DescentRule) -> list[dict]:
    """The hyperparameter settings the declared threshold is confirmed at: the defaults, then each
    hyperparameter in turn moved to another value inside its bounds (a threshold formula right only
    at the defaults, or one that ignores a hyperparameter the edge depends on, fails at one of them)."""
    defaults = {h.name: h.default for h in rule.hyperparams}
    return [defaults] + [{**defaults, h.name: value} for h in rule.hyperparams for value in _other_values(h)[:1]]


def _describe_setting(setting: dict, defaults: dict) -> str:
    moved = [f"{k}={v!r}" for k, v in setting.items() if v != defaults.get(k)]
    return " at " + ", ".join(moved) if moved else " at the defaults"


def check_stability_threshold(rule: DescentRule) -> str:
    """On J = ½λθ², α on a grid of ratio 1 + GRID_STEP around c/λ (no point on c/λ itself): the last
    stable α and the first diverging one must bracket c/λ, at the defaults and with each
    hyperparameter moved in turn (:func:`_threshold_settings`)."""
    if rule.stability_threshold is None:
        return ""
    from .stability import _effective_eigenvalue

    defaults = {h.name: h.default for h in rule.hyperparams}
    curvature = 2.0  # J = ½λθ² with λ = 2
    exponents = np.arange(-GRID_POINTS, GRID_POINTS) + 0.5
    for setting in _threshold_settings(rule):
        c = rule.stability_threshold(setting)
        if c is None or not math.isfinite(float(c)):
            continue
        c = float(c)
        # the edge is c over the curvature the step sees: an L2 weight_decay w adds w to it, as in
        # descentlab.stability (the gradient λθ becomes (λ + w)θ)
        lam = _effective_eigenvalue(curvature, setting)
        alphas = c / lam * (1.0 + GRID_STEP) ** exponents
        runs = len(alphas)
        params = np.ones((runs, 1))
        hyper = _hyper(rule, runs, np.float64, setting)
        state = _start(rule, params, hyper)
        rates = alphas.reshape(runs, 1)
        start = 0.5 * curvature
        with np.errstate(all="ignore"):
            for step in range(EDGE_STEPS):
                updates, state = rule.update(curvature * params, state, params, rates, hyper, step)
                params = params + updates
            loss = 0.5 * curvature * params[:, 0] ** 2
        stable = loss < start  # False for NaN and inf too
        where = _describe_setting(setting, defaults)
        grid = f"α·λ from {alphas[0] * lam:.4g} to {alphas[-1] * lam:.4g}, ratio {1 + GRID_STEP:g}"
        if lam != curvature:
            grid += f", λ = {curvature:g} + weight_decay"
        if not stable.any():
            return (
                f"declared stable iff α·λ < {c:g}{where}, but no α on the grid ({grid}) converged on "
                f"J = ½·{curvature:g}θ² in {EDGE_STEPS} steps"
            )
        if stable.all():
            return (
                f"declared stable iff α·λ < {c:g}{where}, but every α on the grid ({grid}) converged on "
                f"J = ½·{curvature:g}θ² in {EDGE_STEPS} steps"
            )
        last_stable, first_diverging = alphas[stable].max() * lam, alphas[~stable].min() * lam
        if not last_stable < c < first_diverging:
            return (
                f"declared stable iff α·λ < {c:g}{where}, but on J = ½·{curvature:g}θ² ({EDGE_STEPS} steps) the last "
                f"stable α·λ is {last_stable:.4g} and the first diverging {first_diverging:.4g}"
            )
    return ""


CHECKS: tuple[tuple[str, Callable[[DescentRule], str]], ...] = (
    ("returns (updates, state) shaped and typed like params", check_contract),
    ("float32 stays float32", check_float32),
    ("never writes into grad or params", check_no_writes),
    ("runs are independent", check_runs_independent),
    ("dropping runs' state rows leaves the others unchanged", check_dropping_rows),
    ("deterministic", check_deterministic),
    ("a zero gradient is a fixed point", check_zero_gradient),
    ("every declared hyperparameter is used", check_hyperparameters_used),
    ("hyperparameters work at their bounds", check_bounds),
    ("the declared stability threshold holds on a quadratic", check_stability_threshold),
)


def check_rule(rule: DescentRule) -> list[CheckResult]:
    """Every conformance check on ``rule``, in order; a failing check does not stop the others."""

    def bound(check: Callable[[DescentRule], str]) -> Callable[[], str]:
        return lambda: check(rule)

    results = [_result(name, bound(check), rule) for name, check in CHECKS[:1]]
    if not results[0].passed:  # without the basic contract the other checks only repeat its failure
        return results + [CheckResult(name, False, "skipped: the update contract failed") for name, _ in CHECKS[1:]]
    return results + [_result(name, bound(check), rule) for name, check in CHECKS[1:]]


SKIPPED = "skipped: "


def format_table(results: dict[str, list[CheckResult]], marks: tuple[str, str, str] = ("✓", "✗", "·")) -> str:
    """``descentlab check``'s report: the checks numbered, a rule × check grid of ``marks`` (passed,
    failed, skipped), each failure on one line with its reason, and the totals."""
    passed_mark, failed_mark, skipped_mark = marks
    width = max([len("rule")] + [len(name) for name in results])
    numbers = [str(i) for i in range(1, len(CHECKS) + 1)]
    lines = ["checks:"] + [f"  {n:>2}  {name}" for n, (name, _) in zip(numbers, CHECKS)] + [""]
    lines.append(f"{'rule':<{width}}  " + " ".join(f"{n:>2}" for n in numbers))
    failures, counts = [], {"passed": 0, "failed": 0, "skipped": 0}
    for rule, checks in results.items():
        row = []
        for n, result in zip(numbers, checks):
            if result.passed:
                row.append(passed_mark)
                counts["passed"] += 1
            elif result.reason.startswith(SKIPPED):
                row.append(skipped_mark)
                counts["skipped"] += 1
            else:
                row.append(failed_mark)
                counts["failed"] += 1
                failures.append(f"  {failed_mark} {rule}: {n} {result.name}: {one_line_reason(result.reason)}")
        skipped = [n for n, r in zip(numbers, checks) if not r.passed and r.reason.startswith(SKIPPED)]
        if skipped:
            failures.append(
                f"  {skipped_mark} {rule}: checks {skipped[0]}-{skipped[-1]} skipped "
                f"({checks[int(skipped[0]) - 1].reason[len(SKIPPED) :]})"
            )
        lines.append(f"{rule:<{width}}  " + " ".join(f"{m:>2}" for m in row))
    if failures:
        lines += ["", "failures:"] + failures
    total = sum(counts.values())
    summary = f"{len(results)} rule{'s' * (len(results) != 1)}, {total} checks: {counts['passed']} passed"
    summary += f", {counts['failed']} failed" + (f", {counts['skipped']} skipped" if counts["skipped"] else "")
    return "\n".join(lines + ["", summary])


def one_line_reason(text: str) -> str:
    return " ".join(str(text).split())
