"""Gradient norms per layer over the step axis, one panel per layer: data -> info record -> figure."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from . import style as S
from .fig_curves import Curve, RunMark, _total_steps, metric_curves_info
from .fig_groups import Group, _drawn, _rgba, color, run_groups
from .status_style import style_of

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


def layer_columns(source) -> list[str]:
    """The ``grad_norm.<layer>`` metrics of a Results (or the columns of a long metrics table)."""
    names = source.metric_names if hasattr(source, "metric_names") else source.columns
    cols = [c for c in names if c.startswith("grad_norm.")]
    return sorted(cols, key=lambda c: (len(c), c))  # layer2 before layer10


def layer_grad_norms_info(results, groups: Sequence[Group] | None = None, max_panels: int = 6) -> LayerNormsInfo:
    """For each group, one curve per layer of ‖∂J/∂θ‖ per layer: how the error grows or fades going back."""
    groups = (run_groups(results) if groups is None else list(groups))[:max_panels]
    cols = layer_columns(results)
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
    fig = make_subplots(
        figure=S.figure(),
        rows=rows,
        cols=cols,
        shared_xaxes=True,
        shared_yaxes=True,
        subplot_titles=[name for name, _ in info.panels] or [""],
    )
    shown = set()
    for k, (name, curves) in enumerate(info.panels):
        r, c = k // cols + 1, k % cols + 1
        for curve in curves:
            x = _drawn(curve.x)
            if curve.lower is not None:
                fig.add_trace(
                    go.Scatter(
                        x=x,
                        y=_drawn(curve.upper),
                        mode="lines",
                        line=dict(width=0),
                        showlegend=False,
                        hoverinfo="skip",
                        meta="band",
                    ),
                    row=r,
                    col=c,
                )
                fig.add_trace(
                    go.Scatter(
                        x=x,
                        y=_drawn(curve.lower),
                        mode="lines",
                        line=dict(width=0),
                        fill="tonexty",
                        fillcolor=_rgba(curve.color, 0.18),
                        showlegend=False,
                        hoverinfo="skip",
                        meta="band",
                    ),
                    row=r,
                    col=c,
                )
            fig.add_trace(
                go.Scatter(
                    x=x,
                    y=_drawn(curve.y),
                    mode="lines",
                    name=curve.name,
                    meta=curve.role,
                    legendgroup=curve.name,
                    showlegend=curve.name not in shown,
                    line=dict(color=curve.color, width=2),
                ),
                row=r,
                col=c,
            )
            shown.add(curve.name)
        for d in info.marks:
            if d.name == name:
                style = style_of(d.status)
                fig.add_trace(
                    go.Scatter(
                        x=[d.step],
                        y=[d.y],
                        mode="markers",
                        meta=d.status,
                        marker=dict(symbol=style.symbol, size=11, color=style.color),
                        hovertext=[f"seed {d.seed}: {d.text}"],
                        hoverinfo="text",
                        showlegend=False,
                    ),
                    row=r,
                    col=c,
                )
    fig.update_yaxes(type="log")
    fig.update_layout(
        title="Per-layer gradient norms ‖∂J/∂θ‖ per layer (backprop: layer L is nearest the loss)",
        height=300 * rows + 80,
        margin=dict(t=80),
    )
    fig.update_xaxes(title_text="step", row=rows)
    return S.fit_title(fig)
