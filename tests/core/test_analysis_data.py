"""A hand-built experiment record for analysis and report tests: GD and heavy-ball momentum on 1-D quadratics.

Run seed s minimises J(θ) = λ_s θ²/2 with λ_s = 1 + 0.1 s from θ_0 = 1 + 0.5 s, so the seeds
disagree near the stability edge α λ_s = 2 (GD) and α λ_s = 2 + 2μ (heavy ball). The records
follow the contract's runs/metrics columns exactly; one run is marked failed with an error.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pandas as pd

from descentlab.records import Results

STEPS = 60
SEEDS = [0, 1, 2]
TARGET = 1e-3
FACTOR = 1e4
GD_ALPHAS = [0.1, 0.5, 1.0, 1.9, 2.5, 4.0]
MOMENTUM_ALPHAS = [0.1, 0.5, 2.0, 4.0]
MOMENTA = [0.5, 0.9]
FAILED = {"entry": 1, "learning_rate": 0.5, "momentum": 0.9, "seed": 1}
HYPER = ("momentum", "dampening", "nesterov", "weight_decay")


def trajectory(alpha: float, mu: float, seed: int):
    """Heavy ball v = μv + g, θ -= αv on λθ²/2 (μ = 0 is GD); rows until divergence."""
    lam, theta, v = 1.0 + 0.1 * seed, 1.0 + 0.5 * seed, 0.0
    loss0 = lam * theta**2 / 2
    rows = []
    for t in range(STEPS + 1):
        loss = lam * theta**2 / 2
        if not math.isfinite(loss) or loss > FACTOR * loss0:
            rows.append((t, loss, math.nan, math.nan, abs(lam * theta)))
            return rows, t
        if t == STEPS:
            rows.append((t, loss, math.nan, math.nan, abs(lam * theta)))
            return rows, None
        g = lam * theta
        v = mu * v + g
        rows.append((t, loss, alpha, abs(alpha * v), abs(g)))
        theta -= alpha * v
    raise AssertionError("unreachable")


def make_results():
    """The record: runs and metrics tables built run by run, plus a minimal experiment and meta."""
    grid = [(0, "vanilla GD", "gd", a, math.nan) for a in GD_ALPHAS]
    grid += [(1, "heavy ball", "momentum", a, m) for m in MOMENTA for a in MOMENTUM_ALPHAS]
    runs, metrics = [], []
    for entry, label, rule, alpha, mu in grid:
        for seed in SEEDS:
            run_id = len(runs)
            rows, diverged_at = trajectory(alpha, 0.0 if math.isnan(mu) else mu, seed)
            failed = (entry, alpha, mu, seed) == tuple(FAILED.values())
            if failed:
                rows = rows[:1]
            losses = [r[1] for r in rows]
            reached = [r[0] for r in rows if r[1] <= TARGET]
            hyper = (
                dict.fromkeys(HYPER, math.nan)
                if rule == "gd"
                else {"momentum": mu, "dampening": 0.0, "nesterov": 0.0, "weight_decay": 0.0}
            )
            runs.append(
                {
                    "run_id": run_id,
                    "entry": entry,
                    "label": label,
                    "rule": rule,
                    "schedule": "constant",
                    "seed": seed,
                    "learning_rate": alpha,
                    **hyper,
                    "warmup_steps": 0,
                    # GD and heavy ball below their limits contract geometrically on a quadratic: converged
                    "status": "failed" if failed else ("diverged" if diverged_at is not None else "converged"),
                    "diverged_at": math.nan if failed or diverged_at is None else float(diverged_at),
                    "unstable_at": math.nan,
                    "final_loss": math.nan if failed else losses[-1],
                    "best_loss": math.nan if failed else float(np.nanmin(losses)),
                    "steps_to_target": math.nan if failed or not reached else float(reached[0]),
                    "error": "FloatingPointError: injected for the test" if failed else "",
                    "divergence_reason": (
                        f"α·λ_max = {alpha * (1 + 0.1 * seed):.3g} > 2"
                        if diverged_at is not None and not failed and rule == "gd"
                        else ""
                    ),
                }
            )
            for t, loss, lr, step_size, grad_norm in rows:
                metrics.append(
                    {
                        "run_id": run_id,
                        "step": t,
                        "loss": loss,
                        "learning_rate": lr,
                        "step_size": step_size,
                        "grad_norm": grad_norm,
                        "grad_norm.layer1": grad_norm,
                        "test_loss": math.nan,
                        "test_accuracy": math.nan,
                        "sharpness": math.nan,
                    }
                )
    entries = [
        SimpleNamespace(
            rule="gd",
            label="vanilla GD",
            learning_rate=GD_ALPHAS,
            hyper={},
            schedule="constant",
            schedule_hyper={},
            warmup_steps=0,
        ),
        SimpleNamespace(
            rule="momentum",
            label="heavy ball",
            learning_rate=MOMENTUM_ALPHAS,
            hyper={"momentum": MOMENTA},
            schedule="constant",
            schedule_hyper={},
            warmup_steps=0,
        ),
    ]
    experiment = SimpleNamespace(
        name="quadratic-gd-vs-heavy-ball",
        problem="quadratic-1d",
        problem_settings={"curvature": 1.0},
        steps=STEPS,
        seeds=SEEDS,
        batch_size=0,
        dtype="float64",
        eval_every=10,
        divergence_factor=FACTOR,
        target_loss=TARGET,
        sharpness_every=0,
        entries=entries,
    )
    meta = {
        "versions": {"descentlab": "0.1.0", "numpy": np.__version__, "pandas": pd.__version__},
        "plugins": {"rule gd": "built-in", "rule momentum": "built-in"},
        "command": "descentlab run quadratic.toml",
        "wall_time_s": 0.1,
    }
    return Results(  # a Results whose experiment is only what the analysis reads of it
        experiment=experiment,
        runs=pd.DataFrame(runs),
        metrics=pd.DataFrame(metrics),
        weights={},
        meta=meta,
        problem_info={"kind": "regression", "n_params": 1},
        path=None,
    )
