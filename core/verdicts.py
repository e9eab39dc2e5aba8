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
docs/verdicts.md).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "FLAGGED",
    "LOST",
    "NEAR",
    "NOISE",
    "SETTLE",
    "STABLE",
    "STALL",
    "STATUSES",
    "WINDOW",
    "classify",
    "is_flagged",
    "is_stable",
    "smoothing_window",
    "stability_edge",
]

STATUSES = ("converged", "progressing", "stalled", "unstable", "diverged", "failed")
STABLE = ("converged", "progressing")  # what "stable" means everywhere
FLAGGED = ("unstable", "diverged")  # runs that blew up: they get an explanation

WINDOW = 0.1  # the final window: the last tenth of the steps (at least one step)
SETTLE = 0.01  # "still falling": the final window is lower than the one before by more than 1 % of the progress
LOST = 0.5  # "blew up": back above the best by more than half of the progress made
STALL = 0.01  # "stalled": progress below 1 % of the scale
NOISE = 3.0  # mini-batch runs: a rise must also exceed 3 standard errors of the smoothed batch loss
NEAR = 0.01  # with a known minimum J*: "near it" is within 1 % of the initial gap J₀ − J*


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
    """Mean of the last ``width`` values up to each step along axis 1 (fewer at the start)."""
    if width <= 1:
        return values
    sums = np.cumsum(values, axis=1)
    out = sums.copy()
    out[:, width:] = sums[:, width:] - sums[:, :-width]
    counts = np.minimum(np.arange(1, values.shape[1] + 1), width)
    return out / counts


def _first(mask: np.ndarray) -> np.ndarray:
    """Index of the first True of each row, NaN where there is none."""
    return np.where(mask.any(axis=1), mask.argmax(axis=1), np.nan)


def _judge(
    loss: np.ndarray, first: np.ndarray, last: np.ndarray, minimum: float | None, smooth: int
) -> tuple[np.ndarray, np.ndarray]:
    """(statuses, unstable_at) of n finite loss histories of one length, ``(n, L)``, by the module's rules.

    All runs of one length are judged at once: a Python loop over a tiny job's 256 runs cost ~4 ms,
    as much as a tenth of its training.
    """
    n, length = loss.shape
    steps = np.arange(length)
    curve = _trailing_mean(loss, smooth)
    best_step = curve.argmin(axis=1)
    best = curve[np.arange(n), best_step]
    progress = curve[:, 0] - best
    rise = curve[:, -1] - best
    k = max(1, int(math.ceil(WINDOW * (length - 1))))
    level = curve[:, -k:].mean(axis=1)
    previous = curve[:, max(0, length - 2 * k) : length - k]
    known = minimum is not None and math.isfinite(minimum)
    known_row = known & (first > (minimum if known else 0.0))
    scale = np.where(known_row, first - (minimum if known else 0.0), np.abs(first))
    stalled = progress <= STALL * scale
    noise = np.zeros(n)
    if smooth > 1:  # a smoothed batch curve: its minimum sits below its mean by noise alone
        noise = NOISE * loss[:, -max(k, smooth) :].std(axis=1) / math.sqrt(smooth)
    unstable = (last > first) | (~stalled & (rise > LOST * progress) & (rise > noise))
    far = known_row & (best - (minimum if known else 0.0) > NEAR * (first - (minimum if known else 0.0)))
    if previous.shape[1]:
        falling = previous.mean(axis=1) - level > np.where(far, 0.0, SETTLE * progress)
    else:
        falling = np.zeros(n, dtype=bool)
    status = np.select([unstable, stalled, falling], ["unstable", "stalled", "progressing"], "converged")
    onset = np.full(n, np.nan)
    u = np.flatnonzero(unstable)
    if len(u):  # only unstable runs need their onset: three passes over (n, L) are most of the cost
        loss, curve, first, best, progress = loss[u], curve[u], first[u], best[u], progress[u]
        # the first step after the best more than LOST of the progress above it; for a run never
        # below J₀, the first step above J₀
        lost = (curve - best[:, None] > LOST * progress[:, None]) & (steps > best_step[u, None])
        above_start = (loss > first[:, None]) & (steps >= 1)
        found = np.where(progress > 0, _first(lost), _first(above_start))
        # J_T > J₀ without such a rise (a smoothed best): the first step of the final stretch above J₀
        final_stretch = length - _first((loss <= first[:, None])[:, ::-1])
        onset[u] = np.where(np.isnan(found), np.nan_to_num(final_stretch, nan=1.0), found)
    return status, onset


def classify(
    loss: np.ndarray,
    last_row: np.ndarray,
    runner_status,
    *,
    minimum: float | None = None,
    smooth: int = 1,
    ends: np.ndarray | None = None,
) -> tuple[list[str], np.ndarray]:
    """Statuses and ``unstable_at`` of R runs.

    ``loss`` is ``(R, steps + 1)`` (rows after a run's ``last_row`` are ignored); ``runner_status``
    is what the runner decided (``"diverged"`` and ``"failed"`` are kept, anything else is judged
    here); ``minimum`` the problem's known minimum loss J*, if any; ``smooth`` the trailing-mean
    width (see :func:`smoothing_window`); ``ends`` an optional ``(R, 2)`` of (J₀, J_T) on the whole
    training set for mini-batch runs. ``unstable_at`` is NaN except for unstable runs.
    """
    loss = np.asarray(loss, dtype=np.float64)
    last_row = np.asarray(last_row, dtype=np.int64)
    statuses = np.array(list(runner_status), dtype=object)
    onsets = np.full(loss.shape[0], np.nan)
    with np.errstate(all="ignore"):
        judged = ~np.isin(statuses, ("diverged", "failed"))
        for length in sorted(set((last_row[judged] + 1).tolist())):
            rows = np.flatnonzero(judged & (last_row + 1 == length))
            # a view when every run is judged (the usual case): a 2 MB copy costs ~1 ms in page faults
            block = loss[:, :length] if len(rows) == len(loss) else loss[rows, :length]
            finite = np.isfinite(block).all(axis=1) if length > 0 else np.zeros(len(rows), dtype=bool)
            if not finite.all():
                statuses[rows[~finite]] = "diverged"  # not reached through the runner: non-finite is divergence
                rows, block = rows[finite], block[finite]
            if not len(rows):
                continue
            first, last = block[:, 0].copy(), block[:, -1].copy()
            if ends is not None:
                pairs = np.asarray(ends, dtype=np.float64)[rows]
                usable = np.isfinite(pairs).all(axis=1)
                first[usable], last[usable] = pairs[usable, 0], pairs[usable, 1]
            statuses[rows], onsets[rows] = _judge(block, first, last, minimum, smooth)
    return [str(s) for s in statuses], onsets


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
