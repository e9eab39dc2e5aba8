"""Results page: browse saved experiments, see every plot without re-running, download the raw tables."""

import io
from pathlib import Path

import numpy as np
import streamlit as st

from descentlab.parts import is_partitioned
from descentlab.dashboard import access
from descentlab.dashboard import figures as F
from descentlab.dashboard import widgets as W
from descentlab.errors import SpecError
from descentlab.problem import is_classifier
from descentlab.verdicts import FLAGGED

TITLE = "Results"
ICON = ":material/folder_open:"
PAGE = "res"
RESULT_FILES = ("experiment.toml", "runs.parquet", "metrics.parquet")


def is_results_folder(p: Path) -> bool:
    """A folder ``load_results`` reads: one file per table, or a Dask sweep's partitioned parts."""
    if not (p / "experiment.toml").is_file():
        return False
    return all((p / f).is_file() for f in RESULT_FILES) or is_partitioned(p)


def changed_at(p: Path) -> float:
    """When a results folder last changed: its runs table, or the newest of its parts."""
    if (p / "runs.parquet").is_file():
        return (p / "runs.parquet").stat().st_mtime
    return max((f.stat().st_mtime for f in (p / "runs").rglob("*.parquet")), default=p.stat().st_mtime)


def experiments_in(folder: Path) -> list[Path]:
    """Result folders (written by ``descentlab run`` or the dashboard) under ``folder``, newest first."""
    if not folder.is_dir():
        return []
    # a hidden ".<name>.*.tmp" folder is a save still in progress (records are written atomically)
    found = [p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".") and is_results_folder(p)]
    if is_results_folder(folder):
        found.append(folder)
    return sorted(found, key=changed_at, reverse=True)


def _allowed(path: Path) -> bool:
    try:
        access.check_path("folder", path)
        return True
    except SpecError:
        return False


@st.cache_data(show_spinner=False, max_entries=16)
def _load(path: str, mtime: float):
    from descentlab.records import load_results

    return load_results(path)


def _parquet_bytes(frame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


st.title("Results")
st.caption(
    "Every experiment saved under a folder (default `results/`, where `descentlab run` writes). Opening "
    "one draws all its plots from the records: nothing is re-run."
)

folder_key = f"{PAGE}.folder"
W.prime(folder_key, st.query_params.get("folder", access.results_dir()))
folder = W.remember(
    folder_key,
    st.text_input(
        "folder",
        key=folder_key,
        help="a results folder, or a folder of them "
        "(under the results folder, the working directory or an --allow-path)",
    ),
)
try:  # a link's ?folder= may name any path: only folders under the allowed roots are read
    root = access.check_path("folder", folder)
except SpecError as error:
    W.show_error(error)
    st.stop()
# a symlinked experiment folder pointing outside the allowed roots is left out
found = [p for p in experiments_in(root) if _allowed(p)]
if not found:
    st.info(
        f"No saved experiments under {W.markdown_text(folder)} yet. Run `descentlab run experiment.toml`, "
        "or press *Save these results* on the Compare page."
    )
    st.stop()

# Options are names (not paths) so that AppTest and the URL see the same strings.
by_name = {("." if p == root else p.name): p for p in found}
names = list(by_name)
pick_key = f"{PAGE}.pick"
wanted = st.query_params.get("open")
W.prime(pick_key, wanted if wanted in by_name else names[0])
if st.session_state[pick_key] not in by_name:
    st.session_state[pick_key] = names[0]
picked_name = W.remember(pick_key, st.selectbox("experiment", names, key=pick_key))
picked = str(by_name[picked_name])
W.forget_other_pages_params(("folder", "open"))
st.query_params["folder"] = folder
st.query_params["open"] = picked_name

try:
    results = _load(picked, changed_at(Path(picked)))
except Exception as error:  # a truncated or foreign folder: one line, the page keeps working
    W.show_error(error)
    st.stop()

experiment = results.experiment
wall = W.wall_time(results.meta)
st.caption(
    f"**{W.markdown_text(experiment.name)}** — problem {W.markdown_text(experiment.problem)}, "
    f"{len(results.runs)} runs × {experiment.steps} steps"
    + (f", {wall:.2f} s" if wall is not None else "")
    + (f"; command: {W.markdown_text(results.meta.get('command'))}" if results.meta.get("command") else "")
)

# ---- downloads ---------------------------------------------------------------------------------
cols = st.columns(5)
stem = Path(picked).name
cols[0].download_button(
    "runs.csv",
    results.runs.to_csv(index=False),
    file_name=f"{stem}-runs.csv",
    mime="text/csv",
    key=f"{PAGE}.dl.runs_csv",
)
cols[1].download_button(
    "metrics.csv",
    results.metrics.to_csv(index=False),
    file_name=f"{stem}-metrics.csv",
    mime="text/csv",
    key=f"{PAGE}.dl.metrics_csv",
)
cols[2].download_button(
    "runs.parquet",
    _parquet_bytes(results.runs),
    file_name=f"{stem}-runs.parquet",
    mime="application/octet-stream",
    key=f"{PAGE}.dl.runs_parquet",
)
cols[3].download_button(
    "metrics.parquet",
    _parquet_bytes(results.metrics),
    file_name=f"{stem}-metrics.parquet",
    mime="application/octet-stream",
    key=f"{PAGE}.dl.metrics_parquet",
)
# ---- report export (owned by the report engineer: descentlab.dashboard.report.render_download) ----
with cols[4]:
    try:
        from descentlab.dashboard import report as _report
    except ImportError:
        _report = None
    if _report is not None and hasattr(_report, "render_download"):
        try:
            _report.render_download(results)
        except Exception as error:
            W.show_error(error)
# ------------------------------------------------------------------------------------------------

# ---- verdict: core's sentences and the per-rule summary (the report's table) ---------------------
st.subheader("Verdict")
try:
    from descentlab import analysis
    from descentlab.dashboard import report as R

    summary = analysis.summarize(results)
    st.markdown("\n".join(f"- {W.markdown_text(sentence)}" for sentence in analysis.verdict(summary, results)))
    st.dataframe(R.display_summary(summary), key=f"{PAGE}.rules", hide_index=True)
    reasons = R.divergence_table(results)
    if not reasons.empty:
        with st.expander(f"why runs blew up ({int(results.runs['status'].isin(FLAGGED).sum())} unstable or diverged)"):
            st.dataframe(reasons, key=f"{PAGE}.reasons", hide_index=True)
except Exception as error:  # records the analysis cannot read: the charts below still work
    W.show_error(error)

tabs = st.tabs(["Training", "Learning-rate sweep", "Landscape", "Decision boundary", "Spec"])
with tabs[0]:
    W.render_results(results, PAGE)
with tabs[1]:
    if results.runs.groupby("entry")["learning_rate"].nunique().max() > 1:
        W.chart(F.draw_sweep(F.sweep_info(results)), f"{PAGE}.chart.sweep")
        W.chart(F.draw_sweep_heatmap(F.sweep_heatmap_info(results)), f"{PAGE}.chart.heatmap")
    else:
        st.info("Each rule ran at a single α: no sweep to draw.")

registry = W.current_registry()
instance, why = None, ""
try:
    instance = W.instance_for(results, registry)
except Exception as error:  # the plugin that defined the problem may not be loaded now
    why = str(error).splitlines()[0]
with tabs[2]:
    if "path" not in results.weights:
        st.info("Not a two-parameter problem: no landscape.")
    elif instance is None:
        st.warning(W.markdown_text(f"Cannot rebuild problem {experiment.problem} to draw its contours: {why}"))
    else:
        k = st.slider("step", 0, int(experiment.steps), int(experiment.steps), key=f"{PAGE}.step")
        W.chart(F.draw_landscape(F.landscape_info(results, instance, upto_step=k)), f"{PAGE}.chart.contour")
        W.chart(F.draw_cost_curve(F.cost_curve_info(results, instance, upto_step=k)), f"{PAGE}.chart.curve")
with tabs[3]:
    # the declared Predictor capability on a classification dataset of two inputs
    if not (is_classifier(instance) and np.shape(instance.dataset.x_train)[1:] == (2,)):
        st.info("Not a two-input classification problem (or it cannot be rebuilt): no decision boundary.")
    else:
        groups = F.run_groups(results)
        ids = [g.run_ids[0] for g in groups]
        params = F.params_from_weights(results, instance, "final", ids)
        panels = [(g.name, params[j]) for j, g in enumerate(groups)][:9]
        W.chart(
            F.draw_decision_boundary(F.decision_boundary_info(instance, panels, step=int(experiment.steps))),
            f"{PAGE}.chart.boundary",
        )
with tabs[4]:
    st.code(experiment.to_toml(), language="toml")
    st.json(results.meta, expanded=False)
