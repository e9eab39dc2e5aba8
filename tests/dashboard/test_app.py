"""Streamlit AppTest of every dashboard page: runs, charts equal the runner's records, errors are one line."""

from __future__ import annotations

import json
import re
import textwrap

import numpy as np
import pytest

from descentlab.dashboard import figures as F
from descentlab.dashboard.status_style import STATUS_STYLE
from descentlab.experiment import Experiment
from descentlab.records import save_results
from descentlab.registry import load_registry
from descentlab.runner import run_experiment
from apptest_helpers import APP, chart_titled, no_trouble, open_app, shown

# Small enough that every page runs in well under a second.
SMALL = {
    "steps": 20,
    "seeds": 1,
    "batch_size": 0,
    "eval_every": 5,
    "problem": {"name": "spirals", "samples": 40, "hidden": [4]},
    "rules": [
        {"rule": "gd", "label": "vanilla GD", "learning_rate": 0.5},
        {"rule": "momentum", "label": "momentum", "learning_rate": 0.05},
        {"rule": "adam", "label": "Adam", "learning_rate": 0.01},
    ],
}


def traces(spec: dict, meta: str) -> list[dict]:
    return [t for t in spec["data"] if t.get("meta") == meta]


def records_for(spec: dict, name: str):
    registry = load_registry()
    experiment = Experiment.from_dict({**spec, "name": name}, registry)
    return run_experiment(experiment, registry=registry, workers=1)


def table_with(at, column: str):
    """The first dataframe on the page that has ``column`` (AppTest keeps no keys for read-only tables)."""
    for frame in at.dataframe:
        if column in frame.value.columns:
            return frame
    raise AssertionError(f"no table with a column {column!r} among {[list(f.value.columns) for f in at.dataframe]}")


def cell_styles(frame) -> dict[tuple[int, int], str]:
    """(row, column) -> the CSS a pandas Styler gave that cell in a Streamlit dataframe."""

    out: dict[tuple[int, int], str] = {}
    for selectors, body in re.findall(r"([^{}]+)\{([^}]*)\}", frame.proto.arrow_data.styler.styles):
        for selector in selectors.split(","):
            found = re.search(r"row(\d+)_col(\d+)", selector)
            if found:
                key = (int(found.group(1)), int(found.group(2)))
                out[key] = out.get(key, "") + body
    return out


# --- navigation -----------------------------------------------------------------------------------


def test_app_discovers_pages_in_file_name_order_with_their_titles():
    import importlib.util

    spec = importlib.util.spec_from_file_location("descentlab_app_for_test", APP)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # not __main__: defines the helpers without starting navigation
    namespace = vars(module)
    pages = namespace["discover_pages"]()
    names = [p.name for p in pages]
    assert names == sorted(names) and names[:7] == [
        "0_how_it_works.py",
        "1_compare.py",
        "2_sweep.py",
        "3_landscape.py",
        "4_decision_boundary.py",
        "5_results.py",
        "6_plugins.py",
    ]
    titles = [namespace["page_title"](p)[0] for p in pages[:7]]
    assert titles == [
        "How it works",
        "Compare",
        "Learning-rate sweep",
        "Landscape",
        "Decision boundary",
        "Results",
        "Plugins",
    ]


def test_a_page_title_is_read_again_when_its_file_changes(tmp_path):
    import importlib.util
    import os

    spec = importlib.util.spec_from_file_location("descentlab_app_for_title_test", APP)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    page = tmp_path / "3_my_page.py"
    page.write_text('TITLE = "First title"\nICON = ":material/star:"\n', encoding="utf-8")
    assert module.page_title(page) == ("First title", ":material/star:")
    page.write_text('TITLE = "Second title"\n', encoding="utf-8")
    stat = page.stat()
    os.utime(page, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # a later edit, whatever the clock's grain
    assert module.page_title(page) == ("Second title", None)
    page.unlink()
    assert module.page_title(page) == ("My page", None)  # gone: the file name, as for an unreadable page


# --- Compare ------------------------------------------------------------------------------------


def test_default_comparison_runs_with_one_loss_curve_per_rule():
    at = open_app()
    no_trouble(at)
    loss = chart_titled(at, "Training loss")
    assert [t["name"] for t in traces(loss, "train")] == ["vanilla GD", "momentum", "Adam"]
    shared = json.loads(
        at.query_params["compare"][0] if isinstance(at.query_params["compare"], list) else at.query_params["compare"]
    )
    assert [r["rule"] for r in shared["rules"]] == ["gd", "momentum", "adam"]
    assert shared["problem"]["name"] == "spirals"


def test_compare_ends_with_one_verdict_line_per_rule_and_one_row_per_configuration():
    spec = {
        **SMALL,
        "seeds": 2,
        "rules": [
            {"rule": "gd", "label": "GD *bold* [x]", "learning_rate": 0.5},
            {"rule": "gd", "label": "GD too big", "learning_rate": 50.0},
            {"rule": "adam", "label": "Adam", "learning_rate": 0.01},
        ],
    }
    at = open_app(compare=spec)
    no_trouble(at)
    records = records_for(spec, "verdict-check")
    from descentlab import analysis

    expected = [analysis.verdict_line(row) for row in analysis.summarize(records).itertuples()]
    shown = next(m.value for m in at.markdown if m.value.startswith("- "))
    lines = [line[2:].replace("\\", "") for line in shown.split("\n")]
    assert lines == expected  # the label's markup characters are shown literally
    assert expected[0].startswith("GD *bold* [x]: ")
    configs = table_with(at, "final_loss").value
    assert len(configs) == 3  # one row per configuration, seeds aggregated
    assert list(configs.columns[:3]) == ["label", "status", "final_loss"]
    assert len(table_with(at, "run_id").value) == 6  # every run, in its expander


def test_loss_values_in_the_chart_equal_the_runner_records():
    at = open_app(compare=SMALL)
    no_trouble(at)
    records = records_for(SMALL, "dashboard-compare")
    loss = chart_titled(at, "Training loss")
    train = traces(loss, "train")
    assert len(train) == 3
    for trace, run_id in zip(train, (0, 1, 2)):
        expected = records.metrics[records.metrics.run_id == run_id].sort_values("step")
        assert trace["x"] == expected["step"].tolist()
        assert trace["y"] == pytest.approx(expected["loss"].tolist(), rel=1e-12)
    test_curves = traces(loss, "test")
    expected = records.metrics[(records.metrics.run_id == 0) & records.metrics.test_loss.notna()]
    assert test_curves[0]["y"] == pytest.approx(expected["test_loss"].tolist(), rel=1e-12)


def test_raising_alpha_past_divergence_marks_the_run_at_the_recorded_step():
    at = open_app(compare=SMALL)
    no_trouble(at)
    assert not traces(chart_titled(at, "Training loss"), "diverged")
    at.number_input(key="cmp.rules.0.gd.learning_rate").set_value(1e6)
    at.button(key="cmp.run").click()
    at.run()
    no_trouble(at)
    spec = json.loads(json.dumps(SMALL))
    spec["rules"][0]["learning_rate"] = 1e6
    records = records_for(spec, "dashboard-compare")
    row = records.runs.loc[records.runs.run_id == 0].iloc[0]
    assert row.status == "diverged"
    step = int(row.diverged_at)
    (mark,) = traces(chart_titled(at, "Training loss"), "diverged")
    assert mark["x"] == [step]
    assert mark["text"] == [f"diverged at step {step}"]
    gd = traces(chart_titled(at, "Training loss"), "train")[0]
    assert gd["x"][-1] == step  # drawn up to the step it diverged, not beyond
    assert any(f"diverged at step {step}" in w.value for w in at.warning)


@pytest.mark.parametrize(
    "change, field",
    [
        (lambda at: at.number_input(key="cmp.n_rules").set_value(0), "rules"),
        (lambda at: at.number_input(key="cmp.rules.0.gd.learning_rate").set_value(0.0), "learning_rate"),
        (lambda at: at.number_input(key="cmp.rules.1.momentum.learning_rate").set_value(-1.0), "learning_rate"),
        (lambda at: at.number_input(key="cmp.steps").set_value(0), "steps"),
        (lambda at: at.text_input(key="cmp.problem.spirals.hidden").input("4, x"), "problem.hidden"),
        (lambda at: at.number_input(key="cmp.batch_size").set_value(10_000), "batch_size"),
    ],
)
def test_invalid_settings_give_one_line_errors_and_the_page_keeps_working(change, field):
    at = open_app(compare=SMALL)
    no_trouble(at)
    change(at)
    at.button(key="cmp.run").click()
    at.run()
    assert not at.exception
    messages = [shown(e.value) for e in at.error]
    assert len(messages) == 1 and field in messages[0] and "\n" not in messages[0]
    assert "Traceback" not in messages[0]
    assert at.button(key="cmp.run")  # the page is still there


def test_a_shared_link_reopens_the_same_comparison():
    at = open_app(compare=SMALL)
    at.number_input(key="cmp.rules.2.adam.learning_rate").set_value(0.02)
    at.button(key="cmp.run").click()
    at.run()
    link = at.query_params["compare"]
    link = link[0] if isinstance(link, list) else link
    again = open_app(compare=link)
    no_trouble(again)
    assert again.number_input(key="cmp.rules.2.adam.learning_rate").value == 0.02
    assert again.text_input(key="cmp.problem.spirals.hidden").value == "4"
    assert [t["name"] for t in traces(chart_titled(again, "Training loss"), "train")] == [
        "vanilla GD",
        "momentum",
        "Adam",
    ]


# --- plugins ------------------------------------------------------------------------------------

PLUGIN = textwrap.dedent('''
    """A test plugin: sign gradient descent with a few declared hyperparameters."""
    from typing import NamedTuple
    import numpy as np
    from descentlab import DescentRule, HyperParam, hookimpl

    class State(NamedTuple):
        count: np.ndarray

    def init(params, hyper):
        return State(np.zeros((params.shape[0], 1)))

    def update(grad, state, params, learning_rate, hyper, step):
        """θ ← θ − α·scale·sign(g)."""
        return -learning_rate * hyper["scale"] * np.sign(grad), State(state.count + 1)

    @hookimpl
    def register_optimizers(register):
        register(DescentRule("signgd_test", init, update, (
            HyperParam("scale", 1.0, low=1e-3, high=10.0, log=True, help="step multiplier"),
            HyperParam("lookahead", False, kind="bool", help="unused flag"),
            HyperParam("flavour", "plain", kind="choice", choices=("plain", "fancy"), help="unused choice"),
            HyperParam("window", 3, low=1, high=10, kind="int", help="unused integer"),
        ), summary="sign of the gradient", formula="θ ← θ − α·scale·sign(g)", default_learning_rate=0.02))
''')


def test_a_plugin_registered_in_the_test_appears_with_its_widgets(tmp_path, monkeypatch):
    plugin = tmp_path / "signgd_plugin.py"
    plugin.write_text(PLUGIN)
    monkeypatch.setenv("DESCENTLAB_PLUGINS", str(plugin))
    at = open_app(compare=SMALL)
    no_trouble(at)
    assert "signgd_test" in at.selectbox(key="cmp.rules.0.rule").options
    at.selectbox(key="cmp.rules.0.rule").set_value("signgd_test")
    at.run()
    base = "cmp.rules.0.signgd_test"
    assert at.number_input(key=f"{base}.learning_rate").value == 0.02  # the plugin's default α
    assert at.number_input(key=f"{base}.scale").value == 1.0
    assert at.checkbox(key=f"{base}.lookahead").value is False
    assert at.selectbox(key=f"{base}.flavour").options == ["plain", "fancy"]
    assert at.number_input(key=f"{base}.window").value == 3
    at.number_input(key=f"{base}.scale").set_value(0.5)
    at.button(key="cmp.run").click()
    at.run()
    no_trouble(at)
    assert traces(chart_titled(at, "Training loss"), "train")[0]["name"] == "signgd_test"

    page = open_app("6_plugins.py")
    no_trouble(page)
    labels = [shown(e.label) for e in page.expander]
    assert any("signgd_test" in label for label in labels)
    assert any(str(plugin) in shown(c.value) for c in page.caption)


def test_a_broken_plugin_file_is_reported_in_one_line(tmp_path):
    broken = tmp_path / "broken_plugin.py"
    broken.write_text("from descentlab import hookimpl\n\ndef oops(:\n")
    at = open_app("6_plugins.py")
    no_trouble(at)
    at.text_input(key="plug.path").input(str(broken))
    at.button(key="plug.load").click()
    at.run()
    assert not at.exception
    messages = [shown(e.value) for e in at.error]
    assert messages and "broken_plugin.py" in messages[0] and "SyntaxError" in messages[0]
    # the other plugins still work
    assert any("adam" in e.label for e in at.expander)


# --- the other pages ------------------------------------------------------------------------------


def test_sweep_page_marks_each_alpha_by_status_and_stars_the_largest_stable():
    spec = {
        "steps": 15,
        "seeds": 1,
        "eval_every": 5,
        "problem": {"name": "sine", "samples": 30, "hidden": [4]},
        "rules": [{"rule": "gd", "learning_rate": [1e-2, 100.0]}],
        "alpha_points": 5,
    }
    at = open_app("2_sweep.py", sweep=spec)
    no_trouble(at)
    sweep = chart_titled(at, "Learning-rate sweep")
    (line,) = traces(sweep, "final")
    assert line["x"] == pytest.approx([0.01, 0.1, 1.0, 10.0, 100.0])
    records = records_for(
        {k: v for k, v in spec.items() if k != "alpha_points"}
        | {"rules": [{"rule": "gd", "learning_rate": line["x"]}]},
        "dashboard-sweep",
    )
    runs = records.runs.sort_values("learning_rate")
    flagged = runs.loc[runs.status.isin(["unstable", "diverged"]), "learning_rate"].tolist()
    assert flagged, "α = 100 must blow up on this problem"
    (markers,) = traces(sweep, "status")  # one seed: each α's marker is that run's status
    assert markers["x"] == pytest.approx(runs.learning_rate.tolist())
    assert markers["marker"]["symbol"] == [STATUS_STYLE[s].symbol for s in runs.status]
    assert markers["marker"]["color"] == [STATUS_STYLE[s].color for s in runs.status]
    stable = [
        a for a, s in zip(runs.learning_rate, runs.status) if s in ("converged", "progressing") and a < min(flagged)
    ]
    (star,) = traces(sweep, "largest_stable")
    assert star["x"][0] == pytest.approx(max(stable))
    legend = [t["name"] for t in traces(sweep, "status_legend")]
    assert set(legend) == set(runs.status)
    heat = chart_titled(at, "Loss over step")
    assert heat["data"][0]["type"] == "heatmap"
    diverged = runs[runs.status == "diverged"]
    if len(diverged):  # the heatmap marks each diverged row at its diverged_at
        (crosses,) = traces(heat, "diverged")
        assert crosses["x"] == [int(v) for v in diverged.diverged_at]
    table = table_with(at, "smallest unstable α").value
    assert table["smallest unstable α"].tolist() == pytest.approx([min(flagged)])


def test_landscape_page_draws_paths_up_to_the_chosen_step():
    at = open_app("3_landscape.py")
    no_trouble(at)
    contour = chart_titled(at, "Cost surface")
    assert len(traces(contour, "path")) == 4
    at.slider(key="land.step").set_value(5)
    at.run()
    no_trouble(at)
    contour = chart_titled(at, "Cost surface")
    assert all(len(t["x"]) == 6 for t in traces(contour, "path"))
    assert chart_titled(at, "Cost along")


def test_landscape_page_offers_only_two_parameter_problems():
    at = open_app("3_landscape.py")
    options = at.selectbox(key="land.problem").options
    assert "quadratic" in options and "linear_regression" in options and "spirals" not in options


def test_decision_boundary_page_final_and_earlier_step():
    spec = {**SMALL, "steps": 10}
    at = open_app("4_decision_boundary.py", boundary=spec)
    no_trouble(at)
    boundary = chart_titled(at, "Decision boundary")
    assert len(traces(boundary, "prediction")) == 3
    at.slider(key="bound.step").set_value(4)
    at.run()
    no_trouble(at)
    earlier = chart_titled(at, "Decision boundary at step 4")
    # drawn from the run's kept weights, without training again: equal to the boundary of a 4-step run
    short = records_for({**spec, "steps": 4}, "short")
    registry = load_registry()
    instance = registry.problem("spirals").build(dict(short.experiment.problem_settings))
    params = F.params_from_weights(short, instance, "final", [0, 1, 2])
    expected = F.draw_decision_boundary(
        F.decision_boundary_info(instance, [(f"panel {j}", params[j]) for j in range(3)], step=4)
    ).to_plotly_json()
    for drawn, reference in zip(
        traces(earlier, "prediction"), [t for t in expected["data"] if t.get("meta") == "prediction"]
    ):
        np.testing.assert_allclose(
            np.asarray(drawn["z"], dtype=float), np.asarray(reference["z"], dtype=float), rtol=1e-12, equal_nan=True
        )
    assert "spirals" in at.selectbox(key="bound.problem").options
    assert "sine" not in at.selectbox(key="bound.problem").options


def test_results_page_opens_a_saved_experiment_without_rerunning(tmp_path):
    records = records_for(SMALL, "saved-compare")
    folder = save_results(records, tmp_path)
    at = open_app("5_results.py", folder=str(tmp_path))
    no_trouble(at)
    assert at.selectbox(key="res.pick").value == folder.name
    loss = chart_titled(at, "Training loss")
    for trace, run_id in zip(traces(loss, "train"), (0, 1, 2)):
        expected = records.metrics[records.metrics.run_id == run_id].sort_values("step")["loss"].tolist()
        assert trace["y"] == pytest.approx(expected, rel=1e-12)
    assert chart_titled(at, "Decision boundary")
    downloads = at.get("download_button")
    assert len(downloads) >= 4


def test_results_page_skips_a_save_still_in_progress(tmp_path):
    import shutil

    folder = save_results(records_for(SMALL, "saved-compare"), tmp_path)
    shutil.copytree(folder, tmp_path / f".{folder.name}.x1.tmp")  # what an unfinished save looks like
    at = open_app("5_results.py", folder=str(tmp_path))
    no_trouble(at)
    assert at.selectbox(key="res.pick").options == [folder.name]


def test_results_page_with_an_empty_folder_says_so(tmp_path):
    at = open_app("5_results.py", folder=str(tmp_path))
    assert not at.exception
    assert any("No saved experiments" in i.value for i in at.info)


def test_plugins_page_lists_every_rule_schedule_and_problem():
    at = open_app("6_plugins.py")
    no_trouble(at)
    labels = shown(" ".join(e.label for e in at.expander))
    registry = load_registry()
    for name in (*registry.rules, *registry.schedules, *registry.problems):
        assert f"**{name}**" in labels


def test_settings_survive_a_visit_to_another_page():
    at = open_app(compare=SMALL)
    at.number_input(key="cmp.rules.2.adam.learning_rate").set_value(0.03)
    at.run()
    at.switch_page("views/6_plugins.py")
    at.run()
    no_trouble(at)
    at.switch_page("views/1_compare.py")
    at.run()
    no_trouble(at)
    assert at.number_input(key="cmp.rules.2.adam.learning_rate").value == 0.03
    assert at.text_input(key="cmp.problem.spirals.hidden").value == "4"


BROKEN_AT_RUNTIME = textwrap.dedent("""
    from typing import NamedTuple
    import numpy as np
    from descentlab import DescentRule, hookimpl

    class State(NamedTuple):
        count: np.ndarray

    def init(params, hyper):
        return State(np.zeros((params.shape[0], 1)))

    def update(grad, state, params, learning_rate, hyper, step):
        raise ZeroDivisionError("this rule is broken on purpose")

    @hookimpl
    def register_optimizers(register):
        register(DescentRule("broken_test", init, update, summary="raises"))
""")


def test_broken_plugins_are_reported_and_the_page_keeps_working(tmp_path, monkeypatch):
    import os

    unimportable = tmp_path / "unimportable_plugin.py"
    unimportable.write_text("import no_such_module_anywhere\n")
    raising = tmp_path / "raising_plugin.py"
    raising.write_text(BROKEN_AT_RUNTIME)
    monkeypatch.setenv("DESCENTLAB_PLUGINS", os.pathsep.join([str(unimportable), str(raising)]))
    at = open_app(compare=SMALL)
    no_trouble(at)
    assert any("unimportable_plugin.py" in shown(w.value) and "ModuleNotFoundError" in w.value for w in at.warning)
    assert [t["name"] for t in traces(chart_titled(at, "Training loss"), "train")] == ["vanilla GD", "momentum", "Adam"]
    at.selectbox(key="cmp.rules.1.rule").set_value("broken_test")
    at.run()
    at.button(key="cmp.run").click()
    at.run()
    assert not at.exception
    assert any("failed" in w.value and "broken on purpose" in w.value for w in at.warning)
    names = [t["name"] for t in traces(chart_titled(at, "Training loss"), "train")]
    assert "vanilla GD" in names and "Adam" in names  # the other rules still ran


def test_summary_table_reports_steps_to_target_as_the_runner_does():
    spec = {**SMALL, "target_loss": 0.68}
    at = open_app(compare=spec)
    no_trouble(at)
    assert at.number_input(key="cmp.target_loss").value == 0.68
    records = records_for(spec, "dashboard-compare")
    table = table_with(at, "run_id").value
    assert table["run_id"].tolist() == records.runs["run_id"].tolist()
    for column in ("steps_to_target", "final_loss", "best_loss", "diverged_at"):
        assert table[column].tolist() == pytest.approx(records.runs[column].tolist(), nan_ok=True)
    assert records.runs["steps_to_target"].notna().any()  # the target is reachable in this test
    loss = chart_titled(at, "Training loss")
    assert any(shape.get("y0") == 0.68 for shape in loss["layout"].get("shapes", []))


def test_a_plugin_file_loaded_on_the_plugins_page_reaches_the_compare_page(tmp_path):
    plugin = tmp_path / "loaded_here_plugin.py"
    plugin.write_text(PLUGIN.replace("signgd_test", "signgd_loaded"))
    at = open_app("6_plugins.py")
    at.text_input(key="plug.path").input(str(plugin))
    at.button(key="plug.load").click()
    at.run()
    no_trouble(at)
    assert any("signgd_loaded" in shown(s.value) for s in at.success)
    at.switch_page("views/1_compare.py")
    at.run()
    no_trouble(at)
    assert "signgd_loaded" in at.selectbox(key="cmp.rules.0.rule").options


def test_schedules_and_seeds_reach_the_charts_as_recorded():
    spec = json.loads(json.dumps(SMALL))
    spec["seeds"] = 3
    spec["rules"][0]["schedule"] = {"name": "step", "step_size": 5, "gamma": 0.5, "warmup_steps": 2}
    at = open_app(compare=spec)
    no_trouble(at)
    assert at.selectbox(key="cmp.rules.0.schedule").value == "step"
    assert at.number_input(key="cmp.rules.0.schedule.step.step_size").value == 5
    assert at.number_input(key="cmp.rules.0.schedule.warmup").value == 2
    records = records_for(spec, "dashboard-compare")
    m = records.metrics
    rate = traces(chart_titled(at, "Learning rate"), "train")[0]
    expected = m[(m.run_id == 0) & m.learning_rate.notna()].sort_values("step")["learning_rate"]
    assert rate["y"] == pytest.approx(expected.tolist(), rel=1e-12)
    # three seeds: the median line and the interquartile band, from the records
    loss = chart_titled(at, "Training loss")
    ids = records.runs.loc[records.runs.entry == 2, "run_id"].tolist()
    table = m[m.run_id.isin(ids)].pivot(index="step", columns="run_id", values="loss")
    adam = next(t for t in traces(loss, "train") if t["name"] == "Adam")
    assert adam["y"] == pytest.approx(table.median(axis=1).tolist(), rel=1e-12)
    bands = [t for t in traces(loss, "band") if t["name"].startswith("Adam ")]
    assert {t["name"] for t in bands} == {"Adam 25%", "Adam 75%"}
    lower = next(t for t in bands if t["name"] == "Adam 25%")
    assert lower["y"] == pytest.approx(table.quantile(0.25, axis=1).tolist(), rel=1e-12)


def test_an_edited_link_with_nonsense_values_still_opens_the_page():
    nonsense = {
        "steps": "many",
        "seeds": -1,
        "eval_every": [1],
        "problem": {"name": "spirals", "hidden": "x, y", "noise": "loud"},
        "rules": [{"rule": "gd", "learning_rate": "fast", "weight_decay": None}, "not a table"],
    }
    at = open_app(compare=nonsense)
    assert not at.exception
    messages = [e.value for e in at.error]
    assert messages and all("\n" not in m for m in messages)
    assert at.button(key="cmp.run")
    broken = open_app(compare="{not json")
    assert not broken.exception
    assert any("not valid JSON" in w.value for w in broken.warning)
    assert traces(chart_titled(broken, "Training loss"), "train")  # the default comparison instead


@pytest.mark.parametrize(
    "page, param", [("2_sweep.py", "sweep"), ("3_landscape.py", "landscape"), ("4_decision_boundary.py", "boundary")]
)
def test_nonsense_links_do_not_break_the_other_pages(page, param):
    nonsense = {
        "steps": "many",
        "seeds": "some",
        "alpha_points": "lots",
        "problem": 7,
        "rules": [{"rule": 3, "learning_rate": ["a", "b"], "schedule": 5}, None],
    }
    at = open_app(page, **{param: nonsense})
    assert not at.exception, [e.value for e in at.exception]
    assert all("\n" not in e.value for e in at.error)


def test_a_grid_with_many_configurations_draws_the_chosen_curves(tmp_path):
    spec = {**SMALL, "rules": [{"rule": "gd", "learning_rate": [0.01 * 2**k for k in range(14)]}]}
    records = records_for(spec, "many")
    folder = save_results(records, tmp_path)
    at = open_app("5_results.py", folder=str(tmp_path))
    no_trouble(at)
    chosen = at.multiselect(key="res.groups")
    assert len(chosen.value) == 12 and len(chosen.options) == 14
    assert len(traces(chart_titled(at, "Training loss"), "train")) == 12
    last_two = chosen.options[-2:]
    chosen.set_value(last_two)
    at.run()
    assert [t["name"] for t in traces(chart_titled(at, "Training loss"), "train")] == last_two
    assert len(table_with(at, "run_id").value) == 14  # the summary still lists every run
    assert folder.exists()


# --- run verdicts: unstable runs are marked, statuses counted and coloured -------------------------


def _unstable_regression_spec() -> dict:
    """Linear regression with GD at α·λ_max = 2.1: past the limit 2, the loss climbs without diverging."""
    registry = load_registry()
    problem = registry.problems["linear_regression"]
    instance = problem.build({h.name: h.default for h in problem.settings})
    lam = float(instance.describe()["top_eigenvalue"])
    return {
        "steps": 40,
        "seeds": 1,
        "batch_size": 0,
        "eval_every": 10,
        "problem": {"name": "linear_regression"},
        "rules": [
            {"rule": "gd", "label": "α·λ_max = 0.5", "learning_rate": 0.5 / lam},
            {"rule": "gd", "label": "α·λ_max = 2.1", "learning_rate": 2.1 / lam},
        ],
    }


def test_compare_page_marks_an_unstable_run_and_counts_and_colours_the_statuses():
    spec = _unstable_regression_spec()
    at = open_app(compare=spec)
    no_trouble(at)
    records = records_for(spec, "dashboard-compare")
    runs = records.runs.sort_values("run_id")
    row = runs.iloc[1]
    assert row.status == "unstable", "precondition (core's verdict): α·λ_max = 2.1 blows up without diverging"
    step = int(row.unstable_at)
    loss = chart_titled(at, "Training loss")
    (mark,) = traces(loss, "unstable")
    assert mark["x"] == [step] and mark["text"] == [f"unstable from step {step}"]
    assert mark["marker"]["symbol"] == STATUS_STYLE["unstable"].symbol
    climbing = next(t for t in traces(loss, "train") if t["name"] == "α·λ_max = 2.1")
    assert climbing["x"][-1] == spec["steps"]  # not stopped: drawn to the last step
    assert any(f"unstable from step {step}" in w.value for w in at.warning)
    # the summary table: every status cell in its status's colour
    summary = table_with(at, "run_id")
    styles = cell_styles(summary)
    column = list(summary.value.columns).index("status")
    for i, status in enumerate(summary.value["status"]):
        assert STATUS_STYLE[status].color.lower() in styles[(i, column)].lower(), (status, styles.get((i, column)))
    # runs per status: the counts of the records, in a table and a caption
    counts = table_with(at, "runs").value
    expected = runs["status"].value_counts().to_dict()
    assert dict(zip(counts["status"], counts["runs"])) == expected
    caption = next(c.value for c in at.caption if c.value.startswith("Runs per status"))
    for status, n in expected.items():
        assert f"{n} {status}" in caption


def test_landscape_page_marks_the_unstable_path():
    """The issue: linear regression at α·λ_max = 2.1, the loss climbs to 1000 with no mark at all."""
    spec = _unstable_regression_spec()
    at = open_app("3_landscape.py", landscape=spec)
    no_trouble(at)
    records = records_for(spec, "dashboard-landscape")
    row = records.runs.sort_values("run_id").iloc[1]
    assert row.status == "unstable", "precondition (core's verdict)"
    step = int(row.unstable_at)
    (mark,) = traces(chart_titled(at, "Cost surface"), "unstable")
    path = records.weights["path"][int(row.run_id)]
    assert mark["x"] == pytest.approx([path[step, 0]]) and mark["y"] == pytest.approx([path[step, 1]])
    assert mark["text"] == [f"unstable from step {step}"]
    assert traces(chart_titled(at, "Cost along"), "unstable")
    assert traces(chart_titled(at, "Training loss"), "unstable")[0]["x"] == [step]
    assert any(f"unstable from step {step}" in c.value for c in at.caption)


def test_compare_page_shows_the_recorded_wall_time():

    at = open_app(compare=SMALL)
    no_trouble(at)
    assert any(re.search(r" in \d+\.\d\d s ", c.value) for c in at.caption), [c.value for c in at.caption]


def test_results_page_shows_the_recorded_wall_time(tmp_path):
    records = records_for(SMALL, "timed")
    records.meta["wall_time_s"] = 7.25  # what core/records.py writes (and the page once missed)
    save_results(records, tmp_path)
    at = open_app("5_results.py", folder=str(tmp_path))
    no_trouble(at)
    assert any("7.25 s" in c.value for c in at.caption), [c.value for c in at.caption]


def test_results_page_without_a_recorded_wall_time_still_opens(tmp_path):
    records = records_for(SMALL, "untimed")
    records.meta.pop("wall_time_s", None)
    save_results(records, tmp_path)
    at = open_app("5_results.py", folder=str(tmp_path))
    no_trouble(at)
    head = next(c.value for c in at.caption if "untimed" in c.value)
    assert " s;" not in head and not head.rstrip().endswith(" s")


def test_wall_time_reads_what_records_write():
    from descentlab.dashboard import widgets as W

    assert W.wall_time({"wall_time_s": 1.5}) == 1.5
    assert W.wall_time({"wall_time": 2.0}) == 2.0  # older key, still read
    assert W.wall_time({}) is None and W.wall_time(None) is None and W.wall_time({"wall_time_s": "x"}) is None


def test_results_page_gives_cores_verdict_and_the_new_summary_columns(tmp_path):
    from descentlab import analysis
    from descentlab.records import load_results

    spec = _unstable_regression_spec()
    folder = save_results(records_for(spec, "verdicts"), tmp_path)
    at = open_app("5_results.py", folder=str(tmp_path))
    no_trouble(at)
    stored = load_results(folder)
    text = shown(" ".join(m.value for m in at.markdown))
    for sentence in analysis.verdict(analysis.summarize(stored), stored):
        assert sentence in text, sentence
    rules = table_with(at, "seeds stable at best α").value
    assert "smallest unstable α" in rules and "runs by status" in rules
    assert not [c for c in rules.columns if "finished" in c]
    flagged = stored.runs[stored.runs.status.isin(["unstable", "diverged"])]
    why = table_with(at, "why it blew up").value
    assert len(flagged) and why["status"].str.split().str[-1].tolist() == flagged["status"].tolist()


def test_cached_results_are_shared_not_copied_and_read_only():
    # one Results object for every rerun and session (st.cache_resource): no per-rerun copy
    from descentlab.dashboard import widgets as W

    registry = load_registry()
    spec = {**SMALL, "name": "shared-cache"}
    first = W._run_cached(
        json.dumps(W.validate(spec, registry).to_dict(), sort_keys=True, default=str), ((), ""), registry
    )
    again = W._run_cached(
        json.dumps(W.validate(spec, registry).to_dict(), sort_keys=True, default=str), ((), ""), registry
    )
    assert first is again
    with pytest.raises(ValueError):
        next(iter(first.weights.values()))[...] = 0.0
