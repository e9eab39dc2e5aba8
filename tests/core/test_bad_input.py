"""Bad input (issue 11): one line on stderr naming the field, the value and what is accepted; exit 2;
no traceback; results already written stay untouched. Each test covers a class of inputs, not one case."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from descentlab.cli import main

GOOD = """
name = "bad-input-quad"
steps = 10
seeds = 2
eval_every = 0

[problem]
name = "quadratic"

[[rules]]
rule = "gd"
learning_rate = [0.1, 0.2]
"""


def spec_text(**top) -> str:
    """GOOD with top-level keys replaced (values are TOML literals)."""
    settings, tables = GOOD.split("[problem]", 1)
    lines = [line for line in settings.splitlines() if line.split(" = ")[0] not in top]
    head = [f"{k} = {v}" for k, v in top.items()]
    return "\n".join(head + lines) + "\n[problem]" + tables


def snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(folder.rglob("*"))}


@pytest.fixture(scope="module")
def earlier(tmp_path_factory):
    """A results folder with one finished run in it: every refused run below must leave it as it is."""
    root = tmp_path_factory.mktemp("earlier")
    spec = root / "good.toml"
    spec.write_text(GOOD)
    out = root / "results"
    assert main(["run", str(spec), "--out", str(out), "--quiet", "--workers", "1"]) == 0
    return out


def cli(*args, cwd=None, timeout=120, env=None):
    """``python -m descentlab ARGS`` as a subprocess: (exit status, stdout, stderr)."""
    done = subprocess.run(
        [sys.executable, "-m", "descentlab", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
        env=env,
    )
    return done.returncode, done.stdout, done.stderr


def assert_one_line(status, stderr, *names, code=2):
    """Exit ``code``, exactly one line on stderr, no traceback, and every one of ``names`` in it."""
    assert "Traceback" not in stderr, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert status == code, (status, stderr)
    for name in names:
        assert str(name) in lines[0], (name, lines[0])
    return lines[0]


def refuse(tmp_path, earlier, text, *names, extra=(), filename="exp.toml"):
    """Run a spec that must be refused: one line naming ``names``, and ``earlier`` untouched."""
    before = snapshot(earlier)
    spec = tmp_path / filename
    spec.write_text(text, encoding="utf-8")
    status, _, stderr = cli("run", spec, "--out", earlier, "--quiet", *extra)
    line = assert_one_line(status, stderr, *names)
    assert snapshot(earlier) == before
    return line


# ---- 1. experiment names: checked at load time --------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["x" * 101, "a" * 300, "bad/name", "../up", ".hidden", "-dash", "with space", "tab\there", "ünïcode", ""]
)
def test_bad_names_are_refused_at_load_time_naming_the_field(tmp_path, earlier, name):
    escaped = name.replace("\\", "\\\\").replace("\t", "\\t")
    line = refuse(tmp_path, earlier, spec_text(name=f'"{escaped}"'), "name", "100")
    assert "--out" not in line  # blamed on the name, not on the output folder after training


def test_a_non_string_name_is_refused(tmp_path, earlier):
    refuse(tmp_path, earlier, spec_text(name="42"), "name", "42")


def test_names_at_the_limit_run_and_a_long_file_name_is_shortened(tmp_path):
    from descentlab.experiment import Experiment, load_experiment_file

    assert Experiment.from_toml(spec_text(name='"' + "n" * 100 + '"')).name == "n" * 100
    long_file = tmp_path / ("f" * 200 + ".toml")
    long_file.write_text(GOOD.replace('name = "bad-input-quad"\n', ""))
    assert load_experiment_file(long_file).name == "f" * 100


@pytest.mark.parametrize(
    "label, shown",
    [
        ("two\\nlines", "two\\nlines"),  # a line break would split every one-line message that names the entry
        ("tab\\there", "tab\\there"),
        ("nul\\u0000byte", "nul\\x00byte"),
        ("line\\u2028separator", "line\\u2028separator"),  # str.splitlines() breaks here too
        ("", "''"),
        ("L" * 201, "201 characters"),
    ],
)
def test_bad_labels_are_refused_at_load_time_naming_the_entry(tmp_path, earlier, label, shown):
    text = GOOD.replace('rule = "gd"\n', f'rule = "gd"\nlabel = "{label}"\n')
    refuse(tmp_path, earlier, text, "rules[0].label", shown, "printable characters")


@pytest.mark.parametrize(
    "value",
    ["[" * 3000 + "]" * 3000, "{a = " * 3000 + "1" + "}" * 3000],  # tomllib recursed into RecursionError
    ids=["arrays", "inline-tables"],
)
def test_toml_nested_too_deeply_is_one_line(tmp_path, earlier, value):
    line = refuse(tmp_path, earlier, spec_text(seeds=value), "experiment file", "malformed TOML")
    assert "nested too deeply" in line
    from descentlab.errors import SpecError
    from descentlab.experiment import Experiment

    with pytest.raises(SpecError, match="nested too deeply"):
        Experiment.from_toml(spec_text(seeds=value))


def test_printable_labels_of_any_script_run(tmp_path):
    from descentlab.experiment import Experiment

    label = "α-GD + décroissance ★ " + "L" * 178  # 200 characters: the limit
    entry = Experiment.from_toml(GOOD.replace('rule = "gd"\n', f'rule = "gd"\nlabel = "{label}"\n')).entries[0]
    assert entry.label == label


# ---- 3. TOML files with a byte-order mark --------------------------------------------------------------


def test_a_toml_file_with_a_byte_order_mark_loads_and_runs(tmp_path):
    from descentlab.experiment import Experiment, load_experiment_file

    spec = tmp_path / "bom.toml"
    spec.write_bytes(b"\xef\xbb\xbf" + GOOD.encode("utf-8"))
    assert load_experiment_file(spec).name == "bad-input-quad"
    assert Experiment.from_toml("\ufeff" + GOOD).name == "bad-input-quad"
    status, stdout, stderr = cli("run", spec, "--out", tmp_path / "out", "--quiet", "--workers", "1")
    assert status == 0, stderr
    assert "results:" in stdout


def test_a_toml_file_that_is_not_utf8_or_not_a_regular_file_is_one_line(tmp_path, earlier):
    spec = tmp_path / "latin1.toml"
    spec.write_bytes(GOOD.replace("bad-input-quad", "caf\xe9").encode("latin-1"))
    before = snapshot(earlier)
    for path in (spec, tmp_path, "/dev/zero"):
        status, _, stderr = cli("run", path, "--out", earlier, "--quiet", timeout=30)
        assert_one_line(status, stderr, "experiment file", str(path))
    assert snapshot(earlier) == before


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_a_fifo_as_experiment_file_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "pipe.toml"
    os.mkfifo(fifo)
    status, _, stderr = cli("run", fifo, "--quiet", timeout=30)
    assert_one_line(status, stderr, "experiment file", "not a regular file")


# ---- 4. CSV paths that are not regular files, columns beyond the float range ---------------------------


def csv_spec(path, **settings) -> str:
    extra = "".join(f"{k} = {v}\n" for k, v in settings.items())
    return (
        f'name = "csv-bad"\nsteps = 5\nseeds = 1\neval_every = 0\n\n[problem]\nname = "csv"\n'
        f'path = "{path}"\ntarget = "y"\nhidden = [4]\n{extra}\n[[rules]]\nrule = "gd"\nlearning_rate = 0.1\n'
    )


def test_csv_paths_that_are_not_regular_files_are_refused(tmp_path, earlier):
    paths = ["/dev/zero", "/dev/null", str(tmp_path)]
    if hasattr(os, "mkfifo"):
        fifo = tmp_path / "pipe.csv"
        os.mkfifo(fifo)
        paths.append(str(fifo))
    for path in paths:
        expected = "directory" if Path(path).is_dir() else "not a regular file"
        refuse(tmp_path, earlier, csv_spec(path), "problem.path", path, expected)


def test_a_missing_csv_file_is_one_line(tmp_path, earlier):
    refuse(tmp_path, earlier, csv_spec(tmp_path / "nope.csv"), "problem.path", "nope.csv")


def test_a_csv_row_the_reader_cannot_read_is_one_line_naming_file_and_line(tmp_path, earlier):
    # a cell beyond csv's field limit raised csv.Error, reported as a build failure of the built-in
    # csv problem ("problems.py:164: build failed: Error: ...") instead of the user's file and line
    path = tmp_path / "long_cell.csv"
    path.write_text("a,b,y\n1,2,0\n3," + "4" * 200_000 + ",1\n5,6,0\n")
    line = refuse(tmp_path, earlier, csv_spec(path), "long_cell.csv line 3", "field limit")
    assert "problems.py" not in line and "4444" not in line


def test_a_quoted_cell_holding_a_line_break_is_refused_not_read_as_another_number(tmp_path, earlier):
    # the lines were split before the csv reader saw them, which joined "1<newline>2" into 12
    path = tmp_path / "quoted.csv"
    path.write_text('a,b,y\n1,2,0\n"3\n4",5,1\n6,7,0\n8,9,1\n')
    refuse(tmp_path, earlier, csv_spec(path), "quoted.csv line 3, column 1", "not a number")
    rows = tmp_path / "after.csv"  # and a row after a multi-line cell keeps its own line number
    rows.write_text('a,b,y\n1,2,0\n5,6,"two\nlines"\n6,oops,0\n')  # a text label over lines 3-4
    from descentlab.datasets import read_csv
    from descentlab.errors import SpecError

    with pytest.raises(SpecError, match="after.csv line 5, column 2"):
        read_csv(rows, "y", "classification")


def huge_csv(tmp_path, big=1.7e308) -> Path:
    rows = ["a,b,y"] + [f"{(-1) ** i * big * (1 - i / 100):.17g},{i},{i % 3}" for i in range(40)]
    path = tmp_path / "huge.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


def test_columns_near_the_float_limit_are_rescaled_without_warnings(tmp_path):
    from descentlab.datasets import load_csv

    path = huge_csv(tmp_path)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        data = load_csv(path, "y")
    assert np.isfinite(data.x_train).all() and np.isfinite(data.x_test).all()
    assert abs(data.x_train[:, 0].std() - 1) < 1e-6
    status, stdout, stderr = cli("run", tmp_path / "exp.toml", "--out", tmp_path / "out", "--quiet")
    assert status == 2  # no such file yet: the CLI check itself
    (tmp_path / "exp.toml").write_text(csv_spec(path))
    status, stdout, stderr = cli("run", tmp_path / "exp.toml", "--out", tmp_path / "out", "--quiet", "--workers", "1")
    assert status == 0, stderr
    assert "RuntimeWarning" not in stderr and "Traceback" not in stderr


def test_huge_columns_without_standardisation_are_refused_naming_the_column(tmp_path, earlier):
    path = huge_csv(tmp_path)
    # named by file and position: a message never quotes the file's text, not even a header name
    line = refuse(tmp_path, earlier, csv_spec(path, standardize="false"), "huge.csv column 1", "standardize")
    assert "'a'" not in line
    rows = ["a,y"] + [f"{i},{(-1) ** i * 1e200:.3g}" for i in range(20)]
    target = tmp_path / "huge_target.csv"
    target.write_text("\n".join(rows) + "\n")
    refuse(tmp_path, earlier, csv_spec(target, standardize_target="false"), "target 'y'", "1e+200")


def test_non_finite_statistics_are_refused_naming_the_column():
    from descentlab.datasets import make_dataset
    from descentlab.errors import SpecError

    x = np.array([[1.0, np.inf], [2.0, 1.0], [3.0, 2.0], [4.0, 3.0]])
    with pytest.raises(SpecError, match="column 'height'"):
        make_dataset(
            x, np.arange(4.0).reshape(-1, 1), "regression", standardize_inputs=True, feature_names=["width", "height"]
        )


# ---- 2. sizes and counts: checked up front against a stated estimate --------------------------------

HUGE_NET = """
name = "huge-net"
[problem]
name = "spirals"
hidden = [100000, 100000]
[[rules]]
rule = "gd"
"""


@pytest.mark.parametrize(
    "problem, shown",
    [
        ('name = "moons"\nnoise = 1e308', "problem.noise: got 1e+308"),
        ('name = "sine"\nnoise = 1e300', "problem.noise: got 1e+300"),
        ('name = "blobs"\nspread = 1e308', "blobs points up to 1e+308"),  # overflow from a setting not named noise
        ('name = "linear_regression"\nslope = 1e308\nx_high = 1e308', "line points up to inf"),
    ],
)
def test_generated_data_that_would_overflow_is_refused_in_one_line(tmp_path, earlier, problem, shown):
    # each printed RuntimeWarnings (overflow in multiply) and then trained on inf or diverged silently
    text = GOOD.replace('name = "quadratic"', problem + "\nsamples = 20")
    line = refuse(tmp_path, earlier, text, shown)
    assert "RuntimeWarning" not in line


LONG = "n" * 5000  # beyond the 255 bytes a file name may have: os.stat raises ENAMETOOLONG


@pytest.mark.parametrize(
    "args",
    [
        ["run", "{spec}", "--out", LONG],
        ["run", "{spec}", "--resume", LONG],
        ["lr-find", "{spec}", "--out", LONG + ".json"],
        ["check", LONG + ".py"],
        ["new-rule", "fresh", "--dir", LONG],
        ["dashboard", "--allow-path", LONG],
        ["report", LONG],
    ],
    ids=lambda args: " ".join(a if len(a) < 20 else "LONG" for a in args),
)
def test_a_path_too_long_for_the_file_system_is_one_line_exit_2(tmp_path, capsys, args):
    spec = tmp_path / "good.toml"
    spec.write_text(GOOD)
    capsys.readouterr()
    status = main([a.format(spec=spec) for a in args])
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("\n") == 1, err
    assert status == 2 and err.startswith("descentlab: error: ")
    assert len(err) < 600  # the 5000 characters are cut, not echoed whole


def test_a_network_deeper_than_100_hidden_layers_is_refused_at_load_time(tmp_path, earlier):
    # 5000 layers of 4 fit in memory and the time estimate (parameters x samples) but ran for minutes:
    # every layer is Python calls per step that neither estimate counts
    deep = GOOD.replace('name = "quadratic"', 'name = "moons"\nsamples = 20\nhidden = [' + ", ".join(["4"] * 101) + "]")
    refuse(tmp_path, earlier, deep, "problem.hidden", "at most 100")
    from descentlab.experiment import Experiment

    limit = GOOD.replace(
        'name = "quadratic"', 'name = "moons"\nsamples = 20\nhidden = [' + ", ".join(["4"] * 100) + "]"
    )
    assert len(Experiment.from_toml(limit).problem_settings["hidden"]) == 100


def test_a_network_that_cannot_fit_is_refused_before_any_work(tmp_path, earlier):
    line = refuse(tmp_path, earlier, HUGE_NET, "experiment size", "needs ~", "GB", "10000500001 parameters")
    assert "has" in line or "allows" in line or "may use" in line


def test_run_experiment_from_python_refuses_it_too_before_any_work(monkeypatch):
    # the dashboard and notebooks call run_experiment directly, not the CLI
    import descentlab.runner as runner
    from descentlab.errors import SpecError
    from descentlab.experiment import Experiment, parse_toml
    from descentlab.runner import run_experiment

    def never(*args, **kwargs):
        raise AssertionError("a chunk trained")

    monkeypatch.setattr(runner, "run_chunk", never)  # the name the runner calls it by
    with pytest.raises(SpecError, match="experiment size") as refused:
        run_experiment(Experiment.from_dict(parse_toml(HUGE_NET)), workers=1)
    assert "needs ~" in str(refused.value) and "\n" not in str(refused.value)


def test_the_memory_check_uses_the_stated_cap(tmp_path, earlier):
    before = snapshot(earlier)
    spec = tmp_path / "exp.toml"
    spec.write_text(GOOD)
    env = {**os.environ, "DESCENTLAB_MEMORY_LIMIT_GB": "0.000001"}
    status, _, stderr = cli("run", spec, "--out", earlier, "--quiet", env=env)
    assert_one_line(status, stderr, "experiment size", "needs ~", "DESCENTLAB_MEMORY_LIMIT_GB")
    env["DESCENTLAB_MEMORY_LIMIT_GB"] = "lots"
    status, _, stderr = cli("run", spec, "--out", earlier, "--quiet", env=env)
    assert_one_line(status, stderr, "DESCENTLAB_MEMORY_LIMIT_GB", "lots")
    assert snapshot(earlier) == before


@pytest.mark.parametrize(
    "seeds, shown",
    [
        ("100000000", "100000000"),
        ("100001", "100001"),
        ("0", "0"),
        ("-3", "-3"),
        ("[18446744073709551616]", "18446744073709551616"),
        ("[9223372036854775808]", "9223372036854775808"),
        ("[4294967296]", "4294967296"),
        ("[1, -1]", "-1"),
        ("[1.5]", "1.5"),
        ("[true]", "True"),
        ("[]", "[]"),
        ("[2, 2]", "[2, 2]"),
        ('"3"', "'3'"),
    ],
)
def test_seed_counts_and_values_out_of_range_are_refused(tmp_path, earlier, seeds, shown):
    line = refuse(tmp_path, earlier, spec_text(seeds=seeds), "seeds", shown)
    assert "2**32" in line


def test_the_largest_seed_runs(tmp_path):
    from descentlab.experiment import Experiment
    from descentlab.runner import run_experiment

    experiment = Experiment.from_toml(spec_text(seeds=f"[0, {2**32 - 1}]"))
    results = run_experiment(experiment, workers=1)
    assert sorted(results.runs["seed"].unique()) == [0, 2**32 - 1]


@pytest.mark.parametrize("key, value", [("steps", 2**64), ("eval_every", 2**63), ("batch_size", -(2**70))])
def test_integers_beyond_64_bits_anywhere_are_refused_naming_the_key(tmp_path, earlier, key, value):
    refuse(tmp_path, earlier, spec_text(**{key: value}), key, str(value))


def test_a_problem_setting_beyond_64_bits_is_refused_naming_it(tmp_path, earlier):
    text = GOOD.replace('name = "quadratic"', 'name = "spirals"\nseed = 18446744073709551616')
    refuse(tmp_path, earlier, text, "problem.seed", "18446744073709551616")


def test_grids_with_too_many_runs_are_refused_before_they_are_built(tmp_path, earlier):
    rates = "[" + ", ".join(f"{0.001 * (i + 1):g}" for i in range(1000)) + "]"
    text = spec_text(seeds="1000").replace("learning_rate = [0.1, 0.2]", f"learning_rate = {rates}")
    refuse(tmp_path, earlier, text, "runs", "100000", "1000 grid points")


# ---- 5. --workers bounded by the job and the machine --------------------------------------------------


@pytest.mark.parametrize("value", ["0", "-3"])
def test_workers_below_one_are_refused(tmp_path, earlier, value):
    spec = tmp_path / "exp.toml"
    spec.write_text(GOOD)
    before = snapshot(earlier)
    status, _, stderr = cli("run", spec, "--out", earlier, "--quiet", "--workers", value)
    assert_one_line(status, stderr, "--workers", value, ">= 1")
    assert snapshot(earlier) == before


def test_workers_that_are_not_integers_are_one_usage_line(tmp_path):
    spec = tmp_path / "exp.toml"
    spec.write_text(GOOD)
    status, _, stderr = cli("run", spec, "--workers", "many")
    assert_one_line(status, stderr, "--workers", "many")


def test_more_workers_than_runs_or_cpus_are_bounded_with_a_note(tmp_path):
    from descentlab.records import load_results

    spec = tmp_path / "exp.toml"
    spec.write_text(spec_text(seeds="2"))  # 2 learning rates x 2 seeds = 4 runs
    status, stdout, stderr = cli("run", spec, "--out", tmp_path / "out", "--workers", "200")
    assert status == 0, stderr
    bounded = min(4, os.cpu_count() or 1)
    assert f"--workers 200 lowered to {bounded}" in stderr
    assert "Traceback" not in stderr
    folder = Path(stdout.strip().splitlines()[-1].split("results: ", 1)[1])
    assert load_results(folder).meta["workers"] <= bounded


# ---- 5. lr-find and dashboard arguments ---------------------------------------------------------------


@pytest.mark.parametrize(
    "args, names",
    [
        (["lr-find", "--bogus"], ["--bogus", "lr-find"]),
        (["lr-find", "SPEC", "--bogus=1"], ["--bogus=1"]),
        (["lr-find", "SPEC", "--steps", "x"], ["--steps", "'x'"]),
        (["lr-find", "SPEC", "--steps", "1"], ["--steps", "1"]),
        (["lr-find", "SPEC", "--steps", "100000000"], ["--steps", "100000000"]),
        (["lr-find", "SPEC", "--end", "inf"], ["--end", "inf"]),
        (["lr-find", "SPEC", "--start", "nan"], ["--start", "nan"]),
        (["lr-find"], ["EXPERIMENT.toml: got nothing; expected experiment file"]),
        (["report", "--bogus"], ["report option: got '--bogus'; expected"]),
        (["report", "SPEC", "--format", "pdf"], ["--format: got 'pdf'; expected one of html"]),
        (["run", "--bogus"], ["--bogus"]),
        (["plugins", "--bogus"], ["--bogus"]),
        (["--bogus"], ["--bogus"]),
    ],
)
def test_bad_arguments_of_every_command_are_one_usage_line(tmp_path, args, names):
    spec = tmp_path / "exp.toml"
    spec.write_text(GOOD)
    status, stdout, stderr = cli(*[str(spec) if a == "SPEC" else a for a in args], cwd=tmp_path)
    assert_one_line(status, stderr, *names)
    assert not list(tmp_path.glob("*.json"))


def test_lr_find_out_that_is_a_folder_or_an_existing_file_is_refused_before_running(tmp_path):
    spec = tmp_path / "exp.toml"
    spec.write_text(GOOD)
    existing = tmp_path / "earlier.json"
    existing.write_text('{"kept": true}')
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    cases = [
        (tmp_path, "folder"),
        (existing, "exists"),
        (blocker / "x.json", "writable folder"),
        ("/dev/null", "not a regular file"),
        (tmp_path / "lr.csv", "writes JSON"),  # the file would hold JSON under a CSV name
    ]
    for out, why in cases:
        status, stdout, stderr = cli("lr-find", spec, "--out", out)
        assert_one_line(status, stderr, "--out", str(out), why)
        assert "suggested" not in stdout  # refused before the range test ran
    assert existing.read_text() == '{"kept": true}'
    status, stdout, stderr = cli("lr-find", spec, "--steps", "20", "--out", existing, "--force")
    assert status == 0, stderr
    assert "entries" in existing.read_text()
    status, stdout, stderr = cli("lr-find", spec, "--steps", "20", "--out", tmp_path / "new" / "lr.json")
    assert status == 0 and (tmp_path / "new" / "lr.json").is_file(), stderr


@pytest.mark.parametrize("port", ["70000", "65536", "0", "-1", "abc", "1e3", "80.5", ""])
def test_dashboard_ports_outside_1_to_65535_are_one_line(port):
    status, stdout, stderr = cli("dashboard", f"--port={port}", timeout=60)
    line = assert_one_line(status, stderr, "--port", "1-65535")
    assert repr(port) in line
    assert "http://" not in stdout  # nothing was served


def test_serve_checks_the_port_too():
    from descentlab.dashboard.serve import check_port, streamlit_command
    from descentlab.errors import SpecError

    assert check_port(8501) == check_port("8501") == 8501
    for bad in (0, 65536, -1, "x", 1.5, True, None):
        with pytest.raises(SpecError, match="--port"):
            streamlit_command(port=bad)


# ---- 6. Ctrl-C: one line "interrupted", status 130, nothing written ----------------------------------

LONG = """
name = "long-run"
steps = 20000
seeds = 4
eval_every = 0

[problem]
name = "spirals"
samples = 400
hidden = [32, 32]

[[rules]]
rule = "gd"
learning_rate = [0.01, 0.1]
"""


def interrupt_after(spec, out, delay, *extra):
    import signal
    import time

    process = subprocess.Popen(
        [sys.executable, "-m", "descentlab", "run", str(spec), "--out", str(out), "--quiet", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    time.sleep(delay)
    os.killpg(process.pid, signal.SIGINT)  # as a terminal's Ctrl-C: the whole process group
    _, stderr = process.communicate(timeout=60)
    return process.returncode, stderr


@pytest.mark.parametrize("workers", ["1", "2"])
def test_ctrl_c_during_a_run_is_one_line_and_status_130(tmp_path, earlier, workers):
    spec = tmp_path / "long.toml"
    spec.write_text(LONG)
    before = snapshot(earlier)
    status, stderr = interrupt_after(spec, earlier, 2.5, "--workers", workers)
    assert_one_line(status, stderr, "interrupted", code=130)
    assert snapshot(earlier) == before


@pytest.mark.parametrize(
    "where", ["descentlab.experiment.load_experiment_file", "descentlab.cli.build_parser", "descentlab.cli._registry"]
)
def test_ctrl_c_at_any_point_of_the_command_is_one_line(tmp_path, monkeypatch, capsys, where):
    import importlib

    module, name = where.rsplit(".", 1)

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(importlib.import_module(module), name, interrupt)
    spec = tmp_path / "exp.toml"
    spec.write_text(GOOD)
    assert main(["run", str(spec), "--quiet"]) == 130
    err = capsys.readouterr().err
    assert err.strip() == "descentlab: interrupted"


def test_ctrl_c_while_an_error_is_reported_is_still_one_line(monkeypatch, capsys):
    import descentlab.cli as cli_module

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli_module, "one_line", interrupt)
    assert main(["run", "/no/such/file.toml"]) == 130
    assert capsys.readouterr().err.strip() == "descentlab: interrupted"


@pytest.mark.parametrize("module", ["descentlab.activations", "descentlab.records", "descentlab.cli"])
def test_ctrl_c_during_start_up_imports_is_one_line(tmp_path, module):
    # Not a timer (a loaded machine moves every window): ``-X importtime`` reports each import as it
    # ends, so the interrupt is sent while the package (or the command line after it) is importing.
    import signal

    spec = tmp_path / "exp.toml"
    spec.write_text(GOOD)
    process = subprocess.Popen(
        [
            sys.executable,
            "-X",
            "importtime",
            "-m",
            "descentlab",
            "run",
            str(spec),
            "--out",
            str(tmp_path / "out"),
            "--quiet",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    seen = []
    for line in process.stderr:
        seen.append(line)
        if line.rstrip().endswith(f"| {module}") or line.rstrip().endswith(f"|   {module}"):
            break
        if module in line.split("|")[-1]:
            break
    os.killpg(process.pid, signal.SIGINT)
    rest, tail = process.communicate(timeout=60)
    stderr = "".join(seen) + tail
    assert "Traceback" not in stderr, stderr[-2000:]
    ours = [line for line in stderr.splitlines() if not line.startswith("import time:")]
    assert ours == ["descentlab: interrupted"] and process.returncode == 130, (process.returncode, ours)


@pytest.mark.parametrize(
    "where",
    [
        # the interrupt lands while main() gives SIGINT back its handler (the race CI once hit)
        "descentlab._end_start_up = lambda: (_ for _ in ()).throw(KeyboardInterrupt)",
        # it lands inside eval() of a string, as while namedtuple builds a class: CPython then marks
        # it unhandled even once caught, and would end the process by SIGINT (status -2)
        "cli._main = lambda argv: eval('(_ for _ in ()).throw(KeyboardInterrupt)')",
    ],
    ids=["while-handing-back", "inside-eval"],
)
def test_ctrl_c_caught_by_the_command_line_is_one_line_and_130(tmp_path, where):
    # Run with -m, as `python -m descentlab` is: only that path ends by SIGINT on a marked interrupt.
    (tmp_path / "interrupted_cli.py").write_text(
        "\n".join(
            [
                "import sys",
                "sys.argv[0] = 'descentlab'  # what the command line's process looks like",
                "import descentlab, descentlab.cli as cli",
                where,
                "sys.exit(cli.main(['plugins']))",
            ]
        )
    )
    done = subprocess.run(
        [sys.executable, "-m", "interrupted_cli"], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert (done.returncode, done.stderr.strip()) == (130, "descentlab: interrupted")
