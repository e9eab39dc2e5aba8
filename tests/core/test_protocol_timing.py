"""Wall time to target: a machine-dependent number kept apart from the seeded ones, timed steps only."""

from __future__ import annotations

import math
import time

import pytest
import test_runner_plugin
from test_runner_plugin import Quadratic, _settings_quadratic

from descentlab import DescentRule, Problem, hookimpl
from descentlab.experiment import Experiment
from descentlab.protocol import format_report, run_protocol, seconds_per_step
from descentlab.registry import load_registry

PAUSE = 0.004  # seconds every step of the pausing rule sleeps: time.sleep never returns early
BUILD = 0.6  # seconds the slow problem sleeps while it is built


def _init(params, hyper):
    return ()


def _pausing(grad, state, params, learning_rate, hyper, step):
    time.sleep(PAUSE)
    return -learning_rate * grad, state


class SlowBuild(Quadratic):
    def __init__(self, s):
        time.sleep(BUILD)  # what a dataset download or a big build costs: not a step
        super().__init__(s)


class TimingPlugin:
    @staticmethod
    @hookimpl
    def register_optimizers(register):
        register(DescentRule("test_pausing", _init, _pausing, default_learning_rate=0.5))

    @staticmethod
    @hookimpl
    def register_problems(register):
        register(Problem("test_slow_build", SlowBuild, _settings_quadratic(), kind="landscape", has_model=False))


@pytest.fixture(scope="module")
def registry():
    return load_registry(
        entry_points=False,
        use_env=False,
        extra_plugins=[("test", test_runner_plugin.RunnerTestPlugin), ("timing", TimingPlugin)],
    )


def test_seconds_per_step_counts_the_steps_not_the_build(registry):
    job = Experiment.from_dict(
        {"steps": 20, "seeds": [0], "problem": {"name": "test_slow_build"}, "rules": [{"rule": "test_pausing"}]},
        registry,
    )
    per_step = seconds_per_step(job, registry, repeats=2)  # the fastest of 2: a loaded machine may pause one
    # every step sleeps PAUSE; the build's BUILD / 20 = 0.02 s a step would be counted if it were timed
    assert PAUSE <= per_step < (PAUSE + BUILD / 20) / 2


def spec(rules, **protocol) -> dict:
    return {
        "name": "timed",
        "steps": 30,
        "problem": {"name": "test_quadratic", "start_spread": 0.5},
        "rules": rules,
        "protocol": {"budget": 2, "tune_seeds": 2, "test_seeds": 6, "lr_factors": [1, 1], "target": 1e-3, **protocol},
    }


def test_time_to_target_is_steps_times_seconds_per_step_and_leaves_the_numbers_alone(registry):
    experiment = Experiment.from_dict(
        spec([{"rule": "test_gd", "learning_rate": 0.5}, {"rule": "test_pausing", "learning_rate": 1e-6}]), registry
    )
    timed = run_protocol(experiment, registry=registry).report
    untimed = run_protocol(experiment, registry=registry, timing=False).report
    assert "timing" not in untimed and timed["problems"] == untimed["problems"]
    (problem,) = timed["problems"]
    clock = timed["timing"]["problems"][problem["key"]]
    assert set(clock) == {"test_gd", "test_pausing"} and "machine-dependent" in timed["timing"]["note"]
    by_label = {row["label"]: row for row in problem["rules"]}
    fast = clock["test_gd"]
    assert 0 < fast["seconds_per_step"] < PAUSE  # a 2-parameter step does not take 4 ms
    assert fast["time_to_target_s"] == pytest.approx(
        by_label["test_gd"]["tuned"]["steps_median"] * fast["seconds_per_step"]
    )
    # α = 1e-6 never reaches the target: its time to target is +inf whatever its clock
    assert by_label["test_pausing"]["tuned"]["steps_median"] == math.inf
    assert clock["test_pausing"]["time_to_target_s"] == math.inf and clock["test_pausing"]["seconds_per_step"] >= PAUSE
    text = format_report(timed)
    assert "time to target*" in text and "* time to target: wall time, machine-dependent" in text
    assert "time to target*" not in format_report(untimed)
