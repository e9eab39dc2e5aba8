"""Results on disk: round trip, atomic writes, meta, and one-line errors for folders that are not results."""

import json

import numpy as np
import pandas as pd
import pytest

import descentlab.records as records
from descentlab.errors import SpecError
from descentlab.experiment import Experiment
from descentlab.records import FILES, load_results, save_results
from descentlab.registry import load_registry
from descentlab.runner import run_experiment
from test_runner_plugin import RunnerTestPlugin


@pytest.fixture(scope="module")
def registry():
    return load_registry(entry_points=False, use_env=False, extra_plugins=[("test", RunnerTestPlugin)])


@pytest.fixture(scope="module")
def results(registry):
    e = Experiment.from_dict(
        {
            "name": "rt",
            "steps": 12,
            "seeds": 2,
            "eval_every": 3,
            "target_loss": 0.3,
            "divergence_factor": 3,
            "problem": {"name": "spirals", "samples": 40, "hidden": [3]},
            "rules": [
                {"rule": "momentum", "learning_rate": [0.1, 50.0], "nesterov": [True, False]},
                {"rule": "test_explode", "learning_rate": 0.1},
                {"rule": "adam", "schedule": {"name": "cosine", "warmup_steps": 2}},
            ],
        },
        registry,
    )
    return run_experiment(e, registry=registry, workers=1)


def test_save_and_load_give_the_same_tables(results, tmp_path):
    path = save_results(results, tmp_path)
    assert path.parent == tmp_path and path.name.startswith("rt-")
    assert sorted(p.name for p in path.iterdir()) == sorted(FILES)
    back = load_results(path)
    pd.testing.assert_frame_equal(back.runs, results.runs, check_exact=True)
    pd.testing.assert_frame_equal(back.metrics, results.metrics, check_exact=True)
    assert back.weights.keys() == results.weights.keys()
    for key, value in results.weights.items():
        np.testing.assert_array_equal(back.weights[key], value)
        assert back.weights[key].dtype == value.dtype
    assert back.experiment == results.experiment
    assert back.problem_info == results.problem_info
    assert back.meta == json.loads(json.dumps(results.meta))
    assert back.path == path
    from descentlab.verdicts import STATUSES

    assert {"diverged", "failed"} <= set(results.runs["status"]) <= set(STATUSES)


def test_meta_names_versions_plugins_and_the_command(results, tmp_path):
    path = save_results(results, tmp_path)
    meta = json.loads((path / "meta.json").read_text())
    assert {"descentlab", "numpy", "pandas", "pyarrow", "pluggy", "python"} <= set(meta["versions"])
    assert meta["versions"]["numpy"] == np.__version__
    assert meta["plugins"]["rules"] == {"momentum": "built-in", "test_explode": "registered test", "adam": "built-in"}
    assert meta["plugins"]["problem"] == {"spirals": "built-in"}
    assert meta["command"] == f"descentlab run {path / 'experiment.toml'}"
    assert meta["wall_time_s"] > 0 and meta["problem_info"]["n_train"] == 32


def test_weights_load_without_pickle(results, tmp_path):
    path = save_results(results, tmp_path)
    with np.load(path / "weights.npz", allow_pickle=False) as npz:
        assert npz["final.W1"].shape == (results.runs.shape[0], 2, 3)
        assert npz["initial.b2"].shape == (results.runs.shape[0], 1)


def test_two_saves_never_share_a_folder(results, tmp_path):
    first = save_results(results, tmp_path)
    before = {p.name: p.stat().st_mtime_ns for p in first.iterdir()}
    second = save_results(results, tmp_path)
    assert first != second
    assert {p.name: p.stat().st_mtime_ns for p in first.iterdir()} == before


def test_a_failing_write_leaves_no_experiment_folder(results, tmp_path, monkeypatch):
    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(records.np, "savez", disk_full)
    with pytest.raises(SpecError, match="No space left"):
        save_results(results, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_an_interrupted_write_leaves_no_experiment_folder(results, tmp_path, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(pd.DataFrame, "to_parquet", interrupted)
    with pytest.raises(KeyboardInterrupt):
        save_results(results, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_unwritable_output_folder_is_a_spec_error(results, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(SpecError) as caught:
        save_results(results, blocker / "results")
    assert str(caught.value).startswith("--out:") and "\n" not in str(caught.value)


def test_loading_something_else_is_one_line(results, tmp_path):
    with pytest.raises(SpecError, match="no such folder"):
        load_results(tmp_path / "missing")
    (tmp_path / "random").mkdir()
    with pytest.raises(SpecError, match="missing experiment.toml"):
        load_results(tmp_path / "random")
    path = save_results(results, tmp_path)
    data = (path / "metrics.parquet").read_bytes()
    (path / "metrics.parquet").write_bytes(data[: len(data) // 2])
    with pytest.raises(SpecError) as caught:
        load_results(path)
    assert "metrics.parquet" in str(caught.value) and "\n" not in str(caught.value)


def test_an_empty_path_is_refused_not_read_as_the_working_folder(results, tmp_path, monkeypatch):
    # Path("") is "."; a results folder saved in the working folder must not be loaded for ""
    save_results(results, tmp_path)
    monkeypatch.chdir(next(tmp_path.iterdir()))
    for empty in ("", "  "):
        with pytest.raises(SpecError) as caught:
            load_results(empty)
        assert f"results {empty!r}: an empty path" in str(caught.value)


def test_the_saved_experiment_file_reproduces_the_run(results, registry, tmp_path):
    from descentlab.experiment import load_experiment_file

    path = save_results(results, tmp_path)
    again = run_experiment(load_experiment_file(path / "experiment.toml", registry), registry=registry, workers=1)
    pd.testing.assert_frame_equal(again.metrics, results.metrics, check_exact=True)
    pd.testing.assert_frame_equal(again.runs, results.runs, check_exact=True)


def test_choice_hyperparameters_round_trip(tmp_path):
    import numpy as np_

    from descentlab import DescentRule, HyperParam, hookimpl

    class ChoicePlugin:
        @staticmethod
        @hookimpl
        def register_optimizers(register):
            register(
                DescentRule(
                    "signed",
                    lambda p, h: (),
                    lambda g, s, p, lr, h, t: (-lr * np_.sign(g), s),
                    hyperparams=(HyperParam("mode", "a", kind="choice", choices=("a", "b")),),
                )
            )

    registry = load_registry(
        entry_points=False, use_env=False, extra_plugins=[("test", RunnerTestPlugin), ("choice", ChoicePlugin)]
    )
    e = Experiment.from_dict(
        {
            "steps": 3,
            "problem": "test_quadratic",
            "rules": [{"rule": "signed", "mode": ["a", "b"]}, {"rule": "test_gd"}],
        },
        registry,
    )
    res = run_experiment(e, registry=registry, workers=1)
    assert list(res.runs["mode"].fillna("-")) == ["a", "b", "-"]
    back = load_results(save_results(res, tmp_path))
    pd.testing.assert_frame_equal(back.runs, res.runs, check_exact=True)


def test_atomic_write_leaves_the_old_file_and_no_temporary_when_the_writer_fails(tmp_path):
    from descentlab.atomic import write_atomic, write_text_atomic

    target = tmp_path / "sub" / "out.json"
    write_text_atomic(target, "old")

    def broken(path):
        path.write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError):
        write_atomic(target, broken)
    assert target.read_text() == "old"
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.json"]


def test_metric_arrays_and_a_short_repr(results):
    loss = results.metric("loss")
    assert loss.shape == (len(results.runs), results.experiment.steps + 1)
    for run_id in results.runs["run_id"]:
        rows = results.run_metrics(run_id)
        np.testing.assert_array_equal(loss[run_id, rows["step"]], rows["loss"])
        assert np.isnan(loss[run_id, len(rows) :]).all()
    with pytest.raises(SpecError, match="metric"):
        results.metric("los")
    text = repr(results)
    assert len(text) < 300 and "rt" in text and "runs" in text and "diverged" in text


def test_a_folder_name_is_found_in_the_results_folder(results, tmp_path, monkeypatch):
    # `descentlab run` prints <results folder>/<name>; the name alone then loads from anywhere
    store = tmp_path / "shared-results"
    saved = save_results(results, store)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.setenv("DESCENTLAB_RESULTS", str(store))
    loaded = load_results(saved.name)
    assert loaded.path.resolve() == saved.resolve() and loaded.runs.equals(results.runs)
    # a folder of that name here wins over the results folder's
    (elsewhere / saved.name).mkdir()
    with pytest.raises(SpecError, match="missing experiment.toml"):
        load_results(saved.name)
    # unknown: one line naming both places
    with pytest.raises(SpecError, match=r"no such folder \(here or in the results folder .*shared-results\)"):
        load_results("no-such-run")
    monkeypatch.delenv("DESCENTLAB_RESULTS")
    with pytest.raises(SpecError, match="no such folder"):
        load_results(saved.name + "-x")
