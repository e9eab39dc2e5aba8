"""Built-in descent rules of the sign, factored and schedule-free kinds: Lion, signSGD, Adafactor, and schedule-free
SGD and AdamW."""

# The contract is the one of descentlab.plugins.rules (see its module docstring): arrays (R, P),
# hyperparameters and the learning rate (R, 1), every array of a state with the run axis first, ``step``
# the number of updates already taken (t = step + 1 in PyTorch's 1-based count), ``grad`` and ``params``
# never written. Adafactor follows torch.optim.Adafactor (torch 2.5+); Lion follows Chen et al. 2023
# (Algorithm 2) and the schedule-free rules the reference implementation of Defazio et al. 2024
# (facebookresearch/schedule_free: SGDScheduleFree, AdamWScheduleFree), none of which torch has.

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from descentlab import DescentRule, HyperParam, hookimpl

from .rules import _ADAPTIVE_NOTE, _decay_field, _l2_gradient, _rows, _weight_decay


class LionState(NamedTuple):
    exp_avg: np.ndarray  # (R, P) momentum m
    beta1: np.ndarray  # (R, P) or (R, 1) β₁
    one_minus_beta1: np.ndarray  # 1 − β₁
    beta2: np.ndarray  # β₂
    one_minus_beta2: np.ndarray  # 1 − β₂
    weight_decay: np.ndarray  # (R, 1 or P) decoupled λ when some run uses weight decay, else (R, 0)


class SignState(NamedTuple):
    weight_decay: np.ndarray  # (R, 1 or P) decoupled λ when some run uses weight decay, else (R, 0)


class AdafactorState(NamedTuple):
    row_var: np.ndarray  # (R, Σ rows) row factors R of every matrix, one after the other
    col_var: np.ndarray  # (R, Σ columns) column factors C of every matrix
    variance: np.ndarray  # (R, Σ sizes) unfactored second moment v of every vector
    plan: tuple  # the tensors' columns and shapes: the same for every run, not an array (the
    # runner's row drops pass it through unchanged)


class ScheduleFreeState(NamedTuple):
    z: np.ndarray  # (R, P) the base sequence z (starts at θ₀)
    x: np.ndarray  # (R, P) the averaged sequence x (starts at θ₀): what to evaluate
    exp_avg_sq: np.ndarray  # (R, P) second moment v (AdamW), else (R, 0)
    lr_max: np.ndarray  # (R, 1) the largest α_t so far (starts at −1, as the reference)
    weight_sum: np.ndarray  # (R, 1) Σ of the averaging weights so far
    beta: np.ndarray  # (R, P) or (R, 1) the interpolation β (SGD's momentum, AdamW's β₁)
    beta2: np.ndarray  # β₂ (AdamW), else (R, 0)
    one_minus_beta2: np.ndarray  # 1 − β₂ (AdamW), else (R, 0)
    eps: np.ndarray  # ε (AdamW), else (R, 0)
    weight_decay: np.ndarray  # (R, 1 or P) λ when some run uses weight decay, else (R, 0)


# --- Lion ----------------------------------------------------------------------------------------


def lion_init(params, hyper):
    beta1, beta2 = hyper["beta1"], hyper["beta2"]
    return LionState(
        np.zeros_like(params),
        _rows(beta1, params),
        _rows(1.0 - beta1, params),
        _rows(beta2, params),
        _rows(1.0 - beta2, params),
        _decay_field(hyper, params),
    )


def lion_update(grad, state, params, learning_rate, hyper, step):
    """Lion (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms", Algorithm 2), decoupled
    weight decay λ (beta1 β₁, beta2 β₂; m starts at 0).

        c ← β₁ m + (1 − β₁) g                        (the interpolation the step's sign is taken of)
        θ ← θ − α (sign(c) + λθ)
        m ← β₂ m + (1 − β₂) g                        (the momentum decays with β₂, not β₁)
    """
    m = state.exp_avg
    out = np.multiply(m, state.beta1)
    scratch = np.multiply(grad, state.one_minus_beta1)  # scratch, then (1 − β₂) g: two (R, P) allocations
    out += scratch
    np.sign(out, out=out)
    if state.weight_decay.shape[1]:
        np.multiply(params, state.weight_decay, out=scratch)
        out += scratch
    out *= -learning_rate
    np.multiply(grad, state.one_minus_beta2, out=scratch)
    m *= state.beta2
    m += scratch
    return out, state


# --- signSGD -------------------------------------------------------------------------------------


def signsgd_init(params, hyper):
    return SignState(_decay_field(hyper, params))


def signsgd_update(grad, state, params, learning_rate, hyper, step):
    """Sign descent, signSGD (Bernstein et al. 2018), with decoupled weight decay λ.

    θ ← θ − α (sign(g) + λθ)                     (sign(0) = 0: a zero gradient takes no step)
    """
    out = np.sign(grad)
    if state.weight_decay.shape[1]:
        out += np.multiply(params, state.weight_decay)
    out *= -learning_rate
    return out, state


# --- Adafactor -----------------------------------------------------------------------------------


def _adafactor_plan(layout, size: int) -> tuple:
    """Per tensor: (start, stop, (L, n_r, n_c) or None, row offset, column offset, vector offset).

    A tensor of two or more dimensions is factored over its last two (L = the product of the leading
    ones, as torch batches them); one of zero or one dimension keeps an unfactored v. Without a layout
    the whole row is one vector. The layout's tensors lie one after the other in its order."""
    shapes = [(size,)] if layout is None else [e.shape for e in layout.entries]
    if layout is not None and layout.size != size:
        raise ValueError(f"adafactor: the layout holds {layout.size} parameters, the rows {size}")
    plan, start, rows, cols, vector = [], 0, 0, 0, 0
    for shape in shapes:
        n = math.prod(shape)
        if n == 0:
            continue
        if len(shape) >= 2:
            lead, n_r, n_c = math.prod(shape[:-2]), shape[-2], shape[-1]
            plan.append((start, start + n, (lead, n_r, n_c), rows, cols, vector))
            rows, cols = rows + lead * n_r, cols + lead * n_c
        else:
            plan.append((start, start + n, None, rows, cols, vector))
            vector += n
        start += n
    return tuple(plan), rows, cols, vector


def _lerp(start, end, weight):
    """start + w (end − start) as torch.lerp rounds it: end − (end − start)(1 − w) once w ≥ ½ (exactly end at w = 1)."""
    gap = end - start
    return np.where(weight < 0.5, start + weight * gap, end - gap * (1.0 - weight))


def adafactor_init(params, hyper, layout=None):
    plan, rows, cols, vector = _adafactor_plan(layout, params.shape[1])
    runs = params.shape[0]
    return AdafactorState(
        np.zeros((runs, rows), params.dtype),
        np.zeros((runs, cols), params.dtype),
        np.zeros((runs, vector), params.dtype),
        plan,
    )


def _rms(a):
    """(R, 1) root mean square of each row of ``a`` (R, n): torch's ‖a‖₂/√n."""
    return np.sqrt(np.einsum("rp,rp->r", a, a))[:, None] / math.sqrt(a.shape[1])


def adafactor_update(grad, state, params, learning_rate, hyper, step):
    """Adafactor (Shazeer & Stern 2018), torch.optim.Adafactor's convention (beta2_decay c, eps1 ε₁, eps2 ε₂,
    d, weight_decay λ decoupled; maximize=False). Per tensor and per run, t = step + 1:

        ρ_t = min(α_t, 1/√t),   β̂ = t^c  (the weight of the new g², 1 at the first step; c = −0.8)
        a_t = max(ε₂, RMS(θ)) · ρ_t                  (RMS(θ) = ‖θ‖₂/√n before the decay)
        θ ← θ (1 − α_t λ)
        matrix (last two axes n_r × n_c): R ← R + β̂ (mean_c(g²) − R),  C ← C + β̂ (mean_r(g²) − C),
                                          v̂ = R C / max(mean_r(R), ε₁)   (R, C start at 0)
        vector:                           v ← v + β̂ (g² − v),   v̂ = v
        u = g / √max(v̂, ε₁²)
        θ ← θ − a_t / max(1, RMS(u)/d) · u

    eps1 = 0 (the default) stands for torch's eps1=None: the machine epsilon of the runs' dtype. The
    tensors' shapes come from the problem's layout (``uses_layout``: the runner and the lesson pass it);
    initialised without one (``layout=None``), the rule treats each run's row as one vector.
    """
    t = step + 1
    runs = params.shape[0]
    eps1 = hyper["eps1"]
    eps1 = np.where(eps1 > 0, eps1, np.finfo(params.dtype).eps).astype(params.dtype, copy=False)
    share = t ** hyper["beta2_decay"]  # β̂ = t^c, (R, 1)
    rho = np.minimum(learning_rate, t**-0.5)
    decay = hyper["weight_decay"]
    decayed = bool(np.any(decay))
    out = np.empty_like(params)
    for start, stop, shape, row_at, col_at, vector_at in state.plan:
        theta, g = params[:, start:stop], grad[:, start:stop]
        n = stop - start
        a_t = np.maximum(hyper["eps2"], _rms(theta)) * rho
        squares = np.multiply(g, g)
        if shape is None:
            estimate = _lerp(state.variance[:, vector_at : vector_at + n], squares, share)
            state.variance[:, vector_at : vector_at + n] = estimate
        else:
            lead, n_r, n_c = shape
            squares = squares.reshape(runs, lead, n_r, n_c)
            weight = share.reshape(runs, 1, 1, 1)
            row = state.row_var[:, row_at : row_at + lead * n_r].reshape(runs, lead, n_r, 1)
            col = state.col_var[:, col_at : col_at + lead * n_c].reshape(runs, lead, 1, n_c)
            row = _lerp(row, squares.mean(axis=3, keepdims=True), weight)
            col = _lerp(col, squares.mean(axis=2, keepdims=True), weight)
            state.row_var[:, row_at : row_at + lead * n_r] = row.reshape(runs, -1)
            state.col_var[:, col_at : col_at + lead * n_c] = col.reshape(runs, -1)
            estimate = row * col
            estimate /= np.maximum(row.mean(axis=2, keepdims=True), eps1.reshape(runs, 1, 1, 1))
            estimate = estimate.reshape(runs, n)
        np.maximum(estimate, eps1 * eps1, out=estimate)
        np.sqrt(estimate, out=estimate)
        u = np.divide(g, estimate, out=estimate)
        scale = a_t / np.maximum(1.0, _rms(u) / hyper["d"])
        u *= -scale
        if decayed:
            u -= (learning_rate * decay) * theta
        out[:, start:stop] = u
    return out, state


# --- schedule-free SGD and AdamW -----------------------------------------------------------------


def _schedule_free_state(params, hyper, beta, adam: bool):
    runs = params.shape[0]
    none = np.zeros((runs, 0), params.dtype)
    if adam:
        beta2 = hyper["beta2"]
        moments = (np.zeros_like(params), _rows(beta2, params), _rows(1.0 - beta2, params), _rows(hyper["eps"], params))
    return ScheduleFreeState(
        params.copy(),
        params.copy(),
        moments[0] if adam else none,
        np.full((runs, 1), -1.0, params.dtype),
        np.zeros((runs, 1), params.dtype),
        _rows(beta, params),
        *(moments[1:] if adam else (none, none, none)),
        _decay_field(hyper, params),
    )


def _average_weight(state, learning_rate, hyper, step):
    """c_{t+1} = w_t / Σ w with w_t = (t + 1)^r · (max α)^p, updating max α and Σ w in place; 0 while Σ w = 0."""
    np.maximum(state.lr_max, learning_rate, out=state.lr_max)
    weight = (step + 1) ** hyper["r"] * state.lr_max ** hyper["weight_lr_power"]
    state.weight_sum[...] += weight
    total = state.weight_sum
    return np.divide(weight, total, out=np.zeros_like(weight), where=total != 0)


def _average_and_interpolate(state, params, c):
    """x ← x + c (z − x), then the updates y − θ with y = x + (1 − β)(z − x) = βx + (1 − β)z."""
    z, x = state.z, state.x
    out = np.subtract(z, x)
    out *= c
    x += out
    np.subtract(z, x, out=out)
    out *= 1.0 - state.beta
    out += x
    out -= params
    return out


def sgd_schedule_free_init(params, hyper):
    return _schedule_free_state(params, hyper, hyper["momentum"], adam=False)


def sgd_schedule_free_update(grad, state, params, learning_rate, hyper, step):
    """Schedule-free SGD (Defazio et al. 2024, "The Road Less Scheduled"), the reference implementation's
    SGDScheduleFree (momentum β, weight_decay λ as L2 at y, r, weight_lr_power p). θ is y, the point
    the gradient is taken at; z and x start at θ₀ (t = step + 1):

        g ← g + λy
        z ← z − α_t g
        w_t = tʳ · (max_{s≤t} α_s)^p,   c = w_t / Σ_{s≤t} w_s
        x ← (1 − c) x + c z                          (x is the average to evaluate: state.x)
        θ ← y = β x + (1 − β) z                      (the next gradient's point)

    The reference's warmup_steps W is descentlab's schedule warmup: [rules.schedule] warmup_steps = W
    makes α_t = α(t + 1)/W for t < W, exactly the reference's warmed-up learning rate, and the average's
    weights follow it. The runner's parameters are y; evaluating the model at x (what the reference's
    ``optimizer.eval()`` switches to) is not what the runner's loss reports.
    """
    g = _l2_gradient(grad, params, state.weight_decay) if state.weight_decay.shape[1] else grad
    c = _average_weight(state, learning_rate, hyper, step)
    state.z[...] -= learning_rate * g
    return _average_and_interpolate(state, params, c), state


def adamw_schedule_free_init(params, hyper):
    return _schedule_free_state(params, hyper, hyper["beta1"], adam=True)


def adamw_schedule_free_update(grad, state, params, learning_rate, hyper, step):
    """Schedule-free AdamW (Defazio et al. 2024), the reference implementation's AdamWScheduleFree (beta1 β₁
    the interpolation, beta2 β₂, eps ε, weight_decay λ decoupled and taken at y, r, weight_lr_power p).
    θ is y, the point the gradient is taken at; z and x start at θ₀, v at 0 (t = step + 1):

        v ← β₂ v + (1 − β₂) g²,   d = √(v/(1 − β₂ᵗ)) + ε
        z ← z − α_t (g/d + λy)
        w_t = tʳ · (max_{s≤t} α_s)^p,   c = w_t / Σ_{s≤t} w_s
        x ← (1 − c) x + c z                          (x is the average to evaluate: state.x)
        θ ← y = β₁ x + (1 − β₁) z                    (the next gradient's point)

    The paper's Algorithm 1 folds √(1 − β₂ᵗ) into α_t and weights the average by α_t²; the reference
    implementation (followed here) bias-corrects v instead and weights by tʳ (max α)^p. Its warmup_steps W
    is descentlab's schedule warmup ([rules.schedule] warmup_steps = W), as for schedule-free SGD.
    """
    v = state.exp_avg_sq
    c = _average_weight(state, learning_rate, hyper, step)
    scratch = np.multiply(grad, grad)
    scratch *= state.one_minus_beta2
    v *= state.beta2
    v += scratch
    np.divide(v, 1.0 - hyper["beta2"] ** (step + 1), out=scratch)
    np.sqrt(scratch, out=scratch)
    scratch += state.eps
    np.divide(grad, scratch, out=scratch)
    if state.weight_decay.shape[1]:
        scratch += params * state.weight_decay
    scratch *= learning_rate
    state.z[...] -= scratch
    return _average_and_interpolate(state, params, c), state


# --- declarations --------------------------------------------------------------------------------

_SIGN_NOTE = (
    "sign-based: every coordinate moves by ±α whatever the gradient's size and the curvature λ, so no "
    "α·λ threshold exists (on a quadratic the iterates never blow up; they end oscillating in a band "
    "around the minimum whose width scales with α)"
)
_DECOUPLED = "decoupled weight decay λ: θ ← θ − αλθ beside the sign step"
_AVERAGE = (
    HyperParam("r", 0.0, low=0.0, help="power r of the polynomial weights tʳ of the average x"),
    HyperParam(
        "weight_lr_power",
        2.0,
        low=0.0,
        help="power p of the largest α so far in the average's weights tʳ(max α)^p (0: no weighting)",
    ),
)
_SCHEDULE_FREE_NOTE = (
    "the average x is weighted by c_t ≈ 1/t, so the iteration changes every step: the first "
    "step is a GD step from θ₀ (edge α·λ < 2) and the edge moves towards α·λ(1 − β) < 2 as c_t "
    "→ 0 (the long-run edge, 20 at β = 0.9: runs below it may first grow by orders of "
    "magnitude); no fixed α·λ threshold exists"
)

RULES = (
    DescentRule(
        "lion",
        lion_init,
        lion_update,
        hyperparams=(
            HyperParam("beta1", 0.9, low=0.0, high=1.0, help="interpolation β₁ of m and g whose sign is the step"),
            HyperParam("beta2", 0.99, low=0.0, high=1.0, help="decay β₂ of the momentum m"),
            _weight_decay(_DECOUPLED),
        ),
        summary="Lion: the sign of an interpolation of momentum and gradient, with decoupled weight decay "
        "(Chen et al. 2023).",
        formula="θ ← θ − α (sign(β₁m + (1 − β₁)g) + λθ);  m ← β₂m + (1 − β₂)g",
        default_learning_rate=1e-4,
        threshold_note=_SIGN_NOTE,
        title="Lion",
    ),
    DescentRule(
        "signsgd",
        signsgd_init,
        signsgd_update,
        hyperparams=(_weight_decay(_DECOUPLED),),
        summary="Sign descent (signSGD): fixed-length steps against the gradient's sign, with decoupled weight decay.",
        formula="θ ← θ − α (sign(g) + λθ)",
        default_learning_rate=0.01,
        threshold_note=_SIGN_NOTE,
        title="sign descent",
    ),
    DescentRule(
        "adafactor",
        adafactor_init,
        adafactor_update,
        hyperparams=(
            HyperParam(
                "beta2_decay",
                -0.8,
                high=0.0,
                help="exponent c ≤ 0 of the weight t^c of the newest g² in the second moment",
            ),
            HyperParam(
                "eps1",
                0.0,
                low=0.0,
                help="ε₁ flooring the second-moment estimate (as ε₁²); 0 means the machine epsilon of the "
                "runs' dtype, torch's eps1=None",
            ),
            HyperParam("eps2", 1e-3, low=0.0, help="ε₂: the smallest parameter RMS the relative step scales by"),
            HyperParam("d", 1.0, low=1.0, help="clipping threshold d ≥ 1 of the update's RMS"),
            HyperParam(
                "weight_decay",
                0.0,
                low=0.0,
                help="decoupled weight decay λ: θ ← θ(1 − αλ) before the step (torch's Adafactor)",
            ),
        ),
        summary="Adafactor: a factored second moment (row and column means for every matrix), a step relative "
        "to the parameters' RMS and clipped by d; torch.optim.Adafactor's convention.",
        formula="ρ = min(α, 1/√t);  v̂ = RC/mean(R) (matrix) or v (vector), R, C, v ← lerp(·, mean g², t^c);  "
        "u = g/√max(v̂, ε₁²);  θ ← θ(1 − αλ) − max(ε₂, RMS(θ)) ρ u / max(1, RMS(u)/d)",
        default_learning_rate=0.01,
        threshold_note=(_ADAPTIVE_NOTE + "; the step is also relative (ρ_t RMS(θ)) and clipped to RMS ≤ d"),
        title="Adafactor",
        uses_layout=True,
        torch_optimizer="Adafactor",
        # torch's eps = (None, 1e-3): eps1 None is the machine epsilon of the dtype, what eps1 = 0 means here
        torch_defaults={
            "learning_rate": 0.01,
            "beta2_decay": -0.8,
            "eps1": 0.0,
            "eps2": 1e-3,
            "d": 1.0,
            "weight_decay": 0.0,
        },
    ),
    DescentRule(
        "sgd_schedule_free",
        sgd_schedule_free_init,
        sgd_schedule_free_update,
        hyperparams=(
            HyperParam(
                "momentum",
                0.9,
                low=0.0,
                high=1.0,
                low_open=True,
                high_open=True,
                help="interpolation β between the average x and the base sequence z: y = βx + (1 − β)z",
            ),
            _weight_decay("L2 penalty λ at y: the gradient becomes g + λy"),
            *_AVERAGE,
        ),
        summary="Schedule-free SGD (Defazio et al. 2024): SGD steps on z, an online average x, gradients at "
        "their interpolation y (the parameters here); reference-implementation convention.",
        formula="z ← z − α(g + λy);  c = tʳ(max α)^p/Σ;  x ← (1 − c)x + cz;  y ← βx + (1 − β)z",
        default_learning_rate=1.0,
        threshold_note=_SCHEDULE_FREE_NOTE,
        title="schedule-free SGD",
    ),
    DescentRule(
        "adamw_schedule_free",
        adamw_schedule_free_init,
        adamw_schedule_free_update,
        hyperparams=(
            HyperParam(
                "beta1",
                0.9,
                low=0.0,
                high=1.0,
                high_open=True,
                help="interpolation β₁ between the average x and the base sequence z: y = β₁x + (1 − β₁)z",
            ),
            HyperParam("beta2", 0.999, low=0.0, high=1.0, high_open=True, help="decay of the second moment β₂"),
            HyperParam("eps", 1e-8, low=0.0, low_open=True, log=True, help="ε added to the denominator"),
            HyperParam("weight_decay", 0.0, low=0.0, help="decoupled weight decay λ at y: z ← z − αλy"),
            *_AVERAGE,
        ),
        summary="Schedule-free AdamW (Defazio et al. 2024): Adam-normalised steps on z, an online average x, "
        "gradients at their interpolation y (the parameters here); reference-implementation convention.",
        formula="v ← β₂v + (1 − β₂)g²;  z ← z − α(g/(√(v/(1 − β₂ᵗ)) + ε) + λy);  c = tʳ(max α)^p/Σ;  "
        "x ← (1 − c)x + cz;  y ← β₁x + (1 − β₁)z",
        default_learning_rate=0.0025,
        threshold_note=_ADAPTIVE_NOTE,
        title="schedule-free AdamW",
    ),
)


@hookimpl
def register_optimizers(register):
    """Register the built-in descent rules of this module."""
    for rule in RULES:
        register(rule)
