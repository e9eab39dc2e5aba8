"""Dashboard test fixtures: synthetic records that follow the runs/metrics contract, and browser launch args."""

from __future__ import annotations

import inspect
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from descentlab.records import Results

REPO = Path(__file__).resolve().parents[2]
APP = REPO / "dashboard" / "app.py"
CHROMIUM = "/usr/bin/chromium"


def _per_run(value, alpha, seed):
    """A config value that may be a constant, ``f(alpha)`` or ``f(alpha, seed)``."""
    if not callable(value):
        return value
    try:
        n_args = len(inspect.signature(value).parameters)
    except (TypeError, ValueError):
        n_args = 1
    return value(alpha, seed) if n_args >= 2 else value(alpha)


def synthetic_results(configs, *, steps=20, seeds=(0,), layers=2, divergence_factor=1e4, path_dims=0):
    """Results-like records: ``configs`` is a list of dicts (label, rule, learning_rate, ...).

    Each run's loss decays geometrically at a rate set by α. Per-run keys (a constant, ``f(alpha)``
    or ``f(alpha, seed)``; None = not this run) decide its verdict, the way core records it:

    - ``diverge_at``: the loss grows and the run stops at that step (rows up to and including
      ``diverged_at``), status ``diverged``;
    - ``unstable_at``: the loss decays up to that step, then grows (finite) to the last step,
      status ``unstable`` with ``unstable_at`` set;
    - ``fail_at``: the run stops at that step with an error, status ``failed``;
    - ``status``: the status of any other run (default ``converged``);
    - ``reason``: its ``divergence_reason`` (default "").
    """
    run_rows, metric_rows = [], []
    paths = []
    run_id = 0
    for entry, config in enumerate(configs):
        alphas = config["learning_rate"]
        alphas = alphas if isinstance(alphas, list) else [alphas]
        for alpha in alphas:
            for seed in seeds:
                rng = np.random.default_rng(1000 * run_id + seed)
                initial = 1.0 + 0.1 * seed
                diverge_at = _per_run(config.get("diverge_at"), alpha, seed)
                unstable_at = _per_run(config.get("unstable_at"), alpha, seed) if diverge_at is None else None
                fail_at = (
                    _per_run(config.get("fail_at"), alpha, seed) if diverge_at is None and unstable_at is None else None
                )
                last = steps if diverge_at is None and fail_at is None else (diverge_at if fail_at is None else fail_at)
                losses = []
                for t in range(last + 1):
                    if diverge_at is not None:
                        loss = initial * 3.0**t
                        if t == diverge_at:
                            loss = float("inf") if config.get("inf") else initial * divergence_factor * 2
                    elif unstable_at is not None and t > unstable_at:
                        loss = losses[unstable_at] * 1.6 ** (t - unstable_at)  # finite, climbing to the end
                    else:
                        loss = initial * (1 - min(alpha, 0.5)) ** t * (1 + 0.01 * rng.random())
                    losses.append(loss)
                for t, loss in enumerate(losses):
                    row = {
                        "run_id": run_id,
                        "step": t,
                        "loss": loss,
                        "learning_rate": alpha if t < steps else np.nan,
                        "step_size": alpha * (t + 1) if t < steps else np.nan,
                        "grad_norm": loss * 2.0,
                        "test_loss": loss * 1.1 if t % 5 == 0 or t == steps else np.nan,
                        "test_accuracy": np.nan,
                        "sharpness": np.nan,
                    }
                    for layer in range(1, layers + 1):
                        row[f"grad_norm.layer{layer}"] = loss * layer
                    metric_rows.append(row)
                if diverge_at is not None:
                    status = "diverged"
                elif unstable_at is not None:
                    status = "unstable"
                elif fail_at is not None:
                    status = "failed"
                else:
                    status = _per_run(config.get("status"), alpha, seed) or "converged"
                finite = [v for v in losses if np.isfinite(v)]
                run_rows.append(
                    {
                        "run_id": run_id,
                        "entry": entry,
                        "label": config.get("label", config["rule"]),
                        "rule": config["rule"],
                        "schedule": "constant",
                        "seed": seed,
                        "learning_rate": float(alpha),
                        "momentum": config.get("momentum", np.nan),
                        "warmup_steps": 0,
                        "status": status,
                        "diverged_at": float(diverge_at) if diverge_at is not None else np.nan,
                        "unstable_at": float(unstable_at) if unstable_at is not None else np.nan,
                        "final_loss": losses[-1] if status not in ("diverged", "failed") else np.nan,
                        "best_loss": min(finite),
                        "steps_to_target": np.nan,
                        "error": "ZeroDivisionError: broken on purpose" if status == "failed" else "",
                        "divergence_reason": (_per_run(config.get("reason"), alpha, seed) or "")
                        if status in ("unstable", "diverged")
                        else "",
                    }
                )
                if path_dims:
                    p = np.full((steps + 1, path_dims), np.nan)
                    for t in range(last + 1):
                        p[t] = (1 - alpha) ** t * np.array([1.5, -1.0][:path_dims])
                    paths.append(p)
                run_id += 1
    weights = {"path": np.stack(paths)} if path_dims else {}
    experiment = SimpleNamespace(steps=steps, entries=[SimpleNamespace(hyper={"momentum": [0.9]})])
    return Results(  # a Results whose experiment is only what the figures read of it
        experiment=experiment,
        runs=pd.DataFrame(run_rows),
        metrics=pd.DataFrame(metric_rows),
        weights=weights,
        meta={},
        problem_info={},
        path=None,
    )


@pytest.fixture
def make_results():
    return synthetic_results


@pytest.fixture(scope="session")
def browser_type_launch_args():
    """pytest-playwright hook (if installed): Debian chromium, never a downloaded browser."""
    return {
        "executable_path": CHROMIUM,
        "headless": True,
        "args": [
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--disable-default-apps",
        ],
    }


@pytest.fixture(autouse=True)
def dashboard_reads_test_folders(tmp_path_factory, monkeypatch):
    """Tests keep results and data in pytest's temporary folders: allow them, as ``--allow-path`` would.

    The dashboard reads only under allowed roots (descentlab.dashboard.access); tests of that rule
    set DESCENTLAB_ALLOW_PATHS themselves.
    """
    monkeypatch.setenv("DESCENTLAB_ALLOW_PATHS", str(tmp_path_factory.getbasetemp()))
