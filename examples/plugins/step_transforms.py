"""Two gradient transforms: a gradient scaling (before the rule) and a step cap (after it)."""

import numpy as np
from descentlab import HyperParam, Transform, hookimpl


def scale_update(grad, state, params, hyper, step):
    """g ← s·g  (before the rule)."""
    return grad * hyper["scale"], state


def cap_step_after(updates, state, params, learning_rate, hyper, step):
    """Δθ ← Δθ · min(1, c / ‖Δθ‖₂), per run  (a wrapper: after the rule)."""
    norm = np.sqrt(np.einsum("rp,rp->r", updates, updates))[:, None]
    return updates * np.minimum(1.0, hyper["max_step"] / np.maximum(norm, 1e-300)), state


@hookimpl
def register_transforms(register):
    register(
        Transform(
            "scale",
            update=scale_update,
            hyperparams=(HyperParam("scale", 1.0, 0.0, None, low_open=True, log=True, help="factor s"),),
            summary="Scale the gradient.",
            formula="g ← s·g",
        )
    )
    register(
        Transform(
            "cap_step",
            after=cap_step_after,
            hyperparams=(HyperParam("max_step", 0.1, 0.0, None, low_open=True, help="cap c"),),
            summary="Cap each run's step.",
            formula="Δθ ← Δθ · min(1, c / ‖Δθ‖₂)",
        )
    )
