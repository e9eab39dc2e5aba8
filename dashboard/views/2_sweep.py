"""Learning-rate sweep page: final loss against α per rule, and loss over step × α."""

import math

import numpy as np
import streamlit as st

from descentlab.dashboard import figures as F
from descentlab.dashboard import widgets as W
from descentlab.dashboard.presets import preset
from descentlab.dashboard.status_style import STATUS_STYLE, counts_text
from descentlab.declarations import HyperParam
from descentlab.errors import SpecError

TITLE = "Learning-rate sweep"
ICON = ":material/tune:"
URL_PARAM = "sweep"  # ?sweep=<experiment JSON> reopens this page's settings
PAGE = "sweep"

DEFAULT = preset("sweep")  # three rules over 17 log-spaced α on sine (dashboard/presets/sweep.toml)

st.title("Learning-rate sweep")
st.caption(
    "Every rule runs at the same α values (log-spaced), on the same data and initial weights. "
    "Too small an α barely moves, a good one reaches a low loss, too large a one blows up. Each α is "
    "marked by the worst status over its seeds ("
    + ", ".join(f"{s.glyph} {s.label}" for s in STATUS_STYLE.values())
    + "; α where a seed blew up or failed sit at the top), ★ is the largest stable α of each rule: every seed "
    "converged or progressing, below the smallest α where a seed was unstable or diverged."
)

registry = W.current_registry()
W.plugin_warnings(registry)
start = W.initial_spec(PAGE, DEFAULT, URL_PARAM)
errors: list[str] = []
first_rates = next(
    (
        r.get("learning_rate")
        for r in start.get("rules", [])
        if isinstance(r.get("learning_rate"), list)
        and r.get("learning_rate")
        and all(isinstance(a, (int, float)) for a in r.get("learning_rate"))
    ),
    [1e-3, 10.0],
)

problem, settings = W.sidebar_editors(PAGE, registry, start, errors)
with st.sidebar:
    st.header("α range")
    lo = W.hyperparam_widget(
        HyperParam("alpha_min", 1e-3, log=True, low=0.0, low_open=True, help="smallest α"),
        f"{PAGE}.alpha_min",
        float(min(first_rates)),
        label="α min",
    )
    hi = W.hyperparam_widget(
        HyperParam("alpha_max", 10.0, log=True, low=0.0, low_open=True, help="largest α"),
        f"{PAGE}.alpha_max",
        float(max(first_rates)),
        label="α max",
    )
    points = W.hyperparam_widget(
        HyperParam("alpha_points", 17, 2, 64, kind="int", help="number of α values (log-spaced)"),
        f"{PAGE}.alpha_points",
        start.get("alpha_points", len(first_rates) if len(first_rates) > 2 else 17),
        label="points",
    )

alphas: list[float] = []
if not (lo > 0 and math.isfinite(lo)):
    errors.append(str(SpecError("α min", lo, "a number > 0")))
elif not (hi > lo):
    errors.append(str(SpecError("α max", hi, f"a number > α min = {lo:g}")))
elif not 2 <= int(points) <= 64:
    errors.append(str(SpecError("points", points, "an integer in [2, 64]")))
else:
    alphas = [float(f"{a:.6g}") for a in np.geomspace(lo, hi, int(points))]

rules = W.rules_editor(PAGE, registry, start.get("rules", []), errors, alpha_mode="range")
for entry in rules:
    entry["learning_rate"] = alphas
spec = {"name": "dashboard-sweep", **settings, "problem": problem, "rules": rules}
W.spec_to_url(
    {**spec, "rules": [{**r, "learning_rate": [lo, hi]} for r in rules], "alpha_points": int(points)}, URL_PARAM
)

results = W.run_when_asked(PAGE, spec, registry, errors, label="Run sweep")

if results is not None:
    info = F.sweep_info(results)
    sweep_figure = F.draw_sweep(info)
    # theory: the predicted critical α = c/λₘₐₓ per rule, where the problem knows λₘₐₓ (theory engineer)
    from descentlab.dashboard import theory_figures as TF

    TF.add_critical_lines(sweep_figure, TF.critical_lines_info(results))
    W.chart(sweep_figure, f"{PAGE}.chart.sweep")
    rows = [
        {
            "rule": line.name,
            "largest stable α": line.largest_stable,
            "final loss there": line.largest_stable_loss,
            "smallest unstable α": line.smallest_flagged,
            "runs by status": counts_text([s for seeds in line.statuses for s in seeds], glyphs=True),
            "best final loss": min((v for v in line.final_loss if v is not None), default=None),
            "at α": (
                line.alphas[
                    min(
                        range(len(line.alphas)),
                        key=lambda k: line.final_loss[k] if line.final_loss[k] is not None else math.inf,
                    )
                ]
                if any(v is not None for v in line.final_loss)
                else None
            ),
        }
        for line in info.lines
    ]
    st.dataframe(rows, key=f"{PAGE}.table", hide_index=True)
    W.chart(F.draw_sweep_heatmap(F.sweep_heatmap_info(results)), f"{PAGE}.chart.heatmap")
    st.checkbox("show every run's training curves", key=f"{PAGE}.curves", value=False)
    if st.session_state.get(f"{PAGE}.curves"):
        W.render_results(results, PAGE, show_layers=False, notes=False)
