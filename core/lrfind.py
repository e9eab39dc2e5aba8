"""The learning-rate range test (Leslie Smith 2015; fastai's ``lr_find``), over several seeds at once.

One short run per seed in which the learning rate grows exponentially, α_t = start·(end/start)^{t/(T−1)},
one update per step. The loss is smoothed with fastai's bias-corrected exponential moving average

    avg_t = β·avg_{t−1} + (1 − β)·J_t,    smooth_t = avg_t / (1 − β^{t+1}),   β = 0.98,

and a run stops once smooth_t > stop_factor × (best smooth so far) or the loss is not finite. All
seeds run as one batch along the run axis; the median and the quartiles of the smoothed curves
(over the seeds still running) make the curve and its band.

The suggested α is fastai's "steep" point: where the median smoothed loss falls fastest per unit of
log α, searched only before the curve's minimum (past the minimum the loss is blowing up). It is a
rate at which training still makes fast progress, which on a quadratic lies below the stability
edge 2/λ_max. fastai's other classic, the α of the minimum divided by 10, is returned too. If the
curve never falls, the suggestion falls back to minimum/10 and the reason says so.
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .atomic import write_text_atomic
from .errors import SpecError

__all__ = ["LRFindResult", "THEORY_NOTE", "lr_find", "lr_find_experiment", "main", "run"]

_QUIET: dict = dict(over="ignore", invalid="ignore", divide="ignore", under="ignore")


@dataclass
class LRFindResult:
    """The curves of a range test and the suggestion drawn from them."""

    rule: str
    hyper: dict
    seeds: list[int]
    learning_rates: np.ndarray  # (T,) α_t of every step
    losses: np.ndarray  # (S, T) raw training loss at θ_t; NaN after a seed stopped
    smoothed: np.ndarray  # (S, T) bias-corrected EMA of the loss; NaN after a seed stopped
    stopped_at: np.ndarray  # (S,) step at which a seed stopped, −1 if it ran to the end
    median: np.ndarray  # (T,) median of the smoothed curves; NaN once most seeds stopped
    low: np.ndarray  # (T,) 25th percentile (band)
    high: np.ndarray  # (T,) 75th percentile (band)
    suggested_lr: float
    steepest_lr: float  # NaN when the curve never falls
    minimum_lr: float  # α at the minimum of the median curve, divided by 10
    reason: str
    settings: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """JSON-ready (NaN becomes None)."""

        def clean(a):
            return [None if not math.isfinite(v) else float(v) for v in np.asarray(a, dtype=float).ravel()]

        def scalar(v):
            return None if not math.isfinite(v) else float(v)

        return {
            "rule": self.rule,
            "hyper": self.hyper,
            "seeds": list(self.seeds),
            "learning_rates": clean(self.learning_rates),
            "median": clean(self.median),
            "low": clean(self.low),
            "high": clean(self.high),
            "smoothed": [clean(row) for row in self.smoothed],
            "losses": [clean(row) for row in self.losses],
            "stopped_at": [int(s) for s in self.stopped_at],
            "suggested_lr": scalar(self.suggested_lr),
            "steepest_lr": scalar(self.steepest_lr),
            "minimum_lr": scalar(self.minimum_lr),
            "reason": self.reason,
            "settings": self.settings,
        }


def _suggest(lrs: np.ndarray, median: np.ndarray) -> tuple[float, float, float, str]:
    """(suggested, steepest, minimum/10, reason) from the median smoothed curve."""
    valid = np.isfinite(median)
    n = int(np.argmin(valid)) if not valid.all() else len(median)  # the finite prefix
    if n < 2:
        return float("nan"), float("nan"), float("nan"), "too few steps before the loss blew up to suggest an α"
    curve, log_lr = median[:n], np.log(lrs[:n])
    i_min = int(np.argmin(curve))
    minimum_lr = float(lrs[i_min] / 10.0)
    min_text = (
        f"the smoothed loss is lowest at α = {lrs[i_min]:.3g}, a tenth of that is {minimum_lr:.3g} (fastai's 'minimum')"
    )
    if i_min < 1:
        return (
            minimum_lr,
            float("nan"),
            minimum_lr,
            ("the smoothed loss never fell, so no steepest point exists; suggested the minimum's α/10: " + min_text),
        )
    slope = np.gradient(curve[: i_min + 1], log_lr[: i_min + 1])
    i_steep = int(np.argmin(slope))
    steepest = float(lrs[i_steep])
    if not slope[i_steep] < 0:
        return (
            minimum_lr,
            float("nan"),
            minimum_lr,
            ("the smoothed loss has no falling stretch; suggested the minimum's α/10: " + min_text),
        )
    reason = (
        f"steepest descent of the median smoothed loss: at α = {steepest:.3g} the loss falls fastest "
        f"per decade of α (fastai's 'steep'); " + min_text
    )
    return steepest, steepest, minimum_lr, reason


def _range_test(instance, rule, values, seeds, start_lr, end_lr, steps, beta, stop_factor, batch_size, dtype, registry):
    """(losses, smoothed, stopped_at) of the range test, trained by the runner's chunk loop.

    The ramp is the ``exponential_ramp`` schedule over ``steps − 1`` updates (α_t = lrs[t]); the
    stop rule is a probe that smooths each run's loss and stops the chunk once every run is done.
    Runs past their own stop train on unseen until then (their values are not recorded); the loop's
    divergence factor is effectively off, so only a non-finite loss (also a stop) drops a run.
    """
    from .chunk import RuleLookup, one_rule_experiment, run_chunk

    if registry is None:
        from .registry import get_registry

        registry = get_registry()
    runs = len(seeds)
    n_train = int(getattr(instance, "n_train", 0) or 0)
    use_batches = 0 < batch_size < n_train
    experiment = one_rule_experiment(
        rule,
        values,
        list(seeds),
        steps - 1,
        start_lr,
        schedule="exponential_ramp",
        schedule_hyper={"end_lr": float(end_lr)},
        batch_size=int(batch_size) if use_batches else 0,
        dtype=dtype.name,
    )
    losses = np.full((runs, steps), np.nan)
    smoothed = np.full((runs, steps), np.nan)
    stopped_at = np.full(runs, -1)
    active = np.ones(runs, dtype=bool)
    avg = np.zeros(runs)
    best = np.full(runs, np.inf)

    def stop_rule(view) -> bool:
        nonlocal avg, best
        t, live = view.t, view.live
        loss = np.full(runs, np.nan)
        loss[live] = np.asarray(view.loss, dtype=float)
        with np.errstate(**_QUIET):
            avg = beta * avg + (1.0 - beta) * loss
            smooth = avg / (1.0 - beta ** (t + 1))
            losses[active, t] = loss[active]
            smoothed[active, t] = smooth[active]
            best = np.where(active, np.minimum(best, smooth), best)
            stop = active & (~np.isfinite(smooth) | (smooth > stop_factor * best))
        stopped_at[stop] = t
        active[stop] = False
        return not active.any()

    run_chunk(instance, RuleLookup(rule, registry), experiment, experiment.runs(), probe=stop_rule)
    return losses, smoothed, stopped_at


def lr_find(
    instance,
    rule,
    hyper: dict | None = None,
    *,
    seeds=(0, 1, 2),
    start_lr: float = 1e-6,
    end_lr: float = 10.0,
    num_steps: int = 100,
    beta: float = 0.98,
    stop_factor: float = 4.0,
    batch_size: int = 0,
    dtype="float64",
    registry=None,
) -> LRFindResult:
    """Run the range test of ``rule`` (a DescentRule or registered name) on a built problem instance.

    ``hyper`` sets the rule's hyperparameters (defaults for the rest); ``seeds`` are the runs'
    seeds (initial weights, mini-batch order); ``batch_size`` 0 = full batch.
    """
    if not (start_lr > 0 and end_lr > start_lr):
        raise SpecError("lr-find range", f"{start_lr:g}..{end_lr:g}", "0 < start < end")
    if int(num_steps) < 2:
        raise SpecError("lr-find steps", num_steps, "an integer >= 2")
    if not 0 <= beta < 1:
        raise SpecError("lr-find beta", beta, "a number in [0, 1)")
    if not stop_factor > 1:
        raise SpecError("lr-find stop_factor", stop_factor, "a number > 1")
    if isinstance(rule, str):
        if registry is None:
            from .registry import get_registry

            registry = get_registry()
        rule = registry.rule(rule)
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise SpecError("seeds", seeds, "at least one seed")
    runs, steps = len(seeds), int(num_steps)
    values = {h.name: h.default for h in rule.hyperparams}
    values.update(hyper or {})
    for h in rule.hyperparams:
        values[h.name] = h.check(values[h.name], f"rules.{rule.name}")
    lrs = start_lr * (end_lr / start_lr) ** (np.arange(steps) / (steps - 1))
    dtype = np.dtype(dtype)
    losses, smoothed, stopped_at = _range_test(
        instance, rule, values, seeds, start_lr, end_lr, steps, beta, stop_factor, batch_size, dtype, registry
    )

    median = np.full(steps, np.nan)
    low, high = median.copy(), median.copy()
    # The band is drawn while at least half the seeds are still running (or stopping at that step).
    alive = np.isfinite(smoothed).sum(axis=0)
    majority = alive >= max(1, math.ceil(runs / 2))
    cut = int(np.argmin(majority)) if not majority.all() else steps
    if cut > 0:
        low[:cut], median[:cut], high[:cut] = np.nanpercentile(smoothed[:, :cut], [25, 50, 75], axis=0)
    suggested, steepest, minimum, reason = _suggest(lrs, median)
    return LRFindResult(
        rule=rule.name,
        hyper={k: v for k, v in values.items()},
        seeds=seeds,
        learning_rates=lrs,
        losses=losses,
        smoothed=smoothed,
        stopped_at=stopped_at,
        median=median,
        low=low,
        high=high,
        suggested_lr=suggested,
        steepest_lr=steepest,
        minimum_lr=minimum,
        reason=reason,
        settings={
            "start_lr": start_lr,
            "end_lr": end_lr,
            "num_steps": steps,
            "beta": beta,
            "stop_factor": stop_factor,
            "batch_size": int(batch_size),
            "dtype": dtype.name,
        },
    )


# One line wherever the range test's suggestion and the theory's critical α appear side by side.
THEORY_NOTE = (
    "Why the two differ: the range test raises α at every step of one short run, and a loss "
    "needs several steps above the critical α to grow, so its lowest loss sits past c/λ_max by "
    "design; the critical α holds for a constant α, and the suggestion should sit below it."
)


def lr_find_experiment(
    experiment,
    *,
    rule: str | None = None,
    start_lr: float = 1e-6,
    end_lr: float = 10.0,
    num_steps: int = 100,
    beta: float = 0.98,
    stop_factor: float = 4.0,
    registry=None,
) -> list[tuple[str, LRFindResult]]:
    """Range test for each ``[[rules]]`` entry of an experiment (or those of one rule name).

    Uses the experiment's problem, seeds, batch size and dtype, and each entry's first grid point
    of hyperparameters (the learning rate itself is what the test sweeps; schedules are ignored).
    When the problem knows λ_max, ``result.settings["critical_lr"]`` holds c/λ_max (or None).
    Returns ``[(label, result)]``.
    """
    if registry is None:
        from .registry import get_registry

        registry = get_registry()
    entries = [e for e in experiment.entries if rule is None or e.rule == rule]
    if not entries:
        raise SpecError(
            "--rule", rule, "a rule of the experiment: " + ", ".join(sorted({e.rule for e in experiment.entries}))
        )
    from .faults import build_instance

    instance = build_instance(registry.problem(experiment.problem), dict(experiment.problem_settings))
    out = []
    for entry in entries:
        hyper = {name: values[0] for name, values in entry.hyper.items()}
        result = lr_find(
            instance,
            registry.rule(entry.rule),
            hyper,
            seeds=experiment.seeds,
            start_lr=start_lr,
            end_lr=end_lr,
            num_steps=num_steps,
            beta=beta,
            stop_factor=stop_factor,
            batch_size=experiment.batch_size,
            dtype=experiment.dtype,
            registry=registry,
        )
        top = instance.describe().get("top_eigenvalue")
        if top is not None:
            from .stability import critical_learning_rate

            result.settings["critical_lr"] = critical_learning_rate(
                registry.rule(entry.rule), hyper, top, registry=registry
            )
        out.append((entry.label, result))
    return out


def _check_out_file(out: str, force: bool) -> Path:
    """``--out`` must name a new file (or, with ``--force``, an existing file) in a writable folder:
    checked before the range test runs, so nothing is computed for an output that cannot be written."""
    import os

    path = Path(out).expanduser()
    accepted = "the path of a new .json file in a writable folder (--force replaces an existing file)"
    if not str(out).strip() or path.is_dir():
        raise SpecError("--out", str(out), accepted, hint="it is a folder" if str(out).strip() else "")
    if path.exists() or path.is_symlink():
        if not path.is_file():
            raise SpecError("--out", str(out), accepted, hint="not a regular file")
        if not force:
            raise SpecError("--out", str(out), accepted, hint="the file exists")
    if path.suffix.lower() != ".json":  # lr-find writes JSON: a .csv or .txt name would mislead a reader
        raise SpecError("--out", str(out), accepted, hint="lr-find writes JSON")
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise SpecError("--out", str(out), accepted, hint=f"{parent} is not a writable folder")
    return path


def main(argv=None) -> int:
    """``descentlab lr-find EXPERIMENT.toml [--rule NAME] [--start 1e-6] [--end 10] [--steps 100] [--out PATH]``.

    The same command as ``descentlab lr-find`` (its arguments are declared once, in
    ``descentlab.cli.add_lr_find_arguments``): bad arguments and bad input are one line on stderr and
    exit status 2, as for every command.
    """
    from .cli import main as cli_main

    return cli_main(["lr-find", *(sys.argv[1:] if argv is None else argv)])


def run(args) -> int:
    """Carry out ``descentlab lr-find`` with its parsed arguments; bad input raises SpecError."""
    if args.out is not None:
        _check_out_file(args.out, args.force)
    from .experiment import load_experiment_file

    experiment = load_experiment_file(args.experiment)
    found = lr_find_experiment(
        experiment,
        rule=args.rule,
        start_lr=args.start,
        end_lr=args.end,
        num_steps=args.steps,
        stop_factor=args.stop_factor,
    )
    for label, result in found:
        critical = result.settings.get("critical_lr")
        theory = f"; critical α from theory {critical:.3g}" if critical is not None else ""
        print(f"{label} ({result.rule}): suggested α = {result.suggested_lr:.3g}{theory}")
        print(f"  why: {result.reason}")
    if any(result.settings.get("critical_lr") is not None for _, result in found):
        print(THEORY_NOTE)
    if args.out:
        payload = {
            "experiment": experiment.name,
            "problem": experiment.problem,
            "note": THEORY_NOTE,
            "entries": [{"label": label, **result.to_dict()} for label, result in found],
        }
        try:
            write_text_atomic(Path(args.out).expanduser(), json.dumps(payload, indent=1))
        except OSError as error:  # e.g. the disk filled up, or the folder changed since the check
            print(f"descentlab: error: --out: could not write {args.out} ({error.strerror or error})", file=sys.stderr)
            return 1
        print(f"wrote {args.out}")
    return 0
