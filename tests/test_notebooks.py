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
