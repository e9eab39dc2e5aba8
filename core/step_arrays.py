"""Per-step values of every run as (runs, steps + 1) arrays, and the long metrics table built from them.

The runner's chunks record run-major arrays. A :class:`~descentlab.records.Results` fresh from the
runner keeps them as they are, and its figures, pages and analysis slice them
(``Results.metric``); the long metrics table (one row per run and recorded step, the layout of
``metrics.parquet``) is built from them only when it is asked for: when the results are saved, or
when ``results.metrics`` is read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["StepArrays"]


@dataclass(frozen=True, eq=False)
class StepArrays:
    """Every run's per-step values, one ``(runs, steps + 1)`` array per metric, and where each run stops.

    ``columns`` holds the metrics in the long table's column order (after ``run_id`` and ``step``);
    ``None`` is a metric never recorded (a column of NaN in the table). Row ``r`` of a metric is
    meaningful up to ``last_row[r]`` (the run's last recorded step; ``-1``: no row at all); values
    after it are not part of the results.
    """

    columns: dict[str, np.ndarray | None]
    last_row: np.ndarray  # (runs,) integers
    steps: int  # T: a complete run has T + 1 rows

    @property
    def names(self) -> list[str]:
        """The metric names, in the long table's column order."""
        return list(self.columns)

    @property
    def n_runs(self) -> int:
        return len(self.last_row)

    def exists(self) -> np.ndarray:
        """``(runs, steps + 1)`` booleans: where the long table has a row."""
        return np.arange(self.steps + 1)[None, :] <= np.asarray(self.last_row)[:, None]

    def metric(self, name: str, exists: np.ndarray | None = None) -> np.ndarray:
        """One metric as float64 ``(runs, steps + 1)``, NaN where a run has no row: the same numbers
        as the long table's column pivoted back (the table's values are these arrays' values)."""
        out = np.full((self.n_runs, self.steps + 1), np.nan)
        values = self.columns[name]
        if values is not None:
            mask = self.exists() if exists is None else exists
            np.copyto(out, values, where=mask, casting="unsafe")
        return out

    def long_table(self) -> "pd.DataFrame":
        """The long metrics table: run-major, one row per recorded step (docs/results.md)."""
        import pandas as pd  # only here: importing descentlab (e.g. by a plugin) stays light

        R, T = self.n_runs, self.steps
        counts = np.clip(np.asarray(self.last_row) + 1, 0, T + 1)  # rows per run
        n_rows = int(counts.sum())
        cut = np.flatnonzero(counts < T + 1)  # runs that stopped early (diverged or failed)
        exists = self.exists() if len(cut) > 64 else None

        def long(values):  # (R, T+1) -> the rows that exist, run by run
            if values is None:
                return np.full(n_rows, np.nan)
            flat = np.ascontiguousarray(values).reshape(-1)
            if not len(cut):
                return flat
            if exists is not None:
                return flat[exists.reshape(-1)]
            out = np.empty(n_rows, dtype=flat.dtype)  # a few cut runs: contiguous copies between them
            src = dst = first = 0
            for i in cut.tolist():
                whole = (i - first) * (T + 1)
                out[dst : dst + whole] = flat[src : src + whole]
                dst, src = dst + whole, src + whole
                out[dst : dst + counts[i]] = flat[src : src + counts[i]]
                dst, src, first = dst + counts[i], src + T + 1, i + 1
            out[dst:] = flat[src:]
            return out

        table: dict[str, np.ndarray] = {
            "run_id": np.repeat(np.arange(R, dtype=np.int64), counts),
            "step": long(np.tile(np.arange(T + 1, dtype=np.int64), R)),
        }
        used: set[int] = set()
        for name, values in self.columns.items():
            column = long(values)
            if values is not None and id(values) in used:
                column = column.copy()  # one array behind two columns (one layer's norm is grad_norm)
            used.add(id(values))
            table[name] = column
        # handed to pandas without a copy (copy=False: a dict of columns is otherwise consolidated
        # into one block, ~3-5 ms for 256 runs x 1000 steps, as much as a tiny job's whole step loop)
        return pd.DataFrame(table, copy=False)
