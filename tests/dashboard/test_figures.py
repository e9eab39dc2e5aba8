"""Figure functions: info records checked against independent computations on the records."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pandas as pd
import pytest

from descentlab.dashboard import figures as F
from descentlab.experiment import Experiment
from descentlab.registry import get_registry
from descentlab.runner import run_experiment
from plotly_values import plain_json


def _is_plain(value) -> bool:
    """Figure data built from lists: JSON numbers, never plotly's base64 ``bdata`` arrays."""
    if isinstance(value, dict):
        return "bdata" not in value and all(_is_plain(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return all(_is_plain(v) for v in value)
    return True


def _run(spec):
    registry = get_registry()
    return run_experiment(Experiment.from_dict(spec, registry), registry=registry, workers=1)


# --- curves -------------------------------------------------------------------------------------


def test_loss_curves_median_and_band_match_pandas(make_results):
    results = make_results(
        [{"rule": "gd", "label": "vanilla GD", "learning_rate": 0.1}, {"rule": "adam", "learning_rate": 0.3}],
        steps=12,
        seeds=(0, 1, 2, 3),
    )
    info = F.loss_curves_info(results, test=False)
    assert [c.name for c in info.curves] == ["vanilla GD", "adam"]
    for curve, entry in zip(info.curves, (0, 1)):
        ids = results.runs.loc[results.runs.entry == entry, "run_id"]
        m = results.metrics[results.metrics.run_id.isin(ids)]
        by_step = m.groupby("step")["loss"]
        assert curve.x == list(range(13))
        np.testing.assert_allclose(curve.y, by_step.median().to_numpy(), rtol=1e-12)
        np.testing.assert_allclose(curve.lower, by_step.quantile(0.25).to_numpy(), rtol=1e-12)
        np.testing.assert_allclose(curve.upper, by_step.quantile(0.75).to_numpy(), rtol=1e-12)
    assert info.log_y and info.x_range == [0, 12]


def test_single_run_curve_is_the_records(make_results):
    results = make_results([{"rule": "gd", "learning_rate": 0.2}], steps=8)
    (curve,) = F.metric_curves_info(results, "grad_norm").curves
    assert curve.y == results.metrics.sort_values("step")["grad_norm"].tolist()
    assert curve.lower is None and curve.upper is None


def test_diverged_run_stops_at_diverged_at_and_is_marked(make_results):
    results = make_results(
        [{"rule": "gd", "learning_rate": 0.1}, {"rule": "gd", "label": "big", "learning_rate": 5.0, "diverge_at": 6}],
        steps=20,
    )
    info = F.loss_curves_info(results, test=False)
    big = next(c for c in info.curves if c.name == "big")
    recorded = int(results.runs.loc[results.runs.label == "big", "diverged_at"].iloc[0])
    assert big.x[-1] == recorded == 6
    (mark,) = info.diverged
    assert mark.step == recorded and mark.text == f"diverged at step {recorded}"
    last = results.metrics[(results.metrics.run_id == mark.run_id) & (results.metrics.step == recorded)]["loss"]
    assert mark.y == pytest.approx(float(last.iloc[0]))
    fig = F.draw_curves(info)
    marker = [t for t in fig.data if t.meta == "diverged"]
    assert len(marker) == 1 and list(marker[0].x) == [6] and list(marker[0].text) == ["diverged at step 6"]


def test_diverged_with_infinite_loss_is_marked_at_last_finite_value(make_results):
    results = make_results([{"rule": "gd", "learning_rate": 5.0, "diverge_at": 4, "inf": True}], steps=10)
    info = F.loss_curves_info(results, test=False)
    (mark,) = info.diverged
    m = results.metrics.set_index("step")["loss"]
    assert mark.step == 4 and mark.y == pytest.approx(m[3])
    assert info.curves[0].y[-1] is None  # inf is a gap, never a number in the figure


def test_median_over_seeds_is_blown_up_once_half_the_seeds_are(make_results):
    results = make_results([{"rule": "gd", "learning_rate": 0.1}], steps=10, seeds=(0, 1, 2))
    # make seed 0 and 1 diverge at step 5 by editing the records the way the runner writes them
    runs, metrics = results.runs, results.metrics
    for run_id in (0, 1):
        runs.loc[runs.run_id == run_id, ["status", "diverged_at"]] = ["diverged", 5.0]
        metrics = metrics[~((metrics.run_id == run_id) & (metrics.step > 5))]
    results.metrics = metrics
    info = F.loss_curves_info(results, test=False)
    curve = info.curves[0]
    assert curve.y[4] is not None and all(v is None for v in curve.y[6:])
    assert {d.run_id for d in info.diverged} == {0, 1}


def test_groups_name_the_grid_point(make_results):
    results = make_results(
        [
            {"rule": "gd", "label": "GD", "learning_rate": [0.01, 0.1]},
            {"rule": "momentum", "learning_rate": 0.1, "momentum": 0.9},
        ],
        seeds=(0, 1),
    )
    groups = F.run_groups(results)
    assert [g.name for g in groups] == ["GD (α=0.01)", "GD (α=0.1)", "momentum"]
    assert [g.run_ids for g in groups] == [[0, 1], [2, 3], [4, 5]]


def test_groups_are_the_grid_points_sorted_by_what_varies():
    # α listed descending and a second axis: groups follow the grid, in ascending order of the axes
    entries = [
        {"rule": "momentum", "learning_rate": [0.1, 0.01], "momentum": [0.9, 0.5]},
        {"rule": "gd", "label": "again", "learning_rate": [0.05, 0.02]},
    ]
    spec = {"name": "groups", "problem": {"name": "linear_regression"}, "steps": 3, "seeds": [0, 1], "rules": entries}
    results = run_experiment(Experiment.from_dict(spec, get_registry()), registry=get_registry(), workers=1)
    groups = F.run_groups(results)
    # by hand: the grid numbers runs α outermost, seeds innermost (run 2k, 2k + 1 for point k)
    assert [g.name for g in groups] == [
        "momentum (α=0.01, momentum=0.5)",
        "momentum (α=0.01, momentum=0.9)",
        "momentum (α=0.1, momentum=0.5)",
        "momentum (α=0.1, momentum=0.9)",
        "again (α=0.02)",
        "again (α=0.05)",
    ]
    assert [g.run_ids for g in groups] == [[6, 7], [4, 5], [2, 3], [0, 1], [10, 11], [8, 9]]
    runs = results.runs.set_index("run_id")
    for g in groups:
        assert runs.loc[g.run_ids, "seed"].tolist() == g.seeds == [0, 1]
        for column, value in g.config.items():  # NaN where the entry's rule lacks the hyperparameter
            same = runs.loc[g.run_ids, column].apply(lambda v: v == value or (pd.isna(v) and pd.isna(value)))
            assert same.all(), (g.name, column)


def test_other_metric_curves_and_layers(make_results):
    results = make_results([{"rule": "gd", "learning_rate": 0.1}], steps=6, layers=3)
    m = results.metrics.sort_values("step")
    assert F.learning_rate_info(results).curves[0].y == m["learning_rate"].iloc[:-1].tolist()  # last row NaN dropped
    assert F.step_size_info(results).curves[0].y == m["step_size"].iloc[:-1].tolist()
    layers = F.layer_grad_norms_info(results)
    assert layers.layers == ["layer1", "layer2", "layer3"]
    ((name, curves),) = layers.panels
    for curve, layer in zip(curves, layers.layers):
        assert curve.y == m[f"grad_norm.{layer}"].tolist()
    F.draw_layer_grad_norms(layers)


def test_figures_are_strict_json_and_curves_decode_to_their_info_values(make_results):
    """Curves reach plotly as numpy arrays (sent base64-encoded, docs/dev/speed.md); the other charts as
    lists. Either way the JSON is strict (no NaN or Infinity literal a browser would refuse) and each
    line, decoded, holds exactly its info record's values, gaps (None) included."""
    results = make_results(
        [{"rule": "gd", "learning_rate": [0.1, 1.0], "diverge_at": lambda a: 3 if a > 0.5 else None}],
        steps=10,
        seeds=(0, 1),
    )

    def refuse(constant):
        raise AssertionError(f"{constant} in the figure JSON")

    info = F.loss_curves_info(results)
    assert any(v is None for c in info.curves for v in c.y)  # the diverged run's gap is checked too
    for fig in (
        F.draw_curves(info),
        F.draw_sweep(F.sweep_info(results)),
        F.draw_sweep_heatmap(F.sweep_heatmap_info(results)),
        F.draw_summary_table(F.summary_table_info(results)),
    ):
        json.loads(fig.to_json(), parse_constant=refuse)
    data = plain_json(F.draw_curves(info))["data"]
    lines = [t for t in data if t.get("meta") in ("train", "test")]
    bands = [t for t in data if t.get("meta") == "band"]
    assert [(t["meta"], t["x"], t["y"]) for t in lines] == [(c.role, c.x, c.y) for c in info.curves]
    assert [t["y"] for t in bands] == [v for c in info.curves if c.lower is not None for v in (c.upper, c.lower)]


# --- learning-rate sweep ------------------------------------------------------------------------


def test_sweep_info_against_the_run_table(make_results):
    alphas = [0.01, 0.03, 0.1, 0.3, 1.0, 3.0]
    results = make_results(
        [
            {"rule": "gd", "learning_rate": alphas, "diverge_at": lambda a: 4 if a >= 1.0 else None},
            {"rule": "adam", "learning_rate": alphas},
        ],
        steps=10,
        seeds=(0, 1, 2),
    )
    info = F.sweep_info(results)
    gd, adam = info.lines
    runs = results.runs
    for line, rule in ((gd, "gd"), (adam, "adam")):
        assert line.alphas == alphas
        for alpha, final, flag, statuses in zip(line.alphas, line.final_loss, line.flagged, line.statuses):
            rows = runs[(runs.rule == rule) & (runs.learning_rate == alpha)].sort_values("seed")
            assert statuses == tuple(rows.status)
            assert flag == bool((rows.status == "diverged").any())
            if flag:
                assert final is None
            else:
                assert final == pytest.approx(float(rows.final_loss.median()))
    assert gd.largest_stable == 0.3 and gd.diverged_at[-1] == 4 and gd.smallest_flagged == 1.0
    assert adam.largest_stable == 3.0 and adam.smallest_flagged is None
    fig = F.draw_sweep(info)
    gd_markers = next(t for t in fig.data if t.meta == "status" and t.name.startswith("gd"))
    diverged = F.STATUS_STYLE["diverged"]
    crosses = [a for a, symbol in zip(gd_markers.x, gd_markers.marker.symbol) if symbol == diverged.symbol]
    assert crosses == [1.0, 3.0]
    assert [y for a, y in zip(gd_markers.x, gd_markers.y) if a >= 1.0] == [info.ceiling, info.ceiling]
    stars = [t for t in fig.data if t.meta == "largest_stable"]
    assert sorted(s.x[0] for s in stars) == [0.3, 3.0]


# Known by construction: three seeds per α; the status of each (α, seed) is chosen here.
VERDICTS = {
    0.1: ("converged",) * 3,
    1.0: ("progressing",) * 3,
    3.0: ("converged", "unstable", "converged"),  # one seed blows up (and goes on)
    10.0: ("diverged",) * 3,
    30.0: ("converged",) * 3,
}  # lucky: past the edge, does not count
WORST = {0.1: "converged", 1.0: "progressing", 3.0: "unstable", 10.0: "diverged", 30.0: "converged"}


def _verdict_results(make_results, verdicts=VERDICTS, steps=12):
    return make_results(
        [
            {
                "rule": "gd",
                "learning_rate": sorted(verdicts),
                "diverge_at": lambda a, s: 5 if verdicts[a][s] == "diverged" else None,
                "unstable_at": lambda a, s: 4 + s if verdicts[a][s] == "unstable" else None,
                "fail_at": lambda a, s: 3 if verdicts[a][s] == "failed" else None,
                "status": lambda a, s: verdicts[a][s],
            }
        ],
        steps=steps,
        seeds=(0, 1, 2),
    )


def test_sweep_marks_each_alpha_by_its_worst_status_and_stars_the_largest_stable(make_results):
    results = _verdict_results(make_results)
    assert [tuple(g.status) for _, g in results.runs.groupby("learning_rate")] == list(VERDICTS.values())
    (line,) = F.sweep_info(results).lines
    assert line.alphas == [0.1, 1.0, 3.0, 10.0, 30.0]
    assert line.statuses == [VERDICTS[a] for a in line.alphas]
    assert line.worst == [WORST[a] for a in line.alphas]
    assert line.flagged == [False, False, True, True, False]
    assert line.largest_stable == 1.0  # not 30: a lucky α past the edge does not count
    assert line.smallest_flagged == 3.0
    assert line.unstable_at == [None, None, 5, None, None]  # seed 1: 4 + 1
    assert line.diverged_at == [None, None, None, 5, None]
    at_one = results.runs[results.runs.learning_rate == 1.0]
    assert line.largest_stable_loss == pytest.approx(float(at_one.final_loss.median()))
    # flagged α have no point on the loss line: they sit at the top, above every loss shown
    assert line.final_loss[2] is None and line.final_loss[3] is None
    at_thirty = results.runs[results.runs.learning_rate == 30.0]
    assert line.final_loss[4] == pytest.approx(float(at_thirty.final_loss.median()))

    fig = F.draw_sweep(F.sweep_info(results))
    (markers,) = [t for t in fig.data if t.meta == "status"]
    assert list(markers.x) == line.alphas
    ceiling = F.sweep_info(results).ceiling
    shown = [v for v in line.final_loss + line.best_loss if v is not None]
    assert ceiling > max(shown)
    assert [y == ceiling for y in markers.y] == [False, False, True, True, False]
    assert list(markers.marker.color) == [F.STATUS_STYLE[WORST[a]].color for a in line.alphas]
    assert list(markers.marker.symbol) == [F.STATUS_STYLE[WORST[a]].symbol for a in line.alphas]
    (star,) = [t for t in fig.data if t.meta == "largest_stable"]
    assert list(star.x) == [1.0]
    legend = [t.name for t in fig.data if t.meta == "status_legend"]
    assert legend == ["converged", "progressing", "unstable", "diverged"]
    assert "worst status" in fig.layout.title.text


def test_the_star_never_sits_on_an_alpha_with_an_unstable_seed(make_results):
    # every α below the edge is stable except one with a single unstable seed: ★ must stay below it
    verdicts = {0.1: ("converged",) * 3, 0.3: ("converged", "converged", "unstable"), 1.0: ("converged",) * 3}
    (line,) = F.sweep_info(_verdict_results(make_results, verdicts)).lines
    assert line.largest_stable == 0.1 and line.smallest_flagged == 0.3
    unstable_alphas = [a for a in verdicts if "unstable" in verdicts[a]]
    assert line.largest_stable not in unstable_alphas


def test_failed_and_stalled_alphas_are_neither_flagged_nor_stable(make_results):
    verdicts = {
        0.01: ("stalled",) * 3,
        0.1: ("converged",) * 3,
        0.3: ("converged", "failed", "converged"),
        1.0: ("progressing", "converged", "stalled"),
    }
    results = _verdict_results(make_results, verdicts)
    info = F.sweep_info(results)
    (line,) = info.lines
    assert line.worst == ["stalled", "converged", "failed", "stalled"]
    assert line.flagged == [False] * 4 and line.failed == [False, False, True, False]
    assert line.smallest_flagged is None
    assert line.largest_stable == 0.1  # 0.3 has a failed seed, 1.0 a stalled one
    assert line.final_loss[2] is None  # a failed seed has no final loss: drawn at the top
    fig = F.draw_sweep(info)
    (markers,) = [t for t in fig.data if t.meta == "status"]
    assert markers.marker.symbol[2] == F.STATUS_STYLE["failed"].symbol and markers.y[2] == info.ceiling
    assert markers.marker.color[0] == F.STATUS_STYLE["stalled"].color


def test_status_styles_are_distinct_and_cover_the_vocabulary():
    from descentlab.verdicts import STATUSES

    style = F.STATUS_STYLE
    assert tuple(style) == STATUSES
    assert len({s.color for s in style.values()}) == len(STATUSES)
    assert len({s.symbol for s in style.values()}) == len(STATUSES)
    assert all(s.symbol != "star" for s in style.values())  # ★ is the largest stable α
    from descentlab.dashboard.status_style import style_of, worst_status

    assert worst_status(["converged", "failed", "unstable"]) == "unstable"
    assert worst_status(["converged", "progressing"]) == "progressing"
    assert worst_status(["failed", "stalled"]) == "failed"
    assert style_of("finished").label == "finished"  # an old record's status: drawn, under its own name


def test_largest_stable_alpha_ignores_a_lucky_alpha_past_the_edge(make_results):
    results = make_results(
        [{"rule": "gd", "learning_rate": [0.1, 1.0, 2.0], "diverge_at": lambda a: 3 if a == 1.0 else None}], steps=6
    )
    assert F.sweep_info(results).lines[0].largest_stable == 0.1


def test_sweep_heatmap_cells_are_log10_loss_and_blown_up_cells_sit_at_the_top(make_results):
    results = make_results(
        [{"rule": "gd", "learning_rate": [0.1, 2.0], "diverge_at": lambda a: 3 if a > 1 else None}], steps=8
    )
    info = F.sweep_heatmap_info(results)
    (panel,) = info.panels
    assert panel.alphas == [0.1, 2.0] and panel.steps == list(range(9))
    m = results.metrics.set_index(["run_id", "step"])["loss"]
    for j, step in enumerate(panel.steps):
        assert panel.z[0][j] == pytest.approx(math.log10(m[(0, step)]))
    for j, step in enumerate(panel.steps):
        if step < 3:
            assert panel.z[1][j] == pytest.approx(math.log10(m[(1, step)]))
        elif step > 3:
            assert panel.z[1][j] == info.zmax


def test_heatmap_marks_unstable_and_diverged_rows_at_their_steps(make_results):
    results = _verdict_results(make_results)
    info = F.sweep_heatmap_info(results)
    (panel,) = info.panels
    assert panel.statuses == [WORST[a] for a in panel.alphas]
    marks = {(m.alpha, m.status): m for m in panel.marks}
    assert set(marks) == {(3.0, "unstable"), (10.0, "diverged")}
    assert marks[(3.0, "unstable")].step == 5 and marks[(3.0, "unstable")].seeds == [1]
    assert marks[(3.0, "unstable")].text == "unstable from step 5"
    assert marks[(10.0, "diverged")].step == 5 and marks[(10.0, "diverged")].seeds == [0, 1, 2]
    fig = F.draw_sweep_heatmap(info)
    (unstable,) = [t for t in fig.data if t.meta == "unstable"]
    assert list(unstable.x) == [5] and list(unstable.y) == [F.alpha_label(3.0)]
    assert unstable.marker.symbol == F.STATUS_STYLE["unstable"].symbol
    assert unstable.marker.color == F.STATUS_STYLE["unstable"].color
    (diverged,) = [t for t in fig.data if t.meta == "diverged"]
    assert list(diverged.x) == [5] and diverged.marker.color == F.STATUS_STYLE["diverged"].color
    # the unstable row is not drawn at the ceiling: its seeds went on, the median is a loss
    row = panel.z[panel.alphas.index(3.0)]
    assert all(v is not None and v < info.zmax for v in row)


def test_unstable_run_is_marked_at_unstable_at_and_drawn_to_the_end(make_results):
    results = make_results(
        [
            {"rule": "gd", "learning_rate": 0.1},
            {"rule": "gd", "label": "wobbly", "learning_rate": 0.3, "unstable_at": 7},
        ],
        steps=15,
    )
    info = F.loss_curves_info(results, test=False)
    wobbly = next(c for c in info.curves if c.name == "wobbly")
    assert wobbly.x[-1] == 15  # an unstable run is not stopped
    assert info.diverged == []
    (mark,) = info.unstable
    run_id = int(results.runs.loc[results.runs.label == "wobbly", "run_id"].iloc[0])
    assert (mark.run_id, mark.step, mark.status) == (run_id, 7, "unstable")
    assert mark.text == "unstable from step 7"
    loss = results.metrics[(results.metrics.run_id == run_id)].set_index("step")["loss"]
    assert mark.y == pytest.approx(float(loss[7]))
    fig = F.draw_curves(info)
    (trace,) = [t for t in fig.data if t.meta == "unstable"]
    assert list(trace.x) == [7] and list(trace.text) == ["unstable from step 7"]
    assert trace.marker.symbol == F.STATUS_STYLE["unstable"].symbol
    assert trace.marker.color == F.STATUS_STYLE["unstable"].color
    # the other charts that mark flagged runs mark it too
    assert [m.step for m in F.grad_norm_info(results).unstable] == [7]
    layers = F.layer_grad_norms_info(results)
    assert [(m.status, m.step) for m in layers.marks] == [("unstable", 7)]
    assert [t.meta for t in F.draw_layer_grad_norms(layers).data if t.meta == "unstable"] == ["unstable"]


def test_diverged_mark_uses_the_diverged_style(make_results):
    results = make_results([{"rule": "gd", "learning_rate": 5.0, "diverge_at": 4}], steps=10)
    fig = F.draw_curves(F.loss_curves_info(results, test=False))
    (trace,) = [t for t in fig.data if t.meta == "diverged"]
    assert trace.marker.symbol == F.STATUS_STYLE["diverged"].symbol
    assert trace.marker.color == F.STATUS_STYLE["diverged"].color


def test_landscape_and_cost_curve_mark_an_unstable_path(make_results):
    problem = get_registry().problem("quadratic")
    instance = problem.build({h.name: h.default for h in problem.settings})
    results = make_results(
        [
            {"rule": "gd", "learning_rate": 0.2},
            {"rule": "gd", "label": "wobbly", "learning_rate": 0.5, "unstable_at": 3},
            {"rule": "gd", "label": "big", "learning_rate": 0.4, "diverge_at": 6},
        ],
        steps=10,
        path_dims=2,
    )
    path = results.weights["path"]
    info = F.landscape_info(results, instance, grid=5)
    marks = {m.status: m for m in info.marks}
    assert set(marks) == {"unstable", "diverged"}
    assert (marks["unstable"].run_id, marks["unstable"].step) == (1, 3)
    assert (marks["unstable"].x, marks["unstable"].y) == pytest.approx(tuple(path[1, 3]))
    assert marks["unstable"].text == "unstable from step 3"
    assert (marks["diverged"].run_id, marks["diverged"].step) == (2, 6)
    assert (marks["diverged"].x, marks["diverged"].y) == pytest.approx(tuple(path[2, 6]))
    assert [p.status for p in info.paths] == ["converged", "unstable", "diverged"]
    fig = F.draw_landscape(info)
    (trace,) = [t for t in fig.data if t.meta == "unstable"]
    assert list(trace.text) == ["unstable from step 3"]
    assert trace.marker.symbol == F.STATUS_STYLE["unstable"].symbol
    # before the path reaches the step there is nothing to mark yet
    early = F.landscape_info(results, instance, grid=5, upto_step=2)
    assert early.marks == []
    curve = F.cost_curve_info(results, instance, axis=0, grid=5)
    (unstable,) = [m for m in curve.marks if m.status == "unstable"]
    assert unstable.step == 3 and unstable.x == pytest.approx(path[1, 3, 0])
    assert [t.meta for t in F.draw_cost_curve(curve).data if t.meta in ("unstable", "diverged")] == [
        "unstable",
        "diverged",
    ]


def test_status_counts_table_counts_the_runs(make_results):
    results = _verdict_results(make_results)
    counts = F.status_counts_table(results)
    expected = {}
    for statuses in VERDICTS.values():
        for status in statuses:
            expected[status] = expected.get(status, 0) + 1
    assert dict(zip(counts["status"], counts["runs"])) == expected
    assert list(counts["status"]) == ["converged", "progressing", "unstable", "diverged"]  # vocabulary order
    table = F.summary_table_info(results)
    fig = F.draw_summary_table(table)
    fill = fig.data[0].cells.fill.color[table.columns.index("status")]
    statuses = [row[table.columns.index("status")] for row in table.rows]
    assert list(fill) == [F.status_tint(s) for s in statuses]
    assert "why it blew up" in fig.data[0].header.values


# --- table --------------------------------------------------------------------------------------


def test_summary_table_is_the_run_table(make_results):
    results = make_results(
        [
            {"rule": "gd", "learning_rate": 0.1},
            {"rule": "momentum", "learning_rate": 0.1, "momentum": 0.9, "diverge_at": 2},
        ],
        steps=5,
    )
    table = F.summary_table(results)
    for col in (
        "label",
        "learning_rate",
        "status",
        "final_loss",
        "best_loss",
        "steps_to_target",
        "diverged_at",
        "unstable_at",
        "divergence_reason",
    ):
        assert col in table.columns
    pd.testing.assert_series_equal(table["diverged_at"], results.runs["diverged_at"], check_names=False)
    assert "momentum" in table.columns
    info = F.summary_table_info(results)
    assert info.rows[1][info.columns.index("diverged_at")] == 2.0
    assert info.rows[0][info.columns.index("diverged_at")] is None


# --- landscapes, cost curve and decision boundary on real runs ----------------------------------


def test_landscape_contours_are_the_quadratic_and_paths_are_the_records():
    results = _run(
        {"steps": 15, "problem": {"name": "quadratic"}, "rules": [{"rule": "gd", "learning_rate": [0.5, 2.5]}]}
    )
    instance = get_registry().problem("quadratic").build(results.experiment.problem_settings)
    info = F.landscape_info(results, instance, grid=11, upto_step=7, log_z=False)
    a = instance.hessian(np.zeros((1, 2)))[0]  # f = ½ pᵀAp: the Hessian is A
    for i in (0, 5, 10):
        for j in (0, 3, 10):
            p = np.array([info.x[j], info.y[i]])
            assert info.z[i][j] == pytest.approx(0.5 * p @ a @ p, rel=1e-10)
    path = results.weights["path"]
    for trace in info.paths:
        assert trace.x == pytest.approx(list(path[trace.run_id, :8, 0]))
        assert trace.y == pytest.approx(list(path[trace.run_id, :8, 1]))
    fig = F.draw_landscape(info)
    assert len([t for t in fig.data if t.meta == "path"]) == 2
    # one unit of θ₂ is as long on screen as one unit of θ₁ (the browser test measures the pixels)
    assert fig.layout.yaxis.scaleanchor == "x" and fig.layout.yaxis.scaleratio == 1


def test_cost_curve_of_linear_regression_is_the_closed_form():
    results = _run(
        {"steps": 10, "problem": {"name": "linear_regression"}, "rules": [{"rule": "gd", "learning_rate": 0.3}]}
    )
    instance = get_registry().problem("linear_regression").build(results.experiment.problem_settings)
    info = F.cost_curve_info(results, instance, axis=0, grid=9)
    x = instance.dataset.x_train[:, 0]
    y = instance.dataset.y_train[:, 0]
    (b,) = info.fixed
    for w, cost in zip(info.x, info.y):
        assert cost == pytest.approx(0.5 * np.mean((w * x + b - y) ** 2), rel=1e-10)
    name, _, theta, costs = info.steps[0]
    path = results.weights["path"][0]
    assert theta == pytest.approx(list(path[:, 0]))
    assert costs[0] == pytest.approx(0.5 * np.mean((path[0, 0] * x + b - y) ** 2))
    F.draw_cost_curve(info)


def test_decision_boundary_is_the_network_by_hand():
    results = _run(
        {
            "steps": 5,
            "problem": {"name": "moons", "samples": 40, "hidden": [5]},
            "rules": [{"rule": "gd", "learning_rate": 0.5}, {"rule": "adam", "learning_rate": 0.05}],
        }
    )
    instance = get_registry().problem("moons").build(results.experiment.problem_settings)
    params = F.params_from_weights(results, instance, "final")
    info = F.decision_boundary_info(instance, [("gd", params[0]), ("adam", params[1])], grid=7, step=5)
    w = results.weights
    for k, panel in enumerate(info.panels):
        for i in (0, 3, 6):
            for j in (0, 4):
                point = np.array([info.x[j], info.y[i]])
                hidden = np.tanh(point @ w["final.W1"][k] + w["final.b1"][k])
                logit = float((hidden @ w["final.W2"][k] + w["final.b2"][k])[0])
                assert panel.z[i][j] == pytest.approx(1.0 / (1.0 + math.exp(-logit)), rel=1e-9)
    assert info.score == "P(class 1)"
    assert len(info.points_x) == len(instance.dataset.x_train)
    assert sorted(set(info.points_class)) == [0, 1]
    F.draw_decision_boundary(info)


def test_loss_curves_of_a_real_run_equal_its_records():
    results = _run(
        {
            "steps": 12,
            "seeds": 2,
            "problem": {"name": "xor", "samples": 30, "hidden": [3]},
            "rules": [{"rule": "gd", "learning_rate": 0.3}, {"rule": "momentum", "learning_rate": 0.1}],
        }
    )
    info = F.loss_curves_info(results, test=False)
    assert [c.name for c in info.curves] == list(results.runs.drop_duplicates("entry")["label"])
    for curve, entry in zip(info.curves, (0, 1)):
        ids = results.runs.loc[results.runs.entry == entry, "run_id"].tolist()
        m = results.metrics[results.metrics.run_id.isin(ids)].pivot(index="step", columns="run_id", values="loss")
        np.testing.assert_allclose(curve.y, np.median(m.to_numpy(), axis=1), rtol=1e-12)


def test_landscape_animation_frames_walk_the_recorded_paths():
    results = _run(
        {
            "steps": 12,
            "problem": {"name": "rosenbrock"},
            "rules": [{"rule": "gd", "learning_rate": 1e-3}, {"rule": "adam", "learning_rate": 0.05}],
        }
    )
    instance = get_registry().problem("rosenbrock").build(results.experiment.problem_settings)
    info = F.landscape_info(results, instance, grid=9)
    fig = F.draw_landscape(info, animate=True)
    assert [f.name for f in fig.frames] == [str(k) for k in range(13)]
    path = results.weights["path"]
    for frame in (fig.frames[0], fig.frames[5], fig.frames[12]):
        k = int(frame.name)
        lines, points = frame.data[0::2], frame.data[1::2]
        for run_id, (line, point) in enumerate(zip(lines, points)):
            assert list(line.x) == pytest.approx(list(path[run_id, : k + 1, 0]))
            assert list(point.y) == pytest.approx([path[run_id, k, 1]])
    assert _is_plain(fig.to_plotly_json()["frames"])


def test_long_curves_are_thinned_but_keep_the_last_step_and_exact_values(make_results):
    results = make_results([{"rule": "gd", "learning_rate": 0.001}], steps=50)
    info = F.metric_curves_info(results, "loss", max_points=10)
    (curve,) = info.curves
    assert len(curve.x) <= 10 and curve.x[0] == 0 and curve.x[-1] == 50 and curve.x == sorted(set(curve.x))
    loss = results.metrics.set_index("step")["loss"]
    assert curve.y == [loss[s] for s in curve.x]


@pytest.mark.parametrize("spike_step, factor", [(23, 1e6), (37, 1e-6), (1, 50.0), (49, 1e3)])
def test_thinning_never_drops_a_spike_or_a_dip(make_results, spike_step, factor):
    # a one-step excursion (what a divergence or a sudden drop looks like) between any two
    # evenly spaced points must still be drawn, at its exact value
    results = make_results([{"rule": "gd", "learning_rate": 0.001}], steps=50)
    rows = results.metrics["step"] == spike_step
    results.metrics.loc[rows, "loss"] = results.metrics.loc[rows, "loss"] * factor
    (curve,) = F.metric_curves_info(results, "loss", max_points=10).curves
    assert spike_step in curve.x
    loss = results.metrics.set_index("step")["loss"]
    assert curve.y[curve.x.index(spike_step)] == loss[spike_step]
    assert max(curve.y) == loss.max() and min(curve.y) == loss.min()


def test_multiclass_boundary_is_the_argmax_of_the_network_by_hand():
    results = _run(
        {
            "steps": 5,
            "problem": {"name": "blobs", "samples": 60, "hidden": [4]},
            "rules": [{"rule": "adam", "learning_rate": 0.05}],
        }
    )
    instance = get_registry().problem("blobs").build(results.experiment.problem_settings)
    params = F.params_from_weights(results, instance, "final")
    info = F.decision_boundary_info(instance, [("adam", params[0])], grid=6)
    w = results.weights
    assert info.score == "predicted class" and info.zmax == 2.0
    for i in range(6):
        for j in range(6):
            point = np.array([info.x[j], info.y[i]])
            hidden = np.tanh(point @ w["final.W1"][0] + w["final.b1"][0])
            logits = hidden @ w["final.W2"][0] + w["final.b2"][0]
            assert info.panels[0].z[i][j] == float(np.argmax(logits))
    fig = F.draw_decision_boundary(info)
    heat = next(t for t in fig.data if t.meta == "prediction")
    assert (heat.zmin, heat.zmax) == (-0.5, 2.5)  # one flat colour band per class


def test_one_colour_per_rule_entry_in_every_chart():
    # an entry keeps its hue in the loss chart, the sweep and the landscape; its α values are shades of it
    results = _run(
        {
            "steps": 10,
            "problem": {"name": "quadratic"},
            "rules": [
                {"rule": "gd", "learning_rate": [0.3, 1.0, 1.9]},
                {"rule": "momentum", "learning_rate": 0.2, "momentum": 0.5},
            ],
        }
    )
    instance = get_registry().problem("quadratic").build(results.experiment.problem_settings)
    loss = {c.name: c.color for c in F.loss_curves_info(results, test=False).curves}
    sweep = {line.name: line.color for line in F.sweep_info(results).lines}
    paths = {p.name: p.color for p in F.landscape_info(results, instance).paths}
    momentum = [n for n in loss if n.startswith("momentum")][0]
    assert loss[momentum] == F.entry_color(1) == sweep["momentum"] == paths[momentum]
    gd = [loss[n] for n in loss if n.startswith("gd")]
    assert gd == [F.entry_color(0, rank, 3) for rank in range(3)] and len(set(gd)) == 3
    assert sweep["gd"] == F.entry_color(0)  # one sweep line: the entry's own hue
    assert [p.color for p in F.landscape_info(results, instance).paths if p.name.startswith("gd")] == gd


def test_a_groups_matrix_sliced_from_the_wide_table_equals_a_pivot_of_its_own_rows(make_results):
    """_metric_matrix slices the record's (runs, steps + 1) arrays (built once per metric); for every group
    it must give what pandas gives pivoting that group's rows alone: the same steps (a group whose runs
    all stopped early has fewer), the same values, NaN where a row is missing or holds NaN."""
    from descentlab.dashboard.fig_groups import _metric_matrix

    results = make_results(
        [
            {"rule": "gd", "learning_rate": [0.1, 2.0], "diverge_at": lambda a: 4 if a > 1 else None},
            {"rule": "adam", "learning_rate": [0.05]},
        ],
        steps=12,
        seeds=(0, 1, 2),
    )
    m = results.metrics
    groups = F.run_groups(results)
    assert any(len(m[m.run_id.isin(g.run_ids)].step.unique()) < 13 for g in groups)  # a shorter group
    for metric in ("loss", "test_loss"):  # test_loss: NaN on most rows, rows present
        for g in groups:
            own = m[m.run_id.isin(g.run_ids)].pivot(index="step", columns="run_id", values=metric)
            own = own.reindex(columns=g.run_ids).sort_index()
            steps, values = _metric_matrix(results, metric, g.run_ids, {}, pad_diverged=False)
            assert steps.tolist() == own.index.tolist()
            np.testing.assert_array_equal(values, own.to_numpy(dtype=float))
    twice = dataclasses.replace(results, metrics=pd.concat([m, m.iloc[:1]], ignore_index=True))
    with pytest.raises(ValueError):  # as DataFrame.pivot refuses duplicate entries
        _metric_matrix(twice, "loss", groups[0].run_ids, {}, pad_diverged=False)


def test_thinning_keeps_each_buckets_extremes_and_one_point_of_a_gap():
    """_thin against its definition, bucket by bucket: the first and last step, and in each of the
    max_points // 2 - 1 buckets between them the (first) step of the highest and of the lowest value
    drawn (median or band), or the bucket's first step when nothing in it is drawable."""
    from descentlab.dashboard.fig_curves import _thin

    rng = np.random.default_rng(7)
    n, max_points = 700, 40
    y = np.round(rng.lognormal(size=n), 1)  # rounded: ties, where the first step must win
    y[100:180] = np.nan  # a gap wider than a bucket
    y[rng.random(n) < 0.05] = np.nan
    y = [None if math.isnan(v) else float(v) for v in y]
    lower = [None if v is None else v * 0.8 for v in y]
    upper = [None if v is None else v * 1.3 for v in y]
    expected = {0, n - 1}
    edges = np.linspace(1, n - 1, max_points // 2).round().astype(int)
    for lo, hi in zip(edges[:-1], edges[1:]):
        drawn = [(t, v) for t in range(lo, hi) for v in (y[t], lower[t], upper[t]) if v is not None]
        if not drawn:
            expected.add(int(lo))
            continue
        expected.add(max(drawn, key=lambda tv: (tv[1], -tv[0]))[0])
        expected.add(min(drawn, key=lambda tv: (tv[1], tv[0]))[0])
    x, ty, tl, tu = _thin(list(range(n)), y, lower, upper, max_points=max_points)
    assert x == sorted(expected) and len(x) <= max_points
    assert (ty, tl, tu) == ([y[t] for t in x], [lower[t] for t in x], [upper[t] for t in x])
    assert None in ty  # the gap is drawn as a gap


def test_metric_arrays_held_by_a_record_stay_within_their_byte_budget(make_results, monkeypatch):
    """A record keeps the per-step arrays it built while they fit in METRIC_CACHE_BYTES; past it an
    array is built for the call only, and is still right (a pivot of the long table)."""
    import descentlab.records as records

    results = make_results([{"rule": "gd", "learning_rate": [0.1]}], steps=30, seeds=(0, 1))
    one = 8 * len(results.runs) * (results.experiment.steps + 1)
    monkeypatch.setattr(records, "METRIC_CACHE_BYTES", 2 * one)
    assert results.metric("loss") is results.metric("loss")
    assert results.metric("grad_norm") is results.metric("grad_norm")
    third = results.metric("step_size")
    assert third is not results.metric("step_size")  # over budget: not held
    expected = results.metrics.pivot(index="run_id", columns="step", values="step_size")
    np.testing.assert_array_equal(third, expected.to_numpy())
