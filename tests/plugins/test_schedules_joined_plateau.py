"""sequential (schedules joined at milestones) and reduce_on_plateau (stateful) against torch and by hand.

torch.optim.lr_scheduler is the reference where it is installed: SequentialLR (each part restarted
at its milestone from the optimizer's initial lr) and ReduceLROnPlateau (fed the same losses).
The hand cases and the validation messages run without torch.
"""

import math
import warnings

import numpy as np
import pytest

from descentlab.errors import SpecError
from descentlab.experiment import Experiment
from descentlab.registry import load_registry
from descentlab.runner import run_experiment
from descentlab.schedule_values import ScheduleResultError, schedule_values


@pytest.fixture(scope="module")
def registry():
    registry = load_registry(entry_points=False, use_env=False)
    assert registry.errors == []
    return registry


def joined(registry, tables, milestones, bases, total):
    """α_t of a sequential schedule, checked as an experiment file would be, for runs with these base α."""
    from descentlab.schedule_values import check_parts

    structure = check_parts("s", {"schedules": tables, "milestones": milestones}, registry)
    hyper = {name: value[0] for name, value in structure.items()}
    return schedule_values(
        registry.schedule("sequential"), np.asarray(bases, dtype=float), hyper, total, lookup=registry.schedule
    )


def spec(schedule, learning_rate=(0.3,), steps=30, rule="gd", **extra):
    return {
        "steps": steps,
        "seeds": 1,
        "eval_every": 0,
        "problem": {"name": "quadratic", "condition": 5.0, "lambda_max": 1.0},
        "rules": [{"rule": rule, "learning_rate": list(learning_rate), "schedule": schedule, **extra}],
    }


# --- sequential: by hand ----------------------------------------------------------------------------


def test_sequential_torch_docs_example_by_hand(registry):
    # torch's SequentialLR docstring: ConstantLR(factor=0.1, total_iters=20) then ExponentialLR(0.9) at 20,
    # lr = 0.05: 0.005 up to t = 19, 0.05 at t = 20, 0.045 at 21, 0.0405 at 22. ConstantLR's 0.1·α until
    # its total_iters is a flat linear (start = end = 0.1) here.
    values = joined(
        registry,
        [
            {"name": "linear", "start_factor": 0.1, "end_factor": 0.1, "total_iters": 1},
            {"name": "exponential", "gamma": 0.9},
        ],
        [20],
        [0.05],
        25,
    )[:, 0]
    np.testing.assert_allclose(values[[0, 1, 19, 20, 21, 22]], [0.005, 0.005, 0.005, 0.05, 0.045, 0.0405], rtol=1e-14)


def test_sequential_part_counts_its_steps_from_its_milestone_and_its_horizon_is_its_segment(registry):
    # constant for 4 steps, then a cosine with t_max = 0 over the 8 steps left: α at t = 4, α/2 at t = 8
    # (half way through its segment), α(1 + cos(7π/8))/2 at the last step t = 11
    values = joined(registry, ["constant", {"name": "cosine"}], [4], [2.0], 12)[:, 0]
    np.testing.assert_allclose(values[:4], 2.0)
    np.testing.assert_allclose(values[[4, 8, 11]], [2.0, 1.0, 1.0 + math.cos(7 * math.pi / 8)], rtol=1e-14)
    # a milestone past the run: the later part never runs
    np.testing.assert_allclose(joined(registry, ["constant", "cosine"], [50], [2.0], 12)[:, 0], 2.0)


# --- sequential: torch -------------------------------------------------------------------------------


def torch_sequential(make_parts, milestones, base, steps):
    """The lr torch's optimizer uses at update t = 0..steps−1 under SequentialLR(parts, milestones)."""
    torch = pytest.importorskip("torch")
    p = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.SGD([p], lr=base)
    out = []
    with warnings.catch_warnings():  # torch warns that get_lr was called outside step: not ours to fix
        warnings.simplefilter("ignore", UserWarning)
        scheduler = torch.optim.lr_scheduler.SequentialLR(opt, make_parts(opt), milestones=milestones)
        for _ in range(steps):
            out.append(opt.param_groups[0]["lr"])
            opt.step()
            scheduler.step()
    return np.array(out)


SEQUENTIAL_CASES = {
    # torch LinearLR warmup then CosineAnnealingLR
    "linear warmup then cosine": (
        [
            {"name": "linear", "start_factor": 0.1, "end_factor": 1.0, "total_iters": 10},
            {"name": "cosine", "t_max": 25, "min_lr_fraction": 0.0},
        ],
        [10],
        lambda L, opt: [
            L.LinearLR(opt, start_factor=0.1, end_factor=1.0, total_iters=10),
            L.CosineAnnealingLR(opt, T_max=25),
        ],
        [10],
    ),
    # torch ConstantLR then ExponentialLR; ConstantLR(0.5, 5) is here a flat linear until 5, then constant
    "constant then exponential": (
        [
            {"name": "linear", "start_factor": 0.5, "end_factor": 0.5, "total_iters": 1},
            "constant",
            {"name": "exponential", "gamma": 0.9},
        ],
        [5, 12],
        lambda L, opt: [L.ConstantLR(opt, factor=0.5, total_iters=5), L.ExponentialLR(opt, gamma=0.9)],
        [12],
    ),
    # three torch parts: step decay, polynomial, multistep
    "step, polynomial, multistep": (
        [
            {"name": "step", "step_size": 3, "gamma": 0.5},
            {"name": "polynomial", "total_iters": 8, "power": 2.0},
            {"name": "multistep", "milestone_1": 2, "milestone_2": 5, "milestone_3": 0, "milestone_4": 0, "gamma": 0.3},
        ],
        [7, 19],
        lambda L, opt: [
            L.StepLR(opt, step_size=3, gamma=0.5),
            L.PolynomialLR(opt, total_iters=8, power=2.0),
            L.MultiStepLR(opt, milestones=[2, 5], gamma=0.3),
        ],
        [7, 19],
    ),
}


@pytest.mark.parametrize("case", sorted(SEQUENTIAL_CASES))
def test_sequential_matches_torch_sequential_lr(registry, case):
    pytest.importorskip("torch")
    import torch

    tables, milestones, make_parts, torch_milestones = SEQUENTIAL_CASES[case]
    bases, total = [0.05, 0.7, 3.0], 40
    values = joined(registry, tables, milestones, bases, total)
    for r, base in enumerate(bases):
        expected = torch_sequential(
            lambda opt: make_parts(torch.optim.lr_scheduler, opt), torch_milestones, base, total
        )
        np.testing.assert_allclose(values[:, r], expected, rtol=1e-12, atol=1e-13 * base, err_msg=f"{case} α={base}")


def test_more_than_four_milestones_are_flat_linear_parts_joined_as_multistep_lr(registry):
    # docs/schedules.md: MultiStepLR with any number of milestones m_k is a sequential of flat linear parts
    # γ^k·α (start = end = γ^k) starting at m_k; against torch's MultiStepLR with seven milestones
    torch = pytest.importorskip("torch")
    milestones, gamma, total = [3, 5, 9, 14, 20, 27, 33], 0.7, 40
    tables = ["constant"] + [
        {"name": "linear", "start_factor": gamma**k, "end_factor": gamma**k, "total_iters": 1}
        for k in range(1, len(milestones) + 1)
    ]
    bases = [0.05, 1.3]
    values = joined(registry, tables, milestones, bases, total)
    for r, base in enumerate(bases):
        p = torch.zeros(1, dtype=torch.float64, requires_grad=True)
        opt = torch.optim.SGD([p], lr=base)
        scheduler = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=milestones, gamma=gamma)
        expected = []
        for _ in range(total):
            expected.append(opt.param_groups[0]["lr"])
            opt.step()
            scheduler.step()
        np.testing.assert_allclose(values[:, r], expected, rtol=1e-13, atol=0)


@pytest.mark.parametrize("workers", [1, 2])
def test_sequential_run_records_its_rates_and_keeps_its_spec(registry, workers, tmp_path):
    tables = [
        {"name": "linear", "start_factor": 0.1, "end_factor": 1.0, "total_iters": 10},
        "cosine",
        {"name": "step", "step_size": 2, "gamma": 0.5},
    ]
    experiment = Experiment.from_dict(
        spec({"name": "sequential", "schedules": tables, "milestones": [10, 25]}, learning_rate=[0.3, 1.5]), registry
    )
    assert len(experiment.runs()) == 2  # the parts and milestones are one grid point, not axes
    # a results folder is read back, and a worker process rebuilds the experiment, without the registry
    for again in (
        Experiment.from_dict(experiment.to_dict(), registry),
        Experiment.from_dict(experiment.to_dict(), strict=False),
    ):
        assert again.entries[0].schedule_hyper == experiment.entries[0].schedule_hyper
    results = run_experiment(experiment, registry=registry, workers=workers)
    if workers == 1:  # a results folder keeps the parts (experiment.toml) and reads back the same runs
        from descentlab.records import load_results, save_results

        loaded = load_results(save_results(results, tmp_path))
        assert loaded.experiment.entries[0].schedule_hyper == experiment.entries[0].schedule_hyper
        np.testing.assert_array_equal(loaded.metrics.learning_rate.to_numpy(), results.metrics.learning_rate.to_numpy())
    expected = joined(registry, tables, [10, 25], [0.3, 1.5], 30)
    assert len(results.runs) == 2
    for r, run in enumerate(results.runs.itertuples()):
        rows = results.metrics[results.metrics.run_id == run.run_id].sort_values("step")
        np.testing.assert_array_equal(rows.learning_rate.to_numpy()[:30], expected[:, r])


@pytest.mark.parametrize(
    "schedule, field, accepted",
    [
        ({"name": "sequential", "milestones": [5]}, "rules[0].schedule.schedules", "list of schedule tables"),
        (
            {"name": "sequential", "schedules": ["constant", "nope"], "milestones": [5]},
            "rules[0].schedule.schedules[1].name",
            "closed-form schedule",
        ),
        (
            {"name": "sequential", "schedules": ["constant", "reduce_on_plateau"], "milestones": [5]},
            "rules[0].schedule.schedules[1].name",
            "closed-form schedule",
        ),
        (
            {"name": "sequential", "schedules": ["constant", "cosine"], "milestones": [5, 9]},
            "rules[0].schedule.milestones",
            "a list of 1 strictly increasing integer steps >= 1",
        ),
        (
            {"name": "sequential", "schedules": ["constant", "cosine", "constant"], "milestones": [9, 9]},
            "rules[0].schedule.milestones",
            "strictly increasing",
        ),
        (
            {"name": "sequential", "schedules": ["constant", {"name": "cosine", "t_max": [5, 9]}], "milestones": [3]},
            "rules[0].schedule.schedules[1].t_max",
            "not swept",
        ),
        (
            {"name": "sequential", "schedules": ["constant", {"name": "cosine", "gamma": 0.5}], "milestones": [3]},
            "rules[0].schedule.schedules[1]",
            "unknown key",
        ),
        ({"name": "reduce_on_plateau", "warmup_steps": 5}, "rules[0].schedule.warmup_steps", "0 for a stateful"),
        ({"name": "reduce_on_plateau", "factor": 1.0}, "rules[0].schedule.factor", "(0, 1)"),
    ],
)
def test_bad_schedule_tables_are_one_line_naming_field_and_accepted(registry, schedule, field, accepted):
    with pytest.raises(SpecError) as info:
        Experiment.from_dict(spec(schedule), registry)
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"{field}: got ") and accepted in message, message


# --- reduce_on_plateau: the schedule against torch fed the same losses -------------------------------

PLATEAU_ROWS = [  # one run per row: torch's defaults, short patience, cooldown, min_lr clamp, abs mode, eps
    {
        "factor": 0.1,
        "patience": 10,
        "threshold": 1e-4,
        "abs_threshold": False,
        "cooldown": 0,
        "min_lr": 0.0,
        "eps": 1e-8,
    },
    {
        "factor": 0.5,
        "patience": 2,
        "threshold": 1e-4,
        "abs_threshold": False,
        "cooldown": 0,
        "min_lr": 0.0,
        "eps": 1e-8,
    },
    {
        "factor": 0.5,
        "patience": 1,
        "threshold": 0.05,
        "abs_threshold": False,
        "cooldown": 3,
        "min_lr": 0.0,
        "eps": 1e-8,
    },
    {
        "factor": 0.3,
        "patience": 0,
        "threshold": 1e-4,
        "abs_threshold": False,
        "cooldown": 0,
        "min_lr": 0.02,
        "eps": 1e-8,
    },
    {"factor": 0.5, "patience": 2, "threshold": 0.01, "abs_threshold": True, "cooldown": 1, "min_lr": 0.0, "eps": 1e-8},
    {"factor": 0.9, "patience": 0, "threshold": 0.0, "abs_threshold": True, "cooldown": 0, "min_lr": 0.0, "eps": 0.015},
]


def plateau_losses(steps=120, seed=0):
    """Losses with descents, flat stretches, improvements below the threshold, noise, NaN and inf."""
    rng = np.random.default_rng(seed)
    loss = np.concatenate(
        [
            np.linspace(1.0, 0.5, 20),
            np.full(15, 0.5),
            0.5 * (1 - 1e-5) ** np.arange(15),
            0.49 - 0.002 * np.arange(20),
            0.45 + 0.01 * rng.standard_normal(30),
            [np.nan, np.inf, 0.44, np.nan],
            np.full(steps - 104, 0.3),
        ]
    )
    return loss[:steps]


def torch_plateau(row, base, losses):
    """lr after each ReduceLROnPlateau.step(loss): the α of the next step."""
    torch = pytest.importorskip("torch")
    p = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.SGD([p], lr=base)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        opt,
        mode="min",
        factor=row["factor"],
        patience=row["patience"],
        threshold=row["threshold"],
        threshold_mode="abs" if row["abs_threshold"] else "rel",
        cooldown=row["cooldown"],
        min_lr=row["min_lr"],
        eps=row["eps"],
    )
    out = []
    for loss in losses:
        scheduler.step(float(loss))
        out.append(opt.param_groups[0]["lr"])
    return np.array(out)


def plateau_rates(registry, rows, bases, losses):
    schedule = registry.schedule("reduce_on_plateau")
    hyper = {key: np.array([float(row[key]) for row in rows]) for key in rows[0]}
    state = schedule.init(np.asarray(bases, dtype=float), hyper)
    out = []
    for t, loss in enumerate(losses):
        rate, state = schedule.update(np.full(len(rows), loss), state, hyper, t)
        out.append(rate)
    return np.array(out)


def test_reduce_on_plateau_matches_torch_fed_the_same_losses(registry):
    pytest.importorskip("torch")
    bases, losses = [0.8, 0.1, 0.5, 1.0, 0.4, 0.2], plateau_losses()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # NaN and inf losses: no warning from the schedule
        ours = plateau_rates(registry, PLATEAU_ROWS, bases, losses)
    for r, (row, base) in enumerate(zip(PLATEAU_ROWS, bases)):
        expected = torch_plateau(row, base, losses)
        np.testing.assert_allclose(ours[:, r], expected, rtol=1e-12, atol=0, err_msg=f"row {r} {row}")
        assert len(np.unique(expected)) > 2, f"row {r} must reduce at least twice to test anything"
    assert ours[-1, 3] == 0.02  # clamped at min_lr
    # eps = 0.015: 0.2 → 0.18 → 0.162 → 0.1458, then 0.1458 − 0.13122 < eps and α stays
    np.testing.assert_allclose(ours[-1, 5], 0.2 * 0.9**3, rtol=1e-15)


def test_reduce_on_plateau_by_hand(registry):
    # patience 1, factor 0.5, cooldown 1, rel threshold 0.1: losses 1 (best), 0.95 (not 10% better: bad 1),
    # 0.95 (bad 2 > 1: α halves, cooldown 1), 0.95 (cooldown: bad ignored), 0.95 (bad 1), 0.95 (bad 2: halves),
    # 0.5 (better), 0.5 (bad 1)
    row = {
        "factor": 0.5,
        "patience": 1,
        "threshold": 0.1,
        "abs_threshold": False,
        "cooldown": 1,
        "min_lr": 0.0,
        "eps": 1e-8,
    }
    rates = plateau_rates(registry, [row], [1.0], [1.0, 0.95, 0.95, 0.95, 0.95, 0.95, 0.5, 0.5])[:, 0]
    np.testing.assert_array_equal(rates, [1, 1, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25])


def test_stateful_schedule_is_not_computed_ahead(registry):
    with pytest.raises(ScheduleResultError, match="is stateful"):
        schedule_values(registry.schedule("reduce_on_plateau"), [0.1], {}, 10)


# --- reduce_on_plateau in a whole run ----------------------------------------------------------------


def test_run_under_reduce_on_plateau_records_torchs_rates_for_its_own_losses(registry):
    # momentum 0.95 on the quadratic: the loss oscillates, so steps without improvement come and α drops.
    # α = 1e200 overflows at once (dropped by the loop at its non-finite loss, no warning); another entry on the same
    # chunk keeps its closed-form schedule.
    pytest.importorskip("torch")
    steps, row = (
        80,
        {
            "factor": 0.5,
            "patience": 3,
            "threshold": 1e-3,
            "abs_threshold": False,
            "cooldown": 2,
            "min_lr": 1e-3,
            "eps": 1e-8,
        },
    )
    document = spec(
        {"name": "reduce_on_plateau", **row},
        learning_rate=[0.3, 1.0, 1e200],
        steps=steps,
        rule="momentum",
        momentum=0.95,
    )
    document["divergence_factor"] = 1e300
    document["rules"].append({"rule": "gd", "learning_rate": 0.2, "schedule": {"name": "exponential", "gamma": 0.9}})
    experiment = Experiment.from_dict(document, registry)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        results = run_experiment(experiment, registry=registry, workers=1)
    reduced = 0
    for run in results.runs.itertuples():
        rows = results.metrics[results.metrics.run_id == run.run_id].sort_values("step")
        recorded = rows.learning_rate.to_numpy()
        if run.label.startswith("gd"):
            np.testing.assert_allclose(recorded[:steps], 0.2 * 0.9 ** np.arange(steps), rtol=1e-13)
            continue
        losses = rows.loss.to_numpy()
        if run.learning_rate == 1e200:
            assert run.status == "diverged"
        else:
            assert run.status != "diverged" and len(recorded) == steps + 1
        last = len(losses) - 1 if run.status == "diverged" else steps - 1  # α of the rows with an update
        # α_0 = α; α_{t+1} = torch's lr after step(loss_t)
        expected = np.concatenate([[run.learning_rate], torch_plateau(row, run.learning_rate, losses[:last])])
        np.testing.assert_allclose(recorded[: last + 1], expected, rtol=1e-13, err_msg=f"α = {run.learning_rate}")
        reduced += len(np.unique(expected)) - 1
    assert reduced >= 3  # the comparison saw reductions


@pytest.mark.parametrize("where", ["init", "update", "shape"])
def test_failing_stateful_schedule_fails_its_entry_only(registry, where):
    from descentlab import Schedule
    from descentlab.registry import Registry

    def init(base, hyper):
        if where == "init":
            raise ZeroDivisionError("no plateau today")
        return base.copy()

    def update(loss, state, hyper, step):
        if step == 3 and where == "update":
            raise ZeroDivisionError("no plateau today")
        return (np.ones(7) if step == 3 and where == "shape" else state), state

    own = Registry(
        rules=dict(registry.rules),
        schedules={
            **registry.schedules,
            "broken": Schedule("broken", None, stateful=True, init=init, update=update, summary="s", formula="f"),
        },
        problems=dict(registry.problems),
        transforms=dict(registry.transforms),
    )
    document = spec({"name": "broken"}, learning_rate=[0.1, 0.2], steps=10)
    document["rules"].append({"rule": "gd", "learning_rate": 0.1})
    results = run_experiment(Experiment.from_dict(document, own), registry=own, workers=1)
    status = results.runs.set_index("label").status
    assert list(status["gd + broken"]) == ["failed", "failed"] and status["gd"] != "failed"
    error = results.runs[results.runs.label == "gd + broken"].error.iloc[0]
    expected = "expected 2 finite learning rates" if where == "shape" else "no plateau today"
    assert error.startswith("schedule 'broken'") and expected in error and "\n" not in error, error
    gd = results.metrics[results.metrics.run_id == 2]
    assert len(gd) == 11 and np.isfinite(gd.loss).all()  # the other entry trained every step


def test_schedule_preview_draws_closed_form_and_says_in_one_line_it_cannot_draw_a_stateful_one(registry):
    from descentlab.dashboard.fig_curves import schedule_preview

    figure = schedule_preview(
        registry.schedule("sequential"),
        0.5,
        {"milestones": [3], "schedules": [{"name": "constant"}, {"name": "exponential", "gamma": 0.5}]},
        6,
        lookup=registry.schedule,
    )
    np.testing.assert_allclose(figure.data[0].y, [0.5, 0.5, 0.5, 0.5, 0.25, 0.125])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        figure = schedule_preview(registry.schedule("reduce_on_plateau"), 0.5, {"patience": 10}, 6)
    assert not figure.data
    title = figure.layout.title.text.replace("<br>", " ")
    assert "reduce_on_plateau is stateful" in title and "cannot be drawn before running" in title


def test_descentlab_plugins_lists_both_with_their_kind(capsys):
    from descentlab.cli import main

    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    assert "  sequential  [built-in]" in out and "joins schedules: schedules = [" in out
    assert "  reduce_on_plateau  [built-in]" in out and "stateful: α_t follows each run's training loss" in out
    assert "patience=10  an integer in [0, inf)" in out
