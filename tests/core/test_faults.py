"""Faults survived: workers die with their parent, killed saves leave no temporaries forever, a name
collision keeps each meta.json's command its own, a corrupted folder is one ResultsError line, and a
full disk names the file (issue #11)."""

import dataclasses
import errno
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import descentlab.records as records
from descentlab.dashboard import report
from descentlab.errors import ResultsError, SpecError
from descentlab.experiment import Experiment
from descentlab.records import load_results, save_results
from descentlab.registry import load_registry
from descentlab.runner import run_experiment


@pytest.fixture(scope="module")
def results():
    registry = load_registry(entry_points=False, use_env=False)
    e = Experiment.from_dict(
        {
            "name": "rt",
            "steps": 6,
            "seeds": 2,
            "snapshot_every": 3,
            "problem": {"name": "spirals", "samples": 40, "hidden": [3]},
            "rules": [{"rule": "momentum", "learning_rate": [0.1, 0.5]}],
        },
        registry,
    )
    return run_experiment(e, registry=registry, workers=1)


@pytest.fixture
def saved(results, tmp_path):
    return save_results(dataclasses.replace(results), tmp_path / "results")


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()  # reaped: nothing has this pid any more
    return child.pid


# ---- 1. workers die with their parent -------------------------------------------------------------

LONG = """name = "long"
steps = 400000
seeds = 4
[problem]
name = "spirals"
samples = 200
hidden = [16]
[[rules]]
rule = "gd"
learning_rate = 0.05
"""


def _stat(pid: int):
    """(parent pid, state, start time, CPU seconds used) of a process from /proc, or None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    return int(fields[1]), fields[0], fields[19], (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _training(pid: int) -> bool:
    """Has the worker used a few CPU seconds, i.e. started, imported descentlab and begun its chunk?"""
    stat = _stat(pid)
    return stat is not None and stat[3] >= 3.0


def _descendants(root: int) -> dict[int, tuple[int, str]]:
    """Live descendants of ``root``: pid -> (parent pid, start time). Scans /proc (task/*/children
    is not always built into the kernel)."""
    table = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = _stat(int(entry.name))
            if stat and stat[1] not in "ZX":
                table[int(entry.name)] = (stat[0], stat[2])
    found, todo = {}, [root]
    while todo:
        parent = todo.pop()
        for pid, (ppid, started) in table.items():
            if ppid == parent and pid not in found:
                found[pid] = (ppid, started)
                todo.append(pid)
    return found


def _alive(pid: int, started: str) -> bool:
    stat = _stat(pid)  # a zombie nobody reaps (pid 1 here may not) has died; a reused pid is another process
    return stat is not None and stat[1] not in "ZX" and stat[2] == started


# a parent with a second thread gets forkserver workers: grandchildren, their parent the fork server
THREADED = """import sys, threading
if __name__ == "__main__":
    threading.Thread(target=threading.Event().wait, daemon=True).start()
    from descentlab.cli import main
    sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or not Path("/proc/self/stat").exists(),
    reason="Linux only: uses prctl's parent-death signal and /proc",
)
@pytest.mark.parametrize("start", ["fork", "forkserver"])
@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM], ids=["kill-9", "term"])
def test_worker_processes_die_with_their_parent(signum, start, tmp_path):
    spec = tmp_path / "long.toml"
    spec.write_text(LONG)
    (tmp_path / "threaded.py").write_text(THREADED)
    command = [str(tmp_path / "threaded.py")] if start == "forkserver" else ["-m", "descentlab"]
    log = (tmp_path / "stderr.txt").open("w")
    env = {**os.environ, "DESCENTLAB_NO_ENTRY_POINTS": "1"}
    parent = subprocess.Popen(
        [sys.executable, *command, "run", str(spec), "--workers", "2", "--quiet", "--out", str(tmp_path / "out")],
        stdout=subprocess.DEVNULL,
        stderr=log,
        env=env,
    )
    family: dict[int, tuple[int, str]] = {}
    try:
        for _ in range(3000):  # generous: the parent imports, builds the problem, then starts the pool
            family = _descendants(parent.pid)
            children = {p for p, (pp, _) in family.items() if pp == parent.pid}
            workers = children if start == "fork" else {p for p, (pp, _) in family.items() if pp in children}
            # killed while a worker still starts, it would die of the missing parent anyway: wait
            # until both train
            if sum(map(_training, workers)) >= 2 or parent.poll() is not None:
                break
            time.sleep(0.1)
        assert parent.poll() is None and sum(map(_training, workers)) >= 2, (tmp_path / "stderr.txt").read_text()
        family = _descendants(parent.pid)
        os.kill(parent.pid, signum)
        parent.wait()
        for _ in range(1200):
            if not any(_alive(pid, started) for pid, (_, started) in family.items()):
                break
            time.sleep(0.1)
        survivors = [pid for pid, (_, started) in family.items() if _alive(pid, started)]
        assert survivors == [], f"processes {survivors} of the pool outlived their parent"
    finally:
        log.close()
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        for pid, (_, started) in family.items():
            if _alive(pid, started):
                os.kill(pid, signal.SIGKILL)


def test_a_worker_whose_parent_is_already_gone_ends_itself(monkeypatch):
    from descentlab import workers

    ended = []
    monkeypatch.setattr(workers.os, "kill", lambda pid, signum: ended.append((pid, signum)))
    monkeypatch.setattr(workers, "_parent_death_signal", lambda signum: True)
    monkeypatch.setattr(workers, "pid_alive", lambda pid: False)
    watched = []
    monkeypatch.setattr(workers, "_start_watchdog", lambda ppid, parent: watched.append((ppid, parent)))
    workers.die_with_parent(os.getppid())
    assert ended == [(os.getpid(), signal.SIGTERM)] and watched == []
    ended.clear()
    monkeypatch.setattr(workers, "pid_alive", lambda pid: True)
    workers.die_with_parent(os.getppid())
    assert ended == [] and watched == []
    workers.die_with_parent(12345)  # started by a fork server: the pool's process is watched too
    assert ended == [] and watched == [(os.getppid(), 12345)]


def test_without_prctl_a_watchdog_ends_the_worker(monkeypatch):
    from descentlab import workers

    ended = []
    parent_gone = []
    monkeypatch.setattr(workers.os, "kill", lambda pid, signum: ended.append((pid, signum)))
    monkeypatch.setattr(workers, "_parent_death_signal", lambda signum: False)
    monkeypatch.setattr(workers, "pid_alive", lambda pid: not parent_gone)
    monkeypatch.setattr(workers, "WATCHDOG_SECONDS", 0.01)
    workers.die_with_parent(4242)
    assert ended == []
    parent_gone.append(True)
    for _ in range(2000):
        if ended:
            break
        time.sleep(0.01)
    assert ended == [(os.getpid(), signal.SIGTERM)]


def test_prctl_is_armed_on_linux():
    if not sys.platform.startswith("linux"):
        pytest.skip("Linux only")
    from descentlab import workers

    code = (
        "import signal, sys; from descentlab.workers import _parent_death_signal;"
        "import ctypes; ok = _parent_death_signal(signal.SIGTERM);"
        "v = ctypes.c_int(); ctypes.CDLL(None).prctl(2, ctypes.byref(v), 0, 0, 0);"
        "print(ok, v.value)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["True", str(int(signal.SIGTERM))]
    assert workers.PR_SET_PDEATHSIG == 1


# ---- 2. temporaries of killed saves -----------------------------------------------------------------


def _temporary(parent: Path, pid: int, host=None, name="rt", random="abcd_123") -> Path:
    folder = parent / f".{name}.{host or records._host()}.{pid}.{random}.tmp"
    folder.mkdir(parents=True)
    (folder / "runs.parquet").write_bytes(b"half a file")
    return folder


def _leftovers(parent: Path) -> dict[str, Path]:
    dead, live = _dead_pid(), os.getpid()
    made = {
        "dead": _temporary(parent, dead),
        "dead.dotted.name": _temporary(parent, dead, name="a.b-c"),
        "live": _temporary(parent, live),
        "other_host": _temporary(parent, dead, host="elsewhere-box"),
        "not_the_pattern": _temporary(parent, dead, random="notthis1").rename(
            parent / f".rt.{records._host()}.{dead}.tmp"
        ),
        "a_file": parent / f".rt.{records._host()}.{dead}.zzzzzzzz.tmp",
    }
    made["a_file"].write_text("a file, not a folder")
    return made


@pytest.mark.parametrize("how", ["save", "load"])
def test_stale_temporaries_of_dead_writers_are_removed_and_no_others(how, results, saved):
    parent = saved.parent
    made = _leftovers(parent)
    if how == "save":
        save_results(dataclasses.replace(results), parent)
    else:
        load_results(saved)
    assert not made["dead"].exists() and not made["dead.dotted.name"].exists()
    for kept in ("live", "other_host", "not_the_pattern", "a_file"):
        assert made[kept].exists(), kept
    assert (made["live"] / "runs.parquet").read_bytes() == b"half a file"
    assert saved.is_dir() and load_results(saved).runs.equals(results.runs)


def test_the_temporary_folder_carries_the_writers_pid(results, tmp_path, monkeypatch):
    seen = []
    real = np.savez

    def spy(path, **arrays):
        seen.extend(p.name for p in tmp_path.iterdir() if p.name.startswith("."))
        real(path, **arrays)

    monkeypatch.setattr(records.np, "savez", spy)
    save_results(dataclasses.replace(results), tmp_path)
    assert len(seen) == 1
    match = records._TEMPORARY.fullmatch(seen[0])
    assert match and match["name"] == "rt" and int(match["pid"]) == os.getpid()
    assert match["host"] == records._host()


def test_a_temporary_of_a_running_save_in_another_process_is_kept(results, tmp_path):
    other = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        busy = _temporary(tmp_path, other.pid)
        save_results(dataclasses.replace(results), tmp_path)
        assert busy.exists()
    finally:
        other.communicate(b"")
    save_results(dataclasses.replace(results), tmp_path)
    assert not busy.exists()


# ---- 3. a name collision between two concurrent runs ------------------------------------------------


def test_each_meta_command_names_its_own_folder_after_a_collision(results, tmp_path, monkeypatch):
    class Frozen(datetime):
        @classmethod
        def now(cls, tz=None):
            return datetime(2026, 1, 2, 3, 4, 5, tzinfo=tz)

    monkeypatch.setattr(records, "datetime", Frozen)
    real, others, started = np.savez, [], []

    def another_run_finishes_meanwhile(path, **arrays):
        if not started:  # the first save is half-way; a second run of the same name saves in the same second
            started.append(True)
            others.append(save_results(dataclasses.replace(results), tmp_path))
        real(path, **arrays)

    monkeypatch.setattr(records.np, "savez", another_run_finishes_meanwhile)
    first = save_results(dataclasses.replace(results), tmp_path)
    assert others and {first.name, others[0].name} == {"rt-20260102-030405", "rt-20260102-030405-2"}
    for folder in (first, others[0]):
        meta = json.loads((folder / "meta.json").read_text())
        assert meta["command"] == f"descentlab run {folder / 'experiment.toml'}"
        assert load_results(folder).meta["command"] == meta["command"]


# ---- 4. corrupted folders ---------------------------------------------------------------------------


def _rewrite_meta(folder, change):
    meta = json.loads((folder / "meta.json").read_text())
    (folder / "meta.json").write_text(json.dumps(change(meta)))


def _rewrite_table(folder, name, change):
    table = pd.read_parquet(folder / name)
    change(table).to_parquet(folder / name, index=False)


def _rewrite_weights(folder, change):
    with np.load(folder / "weights.npz") as npz:
        weights = {k: npz[k] for k in npz.files}
    change(weights)
    np.savez(folder / "weights.npz", **weights)


def _truncate(folder, name):
    data = (folder / name).read_bytes()
    (folder / name).write_bytes(data[: len(data) // 2])


CORRUPTIONS = {
    # case: (corrupt the folder, file named, field named)
    "meta_is_a_list": (lambda f: (f / "meta.json").write_text("[]"), "meta.json", "top level"),
    "meta_not_json": (lambda f: (f / "meta.json").write_text('{"versions": '), "meta.json", "unreadable"),
    "problem_info_list": (
        lambda f: _rewrite_meta(f, lambda m: {**m, "problem_info": [1, 2]}),
        "meta.json",
        "problem_info",
    ),
    "layout_shape_text": (
        lambda f: _rewrite_meta(
            f,
            lambda m: {
                **m,
                "problem_info": {**m["problem_info"], "layout": [{**m["problem_info"]["layout"][0], "shape": ["big"]}]},
            },
        ),
        "meta.json",
        "problem_info.layout",
    ),
    "n_runs_text": (lambda f: _rewrite_meta(f, lambda m: {**m, "n_runs": "four"}), "meta.json", "n_runs"),
    "foreign_runs": (
        lambda f: pd.DataFrame({"a": [1, 2], "b": ["x", "y"]}).to_parquet(f / "runs.parquet"),
        "runs.parquet",
        "run_id",
    ),
    "runs_missing_status": (
        lambda f: _rewrite_table(f, "runs.parquet", lambda t: t.drop(columns="status")),
        "runs.parquet",
        "status",
    ),
    "runs_label_numbers": (
        lambda f: _rewrite_table(f, "runs.parquet", lambda t: t.assign(label=range(len(t)))),
        "runs.parquet",
        "label",
    ),
    "runs_too_few_rows": (lambda f: _rewrite_table(f, "runs.parquet", lambda t: t.iloc[1:]), "runs.parquet", "run_id"),
    "runs_unknown_status": (
        lambda f: _rewrite_table(f, "runs.parquet", lambda t: t.assign(status="great")),
        "runs.parquet",
        "status",
    ),
    "metrics_missing_loss": (
        lambda f: _rewrite_table(f, "metrics.parquet", lambda t: t.drop(columns="loss")),
        "metrics.parquet",
        "loss",
    ),
    "metrics_step_beyond": (
        lambda f: _rewrite_table(f, "metrics.parquet", lambda t: t.assign(step=t["step"] + 50)),
        "metrics.parquet",
        "step",
    ),
    "metrics_run_id_text": (
        lambda f: _rewrite_table(f, "metrics.parquet", lambda t: t.assign(run_id="0")),
        "metrics.parquet",
        "run_id",
    ),
    "weights_transposed": (
        lambda f: _rewrite_weights(f, lambda w: w.update({"final.W1": w["final.W1"].transpose(0, 2, 1)})),
        "weights.npz",
        "final.W1",
    ),
    "weights_one_run_short": (
        lambda f: _rewrite_weights(f, lambda w: w.update({"initial.b2": w["initial.b2"][1:]})),
        "weights.npz",
        "initial.b2",
    ),
    "weights_missing_final": (lambda f: _rewrite_weights(f, lambda w: w.pop("final.W2")), "weights.npz", "final.W2"),
    "snapshots_wrong_count": (
        lambda f: _rewrite_weights(f, lambda w: w.update({"snapshot_steps": np.arange(7)})),
        "weights.npz",
        "snapshots",
    ),
    # a layout whose rows are not {name, shape}: the weights cannot be checked against it
    "layout_rows_without_shape": (
        lambda f: _rewrite_meta(f, lambda m: {**m, "problem_info": {**m["problem_info"], "layout": [{"name": 1}]}}),
        "meta.json",
        "problem_info.layout",
    ),
    "layout_not_a_list": (
        lambda f: _rewrite_meta(f, lambda m: {**m, "problem_info": {**m["problem_info"], "layout": "W1"}}),
        "meta.json",
        "problem_info.layout",
    ),
    # written by a later descentlab (docs/results.md: the layout version): refused, not misread
    "layout_version_from_the_future": (
        lambda f: _rewrite_meta(f, lambda m: {**m, "descentlab_results": 99}),
        "meta.json",
        "descentlab_results",
    ),
    "layout_version_zero": (
        lambda f: _rewrite_meta(f, lambda m: {**m, "descentlab_results": 0}),
        "meta.json",
        "descentlab_results",
    ),
    "weights_as_text": (
        lambda f: _rewrite_weights(f, lambda w: w.update({"final.W1": w["final.W1"].astype(str)})),
        "weights.npz",
        "final.W1",
    ),
    "weights_complex": (
        lambda f: _rewrite_weights(f, lambda w: w.update({"initial.b1": w["initial.b1"] * 1j})),
        "weights.npz",
        "initial.b1",
    ),
    "truncated_runs": (lambda f: _truncate(f, "runs.parquet"), "runs.parquet", "unreadable"),
    "truncated_weights": (lambda f: _truncate(f, "weights.npz"), "weights.npz", "unreadable"),
}


def test_the_saved_folder_itself_is_valid(saved, results):
    back = load_results(saved)
    assert set(records.RUN_COLUMNS) | set(records.OPTIONAL_RUN_COLUMNS) <= set(back.runs.columns)
    assert set(records.METRIC_COLUMNS) | set(records.OPTIONAL_METRIC_COLUMNS) <= set(back.metrics.columns)
    assert set(records.META_FIELDS) - {"sharpness_cost"} <= set(back.meta)
    assert "snapshots" in back.weights


@pytest.mark.parametrize("case", sorted(CORRUPTIONS))
def test_a_corrupted_folder_is_one_results_error_naming_file_and_field(case, saved):
    corrupt, file, field = CORRUPTIONS[case]
    corrupt(saved)
    with pytest.raises(ResultsError) as caught:
        load_results(saved)
    message = str(caught.value)
    assert isinstance(caught.value, SpecError)  # every caller of bad input already shows it as one line
    assert "\n" not in message and str(saved / file) in message and field in message, message


@pytest.mark.parametrize("case", sorted(CORRUPTIONS))
def test_report_on_a_corrupted_folder_exits_2_with_one_line(case, saved, tmp_path, capsys):
    corrupt, file, field = CORRUPTIONS[case]
    corrupt(saved)
    out = tmp_path / "report.html"
    assert report.main([str(saved), "--out", str(out)]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and captured.out == "", captured.err
    assert lines[0].startswith("descentlab: error: results ") and file in lines[0] and field in lines[0]
    assert not out.exists()


def test_the_report_command_prints_no_traceback(saved, tmp_path):
    (saved / "meta.json").write_text("[]")
    env = {**os.environ, "DESCENTLAB_NO_ENTRY_POINTS": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "descentlab", "report", str(saved), "--out", str(tmp_path / "r")],
        capture_output=True,
        text=True,
        env=env,
    )
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    assert "meta.json" in done.stderr and done.stdout == ""


@pytest.mark.parametrize(
    "case",
    [
        "meta_is_a_list",
        "problem_info_list",
        "weights_transposed",
        "truncated_runs",
        "layout_version_from_the_future",
        "weights_as_text",
    ],
)
def test_the_results_page_shows_a_corrupted_folder_in_one_line(case, saved, monkeypatch):
    AppTest = pytest.importorskip("streamlit.testing.v1").AppTest
    monkeypatch.setenv("DESCENTLAB_ALLOW_PATHS", str(saved.parent))  # as `--allow-path` would
    corrupt, file, field = CORRUPTIONS[case]
    corrupt(saved)
    at = AppTest.from_file(str(Path(report.__file__).with_name("app.py")), default_timeout=120)
    at.query_params["folder"] = str(saved.parent)
    at.switch_page("views/5_results.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert len(at.error) == 1
    message = re.sub(r"\\(.)", r"\1", at.error[0].value)  # as a reader sees it (W.markdown_text escapes)
    assert "\n" not in message and file in message and field in message, message


# ---- 5. a full disk ---------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["html", "csv"])
def test_a_full_disk_names_the_report_file_it_could_not_write(fmt, saved, tmp_path, capsys, monkeypatch):
    def disk_full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_text", disk_full)
    monkeypatch.setattr(pd.DataFrame, "to_csv", disk_full)
    out = tmp_path / "report"
    assert report.main([str(saved), "--format", fmt, "--out", str(out)]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and captured.out == ""
    first = out / ("report.html" if fmt == "html" else "runs.csv")
    assert str(first) in lines[0] and "disk is full" in lines[0], lines[0]
    assert not out.exists() or sorted(out.iterdir()) == []  # no file, no temporary left behind


def test_saving_onto_a_full_disk_keeps_earlier_results(results, saved, monkeypatch):
    before = {p.name: p.read_bytes() for p in saved.iterdir()}

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(records.np, "savez", disk_full)
    with pytest.raises(SpecError, match="No space left"):
        save_results(dataclasses.replace(results), saved.parent)
    assert [p.name for p in saved.parent.iterdir()] == [saved.name]
    assert {p.name: p.read_bytes() for p in saved.iterdir()} == before
    shutil.rmtree(saved)  # keeps tmp_path small


def test_an_atomic_write_that_fails_names_its_target_not_its_temporary(tmp_path):
    from descentlab.atomic import write_atomic

    def disk_full(path):
        path.write_bytes(b"half")
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    target = tmp_path / "out.csv"
    with pytest.raises(OSError) as caught:
        write_atomic(target, disk_full)
    assert caught.value.errno == errno.ENOSPC and caught.value.filename == str(target)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(PermissionError) as caught:  # a filename the writer gave itself is kept
        write_atomic(target, lambda p: (_ for _ in ()).throw(PermissionError(errno.EACCES, "denied", "/elsewhere")))
    assert caught.value.filename == "/elsewhere"


def test_a_temporary_left_by_a_killed_writer_is_removed_by_the_next_write(tmp_path):
    # A writer killed between mkstemp and rename leaves .<name>.<host>.<pid>.<random>.tmp<suffix>;
    # the next write of that file removes it when that pid is gone on this host, and nothing else.
    import subprocess
    import sys

    from descentlab.atomic import host_name, write_text_atomic

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    target = tmp_path / "report.md"
    stale = tmp_path / f".report.md.{host_name()}.{gone.pid}.abcd1234.tmp.md"
    live = tmp_path / f".report.md.{host_name()}.{os.getppid()}.abcd1234.tmp.md"
    elsewhere = tmp_path / f".report.md.other-host.{gone.pid}.abcd1234.tmp.md"
    other_file = tmp_path / f".notes.md.{host_name()}.{gone.pid}.abcd1234.tmp.md"
    for leftover in (stale, live, elsewhere, other_file):
        leftover.write_text("half")
    write_text_atomic(target, "whole")
    assert target.read_text() == "whole"
    assert not stale.exists()
    assert live.exists() and elsewhere.exists() and other_file.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [target.name, live.name, elsewhere.name, other_file.name]
    )


def test_a_long_lived_worker_runs_an_edited_plugin_files_new_code(tmp_path):
    # A Dask worker keeps its registry between tasks; once the plugin file changes it must load the
    # new code (the step -scale·α·g by hand, before and after the edit).
    import numpy as np

    from descentlab.workers import _worker_registry

    plugin = tmp_path / "edited_worker_plugin.py"
    source = """
from descentlab import DescentRule, hookimpl

def update(grad, state, params, learning_rate, hyper, step):
    return -{scale} * learning_rate * grad, state

@hookimpl
def register_optimizers(register):
    register(DescentRule("edited_in_worker", lambda params, hyper: (), update, ()))
"""
    grad = np.ones((1, 3))

    def step():
        rule = _worker_registry((str(plugin),)).rule("edited_in_worker")
        return rule.update(grad, (), np.zeros((1, 3)), np.full((1, 1), 0.5), {}, 0)[0]

    plugin.write_text(source.format(scale=1.0))
    np.testing.assert_array_equal(step(), -0.5 * grad)
    plugin.write_text(source.format(scale=3.0))
    np.testing.assert_array_equal(step(), -1.5 * grad)
