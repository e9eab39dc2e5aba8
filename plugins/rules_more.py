"""Built-in descent rules beyond the SGD and Adam families: Adamax, NAdam, RAdam, Adadelta, Rprop and ASGD."""

# The contract is the one of descentlab.plugins.rules (see its module docstring): arrays (R, P),
# hyperparameters and the learning rate (R, 1), every state field with the run axis first, ``step``
# the number of updates already taken (t = step + 1 in PyTorch's 1-based count), ``grad`` and
# ``params`` never written. Semantics and defaults are torch.optim's (version 2); weight decay is
# PyTorch's L2 form g ← g + λθ (NAdam and RAdam with decoupled_weight_decay=False).

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from descentlab import DescentRule, HyperParam, hookimpl

from .rules import _ADAPTIVE_NOTE, _decay_field, _l2_gradient, _rows, _weight_decay


class AdamaxState(NamedTuple):
    exp_avg: np.ndarray           # (R, P) first moment m
    exp_inf: np.ndarray           # (R, P) exponentially weighted infinity norm u
    beta1: np.ndarray             # (R, P) or (R, 1) β₁
    one_minus_beta1: np.ndarray   # 1 − β₁
    beta2: np.ndarray             # β₂
    eps: np.ndarray               # ε
    weight_decay: np.ndarray      # (R, 1 or P) λ when some run uses weight decay, else (R, 0)


# --- Adamax --------------------------------------------------------------------------------------

def adamax_init(params, hyper):
    beta1 = hyper["beta1"]
    return AdamaxState(np.zeros_like(params), np.zeros_like(params), _rows(beta1, params),
                       _rows(1.0 - beta1, params), _rows(hyper["beta2"], params), _rows(hyper["eps"], params),
                       _decay_field(hyper, params))


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


# --- declarations --------------------------------------------------------------------------------

_EPS = HyperParam("eps", 1e-8, low=0.0, low_open=True, log=True, help="ε added to the denominator")
_BETAS = (HyperParam("beta1", 0.9, low=0.0, high=1.0, high_open=True, help="decay of the first moment β₁"),
          HyperParam("beta2", 0.999, low=0.0, high=1.0, high_open=True, help="decay of the second moment β₂"))

RULES = (
    DescentRule(
        "adamax", adamax_init, adamax_update,
        hyperparams=(
            _BETAS[0],
            HyperParam("beta2", 0.999, low=0.0, high=1.0, high_open=True,
                       help="decay β₂ of the infinity norm u = max(β₂u, |g| + ε)"),
            HyperParam("eps", 1e-8, low=0.0, low_open=True, log=True, help="ε added to |g| inside the max"),
            _weight_decay(),
        ),
        summary="Adamax: Adam with the infinity norm, u = max(β₂u, |g|), in place of √v; PyTorch convention.",
        formula="m ← β₁m + (1 − β₁)g;  u ← max(β₂u, |g| + ε);  θ ← θ − α/(1 − β₁ᵗ) · m/u",
        default_learning_rate=0.002,
        threshold_note=_ADAPTIVE_NOTE,
        title="Adamax",
    ),
)


@hookimpl
def register_optimizers(register):
    """Register the built-in descent rules of this module."""
    for rule in RULES:
        register(rule)
