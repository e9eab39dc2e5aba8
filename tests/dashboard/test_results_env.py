"""DESCENTLAB_RESULTS is one folder for save_results, the CLI and the dashboard's Results page."""

from __future__ import annotations

import descentlab as dl
from descentlab.cli import main
from apptest_helpers import no_trouble, open_app


def test_results_page_opens_on_descentlab_results(tmp_path, monkeypatch):
    shared = tmp_path / "class-results"
    monkeypatch.setenv("DESCENTLAB_RESULTS", str(shared))
    monkeypatch.chdir(tmp_path)
    results = dl.compare("quadratic", ["gd"], learning_rates=0.1, seeds=1, steps=3, progress=False)
    folder = dl.save_results(results)  # no folder given: the environment's
    assert folder.parent == shared
    assert main(["run", "--quiet", "--workers", "1", str(_experiment(tmp_path))]) == 0
    at = open_app("5_results.py")  # no ?folder=: the page starts from DESCENTLAB_RESULTS
    no_trouble(at)
    options = at.selectbox(key="res.pick").options
    assert folder.name in options and any(o.startswith("from-cli-") for o in options), options
    assert not (tmp_path / "results").exists()


def _experiment(tmp_path):
    path = tmp_path / "exp.toml"
    path.write_text('name = "from-cli"\nsteps = 3\n[problem]\nname = "quadratic"\n[[rules]]\nrule = "gd"\n')
    return path
