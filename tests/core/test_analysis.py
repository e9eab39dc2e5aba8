"""summarize() and verdict() against numbers computed independently from the metrics table."""

from __future__ import annotations

import math
import statistics
from types import SimpleNamespace

import numpy as np
import pytest

from descentlab import analysis
from test_analysis_data import TARGET, make_results


@pytest.fixture(scope="module")
def results():
    return make_results()


def reference(results):
    """Per entry, per (α, μ): seed -> (final score, best loss, steps to target, status), from metrics rows."""
    factor, target = results.experiment.divergence_factor, results.experiment.target_loss
    table = {}
    for run in results.runs.itertuples():
        rows = results.metrics[results.metrics.run_id == run.run_id].sort_values("step")
        losses = rows["loss"].tolist()
        diverged = any(not math.isfinite(v) or v > factor * losses[0] for v in losses)
        failed = run.status == "failed"
        status = "failed" if failed else ("diverged" if diverged else "converged")
        final = math.inf if failed or diverged else losses[-1]
        best = math.inf if failed else min(losses)
        hits = [s for s, v in zip(rows["step"], losses) if v <= target]
        steps = hits[0] if hits and status == "converged" else math.inf
        mu = -1.0 if math.isnan(run.momentum) else run.momentum
        table.setdefault(run.entry, {}).setdefault((run.learning_rate, mu), []).append((final, best, steps, status))
    return table


def test_status_in_fixture_matches_metrics(results):
    """The fixture's statuses are those of the verdict rules on its own loss curves."""
    from descentlab.verdicts import classify

    for run in results.runs.itertuples():
        losses = results.metrics[results.metrics.run_id == run.run_id].sort_values("step")["loss"].to_numpy()
        given = run.status if run.status in ("failed", "diverged") else "finished"
        status, _ = classify(losses[None, :], [len(losses) - 1], [given])
        assert status == [run.status]
    ref = reference(results)
    statuses = [s for entry in ref.values() for seeds in entry.values() for *_, s in seeds]
    assert statuses.count("failed") == 1 and statuses.count("diverged") > 3
    assert sorted(statuses) == sorted(results.runs["status"])


def test_summary_equals_independent_reference(results):
    check_against_reference(results)
    assert list(analysis.summarize(results)["label"]) == ["vanilla GD", "heavy ball"]


def check_against_reference(results):
    """Every summary number of every entry, recomputed from the metrics rows (also used on real runs)."""
    summary = analysis.summarize(results)
    ref = reference(results)
    for row in summary.itertuples():
        configs = ref[row.entry]
        medians = {key: statistics.median(s[0] for s in seeds) for key, seeds in configs.items()}
        best_key = min(medians, key=lambda k: (medians[k], k[0]))
        seeds = configs[best_key]
        assert row.best_alpha == best_key[0]
        assert row.final_loss_median == medians[best_key]
        finals = sorted(s[0] for s in seeds)
        assert row.final_loss_iqr == pytest.approx(np.percentile(finals, 75) - np.percentile(finals, 25))
        assert row.best_loss_median == statistics.median(s[1] for s in seeds)
        steps = statistics.median(s[2] for s in seeds)
        assert math.isnan(row.steps_to_target_median) if math.isinf(steps) else row.steps_to_target_median == steps
        step_medians = {key: statistics.median(s[2] for s in seeds) for key, seeds in configs.items()}
        fastest = min(step_medians, key=lambda k: (step_medians[k], medians[k], k[0]))
        assert (row.fastest_alpha, row.fastest_steps_median) == (fastest[0], step_medians[fastest])
        line = {a: [s[3] for s in v] for (a, mu), v in configs.items() if mu == best_key[1]}
        flagged = [a for a, st in line.items() if "diverged" in st or "unstable" in st]
        edge = min(flagged, default=math.inf)
        stable = [a for a, st in line.items() if all(s in ("converged", "progressing") for s in st) and a < edge]
        assert row.largest_stable_alpha == max(stable)
        assert row.smallest_unstable_alpha == edge or (math.isnan(row.smallest_unstable_alpha) and not flagged)
        everything = [s[3] for v in configs.values() for s in v]
        assert (row.runs, row.diverged, row.failed, row.unstable) == (
            len(everything),
            everything.count("diverged"),
            everything.count("failed"),
            everything.count("unstable"),
        )
        assert row.seeds_stable_at_best == sum(s[3] in ("converged", "progressing") for s in seeds)


def test_gd_row_matches_closed_form(results):
    """GD on λθ²/2 contracts by |1 - αλ|: α = 1 is best; α = 1.9 diverges for λ = 1.1, 1.2 (120 halvings of 1.09²)."""
    gd = analysis.summarize(results).iloc[0]
    assert gd.best_alpha == 1.0
    assert gd.best_config == ""
    # seed 0 (λ = 1) lands on 0 in one step; seeds 1, 2 shrink the loss by 0.01, 0.04 per step.
    assert gd.steps_to_target_median == 2
    assert gd.final_loss_median == pytest.approx(1.1 * 1.5**2 / 2 * 0.1**120, rel=1e-6)
    assert (gd.largest_stable_alpha, gd.smallest_unstable_alpha) == (1.0, 1.9)
    assert gd.seeds == 3 and gd.alphas_tried == 6


def test_momentum_row_names_best_config(results):
    row = analysis.summarize(results).iloc[1]
    assert row.best_config.startswith("momentum=")
    assert row.failed == 1


def test_quantile_matches_numpy_and_handles_inf():
    values = [3.0, 1.0, 4.0, 1.5, 9.0]
    for q in (0.25, 0.5, 0.75):
        assert analysis.quantile(values, q) == pytest.approx(np.quantile(values, q))
    assert analysis.quantile([1.0, 2.0, math.inf], 0.75) == math.inf
    assert analysis.median([1.0, math.inf, 2.0]) == 2.0
    assert analysis.iqr([1.0, 2.0, math.inf]) == math.inf
    assert math.isnan(analysis.iqr([math.inf] * 3))


def test_all_diverged_entry_has_no_best_alpha(results):
    runs = results.runs[results.runs.entry == 0].copy()
    runs["status"] = "diverged"
    row = analysis.summarize_entry(runs, TARGET)
    assert math.isnan(row["best_alpha"]) and math.isnan(row["final_loss_median"])
    assert row["smallest_unstable_alpha"] == 0.1 and math.isnan(row["largest_stable_alpha"])
    assert "every α" in analysis.divergence_sentence(SimpleNamespace(**row))
    assert analysis.reliability_sentence(SimpleNamespace(**row)) is None


def test_verdict_names_rule_and_alpha(results):
    summary = analysis.summarize(results)
    text = analysis.verdict(summary, results)
    gd, hb = summary.iloc[0], summary.iloc[1]
    first = min(summary.itertuples(), key=lambda r: r.steps_to_target_median)
    assert text[0].startswith(f"{first.label} reached the target loss 0.001 first")
    assert f"α = {analysis.fmt(first.best_alpha)}" in text[0]
    lowest = min(summary.itertuples(), key=lambda r: r.final_loss_median)
    assert any(s.startswith(f"{lowest.label} had the lowest final loss") for s in text)
    assert (
        "vanilla GD blew up (unstable or diverged) for α >= 1.9 (0 unstable and 8 diverged runs in all); "
        "the largest α with every seed converged or progressing was 1."
    ) in text
    edge = analysis.fmt(hb.smallest_unstable_alpha)
    assert any(s.startswith(f"heavy ball blew up (unstable or diverged) for α >= {edge}") for s in text)
    assert text[-1] == "1 of 42 runs failed with an error (see the error column of the runs table)."
    assert gd.runs + hb.runs == 42


def test_lucky_alpha_past_the_edge_is_not_stable(results):
    """A seed diverging at α = 1.9 makes α = 2.5 count as not stable even if all its seeds had converged."""
    runs = results.runs[results.runs.entry == 0].copy()
    runs.loc[runs.learning_rate == 2.5, "status"] = "converged"
    row = analysis.summarize_entry(runs, TARGET)
    assert (row["largest_stable_alpha"], row["smallest_unstable_alpha"]) == (1.0, 1.9)


def test_an_unstable_seed_moves_the_edge_and_the_star(results):
    """Unstable counts like diverged for stability: one unstable seed at α = 1 puts the edge there."""
    runs = results.runs[results.runs.entry == 0].copy()
    runs.loc[(runs.learning_rate == 1.0) & (runs.seed == 0), "status"] = "unstable"
    row = analysis.summarize_entry(runs, TARGET)
    assert (row["largest_stable_alpha"], row["smallest_unstable_alpha"]) == (0.5, 1.0)
    assert row["unstable"] == 1 and row["seeds_stable_at_best"] == 2


def test_stalled_seeds_are_not_stable_but_not_flagged(results):
    """A stalled seed at α = 1 keeps α = 1 from being stable without moving the edge."""
    runs = results.runs[results.runs.entry == 0].copy()
    runs.loc[(runs.learning_rate == 1.0) & (runs.seed == 0), "status"] = "stalled"
    row = analysis.summarize_entry(runs, TARGET)
    assert (row["largest_stable_alpha"], row["smallest_unstable_alpha"]) == (0.5, 1.9)


def test_best_run_ids_are_the_seeds_of_best_alpha(results):
    ids = analysis.best_run_ids(results)
    runs = results.runs.set_index("run_id")
    assert sorted(runs.loc[ids[0], "seed"]) == [0, 1, 2]
    assert set(runs.loc[ids[0], "learning_rate"]) == {1.0}


def test_without_target_there_is_no_target_sentence(results):
    experiment = SimpleNamespace(**{**vars(results.experiment), "target_loss": None})
    record = SimpleNamespace(**{**vars(results), "experiment": experiment})
    summary = analysis.summarize(record)
    assert summary["steps_to_target_median"].isna().all()
    text = analysis.verdict(summary, record)
    assert not any("target" in s for s in text)
    assert text[0].startswith("vanilla GD had the lowest final loss: median ")


def test_entry_whose_runs_all_failed(results):
    runs = results.runs[results.runs.entry == 1].copy()
    runs["status"] = "failed"
    row = SimpleNamespace(**analysis.summarize_entry(runs, TARGET))
    assert math.isnan(row.best_alpha) and row.failed == row.runs == 24
    assert math.isnan(row.smallest_unstable_alpha) and math.isnan(row.largest_stable_alpha)
    assert analysis.divergence_sentence(row) == "heavy ball did not finish at any α tried (24 of 24 runs failed)."


def test_verdict_names_the_fastest_configuration_when_it_is_not_the_best(results):
    """A rule's quickest configuration is named when it beats the winner at the best α."""
    summary = analysis.summarize(results).copy()
    summary.loc[1, ["fastest_steps_median", "fastest_alpha", "fastest_config"]] = [1.0, 2.0, "momentum=0.5"]
    text = analysis.verdict(summary, results)
    assert text[1] == "Over the whole grid, heavy ball got there fastest: a median of 1 steps at α = 2 (momentum=0.5)."
    summary["steps_to_target_median"] = math.nan
    text = analysis.verdict(summary, results)
    assert text[0] == "No rule reached the target loss 0.001 at its best α (median over seeds)."
    assert text[1].startswith("Over the whole grid, heavy ball got there fastest")


def test_ties_are_named_as_ties(results):
    summary = analysis.summarize(results).copy()
    summary["steps_to_target_median"] = 2.0
    summary["final_loss_median"] = [1.0, 1.005]
    text = analysis.verdict(summary, results)
    assert text[0].startswith(
        "vanilla GD and heavy ball tied in reaching the target loss 0.001 first, "
        "in a median of 2 steps (at α = 1; α = 2 (momentum=0.5) respectively)"
    )
    assert any(
        s.startswith("vanilla GD had the lowest final loss: median 1 at α = 1; heavy ball was within 1% of it")
        for s in text
    )


def test_every_runs_column_is_either_an_outcome_or_a_grid_coordinate():
    """A new outcome column of the runner must be listed, or it would split configurations by seed."""
    from descentlab.experiment import Experiment
    from descentlab.runner import run_experiment

    spec = {
        "steps": 5,
        "seeds": 2,
        "batch_size": 4,
        "problem": {"name": "moons", "samples": 16, "hidden": [3]},
        "rules": [
            {"rule": "momentum", "learning_rate": 0.1, "schedule": {"name": "step", "step_size": 2}},
            {"rule": "adam", "learning_rate": 0.01},
        ],
    }
    runs = run_experiment(Experiment.from_dict(spec), workers=1).runs
    hyper = {
        h.name for rule in ("momentum", "adam") for h in __import__("descentlab").get_registry().rule(rule).hyperparams
    }
    coordinates = set(runs.columns) - set(analysis.NON_CONFIG_COLUMNS)
    assert coordinates == {"learning_rate", "warmup_steps", "schedule.step_size", "schedule.gamma"} | hyper


def _quantile_by_hand(sample, q):
    """Hyndman & Fan type 7 (numpy's default) on the non-NaN values, written out for one sample."""
    ordered = sorted(v for v in sample if not math.isnan(v))
    if not ordered:
        return math.nan
    position = (len(ordered) - 1) * q
    low, high = math.floor(position), math.ceil(position)
    if ordered[low] == ordered[high]:
        return ordered[low]
    if ordered[high] == math.inf:
        return math.inf
    if ordered[low] == -math.inf:
        return -math.inf
    return ordered[low] + (position - low) * (ordered[high] - ordered[low])


def test_vectorized_quantiles_equal_numpy_on_finite_rows_with_nan():
    rng = np.random.default_rng(3)
    values = rng.standard_normal((40, 7))
    values[rng.random(values.shape) < 0.2] = np.nan
    values[5] = np.nan  # an all-NaN row has no quantile
    qs = [0.0, 0.1, 0.25, 0.5, 0.75, 1.0]
    got = analysis.quantiles(values, qs, axis=1)
    keep = ~np.all(np.isnan(values), axis=1)
    np.testing.assert_allclose(got[:, keep], np.nanquantile(values[keep], qs, axis=1), rtol=1e-14, atol=1e-15)
    assert np.isnan(got[:, 5]).all()
    np.testing.assert_allclose(analysis.quantiles(values.T, qs, axis=0)[:, keep], got[:, keep], rtol=0)


def test_vectorized_quantiles_follow_the_written_out_rule_with_infinities():
    rng = np.random.default_rng(4)
    pool = np.array([-np.inf, np.inf, np.nan, 0.0, 1.0, 2.5, -3.0])
    values = rng.choice(pool, size=(300, 5))
    qs = [0.25, 0.5, 0.75]
    got = analysis.quantiles(values, qs)
    for row in range(values.shape[0]):
        for i, q in enumerate(qs):
            expected = _quantile_by_hand(list(values[row]), q)
            assert (math.isnan(expected) and math.isnan(got[i, row])) or got[i, row] == expected, (values[row], q)


@pytest.mark.parametrize(
    "value, text",
    [
        (1e-6, "1e-6"),
        (0.001, "0.001"),
        (3e-05, "3e-5"),
        (0.9, "0.9"),
        (100.0, "100"),
        (2.5e10, "2.5e10"),
        (3, "3"),
        (True, "true"),
        (math.nan, ""),
        ("cosine", "cosine"),
    ],
)
def test_format_number_writes_values_as_people_do(value, text):
    assert analysis.format_number(value) == text


def test_status_counts_text():
    assert analysis.status_counts_text(["converged"] * 3) == "converged"
    assert analysis.status_counts_text(["diverged", "converged", "converged"]) == "2 converged, 1 diverged"


def test_verdict_line_numbers_equal_the_runs_table(results):
    summary = analysis.summarize(results)
    for row in summary.itertuples():
        line = analysis.verdict_line(row)
        runs = results.runs[results.runs["entry"] == row.entry]
        if not math.isfinite(row.best_alpha):
            assert "no α gave a finite median" in line
            continue
        # the line's loss is the median over the seeds of the runs at the line's α (the best config)
        at_best = runs[(runs["learning_rate"] == row.best_alpha)]
        if row.best_config:
            name, value = row.best_config.split("=")
            at_best = at_best[at_best[name].astype(float) == float(value)]
        finals = sorted(at_best["final_loss"].where(~at_best["status"].isin(("diverged", "failed")), math.inf))
        assert f"final loss {analysis.fmt(statistics.median(finals))}" in line
        assert line.startswith(f"{row.label}: best α = {analysis.format_number(row.best_alpha)}")
        stable = int(at_best["status"].isin(("converged", "progressing")).sum())
        assert line.endswith(f"{stable} of {results.runs['seed'].nunique()} seeds converged or progressing there")


def test_configuration_table_has_one_row_per_configuration(results):
    table = analysis.configuration_table(results)
    runs = results.runs
    expected = runs.groupby(["entry", "learning_rate", "momentum"], dropna=False).ngroups
    assert len(table) == expected
    assert list(table.columns[:5]) == ["label", "status", "final_loss", "final_loss_iqr", "seeds"]
    assert (table["seeds"] == 3).all()
    assert "nesterov" not in table.columns or table["nesterov"].astype(str).str.len().gt(0).any()
    gd = table[table["label"] == "vanilla GD"]
    # GD on λ_s θ²/2 with λ_s = 1 + 0.1 s: α = 0.1 converges or progresses on every seed, α = 4 diverges on every seed
    assert gd.loc[gd["α"] == "4", "status"].item() == "diverged"
    assert gd.loc[gd["α"] == "4", "final_loss"].item() == math.inf
    assert set(gd["α"]) == {analysis.format_number(a) for a in (0.1, 0.5, 1.0, 1.9, 2.5, 4.0)}
