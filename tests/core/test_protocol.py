"""The comparison protocol on cases known by construction: seeds it reads, budgets, intervals, verdicts, profiles."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from descentlab import Problem, hookimpl, stats
from descentlab.errors import SpecError
from descentlab.experiment import Experiment
from descentlab.protocol import (
    BOOTSTRAP_SEED,
    draw_trials,
    format_report,
    grid_trials,
    load_protocol,
    run_protocol,
    save_protocol,
)
from descentlab.runner import run_experiment


def spec(protocol: dict, rules=None, **top) -> dict:
    return {
        "name": "p",
        "steps": 20,
        "problem": {"name": "quadratic", "start_spread": 0.5},
        "rules": rules or [{"rule": "gd"}, {"rule": "momentum"}],
        "protocol": protocol,
        **top,
    }


class Recorder:
    """The runner, recording every batch it is handed: its name, seeds and labels."""

    def __init__(self):
        self.calls = []

    def __call__(self, experiment):
        self.calls.append((experiment.name, list(experiment.seeds), [e.label for e in experiment.entries]))
        return run_experiment(experiment, workers=1)


def test_tuning_never_sees_a_test_seed_and_the_choice_does_not_depend_on_them():
    chosen = []
    for test_seeds in ([10, 11, 12], [20, 21, 22, 23]):
        recorder = Recorder()
        experiment = Experiment.from_dict(spec({"budget": 3, "tune_seeds": [0, 1], "test_seeds": test_seeds}))
        report = run_protocol(experiment, run=recorder).report
        tune_calls = [c for c in recorder.calls if c[0].endswith("-tune")]
        test_calls = [c for c in recorder.calls if c[0].endswith("-test")]
        assert tune_calls and test_calls and len(tune_calls) + len(test_calls) == len(recorder.calls)
        for _, seeds, _ in tune_calls:
            assert set(seeds) == {0, 1} and not set(seeds) & set(test_seeds)
        # every reported number comes from a test batch, and only test seeds are in it
        assert all(set(seeds) == set(test_seeds) for _, seeds, _ in test_calls)
        for row in report["problems"][0]["rules"]:
            assert len(row["tuned"]["scores"]) == len(test_seeds) == len(row["one_shot"]["scores"])
        chosen.append([row["chosen_config"] for row in report["problems"][0]["rules"]])
    assert chosen[0] == chosen[1]


@pytest.mark.parametrize("search", ["random", "grid"])
def test_every_rule_gets_the_same_budget(search):
    # gd tunes one dimension (α), momentum three (α, momentum, dampening): the grid cannot be square for both
    recorder = Recorder()
    experiment = Experiment.from_dict(spec({"budget": 5, "search": search, "tune_seeds": 1, "test_seeds": 1}))
    report = run_protocol(experiment, run=recorder).report
    labels = recorder.calls[0][2]
    for rule in ("gd", "momentum"):
        assert sum(label.startswith(f"{rule} [trial ") for label in labels) == 5
        assert f"{rule} [default]" in labels
    assert [len(r["trial_medians"]) for r in report["problems"][0]["rules"]] == [5, 5]
    # and the report states it, with the seeds, beside every leaderboard
    assert report["statement"].startswith(f"every rule: 5 {search}-search trials (seed 0) on tune seeds [0]")
    assert "test seeds [1]" in report["statement"] and report["statement"] in format_report(report)


def test_grid_covers_each_dimension_on_its_scale():
    space = {"learning_rate": (1e-3, 1e1, True, "float"), "momentum": (0.0, 1.0, False, "float")}
    trials = grid_trials(space, 10, seed=0)
    assert len(trials) == 10  # a 3 x 3 grid and one random draw
    alphas = sorted({t["learning_rate"] for t in trials[:9]})
    assert np.allclose(np.diff(np.log(alphas)), np.log(10) * 4 / 3)  # equal steps in log α
    assert sorted({t["momentum"] for t in trials[:9]}) == pytest.approx([1 / 6, 1 / 2, 5 / 6])
    assert all(0 <= t["momentum"] < 1 and 1e-3 <= t["learning_rate"] <= 10 for t in trials)
    assert draw_trials(space, 4, "random", 3) == draw_trials(space, 4, "random", 3)  # seeded


def _two_gd(alpha_a: float, alpha_b: float, test_seeds: int = 8) -> Experiment:
    # lr_factors [1, 1] pins every trial to the entry's α (gd has no other bounded hyperparameter)
    return Experiment.from_dict(
        spec(
            {"budget": 2, "tune_seeds": 2, "test_seeds": test_seeds, "lr_factors": [1, 1]},
            rules=[
                {"rule": "gd", "label": "a", "learning_rate": alpha_a},
                {"rule": "gd", "label": "b", "learning_rate": alpha_b},
            ],
        )
    )


def test_verdicts_on_cases_known_by_construction():
    # α = 0.5 on a quadratic with λ_max = 1 contracts every direction; α = 1e-6 barely moves in 20 steps
    report = run_protocol(_two_gd(0.5, 1e-6), run=Recorder()).report
    (pair,) = report["problems"][0]["pairwise"]
    assert (pair["a"], pair["b"], pair["verdict"]) == ("a", "b", "better")
    report = run_protocol(_two_gd(1e-6, 0.5), run=Recorder()).report
    assert report["problems"][0]["pairwise"][0]["verdict"] == "worse"
    # the same rule at the same α on the same seeds: identical samples
    report = run_protocol(_two_gd(0.1, 0.1), run=Recorder()).report
    pair = report["problems"][0]["pairwise"][0]
    assert pair["verdict"] == "cannot tell apart"
    assert "cannot tell apart at 8 seeds (p = 1, exact paired" in pair["sentence"]
    # better on every seed, but at 5 seeds the paired test cannot reach p < 0.05 (2 / 2^5 = 0.0625)
    report = run_protocol(_two_gd(0.5, 1e-6, test_seeds=5), run=Recorder()).report
    pair = report["problems"][0]["pairwise"][0]
    assert pair["verdict"] == "cannot tell apart" and pair["p_value"] == pytest.approx(0.0625)
    # and separated / identical samples straight into the tests
    assert stats.compare_samples([1, 2, 3, 4, 5], [11, 12, 13, 14, 15]).verdict == "better"
    assert stats.compare_samples([1, 2, 3, 4, 5], [1, 2, 3, 4, 5]).verdict == "cannot tell apart"


def test_reported_interval_is_a_direct_bootstrap_of_the_test_seed_medians():
    report = run_protocol(_two_gd(0.05, 0.01), run=Recorder()).report
    for row in report["problems"][0]["rules"]:
        values = row["tuned"]["scores"]
        rng = np.random.default_rng(BOOTSTRAP_SEED)
        draws = rng.integers(0, len(values), size=(stats.RESAMPLES, len(values)))
        medians = [float(np.median([values[i] for i in d])) for d in draws]
        expected = (np.quantile(medians, (1 - stats.LEVEL) / 2), np.quantile(medians, (1 + stats.LEVEL) / 2))
        assert row["tuned"]["ci"] == pytest.approx(expected, rel=1e-12)
        assert row["tuned"]["median"] == pytest.approx(float(np.median(values)))


def test_profile_against_a_hand_computed_example():
    # three problems; ratios to the best: A (1, 2, inf), B (2, 1, 1), C (4, 3, 2)
    costs = {
        "A": {"p": 1.0, "q": 2.0, "r": math.inf},
        "B": {"p": 2.0, "q": 1.0, "r": 1.0},
        "C": {"p": 4.0, "q": 3.0, "r": 2.0},
    }
    taus = [1.0, 2.0, 3.0, 4.0]
    rho = stats.performance_profile(costs, taus)
    assert rho["A"].tolist() == pytest.approx([1 / 3, 2 / 3, 2 / 3, 2 / 3])
    assert rho["B"].tolist() == pytest.approx([2 / 3, 1, 1, 1])
    assert rho["C"].tolist() == pytest.approx([0, 1 / 3, 2 / 3, 1])
    # area over [1, 4] by steps held until the next τ, divided by the width 3
    assert stats.profile_area(taus, rho["B"]) == pytest.approx((2 / 3 + 1 + 1) / 3)
    assert stats.profile_area(taus, rho["C"]) == pytest.approx((0 + 1 / 3 + 2 / 3) / 3)


def test_protocol_json_round_trip_keeps_failures_as_inf(tmp_path):
    report = {"a": [1.0, math.inf], "b": {"c": -math.inf}}
    save_protocol(report, tmp_path)
    text = (tmp_path / "protocol.json").read_text()
    assert "Infinity" not in text and json.loads(text)["a"][1] == "inf"
    assert float(load_protocol(tmp_path)["b"]["c"]) == -math.inf
    assert not list(tmp_path.glob(".*tmp*"))  # the atomic write left no temporary


BAD = [
    ({"budget": 0}, "protocol.budget", "an integer in [1, 1000]"),
    ({"budget": "8"}, "protocol.budget", "an integer"),
    ({"search": "bayes"}, "protocol.search", "'random', 'grid'"),
    ({"tune_seeds": [0, 1], "test_seeds": [1, 2]}, "protocol.test_seeds", "disjoint"),
    ({"tune_seeds": 0}, "protocol.tune_seeds", "a count n >= 1"),
    ({"lr_factors": [10, 1]}, "protocol.lr_factors", "0 < low <= high"),
    ({"tune": ["nope"]}, "protocol.tune", "momentum"),
    ({"target": "low"}, "protocol.target", "a number"),
    ({"tune_seeds": [2**32 - 1], "test_seeds": 3}, "protocol.test_seeds", "below 2**32"),
    ({"budget": 1000, "tune_seeds": 100}, "protocol.budget", "at most 100000 tuning runs"),
    ({"bugdet": 3}, "protocol", "one of the keys budget"),
]


@pytest.mark.parametrize("protocol, field, accepted", BAD)
def test_bad_protocol_is_one_line_naming_field_value_and_accepted(protocol, field, accepted):
    with pytest.raises(SpecError) as caught:
        Experiment.from_dict(spec(protocol))
    message = str(caught.value)
    assert "\n" not in message and message.startswith(field) and accepted in message
    name = field.rpartition(".")[2]
    assert repr(protocol[name] if name in protocol else next(iter(protocol)))[:4] in message


def test_bad_suite_and_seed_declarations():
    with pytest.raises(SpecError, match="^seeds: .*protocol.tune_seeds"):
        Experiment.from_dict(spec({}, seeds=3))
    base = spec({})
    del base["problem"]
    with pytest.raises(SpecError, match="^suite: got 'nope'; expected one of 'teaching'"):
        Experiment.from_dict({**base, "suite": "nope"})
    with pytest.raises(SpecError, match=r"^problems\[1\]: problem.name: got 'nope'"):
        Experiment.from_dict({**base, "problems": [{"name": "quadratic"}, {"name": "nope"}]})
    no_protocol = {k: v for k, v in base.items() if k != "protocol"}
    with pytest.raises(SpecError, match="^problems: .*a \\[protocol\\] table"):
        Experiment.from_dict({**no_protocol, "problems": [{"name": "quadratic"}]})
    suite = Experiment.from_dict({**base, "suite": "teaching"})
    assert 6 <= len(suite.suite) <= 10 and Experiment.from_dict(suite.to_dict()).to_dict() == suite.to_dict()


def test_cli_bad_protocol_exits_2_with_one_line(tmp_path, capsys):
    from descentlab.cli import main

    path = tmp_path / "bad.toml"
    path.write_text('steps = 5\n[problem]\nname = "quadratic"\n[[rules]]\nrule = "gd"\n[protocol]\nsearch = "bayes"\n')
    assert main(["run", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "protocol.search: got 'bayes'" in err


def test_cli_prints_the_leaderboard_and_saves_protocol_json(tmp_path, capsys):
    from descentlab.cli import main

    path = tmp_path / "two.toml"
    path.write_text(
        'steps = 15\n[[problems]]\nname = "quadratic"\nstart_spread = 0.5\n'
        '[[problems]]\nname = "himmelblau"\nstart_spread = 0.5\n'
        '[[rules]]\nrule = "gd"\n[[rules]]\nrule = "adam"\n'
        "[protocol]\nbudget = 2\ntune_seeds = 2\ntest_seeds = 3\ntarget = 0.5\n"
    )
    assert main(["run", str(path), "--out", str(tmp_path / "out"), "--workers", "1"]) == 0
    out = capsys.readouterr().out
    assert "tuned median [95% CI]" in out and "profile score" in out and "1. quadratic" in out
    (folder,) = (tmp_path / "out").iterdir()
    data = load_protocol(folder)
    assert [p["name"] for p in data["problems"]] == ["quadratic", "himmelblau"]
    assert data["command"] == f"descentlab run {path}"
    scores = data["profile"]["score"]
    assert set(scores) == {"gd", "adam"} and all(0 <= v <= 1 for v in scores.values())
    # the folder alone reproduces the comparison: its protocol.toml gives the same numbers
    assert data["reproduce"] == f"descentlab run {folder / 'protocol.toml'}"
    assert main(["run", str(folder / "protocol.toml"), "--out", str(tmp_path / "again"), "--quiet"]) == 0
    (again,) = (tmp_path / "again").iterdir()

    def numbers(problems):  # each problem's results folder is named by the time it was saved
        return [{k: v for k, v in problem.items() if k != "results"} for problem in problems]

    assert numbers(load_protocol(again)["problems"]) == numbers(data["problems"])


def test_selection_ranks_diverged_trials_last_and_ties_to_the_earlier_trial():
    from descentlab.protocol import choose

    assert choose([math.inf, 2.0, 1.0, 1.0]) == 2
    assert choose([math.nan, 3.0]) == 1  # NaN (no finite run) is never chosen over a number
    assert choose([math.inf, math.inf]) == 0  # all diverged: the first, and the report shows +inf


def test_profile_measure_subtracts_the_known_minimum_floors_and_fails_on_inf():
    from descentlab.protocol import FLOOR, profile_costs

    problems = [
        {
            "key": "p",
            "minimum": 1.0,
            "rules": [{"label": "a", "tuned": {"median": 1.5}}, {"label": "b", "tuned": {"median": 1.0 + 1e-15}}],
        },
        {
            "key": "q",
            "minimum": None,
            "rules": [{"label": "a", "tuned": {"median": 0.2}}, {"label": "b", "tuned": {"median": math.inf}}],
        },
    ]
    costs = profile_costs(problems, ["a", "b"])
    assert costs == {"a": {"p": pytest.approx(0.5), "q": 0.2}, "b": {"p": FLOOR, "q": math.inf}}


def test_search_space_tunes_only_finite_declared_ranges_on_their_scale():
    from descentlab.experiment import Protocol
    from descentlab.protocol import search_space
    from descentlab.registry import get_registry

    registry = get_registry()
    adam = registry.rules["adam"]
    entry = Experiment.from_dict(spec({}, rules=[{"rule": "adam", "learning_rate": 0.002}])).entries[0]
    space = search_space(adam, entry, Protocol(lr_factors=(0.1, 10.0)))
    assert space["learning_rate"] == pytest.approx((0.0002, 0.02, True, "float"))
    declared = {h.name: h for h in adam.hyperparams}
    for name in ("beta1", "beta2"):
        h = declared[name]
        assert space[name] == (h.low, h.high, h.log, h.kind)
    assert "eps" not in space and "weight_decay" not in space and "amsgrad" not in space  # unbounded or a flag
    only = search_space(adam, entry, Protocol(tune=("beta1",)))
    assert set(only) == {"learning_rate", "beta1"}


def test_a_test_split_loss_is_measured_from_zero_not_from_the_training_losss_minimum():
    # linear regression's known minimum is of its training loss; its reported test-split losses can
    # lie below it, so subtracting it would floor clearly different rules into a tie
    from descentlab.protocol import _paired, profile_costs

    problem = {
        "key": "r",
        "minimum": 0.04,
        "reported": "test-split loss",
        "rules": [{"label": "a", "tuned": {"median": 0.03}}, {"label": "b", "tuned": {"median": 0.06}}],
    }
    assert profile_costs([problem], ["a", "b"]) == {"a": {"r": 0.03}, "b": {"r": 0.06}}
    seeds = list(range(8))
    a = {"seeds": seeds, "scores": [0.030 + 0.001 * i for i in range(8)]}
    b = {"seeds": seeds, "scores": [0.035 + 0.001 * i for i in range(8)]}
    assert _paired(a, b, "a", "b", minimum=None)["verdict"] == "better"
    # what subtracting the training minimum (0.04) would have done: both floored, a tie
    assert _paired(a, b, "a", "b", minimum=0.04)["verdict"] == "cannot tell apart"


def test_the_teaching_suite_example_compares_every_built_in_rule_across_6_to_10_kinds_of_problem():
    from pathlib import Path

    from descentlab.experiment import load_experiment_file
    from descentlab.registry import load_registry

    registry = load_registry(entry_points=False, use_env=False)
    example = Path(__file__).resolve().parents[2] / "examples" / "teaching_suite.toml"
    experiment = load_experiment_file(example, registry)
    built_in = {name for (noun, name), origin in registry.origins.items() if noun == "rule" and origin == "built-in"}
    assert built_in and {e.rule for e in experiment.entries} == built_in
    assert experiment.protocol is not None and len(experiment.protocol.test_seeds) >= stats.min_paired_seeds()
    kinds = {registry.problem(p["name"]).kind for p in experiment.suite}
    names = {p["name"] for p in experiment.suite}
    assert 6 <= len(experiment.suite) <= 10
    # landscapes, linear regression, toy classification, a real dataset and a real regression set
    assert {"quadratic", "rosenbrock", "linear_regression", "xor", "moons", "iris", "diabetes"} <= names
    assert {"landscape", "classification", "regression"} <= kinds


def test_the_printed_verdicts_are_each_rules_against_the_leader_turned_round_when_needed():
    from descentlab.protocol import format_report

    def row(label, median):
        numbers = {"median": median, "ci": [median, median], "scores": [median] * 6}
        return {"label": label, "tuned": numbers, "one_shot": numbers}

    def pair(a, b, verdict, p):
        return {"a": a, "b": b, "verdict": verdict, "p_value": p, "test": "exact paired test", "n": 6}

    report = {
        "statement": "budget",
        "profile": {"score": {"lead": 1.0, "b": 0.5, "c": 0.4, "d": 0.3}},
        "problems": [
            {
                "key": "1. quadratic",
                "steps": 10,
                "target": None,
                "rules": [row("b", 2.0), row("lead", 1.0), row("c", 3.0), row("d", 4.0)],
                "pairwise": [
                    pair("b", "lead", "worse", 0.03),  # b against the leader: as it is
                    pair("lead", "c", "better", 0.016),  # the leader against c: c is worse
                    pair("lead", "d", "worse", 0.031),  # the leader is worse than d: d is better
                    pair("b", "c", "better", 0.5),  # not the leader's: not printed
                ],
            }
        ],
    }
    text = format_report(report)
    assert "against lead (lowest tuned median), exact paired test" in text
    assert "worse than lead: b (p = 0.03), c (p = 0.016)" in text
    assert "better than lead: d (p = 0.031)" in text and "p = 0.5" not in text
    assert text.index("  lead ") < text.index("  b ") < text.index("  c ")  # ranked by tuned median


class _BrokenBuild:
    def __init__(self, settings):
        raise RuntimeError("no data here")


class _BrokenProblemPlugin:
    @staticmethod
    @hookimpl
    def register_problems(register):
        register(Problem("test_broken_build", _BrokenBuild, ()))


def test_a_problem_that_cannot_be_built_is_named_before_anything_trains():
    from descentlab.errors import PluginError
    from descentlab.registry import load_registry

    registry = load_registry(entry_points=False, use_env=False, extra_plugins=[("broken", _BrokenProblemPlugin)])
    d = spec({"budget": 2, "tune_seeds": 1, "test_seeds": 1})
    del d["problem"]
    d["problems"] = [{"name": "quadratic", "start_spread": 0.5}, {"name": "test_broken_build"}]
    experiment = Experiment.from_dict(d, registry)
    recorder = Recorder()
    with pytest.raises(PluginError) as caught:
        run_protocol(experiment, registry=registry, run=recorder)
    message = str(caught.value)
    assert "test_broken_build" in message and "no data here" in message and "test_protocol.py:" in message
    assert "\n" not in message and recorder.calls == []  # not after the quadratic had been tuned and tested


def test_a_broken_rule_is_named_with_its_file_and_line_and_the_others_are_still_compared(tmp_path, capsys):
    from pathlib import Path

    from descentlab.cli import main

    plugin = Path(__file__).resolve().parent / "test_runner_plugin.py"
    path = tmp_path / "broken.toml"
    path.write_text(
        'steps = 20\n[problem]\nname = "quadratic"\nstart_spread = 0.5\n'
        '[[rules]]\nrule = "gd"\nlearning_rate = 0.5\n[[rules]]\nrule = "test_explode"\n'
        "[protocol]\nbudget = 2\ntune_seeds = 2\ntest_seeds = 6\nlr_factors = [1, 1]\n"
    )
    assert main(["run", str(path), "--plugin", str(plugin), "--out", str(tmp_path / "out"), "--workers", "1"]) == 0
    out = capsys.readouterr().out
    (line,) = [x for x in out.splitlines() if "failed on" in x]
    assert "test_explode failed on 12 of its 12 test runs (scored +inf)" in line
    assert f"{plugin}:" in line and "boom at step 3" in line
    (folder,) = (tmp_path / "out").iterdir()
    rows = {r["label"]: r for r in load_protocol(folder)["problems"][0]["rules"]}
    assert "failures" not in rows["gd"] and rows["test_explode"]["failures"]["failed"] == 12
    assert math.isfinite(float(rows["gd"]["tuned"]["median"]))  # gd compared as ever
    assert "worse than gd: test_explode (p = 0.031)" in out  # 6 seeds, every one lower: 2 / 2^6


def test_seeds_that_change_nothing_are_one_observation_not_n():
    # start_spread = 0: every seed starts at the same point, so 8 test seeds are 8 copies of one run.
    # α = 0.5 is far better than α = 1e-6, but one run against one run proves no ordering.
    d = spec(
        {"budget": 2, "tune_seeds": 2, "test_seeds": 8, "lr_factors": [1, 1]},
        rules=[{"rule": "gd", "label": "a", "learning_rate": 0.5}, {"rule": "gd", "label": "b", "learning_rate": 1e-6}],
    )
    d["problem"] = {"name": "quadratic", "start_spread": 0.0}
    (problem,) = run_protocol(Experiment.from_dict(d), run=Recorder()).report["problems"]
    (pair,) = problem["pairwise"]
    assert pair["verdict"] == "cannot tell apart" and pair["n"] == 1 and pair["p_value"] == 1.0
    assert "cannot tell apart at 1 seed (" in pair["sentence"]
    assert all(r["tuning"]["n"] == 1 for r in problem["rules"]) and "start_spread" in problem["seed_independent"]
    assert all(len(r["tuned"]["scores"]) == 8 for r in problem["rules"])  # every run is still reported
    # the same comparison with seeds that differ: a verdict, and no note
    d["problem"]["start_spread"] = 0.5
    (problem,) = run_protocol(Experiment.from_dict(d), run=Recorder()).report["problems"]
    assert problem["pairwise"][0]["verdict"] == "better" and "seed_independent" not in problem


def test_steps_profile_costs_on_a_hand_made_comparison():
    from descentlab.protocol import profile_step_costs

    def rule(label, steps):
        return {"label": label, "tuned": {"steps_median": steps}}

    problems = [
        {"key": "1. p", "target": 0.1, "rules": [rule("a", 10.0), rule("b", 40.0)]},
        {"key": "2. q", "target": 0.1, "rules": [rule("a", math.inf), rule("b", 0.0)]},  # b starts below: 1 step
        {"key": "3. r", "target": None, "rules": [rule("a", math.nan), rule("b", math.nan)]},  # no target: left out
    ]
    costs = profile_step_costs(problems, ["a", "b"])
    assert costs == {"a": {"1. p": 10.0, "2. q": math.inf}, "b": {"1. p": 40.0, "2. q": 1.0}}
    # ratios a = 1, inf; b = 4, 1: scores (3 + 0) / 3 / 2 and (0 + 3) / 3 / 2
    assert stats.profile_score(costs) == {"a": pytest.approx(0.5), "b": pytest.approx(0.5)}
    assert profile_step_costs([problems[2]], ["a", "b"]) is None


def test_a_comparison_with_targets_has_the_steps_profile_too():
    report = run_protocol(
        Experiment.from_dict(spec({"budget": 2, "tune_seeds": 2, "test_seeds": 6, "target": 0.05})),
        run=Recorder(),
    ).report
    fast = report["profile_steps"]
    (problem,) = report["problems"]
    for row in problem["rules"]:  # the cost is the leaderboard's own median steps to target
        steps = float(row["tuned"]["steps_median"])
        assert fast["costs"][row["label"]][problem["key"]] == (max(steps, 1.0) if math.isfinite(steps) else math.inf)
    assert fast["rho"] == {k: v.tolist() for k, v in stats.performance_profile(fast["costs"], fast["taus"]).items()}
    no_target = run_protocol(
        Experiment.from_dict(spec({"budget": 2, "tune_seeds": 2, "test_seeds": 6})), run=Recorder(), timing=False
    ).report
    assert "profile_steps" not in no_target


def test_steps_to_target_have_a_direct_bootstrap_interval_too():
    report = run_protocol(
        Experiment.from_dict(spec({"budget": 2, "tune_seeds": 2, "test_seeds": 7, "target": 0.05})),
        run=Recorder(),
        timing=False,
    ).report
    checked = 0
    for row in report["problems"][0]["rules"]:
        steps = row["tuned"]["steps"]
        if not all(math.isfinite(x) for x in steps):
            continue
        rng = np.random.default_rng(BOOTSTRAP_SEED)
        draws = rng.integers(0, len(steps), size=(stats.RESAMPLES, len(steps)))
        medians = [float(np.median([steps[i] for i in d])) for d in draws]
        expected = (np.quantile(medians, (1 - stats.LEVEL) / 2), np.quantile(medians, (1 + stats.LEVEL) / 2))
        assert row["tuned"]["steps_ci"] == pytest.approx(expected, rel=1e-12)
        checked += 1
    assert checked  # at least one rule reached the target on every seed


def test_cli_shows_a_progress_bar_per_batch_on_a_terminal(tmp_path, monkeypatch, capsys):
    import io

    from descentlab.cli import main

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    terminal = Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    path = tmp_path / "p.toml"
    path.write_text(
        'steps = 10\n[problem]\nname = "quadratic"\nstart_spread = 0.5\n[[rules]]\nrule = "gd"\n'
        "[protocol]\nbudget = 2\ntune_seeds = 2\ntest_seeds = 3\n"
    )
    assert main(["run", str(path), "--out", str(tmp_path / "out"), "--workers", "1"]) == 0
    shown = terminal.getvalue()
    assert "quadratic (tuning): 6 runs x 10 steps" in shown and "quadratic (test seeds): 6 runs x 10 steps" in shown
    assert shown.count("100%") == 2  # one finished bar per batch
    capsys.readouterr()


@pytest.mark.parametrize("compete", [False, True])
def test_defaults_compete_lets_the_defaults_be_chosen_when_no_trial_beats_them(compete):
    # α = 0.5 contracts the quadratic; lr_factors [1e-4, 1e-4] puts every trial at α = 5e-5, which barely moves
    protocol = {"budget": 3, "tune_seeds": 2, "test_seeds": 6, "lr_factors": [1e-4, 1e-4], "defaults_compete": compete}
    experiment = Experiment.from_dict(spec(protocol, rules=[{"rule": "gd", "learning_rate": 0.5}]))
    assert Experiment.from_dict(experiment.to_dict()).protocol.defaults_compete is compete
    (row,) = run_protocol(experiment, run=Recorder(), timing=False).report["problems"][0]["rules"]
    assert row["tune_default_median"] < min(row["trial_medians"])  # the case is what it says
    if compete:
        assert row["chosen"] == 0 and row["chosen_config"] == row["default_config"]
        assert row["tuned"]["scores"] == row["one_shot"]["scores"] and row["tuning"]["verdict"] == "cannot tell apart"
    else:  # Crowded Valley's "tuned": the best of the budget's trials, here worse than the defaults
        assert row["chosen"] >= 1 and row["tuning"]["verdict"] == "worse"


def test_bad_defaults_compete_is_one_line():
    with pytest.raises(SpecError, match=r"^protocol\.defaults_compete: got 'yes'; expected true or false"):
        Experiment.from_dict(spec({"defaults_compete": "yes"}))
