"""The grid of an experiment: configurations numbered as the runner numbers runs."""

import itertools

import numpy as np
import pytest

from descentlab import compare
from descentlab.errors import SpecError
from descentlab.experiment import Experiment
from descentlab.grid import configuration_of_run, configurations
from descentlab.records import load_results, save_results

SPEC = {
    "name": "grid",
    "problem": {"name": "linear_regression"},
    "steps": 3,
    "seeds": [3, 7],
    "rules": [
        {"rule": "gd", "learning_rate": 0.1},
        {"rule": "momentum", "learning_rate": [0.1, 0.2], "momentum": [0.5, 0.9]},
        {
            "rule": "gd",
            "label": "gd-step",
            "learning_rate": [0.1, 0.3],
            "schedule": {"name": "step", "gamma": [0.5, 0.1]},
        },
    ],
}


def test_configurations_are_the_entries_grids_with_seeds_innermost():
    experiment = Experiment.from_dict(SPEC)
    found = configurations(experiment)
    # by hand: entry 0 has 1 point, entry 1 has 2 x 2 (α outermost), entry 2 has 2 x 2; 2 seeds each
    expected = [(0, 0.1, {}, {})]
    expected += [(1, a, {"momentum": m}, {}) for a, m in itertools.product([0.1, 0.2], [0.5, 0.9])]
    expected += [(2, a, {}, {"gamma": g}) for a, g in itertools.product([0.1, 0.3], [0.5, 0.1])]
    assert len(found) == len(expected) == 9
    for k, (c, (entry, alpha, hyper, schedule_hyper)) in enumerate(zip(found, expected)):
        assert (c.index, c.entry, c.learning_rate) == (k, entry, alpha)
        # the grid's values; the other hyperparameters are the declared defaults, written out
        assert {n: c.hyper[n] for n in hyper} == hyper
        assert {n: c.schedule_hyper[n] for n in schedule_hyper} == schedule_hyper
        assert c.seeds == (3, 7) and c.run_ids == (2 * k, 2 * k + 1)
    assert found[3].coordinates == {"learning_rate": 0.2, **found[3].hyper}
    assert found[6].coordinates["schedule.gamma"] == 0.1


def test_configurations_agree_with_every_run_of_the_experiment():
    experiment = Experiment.from_dict(SPEC)
    runs = experiment.runs()  # the runner's own list, an independent statement of the numbering
    seen = []
    for c in configurations(experiment):
        for seed, run_id in zip(c.seeds, c.run_ids):
            run = runs[run_id]
            assert (run.run_id, run.entry, run.seed, run.learning_rate) == (run_id, c.entry, seed, c.learning_rate)
            assert (run.hyper, run.schedule_hyper, run.label) == (c.hyper, c.schedule_hyper, c.label)
            assert configuration_of_run(experiment, run_id) == c.index
            seen.append(run_id)
    assert seen == list(range(experiment.n_runs))
    with pytest.raises(SpecError, match="run_id"):
        configuration_of_run(experiment, experiment.n_runs)


@pytest.fixture(scope="module")
def results():
    # α = 5 diverges on this problem (its λ_max is about 2): runs that stop early, known by construction
    return compare(problem="linear_regression", rules=["gd", "momentum"], learning_rates=[0.05, 5.0], seeds=2, steps=15)


def test_results_know_their_grid_and_it_matches_the_runs_table(results, tmp_path):
    for record in (results, load_results(save_results(results, tmp_path))):
        runs = record.runs.set_index("run_id")
        for c in record.configurations:
            rows = runs.loc[list(c.run_ids)]
            assert list(rows["seed"]) == list(c.seeds) and set(rows["entry"]) == {c.entry}
            for column, value in c.coordinates.items():
                assert (rows[column] == value).all(), (c, column)


def test_metric_arrays_are_the_long_table_by_run_and_step(results):
    loss = results.metric("loss")
    counts = results.rows_per_run
    for run_id in results.runs["run_id"]:
        rows = results.run_metrics(run_id)
        assert counts[run_id] == len(rows)
        np.testing.assert_array_equal(loss[run_id, rows["step"]], rows["loss"])
        assert np.isnan(loss[run_id, len(rows) :]).all()
    diverged = results.runs[results.runs["status"] == "diverged"]
    assert len(diverged) and (counts[diverged["run_id"]] == diverged["diverged_at"] + 1).all()
    assert results.metric("loss") is loss  # built once, shared ...
    with pytest.raises(ValueError):
        loss[0, 0] = 1.0  # ... so read-only


def test_replacing_the_metrics_table_rebuilds_its_arrays(results):
    import dataclasses

    record = dataclasses.replace(results)
    before = record.metric("loss")
    record.metrics = record.metrics.assign(loss=record.metrics["loss"] * 2)
    np.testing.assert_array_equal(record.metric("loss"), before * 2)
    assert "loss" in record.metric_names and "run_id" not in record.metric_names


def test_the_summary_groups_each_entry_into_exactly_its_grid_points():
    # analysis groups an entry's runs by its grid columns; the spec refuses repeated values on an
    # axis, so that partition is the grid's: the same points with the same seed counts
    from descentlab import analysis
    from descentlab.runner import run_experiment

    results = run_experiment(Experiment.from_dict(SPEC), workers=1)
    for entry, entry_runs in results.runs.groupby("entry"):
        table = analysis.configurations(entry_runs)
        points = [c for c in results.configurations if c.entry == entry]
        assert len(table) == len(points) and set(table["n"]) == {len(SPEC["seeds"])}
        found = {tuple(row[k] for k in points[0].coordinates) for _, row in table.iterrows()}
        assert found == {tuple(c.coordinates.values()) for c in points}
