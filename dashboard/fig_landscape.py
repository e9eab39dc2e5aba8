"""Cost landscapes: contours with each run's path (animated), and the cost along one parameter."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import plotly.graph_objects as go

from . import style as S
from descentlab.problem import is_landscape

from .fig_groups import _diverged_steps, _plain, _unstable_steps, color, diverged_text, run_groups, unstable_text
from .status_style import style_of


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
    z: list[list[float | None]]  # rows follow y, columns follow x
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
    ok = np.flatnonzero(np.all(np.isfinite(points[: step + 1]), axis=1))
    return (int(ok[-1]), points[ok[-1]]) if ok.size else None


def _flag_text(status: str, step: int) -> str:
    return unstable_text(step) if status == "unstable" else diverged_text(step)


def _axis_names(instance, n_params: int = 2) -> list[str]:
    """The declared ``Landscape.axis_names``, else θ₁, θ₂, … (a two-parameter problem that is no landscape)."""
    if is_landscape(instance):
        return [str(n) for n in instance.axis_names]
    return [f"θ{chr(0x2080 + i + 1)}" if i < 9 else f"θ{i + 1}" for i in range(n_params)]


def _bounds_of(instance, paths: np.ndarray | None) -> tuple[float, float, float, float]:
    # the declared Landscape window; without one, a window around the paths
    b = instance.bounds if is_landscape(instance) else None
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
    with np.errstate(all="ignore"):  # the declared Landscape.value, else the training loss of each point
        out = instance.value(points) if is_landscape(instance) else instance.loss(np.ascontiguousarray(points))
    return np.asarray(out, dtype=float).reshape(-1)


def landscape_info(
    results,
    instance,
    *,
    grid: int = 80,
    upto_step: int | None = None,
    run_ids: Sequence[int] | None = None,
    log_z: bool | None = None,
) -> LandscapeInfo:
    """Contours of the cost over the plot window and each run's path θ_0 … θ_k (from weights["path"])."""
    paths = np.asarray(results.weights["path"], dtype=float) if "path" in results.weights else None
    xmin, xmax, ymin, ymax = _bounds_of(instance, paths)
    xs = np.linspace(xmin, xmax, grid)
    ys = np.linspace(ymin, ymax, grid)
    gx, gy = np.meshgrid(xs, ys)
    z = evaluate_grid(instance, np.column_stack([gx.ravel(), gy.ravel()])).reshape(grid, grid)
    finite = z[np.isfinite(z)]
    if log_z is None:
        log_z = (
            bool(finite.size)
            and float(finite.min()) >= 0
            and float(finite.max()) > 50 * max(float(finite.min()), 1e-12)
        )
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
        name_of = {
            r: g.name + (f" seed {s}" if len(g.run_ids) > 1 else "") for g in groups for r, s in zip(g.run_ids, g.seeds)
        }
        color_of = {r: g.color for g in groups for r in g.run_ids}
        for run_id in run_ids if run_ids is not None else sorted(name_of):
            p = paths[run_id, : k + 1]
            name = name_of.get(run_id, str(run_id))
            traces.append(
                PathTrace(
                    name=name,
                    run_id=int(run_id),
                    x=_plain(p[:, 0]),
                    y=_plain(p[:, 1]),
                    color=color_of.get(run_id, color(run_id)),
                    diverged_at=diverged.get(run_id),
                    status=status_of.get(int(run_id), ""),
                    unstable_at=unstable.get(run_id),
                )
            )
            for status, at in (("unstable", unstable.get(run_id)), ("diverged", diverged.get(run_id))):
                found = _flag_point(paths[run_id], status, at, k)
                if found is not None:
                    step, point = found
                    marks.append(
                        PathMark(
                            name=name,
                            run_id=int(run_id),
                            status=status,
                            step=step,
                            x=float(point[0]),
                            y=float(point[1]),
                            text=_flag_text(status, at),
                        )
                    )
    names = _axis_names(instance)
    return LandscapeInfo(
        x=_plain(xs),
        y=_plain(ys),
        z=[_plain(row) for row in z],
        log_z=bool(log_z),
        paths=traces,
        upto_step=k,
        x_title=str(names[0]),
        y_title=str(names[1]),
        minima=_minima(instance),
        marks=marks,
    )


def _add_path_marks(fig: go.Figure, marks: Sequence[PathMark]) -> None:
    """One marker trace per status among ``marks`` (meta = the status), labelled with its step."""
    for status in dict.fromkeys(m.status for m in marks):
        chosen = [m for m in marks if m.status == status]
        style = style_of(status)
        fig.add_trace(
            go.Scatter(
                x=[m.x for m in chosen],
                y=[m.y for m in chosen],
                mode="markers+text",
                meta=status,
                name=style.label,
                legendgroup=f"status:{status}",
                text=[m.text for m in chosen],
                textposition="top right",
                textfont=dict(color=style.color),
                marker=dict(symbol=style.symbol, size=14, color=style.color, line=dict(width=1.5, color="white")),
                hovertext=[f"{m.name}: {m.text}" for m in chosen],
                hoverinfo="text",
            )
        )


def _minima(instance) -> list[list[float]]:
    """Known minima (the declared ``Landscape.minima``; none for other problems), as plain lists."""
    minima = instance.minima if is_landscape(instance) else ()
    return [[float(v) for v in np.ravel(m)] for m in (minima or [])]


def _path_status_text(p: PathTrace) -> str:
    if p.diverged_at is not None:
        return f" ({diverged_text(p.diverged_at)})"
    if p.unstable_at is not None:
        return f" ({unstable_text(p.unstable_at)})"
    return f" ({p.status})" if p.status else ""


def _current_point(p: PathTrace, k: int) -> tuple[list, list]:
    pts = [(x, y) for x, y in zip(p.x[: k + 1], p.y[: k + 1]) if x is not None and y is not None]
    return ([pts[-1][0]], [pts[-1][1]]) if pts else ([None], [None])


def draw_landscape(info: LandscapeInfo, *, animate: bool = False, max_frames: int = 60) -> go.Figure:
    """Contours, paths and current points; ``animate`` adds ▶ frames that walk the paths step by step."""
    fig = S.figure()
    fig.add_trace(
        go.Contour(
            x=info.x,
            y=info.y,
            z=info.z,
            colorscale="Blues",
            reversescale=True,
            ncontours=30,
            contours=dict(coloring="heatmap"),
            line=dict(width=0.5),
            meta="surface",
            colorbar=dict(title="log10 cost" if info.log_z else "cost"),
            name="cost",
            hovertemplate="θ₁ %{x:.3g}<br>θ₂ %{y:.3g}<br>%{z:.3g}<extra></extra>",
        )
    )
    moving = []  # indices of the traces a frame redraws
    for p in info.paths:
        moving.append(len(fig.data))
        fig.add_trace(
            go.Scatter(
                x=p.x,
                y=p.y,
                mode="lines+markers",
                name=p.name,
                meta="path",
                line=dict(color=p.color, width=2),
                marker=dict(size=4, color=p.color),
            )
        )
        cx, cy = _current_point(p, info.upto_step)
        moving.append(len(fig.data))
        fig.add_trace(
            go.Scatter(
                x=cx,
                y=cy,
                mode="markers",
                showlegend=False,
                meta="current",
                marker=dict(size=11, color=p.color, line=dict(width=2, color="white")),
                hovertext=[f"{p.name} at step {info.upto_step}" + _path_status_text(p)],
                hoverinfo="text",
            )
        )
    _add_path_marks(fig, info.marks)
    if info.minima:
        fig.add_trace(
            go.Scatter(
                x=[m[0] for m in info.minima],
                y=[m[1] for m in info.minima],
                mode="markers",
                name="minimum" if len(info.minima) == 1 else "minima",
                meta="minimum",
                marker=dict(symbol="star", size=14, color="gold", line=dict(width=1, color="black")),
            )
        )
    # Equal scale on both axes: only then is a gradient step drawn perpendicular to the contour it
    # leaves (the plot area shrinks to fit the window instead of stretching one axis).
    fig.update_xaxes(range=[info.x[0], info.x[-1]], title=info.x_title, constrain="domain")
    fig.update_yaxes(
        range=[info.y[0], info.y[-1]], title=info.y_title, scaleanchor="x", scaleratio=1, constrain="domain"
    )
    fig.update_layout(title=f"Cost surface and paths up to step {info.upto_step}", height=600, legend=dict(y=-0.15))
    if animate and info.upto_step > 0:
        stride = max(1, math.ceil(info.upto_step / max_frames))
        steps = list(range(0, info.upto_step + 1, stride))
        if steps[-1] != info.upto_step:
            steps.append(info.upto_step)
        frames = []
        for k in steps:
            data = []
            for p in info.paths:
                data.append(go.Scatter(x=p.x[: k + 1], y=p.y[: k + 1]))
                cx, cy = _current_point(p, k)
                data.append(go.Scatter(x=cx, y=cy))
            frames.append(go.Frame(data=data, traces=moving, name=str(k)))
        fig.frames = frames
        # redraw=True: without it plotly drops the contour's fill while it animates the paths
        play = dict(
            frame=dict(duration=120, redraw=True), transition=dict(duration=0), fromcurrent=False, mode="immediate"
        )
        fig.update_layout(
            updatemenus=[
                dict(
                    type="buttons",
                    direction="left",
                    x=0.0,
                    y=-0.08,
                    xanchor="left",
                    yanchor="top",
                    showactive=False,
                    buttons=[
                        dict(label="▶ play", method="animate", args=[None, play]),
                        dict(
                            label="❚❚",
                            method="animate",
                            args=[[None], dict(frame=dict(duration=0, redraw=True), mode="immediate")],
                        ),
                    ],
                )
            ],
            sliders=[
                dict(
                    active=len(steps) - 1,
                    y=-0.06,
                    x=0.2,
                    len=0.8,
                    currentvalue=dict(prefix="step "),
                    steps=[
                        dict(
                            label=str(k),
                            method="animate",
                            args=[[str(k)], dict(frame=dict(duration=0, redraw=True), mode="immediate")],
                        )
                        for k in steps
                    ],
                )
            ],
            legend=dict(orientation="h", y=-0.3),
            height=700,
        )
    return S.fit_title(fig)


@dataclass
class CostCurveInfo:
    x: list[float]
    y: list[float | None]
    steps: list[tuple[str, str, list[float | None], list[float | None]]]  # (name, color, θₜ, J(θₜ))
    axis: int
    fixed: list[float] | None  # the other coordinate(s), held fixed
    upto_step: int
    log_y: bool = False
    axis_name: str = "θ"
    other_names: list[str] = field(default_factory=list)
    marks: list[PathMark] = field(default_factory=list)  # x = θ along the axis, y = its cost


def cost_curve_info(
    results,
    instance,
    *,
    axis: int = 0,
    upto_step: int | None = None,
    run_ids: Sequence[int] | None = None,
    grid: int = 200,
    fixed: Sequence[float] | None = None,
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
    for run_id in run_ids if run_ids is not None else sorted(name_of):
        theta = paths[run_id, : k + 1, axis]
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
                marks.append(
                    PathMark(
                        name=name,
                        run_id=int(run_id),
                        status=status,
                        step=step,
                        x=float(t),
                        y=float(j),
                        text=_flag_text(status, at_of[run_id]),
                    )
                )
    names = _axis_names(instance, n_params)
    return CostCurveInfo(
        x=_plain(xs),
        y=_plain(ys),
        steps=steps,
        axis=axis,
        fixed=fixed,
        upto_step=k,
        axis_name=str(names[axis]),
        other_names=[str(n) for i, n in enumerate(names) if i != axis],
        marks=marks,
    )


def draw_cost_curve(info: CostCurveInfo) -> go.Figure:
    fig = S.figure()
    fig.add_trace(
        go.Scatter(x=info.x, y=info.y, mode="lines", name="cost", meta="curve", line=dict(color="black", width=2))
    )
    for name, c, theta, cost in info.steps:
        fig.add_trace(
            go.Scatter(
                x=theta,
                y=cost,
                mode="lines+markers",
                name=name,
                meta="steps",
                line=dict(color=c, width=1),
                marker=dict(size=6, color=c),
            )
        )
    _add_path_marks(fig, info.marks)
    fixed = ", ".join(f"{n} = {v:.3g}" for n, v in zip(info.other_names, info.fixed or []))
    fig.update_layout(
        title=f"Cost along {info.axis_name}"
        + (f" ({fixed} held fixed)" if fixed else "")
        + f", steps up to {info.upto_step}",
        xaxis_title=info.axis_name,
        yaxis_title="cost",
    )
    ys = [v for v in info.y if v is not None]
    if ys:  # keep the curve in view even when a path flies off
        span = max(ys) - min(ys)
        fig.update_yaxes(range=[min(ys) - 0.05 * span, max(ys) + 0.05 * span])
        fig.update_xaxes(range=[info.x[0], info.x[-1]])
    return S.fit_title(fig)
