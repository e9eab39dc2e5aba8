"""Lion (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms") as a descentlab plugin.

descentlab has Lion built in as ``lion``; this teaching copy registers itself as ``my_lion`` so both load."""

from typing import NamedTuple

import numpy as np

from descentlab import DescentRule, HyperParam, hookimpl


class LionState(NamedTuple):
    exp_avg: np.ndarray  # (runs, parameters) momentum m, starts at 0


def init(params, hyper):
    return LionState(np.zeros_like(params))


def update(grad, state, params, learning_rate, hyper, step):
    """c ← β₁m + (1 − β₁)g;  θ ← θ − α (sign(c) + λθ);  m ← β₂m + (1 − β₂)g."""
    beta1, beta2 = hyper["beta1"], hyper["beta2"]
    direction = np.sign(beta1 * state.exp_avg + (1 - beta1) * grad)
    direction += hyper["weight_decay"] * params
    direction *= -learning_rate
    m = state.exp_avg  # the state may be updated in place
    m *= beta2
    m += (1 - beta2) * grad
    return direction, state


@hookimpl
def register_optimizers(register):
    register(
        DescentRule(
            "my_lion",
            init,
            update,
            hyperparams=(
                HyperParam("beta1", 0.9, low=0.0, high=1.0, help="interpolation of m and g for the step"),
                HyperParam("beta2", 0.99, low=0.0, high=1.0, help="decay of the momentum m"),
                HyperParam("weight_decay", 0.0, low=0.0, help="decoupled weight decay λ"),
            ),
            summary="Lion: the sign of an interpolated momentum, with decoupled weight decay.",
            formula="θ ← θ − α (sign(β₁m + (1 − β₁)g) + λθ);  m ← β₂m + (1 − β₂)g",
            default_learning_rate=1e-4,
            threshold_note="no fixed threshold: sign steps have length α whatever the curvature",
        )
    )
