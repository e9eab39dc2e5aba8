"""The per-run summary table, the status counts, and the reader-facing column names (COLUMN_LABELS)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from . import style as S
from .fig_groups import _rgba, config_columns
from .status_style import status_counts, style_of


# ---------------------------------------------------------------------------------------------
# Summary table
# ---------------------------------------------------------------------------------------------

SUMMARY_COLUMNS = [
    "run_id",
    "label",
    "rule",
    "schedule",
    "learning_rate",
    "seed",
    "status",
    "final_loss",
    "best_loss",
    "steps_to_target",
    "diverged_at",
    "unstable_at",
    "lambda_max_start",
    "lambda_max_flagged",
    "divergence_reason",
]

# Reader-facing names of the runs table's outcome columns (the dashboard's tables and the report).
COLUMN_LABELS = {
    "learning_rate": "α",
    "unstable_at": "unstable from step",
    "diverged_at": "diverged at step",
    "divergence_reason": "why it blew up",
    "lambda_max_start": "λₘₐₓ at start",
    "lambda_max_flagged": "λₘₐₓ when flagged",
}


def summary_table(results) -> pd.DataFrame:
    """One row per run: configuration, status, final and best loss, steps to target, where it went wrong.

    ``unstable_at``, ``lambda_max_start`` and ``lambda_max_flagged`` appear when the records have
    them (older result folders do not).
    """
    runs = results.runs.sort_values("run_id")
    cols = [c for c in SUMMARY_COLUMNS if c in runs.columns]
    hyper = [
        c
        for c in config_columns(results)
        if c not in cols and runs[c].notna().any() and (c != "warmup_steps" or runs[c].fillna(0).ne(0).any())
    ]
    # the entries' gradient transforms, when some entry has them (older records have no such column)
    transforms = ["transforms"] if "transforms" in runs.columns and runs["transforms"].fillna("").ne("").any() else []
    table = runs[cols[:5] + transforms + hyper + cols[5:]].reset_index(drop=True)
    return table


@dataclass
class TableInfo:
    columns: list[str]
    rows: list[list[Any]]


def summary_table_info(results) -> TableInfo:
    table = summary_table(results)
    rows = []
    for rec in table.itertuples(index=False):
        row = []
        for v in rec:
            if isinstance(v, (float, np.floating)):
                row.append(None if not math.isfinite(float(v)) else float(v))
            elif isinstance(v, (np.integer,)):
                row.append(int(v))
            else:
                row.append(v)
        rows.append(row)
    return TableInfo(columns=list(table.columns), rows=rows)


def status_counts_table(results) -> pd.DataFrame:
    """Runs per status (statuses with runs only, in the vocabulary's order): status, runs, meaning."""
    counts = status_counts(results.runs["status"].astype(str))
    return pd.DataFrame(
        {"status": list(counts), "runs": list(counts.values()), "meaning": [style_of(s).help for s in counts]},
        columns=["status", "runs", "meaning"],
    )


def status_tint(status, alpha: float = 0.22) -> str:
    """The status's colour, see-through: a table cell's background."""
    return _rgba(style_of(status).color, alpha)


def draw_summary_table(info: TableInfo) -> go.Figure:
    def cell(v):
        if v is None:
            return "–"
        if isinstance(v, float):
            return f"{v:.4g}"
        return str(v)

    columns = [[cell(row[j]) for row in info.rows] for j in range(len(info.columns))]
    fill = [["white"] * len(info.rows) for _ in info.columns]
    if "status" in info.columns:  # the status cells in the status's colour
        fill[info.columns.index("status")] = [status_tint(row[info.columns.index("status")]) for row in info.rows]
    fig = S.figure(
        go.Table(
            header=dict(values=[COLUMN_LABELS.get(c, c) for c in info.columns], fill_color="#e8ecf4", align="left"),
            cells=dict(values=columns, align="left", fill_color=fill),
        )
    )
    fig.update_layout(margin=dict(l=10, r=10, t=10, b=10), height=60 + 28 * max(1, len(info.rows)))
    return S.fit_title(fig)
