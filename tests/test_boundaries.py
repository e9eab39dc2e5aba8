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
            elif (isinstance(child, ast.Call) and getattr(child.func, "attr", getattr(child.func, "id", ""))
                  == "import_module" and child.args and isinstance(child.args[0], ast.Constant)):
                found.append((str(child.args[0].value), in_function))   # importlib.import_module("...")
            visit(child, inner)

    visit(tree, False)
    return found


def test_the_import_reader_sees_relative_and_lazy_imports():
    found = dict(imports(ROOT / "core" / "cli.py"))
    assert found.get("descentlab.runner.run_experiment") is True        # `from .runner import ...` in a function
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
    rules = {name for name, origin in ((n, registry.origin("rule", n)) for n in registry.rules)
             if origin.startswith("built-in")}
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
        named = [(node.lineno, node.value) for node in ast.walk(tree)
                 if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in names]
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
