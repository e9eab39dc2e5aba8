"""The project's one plotly look: palette, fonts, axes, legend and toolbar shared by every chart and report."""

from __future__ import annotations

import plotly.graph_objects as go
import plotly.io as pio

# One hue per rule entry, in every chart of the dashboard and the reports (plotly's qualitative order).
PALETTE = ["#636EFA", "#EF553B", "#00CC96", "#AB63FA", "#FFA15A", "#19D3F3", "#FF6692", "#B6E880", "#FF97FF", "#FECB52"]

NAME = "descentlab"

# Ticks read the same on every axis: 10⁻³ rather than 1m, 0.001 and 1e-3 on neighbouring charts, and
# a log axis labels its decades only (the 2…9 between them are left as unlabelled minor ticks).
_AXIS = dict(
    exponentformat="power",
    showexponent="all",
    minorloglabels="none",
    automargin=True,
    gridcolor="#E8E8EE",
    linecolor="#9A9AA8",
    zerolinecolor="#C8C8D0",
    ticks="outside",
    tickcolor="#9A9AA8",
    title=dict(standoff=8),
)

TEMPLATE = go.layout.Template(
    layout=dict(
        font=dict(
            family="'Source Sans Pro', 'Segoe UI', 'Helvetica Neue', Arial, sans-serif", size=13, color="#262730"
        ),
        title=dict(x=0, xref="paper", xanchor="left", font=dict(size=15)),
        colorway=PALETTE,
        paper_bgcolor="white",
        plot_bgcolor="white",
        xaxis=_AXIS,
        yaxis=_AXIS,
        legend=dict(orientation="h", x=0, xanchor="left", y=-0.2, yanchor="top"),
        # The toolbar stands upright in the right margin, so it never lies over a title, however narrow the page.
        modebar=dict(orientation="v"),
        margin=dict(l=60, r=40, t=50, b=40),
        hoverlabel=dict(namelength=-1),
    )
)
pio.templates[NAME] = TEMPLATE

# Streamlit draws a chart with its own theme unless told not to; the dashboard asks for the project's.
STREAMLIT_CHART = dict(theme=None)
# Buttons a class needs (zoom, pan, reset, save); the rest only crowded the toolbar.
TOOLBAR = {
    "displaylogo": False,
    "modeBarButtonsToRemove": [
        "select2d",
        "lasso2d",
        "autoScale2d",
        "zoomIn2d",
        "zoomOut2d",
        "toggleSpikelines",
        "hoverClosestCartesian",
        "hoverCompareCartesian",
    ],
}


def figure(*data, **layout) -> go.Figure:
    """A new figure in the project's look (``layout`` as for ``go.Figure``)."""
    return go.Figure(data=list(data) or None, layout=dict(template=TEMPLATE, **layout))


def styled(fig: go.Figure) -> go.Figure:
    """``fig`` (e.g. from ``make_subplots``) given the project's look; returns it."""
    fig.update_layout(template=TEMPLATE)
    return fig


TITLE_CHARS = 36  # a title line fits a 414-px phone screen beside the toolbar (tests/dashboard/test_browser.py)


def wrap(text: str, width: int = TITLE_CHARS) -> list[str]:
    """``text`` in lines of at most ``width`` characters, broken at spaces (a longer word keeps its line)."""
    lines: list[str] = []
    for paragraph in str(text).split("<br>"):
        line = ""
        for word in paragraph.split(" "):
            if line and len(line) + 1 + len(word) > width:
                lines.append(line)
                line = word
            else:
                line = f"{line} {word}" if line else word
        lines.append(line)
    return lines


def fit_title(fig: go.Figure) -> go.Figure:
    """Wrap ``fig``'s title to lines that fit a phone and give it the top margin those lines need."""
    title = fig.layout.title.text
    if not title:
        return fig
    plain = title.replace("<sup>", "").replace("</sup>", "")
    lines = wrap(plain)
    top = fig.layout.margin.t if fig.layout.margin.t is not None else TEMPLATE.layout.margin.t
    fig.update_layout(
        title=dict(text="<br>".join(lines), yref="container", y=1, yanchor="top", pad=dict(t=12)),
        margin=dict(t=max(top, 24 + 19 * len(lines))),
    )
    return fig
