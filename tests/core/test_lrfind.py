"""Learning-rate range test: smoothing and stopping by hand, suggestion below the known edge, CLI."""

import json

import numpy as np
import pytest

from descentlab.errors import SpecError
from descentlab.lrfind import lr_find, main
from descentlab.registry import get_registry
from descentlab.stability import critical_learning_rate


def bowl(lambda_max=10.0, spread=0.5):
    problem = get_registry().problem("quadratic")
    settings = {h.name: h.default for h in problem.settings}
    settings.update(lambda_max=lambda_max, condition=10.0, start_spread=spread)
    return problem.build(settings)


@pytest.mark.parametrize("lambda_max", [1.0, 10.0, 100.0])
@pytest.mark.parametrize("rule,hyper", [("gd", {}), ("momentum", {"momentum": 0.9}), ("nesterov", {"momentum": 0.9})])
def test_suggestion_lies_below_the_critical_alpha_on_the_quadratic_bowl(lambda_max, rule, hyper):
    result = lr_find(bowl(lambda_max), rule, hyper, seeds=[0, 1, 2])
    critical = critical_learning_rate(rule, hyper, lambda_max)
    assert 0 < result.suggested_lr < critical
    assert result.minimum_lr < critical
    assert "steepest" in result.reason


def test_smoothing_stopping_and_band_follow_the_definitions():
    result = lr_find(
        bowl(10.0), "gd", seeds=[0, 1, 2, 3], start_lr=1e-4, end_lr=10.0, num_steps=60, beta=0.9, stop_factor=3.0
    )
    lrs = result.learning_rates
    np.testing.assert_allclose(lrs[0], 1e-4)
    np.testing.assert_allclose(lrs[-1], 10.0)
    np.testing.assert_allclose(lrs[1:] / lrs[:-1], (1e5) ** (1 / 59))
    for s in range(4):
        stop = result.stopped_at[s]
        assert stop > 0, "the bowl with λ_max = 10 must blow up before α = 10"
        raw = result.losses[s, : stop + 1]
        avg, smooth = 0.0, []
        for t, value in enumerate(raw):
            avg = 0.9 * avg + 0.1 * value
            smooth.append(avg / (1 - 0.9 ** (t + 1)))
        np.testing.assert_allclose(result.smoothed[s, : stop + 1], smooth, rtol=1e-12)
        best = np.minimum.accumulate(smooth)
        assert smooth[stop] > 3.0 * best[stop]
        assert all(smooth[t] <= 3.0 * best[t] for t in range(stop))
        assert np.isnan(result.smoothed[s, stop + 1 :]).all()
    finite = np.isfinite(result.median)
    curves = result.smoothed[:, finite]
    np.testing.assert_allclose(result.median[finite], np.nanmedian(curves, axis=0))
    assert (result.low[finite] <= result.median[finite]).all()
    assert (result.median[finite] <= result.high[finite]).all()
    # suggestion: steepest fall of the median per log α, before its minimum
    i_min = int(np.nanargmin(result.median))
    slope = np.gradient(result.median[: i_min + 1], np.log(lrs[: i_min + 1]))
    assert result.steepest_lr == lrs[int(np.argmin(slope))]
    assert result.minimum_lr == pytest.approx(lrs[i_min] / 10)


def test_mini_batches_and_seeds_are_independent_runs():
    problem = get_registry().problem("linear_regression")
    instance = problem.build({h.name: h.default for h in problem.settings})
    both = lr_find(instance, "gd", seeds=[0, 1], batch_size=8, num_steps=40)
    one = lr_find(instance, "gd", seeds=[1], batch_size=8, num_steps=40)
    np.testing.assert_allclose(both.losses[1], one.losses[0])


def test_bad_settings_raise_spec_errors():
    with pytest.raises(SpecError):
        lr_find(bowl(), "gd", start_lr=1.0, end_lr=0.1)
    with pytest.raises(SpecError):
        lr_find(bowl(), "gd", num_steps=1)


EXPERIMENT = """
steps = 10
seeds = 3
[problem]
name = "quadratic"
lambda_max = 10.0
start_spread = 0.5
[[rules]]
rule = "gd"
learning_rate = 0.1
[[rules]]
rule = "momentum"
learning_rate = 0.01
momentum = [0.9, 0.5]
"""


def test_cli_prints_suggestions_and_writes_json(tmp_path, capsys):
    spec = tmp_path / "bowl.toml"
    spec.write_text(EXPERIMENT)
    out = tmp_path / "sub" / "lr.json"
    assert main([str(spec), "--rule", "momentum", "--steps", "80", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "suggested α" in text and "why:" in text and "critical α from theory 0.38" in text
    # the range test's lowest loss lies past the critical α by design, and the output says why in one line
    [note] = [line for line in text.splitlines() if line.startswith("Why the two differ")]
    assert "critical α" in note and "suggestion should sit below it" in note
    payload = json.loads(out.read_text())
    assert payload["note"] == note
    [entry] = payload["entries"]
    assert entry["rule"] == "momentum" and entry["hyper"]["momentum"] == 0.9
    assert len(entry["learning_rates"]) == 80 and entry["suggested_lr"] < 3.8 / 10
    assert main([str(spec), "--rule", "adam"]) == 2
    assert "--rule" in capsys.readouterr().err
    assert main([str(tmp_path / "missing.toml")]) == 2


def test_the_range_test_is_the_runner_with_an_exponential_ramp():
    """One loop: lr_find's raw losses are those of run_experiment with the exponential_ramp schedule,
    up to each seed's stop, and its α_t is Smith's start·(end/start)^(t/(T−1))."""
    from descentlab.experiment import Experiment
    from descentlab.runner import run_experiment

    result = lr_find(bowl(10.0), "momentum", {"momentum": 0.5}, seeds=[0, 1], start_lr=1e-3, end_lr=3.0, num_steps=50)
    spec = {
        "steps": 49,
        "seeds": [0, 1],
        "eval_every": 0,
        "divergence_factor": 1e300,
        "problem": {"name": "quadratic", "lambda_max": 10.0, "condition": 10.0, "start_spread": 0.5},
        "rules": [
            {
                "rule": "momentum",
                "momentum": 0.5,
                "learning_rate": 1e-3,
                "schedule": {"name": "exponential_ramp", "end_lr": 3.0},
            }
        ],
    }
    runs = run_experiment(Experiment.from_dict(spec), workers=1)
    for s in range(2):
        stop = result.stopped_at[s] if result.stopped_at[s] >= 0 else 49
        m = runs.run_metrics(s)
        np.testing.assert_array_equal(result.losses[s, : stop + 1], m["loss"][: stop + 1])
        np.testing.assert_allclose(m["learning_rate"][:49], 1e-3 * 3000.0 ** (np.arange(49) / 49), rtol=1e-13)
    np.testing.assert_allclose(result.learning_rates, 1e-3 * 3000.0 ** (np.arange(50) / 49), rtol=1e-13)
