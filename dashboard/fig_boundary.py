"""A classifier's decision boundary over the input plane, one panel per set of weights."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from . import style as S
from .fig_groups import _plain, _rgba


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
    z: list[list[float | None]]  # score at each grid point; rows follow y
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
    score: str  # what z is: "P(class 1)", "predicted class" or "output"
    zmin: float
    zmax: float


def _score(instance, outputs: np.ndarray) -> tuple[np.ndarray, str, float, float]:
    # Predictor.predict returns logits for classification (problem.py): one logit is P(class 1)
    # through the sigmoid. The dataset's declared task says so; the model's loss is not asked.
    classification = getattr(instance.dataset, "task", "") == "classification"
    k = outputs.shape[-1]
    with np.errstate(all="ignore"):
        if k == 1 and classification:
            z = outputs[..., 0]
            e = np.exp(-np.abs(z))
            return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e)), "P(class 1)", 0.0, 1.0
        if k > 1:
            return np.argmax(outputs, axis=-1).astype(float), "predicted class", 0.0, float(k - 1)
    out = outputs[..., 0]
    finite = out[np.isfinite(out)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    return out, "model output", lo, hi


def decision_boundary_info(
    instance, panels: Sequence[tuple[str, np.ndarray]], *, step: int | None = None, grid: int = 80, margin: float = 0.15
) -> BoundaryInfo:
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
    classes = np.argmax(y, axis=1) if y.shape[1] > 1 else (y[:, 0] > 0.5).astype(int)
    names = list(data.class_names) or [str(c) for c in range(max(2, y.shape[1]))]
    return BoundaryInfo(
        x=_plain(xs),
        y=_plain(ys),
        panels=out_panels,
        points_x=_plain(data.x_train[:, 0]),
        points_y=_plain(data.x_train[:, 1]),
        points_class=[int(c) for c in classes],
        class_names=names,
        score=label,
        zmin=zmin,
        zmax=zmax,
    )


POINT_COLORS = ["#1f3b9a", "#c0392b", "#1e8449", "#7d3c98", "#b9770e", "#117a8b", "#6e2c00", "#5d6d7e"]


def draw_decision_boundary(info: BoundaryInfo) -> go.Figure:
    n = max(1, len(info.panels))
    cols = min(n, 3)
    rows = math.ceil(n / cols)
    fig = make_subplots(
        figure=S.figure(),
        rows=rows,
        cols=cols,
        shared_xaxes=True,
        shared_yaxes=True,
        horizontal_spacing=0.04,
        vertical_spacing=0.1,
        subplot_titles=[p.name for p in info.panels] or [""],
    )
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
        fig.add_trace(
            go.Heatmap(
                x=info.x,
                y=info.y,
                z=p.z,
                zmin=zmin,
                zmax=zmax,
                colorscale=scale,
                reversescale=not discrete,
                opacity=1.0 if discrete else 0.75,
                showscale=(k == 0),
                meta="prediction",
                zsmooth=False if discrete else "best",
                colorbar=dict(title=info.score, tickvals=list(range(n)) if discrete else None),
                name=p.name,
                hovertemplate="x₁ %{x:.2f}<br>x₂ %{y:.2f}<br>%{z:.2f}<extra></extra>",
            ),
            row=r,
            col=c,
        )
        for cls in sorted(set(info.points_class)):
            idx = [i for i, v in enumerate(info.points_class) if v == cls]
            fig.add_trace(
                go.Scatter(
                    x=[info.points_x[i] for i in idx],
                    y=[info.points_y[i] for i in idx],
                    mode="markers",
                    name=info.class_names[cls] if cls < len(info.class_names) else str(cls),
                    meta="points",
                    legendgroup=f"class{cls}",
                    showlegend=(k == 0),
                    marker=dict(
                        size=6, color=point_colors[cls % len(point_colors)], line=dict(width=0.8, color="black")
                    ),
                ),
                row=r,
                col=c,
            )
    step = info.panels[0].step if info.panels else None
    fig.update_layout(
        title="Decision boundary" + (f" at step {step}" if step is not None else " (final weights)"),
        height=380 * rows + 90,
        margin=dict(l=50, t=70),
        legend=dict(orientation="h", y=-0.12, title="training points: class "),
    )
    return S.fit_title(fig)
