"""descentlab.compare: a rule defined in a notebook cell runs beside the built-ins, step for step."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pytest

import descentlab as dl
from descentlab import SpecError


class NoState(NamedTuple):
    pass


SIGN = dl.DescentRule(
    "cell_sign",
    lambda params, hyper: NoState(),
    lambda grad, state, params, lr, hyper, step: (-lr * np.sign(grad), state),
    summary="sign descent, defined in a test as in a notebook cell",
)


def _by_hand(hessian, start, alpha, steps, step_of):
    """J = ½ pᵀHp on the quadratic landscape, descended by ``step_of(gradient)`` written out."""
    p, losses = np.array(start, dtype=float), []
    for _ in range(steps + 1):
        losses.append(0.5 * p @ hessian @ p)
        p = p - alpha * step_of(hessian @ p)
    return np.array(losses)


def test_cell_rule_and_builtin_follow_their_formulas_from_the_same_start():
    results = dl.compare(
        {"name": "quadratic", "condition": 5.0}, [SIGN, "gd"], learning_rates=[0.05, 0.2], seeds=1, steps=40
    )
    info = results.problem_info
    hessian, start = np.array(info["hessian"]), info["start"]
    loss = results.metric("loss")
    for row, run in enumerate(results.runs.itertuples()):
        step_of = np.sign if run.rule == "cell_sign" else (lambda g: g)
        np.testing.assert_allclose(
            loss[row], _by_hand(hessian, start, run.learning_rate, 40, step_of), rtol=1e-12, atol=1e-300
        )
    assert sorted(results.runs["rule"].unique()) == ["cell_sign", "gd"]


def test_learning_rates_fill_only_entries_that_name_none():
    results = dl.compare(
        "quadratic", [{"rule": "gd", "learning_rate": 0.3}, "momentum"], learning_rates=0.01, seeds=[0, 1], steps=5
    )
    alphas = results.runs.groupby("rule")["learning_rate"].unique()
    assert list(alphas["gd"]) == [0.3] and list(alphas["momentum"]) == [0.01]
    assert sorted(results.runs["seed"].unique()) == [0, 1]


def test_bad_input_is_one_line_naming_the_field():
    with pytest.raises(SpecError, match=r"rules\[0\]") as error:
        dl.compare("quadratic", [3.5])
    assert "\n" not in str(error.value)
    with pytest.raises(SpecError, match="steps"):
        dl.compare("quadratic", ["gd"], steps=-1)
    clash = dl.DescentRule("gd", SIGN.init, SIGN.update)
    with pytest.raises(SpecError, match="already registered"):
        dl.compare("quadratic", [clash])


@pytest.mark.parametrize(
    "arguments, field",
    [
        ({"problem": 3, "rules": ["gd"]}, "problem"),
        ({"problem": "quadratic", "rules": ["gd"], "progress": "yes"}, "progress"),
        ({"problem": "quadratic", "rules": ["gd"], "workers": 0}, "workers"),
        ({"problem": "quadratic", "rules": ["gd"], "workers": 1.5}, "workers"),
        ({"problem": "quadratic", "rules": ["gd"], "workers": True}, "workers"),
    ],
)
def test_bad_arguments_are_one_line_naming_the_argument(arguments, field):
    with pytest.raises(SpecError) as error:
        dl.compare(**arguments, steps=2)
    text = str(error.value)
    assert text.startswith(f"{field}: got ") and "expected" in text and "\n" not in text, text


def test_one_rule_alone_is_a_list_of_one():
    # a string is not a list of one-letter rule names
    for rule in ("gd", SIGN, {"rule": "gd", "learning_rate": 0.1}):
        results = dl.compare("quadratic", rule, seeds=1, steps=2, progress=False, workers=np.int64(1))
        assert len(results.runs) == 1


def test_in_a_notebook_compare_draws_one_progress_bar_updated_to_the_end(monkeypatch):
    # a stand-in IPython with a kernel: the bar is displayed once and updated in place, and its last
    # state is every run-step done (counted here from the experiment, not from the bar)
    import sys
    import types

    from descentlab import compare

    shown, updates = [], []

    class Handle:
        def update(self, obj):
            updates.append(obj.data)

    display_module = types.ModuleType("IPython.display")
    display_module.HTML = type("HTML", (), {"__init__": lambda self, data: setattr(self, "data", data)})
    display_module.display = lambda obj, display_id=False: (shown.append(obj.data), Handle())[1]
    ipython = types.ModuleType("IPython")
    ipython.get_ipython = lambda: types.SimpleNamespace(kernel=object())
    ipython.display = display_module
    monkeypatch.setitem(sys.modules, "IPython", ipython)
    monkeypatch.setitem(sys.modules, "IPython.display", display_module)

    results = compare("quadratic", ["gd", "momentum"], seeds=2, steps=30, workers=1)
    total = results.experiment.n_runs * results.experiment.steps
    assert len(shown) == 1 and updates
    assert f'value="{total}" max="{total}"' in updates[-1] and "100%" in updates[-1]
    assert "4 runs × 30 steps" in updates[-1]


def test_outside_a_notebook_the_bar_goes_to_a_terminal_only(monkeypatch, capsys):
    from descentlab import compare
    from descentlab.progress import auto_progress, in_notebook

    assert not in_notebook()
    compare("quadratic", ["gd"], seeds=1, steps=10, workers=1)
    assert capsys.readouterr().err == ""  # stderr is not a terminal under pytest: silent
    assert not auto_progress().enabled


def test_run_experiment_takes_progress_true_as_compare_does(monkeypatch):
    import io
    import sys

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    experiment = dl.Experiment.from_dict(
        {"steps": 7, "seeds": 3, "problem": {"name": "quadratic"}, "rules": [{"rule": "gd"}]}
    )
    dl.run_experiment(experiment, progress=True, workers=1)
    last = terminal.getvalue().split("\r")[-1]
    assert last.startswith("[" + "#" * 30 + "]") and "100%" in last and last.endswith("\n")
    dl.run_experiment(experiment, progress=False, workers=1)  # none
    with pytest.raises(SpecError, match=r"^progress: got 'yes'; expected True"):
        dl.run_experiment(experiment, progress="yes", workers=1)


def test_learning_rates_per_rule_or_label():
    results = dl.compare(
        "quadratic",
        ["gd", {"rule": "momentum", "label": "heavy ball"}, "adam"],
        learning_rates={"gd": [0.1, 1.0], "heavy ball": 0.05},
        seeds=1,
        steps=3,
        progress=False,
    )
    alphas = {label: sorted(group) for label, group in results.runs.groupby("label")["learning_rate"]}
    adam_default = dl.get_registry().rule("adam").default_learning_rate
    assert alphas == {"gd": [0.1, 1.0], "heavy ball": [0.05], "adam": [adam_default]}
    with pytest.raises(SpecError, match=r"^learning_rates: got 'sgd'; expected a key naming one of"):
        dl.compare("quadratic", ["gd"], learning_rates={"sgd": 0.1}, steps=2)


def test_cell_rule_on_a_problem_from_a_plugin_file():
    from pathlib import Path

    bowl = Path(__file__).resolve().parents[2] / "examples" / "plugins" / "bowl.py"
    registry = dl.load_registry([str(bowl)], entry_points=False, use_env=False)
    results = dl.compare("bowl", [SIGN], learning_rates=0.1, seeds=1, steps=3, registry=registry, progress=False)
    # sign descent from (−2, 2) on (x − 1)² + 4y²: each coordinate moves by α toward the minimum
    np.testing.assert_allclose(results.weights["final.x"][0], -2 + 3 * 0.1, rtol=1e-12)
    np.testing.assert_allclose(results.weights["final.y"][0], 2 - 3 * 0.1, rtol=1e-12)


def test_a_schedule_written_in_a_cell_is_registered_like_a_cell_rule():
    # α_t = α for t < 5, α/2 after: the recorded α_t is exactly that, however the schedule is handed over
    halve = dl.Schedule("halve_at_5", lambda step, base, hyper, total: base * np.where(step < 5, 1.0, 0.5))
    expected = 0.2 * np.where(np.arange(8) < 5, 1.0, 0.5)
    for entry, extra in (
        ({"rule": "gd", "learning_rate": 0.2, "schedule": "halve_at_5"}, {"schedules": [halve]}),
        ({"rule": "gd", "learning_rate": 0.2, "schedule": halve}, {}),
        ({"rule": SIGN, "learning_rate": 0.2, "schedule": {"name": halve, "warmup_steps": 0}}, {}),
    ):
        results = dl.compare("quadratic", [entry], seeds=1, steps=8, progress=False, **extra)
        np.testing.assert_allclose(results.metric("learning_rate")[0, :8], expected, rtol=0)


def test_notebook_bar_shows_the_time_left_while_it_runs():
    from descentlab.progress import NotebookProgress

    bar = NotebookProgress("4 runs")
    bar.started = 10.0
    assert bar._html(0, 100, 10.0).endswith("4 runs 0% &nbsp; 0.0 s")  # no pace yet
    assert bar._html(20, 100, 12.0).endswith("20% &nbsp; 2.0 s, 8 s left")  # 20 in 2 s: 80 more take 8 s
    assert bar._html(100, 100, 20.0).endswith("100% &nbsp; 10.0 s")


def test_a_cell_rule_the_registry_refuses_is_one_line_about_the_rule():
    bad = dl.DescentRule("bad name!", SIGN.init, SIGN.update)
    with pytest.raises(SpecError) as error:
        dl.compare("quadratic", [bad], steps=2)
    text = str(error.value)
    assert text.startswith("rules: got \"rule name 'bad name!': use letters, digits") and "\n" not in text
    assert "compare.py" not in text  # the register call inside compare is not where the mistake is


@pytest.mark.parametrize("workers", [0, -1, 1.5, "2", True])
def test_run_experiment_refuses_a_worker_count_it_cannot_use(workers):
    experiment = dl.Experiment.from_dict({"steps": 2, "problem": {"name": "quadratic"}, "rules": [{"rule": "gd"}]})
    with pytest.raises(SpecError, match=r"^workers: got .*; expected a count >= 1"):
        dl.run_experiment(experiment, workers=workers)
