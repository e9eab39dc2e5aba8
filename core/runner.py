"""The batched runner: every entry's grid x seeds trained as stacked runs, chunked, optionally in processes."""

from __future__ import annotations

import json
import math
import os
import time
from concurrent.futures import Executor, ProcessPoolExecutor, as_completed
from typing import Callable, NamedTuple

import numpy as np

from .allocator import keep_freed_memory
from .errors import SpecError
from .experiment import Experiment, RunConfig

# Working-set budget of one chunk, in the units of _bytes_per_run (171 KB per float64 run of the
# 2-32-32-1 tanh MLP on 256 points). Measured with keep_freed_memory() in effect (as in
# run_experiment and its workers), `python benchmarks/engine.py`, CPU µs per run-step of
# loss_and_grad, one BLAS thread: float64 148/136/110/109/112/119/171 for 1/2/4/8/16/32/64 stacked
# runs, float32 94/69/54/48/46/62/49. Without it (glibc's default mmap threshold) stacking fell off a
# cliff past 8-16 runs (float64 366 µs at 32 runs, float32 168 µs at 64): every multi-MB temporary
# was a fresh mmap, page-faulted in again; that cliff, not the 1 MiB L2, set the old budget (720 KB:
# 4 float64 / 8 float32 runs). The whole runner on the typical job (48 runs, 1 process, CPU µs per
# run-step, benchmark loaded): float64 126/114/110/127 for 4/8/16/24 runs per chunk, float32
# 67/58/50/49. 2 MiB picks 12 float64 / 24 float32 runs: on the flat part of both curves, and 48
# runs make 4 equal float64 jobs for 2 workers.
CHUNK_BYTES = 2 * 1024 * 1024
# A job whose estimated serial time is below this runs in-process: a process pool costs ~0.1 s to
# start and each chunk's payload is pickled both ways.
PARALLEL_MIN_SECONDS = 1.5
# Rough cost of one multiply-add of a run-step in the engine, used only to estimate job length.
_SECONDS_PER_UNIT = 0.9e-9

# Problems with at most this many parameters take the "tiny" bookkeeping path in run_chunk.
SMALL_PARAMS = 32
SMALL_COPY_BYTES = 256 * 1024 * 1024  # ... as long as the kept copies of g and Δθ stay below this

METRIC_BASE = ("loss", "learning_rate", "step_size", "grad_norm")
METRIC_TAIL = ("test_loss", "test_accuracy", "sharpness")
_QUIET = dict(over="ignore", invalid="ignore", divide="ignore", under="ignore")


# ---- planning ------------------------------------------------------------------------------------

def _samples_per_step(experiment: Experiment, instance) -> int:
    if experiment.batch_size > 0:
        return experiment.batch_size
    return max(int(getattr(instance, "n_train", 0) or 0), 1)


def _bytes_per_run(experiment: Experiment, instance) -> int:
    """Working-set size of one run in a step: its activations (samples x units) and a few
    parameter-sized arrays (parameters, gradient, update, rule state)."""
    itemsize = np.dtype(experiment.dtype).itemsize
    elements = 4 * instance.layout.size
    model = getattr(instance, "model", None)
    if model is not None and hasattr(model, "sizes"):
        elements += _samples_per_step(experiment, instance) * sum(model.sizes[1:])
    return elements * itemsize


def plan_chunks(experiment: Experiment, instance, configs: list[RunConfig] | None = None) -> list[list[int]]:
    """Run ids grouped into chunks whose working set fits in L2; a chunk may span several entries.

    Tiny problems (landscapes) put every run in one chunk, so one ``loss_and_grad`` call serves
    all rules; large networks get one or two runs per chunk.
    """
    configs = experiment.runs() if configs is None else configs
    size = max(1, CHUNK_BYTES // max(_bytes_per_run(experiment, instance), 1))
    ids = [c.run_id for c in configs]
    n_chunks = math.ceil(len(ids) / size)
    # equal-sized chunks (not size, size, ..., remainder) keep both workers evenly loaded
    bounds = np.linspace(0, len(ids), n_chunks + 1).round().astype(int)
    return [ids[a:b] for a, b in zip(bounds[:-1], bounds[1:]) if b > a]


def _split_for_workers(chunks: list[list[int]], n_jobs: int) -> list[list[int]]:
    """Halve the largest chunks until there are at least ``n_jobs`` of them (or all are single runs)."""
    chunks = [list(c) for c in chunks]
    while len(chunks) < n_jobs:
        largest = max(range(len(chunks)), key=lambda i: len(chunks[i]))
        if len(chunks[largest]) < 2:
            break
        c = chunks.pop(largest)
        half = (len(c) + 1) // 2
        chunks[largest:largest] = [c[:half], c[half:]]
    return chunks


def estimated_seconds(experiment: Experiment, instance) -> float:
    """Order-of-magnitude serial run time, used to decide whether processes pay off."""
    units = instance.layout.size * _samples_per_step(experiment, instance)
    return experiment.n_runs * experiment.steps * max(units, 200) * _SECONDS_PER_UNIT


def _rebuildable(registry, experiment: Experiment) -> bool:
    """Can a worker process rebuild these plugins (built-in, installed or from a file)?"""
    used = [("problem", experiment.problem)]
    used += [("rule", e.rule) for e in experiment.entries] + [("schedule", e.schedule) for e in experiment.entries]
    return all(registry.origin(k, n).startswith(("built-in", "package", "file ")) for k, n in used)


# ---- one chunk -----------------------------------------------------------------------------------

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


def _error_text(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}".replace("\n", " ")[:500]


class RuleLookup:
    """What :func:`run_chunk` looks up by name, for a rule that need not be registered: ``rule(name)``
    is always this rule, schedules come from ``registry``."""

    def __init__(self, rule, registry):
        self._rule, self._registry = rule, registry

    def rule(self, name):
        return self._rule

    def schedule(self, name):
        return self._registry.schedule(name)


def one_rule_experiment(rule, hyper: dict, seeds: list[int], steps: int, learning_rate: float, *,
                        schedule: str = "constant", schedule_hyper: dict | None = None, batch_size: int = 0,
                        dtype: str = "float64") -> Experiment:
    """An experiment of one rule at one α, for a probe that trains with :func:`run_chunk` directly.

    Its divergence factor is the largest float, so only a non-finite loss stops a run: the probe
    decides what counts as too far.
    """
    from .experiment import RuleEntry

    return Experiment(
        name="probe", problem="", problem_settings={}, steps=int(steps), seeds=list(seeds),
        batch_size=int(batch_size), dtype=str(dtype), eval_every=0,
        divergence_factor=float(np.finfo(np.float64).max), target_loss=None, sharpness_every=0,
        entries=[RuleEntry(rule=rule.name, label=rule.name, learning_rate=[float(learning_rate)],
                           hyper={k: [v] for k, v in hyper.items()}, schedule=schedule,
                           schedule_hyper={k: [v] for k, v in (schedule_hyper or {}).items()})])


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


def run_chunk(instance, registry, experiment: Experiment, configs: list[RunConfig],
              tick: Callable[[int], None] | None = None,
              probe: Callable[["StepView"], bool] | None = None) -> dict | None:
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
    for index in dict.fromkeys(c.entry for c in configs):
        members = [k for k, c in enumerate(configs) if c.entry == index]
        if members != list(range(members[0], members[-1] + 1)):
            raise ValueError("a chunk's runs of one entry must be consecutive")
        part = [configs[k] for k in members]
        entry = experiment.entries[index]
        group = _Group(index, entry, registry.rule(entry.rule),
                       {k: v.reshape(-1, 1) for k, v in _hyper_arrays(part, "hyper", dtype).items()})
        group.lo, group.hi = members[0], members[-1] + 1
        group_of_run[members] = len(groups)
        groups.append(group)
        rate_columns.append(schedule_values(registry.schedule(entry.schedule),
                                            np.array([c.learning_rate for c in part]),
                                            _hyper_arrays(part, "schedule_hyper", np.float64), T,
                                            entry.warmup_steps))
    rates = np.concatenate(rate_columns, axis=1)  # (T, r) float64
    rates_t = np.ascontiguousarray(rates.astype(dtype)).reshape(T, r, 1)  # α_t as (r, 1) per step
    # the table's learning_rate column, run-major, taken now while the rates are in cache. Filled
    # first (NaN: the final state takes no step) so that the transposing copy writes to cached lines:
    # into untouched memory its scattered writes wait on every line (0.09 + 0.25 ms instead of 0.69)
    lr_m = np.full((r, T + 1), np.nan)
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
    loss_b = None                                                      # (r, T+1), the loss's dtype
    grad_h = np.empty((r, T + 1, layout.size), dtype) if small else None   # g per column
    step_h = np.empty((r, T, layout.size), dtype) if small else None   # Δθ per column (none at the last)
    path_h = np.empty((r, T + 1, 2), dtype) if landscape_path else None    # θ per column
    loss_rows = grad_rows = step_rows = path_rows = 0                  # columns filled so far
    grad_b = None if small else np.full((r, T + 1), nan)   # ‖g‖² per column
    step_b = None if small else np.full((r, T + 1), nan)   # ‖Δθ‖² per column
    layer_b = np.full((r, T + 1, n_layers), nan) if n_layers > 1 else None
    test_loss_b = test_acc_b = sharp_b = None               # (r, T+1) once something is recorded
    status = ["finished"] * r
    errors = [""] * r
    diverged_at = np.full(r, nan)
    last_row = np.full(r, T, dtype=np.int64)

    seeds = [c.seed for c in configs]
    params = np.ascontiguousarray(instance.init_params(seeds, dtype), dtype=dtype)
    initial = params.copy()
    final_params = np.empty_like(params)
    single = len(groups) == 1
    # small problems record Δθ from this array (a single rule's updates are copied into it)
    updates_all = None if single and not small else np.empty_like(params)

    batch_size = experiment.batch_size
    if batch_size > 0:
        n_train = instance.n_train
        per_epoch = n_train // batch_size
        # each run's own stream of permutations, from its seed alone: same seed, same batches for every rule
        rngs = [np.random.default_rng([int(s), 0x6D696E69]) for s in seeds]
        perms = None

    sharpness_mod = None
    if experiment.sharpness_every > 0:
        from . import sharpness as sharpness_mod
    evaluates = type(instance).evaluate is not ProblemInstance.evaluate

    eval_every = experiment.eval_every
    factor = experiment.divergence_factor
    snapshot_every = experiment.snapshot_every
    snapshots = None
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
    grad_rec = path_rec = step_rec = None  # (buffer, live array) pairs, see _record_pair

    def bind_views() -> None:
        """Each group's rows of the live arrays, as views taken once (not sliced again every step)."""
        nonlocal grad_rec, path_rec, step_rec
        if small:
            grad_rec, step_rec = _record_pair(grad_h, grad), _record_pair(step_h, updates_all)
        if landscape_path:
            path_rec = _record_pair(path_h, params)
        for group in groups:
            rows = slice(group.lo, group.hi)
            group.views = (group, group.rule.update, grad[rows], params[rows],
                           None if single else updates_all[rows], rates_t[:, rows],
                           (group.hi - group.lo, params.shape[1]), group.hyper)
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
        # a gather (0.26 ms for the tiny job's table) where a boolean mask took 0.70 ms
        rates_t = np.take(rates_t, np.flatnonzero(keep), axis=1)
        if updates_all is not None:
            updates_all = np.empty_like(params)
        if batch_size > 0:
            rngs = [rng for rng, k in zip(rngs, keep) if k]
            perms = perms[keep] if perms is not None else None
        position = 0
        for group in groups:
            local = keep[group.lo:group.hi]
            group.hyper = {k: np.ascontiguousarray(v[local]) for k, v in group.hyper.items()}
            group.state = _take_rows(group.state, local, len(local))
            group.lo, group.hi = position, position + int(local.sum())
            position = group.hi
        bind_views()

    bind_views()
    # the loop runs inside np.errstate(quiet): a problem that offers a call without its own errstate
    # (landscapes, ~1 µs of their ~8 µs per call) is called that way
    loss_and_grad = getattr(instance, "loss_and_grad_quiet", None) or instance.loss_and_grad
    broke = stopped = False
    size_buf, fine_buf = None, np.empty(r, dtype=bool)  # |loss| and |loss| <= threshold, reused every step
    with np.errstate(**_QUIET):
        try:
            for t in range(T + 1):
                batch = None
                if batch_size > 0:
                    position = t % per_epoch
                    if position == 0:
                        perms = np.stack([rng.permutation(n_train) for rng in rngs])
                    batch = perms[:, position * batch_size:(position + 1) * batch_size]
                loss, g = loss_and_grad(params, batch, out=grad)
                if getattr(loss, "shape", None) != (n,) or g.shape != params.shape:
                    raise ValueError(f"problem returned loss {np.shape(loss)} and gradient {g.shape} for "
                                     f"parameters {params.shape}")
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
                    np.einsum("rp,rp->r", g, g, out=grad_b[:n, t])
                    if layer_b is not None:
                        layer_b[:n, t] = layout.layer_norms(g) ** 2
                if landscape_path:
                    path_rec[0][:n, t] = path_rec[1]
                    path_rows = t + 1
                if probe is not None and probe(StepView(t, active, params, g, loss, batch, tuple(
                        (slice(gr.lo, gr.hi), gr.rule, gr.hyper, gr.state) for gr in groups))):
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
                    sharp_b[:n, t] = sharpness_mod.top_hessian_eigenvalue(instance, params, batch=batch)
                if threshold is None:
                    threshold = factor * np.maximum(np.abs(loss.astype(np.float64)), np.finfo(np.float64).tiny)
                    size_buf = np.empty(r, dtype=loss.dtype)
                    all_fine_below = _all_fine_below(threshold)
                # one dot product (0.6 µs) clears almost every step; only otherwise the exact per-run
                # test (2.1 µs), False for NaN and ±inf, written into reused buffers
                if not np.dot(loss, loss) <= all_fine_below and np.count_nonzero(
                        np.less_equal(np.abs(loss, out=size_buf[:n]), threshold, out=fine_buf[:n])) != n:
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
                    g = grad
                    if batch is not None:
                        batch = perms[:, position * batch_size:(position + 1) * batch_size]
                if t == T:
                    break
                failed = None
                if single:
                    group = groups[0]
                    if not group.started:
                        group.state, group.started = group.rule.init(params, group.hyper), True
                    updates, group.state = group.rule.update(g, group.state, params, rates_t[t], group.hyper, t)
                    if getattr(updates, "shape", None) != params.shape:
                        raise ValueError(_shape_message(group.rule, updates, params.shape))
                else:
                    updates = updates_all
                    for group, update, g_rows, p_rows, u_rows, rates_rows, shape, hyper in live_views:
                        try:
                            if not group.started:
                                group.state, group.started = group.rule.init(p_rows, hyper), True
                            block, group.state = update(g_rows, group.state, p_rows, rates_rows[t], hyper, t)
                            if getattr(block, "shape", None) != shape:
                                raise ValueError(_shape_message(group.rule, block, shape))
                            u_rows[...] = block
                        except Exception as error:  # only this entry's runs fail
                            rows = slice(group.lo, group.hi)
                            u_rows[...] = 0.0
                            failed = np.ones(n, dtype=bool) if failed is None else failed
                            failed[rows] = False
                            for j in active[rows].tolist():
                                status[j], errors[j], last_row[j] = "failed", _error_text(error), t
                if small:
                    if updates is not updates_all:  # the single rule's own array
                        np.copyto(updates_all, updates)
                        updates = updates_all
                    step_rec[0][:n, t] = step_rec[1]
                    step_rows = t + 1
                else:
                    np.einsum("rp,rp->r", updates, updates, out=step_b[:n, t])
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
        except Exception as error:  # the problem (or the only rule) broke: the chunk's live runs fail
            broke = True  # row t may be missing from the buffers: scatter NaN-fills
            message = _error_text(error)
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
        if buffer is not None and len(parts) == 1 and parts[0][0] == 0 and min(parts[0][1], rows) == T + 1 \
                and len(parts[0][2]) == r:
            # no run stopped early: every step of every run is in the buffer, already in place
            return buffer.astype(np.float64, copy=False)
        # rows after a run's last row are never read (the table keeps rows <= last_row): only a
        # figure whose every row is kept (the path, NaN after divergence) is filled
        out = np.full((r, T + 1, *fill_shape), nan) if fill else np.empty((r, T + 1, *fill_shape))
        if buffer is not None:
            for start, stop, ids in parts:
                stop = min(stop, rows)
                if stop <= start:
                    continue
                block = buffer[:len(ids), start:stop]
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

    with np.errstate(**_QUIET):
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
            layer_m = np.sqrt(scatter(grad_h, (n_layers,), rows=grad_rows, fill=broke,
                                      reduce=lambda block: _layer_squares(block, layout, layer_starts)))
        else:
            layer_m = np.sqrt(scatter(layer_b, (n_layers,)))
    path = None
    if landscape_path:
        # NaN after a run's last row: only the runs that stopped early have such rows to fill
        path = scatter(path_h, (2,), rows=path_rows, fill=broke)
        if not broke:
            for j in np.flatnonzero(last_row < T).tolist():
                path[j, last_row[j] + 1:] = nan
    # rows after a run's last row are not part of the tables (_assemble keeps rows <= last_row)
    step_m[np.arange(r), last_row] = nan  # no update is taken from a run's last row
    if tick is not None:
        tick(T)
    return {
        "run_ids": [c.run_id for c in configs],
        "metrics": {"loss": loss_m, "learning_rate": lr_m, "step_size": step_m, "grad_norm": grad_m,
                    "layers": layer_m, "test_loss": _scatter_or_none(scatter, test_loss_b),
                    "test_accuracy": _scatter_or_none(scatter, test_acc_b),
                    "sharpness": _scatter_or_none(scatter, sharp_b)},
        "status": status, "error": errors, "diverged_at": diverged_at, "last_row": last_row,
        "initial": initial, "final": final_params, "path": path, "snapshots": snapshots,
    }


def _layer_squares(block: np.ndarray, layout, layer_starts: np.ndarray | None) -> np.ndarray:
    """``(runs, steps, P)`` gradients -> ``(runs, steps, layers)`` sums of squares, as float64."""
    squares = np.multiply(block, block)
    if layer_starts is not None:
        per_layer = np.add.reduceat(squares, layer_starts, axis=2)
    else:
        per_layer = np.stack([sum(squares[..., s].sum(axis=2) for s in slices)
                              for _, slices in layout.layer_slices()], axis=2)
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
        dst[:, start:start + _TILE_ROWS] = np.swapaxes(src[start:start + _TILE_ROWS], 0, 1)
    return out


def _scatter_or_none(scatter, buffer):
    """None for a figure never recorded in this chunk (all NaN: the table fills it without a copy)."""
    return None if buffer is None else scatter(buffer)


def _shape_message(rule, updates, expected) -> str:
    return (f"rule {rule.name!r} returned updates of shape "
            f"{getattr(updates, 'shape', type(updates).__name__)}; expected {expected}")


# ---- worker processes ----------------------------------------------------------------------------

_WORKER_REGISTRIES: dict = {}
_WORKER_INSTANCES: dict = {}


def _worker_registry(plugin_paths: tuple[str, ...]):
    if plugin_paths not in _WORKER_REGISTRIES:
        from .registry import load_registry
        # plugin files are loaded again here: a worker may be a fresh interpreter (spawn, Dask)
        _WORKER_REGISTRIES[plugin_paths] = load_registry(plugin_paths, use_env=False)
    return _WORKER_REGISTRIES[plugin_paths]


_BLAS_LIMITED = False


def _one_blas_thread() -> None:
    """In a worker, BLAS gets one thread: the pool already keeps every core busy, and two workers
    each running two BLAS threads on two cores would fight over them."""
    global _BLAS_LIMITED
    import multiprocessing

    if _BLAS_LIMITED or multiprocessing.parent_process() is None:
        return  # not a worker process (e.g. a thread pool): leave this process's BLAS alone
    _BLAS_LIMITED = True
    try:
        from threadpoolctl import threadpool_limits
        threadpool_limits(1, user_api="blas")
    except Exception:  # threadpoolctl missing or unaware of this BLAS: keep its default
        pass


def run_chunk_job(payload: dict) -> dict:
    """Executor entry point: rebuild registry, experiment and problem in this process, run one chunk."""
    _one_blas_thread()
    keep_freed_memory()
    registry = _worker_registry(tuple(payload["plugin_paths"]))
    experiment = Experiment.from_dict(payload["experiment"], strict=False)
    key = json.dumps([experiment.problem, experiment.problem_settings], sort_keys=True, default=str)
    if key not in _WORKER_INSTANCES:
        _WORKER_INSTANCES.clear()
        _WORKER_INSTANCES[key] = registry.problem(experiment.problem).build(dict(experiment.problem_settings))
    configs = experiment.runs()
    return run_chunk(_WORKER_INSTANCES[key], registry, experiment, [configs[i] for i in payload["run_ids"]])


def _process_context():
    """fork when this process has no other Python threads (fast: workers inherit the imports);
    forkserver otherwise (e.g. inside the Streamlit server), where fork could copy a held lock."""
    import multiprocessing
    import threading

    methods = multiprocessing.get_all_start_methods()
    if "fork" in methods and threading.active_count() == 1:
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")


def default_workers(experiment: Experiment, instance, registry) -> int:
    """Both cores when the job is long enough to pay for processes and workers can rebuild the plugins."""
    import threading

    cpus = os.cpu_count() or 1
    if cpus < 2 or not _rebuildable(registry, experiment):
        return 1
    threshold = PARALLEL_MIN_SECONDS
    if threading.active_count() > 1:
        # e.g. inside the Streamlit server: workers come from a fork server and import descentlab
        # afresh (~0.5 s each), so only longer jobs pay for them
        threshold *= 3
    if estimated_seconds(experiment, instance) < threshold:
        return 1
    return min(cpus, 2 if cpus <= 2 else cpus)


# ---- the whole experiment ------------------------------------------------------------------------

def run_experiment(experiment: Experiment, *, registry=None, executor: Executor | None = None,
                   progress: Callable[[int, int], None] | None = None, workers: int | None = None):
    """Train every run of ``experiment`` and return its :class:`~descentlab.records.Results`.

    ``executor``: any ``concurrent.futures.Executor`` for the chunks (results are identical to a
    serial run). Without one, ``workers`` processes are used (default: both cores when the job is
    large enough; ``workers=1`` runs in this process). ``progress(done, total)`` counts run-steps.
    """
    from .records import Results, build_meta
    from .registry import get_registry

    registry = registry or get_registry()
    started = time.perf_counter()
    keep_freed_memory()  # big temporaries are reused from the heap instead of page-faulted in again
    problem = registry.problem(experiment.problem)
    instance = problem.build(dict(experiment.problem_settings))
    n_train = int(getattr(instance, "n_train", 0) or 0)
    if experiment.batch_size > 0 and experiment.batch_size > n_train:
        raise SpecError("batch_size", experiment.batch_size,
                        f"an integer in [0, {n_train}] (the problem has {n_train} training samples)")
    if experiment.sharpness_every > 0:
        try:
            from . import sharpness  # noqa: F401
        except ImportError:
            raise SpecError("sharpness_every", experiment.sharpness_every,
                            "0 (descentlab.sharpness is not available)") from None

    configs = experiment.runs()
    chunks = plan_chunks(experiment, instance, configs)
    total = len(configs) * experiment.steps
    done = 0
    owned = None
    if executor is None:
        n_workers = default_workers(experiment, instance, registry) if workers is None else int(workers)
        if n_workers > 1 and len(configs) > 1:
            if not _rebuildable(registry, experiment):
                raise SpecError("workers", n_workers, "1 for plugins registered in this process only "
                                "(load them from a file or a package to use worker processes)")
            owned = executor = ProcessPoolExecutor(max_workers=n_workers, mp_context=_process_context())
    else:
        n_workers = getattr(executor, "_max_workers", 2)

    outputs: list[dict] = []
    try:
        if executor is None:
            for chunk in chunks:
                base_done = done
                width = len(chunk)

                def tick(t, _base=base_done, _width=width):
                    if progress is not None:
                        progress(_base + t * _width, total)

                outputs.append(run_chunk(instance, registry, experiment, [configs[i] for i in chunk],
                                         tick if progress is not None else None))
                done += width * experiment.steps
        else:
            jobs = _split_for_workers(chunks, 2 * max(int(n_workers), 1))
            payload = {"experiment": experiment.to_dict(), "plugin_paths": list(registry.plugin_paths)}
            futures = {executor.submit(run_chunk_job, {**payload, "run_ids": chunk}): len(chunk)
                       for chunk in jobs}
            for future in as_completed(futures):
                outputs.append(future.result())
                done += futures[future] * experiment.steps
                if progress is not None:
                    progress(done, total)
    finally:
        if owned is not None:
            owned.shutdown(wait=True, cancel_futures=True)
    if progress is not None:
        progress(total, total)

    problem_info = _json_ready(instance.describe())
    runs, metrics, weights = _assemble(experiment, registry, instance, configs, outputs, problem_info)
    meta = build_meta(experiment, registry, wall_time=time.perf_counter() - started,
                      problem_info=problem_info, workers=1 if executor is None else n_workers,
                      n_chunks=len(outputs))
    return Results(experiment=experiment, runs=runs, metrics=metrics, weights=weights, meta=meta,
                   problem_info=problem_info, path=None)


# ---- assembling the tables -----------------------------------------------------------------------

def _json_ready(value):
    """numpy scalars and arrays inside ``describe()`` as plain JSON values."""
    if isinstance(value, dict):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    if isinstance(value, np.ndarray):
        return _json_ready(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _hyper_columns(experiment: Experiment, registry) -> tuple[list[str], list[str]]:
    rule_cols, schedule_cols = [], []
    for e in experiment.entries:
        rule_cols += [n for n in e.hyper if n not in rule_cols]
        schedule_cols += [n for n in e.schedule_hyper if n not in schedule_cols]
    return rule_cols, schedule_cols


def _column(values: list):
    import pandas as pd

    present = [v for v in values if v is not None]
    if all(isinstance(v, (bool, int, float, np.number)) for v in present):
        return np.array([np.nan if v is None else float(v) for v in values])
    # text hyperparameters (choices): a string column, missing where the rule lacks it
    return pd.Series([None if v is None else str(v) for v in values], dtype="str")


def _train_losses(instance, params: np.ndarray) -> np.ndarray:
    """The loss of every run on the whole training set at ``params`` (NaN where it cannot be taken)."""
    try:
        with np.errstate(**_QUIET):
            return np.asarray(instance.loss(np.ascontiguousarray(params), None), dtype=np.float64)
    except Exception:  # a bonus column: a problem that cannot do it leaves the verdict to the batch losses
        return np.full(params.shape[0], np.nan)


def _explain(experiment, registry, instance, configs, status, flagged_at, **records):
    """The explanation columns of the runs table (``descentlab.explain``); empty if it cannot run."""
    R = len(configs)
    try:
        from .explain import explain_flagged
        return explain_flagged(instance, registry, experiment, configs, status, flagged_at, **records)
    except Exception:  # theory is a bonus; it must never break a finished experiment
        return [""] * R, np.full(R, np.nan), np.full(R, np.nan)


def _assemble(experiment, registry, instance, configs, outputs, problem_info):
    import pandas as pd  # only here: importing descentlab (e.g. by a plugin) stays light

    T, R = experiment.steps, len(configs)
    layout = instance.layout
    layer_names = list(layout.layers)
    # chunk outputs are run-major (r, steps + 1); stack them and put the runs in run_id order
    ids = np.concatenate([np.asarray(out["run_ids"], dtype=np.int64) for out in outputs])
    order = None if np.array_equal(ids, np.arange(R)) else np.argsort(ids, kind="stable")

    def gather(key, group="metrics"):
        parts = [(out[group][key] if group else out[key]) for out in outputs]
        if all(p is None for p in parts):
            return None  # never recorded (all NaN), or one layer (its norm is grad_norm)
        if any(p is None for p in parts):
            parts = [np.full((len(out["run_ids"]), T + 1), np.nan) if p is None else p
                     for p, out in zip(parts, outputs)]
        stacked = parts[0] if len(parts) == 1 else np.concatenate(parts)
        return stacked if order is None else stacked[order]

    arrays = {name: gather(name) for name in (*METRIC_BASE, *METRIC_TAIL)}  # each (R, T+1)
    layers = gather("layers")                                                # (R, T+1, L)
    initial, final = gather("initial", None), gather("final", None)
    path = gather("path", None)
    snapshots = gather("snapshots", None)
    status = [s for out in outputs for s in out["status"]]
    errors = [e for out in outputs for e in out["error"]]
    if order is not None:
        status, errors = [status[i] for i in order], [errors[i] for i in order]
    diverged_at = gather("diverged_at", None)
    last_row = gather("last_row", None)

    # runs table
    loss = arrays["loss"]
    steps = np.arange(T + 1)[None, :]
    runs_r = np.arange(R)
    exists = steps <= last_row[:, None]   # (R, T+1): the rows a run has
    with np.errstate(**_QUIET):
        usable = exists & np.isfinite(loss)
        lowest = np.where(usable, loss, np.inf).min(axis=1, initial=np.inf)
        best = np.where(usable.any(axis=1), lowest, np.nan)
        final_loss = np.where(last_row >= 0, loss[runs_r, np.maximum(last_row, 0)], np.nan)
        steps_to_target = np.full(R, np.nan)
        if experiment.target_loss is not None:
            hit = exists & (loss <= experiment.target_loss)
            steps_to_target = np.where(hit.any(axis=1), hit.argmax(axis=1), np.nan).astype(float)
    from .verdicts import classify, smoothing_window

    minimum = problem_info.get("minimum_value") if isinstance(problem_info, dict) else None
    n_train = int(getattr(instance, "n_train", 0) or 0)
    if experiment.batch_size > 0:  # a batch's loss says little: J₀ and J_T on the whole training set
        train_start, train_final = _train_losses(instance, initial), _train_losses(instance, final)
    else:
        train_start, train_final = loss[:, 0].astype(np.float64), final_loss.astype(np.float64)
    status, unstable_at = classify(loss, last_row, status, minimum=minimum,
                                   smooth=smoothing_window(T, experiment.batch_size, n_train),
                                   ends=np.stack([train_start, train_final], axis=1))
    flagged_at = np.where(np.isfinite(diverged_at), diverged_at, unstable_at)
    reasons, lambda_start, lambda_flagged = _explain(
        experiment, registry, instance, configs, status, flagged_at, initial=initial,
        rates=arrays["learning_rate"], step_sizes=arrays["step_size"], losses=loss, last_row=last_row)

    rule_cols, schedule_cols = _hyper_columns(experiment, registry)
    table = {
        "run_id": np.array([c.run_id for c in configs], dtype=np.int64),
        "entry": np.array([c.entry for c in configs], dtype=np.int64),
        "label": [c.label for c in configs],
        "rule": [c.rule for c in configs],
        "schedule": [c.schedule for c in configs],
        "seed": np.array([c.seed for c in configs], dtype=np.int64),
        "learning_rate": np.array([c.learning_rate for c in configs], dtype=np.float64),
    }
    for name in rule_cols:
        table[name] = _column([c.hyper.get(name) for c in configs])
    for name in schedule_cols:
        table[f"schedule.{name}"] = _column([c.schedule_hyper.get(name) for c in configs])
    table.update({
        "warmup_steps": np.array([c.warmup_steps for c in configs], dtype=np.int64),
        "status": status, "diverged_at": diverged_at, "unstable_at": unstable_at, "final_loss": final_loss, "best_loss": best,
        "train_loss_start": train_start, "train_loss_final": train_final,
        "steps_to_target": steps_to_target, "error": errors, "divergence_reason": reasons,
        "lambda_max_start": lambda_start, "lambda_max_flagged": lambda_flagged,
    })
    runs = pd.DataFrame(table)

    # metrics table, long format: run-major, one row per recorded step. Columns are handed to
    # pandas without a copy (copy=False: a dict of columns is otherwise consolidated into one
    # block, and DataFrame.insert copies too, ~3-5 ms for 256 runs x 1000 steps, as much as the
    # tiny job's whole step loop is allowed); a complete run-major (R, T+1) array is its column.
    counts = np.clip(last_row + 1, 0, T + 1)  # = exists.sum(axis=1), without a pass over (R, T+1)
    n_rows = int(counts.sum())
    cut = np.flatnonzero(counts < T + 1)  # runs that stopped early (diverged or failed)

    def long(values):  # (R, T+1) -> the rows that exist, run by run
        if values is None:
            return np.full(n_rows, np.nan)
        flat = values.reshape(-1)
        if not len(cut):
            return flat
        if len(cut) > 64:
            return flat[exists.reshape(-1)]
        out = np.empty(n_rows, dtype=flat.dtype)  # a few cut runs: contiguous copies between them
        src = dst = first = 0
        for i in cut.tolist():
            whole = (i - first) * (T + 1)
            out[dst:dst + whole] = flat[src:src + whole]
            dst, src = dst + whole, src + whole
            out[dst:dst + counts[i]] = flat[src:src + counts[i]]
            dst, src, first = dst + counts[i], src + T + 1, i + 1
        out[dst:] = flat[src:]
        return out

    columns = {"run_id": np.repeat(np.arange(R, dtype=np.int64), counts),
               "step": long(np.tile(np.arange(T + 1, dtype=np.int64), R))}
    for name in METRIC_BASE:
        columns[name] = long(arrays[name])
    for k, layer in enumerate(layer_names):
        # one layer: its norm is the gradient norm (a copy: columns must not share memory)
        columns[f"grad_norm.{layer}"] = (columns["grad_norm"].copy() if layers is None
                                         else long(np.ascontiguousarray(layers[:, :, k])))
    for name in METRIC_TAIL:
        columns[name] = long(arrays[name])
    metrics = pd.DataFrame(columns, copy=False)

    weights = {}
    for prefix, flat in (("initial", initial), ("final", final)):
        for e in layout.entries:
            weights[f"{prefix}.{e.name}"] = np.ascontiguousarray(layout.view(flat, e.name))
    if path is not None:
        weights["path"] = path
    if snapshots is not None:
        weights["snapshots"] = snapshots
        weights["snapshot_steps"] = np.array(snapshot_steps(T, experiment.snapshot_every), dtype=np.int64)
    return runs, metrics, weights
