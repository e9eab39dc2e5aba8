"""The partitioned results layout: each task's runs, metrics and weights as its own files, found again by hash.

A task is one entry's share of runs (a chunk of the runner's plan, never two entries). It writes

    runs/problem=<problem>/rule=<rule>/part-<hash>.parquet      its rows of the runs table
    metrics/problem=<problem>/rule=<rule>/part-<hash>.parquet   its rows of the metrics table
    weights/problem=<problem>/rule=<rule>/part-<hash>.npz       its rows of every weights array

each atomically (a temporary name, then ``os.replace``), so a part that exists is complete. The
hash is of the task's spec (the whole experiment and the task's run ids): a resumed sweep of the
same experiment plans the same tasks and skips those whose parts exist. Reading the parts back
gives tables identical, bit for bit, to the single-file layout of the same runs.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from pathlib import Path
from urllib.parse import quote, unquote

import numpy as np

from .atomic import write_atomic

__all__ = ["is_done", "PART_DIRS", "is_partitioned", "part_paths", "plan_tasks", "read_parts", "run_task", "task_hash"]

PART_DIRS = ("runs", "metrics", "weights")
# Bumped when what a part holds changes: parts of another format are then not taken as done.
# 2: a text hyperparameter's column is a string column in every part, also where its entry lacks it.
PART_FORMAT = 2
# A part's runs table leaves out the partition columns: pyarrow refuses to read a hive dataset whose
# files also hold a column of the partition's name ("Unable to merge: Field rule ...").
PARTITION_COLUMNS = ("problem", "rule")
RESUME_HINT = "descentlab run EXPERIMENT.toml --resume FOLDER"


def is_partitioned(folder) -> bool:
    """Whether ``folder`` holds the partitioned layout (a ``runs/`` folder, no ``runs.parquet``)."""
    folder = Path(folder)
    return (folder / "runs").is_dir() and not (folder / "runs.parquet").exists()


def task_hash(spec: dict, run_ids: list[int]) -> str:
    """A task's name: the hash of the validated spec and its run ids (same task, same name, any machine)."""
    text = json.dumps(
        {"format": PART_FORMAT, "experiment": spec, "run_ids": [int(i) for i in run_ids]},
        sort_keys=True,
        separators=(",", ":"),
        default=str,
    )
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:24]


def _partition(problem: str, rule: str) -> str:
    # names are URI-quoted: pyarrow and DuckDB decode hive partition values the same way
    return f"problem={quote(str(problem), safe='')}/rule={quote(str(rule), safe='')}"


def part_paths(folder, problem: str, rule: str, key: str) -> dict[str, Path]:
    """The three files of one task: ``{"runs": ..., "metrics": ..., "weights": ...}``."""
    where = _partition(problem, rule)
    folder = Path(folder)
    return {
        "runs": folder / "runs" / where / f"part-{key}.parquet",
        "metrics": folder / "metrics" / where / f"part-{key}.parquet",
        "weights": folder / "weights" / where / f"part-{key}.npz",
    }


def plan_tasks(experiment, instance) -> list[dict]:
    """Every task of ``experiment``: per entry, the runner's chunks of its runs (by working set,
    not by the number of workers, so that a resumed sweep on another cluster plans the same tasks)."""
    from .runner import plan_chunks

    spec = experiment.to_dict()
    configs = experiment.runs()
    tasks = []
    for index, entry in enumerate(experiment.entries):
        mine = [c for c in configs if c.entry == index]
        for ids in plan_chunks(experiment, instance, mine):
            tasks.append(
                {
                    "entry": index,
                    "problem": experiment.problem,
                    "rule": entry.rule,
                    "run_ids": [int(i) for i in ids],
                    "hash": task_hash(spec, ids),
                }
            )
    return tasks


def is_done(folder, task: dict) -> bool:
    """Every file of the task exists (each was renamed into place whole)."""
    return all(p.is_file() for p in part_paths(folder, task["problem"], task["rule"], task["hash"]).values())


def run_task(payload: dict) -> dict:
    """Train one task's runs in this process, write its parts and return a small summary.

    ``payload``: ``experiment`` (the validated spec as a dict), ``plugin_paths``, ``run_ids``,
    ``problem``, ``rule``, ``hash`` and ``folder`` (the results folder, seen from the worker).
    """
    import pandas as pd

    from .chunk import run_chunk
    from .runner import _describe
    from .tables import _assemble, _json_ready
    from .workers import worker_context

    started = time.perf_counter()
    registry, experiment, instance = worker_context(payload)
    every = experiment.runs()
    configs = [every[i] for i in payload["run_ids"]]
    output = run_chunk(instance, registry, experiment, configs)
    problem_info = _json_ready(_describe(experiment, instance))
    runs, step_arrays, weights = _assemble(experiment, registry, instance, configs, [output], problem_info)
    metrics = step_arrays.long_table()
    ids = np.asarray(payload["run_ids"], dtype=np.int64)
    metrics["run_id"] = ids[metrics["run_id"].to_numpy()]  # _assemble numbers a subset's runs 0..r-1
    paths = part_paths(payload["folder"], payload["problem"], payload["rule"], payload["hash"])
    # weights and metrics first, the runs part last: its presence is what a reader lists
    write_atomic(paths["weights"], _synced(lambda p: _save_npz(p, {**weights, "run_id": ids})))
    write_atomic(paths["metrics"], _synced(lambda p: metrics.to_parquet(p, index=False, compression="zstd")))
    part = runs.drop(columns=[c for c in PARTITION_COLUMNS if c in runs.columns])
    for name in _text_columns(experiment, every):
        if name in part.columns:
            part[name] = pd.Series([None if _missing(v) else str(v) for v in part[name].tolist()], dtype="str")
    write_atomic(paths["runs"], _synced(lambda p: part.to_parquet(p, index=False, compression="zstd")))
    for path in paths.values():
        _sync_folder(path.parent)
    return {
        "hash": payload["hash"],
        "runs": len(configs),
        "seconds": time.perf_counter() - started,
        "statuses": runs["status"].value_counts().to_dict(),
        "sharpness_cost": output.get("sharpness_cost"),
    }


def _text_columns(experiment, configs=None) -> list[str]:
    """The runs table's hyperparameter columns that hold text in some entry of ``experiment``.

    In a part of an entry without that hyperparameter the column would be all missing, which the
    runs table types as float; pyarrow's and DuckDB's dataset readers take one file's schema for all
    and then fail on the other files ("Failed to parse string 'raw' as a scalar of type double"). So
    every part types it as a string column, as the whole table has it.
    """
    from .tables import _hyper_columns

    rule_cols, schedule_cols = _hyper_columns(experiment, None)
    configs = experiment.runs() if configs is None else configs  # every run's (a task has them already)

    def is_text(value) -> bool:
        return not _missing(value) and not isinstance(value, (bool, int, float, np.number))

    text = [name for name in rule_cols if any(is_text(c.hyper.get(name)) for c in configs)]
    text += [f"schedule.{n}" for n in schedule_cols if any(is_text(c.schedule_hyper.get(n)) for c in configs)]
    return text


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _synced(write):
    """``write`` then fsync the file: a part that exists is taken as done (``is_done``), so after a
    power cut its name must not have reached the disk before its bytes (a rename may)."""

    def write_and_sync(path: Path) -> None:
        write(path)
        with open(path, "rb") as handle:
            os.fsync(handle.fileno())

    return write_and_sync


def _sync_folder(folder: Path) -> None:
    """fsync a folder, so that the renames into it are on disk too (where the system allows it)."""
    try:
        handle = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(handle)
    except OSError:  # some file systems refuse fsync of a folder
        pass
    finally:
        os.close(handle)


def _save_npz(path: Path, arrays: dict) -> None:
    with open(path, "wb") as handle:  # a file object: np.savez would add ".npz" to the temporary's name
        np.savez(handle, **arrays)


def _parts(folder: Path, kind: str, suffix: str) -> list[Path]:
    # hidden names are temporaries of writes in progress (or of killed workers): never parts
    return sorted(p for p in (folder / kind).glob(f"problem=*/rule=*/part-*{suffix}") if not p.name.startswith("."))


def read_parts(folder, experiment):
    """``(runs, metrics, weights)`` of a partitioned folder, in run order, as the single-file layout has them."""
    import pandas as pd

    from .tables import _column, _hyper_columns

    from .errors import ResultsError

    folder = Path(folder)
    run_parts, metric_parts, weight_parts = [], [], []
    for path in _parts(folder, "runs", ".parquet"):
        # a task's three files, found by its runs part: a metrics or weights part lost since (or an
        # orphan of a task killed before its runs part) must not leave runs without their steps
        where = path.relative_to(folder / "runs")
        siblings = {"metrics": folder / "metrics" / where, "weights": (folder / "weights" / where).with_suffix(".npz")}
        for kind, sibling in siblings.items():
            if not sibling.is_file():
                raise ResultsError(
                    sibling,
                    "",
                    f"missing (the task's runs part {path.relative_to(folder)} is there)",
                    f"every task's runs, metrics and weights parts (write them again: {RESUME_HINT})",
                )
        table = pd.read_parquet(path)
        rule = unquote(path.parent.name.split("=", 1)[1])
        # the partition column goes back where the runs table has it (after label)
        at = list(table.columns).index("label") + 1 if "label" in table.columns else len(table.columns)
        table.insert(at, "rule", pd.Series([rule] * len(table), dtype="str"))
        run_parts.append(table)
        metric_parts.append(pd.read_parquet(siblings["metrics"]))
        with np.load(siblings["weights"], allow_pickle=False) as npz:
            weight_parts.append({k: npz[k] for k in npz.files})
    if not run_parts:
        return None, None, None

    def first_id(table, column="run_id"):
        values = table[column]
        return int(values[0]) if len(values) else math.inf

    run_parts.sort(key=first_id)
    metric_parts.sort(key=first_id)
    weight_parts.sort(key=first_id)
    runs = pd.concat(run_parts, ignore_index=True)
    # a part sees only its entry's hyperparameters: another entry's text column is all missing there,
    # a float column; rebuilt from every row it has the single-file layout's type again
    rule_cols, schedule_cols = _hyper_columns(experiment, None)
    for name in [*rule_cols, *(f"schedule.{n}" for n in schedule_cols)]:
        if name in runs.columns:
            values = [None if _missing(v) else v for v in runs[name].tolist()]
            runs[name] = _column(values)
    metrics = pd.concat(metric_parts, ignore_index=True) if metric_parts else pd.DataFrame()
    weights: dict = {}
    for key in weight_parts[0] if weight_parts else {}:
        if key == "run_id":
            continue
        if key == "snapshot_steps":  # the same steps for every run: one array, not a run axis
            weights[key] = weight_parts[0][key]
        else:
            weights[key] = np.concatenate([w[key] for w in weight_parts])
    return runs, metrics, weights
