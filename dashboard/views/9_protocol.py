"""Honest comparison page: run the teaching suite through the protocol, or read a comparison saved by
``descentlab run`` (protocol.json); a saved comparison is never re-run."""

from pathlib import Path

import streamlit as st

from descentlab.dashboard import access
from descentlab.dashboard import widgets as W
from descentlab.dashboard.presets import preset
from descentlab.dashboard.protocol_report import best_so_far_figure, load_comparison, profile_figure
from descentlab.errors import SpecError
from descentlab.experiment import Experiment
from descentlab.protocol import SUITES, run_protocol, save_outcome

DEFAULT = preset("protocol")  # the form's rules, budget and seeds (dashboard/presets/protocol.toml)
TITLE = "Honest comparison"
ICON = ":material/balance:"
PAGE = "proto"


def comparisons_in(folder: Path) -> list[Path]:
    """Result folders with a protocol.json under ``folder`` (or ``folder`` itself), newest first."""
    if not folder.is_dir():
        return []
    found = [
        p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".") and (p / "protocol.json").is_file()
    ]
    if (folder / "protocol.json").is_file():
        found.append(folder)
    return sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)


st.title(TITLE)
st.caption(
    "Comparisons run with a `[protocol]` table (docs/protocol.md): every rule tuned with the same budget "
    "on tune seeds; every number here comes from the test seeds. Run one below (saved like `descentlab run` "
    "saves it), or pick one saved: it is read from protocol.json, nothing is re-run."
)

folder_key = f"{PAGE}.folder"
W.prime(folder_key, st.query_params.get("folder", access.results_dir()))
folder = W.remember(folder_key, st.text_input("folder", key=folder_key, help="a results folder, or a folder of them"))
try:  # only folders under the allowed roots are read, as on the Results page
    root = access.check_path("folder", folder)
except SpecError as error:
    W.show_error(error)
    st.stop()
pick_key = f"{PAGE}.pick"
registry = W.current_registry()
with st.expander("Run a comparison on the teaching suite", expanded=not comparisons_in(root)):
    st.caption(
        f"The built-in suite of {len(SUITES['teaching'])} problems (docs/protocol.md), every chosen rule with the "
        "same budget; saved under the folder above. Every built-in rule takes about 30 s on 2 cores."
    )
    names = list(registry.rules)
    opening = [r["rule"] for r in DEFAULT["rules"] if r["rule"] in names]
    rules = st.multiselect("rules", names, default=opening, key=f"{PAGE}.rules")
    budget_col, tune_col, test_col = st.columns(3)
    budget = budget_col.number_input(
        "trials per rule (budget)", 1, 1000, DEFAULT["protocol"]["budget"], key=f"{PAGE}.budget"
    )
    tune_seeds = tune_col.number_input(
        "tune seeds", 1, 100, DEFAULT["protocol"]["tune_seeds"], key=f"{PAGE}.tune_seeds"
    )
    test_seeds = test_col.number_input(
        "test seeds",
        1,
        100,
        DEFAULT["protocol"]["test_seeds"],
        key=f"{PAGE}.test_seeds",
        help="at least 6 for a verdict other than cannot tell apart",
    )
    compete = st.checkbox(
        "the defaults compete with the trials",
        value=bool(DEFAULT["protocol"].get("defaults_compete", False)),
        key=f"{PAGE}.defaults_compete",
        help="off: tuned = the best of the budget's trials (Crowded Valley); on: never worse than the defaults "
        "on the tune seeds",
    )
    if st.button("Run the comparison", key=f"{PAGE}.run", type="primary"):
        spec = {
            "name": "teaching-suite",
            "suite": DEFAULT["suite"],
            "rules": [{"rule": name} for name in rules],
            "protocol": {
                "budget": int(budget),
                "tune_seeds": int(tune_seeds),
                "test_seeds": int(test_seeds),
                "defaults_compete": bool(compete),
            },
        }
        try:  # a bad choice or a broken plugin: one line, the page keeps working
            experiment = Experiment.from_dict(spec, registry)
            with st.spinner(f"tuning and testing {len(rules)} rules on {len(experiment.suite)} problems …"):
                outcome = run_protocol(experiment, registry=registry)
            saved = save_outcome(outcome, experiment, root)
            st.session_state[pick_key] = W.remember(pick_key, saved.name)  # show the comparison just run
        except Exception as error:
            W.show_error(error)
found = comparisons_in(root)
if not found:
    st.info(
        f"No protocol comparison under {W.markdown_text(folder)} yet. Run one above, or "
        "`descentlab run examples/teaching_suite.toml`."
    )
    st.stop()
by_name = {("." if p == root else p.name): p for p in found}
W.prime(pick_key, next(iter(by_name)))
if st.session_state[pick_key] not in by_name:
    st.session_state[pick_key] = next(iter(by_name))
picked = by_name[W.remember(pick_key, st.selectbox("comparison", list(by_name), key=pick_key))]
try:
    comparison = load_comparison(picked)
except Exception as error:  # a truncated or foreign protocol.json: one line, the page keeps working
    W.show_error(error)
    st.stop()

st.markdown(
    f"**Budget and split.** {W.markdown_text(comparison.statement)}  \n"
    f"**Selection.** {W.markdown_text(comparison.selection)}  \n"
    f"**Reported numbers.** {W.markdown_text(comparison.reported)}  \n"
    f"**Intervals.** {W.markdown_text(comparison.intervals)}  \n"
    f"**Verdicts.** {W.markdown_text(comparison.verdict_rule)}"
)
st.dataframe(comparison.leaderboard, key=f"{PAGE}.leaderboard", hide_index=True)
for failure in comparison.failures:  # a broken plugin, named with its file and line; the rest is compared
    st.warning(W.markdown_text(failure), icon="⚠️")
if comparison.timing_note:
    st.caption(f"Time to target: {W.markdown_text(comparison.timing_note)}.")
with st.expander(f"pairwise and tuning verdicts ({len(comparison.verdicts)})"):
    st.markdown("\n".join(f"- {W.markdown_text(v)}" for v in comparison.verdicts))
W.chart(profile_figure(comparison), f"{PAGE}.chart.profile")
st.caption(f"Profile measure: {W.markdown_text(comparison.measure)}.")
if "profile_steps" in comparison.data:  # AlgoPerf's kind: how fast each rule reaches the targets
    W.chart(profile_figure(comparison, "profile_steps"), f"{PAGE}.chart.profile_steps")
    st.caption(f"Profile measure: {W.markdown_text(comparison.data['profile_steps']['measure'])}.")
W.chart(best_so_far_figure(comparison), f"{PAGE}.chart.best_so_far")
st.code(comparison.reproduce or comparison.command, language="sh")
