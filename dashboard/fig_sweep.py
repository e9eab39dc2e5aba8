"""The learning-rate sweep: final loss against α per rule, and the loss over step × α heatmap."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from descentlab.verdicts import stability_edge

from . import style as S
from .fig_groups import (
    _diverged_steps,
    _fmt,
    _metric_matrix,
    _plain,
    config_columns,
    diverged_text,
    entry_color,
    quantiles,
    unstable_text,
)
from .status_style import STATUS_STYLE, counts_text, is_flagged, style_of, worst_status


# ---------------------------------------------------------------------------------------------
# Learning-rate sweep
# ---------------------------------------------------------------------------------------------


@dataclass
class SweepLine:
    """One rule configuration swept over α: median over seeds at each α, and each α's statuses."""

    name: str
    color: str
    alphas: list[float]
    final_loss: list[float | None]  # median over seeds; None where a seed blew up or failed (drawn at the top)
    best_loss: list[float | None]
    statuses: list[tuple[str, ...]]  # every seed's status at that α, in seed order
    worst: list[str]  # the worst of them (status_style.SEVERITY): the α's marker
    flagged: list[bool]  # a seed was unstable or diverged
    failed: list[bool]  # a seed failed (an error, shown with its own marker)
    diverged: list[bool]  # a seed diverged
    diverged_at: list[int | None]  # earliest divergence step over seeds
    unstable_at: list[int | None]  # earliest unstable_at over seeds
    largest_stable: float | None  # descentlab.verdicts.stability_edge: every seed stable, below the smallest flagged α
    largest_stable_loss: float | None = None
    smallest_flagged: float | None = None  # smallest α where a seed was unstable or diverged


@dataclass
class SweepInfo:
    lines: list[SweepLine]
    ceiling: float | None  # y where flagged and failed α are drawn (above every loss shown)
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
    per_entry = {
        e: [k for k, (_, entry, _) in enumerate(sweep_groups) if entry == e]
        for e in {entry for _, entry, _ in sweep_groups}
    }
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
        lines.append(
            SweepLine(
                name=name,
                color=entry_color(_entry, per_entry[_entry].index(k), len(per_entry[_entry])),
                alphas=alphas,
                final_loss=finals,
                best_loss=bests,
                statuses=statuses,
                worst=[worst_status(s) for s in statuses],
                flagged=[any(is_flagged(x) for x in s) for s in statuses],
                failed=["failed" in s for s in statuses],
                diverged=["diverged" in s for s in statuses],
                diverged_at=div_ats,
                unstable_at=unst_ats,
                largest_stable=largest,
                largest_stable_loss=largest_loss,
                smallest_flagged=None if math.isnan(edge) else edge,
            )
        )
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
        fig.add_trace(
            go.Scatter(
                x=[None],
                y=[None],
                mode="markers",
                name=style.label,
                meta="status_legend",
                legendgroup=f"status:{status}",
                hoverinfo="skip",
                marker=dict(symbol=style.symbol, size=10, color=style.color, line=dict(width=1, color="black")),
            ),
            **where,
        )


def draw_sweep(info: SweepInfo, *, show_best: bool = True) -> go.Figure:
    """Per rule: the loss line, one marker per α in the style of its worst status, ★ the largest stable α."""
    fig = S.figure()
    for line in info.lines:
        fig.add_trace(
            go.Scatter(
                x=line.alphas,
                y=line.final_loss,
                mode="lines",
                name=line.name,
                meta="final",
                legendgroup=line.name,
                line=dict(color=line.color, width=2),
            )
        )
        if show_best:
            fig.add_trace(
                go.Scatter(
                    x=line.alphas,
                    y=line.best_loss,
                    mode="lines",
                    name=line.name + " (best)",
                    meta="best",
                    legendgroup=line.name,
                    showlegend=False,
                    line=dict(color=line.color, width=1, dash="dot"),
                )
            )
        styles = [style_of(w) for w in line.worst]
        fig.add_trace(
            go.Scatter(
                x=line.alphas,
                y=[info.ceiling if f is None else f for f in line.final_loss],
                mode="markers",
                meta="status",
                name=line.name + " status",
                legendgroup=line.name,
                showlegend=False,
                customdata=list(line.worst),
                marker=dict(
                    symbol=[s.symbol for s in styles],
                    color=[s.color for s in styles],
                    size=11,
                    line=dict(width=1.5, color=line.color),
                ),
                hovertext=[_alpha_hover(line, i) for i in range(len(line.alphas))],
                hoverinfo="text",
            )
        )
        if line.largest_stable is not None:
            fig.add_trace(
                go.Scatter(
                    x=[line.largest_stable],
                    y=[line.largest_stable_loss],
                    mode="markers+text",
                    meta="largest_stable",
                    name=line.name + " largest stable α",
                    legendgroup=line.name,
                    showlegend=False,
                    text=[f"α={line.largest_stable:g}"],
                    textposition="bottom center",
                    marker=dict(symbol="star", size=17, color=line.color, line=dict(width=1, color="black")),
                    hovertext=[
                        f"{line.name}: largest stable α = {line.largest_stable:g} (every seed converged or "
                        "progressing, below the smallest α that blew up)"
                    ],
                    hoverinfo="text",
                )
            )
    status_legend(fig, info.statuses_present())
    fig.update_xaxes(type="log", title="learning rate α (log)")
    fig.update_yaxes(type="log", title="final loss (log); unstable, diverged, failed α at the top")
    fig.update_layout(
        title="Learning-rate sweep: final loss (solid), best loss (dotted), marker = worst status "
        "over seeds, ★ largest stable α"
    )
    return S.fit_title(fig)


@dataclass
class HeatmapMark:
    """Where the seeds of one α row went wrong: the earliest ``unstable_at`` or ``diverged_at``."""

    alpha: float
    status: str  # "unstable" or "diverged"
    step: int
    seeds: list[int]
    text: str  # "unstable from step N" / "diverged at step N"


@dataclass
class HeatmapPanel:
    name: str
    alphas: list[float]
    steps: list[int]
    z: list[list[float | None]]  # log10 loss, rows = α, columns = step; diverged cells = ceiling
    statuses: list[str] = field(default_factory=list)  # the worst status of each α row
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
    for status, column, text in (
        ("unstable", "unstable_at", unstable_text),
        ("diverged", "diverged_at", diverged_text),
    ):
        if column not in part:
            continue
        rows = part[part["status"].eq(status)]
        at = pd.to_numeric(rows[column], errors="coerce")
        rows, at = rows[at.notna()], at[at.notna()]
        if len(rows):
            step = int(at.min())
            marks.append(
                HeatmapMark(
                    alpha=alpha, status=status, step=step, seeds=[int(s) for s in rows["seed"]], text=text(step)
                )
            )
    return marks


def sweep_heatmap_info(results, *, max_columns: int = 200) -> SweepHeatmapInfo:
    """log10 of the (median over seeds) loss over step × α for each rule; blown-up cells at the ceiling.

    Each α row also carries its worst status and marks where its seeds went wrong: the earliest
    ``unstable_at`` of its unstable seeds and the earliest ``diverged_at`` of its diverged ones.
    """
    diverged = _diverged_steps(results)
    panels, finite = [], []
    for name, _entry, rows in _sweep_groups(results):
        alphas, zrows = [], []
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
        out.append(
            HeatmapPanel(
                name=name,
                alphas=alphas,
                steps=cols,
                z=[_plain(np.where(np.isposinf(r), ceiling, np.clip(r, None, ceiling))) for r in z],
                statuses=statuses,
                marks=marks,
            )
        )
    return SweepHeatmapInfo(panels=out, zmin=zmin, zmax=ceiling)


def draw_sweep_heatmap(info: SweepHeatmapInfo) -> go.Figure:
    n = max(1, len(info.panels))
    fig = make_subplots(
        figure=S.figure(),
        rows=n,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.08 if n > 1 else 0.02,
        subplot_titles=[p.name for p in info.panels] or [""],
    )
    shown = set()
    for k, p in enumerate(info.panels):
        fig.add_trace(
            go.Heatmap(
                x=p.steps,
                y=[alpha_label(a) for a in p.alphas],
                z=p.z,
                zmin=info.zmin,
                zmax=info.zmax,
                colorscale="Viridis",
                showscale=(k == 0),
                name=p.name,
                colorbar=dict(title="log10 loss<br>(top = diverged)"),
                hovertemplate="step %{x}<br>α %{y}<br>log10 loss %{z:.3f}<extra>" + p.name + "</extra>",
            ),
            row=k + 1,
            col=1,
        )
        for status in ("unstable", "diverged"):
            marks = [m for m in p.marks if m.status == status]
            if not marks:
                continue
            style = style_of(status)
            fig.add_trace(
                go.Scatter(
                    x=[m.step for m in marks],
                    y=[alpha_label(m.alpha) for m in marks],
                    mode="markers",
                    meta=status,
                    name=style.label,
                    legendgroup=f"status:{status}",
                    showlegend=status not in shown,
                    marker=dict(symbol=style.symbol, size=11, color=style.color, line=dict(width=1, color="white")),
                    hovertext=[
                        f"{p.name}, α={m.alpha:g}: {m.text} (seed{'s' if len(m.seeds) > 1 else ''} "
                        f"{', '.join(str(s) for s in m.seeds)})"
                        for m in marks
                    ],
                    hoverinfo="text",
                ),
                row=k + 1,
                col=1,
            )
            shown.add(status)
        fig.update_yaxes(title_text="α", type="category", row=k + 1, col=1)
    fig.update_xaxes(title_text="step", row=n, col=1)
    fig.update_layout(
        title=f"Loss over step × α (bright = blown up; {STATUS_STYLE['unstable'].glyph} unstable from, "
        f"{STATUS_STYLE['diverged'].glyph} diverged at that step)",
        height=max(320, 260 * n),
        margin=dict(l=70, t=70),
        legend=dict(orientation="h", y=-0.15),
    )
    return S.fit_title(fig)
