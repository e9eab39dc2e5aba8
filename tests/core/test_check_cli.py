"""`descentlab check` and `descentlab new-rule`: the built-ins pass, each broken plugin file fails the
check that names its mistake (exit 1), bad input is one line and exit 2, and a generated plugin passes
both the command and its own tests."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from descentlab import load_registry
from descentlab.cli import main
from descentlab.conformance import CHECKS
from descentlab.registry import ENTRY_POINT_GROUP

NAMES = [name for name, _ in CHECKS]

HEADER = """
from typing import NamedTuple
import numpy as np
from descentlab import DescentRule, HyperParam, hookimpl


class Empty(NamedTuple):
    pass


def init(params, hyper):
    return Empty()

"""

FOOTER = """

@hookimpl
def register_optimizers(register):
    register(DescentRule("{name}", init, update{extra}))
"""

# name -> (update body, extra DescentRule arguments, the check it must fail, words of its reason)
BROKEN = {
    "writes_grad": (
        "    grad *= -learning_rate\n    return grad, state\n",
        "",
        "never writes into grad or params",
        "wrote into grad",
    ),
    "float64_out": (
        "    return np.asarray(-learning_rate * grad, dtype=np.float64), state\n",
        "",
        "float32 stays float32",
        "float64 for float32 params",
    ),
    "noisy": (
        "    return -learning_rate * grad * (1 + 0.01 * np.random.standard_normal(grad.shape)), state\n",
        "",
        "deterministic",
        "different bits",
    ),
    "mixes_runs": (
        "    return -learning_rate * grad.mean(axis=0, keepdims=True) + 0 * grad, state\n",
        "",
        "runs are independent",
        "no value may mix runs",
    ),
    "ignores_beta": (
        "    return -learning_rate * grad, state\n",
        ', hyperparams=(HyperParam("beta", 0.9, low=0.0, high=0.99),)',
        "every declared hyperparameter is used",
        "beta",
    ),
}


def _plugin(folder: Path, name: str) -> Path:
    body, extra, _, _ = BROKEN[name]
    path = folder / f"{name}.py"
    path.write_text(
        HEADER
        + "def update(grad, state, params, learning_rate, hyper, step):\n"
        + body
        + FOOTER.format(name=name, extra=extra),
        encoding="utf-8",
    )
    return path


def _failure_lines(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith("  ✗ ")]


def test_every_builtin_passes_with_all(capsys):
    assert main(["check", "--all"]) == 0
    out = capsys.readouterr().out
    builtins = load_registry(entry_points=False, use_env=False).rules
    rows = {
        line.split()[0]: line.split()[1:] for line in out.splitlines() if line.split() and line.split()[0] in builtins
    }
    assert set(rows) == set(builtins)
    assert all(marks == ["✓"] * len(CHECKS) for marks in rows.values()), rows
    assert (
        f"{len(builtins)} rules, {len(builtins) * len(CHECKS)} checks: {len(builtins) * len(CHECKS)} passed, "
        "0 failed" in out
    )
    assert "failures:" not in out


def test_a_builtin_by_name(capsys):
    assert main(["check", "adam", "gd"]) == 0
    out = capsys.readouterr().out
    assert "2 rules, 20 checks: 20 passed" in out


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_a_broken_plugin_file_fails_the_check_that_names_its_mistake(name, tmp_path, capsys):
    _, _, check, words = BROKEN[name]
    assert main(["check", str(_plugin(tmp_path, name))]) == 1
    out = capsys.readouterr().out
    failures = _failure_lines(out)
    failed_checks = {line.split(": ", 2)[1].split(" ", 1)[1] for line in failures}
    assert check in failed_checks, out
    line = next(line for line in failures if f" {check}: " in line)
    assert words in line
    row = next(line.split() for line in out.splitlines() if line.startswith(name + " "))
    assert row[1 + NAMES.index(check)] == "✗"
    assert "0 failed" not in out.splitlines()[-1]


def test_a_rule_returning_only_updates_is_one_failure_and_the_rest_skipped(tmp_path, capsys):
    path = tmp_path / "bare.py"
    path.write_text(
        HEADER + "def update(grad, state, params, learning_rate, hyper, step):\n"
        "    return -learning_rate * grad\n" + FOOTER.format(name="bare", extra="")
    )
    assert main(["check", str(path)]) == 1
    out = capsys.readouterr().out
    assert len(_failure_lines(out)) == 1 and "not the pair (updates, state)" in out
    assert f"checks 2-{len(CHECKS)} skipped (the update contract failed)" in out


def test_every_rule_of_a_file_is_checked_and_a_good_one_passes(tmp_path, capsys):
    path = tmp_path / "two.py"
    path.write_text(
        HEADER + "def update(grad, state, params, learning_rate, hyper, step):\n"
        "    return -learning_rate * grad, state\n\n"
        "def noisy(grad, state, params, learning_rate, hyper, step):\n"
        "    return -learning_rate * grad * np.random.random(), state\n\n"
        "@hookimpl\ndef register_optimizers(register):\n"
        "    register(DescentRule('plain', init, update))\n"
        "    register(DescentRule('random_scale', init, noisy))\n"
    )
    assert main(["check", str(path)]) == 1
    out = capsys.readouterr().out
    rows = {
        line.split()[0]: line.split()[1:] for line in out.splitlines() if line.startswith(("plain ", "random_scale "))
    }
    assert rows["plain"] == ["✓"] * len(CHECKS)
    assert rows["random_scale"][NAMES.index("deterministic")] == "✗"


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("descentlab: error: "), err
    return err[0]


def test_an_unknown_name_is_one_line_listing_the_accepted_names(capsys):
    assert main(["check", "gdd"]) == 2
    line = _one_line_error(capsys)
    assert "'gdd'" in line and "adam" in line and "momentum" in line and "plugin .py file" in line


@pytest.mark.parametrize("make", ["missing", "folder", "no_rules", "broken_import", "takes_a_builtin_name"])
def test_bad_files_are_one_line_and_exit_2(make, tmp_path, capsys):
    path = tmp_path / "p.py"
    if make == "folder":
        path = tmp_path / "pkg/"
        path.mkdir()
    elif make == "no_rules":
        path.write_text("x = 1\n")
    elif make == "broken_import":
        path.write_text("import not_a_module_anywhere\n")
    elif make == "takes_a_builtin_name":
        path.write_text(
            HEADER + "def update(grad, state, params, learning_rate, hyper, step):\n"
            "    return -learning_rate * grad, state\n" + FOOTER.format(name="gd", extra="")
        )
    assert main(["check", str(path)]) == 2
    line = _one_line_error(capsys)
    assert str(path).rstrip("/") in line or path.name in line
    assert {
        "missing": "no such file",
        "folder": "a folder",
        "no_rules": "registers none",
        "broken_import": "not_a_module_anywhere",
        "takes_a_builtin_name": "rule 'gd' is already registered by built-in",
    }[make] in line


def test_a_broken_file_among_several_targets_is_one_line_and_the_others_are_still_checked(tmp_path, capsys):
    broken = tmp_path / "broken.py"
    broken.write_text("from descentlab import hookimpl\n\nraise RuntimeError('boom')\n")
    good = tmp_path / "good.py"
    good.write_text(
        HEADER + "def update(grad, state, params, learning_rate, hyper, step):\n"
        "    return -learning_rate * grad, state\n" + FOOTER.format(name="good_rule", extra="")
    )
    assert main(["check", str(broken), str(good), "gd", str(tmp_path / "missing.py")]) == 2
    out, err = capsys.readouterr()
    rows = [line.split()[0] for line in out.splitlines() if line.startswith(("good_rule ", "gd "))]
    assert rows == ["good_rule", "gd"] and "2 rules, 20 checks: 20 passed, 0 failed" in out
    lines = err.strip().splitlines()
    assert len(lines) == 2 and all(line.startswith("descentlab: error: ") for line in lines), lines
    assert "boom" in lines[0] and f"{broken}:3" in lines[0]  # named by file and line, in the targets' order
    assert "missing.py" in lines[1] and "no such file" in lines[1]
    # every target bad: one line each, no table
    assert main(["check", str(broken), "gdd"]) == 2
    out, err = capsys.readouterr()
    assert not out.strip() and len(err.strip().splitlines()) == 2


def test_nothing_to_check_is_a_usage_error(capsys):
    assert main(["check"]) == 2
    assert "--all" in _one_line_error(capsys)


# ---- new-rule ---------------------------------------------------------------------------------


def test_new_rule_generates_a_plugin_that_passes_check_and_its_own_tests(tmp_path, capsys):
    folder = tmp_path / "descentlab_scaled_momentum"
    assert main(["new-rule", "scaled_momentum", "--dir", str(folder)]) == 0
    assert sorted(p.name for p in folder.iterdir()) == [
        "pyproject.toml",
        "scaled_momentum.py",
        "test_scaled_momentum.py",
    ]
    capsys.readouterr()
    assert main(["check", str(folder / "scaled_momentum.py")]) == 0
    assert "1 rule, 10 checks: 10 passed, 0 failed" in capsys.readouterr().out
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_scaled_momentum.py"],
        cwd=folder,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "2 passed" in done.stdout
    text = (folder / "scaled_momentum.py").read_text(encoding="utf-8")
    assert "@hookimpl" in text and "def register_optimizers(register)" in text and "v ← μ v + g" in text


def test_the_generated_tests_fail_when_the_rule_is_broken(tmp_path):
    folder = tmp_path / "f"
    assert main(["new-rule", "mine", "--dir", str(folder)]) == 0
    rule = folder / "mine.py"
    rule.write_text(rule.read_text(encoding="utf-8").replace("+ grad\n", "+ 2 * grad\n"), encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_mine.py"],
        cwd=folder,
        capture_output=True,
        text=True,
    )
    # twice the gradient: the hand-computed steps and the declared threshold (2 + 2μ) are both wrong now
    assert done.returncode == 1, done.stdout[-2000:]
    assert "FAILED test_mine.py::test_two_steps_computed_by_hand" in done.stdout
    assert "the declared stability threshold holds on a quadratic" in done.stdout


def test_the_generated_pyproject_declares_the_entry_point_the_registry_reads(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["new-rule", "my_rule"]) == 0
    data = tomllib.loads((tmp_path / "descentlab_my_rule" / "pyproject.toml").read_text(encoding="utf-8"))
    assert ENTRY_POINT_GROUP == "descentlab"
    assert data["project"]["entry-points"][ENTRY_POINT_GROUP] == {"my_rule": "my_rule"}
    assert data["tool"]["setuptools"]["py-modules"] == ["my_rule"]
    assert "descentlab" in data["project"]["dependencies"]
    assert data["project"]["name"] == "descentlab-my-rule"


@pytest.mark.parametrize(
    "name, words",
    [
        ("MyRule", "lowercase Python identifier"),
        ("2fast", "lowercase Python identifier"),
        ("my-rule", "lowercase Python identifier"),
        ("class", "lowercase Python identifier"),
        ("momentum", "already registered by built-in"),
        ("json", "would shadow it"),
    ],
)
def test_bad_names_are_one_line_and_write_nothing(name, words, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["new-rule", name]) == 2
    line = _one_line_error(capsys)
    assert repr(name) in line and words in line
    assert list(tmp_path.iterdir()) == []


def test_existing_files_are_never_overwritten(tmp_path, capsys):
    folder = tmp_path / "d"
    folder.mkdir()
    (folder / "test_mine.py").write_text("keep me\n")
    assert main(["new-rule", "mine", "--dir", str(folder)]) == 2
    line = _one_line_error(capsys)
    assert "test_mine.py" in line and "never overwrites" in line
    assert (folder / "test_mine.py").read_text() == "keep me\n"
    assert sorted(p.name for p in folder.iterdir()) == ["test_mine.py"]  # nothing else written either
    (tmp_path / "file").write_text("")
    assert main(["new-rule", "mine", "--dir", str(tmp_path / "file")]) == 2
    assert "a folder" in _one_line_error(capsys)


def test_the_sample_in_docs_cli_is_what_check_prints(tmp_path, capsys):
    path = tmp_path / "leaky.py"
    path.write_text(
        HEADER + "def update(grad, state, params, learning_rate, hyper, step):\n"
        "    grad *= -learning_rate\n    return np.asarray(grad, dtype=np.float64), state\n"
        + FOOTER.format(name="leaky", extra="")
    )
    assert main(["check", str(path)]) == 1
    out = capsys.readouterr().out
    docs = (Path(__file__).resolve().parents[2] / "docs" / "cli.md").read_text(encoding="utf-8")
    sample = docs.split("```\nrule    1")[1].split("```")[0]
    assert ("rule    1" + sample).strip() in out
