"""LR finder page: the learning-rate range test (Smith; fastai lr_find) over seeds, with its suggestion."""

from __future__ import annotations

import json

import pandas as pd
import streamlit as st

from descentlab.dashboard import theory_figures as TF
from descentlab.dashboard import widgets as W
from descentlab.dashboard.presets import preset
from descentlab.lrfind import THEORY_NOTE, lr_find
from descentlab.stability import critical_learning_rate

TITLE = "LR finder"
ICON = ":material/search:"


@st.cache_data(show_spinner=False, max_entries=64)
def range_test(
    problem: str,
    settings_json: str,
    rule: str,
    seeds: tuple,
    start: float,
    end: float,
    steps: int,
    batch_size: int,
    registry_key: tuple,
    _registry,
):
    instance = _registry.problem(problem).build(json.loads(settings_json))
    result = lr_find(
        instance,
        _registry.rule(rule),
        {},
        seeds=list(seeds),
        start_lr=start,
        end_lr=end,
        num_steps=steps,
        batch_size=batch_size,
        registry=_registry,
    )
    return result, instance.describe().get("top_eigenvalue")


st.title("Learning-rate range test")
st.markdown(
    "One short run per seed in which α grows exponentially from *start* to *end*; the loss is smoothed "
    "(bias-corrected moving average, β = 0.98) and a run stops once it exceeds 4× its best. The suggested α "
    "is where the median smoothed loss falls fastest per decade of α (fastai's *steep*); the α of the minimum "
    "divided by 10 (fastai's *minimum*) is shown too. Where the problem's λₘₐₓ is known, the dashed line is "
    "the critical α from theory: the suggestion should sit left of it."
)

registry = W.current_registry()
# every problem whose defaults build (one that needs a setting first, like a CSV file's path, is left out)
names = W.problems_where(registry, lambda problem, instance: True, ("landscape", "regression", "classification"))
START = preset("lr_find")  # dashboard/presets/lr_find.toml
default_problem = names.index(START["problem"]) if START["problem"] in names else 0
cols = st.columns(2)
problem = cols[0].selectbox("problem", names, index=default_problem, key="lrfind_problem")
rule_names = sorted(registry.rules)
default_rules = [r for r in START["rules"] if r in rule_names]
rules = cols[1].multiselect(
    "rules (their default hyperparameters)", rule_names, default=default_rules, key="lrfind_rules"
)
problem_decl = registry.problem(problem)
settings = {h.name: h.default for h in problem_decl.settings}
if "lambda_max" in settings:  # a problem that declares its curvature as a setting (by setting, not by name)
    cols = st.columns(2)
    settings["lambda_max"] = float(cols[0].number_input("λₘₐₓ of the bowl", 0.01, 1e4, 10.0, key="lrfind_lambda_max"))
if "start_spread" in settings:
    # a landscape's seeds differ only by this jitter of the start; without it every seed is the same run
    settings["start_spread"] = float(
        st.number_input("start_spread (seeded jitter of the start)", 0.0, 100.0, 0.5, key="lrfind_start_spread")
    )
cols = st.columns(5)
start = float(cols[0].number_input("start α", 1e-9, 1.0, 1e-6, format="%g", key="lrfind_start"))
end = float(cols[1].number_input("end α", 1e-6, 1e4, 10.0, format="%g", key="lrfind_end"))
steps = int(cols[2].number_input("steps", 10, 2000, 100, 10, key="lrfind_steps"))
n_seeds = int(cols[3].number_input("seeds", 1, 20, 3, key="lrfind_seeds"))
batch = int(cols[4].number_input("batch size (0 = full)", 0, 100_000, 0, key="lrfind_batch"))

found, rows, critical = [], [], {}
for rule in rules:
    try:
        result, top = range_test(
            problem,
            json.dumps(settings, sort_keys=True),
            rule,
            tuple(range(n_seeds)),
            start,
            end,
            steps,
            batch,
            W.registry_key(),
            registry,
        )
    except Exception as error:  # SpecError or a broken plugin rule: one line, the other rules still run
        W.show_error(error)
        continue
    try:
        crit = critical_learning_rate(registry.rule(rule), {}, top) if top is not None else None
    except Exception:  # a plugin's threshold function failing must not break the page
        crit = None
    if crit is not None:
        critical[rule] = crit
    found.append((rule, result))
    rows.append(
        {
            "rule": rule,
            "suggested α": result.suggested_lr,
            "minimum α / 10": result.minimum_lr,
            "critical α (theory)": crit,
            "why": result.reason,
        }
    )

if found:
    W.chart(TF.draw_lr_find(TF.lr_find_info(found, critical=critical)), key="lrfind_chart")
    st.dataframe(pd.DataFrame(rows), key="lrfind_table", hide_index=True)
    if any(value is not None for value in critical.values()):
        st.caption(THEORY_NOTE)  # the range test's lowest loss lies past the critical α by design
    st.caption(
        "The same test from the command line: `descentlab lr-find EXPERIMENT.toml [--rule NAME] "
        "[--start 1e-6] [--end 10] [--steps 100] [--out lr.json]`."
    )
else:
    st.info("Pick at least one rule.")
