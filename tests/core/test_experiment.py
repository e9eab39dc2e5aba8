"""Experiment spec: defaults from declarations, grids, one-line validation errors, TOML round trip."""

from pathlib import Path

import pytest

from descentlab.errors import SpecError
from descentlab.experiment import Experiment, load_experiment_file
from descentlab.registry import load_registry
from test_runner_plugin import RunnerTestPlugin

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture(scope="module")
def registry():
    return load_registry(entry_points=False, use_env=False, extra_plugins=[("test", RunnerTestPlugin)])


def spec(**changes):
    d = {
        "steps": 20,
        "seeds": 2,
        "problem": {"name": "test_quadratic"},
        "rules": [{"rule": "test_gd", "learning_rate": 0.1}],
    }
    d.update(changes)
    return d


def test_defaults_come_from_the_declarations(registry):
    e = Experiment.from_dict(spec(), registry, name="my-file")
    assert e.name == "my-file"
    assert e.seeds == [0, 1]
    assert (e.batch_size, e.dtype, e.eval_every, e.divergence_factor, e.target_loss, e.sharpness_every) == (
        0,
        "float64",
        10,
        1e4,
        None,
        0,
    )
    assert e.problem_settings == {"lam1": 1.0, "lam2": 0.25, "start_x": 1.0, "start_y": -2.0, "start_spread": 0.0}
    entry = e.entries[0]
    assert entry.hyper == {"scale": [1.0]}
    assert (entry.schedule, entry.schedule_hyper, entry.warmup_steps, entry.label) == ("constant", {}, 0, "test_gd")


def test_default_learning_rate_is_the_rules(registry):
    e = Experiment.from_dict(spec(rules=[{"rule": "test_gd"}]), registry)
    assert e.entries[0].learning_rate == [0.1]


def test_grid_is_the_product_with_seeds_innermost(registry):
    d = spec(
        seeds=[3, 5],
        rules=[
            {"rule": "test_gd", "learning_rate": [0.1, 0.2, 0.3], "scale": [1.0, 2.0]},
            {"rule": "gd", "learning_rate": 0.5, "schedule": {"name": "step", "gamma": [0.5, 0.1], "step_size": 4}},
        ],
    )
    e = Experiment.from_dict(d, registry)
    runs = e.runs()
    assert len(runs) == e.n_runs == 3 * 2 * 2 + 2 * 2
    assert [r.run_id for r in runs] == list(range(len(runs)))
    first = [(r.learning_rate, r.hyper["scale"], r.seed) for r in runs[:12]]
    expected = [(lr, s, seed) for lr in (0.1, 0.2, 0.3) for s in (1.0, 2.0) for seed in (3, 5)]
    assert first == expected
    assert [r.schedule_hyper["gamma"] for r in runs[12:]] == [0.5, 0.5, 0.1, 0.1]
    assert all(r.schedule_hyper["step_size"] == 4 and r.entry == 1 for r in runs[12:])
    assert runs[12].label == "gd + step"


def test_to_toml_round_trips(registry):
    d = spec(
        target_loss=0.01,
        eval_every=5,
        dtype="float32",
        rules=[
            {"rule": "test_gd", "learning_rate": [0.1, 1.0], "scale": 2.0, "label": "mine"},
            {
                "rule": "momentum",
                "learning_rate": 0.1,
                "momentum": [0.5, 0.9],
                "nesterov": [True, False],
                "schedule": {"name": "cosine", "warmup_steps": 3},
            },
        ],
    )
    e = Experiment.from_dict(d, registry)
    again = Experiment.from_toml(e.to_toml(), registry)
    assert again == e
    assert Experiment.from_toml(e.to_toml(), strict=False) == e  # the loader's trusting parse agrees


def test_labels_are_made_unique_unless_explicit(registry):
    e = Experiment.from_dict(spec(rules=[{"rule": "gd"}, {"rule": "gd"}]), registry)
    assert [x.label for x in e.entries] == ["gd", "gd #2"]
    with pytest.raises(SpecError, match=r"rules\[1\]\.label"):
        Experiment.from_dict(spec(rules=[{"rule": "gd", "label": "a"}, {"rule": "gd", "label": "a"}]), registry)


BAD = [
    # (change, field named in the message, something the message must list or name)
    ({"rules": [{"rule": "sgdd"}]}, "rules[0].rule", "adam"),
    ({"rules": [{"rule": "gd", "schedule": "cosinus"}]}, "rules[0].schedule.name", "cosine"),
    ({"problem": {"name": "spiralz"}}, "problem.name", "test_quadratic"),
    ({"problem": {"name": "test_quadratic", "lamb1": 2}}, "problem", "lam1"),
    ({"stepz": 3}, "experiment", "steps"),
    ({"rules": [{"rule": "gd"}, {"rule": "momentum", "momentun": 0.9}]}, "rules[1]", "momentum"),
    ({"rules": [{"rule": "gd"}, {"rule": "momentum", "momentum": "high"}]}, "rules[1].momentum", "[0, 1)"),
    ({"rules": [{"rule": "gd"}, {"rule": "momentum", "momentum": 1.5}]}, "rules[1].momentum", "[0, 1)"),
    ({"rules": [{"rule": "momentum", "momentum": [0.5, 2.0]}]}, "rules[0].momentum", "[0, 1)"),
    ({"rules": [{"rule": "momentum", "nesterov": "yes"}]}, "rules[0].nesterov", "true or false"),
    ({"rules": [{"rule": "gd", "learning_rate": -1.0}]}, "rules[0].learning_rate", "(0, inf)"),
    ({"rules": [{"rule": "gd", "learning_rate": []}]}, "rules[0].learning_rate", "non-empty list"),
    ({"rules": [{"rule": "gd", "schedule": {"name": "step", "gamma": 7}}]}, "rules[0].schedule.gamma", "1"),
    (
        {"rules": [{"rule": "gd", "schedule": {"name": "step", "warmup_steps": 20}}]},
        "rules[0].schedule.warmup_steps",
        "[0, 19]",
    ),
    ({"rules": []}, "rules", "[[rules]]"),
    ({"steps": 0}, "steps", "integer"),
    ({"steps": 2.5}, "steps", "integer"),
    ({"seeds": -1}, "seeds", ">= 1"),
    ({"seeds": [1, 1]}, "seeds", "distinct"),
    ({"batch_size": -3}, "batch_size", "[0, inf)"),
    ({"batch_size": 8}, "batch_size", "landscape"),
    ({"dtype": "float16"}, "dtype", "'float32'"),
    ({"eval_every": -1}, "eval_every", "[0, inf)"),
    ({"divergence_factor": 0.5}, "divergence_factor", "(1, inf)"),
    ({"target_loss": "low"}, "target_loss", "a number"),
    ({"sharpness_every": 50}, "sharpness_every", "[0, 20]"),
    ({"name": "a b/c"}, "name", "letters"),
]


@pytest.mark.parametrize("change, field, mention", BAD, ids=[b[1] + ":" + str(i) for i, b in enumerate(BAD)])
def test_bad_input_gives_one_line_naming_field_value_and_accepted(registry, change, field, mention):
    with pytest.raises(SpecError) as caught:
        Experiment.from_dict(spec(**change), registry)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(field + ":"), message
    assert mention in message, message


def test_unknown_rule_lists_every_known_rule(registry):
    with pytest.raises(SpecError) as caught:
        Experiment.from_dict(spec(rules=[{"rule": "sgdd"}]), registry)
    for name in registry.rules:
        assert name in str(caught.value)
    assert "'sgdd'" in str(caught.value)


def test_malformed_toml_names_the_line(tmp_path, registry):
    path = tmp_path / "broken.toml"
    path.write_text('steps = 10\nseeds = 2\n[problem\nname = "quadratic"\n')
    with pytest.raises(SpecError) as caught:
        load_experiment_file(path, registry)
    assert "line 3" in str(caught.value) and "\n" not in str(caught.value)


def test_missing_file_is_a_spec_error(tmp_path, registry):
    with pytest.raises(SpecError, match="experiment file"):
        load_experiment_file(tmp_path / "nope.toml", registry)


def test_file_name_is_the_default_name(tmp_path, registry):
    path = tmp_path / "bowl sweep.toml"
    path.write_text('steps = 5\n[problem]\nname = "test_quadratic"\n[[rules]]\nrule = "gd"\n')
    assert load_experiment_file(path, registry).name == "bowl-sweep"


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.toml")), ids=lambda p: p.name)
def test_examples_validate_and_round_trip(path):
    registry = load_registry(entry_points=False, use_env=False)
    e = load_experiment_file(path, registry)
    assert e.n_runs >= 2
    assert Experiment.from_toml(e.to_toml(), registry) == e


def test_spirals_example_spans_the_learning_rates_the_issue_asks_for():
    e = load_experiment_file(EXAMPLES / "spirals_compare.toml", load_registry(entry_points=False, use_env=False))
    assert {x.rule for x in e.entries} == {"gd", "momentum", "adam"}
    for entry in e.entries:
        assert min(entry.learning_rate) == 1e-3 and max(entry.learning_rate) == 10.0
