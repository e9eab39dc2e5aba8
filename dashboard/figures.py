"""Plotly figures of descentlab records: pure functions records -> small info record -> figure.

Each chart is two functions, in the style of ``optuna.visualization``: ``<chart>_info(...)`` reads
records (a ``Results`` or anything with ``runs``/``metrics``/``weights`` DataFrames/dicts) and
returns a small dataclass of plain Python lists, and ``draw_<chart>(info)`` turns that record into a
``plotly.graph_objects.Figure`` built from lists (so the figure JSON holds plain numbers, never
base64 arrays). The dashboard and the report export share these functions; nothing here imports
Streamlit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from descentlab.analysis import NON_CONFIG_COLUMNS
from descentlab.analysis import quantiles as analysis_quantiles
from descentlab.verdicts import stability_edge

from . import style as S
from .status_style import STATUS_STYLE, counts_text, is_flagged, status_counts, style_of, worst_status

PALETTE = S.PALETTE

# Columns of the runs table that describe a run's outcome, not its configuration (core's list, plus
# any the dashboard knew before it).
OUTCOME_COLUMNS = set(NON_CONFIG_COLUMNS) | {"run_id", "entry", "label", "rule", "schedule", "seed", "status",
                                             "diverged_at", "unstable_at", "final_loss", "best_loss",
                                             "steps_to_target", "error", "divergence_reason",
                                             "lambda_max_start", "lambda_max_flagged"}


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
    t = -0.35 + 0.8 * rank / (count - 1)          # -0.35 (darker) .. +0.45 (lighter)
    h = base.lstrip("#")
    rgb = [int(h[i:i + 2], 16) for i in (0, 2, 4)]
    mixed = [round(v + (255 - v) * t) if t > 0 else round(v * (1 + t)) for v in rgb]
    return "#" + "".join(f"{max(0, min(255, v)):02X}" for v in mixed)


def _rgba(hex_color: str, alpha: float) -> str:
    h = hex_color.lstrip("#")
    r, g, b = (int(h[i:i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"


def _plain(values) -> list:
    """Floats as a list, with NaN and ±inf as None (plotly leaves a gap; JSON stays valid)."""
    out = []
    for v in np.asarray(values, dtype=float).ravel():
        out.append(float(v) if math.isfinite(v) else None)
    return out


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
    """Columns of the runs table that hold a run's configuration (α, hyperparameters, schedule)."""
    runs = results.runs
    experiment = getattr(results, "experiment", None)
    declared: set[str] = set()
    if experiment is not None and getattr(experiment, "entries", None):
        for entry in experiment.entries:
            declared |= set(getattr(entry, "hyper", {}) or {})
    cols = []
    for c in runs.columns:
        if c in OUTCOME_COLUMNS:
            continue
        if c in ("learning_rate", "warmup_steps") or c.startswith("schedule.") or c in declared:
            cols.append(c)
        elif not declared and not c.startswith(("final_", "best_", "steps_", "wall", "n_", "train_loss", "lambda_")) \
                and pd.api.types.is_numeric_dtype(runs[c]):
            cols.append(c)  # no experiment at hand: any other numeric column is a hyperparameter
    return cols


def run_groups(results) -> list[Group]:
    """Group runs by entry and configuration; the name is the entry's label plus what varies in it."""
    runs = results.runs.sort_values("run_id")
    cols = config_columns(results)
    groups: list[Group] = []
    for entry, rows in runs.groupby("entry", sort=True):
        first = len(groups)
        varying = [c for c in cols if rows[c].nunique(dropna=False) > 1]
        label = str(rows["label"].iloc[0]) if "label" in rows else str(rows["rule"].iloc[0])
        keys = varying or []
        if keys:
            parts = rows.groupby(keys, sort=True, dropna=False)
        else:
            parts = [((), rows)]
        for key, part in parts:
            key = key if isinstance(key, tuple) else (key,)
            config = {c: part[c].iloc[0] for c in cols}
            suffix = ", ".join(f"{'α' if c == 'learning_rate' else c}={_fmt(v)}" for c, v in zip(keys, key))
            name = f"{label} ({suffix})" if suffix else label
            groups.append(Group(name=name, entry=int(entry), rule=str(part["rule"].iloc[0]), entry_label=label,
                                run_ids=[int(r) for r in part["run_id"]],
                                seeds=[int(s) for s in part["seed"]], config=config, index=len(groups)))
        mine = groups[first:]
        for rank, g in enumerate(mine):
            g.color = entry_color(g.entry, rank, len(mine))
    return groups


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


def _metric_matrix(results, metric: str, run_ids: Sequence[int], diverged: dict[int, int],
                   pad_diverged: bool) -> tuple[np.ndarray, np.ndarray]:
    """``(steps, values (T, len(run_ids)))``; a diverged run is +inf from its divergence on if padded."""
    m = results.metrics
    m = m[m["run_id"].isin(list(run_ids))][["run_id", "step", metric]]
    table = m.pivot(index="step", columns="run_id", values=metric)
    table = table.reindex(columns=list(run_ids))
    table = table.sort_index()
    values = table.to_numpy(dtype=float, copy=True)
    steps = table.index.to_numpy()
    if pad_diverged:
        for j, run_id in enumerate(run_ids):
            if run_id in diverged:
                at = diverged[run_id]
                after = steps >= at
                bad = after & ~np.isfinite(values[:, j])
                values[bad | (steps > at), j] = np.inf
    return steps, values


# ---------------------------------------------------------------------------------------------
# Curves over the step axis
# ---------------------------------------------------------------------------------------------

@dataclass
class Curve:
    """One line over the step axis: a single run's values, or the median over seeds with its IQR."""

    name: str
    x: list[int]
    y: list[float | None]
    run_ids: list[int]
    color: str
    dash: str = "solid"
    lower: list[float | None] | None = None  # 25th percentile over seeds
    upper: list[float | None] | None = None  # 75th percentile over seeds
    role: str = "train"                      # "train", "test", or a layer name
    legendgroup: str = ""
    entry: int = -1                          # the rule entry it belongs to (-1: none)
    entry_label: str = ""


@dataclass
class RunMark:
    """Where a flagged run went wrong: a diverged run's ``diverged_at`` (where the runner stopped it,
    at the last finite value) or an unstable run's ``unstable_at`` (its value there; it went on)."""

    name: str
    run_id: int
    seed: int
    step: int
    y: float | None
    text: str              # "diverged at step N" / "unstable from step N"
    color: str             # the curve's colour (the marker's colour is the status's)
    status: str = "diverged"


DivergedMark = RunMark  # the name before unstable runs were marked too


@dataclass
class CurvesInfo:
    title: str
    y_title: str
    log_y: bool
    curves: list[Curve] = field(default_factory=list)
    diverged: list[RunMark] = field(default_factory=list)
    unstable: list[RunMark] = field(default_factory=list)
    x_range: list[int] | None = None
    target: float | None = None              # a horizontal reference line (the target loss)

    @property
    def marks(self) -> list[RunMark]:
        return self.diverged + self.unstable


def _summarise(steps, values) -> tuple[list, list, list | None, list | None]:
    """Drop rows with no values; median (and IQR when several runs) across the run axis."""
    keep = ~np.all(np.isnan(values), axis=1)
    steps, values = steps[keep], values[keep]
    if values.shape[1] == 1:
        return [int(s) for s in steps], _plain(values[:, 0]), None, None
    q = quantiles(values, [0.25, 0.5, 0.75])
    return [int(s) for s in steps], _plain(q[1]), _plain(q[0]), _plain(q[2])


def _thin(x, y, lower, upper, *, max_points: int):
    """Every k-th point (and the last) when a curve has more than ``max_points`` points."""
    n = len(x)
    if n <= max_points or max_points < 2:
        return x, y, lower, upper
    stride = math.ceil(n / max_points)
    keep = list(range(0, n, stride))
    if keep[-1] != n - 1:
        keep.append(n - 1)

    def pick(values):
        return None if values is None else [values[i] for i in keep]
    return pick(x), pick(y), pick(lower), pick(upper)


def quantiles(values: np.ndarray, qs) -> np.ndarray:
    """Quantiles across runs (axis 1), +inf-safe and NaN-ignoring: ``descentlab.analysis.quantiles``."""
    return analysis_quantiles(values, qs, axis=1)


def _last_finite(steps, column, upto: int) -> float | None:
    ok = (steps <= upto) & np.isfinite(column)
    if not ok.any():
        return None
    return float(column[ok][-1])


def _value_at(steps, column, step: int, log_y: bool) -> float | None:
    """The value at ``step`` (else the last finite one before it), None if nothing is drawable."""
    column = np.where(np.isinf(column), np.nan, column)
    if log_y:
        column = np.where(column > 0, column, np.nan)
    exact = np.flatnonzero(steps == step)
    if exact.size and np.isfinite(column[exact[0]]):
        return float(column[exact[0]])
    return _last_finite(steps, column, step)


def unstable_text(step: int) -> str:
    return f"unstable from step {step}"


def diverged_text(step: int) -> str:
    return f"diverged at step {step}"


def metric_curves_info(results, metric: str, *, title: str | None = None, y_title: str | None = None,
                       log_y: bool = False, groups: Sequence[Group] | None = None,
                       role: str = "train", dash: str = "solid", mark_diverged: bool = True,
                       suffix: str = "", max_points: int = 2000) -> CurvesInfo:
    """One curve per group of ``metric`` over steps; flagged runs are marked where they went wrong.

    A diverged run stops at ``diverged_at`` (marked "diverged at step N" at its last finite value);
    an unstable run goes on to the last step and is marked "unstable from step N" at its value at
    ``unstable_at``. Curves longer than ``max_points`` are thinned to every k-th step (the last step
    always kept), so a 100 000-step run stays light in the browser; marks keep their exact step.
    """
    groups = run_groups(results) if groups is None else groups
    diverged = _diverged_steps(results)
    unstable = _unstable_steps(results)
    info = CurvesInfo(title=title or metric, y_title=y_title or metric, log_y=log_y)
    if metric not in results.metrics.columns:
        return info
    seeds_of = dict(zip(results.runs["run_id"].astype(int), results.runs["seed"].astype(int)))
    for g in groups:
        steps, values = _metric_matrix(results, metric, g.run_ids, diverged, pad_diverged=len(g.run_ids) > 1)
        if log_y:
            values = np.where(values > 0, values, np.nan)
        x, y, lower, upper = _thin(*_summarise(steps, values), max_points=max_points)
        if not x:
            continue
        info.curves.append(Curve(name=g.name + suffix, x=x, y=y, run_ids=list(g.run_ids), color=g.color,
                                 dash=dash, lower=lower, upper=upper, role=role, legendgroup=g.name,
                                 entry=g.entry, entry_label=g.entry_label or g.name))
        if not mark_diverged:
            continue
        for j, run_id in enumerate(g.run_ids):
            if run_id in diverged:
                at = diverged[run_id]
                column = np.where(np.isinf(values[:, j]), np.nan, values[:, j])
                info.diverged.append(RunMark(
                    name=g.name, run_id=run_id, seed=seeds_of.get(run_id, -1), step=at,
                    y=_last_finite(steps, column, at), text=diverged_text(at), color=g.color))
            elif run_id in unstable:
                at = unstable[run_id]
                info.unstable.append(RunMark(
                    name=g.name, run_id=run_id, seed=seeds_of.get(run_id, -1), step=at,
                    y=_value_at(steps, values[:, j], at, log_y), text=unstable_text(at), color=g.color,
                    status="unstable"))
    steps_total = _total_steps(results)
    if steps_total is not None:
        info.x_range = [0, steps_total]
    return info


def _total_steps(results) -> int | None:
    experiment = getattr(results, "experiment", None)
    if experiment is not None and getattr(experiment, "steps", None) is not None:
        return int(experiment.steps)
    if len(results.metrics):
        return int(results.metrics["step"].max())
    return None


def loss_curves_info(results, *, test: bool = True, groups: Sequence[Group] | None = None) -> CurvesInfo:
    """Training loss (solid) and, where the problem has one, test loss (dotted) on a log axis."""
    groups = run_groups(results) if groups is None else groups
    info = metric_curves_info(results, "loss", title="Loss", y_title="loss (log)", log_y=True, groups=groups)
    if test and "test_loss" in results.metrics.columns and results.metrics["test_loss"].notna().any():
        extra = metric_curves_info(results, "test_loss", log_y=True, groups=groups, role="test",
                                   dash="dot", mark_diverged=False, suffix=" (test)")
        for c in extra.curves:  # one band per rule is enough: the training loss carries it
            c.lower = c.upper = None
        info.curves += extra.curves
        info.title = "Training loss (solid) and test loss (dotted)"
    target = getattr(getattr(results, "experiment", None), "target_loss", None)
    info.target = float(target) if target is not None and target > 0 else None
    return info


def learning_rate_info(results, groups=None) -> CurvesInfo:
    return metric_curves_info(results, "learning_rate", title="Learning rate αₜ", y_title="αₜ (log)",
                              log_y=True, groups=groups, mark_diverged=False)


def step_size_info(results, groups=None) -> CurvesInfo:
    return metric_curves_info(results, "step_size", title="Step size ‖θₜ₊₁ − θₜ‖", y_title="‖Δθ‖ (log)",
                              log_y=True, groups=groups)


def grad_norm_info(results, groups=None) -> CurvesInfo:
    return metric_curves_info(results, "grad_norm", title="Gradient norm ‖∇J(θₜ)‖", y_title="‖∇J‖ (log)",
                              log_y=True, groups=groups)


def test_accuracy_info(results, groups=None) -> CurvesInfo:
    return metric_curves_info(results, "test_accuracy", title="Test accuracy", y_title="accuracy",
                              groups=groups, mark_diverged=False)


test_accuracy_info.__test__ = False  # not a pytest test despite its name


def _text_side(step: int, x_range: list[int] | None) -> str:
    """A mark's label stays inside the plot: to the right near the first step, to the left near the last."""
    if not x_range or x_range[1] <= x_range[0]:
        return "top center"
    where = (step - x_range[0]) / (x_range[1] - x_range[0])
    return "top right" if where < 0.15 else "top left" if where > 0.85 else "top center"


LEGEND_MAX = 12  # more curves than this and the legend lists rule entries, not configurations


def legend_groups(info: CurvesInfo) -> list[str]:
    """Each curve's legend group: its own, or (beyond ``LEGEND_MAX`` curves) its rule entry's and role's.

    A 27-configuration sweep then shows one legend item per rule entry, whose click shows or hides
    all its configurations; every curve still names its configuration on hover.
    """
    if len(info.curves) <= LEGEND_MAX:
        return [c.legendgroup or c.name for c in info.curves]
    return [f"entry {c.entry} ({c.role})" for c in info.curves]


def draw_curves(info: CurvesInfo) -> go.Figure:
    """Lines (with an interquartile band when a curve is a median over seeds) and a mark where each flagged
    run went wrong (in its status's style: diverged at, unstable from)."""
    fig = S.figure()
    groups = legend_groups(info)
    by_entry = len(info.curves) > LEGEND_MAX
    mark_group = {c.name: g for c, g in zip(info.curves, groups) if c.role == "train"}
    listed: set[str] = set()
    for c, group in zip(info.curves, groups):
        if by_entry and group not in listed:
            listed.add(group)
            count = groups.count(group)
            test = " (test)" if c.role == "test" else ""
            fig.add_trace(go.Scatter(x=[None], y=[None], mode="lines", meta="legend", legendgroup=group,
                                     name=f"{c.entry_label}{test}: {count} configurations (dark → light)",
                                     line=dict(color=c.color, dash=c.dash, width=2), hoverinfo="skip"))
        if c.lower is not None and c.upper is not None:
            fig.add_trace(go.Scatter(x=c.x, y=c.upper, mode="lines", line=dict(width=0), hoverinfo="skip",
                                     showlegend=False, legendgroup=group, meta="band",
                                     name=c.name + " 75%"))
            fig.add_trace(go.Scatter(x=c.x, y=c.lower, mode="lines", line=dict(width=0), fill="tonexty",
                                     fillcolor=_rgba(c.color, 0.18), hoverinfo="skip", showlegend=False,
                                     legendgroup=group, meta="band", name=c.name + " 25%"))
        fig.add_trace(go.Scatter(x=c.x, y=c.y, mode="lines", name=c.name, meta=c.role, showlegend=not by_entry,
                                 legendgroup=group, line=dict(color=c.color, dash=c.dash, width=2)))
    for d in info.marks:
        style = style_of(d.status)
        # cliponaxis off: a mark at the first or last step, or at the top of the axis, keeps its label whole
        fig.add_trace(go.Scatter(
            x=[d.step], y=[d.y], mode="markers+text", name=f"{d.name}: {d.text}", meta=d.status,
            text=[d.text], textposition=_text_side(d.step, info.x_range), textfont=dict(color=style.color),
            marker=dict(symbol=style.symbol, size=13, color=style.color, line=dict(width=2, color=d.color)),
            hovertext=[f"{d.name}, seed {d.seed}: {d.text}"], hoverinfo="text", showlegend=False,
            legendgroup=mark_group.get(d.name, d.name), cliponaxis=False))
    if info.target is not None:
        fig.add_hline(y=info.target, line=dict(color="gray", dash="dash", width=1))
        # annotations on a log axis take log10 positions (shapes take data values)
        fig.add_annotation(x=0, xref="paper", y=math.log10(info.target) if info.log_y else info.target, yref="y",
                           text=f"target {info.target:g}", showarrow=False, xanchor="left", yanchor="bottom",
                           font=dict(color="gray"))
    fig.update_layout(title=info.title, xaxis_title="step", yaxis_title=info.y_title,
                      hovermode="x unified" if not info.marks else "closest")
    if info.log_y:
        fig.update_yaxes(type="log")
    if info.x_range:
        fig.update_xaxes(range=info.x_range)
    return S.fit_title(fig)


# ---------------------------------------------------------------------------------------------
# Per-layer gradient norms: the backprop view
# ---------------------------------------------------------------------------------------------

@dataclass
class LayerNormsInfo:
    layers: list[str]
    panels: list[tuple[str, list[Curve]]]  # (group name, one curve per layer)
    diverged: list[RunMark] = field(default_factory=list)
    x_range: list[int] | None = None
    unstable: list[RunMark] = field(default_factory=list)

    @property
    def marks(self) -> list[RunMark]:
        return self.diverged + self.unstable


def layer_columns(metrics: pd.DataFrame) -> list[str]:
    cols = [c for c in metrics.columns if c.startswith("grad_norm.")]
    return sorted(cols, key=lambda c: (len(c), c))  # layer2 before layer10


def layer_grad_norms_info(results, groups: Sequence[Group] | None = None, max_panels: int = 6) -> LayerNormsInfo:
    """For each group, one curve per layer of ‖∂J/∂θ‖ per layer: how the error grows or fades going back."""
    groups = (run_groups(results) if groups is None else list(groups))[:max_panels]
    cols = layer_columns(results.metrics)
    layers = [c.split(".", 1)[1] for c in cols]
    info = LayerNormsInfo(layers=layers, panels=[])
    for g in groups:
        curves = []
        for j, (col, layer) in enumerate(zip(cols, layers)):
            sub = metric_curves_info(results, col, log_y=True, groups=[g], mark_diverged=(j == 0))
            for c in sub.curves:
                c.name, c.color, c.role, c.legendgroup = layer, color(j), layer, layer
                curves.append(c)
            info.diverged += sub.diverged
            info.unstable += sub.unstable
        info.panels.append((g.name, curves))
    info.x_range = [0, _total_steps(results)] if _total_steps(results) is not None else None
    return info


def draw_layer_grad_norms(info: LayerNormsInfo) -> go.Figure:
    n = max(1, len(info.panels))
    cols = min(n, 3)
    rows = math.ceil(n / cols)
    fig = make_subplots(figure=S.figure(), rows=rows, cols=cols, shared_xaxes=True, shared_yaxes=True,
                        subplot_titles=[name for name, _ in info.panels] or [""])
    shown = set()
    for k, (name, curves) in enumerate(info.panels):
        r, c = k // cols + 1, k % cols + 1
        for curve in curves:
            if curve.lower is not None:
                fig.add_trace(go.Scatter(x=curve.x, y=curve.upper, mode="lines", line=dict(width=0),
                                         showlegend=False, hoverinfo="skip", meta="band"), row=r, col=c)
                fig.add_trace(go.Scatter(x=curve.x, y=curve.lower, mode="lines", line=dict(width=0),
                                         fill="tonexty", fillcolor=_rgba(curve.color, 0.18), showlegend=False,
                                         hoverinfo="skip", meta="band"), row=r, col=c)
            fig.add_trace(go.Scatter(x=curve.x, y=curve.y, mode="lines", name=curve.name, meta=curve.role,
                                     legendgroup=curve.name, showlegend=curve.name not in shown,
                                     line=dict(color=curve.color, width=2)), row=r, col=c)
            shown.add(curve.name)
        for d in info.marks:
            if d.name == name:
                style = style_of(d.status)
                fig.add_trace(go.Scatter(x=[d.step], y=[d.y], mode="markers", meta=d.status,
                                         marker=dict(symbol=style.symbol, size=11, color=style.color),
                                         hovertext=[f"seed {d.seed}: {d.text}"], hoverinfo="text",
                                         showlegend=False), row=r, col=c)
    fig.update_yaxes(type="log")
    fig.update_layout(title="Per-layer gradient norms ‖∂J/∂θ‖ per layer (backprop: layer L is nearest the loss)",
                      height=300 * rows + 80, margin=dict(t=80))
    fig.update_xaxes(title_text="step", row=rows)
    return S.fit_title(fig)


# ---------------------------------------------------------------------------------------------
# Learning-rate sweep
# ---------------------------------------------------------------------------------------------

@dataclass
class SweepLine:
    """One rule configuration swept over α: median over seeds at each α, and each α's statuses."""

    name: str
    color: str
    alphas: list[float]
    final_loss: list[float | None]   # median over seeds; None where a seed blew up or failed (drawn at the top)
    best_loss: list[float | None]
    statuses: list[tuple[str, ...]]  # every seed's status at that α, in seed order
    worst: list[str]                 # the worst of them (status_style.SEVERITY): the α's marker
    flagged: list[bool]              # a seed was unstable or diverged
    failed: list[bool]               # a seed failed (an error, shown with its own marker)
    diverged: list[bool]             # a seed diverged
    diverged_at: list[int | None]    # earliest divergence step over seeds
    unstable_at: list[int | None]    # earliest unstable_at over seeds
    largest_stable: float | None     # descentlab.verdicts.stability_edge: every seed stable, below the smallest flagged α
    largest_stable_loss: float | None = None
    smallest_flagged: float | None = None  # smallest α where a seed was unstable or diverged


@dataclass
class SweepInfo:
    lines: list[SweepLine]
    ceiling: float | None            # y where flagged and failed α are drawn (above every loss shown)
    metric: str = "final_loss"

    def statuses_present(self) -> list[str]:
        """The worst statuses drawn, in the vocabulary's order (for the legend)."""
        seen = {w for line in self.lines for w in line.worst}
        return [s for s in STATUS_STYLE if s in seen] + sorted(s for s in seen if s not in STATUS_STYLE)


def _sweep_groups(results) -> list[tuple[str, int, pd.DataFrame]]:
    """Group runs by entry and every configuration column except α and seed (one line per group)."""
    runs = results.runs.sort_values("run_id")
    cols = [c for c in config_columns(results) if c != "learning_rate"]
    out = []
    for entry, rows in runs.groupby("entry", sort=True):
        varying = [c for c in cols if rows[c].nunique(dropna=False) > 1]
        label = str(rows["label"].iloc[0])
        parts = rows.groupby(varying, sort=True, dropna=False) if varying else [((), rows)]
        for key, part in parts:
            key = key if isinstance(key, tuple) else (key,)
            suffix = ", ".join(f"{c}={_fmt(v)}" for c, v in zip(varying, key))
            out.append((f"{label} ({suffix})" if suffix else label, int(entry), part))
    return out


def _earliest(part: pd.DataFrame, status: str, column: str) -> int | None:
    if column not in part:
        return None
    at = pd.to_numeric(part.loc[part["status"].eq(status), column], errors="coerce").dropna()
    return int(at.min()) if len(at) else None


def sweep_info(results) -> SweepInfo:
    """Final and best loss against α per rule, each α's statuses over seeds, largest stable α per rule.

    An α is *flagged* when a seed was unstable or diverged. The largest stable α is
    :func:`descentlab.verdicts.stability_edge`'s: every seed converged or progressing, and α below
    the smallest flagged one (so a lucky α past the edge does not count). A flagged α, and one
    where a seed failed, is drawn at the ceiling above the losses (no point on the loss line: an
    unstable run's final loss is real but says only that it blew up; the hover text keeps it).
    """
    lines = []
    finite_max = []
    sweep_groups = _sweep_groups(results)
    per_entry = {e: [k for k, (_, entry, _) in enumerate(sweep_groups) if entry == e]
                 for e in {entry for _, entry, _ in sweep_groups}}
    for k, (name, _entry, rows) in enumerate(sweep_groups):
        alphas, finals, bests, statuses, div_ats, unst_ats = [], [], [], [], [], []
        for alpha, part in rows.sort_values("seed", kind="stable").groupby("learning_rate", sort=True):
            alphas.append(float(alpha))
            seeds = tuple(str(s) for s in part["status"])
            statuses.append(seeds)
            div_ats.append(_earliest(part, "diverged", "diverged_at"))
            unst_ats.append(_earliest(part, "unstable", "unstable_at"))
            if any(is_flagged(s) or s == "failed" for s in seeds):
                finals.append(None)
                bests.append(None)
            else:
                f = float(np.median(part["final_loss"].astype(float)))
                b = float(np.median(part["best_loss"].astype(float)))
                finals.append(f if math.isfinite(f) else None)
                bests.append(b if math.isfinite(b) else None)
                finite_max += [v for v in (f, b) if math.isfinite(v)]
        largest, edge = stability_edge(alphas, statuses)
        largest = None if math.isnan(largest) else largest
        largest_loss = finals[alphas.index(largest)] if largest is not None else None
        lines.append(SweepLine(
            name=name, color=entry_color(_entry, per_entry[_entry].index(k), len(per_entry[_entry])),
            alphas=alphas, final_loss=finals, best_loss=bests, statuses=statuses,
            worst=[worst_status(s) for s in statuses],
            flagged=[any(is_flagged(x) for x in s) for s in statuses],
            failed=["failed" in s for s in statuses], diverged=["diverged" in s for s in statuses],
            diverged_at=div_ats, unstable_at=unst_ats, largest_stable=largest, largest_stable_loss=largest_loss,
            smallest_flagged=None if math.isnan(edge) else edge))
    ceiling = max(finite_max) * 3.0 if finite_max else 1.0
    return SweepInfo(lines=lines, ceiling=ceiling)


def _alpha_hover(line: SweepLine, i: int) -> str:
    text = f"{line.name}: α={line.alphas[i]:g} — {counts_text(line.statuses[i])}"
    if line.final_loss[i] is not None:
        text += f"; median final loss {line.final_loss[i]:.4g}"
    if line.unstable_at[i] is not None:
        text += f"; {unstable_text(line.unstable_at[i])}"
    if line.diverged_at[i] is not None:
        text += f"; {diverged_text(line.diverged_at[i])}"
    return text


def status_legend(fig: go.Figure, statuses: Sequence[str], **where) -> None:
    """One legend entry per status drawn (a marker without data), so the symbols explain themselves."""
    for status in statuses:
        style = style_of(status)
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name=style.label, meta="status_legend",
                                 legendgroup=f"status:{status}", hoverinfo="skip",
                                 marker=dict(symbol=style.symbol, size=10, color=style.color,
                                             line=dict(width=1, color="black"))), **where)


def draw_sweep(info: SweepInfo, *, show_best: bool = True) -> go.Figure:
    """Per rule: the loss line, one marker per α in the style of its worst status, ★ the largest stable α."""
    fig = S.figure()
    for line in info.lines:
        fig.add_trace(go.Scatter(x=line.alphas, y=line.final_loss, mode="lines", name=line.name,
                                 meta="final", legendgroup=line.name, line=dict(color=line.color, width=2)))
        if show_best:
            fig.add_trace(go.Scatter(x=line.alphas, y=line.best_loss, mode="lines", name=line.name + " (best)",
                                     meta="best", legendgroup=line.name, showlegend=False,
                                     line=dict(color=line.color, width=1, dash="dot")))
        styles = [style_of(w) for w in line.worst]
        fig.add_trace(go.Scatter(
            x=line.alphas, y=[info.ceiling if f is None else f for f in line.final_loss], mode="markers",
            meta="status", name=line.name + " status", legendgroup=line.name, showlegend=False,
            customdata=list(line.worst),
            marker=dict(symbol=[s.symbol for s in styles], color=[s.color for s in styles], size=11,
                        line=dict(width=1.5, color=line.color)),
            hovertext=[_alpha_hover(line, i) for i in range(len(line.alphas))], hoverinfo="text"))
        if line.largest_stable is not None:
            fig.add_trace(go.Scatter(
                x=[line.largest_stable], y=[line.largest_stable_loss], mode="markers+text", meta="largest_stable",
                name=line.name + " largest stable α", legendgroup=line.name, showlegend=False,
                text=[f"α={line.largest_stable:g}"], textposition="bottom center",
                marker=dict(symbol="star", size=17, color=line.color, line=dict(width=1, color="black")),
                hovertext=[f"{line.name}: largest stable α = {line.largest_stable:g} (every seed converged or "
                           "progressing, below the smallest α that blew up)"], hoverinfo="text"))
    status_legend(fig, info.statuses_present())
    fig.update_xaxes(type="log", title="learning rate α (log)")
    fig.update_yaxes(type="log", title="final loss (log); unstable, diverged, failed α at the top")
    fig.update_layout(title="Learning-rate sweep: final loss (solid), best loss (dotted), marker = worst status "
                            "over seeds, ★ largest stable α")
    return S.fit_title(fig)


@dataclass
class HeatmapMark:
    """Where the seeds of one α row went wrong: the earliest ``unstable_at`` or ``diverged_at``."""

    alpha: float
    status: str                       # "unstable" or "diverged"
    step: int
    seeds: list[int]
    text: str                         # "unstable from step N" / "diverged at step N"


@dataclass
class HeatmapPanel:
    name: str
    alphas: list[float]
    steps: list[int]
    z: list[list[float | None]]  # log10 loss, rows = α, columns = step; diverged cells = ceiling
    statuses: list[str] = field(default_factory=list)      # the worst status of each α row
    marks: list[HeatmapMark] = field(default_factory=list)


@dataclass
class SweepHeatmapInfo:
    panels: list[HeatmapPanel]
    zmin: float
    zmax: float


def alpha_label(alpha: float) -> str:
    """How an α row is named on the heatmap's category axis."""
    return f"{alpha:.3g}"


def _row_marks(alpha: float, part: pd.DataFrame) -> list[HeatmapMark]:
    marks = []
    for status, column, text in (("unstable", "unstable_at", unstable_text), ("diverged", "diverged_at", diverged_text)):
        if column not in part:
            continue
        rows = part[part["status"].eq(status)]
        at = pd.to_numeric(rows[column], errors="coerce")
        rows, at = rows[at.notna()], at[at.notna()]
        if len(rows):
            step = int(at.min())
            marks.append(HeatmapMark(alpha=alpha, status=status, step=step,
                                     seeds=[int(s) for s in rows["seed"]], text=text(step)))
    return marks


def sweep_heatmap_info(results, *, max_columns: int = 200) -> SweepHeatmapInfo:
    """log10 of the (median over seeds) loss over step × α for each rule; blown-up cells at the ceiling.

    Each α row also carries its worst status and marks where its seeds went wrong: the earliest
    ``unstable_at`` of its unstable seeds and the earliest ``diverged_at`` of its diverged ones.
    """
    diverged = _diverged_steps(results)
    panels, finite = [], []
    for name, _entry, rows in _sweep_groups(results):
        alphas, zrows, steps_kept = [], [], None
        statuses, marks = [], []
        for alpha, part in rows.groupby("learning_rate", sort=True):
            ids = [int(r) for r in part["run_id"]]
            steps, values = _metric_matrix(results, "loss", ids, diverged, pad_diverged=True)
            med = quantiles(values, [0.5])[0] if values.shape[1] > 1 else values[:, 0]
            alphas.append(float(alpha))
            zrows.append((steps, med))
            statuses.append(worst_status(str(s) for s in part["status"]))
            marks += _row_marks(float(alpha), part)
        # Align every α row on the group's full step axis (diverged rows are shorter), thinned.
        all_steps = np.unique(np.concatenate([s for s, _ in zrows])) if zrows else np.array([], int)
        stride = max(1, math.ceil(len(all_steps) / max_columns))
        cols = all_steps[::stride]
        if len(all_steps) and cols[-1] != all_steps[-1]:
            cols = np.append(cols, all_steps[-1])
        z = []
        for steps, med in zrows:
            row = pd.Series(med, index=steps).reindex(cols)
            vals = row.to_numpy(dtype=float)
            # Past the end of a diverged run the loss has blown up: show it at the ceiling (inf).
            vals = np.where(np.isnan(vals) & (cols > (steps.max() if len(steps) else -1)), np.inf, vals)
            with np.errstate(divide="ignore", invalid="ignore"):
                lz = np.where(vals > 0, np.log10(np.where(vals > 0, vals, 1.0)), np.nan)
            lz = np.where(np.isinf(vals), np.inf, lz)
            finite += list(lz[np.isfinite(lz)])
            z.append(lz)
        panels.append((name, alphas, [int(s) for s in cols], z, statuses, marks))
    if finite:
        zmin, zmax = float(np.min(finite)), float(np.max(finite))
    else:
        zmin, zmax = 0.0, 1.0
    ceiling = zmax + 0.5
    out = []
    for name, alphas, cols, z, statuses, marks in panels:
        out.append(HeatmapPanel(name=name, alphas=alphas, steps=cols,
                                z=[_plain(np.where(np.isposinf(r), ceiling, np.clip(r, None, ceiling))) for r in z],
                                statuses=statuses, marks=marks))
    return SweepHeatmapInfo(panels=out, zmin=zmin, zmax=ceiling)


def draw_sweep_heatmap(info: SweepHeatmapInfo) -> go.Figure:
    n = max(1, len(info.panels))
    fig = make_subplots(figure=S.figure(), rows=n, cols=1, shared_xaxes=True, vertical_spacing=0.08 if n > 1 else 0.02,
                        subplot_titles=[p.name for p in info.panels] or [""])
    shown = set()
    for k, p in enumerate(info.panels):
        fig.add_trace(go.Heatmap(
            x=p.steps, y=[alpha_label(a) for a in p.alphas], z=p.z, zmin=info.zmin, zmax=info.zmax,
            colorscale="Viridis", showscale=(k == 0), name=p.name,
            colorbar=dict(title="log10 loss<br>(top = diverged)"),
            hovertemplate="step %{x}<br>α %{y}<br>log10 loss %{z:.3f}<extra>" + p.name + "</extra>"),
            row=k + 1, col=1)
        for status in ("unstable", "diverged"):
            marks = [m for m in p.marks if m.status == status]
            if not marks:
                continue
            style = style_of(status)
            fig.add_trace(go.Scatter(
                x=[m.step for m in marks], y=[alpha_label(m.alpha) for m in marks], mode="markers", meta=status,
                name=style.label, legendgroup=f"status:{status}", showlegend=status not in shown,
                marker=dict(symbol=style.symbol, size=11, color=style.color, line=dict(width=1, color="white")),
                hovertext=[f"{p.name}, α={m.alpha:g}: {m.text} (seed{'s' if len(m.seeds) > 1 else ''} "
                           f"{', '.join(str(s) for s in m.seeds)})" for m in marks], hoverinfo="text"),
                row=k + 1, col=1)
            shown.add(status)
        fig.update_yaxes(title_text="α", type="category", row=k + 1, col=1)
    fig.update_xaxes(title_text="step", row=n, col=1)
    fig.update_layout(title=f"Loss over step × α (bright = blown up; {STATUS_STYLE['unstable'].glyph} unstable from, "
                            f"{STATUS_STYLE['diverged'].glyph} diverged at that step)",
                      height=max(320, 260 * n), margin=dict(l=70, t=70),
                      legend=dict(orientation="h", y=-0.15))
    return S.fit_title(fig)


# ---------------------------------------------------------------------------------------------
# Landscapes: contours with each run's path, and a one-parameter cost curve
# ---------------------------------------------------------------------------------------------

@dataclass
class PathTrace:
    name: str
    run_id: int
    x: list[float | None]
    y: list[float | None]
    color: str
    diverged_at: int | None = None
    status: str = ""
    unstable_at: int | None = None


@dataclass
class PathMark:
    """Where a flagged run's path went wrong, drawn once the path has reached that step.

    Unstable: the point θ at ``unstable_at``. Diverged: the last finite point up to ``diverged_at``.
    ``x``/``y`` are the point's coordinates in the figure (θ₁, θ₂; or θ and its cost on a cost curve).
    """

    name: str
    run_id: int
    status: str
    step: int
    x: float
    y: float
    text: str


@dataclass
class LandscapeInfo:
    x: list[float]
    y: list[float]
    z: list[list[float | None]]   # rows follow y, columns follow x
    log_z: bool
    paths: list[PathTrace]
    upto_step: int
    x_title: str = "θ₁"
    y_title: str = "θ₂"
    minima: list[list[float]] = field(default_factory=list)
    marks: list[PathMark] = field(default_factory=list)


def _flag_point(points: np.ndarray, status: str, step: int | None, upto: int) -> tuple[int, np.ndarray] | None:
    """(step, point) to mark on a path ``points (steps + 1, d)`` drawn up to ``upto``, or None.

    Unstable: the point at ``step`` once ``upto`` reached it. Diverged: the last finite point up to
    ``step`` (the blown-up iterate itself may not be finite), once ``upto`` reached ``step``.
    """
    if step is None or step > upto or step >= len(points):
        return None
    if status == "unstable":
        point = points[step]
        return (step, point) if np.all(np.isfinite(point)) else None
    ok = np.flatnonzero(np.all(np.isfinite(points[:step + 1]), axis=1))
    return (int(ok[-1]), points[ok[-1]]) if ok.size else None


def _flag_text(status: str, step: int) -> str:
    return unstable_text(step) if status == "unstable" else diverged_text(step)


def _bounds_of(instance, paths: np.ndarray | None) -> tuple[float, float, float, float]:
    b = getattr(instance, "bounds", None)
    if b is not None:
        arr = np.asarray(b, dtype=float).ravel()
        if arr.size == 4:  # ((xmin, xmax), (ymin, ymax)) or (xmin, xmax, ymin, ymax)
            return float(arr[0]), float(arr[1]), float(arr[2]), float(arr[3])
    if paths is not None:
        pts = paths.reshape(-1, paths.shape[-1])
        pts = pts[np.all(np.isfinite(pts), axis=1)]
        if len(pts):
            # Ignore the far end of paths that flew off: a robust window around most points.
            lo = np.quantile(pts, 0.02, axis=0)
            hi = np.quantile(pts, 0.98, axis=0)
            span = np.maximum(hi - lo, 1e-3)
            lo, hi = lo - 0.3 * span, hi + 0.3 * span
            if pts.shape[1] == 1:
                return float(lo[0]), float(hi[0]), 0.0, 0.0
            return float(lo[0]), float(hi[0]), float(lo[1]), float(hi[1])
    return -2.0, 2.0, -2.0, 2.0


def evaluate_grid(instance, points: np.ndarray) -> np.ndarray:
    """Cost at many points at once: each point is one "run" of the problem (the run axis)."""
    value = getattr(instance, "value", None)
    with np.errstate(all="ignore"):
        out = value(points) if callable(value) else instance.loss(np.ascontiguousarray(points))
    return np.asarray(out, dtype=float).reshape(-1)


def landscape_info(results, instance, *, grid: int = 80, upto_step: int | None = None,
                   run_ids: Sequence[int] | None = None, log_z: bool | None = None) -> LandscapeInfo:
    """Contours of the cost over the plot window and each run's path θ_0 … θ_k (from weights["path"])."""
    paths = np.asarray(results.weights["path"], dtype=float) if "path" in results.weights else None
    xmin, xmax, ymin, ymax = _bounds_of(instance, paths)
    xs = np.linspace(xmin, xmax, grid)
    ys = np.linspace(ymin, ymax, grid)
    gx, gy = np.meshgrid(xs, ys)
    z = evaluate_grid(instance, np.column_stack([gx.ravel(), gy.ravel()])).reshape(grid, grid)
    finite = z[np.isfinite(z)]
    if log_z is None:
        log_z = bool(finite.size) and float(finite.min()) >= 0 and float(finite.max()) > 50 * max(float(finite.min()), 1e-12)
    if log_z:
        with np.errstate(divide="ignore", invalid="ignore"):
            z = np.log10(z - (finite.min() if finite.size else 0.0) + 1e-3)
    total = paths.shape[1] - 1 if paths is not None else 0
    k = total if upto_step is None else max(0, min(int(upto_step), total))
    diverged = _diverged_steps(results)
    unstable = _unstable_steps(results)
    status_of = dict(zip(results.runs["run_id"].astype(int), results.runs["status"].astype(str)))
    traces, marks = [], []
    if paths is not None:
        groups = run_groups(results)
        name_of = {r: g.name + (f" seed {s}" if len(g.run_ids) > 1 else "")
                   for g in groups for r, s in zip(g.run_ids, g.seeds)}
        color_of = {r: g.color for g in groups for r in g.run_ids}
        for run_id in (run_ids if run_ids is not None else sorted(name_of)):
            p = paths[run_id, :k + 1]
            name = name_of.get(run_id, str(run_id))
            traces.append(PathTrace(name=name, run_id=int(run_id),
                                    x=_plain(p[:, 0]), y=_plain(p[:, 1]), color=color_of.get(run_id, color(run_id)),
                                    diverged_at=diverged.get(run_id), status=status_of.get(int(run_id), ""),
                                    unstable_at=unstable.get(run_id)))
            for status, at in (("unstable", unstable.get(run_id)), ("diverged", diverged.get(run_id))):
                found = _flag_point(paths[run_id], status, at, k)
                if found is not None:
                    step, point = found
                    marks.append(PathMark(name=name, run_id=int(run_id), status=status, step=step,
                                          x=float(point[0]), y=float(point[1]), text=_flag_text(status, at)))
    names = list(getattr(instance, "axis_names", ("θ₁", "θ₂")))
    return LandscapeInfo(x=_plain(xs), y=_plain(ys), z=[_plain(row) for row in z], log_z=bool(log_z),
                         paths=traces, upto_step=k, x_title=str(names[0]), y_title=str(names[1]),
                         minima=_minima(instance), marks=marks)


def _add_path_marks(fig: go.Figure, marks: Sequence[PathMark]) -> None:
    """One marker trace per status among ``marks`` (meta = the status), labelled with its step."""
    for status in dict.fromkeys(m.status for m in marks):
        chosen = [m for m in marks if m.status == status]
        style = style_of(status)
        fig.add_trace(go.Scatter(
            x=[m.x for m in chosen], y=[m.y for m in chosen], mode="markers+text", meta=status, name=style.label,
            legendgroup=f"status:{status}", text=[m.text for m in chosen], textposition="top right",
            textfont=dict(color=style.color),
            marker=dict(symbol=style.symbol, size=14, color=style.color, line=dict(width=1.5, color="white")),
            hovertext=[f"{m.name}: {m.text}" for m in chosen], hoverinfo="text"))


def _minima(instance) -> list[list[float]]:
    """Known minima of a landscape (``minima``, or a single ``minimum``), as plain lists."""
    minima = getattr(instance, "minima", None)
    if minima is None and getattr(instance, "minimum", None) is not None:
        minima = [instance.minimum]
    return [[float(v) for v in np.ravel(m)] for m in (minima or [])]


def _path_status_text(p: PathTrace) -> str:
    if p.diverged_at is not None:
        return f" ({diverged_text(p.diverged_at)})"
    if p.unstable_at is not None:
        return f" ({unstable_text(p.unstable_at)})"
    return f" ({p.status})" if p.status else ""


def _current_point(p: PathTrace, k: int) -> tuple[list, list]:
    pts = [(x, y) for x, y in zip(p.x[:k + 1], p.y[:k + 1]) if x is not None and y is not None]
    return ([pts[-1][0]], [pts[-1][1]]) if pts else ([None], [None])


def draw_landscape(info: LandscapeInfo, *, animate: bool = False, max_frames: int = 60) -> go.Figure:
    """Contours, paths and current points; ``animate`` adds ▶ frames that walk the paths step by step."""
    fig = S.figure()
    fig.add_trace(go.Contour(x=info.x, y=info.y, z=info.z, colorscale="Blues", reversescale=True, ncontours=30,
                             contours=dict(coloring="heatmap"), line=dict(width=0.5), meta="surface",
                             colorbar=dict(title="log10 cost" if info.log_z else "cost"), name="cost",
                             hovertemplate="θ₁ %{x:.3g}<br>θ₂ %{y:.3g}<br>%{z:.3g}<extra></extra>"))
    moving = []  # indices of the traces a frame redraws
    for p in info.paths:
        moving.append(len(fig.data))
        fig.add_trace(go.Scatter(x=p.x, y=p.y, mode="lines+markers", name=p.name, meta="path",
                                 line=dict(color=p.color, width=2), marker=dict(size=4, color=p.color)))
        cx, cy = _current_point(p, info.upto_step)
        moving.append(len(fig.data))
        fig.add_trace(go.Scatter(x=cx, y=cy, mode="markers", showlegend=False, meta="current",
                                 marker=dict(size=11, color=p.color, line=dict(width=2, color="white")),
                                 hovertext=[f"{p.name} at step {info.upto_step}" + _path_status_text(p)],
                                 hoverinfo="text"))
    _add_path_marks(fig, info.marks)
    if info.minima:
        fig.add_trace(go.Scatter(x=[m[0] for m in info.minima], y=[m[1] for m in info.minima], mode="markers",
                                 name="minimum" if len(info.minima) == 1 else "minima",
                                 meta="minimum", marker=dict(symbol="star", size=14, color="gold",
                                                             line=dict(width=1, color="black"))))
    # Equal scale on both axes: only then is a gradient step drawn perpendicular to the contour it
    # leaves (the plot area shrinks to fit the window instead of stretching one axis).
    fig.update_xaxes(range=[info.x[0], info.x[-1]], title=info.x_title, constrain="domain")
    fig.update_yaxes(range=[info.y[0], info.y[-1]], title=info.y_title, scaleanchor="x", scaleratio=1,
                     constrain="domain")
    fig.update_layout(title=f"Cost surface and paths up to step {info.upto_step}", height=600,
                      legend=dict(y=-0.15))
    if animate and info.upto_step > 0:
        stride = max(1, math.ceil(info.upto_step / max_frames))
        steps = list(range(0, info.upto_step + 1, stride))
        if steps[-1] != info.upto_step:
            steps.append(info.upto_step)
        frames = []
        for k in steps:
            data = []
            for p in info.paths:
                data.append(go.Scatter(x=p.x[:k + 1], y=p.y[:k + 1]))
                cx, cy = _current_point(p, k)
                data.append(go.Scatter(x=cx, y=cy))
            frames.append(go.Frame(data=data, traces=moving, name=str(k)))
        fig.frames = frames
        # redraw=True: without it plotly drops the contour's fill while it animates the paths
        play = dict(frame=dict(duration=120, redraw=True), transition=dict(duration=0), fromcurrent=False,
                    mode="immediate")
        fig.update_layout(
            updatemenus=[dict(type="buttons", direction="left", x=0.0, y=-0.08, xanchor="left", yanchor="top",
                              showactive=False, buttons=[
                                  dict(label="▶ play", method="animate", args=[None, play]),
                                  dict(label="❚❚", method="animate",
                                       args=[[None], dict(frame=dict(duration=0, redraw=True), mode="immediate")])])],
            sliders=[dict(active=len(steps) - 1, y=-0.06, x=0.2, len=0.8, currentvalue=dict(prefix="step "),
                          steps=[dict(label=str(k), method="animate",
                                      args=[[str(k)], dict(frame=dict(duration=0, redraw=True), mode="immediate")])
                                 for k in steps])],
            legend=dict(orientation="h", y=-0.3), height=700)
    return S.fit_title(fig)


@dataclass
class CostCurveInfo:
    x: list[float]
    y: list[float | None]
    steps: list[tuple[str, str, list[float | None], list[float | None]]]  # (name, color, θₜ, J(θₜ))
    axis: int
    fixed: list[float] | None      # the other coordinate(s), held fixed
    upto_step: int
    log_y: bool = False
    axis_name: str = "θ"
    other_names: list[str] = field(default_factory=list)
    marks: list[PathMark] = field(default_factory=list)   # x = θ along the axis, y = its cost


def cost_curve_info(results, instance, *, axis: int = 0, upto_step: int | None = None,
                    run_ids: Sequence[int] | None = None, grid: int = 200, fixed: Sequence[float] | None = None
                    ) -> CostCurveInfo:
    """The cost along one parameter (others held at ``fixed``: default the minimum, else run 0's end),
    with each run's iterates projected onto that line."""
    paths = np.asarray(results.weights["path"], dtype=float)
    n_params = paths.shape[-1]
    total = paths.shape[1] - 1
    k = total if upto_step is None else max(0, min(int(upto_step), total))
    if fixed is None and n_params > 1:
        minima = _minima(instance)
        if minima:
            fixed = [float(v) for i, v in enumerate(minima[0]) if i != axis]
        else:
            end = paths[0][np.all(np.isfinite(paths[0]), axis=1)][-1]
            fixed = [float(v) for i, v in enumerate(end) if i != axis]
    fixed = list(fixed or [])
    bounds = _bounds_of(instance, paths)
    lo, hi = (bounds[0], bounds[1]) if axis == 0 else (bounds[2], bounds[3])
    xs = np.linspace(lo, hi, grid)

    def on_line(values):
        pts = np.empty((len(values), n_params))
        others = iter(fixed)
        for i in range(n_params):
            pts[:, i] = values if i == axis else next(others)
        return pts

    ys = evaluate_grid(instance, on_line(xs))
    groups = run_groups(results)
    name_of = {r: (g.name, g.color) for g in groups for r in g.run_ids}
    flagged = {"unstable": _unstable_steps(results), "diverged": _diverged_steps(results)}
    steps, marks = [], []
    for run_id in (run_ids if run_ids is not None else sorted(name_of)):
        theta = paths[run_id, :k + 1, axis]
        ok = np.isfinite(theta)
        cost = np.full(len(theta), np.nan)
        if ok.any():
            cost[ok] = evaluate_grid(instance, on_line(theta[ok]))
        name, c = name_of.get(run_id, (str(run_id), color(run_id)))
        steps.append((name, c, _plain(theta), _plain(cost)))
        for status, at_of in flagged.items():
            found = _flag_point(np.column_stack([theta, cost]), status, at_of.get(run_id), k)
            if found is not None:
                step, (t, j) = found
                marks.append(PathMark(name=name, run_id=int(run_id), status=status, step=step, x=float(t),
                                      y=float(j), text=_flag_text(status, at_of[run_id])))
    names = list(getattr(instance, "axis_names", [f"θ{i + 1}" for i in range(n_params)]))
    return CostCurveInfo(x=_plain(xs), y=_plain(ys), steps=steps, axis=axis, fixed=fixed, upto_step=k,
                         axis_name=str(names[axis]), other_names=[str(n) for i, n in enumerate(names) if i != axis],
                         marks=marks)


def draw_cost_curve(info: CostCurveInfo) -> go.Figure:
    fig = S.figure()
    fig.add_trace(go.Scatter(x=info.x, y=info.y, mode="lines", name="cost", meta="curve",
                             line=dict(color="black", width=2)))
    for name, c, theta, cost in info.steps:
        fig.add_trace(go.Scatter(x=theta, y=cost, mode="lines+markers", name=name, meta="steps",
                                 line=dict(color=c, width=1), marker=dict(size=6, color=c)))
    _add_path_marks(fig, info.marks)
    fixed = ", ".join(f"{n} = {v:.3g}" for n, v in zip(info.other_names, info.fixed or []))
    fig.update_layout(title=f"Cost along {info.axis_name}" + (f" ({fixed} held fixed)" if fixed else "")
                      + f", steps up to {info.upto_step}", xaxis_title=info.axis_name, yaxis_title="cost")
    ys = [v for v in info.y if v is not None]
    if ys:  # keep the curve in view even when a path flies off
        span = max(ys) - min(ys)
        fig.update_yaxes(range=[min(ys) - 0.05 * span, max(ys) + 0.05 * span])
        fig.update_xaxes(range=[info.x[0], info.x[-1]])
    return S.fit_title(fig)


# ---------------------------------------------------------------------------------------------
# Decision boundary over the input plane
# ---------------------------------------------------------------------------------------------

def params_from_weights(results, instance, which: str = "final", run_ids: Sequence[int] | None = None) -> np.ndarray:
    """``(R, P)`` parameters rebuilt from the stored ``"<which>.<tensor>"`` arrays (run_id order)."""
    layout = instance.layout
    tensors = {e.name: np.asarray(results.weights[f"{which}.{e.name}"]) for e in layout.entries}
    if run_ids is not None:
        tensors = {k: v[list(run_ids)] for k, v in tensors.items()}
    return layout.flatten(tensors)


@dataclass
class BoundaryPanel:
    name: str
    z: list[list[float | None]]   # score at each grid point; rows follow y
    step: int | None


@dataclass
class BoundaryInfo:
    x: list[float]
    y: list[float]
    panels: list[BoundaryPanel]
    points_x: list[float]
    points_y: list[float]
    points_class: list[int]
    class_names: list[str]
    score: str                     # what z is: "P(class 1)", "predicted class" or "output"
    zmin: float
    zmax: float


def _score(instance, outputs: np.ndarray) -> tuple[np.ndarray, str, float, float]:
    loss_name = getattr(getattr(getattr(instance, "model", None), "loss", None), "name", "")
    k = outputs.shape[-1]
    with np.errstate(all="ignore"):
        if k == 1 and ("bce" in loss_name or "logistic" in loss_name or "binary" in loss_name):
            z = outputs[..., 0]
            e = np.exp(-np.abs(z))
            return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e)), "P(class 1)", 0.0, 1.0
        if k > 1:
            return np.argmax(outputs, axis=-1).astype(float), "predicted class", 0.0, float(k - 1)
    out = outputs[..., 0]
    finite = out[np.isfinite(out)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    return out, "model output", lo, hi


def decision_boundary_info(instance, panels: Sequence[tuple[str, np.ndarray]], *, step: int | None = None,
                           grid: int = 80, margin: float = 0.15) -> BoundaryInfo:
    """The model's prediction over the training inputs' plane for each ``(name, params (P,))`` panel."""
    data = instance.dataset
    x_all = np.concatenate([data.x_train, data.x_test]) if len(data.x_test) else data.x_train
    lo, hi = x_all[:, :2].min(axis=0), x_all[:, :2].max(axis=0)
    span = hi - lo
    xs = np.linspace(lo[0] - margin * span[0], hi[0] + margin * span[0], grid)
    ys = np.linspace(lo[1] - margin * span[1], hi[1] + margin * span[1], grid)
    gx, gy = np.meshgrid(xs, ys)
    inputs = np.column_stack([gx.ravel(), gy.ravel()])
    out_panels = []
    zmin, zmax, label = 0.0, 1.0, "output"
    if panels:
        params = np.stack([np.asarray(p, dtype=float).ravel() for _, p in panels])
        scores, label, zmin, zmax = _score(instance, np.asarray(instance.predict(params, inputs)))
        for (name, _), s in zip(panels, scores):
            out_panels.append(BoundaryPanel(name=name, z=[_plain(r) for r in s.reshape(grid, grid)], step=step))
    y = data.y_train
    classes = (np.argmax(y, axis=1) if y.shape[1] > 1 else (y[:, 0] > 0.5).astype(int))
    names = list(data.class_names) or [str(c) for c in range(max(2, y.shape[1]))]
    return BoundaryInfo(x=_plain(xs), y=_plain(ys), panels=out_panels, points_x=_plain(data.x_train[:, 0]),
                        points_y=_plain(data.x_train[:, 1]), points_class=[int(c) for c in classes],
                        class_names=names, score=label, zmin=zmin, zmax=zmax)


POINT_COLORS = ["#1f3b9a", "#c0392b", "#1e8449", "#7d3c98", "#b9770e", "#117a8b", "#6e2c00", "#5d6d7e"]


def draw_decision_boundary(info: BoundaryInfo) -> go.Figure:
    n = max(1, len(info.panels))
    cols = min(n, 3)
    rows = math.ceil(n / cols)
    fig = make_subplots(figure=S.figure(), rows=rows, cols=cols, shared_xaxes=True, shared_yaxes=True,
                        horizontal_spacing=0.04, vertical_spacing=0.1,
                        subplot_titles=[p.name for p in info.panels] or [""])
    point_colors = POINT_COLORS
    discrete = info.score == "predicted class"
    if discrete:  # one flat colour per class, the colour of that class's points (lightened)
        n = int(round(info.zmax)) + 1
        scale, zmin, zmax = [], -0.5, n - 0.5
        for cls in range(n):
            tint = _rgba(point_colors[cls % len(point_colors)], 0.45)
            scale += [[cls / n, tint], [(cls + 1) / n, tint]]
    else:
        scale, zmin, zmax = "RdBu", info.zmin, info.zmax
    for k, p in enumerate(info.panels):
        r, c = k // cols + 1, k % cols + 1
        fig.add_trace(go.Heatmap(x=info.x, y=info.y, z=p.z, zmin=zmin, zmax=zmax, colorscale=scale,
                                 reversescale=not discrete, opacity=1.0 if discrete else 0.75, showscale=(k == 0),
                                 meta="prediction", zsmooth=False if discrete else "best",
                                 colorbar=dict(title=info.score, tickvals=list(range(n)) if discrete else None),
                                 name=p.name,
                                 hovertemplate="x₁ %{x:.2f}<br>x₂ %{y:.2f}<br>%{z:.2f}<extra></extra>"),
                      row=r, col=c)
        for cls in sorted(set(info.points_class)):
            idx = [i for i, v in enumerate(info.points_class) if v == cls]
            fig.add_trace(go.Scatter(
                x=[info.points_x[i] for i in idx], y=[info.points_y[i] for i in idx], mode="markers",
                name=info.class_names[cls] if cls < len(info.class_names) else str(cls), meta="points",
                legendgroup=f"class{cls}", showlegend=(k == 0),
                marker=dict(size=6, color=point_colors[cls % len(point_colors)], line=dict(width=0.8, color="black"))),
                row=r, col=c)
    step = info.panels[0].step if info.panels else None
    fig.update_layout(title="Decision boundary" + (f" at step {step}" if step is not None else " (final weights)"),
                      height=380 * rows + 90, margin=dict(l=50, t=70),
                      legend=dict(orientation="h", y=-0.12, title="training points: class "))
    return S.fit_title(fig)


# ---------------------------------------------------------------------------------------------
# Summary table
# ---------------------------------------------------------------------------------------------

SUMMARY_COLUMNS = ["run_id", "label", "rule", "schedule", "learning_rate", "seed", "status", "final_loss",
                   "best_loss", "steps_to_target", "diverged_at", "unstable_at", "lambda_max_start",
                   "lambda_max_flagged", "divergence_reason"]

# Reader-facing names of the runs table's outcome columns (the dashboard's tables and the report).
COLUMN_LABELS = {"learning_rate": "α", "unstable_at": "unstable from step", "diverged_at": "diverged at step",
                 "divergence_reason": "why it blew up", "lambda_max_start": "λₘₐₓ at start",
                 "lambda_max_flagged": "λₘₐₓ when flagged"}


def summary_table(results) -> pd.DataFrame:
    """One row per run: configuration, status, final and best loss, steps to target, where it went wrong.

    ``unstable_at``, ``lambda_max_start`` and ``lambda_max_flagged`` appear when the records have
    them (older result folders do not).
    """
    runs = results.runs.sort_values("run_id")
    cols = [c for c in SUMMARY_COLUMNS if c in runs.columns]
    hyper = [c for c in config_columns(results) if c not in cols and runs[c].notna().any()
             and (c != "warmup_steps" or runs[c].fillna(0).ne(0).any())]
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
    return pd.DataFrame({"status": list(counts), "runs": list(counts.values()),
                         "meaning": [style_of(s).help for s in counts]}, columns=["status", "runs", "meaning"])


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
    fig = S.figure(go.Table(header=dict(values=[COLUMN_LABELS.get(c, c) for c in info.columns],
                                         fill_color="#e8ecf4", align="left"),
                             cells=dict(values=columns, align="left", fill_color=fill)))
    fig.update_layout(margin=dict(l=10, r=10, t=10, b=10), height=60 + 28 * max(1, len(info.rows)))
    return S.fit_title(fig)
