"""Plotly figures of descentlab records: pure functions records -> small info record -> figure.

Each chart is two functions, in the style of ``optuna.visualization``: ``<chart>_info(...)`` reads
records (a ``Results`` or anything with ``runs``/``metrics``/``weights`` DataFrames/dicts) and
returns a small dataclass of plain Python lists, and ``draw_<chart>(info)`` turns that record into a
``plotly.graph_objects.Figure`` built from lists (so the figure JSON holds plain numbers, never
base64 arrays). The dashboard and the report export share these functions; nothing here imports
Streamlit.

This module is the import path (``from descentlab.dashboard import figures as F``); the charts live
in one module per family, each chart's info record next to its figure:

- ``fig_groups``: runs grouped by configuration over seeds, colours, shared helpers;
- ``fig_curves``: loss, learning-rate, step-size and gradient-norm curves over steps, a schedule's α_t;
- ``fig_layers``: gradient norms per layer over steps, one panel per layer;
- ``fig_sweep``: the learning-rate sweep and its step × α heatmap;
- ``fig_landscape``: cost contours with the runs' paths, and the cost along one parameter;
- ``fig_boundary``: a classifier's decision boundary;
- ``fig_tables``: the summary table, status counts and ``COLUMN_LABELS``.
"""

from __future__ import annotations

from descentlab.analysis import NON_CONFIG_COLUMNS
from descentlab.verdicts import stability_edge

from .fig_groups import (
    PALETTE,
    OUTCOME_COLUMNS,
    color,
    entry_color,
    Group,
    config_columns,
    run_groups,
    quantiles,
    has_values,
    unstable_text,
    diverged_text,
)
from .fig_curves import (
    Curve,
    RunMark,
    DivergedMark,
    CurvesInfo,
    metric_curves_info,
    loss_curves_info,
    learning_rate_info,
    step_size_info,
    grad_norm_info,
    test_accuracy_info,
    LEGEND_MAX,
    legend_groups,
    draw_curves,
    schedule_preview,
)
from .fig_layers import (
    LayerNormsInfo,
    layer_columns,
    layer_grad_norms_info,
    draw_layer_grad_norms,
)
from .fig_sweep import (
    SweepLine,
    SweepInfo,
    sweep_info,
    status_legend,
    draw_sweep,
    HeatmapMark,
    HeatmapPanel,
    SweepHeatmapInfo,
    alpha_label,
    sweep_heatmap_info,
    draw_sweep_heatmap,
)
from .fig_landscape import (
    PathTrace,
    PathMark,
    LandscapeInfo,
    evaluate_grid,
    landscape_info,
    draw_landscape,
    CostCurveInfo,
    cost_curve_info,
    draw_cost_curve,
)
from .fig_boundary import (
    params_from_weights,
    BoundaryPanel,
    BoundaryInfo,
    decision_boundary_info,
    POINT_COLORS,
    draw_decision_boundary,
)
from .fig_tables import (
    SUMMARY_COLUMNS,
    COLUMN_LABELS,
    summary_table,
    TableInfo,
    summary_table_info,
    status_counts_table,
    status_tint,
    draw_summary_table,
)
from .status_style import STATUS_STYLE, counts_text, is_flagged, status_counts, style_of, worst_status

__all__ = [
    "schedule_preview",
    "PALETTE",
    "OUTCOME_COLUMNS",
    "has_values",
    "color",
    "entry_color",
    "Group",
    "config_columns",
    "run_groups",
    "quantiles",
    "unstable_text",
    "diverged_text",
    "Curve",
    "RunMark",
    "DivergedMark",
    "CurvesInfo",
    "metric_curves_info",
    "loss_curves_info",
    "learning_rate_info",
    "step_size_info",
    "grad_norm_info",
    "test_accuracy_info",
    "LEGEND_MAX",
    "legend_groups",
    "draw_curves",
    "LayerNormsInfo",
    "layer_columns",
    "layer_grad_norms_info",
    "draw_layer_grad_norms",
    "SweepLine",
    "SweepInfo",
    "sweep_info",
    "status_legend",
    "draw_sweep",
    "HeatmapMark",
    "HeatmapPanel",
    "SweepHeatmapInfo",
    "alpha_label",
    "sweep_heatmap_info",
    "draw_sweep_heatmap",
    "PathTrace",
    "PathMark",
    "LandscapeInfo",
    "evaluate_grid",
    "landscape_info",
    "draw_landscape",
    "CostCurveInfo",
    "cost_curve_info",
    "draw_cost_curve",
    "params_from_weights",
    "BoundaryPanel",
    "BoundaryInfo",
    "decision_boundary_info",
    "POINT_COLORS",
    "draw_decision_boundary",
    "SUMMARY_COLUMNS",
    "COLUMN_LABELS",
    "summary_table",
    "TableInfo",
    "summary_table_info",
    "status_counts_table",
    "status_tint",
    "draw_summary_table",
    "NON_CONFIG_COLUMNS",
    "stability_edge",
    "STATUS_STYLE",
    "counts_text",
    "is_flagged",
    "status_counts",
    "style_of",
    "worst_status",
]
