"""The partitioned layout itself (#14), without a cluster: any Executor runs the Dask task code.

The reference for every table is the same experiment run by the built-in runner and saved in the
single-file layout; the readers are pandas and DuckDB as docs/cluster.md shows them.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from descentlab import Experiment, run_experiment, save_results
from descentlab.cluster import run_sweep
from descentlab.errors import ResultsError
from descentlab.records import load_results
from descentlab.registry import load_registry

# A rule whose hyperparameter is text (a choice): in a part of another entry its column is all
# missing, and the dataset readers of pandas and DuckDB take one file's types for every file.
CHOICE_RULE = """
from typing import NamedTuple

import numpy as np
from descentlab import DescentRule, HyperParam, hookimpl


class NoState(NamedTuple):
    pass


def init(params, hyper):
    return NoState()


def update(grad, state, params, learning_rate, hyper, step):
    return -learning_rate * np.sign(grad), state


@hookimpl
def register_optimizers(register):
    register(DescentRule("sign_choice", init, update, summary="sign descent", formula="θ ← θ − α sign(g)",
                         hyperparams=(HyperParam("flavour", "plain", kind="choice", choices=("plain", "fancy")),)))
"""
SPEC = {
    "name": "text-columns",
    "steps": 10,
    "seeds": 2,
    "problem": {"name": "rosenbrock"},
    "rules": [
        # gd first: its part sorts first, so a reader taking the first file's types sees flavour as float
        {"rule": "gd", "learning_rate": [0.0001, 0.001]},
        {"rule": "sign_choice", "learning_rate": 0.01, "flavour": ["plain", "fancy"]},
        {"rule": "adam", "learning_rate": 0.01, "schedule": {"name": "cyclic", "max_lr": 0.02, "triangular2": [True]}},
    ],
}


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """``(partitioned folder, single-file Results of the same runs)``."""
    where = tmp_path_factory.mktemp("parts")
    plugin = where / "sign_choice.py"
    plugin.write_text(CHOICE_RULE)
    registry = load_registry([str(plugin)], use_env=False)
    experiment = Experiment.from_dict(SPEC, registry=registry)
    with ThreadPoolExecutor(2) as pool:
        run_sweep(experiment, where / "sweep", client=pool, registry=registry)
    single = load_results(save_results(run_experiment(experiment, registry=registry, workers=1), where / "single"))
    return where / "sweep", single


def test_every_part_of_a_table_has_the_same_schema(sweep):
    folder, _ = sweep
    for kind in ("runs", "metrics"):
        schemas = [pq.read_schema(p).remove_metadata() for p in sorted((folder / kind).rglob("part-*.parquet"))]
        assert len(schemas) == 3
        assert all(s.equals(schemas[0]) for s in schemas), kind
    flavour = pq.read_schema(next((folder / "runs").rglob("rule=gd/part-*.parquet"))).field("flavour")
    assert str(flavour.type) in ("string", "large_string")  # missing text, not a float column


def test_pandas_reads_the_runs_folder_as_the_single_file_table(sweep):
    folder, single = sweep
    table = pd.read_parquet(folder / "runs").sort_values("run_id").reset_index(drop=True)
    assert set(table["problem"].astype(str)) == {"rosenbrock"}
    assert table["rule"].astype(str).tolist() == single.runs["rule"].tolist()
    for name in ("flavour", "schedule.triangular2", "learning_rate", "final_loss", "label"):
        got = [None if pd.isna(v) else v for v in table[name].tolist()]
        want = [None if pd.isna(v) else v for v in single.runs[name].tolist()]
        assert got == want, name
    assert table["flavour"].dropna().tolist() == ["plain", "plain", "fancy", "fancy"]


def test_duckdb_reads_the_parts_with_one_glob(sweep):
    duckdb = pytest.importorskip("duckdb")
    folder, single = sweep
    glob = str(folder / "runs" / "**" / "*.parquet")
    rows = duckdb.sql(
        f"select run_id, rule, flavour, final_loss from read_parquet('{glob}', hive_partitioning=true) order by run_id"
    ).fetchall()
    want = single.runs
    assert [r[0] for r in rows] == want["run_id"].tolist()
    assert [r[1] for r in rows] == want["rule"].tolist()
    assert [r[2] for r in rows] == [None if pd.isna(v) else v for v in want["flavour"]]
    assert [r[3] for r in rows] == want["final_loss"].tolist()


def test_load_results_equals_the_single_file_layout(sweep):
    folder, single = sweep
    results = load_results(folder)
    pd.testing.assert_frame_equal(results.runs, single.runs, check_exact=True)
    pd.testing.assert_frame_equal(results.metrics, single.metrics, check_exact=True)


@pytest.mark.parametrize("kind", ["metrics", "weights"])
def test_a_lost_part_is_one_line_naming_it(sweep, kind, tmp_path):
    import shutil

    folder = tmp_path / "copy"
    shutil.copytree(sweep[0], folder)
    lost = next((folder / kind).rglob("rule=sign_choice/part-*"))
    lost.unlink()
    with pytest.raises(ResultsError) as caught:
        load_results(folder)
    message = str(caught.value)
    assert len(message.splitlines()) == 1
    assert str(lost) in message and "--resume" in message


def test_a_lost_runs_part_names_the_runs_folder(sweep, tmp_path):
    import shutil

    folder = tmp_path / "copy"
    shutil.copytree(sweep[0], folder)
    next((folder / "runs").rglob("rule=gd/part-*")).unlink()
    with pytest.raises(ResultsError, match=f"results {folder / 'runs'}, field run_id: 6 rows"):
        load_results(folder)


def test_parts_are_named_by_the_task_spec(sweep):
    """Same experiment, same plan, same names: how --resume finds the parts done on another machine."""
    from descentlab.faults import build_instance
    from descentlab.parts import part_paths, plan_tasks

    folder, single = sweep
    experiment = single.experiment
    registry = load_registry([str(Path(folder).parent / "sign_choice.py")], use_env=False)
    instance = build_instance(registry.problem(experiment.problem), dict(experiment.problem_settings))
    tasks = plan_tasks(experiment, instance)
    expected = {p for t in tasks for p in part_paths(folder, t["problem"], t["rule"], t["hash"]).values()}
    assert expected == {p for p in folder.rglob("part-*")}


def test_rerunning_into_the_same_folder_goes_on_where_it_stopped(sweep, tmp_path):
    """run_sweep into a sweep's folder resumes it (no resume=True needed): only missing parts run."""
    import shutil

    from descentlab.errors import SpecError

    folder = tmp_path / "copy"
    shutil.copytree(sweep[0], folder)
    (folder / "meta.json").unlink()  # an unfinished sweep
    lost = next((folder / "runs").rglob("rule=adam/part-*"))
    lost.unlink()
    kept = {p: p.stat().st_mtime_ns for p in folder.rglob("part-*") if "rule=adam" not in str(p)}
    registry = load_registry([str(Path(sweep[0]).parent / "sign_choice.py")], use_env=False)
    experiment = Experiment.from_dict(SPEC, registry=registry)
    with ThreadPoolExecutor(2) as pool:
        results = run_sweep(experiment, folder, client=pool, registry=registry)
    assert results.meta["tasks_run"] == 1 and lost.is_file()
    assert all(p.stat().st_mtime_ns == stamp for p, stamp in kept.items())
    pd.testing.assert_frame_equal(results.runs, sweep[1].runs, check_exact=True)
    # any other folder that is not empty is refused in one line, and left as it was
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with ThreadPoolExecutor(1) as pool, pytest.raises(SpecError, match="expected a new or empty folder"):
        run_sweep(experiment, other, client=pool, registry=registry)
    assert [p.name for p in other.iterdir()] == ["notes.txt"]
    # and a finished single-file folder of the same experiment is not taken for a sweep
    with ThreadPoolExecutor(1) as pool, pytest.raises(SpecError, match="holds runs.parquet"):
        run_sweep(experiment, sweep[1].path, client=pool, registry=registry, resume=True)
    assert not (sweep[1].path / "runs").exists() and (sweep[1].path / "meta.json").is_file()


def test_a_flagged_runs_explanation_does_not_depend_on_the_runs_beside_it():
    """λ_max of the explanation columns is computed over the flagged runs of one table: the pool's
    whole table, or one Dask task's part. Each row must come out the same bits either way."""
    import numpy as np

    from descentlab.explain import top_eigenvalues
    from descentlab.faults import build_instance
    from descentlab.registry import get_registry

    spec = {"name": "x", "problem": {"name": "moons", "samples": 60, "hidden": [8, 8]}, "rules": [{"rule": "gd"}]}
    settings = dict(Experiment.from_dict(spec).problem_settings)
    instance = build_instance(get_registry().problem("moons"), settings)
    rng = np.random.default_rng(3)
    # different scales converge in different numbers of Lanczos steps
    params = rng.standard_normal((6, instance.layout.size)) * np.array([0.1, 0.5, 1.0, 2.0, 4.0, 8.0])[:, None]
    together = top_eigenvalues(instance, params)
    alone = np.array([top_eigenvalues(instance, params[i : i + 1])[0] for i in range(len(params))])
    pairs = np.concatenate([top_eigenvalues(instance, params[i : i + 2]) for i in (0, 2, 4)])
    assert together.tobytes() == alone.tobytes() == pairs.tobytes()
    # and it is λ_max: the largest eigenvalue of the Hessian by central differences of the gradient
    point, size, h = params[1], instance.layout.size, 1e-5
    grads = [instance.loss_and_grad(np.stack([point + h * e, point - h * e]), None)[1] for e in np.eye(size)]
    hessian = np.array([(g[0] - g[1]) / (2 * h) for g in grads])
    assert together[1] == pytest.approx(np.linalg.eigvalsh((hessian + hessian.T) / 2)[-1], rel=1e-4)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_a_runs_records_are_the_same_bits_alone_in_a_chunk_as_beside_others(dtype):
    """A Dask task is one entry's share of runs, the pool's chunks may mix entries and are split to
    keep its workers busy, and diverged runs leave a chunk: a run's step size, gradient norm and
    sharpness must not depend on which runs are stacked with it (numpy sums a lone row otherwise)."""
    import numpy as np

    from descentlab.chunk import run_chunk
    from descentlab.faults import build_instance
    from descentlab.registry import get_registry

    spec = {
        "name": "alone",
        "steps": 12,
        "seeds": 2,
        "dtype": dtype,
        "sharpness_every": 3,
        # 17 000 parameters (the path that sums squares per step; numpy's lone-row kernel differs on long
        # rows), relu so that α = 50 diverges
        "problem": {"name": "moons", "samples": 30, "hidden": [128, 128], "activation": "relu"},
        "rules": [{"rule": "gd", "learning_rate": [0.1, 50.0]}, {"rule": "adam", "learning_rate": 0.01}],
    }
    experiment = Experiment.from_dict(spec)
    registry = get_registry()
    instance = build_instance(registry.problem("moons"), dict(experiment.problem_settings))
    configs = experiment.runs()
    together = run_chunk(instance, registry, experiment, configs)
    assert np.isfinite(together["diverged_at"]).any()  # a chunk that loses runs on the way
    for i, config in enumerate(configs):
        alone = run_chunk(instance, registry, experiment, [config])
        rows = int(together["last_row"][i]) + 1  # the rows the tables keep
        assert int(alone["last_row"][0]) + 1 == rows
        for key in ("loss", "step_size", "grad_norm", "sharpness"):
            got, want = alone["metrics"][key], together["metrics"][key]
            if want is None:
                assert got is None, key
                continue
            same = np.asarray(got)[0, :rows].tobytes() == np.asarray(want)[i, :rows].tobytes()
            assert same, (key, config.label, config.learning_rate, config.seed)


def test_a_worker_without_the_plugin_file_says_so(sweep, tmp_path):
    """A Dask worker on a machine without the --plugin file at that path: the task's error names the
    file and the worker's host, not "rule: got 'sign_choice'; expected one of ..." of the registry."""
    from descentlab.errors import PluginError
    from descentlab.faults import build_instance
    from descentlab.parts import plan_tasks, run_task

    folder, single = sweep
    experiment = single.experiment
    registry = load_registry([str(Path(folder).parent / "sign_choice.py")], use_env=False)
    instance = build_instance(registry.problem(experiment.problem), dict(experiment.problem_settings))
    task = next(t for t in plan_tasks(experiment, instance) if t["rule"] == "sign_choice")
    elsewhere = str(tmp_path / "not-here" / "sign_choice.py")
    payload = {"experiment": experiment.to_dict(), "plugin_paths": [elsewhere], "folder": str(tmp_path), **task}
    with pytest.raises(PluginError) as caught:
        run_task(payload)
    message = str(caught.value)
    assert elsewhere in message and "FileNotFoundError" in message and "on worker host" in message
    assert not list(tmp_path.rglob("part-*"))


def test_a_plugin_files_known_fault_does_not_stop_its_other_plugins_on_the_workers(tmp_path):
    """One broken declaration in a file is reported and its other rules work (in the parent): the
    workers see the same fault and must not take it for a file missing on their machine."""
    plugin = tmp_path / "half_broken.py"
    plugin.write_text(
        CHOICE_RULE
        + """

@hookimpl
def register_schedules(register):
    raise RuntimeError("this hook is broken")
"""
    )
    registry = load_registry([str(plugin)], use_env=False)
    assert registry.errors and "sign_choice" in registry.rules
    spec = {"name": "half", "steps": 5, "problem": {"name": "rosenbrock"}, "rules": [{"rule": "sign_choice"}]}
    experiment = Experiment.from_dict(spec, registry=registry)
    with ThreadPoolExecutor(2) as pool:
        results = run_sweep(experiment, tmp_path / "sweep", client=pool, registry=registry)
    assert results.runs["status"].tolist() != ["failed"] and len(results.runs) == 1


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="names an fd through /proc")
def test_a_parts_bytes_reach_the_disk_before_its_name(tmp_path, monkeypatch):
    """A part that exists counts as done; after a power cut it must not exist without its bytes:
    each temporary is fsynced before its rename, and the folder after it."""
    import os

    synced = []
    real_fsync = os.fsync

    def spy(fd):
        synced.append(Path(os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", spy)
    spec = {"name": "sync", "steps": 3, "problem": {"name": "rosenbrock"}, "rules": [{"rule": "gd"}, {"rule": "adam"}]}
    with ThreadPoolExecutor(1) as pool:
        run_sweep(Experiment.from_dict(spec), tmp_path / "sweep", client=pool)
    parts = sorted((tmp_path / "sweep").rglob("part-*"))
    assert len(parts) == 6
    for part in parts:
        assert any(s.parent == part.parent and s.name.startswith(f".{part.name}.") for s in synced), part
        assert part.parent in synced


def test_resuming_removes_only_the_temporaries_of_gone_writers(sweep, tmp_path):
    """A killed worker's half-written part goes; a live writer's (another sweep resuming the same
    folder) and another machine's stay: removing them would fail those writers' renames."""
    import shutil
    import subprocess
    import sys

    from descentlab.atomic import host_name

    folder = tmp_path / "copy"
    shutil.copytree(sweep[0], folder)
    (folder / "meta.json").unlink()
    part = next((folder / "runs").rglob("rule=gd/part-*.parquet"))
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(gone.stdout)
    names = {
        "dead": f".{part.name}.{host_name()}.{dead_pid}.abcd1234.tmp.parquet",
        "live": f".{part.name}.{host_name()}.1.abcd1234.tmp.parquet",  # pid 1 is alive
        "remote": f".{part.name}.another-host.{dead_pid}.abcd1234.tmp.parquet",
    }
    for name in names.values():
        (part.parent / name).write_bytes(b"half a part")
    registry = load_registry([str(Path(sweep[0]).parent / "sign_choice.py")], use_env=False)
    with ThreadPoolExecutor(1) as pool:
        run_sweep(Experiment.from_dict(SPEC, registry=registry), folder, client=pool, registry=registry, resume=True)
    left = {p.name for p in part.parent.iterdir() if p.name.startswith(".")}
    assert left == {names["live"], names["remote"]}


def test_layer_norms_of_a_lone_run_are_those_of_the_same_run_in_a_stack():
    import numpy as np

    from descentlab.faults import build_instance
    from descentlab.registry import get_registry

    spec = {"name": "x", "problem": {"name": "moons", "samples": 30, "hidden": [128, 128]}, "rules": [{"rule": "gd"}]}
    instance = build_instance(get_registry().problem("moons"), dict(Experiment.from_dict(spec).problem_settings))
    rows = np.random.default_rng(0).standard_normal((3, instance.layout.size))
    stacked = instance.layout.layer_norms(rows)
    alone = np.concatenate([instance.layout.layer_norms(rows[i : i + 1]) for i in range(3)])
    assert stacked.tobytes() == alone.tobytes()
    # and they are the norms: the squares of every layer's parameters add up to the whole row's
    assert np.allclose((stacked**2).sum(axis=1), (rows**2).sum(axis=1), rtol=1e-12)
