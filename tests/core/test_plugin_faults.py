"""Broken plugins written into tmp_path and run through the CLI: every failure is one line naming the
plugin and its file:line, no traceback, and only the runs (or the plugin) concerned are lost."""

import sys
import textwrap

import numpy as np
import pytest

from descentlab import load_results
from descentlab.cli import main

HEADER = """\
import os
import sys
import numpy as np
from descentlab import DescentRule, HyperParam, Problem, Schedule, Transform, hookimpl
"""


@pytest.fixture(autouse=True)
def forget_file_plugins():
    """Plugin files are imported into sys.modules; drop the ones a test loaded."""
    before = set(sys.modules)
    yield
    for name in set(sys.modules) - before:
        if name.startswith("descentlab_file_plugin_"):
            del sys.modules[name]


def write_plugin(tmp_path, name, body):
    """A plugin file; returns (path, line of the statement marked ``# HERE``)."""
    text = HEADER + textwrap.dedent(body)
    path = tmp_path / f"{name}.py"
    path.write_text(text)
    (line,) = [i for i, row in enumerate(text.splitlines(), 1) if "# HERE" in row]
    return path, line


def write_experiment(tmp_path, entries, problem='name = "quadratic"', steps=20, seeds=2):
    text = f'name = "faults"\nsteps = {steps}\nseeds = {seeds}\n[problem]\n{problem}\n' + "".join(
        f"[[rules]]\n{entry}\n" for entry in entries
    )
    path = tmp_path / "experiment.toml"
    path.write_text(text)
    return path


def run(tmp_path, capsys, experiment, *plugins, workers=1):
    capsys.readouterr()
    argv = ["run", str(experiment), "--out", str(tmp_path / "out"), "--quiet", "--workers", str(workers)]
    for plugin in plugins:
        argv += ["--plugin", str(plugin)]
    status = main(argv)
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def assert_one_line(err, *mentions):
    assert err.count("\n") == 1 and err.endswith("\n"), err
    assert "Traceback" not in err
    for mention in mentions:
        assert mention in err, (mention, err)


def results_folders(tmp_path):
    out = tmp_path / "out"
    return sorted(out.iterdir()) if out.exists() else []


GOOD_RULE = """
def _init(params, hyper):
    return ()


def _update(grad, state, params, learning_rate, hyper, step):
    return -learning_rate * grad, state


@hookimpl
def register_optimizers(register):
    register(DescentRule("good_rule", _init, _update))
"""


# --- a plugin that cannot even be loaded ------------------------------------------------------------

BROKEN_AT_LOAD = {
    "exit_at_import": ("import os\nsys.exit(3)  # HERE\n", "called sys.exit(3)"),
    "exit_zero_at_import": ("sys.exit()  # HERE\n", "called sys.exit(None)"),
    "raise_at_import": ("raise RuntimeError('no licence')  # HERE\n", "RuntimeError: no licence"),
    "exit_in_hook": (
        """
        @hookimpl
        def register_optimizers(register):
            sys.exit(0)  # HERE
        """,
        "register_optimizers failed: called sys.exit(0)",
    ),
    "raise_in_hook": (
        """
        @hookimpl
        def register_schedules(register):
            register(Schedule("fine", lambda step, base, hyper, total: base + 0 * step))
            raise KeyError("oops")  # HERE
        """,
        "register_schedules failed: KeyError: 'oops'",
    ),
    "bad_signature": (
        """
        @hookimpl
        def register_optimizers(reg, extra):  # HERE
            pass
        """,
        "expected def register_optimizers(register)",
    ),
    "misspelt_hook": (
        """
        @hookimpl
        def register_optimisers(register):  # HERE
            pass
        """,
        "register_optimisers",
    ),
    "os_exit_at_import": ("os._exit(0)  # HERE\n", "called os._exit(0)"),
    "os_exit_in_hook": (
        """
        @hookimpl
        def register_optimizers(register):
            os._exit(4)  # HERE
        """,
        "register_optimizers failed: called os._exit(4)",
    ),
    "message_that_cannot_be_shown": (
        """
        class Opaque(Exception):
            def __str__(self):
                raise RuntimeError("no message")

        raise Opaque()  # HERE
        """,
        "Opaque: <Opaque whose message cannot be shown",
    ),
    "base_exception_at_import": (
        """
        class Abort(BaseException):
            pass

        raise Abort("licence server down")  # HERE
        """,
        "Abort: licence server down",
    ),
    "hook_is_a_generator": (
        """
        @hookimpl
        def register_optimizers(register):  # HERE
            yield DescentRule("never_registered", lambda p, h: (), lambda g, s, p, lr, h, t: (-lr * g, s))
        """,
        "register_optimizers is a generator (it yields); expected it to call register(declaration)",
    ),
    "hook_returns_its_declarations": (
        """
        @hookimpl
        def register_optimizers(register):  # HERE
            return [DescentRule("never_registered", lambda p, h: (), lambda g, s, p, lr, h, t: (-lr * g, s))]
        """,
        "register_optimizers returned a list; expected it to call register(declaration)",
    ),
    "method_with_bad_signature": (
        """
        class Plugin:
            @hookimpl
            def register_problems(self, register, settings):  # HERE
                pass

        plugin = Plugin()
        register_problems = plugin.register_problems
        """,
        "(register, settings)",
    ),
}


@pytest.mark.parametrize("name", list(BROKEN_AT_LOAD))
def test_a_broken_plugin_file_stops_run_with_one_line(tmp_path, capsys, name):
    body, reason = BROKEN_AT_LOAD[name]
    path, line = write_plugin(tmp_path, name, body)
    experiment = write_experiment(tmp_path, ['rule = "gd"'])
    status, out, err = run(tmp_path, capsys, experiment, path)
    assert status == 2
    assert_one_line(err, "descentlab: error: ", f"{path}:{line}", reason)
    assert results_folders(tmp_path) == []  # refused before anything is written


@pytest.mark.parametrize("name", list(BROKEN_AT_LOAD))
def test_a_broken_plugin_is_listed_and_the_others_keep_working(tmp_path, capsys, name):
    body, reason = BROKEN_AT_LOAD[name]
    path, line = write_plugin(tmp_path, name, body)
    good, _ = write_plugin(tmp_path, "good", GOOD_RULE + "# HERE\n")
    capsys.readouterr()
    assert main(["plugins", "--plugin", str(path), "--plugin", str(good)]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    listed = captured.out.split("Broken plugins:\n", 1)
    assert len(listed) == 2, captured.out
    broken = [row for row in listed[1].splitlines() if str(path) in row]
    assert len(broken) == 1 and f"{path}:{line}" in broken[0] and reason in broken[0], listed[1]
    assert "  good_rule  [file " in listed[0] and "  gd  [built-in]" in listed[0]
    # and the good file still runs
    experiment = write_experiment(tmp_path, ['rule = "good_rule"\nlearning_rate = 0.1'])
    status, out, err = run(tmp_path, capsys, experiment, good)
    assert status == 0 and err == ""


def test_the_hook_line_names_what_it_accepts(tmp_path, capsys):
    path, line = write_plugin(
        tmp_path,
        "sig",
        """
        @hookimpl
        def register_optimizers(reg, extra):  # HERE
            pass
        """,
    )
    status, _, err = run(tmp_path, capsys, write_experiment(tmp_path, ['rule = "gd"']), path)
    assert status == 2
    assert_one_line(err, f"hook register_optimizers ({path}:{line}) takes (reg, extra)", "passes only (register)")


# --- a broken schedule: its entry's runs fail, the others are saved ---------------------------------

SCHEDULES = {
    "raises": (
        """
        def _bad(step, base, hyper, total_steps):
            raise ZeroDivisionError("no warmup")  # HERE
        """,
        "ZeroDivisionError: no warmup",
        False,
    ),
    "exits": (
        """
        def _bad(step, base, hyper, total_steps):
            sys.exit(5)  # HERE
        """,
        "called sys.exit(5)",
        False,
    ),
    "os_exit": (
        """
        def _bad(step, base, hyper, total_steps):
            os._exit(0)  # HERE
        """,
        "called os._exit(0)",
        False,
    ),
    "wrong_shape": (
        """
        def _bad(step, base, hyper, total_steps):  # HERE
            return np.ones(3)
        """,
        "returned shape (3,); expected (steps, runs) = (20, ",
        True,
    ),
    "none": (
        """
        def _bad(step, base, hyper, total_steps):  # HERE
            return None
        """,
        "returned None",
        True,
    ),
    "nan": (
        """
        def _bad(step, base, hyper, total_steps):  # HERE
            return base * np.where(step == 4, np.nan, 1.0)
        """,
        "returned nan at step 4",
        True,
    ),
    "inf": (
        """
        def _bad(step, base, hyper, total_steps):  # HERE
            return base / (step - step)
        """,
        "expected finite learning rates",
        True,
    ),
    "text": (
        """
        def _bad(step, base, hyper, total_steps):  # HERE
            return "fast"
        """,
        "not numbers",
        True,
    ),
}


def _schedule_plugin(tmp_path, body):
    return write_plugin(
        tmp_path,
        "bad_schedule",
        body
        + """
        @hookimpl
        def register_schedules(register):
            register(Schedule("bad", _bad))
        """,
    )


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("name", list(SCHEDULES))
def test_a_broken_schedule_fails_its_entry_only(tmp_path, capsys, name, workers):
    if workers == 2 and name not in ("raises", "wrong_shape"):
        pytest.skip("two cases are enough to show worker processes isolate the same way")
    body, reason, _ = SCHEDULES[name]
    path, line = _schedule_plugin(tmp_path, body)
    experiment = write_experiment(
        tmp_path,
        [
            'rule = "gd"\nlearning_rate = 0.1',
            'rule = "momentum"\nlearning_rate = 0.1\n[rules.schedule]\nname = "bad"',
            'rule = "gd"\nlearning_rate = 0.2',
        ],
    )
    status, out, err = run(tmp_path, capsys, experiment, path, workers=workers)
    assert status == 0  # a run that fails is recorded as failed; the command succeeds
    assert_one_line(
        err, "descentlab: warning: 2 runs of 'momentum + bad' failed: ", f"schedule 'bad' ({path}:{line})", reason
    )
    (folder,) = results_folders(tmp_path)
    assert out.strip() == f"results: {folder}"
    runs = load_results(folder).runs
    assert list(runs["status"] == "failed") == [False, False, True, True, False, False]
    assert set(runs["error"][2:4]) == {err.split(" failed: ", 1)[1].strip()}
    assert np.isfinite(runs["final_loss"][[0, 1, 4, 5]]).all()

    # the healthy entries are exactly what they are without the broken one
    alone = write_experiment(tmp_path, ['rule = "gd"\nlearning_rate = 0.1', 'rule = "gd"\nlearning_rate = 0.2'])
    (tmp_path / "out").rename(tmp_path / "with_bad")
    assert run(tmp_path, capsys, alone)[0] == 0
    (clean,) = results_folders(tmp_path)
    with_bad, without = load_results(folder.parent.parent / "with_bad" / folder.name), load_results(clean)
    for run_id, alone_id in ((0, 0), (1, 1), (4, 2), (5, 3)):
        np.testing.assert_array_equal(with_bad.run_metrics(run_id)["loss"], without.run_metrics(alone_id)["loss"])


def test_a_broken_schedule_alone(tmp_path, capsys):
    path, line = _schedule_plugin(tmp_path, SCHEDULES["raises"][0])
    experiment = write_experiment(tmp_path, ['rule = "gd"\n[rules.schedule]\nname = "bad"'])
    status, _, err = run(tmp_path, capsys, experiment, path)
    assert status == 0
    assert_one_line(err, f"schedule 'bad' ({path}:{line}): ZeroDivisionError")
    (folder,) = results_folders(tmp_path)
    runs = load_results(folder).runs
    assert list(runs["status"]) == ["failed", "failed"]


# --- a broken rule ---------------------------------------------------------------------------------

RULES = {
    "raises_in_init": (
        """
        def _init(params, hyper):
            raise RuntimeError("init broke")  # HERE

        def _update(grad, state, params, learning_rate, hyper, step):
            return -learning_rate * grad, state
        """,
        "RuntimeError: init broke",
    ),
    "exits_in_init": (
        """
        def _init(params, hyper):
            sys.exit("bye")  # HERE

        def _update(grad, state, params, learning_rate, hyper, step):
            return -learning_rate * grad, state
        """,
        "called sys.exit('bye')",
    ),
    "os_exit_in_init": (
        """
        def _init(params, hyper):
            os._exit(0)  # HERE: ended the whole command with status 0 and no word

        def _update(grad, state, params, learning_rate, hyper, step):
            return -learning_rate * grad, state
        """,
        "called os._exit(0)",
    ),
    "raises_in_update": (
        """
        def _init(params, hyper):
            return ()

        def _update(grad, state, params, learning_rate, hyper, step):
            if step == 2:
                raise ValueError("update broke")  # HERE
            return -learning_rate * grad, state
        """,
        "ValueError: update broke",
    ),
    "exits_in_update": (
        """
        def _init(params, hyper):
            return ()

        def _update(grad, state, params, learning_rate, hyper, step):
            sys.exit(1)  # HERE
        """,
        "called sys.exit(1)",
    ),
    "returns_none": (
        """
        def _init(params, hyper):
            return ()

        def _update(grad, state, params, learning_rate, hyper, step):  # HERE
            return None
        """,
        "update returned None; expected a pair (updates, state)",
    ),
    "returns_updates_only": (
        """
        def _init(params, hyper):
            return ()

        def _update(grad, state, params, learning_rate, hyper, step):  # HERE
            return -learning_rate * grad
        """,
        "update returned ndarray (2, 2); expected a pair (updates, state)",
    ),
    "wrong_shape": (
        """
        def _init(params, hyper):
            return ()

        def _update(grad, state, params, learning_rate, hyper, step):  # HERE
            return np.zeros(3), state
        """,
        "returned updates of shape (3,); expected (2, 2)",
    ),
    "writes_into_params": (
        """
        def _init(params, hyper):
            return ()

        def _update(grad, state, params, learning_rate, hyper, step):  # HERE
            params *= 0.0  # lands a quadratic's runs on its minimum: "converged" if not caught
            return -learning_rate * grad, state
        """,
        "update wrote into params",
    ),
    "writes_into_grad": (
        """
        def _init(params, hyper):
            return ()

        def _update(grad, state, params, learning_rate, hyper, step):  # HERE
            grad *= -learning_rate
            return grad, state
        """,
        "update wrote into grad",
    ),
    "returns_complex_updates": (
        """
        def _init(params, hyper):
            return ()

        def _update(grad, state, params, learning_rate, hyper, step):  # HERE
            return -learning_rate * grad * (1 + 1j), state  # would lose the imaginary part with a ComplexWarning
        """,
        "returned updates of dtype complex128; expected real numbers",
    ),
    "returns_text_updates": (
        """
        def _init(params, hyper):
            return ()

        def _update(grad, state, params, learning_rate, hyper, step):  # HERE
            return np.full(grad.shape, "0.1"), state
        """,
        "returned updates of dtype <U3; expected real numbers",
    ),
    "raises_inside_numpy": (
        """
        def _init(params, hyper):
            return ()

        def _update(grad, state, params, learning_rate, hyper, step):
            return np.reshape(grad, (7, 7)), state  # HERE
        """,
        "ValueError: cannot reshape",
    ),
}


def _rule_plugin(tmp_path, body):
    return write_plugin(
        tmp_path,
        "bad_rule",
        body
        + """
        @hookimpl
        def register_optimizers(register):
            register(DescentRule("bad_rule", _init, _update))
        """,
    )


@pytest.mark.parametrize("name", list(RULES))
def test_a_broken_rule_fails_its_entry_only(tmp_path, capsys, name):
    body, reason = RULES[name]
    path, line = _rule_plugin(tmp_path, body)
    experiment = write_experiment(tmp_path, ['rule = "gd"\nlearning_rate = 0.1', 'rule = "bad_rule"'])
    status, out, err = run(tmp_path, capsys, experiment, path)
    assert status == 0
    assert_one_line(err, "2 runs of 'bad_rule' failed: ", f"rule 'bad_rule' ({path}:{line})", reason)
    (folder,) = results_folders(tmp_path)
    runs = load_results(folder).runs
    assert list(runs["status"] == "failed") == [False, False, True, True]


@pytest.mark.parametrize(
    "name", ["raises_in_update", "exits_in_init", "returns_none", "writes_into_params", "writes_into_grad"]
)
def test_a_broken_rule_alone_in_the_experiment(tmp_path, capsys, name):
    # the chunk's only rule: the path that does not split the update per entry
    body, reason = RULES[name]
    path, line = _rule_plugin(tmp_path, body)
    status, _, err = run(tmp_path, capsys, write_experiment(tmp_path, ['rule = "bad_rule"']), path)
    assert status == 0
    assert_one_line(err, f"rule 'bad_rule' ({path}:{line})", reason)
    (folder,) = results_folders(tmp_path)
    assert list(load_results(folder).runs["status"]) == ["failed", "failed"]


# --- a broken problem ------------------------------------------------------------------------------

PROBLEM = """
from descentlab import ParamLayout
from descentlab.problem import ProblemInstance


class Bowl(ProblemInstance):
    kind = "landscape"
    n_train = 0

    def __init__(self, settings):
        self.layout = ParamLayout([("point", (2,), "point")])

    def init_params(self, seeds, dtype=np.float64):
        {init_params}
        return np.ones((len(seeds), 2), dtype=dtype)

    def loss_and_grad(self, params, batch=None, out=None):
        {loss_and_grad}
        return 0.5 * (params * params).sum(axis=1), np.multiply(params, 1.0, out=out)

    def describe(self):
        {describe}
        return super().describe()


def _build(settings):
    {build}
    return Bowl(settings)


@hookimpl
def register_problems(register):
    register(Problem("bowl", _build, kind="landscape", has_model=False))
"""


@pytest.mark.parametrize(
    "build, reason",
    [
        ("raise OSError('data file missing')  # HERE", "build failed: OSError: data file missing"),
        ("sys.exit(4)  # HERE", "build failed: called sys.exit(4)"),
    ],
)
def test_a_problem_whose_build_raises_is_one_line_exit_2(tmp_path, capsys, build, reason):
    path, line = write_plugin(
        tmp_path, "bad_problem", PROBLEM.format(build=build, loss_and_grad="pass", describe="pass", init_params="pass")
    )
    experiment = write_experiment(tmp_path, ['rule = "gd"'], problem='name = "bowl"')
    status, _, err = run(tmp_path, capsys, experiment, path)
    assert status == 2
    assert_one_line(err, "descentlab: error: ", f"problem 'bowl' ({path}:{line})", reason)
    assert results_folders(tmp_path) == []


def test_a_problem_raising_while_training_fails_its_runs_named(tmp_path, capsys):
    path, line = write_plugin(
        tmp_path,
        "bad_problem",
        PROBLEM.format(
            build="pass",
            loss_and_grad="raise FloatingPointError('bad batch')  # HERE",
            describe="pass",
            init_params="pass",
        ),
    )
    experiment = write_experiment(tmp_path, ['rule = "gd"', 'rule = "momentum"'], problem='name = "bowl"')
    status, _, err = run(tmp_path, capsys, experiment, path)
    assert status == 0
    assert_one_line(
        err, "4 runs of 'gd', 'momentum' failed: ", f"problem 'bowl' ({path}:{line})", "FloatingPointError: bad batch"
    )
    (folder,) = results_folders(tmp_path)
    assert set(load_results(folder).runs["status"]) == {"failed"}


def test_a_problem_whose_describe_exits_after_training_loses_no_run(tmp_path, capsys):
    path, line = write_plugin(
        tmp_path,
        "bad_problem",
        PROBLEM.format(build="pass", loss_and_grad="pass", describe="sys.exit(9)  # HERE", init_params="pass"),
    )
    experiment = write_experiment(tmp_path, ['rule = "gd"\nlearning_rate = 0.1'], problem='name = "bowl"')
    status, _, err = run(tmp_path, capsys, experiment, path)
    assert status == 0 and err == ""
    (folder,) = results_folders(tmp_path)
    results = load_results(folder)
    assert set(results.runs["status"]) != {"failed"}
    assert results.problem_info["describe_error"] == (
        f"problem 'bowl' ({path}:{line}): describe failed: called sys.exit(9)"
    )


def test_a_rule_whose_theory_exits_keeps_its_finished_runs(tmp_path, capsys):
    path, line = write_plugin(
        tmp_path,
        "theory",
        """
        def _threshold(hyper):
            sys.exit(2)  # HERE


        @hookimpl
        def register_optimizers(register):
            register(DescentRule("shaky", lambda p, h: (), lambda g, s, p, a, h, t: (-a * g, s),
                                 stability_threshold=_threshold))
        """,
    )
    experiment = write_experiment(tmp_path, ['rule = "shaky"\nlearning_rate = [0.1, 5.0]'])
    status, _, err = run(tmp_path, capsys, experiment, path)
    assert status == 0 and err == ""
    (folder,) = results_folders(tmp_path)
    runs = load_results(folder).runs
    assert "diverged" in set(runs["status"])
    assert any("no explanation (called sys.exit(2))" in reason for reason in runs["divergence_reason"])


def test_the_conformance_battery_reports_a_rule_that_exits():
    from descentlab import DescentRule
    from descentlab.conformance import check_rule

    def _update(grad, state, params, learning_rate, hyper, step):
        sys.exit(1)

    results = check_rule(DescentRule("exits", lambda params, hyper: (), _update))
    assert not results[0].passed and "SystemExit" in results[0].reason


def test_a_broken_hook_in_a_file_named_by_a_relative_path_stops_run(tmp_path, capsys, monkeypatch):
    path, line = write_plugin(
        tmp_path,
        "exit_hook",
        """
        @hookimpl
        def register_schedules(register):
            sys.exit(0)  # HERE
        """,
    )
    monkeypatch.chdir(tmp_path)
    status, _, err = run(tmp_path, capsys, write_experiment(tmp_path, ['rule = "gd"']), "./exit_hook.py")
    assert status == 2
    assert_one_line(err, f"{path}:{line}", "register_schedules failed: called sys.exit(0)")


def test_a_problem_whose_init_params_raises_is_one_line_exit_2(tmp_path, capsys):
    path, line = write_plugin(
        tmp_path,
        "bad_problem",
        PROBLEM.format(
            build="pass", loss_and_grad="pass", describe="pass", init_params="raise IndexError('no seed 0')  # HERE"
        ),
    )
    experiment = write_experiment(tmp_path, ['rule = "gd"'], problem='name = "bowl"')
    status, _, err = run(tmp_path, capsys, experiment, path)
    assert status == 2
    assert_one_line(err, "descentlab: error: ", f"problem 'bowl' ({path}:{line}): init_params failed: IndexError")
    assert results_folders(tmp_path) == []


def test_a_rule_writing_into_its_learning_rate_fails_its_runs_in_one_line_and_spares_the_others():
    # a constant schedule's α is a read-only view shared by every step (docs/plugins.md): a rule that
    # scales it in place must not change the α of the next step or of the other entry's runs
    import numpy as np

    from descentlab import DescentRule, hookimpl
    from descentlab.experiment import Experiment
    from descentlab.registry import load_registry
    from descentlab.runner import run_experiment

    def greedy(grad, state, params, learning_rate, hyper, step):
        learning_rate *= 2.0
        return -learning_rate * grad, state

    class Plugin:
        @hookimpl
        def register_optimizers(self, register):
            register(DescentRule("writes_its_rate", lambda p, h: (), greedy, ()))

    registry = load_registry(extra_plugins=[("greedy", Plugin())], entry_points=False, use_env=False)
    spec = {
        "steps": 5,
        "seeds": [0],
        "eval_every": 0,
        "problem": {"name": "quadratic"},
        "rules": [{"rule": "writes_its_rate", "learning_rate": 0.1}, {"rule": "gd", "learning_rate": 0.1}],
    }
    results = run_experiment(Experiment.from_dict(spec, registry), registry=registry, workers=1)
    runs = results.runs.set_index("rule")
    assert runs.loc["writes_its_rate", "status"] == "failed"
    assert "\n" not in runs.loc["writes_its_rate", "error"] and "read-only" in runs.loc["writes_its_rate", "error"]
    assert runs.loc["gd", "status"] != "failed"
    gd = results.run_metrics(int(runs.loc["gd", "run_id"]))
    np.testing.assert_array_equal(gd["learning_rate"].dropna().to_numpy()[:5], np.full(5, 0.1))


# --- a broken transform, and a broken rule inside a chain -----------------------------------------

TRANSFORMS = {
    "raises": (
        """
        def _update(grad, state, params, hyper, step):
            raise ArithmeticError("transform broke")  # HERE
        """,
        "update",
        "ArithmeticError: transform broke",
    ),
    "returns_grad_only": (
        """
        def _update(grad, state, params, hyper, step):  # HERE
            return grad * 0.5
        """,
        "update",
        "returned ndarray (2, 2); expected a pair (grad, state)",
    ),
    "writes_into_grad": (
        """
        def _update(grad, state, params, hyper, step):  # HERE
            grad *= 0.5
            return grad, state
        """,
        "update",
        "wrote into grad",
    ),
    "wrapper_writes_into_params": (
        """
        def _update(updates, state, params, learning_rate, hyper, step):  # HERE
            params += updates
            return updates, state
        """,
        "after",
        "wrote into params",
    ),
}


@pytest.mark.parametrize("name", list(TRANSFORMS))
def test_a_broken_transform_is_named_with_its_own_file_and_fails_its_entry_only(tmp_path, capsys, name):
    body, role, reason = TRANSFORMS[name]
    path, line = write_plugin(
        tmp_path,
        "bad_transform",
        body
        + f"""
        @hookimpl
        def register_transforms(register):
            register(Transform("bad_transform", {role}=_update))
        """,
    )
    experiment = write_experiment(
        tmp_path, ['rule = "gd"\nlearning_rate = 0.1\ntransforms = ["bad_transform"]', 'rule = "momentum"']
    )
    status, _, err = run(tmp_path, capsys, experiment, path)
    assert status == 0
    # the transform and its own file:line: not the built-in rule it wraps, nor core/transforms.py
    assert_one_line(
        err, "2 runs of 'gd + bad_transform' failed: ", f"transform 'bad_transform' ({path}:{line})", reason
    )
    (folder,) = results_folders(tmp_path)
    assert list(load_results(folder).runs["status"] == "failed") == [True, True, False, False]


def test_a_broken_rule_inside_a_chain_is_named_with_its_own_file(tmp_path, capsys):
    body, reason = RULES["raises_in_update"]
    path, line = _rule_plugin(tmp_path, body)
    experiment = write_experiment(tmp_path, ['rule = "bad_rule"\ntransforms = ["clip_by_value"]', 'rule = "gd"'])
    status, _, err = run(tmp_path, capsys, experiment, path)
    assert status == 0
    assert_one_line(err, f"rule 'bad_rule' ({path}:{line})", reason)


def _bowl(**parts):
    return PROBLEM.format(
        **{"build": "pass", "loss_and_grad": "pass", "describe": "pass", "init_params": "pass", **parts}
    )


@pytest.mark.parametrize(
    "build, got",
    [("return None", "build returned NoneType without layout"), ("return object()", "build returned object without")],
)
def test_a_build_that_returns_no_problem_instance_is_one_line_exit_2(tmp_path, capsys, build, got):
    path, _ = write_plugin(tmp_path, "bad_problem", _bowl(build=build + "  # HERE"))
    status, _, err = run(tmp_path, capsys, write_experiment(tmp_path, ['rule = "gd"'], problem='name = "bowl"'), path)
    line = next(n for n, text in enumerate(path.read_text().splitlines(), 1) if text.startswith("def _build"))
    assert status == 2
    assert_one_line(err, "descentlab: error: ", f"problem 'bowl' ({path}:{line})", got, "ProblemInstance")
    assert results_folders(tmp_path) == []


@pytest.mark.parametrize(
    "returned, reason",
    [
        ("return 0.5 * (params * params).sum(axis=1)", "loss_and_grad returned ndarray (2,); expected a pair"),
        ("return params * params, params", "loss (2, 2) and gradient (2, 2) for parameters (2, 2)"),
        ("return [1.0, 2.0], params.tolist()", "loss of type list and gradient of type list"),
        # complex values were cast to real with a ComplexWarning per step, the imaginary part lost
        (
            "return 0.5 * (params * params).sum(axis=1) + 0j, params + 0j",
            "loss of dtype complex128 and gradient of dtype complex128; expected real numbers",
        ),
    ],
)
def test_a_problem_returning_the_wrong_loss_or_gradient_is_named_with_its_file(tmp_path, capsys, returned, reason):
    path, _ = write_plugin(tmp_path, "bad_problem", _bowl(loss_and_grad=returned + "  # HERE"))
    status, _, err = run(tmp_path, capsys, write_experiment(tmp_path, ['rule = "gd"'], problem='name = "bowl"'), path)
    line = next(n for n, text in enumerate(path.read_text().splitlines(), 1) if "def loss_and_grad" in text)
    assert status == 0  # its runs are failed and saved, as for any problem that breaks while training
    assert_one_line(err, f"problem 'bowl' ({path}:{line})", reason)


def test_init_params_of_the_wrong_shape_is_one_line_exit_2(tmp_path, capsys):
    path, _ = write_plugin(tmp_path, "bad_problem", _bowl(init_params="return np.ones((len(seeds), 5))  # HERE"))
    status, _, err = run(tmp_path, capsys, write_experiment(tmp_path, ['rule = "gd"'], problem='name = "bowl"'), path)
    line = next(n for n, text in enumerate(path.read_text().splitlines(), 1) if "def init_params" in text)
    assert status == 2
    assert_one_line(err, f"problem 'bowl' ({path}:{line})", "init_params returned shape (2, 5); expected (2, 2)")


def test_init_params_of_complex_numbers_is_one_line_exit_2(tmp_path, capsys):
    path, _ = write_plugin(tmp_path, "bad_problem", _bowl(init_params="return np.ones((len(seeds), 2)) + 1j  # HERE"))
    status, _, err = run(tmp_path, capsys, write_experiment(tmp_path, ['rule = "gd"'], problem='name = "bowl"'), path)
    line = next(n for n, text in enumerate(path.read_text().splitlines(), 1) if "def init_params" in text)
    assert status == 2
    assert_one_line(err, f"problem 'bowl' ({path}:{line})", "init_params returned dtype complex128; expected real")


@pytest.mark.parametrize(
    "part, reason",
    [("build", "build failed: called os._exit(0)"), ("init_params", "init_params failed: called os._exit(3)")],
)
def test_a_problem_calling_os_exit_before_training_is_one_line_exit_2(tmp_path, capsys, part, reason):
    # os._exit ended the command at once with the plugin's status (0 for build) and no word
    code = 0 if part == "build" else 3
    path, line = write_plugin(tmp_path, "bad_problem", _bowl(**{part: f"os._exit({code})  # HERE"}))
    status, _, err = run(tmp_path, capsys, write_experiment(tmp_path, ['rule = "gd"'], problem='name = "bowl"'), path)
    assert status == 2
    assert_one_line(err, f"problem 'bowl' ({path}:{line})", reason)
    assert results_folders(tmp_path) == []


# --- what plugin code prints or leaves running ------------------------------------------------------


def test_a_warning_at_import_is_one_line_and_the_plugin_still_works(tmp_path, capsys):
    path, line = write_plugin(
        tmp_path,
        "noisy",
        GOOD_RULE + "\nimport warnings\n\nwarnings.warn('old API')  # HERE\n",
    )
    experiment = write_experiment(tmp_path, ['rule = "good_rule"\nlearning_rate = 0.1'])
    status, _, err = run(tmp_path, capsys, experiment, path)
    assert status == 0
    assert_one_line(err, "descentlab: warning: plugin ", f"({path}:{line}): UserWarning: old API")
    assert len(results_folders(tmp_path)) == 1


def test_a_failing_thread_of_a_plugin_is_one_line(tmp_path, capsys):
    path, line = write_plugin(
        tmp_path,
        "threaded",
        GOOD_RULE
        + """
import threading


def _background():
    raise RuntimeError("lost connection")  # HERE


_worker = threading.Thread(target=_background, name="plugin-sync")
_worker.start()
_worker.join()
""",
    )
    experiment = write_experiment(tmp_path, ['rule = "good_rule"\nlearning_rate = 0.1'])
    status, _, err = run(tmp_path, capsys, experiment, path)
    assert status == 0
    assert_one_line(err, "thread 'plugin-sync' failed", f"({path}:{line}): RuntimeError: lost connection")


def test_os_exit_works_again_once_plugins_are_loaded(tmp_path):
    # the guard replaces os._exit only while plugin code imports and registers: forked worker
    # processes end through it, so it must be the real one during training
    import os

    from descentlab.registry import load_registry

    real = os._exit
    path, _ = write_plugin(tmp_path, "bye", "os._exit(0)  # HERE\n")
    registry = load_registry([path])
    assert os._exit is real
    assert any("called os._exit(0)" in error for error in registry.errors)


def test_a_warning_while_training_is_one_line_and_the_runs_finish(tmp_path, capsys):
    path, line = write_plugin(
        tmp_path,
        "chatty",
        """
        import warnings


        def _init(params, hyper):
            return ()


        def _update(grad, state, params, learning_rate, hyper, step):
            warnings.warn("experimental rule")  # HERE
            return -learning_rate * grad, state


        @hookimpl
        def register_optimizers(register):
            register(DescentRule("chatty", _init, _update))
        """,
    )
    experiment = write_experiment(tmp_path, ['rule = "chatty"\nlearning_rate = 0.1'])
    # the command line itself: in-process, pytest records warnings (and main leaves them to it)
    import subprocess

    done = subprocess.run(
        [sys.executable, "-m", "descentlab", "run", str(experiment), "--out", str(tmp_path / "out"), "--quiet"]
        + ["--workers", "1", "--plugin", str(path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert_one_line(done.stderr, "descentlab: warning: UserWarning: experimental rule", f"({path}:{line})")
    (folder,) = results_folders(tmp_path)
    assert "failed" not in set(load_results(folder).runs["status"])


@pytest.mark.parametrize("name", ["42", "None", "('a', 'b')"])
def test_a_declaration_whose_name_is_not_a_string_is_one_line_naming_the_register_call(tmp_path, capsys, name):
    # DescentRule(42, ...) was refused with "'int' object is not iterable", naming no field
    path, line = write_plugin(
        tmp_path,
        "numbered",
        f"""
        @hookimpl
        def register_optimizers(register):
            register(DescentRule({name}, lambda p, h: (), lambda g, s, p, lr, h, t: (-lr * g, s)))  # HERE
        """,
    )
    status, _, err = run(tmp_path, capsys, write_experiment(tmp_path, ['rule = "gd"']), path)
    assert status == 2
    assert_one_line(err, f"rule name {name}: use letters, digits", f"({path}:{line})")
