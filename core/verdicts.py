"""Run verdicts: one status per run, decided from its own loss history by the rules below.

The vocabulary, in the order the rules are tried (the first that applies wins):

``failed``
    the rule or the problem raised an error (the runner stops the run and keeps the error).
``diverged``
    the loss became NaN/±inf or left ``±divergence_factor × |J₀|``; the runner stops the run there
    (``diverged_at``).
``unstable``
    the run stayed finite but blew up: its final loss is above its initial loss (J_T > J₀), or
    it made progress and then lost more than ``LOST`` of it: J_T − J_best > LOST · (J₀ − J_best).
    ``unstable_at`` is the first step after its best step where the loss was more than ``LOST``
    of that progress above the best (for a run that never went below J₀: the first step above J₀).
``stalled``
    no meaningful progress: J₀ − J_best ≤ ``STALL`` · scale, where scale is J₀ − J* when the
    problem knows its minimum J*, else |J₀|. (Tried before the second ``unstable`` rule, so a
    rounding-level wobble of a run that never moved is not called a blow-up; J_T > J₀ still is.)
``progressing``
    still falling at the end: the mean loss of the final window is more than ``SETTLE`` of the
    progress below the mean of the window before it. When the problem knows its minimum J* and the
    run's best is still more than ``NEAR`` of the initial gap J₀ − J* away from it, any fall of
    the final window counts (a slow crawl down a valley is progress, not convergence).
``converged``
    reached its best and stayed near it: none of the above, i.e. the final window improves on the
    window before by at most ``SETTLE`` of the progress, and the run ends within ``LOST`` of the
    progress from its best.

"Stable" (the sweep's largest stable α, the report, the heatmap) means ``converged`` or
``progressing`` on every seed. ``stalled`` is not flagged (nothing blew up) but is not stable
either: a run that did not move says nothing about whether α was safe.

For mini-batch runs the recorded loss is each step's batch loss: one batch's loss says little, so
J_T > J₀ compares the loss on the whole training set at the first and last weights (the runs
table's ``train_loss_start`` and ``train_loss_final``), and the window rules (progress, best,
window means, J_T in the second unstable rule) read a trailing mean over ``smooth`` steps (one
epoch, at most half the run); the second unstable rule then also needs the rise to exceed
``NOISE`` standard errors of that mean (σ of the batch losses over the final window / √smooth),
since the lowest point of a noisy curve sits below its level by noise alone.

The constants were chosen on the shipped examples and the built-in problems (developer notes in
the README, "Run verdicts").
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["FLAGGED", "LOST", "NEAR", "NOISE", "SETTLE", "STABLE", "STALL", "STATUSES", "WINDOW", "classify", "is_flagged",
           "is_stable", "smoothing_window", "stability_edge"]

STATUSES = ("converged", "progressing", "stalled", "unstable", "diverged", "failed")
STABLE = ("converged", "progressing")     # what "stable" means everywhere
FLAGGED = ("unstable", "diverged")        # runs that blew up: they get an explanation

WINDOW = 0.1    # the final window: the last tenth of the steps (at least one step)
SETTLE = 0.01   # "still falling": the final window is lower than the one before by more than 1 % of the progress
LOST = 0.5      # "blew up": back above the best by more than half of the progress made
STALL = 0.01    # "stalled": progress below 1 % of the scale
NOISE = 3.0    # mini-batch runs: a rise must also exceed 3 standard errors of the smoothed batch loss
NEAR = 0.01     # with a known minimum J*: "near it" is within 1 % of the initial gap J₀ − J*

_QUIET = dict(over="ignore", invalid="ignore", divide="ignore", under="ignore")


def is_stable(status) -> bool:
    """True for the statuses that count as stable (``converged``, ``progressing``)."""
    return status in STABLE


def is_flagged(status) -> bool:
    """True for a run that blew up (``unstable`` or ``diverged``)."""
    return status in FLAGGED


def smoothing_window(steps: int, batch_size: int, n_train: int) -> int:
    """Trailing-mean width for the window rules: 1 for full batch, else one epoch (≤ half the steps)."""
    if batch_size <= 0 or n_train <= 0:
        return 1
    return int(max(1, min(n_train // batch_size, max(1, steps // 2))))


def _trailing_mean(values: np.ndarray, width: int) -> np.ndarray:
    """Mean of the last ``width`` values up to each step (fewer at the start)."""
    if width <= 1:
        return values
    sums = np.cumsum(values)
    out = sums.copy()
    out[width:] = sums[width:] - sums[:-width]
    counts = np.minimum(np.arange(1, values.size + 1), width)
    return out / counts


def _one(loss: np.ndarray, minimum: float | None, smooth: int, ends: tuple[float, float] | None = None
         ) -> tuple[str, float]:
    """(status, unstable_at) of one finite loss history ``loss`` (J₀ … J_T); ``ends`` replaces (J₀, J_T)."""
    first, last = (float(loss[0]), float(loss[-1])) if ends is None else (float(ends[0]), float(ends[1]))
    curve = _trailing_mean(loss, smooth)
    best_step = int(np.argmin(curve))
    best = float(curve[best_step])
    progress = float(curve[0]) - best
    onset = math.nan
    if progress <= 0:  # never below J₀: trouble starts at the first step above it
        above = np.flatnonzero(loss[1:] > first)
        if above.size:
            onset = float(1 + above[0])
    else:
        above = np.flatnonzero(curve[best_step + 1:] - best > LOST * progress)
        if above.size:
            onset = float(best_step + 1 + above[0])
    steps = loss.size - 1
    k = max(1, int(math.ceil(WINDOW * steps)))
    final = curve[-k:]
    previous = curve[max(0, loss.size - 2 * k):loss.size - k]
    level = float(final.mean())
    known = minimum is not None and math.isfinite(minimum) and first > minimum
    scale = first - minimum if known else abs(first)
    stalled = progress <= STALL * scale
    rise = float(curve[-1]) - best
    noise = 0.0
    if smooth > 1:  # a smoothed batch curve: its minimum sits below its mean by noise alone
        noise = NOISE * float(np.std(loss[-max(k, smooth):])) / math.sqrt(smooth)
    if last > first or (not stalled and rise > LOST * progress and rise > noise):
        if math.isnan(onset):
            # J_T > J₀ without a rise above the (smoothed) best: the first step of the final stretch above J₀
            below = np.flatnonzero(loss <= first)
            onset = float(below[-1] + 1) if below.size else 1.0
        return "unstable", onset
    if stalled:
        return "stalled", math.nan
    far = known and best - minimum > NEAR * (first - minimum)
    if previous.size and float(previous.mean()) - level > (0.0 if far else SETTLE * progress):
        return "progressing", math.nan
    return "converged", math.nan


def classify(loss: np.ndarray, last_row: np.ndarray, runner_status, *, minimum: float | None = None,
             smooth: int = 1, ends: np.ndarray | None = None) -> tuple[list[str], np.ndarray]:
    """Statuses and ``unstable_at`` of R runs.

    ``loss`` is ``(R, steps + 1)`` (rows after a run's ``last_row`` are ignored); ``runner_status``
    is what the runner decided (``"diverged"`` and ``"failed"`` are kept, anything else is judged
    here); ``minimum`` the problem's known minimum loss J*, if any; ``smooth`` the trailing-mean
    width (see :func:`smoothing_window`); ``ends`` an optional ``(R, 2)`` of (J₀, J_T) on the whole
    training set for mini-batch runs. ``unstable_at`` is NaN except for unstable runs.
    """
    loss = np.asarray(loss, dtype=np.float64)
    statuses, onsets = [], np.full(loss.shape[0], np.nan)
    with np.errstate(**_QUIET):
        for i, given in enumerate(runner_status):
            if given in ("diverged", "failed"):
                statuses.append(given)
                continue
            history = loss[i, :int(last_row[i]) + 1]
            if history.size == 0 or not np.isfinite(history).all():
                statuses.append("diverged")  # not reached through the runner: non-finite is divergence
                continue
            pair = None if ends is None or not np.isfinite(ends[i]).all() else ends[i]
            status, onsets[i] = _one(history, minimum, smooth, pair)
            statuses.append(status)
    return statuses, onsets


def stability_edge(alphas, statuses) -> tuple[float, float]:
    """(largest stable α, smallest flagged α) along one line of learning rates.

    ``statuses[i]`` holds the statuses of every seed at ``alphas[i]``. Flagged: at least one seed
    unstable or diverged. Stable: every seed converged or progressing, and α below the smallest
    flagged α (a lucky α past the edge does not count). NaN where there is none.
    """
    pairs = sorted(zip((float(a) for a in alphas), statuses), key=lambda p: p[0])
    flagged = [a for a, s in pairs if any(is_flagged(x) for x in s)]
    edge = min(flagged) if flagged else math.nan
    stable = [a for a, s in pairs if len(s) and all(is_stable(x) for x in s) and not a >= edge]
    return (max(stable) if stable else math.nan), edge
