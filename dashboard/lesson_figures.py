"""Figures of the "How it works" page: the network diagram, the 1-D cost slice, the α regimes, the α sweep.

Each figure is built in two steps, as in Optuna's ``visualization``: a small info record computed
from ``descentlab.lesson`` (what the tests assert on), then a plotly figure drawn from the record.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import plotly.graph_objects as go

from descentlab import lesson as L
from descentlab.dashboard import style as S
from descentlab.dashboard.status_style import style_of

STAGES = ("forward", "cost", "backprop", "descent")
STAGE_TITLES = {
    "forward": "1 · Forward: z = a_prev·W + b, a = f(z)",
    "cost": "2 · Cost: how wrong the output is",
    "backprop": "3 · Backprop: δ = ∂J/∂z",
    "descent": "4 · Gradient descent: w ← w + Δw",
}
POSITIVE, NEGATIVE, DIM = "#0072B2", "#D55E00", "#D0D0D0"  # Okabe–Ito blue and vermillion
REGIME_COLORS = {"crawl": "#56B4E9", "glide": "#009E73", "bounce": "#E69F00", "escape": "#D55E00"}
FONT = dict(size=15)


def _fmt(value: float) -> str:
    if not math.isfinite(value):
        return str(value)
    if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e4):
        return f"{value:.2e}"
    return f"{value:.3f}"


# ---- network diagram ------------------------------------------------------------------------------


@dataclass(frozen=True)
class NetworkInfo:
    """What the diagram shows: nodes with their text, edges with the number each carries."""

    stage: str
    nodes: list[dict]  # {layer, unit, x, y, text, hover, lit}
    edges: list[dict]  # {layer, i, j, index, x0, y0, x1, y1, value, width, color, lit, hover}
    edge_quantity: str  # what an edge's value is: "w", "∂J/∂w" or "Δw"
    title: str


def network_info(
    trace: L.StepTrace,
    stage: str,
    *,
    update: np.ndarray | None = None,
    lit_from: int | None = None,
    selected: int | None = None,
) -> NetworkInfo:
    """The diagram's record at ``stage`` (one of :data:`STAGES`).

    Edges carry the weights (forward, cost), the batch gradient ∂J/∂w (backprop) or the rule's
    step Δw (descent, ``update`` required). During backprop only layers ``>= lit_from`` are lit: the
    error has reached them (None: all). ``selected`` is the flat index of a highlighted weight.
    """
    if stage not in STAGES:
        raise ValueError(f"stage {stage!r}: one of {', '.join(STAGES)}")
    sizes = trace.sizes
    n_layers = len(sizes) - 1
    lit_from = 1 if lit_from is None else int(lit_from)
    widest = max(sizes)

    def position(layer: int, unit: int) -> tuple[float, float]:
        count = sizes[layer]
        return float(layer), (count - 1) / 2.0 - unit + (widest - count) * 0.0

    nodes = []
    for layer, count in enumerate(sizes):
        for unit in range(count):
            x, y = position(layer, unit)
            if layer == 0:
                text, hover = f"x={_fmt(trace.inputs[unit])}", f"input x{unit} = {trace.inputs[unit]:.6g}"
                lit = stage != "backprop"
            else:
                t = trace.layers[layer - 1]
                output = layer == n_layers
                if stage == "backprop":
                    lit = layer >= lit_from
                    text = f"δ={_fmt(t.delta[unit])}" if lit else "δ=?"  # not reached by the error yet
                elif stage == "cost" and output:
                    text = f"ŷ={_fmt(t.a[unit])} y={_fmt(trace.target[unit])}"
                    lit = True
                else:
                    text = f"z={_fmt(t.z[unit])}" + ("" if output else f"<br>a={_fmt(t.a[unit])}")
                    lit = stage != "cost" or output
                hover = (
                    f"z = {t.z[unit]:.6g}<br>a = f(z) = {t.a[unit]:.6g} (batch mean {t.a_mean[unit]:.6g})"
                    f"<br>δ = ∂Jₙ/∂z = {t.delta[unit]:.6g}<br>b = {t.biases[unit]:.6g}, "
                    f"∂J/∂b = {t.grad_biases[unit]:.6g}"
                )
            nodes.append({"layer": layer, "unit": unit, "x": x, "y": y, "text": text, "hover": hover, "lit": lit})

    if stage == "descent" and update is None:
        raise ValueError("the descent stage needs the rule's update")
    quantity = {"forward": "w", "cost": "w", "backprop": "∂J/∂w", "descent": "Δw"}[stage]
    edges = []
    offset = 0
    for layer in range(1, n_layers + 1):
        t = trace.layers[layer - 1]
        n_in, n_out = t.weights.shape
        for i in range(n_in):
            for j in range(n_out):
                index = offset + i * n_out + j
                value = {
                    "w": t.weights[i, j],
                    "∂J/∂w": t.grad_weights[i, j],
                    "Δw": float(update[index]) if update is not None else math.nan,
                }[quantity]
                x0, y0 = position(layer - 1, i)
                x1, y1 = position(layer, j)
                lit = stage != "backprop" or layer >= lit_from
                edges.append(
                    {
                        "layer": layer,
                        "i": i,
                        "j": j,
                        "index": index,
                        "x0": x0,
                        "y0": y0,
                        "x1": x1,
                        "y1": y1,
                        "value": float(value),
                        "lit": lit,
                        "hover": (
                            f"W{layer}[{i},{j}] = {t.weights[i, j]:.6g}<br>∂J/∂w = "
                            f"{t.grad_weights[i, j]:.6g}"
                            + (f"<br>Δw = {float(update[index]):.6g}" if update is not None else "")
                        ),
                    }
                )
        offset += n_in * n_out + n_out
    scale = max((abs(e["value"]) for e in edges if math.isfinite(e["value"])), default=0.0) or 1.0
    for e in edges:
        magnitude = abs(e["value"]) / scale if math.isfinite(e["value"]) else 1.0
        e["width"] = 1.0 + 7.0 * magnitude
        e["color"] = DIM if not e["lit"] else (POSITIVE if e["value"] >= 0 else NEGATIVE)
        if selected is not None and e["index"] == selected:
            e["width"] += 3.0
    title = STAGE_TITLES[stage]
    if stage == "backprop":
        title += f", reached layer {lit_from}"
    return NetworkInfo(stage=stage, nodes=nodes, edges=edges, edge_quantity=quantity, title=title)


def draw_network(info: NetworkInfo, *, height: int = 430) -> go.Figure:
    """Neurons as circles with their numbers, weights as lines: width for size, blue + / red −."""
    fig = S.figure()
    for e in info.edges:
        fig.add_trace(
            go.Scatter(
                x=[e["x0"], e["x1"]],
                y=[e["y0"], e["y1"]],
                mode="lines",
                line=dict(width=e["width"], color=e["color"]),
                hoverinfo="skip",
                showlegend=False,
            )
        )
    # Clickable midpoints: a click selects the weight (the page reads the selection's customdata).
    fig.add_trace(
        go.Scatter(
            x=[(e["x0"] + e["x1"]) / 2 for e in info.edges],
            y=[(e["y0"] + e["y1"]) / 2 for e in info.edges],
            mode="markers",
            marker=dict(size=9, color=[e["color"] for e in info.edges], line=dict(width=1, color="white")),
            customdata=[e["index"] for e in info.edges],
            hovertext=[e["hover"] for e in info.edges],
            hoverinfo="text",
            showlegend=False,
            name="weights",
        )
    )
    fig.add_trace(
        go.Scatter(
            x=[n["x"] for n in info.nodes],
            y=[n["y"] for n in info.nodes],
            mode="markers+text",
            marker=dict(
                size=46,
                color=["#FFFFFF" if n["lit"] else "#F2F2F2" for n in info.nodes],
                line=dict(width=3, color=["#333333" if n["lit"] else DIM for n in info.nodes]),
            ),
            text=[n["text"] for n in info.nodes],
            textposition="bottom center",
            textfont=dict(size=13, color=["#111111" if n["lit"] else "#AAAAAA" for n in info.nodes]),
            hovertext=[n["hover"] for n in info.nodes],
            hoverinfo="text",
            showlegend=False,
            name="neurons",
        )
    )
    layers = max(n["layer"] for n in info.nodes)
    fig.update_layout(
        title=dict(text=info.title, font=dict(size=18)),
        height=height,
        margin=dict(l=10, r=10, t=50, b=10),
        plot_bgcolor="white",
        font=FONT,
        clickmode="event+select",
        xaxis=dict(visible=False, range=[-0.4, layers + 0.4]),
        yaxis=dict(visible=False, range=[min(n["y"] for n in info.nodes) - 0.8, max(n["y"] for n in info.nodes) + 0.5]),
    )
    return S.fit_title(fig)


# ---- the learning rate, felt ----------------------------------------------------------------------


@dataclass(frozen=True)
class SliceInfo:
    """The 1-D cost curve through the current weights, its tangent, and α's steps along it."""

    label: str
    offset: float
    positions: np.ndarray  # s values of the curve (shown as offset + s)
    values: np.ndarray  # J(θ + s d)
    tangent: tuple[tuple[float, float], tuple[float, float]]
    iterates: np.ndarray  # s of the first gradient-descent steps along the slice
    iterate_values: np.ndarray
    learning_rate: float
    curvature: float
    regime: str
    thresholds: dict[str, float] = field(default_factory=dict)


def slice_info(instance, params, view: L.SliceView, learning_rate: float, steps: int = 6) -> SliceInfo:
    """The record for :func:`draw_slice`: the window covers the iterates and the slice's bottom."""
    iterates = view.steps(instance, params, learning_rate, count=steps)
    finite = iterates[np.isfinite(iterates)]
    bottom = -view.slope / view.curvature if view.curvature > 0 else 0.0
    reach = max(abs(bottom), float(np.max(np.abs(finite))) if finite.size else 0.0, 1e-3)
    reach = min(reach, 1e3 * max(abs(bottom), 1e-3))
    low, high = (-0.6 * reach, 1.4 * reach) if bottom >= 0 else (-1.4 * reach, 0.6 * reach)
    positions = np.linspace(low, high, 241)
    values = L.slice_curve(instance, params, view, positions)
    shown = finite[(finite >= positions[0]) & (finite <= positions[-1])] if finite.size else finite
    iterate_values = L.slice_curve(instance, params, view, shown) if shown.size else np.array([])
    half = 0.35 * (positions[-1] - positions[0])
    tangent = (
        (view.offset - half, view.value - view.slope * half),
        (view.offset + half, view.value + view.slope * half),
    )
    return SliceInfo(
        label=view.label,
        offset=view.offset,
        positions=positions,
        values=values,
        tangent=tangent,
        iterates=shown,
        iterate_values=iterate_values,
        learning_rate=float(learning_rate),
        curvature=view.curvature,
        regime=L.regime(learning_rate, view.curvature),
        thresholds=L.regime_thresholds(view.curvature) if view.curvature > 0 else {},
    )


def draw_slice(info: SliceInfo, *, height: int = 360) -> go.Figure:
    """J along the slice, the tangent (the gradient) at the current point, and each step as an arrow."""
    x = info.offset + info.positions
    fig = S.figure()
    fig.add_trace(go.Scatter(x=x, y=info.values, mode="lines", line=dict(color="#333333", width=3), name="J"))
    (tx0, ty0), (tx1, ty1) = info.tangent
    fig.add_trace(
        go.Scatter(
            x=[tx0, tx1],
            y=[ty0, ty1],
            mode="lines",
            line=dict(color="#999999", dash="dash"),
            name="tangent: slope = gradient",
        )
    )
    color = REGIME_COLORS[info.regime]
    xs = info.offset + info.iterates
    fig.add_trace(
        go.Scatter(
            x=xs,
            y=info.iterate_values,
            mode="markers",
            marker=dict(size=11, color=color),
            name=f"steps at α = {info.learning_rate:.3g}",
        )
    )
    for k in range(len(xs) - 1):
        fig.add_annotation(
            x=xs[k + 1],
            y=info.iterate_values[k + 1],
            ax=xs[k],
            ay=info.iterate_values[k],
            xref="x",
            yref="y",
            axref="x",
            ayref="y",
            showarrow=True,
            arrowhead=3,
            arrowwidth=2,
            arrowcolor=color,
        )
    low, high = float(np.min(info.values)), float(np.max(info.values[np.isfinite(info.values)]))
    fig.update_layout(
        title=dict(text=f"{info.regime}: α·λ = {info.learning_rate * info.curvature:.2f}", font=dict(size=18)),
        height=height,
        margin=dict(l=10, r=10, t=50, b=10),
        font=FONT,
        plot_bgcolor="white",
        legend=dict(orientation="h", y=-0.2),
        xaxis=dict(title=info.label, gridcolor="#EEEEEE"),
        yaxis=dict(title="cost J", gridcolor="#EEEEEE", range=[low - 0.05 * (high - low), high + 0.05 * (high - low)]),
    )
    return S.fit_title(fig)


@dataclass(frozen=True)
class RegimeBarInfo:
    """The α axis split into the four regimes, and where the chosen α falls."""

    bands: list[tuple[str, float, float]]  # (regime, α from, α to)
    learning_rate: float
    regime: str


def regime_bar_info(curvature: float, learning_rate: float, span: tuple[float, float] | None = None) -> RegimeBarInfo:
    """The regimes' bands on a linear α axis; with ``span`` = (first, last) α of a slider, the axis
    is the slider's own range, so the thresholds sit under the slider positions they belong to."""
    t = L.regime_thresholds(curvature)
    low, top = (0.0, max(3.0 * t["escape"], 1.5 * learning_rate)) if span is None else map(float, span)
    edges = [low, t["glide"], t["bounce"], t["escape"], top]
    bands = [
        (name, min(max(a, low), top), min(max(b, low), top)) for name, a, b in zip(L.REGIMES, edges[:-1], edges[1:])
    ]
    return RegimeBarInfo(
        bands=[band for band in bands if band[2] > band[1]],
        learning_rate=float(learning_rate),
        regime=L.regime(learning_rate, curvature),
    )


def draw_regime_bar(info: RegimeBarInfo, *, height: int = 120) -> go.Figure:
    """The four regimes as coloured bands on the α axis, thresholds ½λ⁻¹, λ⁻¹, 2λ⁻¹ marked, α as a pointer."""
    fig = S.figure()
    for name, a, b in info.bands:
        fig.add_trace(
            go.Bar(
                x=[b - a],
                y=[""],
                base=[a],
                orientation="h",
                marker=dict(color=REGIME_COLORS[name]),
                name=name,
                text=[name],
                textposition="inside",
                insidetextanchor="middle",
                hovertemplate=f"{name}: α from {a:.3g} to {b:.3g}<extra></extra>",
            )
        )
    fig.add_vline(x=info.learning_rate, line=dict(color="black", width=4))
    fig.update_layout(
        barmode="stack",
        height=height,
        showlegend=False,
        # the side margins of Streamlit's slider track, so that the bands line up under its positions
        margin=dict(l=1, r=6, t=10, b=30),
        font=FONT,
        xaxis=dict(title="α", range=[info.bands[0][1], info.bands[-1][2]]),
        plot_bgcolor="white",
    )
    return S.fit_title(fig)


def draw_losses(losses, *, height: int = 200) -> go.Figure:
    """The loss so far, one point per step taken on the page."""
    fig = S.figure(
        go.Scatter(x=list(range(len(losses))), y=list(losses), mode="lines+markers", line=dict(color="#333333"))
    )
    fig.update_layout(
        height=height,
        margin=dict(l=10, r=10, t=30, b=10),
        font=dict(size=13),
        title=dict(text="loss so far", font=dict(size=14)),
        xaxis=dict(title="step"),
        yaxis=dict(title="J"),
        plot_bgcolor="white",
    )
    return S.fit_title(fig)


# ---- predict, then run ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PredictionInfo:
    lines: list[tuple[str, float]]  # (what, α): guess, theory 2/λₘₐₓ, measured edge
    points: list[tuple[float, str]]  # (α, status) of every swept α


def prediction_info(prediction: L.Prediction) -> PredictionInfo:
    lines = [
        ("your guess", prediction.guess),
        ("theory c/λₘₐₓ", prediction.theory),
        ("measured: last converging α", prediction.measured),
    ]
    return PredictionInfo(
        lines=[(k, v) for k, v in lines if math.isfinite(v)],
        points=list(zip(prediction.learning_rates, prediction.statuses)),
    )


def draw_prediction(info: PredictionInfo, *, height: int = 260) -> go.Figure:
    """Each swept α as a marker in its status's colour and shape; guess, theory and measurement as lines."""
    fig = S.figure()
    for status in dict.fromkeys(s for _, s in info.points):
        style = style_of(status)
        xs = [a for a, s in info.points if s == status]
        fig.add_trace(
            go.Scatter(
                x=xs,
                y=[0] * len(xs),
                mode="markers",
                name=style.label,
                marker=dict(size=14, color=style.color, symbol=style.symbol),
            )
        )
    dashes = {"your guess": "dot", "theory c/λₘₐₓ": "dash", "measured: last converging α": "solid"}
    for k, (what, value) in enumerate(info.lines):
        fig.add_vline(x=value, line=dict(dash=dashes.get(what, "solid"), width=3, color="#333333"))
        fig.add_annotation(
            x=math.log10(value),
            y=0.4 + 0.25 * k,
            text=f"{what}: {value:.3g}",
            showarrow=False,
            xanchor="left",
            font=dict(size=13),
            bgcolor="rgba(255,255,255,0.8)",
        )
    fig.update_layout(
        height=height,
        margin=dict(l=10, r=10, t=34, b=40),
        font=FONT,
        plot_bgcolor="white",
        xaxis=dict(title="learning rate α", type="log"),
        yaxis=dict(visible=False, range=[-0.5, 1.3]),
        # above the plot: below it, the legend ran into the axis title at the page's height
        legend=dict(orientation="h", x=0, y=1.0, yanchor="bottom"),
    )
    return S.fit_title(fig)
