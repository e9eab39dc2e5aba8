"""The notebooks in examples/notebooks/ run top to bottom in a fresh kernel (nbclient), and say what they claim."""

from __future__ import annotations

from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "examples" / "notebooks").glob("*.ipynb"))
nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")


def _run(path: Path, tmp_path: Path):
    notebook = nbformat.read(path, as_version=4)
    nbclient.NotebookClient(
        notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    return notebook


def _text(cell) -> str:
    """What a cell printed and returned (not what it displayed, such as a progress bar)."""
    parts = []
    for output in cell.get("outputs", []):
        if output.get("output_type") == "display_data":
            continue
        parts.append(output.get("text", ""))
        parts.append(output.get("data", {}).get("text/plain", ""))
    return "".join(parts)


def test_there_are_notebooks():
    assert {p.name for p in NOTEBOOKS} >= {"lesson_backprop_vs_descent.ipynb", "compare_your_rule.ipynb"}


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_without_error(path, tmp_path):
    notebook = _run(path, tmp_path)  # raises CellExecutionError, naming the cell, on any error
    errors = [
        o
        for c in notebook.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
        if o.get("output_type") == "error"
    ]
    assert not errors
    # compare() draws its progress in the cell, finished: value = max on the last update
    bars = [
        o["data"]["text/html"]
        for c in notebook.cells
        if c.cell_type == "code" and "compare(" in c.source
        for o in c.get("outputs", [])
        if o.get("output_type") in ("display_data", "update_display_data") and "<progress" in str(o.get("data"))
    ]
    assert bars and all("100%" in bar for bar in bars[-1:]), bars
    if path.stem == "lesson_backprop_vs_descent":
        sweep = _text(notebook.cells[-1]).splitlines()
        # GD on a quadratic with λ_max = 1: stable below α = 2, blown up above it (known by construction)
        assert sweep[0] == "theory: GD converges iff α < 2/λ_max = 2"
        runs = [line.split() for line in sweep[1:]]
        assert len(runs) == 8
        for _, _, alpha, status, *_ in runs:
            assert status in (("converged", "progressing") if float(alpha) < 2 else ("unstable", "diverged")), alpha
        # the first steps from one gradient g of the 2-3-1 network (P = 13), α = 0.05: GD's is −αg;
        # momentum's too (PyTorch's buffer starts at g); Adam's is −α·g/|g| per coordinate (m̂ = g,
        # v̂ = g² after bias correction), so its norm is α√P
        steps = next(_text(c) for c in notebook.cells if c.cell_type == "code" and "first_step(name" in c.source)
        norms = {line.split(":")[0].strip(): float(line.split("= ")[1].split(",")[0]) for line in steps.splitlines()}
        assert norms["gd"] == norms["momentum"]
        assert abs(norms["adam"] - 0.05 * 13**0.5) < 1e-4, norms
    if path.stem == "compare_your_rule":
        # the results cell shows the compact summary: the verdict and the cell rule's line
        summary = next(
            o["data"]["text/html"]
            for c in notebook.cells
            if c.cell_type == "code" and c.source.strip().endswith("\nresults")
            for o in c.get("outputs", [])
            if o.get("output_type") == "execute_result" and "text/html" in o.get("data", {})
        )
        assert "had the lowest final loss" in summary and "<li>my_sign_descent: " in summary
        assert len(summary) < 3000
        # 4 rules × 4 α = 16 configurations: the loss figure's legend names one curve per rule
        # (its best configuration), each with its test-loss twin
        figure = next(
            o["data"]["application/vnd.plotly.v1+json"]
            for c in notebook.cells
            if c.cell_type == "code" and c.source.strip() == "results.plot.loss()"
            for o in c.get("outputs", [])
            if "application/vnd.plotly.v1+json" in o.get("data", {})
        )
        legend = {t["name"] for t in figure["data"] if t.get("showlegend", True) and t.get("name")}
        assert {n.removesuffix(" (test)") for n in legend} == {n for n in legend if not n.endswith(" (test)")}
        assert len(legend) == 8 and {n.split(" (")[0] for n in legend} == {"my_sign_descent", "gd", "momentum", "adam"}


def test_notebooks_are_stored_clean_for_a_python3_kernel():
    # no stale outputs in the repository: what a reader sees is what their run shows
    for path in NOTEBOOKS:
        notebook = nbformat.read(path, as_version=4)
        assert notebook.metadata.get("kernelspec", {}).get("name") == "python3", path.name
        stored = [c for c in notebook.cells if c.cell_type == "code" and (c.get("outputs") or c.get("execution_count"))]
        assert not stored, f"{path.name} holds outputs of an earlier run"
