"""Every run's learning rate α_t for every step: linear warmup followed by the run's schedule."""

from __future__ import annotations

import numpy as np

from .declarations import Schedule

__all__ = ["schedule_values", "ScheduleResultError", "PARTS_ACCEPTED", "check_parts", "preview"]


def schedule_values(schedule: Schedule, base, hyper: dict, total_steps: int, warmup_steps=0, lookup=None) -> np.ndarray:
    """α_t of R runs for t = 0..total_steps−1 as a ``(total_steps, R)`` float64 array.

    ``base`` is ``(R,)`` (the runs' base α), each ``hyper`` value ``(R,)`` (or a scalar) and
    ``warmup_steps`` W is ``(R,)`` or a scalar. For t < W: α_t = α·(t+1)/W (linear warmup, reaching α
    at t = W−1); for t ≥ W: α_t = schedule(t − W) computed with total_steps − W steps.
    Runs are grouped by W so the schedule sees one ``total_steps`` per call.

    A schedule that ``joins`` others takes ``hyper["milestones"]`` (a list of steps) and
    ``hyper["schedules"]`` (a list of ``{"name": ..., <hyperparameter>: value}`` tables, the same for
    every run); ``lookup(name)`` finds each part's Schedule. A stateful schedule cannot be computed
    ahead: it is refused here (the chunk loop runs it step by step).
    """
    if schedule.stateful:
        raise ScheduleResultError(
            schedule.name, "is stateful: its α_t depends on the run's losses and is only known while training"
        )
    base = np.atleast_1d(np.asarray(base, dtype=float))
    runs, total_steps = base.shape[0], int(total_steps)
    structure = {}
    if schedule.joins:
        structure = {name: hyper[name] for name in ("milestones", "schedules")}
        hyper = {name: value for name, value in hyper.items() if name not in structure}
    hyper = {name: np.broadcast_to(np.asarray(value, dtype=float), (runs,)) for name, value in hyper.items()}
    warmup = np.broadcast_to(np.asarray(warmup_steps, dtype=np.int64), (runs,))
    values = np.empty((total_steps, runs), dtype=float)
    steps = np.arange(total_steps)[:, None]
    for w in np.unique(warmup):
        columns = np.flatnonzero(warmup == w)
        # the table's columns to write: a slice when they are every run (one pass, not a scatter)
        target = slice(None) if columns.size == runs else columns
        w = int(min(max(w, 0), total_steps))
        alpha = base[columns][None, :]
        if w:
            values[:w, target] = alpha * (steps[:w] + 1) / w
        if w < total_steps:
            own = {name: value[columns][None, :] for name, value in hyper.items()}
            formula = schedule.learning_rate
            assert formula is not None  # only stateful schedules have none, and they are not precomputed
            with np.errstate(all="ignore"):  # a non-finite result is refused below, with where it is
                if schedule.joins:
                    milestones = tuple(int(m) for m in _first(structure["milestones"]))
                    rest = formula(
                        steps[: total_steps - w],
                        alpha,
                        {"milestones": milestones},
                        total_steps - w,
                        _parts(structure["schedules"], alpha, lookup),
                    )
                else:
                    rest = formula(steps[: total_steps - w], alpha, own, total_steps - w)
            expected = (total_steps - w, columns.size)
            if rest is None:
                raise ScheduleResultError(
                    schedule.name,
                    f"returned None; expected an array of shape "
                    f"(steps, runs) = {expected} (or one that broadcasts to it)",
                )
            try:
                rest = np.asarray(rest, dtype=float)
            except (TypeError, ValueError):
                raise ScheduleResultError(
                    schedule.name,
                    f"returned {type(rest).__name__}, not numbers; expected "
                    f"an array of shape (steps, runs) = {expected}",
                ) from None
            try:
                block = values[w:, target] = np.broadcast_to(rest, expected)
            except ValueError:
                raise ScheduleResultError(
                    schedule.name,
                    f"returned shape {rest.shape}; expected (steps, runs) = "
                    f"{expected} (or a shape that broadcasts to it)",
                ) from None
            if not np.isfinite(block).all():
                t, k = np.argwhere(~np.isfinite(block))[0]
                raise ScheduleResultError(
                    schedule.name,
                    f"returned {block[t, k]} at step {t} (run {k} of {columns.size}); expected finite learning rates",
                )
    return values


def _first(value):
    """The one value of a structural field every run shares (the runner may hand it as a per-run array)."""
    if isinstance(value, np.ndarray) and value.dtype == object:
        return list(value[0]) if value.ndim > 1 else value[0]
    return value


def _parts(tables, alpha, lookup) -> list:
    """One function ``part(step, total_steps) -> (len(step), R)`` per table of a joining schedule."""
    if lookup is None:
        raise ValueError("a schedule that joins others needs lookup(name) to find its parts")

    def part(child, hyper):
        def rates(step, total_steps):
            block = child.learning_rate(np.asarray(step).reshape(-1, 1), alpha, hyper, int(total_steps))
            return np.broadcast_to(np.asarray(block, dtype=float), (np.size(step), alpha.shape[-1]))

        return rates

    out = []
    for table in _first(tables):
        child = lookup(table["name"])
        hyper = {k: np.full((1, alpha.shape[-1]), float(v)) for k, v in table.items() if k != "name"}
        out.append(part(child, hyper))
    return out


class ScheduleResultError(ValueError):
    """A schedule returned something the runner cannot use: ``problem`` says what, without the name."""

    def __init__(self, name: str, problem: str):
        self.name, self.problem = name, problem
        super().__init__(f"schedule {name!r} {problem}")


PARTS_ACCEPTED = (
    'a non-empty list of schedule tables, e.g. schedules = [{name = "linear", start_factor = 0.1}, {name = "cosine"}]'
)


def check_parts(where: str, spec: dict, registry) -> dict:
    """A joining schedule's ``schedules`` and ``milestones``, checked, as ``{"schedules": [[tables]],
    "milestones": [[steps]]}``.

    Each part is a table with a ``name`` (a closed-form schedule) and that schedule's
    hyperparameters, one value each (every default filled in); the milestones are len(schedules) − 1
    strictly increasing steps >= 1. Both are one grid point (lists of one value) like a rule's grid axes.
    """
    from .errors import SpecError

    tables = spec.get("schedules")
    if not isinstance(tables, list) or not tables:
        raise SpecError(f"{where}.schedules", tables, PARTS_ACCEPTED)
    closed = sorted(n for n, s in registry.schedules.items() if not (s.joins or s.stateful))
    parts = []
    for k, table in enumerate(tables):
        at = f"{where}.schedules[{k}]"
        if isinstance(table, str):
            table = {"name": table}
        if not isinstance(table, dict) or "name" not in table:
            raise SpecError(at, table, 'a schedule table with a name, e.g. {name = "cosine"}')
        name = table["name"]
        if not isinstance(name, str) or name not in closed:
            raise SpecError(
                f"{at}.name",
                name,
                "one of "
                + ", ".join(closed)
                + " (a part is a closed-form schedule: not one that joins others or is stateful)",
            )
        declared = registry.schedules[name].hyperparams
        for key in table:
            if key != "name" and key not in {h.name for h in declared}:
                raise SpecError(
                    at, key, "one of the keys " + ", ".join(["name", *(h.name for h in declared)]), hint="unknown key"
                )
        values = {}
        for h in declared:
            value = table.get(h.name, h.default)
            if isinstance(value, list):
                raise SpecError(f"{at}.{h.name}", value, h.accepted() + " (one value: a part's fields are not swept)")
            values[h.name] = h.check(value, at)
        parts.append({"name": name, **values})
    milestones = spec.get("milestones", [])
    accepted = f"a list of {len(tables) - 1} strictly increasing integer steps >= 1 (one per schedule after the first)"
    if isinstance(milestones, int) and not isinstance(milestones, bool):
        milestones = [milestones]
    if (
        not isinstance(milestones, list)
        or len(milestones) != len(tables) - 1
        or any(isinstance(m, bool) or not isinstance(m, int) for m in milestones)
        or any(m < 1 for m in milestones)
        or any(b <= a for a, b in zip(milestones, milestones[1:]))
    ):
        raise SpecError(f"{where}.milestones", spec.get("milestones"), accepted)
    return {"schedules": [parts], "milestones": [list(milestones)]}


def preview(
    schedule: Schedule, base, hyper: dict, total_steps: int, warmup_steps=0, lookup=None
) -> tuple[np.ndarray | None, str]:
    """``(values, note)`` for drawing a schedule before any run: :func:`schedule_values` and ``""``, or,
    for a stateful schedule (whose α_t is only known while a run trains), ``None`` and one line saying so."""
    if schedule.stateful:
        return None, (
            f"{schedule.name} is stateful: its α_t follows each run's losses, so it cannot be drawn "
            "before running (see the learning-rate curve of the results)"
        )
    return schedule_values(schedule, base, hyper, total_steps, warmup_steps, lookup=lookup), ""
