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
    with pytest.raises(
        RuntimeError, match=r"the task of rules\[[01]\] \('(gd|adam)', runs \d+\.\.\d+\): RuntimeError: worker lost"
    ):
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
    *_, before, last = stream.text.split("\r")
    assert last.rstrip(" \n").endswith("8/8 tasks") and last.endswith("\n")
    assert len(last) == len(before) + 1  # padded: the ETA drawn before is blanked out
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


@pytest.mark.slow
def test_get_executor_counts_the_clusters_threads_not_this_machines(client, experiment, reference, monkeypatch):
    """client.get_executor() hides its client: the cluster's size must still be asked of Dask."""
    from descentlab.runner import executor_and_workers

    monkeypatch.setattr(os, "cpu_count", lambda: 7)  # this machine differs from the cluster's 2 threads
    assert executor_and_workers(client.get_executor())[1] == 2
    results = run_experiment(experiment, executor=client.get_executor())
    assert results.meta["workers"] == 2
    pd.testing.assert_frame_equal(reference.metrics, results.metrics, check_exact=True)


PROTOCOL = """name = "dask-protocol"
steps = 30
[problem]
name = "quadratic"
[protocol]
budget = 3
tune_seeds = 2
test_seeds = 2
[[rules]]
rule = "gd"
[[rules]]
rule = "momentum"
"""


@pytest.mark.slow
def test_a_protocol_experiment_runs_its_phases_on_the_cluster(client, tmp_path, capsys, monkeypatch):
    """--executor dask is not dropped for a [protocol] experiment: every phase's batch goes to the
    cluster, and the comparison's numbers and test-seed tables are those of the local pool."""
    import json

    import descentlab.runner as runner

    spec = tmp_path / "protocol.toml"
    spec.write_text(PROTOCOL)
    sent = []
    original = runner.executor_and_workers
    monkeypatch.setattr(runner, "executor_and_workers", lambda *a, **k: sent.append(a[0]) or original(*a, **k))
    scheduler = client.scheduler.address
    assert main(["run", str(spec), "--scheduler", scheduler, "--out", str(tmp_path / "dask"), "--quiet"]) == 0
    assert len(sent) == 2  # the tuning batch and the test batch, both on the client
    monkeypatch.setattr(runner, "executor_and_workers", original)
    assert main(["run", str(spec), "--workers", "2", "--out", str(tmp_path / "pool"), "--quiet"]) == 0
    capsys.readouterr()
    (on_dask,) = (tmp_path / "dask").iterdir()
    (on_pool,) = (tmp_path / "pool").iterdir()
    report_dask, report_pool = (json.loads((f / "protocol.json").read_text()) for f in (on_dask, on_pool))
    assert report_dask["problems"] == report_pool["problems"] and report_dask["profile"] == report_pool["profile"]
    assert_same(load_results(on_pool), load_results(on_dask))


def test_options_that_do_not_fit_are_one_line_before_any_cluster_starts(tmp_path, capsys, monkeypatch):
    pytest.importorskip("distributed")
    import descentlab.cluster as cluster

    def no_cluster(*args, **kwargs):
        raise AssertionError("a cluster was started")

    monkeypatch.setattr(cluster, "connect", no_cluster)
    spec, protocol = tmp_path / "exp.toml", tmp_path / "protocol.toml"
    spec.write_text(TOML)
    protocol.write_text(PROTOCOL)
    single = tmp_path / "single"
    assert main(["run", str(spec), "--out", str(single), "--quiet"]) == 0
    (single,) = single.iterdir()
    from concurrent.futures import ThreadPoolExecutor

    from descentlab.cluster import run_sweep
    from descentlab.experiment import parse_toml

    other = Experiment.from_dict({**parse_toml(TOML), "steps": 3})
    with ThreadPoolExecutor(1) as pool:  # a sweep's folder, of another experiment
        sweep = run_sweep(other, tmp_path / "other-sweep", client=pool).path
    before = sorted(p.name for p in single.iterdir())
    capsys.readouterr()
    cases = [
        (["run", str(protocol), "--resume", str(single)], "--resume: got", "[protocol] experiment"),
        (["run", str(spec), "--scheduler", "127.0.0.1:8786", "--workers", "2"], "--workers: got 2", "--scheduler"),
        (["run", str(spec), "--resume", str(single)], "--resume: got", "holds runs.parquet"),
        (["run", str(spec), "--resume", str(single), "--out", str(tmp_path)], "--out: got", "with --resume"),
        (["run", str(spec), "--resume", str(sweep)], "--resume: got", "this same experiment"),
        (["run", str(spec), "--executor", "dask", "--out", str(sweep)], "--out: got", "this same experiment"),
    ]
    for argv, start, accepted in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(f"descentlab: error: {start}") and accepted in err[0], err
    assert sorted(p.name for p in single.iterdir()) == before  # a finished folder is never made a sweep's


@pytest.mark.slow
def test_rerunning_into_the_sweeps_folder_resumes_it(client, tmp_path, capsys):
    spec = tmp_path / "exp.toml"
    spec.write_text(TOML)
    scheduler = client.scheduler.address
    assert main(["run", str(spec), "--scheduler", scheduler, "--out", str(tmp_path / "out"), "--quiet"]) == 0
    folder = Path(capsys.readouterr().out.strip().split("results: ")[1])
    whole = load_results(folder)
    next((folder / "metrics").rglob("rule=gd/part-*")).unlink()
    assert main(["run", str(spec), "--scheduler", scheduler, "--out", str(folder), "--quiet"]) == 0
    assert capsys.readouterr().out.strip() == f"results: {folder}"  # the same folder, not one inside it
    resumed = load_results(folder)
    assert resumed.meta["tasks_run"] == 1
    assert_same(whole, resumed)


# Long enough tasks (8 of about half a second) that a kill lands while some are still to run.
KILL_SPEC = {**SPEC, "name": "dask-kill", "steps": 60, "seeds": 3}


@pytest.fixture(scope="module")
def kill_reference(tmp_path_factory):
    """KILL_SPEC on the built-in process pool, in the single-file layout."""
    results = run_experiment(Experiment.from_dict(KILL_SPEC), workers=2)
    return load_results(save_results(results, tmp_path_factory.mktemp("kill-pool")))


def sweep_parts(out: Path) -> list[Path]:
    return sorted(out.glob("*/runs/*/*/part-*.parquet"))


@pytest.mark.slow
def test_a_sweep_killed_with_its_scheduler_resumes_to_the_pools_tables(client, kill_reference, tmp_path):
    """SIGKILL the command itself (its local scheduler and the nannies live in it) mid-sweep: its
    workers end with it, the parts written stay, and --resume on another cluster runs only the rest."""
    import signal
    import subprocess

    psutil = pytest.importorskip("psutil")  # a dependency of distributed
    spec = tmp_path / "kill.toml"
    spec.write_text(Experiment.from_dict(KILL_SPEC).to_toml())
    out = tmp_path / "out"
    command = [sys.executable, "-m", "descentlab", "run", str(spec), "--executor", "dask", "--workers", "2"]
    sweep = subprocess.Popen(
        [*command, "--out", str(out), "--quiet"], stdout=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.monotonic() + 120  # a hang guard, not a speed limit
    while not sweep_parts(out) and sweep.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    workers = psutil.Process(sweep.pid).children(recursive=True)
    os.kill(sweep.pid, signal.SIGKILL)
    sweep.wait()
    assert sweep.returncode == -signal.SIGKILL, "the sweep ended before the kill"
    _, alive = psutil.wait_procs(workers, timeout=60)
    assert not alive, f"worker processes outlived the killed sweep: {[p.pid for p in alive]}"
    (folder,) = out.iterdir()
    done = len(sweep_parts(out))
    assert 1 <= done and not (folder / "meta.json").exists()
    assert main(["run", str(spec), "--resume", str(folder), "--scheduler", client.scheduler.address, "--quiet"]) == 0
    resumed = load_results(folder)
    total = resumed.meta["chunks"]
    assert done < total, "every part was written before the kill: nothing was resumed"
    assert resumed.meta["tasks_run"] == total - done
    assert not [p for p in folder.rglob(".*")]  # the killed writers' temporaries are gone
    assert_same(kill_reference, resumed)


@pytest.mark.slow
def test_a_worker_killed_mid_sweep_fails_its_task_and_the_sweep_resumes(kill_reference, tmp_path):
    """With no retries allowed, a killed worker fails the task it ran (KilledWorker) and so the
    sweep; the same call on the folder then runs only the missing parts, bit for bit the pool's."""
    import signal
    import threading

    pytest.importorskip("distributed")  # it adds the distributed.* settings to dask's config
    import dask

    from descentlab.cluster import close, connect, run_sweep

    experiment = Experiment.from_dict(KILL_SPEC)
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        strict = connect(n_workers=2)
    try:
        folder = tmp_path / "sweep"
        pids = strict.run(os.getpid)
        outcome = {}

        def sweep():
            try:
                run_sweep(experiment, folder, client=strict)
            except Exception as error:
                outcome["error"] = error

        runner = threading.Thread(target=sweep)
        runner.start()
        deadline = time.monotonic() + 120  # a hang guard, not a speed limit
        while not (folder / "runs").is_dir() or not list((folder / "runs").rglob("part-*")):
            assert time.monotonic() < deadline and runner.is_alive()
            time.sleep(0.01)
        busy = next((a for a, keys in strict.processing().items() if keys), None)
        assert busy is not None, "no task left running"
        os.kill(pids[busy], signal.SIGKILL)
        runner.join(timeout=120)
        error = outcome.get("error")
        assert type(error.__cause__).__name__ == "KilledWorker", outcome
        assert str(error).startswith("the task of rules[") and ": KilledWorker: " in str(error)
        assert not (folder / "meta.json").exists()
        done = len(list((folder / "runs").rglob("part-*")))
        strict.wait_for_workers(2, timeout=60)
        resumed = run_sweep(experiment, folder, client=strict)  # into the same folder: goes on
    finally:
        close(strict)
    # tasks already running when the sweep gave up may still have finished their parts since
    assert 1 <= resumed.meta["tasks_run"] <= resumed.meta["chunks"] - done
    assert_same(kill_reference, resumed)


@pytest.mark.slow
def test_a_local_cluster_takes_no_fixed_port(tmp_path):
    """Two sweeps at once (or another program on Dask's port 8787) must not print "Port 8787 is
    already in use" on stderr: the local scheduler serves its HTTP routes on a free port instead."""
    import socket
    import warnings

    pytest.importorskip("distributed")
    from descentlab.cluster import close, connect

    holder = socket.socket()
    try:
        holder.bind(("127.0.0.1", 8787))
    except OSError:
        pass  # taken already: by another cluster, which is the case this test is about
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            second = connect(n_workers=1)
        try:
            assert second.scheduler_info()["services"].get("dashboard") != 8787
            assert second.submit(sum, [1, 2]).result() == 3
        finally:
            close(second)
    finally:
        holder.close()


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
