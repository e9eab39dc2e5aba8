"""Built-in learning-rate schedules, registered like any plugin.

constant, step, multistep, exponential, inverse time, polynomial, linear, cosine, cosine with warm
restarts (SGDR), one-cycle, cyclic (triangular / triangular2), warmup–stable–decay (WSD), the
exponential ramp of the learning-rate range test, sequential (schedules joined at milestones) and
reduce-on-plateau (stateful: it reads each step's loss).

A schedule is pure numpy: ``learning_rate(step, base, hyper, total_steps)`` with ``step`` a
``(T, 1)`` integer array of 0-based step indices, ``base`` the runs' base learning rates α as
``(1, R)`` and each hyperparameter ``(1, R)``; the result broadcasts to ``(T, R)``. Linear warmup
is not a schedule of its own: it is the ``warmup_steps`` option of every schedule entry, applied
by ``descentlab.schedule_values.schedule_values``.

Every hyperparameter reaches the schedule as a float array (``schedule_values`` converts them), so
a schedule cannot take a list or a string: MultiStepLR's milestone list is four integer fields
``milestone_1`` … ``milestone_4`` (0 = unused), and a torch string option such as
``anneal_strategy`` is a bool (``linear_anneal``). Both stay sweepable per run.

Two schedules are of the other kinds a ``Schedule`` can declare: ``sequential`` joins other
schedules (``joins=True``: its parts are tables, not numbers) and ``reduce_on_plateau`` is stateful
(``init``/``update`` over the run axis, fed each step's training loss while the runs train).
"""

from __future__ import annotations

import numpy as np

from descentlab import HyperParam, Schedule, hookimpl


def _full(values, step, base):
    """Broadcast ``values`` to the (T, R) result shape as a fresh float array."""
    return np.array(np.broadcast_to(values, (step.shape[0], np.shape(base)[-1])), dtype=float)


def constant(step, base, hyper, total_steps):
    """α_t = α."""
    return _full(base, step, base)


def step_decay(step, base, hyper, total_steps):
    """α_t = α · γ^⌊t / step_size⌋  (PyTorch StepLR)."""
    return _full(base * hyper["gamma"] ** np.floor(step / hyper["step_size"]), step, base)


def exponential(step, base, hyper, total_steps):
    """α_t = α · γ^t  (PyTorch ExponentialLR)."""
    return _full(base * hyper["gamma"] ** step, step, base)


def inverse_time(step, base, hyper, total_steps):
    """α_t = α / (1 + k t)."""
    return _full(base / (1.0 + hyper["decay"] * step), step, base)


def cosine_restarts(step, base, hyper, total_steps):
    """α_t = η_min + (α − η_min)(1 + cos(π t_cur / T_i)) / 2  (PyTorch CosineAnnealingWarmRestarts, SGDR).

    η_min = min_lr_fraction · α. Cycle i (i = 0, 1, ...) lasts T_i = T_0 · m^i steps (m = t_mult)
    and starts at S_i = T_0 (m^i − 1)/(m − 1) (S_i = i T_0 for m = 1); t_cur = t − S_i for the
    cycle with S_i ≤ t < S_{i+1}. Each restart jumps back to α. The run's length plays no part.
    """
    t0 = np.asarray(hyper["t_0"], dtype=float)
    m = np.asarray(hyper.get("t_mult", 1.0), dtype=float)
    t = np.asarray(step, dtype=float)
    geometric = m > 1
    safe_m = np.where(geometric, m, 2.0)

    def cycle_start(i):
        return np.where(geometric, t0 * (safe_m**i - 1.0) / (safe_m - 1.0), t0 * i)

    # i from the logarithm, then corrected by one either way where rounding put it off
    guess = np.where(geometric, np.floor(np.log1p(t / t0 * (safe_m - 1.0)) / np.log(safe_m)), np.floor(t / t0))
    i = guess - (cycle_start(guess) > t)
    i = i + (cycle_start(i + 1) <= t)
    t_cur, t_i = t - cycle_start(i), t0 * m**i
    low = base * hyper.get("min_lr_fraction", 0.0)
    return _full(low + (base - low) * (1.0 + np.cos(np.pi * t_cur / t_i)) / 2.0, step, base)


def _anneal(start, end, pct, linear):
    """From ``start`` at pct = 0 to ``end`` at pct = 1: straight where ``linear``, else along a half cosine."""
    return np.where(linear, (end - start) * pct + start, end + (start - end) / 2.0 * (np.cos(np.pi * pct) + 1.0))


def one_cycle(step, base, hyper, total_steps):
    """PyTorch OneCycleLR (momentum not cycled) with max_lr = α over the run's T steps.

    α₀ = α / div_factor, α_min = α₀ / final_div_factor, E = pct_start · T − 1 (the step of the peak).
    For t ≤ E: α_t = anneal(α₀, α, t / E); for t > E: α_t = anneal(α, α_min, (t − E) / (T − 1 − E)).
    With three_phase (torch's three_phase=True): for E < t ≤ 2E, α_t = anneal(α, α₀, (t − E) / E), and
    for t > 2E, α_t = anneal(α₀, α_min, (t − 2E) / (T − 1 − 2E)).
    anneal(a, b, p) = b + (a − b)(1 + cos(π p)) / 2, or a + (b − a) p with linear_anneal
    (anneal_strategy "linear"). So α_0 = α₀, α_E = α and α_{T−1} = α_min. When E = 0 (torch divides
    by zero) the peak is at t = 0; when E < 0 (pct_start · T < 1) there is no rising phase.
    """
    total = float(max(int(total_steps), 1))
    t = np.asarray(step, dtype=float)
    peak = np.asarray(hyper["pct_start"], dtype=float) * total - 1.0
    start = base / hyper["div_factor"]
    low = start / hyper["final_div_factor"]
    linear = np.asarray(hyper.get("linear_anneal", 0.0), dtype=float) > 0
    rise = np.where(peak > 0, t / np.where(peak > 0, peak, 1.0), 1.0)
    span = total - 1.0 - peak
    fall = (t - peak) / np.where(span > 0, span, 1.0)
    up, down = _anneal(start, base, rise, linear), _anneal(base, low, fall, linear)
    two = np.where(t <= peak, up, down)
    three = np.asarray(hyper.get("three_phase", 0.0), dtype=float) > 0
    if not np.any(three):
        return _full(two, step, base)
    # torch's three_phase: back down to α₀ at E₂ = 2·pct_start·T − 2 (a phase as long as the rise), then
    # from α₀ to α_min at the last step
    back = 2.0 * peak
    down_again = _anneal(base, start, (t - peak) / np.where(peak > 0, peak, 1.0), linear)
    last_span = total - 1.0 - back
    tail = _anneal(start, low, (t - back) / np.where(last_span > 0, last_span, 1.0), linear)
    phases = np.where(t <= peak, up, np.where(t <= back, down_again, tail))
    return _full(np.where(three, phases, two), step, base)


def cyclic(step, base, hyper, total_steps):
    """PyTorch CyclicLR (scale_mode 'cycle', momentum not cycled) between base_lr = α and max_lr.

    With u = step_size_up, d = step_size_down (u when 0), L = u + d and ρ = u / L:
    c = ⌊1 + t / L⌋ (the cycle, from 1), x = 1 + t / L − c, s = x / ρ for x ≤ ρ else (x − 1)/(ρ − 1),
    α_t = α + (max_lr − α) · s · g(c) with g = 1 (mode 'triangular') or g(c) = 2^−(c−1) with
    triangular2 (mode 'triangular2': the amplitude halves every cycle), times γ^t with gamma γ < 1
    (mode 'exp_range'; γ = 1, the default, is none). So α at t = kL and max_lr at t = kL + u (for
    γ = 1). max_lr is an absolute rate; below α the cycle dips instead of rising.
    """
    up = np.asarray(hyper["step_size_up"], dtype=float)
    down = np.asarray(hyper.get("step_size_down", 0.0), dtype=float)
    size = up + np.where(down > 0, down, up)
    ratio = up / size
    cycle = np.floor(1.0 + step / size)
    x = 1.0 + step / size - cycle
    scale = np.where(x <= ratio, x / ratio, (x - 1.0) / (ratio - 1.0))  # ρ < 1 since d ≥ 1
    halving = np.asarray(hyper.get("triangular2", 0.0), dtype=float) > 0
    amplitude = np.where(halving, 1.0 / 2.0 ** (cycle - 1.0), 1.0)
    gamma = np.asarray(hyper.get("gamma", 1.0), dtype=float)
    if np.any(gamma != 1.0):  # torch mode 'exp_range' (scale_mode 'iterations'): the amplitude times γ^t
        amplitude = amplitude * gamma**step
    return _full(base + (hyper["max_lr"] - base) * scale * amplitude, step, base)


def wsd(step, base, hyper, total_steps):
    """Warmup–stable–decay: α_t = α · min(u_t, f_t) over the run's T steps (no torch equivalent).

    W = ⌊w·T + ½⌋ warmup steps and D = ⌊d·T + ½⌋ decay steps (w = warmup_fraction,
    d = decay_fraction, rounded to the nearest step); the decay starts at S = T − D.
    Warmup u_t = min(1, (t + 1)/W) (1 when W = 0), the same ramp as ``warmup_steps``: α/W at t = 0,
    α at t = W − 1. Decay progress p_t = clip((t − S + 1)/D, 0, 1) (0 when D = 0), so p = 1/D at
    t = S and 1 at the last step t = T − 1. Linear decay f_t = 1 − (1 − φ) p_t; with cosine_decay
    f_t = φ + (1 − φ)(1 + cos(π p_t))/2, φ = min_lr_fraction. Stable at α in between; when W + D > T
    the two ramps overlap and the smaller factor wins.
    """
    total = max(int(total_steps), 1)
    warm = np.floor(np.asarray(hyper.get("warmup_fraction", 0.0), dtype=float) * total + 0.5)
    decay = np.floor(np.asarray(hyper["decay_fraction"], dtype=float) * total + 0.5)
    t = np.asarray(step, dtype=float)
    rise = np.where(warm > 0, np.minimum(1.0, (t + 1.0) / np.where(warm > 0, warm, 1.0)), 1.0)
    p = np.where(decay > 0, np.clip((t - (total - decay) + 1.0) / np.where(decay > 0, decay, 1.0), 0.0, 1.0), 0.0)
    floor = np.asarray(hyper.get("min_lr_fraction", 0.0), dtype=float)
    cosine_decay = np.asarray(hyper.get("cosine_decay", 0.0), dtype=float) > 0
    fall = np.where(cosine_decay, floor + (1.0 - floor) * (1.0 + np.cos(np.pi * p)) / 2.0, 1.0 - (1.0 - floor) * p)
    return _full(base * np.minimum(rise, fall), step, base)


def exponential_ramp(step, base, hyper, total_steps):
    """α_t = α · (α_end / α)^(t / T): from α up to α_end at t = T (the learning-rate range test)."""
    ratio = hyper["end_lr"] / base
    return _full(base * ratio ** (step / max(int(total_steps), 1)), step, base)


MILESTONES = 4  # milestone_1 .. milestone_4


def multistep(step, base, hyper, total_steps):
    """α_t = α · γ^#{k : 0 < m_k ≤ t}  (PyTorch MultiStepLR with milestones m_1..m_4).

    A milestone of 0 is unused; milestones need not be sorted, and a repeated one counts twice
    (as in torch, whose milestones are a Counter).
    """
    passed = np.zeros(np.broadcast_shapes(np.shape(step), np.shape(base)))
    for k in range(1, MILESTONES + 1):
        m = np.asarray(hyper.get(f"milestone_{k}", 0.0), dtype=float)
        passed = passed + ((m > 0) & (m <= step))
    return _full(base * hyper["gamma"] ** passed, step, base)


def _horizon(value, total_steps):
    """A step count hyperparameter where 0 means the run's total steps T (at least 1)."""
    value = np.asarray(value, dtype=float)
    return np.where(value > 0, value, max(int(total_steps), 1))


def polynomial(step, base, hyper, total_steps):
    """α_t = α · (1 − min(t, N) / N)^p  (PyTorch PolynomialLR closed form).

    N = total_iters, or the run's total steps T when total_iters is 0 (then α_t > 0 at every
    step, the last one being α (1/T)^p). From t = N on, α_t = 0 (α for p = 0).
    """
    n = _horizon(hyper.get("total_iters", 0.0), total_steps)
    return _full(base * (1.0 - np.minimum(step, n) / n) ** hyper["power"], step, base)


def linear(step, base, hyper, total_steps):
    """α_t = α · (s + (e − s) · min(t, N) / N)  (PyTorch LinearLR closed form).

    s = start_factor, e = end_factor, N = total_iters or the run's total steps T when it is 0.
    From t = N on, α_t = e·α.
    """
    n = _horizon(hyper.get("total_iters", 0.0), total_steps)
    start, end = hyper["start_factor"], hyper["end_factor"]
    return _full(base * (start + (end - start) * np.minimum(step, n) / n), step, base)


def cosine(step, base, hyper, total_steps):
    """α_t = η_min + (α − η_min)(1 + cos(π t / T)) / 2 with η_min = min_lr_fraction · α.

    T = t_max, or the run's total steps when t_max is 0. This is PyTorch CosineAnnealingLR's
    closed form, so past T the rate rises again along the same cosine (period 2T).
    """
    t_max = np.asarray(hyper.get("t_max", 0.0), dtype=float)
    period = np.where(t_max > 0, t_max, max(int(total_steps), 1))
    low = base * hyper.get("min_lr_fraction", 0.0)
    return _full(low + (base - low) * (1.0 + np.cos(np.pi * step / period)) / 2.0, step, base)


def sequential(step, base, hyper, total_steps, parts):
    """Part k from milestone m_k on, its own step counted from there (torch SequentialLR, optax join_schedules).

    With m_0 = 0 and m_{K} = T: α_t = part_k(t − m_k) for m_k ≤ t < m_{k+1}. Each part runs as if
    its run were its segment, m_{k+1} − m_k steps (the last: T − m_K), so a horizon of 0 ("the
    run's total steps", e.g. cosine's t_max) means the part's own segment. Every part starts from
    the base α, as torch's parts start from the optimizer's initial lr. Parts past T never run.
    """
    t = np.asarray(step).reshape(-1)
    bounds = [0, *hyper["milestones"], max(int(total_steps), int(t.max(initial=-1)) + 1)]
    out = np.empty((t.size, np.shape(base)[-1]))
    for k, part in enumerate(parts):
        start, stop = bounds[k], max(bounds[k + 1], bounds[k])
        rows = (t >= start) & (t < stop)
        if rows.any():
            out[rows] = part(t[rows] - start, stop - start)
    return out


def plateau_init(base, hyper):
    """State of torch ReduceLROnPlateau (mode 'min') per run: α, the best loss (inf), bad steps and cooldown left."""
    runs = np.shape(base)[0]
    return {
        "lr": np.array(base, dtype=float),
        "best": np.full(runs, np.inf),
        "bad": np.zeros(runs),
        "cooldown": np.zeros(runs),
    }


def plateau_update(loss, state, hyper, step):
    """One torch ReduceLROnPlateau.step(loss) per run (mode 'min'); returns α of the next step.

    better = loss < best·(1 − threshold) (rel) or loss < best − threshold (abs_threshold);
    best ← loss and bad ← 0 when better, else bad ← bad + 1; during a cooldown (counter > 0)
    the counter drops by one and bad ← 0; when bad > patience: α ← max(factor·α, min_lr) if that
    lowers α by more than eps, then cooldown ← cooldown steps and bad ← 0. A NaN or infinite
    loss is never better (no comparison with NaN holds), so it counts as a bad step, as in torch.
    """
    threshold = hyper["threshold"]
    with np.errstate(all="ignore"):  # best = inf and a NaN or inf loss: plain IEEE results, no warnings
        better = np.where(
            hyper["abs_threshold"] > 0, loss < state["best"] - threshold, loss < state["best"] * (1.0 - threshold)
        )
        best = np.where(better, loss, state["best"])
    bad = np.where(better, 0.0, state["bad"] + 1.0)
    cooling = state["cooldown"] > 0
    cooldown = np.where(cooling, state["cooldown"] - 1.0, state["cooldown"])
    bad = np.where(cooling, 0.0, bad)
    reduce = bad > hyper["patience"]
    lowered = np.maximum(state["lr"] * hyper["factor"], hyper["min_lr"])
    lr = np.where(reduce & (state["lr"] - lowered > hyper["eps"]), lowered, state["lr"])
    state = {
        "lr": lr,
        "best": best,
        "bad": np.where(reduce, 0.0, bad),
        "cooldown": np.where(reduce, hyper["cooldown"], cooldown),
    }
    return lr, state


SCHEDULES = (
    Schedule("constant", constant, summary="The base learning rate at every step.", formula="α_t = α"),
    Schedule(
        "step",
        step_decay,
        hyperparams=(
            HyperParam("step_size", 100, low=1, kind="int", help="steps between two decays"),
            HyperParam("gamma", 0.1, low=0.0, high=1.0, low_open=True, help="factor applied every step_size steps"),
        ),
        summary="Step decay: multiply by γ every step_size steps (PyTorch StepLR).",
        formula="α_t = α · γ^⌊t / step_size⌋",
    ),
    Schedule(
        "multistep",
        multistep,
        hyperparams=(
            *(
                HyperParam(
                    f"milestone_{k}", default, low=0, kind="int", help=f"step of the {ordinal} decay by γ; 0 = unused"
                )
                for k, default, ordinal in ((1, 200, "first"), (2, 350, "second"), (3, 0, "third"), (4, 0, "fourth"))
            ),
            HyperParam("gamma", 0.1, low=0.0, high=1.0, low_open=True, help="factor applied at every milestone"),
        ),
        summary="Multiply by γ at each milestone step (PyTorch MultiStepLR; up to four milestones, 0 = unused).",
        formula="α_t = α · γ^#{k : 0 < m_k ≤ t}",
    ),
    Schedule(
        "exponential",
        exponential,
        hyperparams=(HyperParam("gamma", 0.99, low=0.0, high=1.0, low_open=True, help="factor applied every step"),),
        summary="Exponential decay (PyTorch ExponentialLR).",
        formula="α_t = α · γ^t",
    ),
    Schedule(
        "inverse_time",
        inverse_time,
        hyperparams=(HyperParam("decay", 0.01, low=0.0, help="decay rate k"),),
        summary="Inverse-time decay, the classic Robbins–Monro style α/(1 + kt).",
        formula="α_t = α / (1 + k t)",
    ),
    Schedule(
        "polynomial",
        polynomial,
        hyperparams=(
            HyperParam("total_iters", 0, low=0, kind="int", help="steps N to reach 0; 0 = the run's total steps"),
            HyperParam("power", 1.0, low=0.0, help="exponent p of the decay"),
        ),
        summary="Polynomial decay from α to 0 over N steps (PyTorch PolynomialLR).",
        formula="α_t = α · (1 − min(t, N) / N)^p",
    ),
    Schedule(
        "linear",
        linear,
        hyperparams=(
            HyperParam("start_factor", 1.0, low=0.0, high=1.0, low_open=True, help="factor s of α at t = 0"),
            HyperParam("end_factor", 0.0, low=0.0, high=1.0, help="factor e of α from t = N on"),
            HyperParam("total_iters", 0, low=0, kind="int", help="steps N from s·α to e·α; 0 = the run's total steps"),
        ),
        summary="Linear change of the factor from s to e over N steps (PyTorch LinearLR).",
        formula="α_t = α · (s + (e − s) · min(t, N) / N)",
    ),
    Schedule(
        "cosine",
        cosine,
        hyperparams=(
            HyperParam("t_max", 0, low=0, kind="int", help="steps of the half cosine; 0 = the run's total steps"),
            HyperParam(
                "min_lr_fraction", 0.0, low=0.0, high=1.0, help="final learning rate η_min as a fraction of the base α"
            ),
        ),
        summary="Cosine annealing from α to η_min over T steps (PyTorch CosineAnnealingLR closed form).",
        formula="α_t = η_min + (α − η_min)(1 + cos(π t / T)) / 2",
    ),
    Schedule(
        "cosine_restarts",
        cosine_restarts,
        hyperparams=(
            HyperParam("t_0", 100, low=1, kind="int", help="steps T_0 of the first cycle"),
            HyperParam("t_mult", 1, low=1, kind="int", help="factor m by which each cycle is longer than the last"),
            HyperParam(
                "min_lr_fraction",
                0.0,
                low=0.0,
                high=1.0,
                help="learning rate η_min at the bottom of each cycle, as a fraction of the base α",
            ),
        ),
        summary="Cosine annealing with warm restarts, SGDR (PyTorch CosineAnnealingWarmRestarts): "
        "back to α every cycle, cycles T_0, T_0·m, T_0·m², ...",
        formula="α_t = η_min + (α − η_min)(1 + cos(π t_cur / T_i)) / 2",
    ),
    Schedule(
        "one_cycle",
        one_cycle,
        hyperparams=(
            HyperParam("pct_start", 0.3, low=0.0, high=1.0, help="fraction of the run spent rising to the peak α"),
            HyperParam("div_factor", 25.0, low=0.0, low_open=True, log=True, help="the first rate is α / div_factor"),
            HyperParam(
                "final_div_factor",
                1e4,
                low=0.0,
                low_open=True,
                log=True,
                help="the last rate is α / (div_factor · final_div_factor)",
            ),
            HyperParam(
                "linear_anneal",
                False,
                kind="bool",
                help="straight lines instead of half cosines (torch anneal_strategy 'linear')",
            ),
            HyperParam(
                "three_phase",
                False,
                kind="bool",
                help="back down to α/div_factor as long as the rise took, then to the last rate (torch three_phase)",
            ),
        ),
        summary="One-cycle policy (PyTorch OneCycleLR): from α/div_factor up to the peak α at "
        "step pct_start·T − 1, then down to α/(div_factor·final_div_factor) at the last step "
        "(three_phase: back to α/div_factor first).",
        formula="α_t = anneal(α₀, α, t / E) for t ≤ E, else anneal(α, α_min, (t − E)/(T − 1 − E))",
    ),
    Schedule(
        "cyclic",
        cyclic,
        hyperparams=(
            HyperParam(
                "max_lr",
                0.1,
                low=0.0,
                low_open=True,
                log=True,
                help="learning rate at the top of each cycle (α is the bottom)",
            ),
            HyperParam("step_size_up", 50, low=1, kind="int", help="steps u from α up to max_lr"),
            HyperParam("step_size_down", 0, low=0, kind="int", help="steps d from max_lr back to α; 0 = step_size_up"),
            HyperParam(
                "triangular2",
                False,
                kind="bool",
                help="halve the amplitude every cycle (torch mode 'triangular2'); false = 'triangular'",
            ),
            HyperParam(
                "gamma",
                1.0,
                low=0.0,
                high=1.0,
                low_open=True,
                help="multiply the amplitude by γ^t (torch mode 'exp_range' with this gamma); 1 = no decay",
            ),
        ),
        summary="Cyclical learning rate, triangular, triangular2 or exp_range (PyTorch CyclicLR): "
        "straight up from α to max_lr in u steps and back in d.",
        formula="α_t = α + (max_lr − α) · s(t) · g(c), s the triangle wave in [0, 1], c the cycle",
    ),
    Schedule(
        "wsd",
        wsd,
        hyperparams=(
            HyperParam("warmup_fraction", 0.1, low=0.0, high=1.0, help="fraction w of the run spent warming up"),
            HyperParam(
                "decay_fraction", 0.2, low=0.0, high=1.0, help="fraction d of the run spent decaying, at its end"
            ),
            HyperParam(
                "min_lr_fraction",
                0.0,
                low=0.0,
                high=1.0,
                help="learning rate φα reached at the last step, as a fraction φ of the base α",
            ),
            HyperParam("cosine_decay", False, kind="bool", help="decay along a half cosine instead of a straight line"),
        ),
        summary="Warmup–stable–decay (trapezoid): linear warmup over the first w·T steps, α until the last d·T, "
        "then a linear or cosine decay to φα at the last step.",
        formula="α_t = α · min(min(1, (t + 1)/W), f(clip((t − T + D + 1)/D, 0, 1)))",
    ),
    Schedule(
        "exponential_ramp",
        exponential_ramp,
        hyperparams=(
            HyperParam("end_lr", 10.0, low=0.0, low_open=True, log=True, help="learning rate reached at the last step"),
        ),
        summary="Exponential growth from α to α_end over the run: the learning-rate range test's schedule.",
        formula="α_t = α · (α_end / α)^(t / T)",
    ),
    Schedule(
        "sequential",
        sequential,
        joins=True,
        summary="Schedules joined at milestones (PyTorch SequentialLR, optax join_schedules): the table's "
        "schedules = [{name = ...}, ...] run one after another, each restarted at its milestone "
        "(milestones = [m_1, ...], increasing steps).",
        formula="α_t = part_k(t − m_k) for m_k ≤ t < m_{k+1}  (m_0 = 0)",
    ),
    Schedule(
        "reduce_on_plateau",
        None,
        stateful=True,
        init=plateau_init,
        update=plateau_update,
        hyperparams=(
            HyperParam(
                "factor",
                0.1,
                low=0.0,
                high=1.0,
                low_open=True,
                high_open=True,
                help="α is multiplied by this on a plateau",
            ),
            HyperParam(
                "patience", 10, low=0, kind="int", help="steps without improvement tolerated; the next one lowers α"
            ),
            HyperParam("threshold", 1e-4, low=0.0, help="how much lower a loss must be to count as better"),
            HyperParam(
                "abs_threshold",
                False,
                kind="bool",
                help="threshold is absolute (torch threshold_mode 'abs'); false = relative ('rel')",
            ),
            HyperParam("cooldown", 0, low=0, kind="int", help="steps after a reduction during which none is counted"),
            HyperParam("min_lr", 0.0, low=0.0, help="α never goes below this (an absolute learning rate)"),
            HyperParam("eps", 1e-8, low=0.0, help="a reduction smaller than this is skipped"),
        ),
        summary="Reduce-on-plateau (PyTorch ReduceLROnPlateau, mode 'min'), stateful: multiply α by factor when "
        "the run's training loss has not improved for more than patience steps.",
        formula="α_{t+1} = max(factor · α_t, min_lr) after patience + 1 steps without a better loss",
    ),
)


@hookimpl
def register_schedules(register):
    """Register the built-in learning-rate schedules."""
    for schedule in SCHEDULES:
        register(schedule)
