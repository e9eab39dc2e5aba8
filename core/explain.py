"""Why a flagged run blew up: λ_max at its start and just before the trouble, against the rule's limit.

For every run whose verdict is ``unstable`` or ``diverged`` (``descentlab.verdicts``) the top
Hessian eigenvalue λ_max of the full training loss is measured at two points: the initial weights
θ₀ and the weights θ_{s−1} of the step before the flagged step s (``diverged_at`` or
``unstable_at``), whose update produced the flagged loss. θ_{s−1} is not kept by a run, so the
flagged runs alone are trained again to step s − 1 by the runner's own chunk loop (a probe takes
the weights; results are bit-identical across chunkings, so these are the run's weights). λ_max is
exact where the problem has a closed-form Hessian (landscapes, linear regression) and comes from
Lanczos on Hessian-vector products otherwise (``descentlab.sharpness``).

The sentence then compares α·λ_max with the rule's declared ``stability_threshold`` c (stable on
a quadratic iff α·λ_max < c, with L2 weight decay w adding w to λ_max). A rule without one
(adaptive methods) is said to have no fixed curvature limit, and the size of its update relative
to the weights, ‖Δθ_{s−1}‖/‖θ_{s−1}‖, is reported instead. Only flagged runs pay for this; the
cost is measured by ``python benchmarks/explain.py`` (docs/verdicts.md).
"""

from __future__ import annotations

import math

import numpy as np

from .faults import error_text

__all__ = ["explain_flagged", "flagged_sentence", "snapshot_weights", "top_eigenvalues"]


def snapshot_weights(instance, registry, experiment, configs, steps: dict[int, int]) -> dict[int, np.ndarray | None]:
    """θ_t of run ``configs[i]`` for each ``i -> t`` in ``steps``, trained again by the runner's chunk loop.

    Runs are trained in chunks sized by the runner's plan and stop as soon as every asked-for
    weight is taken. Runs that stop (fail or diverge) before their step are left out.
    """
    from .chunk import run_chunk
    from .runner import plan_chunks

    out: dict[int, np.ndarray | None] = {i: None for i in steps}
    # Runs that stopped early are trained together and stop early: a chunk trains to its latest step,
    # so runs are banded by step (each band's latest step at most 2x + 10 its earliest). On the
    # typical sweep one chunk of every flagged run cost 0.24 s, mostly runs trained past their step.
    bands: list[list[int]] = []
    for i in sorted((i for i, t in steps.items() if t > 0), key=lambda i: steps[i]):
        if bands and steps[i] <= 2 * steps[bands[-1][0]] + 10:
            bands[-1].append(i)
        else:
            bands.append([i])
    index_of = {configs[i].run_id: i for band in bands for i in band}
    by_id = {configs[i].run_id: configs[i] for i in index_of.values()}
    chunks = [
        ids
        for band in bands
        for ids in plan_chunks(experiment, instance, sorted((configs[i] for i in band), key=lambda c: c.run_id))
    ]
    for chunk_ids in chunks:
        part = [by_id[run_id] for run_id in chunk_ids]
        at = {k: steps[index_of[c.run_id]] for k, c in enumerate(part)}
        last = max(at.values())

        def probe(view, at=at, part=part, last=last):
            for row, k in enumerate(view.live.tolist()):
                if at.get(k) == view.t:
                    out[index_of[part[k].run_id]] = np.array(view.params[row], dtype=np.float64)
            return view.t >= last

        run_chunk(instance, registry, experiment, part, probe=probe)
    return out


def top_eigenvalues(instance, params: np.ndarray) -> np.ndarray:
    """λ_max of the full training loss at each row of ``params`` ``(R, P)``: exact Hessian if known."""
    params = np.ascontiguousarray(params, dtype=np.float64)
    result = np.full(params.shape[0], np.nan)
    ok = np.isfinite(params).all(axis=1)
    if not ok.any():
        return result
    from .problem import exact_hessian

    with np.errstate(all="ignore"):
        exact = exact_hessian(instance, params[ok])
        if exact is not None:
            matrices = np.asarray(exact, dtype=np.float64)
            finite = np.isfinite(matrices).all(axis=(1, 2))
            values = np.full(len(matrices), np.nan)
            if finite.any():
                values[finite] = np.linalg.eigvalsh(matrices[finite])[:, -1]
            result[ok] = values
            return result
        from .sharpness import top_hessian_eigenvalue

        # At most 30 products: the sentence quotes 3 digits, and the top eigenvalue of these small
        # networks is well separated (benchmarks/explain.py measures the cost). Each run stops on its
        # own values (sharpness._lanczos_extremes), so its λ does not depend on which other runs were
        # flagged with it, and a Dask sweep's parts (one task's runs each) equal the pool's table.
        result[ok] = top_hessian_eigenvalue(instance, params[ok], iters=min(30, params.shape[1]))
    return result


def _number(value: float) -> str:
    return f"{value:.3g}"


def _distinct(a: float, b: float) -> tuple[str, str]:
    """``a`` and ``b`` with 3 significant digits, more (up to 6) while they would print the same."""
    for digits in (3, 4, 5, 6):
        left, right = f"{a:.{digits}g}", f"{b:.{digits}g}"
        if left != right:
            break
    return left, right


def flagged_sentence(
    *,
    status: str,
    step: int,
    rule,
    hyper: dict,
    rate_start: float,
    rate_flagged: float,
    lambda_start: float,
    lambda_flagged: float,
    update_ratio: float,
    minibatch: bool,
    ended_above_start: bool,
    divergence_factor: float,
) -> str:
    """One sentence: what happened at ``step`` and how α·λ_max compares with the rule's limit."""
    from .stability import _display_name, _effective_eigenvalue, _full_hyper, rule_threshold

    values = _full_hyper(rule, hyper)
    who = _display_name(rule, values)
    if status == "diverged":
        head = f"diverged at step {step} (loss beyond {divergence_factor:g}× its initial value, or not finite)"
    elif ended_above_start:
        head = f"unstable from step {step} (it ended above its initial loss)"
    else:
        head = f"unstable from step {step} (it lost more than half of the progress it had made)"
    before = max(step - 1, 0)
    c = rule_threshold(rule, values)
    # (α·λ_max, where, λ_max) at the weights before the flagged step, then at the start
    points = [
        (
            rate_flagged * _effective_eigenvalue(lambda_flagged, values),
            f"at step {before}" if before > 0 else "at the start",
            _effective_eigenvalue(lambda_flagged, values),
        )
    ]
    if before > 0:
        points.append(
            (
                rate_start * _effective_eigenvalue(lambda_start, values),
                "at the start",
                _effective_eigenvalue(lambda_start, values),
            )
        )
    points = [p for p in points if math.isfinite(p[0])]
    if not points:
        return head + "; λ_max could not be measured (the loss is not finite at those weights)"
    c_value = math.nan if c is None else c
    # the sentence leads with the larger product: the one that can break the limit
    points.sort(key=lambda p: -p[0])
    (worst, where, worst_lam), others = points[0], points[1:]
    measured = f"α·λ_max = {_distinct(worst, c_value)[0]} {where}"
    other = "".join(f" ({_distinct(p, c_value)[0]} {w})" for p, w, _ in others)
    if c is None:
        size = (
            (
                f"; measured instead: its update at step {before} was {_number(update_ratio)}× the size of "
                "the weights (‖Δθ‖/‖θ‖)"
            )
            if math.isfinite(update_ratio)
            else ""
        )
        # Only the rule knows why it has no limit (adaptive rules say so in threshold_note); a plugin
        # rule that declares nothing is not told its step adapts when it may be plain descent.
        note = " ".join(str(getattr(rule, "threshold_note", "") or "").split())
        why_none = f"{who} has no fixed curvature limit ({note})" if note else f"{who} declares no stability threshold"
        return head + f"; {why_none}, so {measured}{other} decides nothing on its own{size}"
    limit = _distinct(worst, c)[1]
    if worst >= c:
        crit = f"; critical α = {limit}/λ_max = {_number(c / worst_lam)} there" if worst_lam > 0 else ""
        return head + f": {measured} ≥ {limit}, {who}'s limit{other}{crit}"
    why = (
        "each step sees another mini-batch, so batch noise rather than curvature may be the cause"
        if minibatch
        else "the loss may be far from quadratic there"
    )
    return (
        head + f": {measured}{other} is below {limit}, {who}'s limit, so the stability limit does not "
        f"explain it ({why})"
    )


def explain_flagged(
    instance, registry, experiment, configs, status, flagged_at, *, initial, rates, step_sizes, losses, last_row
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(sentences, λ_max at the start, λ_max before the flagged step) for every run; "" and NaN if not flagged.

    ``flagged_at`` is each run's flagged step (NaN when not flagged); ``initial`` ``(R, P)`` the
    initial weights; ``rates``, ``step_sizes`` and ``losses`` the ``(R, steps + 1)`` records, valid up
    to each run's ``last_row``.
    """
    from .verdicts import is_flagged

    R = len(configs)
    reasons = [""] * R
    lam_start, lam_flagged = np.full(R, np.nan), np.full(R, np.nan)
    flagged = [i for i in range(R) if is_flagged(status[i]) and math.isfinite(float(flagged_at[i]))]
    if not flagged:
        return reasons, lam_start, lam_flagged
    before = {i: max(int(flagged_at[i]) - 1, 0) for i in flagged}
    snaps = snapshot_weights(instance, registry, experiment, configs, before)
    start = np.asarray(initial, dtype=np.float64)[flagged]
    points = np.stack([start[k] if (theta := snaps[i]) is None else theta for k, i in enumerate(flagged)])
    lam = top_eigenvalues(instance, np.concatenate([start, points]))
    lam_start[flagged], lam_flagged[flagged] = lam[: len(flagged)], lam[len(flagged) :]
    minibatch = experiment.batch_size > 0
    for k, i in enumerate(flagged):
        s, b = int(flagged_at[i]), before[i]
        config = configs[i]
        with np.errstate(all="ignore"):
            weight_norm = float(np.linalg.norm(points[k]))
            ratio = float(step_sizes[i, b]) / weight_norm if weight_norm > 0 else math.nan
        last = int(last_row[i])
        try:
            reasons[i] = flagged_sentence(
                status=status[i],
                step=s,
                rule=registry.rule(config.rule),
                hyper=dict(config.hyper),
                rate_start=float(rates[i, 0]),
                rate_flagged=float(rates[i, b]),
                lambda_start=float(lam_start[i]),
                lambda_flagged=float(lam_flagged[i]),
                update_ratio=ratio,
                minibatch=minibatch,
                ended_above_start=bool(losses[i, last] > losses[i, 0]),
                divergence_factor=float(experiment.divergence_factor),
            )
        except KeyboardInterrupt:
            raise
        except BaseException as error:  # an explanation is a bonus: it must never lose a finished experiment
            reasons[i] = f"{status[i]} at step {s}; no explanation ({error_text(error)})"
    return reasons, lam_start, lam_flagged
