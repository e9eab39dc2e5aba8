"""The batched runner: every entry's grid x seeds planned into chunks of stacked runs, optionally in processes.

The chunk loop itself is ``descentlab.chunk`` (the one place that trains), the worker processes
``descentlab.workers``, the tables ``descentlab.tables``; their public names are re-exported here.
"""

from __future__ import annotations

import math
import numbers
import os
import time
from concurrent.futures import Executor, ProcessPoolExecutor, as_completed
from typing import Callable

import numpy as np

from .allocator import keep_freed_memory
from .chunk import (
    METRIC_BASE,  # noqa: F401  (re-exported: these lived here before chunk.py)
    METRIC_TAIL,  # noqa: F401  (re-exported: these lived here before chunk.py)
    SMALL_COPY_BYTES,  # noqa: F401  (re-exported: these lived here before chunk.py)
    SMALL_PARAMS,  # noqa: F401  (re-exported: these lived here before chunk.py)
    RuleLookup,
    StepView,  # noqa: F401
    one_rule_experiment,
    run_chunk,
    snapshot_steps,
)
from .errors import SpecError
from .experiment import Experiment, RunConfig, check_resources
from .faults import build_instance
from .problem import network_of
from .tables import _assemble, _json_ready
from .workers import _process_context, die_with_parent, run_chunk_job  # noqa: F401

__all__ = [
    "check_job",
    "executor_and_workers",
    "RuleLookup",
    "StepView",
    "default_workers",
    "estimated_seconds",
    "one_rule_experiment",
    "plan_chunks",
    "run_chunk",
    "run_chunk_job",
    "run_experiment",
    "snapshot_steps",
]

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
    model = network_of(instance)  # the declared Network capability: its layers' widths
    if model is not None:
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
    used += [("transform", t.name) for e in experiment.entries for t in getattr(e, "transforms", ())]
    return all(registry.origin(k, n).startswith(("built-in", "package", "file ")) for k, n in used)


def default_workers(experiment: Experiment, instance, registry) -> int:
    """Every core (this machine class has two) when the job is long enough to pay for processes and
    workers can rebuild the plugins; else 1."""
    import threading

    import multiprocessing

    cpus = os.cpu_count() or 1
    if cpus < 2 or not _rebuildable(registry, experiment):
        return 1
    if multiprocessing.current_process().daemon:
        # e.g. inside a Dask worker (a daemonic process): it may not start processes of its own, and
        # the cluster already keeps every core busy, so its share runs here
        return 1
    threshold = PARALLEL_MIN_SECONDS
    if threading.active_count() > 1:
        # e.g. inside the Streamlit server: workers come from a fork server and import descentlab
        # afresh (~0.5 s each), so only longer jobs pay for them
        threshold *= 3
    if estimated_seconds(experiment, instance) < threshold:
        return 1
    return cpus


# ---- the whole experiment ------------------------------------------------------------------------


def check_job(experiment: Experiment, instance, validation=None) -> None:
    """What only the built problem can tell about a spec: a one-line SpecError before any training."""
    n_train = int(getattr(instance, "n_train", 0) or 0)
    if experiment.batch_size > 0 and experiment.batch_size > n_train:
        raise SpecError(
            "batch_size",
            experiment.batch_size,
            f"an integer in [0, {n_train}] (the problem has {n_train} training samples"
            + (" beside the protocol's validation split)" if validation is not None else ")"),
        )
    if experiment.sharpness_every > 0:
        try:
            from . import sharpness  # noqa: F401
        except ImportError:
            raise SpecError(
                "sharpness_every", experiment.sharpness_every, "0 (descentlab.sharpness is not available)"
            ) from None


def _progress_callback(progress, experiment: Experiment) -> Callable[[int, int], None] | None:
    """``run_experiment``'s ``progress`` as a callback: True is a bar where the user looks."""
    if progress is True:
        from .progress import auto_progress

        return auto_progress(f"{experiment.n_runs} runs × {experiment.steps} steps")
    if progress is False or progress is None:
        return None
    if not callable(progress):
        raise SpecError("progress", progress, "True (a bar), False or None (none), or a callable progress(done, total)")
    return progress


def run_experiment(
    experiment: Experiment,
    *,
    registry=None,
    executor: Executor | None = None,
    progress: Callable[[int, int], None] | bool | None = None,
    workers: int | None = None,
    validation: tuple[float, int] | None = None,
):
    """Train every run of ``experiment`` and return its :class:`~descentlab.records.Results`.

    ``executor``: any ``concurrent.futures.Executor`` for the chunks, or a ``distributed.Client``
    (results are identical to a serial run); ``workers`` is then how many chunks it runs at once
    (default: the Dask client's thread count, else this machine's CPU count), which sets how finely
    the runs are split. Without one, ``workers`` processes are used (default: both cores when the
    job is large enough; ``workers=1`` runs in this process; inside a daemonic process, such as a
    Dask worker, always in this process). ``progress(done, total)`` counts run-steps; ``True``
    draws a bar where the user looks (a Jupyter cell, else a terminal's stderr), as
    :func:`descentlab.compare` does.
    ``validation = (fraction, seed)``: train on :func:`descentlab.problem.validation_view` of the
    problem instead (the protocol's tuning phase), in every worker too; the problem must be supervised.
    """
    from .records import Results, build_meta
    from .registry import get_registry

    report = _progress_callback(progress, experiment)
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, numbers.Integral) or workers < 1):
        # 0 ran serially and "x" was a ValueError deep in the pool's set-up: say what is accepted
        raise SpecError("workers", workers, "a count >= 1 (1 runs in this process), or None for the default")
    registry = registry or get_registry()
    started = time.perf_counter()
    keep_freed_memory()  # big temporaries are reused from the heap instead of page-faulted in again
    problem = registry.problem(experiment.problem)
    instance = build_instance(problem, dict(experiment.problem_settings))
    if validation is not None:
        instance = _validation_instance(instance, experiment, validation)
    check_job(experiment, instance, validation)

    configs = experiment.runs()
    chunks = plan_chunks(experiment, instance, configs)
    total = len(configs) * experiment.steps
    done = 0
    owned = None
    if executor is None:
        n_workers = default_workers(experiment, instance, registry) if workers is None else int(workers)
        # A job that cannot fit is refused in one line before anything trains, from Python and the
        # dashboard as from the CLI (which checks before building the records folder).
        check_resources(experiment, instance, max(n_workers, 1))
        if n_workers > 1 and len(configs) > 1:
            if not _rebuildable(registry, experiment):
                raise SpecError(
                    "workers",
                    n_workers,
                    "1 for plugins registered in this process only "
                    "(load them from a file or a package to use worker processes)",
                )
            owned = executor = ProcessPoolExecutor(
                max_workers=n_workers,
                mp_context=_process_context(),
                initializer=die_with_parent,
                initargs=(os.getpid(),),
            )
    else:
        executor, n_workers = executor_and_workers(executor, workers)
        check_resources(experiment, instance, 1)  # the workers may be elsewhere; the records come here

    outputs: list[dict] = []
    try:
        if executor is None:
            for chunk in chunks:
                base_done = done
                width = len(chunk)

                def tick(t, _base=base_done, _width=width):
                    if report is not None:
                        report(_base + t * _width, total)

                outputs.append(
                    run_chunk(
                        instance,
                        registry,
                        experiment,
                        [configs[i] for i in chunk],
                        tick if report is not None else None,
                    )
                )
                done += width * experiment.steps
        else:
            jobs = _split_for_workers(chunks, 2 * max(int(n_workers), 1))
            payload = {
                "experiment": experiment.to_dict(),
                "plugin_paths": list(registry.plugin_paths),
                "plugin_errors": list(registry.errors),  # faults known here, not the worker's own
                "validation": None if validation is None else [float(validation[0]), int(validation[1])],
            }
            futures = {executor.submit(run_chunk_job, {**payload, "run_ids": chunk}): len(chunk) for chunk in jobs}
            for future in as_completed(futures):
                outputs.append(future.result())
                done += futures[future] * experiment.steps
                if report is not None:
                    report(done, total)
    finally:
        if owned is not None:
            owned.shutdown(wait=True, cancel_futures=True)
    if report is not None:
        report(total, total)

    problem_info = _json_ready(_describe(experiment, instance))
    runs, step_arrays, weights = _assemble(experiment, registry, instance, configs, outputs, problem_info)
    meta = build_meta(
        experiment,
        registry,
        wall_time=time.perf_counter() - started,
        problem_info=problem_info,
        workers=1 if executor is None else n_workers,
        n_chunks=len(outputs),
        sharpness_cost=_sharpness_cost(outputs),
    )
    return Results(
        experiment=experiment,
        runs=runs,
        weights=weights,
        meta=meta,
        problem_info=problem_info,
        path=None,
        step_arrays=step_arrays,  # the long metrics table is built from these when asked for
    )


def executor_and_workers(executor, workers: int | None = None) -> tuple[Executor, int]:
    """``(executor, how many tasks it runs at once)`` for an Executor or a ``distributed.Client``.

    A pool's size is private (``_max_workers``), so it is asked of Dask (its workers' threads, for a
    client and for its ``get_executor()``) or given as ``workers``; other executors count as this
    machine's CPUs.
    """
    client = executor
    if type(executor).__module__.startswith("distributed.") and hasattr(executor, "_client"):
        # client.get_executor(): distributed's ClientExecutor keeps its client only under this name;
        # without it a cluster of hundreds of threads would get this machine's few jobs
        client = executor._client
    if workers is None and callable(getattr(client, "nthreads", None)):
        workers = sum(client.nthreads().values())  # a distributed.Client: threads over all its workers
    if callable(getattr(executor, "get_executor", None)):
        # pure=False: a task's key is new on every submit. Dask names a pure task by its function and
        # arguments, and a resumed sweep submits the very same tasks: while the failed sweep's futures
        # live (an exception's traceback in a notebook), the client would hand back their error.
        executor = executor.get_executor(pure=False)
    if workers is None:
        workers = os.cpu_count() or 1
    return executor, max(int(workers), 1)


def _validation_instance(instance, experiment: Experiment, validation):
    """The validation view of ``instance`` (docs/protocol.md), or a SpecError if it has no Dataset to split."""
    from .problem import validation_view

    view = validation_view(instance, float(validation[0]), int(validation[1]))
    if view is None:
        raise SpecError(
            "protocol.validation",
            validation[0],
            "a supervised problem (a Dataset with at least 2 "
            f"training rows) to carve a validation split from; {experiment.problem!r} has none",
        )
    return view


def _sharpness_cost(outputs: list[dict]) -> dict | None:
    """What λ_max tracking cost over every chunk: measurements and Hessian-vector products (None if off)."""
    costs: list[dict] = [out["sharpness_cost"] for out in outputs if out.get("sharpness_cost")]
    if not costs:
        return None
    return {key: int(sum(c[key] for c in costs)) for key in ("measurements", "hessian_vector_products")}


def _describe(experiment: Experiment, instance) -> dict:
    """The problem's own description; one that breaks (sys.exit too) leaves the base description and
    the one-line reason under ``describe_error``: the runs are trained and must not be lost to it."""
    try:
        return instance.describe()
    except KeyboardInterrupt:
        raise
    except BaseException as error:
        from .faults import fault
        from .problem import ProblemInstance

        return {
            **ProblemInstance.describe(instance),
            "describe_error": fault("problem", experiment.problem, error, type(instance), what="describe failed:"),
        }
