"""Built-in schedules and linear warmup against torch.optim.lr_scheduler (skipped without torch).

Contract checked here (descentlab.schedule_values): for t < W, α_t = α·(t+1)/W; for t ≥ W,
α_t = schedule(t − W) computed with total_steps − W. In torch that is
SequentialLR([LinearLR(start_factor=1/W, end_factor=1, total_iters=W−1), main], milestones=[W])
— note total_iters = W − 1, not the W one might write first (that one reaches α a step later).
"""

import math
import warnings

import numpy as np
import pytest

from descentlab.experiment import Experiment
from descentlab.registry import load_registry
from descentlab.runner import run_experiment
from descentlab.schedule_values import schedule_values

torch = pytest.importorskip("torch")
L = torch.optim.lr_scheduler

TOTAL = 30


@pytest.fixture(scope="module")
def registry():
    registry = load_registry(entry_points=False, use_env=False)
    assert registry.errors == []
    return registry


def torch_learning_rates(make_scheduler, base, steps=TOTAL):
    """The lr torch's optimizer uses at update t = 0..steps−1 (scheduler.step() after each update)."""
    p = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.SGD([p], lr=base)
    scheduler = make_scheduler(opt)
    out = []
    for _ in range(steps):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        scheduler.step()
    return np.array(out)


def wsd_factor(t, total, row):
    """α_t / α of warmup–stable–decay, one step at a time in plain Python."""
    warm, decay = math.floor(row["warmup_fraction"] * total + 0.5), math.floor(row["decay_fraction"] * total + 0.5)
    rise = min(1.0, (t + 1) / warm) if warm else 1.0
    p = min(max((t - (total - decay) + 1) / decay, 0.0), 1.0) if decay else 0.0
    phi = row["min_lr_fraction"]
    fall = phi + (1 - phi) * (1 + math.cos(math.pi * p)) / 2 if row["cosine_decay"] else 1 - (1 - phi) * p
    return min(rise, fall)


def torch_main(name, row, total):
    """The torch scheduler equivalent to a descentlab schedule row, for a run of ``total`` steps."""
    if name == "constant":
        return lambda opt: L.LambdaLR(opt, lambda t: 1.0)
    if name == "step":
        return lambda opt: L.StepLR(opt, step_size=row["step_size"], gamma=row["gamma"])
    if name == "multistep":
        milestones = [row[f"milestone_{k}"] for k in range(1, 5) if row[f"milestone_{k}"] > 0]
        return lambda opt: L.MultiStepLR(opt, milestones=milestones, gamma=row["gamma"])
    if name == "polynomial":
        return lambda opt: L.PolynomialLR(opt, total_iters=row["total_iters"] or total, power=row["power"])
    if name == "linear":
        return lambda opt: L.LinearLR(
            opt, start_factor=row["start_factor"], end_factor=row["end_factor"], total_iters=row["total_iters"] or total
        )
    if name == "exponential":
        return lambda opt: L.ExponentialLR(opt, gamma=row["gamma"])
    if name == "inverse_time":
        return lambda opt: L.LambdaLR(opt, lambda t: 1.0 / (1.0 + row["decay"] * t))
    if name == "cosine":
        t_max = row["t_max"] or total
        return lambda opt: L.CosineAnnealingLR(opt, T_max=t_max, eta_min=row["min_lr_fraction"] * opt.defaults["lr"])
    if name == "cosine_restarts":
        return lambda opt: L.CosineAnnealingWarmRestarts(
            opt, T_0=row["t_0"], T_mult=row["t_mult"], eta_min=row["min_lr_fraction"] * opt.defaults["lr"]
        )
    if name == "one_cycle":
        return lambda opt: L.OneCycleLR(
            opt,
            max_lr=opt.defaults["lr"],
            total_steps=int(total),
            pct_start=row["pct_start"],
            anneal_strategy="linear" if row["linear_anneal"] else "cos",
            div_factor=row["div_factor"],
            final_div_factor=row["final_div_factor"],
            three_phase=bool(row.get("three_phase", False)),
            cycle_momentum=False,
        )
    if name == "cyclic":
        return lambda opt: L.CyclicLR(
            opt,
            base_lr=opt.defaults["lr"],
            max_lr=row["max_lr"],
            step_size_up=row["step_size_up"],
            step_size_down=row["step_size_down"] or None,
            mode="exp_range"
            if row.get("gamma", 1.0) != 1.0
            else ("triangular2" if row["triangular2"] else "triangular"),
            gamma=row.get("gamma", 1.0),
            cycle_momentum=False,
        )
    if name == "wsd":  # no torch scheduler: LambdaLR of the hand-written factor (see also the SequentialLR test)
        return lambda opt: L.LambdaLR(opt, lambda t: wsd_factor(t, total, row))
    if name == "exponential_ramp":  # torch has no range-test scheduler: its LambdaLR of the same factor
        return lambda opt: L.LambdaLR(opt, lambda t: (row["end_lr"] / opt.defaults["lr"]) ** (t / total))
    raise KeyError(name)


ROWS = {
    "constant": [{}, {}, {}],
    "step": [{"step_size": 4, "gamma": 0.5}, {"step_size": 1, "gamma": 0.9}, {"step_size": 7, "gamma": 0.1}],
    # unsorted milestones, a repeated one (counts twice, as torch's Counter), and milestones past T
    "multistep": [
        {"milestone_1": 5, "milestone_2": 12, "milestone_3": 20, "milestone_4": 0, "gamma": 0.5},
        {"milestone_1": 9, "milestone_2": 3, "milestone_3": 9, "milestone_4": 25, "gamma": 0.1},
        {"milestone_1": 40, "milestone_2": 0, "milestone_3": 0, "milestone_4": 1, "gamma": 0.9},
    ],
    "exponential": [{"gamma": 0.9}, {"gamma": 0.5}, {"gamma": 0.999}],
    # total_iters 0 = the run's length; 10 and 17 reach 0 before the end and stay there
    "polynomial": [
        {"total_iters": 0, "power": 1.0},
        {"total_iters": 10, "power": 2.0},
        {"total_iters": 17, "power": 0.5},
    ],
    "linear": [
        {"start_factor": 1.0, "end_factor": 0.0, "total_iters": 0},
        {"start_factor": 0.25, "end_factor": 1.0, "total_iters": 8},
        {"start_factor": 0.5, "end_factor": 0.1, "total_iters": 13},
    ],
    "inverse_time": [{"decay": 0.1}, {"decay": 1.0}, {"decay": 0.0}],
    # t_max 0 = the run's length; t_max 8 and 5 go well past T, where the cosine climbs back up.
    "cosine": [
        {"t_max": 0, "min_lr_fraction": 0.0},
        {"t_max": 8, "min_lr_fraction": 0.1},
        {"t_max": 5, "min_lr_fraction": 0.5},
    ],
    "exponential_ramp": [{"end_lr": 10.0}, {"end_lr": 50.0}, {"end_lr": 1.0}],
    # restarts every 7 steps; cycles 3, 6, 12, ...; cycles 2, 6, 18 (t_mult 3) with η_min = α/2
    "cosine_restarts": [
        {"t_0": 7, "t_mult": 1, "min_lr_fraction": 0.0},
        {"t_0": 3, "t_mult": 2, "min_lr_fraction": 0.1},
        {"t_0": 2, "t_mult": 3, "min_lr_fraction": 0.5},
    ],
    # max_lr above α; triangular2 with a longer way down; max_lr below α (the cycle dips)
    "cyclic": [
        {"max_lr": 0.5, "step_size_up": 4, "step_size_down": 0, "triangular2": False},
        {"max_lr": 3.0, "step_size_up": 3, "step_size_down": 5, "triangular2": True},
        {"max_lr": 0.01, "step_size_up": 2, "step_size_down": 7, "triangular2": True},
    ],
    # overlapping ramps (0.5 + 0.6 > 1); no warmup, cosine decay to α/10; no decay at all
    "wsd": [
        {"warmup_fraction": 0.5, "decay_fraction": 0.6, "min_lr_fraction": 0.0, "cosine_decay": False},
        {"warmup_fraction": 0.0, "decay_fraction": 0.3, "min_lr_fraction": 0.1, "cosine_decay": True},
        {"warmup_fraction": 0.2, "decay_fraction": 0.0, "min_lr_fraction": 0.5, "cosine_decay": False},
    ],
    "one_cycle": [
        {"pct_start": 0.3, "div_factor": 25.0, "final_div_factor": 1e4, "linear_anneal": False},
        {"pct_start": 0.5, "div_factor": 10.0, "final_div_factor": 100.0, "linear_anneal": True},
        {"pct_start": 0.1, "div_factor": 4.0, "final_div_factor": 1e3, "linear_anneal": False, "three_phase": True},
    ],
}
BASES = np.array([0.1, 2.0, 0.03])


def full_rows(schedule, name):
    return [{h.name: row.get(h.name, h.default) for h in schedule.hyperparams} for row in ROWS[name]]


def hyper_columns(rows):
    return {key: np.array([float(row[key]) for row in rows]) for key in rows[0]}


def test_every_builtin_schedule_has_a_torch_counterpart(registry):
    # sequential and reduce_on_plateau are compared with torch in test_schedules_joined_plateau.py
    assert set(ROWS) == {name for name, s in registry.schedules.items() if not (s.joins or s.stateful)}


@pytest.mark.parametrize("name", sorted(ROWS))
def test_schedule_matches_torch_lr_scheduler_for_each_run(registry, name):
    schedule = registry.schedule(name)
    rows = full_rows(schedule, name)
    values = schedule_values(schedule, BASES, hyper_columns(rows), TOTAL, 0)
    assert values.shape == (TOTAL, len(rows))
    for r, row in enumerate(rows):
        expected = torch_learning_rates(torch_main(name, row, TOTAL), BASES[r])
        # torch's schedulers are recursive (lr_t from lr_{t−1}); a few ulps of drift, relative to α.
        np.testing.assert_allclose(values[:, r], expected, rtol=1e-12, atol=1e-13 * BASES[r], err_msg=f"row {r}")


def test_cosine_past_t_max_follows_torchs_period_2t(registry):
    # T = 4 over 20 steps: down to η_min at t = 4, back to α at t = 8, down at 12, ...
    rows = [{"t_max": 4, "min_lr_fraction": 0.25}]
    values = schedule_values(registry.schedule("cosine"), [1.0], hyper_columns(rows), 20, 0)[:, 0]
    np.testing.assert_allclose(values[[0, 4, 8, 12, 16]], [1.0, 0.25, 1.0, 0.25, 1.0], rtol=1e-15)
    expected = torch_learning_rates(torch_main("cosine", rows[0], 20), 1.0, steps=20)
    np.testing.assert_allclose(values, expected, rtol=1e-12, atol=1e-13)


def test_cosine_restarts_over_many_cycles_matches_torch(registry):
    # Nine runs in one call, T_0 ∈ {1, 2, 5} × T_mult ∈ {1, 2, 3}, over 400 steps: dozens of restarts for
    # T_mult 1 and cycle starts up to 3^5 for T_mult 3, where the closed form's log must land on integers.
    rows = [{"t_0": t0, "t_mult": m, "min_lr_fraction": 0.2} for t0 in (1, 2, 5) for m in (1, 2, 3)]
    steps, bases = 400, np.linspace(0.1, 0.9, 9)
    values = schedule_values(registry.schedule("cosine_restarts"), bases, hyper_columns(rows), steps, 0)
    for r, row in enumerate(rows):
        expected = torch_learning_rates(torch_main("cosine_restarts", row, steps), bases[r], steps)
        np.testing.assert_allclose(values[:, r], expected, rtol=1e-12, atol=1e-13, err_msg=str(row))


def test_cyclic_exp_range_matches_torch_in_one_call_with_triangular_runs(registry):
    # torch mode "exp_range": the triangle's amplitude times γ^t (scale_mode "iterations")
    rows = [
        {"max_lr": m, "step_size_up": u, "step_size_down": d, "triangular2": False, "gamma": g}
        for m, u, d, g in ((0.8, 3, 2, 0.9), (0.05, 4, 0, 0.99), (2.0, 1, 5, 0.5), (0.8, 3, 2, 1.0))
    ]
    bases = np.array([0.1, 0.01, 0.3, 0.1])
    values = schedule_values(registry.schedule("cyclic"), bases, hyper_columns(rows), 50, 0)
    for r, row in enumerate(rows):
        expected = torch_learning_rates(torch_main("cyclic", row, 50), bases[r], 50)
        np.testing.assert_allclose(values[:, r], expected, rtol=1e-12, atol=1e-13, err_msg=str(row))
    # by hand: u = 3, d = 2 (L = 5): the top of the first cycle at t = 3 is α + (max_lr − α)·0.9³
    assert values[3, 0] == pytest.approx(0.1 + 0.7 * 0.9**3, rel=1e-14)


def test_one_cycle_three_phase_matches_torch_in_one_call_with_two_phase_runs(registry):
    # torch three_phase=True: up to α at E = pct·T − 1, back to α/div_factor at 2E, then to the last rate
    rows = [
        {"pct_start": p, "div_factor": d, "final_div_factor": f, "linear_anneal": lin, "three_phase": three}
        for p, d, f, lin, three in (
            (0.3, 25.0, 1e4, False, True),
            (0.25, 10.0, 100.0, True, True),
            (0.45, 4.0, 10.0, False, True),
            (0.3, 25.0, 1e4, False, False),
            (0.1, 3.0, 7.0, True, True),
        )
    ]
    for steps in (40, 101):
        bases = np.array([0.5, 1.0, 0.2, 0.5, 2.0])
        values = schedule_values(registry.schedule("one_cycle"), bases, hyper_columns(rows), steps, 0)
        for r, row in enumerate(rows):
            expected = torch_learning_rates(torch_main("one_cycle", row, steps), bases[r], steps)
            np.testing.assert_allclose(values[:, r], expected, rtol=1e-12, atol=1e-13, err_msg=str(row))
    # by hand at T = 40, pct 0.3: peak at E = 11, back at α/25 at 22, α/25e4 at 39
    values = schedule_values(registry.schedule("one_cycle"), [0.5], hyper_columns(rows[:1]), 40, 0)[:, 0]
    np.testing.assert_allclose(values[[0, 11, 22, 39]], [0.02, 0.5, 0.02, 0.02 / 1e4], rtol=1e-13)


def test_one_cycle_edges_match_torch(registry):
    # pct_start 0 and 0.004 (peak step E < 0: no rising phase), 0.995 (a falling phase of half a step), odd T.
    # (pct_start 1 cannot be checked: torch divides by zero on the scheduler step after the last update.)
    rows = [
        {"pct_start": p, "div_factor": d, "final_div_factor": f, "linear_anneal": lin}
        for p, d, f, lin in (
            (0.0, 25.0, 1e4, False),
            (0.004, 10.0, 10.0, True),
            (0.995, 5.0, 2.0, False),
            (0.995, 5.0, 2.0, True),
            (0.37, 3.0, 7.0, False),
        )
    ]
    steps, bases = 101, np.array([0.5, 1.0, 0.2, 0.3, 2.0])
    values = schedule_values(registry.schedule("one_cycle"), bases, hyper_columns(rows), steps, 0)
    for r, row in enumerate(rows):
        expected = torch_learning_rates(torch_main("one_cycle", row, steps), bases[r], steps)
        np.testing.assert_allclose(values[:, r], expected, rtol=1e-12, atol=1e-13, err_msg=str(row))


@pytest.mark.parametrize("cosine_decay", [False, True])
def test_wsd_is_torchs_warmup_constant_decay_sequence(registry, cosine_decay):
    # WSD built from torch pieces, for T = 40: two runs in one call, W = 8 / D = 12 (φ = 0.1) and
    # W = 4 / D = 20 (φ = 0). SequentialLR: LinearLR ramp (as in the warmup tests), constant, then
    # LinearLR(1 − (1 − φ)/D → φ over D − 1 updates), or CosineAnnealingLR(T_max = D) started one
    # step early at S − 1, where its first value α is the stable one.
    total, bases = 40, np.array([0.3, 1.5])
    rows = [
        {"warmup_fraction": 0.2, "decay_fraction": 0.3, "min_lr_fraction": 0.1, "cosine_decay": cosine_decay},
        {"warmup_fraction": 0.1, "decay_fraction": 0.5, "min_lr_fraction": 0.0, "cosine_decay": cosine_decay},
    ]
    values = schedule_values(registry.schedule("wsd"), bases, hyper_columns(rows), total, 0)
    for r, (row, (warm, decay)) in enumerate(zip(rows, [(8, 12), (4, 20)])):
        phi, start = row["min_lr_fraction"], total - decay

        def make(opt):
            ramp = L.LinearLR(opt, start_factor=1.0 / warm, end_factor=1.0, total_iters=warm - 1)
            stable = L.LambdaLR(opt, lambda t: 1.0)
            if cosine_decay:
                fall = L.CosineAnnealingLR(opt, T_max=decay, eta_min=phi * opt.defaults["lr"])
                return L.SequentialLR(opt, [ramp, stable, fall], milestones=[warm, start - 1])
            fall = L.LinearLR(opt, start_factor=1 - (1 - phi) / decay, end_factor=phi, total_iters=decay - 1)
            return L.SequentialLR(opt, [ramp, stable, fall], milestones=[warm, start])

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            expected = torch_learning_rates(make, bases[r], total)
        np.testing.assert_allclose(values[:, r], expected, rtol=1e-12, atol=1e-13, err_msg=str(row))
        assert values[warm - 1, r] == bases[r] and values[-1, r] == pytest.approx(phi * bases[r], abs=1e-15)


# --- warmup ----------------------------------------------------------------------------------------------


def torch_warmup_then(name, row, warmup, total):
    """SequentialLR: LinearLR from α/W to α over W−1 updates, then the main schedule restarted at 0."""
    main = torch_main(name, row, total - warmup)

    def make(opt):
        ramp = L.LinearLR(opt, start_factor=1.0 / warmup, end_factor=1.0, total_iters=warmup - 1)
        return L.SequentialLR(opt, [ramp, main(opt)], milestones=[warmup])

    return make


OWN_INITIAL_LR = {"one_cycle"}


@pytest.mark.parametrize("name", sorted(ROWS))
def test_warmup_then_schedule_matches_torch_sequential_lr(registry, name):
    # Three runs of one call with different W (0, 2 and 6): schedule_values groups them by W.
    schedule = registry.schedule(name)
    rows = full_rows(schedule, name)
    warmups = np.array([6, 0, 2])
    values = schedule_values(schedule, BASES, hyper_columns(rows), TOTAL, warmups)
    for r, (row, w) in enumerate(zip(rows, warmups)):
        np.testing.assert_allclose(values[:w, r], BASES[r] * np.arange(1, w + 1) / w, rtol=1e-15)
        if w and name in OWN_INITIAL_LR:
            # OneCycleLR rewrites group["initial_lr"] (to max_lr / div_factor), which SequentialLR then
            # uses to restart the LinearLR ramp: torch cannot compose it after a warmup. Check the same
            # contract piecewise: the ramp above, then the torch scheduler alone over T − W steps.
            expected = np.concatenate(
                [
                    BASES[r] * np.arange(1, w + 1) / w,
                    torch_learning_rates(torch_main(name, row, TOTAL - w), BASES[r], TOTAL - w),
                ]
            )
        else:
            make = torch_warmup_then(name, row, w, TOTAL) if w else torch_main(name, row, TOTAL)
            with warnings.catch_warnings():
                # SequentialLR restarts the main scheduler with step(0), which torch flags as deprecated.
                warnings.simplefilter("ignore", UserWarning)
                expected = torch_learning_rates(make, BASES[r])
        np.testing.assert_allclose(values[:, r], expected, rtol=1e-12, atol=1e-13 * BASES[r], err_msg=f"W={w}")


def test_torchs_usual_linear_lr_warmup_differs_by_one_step():
    # The common recipe LinearLR(start_factor=1/W, total_iters=W) gives α(1/W + (1 − 1/W) t/W): it
    # reaches α at t = W, one update later than descentlab's α(t+1)/W (same first value α/W).
    w, alpha = 4, 1.0
    torch_usual = torch_learning_rates(lambda opt: L.LinearLR(opt, start_factor=1 / w, total_iters=w), alpha, w + 1)
    ours = alpha * np.minimum(np.arange(1, w + 2) / w, 1.0)
    np.testing.assert_allclose(torch_usual, alpha * (1 / w + (1 - 1 / w) * np.minimum(np.arange(w + 1), w) / w))
    assert torch_usual[0] == ours[0] and torch_usual[w] == ours[w] == alpha
    assert np.all(torch_usual[1:w] < ours[1:w])


def test_one_step_warmup_is_alpha_then_the_schedule_shifted_by_one(registry):
    # W = 1 (no LinearLR equivalent: total_iters would be 0): α_0 = α, then schedule(t − 1) over T − 1.
    values = schedule_values(registry.schedule("exponential"), [0.5], {"gamma": 0.8}, 6, 1)[:, 0]
    np.testing.assert_allclose(values, [0.5, 0.5, 0.4, 0.32, 0.256, 0.2048], rtol=1e-15)
    values = schedule_values(registry.schedule("cosine"), [1.0], {"t_max": 0, "min_lr_fraction": 0.0}, 5, 1)[:, 0]
    np.testing.assert_allclose(
        values, [1.0] + [(1 + math.cos(math.pi * t / 4)) / 2 for t in range(4)], rtol=1e-15, atol=1e-16
    )


# --- rules driven by a schedule: PyTorch's optimizer + scheduler step by step --------------------------


def dense_quadratic(size=5, seed=0):
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(size, size)))
    return q @ np.diag(rng.uniform(0.3, 3.0, size)) @ q.T, rng.normal(size=size), rng.normal(size=size)


SCHEDULED_RULES = [
    # (rule, rule rows, torch optimizer, torch kwargs per row, schedule, schedule rows, warmups)
    (
        "momentum",
        [{"momentum": 0.9}, {"momentum": 0.5, "nesterov": True, "weight_decay": 0.1}],
        "SGD",
        [{"momentum": 0.9}, {"momentum": 0.5, "nesterov": True, "weight_decay": 0.1}],
        "step",
        [{"step_size": 5, "gamma": 0.5}, {"step_size": 3, "gamma": 0.8}],
        [0, 4],
    ),
    (
        "adam",
        [{}, {"amsgrad": True, "weight_decay": 0.05}],
        "Adam",
        [{}, {"amsgrad": True, "weight_decay": 0.05}],
        "cosine",
        [{"t_max": 0, "min_lr_fraction": 0.1}, {"t_max": 7, "min_lr_fraction": 0.0}],
        [5, 0],
    ),
    (
        "adagrad",
        [{"lr_decay": 0.1}, {}],
        "Adagrad",
        [{"lr_decay": 0.1}, {}],
        "exponential",
        [{"gamma": 0.9}, {"gamma": 0.97}],
        [0, 3],
    ),
    (
        "rmsprop",
        [{"centered": True, "momentum": 0.5}, {}],
        "RMSprop",
        [{"centered": True, "momentum": 0.5}, {}],
        "inverse_time",
        [{"decay": 0.2}, {"decay": 0.05}],
        [2, 0],
    ),
]


@pytest.mark.parametrize("case", SCHEDULED_RULES, ids=[c[0] for c in SCHEDULED_RULES])
def test_rule_under_schedule_matches_torch_optimizer_with_scheduler(registry, case):
    rule_name, rule_rows, optimizer, torch_kwargs, schedule_name, schedule_rows, warmups = case
    rule, schedule = registry.rules[rule_name], registry.schedule(schedule_name)
    a, b, start = dense_quadratic()
    steps, bases = 24, np.array([0.05, 0.02])
    sched_rows = [{h.name: row.get(h.name, h.default) for h in schedule.hyperparams} for row in schedule_rows]
    rates = schedule_values(schedule, bases, hyper_columns(sched_rows), steps, np.array(warmups))
    hyper = {h.name: np.array([[float(row.get(h.name, h.default))] for row in rule_rows]) for h in rule.hyperparams}
    params = np.tile(start, (2, 1))
    state = rule.init(params, hyper)
    for t in range(steps):
        updates, state = rule.update(params @ a - b, state, params, rates[t][:, None], hyper, t)
        params = params + updates
    for r in range(2):
        theta = torch.tensor(start, dtype=torch.float64, requires_grad=True)
        opt = getattr(torch.optim, optimizer)([theta], lr=bases[r], foreach=False, **torch_kwargs[r])
        make = (
            torch_warmup_then(schedule_name, sched_rows[r], warmups[r], steps)
            if warmups[r]
            else torch_main(schedule_name, sched_rows[r], steps)
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            scheduler = make(opt)
            at, bt = torch.tensor(a), torch.tensor(b)
            for _ in range(steps):
                opt.zero_grad()
                (0.5 * theta @ at @ theta - bt @ theta).backward()
                opt.step()
                scheduler.step()
        np.testing.assert_allclose(params[r], theta.detach().numpy(), rtol=1e-10, atol=1e-12, err_msg=f"row {r}")


# --- the runner end to end: α_t in the metrics and the path on a quadratic bowl ----------------------------


def test_runner_with_warmup_and_schedule_matches_torch(registry):
    steps, warmup = 24, 4
    spec = {
        "steps": steps,
        "seeds": 1,
        "eval_every": 0,
        "problem": {"name": "quadratic", "condition": 5.0, "lambda_max": 1.0},
        "rules": [
            {
                "rule": "momentum",
                "learning_rate": [0.3, 0.8],
                "momentum": 0.8,
                "schedule": {"name": "step", "step_size": 6, "gamma": 0.5, "warmup_steps": warmup},
            }
        ],
    }
    experiment = Experiment.from_dict(spec, registry)
    results = run_experiment(experiment, registry=registry, workers=1)
    instance = registry.problems["quadratic"].build(experiment.problem_settings)
    paths = results.weights["path"]
    for run in results.runs.itertuples():
        rows = results.metrics[results.metrics.run_id == run.run_id].sort_values("step")
        theta = torch.tensor(paths[run.run_id, 0], dtype=torch.float64, requires_grad=True)
        opt = torch.optim.SGD([theta], lr=run.learning_rate, momentum=0.8, foreach=False)
        main = torch_main("step", {"step_size": 6, "gamma": 0.5}, steps - warmup)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            scheduler = L.SequentialLR(
                opt, [L.LinearLR(opt, start_factor=1 / warmup, total_iters=warmup - 1), main(opt)], milestones=[warmup]
            )
            expected_path, expected_lr = [theta.detach().numpy().copy()], []
            for _ in range(steps):
                _, grad = instance.loss_and_grad(theta.detach().numpy()[None].copy())
                theta.grad = torch.tensor(grad[0])
                expected_lr.append(opt.param_groups[0]["lr"])
                opt.step()
                scheduler.step()
                expected_path.append(theta.detach().numpy().copy())
        np.testing.assert_allclose(rows.learning_rate.to_numpy()[:steps], expected_lr, rtol=1e-13)
        np.testing.assert_allclose(paths[run.run_id], np.array(expected_path), rtol=1e-11, atol=1e-13)
