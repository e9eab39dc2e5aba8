"""Results folders and written files get the user's umask, like any file a Python program creates
(tempfile's 0700/0600 would hide a results folder from the group that shares it)."""

import os
import stat
from pathlib import Path

import pytest

import descentlab.atomic as atomic
from descentlab.atomic import current_umask, write_text_atomic
from descentlab.experiment import Experiment
from descentlab.records import save_results
from descentlab.runner import run_experiment

SPEC = {
    "name": "perm",
    "steps": 3,
    "seeds": 1,
    "eval_every": 0,
    "problem": {"name": "quadratic"},
    "rules": [{"rule": "gd", "learning_rate": 0.1}],
}


@pytest.fixture
def umask():
    """Set the process umask for one test and restore it afterwards."""
    previous = os.umask(0o022)
    os.umask(previous)

    def set_mask(mask):
        os.umask(mask)

    yield set_mask
    os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(scope="module")
def results():
    return run_experiment(Experiment.from_dict(SPEC), workers=1)


@pytest.mark.parametrize(
    "mask, folder_mode, file_mode", [(0o022, 0o755, 0o644), (0o077, 0o700, 0o600), (0o002, 0o775, 0o664)]
)
def test_results_folder_and_files_follow_the_umask(tmp_path, umask, results, mask, folder_mode, file_mode):
    umask(mask)
    folder = save_results(results, tmp_path / "out")
    assert mode(folder) == folder_mode
    files = sorted(folder.iterdir())
    assert files and {p.name: mode(p) for p in files} == {p.name: file_mode for p in files}


@pytest.mark.parametrize("mask, file_mode", [(0o022, 0o644), (0o077, 0o600)])
def test_atomically_written_files_follow_the_umask(tmp_path, umask, mask, file_mode):
    umask(mask)
    written = write_text_atomic(tmp_path / "report.html", "<p>report</p>")
    assert mode(written) == file_mode
    assert written.read_text() == "<p>report</p>"


@pytest.mark.parametrize("proc", [True, False], ids=["proc-status", "os-umask-fallback"])
def test_the_umask_is_read_without_changing_it(umask, monkeypatch, proc):
    if not proc:
        monkeypatch.setattr(atomic, "_PROC_STATUS", "/nonexistent/status")
    elif not Path("/proc/self/status").exists():
        pytest.skip("no /proc on this system")
    umask(0o027)
    assert current_umask() == 0o027
    assert os.umask(0o027) == 0o027  # still set afterwards
