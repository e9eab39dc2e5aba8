"""Runs grouped by configuration over seeds, their colours, and the helpers every chart family shares."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import pandas as pd

from descentlab.analysis import NON_CONFIG_COLUMNS
from descentlab.analysis import config_columns as analysis_config_columns
from descentlab.analysis import quantiles as analysis_quantiles

from . import style as S


PALETTE = S.PALETTE

# Columns of the runs table that describe a run's outcome, not its configuration (core's list).
OUTCOME_COLUMNS = set(NON_CONFIG_COLUMNS)


def color(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def entry_color(entry: int, rank: int = 0, count: int = 1) -> str:
    """The colour of rule entry ``entry`` in every chart (loss, sweep, paths, reports): one hue per entry.

    An entry with ``count`` configurations (a grid) gives its ``rank``-th one a shade of the same hue,
    from darker to lighter, so a sweep's α values stay one family in the legend.
    """
    base = color(entry)
    if count <= 1:
        return base
    t = -0.35 + 0.8 * rank / (count - 1)  # -0.35 (darker) .. +0.45 (lighter)
    h = base.lstrip("#")
    rgb = [int(h[i : i + 2], 16) for i in (0, 2, 4)]
    mixed = [round(v + (255 - v) * t) if t > 0 else round(v * (1 + t)) for v in rgb]
    return "#" + "".join(f"{max(0, min(255, v)):02X}" for v in mixed)


def _rgba(hex_color: str, alpha: float) -> str:
    h = hex_color.lstrip("#")
    r, g, b = (int(h[i : i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"


def _plain(values) -> list:
    """Floats as a list, with NaN and ±inf as None (plotly leaves a gap; JSON stays valid)."""
    # one tolist() of the whole array rather than a numpy scalar per element: the same Python floats,
    # about 2x faster on a 500-point curve (each chart summarises every group's curve and band)
    array = np.asarray(values, dtype=float).ravel()
    listed = np.where(np.isfinite(array), array, np.nan).tolist()
    return [None if v != v else v for v in listed]  # v != v: NaN


def _drawn(values) -> np.ndarray | list:
    """A curve's values as plotly should receive them: a numpy array (None as NaN), not a list.

    plotly validates a Python list element by element (~1.5 ms per 500-point trace, more than half
    of the Compare page's figure time) and walks it again when serialising; an array is checked as
    one object and sent base64-encoded (``dtype`` + ``bdata``), so the cost follows the points drawn
    at C speed. NaN is a gap in plotly.js exactly as None was. Values that are not numbers stay a list.
    """
    if values is None:
        return values
    try:
        array = np.asarray([np.nan if v is None else v for v in values])
    except (TypeError, ValueError):
        return list(values)
    return array if array.dtype.kind in "iuf" else list(values)


def _fmt(value) -> str:
    if isinstance(value, (float, np.floating)):
        return f"{float(value):g}"
    return str(value)


# ---------------------------------------------------------------------------------------------
# Groups: runs that differ only in their seed
# ---------------------------------------------------------------------------------------------


@dataclass
class Group:
    """Runs of one configuration (one entry, one point of its grid), one run per seed."""

    name: str
    entry: int
    rule: str
    run_ids: list[int]
    seeds: list[int]
    config: dict[str, Any]
    index: int  # position in the list
    color: str = ""  # entry_color of its entry, shaded by its rank among the entry's configurations
    entry_label: str = ""  # the entry's label, shared by all its configurations


def config_columns(results) -> list[str]:
    """Columns of the runs table that hold a run's configuration (α, hyperparameters, schedule):
    ``descentlab.analysis.config_columns``, so a chart groups runs exactly as the summary does."""
    return analysis_config_columns(results.runs)


def run_groups(results) -> list[Group]:
    """Group runs by configuration, from the record's grid (``results.configurations``): the runs of
    one grid point are one group, whatever their columns hold. Within an entry the groups are in the
    order of what varies in it (ascending, as a table sorted by those columns); the name is the
    entry's label plus what varies."""
    runs = results.runs.sort_values("run_id")
    cols = config_columns(results)
    row_of = {int(r): i for i, r in enumerate(runs["run_id"])}
    grid = [c for c in getattr(results, "configurations", []) if all(r in row_of for r in c.run_ids)]
    if not grid or sum(len(c.run_ids) for c in grid) != len(runs):
        grid = _grid_from_columns(runs, cols)  # a record without its experiment's grid
    groups: list[Group] = []
    for entry in sorted({c.entry for c in grid}):
        points = [c for c in grid if c.entry == entry]
        rows = runs.iloc[[row_of[r] for c in points for r in c.run_ids]]
        varying = [c for c in cols if rows[c].nunique(dropna=False) > 1]
        label = str(rows["label"].iloc[0]) if "label" in rows else str(rows["rule"].iloc[0])
        first_rows = [runs.iloc[row_of[c.run_ids[0]]] for c in points]
        order = sorted(range(len(points)), key=lambda k: tuple(_sort_key(first_rows[k][c]) for c in varying))
        mine = []
        for k in order:
            point, first_row = points[k], first_rows[k]
            config = {c: first_row[c] for c in cols}
            suffix = ", ".join(f"{'α' if c == 'learning_rate' else c}={_fmt(config[c])}" for c in varying)
            run_rows = runs.iloc[[row_of[r] for r in point.run_ids]]
            mine.append(
                Group(
                    name=f"{label} ({suffix})" if suffix else label,
                    entry=int(entry),
                    rule=str(first_row["rule"]),
                    entry_label=label,
                    run_ids=[int(r) for r in run_rows["run_id"]],
                    seeds=[int(s) for s in run_rows["seed"]],
                    config=config,
                    index=len(groups) + len(mine),
                )
            )
        for rank, g in enumerate(mine):
            g.color = entry_color(g.entry, rank, len(mine))
        groups += mine
    return groups


@dataclass(frozen=True)
class _Point:
    """A grid point found from the runs table's columns (records with no grid to read)."""

    entry: int
    run_ids: tuple[int, ...]


def _grid_from_columns(runs: pd.DataFrame, cols: list[str]) -> list[_Point]:
    points = []
    for entry, rows in runs.groupby("entry", sort=True):
        for _, part in rows.groupby(cols, sort=True, dropna=False):
            points.append(_Point(int(entry), tuple(int(r) for r in part["run_id"])))
    return points


def _sort_key(value) -> tuple:
    """Ascending with NaN and None last, as pandas sorts group keys."""
    missing = value is None or (isinstance(value, float) and np.isnan(value))
    return (1, 0) if missing else (0, value)


def _status_steps(results, status: str, column: str) -> dict[int, int]:
    """run_id -> ``column`` (a step) of the runs whose status is ``status`` (a missing column: none)."""
    runs = results.runs
    if column not in runs:
        return {}
    out = {}
    for run_id, given, at in zip(runs["run_id"], runs["status"], runs[column]):
        if given == status and pd.notna(at):
            out[int(run_id)] = int(at)
    return out


def _diverged_steps(results) -> dict[int, int]:
    """run_id -> ``diverged_at`` of the diverged runs (the runner stopped them there)."""
    return _status_steps(results, "diverged", "diverged_at")


def _unstable_steps(results) -> dict[int, int]:
    """run_id -> ``unstable_at`` of the unstable runs (they went on to the last step)."""
    return _status_steps(results, "unstable", "unstable_at")


def _metric_matrix(
    results, metric: str, run_ids: Sequence[int], diverged: dict[int, int], pad_diverged: bool
) -> tuple[np.ndarray, np.ndarray]:
    """``(steps, values (T, len(run_ids)))``; a diverged run is +inf from its divergence on if padded.

    The steps are those where at least one of ``run_ids`` has a row (as a pivot of their rows alone
    would give), sliced from the record's own ``(runs, steps + 1)`` arrays (``Results.metric``, built
    once per record and metric); a run id the record does not have is a column of NaN.
    """
    every, present = results.metric(metric), results.has_row
    ids = np.asarray(run_ids, dtype=np.int64).reshape(-1)
    known = (ids >= 0) & (ids < len(every))
    rows = present[ids[known]].any(axis=0) if known.any() else np.zeros(present.shape[1], dtype=bool)
    steps = np.flatnonzero(rows)
    values = np.full((len(steps), len(ids)), np.nan)
    values[:, known] = every[ids[known]][:, rows].T
    if pad_diverged:
        for j, run_id in enumerate(run_ids):
            if run_id in diverged:
                at = diverged[run_id]
                after = steps >= at
                bad = after & ~np.isfinite(values[:, j])
                values[bad | (steps > at), j] = np.inf
    return steps, values


def quantiles(values: np.ndarray, qs) -> np.ndarray:
    """Quantiles across runs (axis 1), +inf-safe and NaN-ignoring: ``descentlab.analysis.quantiles``."""
    return analysis_quantiles(values, qs, axis=1)


def has_values(results, metric: str) -> bool:
    """Whether ``metric`` was recorded at any step of any run (a test loss, an accuracy, sharpness)."""
    return metric in results.metric_names and bool((~np.isnan(results.metric(metric))).any())


def unstable_text(step: int) -> str:
    return f"unstable from step {step}"


def diverged_text(step: int) -> str:
    return f"diverged at step {step}"
