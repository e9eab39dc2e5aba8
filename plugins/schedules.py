"""Built-in learning-rate schedules (constant, step, exponential, inverse time, cosine, exponential ramp), registered like any plugin.

A schedule is pure numpy: ``learning_rate(step, base, hyper, total_steps)`` with ``step`` a
``(T, 1)`` integer array of 0-based step indices, ``base`` the runs' base learning rates α as
``(1, R)`` and each hyperparameter ``(1, R)``; the result broadcasts to ``(T, R)``. Linear warmup
is not a schedule of its own: it is the ``warmup_steps`` option of every schedule entry, applied
by ``descentlab.schedule_values.schedule_values``.
"""

from __future__ import annotations

import numpy as np

from descentlab import HyperParam, Schedule, hookimpl


def _full(values, step, base):
    """Broadcast ``values`` to the (T, R) result shape as a fresh float array."""
    return np.array(np.broadcast_to(values, (step.shape[0], np.shape(base)[-1])), dtype=float)


def constant(step, base, hyper, total_steps):
    """α_t = α."""
    return _full(base, step, base)


def step_decay(step, base, hyper, total_steps):
    """α_t = α · γ^⌊t / step_size⌋  (PyTorch StepLR)."""
    return _full(base * hyper["gamma"] ** np.floor(step / hyper["step_size"]), step, base)


def exponential(step, base, hyper, total_steps):
    """α_t = α · γ^t  (PyTorch ExponentialLR)."""
    return _full(base * hyper["gamma"] ** step, step, base)


def inverse_time(step, base, hyper, total_steps):
    """α_t = α / (1 + k t)."""
    return _full(base / (1.0 + hyper["decay"] * step), step, base)


def exponential_ramp(step, base, hyper, total_steps):
    """α_t = α · (α_end / α)^(t / T): from α up to α_end at t = T (the learning-rate range test)."""
    ratio = hyper["end_lr"] / base
    return _full(base * ratio ** (step / max(int(total_steps), 1)), step, base)


def cosine(step, base, hyper, total_steps):
    """α_t = η_min + (α − η_min)(1 + cos(π t / T)) / 2 with η_min = min_lr_fraction · α.

    T = t_max, or the run's total steps when t_max is 0. This is PyTorch CosineAnnealingLR's
    closed form, so past T the rate rises again along the same cosine (period 2T).
    """
    t_max = np.asarray(hyper.get("t_max", 0.0), dtype=float)
    period = np.where(t_max > 0, t_max, max(int(total_steps), 1))
    low = base * hyper.get("min_lr_fraction", 0.0)
    return _full(low + (base - low) * (1.0 + np.cos(np.pi * step / period)) / 2.0, step, base)


SCHEDULES = (
    Schedule("constant", constant, summary="The base learning rate at every step.", formula="α_t = α"),
    Schedule(
        "step", step_decay,
        hyperparams=(
            HyperParam("step_size", 100, low=1, kind="int", help="steps between two decays"),
            HyperParam("gamma", 0.1, low=0.0, high=1.0, low_open=True, help="factor applied every step_size steps"),
        ),
        summary="Step decay: multiply by γ every step_size steps (PyTorch StepLR).",
        formula="α_t = α · γ^⌊t / step_size⌋",
    ),
    Schedule(
        "exponential", exponential,
        hyperparams=(HyperParam("gamma", 0.99, low=0.0, high=1.0, low_open=True, help="factor applied every step"),),
        summary="Exponential decay (PyTorch ExponentialLR).",
        formula="α_t = α · γ^t",
    ),
    Schedule(
        "inverse_time", inverse_time,
        hyperparams=(HyperParam("decay", 0.01, low=0.0, help="decay rate k"),),
        summary="Inverse-time decay, the classic Robbins–Monro style α/(1 + kt).",
        formula="α_t = α / (1 + k t)",
    ),
    Schedule(
        "cosine", cosine,
        hyperparams=(
            HyperParam("t_max", 0, low=0, kind="int", help="steps of the half cosine; 0 = the run's total steps"),
            HyperParam("min_lr_fraction", 0.0, low=0.0, high=1.0,
                       help="final learning rate η_min as a fraction of the base α"),
        ),
        summary="Cosine annealing from α to η_min over T steps (PyTorch CosineAnnealingLR closed form).",
        formula="α_t = η_min + (α − η_min)(1 + cos(π t / T)) / 2",
    ),
    Schedule(
        "exponential_ramp", exponential_ramp,
        hyperparams=(HyperParam("end_lr", 10.0, low=0.0, low_open=True, log=True,
                                help="learning rate reached at the last step"),),
        summary="Exponential growth from α to α_end over the run: the learning-rate range test's schedule.",
        formula="α_t = α · (α_end / α)^(t / T)",
    ),
)


@hookimpl
def register_schedules(register):
    """Register the built-in learning-rate schedules."""
    for schedule in SCHEDULES:
        register(schedule)
