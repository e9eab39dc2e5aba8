"""The plugin loop in the dashboard (issue #16): an edited plugin file is used when loaded again, a
link naming a rule this session lacks says so, and messages number the variants as the form does."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from descentlab.declarations import HyperParam
from apptest_helpers import open_app as open_page, shown
from plotly_values import plain_json

SMALL = {
    "steps": 12,
    "seeds": 1,
    "batch_size": 0,
    "eval_every": 4,
    "problem": {"name": "spirals", "samples": 30, "hidden": [4]},
}

PLUGIN = textwrap.dedent('''
    """A rule whose step is scaled by SCALE: 1.0 is gradient descent, 0.0 never moves."""
    from descentlab import DescentRule, hookimpl

    SCALE = {scale}

    def init(params, hyper):
        return ()

    def update(grad, state, params, learning_rate, hyper, step):
        return -SCALE * learning_rate * grad, state

    @hookimpl
    def register_optimizers(register):
        register(DescentRule("edited_rule", init, update, ()))
''')


def losses(at) -> list[float]:
    for chart in at.get("plotly_chart"):
        spec = plain_json(json.loads(chart.proto.spec))
        title = spec["layout"].get("title", {})
        if str(title.get("text", "") if isinstance(title, dict) else title).startswith("Training loss"):
            (trace,) = [t for t in spec["data"] if t.get("meta") == "train"]
            return [float(y) for y in trace["y"]]
    raise AssertionError("no training-loss chart")


def load_on_plugins_page(path: Path) -> AppTest:
    at = open_page("6_plugins.py")
    at.text_input(key="plug.path").input(str(path))
    at.button(key="plug.load").click()
    return at.run()


def test_an_edited_plugin_file_loaded_again_runs_its_new_code(tmp_path):
    plugin = tmp_path / "edited_plugin.py"
    plugin.write_text(PLUGIN.format(scale=1.0))
    first = load_on_plugins_page(plugin)
    assert not first.exception and not first.error, [e.value for e in first.error]
    assert any("edited_rule" in shown(s.value) for s in first.success)

    spec = {**SMALL, "rules": [{"rule": "edited_rule", "learning_rate": 0.5}]}
    first.switch_page("views/1_compare.py")
    first.query_params["compare"] = json.dumps(spec)
    first.run()
    assert not first.exception and not first.error, [e.value for e in first.error]
    moving = losses(first)
    assert moving[-1] < moving[0]  # scale 1: gradient descent lowers the loss

    plugin.write_text(PLUGIN.format(scale=0.0))  # now the rule never moves: the loss stays put
    first.switch_page("views/6_plugins.py")
    first.run()
    first.text_input(key="plug.path").input(str(plugin))
    first.button(key="plug.load").click()
    first.run()
    assert any("Reloaded edited_plugin.py" in shown(s.value) for s in first.success), [
        s.value for s in first.success
    ] + [w.value for w in first.warning]

    first.switch_page("views/1_compare.py")
    first.run()
    first.button(key="cmp.run").click()
    first.run()
    assert not first.exception and not first.error, [e.value for e in first.error]
    still = losses(first)
    assert still[0] == moving[0]  # same data and initial weights
    assert all(v == still[0] for v in still), still  # the new code ran, not the cached old result


def test_a_link_naming_a_rule_this_session_lacks_says_so_and_runs_nothing():
    spec = {**SMALL, "rules": [{"rule": "gd", "learning_rate": 0.1}, {"rule": "my_missing_rule", "learning_rate": 0.1}]}
    at = open_page("1_compare.py", compare=spec)
    assert not at.exception
    messages = [shown(e.value) for e in at.error]
    assert any(
        "rule #2 (rules[1].rule): rule 'my_missing_rule' is not registered in this session" in m and "Plugins page" in m
        for m in messages
    ), messages
    assert not [c for c in at.get("plotly_chart") if "Training loss" in c.proto.spec]  # nothing ran
    at.selectbox(key="cmp.rules.1.rule").set_value("adam")  # the user picks another: the error goes
    at.run()
    at.button(key="cmp.run").click()
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert at.get("plotly_chart")


def test_a_link_naming_a_missing_schedule_or_problem_says_so():
    spec = {
        **SMALL,
        "problem": {"name": "no_such_problem"},
        "rules": [{"rule": "gd", "learning_rate": 0.1, "schedule": {"name": "no_such_schedule"}}],
    }
    at = open_page("1_compare.py", compare=spec)
    assert not at.exception
    messages = [shown(e.value) for e in at.error]
    assert any("problem.name: problem 'no_such_problem' is not registered" in m for m in messages), messages
    assert any(
        "rule #1 (rules[0].schedule.name): schedule 'no_such_schedule' is not registered" in m for m in messages
    ), messages


def test_messages_number_variants_as_the_form_does():
    spec = {
        **SMALL,
        "rules": [{"rule": "gd", "learning_rate": 0.1}, {"rule": "adam", "learning_rate": 0.01, "beta1": 5.0}],
    }
    at = open_page("1_compare.py", compare=spec)
    labels = [s.label for s in at.selectbox if s.key and s.key.endswith(".rule")]
    assert labels[:2] == ["rule #1", "rule #2"]
    messages = [shown(e.value) for e in at.error]
    assert any(m.startswith("rule #2 (rules[1].beta1)") for m in messages), messages


@pytest.mark.parametrize(
    "declaration, accepted",
    [
        (dict(low=0.0, low_open=True, log=True), True),
        (dict(low=1e-8, log=True), True),
        (dict(low=0.0, log=True), False),
        (dict(low=-1.0, low_open=True, log=True), False),
    ],
)
def test_log_scale_bounds_are_accepted_only_when_every_value_is_positive(declaration, accepted):
    if accepted:
        h = HyperParam("rate", 0.1, **declaration)
        h.validate_declaration()
        assert h.check(1e-6) == 1e-6
        with pytest.raises(Exception):
            h.check(0.0)
    else:
        from descentlab import DescentRule, hookimpl
        from descentlab.registry import load_registry

        class Plugin:
            @hookimpl
            def register_optimizers(self, register):
                register(
                    DescentRule(
                        "log_rule",
                        lambda p, h: (),
                        lambda g, s, p, a, h, t: (-a * g, s),
                        (HyperParam("rate", 0.1, **declaration),),
                    )
                )

        registry = load_registry(extra_plugins=[("logplugin", Plugin())], entry_points=False, use_env=False)
        assert "log_rule" not in registry.rules
        (message,) = registry.errors
        assert "log=True with low=" in message and "low_open=True" in message and "\n" not in message


def test_a_schedule_is_drawn_before_running_with_the_values_the_run_will_use():
    # the preview's α_t against the learning rates the run then records, step for step
    spec = {
        **SMALL,
        "steps": 30,
        "rules": [{"rule": "gd", "learning_rate": 0.2, "schedule": {"name": "step", "step_size": 10, "gamma": 0.5}}],
    }
    at = open_page("1_compare.py", compare=spec)
    assert not at.exception and not at.error, [e.value for e in at.error]
    previews = [
        json.loads(c.proto.spec)
        for c in at.get("plotly_chart")
        if "α_t of step" in str(json.loads(c.proto.spec)["layout"].get("title"))
    ]
    (preview,) = previews
    drawn = preview["data"][0]["y"]
    from descentlab.experiment import Experiment
    from descentlab.runner import run_experiment

    recorded = run_experiment(Experiment.from_dict(spec), workers=1).run_metrics(0)["learning_rate"]
    assert len(drawn) == 30 and drawn == pytest.approx(list(recorded[:30]), rel=1e-15)
    assert drawn[0] == 0.2 and drawn[10] == 0.1  # and by hand: ×0.5 every 10 steps


def test_a_stateful_schedule_says_it_cannot_be_drawn_before_running():
    spec = {**SMALL, "rules": [{"rule": "gd", "learning_rate": 0.2, "schedule": {"name": "reduce_on_plateau"}}]}
    at = open_page("1_compare.py", compare=spec)
    assert not at.exception
    titles = [str(json.loads(c.proto.spec)["layout"].get("title")) for c in at.get("plotly_chart")]
    assert any("stateful" in t and "cannot be drawn before running" in t for t in titles), titles


@pytest.mark.parametrize(
    "typed",
    [
        "/tmp/a\x00b.py",  # Path.resolve() raised "embedded null byte": a page exception
        "~no-such-user-here/x.py",  # expanduser() raised "Could not determine home directory"
        "x" * 5000,  # stat() raised "File name too long"
        "/dev/zero",
        "/",
    ],
)
def test_a_plugin_path_that_is_no_file_is_one_error_never_a_page_exception(typed):
    at = load_on_plugins_page(typed)
    assert not at.exception, [e.value for e in at.exception]
    errors = [shown(e.value) for e in at.error]
    assert (
        len(errors) == 1 and errors[0].startswith("plugin file: got ") and "expected an existing .py file" in errors[0]
    )
    assert len(errors[0]) < 400  # a 5000-character path is cut, not echoed whole
