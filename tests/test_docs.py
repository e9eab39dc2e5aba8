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
    transforms = hooks.render("<!-- generated: transforms-table -->", registry)
    for name, transform in registry.transforms.items():
        row = next(line for line in transforms.splitlines() if line.startswith(f"| `{name}` |"))
        assert ("after the rule" in row) == bool(transform.is_wrapper), row
        assert " ".join(transform.formula.split()) in row.replace("\\|", "|")
    # every table is on a page of the site
    markers = {m for page in _pages() for m in hooks.MARKER.findall(page.read_text(encoding="utf-8"))}
    assert markers == set(hooks.TABLES), markers
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
    # the API reference reaches the subpackages too (results.plot is descentlab.dashboard.notebook's)
    api_page = (tmp_path / "site" / "api" / "index.html").read_text(encoding="utf-8")
    for documented in ("descentlab.compare.compare", "ResultPlots", "step_sizes", "auto_progress", "cli_logging"):
        assert documented in api_page, documented


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
    first_steps = results.metric("step_size")[sign["run_id"].to_numpy(), 0]  # row t: ‖θ_{t+1} − θ_t‖
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


def _quadratic_matrix(lambda_max: float, condition: float, angle_degrees: float) -> np.ndarray:
    """A = Q(θ) diag(λ_max, λ_max/κ) Q(θ)ᵀ, the quadratic bowl as docs/problems.md defines it."""
    t = np.radians(angle_degrees)
    q = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
    return q @ np.diag([lambda_max, lambda_max / condition]) @ q.T


def test_sharpness_example_finds_the_bowls_eigenvalues(monkeypatch, tmp_path, capsys):
    monkeypatch.chdir(tmp_path)
    namespace = runpy.run_path(str(ROOT / "examples" / "sharpness.py"), run_name="__main__")
    np.testing.assert_allclose(namespace["lam"], 3.0, rtol=1e-6)
    np.testing.assert_allclose(namespace["lam_max"], 3.0, rtol=1e-6)
    np.testing.assert_allclose(namespace["lam_min"], 0.3, rtol=1e-6)
    np.testing.assert_allclose(
        namespace["H"], np.broadcast_to(_quadratic_matrix(3.0, 10.0, 30.0), (3, 2, 2)), atol=1e-6
    )
    assert "critical α = 2/λ_max = 0.666666" in capsys.readouterr().out


def _registry_with(*files: str):
    from descentlab import load_registry

    registry = load_registry([str(ROOT / "examples" / "plugins" / f) for f in files], entry_points=False, use_env=False)
    assert not registry.errors, registry.errors
    return registry


def test_bowl_example_problem_follows_gradient_descent_in_closed_form():
    import descentlab as dl

    registry = _registry_with("bowl.py")
    # f = (x − 1)² + 4y² from (−2, 2): GD gives x_t − 1 = −3 (1 − 2α)^t and y_t = 2 (1 − 8α)^t
    alpha, steps = 0.05, 30
    results = dl.compare("bowl", ["gd"], learning_rates=alpha, seeds=1, steps=steps, registry=registry, progress=False)
    expected = 9 * (1 - 2 * alpha) ** (2 * steps) + 4 * 4 * (1 - 8 * alpha) ** (2 * steps)
    np.testing.assert_allclose(results.runs["final_loss"], expected, rtol=1e-10)
    # its declared λ_max = 8 is the Hessian's: GD is stable iff α < 2/8, and α = 0.26 blows up
    above = dl.compare("bowl", ["gd"], learning_rates=0.26, seeds=1, steps=200, registry=registry, progress=False)
    assert set(above.runs["status"]) <= {"unstable", "diverged"}


def test_transform_example_scales_and_caps_the_first_step_by_hand():
    import descentlab as dl

    registry = _registry_with("step_transforms.py")
    # the default quadratic from θ0 = (−4, 3): g0 = A θ0, and GD's first step is −α g0
    g0 = _quadratic_matrix(1.0, 10.0, 30.0) @ np.array([-4.0, 3.0])
    alpha = 0.1
    entries = [
        {"rule": "gd", "label": "scaled", "learning_rate": alpha, "transforms": [{"name": "scale", "scale": 2.0}]},
        {
            "rule": "gd",
            "label": "capped",
            "learning_rate": alpha,
            "transforms": [{"name": "cap_step", "max_step": 0.01}],
        },
    ]
    results = dl.compare("quadratic", entries, seeds=1, steps=5, registry=registry, progress=False)
    first = dict(zip(results.runs["label"], results.metric("step_size")[results.runs["run_id"].to_numpy(), 0]))
    assert first["scaled"] == pytest.approx(2.0 * alpha * np.linalg.norm(g0), rel=1e-12)
    assert first["capped"] == pytest.approx(0.01, rel=1e-12)  # ‖α g0‖ ≈ 0.33 > c, so the cap binds


def test_plugin_test_example_runs_the_battery(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "examples" / "plugins"))
    monkeypatch.delitem(sys.modules, "sign_descent", raising=False)
    namespace = runpy.run_path(str(ROOT / "examples" / "plugins" / "test_sign_descent.py"))
    namespace["test_sign_descent_conforms"]()  # raises AssertionError naming a failed check


def test_reuse_weights_example_forward_pass_is_the_engines(monkeypatch, tmp_path, capsys):
    monkeypatch.chdir(tmp_path)
    namespace = runpy.run_path(str(ROOT / "examples" / "reuse_weights.py"), run_name="__main__")
    from descentlab.lesson import build_instance

    instance = build_instance(namespace["problem"])
    w = namespace["w"]
    params = instance.layout.flatten({e.name: w[f"final.{e.name}"][:1] for e in instance.layout.entries})
    np.testing.assert_allclose(namespace["logits"], instance.predict(params, namespace["x"])[0], rtol=1e-12, atol=1e-12)
    # the weights are the trained ones: the run's folder is under results/ and its accuracy is printed
    assert Path(namespace["folder"]).parent.resolve() == (tmp_path / "results").resolve()
    assert float(capsys.readouterr().out.split()[-1]) > 0.75


# Python blocks in docs/ that are not programs to run, each with the reason. Every other Python
# sample is a file of examples/ that the page includes (and a test above runs).
NOT_PROGRAMS = {
    ("rules.md", "state = rule.init(params, hyper)"): "the shape of a rule's two calls, not a program",
    ("cluster.md", "from distributed import Client"): "needs a Dask scheduler at the address it names",
    ("cluster.md", "from descentlab import load_experiment_file"): (
        "starts a local cluster on the reader's sweep.toml; tests/core/test_dask.py makes the same calls"
        " (connect(n_workers=2), run_sweep, close) on a real sweep"
    ),
    # these two read a Dask sweep's parts: tests/core/test_dask.py runs them on a real sweep's folder
    ("cluster.md", "import pandas as pd"): "needs a sweep's folder of parts (run in tests/core/test_dask.py)",
    ("cluster.md", "import duckdb"): "needs a sweep's folder of parts (run in tests/core/test_dask.py)",
}


def test_every_python_sample_in_the_docs_is_an_included_example():
    inline, used = [], set()
    for page in _pages():
        for block in _fenced_blocks(page.read_text(encoding="utf-8"), "python"):
            if INCLUDE.fullmatch(block.strip()):
                continue
            name, first = str(page.relative_to(DOCS)), block.splitlines()[0]
            known = [key for key in NOT_PROGRAMS if key[0] == name and first.startswith(key[1])]
            if not known:
                inline.append((name, first))
            used.update(known)
    assert not inline, f"Python samples written inline (put each in examples/ and include it): {inline}"
    assert used == set(NOT_PROGRAMS), set(NOT_PROGRAMS) - used  # the list names no sample that is gone


def test_every_toml_sample_in_the_docs_is_a_valid_experiment_part():
    """A fragment of an experiment file, completed with a problem and a rule where it has none,
    is accepted by the experiment parser (with the example plugins loaded)."""
    import tomllib

    from descentlab import Experiment

    registry = _registry_with("sign_descent.py", "step_transforms.py", "bowl.py", "inverse_sqrt.py")
    checked = 0
    for page in _pages():
        for block in _fenced_blocks(page.read_text(encoding="utf-8"), "toml"):
            if INCLUDE.fullmatch(block.strip()):
                continue
            spec = tomllib.loads(block)
            if "build-system" in spec or "project" in spec:  # a package's pyproject.toml, not an experiment
                continue
            if spec.get("problem", {}).get("name") == "csv":  # names the reader's own data file
                continue
            spec.setdefault("problem", {"name": "quadratic"})
            spec.setdefault("rules", [{"rule": "gd"}])
            Experiment.from_dict(spec, registry)  # a SpecError names the key
            checked += 1
    assert checked >= 5


def test_readme_links_reach_existing_pages_and_headings():
    """GitHub shows README.md outside the site, so the strict build does not check its links."""
    toc = pytest.importorskip("markdown.extensions.toc")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    links = re.findall(r"\]\(((?:docs|examples)/[^)#\s]+)(?:#([^)\s]+))?\)", readme)
    assert links
    for path, anchor in links:
        target = ROOT / path
        assert target.exists(), f"README links to {path}, which does not exist"
        if anchor:
            headings = re.findall(r"^#+\s+(.*?)\s*$", target.read_text(encoding="utf-8"), re.M)
            slugs = {toc.slugify(h.replace("`", ""), "-") for h in headings}
            assert anchor in slugs, f"README links to {path}#{anchor}; its headings give {sorted(slugs)}"


def test_schedule_example_gives_its_formula_at_every_step():
    import descentlab as dl

    registry = _registry_with("inverse_sqrt.py")
    entry = {"rule": "gd", "learning_rate": [0.1, 0.4], "schedule": {"name": "inverse_sqrt", "tau": [5.0, 50.0]}}
    results = dl.compare("quadratic", [entry], seeds=1, steps=30, registry=registry, progress=False)
    recorded = results.metric("learning_rate")
    t = np.arange(30)
    taus = results.runs["schedule.tau"].to_numpy()
    for alpha, tau, run_id in zip(results.runs["learning_rate"], taus, results.runs["run_id"]):
        # α_t = α / √(1 + t/τ), written out here, for each (α, τ) of the grid
        np.testing.assert_allclose(recorded[run_id, :30], alpha / np.sqrt(1.0 + t / tau), rtol=1e-14)
    assert sorted(zip(results.runs["learning_rate"], taus)) == [(0.1, 5.0), (0.1, 50.0), (0.4, 5.0), (0.4, 50.0)]


def _shows(line: str, printed: str) -> bool:
    """``printed`` is the shown line, where the page may cut a stretch short with "…"."""
    at = 0
    for part in line.split("…"):
        found = printed.find(part, at)
        if found < 0 or (at == 0 and found != 0):
            return False
        at = found + len(part)
    return "…" in line or at == len(printed)


@pytest.mark.parametrize("page", ["README.md", "docs/getting-started.md"])
def test_command_line_output_on_the_page_is_what_the_command_prints(page, monkeypatch, tmp_path, capsys):
    from descentlab.cli import main

    text = (ROOT / page).read_text(encoding="utf-8")
    command = re.search(r"^descentlab run (examples/\S+\.toml)", text, re.M)
    shown = re.search(r"^```\n(\d+ runs:.*?)^```", text, re.M | re.S).group(1).splitlines()
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DESCENTLAB_RESULTS", raising=False)
    assert main(["run", str(ROOT / command.group(1)), "--workers", "1"]) == 0
    printed = capsys.readouterr().out.splitlines()
    name = command.group(1).split("/")[-1].removesuffix(".toml").replace("_", "-")
    assert printed[-1].startswith(f"results: results/{name}-") and shown[-1].startswith(f"results: results/{name}-")
    # the page's lines in order ("..." for lines it leaves out; the wall time differs every run)
    at = 0
    for line in shown[:-1]:
        if line.strip() == "..." or line.startswith("wall time"):
            continue
        matches = [i for i in range(at, len(printed)) if _shows(line, printed[i])]
        assert matches, f"{page} shows {line!r}; the command printed {printed[at:]}"
        at = matches[0] + 1


def test_lr_find_output_on_the_theory_page_is_what_the_command_prints(monkeypatch, tmp_path, capsys):
    """docs/theory.md shows each command followed by its output as `# ` lines ("…" cuts a stretch)."""
    from descentlab.cli import main

    text = (DOCS / "theory.md").read_text(encoding="utf-8")
    block = next(b for b in _fenced_blocks(text, "bash") if b.startswith("descentlab lr-find"))
    commands: list[tuple[list[str], list[str]]] = []
    for line in block.splitlines():
        if line.startswith("descentlab "):
            commands.append((line.split()[1:], []))
        elif line.startswith("# "):
            commands[-1][1].append(line[2:])
    assert len(commands) == 2
    monkeypatch.chdir(tmp_path)
    for argv, shown in commands:
        argv = [str(ROOT / a) if a.startswith("examples/") else a for a in argv]
        assert main(argv) == 0
        printed = capsys.readouterr().out.splitlines()
        at = 0
        for line in shown:
            matches = [i for i in range(at, len(printed)) if _shows(line.strip(), printed[i].strip())]
            assert matches, f"theory.md shows {line!r} after {argv}; it printed {printed[at:]}"
            at = matches[0] + 1


@pytest.mark.skipif(
    importlib.util.find_spec("mkdocs") is None, reason="mkdocs is not installed (pip install -e '.[docs]')"
)
@pytest.mark.parametrize(
    "fault, named",
    [
        ("[a page](no-such-page.md)", "no-such-page.md"),
        ("[a heading](rules.md#no-such-heading)", "no-such-heading"),
        ("::: descentlab.no_such_module", "descentlab.no_such_module"),
        ("[a heading](rules.md#defaults-and-torchoptim)", None),  # the copy itself builds
    ],
    ids=["link", "anchor", "api-reference", "none"],
)
def test_strict_build_fails_on_a_broken_reference(tmp_path, fault, named):
    """The build .ci/run runs is the guard: a broken link, anchor or API reference fails it."""
    for folder in ("core", "plugins", "dashboard", "examples"):
        (tmp_path / folder).symlink_to(ROOT / folder, target_is_directory=True)
    shutil.copytree(DOCS, tmp_path / "docs", ignore=shutil.ignore_patterns("screenshots"))
    (tmp_path / "docs" / "screenshots").symlink_to(DOCS / "screenshots", target_is_directory=True)
    shutil.copy(ROOT / "mkdocs.yml", tmp_path / "mkdocs.yml")
    page = tmp_path / "docs" / "theory.md"
    page.write_text(page.read_text(encoding="utf-8") + f"\n\n{fault}\n", encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**__import__("os").environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    if named is None:
        assert done.returncode == 0, done.stderr[-2000:]
    else:
        assert done.returncode != 0 and named in done.stderr, done.stderr[-2000:]


EXPERIMENT_FILES = sorted(p.name for p in (ROOT / "examples").glob("*.toml"))


def test_every_example_experiment_is_on_a_page():
    pages = "".join(p.read_text(encoding="utf-8") for p in _pages())
    missing = [name for name in EXPERIMENT_FILES if f"examples/{name}" not in pages]
    assert not missing, f"example experiment files no page mentions: {missing}"


@pytest.mark.parametrize(
    "name", [n for n in EXPERIMENT_FILES if n != "teaching_suite.toml"]
)  # a protocol: its own tests
def test_every_example_experiment_runs_and_each_rule_trains(name, tmp_path, capsys):
    from descentlab import load_results
    from descentlab.cli import main

    assert main(["run", str(ROOT / "examples" / name), "--out", str(tmp_path), "--workers", "1", "--quiet"]) == 0
    captured = capsys.readouterr()
    assert "warning" not in captured.err, captured.err
    runs = load_results(captured.out.strip().removeprefix("results: ")).runs
    assert "failed" not in set(runs["status"])
    stable = runs[runs["status"].isin(["converged", "progressing"])]
    assert set(stable["label"]) == set(runs["label"]), "a rule of the example never trained"
