"""Steps to a target accuracy: hand-computed cases, the runs' own accuracy curves, and bad values."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from descentlab.errors import SpecError
from descentlab.experiment import Experiment
from descentlab.protocol import format_report, run_protocol, steps_to_accuracy
from descentlab.runner import run_experiment


def test_steps_to_accuracy_on_a_hand_made_record():
    runs = pd.DataFrame({"run_id": [0, 1, 2, 3], "status": ["converged", "converged", "diverged", "converged"]})
    metrics = pd.DataFrame(
        {
            "run_id": [0, 0, 0, 1, 1, 1, 2, 2, 3, 3],
            "step": [0, 5, 10, 0, 5, 10, 0, 5, 0, 10],
            # run 0 reaches 0.9 at step 5 (and drops again: the first step counts); run 1 never;
            # run 2 reached it but diverged (as for a target loss, not counted); run 3 exactly at 0.9
            "test_accuracy": [0.5, 0.92, 0.88, 0.5, 0.7, 0.89, 0.95, 0.95, 0.1, 0.9],
        }
    )
    out = steps_to_accuracy(SimpleNamespace(runs=runs, metrics=metrics), 0.9)
    assert out.tolist() == [5.0, math.inf, math.inf, 10.0]
    no_accuracy = SimpleNamespace(runs=runs, metrics=metrics.drop(columns="test_accuracy"))
    assert steps_to_accuracy(no_accuracy, 0.9).tolist() == [math.inf] * 4


def spec(**protocol) -> dict:
    return {
        "name": "acc",
        "steps": 40,
        "problems": [{"name": "moons", "samples": 64, "hidden": [4], "target_accuracy": 0.8}, {"name": "quadratic"}],
        "rules": [{"rule": "gd", "learning_rate": 0.5}, {"rule": "adam", "learning_rate": 0.05}],
        "protocol": {"budget": 2, "tune_seeds": 2, "test_seeds": 6, "lr_factors": [1, 1], **protocol},
    }


def test_reported_steps_to_accuracy_are_each_test_runs_first_step_at_the_target():
    saved = []

    def run(job, **kw):
        results = run_experiment(job, workers=1, **kw)
        saved.append((job, results))
        return results

    report = run_protocol(Experiment.from_dict(spec()), run=run, timing=False).report
    moons, quadratic = report["problems"]
    assert moons["target_accuracy"] == 0.8 and "target_accuracy" not in quadratic  # a landscape has no accuracy
    (job, results), *_ = [(j, r) for j, r in saved if j.name == "acc-test"]
    assert job.eval_every == 1  # every step evaluated: the first step at the target is not rounded up
    # the same numbers straight from the runs' accuracy curves, (runs, steps + 1), by a plain loop
    curves = results.metric("test_accuracy")
    runs = results.runs.reset_index(drop=True)
    for row in moons["rules"]:
        for which, key in (("default", "one_shot"), ("tuned", "tuned")):
            expected = []
            for seed in sorted(runs.loc[runs["label"] == f"{row['label']} [{which}]", "seed"]):
                i = runs.index[(runs["label"] == f"{row['label']} [{which}]") & (runs["seed"] == seed)][0]
                hit = np.flatnonzero(curves[i] >= 0.8)
                ok = runs.loc[i, "status"] not in ("diverged", "unstable", "failed")
                expected.append(float(hit[0]) if hit.size and ok else math.inf)
            assert row[key]["accuracy_steps"] == expected
            assert row[key]["accuracy_reached"] == sum(math.isfinite(e) for e in expected)
    assert any(math.isfinite(s) for r in moons["rules"] for s in r["tuned"]["accuracy_steps"])  # the case is not empty
    text = format_report(report)
    assert "test accuracy ≥ 0.8" in text and "steps to accuracy" in text.split("2. quadratic")[0]
    assert "steps to accuracy" not in text.split("2. quadratic")[1]
    # the protocol-wide target applies where a problem has none of its own, and round-trips through the spec
    experiment = Experiment.from_dict(spec(target_accuracy=0.7))
    again = Experiment.from_dict(experiment.to_dict())
    assert again.protocol.target_accuracy == 0.7 and again.suite[0]["target_accuracy"] == 0.8


@pytest.mark.parametrize(
    "where, value",
    [("protocol", 1.5), ("protocol", "high"), ("protocol", True), ("problem", 0.0), ("problem", math.nan)],
)
def test_a_bad_target_accuracy_is_one_line_naming_field_value_and_accepted(where, value):
    d = spec()
    if where == "protocol":
        d["protocol"]["target_accuracy"] = value
        field = "protocol.target_accuracy"
    else:
        d["problems"][0]["target_accuracy"] = value
        field = "problems[0].target_accuracy"
    with pytest.raises(SpecError) as caught:
        Experiment.from_dict(d)
    message = str(caught.value)
    assert message.startswith(field) and "\n" not in message and "a number in (0, 1]" in message


def test_the_dashboards_leaderboard_shows_steps_to_accuracy_where_there_is_one(tmp_path):
    pytest.importorskip("plotly")
    from descentlab.dashboard.protocol_report import load_comparison
    from descentlab.protocol import save_protocol

    report = run_protocol(Experiment.from_dict(spec()), run=lambda e, **kw: run_experiment(e, workers=1, **kw)).report
    save_protocol(report, tmp_path)
    table = load_comparison(tmp_path).leaderboard
    moons = table[table["problem"] == "1. moons"]
    for row, cell in zip(report["problems"][0]["rules"], moons["steps to accuracy"]):
        tuned = row["tuned"]
        median = tuned["accuracy_steps_median"]
        shown = "∞" if median == math.inf else f"{median:.3g}"
        low, high = ("∞" if float(v) == math.inf else f"{float(v):.3g}" for v in tuned["accuracy_steps_ci"])
        assert cell == f"≥ 0.8: {shown} [{low}, {high}] ({tuned['accuracy_reached']}/6)"
    assert table[table["problem"] == "2. quadratic"]["steps to accuracy"].isna().all()
    assert "time to accuracy (s, machine-dependent)" in table.columns
