"""Sweeps on Dask: the partitioned layout equals the built-in pool bit for bit, resumes only missing parts."""

import multiprocessing
import os
import sys
import time
from concurrent.futures import Executor, Future, InvalidStateError, wait
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from descentlab import Experiment, run_experiment, save_results
from descentlab.cli import ProgressBar, main
from descentlab.records import load_results

# Two entries, each split into several tasks (128-128 hidden units: a few runs per chunk), with a
# schedule hyperparameter on one entry only, divergent runs, test evaluation and a landscape-free
# network: every column kind of both tables and every weights array crosses the parts.
SPEC = {
    "name": "dask-sweep",
    "steps": 25,
    "seeds": 2,
    "eval_every": 5,
    "problem": {"name": "moons", "samples": 200, "hidden": [128, 128]},
    "rules": [
        {"rule": "gd", "learning_rate": [0.05, 0.5, 40.0]},
        {"rule": "adam", "learning_rate": [0.001, 0.01], "schedule": {"name": "step", "step_size": 10, "gamma": 0.5}},
    ],
}
TOML = """name = "dask-cli"
steps = 20
seeds = 2
eval_every = 0
[problem]
name = "quadratic"
[[rules]]
rule = "gd"
learning_rate = [0.1, 1.0, 2.5]
[[rules]]
rule = "momentum"
learning_rate = [0.1, 3.9]
momentum = [0.5, 0.9]
"""


@pytest.fixture(scope="module")
def client():
    """One local cluster for the module (it takes a few seconds to start): 2 worker processes."""
    pytest.importorskip("distributed")
    from descentlab.cluster import close, connect

    c = connect(n_workers=2)
    yield c
    close(c)


@pytest.fixture(scope="module")
def experiment():
    return Experiment.from_dict(SPEC)


@pytest.fixture(scope="module")
def reference(experiment, tmp_path_factory):
    """The same sweep on the built-in process pool, saved and read back in the single-file layout."""
    results = run_experiment(experiment, workers=2)
    return load_results(save_results(results, tmp_path_factory.mktemp("pool")))


def assert_same(a, b):
    """Both tables (sorted by run id / step) and every weights array, bit for bit."""
    runs_a, runs_b = (r.runs.sort_values("run_id").reset_index(drop=True) for r in (a, b))
    pd.testing.assert_frame_equal(runs_a, runs_b, check_exact=True)
    metrics_a, metrics_b = (r.metrics.sort_values(["run_id", "step"]).reset_index(drop=True) for r in (a, b))
    pd.testing.assert_frame_equal(metrics_a, metrics_b, check_exact=True)
    assert sorted(a.weights) == sorted(b.weights)
    for key in a.weights:
        same = a.weights[key].dtype == b.weights[key].dtype and a.weights[key].tobytes() == b.weights[key].tobytes()
        assert same, key


def part_files(folder: Path) -> dict[str, Path]:
    return {str(p.relative_to(folder)): p for p in sorted(folder.rglob("part-*")) if p.is_file()}


@pytest.mark.slow
def test_a_dask_sweep_equals_the_process_pool_bit_for_bit(client, experiment, reference, tmp_path):
    from descentlab.cluster import run_sweep
    from descentlab.faults import build_instance
    from descentlab.parts import plan_tasks
    from descentlab.registry import get_registry

    results = run_sweep(experiment, tmp_path / "sweep", client=client)
    assert_same(reference, results)
    assert results.runs["status"].nunique() > 1  # the comparison covers diverged runs too
    tasks = plan_tasks(experiment, build_instance(get_registry().problem("moons"), experiment.problem_settings))
    assert len(tasks) >= 4 and {t["rule"] for t in tasks} == {"gd", "adam"}
    files = part_files(tmp_path / "sweep")
    assert len(files) == 3 * len(tasks)
    assert any(name.startswith("runs/problem=moons/rule=adam/part-") for name in files)
    assert results.meta["layout"] == "partitioned" and results.meta["workers"] == 2
    assert not list((tmp_path / "sweep").rglob(".*"))  # no temporaries left
    # the documented ways of reading the layout without descentlab
    metrics = pd.read_parquet(tmp_path / "sweep" / "metrics")
    assert len(metrics) == len(reference.metrics) and set(metrics["rule"].astype(str)) == {"gd", "adam"}
    duckdb = pytest.importorskip("duckdb")
    glob = str(tmp_path / "sweep" / "runs" / "**" / "*.parquet")
    count = duckdb.sql(f"select count(*) from read_parquet('{glob}', hive_partitioning=true)").fetchall()
    assert count == [(experiment.n_runs,)]


@pytest.mark.slow
def test_run_experiment_takes_a_dask_client(client, experiment, reference):
    results = run_experiment(experiment, executor=client)
    pd.testing.assert_frame_equal(reference.metrics, results.metrics, check_exact=True)
    assert results.meta["workers"] == 2  # the client's threads, not a guess


class FailingAfter(Executor):
    """The cluster's executor, but the task submitted ``n``-th fails (an interrupted sweep).

    The sweep gets stand-in futures: when it gives up and cancels them, the tasks already sent
    still finish on the cluster (as they would: a running task is not stopped), and ``wait()``
    waits for them, so that which parts exist does not depend on timing.
    """

    def __init__(self, executor, n):
        self.executor, self.n, self.sent = executor, n, []

    def submit(self, fn, /, *args, **kwargs):
        stand_in = Future()
        if len(self.sent) + 1 == self.n:
            self.sent.append(None)
            stand_in.set_exception(RuntimeError("worker lost"))
            return stand_in
        real = self.executor.submit(fn, *args, **kwargs)
        self.sent.append(real)

        def copy(done, stand_in=stand_in):
            try:
                if done.exception() is not None:
                    stand_in.set_exception(done.exception())
                else:
                    stand_in.set_result(done.result())
            except InvalidStateError:  # the sweep cancelled its stand-in
                pass

        real.add_done_callback(copy)
        return stand_in

    def wait(self):
        wait([f for f in self.sent if f is not None], timeout=120)


@pytest.mark.slow
def test_an_interrupted_sweep_resumes_to_the_same_tables(client, experiment, reference, tmp_path):
    from descentlab.cluster import run_sweep

    folder = tmp_path / "sweep"
    failing = FailingAfter(client.get_executor(), 2)
    with pytest.raises(RuntimeError, match="worker lost"):
        run_sweep(experiment, folder, client=failing)
    failing.wait()
    assert not (folder / "meta.json").exists()
    with pytest.raises(Exception, match="resume"):
        load_results(folder)
    before = part_files(folder)
    n_tasks = len(failing.sent)
    assert len(before) == 3 * (n_tasks - 1)  # every task but the failed one wrote its three parts
    stamps = {name: p.stat().st_mtime_ns for name, p in before.items()}
    results = run_sweep(experiment, folder, client=client, resume=True)
    assert_same(reference, results)
    after = part_files(folder)
    assert all(after[name].stat().st_mtime_ns == stamp for name, stamp in stamps.items())  # not rewritten
    assert results.meta["tasks_run"] == 1 and len(after) == 3 * n_tasks


@pytest.mark.slow
def test_a_worker_killed_mid_sweep_loses_nothing(client, experiment, reference, tmp_path):
    """SIGKILL one worker process while tasks run: Dask sends its task to the other worker (its
    nanny starts a new one), a half-written part is never taken for one, and the tables are the same."""
    import signal
    import threading

    from descentlab.cluster import run_sweep

    folder = tmp_path / "sweep"
    pids = client.run(os.getpid)  # worker address -> pid
    out = {}
    sweep = threading.Thread(target=lambda: out.update(results=run_sweep(experiment, folder, client=client)))
    sweep.start()
    deadline = time.monotonic() + 60
    while not any(client.processing().values()) and time.monotonic() < deadline:
        time.sleep(0.01)
    busy = next(address for address, keys in client.processing().items() if keys)
    os.kill(pids[busy], signal.SIGKILL)
    sweep.join(timeout=120)
    assert "results" in out, "the sweep did not finish"
    assert_same(reference, out["results"])
    client.wait_for_workers(2, timeout=60)  # the nanny's new worker, for the tests after this one
    assert pids[busy] not in client.run(os.getpid).values()  # the kill did land: that process is gone


@pytest.mark.slow
def test_resume_reruns_only_the_missing_parts_through_the_cli(client, tmp_path, capsys, monkeypatch):
    spec = tmp_path / "exp.toml"
    spec.write_text(TOML)
    scheduler = client.scheduler.address
    assert (
        main(
            [
                "run",
                str(spec),
                "--executor",
                "dask",
                "--scheduler",
                scheduler,
                "--out",
                str(tmp_path / "out"),
                "--quiet",
            ]
        )
        == 0
    )
    folder = Path(capsys.readouterr().out.strip().split("results: ")[1])
    whole = load_results(folder)
    files = part_files(folder)
    assert len(files) == 6  # two entries, one task each (a landscape's runs fit in one chunk)
    gone = next(p for name, p in files.items() if name.startswith("runs/problem=quadratic/rule=momentum/"))
    gone.unlink()
    kept = files["metrics/" + str(gone.relative_to(folder / "runs")).replace(".parquet", ".parquet")]
    kept_gd = next(p for name, p in files.items() if name.startswith("runs/problem=quadratic/rule=gd/"))
    stamp = kept_gd.stat().st_mtime_ns
    stale = folder / "runs" / "problem=quadratic" / "rule=gd" / "part-0123456789abcdef01234567.parquet"
    stale.write_bytes(kept_gd.read_bytes())  # a part of another plan of the same runs: would be read twice
    # by its name alone: the folder is found in DESCENTLAB_RESULTS, as report and load_results find it
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DESCENTLAB_RESULTS", str(tmp_path / "out"))
    assert main(["run", str(spec), "--resume", folder.name, "--scheduler", scheduler, "--quiet"]) == 0
    assert not stale.exists()
    assert capsys.readouterr().out.strip() == f"results: {folder}"
    resumed = load_results(folder)
    assert resumed.meta["tasks_run"] == 1 and gone.is_file() and kept.is_file()
    assert kept_gd.stat().st_mtime_ns == stamp
    assert_same(whole, resumed)
    # and the single-file layout of the same experiment, run by the built-in pool
    assert main(["run", str(spec), "--workers", "2", "--out", str(tmp_path / "pool"), "--quiet"]) == 0
    pool = Path(capsys.readouterr().out.strip().split("results: ")[1])
    assert_same(load_results(pool), resumed)


def test_a_missing_distributed_extra_is_one_line(tmp_path, monkeypatch, capsys):
    spec = tmp_path / "exp.toml"
    spec.write_text(TOML)
    monkeypatch.setitem(sys.modules, "distributed", None)  # find_spec says "not installed"
    assert main(["run", str(spec), "--executor", "dask", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [
        "descentlab: error: descentlab run --executor dask needs the [distributed] extra: "
        "pip install 'descentlab[distributed]'"
    ]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "address",
    [
        "nohost",
        "tcp://localhost",
        "tcp://localhost:0",
        "127.0.0.1:99999",
        "http://127.0.0.1:8786",
        "tcp://bad host:8786",
        "",
    ],
)
def test_a_bad_scheduler_address_is_one_line(address, tmp_path, capsys):
    spec = tmp_path / "exp.toml"
    spec.write_text(TOML)
    assert main(["run", str(spec), "--executor", "dask", "--scheduler", address, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0]
    assert err[0] == (
        f"descentlab: error: --scheduler: got {address!r}; expected tcp://HOST:PORT, tls://HOST:PORT "
        "or HOST:PORT with PORT in 1-65535 (a Dask scheduler)"
    )


def test_resume_needs_the_dask_executor_and_a_folder(tmp_path, capsys):
    spec = tmp_path / "exp.toml"
    spec.write_text(TOML)
    assert main(["run", str(spec), "--executor", "local", "--resume", str(tmp_path)]) == 2
    assert "--executor: got 'local'; expected dask (with --resume)" in capsys.readouterr().err
    pytest.importorskip("distributed")
    assert main(["run", str(spec), "--resume", str(tmp_path / "nothing")]) == 2
    assert "--resume: got" in capsys.readouterr().err


def test_inside_a_daemonic_process_the_default_is_in_process(monkeypatch):
    """A Dask worker is daemonic: it may not start a process pool, so its share runs in-process."""
    from descentlab.faults import build_instance
    from descentlab.registry import get_registry
    from descentlab.runner import default_workers

    registry = get_registry()
    big = Experiment.from_dict({**SPEC, "steps": 5000, "seeds": 20})
    instance = build_instance(registry.problem("moons"), big.problem_settings)
    if (os.cpu_count() or 1) < 2:
        pytest.skip("one CPU: the default is in-process anyway")
    assert default_workers(big, instance, registry) > 1
    monkeypatch.setattr(multiprocessing.current_process(), "daemon", True, raising=False)
    assert default_workers(big, instance, registry) == 1


class Terminal:
    def __init__(self):
        self.text = ""

    def isatty(self):
        return True

    def write(self, text):
        self.text += text

    def flush(self):
        pass


def test_the_progress_bar_counts_tasks_with_an_eta():
    stream = Terminal()
    bar = ProgressBar(stream, unit="tasks")
    bar(2, 8)  # a resumed sweep: two parts were there already
    time.sleep(0.12)
    bar(4, 8)
    assert "2/8 tasks" in stream.text and "4/8 tasks  ETA " in stream.text
    bar(8, 8)
    assert stream.text.endswith("8/8 tasks\n")
    assert np.isfinite(float(stream.text.split("ETA ")[1].split(" s")[0]))


def test_a_failed_task_is_one_line_that_says_how_to_resume(tmp_path, monkeypatch, capsys):
    pytest.importorskip("distributed")
    import descentlab.cluster as cluster

    def fail(experiment, folder, **kwargs):
        folder.mkdir(parents=True)
        raise RuntimeError("worker lost\nwith a second line")

    monkeypatch.setattr(cluster, "connect", lambda *args, **kwargs: object())
    monkeypatch.setattr(cluster, "close", lambda client: None)
    monkeypatch.setattr(cluster, "run_sweep", fail)
    spec = tmp_path / "exp.toml"
    spec.write_text(TOML)
    assert main(["run", str(spec), "--executor", "dask", "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("descentlab: error: a task failed (worker lost with a second line); ")
    assert f"descentlab run {spec} --resume {tmp_path / 'out'}/dask-cli-" in err[0]


def test_the_cluster_pages_pandas_and_duckdb_samples_read_the_parts(client, experiment, reference, tmp_path):
    """docs/cluster.md reads a sweep's parts without descentlab: its two samples, run on a real folder."""
    import re

    from descentlab.cluster import run_sweep

    folder = tmp_path / "sweep"
    run_sweep(experiment, folder, client=client)
    page = (Path(__file__).resolve().parents[2] / "docs" / "cluster.md").read_text(encoding="utf-8")
    blocks = re.findall(r"^```python\n(.*?)^```", page, re.M | re.S)
    pandas_sample = next(b for b in blocks if b.startswith("import pandas as pd"))
    duckdb_sample = next(b for b in blocks if b.startswith("import duckdb"))
    named = re.search(r'"(results/sweep-[0-9-]+)', pandas_sample).group(1)
    scope: dict = {}
    exec(pandas_sample.replace(named, str(folder)), scope)
    assert len(scope["runs"]) == len(reference.runs) and len(scope["metrics"]) == len(reference.metrics)
    assert {"problem", "rule"} <= set(scope["metrics"].columns)  # hive partitions, as the comment says
    best = eval(duckdb_sample.split("\n", 1)[1].replace(named, str(folder)), {"duckdb": __import__("duckdb")})
    expected = reference.runs.groupby("rule")["final_loss"].agg(["count", "min"])
    for row in best.itertuples():
        assert row.runs == expected.loc[row.rule, "count"]
        assert row.best == expected.loc[row.rule, "min"] or (
            np.isnan(row.best) and np.isnan(expected.loc[row.rule, "min"])
        )
