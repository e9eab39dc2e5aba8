"""The honest-comparison protocol: equal tuning budgets, tune/test seeds, intervals, verdicts, suites, profiles."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np

from . import stats
from .errors import SpecError
from .experiment import Experiment, Protocol, RuleEntry

__all__ = [
    "statement",
    "FLOOR",
    "SUITES",
    "TAUS",
    "TIMING_NOTE",
    "ProtocolOutcome",
    "choose",
    "draw_trials",
    "floored",
    "reference_minimum",
    "format_report",
    "grid_trials",
    "load_protocol",
    "pairwise",
    "profile_costs",
    "profile_step_costs",
    "run_from_cli",
    "run_protocol",
    "save_outcome",
    "save_protocol",
    "search_space",
    "seconds_per_step",
    "seeds_made_no_difference",
    "seed_for",
    "steps_to_accuracy",
    "supervised",
    "tuning_verdict",
]

# The built-in teaching suite: quick problems of every family, each with its own steps and a target
# loss a well-tuned rule reaches; start_spread > 0 on the landscapes so that seeds differ at all.
SUITES: dict[str, tuple[dict, ...]] = {
    "teaching": (
        {"name": "quadratic", "condition": 10.0, "start_spread": 0.5, "steps": 100, "target_loss": 1e-3},
        {"name": "quadratic", "condition": 100.0, "start_spread": 0.5, "steps": 150, "target_loss": 1e-3},
        {"name": "rosenbrock", "start_spread": 0.1, "steps": 300, "target_loss": 1e-2},
        {"name": "himmelblau", "start_spread": 0.5, "steps": 100, "target_loss": 1e-3},
        {"name": "beale", "start_spread": 0.2, "steps": 200, "target_loss": 1e-2},
        {"name": "linear_regression", "samples": 64, "start_spread": 0.5, "steps": 100, "target_loss": 0.05},
        {"name": "xor", "samples": 64, "hidden": [4], "steps": 100, "target_loss": 0.1, "target_accuracy": 0.9},
        {"name": "moons", "samples": 64, "hidden": [4], "steps": 100, "target_loss": 0.2, "target_accuracy": 0.9},
        # real data (scikit-learn's bundled copies, no download): a classification and a regression set
        {"name": "iris", "hidden": [8], "steps": 100, "target_loss": 0.1, "target_accuracy": 0.9},
        {"name": "diabetes", "hidden": [8], "steps": 100, "target_loss": 0.5},
    ),
}
TAUS = tuple(float(t) for t in np.round(np.linspace(1.0, 4.0, 61), 10))  # profile grid, step 0.05
# The profile's measure: median test-seed final loss above the problem's known minimum (0 if none),
# floored here: two rules that both reach the minimum to 1e-8 have solved the problem equally well,
# and a ratio of 1e-30 to 1e-20 would call one of them 10^10 times worse.
FLOOR = 1e-8
BOOTSTRAP_SEED = 0  # the intervals' resampling seed: a report is reproducible
PROBLEMS_FOLDER = "problems"  # inside the protocol folder: the test-seed results of problems 2, 3, ...


@dataclass
class ProtocolOutcome:
    """What :func:`run_protocol` returns: the JSON-ready report and each problem's test-seed Results."""

    report: dict
    test_results: list


def seed_for(search_seed: int, entry: int) -> int:
    """The search seed of one rule entry: independent streams per entry from one protocol seed."""
    return int(np.random.SeedSequence([int(search_seed), int(entry)]).generate_state(1)[0])


def search_space(rule, entry: RuleEntry, protocol: Protocol) -> dict[str, tuple[float, float, bool, str]]:
    """``{name: (low, high, log, kind)}``: α always (log, the one-shot α times ``lr_factors``), and every
    float/int hyperparameter with a finite declared range (log where declared), or those in ``tune``.

    A hyperparameter without a finite range (ε in (0, ∞)), a flag or a choice keeps its value: there
    is no honest way to draw from an unbounded range.
    """
    alpha = float(entry.grid()[0][0])
    space = {"learning_rate": (alpha * protocol.lr_factors[0], alpha * protocol.lr_factors[1], True, "float")}
    for h in rule.hyperparams:
        if h.kind not in ("float", "int") or h.low is None or h.high is None:
            continue
        if not (math.isfinite(h.low) and math.isfinite(h.high)) or (h.log and h.low <= 0) or h.low >= h.high:
            continue
        if protocol.tune != "all" and h.name not in protocol.tune:
            continue
        space[h.name] = (float(h.low), float(h.high), bool(h.log), h.kind)
    return space


def _scale(space, name: str, u: np.ndarray) -> np.ndarray:
    """Map ``u`` in [0, 1) onto one dimension (log-uniform where declared)."""
    low, high, log, _ = space[name]
    if log:
        return np.exp(np.log(low) + u * (np.log(high) - np.log(low)))
    return low + u * (high - low)


def grid_trials(space, budget: int, seed: int) -> list[dict]:
    """A k^D grid with k = the largest integer such that k^D ≤ ``budget`` (cell centres, so an open
    bound like momentum < 1 is never hit), then ``budget − k^D`` seeded random draws: exactly
    ``budget`` trials whatever the number of dimensions, so every rule gets the same budget."""
    names = sorted(space)
    k = 1
    while (k + 1) ** len(names) <= budget:
        k += 1
    centres = (np.arange(k) + 0.5) / k
    axes = [_scale(space, n, centres) for n in names]
    grid = [
        dict(zip(names, map(float, point)))
        for point in np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, len(names))
    ]
    rest = budget - len(grid)
    return grid + (draw_trials(space, rest, "random", seed) if rest else [])


def draw_trials(space, budget: int, search: str, seed: int) -> list[dict]:
    """``budget`` trials of ``space`` by ``search`` ("random": independent seeded draws; "grid")."""
    if search == "grid":
        return grid_trials(space, budget, seed)
    plain = {n: (low, high, log) for n, (low, high, log, _) in space.items()}
    return stats.random_search(plain, budget, seed)


def _checked(rule, trial: dict, base: dict) -> dict:
    """The trial's hyperparameters (ints rounded), each checked by its declaration; one the draw put
    on an open bound (probability ~0) keeps the entry's value instead."""
    out = dict(base)
    for h in rule.hyperparams:
        if h.name in trial:
            value = round(trial[h.name]) if h.kind == "int" else trial[h.name]
            try:
                out[h.name] = h.check(value)
            except SpecError:
                pass
    return out


def choose(medians) -> int:
    """The selection rule: the lowest median tune-seed score wins (+inf, i.e. a median that
    diverged, ranks last); ties go to the earlier trial. Index 0 when every trial diverged."""
    values = np.where(np.isnan(np.asarray(medians, dtype=float)), np.inf, np.asarray(medians, dtype=float))
    return int(np.argmin(values)) if values.size else 0


def _problems(experiment: Experiment, protocol: Protocol) -> list[dict]:
    """Every problem of the comparison with its steps and target (its own target wins over protocol.target)."""
    if experiment.suite:
        return [
            {
                **p,
                "target_loss": p["target_loss"] if p["target_loss"] is not None else protocol.target,
                "target_accuracy": (
                    p["target_accuracy"] if p.get("target_accuracy") is not None else protocol.target_accuracy
                ),
            }
            for p in experiment.suite
        ]
    target = protocol.target if protocol.target is not None else experiment.target_loss
    return [
        {
            "name": experiment.problem,
            "settings": dict(experiment.problem_settings),
            "steps": experiment.steps,
            "target_loss": target,
            "target_accuracy": protocol.target_accuracy,
        }
    ]


def _phase(
    experiment: Experiment, problem: dict, entries: list[RuleEntry], seeds, name: str, every_step: bool = False
) -> Experiment:
    """One batch of runs on one problem: the experiment's run settings, these entries and seeds.
    ``every_step``: evaluate the test split at every step (steps to a target accuracy need each one;
    evaluating never changes what trains)."""
    return replace(
        experiment,
        eval_every=1 if every_step else experiment.eval_every,
        name=name,
        problem=problem["name"],
        problem_settings=dict(problem["settings"]),
        steps=int(problem["steps"]),
        seeds=list(seeds),
        target_loss=problem["target_loss"],
        entries=entries,
        sharpness_every=0,
        snapshot_every=0,
        protocol=None,
        suite=[],
    )


def _entry(entry: RuleEntry, label: str, learning_rate: float, hyper: dict) -> RuleEntry:
    return replace(
        entry,
        label=label,
        learning_rate=[float(learning_rate)],
        hyper={k: [v] for k, v in hyper.items()},
        schedule_hyper={k: [v[0]] for k, v in entry.schedule_hyper.items()},
    )


def _final_test_loss(results) -> np.ndarray:
    """Each run's ``test_loss`` at its last step, aligned with ``results.runs`` (NaN where none was
    measured). On the validation view that is the final validation loss."""
    if "test_loss" not in results.metric_names:
        return np.full(len(results.runs), np.nan)
    test_loss, rows = results.metric("test_loss"), results.rows_per_run
    at_last = test_loss[np.arange(len(rows)), np.maximum(rows - 1, 0)]  # each run's last recorded step
    final = np.where(rows > 0, at_last, np.nan)
    return final[results.runs["run_id"].to_numpy()]  # metric rows are in run_id order, 0 … runs − 1


def _by_label(results, column: str = "final_loss") -> dict[str, tuple[np.ndarray, np.ndarray, list[int]]]:
    """label -> (scores, steps to target, seeds), in seed order; scores are +inf for diverged/failed runs.

    ``column`` "held_out_loss" scores each run by its final ``test_loss``: the final validation loss
    on the validation view (tuning of a supervised problem), the final test-split loss otherwise."""
    from .analysis import scores, steps_to_target

    runs = results.runs
    if column == "held_out_loss":
        runs = runs.assign(held_out_loss=_final_test_loss(results))
    runs = runs.sort_values("seed", kind="stable")
    runs = runs.assign(_score=scores(runs, column), _steps=steps_to_target(runs))
    return {
        label: (g["_score"].to_numpy(float), g["_steps"].to_numpy(float), [int(s) for s in g["seed"]])
        for label, g in runs.groupby("label", sort=False)
    }


def steps_to_accuracy(results, target: float) -> np.ndarray:
    """Each run's first evaluated step whose ``test_accuracy`` is ≥ ``target``, aligned with
    ``results.runs``; +inf where it never got there, was flagged or failed (as steps to a target loss),
    or where no accuracy was measured (not a classification problem)."""
    from .verdicts import FLAGGED

    runs = results.runs
    out = np.full(len(runs), np.inf)
    metrics = results.metrics
    if "test_accuracy" not in metrics.columns:
        return out
    hit = metrics[metrics["test_accuracy"].to_numpy(float) >= target]
    first = hit.groupby("run_id")["step"].min()
    kept = ~runs["status"].isin((*FLAGGED, "failed")).to_numpy()
    for i, run_id in enumerate(runs["run_id"].to_numpy()):
        if kept[i] and run_id in first.index:
            out[i] = float(first[run_id])
    return out


def _failures(results, label: str) -> dict | None:
    """The failed test-seed runs of one rule (its defaults and its tuned configuration): how many, of
    how many, and the first error, which names the plugin and its file and line; None when none failed."""
    runs = results.runs
    mine = runs[runs["label"].isin([f"{label} [default]", f"{label} [tuned]"])]
    failed = mine[mine["status"] == "failed"]
    if failed.empty:
        return None
    errors = [str(e) for e in failed.get("error", []) if isinstance(e, str) and e]
    return {"failed": int(len(failed)), "runs": int(len(mine)), "error": errors[0] if errors else "failed"}


SEED_INDEPENDENT = (
    "every test seed gave the same final loss for every rule (the problem does not depend on the seed, "
    "e.g. a landscape with start_spread = 0): the verdicts are at 1 seed, the intervals have no width"
)


def seeds_made_no_difference(rows: list[dict]) -> bool:
    """Whether every rule's one-shot and tuned test-seed scores are each the same on every seed."""
    return all(len(set(row[k]["scores"])) <= 1 for row in rows for k in ("one_shot", "tuned"))


def _first_seed(row: dict) -> dict:
    """``row`` with its samples cut to their first seed: what the verdicts may use of identical seeds."""
    cut = {k: {**row[k], "seeds": row[k]["seeds"][:1], "scores": row[k]["scores"][:1]} for k in ("one_shot", "tuned")}
    return {**row, **cut}


def _accuracy_by_label(results, target: float) -> dict[str, np.ndarray]:
    """label -> steps to ``target`` accuracy of each run, in seed order (as :func:`_by_label`)."""
    runs = results.runs.assign(_acc=steps_to_accuracy(results, target)).sort_values("seed", kind="stable")
    return {label: g["_acc"].to_numpy(float) for label, g in runs.groupby("label", sort=False)}


def _numbers(score: np.ndarray, steps: np.ndarray, target, seed: int, seeds: list[int]) -> dict:
    """Median and bootstrap interval of a sample of test-seed scores, and steps to target; ``seeds``
    in the same order as the scores, which is what pairs two rules' runs seed by seed."""
    from .analysis import median

    low, high = stats.bootstrap_interval(score, seed=seed)
    out = {"seeds": list(seeds), "scores": score.tolist(), "median": median(score), "ci": [low, high]}
    if target is not None:
        out["steps"] = steps.tolist()
        out["steps_median"] = median(steps)
        # the same percentile bootstrap as the losses' (a seed that never reached the target is +inf)
        out["steps_ci"] = list(stats.bootstrap_interval(steps, seed=seed))
        out["reached"] = int(np.isfinite(steps).sum())
    return out


def profile_costs(problems: list[dict], labels: list[str]) -> dict[str, dict[str, float]]:
    """``costs[label][key]`` (``key`` naming the problem) = max(median tuned test-seed loss − J*, FLOOR);
    +inf when that median is +inf (more than half the test seeds diverged or failed): a failure,
    never within any τ."""
    costs: dict[str, dict[str, float]] = {label: {} for label in labels}
    for p in problems:
        minimum = reference_minimum(p["minimum"], p.get("reported", "training loss"))
        for row in p["rules"]:
            m = row["tuned"]["median"]
            costs[row["label"]][p["key"]] = math.inf if not math.isfinite(m) else float(floored(m, minimum))
    return costs


def profile_step_costs(problems: list[dict], labels: list[str]) -> dict[str, dict[str, float]] | None:
    """``costs[label][key]`` = max(median tuned test-seed steps to the target loss, 1) on every problem
    with a target (+inf: not reached by more than half the seeds): the profile of how fast each rule
    gets there, as AlgoPerf's time-to-result profiles, counted in steps. None when no problem has a target."""
    with_target = [p for p in problems if p.get("target") is not None]
    if not with_target:
        return None
    costs: dict[str, dict[str, float]] = {label: {} for label in labels}
    for p in with_target:
        for row in p["rules"]:
            m = float(row["tuned"]["steps_median"])
            costs[row["label"]][p["key"]] = math.inf if not math.isfinite(m) else max(m, 1.0)
    return costs


def _plan(entry: RuleEntry, index: int, rule, protocol: Protocol) -> dict:
    """One rule's defaults, its search space and its ``budget`` trials, with the entries that run them."""
    alpha, base, _ = entry.grid()[0]
    space = search_space(rule, entry, protocol)
    trials = draw_trials(space, protocol.budget, protocol.search, seed_for(protocol.search_seed, index))
    configs = [{"learning_rate": float(t["learning_rate"]), **_checked(rule, t, base)} for t in trials]
    entries = [_entry(entry, f"{entry.label} [default]", alpha, base)]
    entries += [
        _entry(
            entry,
            f"{entry.label} [trial {k + 1}]",
            c["learning_rate"],
            {n: v for n, v in c.items() if n != "learning_rate"},
        )
        for k, c in enumerate(configs)
    ]
    return {
        "entry": entry,
        "default": {"learning_rate": float(alpha), **base},
        "trials": configs,
        "space": space,
        "entries": entries,
    }


def _select(plan: dict, tuned: dict, budget: int, defaults_compete: bool = False) -> dict:
    """The chosen trial of one rule by :func:`choose`, from its tune-seed scores only; with
    ``defaults_compete`` the defaults are candidate 0, ahead of the trials (so they win ties), and
    ``chosen`` is 0 when they are chosen."""
    from .analysis import median

    label = plan["entry"].label
    medians = [median(tuned[f"{label} [trial {k + 1}]"][0]) for k in range(budget)]
    default_median = median(tuned[f"{label} [default]"][0])
    if defaults_compete:
        best = choose([default_median] + medians) - 1
    else:
        best = choose(medians)
    return {
        "label": label,
        "rule": plan["entry"].rule,
        "budget": budget,
        "space": {n: list(v) for n, v in plan["space"].items()},
        "default_config": plan["default"],
        "chosen": best + 1,
        "chosen_config": plan["default"] if best < 0 else plan["trials"][best],
        "tune_default_median": default_median,
        "trial_medians": medians,
        "best_so_far": stats.best_so_far(medians).tolist(),
    }


def reference_minimum(minimum, reported: str) -> float | None:
    """What a problem's reported losses are measured from: its known minimum, which is the training
    loss's, so only when the training loss is what is reported (None: measured from 0)."""
    return float(minimum) if isinstance(minimum, (int, float)) and reported == "training loss" else None


def floored(scores, minimum: float | None = None) -> np.ndarray:
    """Scores as the verdicts and the profile compare them: the loss above the problem's known
    minimum (0 if none), at least :data:`FLOOR`; a diverged run's inf (and NaN) stays as it is."""
    x = np.asarray(scores, dtype=float)
    with np.errstate(invalid="ignore"):
        return np.where(np.isfinite(x), np.maximum(x - (minimum or 0.0), FLOOR), x)


def _paired(a: dict, b: dict, name_a: str, name_b: str, minimum: float | None = None) -> dict:
    """Two samples of test-seed numbers through :func:`descentlab.stats.compare_paired`, seed by seed,
    both :func:`floored` first: two runs that both reached the minimum to 1e-8 are a tie, not a
    "better" decided by rounding (1e-31 against 1e-24)."""
    if a["seeds"] != b["seeds"]:  # both are run on the same test seeds; anything else is a bug, not data
        raise ValueError(f"paired comparison of {name_a} and {name_b}: seeds {a['seeds']} and {b['seeds']} differ")
    c = stats.compare_paired(floored(a["scores"], minimum), floored(b["scores"], minimum))
    return {
        "a": name_a,
        "b": name_b,
        "verdict": c.verdict,
        "p_value": c.p_value,
        "test": c.test,
        "n": c.n_a,
        "sentence": c.sentence(name_a, name_b),
    }


def pairwise(rows: list[dict], minimum: float | None = None) -> list[dict]:
    """Every pair of rules' tuned test-seed losses, paired by seed (:func:`descentlab.stats.compare_paired`)."""
    return [
        _paired(rows[i]["tuned"], rows[j]["tuned"], rows[i]["label"], rows[j]["label"], minimum)
        for i in range(len(rows))
        for j in range(i + 1, len(rows))
    ]


def tuning_verdict(row: dict, minimum: float | None = None) -> dict:
    """Did tuning help this rule? Its tuned against its one-shot test-seed losses, by the same paired
    test: "better" = the tuned configuration is lower, "worse" = tuning made it worse."""
    return _paired(row["tuned"], row["one_shot"], f"{row['label']} tuned", f"{row['label']} one-shot", minimum)


def supervised(problem: dict, registry) -> bool:
    """Whether tuning on this problem selects on a validation split (its instance has a Dataset to split)."""
    from .faults import build_instance
    from .problem import holds_out

    return holds_out(build_instance(registry.problem(problem["name"]), dict(problem["settings"])))


def run_protocol(
    experiment: Experiment, *, registry=None, run: Callable | None = None, command: str = "", timing: bool = True
) -> ProtocolOutcome:
    """Tune every rule with the same budget on the tune seeds (and, for a supervised problem, on a
    validation split of its training data), then measure defaults and the chosen configuration on the
    test seeds, for every problem (docs/protocol.md).

    ``run(experiment) -> Results`` trains one batch (default: the runner); a supervised problem's
    tuning batch is ``run(experiment, validation=(fraction, seed))``, which must train on
    :func:`descentlab.problem.validation_view`. A test passes its own ``run`` to see what each phase reads.

    ``timing``: also time one test-seed run of each rule's tuned configuration per problem (the
    report's ``timing``, machine-dependent and kept apart from every other number).
    """
    from .analysis import median
    from .registry import get_registry
    from .runner import run_experiment

    protocol = experiment.protocol
    if protocol is None:
        raise SpecError("protocol", None, "an experiment with a [protocol] table")
    registry = registry or get_registry()
    run = run or (lambda e, **kw: run_experiment(e, registry=registry, **kw))
    labels = [e.label for e in experiment.entries]
    problems, test_results, timings = [], [], {}
    todo = _problems(experiment, protocol)
    # every problem is built before anything trains: one that cannot be (a missing extra, a broken
    # plugin) is one line now, not after the problems before it have run for minutes
    held_out = [supervised(problem, registry) for problem in todo]
    for number, problem in enumerate(todo):
        # ---- tuning: defaults and `budget` trials per rule, tune seeds only; on a supervised problem
        # the training split minus a validation part, scored by the final validation loss
        plans = [
            _plan(entry, index, registry.rules[entry.rule], protocol) for index, entry in enumerate(experiment.entries)
        ]
        tune_entries = [e for plan in plans for e in plan["entries"]]
        tune_job = _phase(experiment, problem, tune_entries, protocol.tune_seeds, f"{experiment.name}-tune")
        on_validation = held_out[number]
        # a supervised problem is scored on held-out rows in both phases: the validation loss while
        # tuning, the test-split loss in the test phase; a landscape by its final training loss
        column = "held_out_loss" if on_validation else "final_loss"
        if on_validation:
            # the split is seeded by search_seed: every rule and trial is scored on the same rows
            tuned = _by_label(run(tune_job, validation=(protocol.validation, protocol.search_seed)), column)
        else:
            tuned = _by_label(run(tune_job), column)
        # ---- selection: decided here, before any test seed (or test row) is run
        rows = [_select(plan, tuned, protocol.budget, protocol.defaults_compete) for plan in plans]
        test_entries = [
            _entry(
                plan["entry"],
                f"{plan['entry'].label} [{which}]",
                config["learning_rate"],
                {n: v for n, v in config.items() if n != "learning_rate"},
            )
            for plan, row in zip(plans, rows)
            for which, config in (("default", row["default_config"]), ("tuned", row["chosen_config"]))
        ]
        # ---- test: defaults and the chosen configuration on the test seeds, trained on the whole
        # training split; every reported number is from here. Each problem's batch has its own name:
        # its results folder is saved under the first one's (run_from_cli)
        name = f"{experiment.name}-test" if number == 0 else f"{experiment.name}-test-{number + 1}-{problem['name']}"
        accuracy = problem.get("target_accuracy")
        results = run(
            _phase(experiment, problem, test_entries, protocol.test_seeds, name, every_step=accuracy is not None)
        )
        test_results.append(results)
        tested = _by_label(results, column)
        measured = "test_accuracy" in results.metrics.columns and results.metrics["test_accuracy"].notna().any()
        if accuracy is not None and not measured:
            accuracy = None  # not a classification problem: no accuracy to reach
        reached = _accuracy_by_label(results, accuracy) if accuracy is not None else {}
        target = problem["target_loss"]
        minimum = (results.problem_info or {}).get("minimum_value")
        reported = "test-split loss" if on_validation else "training loss"
        known = reference_minimum(minimum, reported)
        for row in rows:
            for which, key in (("default", "one_shot"), ("tuned", "tuned")):
                score, steps, seeds = tested[f"{row['label']} [{which}]"]
                row[key] = _numbers(score, steps, target, BOOTSTRAP_SEED, seeds)
                if accuracy is not None:
                    to_accuracy = reached[f"{row['label']} [{which}]"]
                    row[key]["accuracy_steps"] = to_accuracy.tolist()
                    row[key]["accuracy_steps_median"] = median(to_accuracy)
                    row[key]["accuracy_steps_ci"] = list(stats.bootstrap_interval(to_accuracy, seed=BOOTSTRAP_SEED))
                    row[key]["accuracy_reached"] = int(np.isfinite(to_accuracy).sum())
            broken = _failures(results, row["label"])
            if broken is not None:  # written only then: a healthy comparison's protocol.json is unchanged
                row["failures"] = broken
        # seeds that changed nothing (a landscape with start_spread = 0: every seed the same run) are
        # one observation, not n: n identical pairs would otherwise "prove" an ordering at p = 2 / 2^n
        same = len(protocol.test_seeds) > 1 and seeds_made_no_difference(rows)
        compared = [_first_seed(row) for row in rows] if same else rows
        for row, seen in zip(rows, compared):
            row["tuning"] = tuning_verdict(seen, known)
        problem_key = f"{number + 1}. {problem['name']}"
        if timing:
            timings[problem_key] = _timing(experiment, problem, plans, rows, registry, protocol.test_seeds[0])
        problems.append(
            {
                "key": problem_key,
                "name": problem["name"],
                "settings": problem["settings"],
                "steps": problem["steps"],
                "target": target,
                **({"target_accuracy": accuracy} if accuracy is not None else {}),
                "minimum": float(minimum) if isinstance(minimum, (int, float)) else None,
                "selected_on": (
                    f"validation loss ({protocol.validation:g} of the training split)"
                    if on_validation
                    else "training loss on the tune seeds"
                ),
                "reported": reported,
                "rules": rows,
                "pairwise": pairwise(compared, known),
                **({"seed_independent": SEED_INDEPENDENT} if same else {}),
            }
        )
    costs = profile_costs(problems, labels)
    rho = stats.performance_profile(costs, TAUS)
    report = {
        "format": "descentlab protocol 2",
        "name": experiment.name,
        "command": command,
        "experiment": experiment.to_dict(),
        "protocol": protocol.to_dict(),
        "statement": statement(protocol, len(problems)),
        "selection": "lowest median over the tune seeds of the final validation loss (supervised problems: "
        f"{protocol.validation:g} of the training split held out, seeded by search_seed; the test "
        "split is never read) or of the final training loss (landscapes); a median of +inf "
        "(diverged) ranks last",
        "intervals": f"percentile bootstrap of the median, {stats.RESAMPLES} resamples, level {stats.LEVEL}, "
        f"seed {BOOTSTRAP_SEED}",
        "verdicts": "two-sided paired sign-flip test of the signed ranks of the per-seed differences of the "
        f"test-seed losses (exact up to {stats.PAIRED_EXACT_LIMIT} seeds) at level {1 - stats.LEVEL:.2g}; "
        f"at fewer than {stats.min_paired_seeds()} seeds it can only say cannot tell apart",
        "problems": problems,
        "reported": "every loss is the final loss on the test seeds: on the test split for supervised "
        "problems (trained on the whole training split), the training loss for landscapes; "
        "steps to target count steps of the training loss",
        "profile": {
            "measure": f"median tuned test-seed final loss (test-split loss for supervised problems) above "
            f"the known minimum, floored at {FLOOR:g}; "
            "+inf when that median is +inf",
            "taus": list(TAUS),
            "costs": costs,
            "rho": {k: v.tolist() for k, v in rho.items()},
            # the exact area, not a sum over TAUS: a ratio of 1.01 must not cost a whole 0.05 cell
            "score": stats.profile_score(costs, TAUS[-1]),
        },
    }
    steps_costs = profile_step_costs(problems, labels)
    if steps_costs is not None:  # AlgoPerf's measure, time to a target, here in steps: where targets were set
        steps_rho = stats.performance_profile(steps_costs, TAUS)
        report["profile_steps"] = {
            "measure": "median tuned test-seed steps to the target loss, at least 1; +inf when that median "
            "is +inf (more than half the test seeds never reached it); problems without a target left out",
            "problems": sorted({key for row in steps_costs.values() for key in row}),
            "taus": list(TAUS),
            "costs": steps_costs,
            "rho": {k: v.tolist() for k, v in steps_rho.items()},
            "score": stats.profile_score(steps_costs, TAUS[-1]),
        }
    if timing:
        # apart from "problems": two runs of one experiment give the same problems, not the same clock
        report["timing"] = {"note": TIMING_NOTE, "problems": timings}
    return ProtocolOutcome(report=report, test_results=test_results)


# one run, its median step: a pause of the machine lengthens a few of the steps between ticks and
# moves a median of ~100 of them not at all; more runs would cost a third of the protocol's time
TIMING_REPEATS = 1
TIMING_NOTE = (
    "wall time, machine-dependent: seconds per step of one run of each rule's tuned configuration "
    "(the first test seed, alone, in this process): the median of its steps' times on this machine at "
    "its load then; time to target (or accuracy) = that × "
    "median steps to it. Compare rules within one report only: every other number comes from the seeded runs, "
    "the same when the experiment is run again"
)


def seconds_per_step(job: Experiment, registry, repeats: int = TIMING_REPEATS) -> float:
    """Wall seconds per step of ``job`` (one run), the fastest of ``repeats`` runs, each the median
    over the runner's progress ticks of the time between two ticks per step between them: steps
    only, so building the problem and the records are not counted, and a pause of the machine moves
    it little. NaN when fewer than two steps were ticked (a run that broke at once)."""
    import time

    from .runner import run_experiment

    best = math.nan
    for _ in range(repeats):
        ticks: list[tuple[int, float]] = []

        def progress(done: int, total: int, ticks=ticks) -> None:
            if done < total:  # the last call (done == total) comes after the records, not after a step
                ticks.append((done, time.perf_counter()))

        run_experiment(job, registry=registry, workers=1, progress=progress)
        steps = [
            (t1 - t0) / (d1 - d0) for (d0, t0), (d1, t1) in zip(ticks, ticks[1:]) if d1 > d0
        ]  # ticks come every max(1, steps // 100) steps
        if steps:
            per_step = float(np.median(steps))
            best = per_step if math.isnan(best) else min(best, per_step)
    return best


def _times(steps, per_step: float):
    """Steps × seconds per step; +inf for a target never reached, None when there was no target."""
    return None if steps is None else (math.inf if steps == math.inf else steps * per_step)


def _timing(experiment: Experiment, problem: dict, plans: list, rows: list[dict], registry, seed: int) -> dict:
    """label -> seconds per step and time to target of its tuned configuration (:data:`TIMING_NOTE`)."""
    out = {}
    for plan, row in zip(plans, rows):
        config = row["chosen_config"]
        entry = _entry(
            plan["entry"],
            f"{plan['entry'].label} [timing]",
            config["learning_rate"],
            {n: v for n, v in config.items() if n != "learning_rate"},
        )
        per_step = seconds_per_step(_phase(experiment, problem, [entry], [seed], f"{experiment.name}-timing"), registry)
        out[row["label"]] = {
            "seconds_per_step": per_step,
            "time_to_target_s": _times(row["tuned"].get("steps_median"), per_step),
            **(
                {"time_to_accuracy_s": _times(row["tuned"]["accuracy_steps_median"], per_step)}
                if "accuracy_steps_median" in row["tuned"]
                else {}
            ),
        }
    return out


def statement(protocol: Protocol, n_problems: int) -> str:
    """The budget and split statement printed with every leaderboard."""
    return (
        f"every rule: {protocol.budget} {protocol.search}-search trials (seed {protocol.search_seed}"
        + ("; its defaults compete with them" if protocol.defaults_compete else "")
        + f") on tune seeds {list(protocol.tune_seeds)}, selected on a {protocol.validation:g} validation split "
        f"of the training data where the problem has one; defaults and the chosen trial re-run on test seeds "
        f"{list(protocol.test_seeds)}, the only seeds any reported number comes from; {n_problems} problem(s)"
    )


def _g(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return "inf" if value == math.inf else f"{value:.3g}"


def _with_ci(numbers: dict) -> str:
    return f"{_g(numbers['median'])} [{_g(numbers['ci'][0])}, {_g(numbers['ci'][1])}]"


def _tuning_cell(verdict: dict | None) -> str:
    """The tuned-against-one-shot verdict in a leaderboard cell."""
    if not verdict:
        return "-"
    word = {"better": "yes", "worse": "no, worse"}.get(verdict["verdict"], "cannot tell")
    return f"{word} (p = {verdict['p_value']:.2g})"


def _against_leader(problem: dict, leader: str) -> list[str]:
    """The leader's pairwise verdicts grouped by outcome, one line each: with 20 rules every pair
    would be 190 lines a problem (protocol.json, the report and the dashboard keep every pair)."""
    groups: dict[str, list[str]] = {"worse": [], "cannot tell apart": [], "better": []}
    test, n = "", 0
    for pair in problem["pairwise"]:
        if leader not in (pair["a"], pair["b"]):
            continue
        # a pair's verdict is a's against b: the other rule's against the leader is it turned round
        # when the leader is a
        if pair["a"] == leader:
            other, verdict = pair["b"], {"better": "worse", "worse": "better"}.get(pair["verdict"], pair["verdict"])
        else:
            other, verdict = pair["a"], pair["verdict"]
        groups[verdict].append(f"{other} (p = {pair['p_value']:.2g})")
        test, n = pair["test"], pair["n"]
    if not test:
        return []
    heads = {
        "worse": f"worse than {leader}",
        "cannot tell apart": f"cannot tell apart from {leader} at {n} seed{'s' if n != 1 else ''}",
        "better": f"better than {leader}",
    }
    lines = [f"  against {leader} (lowest tuned median), {test} of the paired test-seed losses:"]
    return lines + [f"    {heads[k]}: {', '.join(v)}" for k, v in groups.items() if v]


def format_report(report: dict) -> str:
    """The leaderboard (one-shot and tuned medians with intervals, steps to target, whether tuning
    helped, profile score) and the leader's verdicts against every other rule, as the CLI prints them."""
    score = report["profile"]["score"]
    lines = [report["statement"]]
    for p in report["problems"]:
        reported = f", {p['reported']}" if "reported" in p else ""
        accuracy = p.get("target_accuracy")
        wanted = f", test accuracy ≥ {accuracy:g}" if accuracy is not None else ""
        lines.append(f"{p['key']} ({p['steps']} steps, target {_g(p['target'])}{wanted}{reported}):")
        width = max([4] + [len(row["label"]) for row in p["rules"]])
        clock = report.get("timing", {}).get("problems", {}).get(p["key"])
        lines.append(
            f"  {'rule':<{width}}  {'one-shot median [95% CI]':<30} {'tuned median [95% CI]':<30} "
            f"{'steps to target':<16} "
            + (f"{'steps to accuracy':<18} " if accuracy is not None else "")
            + (f"{'time to target*':<16} " if clock else "")
            + (f"{'time to accuracy*':<18} " if clock and accuracy is not None else "")
            + f"{'tuning helped?':<23} profile score"
        )
        ranked = sorted(p["rules"], key=lambda r: (r["tuned"]["median"], r["label"]))
        for row in ranked:
            one, two = row["one_shot"], row["tuned"]
            steps = (
                f"{_g(two['steps_median'])} ({two['reached']}/{len(two['scores'])})" if "steps_median" in two else "-"
            )
            took = f"{_duration(clock.get(row['label'], {}).get('time_to_target_s')):<16} " if clock else ""
            hits = (
                f"{_g(two['accuracy_steps_median'])} ({two['accuracy_reached']}/{len(two['scores'])})"
                if "accuracy_steps_median" in two
                else "-"
            )
            hits = f"{hits:<18} " if accuracy is not None else ""
            if clock and accuracy is not None:
                took += f"{_duration(clock.get(row['label'], {}).get('time_to_accuracy_s')):<18} "
            lines.append(
                f"  {row['label']:<{width}}  {_with_ci(one):<30} {_with_ci(two):<30} {steps:<16} {hits}{took}"
                f"{_tuning_cell(row.get('tuning')):<23} {score[row['label']]:.3f}"
            )
        lines += _against_leader(p, ranked[0]["label"]) if ranked else []
        lines += [f"  note: {p['seed_independent']}"] if p.get("seed_independent") else []
        lines += [
            f"  {row['label']} failed on {row['failures']['failed']} of its {row['failures']['runs']} test runs "
            f"(scored +inf): {row['failures']['error']}"
            for row in p["rules"]
            if row.get("failures")
        ]
    lines.append(
        "profile score: area under ρ(τ) for τ in [1, 4] / 3 (1 = best on every problem); "
        + ", ".join(f"{k} {v:.3f}" for k, v in sorted(score.items(), key=lambda kv: -kv[1]))
    )
    if report.get("profile_steps"):
        fast = report["profile_steps"]
        lines.append(
            f"profile score by steps to target ({len(fast['problems'])} problems with a target): "
            + ", ".join(f"{k} {v:.3f}" for k, v in sorted(fast["score"].items(), key=lambda kv: -kv[1]))
        )
    if report.get("timing"):
        lines.append(f"* time to target: {report['timing']['note']}")
    return "\n".join(lines)


def _duration(seconds) -> str:
    """Seconds as the leaderboard shows them: µs/ms/s, "inf" when never reached, "-" when unknown."""
    if seconds is None or (isinstance(seconds, float) and math.isnan(seconds)):
        return "-"
    seconds = float(seconds)
    if seconds == math.inf:
        return "inf"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.3g} µs"
    return f"{seconds * 1e3:.3g} ms" if seconds < 1 else f"{seconds:.3g} s"


def _json_ready(value):
    """JSON has no infinity: +inf/−inf/NaN become the strings "inf"/"-inf"/"nan" (float() reads them back)."""
    if isinstance(value, dict):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    if isinstance(value, (np.floating, np.integer)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return value


def save_protocol(report: dict, folder) -> Path:
    """``protocol.json`` in ``folder``, written atomically (JSON, never pickle)."""
    from .atomic import write_text_atomic

    text = json.dumps(_json_ready(report), indent=1, allow_nan=False, ensure_ascii=False)
    return write_text_atomic(Path(folder) / "protocol.json", text + "\n")


def load_protocol(folder) -> dict | None:
    """The ``protocol.json`` of a results folder, or None when it has none."""
    path = Path(folder) / "protocol.json"
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def save_outcome(outcome: ProtocolOutcome, experiment: Experiment, out=None, plugins=()) -> Path:
    """Save a comparison as ``descentlab run`` does: every problem's test-seed runs as an ordinary
    results folder (the first problem's is the protocol folder itself, the others under its
    ``problems/``), ``protocol.toml`` (the experiment as run) and, last, ``protocol.json``
    referencing each of them, with the command that reproduces it. Returns the protocol folder."""
    import shlex

    from .atomic import write_text_atomic
    from .records import save_results

    path = save_results(outcome.test_results[0], out)
    outcome.report["problems"][0]["results"] = "."
    # the other problems' folders are ordinary results folders (load_results, the Results page and
    # `descentlab report` read each as they are), inside this one so the comparison stays one folder
    for problem, results in zip(outcome.report["problems"][1:], outcome.test_results[1:]):
        problem["results"] = save_results(results, path / PROBLEMS_FOLDER).relative_to(path).as_posix()
    # the whole experiment as run (every default written out), so the folder alone reproduces it
    write_text_atomic(path / "protocol.toml", experiment.to_toml())
    outcome.report["reproduce"] = shlex.join(
        ["descentlab", "run", str(path / "protocol.toml")] + [a for p in plugins for a in ("--plugin", str(p))]
    )
    save_protocol(outcome.report, path)  # last: a folder with protocol.json has every problem's folder
    return path


def run_from_cli(experiment: Experiment, registry, args, executor=None) -> int:
    """``descentlab run`` of an experiment with ``[protocol]``: print the leaderboard and verdicts, save
    the comparison (:func:`save_outcome`).

    ``executor`` (a ``distributed.Client`` for ``--executor dask``) trains every phase's batch there
    instead of in this machine's pool; the numbers are the same bit for bit."""
    import os
    import shlex

    from .experiment import check_resources
    from .faults import build_instance
    from .log import logger
    from .runner import _validation_instance, run_experiment

    workers = args.workers
    plugins = [str(p) for p in args.plugin or ()]
    command = shlex.join(["descentlab", "run", str(args.experiment)] + [a for p in plugins for a in ("--plugin", p)])

    def run(job: Experiment, validation=None):
        # every batch is checked before it trains, as a plain run is: one line if it cannot fit
        instance = build_instance(registry.problem(job.problem), dict(job.problem_settings))
        if validation is not None:
            instance = _validation_instance(instance, job, validation)
        if executor is None:  # with an executor, run_experiment checks what comes back here
            check_resources(job, instance, workers or min(os.cpu_count() or 1, job.n_runs))
        del instance
        logger.debug("%s: %s, %d runs on seeds %s", job.name, job.problem, job.n_runs, job.seeds)
        progress = None
        if not args.quiet:  # a bar per batch on a terminal: the whole suite is 20 batches and can take a minute
            from .cli import ProgressBar

            progress = ProgressBar()
            if progress.enabled:
                phase = "tuning" if job.name.endswith("-tune") else "test seeds"
                progress.stream.write(f"{job.problem} ({phase}): {job.n_runs} runs x {job.steps} steps\n")
        if executor is not None:  # the cluster's threads say how finely each batch is split
            return run_experiment(job, registry=registry, executor=executor, validation=validation, progress=progress)
        return run_experiment(job, registry=registry, workers=workers, validation=validation, progress=progress)

    outcome = run_protocol(experiment, registry=registry, command=command, run=run)
    path = save_outcome(outcome, experiment, args.out, plugins)
    if not args.quiet:
        print(format_report(outcome.report))
    print(
        f"results: {path} (protocol.json: every problem's numbers; each problem's test-seed runs: "
        f"{path} and {path / PROBLEMS_FOLDER})"
        if len(outcome.test_results) > 1
        else f"results: {path} (protocol.json: the comparison's numbers)"
    )
    return 0
