"""The docs site: samples are the files in examples/ and run; generated tables follow the declarations."""

from __future__ import annotations

import importlib.util
import re
import runpy
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from descentlab import load_registry

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
INCLUDE = re.compile(r'--8<-- "([^"]+)"')


def _hooks():
    spec = importlib.util.spec_from_file_location("docs_hooks", DOCS / "hooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _pages():
    return sorted(DOCS.rglob("*.md"))


def test_every_included_sample_exists_and_every_python_example_is_included():
    included = {m for page in _pages() for m in INCLUDE.findall(page.read_text(encoding="utf-8"))}
    assert included, "the docs include no sample"
    for path in included:
        assert (ROOT / path).is_file(), f"docs include {path}, which does not exist"
    scripts = {str(p.relative_to(ROOT)) for p in (ROOT / "examples").glob("*.py")}
    assert scripts <= included, f"examples not shown in the docs: {sorted(scripts - included)}"


def test_gradcheck_example_agrees_with_finite_differences(monkeypatch, tmp_path, capsys):
    monkeypatch.chdir(tmp_path)
    runpy.run_path(str(ROOT / "examples" / "gradcheck.py"), run_name="__main__")
    printed = [float(line.split()[-1]) for line in capsys.readouterr().out.splitlines()]
    assert len(printed) == 2 and max(printed) < 1e-6


def test_lesson_example_takes_one_checked_step(monkeypatch, tmp_path, capsys):
    monkeypatch.chdir(tmp_path)
    namespace = runpy.run_path(str(ROOT / "examples" / "lesson_step.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "gradient descent's step is −α·∇J: True" in out
    trace = namespace["trace"]
    assert np.max(np.abs(trace.gradient - namespace["check"])) < 1e-7
    prediction = namespace["prediction"]
    assert prediction.measured < prediction.theory < prediction.first_flagged


def test_python_quickstart_example_matches_the_quadratic_theory(monkeypatch, tmp_path, capsys):
    # examples/quadratic_sweep.toml: λ_max = 1, so GD is stable iff α < 2 and heavy ball iff α < 2 + 2μ.
    monkeypatch.chdir(tmp_path)
    namespace = runpy.run_path(str(ROOT / "examples" / "python_quickstart.py"), run_name="__main__")
    folder = Path(namespace["folder"])
    assert folder.parent == tmp_path / "results" or folder.parent.resolve() == (tmp_path / "results").resolve()
    runs = namespace["again"].runs
    threshold = np.where(runs["rule"] == "gd", 2.0, 2.0 + 2.0 * runs["momentum"].fillna(0.0))
    below = runs["learning_rate"].to_numpy() < threshold
    above = runs["learning_rate"].to_numpy() > threshold
    assert set(runs.loc[below, "status"]) <= {"converged", "progressing"}
    assert set(runs.loc[above, "status"]) <= {"unstable", "diverged"}
    assert namespace["loss"].shape == (len(runs), 201)


def test_generated_tables_list_every_declaration():
    registry = load_registry(entry_points=False, use_env=False)
    hooks = _hooks()
    rules = hooks.render("<!-- generated: rules-table -->", registry)
    for name, rule in registry.rules.items():
        row = next(line for line in rules.splitlines() if line.startswith(f"| `{name}` |"))
        assert " ".join(rule.formula.split()) in row.replace("\\|", "|")
        assert f"| {rule.default_learning_rate:g} |" in row
        for h in rule.hyperparams:
            assert f"`{h.name}`" in row
    schedules = hooks.render("<!-- generated: schedules-table -->", registry)
    assert {line.split("`")[1] for line in schedules.splitlines()[2:]} == set(registry.schedules)
    problems = hooks.render("<!-- generated: problems-table -->", registry)
    assert {line.split("`")[1] for line in problems.splitlines()[2:]} == set(registry.problems)
    with pytest.raises(ValueError, match="generated: nonsense"):
        hooks.render("<!-- generated: nonsense -->", registry)


def test_every_nav_page_exists_and_every_page_is_in_the_nav():
    nav = re.findall(r":\s*([\w/.-]+\.md)\s*$", (ROOT / "mkdocs.yml").read_text(encoding="utf-8"), re.M)
    assert set(nav) == {str(p.relative_to(DOCS)) for p in _pages()}


@pytest.mark.skipif(
    shutil.which("mkdocs") is None and importlib.util.find_spec("mkdocs") is None,
    reason="mkdocs is not installed (pip install -e '.[docs]')",
)
def test_docs_build_strict(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={"NO_MKDOCS_2_WARNING": "1", **__import__("os").environ},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    rules_page = (tmp_path / "site" / "rules" / "index.html").read_text(encoding="utf-8")
    assert "generated:" not in rules_page and "<table>" in rules_page


def test_every_cli_subcommand_is_documented():
    from descentlab.cli import build_parser

    parser = build_parser()
    commands = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction").choices
    text = (DOCS / "cli.md").read_text(encoding="utf-8")
    missing = [name for name in commands if f"descentlab {name}" not in text]
    assert not missing, f"docs/cli.md does not document: {missing}"


def test_compare_example_matches_the_quadratic_closed_form(monkeypatch, tmp_path, capsys):
    # The default quadratic: λ = (1, 0.1) with the top eigenvector at 30°, from θ0 = (-4, 3).
    monkeypatch.chdir(tmp_path)
    namespace = runpy.run_path(str(ROOT / "examples" / "compare_in_a_notebook.py"), run_name="__main__")
    results = namespace["results"]
    runs = results.runs
    assert len(runs) == 3 * 3 * 3 and not list(tmp_path.iterdir())  # compare keeps results in memory
    # signSGD moves every coordinate by α: ‖Δθ‖ = α·√2 on the first step (no zero gradient there)
    sign = runs[runs["rule"] == "my_sign"]
    first_steps = results.metric("step_size")[sign["run_id"].to_numpy(), 1]
    np.testing.assert_allclose(first_steps, sign["learning_rate"].to_numpy() * np.sqrt(2.0), rtol=1e-12)
    # GD at α = 1 removes the λ = 1 direction in one step; the λ = 0.1 one shrinks by 0.9 per step:
    # f_200 = ½ · 0.1 · c² · 0.9^400, c = θ0 · (−sin 30°, cos 30°)
    c = -4.0 * -np.sin(np.radians(30)) + 3.0 * np.cos(np.radians(30))
    gd = runs[(runs["rule"] == "gd") & (runs["learning_rate"] == 1.0)]
    np.testing.assert_allclose(gd["final_loss"], 0.5 * 0.1 * c**2 * 0.9**400, rtol=1e-6)
    # every α here is below GD's 2/λ_max and heavy ball's (2 + 2μ)/λ_max: nothing blows up
    assert set(runs["status"]) <= {"converged", "progressing"}
    figure = namespace["figure"]
    assert {t.name.split(" (")[0] for t in figure.data if t.showlegend is not False and t.name} >= {"my_sign", "gd"}
    assert "27 runs of my_sign, gd, momentum" in capsys.readouterr().out


def _fenced_blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", text, re.M | re.S)


def test_readme_python_example_is_the_example_file():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    (block,) = _fenced_blocks(readme, "python")
    source = (ROOT / "examples" / "compare_in_a_notebook.py").read_text(encoding="utf-8")
    assert block == source.split('"""', 2)[2].lstrip("\n"), "README's Python block differs from its example file"
    assert "examples/compare_in_a_notebook.py" in readme


def test_readme_is_a_front_door():
    assert len((ROOT / "README.md").read_text(encoding="utf-8").splitlines()) <= 150


def test_torch_defaults_table_lists_the_rules_that_differ():
    registry = load_registry(entry_points=False, use_env=False)
    table = _hooks().render("<!-- generated: torch-defaults-table -->", registry)
    rows = table.splitlines()[2:]
    # torch.optim.SGD: lr = 1e-3, momentum = 0 (its documented signature); descentlab: α = 0.01, μ = 0.9
    assert any(r.startswith("| `gd` |") and "= 0.01" in r and "= 0.001" in r for r in rows), rows
    assert any(r.startswith("| `momentum` |") and "= 0.9" in r and "`momentum` = 0 " in r for r in rows), rows
    assert not any(r.startswith("| `adam` |") for r in rows)
