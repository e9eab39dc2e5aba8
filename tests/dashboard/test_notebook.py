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


def test_big_sweep_landscape_draws_the_paths_of_each_entrys_best_configuration(sweep):
    def paths(figure):
        return [t for t in figure.data if t.meta == "path"]

    # 3 entries' best configurations × 2 seeds, named like the loss figure's legend
    drawn = paths(sweep.plot.landscape())
    assert len(drawn) == 3 * 2
    legend = set(_legend(sweep.plot.loss()))
    assert {t.name.rsplit(" seed ", 1)[0] for t in drawn} == legend
    assert len(paths(sweep.plot.landscape(every=True))) == len(sweep.runs) == 54


def test_html_summary_names_the_winner_against_the_closed_form():
    # Isotropic bowl f = ½ λ‖p‖², λ = 1, from p0 = (-4, 3): GD gives f_t = 12.5 (1 − α)^(2t),
    # so at 20 steps α = 0.5 ends at 12.5 · 0.5^40 and α = 0.05 at 12.5 · 0.95^40: "fast" wins.
    steps = 20
    results = dl.compare(
        {"name": "quadratic", "condition": 1.0},
        [{"rule": "gd", "label": "slow", "learning_rate": 0.05}, {"rule": "gd", "label": "fast", "learning_rate": 0.5}],
        seeds=1,
        steps=steps,
        progress=False,
    )
    final = dict(zip(results.runs["label"], results.runs["final_loss"]))
    assert final["fast"] == pytest.approx(12.5 * 0.25**steps, rel=1e-9)
    assert final["slow"] == pytest.approx(12.5 * 0.95 ** (2 * steps), rel=1e-9)
    text = results._repr_html_()
    assert f"fast had the lowest final loss: median {analysis.fmt(12.5 * 0.25**steps)} at α = 0.5" in text
    # with a target loss, the verdict also says who got there first: f_t ≤ 1e-3 at t = ⌈ln(1e-3/12.5) / (2 ln 0.5)⌉
    first = int(np.ceil(np.log(1e-3 / 12.5) / (2 * np.log(0.5))))
    targeted = dl.compare(
        {"name": "quadratic", "condition": 1.0},
        [{"rule": "gd", "label": "slow", "learning_rate": 0.05}, {"rule": "gd", "label": "fast", "learning_rate": 0.5}],
        seeds=1,
        steps=steps,
        target_loss=1e-3,
        progress=False,
    )
    assert f"fast reached the target loss 0.001 first, in a median of {first} steps" in targeted._repr_html_()


def test_html_summary_says_why_a_cell_rule_failed():
    # a notebook shows no log lines: the reason a rule broke is in the summary, with its file:line
    def update(grad, state, params, lr, hyper, step):
        if step == 2:
            raise RuntimeError("boom at step 2")
        return -lr * grad, state

    broken = dl.DescentRule("broken_cell", lambda params, hyper: (), update)
    results = dl.compare("quadratic", [broken, "gd"], learning_rates=0.1, seeds=2, steps=5, progress=False)
    assert list(results.runs.groupby("rule")["status"].unique()["broken_cell"]) == ["failed"]
    text = results._repr_html_()
    line = next(part for part in text.split("<br>") if "of broken_cell failed" in part)
    assert line.startswith("2 runs of broken_cell failed: rule &#x27;broken_cell&#x27; (")
    assert f"{__file__}:" in line and "RuntimeError: boom at step 2" in line


def test_html_summary_says_why_each_rule_first_blew_up():
    # λ_max = 1: GD is stable iff α < 2, heavy ball (μ = 0.9) iff α < 2(1 + μ) = 3.8 (Polyak)
    results = dl.compare(
        "quadratic", ["gd", "momentum"], learning_rates=[1.0, 2.5, 5.0], seeds=2, steps=50, progress=False
    )
    lines = [line for line in results._repr_html_().split("<br>") if " at α = " in line and " (seed " in line]
    assert len(lines) == 2, lines
    gd, momentum = lines
    assert gd.startswith("gd at α = 2.5 (seed 0): diverged") and "critical α = 2/λ_max = 2 there" in gd
    assert momentum.startswith("momentum at α = 5 (seed 0): diverged") and "critical α = 3.8/λ_max = 3.8" in momentum


def test_landscape_of_a_problem_from_a_plugin_file_needs_no_registry_argument():
    from pathlib import Path

    bowl = Path(__file__).resolve().parents[2] / "examples" / "plugins" / "bowl.py"
    registry = dl.load_registry([str(bowl)], entry_points=False, use_env=False)
    results = dl.compare("bowl", ["gd"], learning_rates=0.05, seeds=1, steps=10, registry=registry, progress=False)
    assert results.meta["plugins"]["plugin_files"] == [str(bowl)]
    figure = results.plot.landscape()  # the meta names the file the problem came from
    (path,) = [t for t in figure.data if t.meta == "path"]
    # GD on (x − 1)² + 4y² from (−2, 2): x_t − 1 = −3 (1 − 2α)^t, y_t = 2 (1 − 8α)^t
    t = np.arange(11)
    np.testing.assert_allclose(path.x, 1 - 3 * 0.9**t, rtol=1e-12)
    np.testing.assert_allclose(path.y, 2 * 0.6**t, rtol=1e-12, atol=1e-15)
