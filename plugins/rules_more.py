"""Built-in descent rules beyond the SGD and Adam families: Adamax, NAdam, RAdam, Adadelta, Rprop and ASGD."""

# The contract is the one of descentlab.plugins.rules (see its module docstring): arrays (R, P),
# hyperparameters and the learning rate (R, 1), every state field with the run axis first, ``step``
# the number of updates already taken (t = step + 1 in PyTorch's 1-based count), ``grad`` and
# ``params`` never written. Semantics and defaults are torch.optim's (version 2); weight decay is
# PyTorch's L2 form g ← g + λθ (NAdam and RAdam by default: their decoupled_weight_decay is torch's too).

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from descentlab import DescentRule, HyperParam, hookimpl

from .rules import _ADAPTIVE_NOTE, _decay_field, _flag_rows, _l2_gradient, _rows, _weight_decay


class AdamaxState(NamedTuple):
    exp_avg: np.ndarray  # (R, P) first moment m
    exp_inf: np.ndarray  # (R, P) exponentially weighted infinity norm u
    beta1: np.ndarray  # (R, P) or (R, 1) β₁
    one_minus_beta1: np.ndarray  # 1 − β₁
    beta2: np.ndarray  # β₂
    eps: np.ndarray  # ε
    weight_decay: np.ndarray  # (R, 1 or P) λ when some run uses weight decay, else (R, 0)


class NAdamState(NamedTuple):
    exp_avg: np.ndarray  # (R, P) first moment m
    exp_avg_sq: np.ndarray  # (R, P) second moment v
    mu_product: np.ndarray  # (R, 1) Π μ_k over the steps taken (starts at 1)
    beta1: np.ndarray  # (R, P) or (R, 1) β₁
    one_minus_beta1: np.ndarray  # 1 − β₁
    beta2: np.ndarray  # β₂
    one_minus_beta2: np.ndarray  # 1 − β₂
    eps: np.ndarray  # ε
    weight_decay: np.ndarray  # (R, 1 or P) L2 λ when some run uses L2 weight decay, else (R, 0)
    decoupled_decay: np.ndarray  # (R, 1) decoupled λ when some run decouples it, else (R, 0)


class RAdamState(NamedTuple):
    exp_avg: np.ndarray  # (R, P) first moment m
    exp_avg_sq: np.ndarray  # (R, P) second moment v
    beta1: np.ndarray  # (R, P) or (R, 1) β₁
    one_minus_beta1: np.ndarray  # 1 − β₁
    beta2: np.ndarray  # β₂
    one_minus_beta2: np.ndarray  # 1 − β₂
    eps: np.ndarray  # ε
    weight_decay: np.ndarray  # (R, 1 or P) L2 λ when some run uses L2 weight decay, else (R, 0)
    decoupled_decay: np.ndarray  # (R, 1) decoupled λ when some run decouples it, else (R, 0)


class AdadeltaState(NamedTuple):
    square_avg: np.ndarray  # (R, P) running mean of g²
    acc_delta: np.ndarray  # (R, P) running mean of the squared steps Δ²
    rho: np.ndarray  # (R, P) or (R, 1) ρ
    one_minus_rho: np.ndarray  # 1 − ρ
    eps: np.ndarray  # ε
    weight_decay: np.ndarray  # (R, 1 or P) λ when some run uses weight decay, else (R, 0)


class RpropState(NamedTuple):
    prev: np.ndarray  # (R, P) the previous gradient (0 where its sign flipped)
    step_size: np.ndarray  # (R, P) per-coordinate step size (set to α at the first step)
    etaminus: np.ndarray  # (R, P) or (R, 1) η⁻
    etaplus: np.ndarray  # η⁺
    step_size_min: np.ndarray  # Δ_min
    step_size_max: np.ndarray  # Δ_max


class ASGDState(NamedTuple):
    eta: np.ndarray  # (R, 1) the step size η of the next update (set to α at the first step)
    weight_decay: np.ndarray  # (R, 1 or P) λ when some run uses weight decay, else (R, 0)


# --- Adamax --------------------------------------------------------------------------------------


def adamax_init(params, hyper):
    beta1 = hyper["beta1"]
    return AdamaxState(
        np.zeros_like(params),
        np.zeros_like(params),
        _rows(beta1, params),
        _rows(1.0 - beta1, params),
        _rows(hyper["beta2"], params),
        _rows(hyper["eps"], params),
        _decay_field(hyper, params),
    )


def adamax_update(grad, state, params, learning_rate, hyper, step):
    """Adamax (Kingma & Ba 2015, §7.1), PyTorch convention (beta1 β₁, beta2 β₂, eps ε, weight_decay λ).

    g ← g + λθ
    m ← β₁ m + (1 − β₁) g                        (m, u start at 0; t = step + 1)
    u ← max(β₂ u, |g| + ε)                       (ε inside the max, as PyTorch)
    θ ← θ − α/(1 − β₁ᵗ) · m / u
    """
    g = _l2_gradient(grad, params, state.weight_decay) if state.weight_decay.shape[1] else grad
    m, u = state.exp_avg, state.exp_inf
    out = np.multiply(g, state.one_minus_beta1)  # scratch, then the updates: one (R, P) allocation
    m *= state.beta1
    m += out
    np.abs(g, out=out)
    out += state.eps
    u *= state.beta2
    np.maximum(u, out, out=u)
    np.divide(m, u, out=out)
    t = step + 1
    out *= -(learning_rate / (1.0 - hyper["beta1"] ** t))
    return out, state


def _moments(g, state):
    """m ← β₁ m + (1 − β₁) g and v ← β₂ v + (1 − β₂) g² in place; returns an (R, P) scratch array."""
    m, v = state.exp_avg, state.exp_avg_sq
    out = np.multiply(g, state.one_minus_beta1)
    m *= state.beta1
    m += out
    np.multiply(g, g, out=out)
    out *= state.one_minus_beta2
    v *= state.beta2
    v += out
    return out


def _split_decay(hyper, params):
    """(L2 λ field, decoupled λ field) for torch's decoupled_weight_decay flag (NAdam, RAdam): each run's λ
    goes to one of the two; a field no run uses is (R, 0). With the flag off everywhere the L2 field is
    exactly ``_decay_field``'s."""
    decoupled = np.asarray(hyper.get("decoupled_weight_decay", 0.0), dtype=float)
    if not np.any(decoupled):
        return _decay_field(hyper, params), _empty_decay(params)
    decay = np.broadcast_to(np.asarray(hyper.get("weight_decay", 0.0), dtype=params.dtype), (params.shape[0], 1))
    on = np.broadcast_to(decoupled != 0, decay.shape)
    l2 = np.where(on, 0.0, decay).astype(params.dtype)
    split = np.where(on, decay, 0.0).astype(params.dtype)
    return _decay_field({"weight_decay": l2}, params), _flag_rows(split, params[:, :1], bool(np.any(split)))


def _empty_decay(params):
    return np.zeros((params.shape[0], 0), dtype=params.dtype)


def _adam_moments_state(cls, params, hyper, *extra):
    beta1, beta2 = hyper["beta1"], hyper["beta2"]
    return cls(
        np.zeros_like(params),
        np.zeros_like(params),
        *extra,
        _rows(beta1, params),
        _rows(1.0 - beta1, params),
        _rows(beta2, params),
        _rows(1.0 - beta2, params),
        _rows(hyper["eps"], params),
        *_split_decay(hyper, params),
    )


def _decoupled(out, state, params, learning_rate):
    """θ ← θ(1 − αλ) before the step (torch's decoupled_weight_decay=True), as −αλθ added to the updates."""
    if state.decoupled_decay.shape[1]:
        out -= (learning_rate * state.decoupled_decay) * params
    return out


# --- NAdam ---------------------------------------------------------------------------------------


def nadam_init(params, hyper):
    return _adam_moments_state(NAdamState, params, hyper, np.ones((params.shape[0], 1), dtype=params.dtype))


def nadam_update(grad, state, params, learning_rate, hyper, step):
    """NAdam (Dozat 2016), PyTorch convention (beta1 β₁, beta2 β₂, eps ε, momentum_decay ψ, weight_decay λ,
    decoupled_weight_decay).

    g ← g + λθ                                   (L2; t = step + 1; m, v start at 0, Π μ at 1)
    θ ← θ(1 − αλ)  instead, with decoupled_weight_decay (NAdamW; g unchanged)
    μ_t = β₁ (1 − ½ · 0.96^(tψ)),   μ_{t+1} = β₁ (1 − ½ · 0.96^((t+1)ψ)),   Π ← Π · μ_t
    m ← β₁ m + (1 − β₁) g,   v ← β₂ v + (1 − β₂) g²,   d = √(v/(1 − β₂ᵗ)) + ε
    θ ← θ − α (1 − μ_t)/(1 − Π) · g/d − α μ_{t+1}/(1 − Π μ_{t+1}) · m/d
    """
    g = _l2_gradient(grad, params, state.weight_decay) if state.weight_decay.shape[1] else grad
    beta1, decay = hyper["beta1"], hyper["momentum_decay"]
    t = step + 1
    mu = beta1 * (1.0 - 0.5 * 0.96 ** (t * decay))
    mu_next = beta1 * (1.0 - 0.5 * 0.96 ** ((t + 1) * decay))
    product = state.mu_product
    product *= mu
    out = _moments(g, state)
    denom = np.divide(state.exp_avg_sq, 1.0 - hyper["beta2"] ** t)
    np.sqrt(denom, out=denom)
    denom += state.eps
    np.divide(g, denom, out=out)
    out *= -learning_rate * (1.0 - mu) / (1.0 - product)
    np.divide(state.exp_avg, denom, out=denom)
    denom *= -learning_rate * mu_next / (1.0 - product * mu_next)
    out += denom
    return _decoupled(out, state, params, learning_rate), state


# --- RAdam ---------------------------------------------------------------------------------------

RADAM_THRESHOLD = 5.0  # PyTorch rectifies once ρ_t > 5 (Liu et al. 2020 use 4; the variance is finite above 4)


def radam_init(params, hyper):
    return _adam_moments_state(RAdamState, params, hyper)


def radam_update(grad, state, params, learning_rate, hyper, step):
    """RAdam (Liu et al. 2020), PyTorch convention (beta1 β₁, beta2 β₂, eps ε, weight_decay λ,
    decoupled_weight_decay).

    g ← g + λθ                                   (L2; t = step + 1; m, v start at 0)
    θ ← θ(1 − αλ)  instead, with decoupled_weight_decay (g unchanged)
    m ← β₁ m + (1 − β₁) g,   v ← β₂ v + (1 − β₂) g²,   m̂ = m/(1 − β₁ᵗ)
    ρ_∞ = 2/(1 − β₂) − 1,   ρ_t = ρ_∞ − 2t β₂ᵗ/(1 − β₂ᵗ)
    r_t = √((ρ_t − 4)(ρ_t − 2) ρ_∞ / ((ρ_∞ − 4)(ρ_∞ − 2) ρ_t))
    θ ← θ − α m̂ · r_t √(1 − β₂ᵗ)/(√v + ε)      if ρ_t > 5
    θ ← θ − α m̂                                  otherwise (momentum SGD while v is unreliable)
    """
    g = _l2_gradient(grad, params, state.weight_decay) if state.weight_decay.shape[1] else grad
    beta1, beta2 = hyper["beta1"], hyper["beta2"]
    t = step + 1
    out = _moments(g, state)
    bias2 = 1.0 - beta2**t
    rho_inf = 2.0 / (1.0 - beta2) - 1.0
    rho_t = rho_inf - 2.0 * t * beta2**t / bias2
    rectified = rho_t > RADAM_THRESHOLD
    np.divide(state.exp_avg, 1.0 - beta1**t, out=out)
    out *= -learning_rate
    if np.any(rectified):
        with np.errstate(divide="ignore", invalid="ignore"):  # the runs with ρ_t ≤ 5 take the other branch
            rect = np.sqrt((rho_t - 4.0) * (rho_t - 2.0) * rho_inf / ((rho_inf - 4.0) * (rho_inf - 2.0) * rho_t))
        adaptive = np.sqrt(state.exp_avg_sq)
        adaptive += state.eps
        np.divide(np.sqrt(bias2), adaptive, out=adaptive)
        adaptive *= np.where(rectified, rect, 0.0)
        out *= np.where(rectified, adaptive, 1.0)
    return _decoupled(out, state, params, learning_rate), state


# --- Adadelta ------------------------------------------------------------------------------------


def adadelta_init(params, hyper):
    rho = hyper["rho"]
    return AdadeltaState(
        np.zeros_like(params),
        np.zeros_like(params),
        _rows(rho, params),
        _rows(1.0 - rho, params),
        _rows(hyper["eps"], params),
        _decay_field(hyper, params),
    )


def adadelta_update(grad, state, params, learning_rate, hyper, step):
    """Adadelta (Zeiler 2012), PyTorch convention (rho ρ, eps ε, weight_decay λ as L2; α scales the step).

    g ← g + λθ                                   (s, a start at 0)
    s ← ρ s + (1 − ρ) g²
    Δ = √(a + ε)/√(s + ε) · g
    a ← ρ a + (1 − ρ) Δ²
    θ ← θ − α Δ
    """
    g = _l2_gradient(grad, params, state.weight_decay) if state.weight_decay.shape[1] else grad
    s, a = state.square_avg, state.acc_delta
    out = np.multiply(g, g)  # scratch, then Δ, then the updates: two (R, P) allocations per step
    out *= state.one_minus_rho
    s *= state.rho
    s += out
    std = np.add(s, state.eps)
    np.sqrt(std, out=std)
    np.add(a, state.eps, out=out)
    np.sqrt(out, out=out)
    out /= std
    out *= g
    np.multiply(out, out, out=std)
    std *= state.one_minus_rho
    a *= state.rho
    a += std
    out *= -learning_rate
    return out, state


# --- Rprop ---------------------------------------------------------------------------------------


def rprop_init(params, hyper):
    return RpropState(
        np.zeros_like(params),
        np.zeros_like(params),
        _rows(hyper["etaminus"], params),
        _rows(hyper["etaplus"], params),
        _rows(hyper["step_size_min"], params),
        _rows(hyper["step_size_max"], params),
    )


def rprop_update(grad, state, params, learning_rate, hyper, step):
    """Rprop (Riedmiller & Braun 1993), PyTorch convention (etaminus η⁻, etaplus η⁺, step_size_min/max).

    Δ ← α                                        (every coordinate, at the first step only: later α_t are
                                                  ignored, as torch reads lr once; g_prev starts at 0)
    Δ ← clamp(η⁺ Δ, Δ_min, Δ_max)   where g · g_prev > 0
    Δ ← clamp(η⁻ Δ, Δ_min, Δ_max),  g ← 0   where g · g_prev < 0   (no step after a sign change)
    Δ ← clamp(Δ, Δ_min, Δ_max)               where g · g_prev = 0
    θ ← θ − sign(g) Δ,   g_prev ← g
    """
    prev, size = state.prev, state.step_size
    if step == 0:
        np.copyto(size, np.broadcast_to(learning_rate, size.shape))
    sign = np.sign(np.multiply(grad, prev))
    size *= np.where(sign > 0, state.etaplus, np.where(sign < 0, state.etaminus, 1.0))
    np.maximum(size, state.step_size_min, out=size)  # torch's clamp: the maximum with Δ_min, then the minimum
    np.minimum(size, state.step_size_max, out=size)  # with Δ_max (so Δ_max wins if Δ_min > Δ_max)
    np.copyto(prev, grad)
    prev[sign < 0] = 0.0
    out = np.sign(prev)
    out *= size
    np.negative(out, out=out)
    return out, state


# --- ASGD ----------------------------------------------------------------------------------------


def asgd_init(params, hyper):
    return ASGDState(np.zeros((params.shape[0], 1), dtype=params.dtype), _decay_field(hyper, params))


def asgd_update(grad, state, params, learning_rate, hyper, step):
    """ASGD (Polyak & Juditsky 1992), PyTorch convention (lambd λ_d, alpha a, weight_decay λ as L2): the
    parameter trajectory θ_t. PyTorch's averaged iterate ax (averaging from step t0) never feeds back into θ_t.

        g ← g + λθ                                   (t = step + 1)
        η ← α                                        at the first step
        θ ← θ (1 − λ_d η) − η g
        η ← α_t / (1 + λ_d α_t t)^a                  the step size of the next update
    """
    g = _l2_gradient(grad, params, state.weight_decay) if state.weight_decay.shape[1] else grad
    eta = state.eta
    if step == 0:
        np.copyto(eta, np.broadcast_to(learning_rate, eta.shape))
    lambd = hyper["lambd"]
    out = np.multiply(params, lambd * eta)  # θ(1 − λ_d η) − η g − θ = −(λ_d η θ + η g)
    out += eta * g
    np.negative(out, out=out)
    np.copyto(eta, learning_rate / (1.0 + lambd * learning_rate * (step + 1)) ** hyper["alpha"])
    return out, state


# --- declarations --------------------------------------------------------------------------------

_EPS = HyperParam("eps", 1e-8, low=0.0, low_open=True, log=True, help="ε added to the denominator")
_BETAS = (
    HyperParam("beta1", 0.9, low=0.0, high=1.0, high_open=True, help="decay of the first moment β₁"),
    HyperParam("beta2", 0.999, low=0.0, high=1.0, high_open=True, help="decay of the second moment β₂"),
)

# NAdam's and RAdam's weight decay: L2 by default, decoupled (θ ← θ(1 − αλ)) with torch's flag
_DECAY_L2_OR_DECOUPLED = (
    _weight_decay(
        "L2 penalty λ: the gradient becomes g + λθ (PyTorch weight_decay); with decoupled_weight_decay "
        "θ ← θ(1 − αλ) instead"
    ),
    HyperParam(
        "decoupled_weight_decay",
        False,
        kind="bool",
        help="decouple the weight decay, θ ← θ(1 − αλ) before the step, the gradient left as it is (torch's flag)",
    ),
)

RULES = (
    DescentRule(
        "adamax",
        adamax_init,
        adamax_update,
        hyperparams=(
            _BETAS[0],
            HyperParam(
                "beta2",
                0.999,
                low=0.0,
                high=1.0,
                high_open=True,
                help="decay β₂ of the infinity norm u = max(β₂u, |g| + ε)",
            ),
            HyperParam("eps", 1e-8, low=0.0, low_open=True, log=True, help="ε added to |g| inside the max"),
            _weight_decay(),
        ),
        summary="Adamax: Adam with the infinity norm, u = max(β₂u, |g|), in place of √v; PyTorch convention.",
        formula="m ← β₁m + (1 − β₁)g;  u ← max(β₂u, |g| + ε);  θ ← θ − α/(1 − β₁ᵗ) · m/u",
        default_learning_rate=0.002,
        threshold_note=_ADAPTIVE_NOTE,
        title="Adamax",
        torch_optimizer="Adamax",
        torch_defaults={"learning_rate": 0.002, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.0},
    ),
    DescentRule(
        "nadam",
        nadam_init,
        nadam_update,
        hyperparams=(
            *_BETAS,
            _EPS,
            HyperParam(
                "momentum_decay", 4e-3, low=0.0, help="momentum decay ψ of the schedule μ_t = β₁(1 − ½·0.96^(tψ))"
            ),
            *_DECAY_L2_OR_DECOUPLED,
        ),
        summary="NAdam: Adam with Nesterov momentum and a warming momentum schedule μ_t; weight decay as L2 "
        "(or decoupled, NAdamW), PyTorch convention.",
        formula="μ_t = β₁(1 − ½·0.96^(tψ));  m ← β₁m + (1 − β₁)g;  v ← β₂v + (1 − β₂)g²;  "
        "d = √(v/(1 − β₂ᵗ)) + ε;  θ ← θ − α(1 − μ_t)/(1 − Πμ) · g/d − α μ_{t+1}/(1 − Πμ·μ_{t+1}) · m/d",
        default_learning_rate=0.002,
        threshold_note=_ADAPTIVE_NOTE,
        title="NAdam",
        torch_optimizer="NAdam",
        torch_defaults={
            "learning_rate": 0.002,
            "beta1": 0.9,
            "beta2": 0.999,
            "eps": 1e-8,
            "momentum_decay": 0.004,
            "weight_decay": 0.0,
            "decoupled_weight_decay": False,
        },
    ),
    DescentRule(
        "radam",
        radam_init,
        radam_update,
        hyperparams=(*_BETAS, _EPS, *_DECAY_L2_OR_DECOUPLED),
        summary="RAdam: Adam whose adaptive step is rectified by the variance of v, momentum SGD while ρ_t ≤ 5; "
        "weight decay as L2 (or decoupled), PyTorch convention.",
        formula="m̂ = m/(1 − β₁ᵗ);  ρ_t = ρ_∞ − 2tβ₂ᵗ/(1 − β₂ᵗ);  θ ← θ − α m̂ · r_t √(1 − β₂ᵗ)/(√v + ε) if ρ_t > 5, "
        "else θ ← θ − α m̂",
        default_learning_rate=0.001,
        threshold_note=_ADAPTIVE_NOTE + "; while ρ_t ≤ 5 the step is α m̂, a momentum step with no division",
        title="RAdam",
        torch_optimizer="RAdam",
        torch_defaults={
            "learning_rate": 0.001,
            "beta1": 0.9,
            "beta2": 0.999,
            "eps": 1e-8,
            "weight_decay": 0.0,
            "decoupled_weight_decay": False,
        },
    ),
    DescentRule(
        "adadelta",
        adadelta_init,
        adadelta_update,
        hyperparams=(
            HyperParam("rho", 0.9, low=0.0, high=1.0, help="decay ρ of the running means of g² and Δ²"),
            HyperParam("eps", 1e-6, low=0.0, low_open=True, log=True, help="ε added inside both square roots"),
            _weight_decay(),
        ),
        summary="Adadelta: the step's units come from a running mean of past steps, PyTorch convention "
        "(α = 1 is the original method).",
        formula="s ← ρs + (1 − ρ)g²;  Δ = √(a + ε)/√(s + ε) · g;  a ← ρa + (1 − ρ)Δ²;  θ ← θ − αΔ",
        default_learning_rate=1.0,
        threshold_note=_ADAPTIVE_NOTE,
        title="Adadelta",
        torch_optimizer="Adadelta",
        torch_defaults={"learning_rate": 1.0, "rho": 0.9, "eps": 1e-6, "weight_decay": 0.0},
    ),
    DescentRule(
        "rprop",
        rprop_init,
        rprop_update,
        hyperparams=(
            HyperParam(
                "etaminus",
                0.5,
                low=0.0,
                high=1.0,
                low_open=True,
                high_open=True,
                help="factor η⁻ < 1 shrinking a coordinate's step when its gradient changes sign",
            ),
            HyperParam(
                "etaplus",
                1.2,
                low=1.0,
                low_open=True,
                help="factor η⁺ > 1 growing a coordinate's step while its gradient keeps its sign",
            ),
            HyperParam("step_size_min", 1e-6, low=0.0, help="smallest step size Δ_min"),
            HyperParam("step_size_max", 50.0, low=0.0, low_open=True, help="largest step size Δ_max"),
        ),
        summary="Rprop: full-batch sign-based steps whose per-coordinate sizes grow or shrink with the gradient's "
        "sign; α is the initial step size, PyTorch convention.",
        formula="Δ ← clamp(η^± Δ, Δ_min, Δ_max) by the sign of g·g_prev (Δ starts at α; g ← 0 after a sign "
        "change);  θ ← θ − sign(g) Δ",
        default_learning_rate=0.01,
        threshold_note=(
            "sign-based: the step is ±Δ per coordinate whatever the gradient's size and the curvature λ, "
            "and Δ adapts multiplicatively from α, so no α·λ threshold exists (on a quadratic the "
            "iterates never blow up: near a minimum Δ shrinks by η⁻ at every overshoot)"
        ),
        title="Rprop",
        torch_optimizer="Rprop",
        torch_defaults={
            "learning_rate": 0.01,
            "etaminus": 0.5,
            "etaplus": 1.2,
            "step_size_min": 1e-6,
            "step_size_max": 50.0,
        },
    ),
    DescentRule(
        "asgd",
        asgd_init,
        asgd_update,
        hyperparams=(
            HyperParam("lambd", 1e-4, low=0.0, help="decay term λ_d: θ ← θ(1 − λ_d η), and η = α/(1 + λ_d α t)^a"),
            HyperParam("alpha", 0.75, low=0.0, help="power a of the step-size decay η = α/(1 + λ_d α t)^a"),
            _weight_decay(),
        ),
        summary="ASGD: SGD with a decay term and a slowly decaying step size; the parameters themselves, "
        "not PyTorch's averaged iterate ax. PyTorch convention.",
        formula="θ ← θ(1 − λ_d η) − η (g + λθ);  η ← α/(1 + λ_d α t)^a  (η = α at the first step)",
        default_learning_rate=0.01,
        threshold_note=(
            "the step size η_t = α/(1 + λ_d α t)^a shrinks during the run, so the stability edge "
            "η_t(λ + λ_d) < 2 moves: a run unstable at first can settle later, and no fixed α·λ "
            "threshold exists"
        ),
        title="ASGD",
        torch_optimizer="ASGD",
        torch_defaults={"learning_rate": 0.01, "lambd": 1e-4, "alpha": 0.75, "weight_decay": 0.0},
        moves_without_gradient=True,
    ),
)


@hookimpl
def register_optimizers(register):
    """Register the built-in descent rules of this module."""
    for rule in RULES:
        register(rule)
