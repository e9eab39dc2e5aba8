"""Worker processes of the runner: each rebuilds the plugins and the problem once, then trains chunks."""

from __future__ import annotations

import json
import os
import sys
import time

from .allocator import keep_freed_memory
from .atomic import pid_alive
from .chunk import run_chunk
from .experiment import Experiment
from .faults import build_instance

__all__ = ["PR_SET_PDEATHSIG", "WATCHDOG_SECONDS", "die_with_parent", "worker_context", "run_chunk_job"]

_WORKER_REGISTRIES: dict = {}
_WORKER_INSTANCES: dict = {}


def _worker_registry(plugin_paths: tuple[str, ...], known_errors: tuple[str, ...] = ()):
    # Keyed by the files' bytes, not only their paths: a long-lived worker (a Dask worker) must run
    # a plugin file's new code once it is edited, as the parent and the dashboard do.
    from .registry import load_registry, plugin_code

    key = plugin_code(plugin_paths)
    if key not in _WORKER_REGISTRIES:
        # plugin files are loaded again here: a worker may be a fresh interpreter (spawn, Dask)
        registry = load_registry(plugin_paths, use_env=False)
        broken = [m for m in registry.errors if m not in known_errors and any(str(path) in m for path in plugin_paths)]
        if broken:
            # not broken where the job was planned (``known_errors``: a file's faults there, which
            # the rest of it survives): this worker's machine differs, e.g. a Dask worker without
            # the file at that path. Said so, instead of "rule: got 'x'; expected one of ..."
            from .atomic import host_name
            from .errors import PluginError

            raise PluginError(
                f"{broken[0]} (on worker host {host_name()}: every worker needs the --plugin files "
                "at the same path, docs/cluster.md)"
            )
        _WORKER_REGISTRIES[key] = registry
    return _WORKER_REGISTRIES[key]


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


PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
WATCHDOG_SECONDS = 1.0


def die_with_parent(parent_pid: int) -> None:
    """Pool initializer: end this worker when the process that started the pool dies, even by
    SIGKILL (which no cleanup of its own can answer).

    On Linux the kernel sends SIGTERM when the worker's parent ends (``prctl(PR_SET_PDEATHSIG)``);
    the parent dying before that call is caught by looking right after it. Elsewhere (or if prctl
    fails) a daemon thread polls the parent pid. The thread also runs when this process's parent
    is not ``parent_pid`` (forkserver: the fork server is the parent, and it outlives the pool's
    process because every worker holds its liveness pipe open).
    """
    import signal

    ppid = os.getppid()
    if not _parent_death_signal(signal.SIGTERM) or ppid != parent_pid:
        _start_watchdog(ppid, parent_pid)
    if os.getppid() != ppid or not pid_alive(parent_pid):  # died before the signal was armed
        os.kill(os.getpid(), signal.SIGTERM)


def _parent_death_signal(signum: int) -> bool:
    """Ask Linux to send ``signum`` to this process when its parent dies; False where unavailable."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, int(signum), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _start_watchdog(ppid: int, parent_pid: int) -> None:
    import signal
    import threading

    def watch():
        while os.getppid() == ppid and pid_alive(parent_pid):
            time.sleep(WATCHDOG_SECONDS)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="descentlab-parent-watchdog", daemon=True).start()


def worker_context(payload: dict):
    """``(registry, experiment, instance)`` of a job's payload, rebuilt once per process and kept."""
    _one_blas_thread()
    keep_freed_memory()
    registry = _worker_registry(tuple(payload["plugin_paths"]), tuple(payload.get("plugin_errors", ())))
    # the spec was validated where the job was planned: trusted here, not checked again
    experiment = Experiment.from_dict(payload["experiment"], strict=False)
    validation = payload.get("validation")
    key = json.dumps([experiment.problem, experiment.problem_settings, validation], sort_keys=True, default=str)
    if key not in _WORKER_INSTANCES:
        _WORKER_INSTANCES.clear()
        problem = registry.problem(experiment.problem)
        instance = build_instance(problem, dict(experiment.problem_settings))
        if validation is not None:  # the protocol's tuning view, the same split as in the parent
            from .runner import _validation_instance

            instance = _validation_instance(instance, experiment, validation)
        _WORKER_INSTANCES[key] = instance
    return registry, experiment, _WORKER_INSTANCES[key]


def run_chunk_job(payload: dict) -> dict:
    """Executor entry point: rebuild registry, experiment and problem in this process, run one chunk."""
    registry, experiment, instance = worker_context(payload)
    configs = experiment.runs()
    return run_chunk(instance, registry, experiment, [configs[i] for i in payload["run_ids"]])


def _process_context():
    """fork when this process has no other Python threads (fast: workers inherit the imports);
    forkserver otherwise (e.g. inside the Streamlit server), where fork could copy a held lock."""
    import multiprocessing
    import threading

    methods = multiprocessing.get_all_start_methods()
    if "fork" in methods and threading.active_count() == 1:
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
