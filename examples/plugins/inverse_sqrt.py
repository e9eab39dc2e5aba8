"""A learning-rate schedule plugin: α_t = α / √(1 + t/τ), the inverse square-root decay."""

import numpy as np
from descentlab import HyperParam, Schedule, hookimpl


def inverse_sqrt(step, base, hyper, total_steps):
    # step is (T, 1) and base, hyper[...] are (1, R): one call gives every step of every run, (T, R)
    return base / np.sqrt(1.0 + step / hyper["tau"])


@hookimpl
def register_schedules(register):
    register(
        Schedule(
            "inverse_sqrt",
            inverse_sqrt,
            hyperparams=(HyperParam("tau", 10.0, low=0.0, low_open=True, log=True, help="time scale τ, in steps"),),
            summary="Decay as one over the square root of time.",
            formula="α_t = α / √(1 + t/τ)",
        )
    )
