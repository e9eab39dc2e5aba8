"""Results in a notebook: the plot accessor keeps big sweeps' legends readable; the HTML summary is escaped text."""

from __future__ import annotations

import numpy as np
import pytest

import descentlab as dl
from descentlab import analysis


@pytest.fixture(scope="module")
def sweep():
    # 3 rules × 9 α = 27 configurations, 2 seeds: the size whose legend used to list 118 traces
    alphas = list(np.geomspace(0.01, 3.0, 9))
    return dl.compare(
        {"name": "quadratic", "start_spread": 0.5}, ["gd", "momentum", "adam"], learning_rates=alphas, seeds=2, steps=60
    )


def _legend(figure) -> list[str]:
    return [t.name for t in figure.data if t.showlegend is not False and t.name]


def test_big_sweep_plots_each_entrys_best_configuration(sweep):
    best = analysis.best_run_ids(sweep)
    figure = sweep.plot.loss()
    names = set(_legend(figure))
    assert len(names) == 3
    runs = sweep.runs.set_index("run_id")
    for entry, ids in best.items():
        alpha = runs.loc[ids[0], "learning_rate"]
        label = runs.loc[ids[0], "label"]
        # the legend names the best configuration of each entry, by its α
        assert any(name.startswith(str(label)) and analysis.format_number(alpha)[:3] in name for name in names), (
            label,
            alpha,
            names,
        )
    every = sweep.plot.loss(every=True)  # every configuration drawn; the legend lists the 3 entries
    assert len({t.name for t in every.data if t.meta == "train"}) == 27
    assert len(set(_legend(every))) == 3


def test_other_figures_and_landscape(sweep):
    assert sweep.plot.step_sizes().data and sweep.plot.learning_rates().data and sweep.plot.sweep().data
    contour = [t for t in sweep.plot.landscape().data if t.type == "contour"]
    assert contour
    moons = dl.compare("moons", ["gd"], seeds=1, steps=3)
    with pytest.raises(ValueError, match="a landscape needs 2"):
        moons.plot.landscape()


def test_html_summary_is_escaped_and_holds_the_verdict_lines():
    results = dl.compare(
        "quadratic", [{"rule": "gd", "label": "<script>alert(1)</script>", "learning_rate": 0.5}], seeds=2, steps=20
    )
    text = results._repr_html_()
    assert "<script>" not in text and "&lt;script&gt;" in text
    line = analysis.verdict_line(next(analysis.summarize(results).itertuples()))
    assert analysis.html.escape(line) in text
    assert "2 converged" in text or "2 progressing" in text
