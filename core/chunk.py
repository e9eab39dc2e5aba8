"""The one training loop: a chunk of stacked runs trained step by step, with probes for everything else.

``run_chunk`` is the only place in descentlab that trains. Everything else that needs a live run
(the explanations of flagged runs, the learning-rate range test, the preconditioned sharpness) is
a probe handed to it; the runner (``descentlab.runner``) plans the chunks and runs them.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, overload

import numpy as np

from .experiment import Experiment, RunConfig
from .problem import quiet_loss_and_grad
from .faults import wrote_into
from .transforms import ChainFault, ChainState, chain_hyper, chain_rule

__all__ = [
    "SMALL_PARAMS",
    "SMALL_COPY_BYTES",
    "METRIC_BASE",
    "METRIC_TAIL",
    "RuleLookup",
    "one_rule_experiment",
    "StepView",
    "run_chunk",
    "snapshot_steps",
]

# Problems with at most this many parameters take the "tiny" bookkeeping path in run_chunk.
SMALL_PARAMS = 32
SMALL_COPY_BYTES = 256 * 1024 * 1024  # ... as long as the kept copies of g and Δθ stay below this

METRIC_BASE = ("loss", "learning_rate", "step_size", "grad_norm")
METRIC_TAIL = ("test_loss", "test_accuracy", "sharpness")


def _hyper_arrays(configs: list[RunConfig], key: str, dtype) -> dict[str, np.ndarray]:
    names = list(getattr(configs[0], key))
    out = {}
    for name in names:
        values = [getattr(c, key)[name] for c in configs]
        if all(isinstance(v, (bool, int, float)) for v in values):
            out[name] = np.array([float(v) for v in values], dtype=dtype)
        else:
            out[name] = np.array(values, dtype=object)
    return out


def _take_rows(state, keep: np.ndarray, n_rows: int):
    """The rule state with the rows of dropped runs removed (arrays whose first axis is the run axis)."""

    def take(a):
        if isinstance(a, np.ndarray) and a.ndim >= 1 and a.shape[0] == n_rows:
            if a.strides[0] == 0 and n_rows > 0:  # one row shared by every run (a broadcast view): stays one
                return np.broadcast_to(a[:1], (int(np.count_nonzero(keep)), *a.shape[1:]))
            return np.ascontiguousarray(a[keep])
        return a

    if state is None:
        return None
    if isinstance(state, ChainState):  # a rule chained with transforms: each part's rows alike
        return state.map(lambda part: _take_rows(part, keep, n_rows))
    if isinstance(state, tuple) and hasattr(state, "_fields"):
        return type(state)(*[take(a) for a in state])
    if isinstance(state, tuple):
        return tuple(take(a) for a in state)
    if isinstance(state, dict):
        return {k: take(v) for k, v in state.items()}
    return take(state)


def _contiguous_layer_starts(layout) -> np.ndarray | None:
    """Offsets where each layer begins, if every layer is one contiguous block in layer order."""
    starts, position = [], 0
    for layer, slices in layout.layer_slices():
        for s in slices:
            if s.start != position:
                return None
            position = s.stop
        starts.append(slices[0].start)
    if position != layout.size or len(starts) < 2:
        return None
    return np.array(starts, dtype=np.intp)


class RuleLookup:
    """What :func:`run_chunk` looks up by name, for a rule that need not be registered: ``rule(name)``
    is always this rule, schedules come from ``registry``."""

    def __init__(self, rule, registry):
        self._rule, self._registry = rule, registry

    def rule(self, name):
        return self._rule

    def schedule(self, name):
        return self._registry.schedule(name)


def one_rule_experiment(
    rule,
    hyper: dict,
    seeds: list[int],
    steps: int,
    learning_rate: float,
    *,
    schedule: str = "constant",
    schedule_hyper: dict | None = None,
    batch_size: int = 0,
    dtype: str = "float64",
) -> Experiment:
    """An experiment of one rule at one α, for a probe that trains with :func:`run_chunk` directly.

    Its divergence factor is the largest float, so only a non-finite loss stops a run: the probe
    decides what counts as too far.
    """
    from .experiment import RuleEntry

    return Experiment(
        name="probe",
        problem="",
        problem_settings={},
        steps=int(steps),
        seeds=list(seeds),
        batch_size=int(batch_size),
        dtype=str(dtype),
        eval_every=0,
        divergence_factor=float(np.finfo(np.float64).max),
        target_loss=None,
        sharpness_every=0,
        entries=[
            RuleEntry(
                rule=rule.name,
                label=rule.name,
                learning_rate=[float(learning_rate)],
                hyper={k: [v] for k, v in hyper.items()},
                schedule=schedule,
                schedule_hyper={k: [v] for k, v in (schedule_hyper or {}).items()},
            )
        ],
    )


class StepView(NamedTuple):
    """What a probe sees of the live runs at step t, before that step's update (all read-only).

    ``live`` are the positions in the chunk's ``configs`` of the ``n`` live runs, in row order;
    ``params`` θ_t and ``grad`` ∇J(θ_t) are ``(n, P)``, ``loss`` is ``(n,)``; ``batch`` the runs'
    ``(n, B)`` mini-batch indices or None. ``groups`` has one ``(rows, rule, hyper, state)`` per
    entry: its rows of the live arrays, its DescentRule, its ``(rows, 1)`` hyperparameter arrays
    and its rule state after the update of step t − 1 (None before the first update); read the
    state only through what the rule declares (e.g. ``rule.preconditioner``).
    """

    t: int
    live: np.ndarray
    params: np.ndarray
    grad: np.ndarray
    loss: np.ndarray
    batch: np.ndarray | None
    groups: tuple


class _Group:
    """The runs of one entry inside a chunk: rows ``lo:hi`` of the live arrays, with their rule and state."""

    def __init__(self, entry_index, entry, rule, hyper):
        self.entry_index, self.entry, self.rule, self.hyper = entry_index, entry, rule, hyper
        self.lo = self.hi = 0
        self.state = None
        self.started = False
        self.views = None  # (g, θ, Δθ, α rows, update shape): this group's rows of the live arrays
        self.schedule = None  # a stateful schedule's (Schedule, (rows,) hyperparameters); its state below
        self.schedule_state = None


@overload
def run_chunk(
    instance,
    registry,
    experiment: Experiment,
    configs: list[RunConfig],
    tick: Callable[[int], None] | None = None,
    probe: None = None,
) -> dict: ...
@overload
def run_chunk(
    instance,
    registry,
    experiment: Experiment,
    configs: list[RunConfig],
    tick: Callable[[int], None] | None = None,
    probe: Callable[["StepView"], bool] | None = None,
) -> dict | None: ...
def run_chunk(
    instance,
    registry,
    experiment: Experiment,
    configs: list[RunConfig],
    tick: Callable[[int], None] | None = None,
    probe: Callable[["StepView"], bool] | None = None,
) -> dict | None:
    """Train one chunk of runs (of one or several consecutive entries); per-step arrays ``(r, steps + 1)``.

    ``probe(view)``, if given, is called at every step after the loss and gradient with a
    :class:`StepView` of the live runs (read-only). Returning True stops training; the chunk then
    returns None (the probe kept what it needed). Sharpness tracking, the explanations of flagged
    runs and the learning-rate range test are probes: this loop is the only one that trains.

    All live runs of the chunk go through the problem's ``loss_and_grad`` as one stack; each
    entry's rule updates its own block of rows. Diverged runs are removed from the stack at the
    step they diverge (no further compute, no further rows). An exception in a rule (or wrong
    shapes) fails that entry's runs in the chunk, with the error kept; the other entries go on.

    Per-step figures go into compact buffers (row t, first n columns = the n live runs) so every
    write is one contiguous slice; a list of segments (rows, live run ids) scatters them back at
    the end. Norms are stored squared and rooted once at the end.
    """
    from .problem import ProblemInstance
    from .schedule_values import schedule_values

    T, r = experiment.steps, len(configs)
    dtype = np.dtype(experiment.dtype)
    layout = instance.layout
    n_layers = len(layout.layers)
    landscape_path = layout.size == 2
    layer_starts = _contiguous_layer_starts(layout)

    # one group per entry, in run order (configs of an entry are consecutive)
    groups: list[_Group] = []
    group_of_run = np.empty(r, dtype=np.int64)
    rate_columns = []
    unscheduled: list[tuple[_Group, str]] = []  # entries whose schedule failed, with the one-line reason
    for index in dict.fromkeys(c.entry for c in configs):
        members = [k for k, c in enumerate(configs) if c.entry == index]
        if members != list(range(members[0], members[-1] + 1)):
            raise ValueError("a chunk's runs of one entry must be consecutive")
        part = [configs[k] for k in members]
        entry = experiment.entries[index]
        group = _Group(
            index,
            entry,
            registry.rule(entry.rule),
            {k: v.reshape(-1, 1) for k, v in _hyper_arrays(part, "hyper", dtype).items()},
        )
        if getattr(entry, "transforms", None):  # the entry's gradient transforms around its rule
            declared = [(registry.transform(spec.name), spec.values) for spec in entry.transforms]
            group.rule = chain_rule(group.rule, [transform for transform, _ in declared], layout)
            group.hyper.update(chain_hyper(declared, len(part), [c.seed for c in part], dtype))
        group.lo, group.hi = members[0], members[-1] + 1
        group_of_run[members] = len(groups)
        groups.append(group)
        schedule = registry.schedule(entry.schedule)
        try:  # the schedule is plugin code: whatever goes wrong in it fails this entry's runs only
            base = np.array([c.learning_rate for c in part])
            if schedule.stateful:  # α_0 = α; α_{t+1} from the loss of step t, in the loop below
                group.schedule = (schedule, _hyper_arrays(part, "schedule_hyper", np.float64))
                group.schedule_state = schedule.init(base, group.schedule[1])
                column = np.full((T, len(part)), np.nan)
                column[0] = base
                rate_columns.append(column)
            else:
                rate_columns.append(
                    schedule_values(
                        schedule,
                        base,
                        _hyper_arrays(part, "schedule_hyper", np.float64),
                        T,
                        entry.warmup_steps,
                        lookup=registry.schedule,
                    )
                )
        except KeyboardInterrupt:
            raise
        except BaseException as error:
            rate_columns.append(np.full((T, len(part)), np.nan))
            unscheduled.append((group, _schedule_fault(schedule, error)))
    # (T, r) float64; one entry's table is used as it is, and in float64 it is α_t itself (no copies)
    rates = rate_columns[0] if len(rate_columns) == 1 else np.concatenate(rate_columns, axis=1)
    stateful = [group for group in groups if group.schedule is not None]
    lr_m = np.full((r, T + 1), np.nan)
    if not stateful and T and np.array_equal(rates[-1], rates[0]) and bool((rates == rates[0]).all()):
        # every run's α is the same at every step (a constant schedule): α_t is one row seen through a
        # zero stride, so dropping runs takes from one row, not from the whole (steps, runs) table
        # (measurements in docs/dev/speed.md); read-only, as a rule's inputs are for it
        rates_t = np.broadcast_to(rates[0].astype(dtype).reshape(1, r, 1), (T, r, 1))
        lr_m[:, :T] = rates[0][:, None]
    else:
        rates_t = np.ascontiguousarray(rates.astype(dtype, copy=False)).reshape(T, r, 1)  # α_t as (r, 1) per step
        # the table's learning_rate column, run-major, taken now while the rates are in cache. Filled
        # first (NaN: the final state takes no step) so that the transposing copy writes to cached lines:
        # into untouched memory its scattered writes wait on every line (0.09 + 0.25 ms instead of 0.69)
        _transposed(rates, out=lr_m[:, :T])
    del rates

    nan = np.nan
    # Tiny problems (a few parameters): the per-step cost is numpy call overhead, so the loop only
    # keeps copies of g and Δθ (cheaper than computing norms per step) and norms are taken at the end.
    # Every per-step record goes into a preallocated run-major (r, steps + 1, ...) buffer, column t =
    # step t: the layout of the tables, so no transposing copy at the end (on the tiny job the
    # transposes cost ~2 ms; writing columns instead of rows costs its loop ~1.2 ms). A list of
    # per-step arrays cost ~2 ms per 1000 steps to turn back into one array.
    small = layout.size <= SMALL_PARAMS and 2 * (T + 1) * r * layout.size * dtype.itemsize <= SMALL_COPY_BYTES
    loss_b: Any = None  # (r, T+1), the loss's dtype
    grad_h: Any = np.empty((r, T + 1, layout.size), dtype) if small else None  # g per column
    step_h: Any = np.empty((r, T, layout.size), dtype) if small else None  # Δθ per column (none at the last)
    path_h: Any = np.empty((r, T + 1, 2), dtype) if landscape_path else None  # θ per column
    loss_rows = grad_rows = step_rows = path_rows = 0  # columns filled so far
    grad_b: Any = None if small else np.full((r, T + 1), nan)  # ‖g‖² per column
    step_b: Any = None if small else np.full((r, T + 1), nan)  # ‖Δθ‖² per column
    layer_b: Any = np.full((r, T + 1, n_layers), nan) if n_layers > 1 else None
    test_loss_b: Any = None
    test_acc_b: Any = None
    sharp_b: Any = None  # (r, T+1) once something is recorded
    status = ["finished"] * r
    errors = [""] * r
    diverged_at = np.full(r, nan)
    last_row = np.full(r, T, dtype=np.int64)

    seeds = [c.seed for c in configs]
    try:
        params = np.ascontiguousarray(instance.init_params(seeds, dtype), dtype=dtype)
    except KeyboardInterrupt:
        raise
    except BaseException as error:  # no run of the problem can start: one line naming it
        from .errors import PluginError
        from .faults import fault

        raise PluginError(
            fault("problem", experiment.problem, error, type(instance), what="init_params failed:")
        ) from None
    if params.shape != (len(seeds), instance.layout.size):
        from .errors import PluginError
        from .faults import definition

        raise PluginError(
            f"problem {experiment.problem!r} ({definition(type(instance).init_params)}): init_params returned "
            f"shape {params.shape}; expected ({len(seeds)}, {instance.layout.size}) = (runs, layout.size)"
        )
    initial = params.copy()
    final_params = np.empty_like(params)
    single = len(groups) == 1
    # small problems record Δθ from this array (a single rule's updates are copied into it)
    updates_all: Any = None if single and not small else np.empty_like(params)

    batch_size = experiment.batch_size
    if batch_size > 0:
        n_train = instance.n_train
        per_epoch = n_train // batch_size
        # each run's own stream of permutations, from its seed alone: same seed, same batches for every rule
        rngs = [np.random.default_rng([int(s), 0x6D696E69]) for s in seeds]
        perms: Any = None

    sharpness_mod: Any = None
    tracker: Any = None
    if experiment.sharpness_every > 0:
        from . import sharpness as sharpness_mod
    evaluates = type(instance).evaluate is not ProblemInstance.evaluate

    eval_every = experiment.eval_every
    factor = experiment.divergence_factor
    snapshot_every = experiment.snapshot_every
    snapshots: Any = None
    if snapshot_every:  # (r, K, P): θ at steps 0, k, 2k, ... and T; NaN where a run had stopped
        snapshots = np.full((r, len(snapshot_steps(T, snapshot_every)), layout.size), nan, dtype=dtype)
    every_tick = max(1, T // 100)
    active = np.arange(r)
    n = r
    # columns [start, stop) of the compact buffers belong to the live set `ids` (its first len(ids) rows)
    segments: list[tuple[int, int, np.ndarray]] = []
    step_segments: list[tuple[int, int, np.ndarray]] = []
    segment_start = step_segment_start = 0
    grad = np.empty_like(params)
    threshold = None
    all_fine_below = -1.0  # see _all_fine_below: set with the threshold
    t = 0

    live_views: list[tuple] = []
    # (buffer, live array) pairs, see _record_pair
    grad_rec: Any = None
    path_rec: Any = None
    step_rec: Any = None
    # the pair type step_rec views the Δθ history as (None when it is kept as floats)
    step_pair: Any = None

    def bind_views() -> None:
        """Each group's rows of the live arrays, as views taken once (not sliced again every step)."""
        nonlocal grad_rec, path_rec, step_rec, step_pair
        if small:
            grad_rec, step_rec = _record_pair(grad_h, grad), _record_pair(step_h, updates_all)
            step_pair = step_rec[0].dtype if step_rec[0] is not step_h else None
        if landscape_path:
            path_rec = _record_pair(path_h, params)
        for group in groups:
            rows = slice(group.lo, group.hi)
            group.views = (
                group,
                group.rule.update,
                grad[rows],
                params[rows],
                None if single else updates_all[rows],
                rates_t[:, rows],
                (group.hi - group.lo, params.shape[1]),
                group.hyper,
            )
        # the live groups' views as one list: the step loop reads no attribute it can avoid (4 groups
        # x ~10 attribute reads were ~1 µs of a tiny job's step)
        live_views[:] = [group.views for group in groups if group.hi > group.lo]

    def drop(keep: np.ndarray) -> None:
        """Remove the runs where ``keep`` is False from every live array and group."""
        nonlocal params, grad, threshold, all_fine_below, rates_t, active, n, updates_all, rngs, perms
        active = active[keep]
        n = len(active)
        params = np.ascontiguousarray(params[keep])
        grad = np.ascontiguousarray(grad[keep])
        threshold = threshold[keep] if threshold is not None else None
        all_fine_below = _all_fine_below(threshold)
        # a gather (0.26 ms for the tiny job's table) where a boolean mask took 0.70 ms; only of the
        # steps still to come (rows before t are never read again and stay unset)
        if rates_t.strides[0] == 0:  # one row for every step (see the setup): stays one row
            rates_t = np.broadcast_to(rates_t[0][keep][None], (T, n, 1))
        else:
            remaining = np.empty((T, n, 1), dtype=rates_t.dtype)
            np.take(rates_t[t:], np.flatnonzero(keep), axis=1, out=remaining[t:])
            rates_t = remaining
        if updates_all is not None:
            updates_all = np.empty_like(params)
        if batch_size > 0:
            rngs = [rng for rng, k in zip(rngs, keep) if k]
            perms = perms[keep] if perms is not None else None
        position = 0
        for group in groups:
            local = keep[group.lo : group.hi]
            group.hyper = {k: np.ascontiguousarray(v[local]) for k, v in group.hyper.items()}
            group.state = _take_rows(group.state, local, len(local))
            if group.schedule is not None:
                group.schedule = (group.schedule[0], {k: v[local] for k, v in group.schedule[1].items()})
                group.schedule_state = _take_rows(group.schedule_state, local, len(local))
            group.lo, group.hi = position, position + int(local.sum())
            position = group.hi
        bind_views()

    bind_views()
    broke = stopped = False
    if unscheduled:  # their runs fail before step 0: out of the stack before anything is computed
        keep = np.ones(r, dtype=bool)
        for group, message in unscheduled:
            keep[group.lo : group.hi] = False
            for j in range(group.lo, group.hi):
                status[j], errors[j], last_row[j] = "failed", message, 0
        final_params[~keep] = params[~keep]
        broke = True  # their row 0 is in no buffer: scatter NaN-fills
        drop(keep)
    # the loop runs inside np.errstate(quiet): a problem that offers a call without its own errstate
    # (the declared QuietLossAndGrad capability; landscapes, ~1 µs of their ~8 µs per call) is called that way
    loss_and_grad = quiet_loss_and_grad(instance)
    size_buf: Any = None  # |loss| per run, allocated with the threshold and reused every step
    fine_buf = np.empty(r, dtype=bool)  # |loss| <= threshold per run, reused every step
    with np.errstate(all="ignore"):
        try:
            for t in range(T + 1 if n else 0):
                batch = None
                if batch_size > 0:
                    position = t % per_epoch
                    if position == 0:
                        perms = np.stack([rng.permutation(n_train) for rng in rngs])
                    batch = perms[:, position * batch_size : (position + 1) * batch_size]
                trace = None
                if sharpness_mod is not None and (t % experiment.sharpness_every == 0 or t == T):
                    trace = sharpness_mod.forward_trace(instance, params)  # the tracker reuses this pass
                if trace is None:
                    pair = loss_and_grad(params, batch, out=grad)
                else:
                    pair = instance.loss_and_grad(params, batch, out=grad, trace=trace)
                if not (isinstance(pair, (tuple, list)) and len(pair) == 2):
                    got = f"{type(pair).__name__} {getattr(pair, 'shape', '')}".strip()
                    raise _ProblemResultError(f"loss_and_grad returned {got}; expected a pair (loss, gradient)")
                loss, g = pair
                if getattr(loss, "shape", None) != (n,) or getattr(g, "shape", None) != params.shape:
                    raise _ProblemResultError(
                        f"loss_and_grad returned loss {_shape_of(loss)} and gradient {_shape_of(g)} for parameters "
                        f"{params.shape}; expected arrays of shape ({n},) and {params.shape}"
                    )
                if g is not grad:  # the problem made its own array: the groups' views must follow it
                    grad = g
                    bind_views()
                if loss_b is None:
                    loss_b = np.empty((r, T + 1), dtype=loss.dtype)
                loss_b[:n, t] = loss
                loss_rows = t + 1
                if small:
                    grad_rec[0][:n, t] = grad_rec[1]
                    grad_rows = t + 1
                elif layer_b is not None and layer_starts is not None:
                    # per-layer sums of squares in one pass; the total is their sum
                    per_layer = np.add.reduceat(np.multiply(g, g), layer_starts, axis=1)
                    layer_b[:n, t] = per_layer
                    per_layer.sum(axis=1, out=grad_b[:n, t])
                else:
                    _row_squares(g, out=grad_b[:n, t])
                    if layer_b is not None:
                        layer_b[:n, t] = layout.layer_norms(g) ** 2
                if landscape_path:
                    path_rec[0][:n, t] = path_rec[1]
                    path_rows = t + 1
                if probe is not None and probe(
                    StepView(
                        t,
                        active,
                        params,
                        g,
                        loss,
                        batch,
                        tuple((slice(gr.lo, gr.hi), gr.rule, gr.hyper, gr.state) for gr in groups),
                    )
                ):
                    stopped = True
                    break
                if evaluates and (t == T or (eval_every and t % eval_every == 0)):
                    for name, values in instance.evaluate(params).items():
                        if name == "test_loss":
                            if test_loss_b is None:
                                test_loss_b = np.full((r, T + 1), nan)
                            test_loss_b[:n, t] = values
                        elif name == "test_accuracy":
                            if test_acc_b is None:
                                test_acc_b = np.full((r, T + 1), nan)
                            test_acc_b[:n, t] = values
                if snapshot_every and (t % snapshot_every == 0 or t == T):
                    snapshots[active, t // snapshot_every if t % snapshot_every == 0 else -1] = params
                if sharpness_mod is not None and (t % experiment.sharpness_every == 0 or t == T):
                    if sharp_b is None:
                        sharp_b = np.full((r, T + 1), nan)
                    if tracker is None:
                        tracker = sharpness_mod.SharpnessTracker(r, params.shape[1])
                    sharp_b[:n, t] = tracker.measure(instance, params, active, batch, trace)
                if threshold is None:
                    threshold = factor * np.maximum(np.abs(loss.astype(np.float64)), np.finfo(np.float64).tiny)
                    size_buf = np.empty(r, dtype=loss.dtype)
                    all_fine_below = _all_fine_below(threshold)
                # one dot product (0.6 µs) clears almost every step; only otherwise the exact per-run
                # test (2.1 µs), False for NaN and ±inf, written into reused buffers
                if (
                    not np.dot(loss, loss) <= all_fine_below
                    and np.count_nonzero(np.less_equal(np.abs(loss, out=size_buf[:n]), threshold, out=fine_buf[:n]))
                    != n
                ):
                    fine = fine_buf[:n]
                    dropped = active[~fine]
                    for j in dropped.tolist():
                        status[j], diverged_at[j], last_row[j] = "diverged", t, t
                    final_params[dropped] = params[~fine]
                    segments.append((segment_start, t + 1, active))
                    step_segments.append((step_segment_start, t, active))
                    # row t's update is taken after the drop: its step row belongs to the new set
                    segment_start, step_segment_start = t + 1, t
                    drop(fine)
                    if n == 0:
                        break
                    loss = loss[fine]  # the live runs' losses, for a stateful schedule below
                    g = grad
                    if batch is not None:
                        batch = perms[:, position * batch_size : (position + 1) * batch_size]
                if t == T:
                    break
                if stateful and t + 1 < T:  # α_{t+1} of stateful schedules from this step's loss
                    unscheduled_now = _stateful_step(stateful, loss, t, rates_t, lr_m, active, status, errors, last_row)
                    if unscheduled_now is not None:  # a schedule broke: its runs stop at row t, before update t
                        keep = unscheduled_now
                        final_params[active[~keep]] = params[~keep]
                        segments.append((segment_start, t + 1, active))
                        step_segments.append((step_segment_start, t, active))
                        segment_start, step_segment_start = t + 1, t
                        drop(keep)
                        if n == 0:
                            break
                        loss = loss[keep]
                        g = grad
                        if batch is not None:
                            batch = perms[:, position * batch_size : (position + 1) * batch_size]
                failed = None
                if single:
                    group = groups[0]
                    result = _PENDING
                    try:
                        before = None
                        if not group.started:
                            group.state, group.started = group.rule.start(params, group.hyper, layout), True
                            before = (params.copy(), g.copy())  # a first step that writes in is caught
                        result = group.rule.update(g, group.state, params, rates_t[t], group.hyper, t)
                        updates, group.state = result
                        if getattr(updates, "shape", None) != params.shape:
                            raise _RuleResultError(_shape_message(group.rule, updates, params.shape))
                        if before is not None and (wrote := wrote_into(before[0], params, before[1], g)):
                            raise _RuleResultError(f"rule {group.rule.name!r} {wrote}")
                    except KeyboardInterrupt:
                        raise
                    except BaseException as error:  # the only rule broke: named below, as the chunk's failure
                        raise _RuleFault(_rule_fault(group.rule, error, result, group.started)) from error
                else:
                    updates = updates_all
                    for group, update, g_rows, p_rows, u_rows, rates_rows, shape, hyper in live_views:
                        result = _PENDING
                        try:
                            before = None
                            if not group.started:
                                group.state, group.started = group.rule.start(p_rows, hyper, layout), True
                                before = (p_rows.copy(), g_rows.copy())  # a first step that writes in is caught
                            result = update(g_rows, group.state, p_rows, rates_rows[t], hyper, t)
                            block, group.state = result
                            if getattr(block, "shape", None) != shape:
                                raise _RuleResultError(_shape_message(group.rule, block, shape))
                            if before is not None and (wrote := wrote_into(before[0], p_rows, before[1], g_rows)):
                                raise _RuleResultError(f"rule {group.rule.name!r} {wrote}")
                            u_rows[...] = block
                        except KeyboardInterrupt:
                            raise
                        except BaseException as error:  # only this entry's runs fail (sys.exit too)
                            message = _rule_fault(group.rule, error, result, group.started)
                            rows = slice(group.lo, group.hi)
                            u_rows[...] = 0.0
                            failed = np.ones(n, dtype=bool) if failed is None else failed
                            failed[rows] = False
                            for j in active[rows].tolist():
                                status[j], errors[j], last_row[j] = "failed", message, t
                if small:
                    if updates is updates_all:
                        step_rec[0][:n, t] = step_rec[1]
                    elif updates.dtype == dtype and step_pair is not None and updates.flags.c_contiguous:
                        # the single rule's own array, recorded from itself (viewed as pairs, see
                        # _record_pair): one call instead of a copy into updates_all and then the record
                        step_rec[0][:n, t] = updates.view(step_pair)[:, 0]
                    else:  # another dtype: cast once, as params += would see it
                        np.copyto(updates_all, updates)
                        updates = updates_all
                        step_rec[0][:n, t] = step_rec[1]
                    step_rows = t + 1
                else:
                    _row_squares(updates, out=step_b[:n, t])
                params += updates
                if failed is not None:
                    final_params[active[~failed]] = params[~failed]
                    segments.append((segment_start, t + 1, active))
                    step_segments.append((step_segment_start, t + 1, active))
                    segment_start = step_segment_start = t + 1
                    drop(failed)
                    if n == 0:
                        break
                if tick is not None and t % every_tick == 0:
                    tick(t)
        except KeyboardInterrupt:
            raise
        except BaseException as error:  # the problem (or the only rule) broke: the chunk's live runs fail
            broke = True  # row t may be missing from the buffers: scatter NaN-fills
            message = str(error) if isinstance(error, _RuleFault) else _problem_fault(experiment, instance, error)
            for j in active.tolist():
                status[j], errors[j], last_row[j] = "failed", message, t
        if n:
            final_params[active] = params
            segments.append((segment_start, int(last_row[active].max()) + 1, active))
            step_segments.append((step_segment_start, T, active))

    if stopped:
        return None

    # scatter the compact columns back to the runs, run-major (r, steps + 1): the layout of the long table
    def scatter(buffer, fill_shape=(), parts=segments, rows=T + 1, reduce=None, fill=True):
        """Columns ``[start, stop)`` x first ``len(ids)`` rows of ``buffer`` to runs ``ids``, as float64."""
        if buffer is not None and reduce is not None:
            # once over the filled columns (rows past a segment's runs are unused)
            buffer = reduce(buffer[:, :rows])
        if (
            buffer is not None
            and len(parts) == 1
            and parts[0][0] == 0
            and min(parts[0][1], rows) == T + 1
            and len(parts[0][2]) == r
        ):
            # no run stopped early: every step of every run is in the buffer, already in place
            return buffer.astype(np.float64, copy=False)
        if buffer is not None and not fill and buffer.shape[:2] == (r, T + 1):
            # Runs stopped early, nothing to NaN-fill: the segments are moved into place inside the
            # buffer itself. A segment of all r runs is already there; a later one (live runs `ids`,
            # increasing, in rows 0..len(ids)-1) moves down to rows `ids` (numpy copies the overlapping
            # source first). Rows past a run's last row keep stale figures, never read (see above).
            # This spares a fresh (r, steps + 1) array and the copy of the first segment (docs/dev/speed.md).
            with np.errstate(invalid="ignore"):  # cells never written (rows of stopped runs) may hold NaN bits
                out = buffer.astype(np.float64, copy=False)
            for start, stop, ids in parts:
                stop = min(stop, rows)
                if stop > start and len(ids) != r:
                    out[ids, start:stop] = out[: len(ids), start:stop]
            return out
        # rows after a run's last row are never read (the table keeps rows <= last_row): only a
        # figure whose every row is kept (the path, NaN after divergence) is filled
        out = np.full((r, T + 1, *fill_shape), nan) if fill else np.empty((r, T + 1, *fill_shape))
        if buffer is not None:
            for start, stop, ids in parts:
                stop = min(stop, rows)
                if stop <= start:
                    continue
                block = buffer[: len(ids), start:stop]
                # every run live: a plain slice (fancy indexing is ~3x slower on these sizes)
                out[slice(None) if len(ids) == r else ids, start:stop] = block
        return out

    def norms(block):  # (runs, steps, P) -> ‖x‖ = √(Σ_p x²), the sums elementwise those of an einsum
        if block.shape[2] == 2:
            # the same two products and one addition einsum computes (checked bit for bit), 4.6x faster;
            # squared in place (the history is not read again): one contiguous pass instead of two strided
            squares = np.multiply(block, block, out=block)
            out = np.add(squares[..., 0], squares[..., 1])
        else:
            out = np.einsum("rtp,rtp->rt", block, block)
        if out.dtype != np.float64:
            out = out.astype(np.float64)  # the norms are float64: rooted after the cast, as before
        return np.sqrt(out, out=out)

    with np.errstate(all="ignore"):
        loss_m = scatter(loss_b, rows=loss_rows, fill=broke)
        if small:
            grad_m = scatter(grad_h, rows=grad_rows, reduce=norms, fill=broke)
            step_m = scatter(step_h, rows=step_rows, reduce=norms, parts=step_segments, fill=broke)
        else:
            grad_m = scatter(np.sqrt(grad_b, out=grad_b))
            step_m = scatter(np.sqrt(step_b, out=step_b), parts=step_segments)
        # one layer: its norm is the gradient norm, left to the table (None here: no copy)
        if layer_b is None:
            layer_m = None
        elif small:  # the kept gradients, summed per layer as the general path sums them
            layer_m = np.sqrt(
                scatter(
                    grad_h,
                    (n_layers,),
                    rows=grad_rows,
                    fill=broke,
                    reduce=lambda block: _layer_squares(block, layout, layer_starts),
                )
            )
        else:
            layer_m = np.sqrt(scatter(layer_b, (n_layers,)))
    path = None
    if landscape_path:
        # NaN after a run's last row: only the runs that stopped early have such rows to fill
        path = scatter(path_h, (2,), rows=path_rows, fill=broke)
        if not broke:
            for j in np.flatnonzero(last_row < T).tolist():
                path[j, last_row[j] + 1 :] = nan
    # rows after a run's last row are not part of the tables (_assemble keeps rows <= last_row)
    step_m[np.arange(r), last_row] = nan  # no update is taken from a run's last row
    if tick is not None:
        tick(T)
    return {
        "run_ids": [c.run_id for c in configs],
        "metrics": {
            "loss": loss_m,
            "learning_rate": lr_m,
            "step_size": step_m,
            "grad_norm": grad_m,
            "layers": layer_m,
            "test_loss": _scatter_or_none(scatter, test_loss_b),
            "test_accuracy": _scatter_or_none(scatter, test_acc_b),
            "sharpness": _scatter_or_none(scatter, sharp_b),
        },
        "status": status,
        "error": errors,
        "diverged_at": diverged_at,
        "last_row": last_row,
        "initial": initial,
        "final": final_params,
        "path": path,
        "snapshots": snapshots,
        "sharpness_cost": None
        if tracker is None
        else {"measurements": tracker.measurements, "hessian_vector_products": tracker.products},
    }


def _row_squares(rows: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``out[i] = Σ_p rows[i, p]²``: the same bits for a row whatever else is stacked with it.

    numpy's einsum sums a lone row with another kernel (SIMD partial sums) than the rows of a
    stack, so a run alone in its chunk (or left alone there by its chunk's diverged runs) got other
    last bits than the same run beside others, and a Dask task's part (one entry's runs) differed
    from the pool's chunk. A lone row is summed as the first of a pair, as in a stack.
    """
    if rows.shape[0] != 1:
        return np.einsum("rp,rp->r", rows, rows, out=out)
    pair = np.concatenate([rows, rows])
    sums = np.empty(2, dtype=out.dtype)
    np.einsum("rp,rp->r", pair, pair, out=sums)
    out[0] = sums[0]
    return out


def _layer_squares(block: np.ndarray, layout, layer_starts: np.ndarray | None) -> np.ndarray:
    """``(runs, steps, P)`` gradients -> ``(runs, steps, layers)`` sums of squares, as float64."""
    squares = np.multiply(block, block)
    if layer_starts is not None:
        per_layer = np.add.reduceat(squares, layer_starts, axis=2)
    else:
        per_layer = np.stack(
            [sum(squares[..., s].sum(axis=2) for s in slices) for _, slices in layout.layer_slices()], axis=2
        )
    return per_layer.astype(np.float64, copy=False)


def snapshot_steps(steps: int, every: int) -> list[int]:
    """The steps whose weights ``snapshot_every = every`` keeps: 0, k, 2k, … and the last."""
    marks = list(range(0, steps + 1, every))
    return marks if marks[-1] == steps else marks + [steps]


def _all_fine_below(threshold: np.ndarray | None) -> float:
    """A bound b such that ``Σ loss² <= b`` (as a dot product computes it) implies ``|loss| <= threshold``
    for every run: half the smallest threshold squared (the half covers the dot product's rounding,
    relative error < n·ε), capped to a finite float so that an overflowing sum never passes; NaN or
    ±inf in the losses make the sum NaN or inf, which fails the test as well."""
    if threshold is None or not len(threshold):
        return -1.0
    smallest = float(threshold.min())
    return min(0.5 * smallest * smallest, float(np.finfo(np.float64).max))


def _record_pair(buffer: np.ndarray, live: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(buffer, live)`` for the step loop's ``buffer[:n, t] = live``; for a trailing pair of floats
    (a landscape's (x, y)) both viewed as one complex number per pair: the strided copy of 256 pairs
    costs 0.44 µs that way, 2.0 µs as floats (an inner loop of 2 elements per run)."""
    pair = {np.dtype(np.float64): np.complex128, np.dtype(np.float32): np.complex64}.get(buffer.dtype)
    if pair is not None and buffer.shape[-1] == 2 and live.dtype == buffer.dtype and live.ndim == 2:
        try:
            return buffer.view(pair)[..., 0], live.view(pair)[:, 0]
        except ValueError:  # not viewable as pairs (a live array with a strided last axis): copy floats
            pass
    return buffer, live


_TILE_ROWS = 16


def _transposed(block: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``(rows, n, ...)`` -> a new float64 ``(n, rows, ...)``, copied in tiles of 16 rows.

    One strided copy of a (1001, 256) block costs 0.53 ms, in tiles 0.28 ms (each tile's rows stay
    in cache); a trailing pair of float64 (a landscape's (x, y)) is moved as one complex128: 0.35 ms
    instead of 1.45 ms for (1001, 256, 2)."""
    if out is None:
        out = np.empty((block.shape[1], block.shape[0], *block.shape[2:]), dtype=np.float64)
    src, dst = block, out
    if block.shape[2:] == (2,) and block.dtype == np.float64 and block.strides[2] == block.itemsize:
        try:
            src, dst = block.view(np.complex128)[..., 0], out.view(np.complex128)[..., 0]
        except ValueError:  # this view of the buffer cannot be reinterpreted: copy as floats
            src, dst = block, out
    for start in range(0, src.shape[0], _TILE_ROWS):
        dst[:, start : start + _TILE_ROWS] = np.swapaxes(src[start : start + _TILE_ROWS], 0, 1)
    return out


def _scatter_or_none(scatter, buffer):
    """None for a figure never recorded in this chunk (all NaN: the table fills it without a copy)."""
    return None if buffer is None else scatter(buffer)


def _shape_message(rule, updates, expected) -> str:
    return (
        f"rule {rule.name!r} returned updates of shape "
        f"{getattr(updates, 'shape', type(updates).__name__)}; expected {expected}"
    )


class _RuleResultError(ValueError):
    """A rule's update returned something of the wrong shape (the message names the rule)."""


class _RuleFault(Exception):
    """The only rule of a chunk broke; the message is the whole one-line story."""


_PENDING = object()  # what a rule's update "returned" when it raised instead


def _rule_fault(rule, error: BaseException, result, started: bool) -> str:
    """One line naming the rule, its file:line and what went wrong in its init or update."""
    from .faults import definition, fault

    if isinstance(error, ChainFault):  # a transform, or the rule inside a chain: it named itself
        return str(error)
    function = rule.update if started else rule.init
    if result is not _PENDING and not (isinstance(result, (tuple, list)) and len(result) == 2):
        got = "None" if result is None else f"{type(result).__name__} {getattr(result, 'shape', '')}".strip()
        return f"rule {rule.name!r} ({definition(function)}): update returned {got}; expected a pair (updates, state)"
    if isinstance(error, _RuleResultError):
        return str(error).replace(f"rule {rule.name!r}", f"rule {rule.name!r} ({definition(function)})", 1)
    return fault("rule", rule.name, error, rule.init, rule.update, fallback=function)


def _schedule_fault(schedule, error: BaseException) -> str:
    """One line naming the schedule, its file:line and what it raised or returned."""
    from .faults import definition, fault
    from .schedule_values import ScheduleResultError

    if isinstance(error, ScheduleResultError):
        return f"schedule {schedule.name!r} ({definition(schedule.code)}) {error.problem}"
    return fault("schedule", schedule.name, error, schedule.code)


def _stateful_step(groups, loss, t, rates_t, lr_m, active, status, errors, last_row) -> np.ndarray | None:
    """Feed step t's loss to each group's stateful schedule and write α_{t+1} (rates and the recorded column).

    Returns None, or the keep mask of the live rows when a schedule raised or returned something
    unusable: that entry's runs are marked failed at row t (the caller drops them).
    """
    from .schedule_values import ScheduleResultError

    keep = None
    loss = np.asarray(loss, dtype=np.float64)
    for group in groups:
        if group.hi <= group.lo:
            continue
        schedule, hyper = group.schedule
        rows = slice(group.lo, group.hi)
        try:
            with np.errstate(all="ignore"):  # a NaN/inf loss (a run diverging) is the schedule's input, not a fault
                rate, state = schedule.update(loss[rows], group.schedule_state, hyper, t)
                rate = np.asarray(rate, dtype=np.float64)
            if rate.shape != (group.hi - group.lo,) or not np.isfinite(rate).all():
                raise ScheduleResultError(
                    schedule.name,
                    f"update returned {_short_array(rate)} at step {t}; "
                    f"expected {group.hi - group.lo} finite learning rates, one per run",
                )
        except KeyboardInterrupt:
            raise
        except BaseException as error:
            message = _schedule_fault(schedule, error)
            keep = np.ones(len(active), dtype=bool) if keep is None else keep
            keep[rows] = False
            for j in active[rows].tolist():
                status[j], errors[j], last_row[j] = "failed", message, t
            continue
        group.schedule_state = state
        rates_t[t + 1, rows, 0] = rate
        lr_m[active[rows], t + 1] = rate
    return keep


def _short_array(value) -> str:
    return f"shape {value.shape}" if value.size > 4 or value.ndim != 1 else repr(value.tolist())


class _ProblemResultError(ValueError):
    """The problem's loss_and_grad returned something other than (loss (R,), gradient (R, P))."""


def _shape_of(value) -> str:
    shape = getattr(value, "shape", None)
    return str(shape) if shape is not None else f"of type {type(value).__name__}"


def _problem_fault(experiment: Experiment, instance, error: BaseException) -> str:
    """One line for an error while training that is not a rule's: the problem's, named, when it is
    raised in the problem's own code or is what it returned; else the error itself."""
    import os
    import traceback

    from .faults import definition, error_text, fault, source_files

    if isinstance(error, _ProblemResultError):
        return f"problem {experiment.problem!r} ({definition(type(instance).loss_and_grad)}): {error}"

    files = source_files(type(instance))
    if any(os.path.abspath(frame.filename) in files for frame in traceback.extract_tb(error.__traceback__)):
        return fault("problem", experiment.problem, error, type(instance))
    return error_text(error)
