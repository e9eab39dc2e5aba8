"""The plugin host: built-ins, plugin files, temporary plugins, and broken plugins reported by name."""

import os
import sys
import textwrap
import types
from pathlib import Path

import numpy as np
import pluggy
import pytest

from descentlab import DescentRule, HyperParam, Schedule, hookimpl
from descentlab import registry as registry_module
from descentlab.registry import BUILTIN_MODULES, load_registry, make_plugin_manager

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "plugins"
BUILTIN_RULES = {
    "muon",
    "gd",
    "momentum",
    "nesterov",
    "classical_momentum",
    "adagrad",
    "rmsprop",
    "adam",
    "adamw",
    "adamax",
    "nadam",
    "radam",
    "adadelta",
    "rprop",
    "asgd",
    "lion",
    "signsgd",
    "adafactor",
    "sgd_schedule_free",
    "adamw_schedule_free",
}
BUILTIN_SCHEDULES = {
    "constant",
    "step",
    "multistep",
    "exponential",
    "inverse_time",
    "polynomial",
    "linear",
    "cosine",
    "cosine_restarts",
    "one_cycle",
    "cyclic",
    "wsd",
    "exponential_ramp",
    "sequential",
    "reduce_on_plateau",
}


@pytest.fixture(autouse=True)
def forget_file_plugins():
    """Plugin files are imported into sys.modules; drop the ones a test loaded."""
    before = set(sys.modules)
    yield
    for name in set(sys.modules) - before:
        if name.startswith("descentlab_file_plugin_"):
            del sys.modules[name]


def load(**kwargs):
    kwargs.setdefault("entry_points", False)
    kwargs.setdefault("use_env", False)
    return load_registry(**kwargs)


def _noop_init(params, hyper):
    return ()


def _noop_update(grad, state, params, learning_rate, hyper, step):
    return np.zeros_like(grad), state


def rule(name, *hyperparams):
    return DescentRule(name, _noop_init, _noop_update, hyperparams=tuple(hyperparams))


def plugin(*rules, fail_after=None):
    """A plugin object registering ``rules`` (raising after ``fail_after`` of them if set)."""

    class Plugin:
        @hookimpl
        def register_optimizers(self, register):
            for i, declaration in enumerate(rules):
                if fail_after is not None and i == fail_after:
                    raise RuntimeError("boom while registering")
                register(declaration)

    return Plugin()


def assert_builtins_intact(registry):
    assert BUILTIN_RULES <= set(registry.rules)
    assert BUILTIN_SCHEDULES <= set(registry.schedules)
    assert all(registry.origin("rule", name) == "built-in" for name in BUILTIN_RULES)


# --- the built-ins ---------------------------------------------------------------------------------


def test_builtins_register_without_errors():
    registry = load()
    assert registry.errors == []
    assert set(registry.rules) == BUILTIN_RULES
    assert set(registry.schedules) == BUILTIN_SCHEDULES
    assert_builtins_intact(registry)
    for declaration in list(registry.rules.values()) + list(registry.schedules.values()):
        assert declaration.summary and declaration.formula
        assert all(h.help for h in declaration.hyperparams)
    for name in BUILTIN_RULES:
        rule_ = registry.rule(name)
        assert rule_.stability_threshold is not None or rule_.threshold_note
        assert rule_.update.__doc__ and "θ ←" in rule_.update.__doc__  # the formula is in the docstring


def test_check_pending_with_all_builtins():
    pm = make_plugin_manager()
    registry = load(pm=pm)
    assert registry.errors == []
    pm.check_pending()  # every hookimpl of the built-ins matches a hookspec
    assert {name for name, _ in pm.list_name_plugin()} >= set(BUILTIN_MODULES)


def test_check_pending_catches_a_misspelt_hook():
    pm = make_plugin_manager()
    load(pm=pm)

    class Misspelt:
        @hookimpl
        def register_optimisers(self, register):  # British spelling: no such hook
            pass

    pm.register(Misspelt(), name="misspelt")
    try:
        with pytest.raises(pluggy.PluginValidationError, match="register_optimisers"):
            pm.check_pending()
    finally:
        pm.unregister(name="misspelt")


def test_unknown_name_lists_the_known_ones():
    from descentlab.errors import SpecError

    with pytest.raises(SpecError, match="adam.*gd"):
        load().rule("adamm")


# --- temporary plugins -----------------------------------------------------------------------------


def test_temporary_plugin_object_registers_a_rule_with_its_origin():
    registry = load(extra_plugins=[("temp-rules", plugin(rule("temp_rule", HyperParam("beta", 0.5))))])
    assert registry.errors == []
    assert registry.rule("temp_rule").hyperparams[0].name == "beta"
    assert registry.origin("rule", "temp_rule") == "registered temp-rules"
    assert_builtins_intact(registry)


def test_temporary_schedule_plugin():
    def halving(step, base, hyper, total_steps):
        return base * 0.5**step

    class Plugin:
        @hookimpl
        def register_schedules(self, register):
            register(Schedule("halving", halving, summary="α/2 each step"))

    registry = load(extra_plugins=[("halving-plugin", Plugin())])
    assert registry.errors == [] and "halving" in registry.schedules


def test_plugin_file_loaded_from_a_path(tmp_path):
    path = tmp_path / "my_rule.py"
    path.write_text(
        textwrap.dedent("""
        import numpy as np
        from descentlab import DescentRule, hookimpl

        @hookimpl
        def register_optimizers(register):
            register(DescentRule("half_step", lambda p, h: (), lambda g, s, p, a, h, t: (-0.5 * a * g, s)))
    """)
    )
    registry = load(plugin_paths=[str(path)])
    assert registry.errors == []
    assert registry.origin("rule", "half_step") == f"file {path.resolve()}"
    assert registry.plugin_paths == (str(path.resolve()),)
    assert_builtins_intact(registry)


def test_plugin_files_from_the_environment_variable(tmp_path, monkeypatch):
    paths = []
    for name in ("env_one", "env_two"):
        path = tmp_path / f"{name}.py"
        path.write_text(
            textwrap.dedent(f"""
            from descentlab import DescentRule, hookimpl

            @hookimpl
            def register_optimizers(register):
                register(DescentRule("{name}", lambda p, h: (), lambda g, s, p, a, h, t: (0 * g, s)))
        """)
        )
        paths.append(str(path))
    monkeypatch.setenv("DESCENTLAB_PLUGINS", os.pathsep.join(paths))
    registry = load(use_env=True)
    assert registry.errors == []
    assert {"env_one", "env_two"} <= set(registry.rules)


def test_the_same_file_given_twice_loads_once(tmp_path, monkeypatch):
    # e.g. both `--plugin FILE` and DESCENTLAB_PLUGINS name it: no "already registered" error.
    path = EXAMPLES / "sign_descent.py"
    monkeypatch.setenv("DESCENTLAB_PLUGINS", str(path))
    registry = load(plugin_paths=[str(path)], use_env=True)
    assert registry.errors == []
    assert "sign_descent" in registry.rules


def test_two_plugin_files_with_the_same_name_in_different_folders(tmp_path):
    paths = []
    for folder in ("one", "two"):
        (tmp_path / folder).mkdir()
        path = tmp_path / folder / "plugin.py"
        path.write_text(
            textwrap.dedent(f"""
            from descentlab import DescentRule, hookimpl

            @hookimpl
            def register_optimizers(register):
                register(DescentRule("rule_{folder}", lambda p, h: (), lambda g, s, p, a, h, t: (0 * g, s)))
        """)
        )
        paths.append(str(path))
    registry = load(plugin_paths=paths)
    assert registry.errors == []
    assert registry.origin("rule", "rule_one") == f"file {Path(paths[0]).resolve()}"
    assert registry.origin("rule", "rule_two") == f"file {Path(paths[1]).resolve()}"


# --- broken plugins are reported by name; everything else keeps working --------------------------


def test_plugin_raising_while_registering_is_reported_by_name():
    broken = plugin(rule("before_boom"), rule("after_boom"), fail_after=1)
    good = plugin(rule("good_rule"))
    registry = load(extra_plugins=[("broken-plugin", broken), ("good-plugin", good)])
    assert len(registry.errors) == 1
    assert "broken-plugin" in registry.errors[0] and "boom while registering" in registry.errors[0]
    assert "before_boom" in registry.rules and "after_boom" not in registry.rules
    assert "good_rule" in registry.rules
    assert_builtins_intact(registry)


def test_duplicate_name_is_reported_and_the_first_registration_kept():
    builtin_gd = load().rule("gd")
    registry = load(extra_plugins=[("copycat", plugin(rule("gd"), rule("copycat_rule")))])
    assert len(registry.errors) == 1
    assert "copycat" in registry.errors[0] and "'gd' is already registered by built-in" in registry.errors[0]
    assert registry.rule("gd").update is builtin_gd.update
    assert "copycat_rule" in registry.rules  # the plugin's other declarations still count


@pytest.mark.parametrize(
    "bad, reason",
    [
        (HyperParam("not an identifier", 1.0), "not an identifier"),
        (HyperParam("rate", 0.0, low=0.0, log=True), "accepted: low > 0, or low=0 with low_open=True"),
        (HyperParam("rate", 5.0, low=0.0, high=1.0), "default"),
        (HyperParam("flag", False, kind="switch"), "kind"),
        (HyperParam("pick", "a", kind="choice"), "needs choices"),
        ("not a HyperParam", "not a HyperParam"),
    ],
)
def test_invalid_hyperparameter_declaration_is_reported(bad, reason):
    registry = load(extra_plugins=[("sloppy", plugin(rule("sloppy_rule", bad), rule("tidy_rule")))])
    assert len(registry.errors) == 1, registry.errors
    assert "sloppy" in registry.errors[0] and reason in registry.errors[0]
    assert "sloppy_rule" not in registry.rules
    assert "tidy_rule" in registry.rules  # the next declaration of the same plugin still registers
    assert_builtins_intact(registry)


@pytest.mark.parametrize(
    "declaration, reason",
    [
        (
            DescentRule("learns", _noop_init, _noop_update, hyperparams=(HyperParam("learning_rate", 0.1),)),
            "set by the runner",
        ),
        (DescentRule("bad name!", _noop_init, _noop_update), "use letters"),
        (DescentRule("not_callable", None, _noop_update), "callables"),
        (
            DescentRule("repeats", _noop_init, _noop_update, hyperparams=(HyperParam("a", 1.0), HyperParam("a", 2.0))),
            "repeat",
        ),
        (DescentRule("fixed_threshold", _noop_init, _noop_update, stability_threshold=2.0), "stability_threshold"),
        (Schedule("a_schedule_as_rule", lambda *a: 1.0), "expects a DescentRule"),
    ],
)
def test_invalid_rule_declaration_is_reported(declaration, reason):
    registry = load(extra_plugins=[("sloppy", plugin(declaration))])
    assert len(registry.errors) == 1 and "sloppy" in registry.errors[0] and reason in registry.errors[0]
    assert_builtins_intact(registry)


def test_plugin_file_failing_to_import_is_reported_by_path(tmp_path):
    crashes = tmp_path / "crashes.py"
    crashes.write_text("import numpy\nraise ImportError('needs a package that is not installed')\n")
    garbled = tmp_path / "garbled.py"
    garbled.write_text("def register_optimizers(register:\n")
    missing = tmp_path / "missing.py"
    registry = load(plugin_paths=[str(crashes), str(garbled), str(missing), str(EXAMPLES / "lion.py")])
    assert len(registry.errors) == 3
    for path, reason in (
        (crashes, "ImportError: needs a package"),
        (garbled, "SyntaxError"),
        (missing, "no such file"),
    ):
        assert any(str(path) in e and reason in e for e in registry.errors), (path, registry.errors)
    assert "my_lion" in registry.rules
    assert_builtins_intact(registry)


def test_entry_point_failing_to_load_is_reported_by_name(monkeypatch):
    class BrokenEntryPoint:
        name, dist = "broken_package", None

        def load(self):
            raise ModuleNotFoundError("No module named 'broken_package'")

    class GoodEntryPoint:
        name = "good_package"
        dist = types.SimpleNamespace(name="good-package", version="1.2.3")

        def load(self):
            return plugin(rule("from_a_package"))

    def fake_entry_points(group):
        assert group == "descentlab"
        return [BrokenEntryPoint(), GoodEntryPoint()]

    monkeypatch.setattr(registry_module.importlib.metadata, "entry_points", fake_entry_points)
    registry = load(entry_points=True)
    assert len(registry.errors) == 1 and "'broken_package'" in registry.errors[0]
    assert registry.origin("rule", "from_a_package") == "package good-package 1.2.3"
    assert_builtins_intact(registry)


# --- the example plugins ----------------------------------------------------------------------------


def _one_step(rule_, grad, params, lr, hyper_values, steps=1):
    hyper = {h.name: np.full((grad.shape[0], 1), float(hyper_values.get(h.name, h.default))) for h in rule_.hyperparams}
    state = rule_.init(params, hyper)
    for t in range(steps):
        updates, state = rule_.update(grad, state, params, np.full((grad.shape[0], 1), lr), hyper, t)
        params = params + updates
    return params


def test_sign_descent_example_plugin_steps_by_hand():
    registry = load(plugin_paths=[str(EXAMPLES / "sign_descent.py")])
    assert registry.errors == []
    sign_descent = registry.rule("sign_descent")
    grad = np.array([[3.0, -0.2, 0.0], [1e-9, -5.0, 2.0]])
    params = np.array([[1.0, 1.0, 1.0], [2.0, -1.0, 0.5]])
    # θ − α(sign(g) + λθ) with α = 0.1, λ = 0.5
    expected = [
        [1 - 0.1 * 1.5, 1 - 0.1 * (-1 + 0.5), 1 - 0.1 * 0.5],
        [2 - 0.1 * (1 + 1.0), -1 - 0.1 * (-1 - 0.5), 0.5 - 0.1 * (1 + 0.25)],
    ]
    np.testing.assert_allclose(_one_step(sign_descent, grad, params, 0.1, {"weight_decay": 0.5}), expected, rtol=1e-15)


def test_lion_example_plugin_steps_by_hand():
    registry = load(plugin_paths=[str(EXAMPLES / "lion.py")])
    assert registry.errors == []
    lion = registry.rule("my_lion")
    # Constant gradient g = (2, −1), θ = (1, 1), α = 0.01, λ = 0.1: c = (1−β₁)g on step one, then
    # β₁(1−β₂)g + (1−β₁)g: the sign is sign(g) every step, so θ ← θ − α(sign(g) + λθ) twice.
    grad, params = np.array([[2.0, -1.0]]), np.array([[1.0, 1.0]])
    theta = [1.0, 1.0]
    for _ in range(2):
        theta = [theta[0] - 0.01 * (1 + 0.1 * theta[0]), theta[1] - 0.01 * (-1 + 0.1 * theta[1])]
    np.testing.assert_allclose(_one_step(lion, grad, params, 0.01, {"weight_decay": 0.1}, steps=2), [theta], rtol=1e-15)


def test_plugin_guide_shows_the_example_plugin_itself():
    # The guide includes examples/plugins/sign_descent.py at build time, so the two cannot drift.
    doc = (EXAMPLES.parents[1] / "docs" / "plugins.md").read_text(encoding="utf-8")
    assert '```python\n--8<-- "examples/plugins/sign_descent.py"\n```' in doc


def test_packaged_plugin_found_through_its_entry_point(tmp_path, monkeypatch):
    # An installed distribution is a module plus a .dist-info folder naming the entry point; putting
    # both on sys.path is what `pip install` does, without building anything.
    module = "descentlab_sign_descent_pkg"
    (tmp_path / f"{module}.py").write_text((EXAMPLES / "sign_descent.py").read_text(encoding="utf-8"))
    info = tmp_path / "descentlab_sign_descent-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: descentlab-sign-descent\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text(f"[descentlab]\nsign_descent = {module}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, module, raising=False)
    try:
        registry = load(entry_points=True)
        assert registry.origin("rule", "sign_descent") == "package descentlab-sign-descent 0.1.0"
        assert not [e for e in registry.errors if "sign_descent" in e]
        assert_builtins_intact(registry)
        # and the conftest's switch keeps entry points out of every other test
        monkeypatch.setenv("DESCENTLAB_NO_ENTRY_POINTS", "1")
        assert "sign_descent" not in load_registry(use_env=False).rules
    finally:
        sys.modules.pop(module, None)


def test_a_refused_declaration_names_the_file_and_line_of_its_register_call(tmp_path):
    path = tmp_path / "refused.py"
    lines = [
        "from descentlab import DescentRule, HyperParam, hookimpl",
        "def init(params, hyper):",
        "    return ()",
        "def update(grad, state, params, learning_rate, hyper, step):",
        "    return -learning_rate * grad, state",
        "@hookimpl",
        "def register_optimizers(register):",
        "    register(DescentRule('fine_one', init, update))",
        "    register('not a declaration')",
        "    register(DescentRule('gd', init, update))",
        "    register(DescentRule('beta_out', init, update, (HyperParam('beta', 5.0, low=0.0, high=1.0),)))",
    ]
    path.write_text("\n".join(lines) + "\n")
    registry = load(plugin_paths=[str(path)])
    wanted = {9: "expects a DescentRule", 10: "already registered by built-in", 11: "got 5.0"}
    assert len(registry.errors) == len(wanted), registry.errors
    for (line, reason), error in zip(wanted.items(), registry.errors):
        assert reason in error and error.endswith(f"({path}:{line})"), error
    assert "fine_one" in registry.rules  # the plugin's good declaration still counts
