"""A report marks a rule from a plugin that fails `descentlab check`; built-ins and passing plugins are not marked."""

from __future__ import annotations

from descentlab.dashboard import report
from descentlab.experiment import load_experiment_file
from descentlab.records import load_results, save_results
from descentlab.registry import load_registry
from descentlab.runner import run_experiment

PLUGIN = """
from typing import NamedTuple
import numpy as np
from descentlab import DescentRule, hookimpl


class Empty(NamedTuple):
    pass


def init(params, hyper):
    return Empty()


def plain(grad, state, params, learning_rate, hyper, step):
    return -learning_rate * grad, state


def noisy(grad, state, params, learning_rate, hyper, step):
    return -learning_rate * grad * (1 + 0.01 * np.random.standard_normal(grad.shape)), state


@hookimpl
def register_optimizers(register):
    register(DescentRule("plain_gd", init, plain))
    register(DescentRule("noisy_gd", init, noisy))
"""

EXPERIMENT = """
name = "plugin-rules"
steps = 5
seeds = 1
eval_every = 0

[problem]
name = "quadratic"

[[rules]]
rule = "gd"
learning_rate = 0.1

[[rules]]
rule = "plain_gd"
learning_rate = 0.1

[[rules]]
rule = "noisy_gd"
learning_rate = 0.1
"""


def _record(tmp_path):
    plugin = tmp_path / "my_rules.py"
    plugin.write_text(PLUGIN, encoding="utf-8")
    spec = tmp_path / "exp.toml"
    spec.write_text(EXPERIMENT, encoding="utf-8")
    registry = load_registry([str(plugin)], use_env=False)
    results = run_experiment(load_experiment_file(spec, registry), registry=registry, workers=1)
    return load_results(save_results(results, tmp_path / "results")), plugin


def test_a_plugin_rule_that_fails_the_battery_is_marked_in_html_and_markdown(tmp_path):
    results, plugin = _record(tmp_path)
    section = report.build_section(results, with_figures=False)
    assert len(section.rule_checks) == 1
    (line,) = section.rule_checks
    assert line.startswith("⚠ rule 'noisy_gd'") and "fails descentlab check: " in line
    assert "deterministic" in line.split("fails descentlab check: ")[1].split("; ")
    assert str(plugin.resolve()) in line
    page = report.render_html([section])
    assert "fails descentlab check: " in page and "deterministic" in page
    assert page.index("fails descentlab check") < page.index("Summary per rule")
    markdown = report.render_markdown([section], {})
    assert "noisy\\_gd" in markdown and "fails descentlab check: " in markdown
    marks = [line for line in markdown.splitlines() if line.startswith("**⚠")]
    assert len(marks) == 1 and "noisy\\_gd" in marks[0]


def test_a_plugin_that_is_gone_is_marked_as_not_checked(tmp_path):
    results, plugin = _record(tmp_path)
    plugin.unlink()
    lines = report.build_section(results, with_figures=False).rule_checks
    assert len(lines) == 2 and all("was not checked: it is not registered here" in line for line in lines)


def test_built_in_rules_are_not_checked_or_marked(tmp_path, monkeypatch):
    import descentlab.conformance

    results, _ = _record(tmp_path)
    results.meta["plugins"]["rules"] = {"gd": "built-in"}
    monkeypatch.setattr(descentlab.conformance, "check_rule", None)  # it must not even be called
    assert report.build_section(results, with_figures=False).rule_checks == []
