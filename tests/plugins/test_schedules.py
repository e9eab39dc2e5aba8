"""Built-in learning-rate schedules and linear warmup against closed-form values computed in plain Python."""

import math

import numpy as np
import pytest

from descentlab.registry import load_registry
from descentlab.schedule_values import schedule_values


@pytest.fixture(scope="module")
def schedules():
    registry = load_registry(entry_points=False, use_env=False)
    assert registry.errors == []
    return registry.schedules


def closed_form(name, t, alpha, total, **h):
    """α_t from each schedule's published formula, one scalar at a time."""
    if name == "constant":
        return alpha
    if name == "step":
        return alpha * h["gamma"] ** (t // h["step_size"])
    if name == "multistep":
        passed = sum(1 for k in range(1, 5) if 0 < h[f"milestone_{k}"] <= t)
        return alpha * h["gamma"] ** passed
    if name == "exponential":
        return alpha * h["gamma"] ** t
    if name == "polynomial":
        n = h["total_iters"] or total
        return alpha * (1 - min(t, n) / n) ** h["power"]
    if name == "linear":
        n = h["total_iters"] or total
        return alpha * (h["start_factor"] + (h["end_factor"] - h["start_factor"]) * min(t, n) / n)
    if name == "inverse_time":
        return alpha / (1 + h["decay"] * t)
    if name == "cosine":
        period = h["t_max"] or total
        eta_min = h["min_lr_fraction"] * alpha
        return eta_min + (alpha - eta_min) * (1 + math.cos(math.pi * t / period)) / 2
    if name == "cosine_restarts":  # walk the cycles: T_0, T_0·m, T_0·m², ...
        start, length = 0, h["t_0"]
        while t >= start + length:
            start, length = start + length, length * h["t_mult"]
        eta_min = h["min_lr_fraction"] * alpha
        return eta_min + (alpha - eta_min) * (1 + math.cos(math.pi * (t - start) / length)) / 2
    if name == "one_cycle":
        peak, first = h["pct_start"] * total - 1, alpha / h["div_factor"]
        last = first / h["final_div_factor"]
        a, b, p = (first, alpha, t / peak) if t <= peak else (alpha, last, (t - peak) / (total - 1 - peak))
        return a + (b - a) * p if h["linear_anneal"] else b + (a - b) * (1 + math.cos(math.pi * p)) / 2
    if name == "cyclic":  # Smith's triangle: count steps within the current cycle
        up = h["step_size_up"]
        length = up + (h["step_size_down"] or up)
        cycle, pos = divmod(t, length)
        height = pos / up if pos <= up else (length - pos) / (length - up)
        return alpha + (h["max_lr"] - alpha) * height * (0.5**cycle if h["triangular2"] else 1.0)
    if name == "wsd":  # warmup, stable, decay: step counts rounded, the smaller factor wins
        warm, decay = round(h["warmup_fraction"] * total + 1e-9), round(h["decay_fraction"] * total + 1e-9)
        rise = min(1, (t + 1) / warm) if warm else 1
        p = min(max((t - (total - decay) + 1) / decay, 0), 1) if decay else 0
        phi = h["min_lr_fraction"]
        fall = phi + (1 - phi) * (1 + math.cos(math.pi * p)) / 2 if h["cosine_decay"] else 1 - (1 - phi) * p
        return alpha * min(rise, fall)
    if name == "exponential_ramp":  # Smith's range test: α at t = 0, end_lr at t = T
        return alpha * (h["end_lr"] / alpha) ** (t / total)
    raise KeyError(name)


ROWS = {
    "constant": [{}, {}],
    "step": [{"step_size": 3, "gamma": 0.5}, {"step_size": 5, "gamma": 0.1}],
    "multistep": [
        {"milestone_1": 4, "milestone_2": 10, "milestone_3": 0, "milestone_4": 0, "gamma": 0.5},
        {"milestone_1": 7, "milestone_2": 2, "milestone_3": 7, "milestone_4": 30, "gamma": 0.1},
    ],
    "exponential": [{"gamma": 0.9}, {"gamma": 0.5}],
    "polynomial": [{"total_iters": 0, "power": 1.0}, {"total_iters": 12, "power": 2.0}],
    "linear": [
        {"start_factor": 1.0, "end_factor": 0.0, "total_iters": 0},
        {"start_factor": 0.25, "end_factor": 1.0, "total_iters": 8},
    ],
    "inverse_time": [{"decay": 0.1}, {"decay": 1.0}],
    "cosine": [{"t_max": 0, "min_lr_fraction": 0.0}, {"t_max": 8, "min_lr_fraction": 0.1}],
    "exponential_ramp": [{"end_lr": 10.0}, {"end_lr": 100.0}],
    "cosine_restarts": [
        {"t_0": 3, "t_mult": 2, "min_lr_fraction": 0.0},
        {"t_0": 4, "t_mult": 1, "min_lr_fraction": 0.1},
    ],
    "cyclic": [
        {"max_lr": 0.5, "step_size_up": 3, "step_size_down": 0, "triangular2": False},
        {"max_lr": 4.0, "step_size_up": 2, "step_size_down": 5, "triangular2": True},
    ],
    "wsd": [
        {"warmup_fraction": 0.25, "decay_fraction": 0.35, "min_lr_fraction": 0.0, "cosine_decay": False},
        {"warmup_fraction": 0.0, "decay_fraction": 0.5, "min_lr_fraction": 0.2, "cosine_decay": True},
    ],
    "one_cycle": [
        {"pct_start": 0.3, "div_factor": 25.0, "final_div_factor": 1e4, "linear_anneal": False},
        {"pct_start": 0.5, "div_factor": 10.0, "final_div_factor": 100.0, "linear_anneal": True},
    ],
}


def test_every_builtin_schedule_is_tested(schedules):
    # the joining and the stateful schedule are tested in test_schedules_joined_plateau.py
    assert set(ROWS) == {name for name, s in schedules.items() if not (s.joins or s.stateful)}
    assert {name for name, s in schedules.items() if s.joins or s.stateful} == {"sequential", "reduce_on_plateau"}


@pytest.mark.parametrize("name", sorted(ROWS))
def test_schedule_matches_closed_form_for_a_grid_of_runs(schedules, name):
    schedule, rows, total = schedules[name], ROWS[name], 20
    base = np.array([[0.1, 2.0]])
    hyper = {h.name: np.array([[float(row.get(h.name, h.default)) for row in rows]]) for h in schedule.hyperparams}
    values = schedule.learning_rate(np.arange(total)[:, None], base, hyper, total)
    assert values.shape == (total, 2)
    for r, row in enumerate(rows):
        full = {h.name: row.get(h.name, h.default) for h in schedule.hyperparams}
        expected = [closed_form(name, t, base[0, r], total, **full) for t in range(total)]
        np.testing.assert_allclose(values[:, r], expected, rtol=1e-13)


def test_hand_values():
    # A few numbers written out: step (γ=0.5 every 3) at t=0,3,7; cosine halfway and at the end.
    registry = load_registry(entry_points=False, use_env=False)
    step = registry.schedule("step")
    values = step.learning_rate(
        np.array([[0], [3], [7]]), np.array([[1.0]]), {"step_size": np.array([[3.0]]), "gamma": np.array([[0.5]])}, 10
    )
    np.testing.assert_allclose(values[:, 0], [1.0, 0.5, 0.25])
    cosine = registry.schedule("cosine")
    values = cosine.learning_rate(
        np.array([[0], [5], [10]]),
        np.array([[1.0]]),
        {"t_max": np.array([[0.0]]), "min_lr_fraction": np.array([[0.2]])},
        10,
    )
    np.testing.assert_allclose(values[:, 0], [1.0, 0.6, 0.2], atol=1e-15)


def hand(schedules, name, steps, alpha=1.0, total=10, **h):
    """One run's α_t at the given steps, the other hyperparameters at their defaults."""
    schedule = schedules[name]
    hyper = {d.name: np.array([[float(h.get(d.name, d.default))]]) for d in schedule.hyperparams}
    return schedule.learning_rate(np.array(steps)[:, None], np.array([[alpha]]), hyper, total)[:, 0]


def test_hand_values_multistep_polynomial_linear(schedules):
    # milestones 3 and 6 (γ = 0.5): 1 until t = 2, 0.5 from t = 3, 0.25 from t = 6.
    np.testing.assert_allclose(
        hand(
            schedules,
            "multistep",
            [0, 2, 3, 5, 6, 9],
            milestone_1=6,
            milestone_2=3,
            milestone_3=0,
            milestone_4=0,
            gamma=0.5,
        ),
        [1, 1, 0.5, 0.5, 0.25, 0.25],
    )
    # a milestone given twice decays twice: γ² from t = 4
    np.testing.assert_allclose(
        hand(schedules, "multistep", [3, 4], milestone_1=4, milestone_2=4, milestone_3=0, milestone_4=0, gamma=0.1),
        [1, 0.01],
    )
    # polynomial, T = 10, p = 2: (1 − t/10)², so 1, 0.25 at t = 5, 0.01 at the last step t = 9
    np.testing.assert_allclose(hand(schedules, "polynomial", [0, 5, 9], 2.0, power=2.0), [2.0, 0.5, 0.02])
    # N = 4, p = 1: 1, 0.5 at t = 2, then 0 from t = 4 on
    np.testing.assert_allclose(
        hand(schedules, "polynomial", [0, 2, 4, 7], total_iters=4, power=1.0), [1, 0.5, 0, 0], atol=1e-16
    )
    # linear decay over T = 10 to 0: 1, 0.5 at t = 5, 0.1 at t = 9
    np.testing.assert_allclose(hand(schedules, "linear", [0, 5, 9]), [1, 0.5, 0.1])
    # linear warmup 0.25 -> 1 over N = 6: 0.25, 0.625 at t = 3, 1 from t = 6
    np.testing.assert_allclose(
        hand(schedules, "linear", [0, 3, 6, 9], start_factor=0.25, end_factor=1.0, total_iters=6), [0.25, 0.625, 1, 1]
    )


def test_hand_values_cosine_restarts(schedules):
    # T_0 = 4, m = 2: cycles [0, 4), [4, 12), [12, 28). Top α at each restart, halfway down midway.
    values = hand(schedules, "cosine_restarts", [0, 2, 3, 4, 8, 11, 12, 20, 28], t_0=4, t_mult=2, min_lr_fraction=0.0)
    half_3_4 = (1 + math.cos(3 * math.pi / 4)) / 2
    np.testing.assert_allclose(
        values, [1, 0.5, half_3_4, 1, 0.5, (1 + math.cos(7 * math.pi / 8)) / 2, 1, 0.5, 1], atol=1e-15
    )
    # m = 1, η_min = 0.2: period 5, α_2.5 would be 0.6; at t = 5, 10 back to 1
    values = hand(schedules, "cosine_restarts", [0, 5, 10, 7], t_0=5, t_mult=1, min_lr_fraction=0.2)
    np.testing.assert_allclose(values, [1, 1, 1, 0.2 + 0.8 * (1 + math.cos(2 * math.pi / 5)) / 2])


def test_hand_values_one_cycle(schedules):
    # T = 21, pct_start 0.5: peak at E = 9.5; α₀ = α/10, α_min = α₀/100. Linear: rise α₀ + (α − α₀) t/9.5.
    h = {"pct_start": 0.5, "div_factor": 10.0, "final_div_factor": 100.0}
    values = hand(schedules, "one_cycle", [0, 9, 10, 20], total=21, linear_anneal=True, **h)
    np.testing.assert_allclose(values, [0.1, 0.1 + 0.9 * 9 / 9.5, 1 - (1 - 0.001) * 0.5 / 10.5, 0.001])
    # cosine, T = 11, pct_start 3/11: E = 2, α₀ = α/4, α_min = α/20; halfway up (α₀ + α)/2 at t = 1, the peak
    # at t = 2, halfway down (α + α_min)/2 at t = 6 (the fall spans 8 steps) and α_min at t = 10
    values = hand(
        schedules,
        "one_cycle",
        [0, 1, 2, 6, 10],
        total=11,
        pct_start=3 / 11,
        div_factor=4.0,
        final_div_factor=5.0,
        linear_anneal=False,
    )
    np.testing.assert_allclose(values, [0.25, 0.625, 1.0, 0.525, 0.05])
    # pct_start · T = 1 (E = 0, where torch divides by zero): the peak is the first step
    assert hand(schedules, "one_cycle", [0], total=10, pct_start=0.1)[0] == 1.0
    # pct_start 1: the whole run rises, from α/25 to the peak α at the last step
    np.testing.assert_allclose(
        hand(schedules, "one_cycle", [0, 9], total=10, pct_start=1.0, linear_anneal=True), [0.04, 1.0]
    )


def test_hand_values_cyclic(schedules):
    # α = 1, max_lr = 3, up 2 / down 2: 1, 2, 3, 2, 1, 2, 3 ...; triangular2 halves the second peak to 2
    values = hand(
        schedules, "cyclic", [0, 1, 2, 3, 4, 5, 6], max_lr=3.0, step_size_up=2, step_size_down=0, triangular2=False
    )
    np.testing.assert_allclose(values, [1, 2, 3, 2, 1, 2, 3])
    values = hand(
        schedules, "cyclic", [0, 2, 4, 6, 8, 10], max_lr=3.0, step_size_up=2, step_size_down=0, triangular2=True
    )
    np.testing.assert_allclose(values, [1, 3, 1, 2, 1, 1.5])
    # up 1 / down 4, max_lr below α (0.2 under α = 1): dips to 0.2 at t = 1, back up by 0.2 a step
    values = hand(
        schedules, "cyclic", [0, 1, 2, 3, 4, 5, 6], max_lr=0.2, step_size_up=1, step_size_down=4, triangular2=False
    )
    np.testing.assert_allclose(values, [1, 0.2, 0.4, 0.6, 0.8, 1, 0.2])


def test_hand_values_wsd(schedules):
    # T = 10, w = 0.2 (W = 2), d = 0.4 (D = 4, from S = 6): 0.5, 1, stable 1 to t = 5, then 0.75 .. 0 linearly
    values = hand(
        schedules,
        "wsd",
        range(10),
        total=10,
        warmup_fraction=0.2,
        decay_fraction=0.4,
        min_lr_fraction=0.0,
        cosine_decay=False,
    )
    np.testing.assert_allclose(values, [0.5, 1, 1, 1, 1, 1, 0.75, 0.5, 0.25, 0], atol=1e-16)
    # cosine to φ = 0.2: halfway (0.6) at t = 7, 0.2 at the last step
    values = hand(
        schedules,
        "wsd",
        [5, 6, 7, 9],
        total=10,
        warmup_fraction=0.2,
        decay_fraction=0.4,
        min_lr_fraction=0.2,
        cosine_decay=True,
    )
    np.testing.assert_allclose(values, [1, 0.2 + 0.8 * (1 + math.cos(math.pi / 4)) / 2, 0.6, 0.2])
    # 0.29 · 100 is 28.999...: rounded to W = 29 steps, so α at t = 28 and 28/29 just before
    values = hand(schedules, "wsd", [27, 28], total=100, warmup_fraction=0.29, decay_fraction=0.0)
    np.testing.assert_allclose(values, [28 / 29, 1])
    # W + D > T: the ramps cross and the smaller factor wins (T = 4, W = 4, D = 4: min((t+1)/4, 1 − (t+1)/4))
    values = hand(
        schedules,
        "wsd",
        range(4),
        total=4,
        warmup_fraction=1.0,
        decay_fraction=1.0,
        min_lr_fraction=0.0,
        cosine_decay=False,
    )
    np.testing.assert_allclose(values, [0.25, 0.5, 0.25, 0])


def test_warmup_then_schedule(schedules):
    # W = 4: α/4, 2α/4, 3α/4, α; then the schedule restarts at t − W with total − W steps.
    total = 12
    base = np.array([1.0, 0.5, 0.2])
    hyper = {"t_max": np.zeros(3), "min_lr_fraction": np.array([0.0, 0.5, 0.0])}
    warmup = np.array([4, 0, 12])
    values = schedule_values(schedules["cosine"], base, hyper, total, warmup)
    assert values.shape == (total, 3)
    expected0 = [0.25, 0.5, 0.75, 1.0] + [
        closed_form("cosine", t, 1.0, 8, t_max=0, min_lr_fraction=0.0) for t in range(8)
    ]
    expected1 = [closed_form("cosine", t, 0.5, 12, t_max=0, min_lr_fraction=0.5) for t in range(12)]
    expected2 = [0.2 * (t + 1) / 12 for t in range(12)]
    np.testing.assert_allclose(values[:, 0], expected0, rtol=1e-14)
    np.testing.assert_allclose(values[:, 1], expected1, rtol=1e-14)
    np.testing.assert_allclose(values[:, 2], expected2, rtol=1e-14)
    # Linear warmup ends exactly at α, and the schedule then starts from α.
    assert values[3, 0] == values[4, 0] == 1.0


def test_schedule_values_scalars_and_constant(schedules):
    values = schedule_values(schedules["constant"], np.array([0.1, 0.3]), {}, 5, 0)
    np.testing.assert_array_equal(values, np.tile([0.1, 0.3], (5, 1)))
    values = schedule_values(schedules["exponential"], np.array([1.0]), {"gamma": 0.5}, 4, 2)
    np.testing.assert_allclose(values[:, 0], [0.5, 1.0, 1.0, 0.5])


def test_schedule_with_a_wrong_shape_is_named():
    from descentlab import Schedule

    broken = Schedule("broken", lambda step, base, hyper, total: np.ones((3, 7)))
    with pytest.raises(ValueError, match="broken"):
        schedule_values(broken, np.array([0.1, 0.2]), {}, 5)
