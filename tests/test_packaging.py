"""The built wheel holds exactly one top-level package, descentlab, with every subpackage of the tree."""

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
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "-q", "-w", str(out)],
                   check=True, capture_output=True)
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
    modules = {f"{FOLDERS[folder]}/{path.relative_to(ROOT / folder).as_posix()}"
               for folder in FOLDERS for path in (ROOT / folder).rglob("*.py")}
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
