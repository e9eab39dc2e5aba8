"""Every run's learning rate α_t for every step: linear warmup followed by the run's schedule."""

from __future__ import annotations

import numpy as np

from .declarations import Schedule


def schedule_values(schedule: Schedule, base, hyper: dict, total_steps: int, warmup_steps=0) -> np.ndarray:
    """α_t of R runs for t = 0..total_steps−1 as a ``(total_steps, R)`` float64 array.

    ``base`` is ``(R,)`` (the runs' base α), each ``hyper`` value ``(R,)`` (or a scalar) and
    ``warmup_steps`` W is ``(R,)`` or a scalar. For t < W: α_t = α·(t+1)/W (linear warmup, reaching α
    at t = W−1); for t ≥ W: α_t = schedule(t − W) computed with total_steps − W steps.
    Runs are grouped by W so the schedule sees one ``total_steps`` per call.
    """
    base = np.atleast_1d(np.asarray(base, dtype=float))
    runs, total_steps = base.shape[0], int(total_steps)
    hyper = {name: np.broadcast_to(np.asarray(value, dtype=float), (runs,)) for name, value in hyper.items()}
    warmup = np.broadcast_to(np.asarray(warmup_steps, dtype=np.int64), (runs,))
    values = np.empty((total_steps, runs), dtype=float)
    steps = np.arange(total_steps)[:, None]
    for w in np.unique(warmup):
        columns = np.flatnonzero(warmup == w)
        w = int(min(max(w, 0), total_steps))
        alpha = base[columns][None, :]
        if w:
            values[:w, columns] = alpha * (steps[:w] + 1) / w
        if w < total_steps:
            with np.errstate(all="ignore"):  # a non-finite result is refused below, with where it is
                rest = schedule.learning_rate(steps[: total_steps - w], alpha,
                                              {name: value[columns][None, :] for name, value in hyper.items()},
                                              total_steps - w)
            expected = (total_steps - w, columns.size)
            if rest is None:
                raise ScheduleResultError(schedule.name, f"returned None; expected an array of shape "
                                          f"(steps, runs) = {expected} (or one that broadcasts to it)")
            try:
                rest = np.asarray(rest, dtype=float)
            except (TypeError, ValueError):
                raise ScheduleResultError(schedule.name, f"returned {type(rest).__name__}, not numbers; expected "
                                          f"an array of shape (steps, runs) = {expected}") from None
            try:
                block = values[w:, columns] = np.broadcast_to(rest, expected)
            except ValueError:
                raise ScheduleResultError(schedule.name, f"returned shape {rest.shape}; expected (steps, runs) = "
                                          f"{expected} (or a shape that broadcasts to it)") from None
            if not np.isfinite(block).all():
                t, k = np.argwhere(~np.isfinite(block))[0]
                raise ScheduleResultError(schedule.name, f"returned {block[t, k]} at step {t} (run {k} of "
                                          f"{columns.size}); expected finite learning rates")
    return values


class ScheduleResultError(ValueError):
    """A schedule returned something the runner cannot use: ``problem`` says what, without the name."""

    def __init__(self, name: str, problem: str):
        self.name, self.problem = name, problem
        super().__init__(f"schedule {name!r} {problem}")
