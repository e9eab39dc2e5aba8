"""Results fresh from the runner work from per-step arrays; their long table is built on demand.

The arrays and the table are two layouts of the same numbers, so each is checked against the
other computed independently: ``metric(name)`` against a pandas pivot of the long table, and the
table against a folder saved and read back. The snapshot test (test_snapshots.py) checks that the
table built this way is the bytes the committed code wrote.
"""

import dataclasses

import numpy as np
import pytest

from snapshot_cases import CASES, run_case, snapshot_registry

from descentlab import compare
from descentlab.records import load_results, save_results

# every special path (runs cut at different steps, several chunks, an executor, sharpness, test
# metrics at the last step only) and one in twenty of the other cases
SPECIAL = ("sharpness-", "chunks-", "executor-", "diverge-", "eval-last-only-")
CHOSEN = [c for c in CASES if c.name.startswith(SPECIAL)]
CHOSEN += [c for c in CASES if not c.name.startswith(SPECIAL)][::20]


@pytest.fixture(scope="module")
def registry():
    return snapshot_registry()


def _pivot(table, name: str, n_runs: int, steps: int) -> np.ndarray:
    """The long table's column as (runs, steps + 1), by pandas' own pivot."""
    wide = table.pivot(index="run_id", columns="step", values=name).reindex(
        index=range(n_runs), columns=range(steps + 1)
    )
    return wide.to_numpy(dtype=float, na_value=np.nan)


@pytest.mark.parametrize("case", CHOSEN, ids=[c.name for c in CHOSEN])
def test_metric_arrays_equal_the_pivoted_long_table(case, registry):
    results = run_case(case, registry)
    assert results.step_arrays is not None and vars(results).get("metrics") is None
    names = results.metric_names
    arrays = {name: results.metric(name) for name in names}  # before any table exists
    has_row = results.has_row.copy()
    table = results.metrics  # built now, from the arrays
    n_runs, steps = len(results.runs), results.experiment.steps
    assert names == [c for c in table.columns if c not in ("run_id", "step")]
    assert table.groupby("run_id").size().reindex(range(n_runs), fill_value=0).tolist() == has_row.sum(1).tolist()
    for name in names:
        np.testing.assert_array_equal(arrays[name], _pivot(table, name, n_runs, steps), err_msg=name)
    # the record given that table works from the table: the same arrays
    from_table = dataclasses.replace(results, metrics=table.copy())
    assert from_table.metric_names == names
    np.testing.assert_array_equal(from_table.has_row, has_row)
    for name in names:
        np.testing.assert_array_equal(from_table.metric(name), arrays[name], err_msg=name)


def test_the_table_is_built_only_when_asked_and_saved_as_built(tmp_path):
    # α = 5 diverges on linear regression (λ_max ≈ 2): runs with fewer rows, by construction
    results = compare(
        problem="linear_regression", rules=["gd", "momentum"], learning_rates=[0.05, 5.0], seeds=2, steps=15
    )
    assert vars(results).get("metrics") is None  # nothing built by the run
    loss = results.metric("loss")
    assert vars(results).get("metrics") is None  # nor by reading a metric
    folder = save_results(results, tmp_path)
    assert vars(results).get("metrics") is None  # saving builds a table for the file only
    loaded = load_results(folder)
    np.testing.assert_array_equal(loaded.metric("loss"), loss)
    assert loaded.metrics.equals(results.metrics)
    assert (results.rows_per_run < 16).any() and results.last_step == 15


def test_copies_of_a_record_keep_its_values():
    results = compare(problem="linear_regression", rules=["gd"], learning_rates=[0.05, 5.0], seeds=2, steps=10)
    loss = results.metric("loss").copy()
    for copy in (type(results)(**vars(results)), dataclasses.replace(results)):
        np.testing.assert_array_equal(copy.metric("loss"), loss)
        assert copy.metrics.equals(results.metrics)
    doubled = dataclasses.replace(results, metrics=results.metrics.assign(loss=results.metrics["loss"] * 2))
    np.testing.assert_array_equal(doubled.metric("loss"), loss * 2)  # a given table is what it works from
