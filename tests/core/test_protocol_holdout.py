"""Protocol gaps of #13 on cases known by construction: selection on a validation split (never the test
split), the paired verdict against independent computations, tuned vs one-shot, every problem saved."""

from __future__ import annotations

import inspect
import itertools
import math

import numpy as np
import pytest

from descentlab import stats
from descentlab.experiment import Experiment
from descentlab.faults import build_instance
from descentlab.problem import SupervisedInstance, validation_view
from descentlab.protocol import run_protocol
from descentlab.registry import get_registry
from descentlab.runner import run_experiment

XOR = {"name": "xor", "samples": 40, "hidden": [3]}


def _rows(x: np.ndarray) -> set[bytes]:
    """Each row of a data array by its exact bytes: a row is the same row wherever it is copied to."""
    x = np.ascontiguousarray(x, dtype=np.float64)
    return {row.tobytes() for row in x}


class Spy:
    """Records every data row the instances' training and evaluation methods touch, per phase.

    The methods are patched on SupervisedInstance itself, so any instance the runner builds or the
    protocol derives (the validation view is a copy of one) is seen, whatever created it."""

    def __init__(self, monkeypatch):
        self.phase = None
        self.trained: dict[str, set] = {}
        self.evaluated: dict[str, set] = {}
        spy = self
        original = {
            name: getattr(SupervisedInstance, name)
            for name in ("loss_and_grad", "loss", "hessian_vector_product", "evaluate", "predict")
        }

        def training(name):
            def method(self, params, *args, **kwargs):
                x = self._data(params.dtype)[0]
                batch = inspect.signature(original[name]).bind(self, params, *args, **kwargs).arguments.get("batch")
                if batch is not None:
                    x = x[batch].reshape(-1, x.shape[-1])
                spy.trained.setdefault(spy.phase, set()).update(_rows(x))
                return original[name](self, params, *args, **kwargs)

            return method

        def evaluate(self, params):
            spy.evaluated.setdefault(spy.phase, set()).update(_rows(self._data(params.dtype)[2]))
            return original["evaluate"](self, params)

        def predict(self, params, inputs):
            spy.evaluated.setdefault(spy.phase, set()).update(_rows(inputs))
            return original["predict"](self, params, inputs)

        for name in ("loss_and_grad", "loss", "hessian_vector_product"):
            monkeypatch.setattr(SupervisedInstance, name, training(name))
        monkeypatch.setattr(SupervisedInstance, "evaluate", evaluate)
        monkeypatch.setattr(SupervisedInstance, "predict", predict)

    def __call__(self, experiment, validation=None):
        self.phase = "tune" if experiment.name.endswith("-tune") else "test"
        return run_experiment(experiment, workers=1, validation=validation)


def _supervised_spec(**protocol) -> dict:
    return {
        "name": "v",
        "steps": 6,
        "problem": dict(XOR),
        "rules": [{"rule": "gd"}, {"rule": "adam"}],
        "protocol": {"budget": 2, "tune_seeds": 2, "test_seeds": 2, **protocol},
    }


def _built(spec: dict):
    """The problem as the runner builds it: settings with every default filled in by the experiment."""
    experiment = Experiment.from_dict({**spec, "protocol": {}} if "protocol" not in spec else spec)
    return build_instance(get_registry().problem(experiment.problem), dict(experiment.problem_settings))


def test_tuning_trains_and_selects_on_the_validation_split_and_never_reads_a_test_row(monkeypatch):
    full = _built(_supervised_spec())
    train, test = _rows(full.dataset.x_train), _rows(full.dataset.x_test)
    assert len(train) == len(full.dataset.x_train) and not train & test  # rows identify themselves
    spy = Spy(monkeypatch)
    report = run_protocol(Experiment.from_dict(_supervised_spec()), run=spy).report
    # tuning: training rows and validation rows are disjoint, together exactly the training split
    assert spy.trained["tune"] and spy.evaluated["tune"]
    assert not (spy.trained["tune"] | spy.evaluated["tune"]) & test
    assert not spy.trained["tune"] & spy.evaluated["tune"]
    assert spy.trained["tune"] | spy.evaluated["tune"] == train
    assert len(spy.evaluated["tune"]) == round(0.2 * len(train))
    # test phase: trained on every training row, evaluated on the test split
    assert spy.trained["test"] == train and spy.evaluated["test"] == test
    assert report["problems"][0]["selected_on"].startswith("validation loss")


def test_selection_reads_the_median_final_validation_loss(monkeypatch):
    spy = Spy(monkeypatch)
    experiment = Experiment.from_dict(_supervised_spec())
    seen = {}

    def run(job, validation=None):
        results = spy(job, validation)
        seen[spy.phase] = results
        return results

    report = run_protocol(experiment, run=run).report
    tune = seen["tune"]
    last = tune.metrics[tune.metrics["step"] == experiment.steps].set_index("run_id")["test_loss"]
    runs = tune.runs.assign(val=tune.runs["run_id"].map(last))
    for row in report["problems"][0]["rules"]:
        medians = [float(np.median(runs[runs["label"] == f"{row['label']} [trial {k}]"]["val"])) for k in (1, 2)]
        assert row["trial_medians"] == pytest.approx(medians)
        assert row["chosen"] == 1 + int(np.argmin(medians))
    # and the reported numbers are the final test-split losses of the test phase, seed by seed
    test = seen["test"]
    final = test.metrics[test.metrics["step"] == experiment.steps].set_index("run_id")["test_loss"]
    for row in report["problems"][0]["rules"]:
        runs = test.runs[test.runs["label"] == f"{row['label']} [tuned]"].sort_values("seed")
        assert row["tuned"]["seeds"] == runs["seed"].tolist()
        assert row["tuned"]["scores"] == pytest.approx(runs["run_id"].map(final).tolist())
    assert report["problems"][0]["reported"] == "test-split loss"


def test_the_view_splits_the_training_rows_by_a_seeded_fraction():
    full = _built(_supervised_spec())
    n = len(full.dataset.x_train)
    view = validation_view(full, 0.25, 7)
    again = validation_view(full, 0.25, 7)
    other = validation_view(full, 0.25, 8)
    assert len(view.dataset.x_test) == round(0.25 * n) and view.n_train == n - round(0.25 * n)
    assert np.array_equal(view.dataset.x_test, again.dataset.x_test)  # seeded
    assert not np.array_equal(view.dataset.x_test, other.dataset.x_test)  # by that seed
    assert full.n_train == n and len(full.dataset.x_test) > 0  # the original is untouched
    landscape = _built({**_supervised_spec(), "problem": {"name": "quadratic"}})
    assert validation_view(landscape, 0.2, 0) is None


def test_bad_validation_is_one_line_naming_field_value_and_accepted():
    from descentlab.errors import SpecError

    for bad in (0, 0.9, "0.2", True):
        with pytest.raises(SpecError) as caught:
            Experiment.from_dict(_supervised_spec(validation=bad))
        message = str(caught.value)
        assert "\n" not in message and message.startswith("protocol.validation") and "(0, 0.5]" in message


# ---- the paired verdict ------------------------------------------------------------------------


def _brute_force_p(a, b) -> float:
    """Independent signed-rank sign-flip p-value: pure Python, ranks by counting, every sign pattern."""
    diffs = []
    for x, y in zip(a, b):
        if x == y:  # equal, both +inf included: no sign
            continue
        diffs.append(math.inf if x == math.inf else (-math.inf if y == math.inf else x - y))
    sizes = [abs(d) for d in diffs]
    # mid-rank of s = (number smaller) + (number equal + 1) / 2
    ranks = [sum(t < s for t in sizes) + (sum(t == s for t in sizes) + 1) / 2 for s in sizes]
    observed = abs(sum(r if d > 0 else -r for r, d in zip(ranks, diffs)))
    if not ranks:
        return 1.0
    hits = total = 0
    for signs in itertools.product((1, -1), repeat=len(ranks)):
        total += 1
        hits += abs(sum(s * r for s, r in zip(signs, ranks))) >= observed - 1e-9
    return hits / total


CASES = [
    ([1, 2, 3, 4, 5, 6, 7, 8], [2, 3, 4, 5, 6, 7, 8, 9]),  # a lower on every seed
    ([1.0, 2.5, 3.0, 0.5, 7.0, 2.0], [1.5, 2.0, 3.0, 0.7, 6.0, 2.2]),  # a zero difference, mixed signs
    ([1.0, math.inf, 3.0, math.inf, 0.1, 4, 5], [2.0, 1.0, math.inf, math.inf, 0.2, 3, 6]),  # diverged runs
    ([0.3, 0.1, 0.4, 0.1, 0.5, 0.9, 0.2, 0.6, 0.5], [0.4, 0.2, 0.3, 0.2, 0.7, 1.0, 0.1, 0.8, 0.6]),  # tied |d|
]


@pytest.mark.parametrize("a, b", CASES)
def test_paired_p_value_equals_an_independent_enumeration(a, b):
    assert stats.compare_paired(a, b).p_value == pytest.approx(_brute_force_p(a, b), abs=1e-12)


def test_paired_p_value_equals_scipy_exact_wilcoxon_without_ties():
    scipy_stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(3)
    for n in (6, 9, 12):
        a, b = rng.normal(size=n), rng.normal(0.5, 1.0, size=n)
        expected = scipy_stats.wilcoxon(a, b, method="exact").pvalue
        assert stats.compare_paired(a, b).p_value == pytest.approx(expected, rel=1e-9)


def test_paired_monte_carlo_beyond_the_exact_limit_is_seeded_and_close_to_exact():
    scipy_stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(5)
    n = stats.PAIRED_EXACT_LIMIT + 4
    a, b = rng.normal(size=n), rng.normal(0.4, 1.0, size=n)
    c = stats.compare_paired(a, b)
    assert "random sign patterns" in c.test and c.p_value == stats.compare_paired(a, b).p_value
    # standard error of a Monte Carlo share at 20000 draws is ≤ 0.0035; 5 of them
    assert c.p_value == pytest.approx(scipy_stats.wilcoxon(a, b, method="exact").pvalue, abs=0.018)


def test_paired_verdicts_on_cases_known_by_construction():
    lower = np.arange(8.0)
    c = stats.compare_paired(lower, lower + 1.0)
    assert (c.verdict, c.p_value) == ("better", pytest.approx(2 / 2**8))
    assert stats.compare_paired(lower + 1.0, lower).verdict == "worse"
    same = stats.compare_paired(lower, lower)
    assert same.verdict == "cannot tell apart" and same.p_value == 1.0
    assert "cannot tell apart at 8 seeds (p = 1, exact paired" in same.sentence("a", "b")
    # the fewest seeds that can reach p < 0.05: 2 / 2^5 = 0.0625 at 5 seeds, 2 / 2^6 = 0.031 at 6
    assert stats.min_paired_seeds() == 6
    five = stats.compare_paired(lower[:5], lower[:5] + 100.0)
    assert five.verdict == "cannot tell apart" and five.p_value == pytest.approx(0.0625)
    assert stats.compare_paired(lower[:6], lower[:6] + 100.0).verdict == "better"
    # a diverged run is the worst value: better on every seed where the other diverged
    assert stats.compare_paired(lower, np.full(8, math.inf)).verdict == "better"


def test_docs_state_the_minimum_number_of_seeds():
    from pathlib import Path

    text = (Path(__file__).parents[2] / "docs" / "protocol.md").read_text(encoding="utf-8")
    assert f"at least {stats.min_paired_seeds()} test seeds" in text


# ---- tuned vs one-shot -------------------------------------------------------------------------


def _gd_tuned(factor: float) -> Experiment:
    # lr_factors [f, f]: every trial is the default α times f, so tuning moves α by exactly that factor
    return Experiment.from_dict(
        {
            "name": "t",
            "steps": 20,
            "problem": {"name": "quadratic", "start_spread": 0.5},
            "rules": [{"rule": "gd", "learning_rate": 0.001}],
            "protocol": {"budget": 1, "tune_seeds": 1, "test_seeds": 8, "lr_factors": [factor, factor]},
        }
    )


def test_tuning_verdict_on_cases_known_by_construction():
    def run(job, validation=None):
        return run_experiment(job, workers=1, validation=validation)

    # α 0.001 → 0.5 on a quadratic with λ_max = 1: lower on every test seed
    (row,) = run_protocol(_gd_tuned(500.0), run=run).report["problems"][0]["rules"]
    assert row["tuning"]["verdict"] == "better" and row["tuning"]["p_value"] == pytest.approx(2 / 2**8)
    assert row["tuning"]["sentence"].startswith("gd tuned is better than gd one-shot")
    # the chosen configuration is the default: identical runs
    (row,) = run_protocol(_gd_tuned(1.0), run=run).report["problems"][0]["rules"]
    assert row["tuning"]["verdict"] == "cannot tell apart" and row["tuning"]["p_value"] == 1.0


def test_two_rules_that_both_reach_the_minimum_are_a_tie_not_a_verdict_decided_by_rounding():
    # per seed 1e-31 against 1e-24 above J* (both solved to far better than FLOOR): a tie; the same
    # consistent gap above the floor is a verdict (by the sign-flip enumeration: p = 2/2^8)
    from descentlab.protocol import FLOOR, _paired

    seeds = list(range(8))
    tiny_a = {"seeds": seeds, "scores": [3.0 + 1e-31 * (i + 1) for i in range(8)]}
    tiny_b = {"seeds": seeds, "scores": [3.0 + 1e-24 * (i + 1) for i in range(8)]}
    tie = _paired(tiny_a, tiny_b, "a", "b", minimum=3.0)
    assert tie["verdict"] == "cannot tell apart" and tie["p_value"] == 1.0
    # without a known minimum the floor is absolute: losses of 1e-31 and 1e-24 tie as well
    low = _paired({"seeds": seeds, "scores": [1e-31] * 8}, {"seeds": seeds, "scores": [1e-24] * 8}, "a", "b")
    assert low["verdict"] == "cannot tell apart"
    above_a = {"seeds": seeds, "scores": [10 * FLOOR * (i + 1) for i in range(8)]}
    above_b = {"seeds": seeds, "scores": [20 * FLOOR * (i + 1) for i in range(8)]}
    clear = _paired(above_a, above_b, "a", "b")
    assert clear["verdict"] == "better" and clear["p_value"] == pytest.approx(2 / 2**8)
    # a diverged run stays the worst value, above any floored one
    diverged = _paired(above_a, {"seeds": seeds, "scores": [float("inf")] * 8}, "a", "b")
    assert diverged["verdict"] == "better"


# ---- every problem's test runs saved -----------------------------------------------------------


def test_every_problems_test_runs_are_a_results_folder_referenced_by_protocol_json(tmp_path):
    from descentlab.cli import main
    from descentlab.protocol import load_protocol
    from descentlab.records import load_results

    path = tmp_path / "two.toml"
    path.write_text(
        'steps = 8\n[[problems]]\nname = "quadratic"\nstart_spread = 0.5\n'
        '[[problems]]\nname = "xor"\nsamples = 24\nhidden = [2]\n'
        '[[problems]]\nname = "himmelblau"\nstart_spread = 0.5\n'
        '[[rules]]\nrule = "gd"\n'
        "[protocol]\nbudget = 1\ntune_seeds = 1\ntest_seeds = [5, 6]\n"
    )
    assert main(["run", str(path), "--out", str(tmp_path / "out"), "--workers", "1", "--quiet"]) == 0
    (folder,) = (tmp_path / "out").iterdir()
    data = load_protocol(folder)
    assert [p["results"] == "." for p in data["problems"]] == [True, False, False]
    for p in data["problems"]:
        results = load_results(folder / p["results"])
        assert results.experiment.problem == p["name"]
        assert sorted(set(results.runs["seed"])) == [5, 6]
        # the saved runs are the reported numbers
        tuned = results.runs[results.runs["label"] == "gd [tuned]"].sort_values("seed")
        if p["reported"] == "test-split loss":  # xor: the final test loss of each run
            last = results.metrics[results.metrics["step"] == 8].set_index("run_id")["test_loss"]
            expected = tuned["run_id"].map(last).tolist()
        else:
            expected = tuned["final_loss"].tolist()
        assert expected == pytest.approx([float(v) for v in p["rules"][0]["tuned"]["scores"]])
    assert [p["reported"] for p in data["problems"]] == ["training loss", "test-split loss", "training loss"]


def test_a_batch_larger_than_the_rows_left_for_tuning_is_one_line():
    from descentlab.errors import SpecError

    full = _built(_supervised_spec())
    spec = {**_supervised_spec(), "batch_size": full.n_train}  # fits the training split, not the view
    with pytest.raises(SpecError) as caught:
        run_protocol(Experiment.from_dict(spec), run=lambda e, **kw: run_experiment(e, workers=1, **kw))
    message = str(caught.value)
    assert "\n" not in message and message.startswith(f"batch_size: got {full.n_train}")
    assert "beside the protocol's validation split" in message
