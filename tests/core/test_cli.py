"""The descentlab command: run, plugins, --help, one-line errors with exit 2, earlier results untouched."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

import descentlab.cli as cli
import test_runner_plugin
from descentlab.cli import main
from descentlab.records import load_results

PLUGIN_FILE = str(Path(test_runner_plugin.__file__).resolve())

GOOD = """
name = "cli-quad"
steps = 15
seeds = 2
eval_every = 0

[problem]
name = "quadratic"

[[rules]]
rule = "gd"
learning_rate = [0.1, 2.5]

[[rules]]
rule = "momentum"
learning_rate = 0.1
momentum = [0.5, 0.9]
"""


def snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(folder.rglob("*"))}


@pytest.fixture
def earlier(tmp_path):
    """A results folder with one finished experiment in it, and the experiment file."""
    spec = tmp_path / "good.toml"
    spec.write_text(GOOD)
    out = tmp_path / "results"
    assert main(["run", str(spec), "--out", str(out), "--quiet", "--workers", "1"]) == 0
    return spec, out


def test_run_writes_a_results_folder(earlier, capsys):
    spec, out = earlier
    folders = list(out.iterdir())
    assert len(folders) == 1 and folders[0].name.startswith("cli-quad-")
    results = load_results(folders[0])
    assert len(results.runs) == 8
    # α = 0.1 on λ_min = 0.1: the slow direction loses 2 % per step, still falling after 15 steps
    assert list(results.runs["status"][:4]) == ["progressing", "progressing", "diverged", "diverged"]


def test_run_prints_a_summary(earlier, tmp_path, capsys):
    spec, out = earlier
    assert main(["run", str(spec), "--out", str(tmp_path / "second"), "--workers", "1"]) == 0
    text = capsys.readouterr().out
    assert "8 runs:" in text and "2 diverged" in text and "best final loss" in text
    assert "gradient descent's limit" in text  # the flagged configuration's reason sentence
    assert text.strip().endswith(f"results: {next((tmp_path / 'second').iterdir())}")


BAD = [
    ('steps = 10\n[problem]\nname = "quadratic"\n[[rules]]\nrule = "sgdd"\n', "rules[0].rule", "adam"),
    ('steps = 10\n[problem]\nname = "quadratc"\n[[rules]]\nrule = "gd"\n', "problem.name", "rosenbrock"),
    (
        'steps = 10\n[problem]\nname = "quadratic"\n[[rules]]\nrule = "gd"\n[rules.schedule]\nname = "cos"\n',
        "rules[0].schedule.name",
        "cosine",
    ),
    (
        'steps = 10\n[problem]\nname = "quadratic"\n[[rules]]\nrule = "gd"\n[[rules]]\nrule = "momentum"\n'
        "momentum = 2.0\n",
        "rules[1].momentum",
        "[0, 1)",
    ),
    (
        'steps = 10\n[problem]\nname = "quadratic"\n[[rules]]\nrule = "gd"\nlearning_rate = "fast"\n',
        "rules[0].learning_rate",
        "a number",
    ),
    ('steps = 10\n[problem\nname = "quadratic"\n', "experiment file", "line 2"),
]


@pytest.mark.parametrize("text, field, mention", BAD, ids=[b[1] for b in BAD])
def test_bad_input_is_one_line_exit_2_and_earlier_results_stay(earlier, tmp_path, capsys, text, field, mention):
    spec, out = earlier
    before = snapshot(out)
    bad = tmp_path / "bad.toml"
    bad.write_text(text)
    capsys.readouterr()
    assert main(["run", str(bad), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("descentlab: error: ")
    assert field in err and mention in err, err
    assert snapshot(out) == before


def test_unwritable_output_folder_exits_2_before_running(earlier, tmp_path, capsys):
    spec, _ = earlier
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(["run", str(spec), "--out", str(blocker / "sub"), "--quiet"]) == 2
    assert "--out" in capsys.readouterr().err


def test_bad_arguments_exit_2(capsys):
    assert main(["run"]) == 2
    assert "EXPERIMENT.toml" in capsys.readouterr().err
    assert main(["frobnicate"]) == 2
    assert main(["run", "x.toml", "--workers", "zero"]) == 2


def test_help_everywhere(capsys):
    for argv in (["--help"], ["run", "--help"], ["plugins", "--help"], ["dashboard", "--help"]):
        with pytest.raises(SystemExit) as caught:
            main(argv)
        assert caught.value.code == 0
        assert "usage: descentlab" in capsys.readouterr().out


def test_plugins_lists_rules_schedules_problems_with_origins_and_broken_plugins(tmp_path, capsys):
    broken = tmp_path / "broken_rule.py"
    broken.write_text("import nonexistent_module_xyz\n")
    assert main(["plugins", "--plugin", PLUGIN_FILE, "--plugin", str(broken)]) == 0
    captured = capsys.readouterr()
    out = captured.out
    assert captured.err == ""  # broken plugins are listed once, in the output
    for name in ("gd", "momentum", "adam", "constant", "cosine", "spirals", "quadratic"):
        assert f"  {name}  [built-in]" in out
    assert f"  test_gd  [file {PLUGIN_FILE}]" in out
    assert "scale=1.0  a number in (0, 10]" in out
    assert "momentum=0.9  a number in [0, 1)" in out
    assert "Broken plugins:" in out and "broken_rule.py" in out and "ModuleNotFoundError" in out


def test_run_with_a_plugin_file(tmp_path, capsys):
    spec = tmp_path / "mine.toml"
    spec.write_text('steps = 5\n[problem]\nname = "test_quadratic"\n[[rules]]\nrule = "test_gd"\nscale = 2.0\n')
    assert main(["run", str(spec), "--plugin", PLUGIN_FILE, "--out", str(tmp_path / "r"), "--quiet"]) == 0
    (folder,) = (tmp_path / "r").iterdir()
    meta = load_results(folder).meta
    assert meta["plugins"]["rules"] == {"test_gd": f"file {PLUGIN_FILE}"}
    assert meta["command"] == f"descentlab run {folder / 'experiment.toml'} --plugin {PLUGIN_FILE}"
    assert main(meta["command"].split()[1:] + ["--out", str(tmp_path / "again"), "--quiet"]) == 0


def test_a_broken_plugin_file_given_to_run_is_bad_input(earlier, tmp_path, capsys):
    spec, out = earlier
    broken = tmp_path / "broken.py"
    broken.write_text("raise RuntimeError('nope')\n")
    assert main(["run", str(spec), "--plugin", str(broken), "--out", str(out)]) == 2
    assert "broken.py" in capsys.readouterr().err


def test_a_command_whose_module_is_missing_says_so_in_one_line(monkeypatch, tmp_path, capsys):
    spec = tmp_path / "good.toml"
    spec.write_text(GOOD)
    monkeypatch.setitem(sys.modules, "descentlab.lrfind", None)  # its import fails as if it were not installed
    assert main(["lr-find", str(spec)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("descentlab: error: command: got 'lr-find'; expected ") and err.count("\n") == 1, err
    assert "descentlab.lrfind" in err


def test_report_and_lr_find_are_carried_out_with_the_arguments_the_tree_parsed(monkeypatch):
    import descentlab.dashboard.report as report
    import descentlab.lrfind as lrfind

    seen = []
    monkeypatch.setattr(report, "run", lambda args: seen.append(("report", args)) or 0)
    monkeypatch.setattr(lrfind, "run", lambda args: seen.append(("lr-find", args)) or 0)
    assert main(["-v", "report", "some/dir", "other/dir", "--format", "md"]) == 0
    assert main(["--quiet", "lr-find", "x.toml", "--steps", "12", "--stop-factor", "3"]) == 0
    (_, report_args), (_, lr_args) = seen
    assert (report_args.results, report_args.format, report_args.out) == (["some/dir", "other/dir"], "md", None)
    assert report_args.verbose == 1
    assert (lr_args.experiment, lr_args.steps, lr_args.stop_factor, lr_args.start) == ("x.toml", 12, 3.0, 1e-6)
    assert lr_args.global_quiet


def test_python_dash_m_and_the_progress_bar(tmp_path):
    spec = tmp_path / "good.toml"
    spec.write_text(GOOD)
    env = {**os.environ, "DESCENTLAB_NO_ENTRY_POINTS": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "descentlab", "run", str(spec), "--out", str(tmp_path / "o")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "results: " in done.stdout and "8 runs" in done.stdout
    assert done.stderr == ""  # no warnings; no progress bar when stderr is not a terminal


def test_progress_bar_draws_on_a_terminal():
    import io

    class Tty(io.StringIO):
        def isatty(self):
            return True

    stream = Tty()
    bar = cli.ProgressBar(stream, width=10)
    bar(5, 10)
    bar(10, 10)
    bar(10, 10)  # the runner may report the end twice: drawn once
    text = stream.getvalue()
    assert "[#####.....]   50%" in text and text.endswith("\n") and text.count("[##########]  100%") == 1
    # halfway at this pace, the rest takes as long as the first half took
    halfway = text.split("\r")[1]
    elapsed = float(halfway.split("%")[1].split(" s")[0])
    assert "  ETA " in halfway and float(halfway.split("ETA ")[1].split(" s")[0]) == pytest.approx(elapsed, abs=1)
    assert "ETA" not in text.split("\r")[-1]


def test_progress_bar_estimates_the_time_left_at_the_pace_so_far(monkeypatch):
    import io

    class Tty(io.StringIO):
        def isatty(self):
            return True

    clock = iter([100.0, 100.0, 102.0, 105.0])  # made, first call, second call, the end
    monkeypatch.setattr(cli.time, "perf_counter", lambda: next(clock))
    stream = Tty()
    bar = cli.ProgressBar(stream, width=10)
    bar(0, 100)  # nothing done yet: no estimate
    bar(25, 100)  # 25 run-steps in 2 s: the other 75 take 6 s
    bar(100, 100)
    first, second, last = stream.getvalue().lstrip("\r").split("\r")
    assert "ETA" not in first and second.endswith("2.0 s  ETA 6 s") and "ETA" not in last


def test_run_with_two_workers_equals_one(tmp_path):
    spec = tmp_path / "good.toml"
    spec.write_text(GOOD)
    assert main(["run", str(spec), "--out", str(tmp_path / "one"), "--quiet", "--workers", "1"]) == 0
    assert main(["run", str(spec), "--out", str(tmp_path / "two"), "--quiet", "--workers", "2"]) == 0
    one = load_results(next((tmp_path / "one").iterdir()))
    two = load_results(next((tmp_path / "two").iterdir()))
    assert two.meta["workers"] == 2 and one.meta["workers"] == 1
    assert one.metrics.equals(two.metrics) and one.runs.equals(two.runs)


def test_descentlab_results_is_the_default_out(tmp_path, monkeypatch, capsys):
    spec = tmp_path / "good.toml"
    spec.write_text(GOOD)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DESCENTLAB_RESULTS", str(tmp_path / "from-env"))
    assert main(["run", str(spec), "--quiet", "--workers", "1"]) == 0
    [folder] = (tmp_path / "from-env").iterdir()
    assert capsys.readouterr().out == f"results: {folder}\n"
    assert not (tmp_path / "results").exists()
    # --out still wins over the environment
    assert main(["run", str(spec), "--quiet", "--workers", "1", "--out", str(tmp_path / "given")]) == 0
    assert len(list((tmp_path / "given").iterdir())) == 1 and len(list((tmp_path / "from-env").iterdir())) == 1
    # unset or empty: results/ in the current folder
    monkeypatch.setenv("DESCENTLAB_RESULTS", "")
    assert main(["run", str(spec), "--quiet", "--workers", "1"]) == 0
    assert len(list((tmp_path / "results").iterdir())) == 1


def test_descentlab_results_starting_with_a_tilde_is_the_home_folder(tmp_path, monkeypatch, capsys):
    # a value from a file or a unit is not expanded by a shell: "~/runs" must not make a folder "~"
    spec = tmp_path / "good.toml"
    spec.write_text(GOOD)
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir(), work.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("DESCENTLAB_RESULTS", "~/runs")
    monkeypatch.chdir(work)
    assert main(["run", str(spec), "--quiet", "--workers", "1"]) == 0
    [folder] = (home / "runs").iterdir()
    assert capsys.readouterr().out == f"results: {folder}\n"
    assert not list(work.iterdir())
    from descentlab.dashboard import access

    assert access.results_dir() == str(home / "runs")  # the dashboard lists the same folder


def test_a_bad_descentlab_results_is_named_before_running(tmp_path, monkeypatch, capsys):
    spec = tmp_path / "good.toml"
    spec.write_text(GOOD)
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("DESCENTLAB_RESULTS", str(blocker / "sub"))
    capsys.readouterr()
    assert main(["run", str(spec), "--quiet", "--workers", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("descentlab: error: DESCENTLAB_RESULTS: ") and err.count("\n") == 1, err


def _run_with(tmp_path, *options, after=()):
    spec = tmp_path / "good.toml"
    spec.write_text(GOOD)  # 8 runs
    return main([*options, "run", str(spec), "--out", str(tmp_path / "out"), "--workers", "64", *after])


def test_notes_go_through_the_descentlab_logger_at_the_default_level(tmp_path, capsys):
    import logging

    before = list(logging.getLogger("descentlab").handlers)
    assert _run_with(tmp_path) == 0
    captured = capsys.readouterr()
    assert "descentlab: note: --workers 64 lowered to" in captured.err
    assert "descentlab: debug:" not in captured.err
    assert "8 runs:" in captured.out  # the summary is results output, printed
    # the command's handler is gone afterwards: a second main() does not print each line twice
    assert logging.getLogger("descentlab").handlers == before
    assert _run_with(tmp_path) == 0
    assert capsys.readouterr().err.count("lowered to") == 1


@pytest.mark.parametrize(
    "options, after",
    [(["--quiet"], []), ([], ["--quiet"]), (["-v", "--quiet"], []), (["-q"], []), ([], ["-q"])],
    ids=["before", "after", "wins-over-verbose", "short-before", "short-after"],
)
def test_quiet_before_or_after_run_leaves_only_the_results_path(tmp_path, capsys, options, after):
    assert _run_with(tmp_path, *options, after=after) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    [line] = captured.out.splitlines()
    assert line.startswith("results: ")


@pytest.mark.parametrize("options, after", [(["-v"], []), ([], ["-v"]), (["--verbose"], []), ([], ["--verbose"])])
def test_verbose_before_or_after_run_adds_debug_lines(tmp_path, capsys, options, after):
    assert _run_with(tmp_path, *options, after=after) == 0
    err = capsys.readouterr().err
    assert "descentlab: debug: plugins: " in err and "descentlab: debug: 8 runs in " in err
    assert "descentlab: note: --workers 64 lowered to" in err


def test_logging_options_before_a_delegated_command_are_taken_off(tmp_path, capsys):
    spec = tmp_path / "good.toml"
    spec.write_text(GOOD)
    assert main(["--quiet", "-v", "lr-find", str(spec), "--steps", "10"]) == 0
    assert "suggested α" in capsys.readouterr().out


@pytest.mark.parametrize(
    "missing, line",
    [
        ("plotly.graph_objects", "descentlab report needs the [report] extra: pip install 'descentlab[report]'"),
        ("kaleido", "descentlab report needs the [report] extra: pip install 'descentlab[report]'"),
        ("sklearn", "descentlab report needs the [datasets] extra: pip install 'descentlab[datasets]'"),
    ],
)
def test_an_optional_module_missing_while_a_command_runs_names_its_extra(monkeypatch, capsys, missing, line):
    import descentlab.dashboard.report as report

    def fails(args):
        raise ModuleNotFoundError(f"No module named {missing!r}", name=missing)

    monkeypatch.setattr(report, "run", fails)
    assert main(["report", "somewhere"]) == 2
    assert capsys.readouterr().err == f"descentlab: error: {line}\n"


def test_any_other_missing_module_is_not_disguised_as_an_extra(monkeypatch):
    import descentlab.dashboard.report as report

    def fails(args):
        raise ModuleNotFoundError("No module named 'frobnitz'", name="frobnitz")

    monkeypatch.setattr(report, "run", fails)
    with pytest.raises(ModuleNotFoundError, match="frobnitz"):
        main(["report", "somewhere"])
