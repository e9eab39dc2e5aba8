"""Decision-boundary page: each rule's classifier over the input plane, with the training points."""

import numpy as np
import streamlit as st

from descentlab.dashboard import figures as F
from descentlab.dashboard import widgets as W
from descentlab.dashboard.presets import preset
from descentlab.verdicts import is_flagged

TITLE = "Decision boundary"
ICON = ":material/scatter_plot:"
URL_PARAM = "boundary"  # ?boundary=<experiment JSON> reopens this page's settings
PAGE = "bound"

DEFAULT = preset("boundary")  # the Compare page's rules, one seed (dashboard/presets/boundary.toml)

st.title("Decision boundary")
st.caption(
    "The model's prediction over the input plane (colour) and the training points, one panel per "
    "descent variant (first seed), at the final step or any chosen step."
)

registry = W.current_registry()
W.plugin_warnings(registry)
names = W.two_input_classifiers(registry)
start = W.initial_spec(PAGE, DEFAULT, URL_PARAM)
errors: list[str] = []
problem, settings = W.sidebar_editors(
    PAGE, registry, start, errors, names=names, seeds=False, needs="a Predictor classifying points of the plane"
)
rules = W.rules_editor(PAGE, registry, start.get("rules", []), errors)
# the run keeps its weights at about 100 steps, so any earlier step is drawn without training again
snapshot_every = max(1, int(settings.get("steps", DEFAULT["steps"])) // 100)
spec = {
    "name": "dashboard-boundary",
    **settings,
    "seeds": 1,
    "snapshot_every": snapshot_every,
    "problem": problem,
    "rules": rules,
}
W.spec_to_url(spec, URL_PARAM)
results = W.run_when_asked(PAGE, spec, registry, errors)


@st.fragment
def boundary_at_step(results) -> None:
    """The step slider and the boundary it shows: moving the slider reruns only this part."""
    steps = int(results.experiment.steps)
    key = f"{PAGE}.step"
    W.prime(key, steps)
    if st.session_state[key] > steps:
        st.session_state[key] = steps
    k = W.remember(
        key,
        st.slider(
            "step",
            0,
            steps,
            key=key,
            help="the weights of the chosen step, as the run kept them (snapshot_every); "
            "between kept steps the latest kept one is shown",
        ),
    )
    instance = W.instance_for(results, registry)
    groups = F.run_groups(results)
    ids = [g.run_ids[0] for g in groups]
    kept = results.weights.get("snapshot_steps")
    if k == steps or kept is None:
        params = F.params_from_weights(results, instance, "final" if k == steps else "initial", ids)
        k = steps if k == steps else 0
    else:
        column = int(np.searchsorted(kept, k, side="right")) - 1
        k = int(kept[column])
        params = np.asarray(results.weights["snapshots"])[ids, column]
    if params is not None:
        status = dict(zip(results.runs["run_id"], results.runs["status"]))
        panels = [
            (
                g.name + (f" ({status.get(r)})" if is_flagged(status.get(r)) or status.get(r) == "failed" else ""),
                params[j],
            )
            for j, (g, r) in enumerate(zip(groups, ids))
        ]
        W.chart(F.draw_decision_boundary(F.decision_boundary_info(instance, panels, step=k)), f"{PAGE}.chart.boundary")


if results is not None:
    for note in W.divergence_notes(results):  # why a flagged run blew up (core's explanation), as on the Landscape page
        st.caption("⚠️ " + note)
    boundary_at_step(results)
    W.chart(F.draw_curves(F.loss_curves_info(results)), f"{PAGE}.chart.loss")
