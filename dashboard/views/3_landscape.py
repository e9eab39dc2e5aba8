"""Landscape page: the cost surface of a two-parameter problem with every run's path over it."""

import streamlit as st

from descentlab.dashboard import figures as F
from descentlab.dashboard import widgets as W
from descentlab.dashboard.presets import preset
from descentlab.dashboard.status_style import STATUS_STYLE
from descentlab.problem import is_landscape

TITLE = "Landscape"
ICON = ":material/terrain:"
URL_PARAM = "landscape"  # ?landscape=<experiment JSON> reopens this page's settings
PAGE = "land"

DEFAULT = preset("landscape")  # GD on a quadratic bowl with λₘₐₓ = 1, four α (presets/landscape.toml)

st.title("Landscape")
st.caption(
    "The cost over the two parameters, with each run's path θ₀, θ₁, … drawn on it. Too small an α crawls, "
    "a good one glides to the minimum, too large a one zig-zags across the valley and, past the "
    "stability limit, flies off. A run that blew up is marked where it went wrong: "
    f"{STATUS_STYLE['unstable'].glyph} unstable from that step (it runs on), "
    f"{STATUS_STYLE['diverged'].glyph} diverged there (the runner stopped it)."
)

registry = W.current_registry()
W.plugin_warnings(registry)
names = W.two_parameter_problems(registry)
start = W.initial_spec(PAGE, DEFAULT, URL_PARAM)
errors: list[str] = []
problem, settings = W.sidebar_editors(
    PAGE, registry, start, errors, names=names, needs="two parameters: a Landscape, or any problem of two weights"
)
rules = W.rules_editor(PAGE, registry, start.get("rules", []), errors, columns=4)
spec = {"name": "dashboard-landscape", **settings, "problem": problem, "rules": rules}
W.spec_to_url(spec, URL_PARAM)
results = W.run_when_asked(PAGE, spec, registry, errors)


@st.fragment
def paths_up_to_step(results, instance) -> None:
    """The step slider, the contour with the paths and the 1-D view: the slider reruns only this part."""
    steps = int(results.experiment.steps)
    key = f"{PAGE}.step"
    W.prime(key, steps)
    if st.session_state[key] > steps:
        st.session_state[key] = steps
    k = W.remember(key, st.slider("step", 0, steps, key=key, help="draw every path up to this step"))
    for note in W.divergence_notes(results):
        st.caption("⚠️ " + note)
    animate = st.toggle("animation controls (play the paths step by step)", value=True, key=f"{PAGE}.animate")
    W.chart(
        F.draw_landscape(F.landscape_info(results, instance, upto_step=k), animate=animate), f"{PAGE}.chart.contour"
    )
    axis_names = list(instance.axis_names) if is_landscape(instance) else ["θ₁", "θ₂"]  # declared Landscape names
    axis = st.radio(
        "one-parameter view along",
        [0, 1],
        format_func=lambda i: str(axis_names[i]),
        horizontal=True,
        key=f"{PAGE}.axis",
    )
    W.chart(F.draw_cost_curve(F.cost_curve_info(results, instance, axis=axis, upto_step=k)), f"{PAGE}.chart.curve")


if results is not None:
    if "path" not in results.weights:
        st.error(
            W.markdown_text(
                f"Problem {results.experiment.problem!r} has more than two parameters: no landscape to draw."
            )
        )
    else:
        paths_up_to_step(results, W.instance_for(results, registry))
        W.chart(F.draw_curves(F.loss_curves_info(results)), f"{PAGE}.chart.loss")
