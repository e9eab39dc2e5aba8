"""Sweeps on Dask: tasks of the partitioned layout sent to a local or remote cluster, resumable.

``descentlab run EXP --executor dask [--scheduler ADDRESS] [--resume FOLDER]`` is
:func:`run_sweep` with :func:`connect`. Needs the ``[distributed]`` extra; docs/cluster.md.
"""

from __future__ import annotations

import json
import os
import re
import time
from concurrent.futures import as_completed
from pathlib import Path
from typing import Callable

from .atomic import write_text_atomic
from .errors import SpecError

__all__ = [
    "close",
    "SCHEDULER_ACCEPTED",
    "check_resumable",
    "check_scheduler",
    "connect",
    "is_sweep_folder",
    "run_sweep",
    "TaskFailed",
]

SCHEDULER_ACCEPTED = "tcp://HOST:PORT, tls://HOST:PORT or HOST:PORT with PORT in 1-65535 (a Dask scheduler)"
_ADDRESS = re.compile(r"^(?:(?P<scheme>tcp|tls)://)?(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):(?P<port>[0-9]{1,5})$")
CONNECT_SECONDS = 10  # a scheduler that does not answer in this time is reported, not waited for
EXTRA = "distributed"


def check_scheduler(address: str) -> str:
    """A Dask scheduler address as ``--scheduler`` accepts it, or a one-line SpecError."""
    match = _ADDRESS.match(address.strip()) if isinstance(address, str) else None
    if match is None or not 1 <= int(match["port"]) <= 65535:
        raise SpecError("--scheduler", address, SCHEDULER_ACCEPTED)
    return address.strip() if match["scheme"] else f"tcp://{address.strip()}"


def _distributed():
    from .extras import require

    return require("distributed", "descentlab run --executor dask", EXTRA)


def connect(scheduler: str | None = None, n_workers: int | None = None):
    """A ``distributed.Client``: of the scheduler at ``scheduler``, or of a new local cluster of
    ``n_workers`` single-threaded processes (default: every core) bound to 127.0.0.1 without its
    web dashboard. Closing the client closes a cluster it started."""
    distributed = _distributed()
    if scheduler is not None:
        address = check_scheduler(scheduler)
        try:
            return distributed.Client(address, timeout=CONNECT_SECONDS)
        except (OSError, TimeoutError) as error:
            raise SpecError(
                "--scheduler",
                scheduler,
                "the address of a running Dask scheduler",
                hint=f"no answer in {CONNECT_SECONDS} s: {type(error).__name__}",
            ) from None
    # A Client without an address starts a LocalCluster with these arguments and closes it with
    # itself. Processes, one thread each: the engine holds the GIL, so threads would share one core.
    return distributed.Client(
        n_workers=n_workers or os.cpu_count() or 1,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        # without a dashboard the scheduler still serves its HTTP routes (health, metrics), by default
        # on port 8787: a second sweep at the same time got "Port 8787 is already in use" on stderr.
        # Any free port of 127.0.0.1 instead, and still no dashboard.
        scheduler_kwargs={"dashboard": False, "dashboard_address": "127.0.0.1:0"},
        host="127.0.0.1",
    )


def close(client) -> None:
    """Close ``client`` (and so the local cluster :func:`connect` started for it)."""
    client.close()


def run_sweep(
    experiment,
    folder,
    *,
    client,
    registry=None,
    resume: bool = False,
    progress: Callable[[int, int], None] | None = None,
):
    """Run ``experiment`` as tasks on ``client`` (a ``distributed.Client`` or any Executor), each
    writing its parts into ``folder``; return the :class:`~descentlab.records.Results` read back.

    ``resume=True`` takes an existing folder of the same experiment and runs only the tasks whose
    parts are missing; so does a ``folder`` that already holds a sweep (rerunning into the same
    folder), while any other existing, non-empty folder is refused. ``progress(done, total)``
    counts tasks (parts already there count as done). A task that fails leaves the other parts in
    place: the same call goes on.
    """
    from .faults import build_instance
    from .parts import PART_DIRS, is_done, plan_tasks, read_parts
    from .records import build_meta, load_results, remove_stale_temporaries
    from .registry import get_registry
    from .runner import _describe, _rebuildable, check_job, executor_and_workers
    from .tables import _json_ready

    registry = registry or get_registry()
    started = time.perf_counter()
    folder = Path(folder)
    if not _rebuildable(registry, experiment):
        raise SpecError(
            "--executor",
            "dask",
            "local for plugins registered in this process only "
            "(load them from a file or a package so that Dask workers can rebuild them)",
        )
    instance = build_instance(registry.problem(experiment.problem), dict(experiment.problem_settings))
    check_job(experiment, instance)
    spec_file = folder / "experiment.toml"
    field = "--resume" if resume else "folder"  # what the caller named: a refusal says that
    if not resume and is_sweep_folder(folder):
        resume = True  # rerunning into the same folder goes on where it stopped (docs/cluster.md)
    if resume:
        check_resumable(folder, experiment, field)
        if (folder / "meta.json").exists():
            (folder / "meta.json").unlink()  # rewritten at the end; a folder being resumed is not finished
        _remove_temporaries(folder)
    else:
        if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
            raise SpecError(
                "folder",
                str(folder),
                "a new or empty folder, or the folder of an unfinished sweep of this experiment",
            )
        folder.mkdir(parents=True, exist_ok=True)
        write_text_atomic(spec_file, experiment.to_toml())

    for kind in PART_DIRS:  # made now: an interrupted sweep's folder is known as one (load_results, --resume)
        (folder / kind).mkdir(exist_ok=True)
    tasks = plan_tasks(experiment, instance)
    if resume:
        _remove_unplanned(folder, {t["hash"] for t in tasks})
    todo = [t for t in tasks if not is_done(folder, t)]
    total = len(tasks)
    done = total - len(todo)
    if progress is not None:
        progress(done, total)
    executor, n_workers = executor_and_workers(client)
    payload = {
        "experiment": experiment.to_dict(),
        "plugin_paths": list(registry.plugin_paths),
        "plugin_errors": list(registry.errors),  # faults known here, not the worker's own
        "folder": str(folder.resolve()),
    }
    from .parts import run_task

    futures = {executor.submit(run_task, {**payload, **task}): task for task in todo}
    summaries = []
    try:
        for future in as_completed(futures):
            try:
                summaries.append(future.result())
            except Exception as error:  # which task, so that a plugin crashing its worker is found
                raise TaskFailed(futures[future], error) from error
            done += 1
            if progress is not None:
                progress(done, total)
    finally:
        for future in futures:
            future.cancel()

    runs, metrics, weights = read_parts(folder, experiment)
    problem_info = _json_ready(_describe(experiment, instance))
    costs = [s["sharpness_cost"] for s in summaries if s.get("sharpness_cost")]
    cost = {k: int(sum(c[k] for c in costs)) for k in ("measurements", "hessian_vector_products")} if costs else None
    meta = build_meta(
        experiment,
        registry,
        wall_time=time.perf_counter() - started,
        problem_info=problem_info,
        workers=n_workers,
        n_chunks=total,
        sharpness_cost=cost,
    )
    meta["command"] = f"descentlab run {spec_file} --executor dask" + "".join(
        f" --plugin {path}" for path in registry.plugin_paths
    )
    meta["layout"] = "partitioned"
    meta["tasks_run"] = len(todo)  # the others were found done (a resumed sweep)
    write_text_atomic(folder / "meta.json", json.dumps(meta, indent=2, default=str) + "\n")
    remove_stale_temporaries(folder.parent)
    return load_results(folder)


class TaskFailed(RuntimeError):
    """A task of a sweep failed (its error is ``__cause__``): the message names its rule entry and
    runs, e.g. the entry whose plugin crashed every worker that ran it (Dask's KilledWorker)."""

    def __init__(self, task: dict, error: BaseException):
        self.task = task
        ids = task["run_ids"]
        runs = f"run {ids[0]}" if len(ids) == 1 else f"runs {ids[0]}..{ids[-1]}"
        super().__init__(
            f"the task of rules[{task['entry']}] ({task['rule']!r}, {runs}): {type(error).__name__}: {error}"
        )


def check_resumable(folder, experiment, field: str = "--resume") -> None:
    """A one-line SpecError (naming ``field``) unless ``folder`` is a sweep of ``experiment``:
    said before any cluster starts, and a finished single-file folder is never touched."""
    from .experiment import Experiment, parse_toml

    folder = Path(folder)
    spec_file = folder / "experiment.toml"
    if not folder.is_dir() or not is_sweep_folder(folder):
        raise SpecError(
            field,
            str(folder),
            "the folder of a descentlab run --executor dask",
            hint="this one holds runs.parquet: a finished single-file results folder"
            if (folder / "runs.parquet").exists()
            else "it has no experiment.toml",
        )
    saved = Experiment.from_dict(parse_toml(spec_file.read_text(encoding="utf-8")), strict=False)
    if saved.to_dict() != experiment.to_dict():
        raise SpecError(
            field,
            str(folder),
            "the folder of this same experiment",
            hint="its experiment.toml differs from the experiment given",
        )


def is_sweep_folder(folder) -> bool:
    """Whether ``folder`` was written by :func:`run_sweep` (finished or not): an experiment.toml
    (written first) and no single-file tables (which :func:`~descentlab.records.save_results`
    renames into place with its experiment.toml, all at once)."""
    folder = Path(folder)
    return (folder / "experiment.toml").is_file() and not (folder / "runs.parquet").exists()


_PART_TEMPORARY = re.compile(
    r"\.part-[0-9a-f]+\.(?:parquet|npz)\.(?P<host>[A-Za-z0-9-]+)\.(?P<pid>[0-9]{1,10})\.[a-z0-9_]{8}\.tmp\.(?:parquet|npz)"
)


def _remove_temporaries(folder: Path) -> None:
    """Hidden temporaries of parts whose writer was killed (write_atomic names them
    ``.part-*.<host>.<pid>.*.tmp*``): only a gone writer's of this machine, never those of a task
    still writing (another sweep resuming the same folder) or of another machine's worker."""
    from .atomic import writer_gone

    for kind in ("runs", "metrics", "weights"):
        for path in (folder / kind).glob("problem=*/rule=*/.part-*.tmp*"):
            match = _PART_TEMPORARY.fullmatch(path.name)
            if match is None or not writer_gone(match):
                continue
            try:
                path.unlink()
            except OSError:
                pass


def _remove_unplanned(folder: Path, planned: set[str]) -> list[Path]:
    """Parts of this experiment that the plan no longer has (chunk sizes changed between versions of
    descentlab): their runs are planned again under other names, and kept they would be read twice."""
    removed = []
    for kind in ("runs", "metrics", "weights"):
        for path in (folder / kind).glob("problem=*/rule=*/part-*"):
            if path.name.split(".", 1)[0].removeprefix("part-") not in planned:
                path.unlink(missing_ok=True)
                removed.append(path)
    return removed
