"""Built-in descent rules (GD, momentum, Nesterov, Adagrad, RMSprop, Adam, AdamW), registered like any plugin.

Each rule is an optax-style pure pair: ``init(params, hyper) -> state`` and
``update(grad, state, params, learning_rate, hyper, step) -> (updates, state)``. Arrays are
``(R, P)`` (R runs stacked on the leading axis); every hyperparameter and the learning rate arrive
as ``(R, 1)`` float arrays (flags as 0.0/1.0), so one call serves a whole grid of configurations.
Every field of a state is an array whose leading axis is the run axis, so the runner can drop
diverged runs by indexing rows. ``update`` reuses its state arrays in place; it never writes into
``grad`` or ``params``. Where PyTorch has the same optimizer, the conventions are PyTorch's
(``torch.optim``, version 2): the docstrings give the exact formula.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from descentlab import DescentRule, HyperParam, hookimpl
from descentlab import stability


# --- shared pieces -----------------------------------------------------------------------------
#
# Branches that depend only on hyperparameters ("does any run use weight decay?", "is every run
# Nesterov?") are decided once, in ``init``, and kept in the state as fields of shape (R, k) when
# the feature is on and (R, 0) when it is off: measured on the tiny Rosenbrock job (64 runs per
# rule, 2 parameters), ``np.any`` on an (R, 1) array costs 2.3 µs, and these checks were most of
# the rules' 49 µs per step. The runner drops diverged runs by indexing every state field's rows,
# so the decisions stay consistent with the hyperparameters of the live runs.
#
# For problems with few parameters, numpy's cost is per inner loop: multiplying (64, 2) by a
# (64, 1) hyperparameter costs 1.04 µs (one 2-element loop per row), by a (64, 2) array 0.32 µs
# (measured; still 2x at 64 parameters). So the per-element hyperparameters are stored in the state
# expanded to (R, P) when P <= EXPAND_MAX_PARAMS, else as (R, 1) (same values: same results).
EXPAND_MAX_PARAMS = 64


def _weight_decay(low_help: str = "L2 penalty λ: the gradient becomes g + λθ (PyTorch weight_decay)"):
    return HyperParam("weight_decay", 0.0, low=0.0, help=low_help)


def _rows(value, params):
    """A hyperparameter (or a value derived from it) as a state field: (R, P) for few parameters, else (R, 1)."""
    if not isinstance(value, np.ndarray) or value.dtype.kind not in "fc":
        value = np.asarray(value, dtype=params.dtype)  # Python numbers and flags take the runs' dtype
    value = np.broadcast_to(value, (params.shape[0], 1) if value.ndim < 2 else value.shape)
    if params.shape[1] <= EXPAND_MAX_PARAMS:
        return np.ascontiguousarray(np.broadcast_to(value, params.shape))
    return np.array(value)


def _flag_rows(value, params, on: bool):
    """``value`` as an (R, k) state field when ``on``, else an (R, 0) placeholder (the feature is off)."""
    if not on:
        return _empty_rows(params, getattr(value, "dtype", params.dtype))
    return _rows(value, params)


def _decay_field(hyper, params):
    """The L2 weight decay λ as a state field: (R, 0) when no run of the batch uses it."""
    decay = hyper.get("weight_decay")
    return _flag_rows(0.0 if decay is None else decay, params, decay is not None and bool(np.any(decay)))


def _mixed_mask(flag, params):
    """(R, 1) 0/1 mask when the batch mixes runs with and without a boolean feature, else (R, 0)."""
    flag = np.broadcast_to(np.asarray(flag, dtype=float), (params.shape[0], 1))
    mixed = bool(np.any(flag != 0)) and not bool(np.all(flag == 1))
    if not mixed:
        return _empty_rows(params)
    return (flag != 0).astype(params.dtype)


def _l2_gradient(grad, params, decay):
    """g + λθ as a new array, or ``grad`` itself when ``decay`` is an (R, 0) "off" field (never modifies grad)."""
    if not decay.shape[1]:
        return grad
    out = np.multiply(params, decay)
    out += grad
    return out


def _threshold(value):
    """A plain float when every input was a scalar (the theory module passes floats), else the array."""
    value = np.asarray(value, dtype=float)
    return float(value) if value.ndim == 0 else value


class GDState(NamedTuple):
    """Vanilla gradient descent keeps no optimizer state, only the decision on weight decay."""

    weight_decay: np.ndarray  # (R, 1 or P) λ when some run uses weight decay, else (R, 0)


class MomentumState(NamedTuple):
    velocity: np.ndarray  # (R, P) momentum buffer v
    momentum: np.ndarray  # (R, P) or (R, 1) μ
    gradient_weight: np.ndarray  # (R, P) or (R, 1) 1 − d when some run uses dampening, else (R, 0)
    nesterov: np.ndarray  # (R, 1 or P) μ when some run is Nesterov, else (R, 0)
    nesterov_mask: np.ndarray  # (R, 1) 0/1 when Nesterov and heavy-ball runs are mixed, else (R, 0)
    weight_decay: np.ndarray  # (R, 1 or P) λ when some run uses weight decay, else (R, 0)


class AdagradState(NamedTuple):
    sum_squares: np.ndarray  # (R, P) Σ g²
    weight_decay: np.ndarray  # (R, 1 or P) λ when some run uses weight decay, else (R, 0)


class RMSpropState(NamedTuple):
    square_avg: np.ndarray  # (R, P) running mean of g²
    grad_avg: np.ndarray  # (R, P) running mean of g (centered), else (R, 0)
    momentum_buffer: np.ndarray  # (R, P) when some run uses momentum, else (R, 0)
    weight_decay: np.ndarray  # (R, 1 or P) λ when some run uses weight decay, else (R, 0)


class AdamState(NamedTuple):
    exp_avg: np.ndarray  # (R, P) first moment m
    exp_avg_sq: np.ndarray  # (R, P) second moment v
    max_exp_avg_sq: np.ndarray  # (R, P) running max of v (amsgrad), else (R, 0)
    beta1: np.ndarray  # (R, P) or (R, 1) β₁
    one_minus_beta1: np.ndarray  # 1 − β₁, same shape
    beta2: np.ndarray  # β₂
    one_minus_beta2: np.ndarray  # 1 − β₂
    eps: np.ndarray  # ε
    amsgrad_mask: np.ndarray  # (R, 1) 0/1 when AMSGrad and plain runs are mixed, else (R, 0)
    weight_decay: np.ndarray  # (R, 1 or P) λ when some run uses weight decay (L2 or decoupled), else (R, 0)
    bias1: np.ndarray  # (R, K) 1 − β₁ᵗ for t = 1..K (a zero-stride view when β₁ is shared)
    bias2_sqrt: np.ndarray  # (R, K) √(1 − β₂ᵗ)


def _empty_rows(params, dtype=None):
    """A placeholder state field for a feature no run of the batch uses: shape (R, 0)."""
    return np.zeros((params.shape[0], 0), dtype=params.dtype if dtype is None else dtype)


# --- vanilla gradient descent ------------------------------------------------------------------


def gd_init(params, hyper):
    return GDState(_decay_field(hyper, params))


def gd_update(grad, state, params, learning_rate, hyper, step):
    """Vanilla gradient descent (PyTorch SGD without momentum).

    g ← g + λθ          (weight_decay λ, L2)
    θ ← θ − α g
    """
    g = _l2_gradient(grad, params, state.weight_decay) if state.weight_decay.shape[1] else grad
    if g is grad:
        return np.multiply(grad, -learning_rate), state
    g *= -learning_rate  # g is our own temporary here
    return g, state


def gd_threshold(hyper):
    # On J = ½λθ²: θ ← (1 − αλ)θ, stable iff |1 − αλ| < 1 iff αλ < 2.
    return 2.0


# --- momentum (PyTorch convention), Nesterov -----------------------------------------------------


def _effective_dampening(mu, dampening):
    """The dampening d that acts: torch.optim.SGD keeps no buffer when μ = 0, so d changes nothing there."""
    dampening = np.asarray(dampening, dtype=getattr(mu, "dtype", None))
    return np.where(np.asarray(mu) != 0, dampening, np.zeros_like(dampening))


def _momentum_state(params, hyper, nesterov):
    mu = hyper["momentum"]
    dampening = _effective_dampening(mu, hyper.get("dampening", 0.0))
    return MomentumState(
        np.zeros_like(params),
        _rows(mu, params),
        _flag_rows(1.0 - dampening, params, bool(np.any(dampening))),
        _flag_rows(mu, params, bool(np.any(nesterov))),
        _mixed_mask(nesterov, params),
        _decay_field(hyper, params),
    )


def momentum_init(params, hyper):
    return _momentum_state(params, hyper, hyper.get("nesterov", 0.0))


def nesterov_init(params, hyper):
    return _momentum_state(params, dict(hyper, dampening=0.0), 1.0)


def momentum_update(grad, state, params, learning_rate, hyper, step):
    """Heavy-ball momentum, PyTorch SGD convention (momentum μ, dampening d, nesterov, weight_decay λ).

    g ← g + λθ
    v ← g                       on the first step (PyTorch initialises the buffer with g)
    v ← μ v + (1 − d) g         afterwards (d acts only when μ > 0: torch keeps no buffer at μ = 0,
                                so momentum = 0 is plain SGD whatever the dampening)
    g ← g + μ v  if nesterov,  else  g ← v
    θ ← θ − α g
    """
    g = _l2_gradient(grad, params, state.weight_decay) if state.weight_decay.shape[1] else grad
    v = state.velocity
    if step == 0:
        np.copyto(v, g)
    else:
        v *= state.momentum
        if state.gradient_weight.shape[1]:
            v += state.gradient_weight * g
        else:
            v += g
    if not state.nesterov.shape[1]:
        updates = np.multiply(v, -learning_rate)
    else:
        # nesterov is 0/1 per run: g + μv for the Nesterov runs, v for the others
        updates = np.multiply(v, state.nesterov)
        updates += g
        if state.nesterov_mask.shape[1]:
            updates = np.where(state.nesterov_mask != 0, updates, v)
        updates *= -learning_rate
    return updates, state


def momentum_threshold(hyper):
    # Iterate on J = ½λx² with a = αλ; w = αv. Heavy ball: x' = (1 + μ − a(1−d))x − μ x_prev, whose
    # roots stay inside the unit circle iff 0 < a(1−d) < 2 + 2μ. Nesterov: the (x, w) map has
    # trace 1 + μ − a(1 + μ(1−d)) and determinant μ(1 − a); the Jury conditions reduce to
    # a < (2 + 2μ)/(1 + 2μ − μd) (the |det| < 1 bound a < 1 + 1/μ is weaker when μd < 1).
    mu = np.asarray(hyper["momentum"], dtype=float)
    d = _effective_dampening(mu, np.asarray(hyper.get("dampening", 0.0), dtype=float))
    nesterov = np.asarray(hyper.get("nesterov", 0.0), dtype=float)
    with np.errstate(divide="ignore"):
        heavy = np.where(d < 1, (2 + 2 * mu) / np.maximum(1 - d, 0.0), np.inf)
    nest = (2 + 2 * mu) / (1 + 2 * mu - mu * d)
    return _threshold(np.where(nesterov != 0, nest, heavy))


def nesterov_update(grad, state, params, learning_rate, hyper, step):
    """Nesterov momentum, PyTorch SGD(nesterov=True) convention (momentum μ, weight_decay λ).

    g ← g + λθ
    v ← g  on the first step,  v ← μ v + g  afterwards
    θ ← θ − α (g + μ v)
    """
    if not state.nesterov.shape[1]:  # a state from momentum_init: decide from this rule's fixed flags
        state = nesterov_init(params, hyper)._replace(velocity=state.velocity)
    return momentum_update(grad, state, params, learning_rate, hyper, step)


def nesterov_threshold(hyper):
    return momentum_threshold(dict(hyper, nesterov=1.0, dampening=0.0))


# --- classical momentum ------------------------------------------------------------------------


def classical_momentum_update(grad, state, params, learning_rate, hyper, step):
    """Classical momentum (Polyak; Sutskever et al. 2013), the learning rate inside the buffer.

        v ← μ v + α g       (v starts at 0)
        θ ← θ − v

    At a constant α this equals PyTorch's convention (v_classical = α v_pytorch); when a schedule
    changes α it differs: past steps keep the α they were taken with.
    """
    v = state.velocity
    updates = np.multiply(grad, learning_rate)  # the one (R, P) array this step allocates
    v *= state.momentum
    v += updates
    return np.negative(v, out=updates), state


def classical_momentum_threshold(hyper):
    # Same recurrence as heavy ball at constant α: x' = (1 + μ − αλ)x − μ x_prev.
    return _threshold(2.0 + 2.0 * np.asarray(hyper["momentum"], dtype=float))


# --- Adagrad -----------------------------------------------------------------------------------


def adagrad_init(params, hyper):
    start = hyper.get("initial_accumulator_value", 0.0)
    return AdagradState(np.zeros_like(params) + np.asarray(start, dtype=params.dtype), _decay_field(hyper, params))


def adagrad_update(grad, state, params, learning_rate, hyper, step):
    """Adagrad, PyTorch convention (lr_decay k, eps ε, initial_accumulator_value, weight_decay λ).

    g ← g + λθ
    s ← s + g²                          (s starts at initial_accumulator_value)
    θ ← θ − α / (1 + t k) · g / (√s + ε)   (t = updates already taken)
    """
    g = _l2_gradient(grad, params, state.weight_decay) if state.weight_decay.shape[1] else grad
    s = state.sum_squares
    out = np.multiply(g, g)  # scratch, then the updates: one (R, P) allocation per step
    s += out
    np.sqrt(s, out=out)
    out += hyper["eps"]
    np.divide(g, out, out=out)
    out *= -(learning_rate / (1.0 + step * hyper.get("lr_decay", 0.0)))
    return out, state


# --- RMSprop -----------------------------------------------------------------------------------


def rmsprop_init(params, hyper):
    centered = np.any(hyper.get("centered", 0.0))
    momentum = np.any(hyper.get("momentum", 0.0))
    return RMSpropState(
        np.zeros_like(params),
        np.zeros_like(params) if centered else _empty_rows(params),
        np.zeros_like(params) if momentum else _empty_rows(params),
        _decay_field(hyper, params),
    )


def rmsprop_update(grad, state, params, learning_rate, hyper, step):
    """RMSprop, PyTorch convention (alpha ρ, eps ε, centered, momentum μ, weight_decay λ).

    g ← g + λθ
    s ← ρ s + (1 − ρ) g²
    m ← ρ m + (1 − ρ) g,  d ← √(s − m²) + ε    if centered
    d ← √s + ε                                 otherwise  (ε added after the square root)
    b ← μ b + g / d  (b starts at 0),  θ ← θ − α b    if μ > 0
    θ ← θ − α g / d                                    otherwise
    """
    rho = hyper["alpha"]
    weight = 1.0 - rho
    g = _l2_gradient(grad, params, state.weight_decay) if state.weight_decay.shape[1] else grad
    s = state.square_avg
    out = np.multiply(g, g)  # scratch, then the updates: one (R, P) allocation per step
    out *= weight
    s *= rho
    s += out
    if state.grad_avg.shape[1]:
        m = state.grad_avg
        np.multiply(g, weight, out=out)
        m *= rho
        m += out
        np.multiply(m, m, out=out)
        out *= hyper.get("centered", 0.0)  # 0 for the runs that are not centered
        np.subtract(s, out, out=out)
        np.maximum(out, 0.0, out=out)  # rounding can put s − m² a hair below 0
        np.sqrt(out, out=out)
    else:
        np.sqrt(s, out=out)
    out += hyper["eps"]
    np.divide(g, out, out=out)
    if state.momentum_buffer.shape[1]:
        b = state.momentum_buffer
        b *= hyper["momentum"]
        b += out
        np.multiply(b, -learning_rate, out=out)
    else:
        out *= -learning_rate
    return out, state


# --- Adam and AdamW ----------------------------------------------------------------------------

# Adam's bias corrections 1 − β₁ᵗ and √(1 − β₂ᵗ) are tabulated for BIAS_TABLE_STEPS steps at a time
# (up to BIAS_TABLE_MAX, then computed per step): five numpy calls on (R, 1) arrays per step, ~3.4 µs
# of the tiny job's ~10 µs Adam update, become two slices. The table's powers come from numpy's
# vectorised pow over an array of exponents, which can differ from β ** t with a scalar t in the
# last bit (measured: relative 1e-16); the updates stay within rounding of the formula.
BIAS_TABLE_STEPS = 1024
BIAS_TABLE_MAX = 8192


def _bias_tables(hyper, params, steps):
    """(R, steps) tables of 1 − β₁ᵗ and √(1 − β₂ᵗ) for t = 1..steps.

    Zero-stride views of one row when every run shares β (no memory per run)."""
    runs = params.shape[0]
    tables = []
    for name, root in (("beta1", False), ("beta2", True)):
        beta = hyper[name]
        if not isinstance(beta, np.ndarray) or beta.dtype.kind not in "fc":
            beta = np.asarray(beta, dtype=params.dtype)
        beta = np.broadcast_to(beta.reshape(-1, 1) if beta.ndim else beta.reshape(1, 1), (runs, 1))
        shared = bool(np.all(beta == beta[:1]))
        t = np.arange(1, steps + 1, dtype=beta.dtype)
        table = 1.0 - (beta[:1] if shared else beta) ** t
        if root:
            np.sqrt(table, out=table)
        tables.append(np.broadcast_to(table, (runs, steps)) if shared else table)
    return tables


def _bias_at(table, t):
    """Column t of a bias table: (R, 1), or one number of the table's dtype when every run shares β
    (a zero-stride table): numpy's scalar path then spares a broadcast (dividing (64, 2) by it 1.1 µs
    instead of 1.7 µs; the same divisor, the same results)."""
    if table.strides[0] == 0:
        return table[0, t - 1]
    return table[:, t - 1 : t]


def _adam_state(params, hyper, decay):
    beta1, beta2 = hyper["beta1"], hyper["beta2"]
    amsgrad = hyper.get("amsgrad", 0.0)
    return AdamState(
        np.zeros_like(params),
        np.zeros_like(params),
        np.zeros_like(params) if np.any(amsgrad) else _empty_rows(params),
        _rows(beta1, params),
        _rows(1.0 - beta1, params),
        _rows(beta2, params),
        _rows(1.0 - beta2, params),
        _rows(hyper["eps"], params),
        _mixed_mask(amsgrad, params),
        decay,
        *_bias_tables(hyper, params, BIAS_TABLE_STEPS),
    )


def _with_bias_for(state, hyper, params, step):
    """The state with bias tables reaching step ``step`` (t = step + 1) when within BIAS_TABLE_MAX."""
    t = step + 1
    if t <= state.bias1.shape[1] or t > BIAS_TABLE_MAX:
        return state
    bias1, bias2_sqrt = _bias_tables(hyper, params, min(max(2 * state.bias1.shape[1], t), BIAS_TABLE_MAX))
    return state._replace(bias1=bias1, bias2_sqrt=bias2_sqrt)


def adam_init(params, hyper):
    return _adam_state(params, hyper, _decay_field(hyper, params))


def adamw_init(params, hyper):
    # decoupled decay multiplies α λ (both (R, 1)) before touching θ: kept as given, not expanded
    decay = hyper["weight_decay"]
    return _adam_state(
        params,
        hyper,
        np.array(np.broadcast_to(decay, (params.shape[0], 1)))
        if np.any(decay)
        else _empty_rows(params, getattr(decay, "dtype", None)),
    )


def _adam_direction(g, state, learning_rate, hyper, step):
    """−α m̂ / (√v̂ + ε) as a new array, updating the moments in place (PyTorch's Adam step)."""
    beta1, beta2 = hyper["beta1"], hyper["beta2"]
    t = step + 1
    m, v = state.exp_avg, state.exp_avg_sq
    out = np.multiply(g, state.one_minus_beta1)  # scratch, then the direction: one (R, P) allocation per step
    m *= state.beta1
    m += out
    np.multiply(g, g, out=out)
    out *= state.one_minus_beta2
    v *= state.beta2
    v += out
    second = v
    if state.max_exp_avg_sq.shape[1]:
        peak = state.max_exp_avg_sq
        np.maximum(peak, v, out=peak)
        second = np.where(state.amsgrad_mask != 0, peak, v) if state.amsgrad_mask.shape[1] else peak
    if t <= state.bias1.shape[1]:
        bias1, bias2_sqrt = _bias_at(state.bias1, t), _bias_at(state.bias2_sqrt, t)
    else:
        bias1 = 1.0 - beta1**t
        bias2_sqrt = np.sqrt(1.0 - beta2**t)
    np.sqrt(second, out=out)
    out /= bias2_sqrt
    out += state.eps
    np.divide(m, out, out=out)
    out *= -(learning_rate / bias1)
    return out


def adam_update(grad, state, params, learning_rate, hyper, step):
    """Adam, PyTorch convention (beta1 β₁, beta2 β₂, eps ε, amsgrad, weight_decay λ as L2).

    g ← g + λθ
    m ← β₁ m + (1 − β₁) g,   v ← β₂ v + (1 − β₂) g²      (m, v start at 0; t = step + 1)
    v_max ← max(v_max, v)  and use v_max for v            if amsgrad
    θ ← θ − α/(1 − β₁ᵗ) · m / (√v / √(1 − β₂ᵗ) + ε)
    """
    if step >= state.bias1.shape[1]:
        state = _with_bias_for(state, hyper, params, step)
    g = _l2_gradient(grad, params, state.weight_decay) if state.weight_decay.shape[1] else grad
    return _adam_direction(g, state, learning_rate, hyper, step), state


def adamw_update(grad, state, params, learning_rate, hyper, step):
    """AdamW, PyTorch convention: decoupled weight decay λ, then the Adam step on the raw gradient.

    θ ← θ − α λ θ
    m ← β₁ m + (1 − β₁) g,   v ← β₂ v + (1 − β₂) g²      (t = step + 1; v_max if amsgrad)
    θ ← θ − α/(1 − β₁ᵗ) · m / (√v / √(1 − β₂ᵗ) + ε)
    """
    if step >= state.bias1.shape[1]:
        state = _with_bias_for(state, hyper, params, step)
    updates = _adam_direction(grad, state, learning_rate, hyper, step)
    if state.weight_decay.shape[1]:
        updates -= (learning_rate * state.weight_decay) * params
    return updates, state


# --- theory: rates on a quadratic, the preconditioner ---------------------------------------------
# On one eigen-direction of a quadratic (eigenvalue λ, a = αλ) each momentum rule is a linear
# recurrence x_{t+1} = trace·x_t − det·x_{t−1}; its rate is the largest root modulus of z² − trace z + det.


def _recurrence_rate(trace, det):
    disc = np.sqrt((np.asarray(trace) ** 2 - 4.0 * np.asarray(det)).astype(complex))
    return np.maximum(np.abs((trace + disc) / 2.0), np.abs((trace - disc) / 2.0))


def gd_rate(a, hyper):
    """GD: x ← (1 − a)x, rate |1 − a|."""
    return np.abs(1.0 - np.asarray(a, dtype=float))


def momentum_rate(a, hyper):
    """Heavy ball z² − (1 + μ − a(1 − d))z + μ; Nesterov z² − (1 + μ − a(1 + μ(1 − d)))z + μ(1 − a)."""
    a = np.asarray(a, dtype=float)
    mu = float(hyper.get("momentum", 0.0))
    d = float(hyper.get("dampening", 0.0)) if mu != 0 else 0.0  # no buffer at μ = 0 (torch)
    if float(hyper.get("nesterov", 0.0)):
        return _recurrence_rate(1.0 + mu - a * (1.0 + mu * (1.0 - d)), mu * (1.0 - a))
    return _recurrence_rate(1.0 + mu - a * (1.0 - d), np.full_like(a, mu))


def nesterov_rate(a, hyper):
    return momentum_rate(a, dict(hyper, nesterov=1.0, dampening=0.0))


def classical_momentum_rate(a, hyper):
    """At a constant α the same trajectory as heavy ball without dampening."""
    return momentum_rate(a, dict(hyper, nesterov=0.0, dampening=0.0))


def gd_optimal(lam_min, lam_max):
    """α* = 2/(λ_min + λ_max): the slowest and fastest directions contract equally (descentlab.stability)."""
    return {**stability.gd_optimal(lam_min, lam_max), "formula": "α = 2/(λ_min + λ_max), ρ = (κ − 1)/(κ + 1)"}


def heavy_ball_optimal(lam_min, lam_max):
    """Polyak's (α, μ), reached asymptotically (descentlab.stability)."""
    return {
        **stability.heavy_ball_optimal(lam_min, lam_max),
        "formula": "α = 4/(√λ_max + √λ_min)², μ = ((√κ − 1)/(√κ + 1))², ρ = √μ",
    }


def momentum_title(hyper):
    return "Nesterov momentum" if float(hyper.get("nesterov", 0.0) or 0.0) else "heavy-ball momentum"


def adam_preconditioner(state, hyper, step):
    """Adam's diagonal preconditioner P_t (Cohen et al. 2022, eq. 2), t = step + 1:

        θ_{t+1} = θ_t − α P_t⁻¹ m_t with m_t uncorrected and P_t = (1 − β₁ᵗ)(√(v_t/(1 − β₂ᵗ)) + ε)

    (v_t the running maximum with amsgrad)."""
    t = int(step) + 1
    v = state.max_exp_avg_sq if state.max_exp_avg_sq.shape[1] else state.exp_avg_sq
    beta1, beta2 = (np.asarray(hyper[k], dtype=np.float64) for k in ("beta1", "beta2"))
    eps = np.asarray(hyper["eps"], dtype=np.float64)
    return (1.0 - beta1**t) * (np.sqrt(np.asarray(v, dtype=np.float64) / (1.0 - beta2**t)) + eps)


def adam_limit(learning_rate, hyper):
    """Stable on a quadratic iff λ_max(P⁻¹H) < (2 + 2β₁)/((1 − β₁)α): 38/α at β₁ = 0.9."""
    beta1 = float(np.asarray(hyper.get("beta1", 0.9)).reshape(-1)[0])
    return (2.0 + 2.0 * beta1) / ((1.0 - beta1) * float(learning_rate))


# --- declarations --------------------------------------------------------------------------------

_ADAPTIVE_NOTE = (
    "adaptive: the step divides by a running gradient scale, so the effective step "
    "size changes during the run and no fixed α·λ_max threshold exists"
)

_MOMENTUM = HyperParam("momentum", 0.9, low=0.0, high=1.0, high_open=True, help="momentum factor μ")
_EPS = HyperParam(
    "eps", 1e-8, low=0.0, low_open=True, log=True, help="ε added to the denominator after the square root"
)
_AMSGRAD = HyperParam("amsgrad", False, kind="bool", help="divide by the running maximum of v (AMSGrad)")
_BETAS = (
    HyperParam("beta1", 0.9, low=0.0, high=1.0, high_open=True, help="decay of the first moment β₁"),
    HyperParam("beta2", 0.999, low=0.0, high=1.0, high_open=True, help="decay of the second moment β₂"),
)

RULES = (
    DescentRule(
        "gd",
        gd_init,
        gd_update,
        hyperparams=(_weight_decay(),),
        summary="Vanilla gradient descent; with a batch size it is mini-batch SGD.",
        formula="θ ← θ − α (g + λθ)",
        default_learning_rate=0.01,
        stability_threshold=gd_threshold,
        threshold_note="α·λ < 2",
        title="gradient descent",
        quadratic_rate=gd_rate,
        optimal=gd_optimal,
        torch_optimizer="SGD",
        torch_defaults={"learning_rate": 0.001, "weight_decay": 0.0},
    ),
    DescentRule(
        "momentum",
        momentum_init,
        momentum_update,
        hyperparams=(
            _MOMENTUM,
            HyperParam(
                "dampening",
                0.0,
                low=0.0,
                high=1.0,
                high_open=True,
                help="dampening d: the gradient enters the buffer as (1 − d) g",
            ),
            HyperParam("nesterov", False, kind="bool", help="Nesterov's look-ahead: step along g + μv"),
            _weight_decay(),
        ),
        summary="Heavy-ball momentum, PyTorch convention (buffer starts at the first gradient).",
        formula="v ← μv + (1 − d) g;  θ ← θ − α v   (nesterov: θ ← θ − α (g + μv))",
        default_learning_rate=0.01,
        stability_threshold=momentum_threshold,
        threshold_note="heavy ball: α·λ < (2 + 2μ)/(1 − d); with nesterov: α·λ < (2 + 2μ)/(1 + 2μ − μd)",
        title=momentum_title,
        quadratic_rate=momentum_rate,
        optimal=heavy_ball_optimal,
        torch_optimizer="SGD",
        torch_defaults={
            "learning_rate": 0.001,
            "momentum": 0.0,
            "dampening": 0.0,
            "nesterov": False,
            "weight_decay": 0.0,
        },
    ),
    DescentRule(
        "nesterov",
        nesterov_init,
        nesterov_update,
        hyperparams=(_MOMENTUM, _weight_decay()),
        summary="Nesterov momentum, PyTorch convention (SGD with nesterov=True).",
        formula="v ← μv + g;  θ ← θ − α (g + μv)",
        default_learning_rate=0.01,
        stability_threshold=nesterov_threshold,
        threshold_note="α·λ < (2 + 2μ)/(1 + 2μ)",
        title="Nesterov momentum",
        quadratic_rate=nesterov_rate,
        torch_optimizer="SGD",
        torch_defaults={"learning_rate": 0.001, "momentum": 0.0, "weight_decay": 0.0},
    ),
    DescentRule(
        "classical_momentum",
        momentum_init,
        classical_momentum_update,
        hyperparams=(_MOMENTUM,),
        summary="Classical momentum: the learning rate enters the buffer (differs from PyTorch under a schedule).",
        formula="v ← μv + α g;  θ ← θ − v",
        default_learning_rate=0.01,
        stability_threshold=classical_momentum_threshold,
        threshold_note="α·λ < 2 + 2μ at constant α",
        title="classical momentum",
        quadratic_rate=classical_momentum_rate,
    ),
    DescentRule(
        "adagrad",
        adagrad_init,
        adagrad_update,
        hyperparams=(
            HyperParam("lr_decay", 0.0, low=0.0, help="learning-rate decay k: α/(1 + t k)"),
            HyperParam(
                "eps", 1e-10, low=0.0, low_open=True, log=True, help="ε added to the denominator after the square root"
            ),
            HyperParam("initial_accumulator_value", 0.0, low=0.0, help="starting value of Σ g²"),
            _weight_decay(),
        ),
        summary="Adagrad: per-coordinate step α/√(Σ g²), PyTorch convention.",
        formula="s ← s + g²;  θ ← θ − α/(1 + t k) · g/(√s + ε)",
        default_learning_rate=0.01,
        threshold_note=_ADAPTIVE_NOTE,
        title="Adagrad",
        torch_optimizer="Adagrad",
        torch_defaults={
            "learning_rate": 0.01,
            "lr_decay": 0.0,
            "eps": 1e-10,
            "initial_accumulator_value": 0.0,
            "weight_decay": 0.0,
        },
    ),
    DescentRule(
        "rmsprop",
        rmsprop_init,
        rmsprop_update,
        hyperparams=(
            HyperParam("alpha", 0.99, low=0.0, high=1.0, high_open=True, help="smoothing constant ρ of the mean of g²"),
            _EPS,
            HyperParam("centered", False, kind="bool", help="divide by the estimated variance √(E g² − (E g)²)"),
            HyperParam("momentum", 0.0, low=0.0, high=1.0, high_open=True, help="momentum factor μ (0 = none)"),
            _weight_decay(),
        ),
        summary="RMSprop with optional centering and momentum, PyTorch convention.",
        formula="s ← ρs + (1 − ρ) g²;  θ ← θ − α g/(√s + ε)",
        default_learning_rate=0.01,
        threshold_note=_ADAPTIVE_NOTE,
        title="RMSprop",
        torch_optimizer="RMSprop",
        torch_defaults={
            "learning_rate": 0.01,
            "alpha": 0.99,
            "eps": 1e-8,
            "centered": False,
            "momentum": 0.0,
            "weight_decay": 0.0,
        },
    ),
    DescentRule(
        "adam",
        adam_init,
        adam_update,
        hyperparams=(*_BETAS, _EPS, _AMSGRAD, _weight_decay()),
        summary="Adam with bias correction and optional AMSGrad; weight decay as L2, PyTorch convention.",
        formula="m ← β₁m + (1 − β₁)g;  v ← β₂v + (1 − β₂)g²;  θ ← θ − α/(1 − β₁ᵗ) · m/(√v/√(1 − β₂ᵗ) + ε)",
        default_learning_rate=0.001,
        threshold_note=_ADAPTIVE_NOTE,
        title="Adam",
        preconditioner=adam_preconditioner,
        preconditioned_limit=adam_limit,
        torch_optimizer="Adam",
        torch_defaults={
            "learning_rate": 0.001,
            "beta1": 0.9,
            "beta2": 0.999,
            "eps": 1e-8,
            "amsgrad": False,
            "weight_decay": 0.0,
        },
    ),
    DescentRule(
        "adamw",
        adamw_init,
        adamw_update,
        hyperparams=(
            *_BETAS,
            _EPS,
            _AMSGRAD,
            HyperParam(
                "weight_decay", 0.01, low=0.0, help="decoupled weight decay λ: θ ← θ − αλθ before the Adam step"
            ),
        ),
        summary="AdamW: Adam with decoupled weight decay, PyTorch convention.",
        formula="θ ← θ − αλθ;  then the Adam step on g",
        default_learning_rate=0.001,
        threshold_note=_ADAPTIVE_NOTE,
        title="AdamW",
        preconditioner=adam_preconditioner,
        preconditioned_limit=adam_limit,
        torch_optimizer="AdamW",
        torch_defaults={
            "learning_rate": 0.001,
            "beta1": 0.9,
            "beta2": 0.999,
            "eps": 1e-8,
            "amsgrad": False,
            "weight_decay": 0.01,
        },
        moves_without_gradient=True,
    ),
)


@hookimpl
def register_optimizers(register):
    """Register the built-in descent rules."""
    for rule in RULES:
        register(rule)
