"""Theory figure records: limit lines c/α_t follow the schedule, LR-finder band, rates, critical lines."""

import numpy as np

from descentlab.dashboard import theory_figures as TF
from descentlab.experiment import Experiment
from descentlab.lrfind import lr_find
from descentlab.registry import get_registry
from descentlab.runner import run_experiment


def bowl_results(sharpness_every=5):
    spec = {
        "steps": 30,
        "seeds": [0],
        "sharpness_every": sharpness_every,
        "eval_every": 30,
        "problem": {"name": "quadratic", "lambda_max": 4.0},
        "rules": [
            {"rule": "gd", "learning_rate": 0.4, "schedule": {"name": "step", "step_size": 10, "gamma": 0.5}},
            {"rule": "momentum", "learning_rate": [0.1, 0.3], "momentum": 0.5},
            {"rule": "adam", "learning_rate": 0.1},
        ],
    }
    return run_experiment(Experiment.from_dict(spec), workers=1)


def test_sharpness_info_limit_follows_the_schedule_and_threshold():
    results = bowl_results()
    info = TF.sharpness_info(results)
    assert len(info.series) == 4
    gd, m1, m3, adam = info.series
    assert gd.steps == list(range(0, 31, 5))
    np.testing.assert_allclose(gd.sharpness, 4.0, rtol=1e-9)  # λ_max of the bowl everywhere
    expected_alpha = [0.4 * 0.5 ** (t // 10) for t in range(30)] + [0.4 * 0.5**2]  # last row: carried
    np.testing.assert_allclose(gd.limit, [2 / a for a in expected_alpha])
    assert gd.limit_label == "2/α"
    np.testing.assert_allclose(m1.limit, (2 + 2 * 0.5) / 0.1)
    np.testing.assert_allclose(m3.limit, (2 + 2 * 0.5) / 0.3)
    assert adam.limit == [] and adam.limit_label == ""
    fig = TF.draw_sharpness(info)
    assert [t.meta for t in fig.data] == [
        "sharpness",
        "limit",
        "sharpness",
        "limit",
        "sharpness",
        "limit",
        "sharpness",
        "loss",
        "loss",
        "loss",
        "loss",
    ]
    loss = results.metrics[results.metrics["run_id"] == 0].sort_values("step")["loss"].to_numpy()
    np.testing.assert_allclose(gd.loss, loss)
    assert TF.sharpness_info(results, max_runs=2).note == "showing 2 of 4 runs"


def test_sharpness_info_without_measurements_says_how_to_get_them():
    info = TF.sharpness_info(bowl_results(sharpness_every=0))
    assert info.series == [] and "sharpness_every" in info.note
    TF.draw_sharpness(info)


def test_critical_lines_of_a_sweep():
    results = bowl_results(sharpness_every=0)
    lines = TF.critical_lines_info(results)
    got = {(line.name, round(line.learning_rate, 12)) for line in lines}
    assert got == {("gd + step", 0.5), ("momentum", 0.75)}
    fig = TF.add_critical_lines(TF.go.Figure(), lines)
    assert sorted(s.x0 for s in fig.layout.shapes) == [0.5, 0.75]


def test_lr_find_info_and_figure():
    problem = get_registry().problem("quadratic")
    instance = problem.build({**{h.name: h.default for h in problem.settings}, "lambda_max": 10.0})
    result = lr_find(instance, "gd", seeds=[0, 1, 2])
    info = TF.lr_find_info([("gd", result)], critical={"gd": 0.2})
    [curve] = info.curves
    finite = np.isfinite(result.median)
    assert len(curve.median) == int(np.flatnonzero(finite)[-1]) + 1
    assert curve.suggested_lr == result.suggested_lr and curve.critical_lr == 0.2
    fig = TF.draw_lr_find(info)
    assert [t.meta for t in fig.data] == ["band", "median", "suggested"]
    assert fig.layout.shapes[0].x0 == 0.2


def test_rate_info_theory_line_is_rho_to_the_two_t():
    losses = 2.0 * 0.8 ** (2 * np.arange(20)) + 1.0
    info = TF.rate_info([("gd", losses, 0.8, 0.8)], minimum=1.0)
    [c] = info.curves
    np.testing.assert_allclose(c.theory, 2.0 * 0.64 ** np.arange(20))
    np.testing.assert_allclose(c.loss_gap, c.theory, rtol=1e-9)
    assert len(TF.draw_rates(info).data) == 2


def test_report_sensitivity_chart_draws_the_critical_alphas():
    from descentlab.dashboard.report import report_figures

    results = bowl_results(sharpness_every=0)
    [sensitivity] = [f for f in report_figures(results) if f.slug == "sensitivity"]
    assert sorted(s.x0 for s in sensitivity.figure.layout.shapes) == [2 / 4.0, 3.0 / 4.0]
    texts = [a.text for a in sensitivity.figure.layout.annotations]
    assert "gd + step: critical α 0.5" in texts and "momentum: critical α 0.75" in texts
