"""Honest comparison page: a protocol comparison saved by ``descentlab run`` (protocol.json), never re-run."""

from pathlib import Path

import streamlit as st

from descentlab.dashboard import access
from descentlab.dashboard import widgets as W
from descentlab.dashboard.protocol_report import best_so_far_figure, load_comparison, profile_figure
from descentlab.errors import SpecError

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
    "on tune seeds; every number here comes from the test seeds. Read from protocol.json: nothing is re-run."
)

folder_key = f"{PAGE}.folder"
W.prime(folder_key, st.query_params.get("folder", access.results_dir()))
folder = W.remember(folder_key, st.text_input("folder", key=folder_key, help="a results folder, or a folder of them"))
try:  # only folders under the allowed roots are read, as on the Results page
    root = access.check_path("folder", folder)
except SpecError as error:
    W.show_error(error)
    st.stop()
found = comparisons_in(root)
if not found:
    st.info(
        f"No protocol comparison under {W.markdown_text(folder)} yet. Run "
        "`descentlab run examples/teaching_suite.toml`."
    )
    st.stop()
by_name = {("." if p == root else p.name): p for p in found}
pick_key = f"{PAGE}.pick"
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
if comparison.timing_note:
    st.caption(f"Time to target: {W.markdown_text(comparison.timing_note)}.")
with st.expander(f"pairwise and tuning verdicts ({len(comparison.verdicts)})"):
    st.markdown("\n".join(f"- {W.markdown_text(v)}" for v in comparison.verdicts))
W.chart(profile_figure(comparison), f"{PAGE}.chart.profile")
st.caption(f"Profile measure: {W.markdown_text(comparison.measure)}.")
W.chart(best_so_far_figure(comparison), f"{PAGE}.chart.best_so_far")
st.code(comparison.reproduce or comparison.command, language="sh")
