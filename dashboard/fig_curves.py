"""Curves over the step axis (loss, α, step size, gradient norm, a schedule's α_t): data -> info -> figure."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import plotly.graph_objects as go

from . import style as S
from .fig_groups import (
    Group,
    _diverged_steps,
    _drawn,
    _metric_matrix,
    _plain,
    _rgba,
    _unstable_steps,
    diverged_text,
    has_values,
    quantiles,
    run_groups,
    unstable_text,
)
from .status_style import style_of


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
    role: str = "train"  # "train", "test", or a layer name
    legendgroup: str = ""
    entry: int = -1  # the rule entry it belongs to (-1: none)
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
    text: str  # "diverged at step N" / "unstable from step N"
    color: str  # the curve's colour (the marker's colour is the status's)
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
    target: float | None = None  # a horizontal reference line (the target loss)

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
    """At most ``max_points`` points of a longer curve, keeping its shape: the first and last points
    and, in each of ``max_points // 2 - 1`` equal buckets of steps, the points where the drawn values
    (median and band) are lowest and highest, so a divergence spike or a sudden drop is never
    thinned away. Kept points keep their exact values."""
    n = len(x)
    if n <= max_points or max_points < 4:
        return x, y, lower, upper
    columns = [
        np.array([np.nan if v is None else v for v in values], dtype=float)
        for values in (y, lower, upper)
        if values is not None
    ]
    stacked = np.vstack(columns)
    finite = np.isfinite(stacked)
    high = np.where(finite, stacked, -np.inf).max(axis=0)  # per step, over median and band
    low = np.where(finite, stacked, np.inf).min(axis=0)
    buckets = max_points // 2 - 1
    edges = np.linspace(1, n - 1, buckets + 1).round().astype(int)  # the first and last are kept apart
    lo, hi = edges[:-1], edges[1:]
    lo, hi = lo[hi > lo], hi[hi > lo]
    # All buckets at once (a loop over them cost ~10 numpy calls each, more than the rest of a chart at
    # 2000 points): each bucket's steps as one row, padded past its end with the value argmax/argmin
    # never picks, so each row's first highest and lowest step are the bucket's own.
    offsets = np.arange(int((hi - lo).max()) if len(lo) else 0)
    inside = offsets[None, :] < (hi - lo)[:, None]
    steps = np.where(inside, lo[:, None] + offsets[None, :], lo[:, None])
    has_finite = (finite.any(axis=0)[steps] & inside).any(axis=1)
    top = lo + np.argmax(np.where(inside, high[steps], -np.inf), axis=1)
    bottom = lo + np.argmin(np.where(inside, low[steps], np.inf), axis=1)
    keep = {0, n - 1}
    keep.update(lo[~has_finite].tolist())  # a gap stays a gap: one point of it
    keep.update(top[has_finite].tolist())
    keep.update(bottom[has_finite].tolist())
    keep = sorted(keep)

    def pick(values):
        return None if values is None else [values[i] for i in keep]

    return pick(x), pick(y), pick(lower), pick(upper)


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


def metric_curves_info(
    results,
    metric: str,
    *,
    title: str | None = None,
    y_title: str | None = None,
    log_y: bool = False,
    groups: Sequence[Group] | None = None,
    role: str = "train",
    dash: str = "solid",
    mark_diverged: bool = True,
    suffix: str = "",
    max_points: int = 2000,
) -> CurvesInfo:
    """One curve per group of ``metric`` over steps; flagged runs are marked where they went wrong.

    A diverged run stops at ``diverged_at`` (marked "diverged at step N" at its last finite value);
    an unstable run goes on to the last step and is marked "unstable from step N" at its value at
    ``unstable_at``. Curves longer than ``max_points`` are decimated by :func:`_thin` (first and
    last step, and each bucket's lowest and highest values kept), so a 100 000-step run stays light
    in the browser without losing a spike; marks keep their exact step.
    """
    groups = run_groups(results) if groups is None else groups
    diverged = _diverged_steps(results)
    unstable = _unstable_steps(results)
    info = CurvesInfo(title=title or metric, y_title=y_title or metric, log_y=log_y)
    if metric not in results.metric_names:
        return info
    seeds_of = dict(zip(results.runs["run_id"].astype(int), results.runs["seed"].astype(int)))
    for g in groups:
        steps, values = _metric_matrix(results, metric, g.run_ids, diverged, pad_diverged=len(g.run_ids) > 1)
        if log_y:
            values = np.where(values > 0, values, np.nan)
        x, y, lower, upper = _thin(*_summarise(steps, values), max_points=max_points)
        if not x:
            continue
        info.curves.append(
            Curve(
                name=g.name + suffix,
                x=x,
                y=y,
                run_ids=list(g.run_ids),
                color=g.color,
                dash=dash,
                lower=lower,
                upper=upper,
                role=role,
                legendgroup=g.name,
                entry=g.entry,
                entry_label=g.entry_label or g.name,
            )
        )
        if not mark_diverged:
            continue
        for j, run_id in enumerate(g.run_ids):
            if run_id in diverged:
                at = diverged[run_id]
                column = np.where(np.isinf(values[:, j]), np.nan, values[:, j])
                info.diverged.append(
                    RunMark(
                        name=g.name,
                        run_id=run_id,
                        seed=seeds_of.get(run_id, -1),
                        step=at,
                        y=_last_finite(steps, column, at),
                        text=diverged_text(at),
                        color=g.color,
                    )
                )
            elif run_id in unstable:
                at = unstable[run_id]
                info.unstable.append(
                    RunMark(
                        name=g.name,
                        run_id=run_id,
                        seed=seeds_of.get(run_id, -1),
                        step=at,
                        y=_value_at(steps, values[:, j], at, log_y),
                        text=unstable_text(at),
                        color=g.color,
                        status="unstable",
                    )
                )
    steps_total = _total_steps(results)
    if steps_total is not None:
        info.x_range = [0, steps_total]
    return info


def _total_steps(results) -> int | None:
    experiment = getattr(results, "experiment", None)
    if experiment is not None and getattr(experiment, "steps", None) is not None:
        return int(experiment.steps)
    last = results.last_step
    return last if last >= 0 else None


def loss_curves_info(results, *, test: bool = True, groups: Sequence[Group] | None = None) -> CurvesInfo:
    """Training loss (solid) and, where the problem has one, test loss (dotted) on a log axis."""
    groups = run_groups(results) if groups is None else groups
    info = metric_curves_info(results, "loss", title="Loss", y_title="loss (log)", log_y=True, groups=groups)
    if test and has_values(results, "test_loss"):
        extra = metric_curves_info(
            results,
            "test_loss",
            log_y=True,
            groups=groups,
            role="test",
            dash="dot",
            mark_diverged=False,
            suffix=" (test)",
        )
        for c in extra.curves:  # one band per rule is enough: the training loss carries it
            c.lower = c.upper = None
        info.curves += extra.curves
        info.title = "Training loss (solid) and test loss (dotted)"
    target = getattr(getattr(results, "experiment", None), "target_loss", None)
    info.target = float(target) if target is not None and target > 0 else None
    return info


def learning_rate_info(results, groups=None) -> CurvesInfo:
    return metric_curves_info(
        results,
        "learning_rate",
        title="Learning rate αₜ",
        y_title="αₜ (log)",
        log_y=True,
        groups=groups,
        mark_diverged=False,
    )


def schedule_preview(
    schedule, learning_rate: float, hyper: dict, steps: int, warmup_steps: int = 0, lookup=None
) -> go.Figure:
    """α_t of one schedule over ``steps`` steps, drawn before anything runs; ``hyper`` holds one value per
    hyperparameter (a joining schedule's ``schedules`` and ``milestones`` as in its table). A stateful
    schedule's α_t follows a run's losses: the figure then has no line and its title says so in one line."""
    from descentlab.schedule_values import preview

    values, note = preview(schedule, [float(learning_rate)], hyper, int(steps), warmup_steps, lookup=lookup)
    fig = S.figure(
        title=dict(text=note or f"α_t of {schedule.name}"),
        xaxis=dict(title=dict(text="step t")),
        yaxis=dict(title=dict(text="α_t")),
    )
    if values is not None:
        fig.add_trace(
            go.Scatter(
                x=list(range(int(steps))), y=values[:, 0].tolist(), mode="lines", name=schedule.name, showlegend=False
            )
        )
    return S.fit_title(fig)


def step_size_info(results, groups=None) -> CurvesInfo:
    return metric_curves_info(
        results, "step_size", title="Step size ‖θₜ₊₁ − θₜ‖", y_title="‖Δθ‖ (log)", log_y=True, groups=groups
    )


def grad_norm_info(results, groups=None) -> CurvesInfo:
    return metric_curves_info(
        results, "grad_norm", title="Gradient norm ‖∇J(θₜ)‖", y_title="‖∇J‖ (log)", log_y=True, groups=groups
    )


def test_accuracy_info(results, groups=None) -> CurvesInfo:
    return metric_curves_info(
        results, "test_accuracy", title="Test accuracy", y_title="accuracy", groups=groups, mark_diverged=False
    )


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
        x, y = _drawn(c.x), _drawn(c.y)
        if by_entry and group not in listed:
            listed.add(group)
            count = groups.count(group)
            test = " (test)" if c.role == "test" else ""
            fig.add_trace(
                go.Scatter(
                    x=[None],
                    y=[None],
                    mode="lines",
                    meta="legend",
                    legendgroup=group,
                    name=f"{c.entry_label}{test}: {count} configurations (dark → light)",
                    line=dict(color=c.color, dash=c.dash, width=2),
                    hoverinfo="skip",
                )
            )
        if c.lower is not None and c.upper is not None:
            fig.add_trace(
                go.Scatter(
                    x=x,
                    y=_drawn(c.upper),
                    mode="lines",
                    line=dict(width=0),
                    hoverinfo="skip",
                    showlegend=False,
                    legendgroup=group,
                    meta="band",
                    name=c.name + " 75%",
                )
            )
            fig.add_trace(
                go.Scatter(
                    x=x,
                    y=_drawn(c.lower),
                    mode="lines",
                    line=dict(width=0),
                    fill="tonexty",
                    fillcolor=_rgba(c.color, 0.18),
                    hoverinfo="skip",
                    showlegend=False,
                    legendgroup=group,
                    meta="band",
                    name=c.name + " 25%",
                )
            )
        fig.add_trace(
            go.Scatter(
                x=x,
                y=y,
                mode="lines",
                name=c.name,
                meta=c.role,
                showlegend=not by_entry,
                legendgroup=group,
                line=dict(color=c.color, dash=c.dash, width=2),
            )
        )
    for d in info.marks:
        style = style_of(d.status)
        # cliponaxis off: a mark at the first or last step, or at the top of the axis, keeps its label whole
        fig.add_trace(
            go.Scatter(
                x=[d.step],
                y=[d.y],
                mode="markers+text",
                name=f"{d.name}: {d.text}",
                meta=d.status,
                text=[d.text],
                textposition=_text_side(d.step, info.x_range),
                textfont=dict(color=style.color),
                marker=dict(symbol=style.symbol, size=13, color=style.color, line=dict(width=2, color=d.color)),
                hovertext=[f"{d.name}, seed {d.seed}: {d.text}"],
                hoverinfo="text",
                showlegend=False,
                legendgroup=mark_group.get(d.name, d.name),
                cliponaxis=False,
            )
        )
    if info.target is not None:
        fig.add_hline(y=info.target, line=dict(color="gray", dash="dash", width=1))
        # annotations on a log axis take log10 positions (shapes take data values)
        fig.add_annotation(
            x=0,
            xref="paper",
            y=math.log10(info.target) if info.log_y else info.target,
            yref="y",
            text=f"target {info.target:g}",
            showarrow=False,
            xanchor="left",
            yanchor="bottom",
            font=dict(color="gray"),
        )
    fig.update_layout(
        title=info.title,
        xaxis_title="step",
        yaxis_title=info.y_title,
        hovermode="x unified" if not info.marks else "closest",
    )
    if info.log_y:
        fig.update_yaxes(type="log")
    if info.x_range:
        fig.update_xaxes(range=info.x_range)
    return S.fit_title(fig)
