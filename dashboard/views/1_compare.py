"""Compare page: one problem, several descent variants, every training curve on the same step axis."""

import streamlit as st

from descentlab.dashboard import widgets as W
from descentlab.dashboard.presets import preset
from descentlab.dashboard.status_style import STATUS_STYLE

TITLE = "Compare"
ICON = ":material/show_chart:"
URL_PARAM = "compare"  # ?compare=<experiment JSON> reopens this page's settings
PAGE = "cmp"

DEFAULT = preset("compare")  # vanilla GD, momentum and Adam on two spirals (dashboard/presets/compare.toml)

st.title("Compare descent variants")
st.caption(
    "Same problem, same data, same initial weights per seed: the runs differ only in the descent rule, "
    "its α and its schedule. Raise α until a run blows up and watch where it is marked: "
    f"{STATUS_STYLE['unstable'].glyph} unstable from the step it went wrong (it runs on), "
    f"{STATUS_STYLE['diverged'].glyph} diverged where the runner stopped it."
)

registry = W.current_registry()
W.plugin_warnings(registry)
start = W.initial_spec(PAGE, DEFAULT, URL_PARAM)
errors: list[str] = []

problem, settings = W.sidebar_editors(PAGE, registry, start, errors)

rules = W.rules_editor(PAGE, registry, start.get("rules", []), errors, transforms=True)
spec = {"name": "dashboard-compare", **settings, "problem": problem, "rules": rules}
W.spec_to_url(spec, URL_PARAM)

run_col, info_col = st.columns([1, 5])
results = W.run_when_asked(PAGE, spec, registry, errors, button_slot=run_col, info_slot=info_col)

if results is not None:
    wall = W.wall_time(results.meta)
    info_col.caption(
        f"{len(results.runs)} runs × {results.experiment.steps} steps on "
        f"{W.markdown_text(results.experiment.problem)}"
        + (f" in {wall:.2f} s" if wall is not None else "")
        + " (cached: re-running the same settings is instant)"
    )
    W.render_results(results, PAGE)
    with st.expander("Reproduce from the command line / save"):
        toml = results.experiment.to_toml()
        st.code(toml, language="toml")
        st.download_button("experiment.toml", toml, file_name="experiment.toml", key=f"{PAGE}.download_toml")
        if st.button("Save these results under results/", key=f"{PAGE}.save"):
            try:
                from descentlab.records import save_results

                path = save_results(results)
                st.success(W.markdown_text(f"Saved to {path} (open it on the Results page)."))
            except Exception as error:
                W.show_error(error)
