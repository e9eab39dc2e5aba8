"""Theory figures: sharpness against the stability limit, the LR range test, rates, critical-α lines.

Same style as ``figures.py``: ``<chart>_info(...)`` reads records or core results into a small
dataclass of plain lists, ``draw_<chart>(info)`` turns it into a plotly figure built from lists.
The numbers come from ``descentlab.stability`` / ``descentlab.sharpness`` / ``descentlab.lrfind``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import plotly.graph_objects as go

from descentlab import stability as _stability
from descentlab.stability import critical_learning_rates_for_runs, rule_threshold

from . import style as S


def _rule_title(rule: str) -> str:
    """How a sentence names a rule: core's declared title (``stability.rule_title``), else its name."""
    title = getattr(_stability, "rule_title", None)
    if title is not None:
        try:
            return str(title(rule))
        except Exception:  # an unknown plugin rule: its registered name
            return str(rule)
    return getattr(_stability, "RULE_NAMES", {}).get(rule, rule)  # core before declared titles


PALETTE = S.PALETTE  # one palette for the project (dashboard/style.py)


def _color(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def _plain(values) -> list:
    return [float(v) if math.isfinite(v) else None for v in np.asarray(values, dtype=float).ravel()]


def _fmt(value: float) -> str:
    return f"{value:.3g}"


def _vertical_marker(fig: go.Figure, x: float, text: str, color: str, k: int) -> None:
    """A dashed vertical line at x with its label staggered down the top edge (labels never overlap)."""
    fig.add_vline(x=x, line=dict(color=color, dash="dash", width=1.5))
    fig.add_annotation(
        x=math.log10(x) if _log_x(fig) else x,
        y=1.0 - 0.07 * k,
        xref="x",
        yref="paper",
        text=text,
        showarrow=False,
        xanchor="left",
        yanchor="top",
        font=dict(color=color, size=11),
        bgcolor="rgba(255,255,255,0.7)",
    )


def _log_x(fig: go.Figure) -> bool:
    return getattr(fig.layout.xaxis, "type", None) == "log"


# ---------------------------------------------------------------------------------------------
# Sharpness against the stability limit c/α (edge of stability)
# ---------------------------------------------------------------------------------------------


@dataclass
class SharpnessSeries:
    """One run's sharpness at the measured steps, and its limit c/αₜ at every step (if any)."""

    name: str
    color: str
    steps: list[int]
    sharpness: list[float | None]
    limit_steps: list[int] = field(default_factory=list)
    limit: list[float | None] = field(default_factory=list)
    limit_label: str = ""  # e.g. "2/α" or "3.8/α = (2 + 2μ)/α"
    kind: str = "sharpness"  # "sharpness" = λₘₐₓ(H); "preconditioned" = λₘₐₓ(P⁻¹H)
    loss: list[float | None] = field(default_factory=list)  # training loss at every step 0..T (optional)


@dataclass
class SharpnessInfo:
    series: list[SharpnessSeries]
    title: str = "Sharpness λₘₐₓ of the loss Hessian, with each rule's stability limit c/α (dashed)"
    note: str = ""


def _limit_label(c: float, rule: str, kind: str = "sharpness") -> str:
    if kind == "preconditioned":
        return f"{c:.3g}/α (Adam: (2 + 2β₁)/((1 − β₁)α))"
    if c == 2.0:  # plain gradient descent's limit needs no name
        return "2/α"
    return f"{c:.3g}/α ({_rule_title(rule)})"


def sharpness_series(
    name: str,
    steps,
    sharpness,
    *,
    learning_rates=None,
    threshold: float | None = None,
    rule: str = "",
    index: int = 0,
    kind: str = "sharpness",
    loss=None,
) -> SharpnessSeries:
    """A series from arrays: ``learning_rates`` and ``loss`` are per step 0..T (NaN allowed at the end)."""
    steps = np.asarray(steps)
    values = np.asarray(sharpness, dtype=float)
    keep = np.isfinite(values)
    series = SharpnessSeries(
        name=name,
        color=_color(index),
        steps=[int(s) for s in steps[keep]],
        sharpness=_plain(values[keep]),
        kind=kind,
        loss=[] if loss is None else _plain(loss),
    )
    if threshold is not None and learning_rates is not None:
        lr = np.asarray(learning_rates, dtype=float)
        # the last row (final state) has no α of its own: carry the previous one forward
        lr = np.array([v if math.isfinite(v) else np.nan for v in lr])
        for i in range(1, len(lr)):
            if not math.isfinite(lr[i]):
                lr[i] = lr[i - 1]
        with np.errstate(divide="ignore", invalid="ignore"):
            limit = np.where(lr > 0, threshold / lr, np.nan)
        series.limit_steps = list(range(len(limit)))
        series.limit = _plain(limit)
        series.limit_label = _limit_label(threshold, rule, kind)
    return series


def sharpness_info(results, run_ids: Sequence[int] | None = None, *, max_runs: int = 8) -> SharpnessInfo:
    """Sharpness-vs-step series of the runs that measured it (``sharpness_every > 0``).

    The limit line of each run is c/αₜ with c its rule's declared threshold (2 for GD) and αₜ the
    learning rate the run actually used at step t (so a schedule bends the line).
    """
    metrics, runs = results.metrics, results.runs.sort_values("run_id")
    if "sharpness" not in metrics or not metrics["sharpness"].notna().any():
        return SharpnessInfo(series=[], note="no sharpness was measured: set sharpness_every > 0")
    measured = set(metrics.loc[metrics["sharpness"].notna(), "run_id"].astype(int))
    chosen = [int(r) for r in (run_ids if run_ids is not None else runs["run_id"]) if int(r) in measured]
    series = []
    for k, run_id in enumerate(chosen[:max_runs]):
        row = runs[runs["run_id"] == run_id].iloc[0]
        rows = metrics[metrics["run_id"] == run_id].sort_values("step")
        hyper = {
            c: row[c]
            for c in runs.columns
            if c not in ("run_id", "learning_rate")
            and isinstance(row[c], (int, float, np.number))
            and not (isinstance(row[c], float) and math.isnan(row[c]))
        }
        try:
            c = rule_threshold(str(row["rule"]), hyper)
        except Exception:  # an unknown plugin rule: draw the sharpness without a limit
            c = None
        name = f"{row['label']} α={float(row['learning_rate']):g} seed {int(row['seed'])}"
        series.append(
            sharpness_series(
                name,
                rows["step"].to_numpy(),
                rows["sharpness"].to_numpy(),
                learning_rates=rows["learning_rate"].to_numpy(),
                threshold=c,
                rule=str(row["rule"]),
                index=k,
                loss=rows["loss"].to_numpy(),
            )
        )
    note = "" if len(chosen) <= max_runs else f"showing {max_runs} of {len(chosen)} runs"
    return SharpnessInfo(series=series, note=note)


def draw_sharpness(info: SharpnessInfo) -> go.Figure:
    fig = S.figure()
    for s in info.series:
        label = "λₘₐₓ(P⁻¹H), preconditioned" if s.kind == "preconditioned" else "λₘₐₓ"
        fig.add_trace(
            go.Scatter(
                x=s.steps,
                y=s.sharpness,
                mode="lines+markers",
                name=f"{s.name}: {label}",
                meta="sharpness",
                legendgroup=s.name,
                line=dict(color=s.color, width=2),
                marker=dict(size=4),
            )
        )
        if s.limit:
            fig.add_trace(
                go.Scatter(
                    x=s.limit_steps,
                    y=s.limit,
                    mode="lines",
                    name=f"{s.name}: limit {s.limit_label}",
                    meta="limit",
                    legendgroup=s.name,
                    line=dict(color=s.color, width=1.5, dash="dash"),
                )
            )
    with_loss = [s for s in info.series if s.loss]
    for s in with_loss:
        # the training loss on a second axis: at the edge of stability it keeps falling, non-monotonically
        fig.add_trace(
            go.Scatter(
                x=list(range(len(s.loss))),
                y=s.loss,
                mode="lines",
                name=f"{s.name}: loss (right axis)",
                meta="loss",
                legendgroup=s.name,
                yaxis="y2",
                line=dict(color=s.color, width=1, dash="dot"),
                opacity=0.6,
            )
        )
    fig.update_xaxes(title="step")
    fig.update_yaxes(title="sharpness (top Hessian eigenvalue)")
    if with_loss:
        fig.update_layout(
            yaxis2=dict(title="training loss (log)", type="log", overlaying="y", side="right", showgrid=False)
        )
    title = info.title + (f" — {info.note}" if info.note else "")
    fig.update_layout(title=title, legend=dict(y=-0.25))
    return S.fit_title(fig)


# ---------------------------------------------------------------------------------------------
# Learning-rate range test
# ---------------------------------------------------------------------------------------------


@dataclass
class LRFindCurve:
    name: str
    color: str
    learning_rates: list[float]
    median: list[float | None]
    low: list[float | None]
    high: list[float | None]
    suggested_lr: float | None
    minimum_lr: float | None
    critical_lr: float | None = None  # c/λₘₐₓ when the problem's λₘₐₓ is known
    reason: str = ""


@dataclass
class LRFindInfo:
    curves: list[LRFindCurve]
    title: str = "Learning-rate range test: smoothed loss, median over seeds (band: quartiles)"


def lr_find_info(found: Sequence[tuple[str, object]], *, critical: dict | None = None) -> LRFindInfo:
    """From ``[(label, LRFindResult)]``; ``critical`` maps label -> α_crit to draw (optional)."""
    curves = []
    for k, (label, r) in enumerate(found):
        finite = [i for i, v in enumerate(np.asarray(r.median, dtype=float)) if math.isfinite(v)]
        upto = (finite[-1] + 1) if finite else 0
        suggested = float(r.suggested_lr) if math.isfinite(r.suggested_lr) else None
        minimum = float(r.minimum_lr) if math.isfinite(r.minimum_lr) else None
        curves.append(
            LRFindCurve(
                name=label,
                color=_color(k),
                learning_rates=_plain(r.learning_rates[:upto]),
                median=_plain(r.median[:upto]),
                low=_plain(r.low[:upto]),
                high=_plain(r.high[:upto]),
                suggested_lr=suggested,
                minimum_lr=minimum,
                critical_lr=(critical or {}).get(label),
                reason=r.reason,
            )
        )
    return LRFindInfo(curves=curves)


def _interpolate(xs: list, ys: list, x: float) -> float | None:
    pairs = [(a, b) for a, b in zip(xs, ys) if a is not None and b is not None]
    if not pairs:
        return None
    lx = np.log([a for a, _ in pairs])
    return float(np.interp(math.log(x), lx, [b for _, b in pairs]))


def draw_lr_find(info: LRFindInfo) -> go.Figure:
    fig = S.figure()
    for c in info.curves:
        band_x = c.learning_rates + c.learning_rates[::-1]
        band_y = c.high + c.low[::-1]
        fig.add_trace(
            go.Scatter(
                x=band_x,
                y=band_y,
                fill="toself",
                mode="lines",
                line=dict(width=0),
                fillcolor=_rgba(c.color, 0.2),
                name=f"{c.name} quartiles",
                meta="band",
                legendgroup=c.name,
                showlegend=False,
                hoverinfo="skip",
            )
        )
        fig.add_trace(
            go.Scatter(
                x=c.learning_rates,
                y=c.median,
                mode="lines",
                name=c.name,
                meta="median",
                legendgroup=c.name,
                line=dict(color=c.color, width=2),
            )
        )
        if c.suggested_lr is not None:
            y = _interpolate(c.learning_rates, c.median, c.suggested_lr)
            fig.add_trace(
                go.Scatter(
                    x=[c.suggested_lr],
                    y=[y],
                    mode="markers+text",
                    meta="suggested",
                    name=f"{c.name} suggested α",
                    legendgroup=c.name,
                    showlegend=False,
                    text=[f"α={c.suggested_lr:.3g}"],
                    textposition="bottom left",
                    marker=dict(symbol="star", size=15, color=c.color, line=dict(width=1, color="black")),
                    hovertext=[c.reason],
                    hoverinfo="text",
                )
            )
    fig.update_xaxes(type="log", title="learning rate α (log), growing every step")
    for k, c in enumerate([c for c in info.curves if c.critical_lr is not None]):
        _vertical_marker(fig, c.critical_lr, f"{c.name}: critical α {c.critical_lr:.3g}", c.color, k)
    fig.update_yaxes(type="log", title="smoothed training loss (log)")
    fig.update_layout(title=info.title + "<br><sup>★ suggested α; dashed line = critical α from theory</sup>")
    return S.fit_title(fig)


def _rgba(hex_color: str, alpha: float) -> str:
    h = hex_color.lstrip("#")
    r, g, b = (int(h[i : i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"


# ---------------------------------------------------------------------------------------------
# Convergence rate: measured loss curve against the theoretical ρ²ᵗ
# ---------------------------------------------------------------------------------------------


@dataclass
class RateCurve:
    name: str
    color: str
    steps: list[int]
    loss_gap: list[float | None]  # Jₜ − J*
    theory: list[float | None]  # (J_0 − J*)·ρ²ᵗ
    theory_rate: float
    measured_rate: float | None


@dataclass
class RateInfo:
    curves: list[RateCurve]
    title: str = "Convergence: loss gap Jₜ − J* (solid) against the theory (J₀ − J*)·ρ²ᵗ (dashed)"


def rate_info(curves: Sequence[tuple[str, Sequence[float], float, float | None]], minimum: float = 0.0) -> RateInfo:
    """From ``[(name, losses, theory_rate, measured_rate)]``; the loss gap decays like ρ²ᵗ."""
    out = []
    for k, (name, losses, rho, measured) in enumerate(curves):
        gap = np.asarray(losses, dtype=float) - minimum
        steps = np.arange(gap.size)
        with np.errstate(under="ignore", invalid="ignore", over="ignore"):
            theory = gap[0] * float(rho) ** (2.0 * steps)
            gap = np.where(gap > 0, gap, np.nan)
            theory = np.where(theory > 0, theory, np.nan)
        out.append(
            RateCurve(
                name=name,
                color=_color(k),
                steps=[int(s) for s in steps],
                loss_gap=_plain(gap),
                theory=_plain(theory),
                theory_rate=float(rho),
                measured_rate=None if measured is None or not math.isfinite(measured) else float(measured),
            )
        )
    return RateInfo(curves=out)


def draw_rates(info: RateInfo) -> go.Figure:
    fig = S.figure()
    for c in info.curves:
        measured = "" if c.measured_rate is None else f", measured ρ = {c.measured_rate:.4f}"
        fig.add_trace(
            go.Scatter(
                x=c.steps,
                y=c.loss_gap,
                mode="lines",
                name=f"{c.name}{measured}",
                meta="measured",
                legendgroup=c.name,
                line=dict(color=c.color, width=2),
            )
        )
        fig.add_trace(
            go.Scatter(
                x=c.steps,
                y=c.theory,
                mode="lines",
                name=f"{c.name}: theory ρ = {c.theory_rate:.4f}",
                meta="theory",
                legendgroup=c.name,
                line=dict(color=c.color, width=1.5, dash="dash"),
            )
        )
    fig.update_xaxes(title="step")
    fig.update_yaxes(type="log", title="Jₜ − J* (log)")
    fig.update_layout(title=info.title, legend=dict(y=-0.25))
    return S.fit_title(fig)


# ---------------------------------------------------------------------------------------------
# Critical α on a learning-rate sweep
# ---------------------------------------------------------------------------------------------


@dataclass
class CriticalLine:
    name: str
    learning_rate: float


def critical_lines_info(results) -> list[CriticalLine]:
    """α_crit = c/λₘₐₓ per distinct (label, critical α) of a results record whose problem knows λₘₐₓ."""
    top = (results.problem_info or {}).get("top_eigenvalue")
    if top is None:
        return []
    runs = results.runs.sort_values("run_id")
    values = critical_learning_rates_for_runs(runs, float(top))
    seen, out = set(), []
    for label, value in zip(runs["label"], values):
        if math.isfinite(value) and (label, round(value, 12)) not in seen:
            seen.add((label, round(value, 12)))
            out.append(CriticalLine(name=str(label), learning_rate=float(value)))
    return out


def add_critical_lines(fig: go.Figure, lines: Sequence[CriticalLine]) -> go.Figure:
    """Dashed vertical lines at each predicted critical α (for the sweep plot, x = α)."""
    colors = {}
    for trace in fig.data:  # reuse the colour of the sweep line of the same name, if any
        line_color = getattr(getattr(trace, "line", None), "color", None)
        if trace.name and line_color and trace.name not in colors:
            colors[trace.name] = line_color
    for k, line in enumerate(lines):
        _vertical_marker(
            fig,
            line.learning_rate,
            f"{line.name}: critical α {line.learning_rate:.3g}",
            colors.get(line.name, _color(k)),
            k,
        )
    return fig
