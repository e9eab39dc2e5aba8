"""Stability theory on quadratics: critical α, optimal α and rates, measured rates, divergence sentences.

On a quadratic J(θ) = ½(θ − θ*)ᵀH(θ − θ*) every rule in the gradient-descent family is a linear
iteration, and each eigen-direction of H (eigenvalue λ) evolves on its own. A rule is stable iff
every direction contracts, which for these rules reduces to α·λ_max < c with a rule-specific
constant c (the rule's declared ``stability_threshold``):

    gradient descent             θ ← θ − αg                      c = 2
    heavy ball (PyTorch)         v ← μv + g;  θ ← θ − αv          c = 2 + 2μ
    Nesterov (PyTorch)           v ← μv + g;  θ ← θ − α(g + μv)   c = (2 + 2μ)/(1 + 2μ)
    classical momentum           v ← μv + αg; θ ← θ − v           c = 2 + 2μ  (constant α)

so the critical learning rate is α_crit = c/λ_max. With L2 weight decay w the gradient is that of
J + ½w‖θ‖², whose Hessian is H + wI: λ_max is replaced by λ_max + w.

Momentum conventions: PyTorch's buffer v = μv + g with θ ← θ − αv, Polyak's heavy ball
θ ← θ − αg + μ(θ − θ_prev) and the classical v = μv + αg; θ ← θ − v produce the *same trajectory*
at a constant α with the same (α, μ) (substitute θ − θ_prev = −αv, resp. = −v). So the optimal
heavy-ball (α, μ) below apply unchanged to PyTorch's convention; they differ only once a schedule
changes α between steps.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "rule_title",
    "critical_learning_rate",
    "critical_learning_rates_for_runs",
    "divergence_reason",
    "gd_optimal",
    "gd_rate",
    "heavy_ball_optimal",
    "measured_rate",
    "quadratic_rate",
    "rule_threshold",
]


def _resolve(rule, registry=None):
    """A DescentRule from a rule or its name (None when the name is unknown)."""
    if not isinstance(rule, str):
        return rule
    if registry is None:
        from .registry import get_registry

        registry = get_registry()
    return registry.rules.get(rule)


def _full_hyper(rule, hyper: dict | None) -> dict:
    """Declared defaults overlaid with ``hyper``, every value a float (flags as 0.0/1.0)."""
    values = {h.name: h.default for h in getattr(rule, "hyperparams", ())}
    values.update(hyper or {})
    out = {}
    for name, value in values.items():
        try:
            out[name] = float(value)
        except (TypeError, ValueError):
            out[name] = value
    return out


def _display_name(rule, hyper: dict) -> str:
    """How a sentence names a rule: its declared title, else its name."""
    if hasattr(rule, "display_title"):
        return rule.display_title(hyper)
    return str(getattr(rule, "name", rule))


def rule_title(rule, hyper: dict | None = None, *, registry=None) -> str:
    """The declared display title of a rule (or a registered name), with its hyperparameters' values."""
    resolved = _resolve(rule, registry)
    if resolved is None:
        return str(rule)
    return _display_name(resolved, _full_hyper(resolved, hyper))


def rule_threshold(rule, hyper: dict | None = None, *, registry=None) -> float | None:
    """The rule's constant c (stable on a quadratic iff α·λ_max < c), or None if it declares none."""
    resolved = _resolve(rule, registry)
    if resolved is None or getattr(resolved, "stability_threshold", None) is None:
        return None
    value = resolved.stability_threshold(_full_hyper(resolved, hyper))
    if value is None:
        return None
    value = float(np.asarray(value, dtype=float).reshape(-1)[0])
    return value if math.isfinite(value) else None


def _effective_eigenvalue(top_eigenvalue: float, hyper: dict) -> float:
    # L2 weight decay w adds w to every Hessian eigenvalue (the gradient is g + wθ).
    return float(top_eigenvalue) + float(hyper.get("weight_decay", 0.0) or 0.0)


def critical_learning_rate(rule, hyper: dict | None, top_eigenvalue: float | None, *, registry=None) -> float | None:
    """α_crit = c / λ_max: the largest stable constant α on a quadratic with that top eigenvalue.

    ``rule`` is a DescentRule or a registered name; ``hyper`` maps hyperparameter names to numbers
    (missing ones take their declared defaults). None when the rule has no fixed threshold or
    λ_max is unknown, not finite or not positive (a non-positive λ_max has no stability limit).
    """
    if top_eigenvalue is None or not math.isfinite(float(top_eigenvalue)):
        return None
    resolved = _resolve(rule, registry)
    c = rule_threshold(resolved, hyper, registry=registry)
    if c is None:
        return None
    lam = _effective_eigenvalue(top_eigenvalue, _full_hyper(resolved, hyper))
    return c / lam if lam > 0 else None


def divergence_reason(
    rule,
    hyper: dict | None,
    learning_rate: float,
    sharpness: float | None,
    step: int,
    *,
    divergence_factor: float | None = None,
    registry=None,
) -> str:
    """One sentence saying why a run diverged, as far as the quadratic theory can tell.

    ``sharpness`` is λ_max (known for quadratics and linear regression, else the last measured
    sharpness, else None); ``learning_rate`` the α the run was using. Examples:
    "diverged at step 41; α·λ_max reached 2.7, above gradient descent's limit of 2 (critical α =
    2/λ_max = 0.148)". Without λ_max it says what the runner saw ("loss exceeded 10000× its
    initial value at step 41", when ``divergence_factor`` is given).
    """
    resolved = _resolve(rule, registry)
    values = _full_hyper(resolved, hyper) if resolved is not None else dict(hyper or {})
    who = _display_name(resolved if resolved is not None else rule, values)
    step_text = f"step {int(step)}" if step is not None and math.isfinite(float(step)) else "an unknown step"
    known = (
        sharpness is not None
        and learning_rate is not None
        and math.isfinite(float(sharpness))
        and math.isfinite(float(learning_rate))
    )
    if not known:
        if divergence_factor is not None and math.isfinite(float(divergence_factor)):
            return (
                f"loss exceeded {float(divergence_factor):g}× its initial value (or became NaN/inf) "
                f"at {step_text}; λ_max was not measured, so no stability limit can be checked "
                "(set sharpness_every to measure it)"
            )
        return (
            f"diverged at {step_text}; λ_max was not measured, so no stability limit can be checked "
            "(set sharpness_every to measure it)"
        )
    assert sharpness is not None and learning_rate is not None  # ``known`` checked both
    lam = _effective_eigenvalue(float(sharpness), values)
    product = float(learning_rate) * lam
    c = rule_threshold(resolved, values, registry=registry) if resolved is not None else None
    head = f"diverged at {step_text}; α·λ_max "
    if c is None:
        return (
            head + f"= {product:.3g}, but {who} has no fixed stability limit on a quadratic "
            "(its effective step size adapts during the run)"
        )
    if product >= c:
        crit = f" (critical α = {c:.3g}/λ_max = {c / lam:.3g})" if lam > 0 else ""
        return head + f"reached {product:.3g}, above {who}'s limit of {c:.3g}" + crit
    return (
        head + f"= {product:.3g} is below {who}'s limit of {c:.3g}, so the quadratic stability "
        "limit does not explain it: the sharpness may have grown since it was measured, or the "
        "loss is far from quadratic here"
    )


def critical_learning_rates_for_runs(runs, top_eigenvalue: float | None, *, registry=None) -> np.ndarray:
    """α_crit of every row of a results ``runs`` table (NaN where there is none), for sweep plots.

    Each row's hyperparameters are read from the columns named after the rule's declarations.
    """
    out = np.full(len(runs), np.nan)
    for i, (_, row) in enumerate(runs.iterrows()):
        resolved = _resolve(row["rule"], registry)
        if resolved is None:
            continue
        hyper = {
            h.name: row[h.name]
            for h in resolved.hyperparams
            if h.name in row and not (isinstance(row[h.name], float) and math.isnan(row[h.name]))
        }
        value = critical_learning_rate(resolved, hyper, top_eigenvalue, registry=registry)
        if value is not None:
            out[i] = value
    return out


# --- quadratic theory: optimal parameters and rates ---------------------------------------------


def gd_rate(learning_rate: float, eigenvalues) -> float:
    """Per-step contraction of ‖θ − θ*‖ for GD: max_i |1 − αλ_i| (< 1 iff stable)."""
    lam = np.asarray(eigenvalues, dtype=float)
    return float(np.max(np.abs(1.0 - learning_rate * lam)))


def gd_optimal(lam_min: float, lam_max: float) -> dict:
    """Optimal constant GD step on a quadratic: α* = 2/(λ_min + λ_max), rate (κ − 1)/(κ + 1).

    At α* the slowest and the fastest directions contract equally (1 − α*λ_min = −(1 − α*λ_max)).
    """
    kappa = lam_max / lam_min
    return {
        "learning_rate": 2.0 / (lam_min + lam_max),
        "rate": (kappa - 1.0) / (kappa + 1.0),
        "condition_number": kappa,
    }


def heavy_ball_optimal(lam_min: float, lam_max: float) -> dict:
    """Polyak's optimal heavy ball: α = 4/(√λ_max + √λ_min)², μ = ((√κ − 1)/(√κ + 1))², rate √μ.

    The same (α, μ) serve PyTorch's convention (v = μv + g; θ ← θ − αv): identical trajectory at a
    constant α. The rate (√κ − 1)/(√κ + 1) holds asymptotically: at these parameters the extreme
    directions have a double root, so the error decays like t·ρᵗ.
    """
    root_kappa = math.sqrt(lam_max / lam_min)
    rate = (root_kappa - 1.0) / (root_kappa + 1.0)
    return {
        "learning_rate": 4.0 / (math.sqrt(lam_max) + math.sqrt(lam_min)) ** 2,
        "momentum": rate * rate,
        "rate": rate,
        "condition_number": lam_max / lam_min,
    }


def quadratic_rate(rule, hyper: dict | None, learning_rate: float, eigenvalues, *, registry=None) -> float | None:
    """Asymptotic per-step contraction (spectral radius) of a rule on a quadratic, or None.

    The rule declares it (``DescentRule.quadratic_rate(a, hyper)``, a = αλ per eigenvalue λ; the
    built-in GD, heavy ball, Nesterov and classical momentum do, at a constant α); None when it does
    not. L2 weight decay w adds w to every eigenvalue. The rate is the largest over the eigenvalues.
    """
    resolved = _resolve(rule, registry)
    if resolved is None or getattr(resolved, "quadratic_rate", None) is None:
        return None
    values = _full_hyper(resolved, hyper)
    lam = np.asarray(eigenvalues, dtype=float) + float(values.get("weight_decay", 0.0) or 0.0)
    return float(np.max(resolved.quadratic_rate(learning_rate * lam, values)))


def measured_rate(
    losses, minimum: float = 0.0, *, start_fraction: float = 0.5, floor: float = 1e-20, order: int = 2
) -> float:
    """Linear convergence rate ρ of ‖θ − θ*‖ estimated from a loss curve (NaN if it cannot be).

    On a quadratic J_t − J* = ½ e_tᵀ H e_t, so when the error e_t shrinks like ρᵗ the loss gap
    shrinks like ρ^{2t}: the distance rate is the *square root* of the per-step loss ratio. The
    slope s of log(J_t − J*) is fitted by least squares over the later part of the curve (from
    ``start_fraction`` of the usable points on) and ρ = exp(s/2). Points after the gap first falls
    below ``floor`` × the initial gap or 1e-10 × |J*| (rounding territory: the loss itself is only
    known to about 1e-16 × |J|) or stops being finite are not used.

    ``order=1`` reads the curve as distances ‖θ_t − θ*‖ (``minimum`` 0) instead of losses: then
    ρ = exp(s). Distances reach rounding only near 1e-16·‖θ*‖, far later than loss gaps near J* ≠ 0.
    """
    gaps = np.asarray(losses, dtype=float) - float(minimum)
    if gaps.size < 3 or not np.isfinite(gaps[0]) or gaps[0] <= 0:
        return float("nan")
    limit = max(floor * gaps[0], 1e-10 * abs(float(minimum)))
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(gaps) | (gaps <= limit)
    usable = int(np.argmax(bad)) if bad.any() else gaps.size
    first = int(usable * start_fraction)
    window = gaps[first:usable]
    if window.size < 2:
        return float("nan")
    steps = np.arange(first, usable, dtype=float)
    slope = np.polyfit(steps, np.log(window), 1)[0]
    return float(math.exp(slope / float(order)))
