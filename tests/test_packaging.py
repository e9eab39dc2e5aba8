"""The built wheel holds exactly one top-level package, descentlab, with every subpackage of the tree."""

import ast
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {"core": "descentlab", "plugins": "descentlab/plugins", "dashboard": "descentlab/dashboard"}


def _source_packages() -> set[str]:
    """Every folder with an __init__.py under the three code folders, as its installed path."""
    found = set()
    for folder, installed in FOLDERS.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            relative = init.parent.relative_to(ROOT / folder).as_posix()
            found.add(installed if relative == "." else f"{installed}/{relative}")
    return found


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "-q", "-w", str(out)],
        check=True,
        capture_output=True,
    )
    (built,) = out.glob("descentlab-*.whl")
    return built


@pytest.fixture(scope="module")
def wheel_names(wheel) -> list[str]:
    with zipfile.ZipFile(wheel) as archive:
        return archive.namelist()


def test_only_top_level_name_is_descentlab(wheel_names):
    top_level = {name.split("/")[0] for name in wheel_names if ".dist-info" not in name.split("/")[0]}
    assert top_level == {"descentlab"}


def test_every_subpackage_is_in_the_wheel(wheel_names):
    packaged = {name.rsplit("/", 1)[0] for name in wheel_names if name.endswith("/__init__.py")}
    assert _source_packages() <= packaged, _source_packages() - packaged


def test_every_module_is_in_the_wheel(wheel_names):
    modules = {
        f"{FOLDERS[folder]}/{path.relative_to(ROOT / folder).as_posix()}"
        for folder in FOLDERS
        for path in (ROOT / folder).rglob("*.py")
    }
    assert modules <= set(wheel_names), modules - set(wheel_names)


def test_console_script_points_at_the_cli(wheel, wheel_names):
    entry_points = next(name for name in wheel_names if name.endswith(".dist-info/entry_points.txt"))
    with zipfile.ZipFile(wheel) as archive:
        text = archive.read(entry_points).decode()
    assert "[console_scripts]" in text
    assert "descentlab = descentlab.cli:main" in text


def test_wheel_carries_license_and_type_marker(wheel_names):
    assert "descentlab/py.typed" in wheel_names


def test_wheel_carries_the_dashboard_presets(wheel_names):
    presets = {p.name for p in (ROOT / "dashboard" / "presets").glob("*.toml")}
    assert presets and {f"descentlab/dashboard/presets/{name}" for name in presets} <= set(wheel_names)
    assert any(name.endswith(".dist-info/licenses/LICENSE") for name in wheel_names), wheel_names


def test_wheel_metadata_declares_the_license_expression(wheel):
    with zipfile.ZipFile(wheel) as archive:
        metadata = next(archive.read(n).decode() for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
    assert "License-Expression: MIT" in metadata.splitlines()


def test_version_has_one_source():
    import tomllib

    import descentlab

    declared = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]
    assert descentlab.__version__ == declared


def test_version_option_prints_the_declared_version(capsys):
    import tomllib

    from descentlab.cli import main

    declared = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]
    with pytest.raises(SystemExit) as caught:
        main(["--version"])
    assert caught.value.code == 0
    assert capsys.readouterr().out == f"descentlab {declared}\n"


# ---------------------------------------------------------------- dependencies and extras

# import name -> distribution name, where they differ
DISTRIBUTION_OF = {
    "sklearn": "scikit-learn",
    "yaml": "pyyaml",
    "tomli_w": "tomli-w",
    "PIL": "pillow",
    "dateutil": "python-dateutil",
    "skimage": "scikit-image",
    "cv2": "opencv-python",
}
OPTIONAL = ("streamlit", "plotly", "sklearn", "kaleido", "distributed")


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _distribution(module: str) -> str:
    return _normal(DISTRIBUTION_OF.get(module, module))


def _requirement_names(requirements: list[str]) -> set[str]:
    return {_normal(re.match(r"[A-Za-z0-9._-]+", r.strip()).group(0)) for r in requirements}


@pytest.fixture(scope="module")
def project() -> dict:
    import tomllib

    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]


IMPORTERS = ("import_module", "require")  # importlib.import_module("name"), descentlab.extras.require("name", ...)


def _third_party_imports() -> list[tuple[str, str, bool]]:
    """(top-level module, file, at module level?) for every import of a module outside the standard
    library and descentlab in core/, plugins/ and dashboard/ (``IMPORTERS`` calls too).
    At module level means it runs when the file is imported: not inside a function."""
    found = []
    for folder in FOLDERS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))

            def visit(node, in_function):
                for child in ast.iter_child_nodes(node):
                    inner = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
                    names = []
                    if isinstance(child, ast.Import):
                        names = [alias.name for alias in child.names]
                    elif isinstance(child, ast.ImportFrom) and not child.level and child.module:
                        names = [child.module]
                    elif (
                        isinstance(child, ast.Call)
                        and (getattr(child.func, "attr", "") or getattr(child.func, "id", "")) in IMPORTERS
                        and child.args
                        and isinstance(child.args[0], ast.Constant)
                        and isinstance(child.args[0].value, str)
                        and not child.args[0].value.startswith(".")
                    ):
                        names = [child.args[0].value]
                    for name in names:
                        top = name.split(".")[0]
                        if top not in sys.stdlib_module_names and top != "descentlab" and top != "__future__":
                            found.append((top, str(path.relative_to(ROOT)), not in_function))
                    visit(child, inner)

            visit(tree, False)
    return found


def test_the_import_scan_sees_what_it_should():
    """The scan itself: it finds a module-level, a lazy and an importlib import it is known to face."""
    found = {(module, path, top) for module, path, top in _third_party_imports()}
    assert ("numpy", "core/network.py", True) in found
    assert ("sklearn", "core/datasets.py", False) in found  # through descentlab.extras.require
    assert ("streamlit", "dashboard/app.py", True) in found
    assert ("threadpoolctl", "core/workers.py", False) in found


def test_every_imported_module_is_declared(project):
    declared = _requirement_names(project["dependencies"])
    for extra, requirements in project["optional-dependencies"].items():
        if extra not in ("test", "docs"):
            declared |= _requirement_names(requirements)
    missing = sorted(
        {
            f"{module} ({_distribution(module)}) in {path}"
            for module, path, _ in _third_party_imports()
            if _distribution(module) not in declared
        }
    )
    assert not missing, f"imported but declared in neither dependencies nor an extra: {missing}"


def test_core_imports_at_module_level_only_core_dependencies(project):
    """Importing any module of core/ or plugins/ needs only [project] dependencies; the optional
    modules are imported inside the functions that use them."""
    core = _requirement_names(project["dependencies"])
    wrong = sorted(
        {
            f"{module} in {path}"
            for module, path, top in _third_party_imports()
            if top and not path.startswith("dashboard") and _distribution(module) not in core
        }
    )
    assert not wrong, wrong
    assert not core & {_distribution(m) for m in OPTIONAL}, "an optional module is a core dependency"


def test_the_extras_install_what_descentlab_extras_names(project):
    from descentlab.extras import EXTRA_OF_MODULE

    extras = {name: _requirement_names(reqs) for name, reqs in project["optional-dependencies"].items()}
    assert set(EXTRA_OF_MODULE) == set(OPTIONAL)
    for module, extra in EXTRA_OF_MODULE.items():
        assert _distribution(module) in extras[extra], (module, extra)
    assert extras["dashboard"] == {"streamlit", "plotly"}
    assert extras["report"] == {"plotly", "kaleido"}
    assert extras["datasets"] == {"scikit-learn"}
    assert extras["distributed"] == {"distributed"}
    assert extras["all"] == extras["dashboard"] | extras["report"] | extras["datasets"] | extras["distributed"]
    assert {"test", "docs"} <= set(extras)


def test_fresh_machine_commands_install_the_extras_they_use():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    first = next(line for line in readme.splitlines() if "pip install" in line)
    assert 'pip install -e ".[all]"' in first and "descentlab dashboard" in first
    assert first in (ROOT / "docs" / "getting-started.md").read_text(encoding="utf-8")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert re.search(r"pip install -q -e \"\.\[all,test,docs\]\"", ci), ci


BLOCKED_CORE = r"""
import importlib.abc, sys

BLOCKED = {"streamlit", "plotly", "sklearn", "kaleido", "distributed"}

class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r} (blocked)", name=name)
        return None

sys.meta_path.insert(0, Block())

import descentlab
from descentlab import Experiment, run_experiment, save_results
from descentlab.cli import main

spec = {"name": "no-extras", "steps": 5, "seeds": 1, "eval_every": 0, "problem": {"name": "quadratic"},
        "rules": [{"rule": "gd", "learning_rate": 0.1}, {"rule": "adam", "learning_rate": 0.01}]}
results = run_experiment(Experiment.from_dict(spec), workers=1)
assert len(results.runs) == 2, results.runs
print("statuses", sorted(results.runs["status"]))
print("saved", save_results(results, sys.argv[1]).name)
print("loaded", sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED))
sys.stdout.flush()
sys.exit(main(sys.argv[2:]))
"""


def _blocked(tmp_path, *argv):
    return subprocess.run(
        [sys.executable, "-c", BLOCKED_CORE, str(tmp_path / "out"), *argv], capture_output=True, text=True, cwd=tmp_path
    )


def test_the_core_runs_without_the_extras(tmp_path):
    spec = tmp_path / "exp.toml"
    spec.write_text(
        'name = "cli"\nsteps = 5\n[problem]\nname = "rosenbrock"\n[[rules]]\nrule = "gd"\nlearning_rate = 1e-4\n'
    )
    done = _blocked(tmp_path, "run", str(spec), "--out", str(tmp_path / "out"), "--quiet", "--workers", "1")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("statuses ") and lines[1].startswith("saved no-extras-")
    assert lines[2] == "loaded []"
    assert lines[3].startswith("results: ") and "cli-" in lines[3]
    assert done.stderr == ""


@pytest.mark.parametrize(
    "argv, what, extra",
    [
        (["dashboard"], "the dashboard", "dashboard"),
        (["dashboard", "--port", "8600"], "the dashboard", "dashboard"),
        (["report", "results/whatever"], "descentlab report", "report"),
    ],
)
def test_a_missing_extra_is_one_line_naming_it(tmp_path, argv, what, extra):
    done = _blocked(tmp_path, *argv)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert done.stderr == (f"descentlab: error: {what} needs the [{extra}] extra: pip install 'descentlab[{extra}]'\n")


@pytest.mark.parametrize("command", ["dashboard", "report", "lr-find"])
def test_help_needs_no_extra(tmp_path, command):
    done = _blocked(tmp_path, command, "--help")
    assert done.returncode == 0 and f"usage: descentlab {command}" in done.stdout, done.stderr


def test_a_problem_needing_scikit_learn_names_the_datasets_extra(tmp_path):
    spec = tmp_path / "iris.toml"
    spec.write_text('name = "iris"\nsteps = 5\n[problem]\nname = "iris"\n[[rules]]\nrule = "gd"\n')
    done = _blocked(tmp_path, "run", str(spec), "--workers", "1", "--quiet")
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert done.stderr == (
        "descentlab: error: the iris problem needs the [datasets] extra: pip install 'descentlab[datasets]'\n"
    )


def test_results_plot_names_the_dashboard_extra(tmp_path):
    code = BLOCKED_CORE.split("spec = {")[0] + (
        "from descentlab.extras import MissingExtra\n"
        "r = run_experiment(Experiment.from_dict({'steps': 2, 'problem': {'name': 'quadratic'},"
        " 'rules': [{'rule': 'gd'}]}), workers=1)\n"
        "try:\n    r.plot\nexcept MissingExtra as error:\n    print(error)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert done.stdout == "results.plot needs the [dashboard] extra: pip install 'descentlab[dashboard]'\n", done


# ---------------------------------------------------------------- a core-only install, for real


def _core_distributions(project) -> set[str]:
    """The declared core dependencies and, transitively, what they require (markers evaluated)."""
    import importlib.metadata

    from packaging.requirements import Requirement

    found: set[str] = set()
    todo = [Requirement(r) for r in project["dependencies"]]
    while todo:
        requirement = todo.pop()
        name = _normal(requirement.name)
        if name in found or (requirement.marker and not requirement.marker.evaluate({"extra": ""})):
            continue
        found.add(name)
        todo += [Requirement(r) for r in importlib.metadata.distribution(name).requires or []]
    return found


@pytest.fixture(scope="module")
def core_only(wheel, project, tmp_path_factory):
    """The wheel installed on its own beside links to its core dependencies only (nothing else of
    this environment importable): ``python -S`` with this PYTHONPATH is a core-only install."""
    import importlib.metadata

    root = tmp_path_factory.mktemp("core-only")
    site = root / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--target", str(site), str(wheel)],
        check=True,
        capture_output=True,
    )
    deps = root / "deps"
    deps.mkdir()
    for name in _core_distributions(project):
        distribution = importlib.metadata.distribution(name)
        for file in distribution.files or []:
            top = file.parts[0]
            if top in ("..", "__pycache__") or (deps / top).exists():
                continue
            source = Path(distribution.locate_file(top))
            if source.exists():
                (deps / top).symlink_to(source, target_is_directory=source.is_dir())
    return {"PYTHONPATH": f"{site}{':'}{deps}", "PATH": "/usr/bin:/bin", "HOME": str(root)}


def _core_python(env, cwd, *argv):
    return subprocess.run(
        [sys.executable, "-S", *argv], capture_output=True, text=True, cwd=cwd, env={**env, "OMP_NUM_THREADS": "1"}
    )


def test_a_core_only_install_runs_an_experiment(core_only, tmp_path):
    done = _core_python(core_only, tmp_path, "-c", "import streamlit")
    assert "No module named 'streamlit'" in done.stderr  # the extras really are absent
    spec = tmp_path / "exp.toml"
    spec.write_text(
        'name = "core"\nsteps = 20\nseeds = 2\n[problem]\nname = "quadratic"\n'
        '[[rules]]\nrule = "gd"\nlearning_rate = [0.5, 2.5]\n'
    )
    for workers in ("1", "2"):  # in this process, and in worker processes started from this install
        done = _core_python(core_only, tmp_path, "-m", "descentlab", "run", str(spec), "--workers", workers)
        assert done.returncode == 0, done.stderr
        assert done.stdout.splitlines()[-1].startswith("results: results/core-"), done.stdout
    code = (
        "import descentlab, sys; r = descentlab.load_results(sys.argv[1]); "
        "print(descentlab.__file__); print(dict(zip(r.runs.learning_rate, r.runs.status)))"
    )
    folder = sorted((tmp_path / "results").iterdir())[0]
    done = _core_python(core_only, tmp_path, "-c", code, str(folder))
    where, statuses = done.stdout.splitlines()
    assert where.startswith(core_only["PYTHONPATH"].split(":")[0]), where  # the installed wheel, not the tree
    # GD on the quadratic (λ_max = 1) is stable iff α < 2
    assert eval(statuses)[0.5] in ("converged", "progressing") and eval(statuses)[2.5] in ("unstable", "diverged")


@pytest.mark.parametrize(
    "argv, what, extra",
    [(["dashboard"], "the dashboard", "dashboard"), (["report", "x"], "descentlab report", "report")],
)
def test_a_core_only_install_names_the_missing_extra(core_only, tmp_path, argv, what, extra):
    done = _core_python(core_only, tmp_path, "-m", "descentlab", *argv)
    assert done.returncode == 2
    assert done.stderr == f"descentlab: error: {what} needs the [{extra}] extra: pip install 'descentlab[{extra}]'\n"


@pytest.mark.parametrize(
    "problem, options, message",
    [
        ("iris", [], "the iris problem needs the [datasets] extra: pip install 'descentlab[datasets]'"),
        ("quadratic", ["--executor", "dask"], "needs the [distributed] extra: pip install 'descentlab[distributed]'"),
    ],
)
def test_a_core_only_run_names_the_missing_extra(core_only, tmp_path, problem, options, message):
    spec = tmp_path / "exp.toml"
    spec.write_text(f'name = "x"\nsteps = 3\n[problem]\nname = "{problem}"\n[[rules]]\nrule = "gd"\n')
    done = _core_python(core_only, tmp_path, "-m", "descentlab", "run", str(spec), "--quiet", *options)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert done.stderr.startswith("descentlab: error: ") and done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.rstrip("\n").endswith(message), done.stderr
    assert not (tmp_path / "results").exists()


def test_the_build_prints_no_deprecation_warning(tmp_path):
    # PEP 639's `license = "MIT"`: the old table form printed a deprecation wall on every install
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            str(ROOT),
            "--no-deps",
            "--no-build-isolation",
            "-v",
            "-w",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    output = done.stdout + done.stderr
    assert "Deprecat" not in output and "deprecat" not in output, [
        line for line in output.splitlines() if "eprecat" in line
    ]
