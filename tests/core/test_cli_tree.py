"""One parser tree for every subcommand (issue 15): each one's bad arguments are the same one line
``descentlab: error: <field>: got <value>; expected <what is accepted>``, exit status 2; its --help
works; building the tree imports none of the dashboard's dependencies."""

from __future__ import annotations

import argparse
import shlex
import shutil
import subprocess
import sys

import pytest

from descentlab.cli import build_parser, main

HEAVY = ("streamlit", "plotly", "pandas", "kaleido")


def subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def option_cases() -> list[tuple[list[str], str]]:
    """(argv, how the one line must begin) for every option of every subcommand and of the top level:
    a flag given a value, an option given no value, a typed or choice option given a bad value, and
    a positional with choices given one that is not."""
    parsers = {"": build_parser(), **subcommands()}
    cases = []
    for name, parser in parsers.items():
        command = [name] if name else []
        for action in parser._actions:
            if not action.option_strings and action.choices is not None:  # the command, completion's shell
                field = "command" if isinstance(action, argparse._SubParsersAction) else action.dest
                cases.append(([*command, "oops!"], f"{field}: got 'oops!'; expected one of "))
            if not action.option_strings or isinstance(action, (argparse._HelpAction, argparse._VersionAction)):
                continue
            option = max(action.option_strings, key=len)
            if action.nargs == 0:
                cases.append(([*command, f"{option}=oops"], f"{option}: got 'oops'; expected {option} without a value"))
                continue
            cases.append(([*command, option], f"{option}: got nothing; expected {option} "))
            if action.type is not None or action.choices is not None:
                cases.append(([*command, option, "oops!"], f"{option}: got 'oops!'; expected "))
    return cases


def one_error_line(capsys) -> str:
    captured = capsys.readouterr()
    assert captured.out == "" and "usage:" not in captured.err and "Traceback" not in captured.err, captured
    lines = captured.err.splitlines()
    assert len(lines) == 1 and captured.err.endswith("\n"), captured.err
    assert lines[0].startswith("descentlab: error: "), lines[0]
    return lines[0].removeprefix("descentlab: error: ")


def test_the_tree_holds_every_command_report_and_lr_find_included():
    assert set(subcommands()) == {"run", "plugins", "check", "new-rule", "dashboard", "report", "lr-find", "completion"}
    # their arguments are declared, not handed over raw: each has its own options in the tree
    for name in ("report", "lr-find"):
        assert [a for a in subcommands()[name]._actions if a.option_strings and a.dest != "help"], name


@pytest.mark.parametrize("name", sorted(subcommands()))
def test_an_unknown_option_of_every_subcommand_is_one_line_naming_it(name, capsys):
    assert main([name, "--no-such-option"]) == 2
    line = one_error_line(capsys)
    assert line.startswith(f"{name} option: got '--no-such-option'; expected one of --help"), line
    assert line.endswith(f"(see descentlab {name} --help)"), line


@pytest.mark.parametrize("argv, begins", option_cases(), ids=lambda v: " ".join(v) if isinstance(v, list) else "")
def test_a_bad_value_of_every_option_is_one_line_naming_the_option(argv, begins, capsys):
    assert main(argv) == 2
    line = one_error_line(capsys)
    assert line.startswith(begins), line
    command = argv[0] if argv[0] in subcommands() else ""
    assert line.endswith(f"(see {' '.join(['descentlab', command]).strip()} --help)"), line


def test_the_walk_reaches_a_typed_option_of_report_and_lr_find():
    argvs = [argv for argv, _ in option_cases()]
    assert ["report", "--format", "oops!"] in argvs and ["lr-find", "--steps", "oops!"] in argvs
    assert {argv[0] for argv in argvs} >= set(subcommands())  # every subcommand has at least one option checked


@pytest.mark.parametrize(
    "argv, line",
    [
        (["report", "r", "--format", "pdf"], "--format: got 'pdf'; expected one of html, md, csv, png, all"),
        (["lr-find", "x.toml", "--steps", "1"], "--steps: got '1'; expected an integer in [2, 100000]"),
        (["lr-find", "x.toml", "--end", "inf"], "--end: got 'inf'; expected a finite number"),
        (["lr-find", "x.toml", "--st", "3"], "lr-find option: got '--st'; expected one of --start, --steps"),
        (["report"], "RESULTS_DIR: got nothing; expected folders written by `descentlab run`"),
        (["lr-find"], "EXPERIMENT.toml: got nothing; expected experiment file"),
        (["plugins", "extra"], "plugins argument: got 'extra'; expected no further arguments"),
        (["frobnicate"], "command: got 'frobnicate'; expected one of run, plugins, check, new-rule, dashboard,"),
        (["completion", "zsh"], "shell: got 'zsh'; expected one of bash"),
    ],
)
def test_what_the_line_says(argv, line, capsys):
    assert main(argv) == 2
    assert one_error_line(capsys).startswith(line)


@pytest.mark.parametrize("name", sorted(subcommands()))
def test_help_of_every_subcommand(name, capsys):
    with pytest.raises(SystemExit) as caught:
        main([name, "--help"])
    assert caught.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: descentlab {name} ")


@pytest.mark.parametrize(
    "name, listed",
    [
        ("report", ["RESULTS_DIR", "--format FORMAT", "--out PATH"]),
        (
            "lr-find",
            ["EXPERIMENT.toml", "--rule NAME", "--start ALPHA", "--end ALPHA", "--steps N", "--stop-factor FACTOR"]
            + ["--out PATH", "--force"],
        ),
    ],
)
def test_report_and_lr_find_help_list_their_options(name, listed, capsys):
    with pytest.raises(SystemExit):
        main([name, "--help"])
    text = capsys.readouterr().out
    missing = [option for option in listed if option not in text]
    assert not missing, text


@pytest.mark.parametrize(
    "module, command",
    [("descentlab.dashboard.report", "report"), ("descentlab.lrfind", "lr-find")],
)
@pytest.mark.parametrize("argv", [["--no-such-option"], ["r", "--out"], ["--help"]])
def test_the_modules_main_is_the_same_command(module, command, argv, capsys):
    import importlib

    entry = importlib.import_module(module).main

    def outcome(call):
        try:
            status = call()
        except SystemExit as stop:
            status = f"exit {stop.code}"
        return status, capsys.readouterr()

    assert outcome(lambda: entry(argv)) == outcome(lambda: main([command, *argv]))


LIGHT = """
import contextlib, io, sys
from descentlab.cli import build_parser

parser = build_parser()
for argv in (["--help"], ["report", "--help"], ["lr-find", "--help"], ["dashboard", "--help"]):
    with contextlib.redirect_stdout(io.StringIO()):
        try:
            parser.parse_args(argv)
        except SystemExit:
            pass
print(sorted(m for m in sys.modules if m.split(".")[0] in {heavy} or m.startswith("descentlab.dashboard")))
"""


def test_building_the_tree_and_its_help_import_no_dashboard_plotly_streamlit_or_pandas():
    done = subprocess.run(
        [sys.executable, "-c", LIGHT.replace("{heavy}", repr(set(HEAVY)))], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]", done.stdout


# ---- descentlab completion bash: a script generated from the same tree


def test_the_completion_script_names_every_command_option_and_choice(capsys):
    assert main(["completion", "bash"]) == 0
    script = capsys.readouterr().out
    for name, parser in {"": build_parser(), **subcommands()}.items():
        [line] = [line for line in script.splitlines() if line.strip().startswith(f'"{name}") words=')]
        listed = line.split('words="', 1)[1].split('"', 1)[0].split()
        options = [o for a in parser._actions for o in a.option_strings]
        assert set(options) <= set(listed), (name, set(options) - set(listed))
    assert '"report --format") words="html md csv png all"' in script
    assert '"run --executor") words="local dask"' in script


BASH = shutil.which("bash")


def complete(line: str) -> list[str]:
    """What bash's completion of ``line`` (the cursor at its end) offers, with the generated script."""
    words = line.split(" ")
    script = subprocess.run(
        [sys.executable, "-m", "descentlab", "completion", "bash"], capture_output=True, text=True, timeout=120
    )
    assert script.returncode == 0, script.stderr
    driver = (
        script.stdout
        + "COMP_WORDS=("
        + " ".join(shlex.quote(w) for w in words)
        + f"); COMP_CWORD={len(words) - 1}; _descentlab; printf '%s\\n' \"${{COMPREPLY[@]}}\"\n"
    )
    done = subprocess.run([BASH, "--norc", "--noprofile"], input=driver, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    return [w for w in done.stdout.splitlines() if w]


@pytest.mark.skipif(BASH is None, reason="bash is not installed")
def test_bash_completes_commands_options_and_choices_from_the_tree():
    assert complete("descentlab lr") == ["lr-find"]
    assert {"run", "report", "lr-find", "completion", "--version"} <= set(complete("descentlab "))
    assert complete("descentlab report --f") == ["--format"]
    assert complete("descentlab report results/x --format ") == ["html", "md", "csv", "png", "all"]
    assert complete("descentlab -v lr-find x.toml --st") == ["--start", "--steps", "--stop-factor"]
    assert complete("descentlab run --executor d") == ["dask"]
    assert complete("descentlab completion ") == ["-h", "--help", "bash"]
    assert complete("descentlab run x.toml --out ") == []  # a free value: bash falls back to file names
