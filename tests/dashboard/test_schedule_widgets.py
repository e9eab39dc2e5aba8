"""A schedule that joins others (torch SequentialLR) on the Compare page: its parts get widgets from
their declarations, it is drawn before running with the α_t the run then records, and a link that
holds one opens without an error."""

from __future__ import annotations

import pytest

from apptest_helpers import chart_titled, open_app
from descentlab.experiment import Experiment
from descentlab.runner import run_experiment

SMALL = {
    "steps": 30,
    "seeds": 1,
    "batch_size": 0,
    "eval_every": 0,
    "problem": {"name": "spirals", "samples": 30, "hidden": [4]},
}
KEY = "cmp.rules.0.schedule.sequential.parts"
WARMUP_THEN_COSINE = {
    "name": "sequential",
    "schedules": [{"name": "linear", "start_factor": 0.1, "end_factor": 1.0, "total_iters": 10}, {"name": "cosine"}],
    "milestones": [10],
}


def drawn(at) -> list[float]:
    return [float(y) for y in chart_titled(at, "α_t of sequential")["data"][0]["y"]]


def test_a_joined_schedule_from_a_link_is_drawn_with_the_rates_the_run_records():
    spec = {**SMALL, "rules": [{"rule": "gd", "learning_rate": 0.2, "schedule": WARMUP_THEN_COSINE}]}
    at = open_app("1_compare.py", compare=spec)
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert at.number_input(key=KEY).value == 2 and at.selectbox(key=f"{KEY}.1.name").value == "cosine"
    values = drawn(at)
    recorded = run_experiment(Experiment.from_dict(spec), workers=1).run_metrics(0)["learning_rate"]
    assert len(values) == 30 and values == pytest.approx(list(recorded[:30]), rel=1e-15)
    # by hand: α(0.1 + 0.9 t/10) for t < 10, then the cosine over the 20 steps left, restarted at α
    assert values[:10] == pytest.approx([0.2 * (0.1 + 0.09 * t) for t in range(10)], rel=1e-14)
    assert values[10] == pytest.approx(0.2, rel=1e-15) and values[20] == pytest.approx(0.1, rel=1e-14)


def test_editing_a_part_and_its_milestone_redraws_the_joined_schedule():
    spec = {**SMALL, "rules": [{"rule": "gd", "learning_rate": 0.2, "schedule": WARMUP_THEN_COSINE}]}
    at = open_app("1_compare.py", compare=spec)
    at.selectbox(key=f"{KEY}.1.name").set_value("exponential").run()
    at.slider(key=f"{KEY}.1.exponential.gamma").set_value(0.5).run()
    at.number_input(key=f"{KEY}.1.milestone").set_value(5).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    values = drawn(at)
    assert values[:5] == pytest.approx([0.2 * (0.1 + 0.09 * t) for t in range(5)], rel=1e-14)
    assert values[5:8] == pytest.approx([0.2, 0.1, 0.05], rel=1e-15)  # ExponentialLR restarted at its milestone


def test_choosing_sequential_on_the_form_starts_from_a_valid_warmup_then_cosine():
    at = open_app("1_compare.py", compare={**SMALL, "rules": [{"rule": "gd", "learning_rate": 0.2}]})
    at.selectbox(key="cmp.rules.0.schedule").set_value("sequential").run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    values = drawn(at)
    assert values[0] == pytest.approx(0.02) and values[10] == pytest.approx(0.2)


def test_a_bad_milestone_is_one_line_naming_the_field():
    spec = {**SMALL, "rules": [{"rule": "gd", "learning_rate": 0.2, "schedule": WARMUP_THEN_COSINE}]}
    at = open_app("1_compare.py", compare=spec)
    at.number_input(key=KEY).set_value(3).run()  # the third part's milestone defaults to 20, after 10
    at.number_input(key=f"{KEY}.2.milestone").set_value(4).run()  # before the second's: not increasing
    at.button(key="cmp.run").click().run()
    assert not at.exception
    messages = [e.value for e in at.error]
    assert any("schedule.milestones" in m and "strictly increasing" in m for m in messages), messages
