"""The package's boundaries, read from the source: who imports whom, and who may name a built-in rule."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from descentlab.registry import load_registry

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {"core": "descentlab", "plugins": "descentlab.plugins", "dashboard": "descentlab.dashboard"}


def modules(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


def imports(path: Path) -> list[tuple[str, bool]]:
    """(absolute module name, imported inside a function?) for every import of ``path``, including
    ``importlib.import_module("constant")``."""
    package = FOLDERS[path.relative_to(ROOT).parts[0]]
    sub = path.relative_to(ROOT).parts[1:-1]
    here = ".".join([package, *sub])
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []

    def visit(node, in_function):
        for child in ast.iter_child_nodes(node):
            inner = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                found.extend((alias.name, in_function) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = here.split(".")[: len(here.split(".")) - child.level + 1]
                    name = ".".join(base + ([child.module] if child.module else []))
                else:
                    name = child.module or ""
                found.append((name, in_function))
                found.extend((f"{name}.{alias.name}", in_function) for alias in child.names)
            elif (
                isinstance(child, ast.Call)
                and getattr(child.func, "attr", getattr(child.func, "id", "")) == "import_module"
                and child.args
                and isinstance(child.args[0], ast.Constant)
            ):
                found.append((str(child.args[0].value), in_function))  # importlib.import_module("...")
            visit(child, inner)

    visit(tree, False)
    return found


def test_the_import_reader_sees_relative_and_lazy_imports():
    found = dict(imports(ROOT / "core" / "cli.py"))
    assert found.get("descentlab.runner.run_experiment") is True  # `from .runner import ...` in a function
    assert any(name.startswith("descentlab.dashboard") for name in found)


def test_plugins_never_import_the_dashboard():
    for path in modules("plugins"):
        bad = [name for name, _ in imports(path) if name.startswith("descentlab.dashboard")]
        assert not bad, (path, bad)


def test_core_imports_the_dashboard_only_lazily_in_the_cli_and_the_plot_accessor():
    # Results.plot (records.py) hands a notebook the dashboard's figures; everything else in core
    # works without the dashboard's dependencies
    for path in modules("core"):
        for name, lazy in imports(path):
            if name.startswith("descentlab.dashboard"):
                assert path.name in ("cli.py", "records.py") and lazy, (path, name)


def builtin_rule_names() -> set[str]:
    """Names of the built-in rules that are not also a built-in hyperparameter's name (``momentum``
    and ``nesterov`` are both: reading a run's μ or flag is not naming a rule)."""
    registry = load_registry(entry_points=False, use_env=False)
    rules = {
        name
        for name, origin in ((n, registry.origin("rule", n)) for n in registry.rules)
        if origin.startswith("built-in")
    }
    hyper = {h.name for rule in registry.rules.values() for h in rule.hyperparams}
    return rules - hyper


# The dashboard's teaching defaults are preset files (dashboard/presets/*.toml); its theory comes
# from the rules' declarations.
@pytest.mark.parametrize("folder", ["core", "dashboard"])
def test_no_module_outside_plugins_names_a_builtin_rule(folder):
    names = builtin_rule_names()
    assert {"gd", "adam", "adamw", "adagrad", "rmsprop", "classical_momentum"} <= names
    for path in modules(folder):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        named = [
            (node.lineno, node.value)
            for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in names
        ]
        assert not named, f"{path.relative_to(ROOT)} names built-in rules at lines {named}"


def test_dashboard_presets_are_valid_experiments():
    # what the pages open on must load like any experiment file, with rules that exist
    import tomllib

    from descentlab.dashboard.presets import FOLDER, preset
    from descentlab.experiment import Experiment

    registry = load_registry(entry_points=False, use_env=False)
    for path in sorted(FOLDER.glob("*.toml")):
        tomllib.loads(path.read_text(encoding="utf-8"))
        data = preset(path.stem)
        if "rules" in data and isinstance(data["rules"][0], dict):
            spec = {k: v for k, v in data.items() if k != "alpha_points"}
            Experiment.from_dict({**spec, "name": f"preset-{path.stem}"}, registry)
        for name in [data.get("rule"), data.get("baseline"), *[r for r in data.get("rules", []) if isinstance(r, str)]]:
            assert name is None or name in registry.rules, (path.name, name)


def builtin_problem_names() -> set[str]:
    """Names of the built-in problems, but ``csv``: it is also a file format the report writes and
    reads (``--format csv``), and naming a format is not naming a problem."""
    registry = load_registry(entry_points=False, use_env=False)
    return {n for n in registry.problems if registry.origin("problem", n).startswith("built-in")} - {"csv"}


# Where a built-in problem's name is data, not a decision: the built-ins' own definitions (their
# dataset generators and instances, registered by plugins/problems.py) and the protocol's teaching
# suite (a list of problems, like a preset). Pages open on problems named in dashboard/presets/*.toml.
PROBLEM_NAMES_ALLOWED = {"core/datasets.py", "core/landscapes.py", "core/protocol.py"}


@pytest.mark.parametrize("folder", ["core", "dashboard"])
def test_no_module_outside_plugins_names_a_builtin_problem(folder):
    # "Capabilities, not names": a page or the runner asks a problem what it can do (problem.py's
    # protocols), so a third-party problem with the same capabilities gets the same treatment
    names = builtin_problem_names()
    assert {"quadratic", "rosenbrock", "linear_regression", "moons", "spirals", "sine"} <= names
    for path in modules(folder):
        if str(path.relative_to(ROOT)) in PROBLEM_NAMES_ALLOWED:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        named = [
            (node.lineno, node.value)
            for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in names
        ]
        assert not named, f"{path.relative_to(ROOT)} names built-in problems at lines {named}"


def test_no_module_outside_plugins_asks_for_a_builtin_problem_class():
    # isinstance(…, LandscapeInstance) and friends would tie a page to the built-ins' classes; the
    # declared protocols (problem.py) are what core and dashboard check
    builtin = {
        "LandscapeInstance",
        "LinearRegressionInstance",
        "QuadraticBowl",
        "Rosenbrock",
        "Himmelblau",
        "Beale",
        "SupervisedInstance",
    }
    for folder in ("core", "dashboard"):
        for path in modules(folder):
            if path.name == "problem.py":  # defines SupervisedInstance: its validation view may check for it
                continue
            tree = ast.parse(path.read_text(encoding="utf-8"))
            checks = [
                node.lineno
                for node in ast.walk(tree)
                if isinstance(node, ast.Call)
                and getattr(node.func, "id", "") in ("isinstance", "issubclass")
                and len(node.args) == 2
                and {getattr(n, "id", getattr(n, "attr", "")) for n in ast.walk(node.args[1])} & builtin
            ]
            assert not checks, f"{path.relative_to(ROOT)} checks a built-in problem class at lines {checks}"


def declared_problem_members() -> set[str]:
    """Members problem.py declares for a built problem: ProblemInstance's and its protocols'."""
    from descentlab import problem

    classes = [
        problem.ProblemInstance,
        problem.Landscape,
        problem.Predictor,
        problem.ExactHessian,
        problem.HessianVectorProduct,
        problem.HessianOperator,
        problem.QuietLossAndGrad,
        problem.Network,
    ]
    members = set()
    for cls in classes:
        members |= {n for n in vars(cls) if not n.startswith("_")} | set(getattr(cls, "__annotations__", {}))
    return members


def test_core_and_dashboard_read_only_declared_members_of_a_problem_instance():
    # every `instance.<name>` and `getattr(instance, "<name>")` on a built problem (the variables named
    # `instance` throughout core and dashboard) is a member problem.py declares
    declared = declared_problem_members()
    assert {
        "layout",
        "value",
        "bounds",
        "minima",
        "axis_names",
        "predict",
        "dataset",
        "hessian",
        "hessian_vector_product",
        "loss_and_grad_quiet",
        "model",
    } <= declared
    for folder in ("core", "dashboard"):
        for path in modules(folder):
            if path.name in ("problem.py", "landscapes.py"):  # where they are declared and implemented
                continue
            tree = ast.parse(path.read_text(encoding="utf-8"))
            read = [
                (node.lineno, node.attr)
                for node in ast.walk(tree)
                if isinstance(node, ast.Attribute) and getattr(node.value, "id", "") == "instance"
            ]
            read += [
                (node.lineno, node.args[1].value)
                for node in ast.walk(tree)
                if isinstance(node, ast.Call)
                and getattr(node.func, "id", "") in ("getattr", "hasattr")
                and len(node.args) >= 2
                and getattr(node.args[0], "id", "") == "instance"
                and isinstance(node.args[1], ast.Constant)
            ]
            undeclared = [(line, name) for line, name in read if name not in declared]
            assert not undeclared, f"{path.relative_to(ROOT)} reads undeclared problem members {undeclared}"


@pytest.mark.parametrize(
    "path", [p for p in modules("core") if p.name not in ("__init__.py", "__main__.py")], ids=lambda p: p.name
)
def test_every_core_module_says_what_it_exports(path):
    # __all__ lists every public function and class a module defines, and names only what exists:
    # `from descentlab.x import *`, the API docs and type checkers see the same public names
    import importlib

    tree = ast.parse(path.read_text(encoding="utf-8"))
    defined = [
        n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef)) and not n.name.startswith("_")
    ]
    module = importlib.import_module("descentlab." + path.stem)
    exported = getattr(module, "__all__", None)
    if not defined and exported is None:
        return  # nothing public (tables.py: the runner's private helpers)
    assert exported is not None, f"{path.name} has no __all__"
    assert set(defined) <= set(exported), f"{path.name}: not in __all__: {sorted(set(defined) - set(exported))}"
    assert all(hasattr(module, name) for name in exported), f"{path.name}: __all__ names a missing attribute"
