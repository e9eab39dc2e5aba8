"""Sign descent, θ ← θ − α·sign(g): a complete descentlab plugin (load with --plugin sign_descent.py)."""

import numpy as np
from descentlab import DescentRule, HyperParam, hookimpl


def init(params, hyper):
    return ()  # no state: every step is computed from this step's gradient alone


def update(grad, state, params, learning_rate, hyper, step):
    # arrays are (runs, parameters); α and every hyperparameter are (runs, 1), so one call serves a grid
    return -learning_rate * (np.sign(grad) + hyper["weight_decay"] * params), state


SIGN_DESCENT = DescentRule(
    "sign_descent",
    init,
    update,
    hyperparams=(HyperParam("weight_decay", 0.0, low=0.0, help="decoupled weight decay λ"),),
    summary="Fixed-length steps against the gradient's sign.",
    formula="θ ← θ − α (sign(g) + λθ)",
)


@hookimpl
def register_optimizers(register):
    register(SIGN_DESCENT)
