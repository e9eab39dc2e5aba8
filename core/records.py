"""Results of an experiment in memory and on disk: one folder with the spec, two Parquet tables, weights and meta."""

from __future__ import annotations

import functools
import json
import os
import platform
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from datetime import datetime
from pathlib import Path

import numpy as np

from .atomic import give_user_mode, host_name, writer_gone

if TYPE_CHECKING:  # pandas is imported where tables are built: `import descentlab` stays light
    import pandas as pd
from .errors import ResultsError, SpecError
from .experiment import Experiment, parse_toml
from .grid import Configuration, configurations
from .step_arrays import StepArrays

__all__ = [
    "FILES",
    "PARTITIONED_FILES",
    "DEFAULT_RESULTS_DIR",
    "RESULTS_ENV",
    "METRIC_CACHE_BYTES",
    "default_results_dir",
    "find_results_dir",
    "Results",
    "build_meta",
    "remove_stale_temporaries",
    "save_results",
    "load_results",
    "RUN_COLUMNS",
    "OPTIONAL_RUN_COLUMNS",
    "METRIC_COLUMNS",
    "OPTIONAL_METRIC_COLUMNS",
    "META_FIELDS",
    "validate_results",
]

FILES = ("experiment.toml", "runs.parquet", "metrics.parquet", "weights.npz", "meta.json")
# the partitioned layout (descentlab.parts) has runs/, metrics/ and weights/ folders of parts instead
PARTITIONED_FILES = ("experiment.toml", "meta.json")
DEFAULT_RESULTS_DIR = "results"
RESULTS_ENV = "DESCENTLAB_RESULTS"
# Per-step arrays a record keeps once built (Results.metric): a 256-run x 100 000-step sweep is
# 205 MB per metric, so beyond this they are built per call instead of held beside the table.
METRIC_CACHE_BYTES = 256 << 20


def default_results_dir() -> str:
    """Where results go when no folder is given: ``$DESCENTLAB_RESULTS`` if set and not empty, else
    ``results``. The CLI's ``run``, :func:`save_results` and the dashboard (which lists this folder
    on its Results page and saves its runs there) all use it. A leading ``~`` is the home folder,
    as a shell would expand it: a value set in a file, unexpanded, must not make a folder named ``~``."""
    return os.path.expanduser(os.environ.get(RESULTS_ENV) or DEFAULT_RESULTS_DIR)


class _MetricsTable:
    """``Results.metrics``: the long table as given, or built from ``step_arrays`` when first read.

    A descriptor field (dataclasses call ``__set__`` from ``__init__``) that keeps the table in the
    instance's ``__dict__`` under its own name, so ``Results(metrics=table)``, ``dataclasses.replace``,
    ``Results(**vars(results))`` and assignment work as on a plain field. A table it built is noted
    in ``_built["long_table"]`` with its arrays: that one still counts as the arrays' values.
    """

    def __get__(self, results, owner=None):
        if results is None:
            return None  # the field's default: no table given
        table = results.__dict__.get("metrics")
        arrays = results.__dict__.get("step_arrays")
        if table is None and arrays is not None:
            table = results.__dict__["metrics"] = arrays.long_table()
            results._built["long_table"] = (arrays, table)
        return table

    def __set__(self, results, table) -> None:
        results.__dict__["metrics"] = table


@dataclass
class Results:
    """Everything one experiment produced (see the README's results format for every column).

    Per-step values: fresh from the runner, a record holds them as ``(runs, steps + 1)`` arrays
    (``step_arrays``, :mod:`descentlab.step_arrays`) and builds the long ``metrics`` table from them
    only when it is read or saved; :meth:`metric` slices the arrays. A record loaded from disk, or
    given a table, works from that table.
    """

    experiment: Experiment
    runs: "pd.DataFrame"
    metrics: "pd.DataFrame" = _MetricsTable()  # type: ignore[assignment]  # a descriptor: see _MetricsTable
    weights: dict[str, np.ndarray] = field(default_factory=dict)
    meta: dict = field(default_factory=dict)
    problem_info: dict = field(default_factory=dict)
    path: Path | None = None
    step_arrays: StepArrays | None = field(default=None, repr=False, compare=False)
    # arrays built from the tables (metric, has_row, configurations), each with the table it came
    # from: a field, so copies made with dataclasses.replace stay valid
    _built: dict = field(default_factory=dict, repr=False, compare=False)

    def run_metrics(self, run_id: int) -> pd.DataFrame:
        """The metric rows of one run, in step order."""
        return self.metrics[self.metrics["run_id"] == run_id].reset_index(drop=True)

    @property
    def configurations(self) -> list[Configuration]:
        """The experiment's grid: one :class:`~descentlab.grid.Configuration` per point, each with the
        run ids of its seeds (``results.metric("loss")[c.run_ids]`` is one curve per seed)."""
        return self._cache("configurations", self.experiment, lambda: configurations(self.experiment))

    def _arrays(self) -> StepArrays | None:
        """The per-step arrays, while they are what the record's values come from (no table was given)."""
        arrays, table = self.step_arrays, self.__dict__.get("metrics")
        if arrays is None or table is None:
            return arrays
        built = self._built.get("long_table")
        return arrays if built is not None and built[0] is arrays and built[1] is table else None

    def _source(self):
        """What the per-step values come from: the arrays, else the table."""
        arrays = self._arrays()
        return self.metrics if arrays is None else arrays

    @property
    def metric_names(self) -> list[str]:
        """The per-step metrics this record holds (``loss``, ``step_size``, …), as :meth:`metric` accepts."""
        arrays = self._arrays()
        if arrays is not None:
            return arrays.names
        return [c for c in self.metrics.columns if c not in ("run_id", "step")]

    def metric(self, name: str) -> np.ndarray:
        """One per-step metric of every run as a ``(runs, steps + 1)`` float array in ``run_id`` order,
        NaN where a run has no row (after it stopped). Built once per record and metric and shared
        while the arrays held stay under ``METRIC_CACHE_BYTES``: the array is read-only (``.copy()`` it
        to change it)."""
        if name not in self.metric_names:
            raise SpecError("metric", name, f"one of: {', '.join(self.metric_names)}")
        arrays = self._arrays()

        def build() -> np.ndarray:
            if arrays is not None:
                out = arrays.metric(name, self.has_row)
            else:
                ids, steps = self._rows()
                out = np.full((len(self.runs), self.experiment.steps + 1), np.nan)
                out[ids, steps] = self.metrics[name].to_numpy(dtype=float, na_value=np.nan)
            out.flags.writeable = False
            return out

        key = f"metric:{name}"
        source = self._source()
        held = {k: v for k, v in self._built.items() if v[0] is source}
        if key not in held:
            used = sum(v[1].nbytes for k, v in held.items() if k.startswith("metric:"))
            if used + 8 * len(self.runs) * (self.experiment.steps + 1) > METRIC_CACHE_BYTES:
                return build()  # a very long sweep: built for this call only, not held beside the table
        return self._cache(key, source, build)

    @property
    def has_row(self) -> np.ndarray:
        """``(runs, steps + 1)`` booleans: where the metrics table has a row (a run's rows end where it
        stopped). Read-only; a table with two rows for one (run, step) is a ValueError."""
        arrays = self._arrays()

        def build() -> np.ndarray:
            if arrays is not None:
                out = arrays.exists()
            else:
                ids, steps = self._rows()
                out = np.zeros((len(self.runs), self.experiment.steps + 1), dtype=bool)
                out[ids, steps] = True
                if np.count_nonzero(out) != len(ids):
                    raise ValueError("the metrics table holds several rows for one (run_id, step)")
            out.flags.writeable = False
            return out

        return self._cache("has_row", self._source(), build)

    @property
    def rows_per_run(self) -> np.ndarray:
        """How many metric rows each run has, in ``run_id`` order: ``steps + 1`` for a run that trained
        to the end, fewer for one that diverged or failed."""
        return self.has_row.sum(axis=1)

    @property
    def last_step(self) -> int:
        """The largest step any run recorded (-1 when no run has a row)."""
        reached = np.flatnonzero(self.has_row.any(axis=0))
        return int(reached[-1]) if len(reached) else -1

    def _table_to_write(self) -> "pd.DataFrame":
        """The long table for a file: the one held, else built for this write only (not kept beside
        the arrays, so saving a long sweep does not double what the record holds)."""
        if self.__dict__.get("metrics") is None and self.step_arrays is not None:
            return self.step_arrays.long_table()
        return self.metrics

    def _rows(self) -> tuple[np.ndarray, np.ndarray]:
        """(run_id, step) of every metrics row, as integer arrays."""
        metrics = self.metrics
        return self._cache(
            "rows",
            metrics,
            lambda: (metrics["run_id"].to_numpy(dtype=np.int64), metrics["step"].to_numpy(dtype=np.int64)),
        )

    def _cache(self, key: str, source, build):
        """``build()``, kept until ``source`` (the table, arrays or experiment it was built from) is replaced."""
        found = self._built.get(key)
        if found is None or found[0] is not source:
            found = self._built[key] = (source, build())  # two threads may both build it: the same values
        return found[1]

    @property
    def plot(self):
        """Figures of this record for a notebook: ``.plot.loss()``, ``.sweep()``, ``.step_sizes()``,
        ``.learning_rates()``, ``.landscape()`` (plotly: the ``[dashboard]`` extra; without it,
        MissingExtra names it)."""
        from .extras import require

        require("plotly", "results.plot", "dashboard")
        # the one lazy import of the dashboard outside the CLI (tests/test_boundaries.py): figures
        # are the dashboard's, and a notebook user asks for them here
        from .dashboard.notebook import ResultPlots

        return ResultPlots(self)

    def _repr_html_(self) -> str:
        from .analysis import summary_html

        return summary_html(self)

    def __repr__(self) -> str:
        # the dataclass repr printed both tables in full (~39,000 characters for a small sweep)
        e = self.experiment
        counts = self.runs["status"].value_counts() if "status" in self.runs else {}
        statuses = ", ".join(f"{n} {s}" for s, n in counts.items())
        rules = ", ".join(dict.fromkeys(self.runs["label"])) if "label" in self.runs else ""
        where = f", path={str(self.path)!r}" if self.path is not None else ""
        return (
            f"Results({e.name!r}: {len(self.runs)} run{'' if len(self.runs) == 1 else 's'} of {rules} on "
            f"{e.problem}, {e.steps} steps; {statuses}{where})"
        )


def _versions() -> dict:
    return dict(_installed_versions())


@functools.lru_cache(maxsize=1)
def _installed_versions() -> dict:
    # read once per process: importlib.metadata parses five METADATA files, ~4 ms per experiment
    import importlib.metadata

    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in ("descentlab", "numpy", "pandas", "pyarrow", "pluggy"):
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def build_meta(
    experiment: Experiment,
    registry,
    *,
    wall_time: float,
    problem_info: dict,
    workers: int = 1,
    n_chunks: int = 0,
    sharpness_cost: dict | None = None,
) -> dict:
    """meta.json: versions, where each plugin used came from, wall time and the problem facts."""
    meta: dict = {
        "descentlab_results": RESULTS_FORMAT,
        "created": datetime.now().astimezone().isoformat(timespec="seconds"),
        "versions": _versions(),
        "platform": platform.platform(),
        "plugins": {
            "problem": {experiment.problem: registry.origin("problem", experiment.problem)},
            "rules": {e.rule: registry.origin("rule", e.rule) for e in experiment.entries},
            "schedules": {e.schedule: registry.origin("schedule", e.schedule) for e in experiment.entries},
            "plugin_files": list(registry.plugin_paths),
        },
        "wall_time_s": round(float(wall_time), 6),
        "workers": int(workers),
        "chunks": int(n_chunks),
        "n_runs": int(experiment.n_runs),
        "problem_info": problem_info,
    }
    if sharpness_cost is not None:
        meta["sharpness_cost"] = sharpness_cost
    transforms = {t.name: registry.origin("transform", t.name) for e in experiment.entries for t in e.transforms}
    if transforms:  # only when used: older meta.json files keep their keys
        meta["plugins"]["transforms"] = transforms
    return meta


def _host() -> str:
    return host_name()


def _temporary_prefix(name: str) -> str:
    """``.<name>.<host>.<pid>.``: mkdtemp adds 8 random characters and ``.tmp``."""
    return f".{name}.{_host()}.{os.getpid()}."


# exactly what _temporary_prefix + mkdtemp make (random part: tempfile's 8 of [a-z0-9_])
_TEMPORARY = re.compile(r"\.(?P<name>.+)\.(?P<host>[A-Za-z0-9-]+)\.(?P<pid>[0-9]{1,10})\.[a-z0-9_]{8}\.tmp")


def remove_stale_temporaries(parent) -> list[Path]:
    """Remove the hidden temporary folders of :func:`save_results` in ``parent`` whose writer, a process
    of this machine, is gone (killed during a save); return them. A temporary of a live process, of
    another machine, or anything not named exactly like one is left alone; errors are ignored."""
    removed: list[Path] = []
    try:
        entries = list(os.scandir(parent))
    except OSError:
        return removed
    for entry in entries:
        match = _TEMPORARY.fullmatch(entry.name)
        if not match or not writer_gone(match):
            continue
        try:
            if not entry.is_dir(follow_symlinks=False):
                continue
        except OSError:
            continue
        shutil.rmtree(entry.path, ignore_errors=True)
        removed.append(Path(entry.path))
    return removed


def _target_dir(parent: Path, name: str) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    candidate = parent / f"{name}-{stamp}"
    n = 2
    while candidate.exists():
        candidate = parent / f"{name}-{stamp}-{n}"
        n += 1
    return candidate


def save_results(results: Results, out_dir=None) -> Path:
    """Write ``results`` into a new folder ``<out_dir>/<name>-<YYYYmmdd-HHMMSS>`` and return its path.

    Atomic: every file is written into a hidden temporary folder beside the target, which is then
    renamed; an interrupted or failing write leaves no experiment folder, and an existing folder
    is never touched. ``out_dir`` defaults to :func:`default_results_dir` (``$DESCENTLAB_RESULTS``,
    else ``results``); an unwritable one raises SpecError.
    The temporary folder's name carries this machine's name and this process's pid, so that the
    temporaries of writers killed outright (SIGKILL, power loss) are removed by the next save or load
    there (:func:`remove_stale_temporaries`).
    """
    parent = Path(default_results_dir() if out_dir is None else out_dir)
    try:
        parent.mkdir(parents=True, exist_ok=True)
        if not parent.is_dir():
            raise NotADirectoryError(str(parent))
        remove_stale_temporaries(parent)
        tmp = Path(tempfile.mkdtemp(prefix=_temporary_prefix(results.experiment.name), suffix=".tmp", dir=parent))
    except OSError as error:
        raise SpecError("--out", str(parent), "a writable folder", hint=type(error).__name__) from None
    try:
        give_user_mode(tmp, folder=True)  # mkdtemp makes 0700; the files inside follow the umask already
        meta = dict(results.meta)
        plugin_files = meta.get("plugins", {}).get("plugin_files", [])
        (tmp / "experiment.toml").write_text(results.experiment.to_toml(), encoding="utf-8")
        results.runs.to_parquet(tmp / "runs.parquet", index=False, compression="zstd")
        results._table_to_write().to_parquet(tmp / "metrics.parquet", index=False, compression="zstd")
        np.savez(tmp / "weights.npz", **results.weights)  # type: ignore[arg-type]  # numpy stubs: savez(file, *args, allow_pickle=..., **kwds)
        target = _target_dir(parent, results.experiment.name)
        for _ in range(100):
            # the command names the folder this very rename creates: a run that took the name
            # meanwhile (same name, same second) makes us write meta.json again for the next name
            meta["command"] = f"descentlab run {target / 'experiment.toml'}" + "".join(
                f" --plugin {path}" for path in plugin_files
            )
            (tmp / "meta.json").write_text(json.dumps(meta, indent=2, default=str) + "\n", encoding="utf-8")
            try:
                os.rename(tmp, target)  # fails rather than replace a folder that appeared meanwhile
                break
            except OSError:
                if not target.exists():
                    raise
                target = _target_dir(parent, results.experiment.name)
        else:
            raise FileExistsError(str(target))
    except BaseException as error:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(error, OSError):
            raise SpecError(
                "--out", str(parent), "a writable folder with free space", hint=f"{type(error).__name__}: {error}"
            ) from None
        raise
    results.path = target
    results.meta = meta
    return target


def find_results_dir(path) -> Path:
    """``path`` itself when it exists, or is absolute; else the same name inside the results folder
    (``$DESCENTLAB_RESULTS``, else ``results``) when a folder of that name is there."""
    folder = Path(path)
    if folder.exists() or folder.is_absolute():
        return folder
    in_results = Path(default_results_dir()) / folder
    return in_results if in_results.is_dir() else folder


def load_results(path) -> Results:
    """Read a folder written by :func:`save_results`; anything else (a foreign folder, a truncated or
    corrupted file, a table or array not in the layout of docs/results.md) raises a one-line
    :class:`~descentlab.errors.ResultsError` naming the file and the field. Stale temporaries of
    killed saves beside the folder are removed (:func:`remove_stale_temporaries`).

    A relative ``path`` that is not a folder here is looked up in the results folder
    (:func:`default_results_dir`, ``$DESCENTLAB_RESULTS``), so the name ``descentlab run`` printed
    is enough: ``load_results("quadratic-sweep-20261204-175902")``."""
    accepted = "a results folder written by descentlab run (" + ", ".join(FILES) + ")"
    if not str(path).strip():  # Path("") is the working directory: never read it for an empty name
        raise ResultsError(path, "", "an empty path", accepted)
    folder = find_results_dir(path)
    remove_stale_temporaries(folder.parent)
    if not folder.is_dir():
        where = default_results_dir()
        raise ResultsError(path, "", f"no such folder (here or in the results folder {where})", accepted)
    from .parts import RESUME_HINT, is_partitioned

    partitioned = is_partitioned(folder)  # written by tasks (--executor dask): docs/cluster.md
    missing = [f for f in (PARTITIONED_FILES if partitioned else FILES) if not (folder / f).is_file()]
    if missing:
        if partitioned and missing == ["meta.json"]:
            accepted = f"a finished sweep (resume this one: {RESUME_HINT})"
        raise ResultsError(path, "", "missing " + ", ".join(missing), accepted)
    import pandas as pd

    current = "experiment.toml"
    try:
        experiment = Experiment.from_dict(parse_toml((folder / current).read_text(encoding="utf-8")), strict=False)
        if partitioned:
            from .parts import read_parts

            current = "runs"
            runs, metrics, weights = read_parts(folder, experiment)
            if runs is None:
                raise ResultsError(folder / current, "", "no parts", "part-<hash>.parquet files (docs/cluster.md)")
        else:
            current = "runs.parquet"
            runs = pd.read_parquet(folder / current)
            current = "metrics.parquet"
            metrics = pd.read_parquet(folder / current)
            current = "weights.npz"
            with np.load(folder / current, allow_pickle=False) as npz:
                weights = {k: npz[k] for k in npz.files}
        current = "meta.json"
        meta = json.loads((folder / current).read_text(encoding="utf-8"))
    except ResultsError:
        raise
    except SpecError as error:
        raise ResultsError(folder / current, "", "not a file written by descentlab run", str(error)) from None
    except Exception as error:  # truncated or foreign files: say which one
        reason = f"{type(error).__name__}: {error}".replace("\n", " ")[:200]
        raise ResultsError(folder / current, "", f"unreadable ({reason})", "a file written by descentlab run") from None
    validate_results(folder, experiment, runs, metrics, weights, meta)
    return Results(
        experiment=experiment,
        runs=runs,
        metrics=metrics,
        weights=weights,
        meta=meta,
        problem_info=meta.get("problem_info", {}),
        path=folder,
    )


# ---- the layout of a results folder (docs/results.md), checked once on load --------------------
# Required are the columns every version of descentlab wrote; later columns (and a rule's or
# schedule's hyperparameters) may be absent in older folders and extra columns are allowed.

RUN_COLUMNS = {
    "run_id": "i",
    "entry": "i",
    "label": "s",
    "rule": "s",
    "schedule": "s",
    "seed": "i",
    "learning_rate": "f",
    "warmup_steps": "i",
    "status": "s",
    "diverged_at": "f",
    "final_loss": "f",
    "best_loss": "f",
    "steps_to_target": "f",
    "error": "s",
}
OPTIONAL_RUN_COLUMNS = {
    "unstable_at": "f",
    "train_loss_start": "f",
    "train_loss_final": "f",
    "divergence_reason": "s",
    "lambda_max_start": "f",
    "lambda_max_flagged": "f",
}
METRIC_COLUMNS = {"run_id": "i", "step": "i", "loss": "f", "learning_rate": "f", "step_size": "f", "grad_norm": "f"}
OPTIONAL_METRIC_COLUMNS = {"test_loss": "f", "test_accuracy": "f", "sharpness": "f"}
# The layout version meta.json records; a folder of a later version is refused rather than misread.
RESULTS_FORMAT = 1
META_FIELDS: dict[str, type | tuple[type, ...]] = {
    "descentlab_results": int,
    "created": str,
    "versions": dict,
    "platform": str,
    "plugins": dict,
    "wall_time_s": (int, float),
    "workers": int,
    "chunks": int,
    "n_runs": int,
    "problem_info": dict,
    "command": str,
    "sharpness_cost": dict,
}
_KINDS = {"i": ("an integer column", "iu"), "f": ("a number column", "iuf"), "s": ("a text column", "OSU")}
_JSON_TYPES = {int: "an integer", str: "a string", dict: "a JSON object", (int, float): "a number"}


def _json_kind(value) -> str:
    number = "a number" if isinstance(value, (int, float)) else type(value).__name__
    return {dict: "a JSON object", list: "a JSON array", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), number
    )


def _check_columns(file: Path, table, required: dict, optional: dict) -> None:
    missing = [c for c in required if c not in table.columns]
    if missing:
        raise ResultsError(
            file,
            missing[0],
            f"missing column{'s' if len(missing) > 1 else ''} " + ", ".join(missing),
            "the columns in docs/results.md",
        )
    for name, kind in {**required, **{c: k for c, k in optional.items() if c in table.columns}}.items():
        what, kinds = _KINDS[kind]
        column = table[name]
        ok = column.dtype.kind in kinds
        if ok and kind == "s":
            ok = all(isinstance(v, str) for v in column.tolist())
        if not ok:
            raise ResultsError(file, name, f"column of type {column.dtype}", what)


def validate_results(folder, experiment: Experiment, runs, metrics, weights: dict, meta) -> None:
    """Check what :func:`load_results` read against the layout of docs/results.md; the first thing
    that is not as documented raises a one-line ResultsError naming the file and the field."""
    from .parts import is_partitioned

    folder = Path(folder)
    # a partitioned folder's tables are the folders of their parts (docs/cluster.md): name those
    names = (
        ("runs", "metrics", "weights") if is_partitioned(folder) else ("runs.parquet", "metrics.parquet", "weights.npz")
    )
    where = folder / "meta.json"
    if not isinstance(meta, dict):
        raise ResultsError(where, "top level", _json_kind(meta), "a JSON object")
    for key, kind in META_FIELDS.items():
        if key in meta and (not isinstance(meta[key], kind) or isinstance(meta[key], bool)):
            raise ResultsError(where, key, _json_kind(meta[key]), _JSON_TYPES[kind])
    version = meta.get("descentlab_results", RESULTS_FORMAT)
    if not 1 <= version <= RESULTS_FORMAT:
        raise ResultsError(
            where,
            "descentlab_results",
            f"layout version {version}",
            f"a version from 1 to {RESULTS_FORMAT} (a later one is written by a newer descentlab: upgrade it)",
        )

    n_runs, steps = experiment.n_runs, experiment.steps
    where = folder / names[0]
    _check_columns(where, runs, RUN_COLUMNS, OPTIONAL_RUN_COLUMNS)
    if len(runs) != n_runs or not np.array_equal(runs["run_id"].to_numpy(), np.arange(n_runs)):
        raise ResultsError(
            where,
            "run_id",
            f"{len(runs)} rows with run_id {_span(runs['run_id'])}",
            f"run_id 0 ... {n_runs - 1}, one row each (the {n_runs} runs of experiment.toml)",
        )
    from .verdicts import STATUSES

    unknown = sorted(set(runs["status"]) - set(STATUSES))
    if unknown:
        raise ResultsError(where, "status", f"unknown status {unknown[0]!r}", "one of " + ", ".join(STATUSES))

    where = folder / names[1]
    _check_columns(where, metrics, METRIC_COLUMNS, OPTIONAL_METRIC_COLUMNS)
    for name, high in (("run_id", n_runs - 1), ("step", steps)):
        values = metrics[name].to_numpy()
        if len(values) and (values.min() < 0 or values.max() > high):
            raise ResultsError(where, name, f"values {_span(metrics[name])}", f"0 ... {high}")

    where = folder / names[2]
    for key, array in weights.items():
        if array.dtype.kind not in "fiu":  # text, complex or flags would fail (or mislead) far from here
            raise ResultsError(where, key, f"an array of dtype {array.dtype}", "an array of real numbers")
    shapes = {k: tuple(v.shape) for k, v in weights.items()}
    tensors = sorted({k.split(".", 1)[1] for k in shapes if k.startswith(("initial.", "final."))})
    if not tensors:
        raise ResultsError(
            where, "initial.*", "no initial or final weights", "initial.<tensor> and final.<tensor> arrays"
        )
    layout = meta.get("problem_info", {}).get("layout")
    expected = {}
    if layout is not None and not (
        isinstance(layout, list) and all(isinstance(e, dict) and "name" in e and "shape" in e for e in layout)
    ):
        raise ResultsError(
            folder / "meta.json", "problem_info.layout", _json_kind(layout), "a list of rows {name, shape, ...}"
        )
    if layout is not None:
        try:
            expected = {str(e["name"]): (n_runs, *map(int, e["shape"])) for e in layout}
        except (TypeError, ValueError):
            raise ResultsError(
                folder / "meta.json",
                "problem_info.layout",
                "a shape that is not a list of integers",
                "the layout's rows {name, shape, ...}",
            ) from None
    for tensor in tensors:
        for key in (f"initial.{tensor}", f"final.{tensor}"):
            want = expected.get(tensor)
            if key not in shapes:
                raise ResultsError(where, key, "missing", f"an array of shape {want or '(runs, ...)'}")
            if want is not None and shapes[key] != want or not shapes[key] or shapes[key][0] != n_runs:
                raise ResultsError(
                    where, key, f"shape {shapes[key]}", f"shape {want}" if want else f"{n_runs} rows (one per run)"
                )
    missing = [t for t in expected if t not in tensors]
    if missing:
        raise ResultsError(where, f"initial.{missing[0]}", "missing", f"an array of shape {expected[missing[0]]}")
    if "path" in shapes and (len(shapes["path"]) != 3 or shapes["path"][:2] != (n_runs, steps + 1)):
        raise ResultsError(where, "path", f"shape {shapes['path']}", f"shape ({n_runs}, {steps + 1}, 2)")
    if "snapshots" in shapes:
        snap = shapes["snapshots"]
        count = shapes.get("snapshot_steps", (None,))
        if len(snap) != 3 or snap[0] != n_runs or len(count) != 1 or count[0] != snap[1]:
            raise ResultsError(
                where,
                "snapshots",
                f"shape {snap} with snapshot_steps of shape {count}",
                f"shape ({n_runs}, K, P) and snapshot_steps of shape (K,)",
            )


def _span(column) -> str:
    values = np.asarray(column)
    return f"{values.min()} ... {values.max()}" if len(values) else "(none)"
