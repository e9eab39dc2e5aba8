"""The runner's outputs as tables: the runs table (with verdicts and explanations), per-step arrays, weights."""

from __future__ import annotations

import math

import numpy as np

from .chunk import METRIC_BASE, METRIC_TAIL, snapshot_steps
from .experiment import Experiment
from .step_arrays import StepArrays


def _json_ready(value):
    """numpy scalars and arrays inside ``describe()`` as plain JSON values."""
    if isinstance(value, dict):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    if isinstance(value, np.ndarray):
        return _json_ready(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _hyper_columns(experiment: Experiment, registry) -> tuple[list[str], list[str]]:
    rule_cols, schedule_cols = [], []
    for e in experiment.entries:
        rule_cols += [n for n in e.hyper if n not in rule_cols]
        schedule_cols += [n for n in e.schedule_hyper if n not in schedule_cols]
    return rule_cols, schedule_cols


def _column(values: list):
    import pandas as pd

    present = [v for v in values if v is not None]
    if all(isinstance(v, (bool, int, float, np.number)) for v in present):
        return np.array([np.nan if v is None else float(v) for v in values])
    # text hyperparameters (choices): a string column, missing where the rule lacks it
    return pd.Series([None if v is None else str(v) for v in values], dtype="str")


def _train_losses(instance, params: np.ndarray) -> np.ndarray:
    """The loss of every run on the whole training set at ``params`` (NaN where it cannot be taken)."""
    try:
        with np.errstate(all="ignore"):
            return np.asarray(instance.loss(np.ascontiguousarray(params), None), dtype=np.float64)
    except KeyboardInterrupt:
        raise
    except BaseException:  # a bonus column: a problem that cannot (sys.exit too) leaves the verdict to the batch loss
        return np.full(params.shape[0], np.nan)


def _explain(experiment, registry, instance, configs, status, flagged_at, **records):
    """The explanation columns of the runs table (``descentlab.explain``); empty if it cannot run."""
    R = len(configs)
    try:
        from .explain import explain_flagged

        return explain_flagged(instance, registry, experiment, configs, status, flagged_at, **records)
    except KeyboardInterrupt:
        raise
    except BaseException:  # theory is a bonus; it must never break a finished experiment (sys.exit in it too)
        return [""] * R, np.full(R, np.nan), np.full(R, np.nan)


def _assemble(experiment, registry, instance, configs, outputs, problem_info):
    import pandas as pd  # only here: importing descentlab (e.g. by a plugin) stays light

    T, R = experiment.steps, len(configs)
    layout = instance.layout
    layer_names = list(layout.layers)
    # chunk outputs are run-major (r, steps + 1); stack them and put the runs in run_id order
    ids = np.concatenate([np.asarray(out["run_ids"], dtype=np.int64) for out in outputs])
    order = None if np.array_equal(ids, np.arange(R)) else np.argsort(ids, kind="stable")

    def gather(key, group="metrics"):
        parts = [(out[group][key] if group else out[key]) for out in outputs]
        if all(p is None for p in parts):
            return None  # never recorded (all NaN), or one layer (its norm is grad_norm)
        if any(p is None for p in parts):
            parts = [
                np.full((len(out["run_ids"]), T + 1), np.nan) if p is None else p for p, out in zip(parts, outputs)
            ]
        stacked = parts[0] if len(parts) == 1 else np.concatenate(parts)
        return stacked if order is None else stacked[order]

    arrays = {name: gather(name) for name in (*METRIC_BASE, *METRIC_TAIL)}  # each (R, T+1)
    layers = gather("layers")  # (R, T+1, L)
    initial, final = gather("initial", None), gather("final", None)
    path = gather("path", None)
    snapshots = gather("snapshots", None)
    status = [s for out in outputs for s in out["status"]]
    errors = [e for out in outputs for e in out["error"]]
    if order is not None:
        status, errors = [status[i] for i in order], [errors[i] for i in order]
    diverged_at = gather("diverged_at", None)
    last_row = gather("last_row", None)

    # runs table
    loss = arrays["loss"]
    steps = np.arange(T + 1)[None, :]
    runs_r = np.arange(R)
    exists = steps <= last_row[:, None]  # (R, T+1): the rows a run has
    with np.errstate(all="ignore"):
        usable = exists & np.isfinite(loss)
        lowest = np.where(usable, loss, np.inf).min(axis=1, initial=np.inf)
        best = np.where(usable.any(axis=1), lowest, np.nan)
        final_loss = np.where(last_row >= 0, loss[runs_r, np.maximum(last_row, 0)], np.nan)
        steps_to_target = np.full(R, np.nan)
        if experiment.target_loss is not None:
            hit = exists & (loss <= experiment.target_loss)
            steps_to_target = np.where(hit.any(axis=1), hit.argmax(axis=1), np.nan).astype(float)
    from .verdicts import classify, smoothing_window

    minimum = problem_info.get("minimum_value") if isinstance(problem_info, dict) else None
    n_train = int(getattr(instance, "n_train", 0) or 0)
    if experiment.batch_size > 0:  # a batch's loss says little: J₀ and J_T on the whole training set
        train_start, train_final = _train_losses(instance, initial), _train_losses(instance, final)
    else:
        train_start, train_final = loss[:, 0].astype(np.float64), final_loss.astype(np.float64)
    status, unstable_at = classify(
        loss,
        last_row,
        status,
        minimum=minimum,
        smooth=smoothing_window(T, experiment.batch_size, n_train),
        ends=np.stack([train_start, train_final], axis=1),
    )
    flagged_at = np.where(np.isfinite(diverged_at), diverged_at, unstable_at)
    reasons, lambda_start, lambda_flagged = _explain(
        experiment,
        registry,
        instance,
        configs,
        status,
        flagged_at,
        initial=initial,
        rates=arrays["learning_rate"],
        step_sizes=arrays["step_size"],
        losses=loss,
        last_row=last_row,
    )

    rule_cols, schedule_cols = _hyper_columns(experiment, registry)
    table = {
        "run_id": np.array([c.run_id for c in configs], dtype=np.int64),
        "entry": np.array([c.entry for c in configs], dtype=np.int64),
        "label": [c.label for c in configs],
        "rule": [c.rule for c in configs],
        "schedule": [c.schedule for c in configs],
        "seed": np.array([c.seed for c in configs], dtype=np.int64),
        "learning_rate": np.array([c.learning_rate for c in configs], dtype=np.float64),
    }
    for name in rule_cols:
        table[name] = _column([c.hyper.get(name) for c in configs])
    for name in schedule_cols:
        table[f"schedule.{name}"] = _column([c.schedule_hyper.get(name) for c in configs])
    table.update(
        {
            "warmup_steps": np.array([c.warmup_steps for c in configs], dtype=np.int64),
            # the entry's gradient transforms in order, "" when none (descentlab.transforms.describe)
            "transforms": pd.Series([experiment.entries[c.entry].transforms_text() for c in configs], dtype="str"),
            "status": status,
            "diverged_at": diverged_at,
            "unstable_at": unstable_at,
            "final_loss": final_loss,
            "best_loss": best,
            "train_loss_start": train_start,
            "train_loss_final": train_final,
            "steps_to_target": steps_to_target,
            "error": errors,
            "divergence_reason": reasons,
            "lambda_max_start": lambda_start,
            "lambda_max_flagged": lambda_flagged,
        }
    )
    runs = pd.DataFrame(table)

    # per-step values stay (R, T+1) arrays (descentlab.step_arrays): the long table is built from
    # them only when it is asked for (saving, results.metrics)
    columns: dict[str, np.ndarray | None] = {name: arrays[name] for name in METRIC_BASE}
    for k, layer in enumerate(layer_names):
        # one layer: its norm is the gradient norm
        columns[f"grad_norm.{layer}"] = arrays["grad_norm"] if layers is None else layers[:, :, k]
    for name in METRIC_TAIL:
        columns[name] = arrays[name]
    steps_arrays = StepArrays(columns=columns, last_row=np.asarray(last_row, dtype=np.int64), steps=T)

    weights = {}
    for prefix, flat in (("initial", initial), ("final", final)):
        for e in layout.entries:
            weights[f"{prefix}.{e.name}"] = np.ascontiguousarray(layout.view(flat, e.name))
    if path is not None:
        weights["path"] = path
    if snapshots is not None:
        weights["snapshots"] = snapshots
        weights["snapshot_steps"] = np.array(snapshot_steps(T, experiment.snapshot_every), dtype=np.int64)
    return runs, steps_arrays, weights
