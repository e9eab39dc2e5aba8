"""Gradient checks by central finite differences, for the engine's tests and for plugin authors.

In the spirit of autograd's ``check_grads``: instead of differencing every coordinate, compare the
directional derivative along a few random unit directions ``v`` (one per run) computed two ways,

    finite difference  (J(θ + εv) − J(θ − εv)) / (2ε)      and      analytic  ∇J(θ)·v.

Usage for a problem author (any ``fn(params (R, P)) -> (loss (R,), grad (R, P))``)::

    from descentlab import check_grads
    params = instance.init_params([0, 1, 2])                 # float64
    check_grads(instance.loss_and_grad, params)              # raises GradientCheckError if wrong

Check in float64: in float32 the rounding error of J(θ ± εv) swamps any useful ε.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

__all__ = ["GradientCheckError", "check_grads", "numeric_grad", "check_hessian"]


class GradientCheckError(AssertionError):
    """The analytic derivative disagrees with finite differences; the message has the worst case."""


def _noise_floor(values: list[np.ndarray], dtype, eps: float) -> np.ndarray:
    """Absolute error, per run, that rounding alone can put into a central difference with step ε."""
    scale = np.max(np.abs(np.stack(values)), axis=0)
    return 10.0 * np.finfo(dtype).eps * (scale + np.finfo(dtype).tiny) / eps


def _unit_directions(rng: np.random.Generator, shape, dtype) -> np.ndarray:
    v = rng.standard_normal(shape)
    v /= np.linalg.norm(v, axis=-1, keepdims=True)
    return v.astype(dtype)


def _as_runs(params) -> np.ndarray:
    params = np.asarray(params)
    if params.ndim != 2:
        raise ValueError(f"params must be an (R, P) array of R runs, got shape {params.shape}")
    if not np.issubdtype(params.dtype, np.floating):
        params = params.astype(np.float64)
    return params


def check_grads(
    fn: Callable,
    params,
    *,
    eps: float = 1e-6,
    rtol: float = 1e-6,
    directions: int = 3,
    seed: int = 0,
    atol: float | None = None,
) -> float:
    """Check ``fn(params) -> (loss (R,), grad (R, P))`` against central finite differences.

    For each of ``directions`` random unit directions (a different one per run, seeded by
    ``seed``) the finite-difference directional derivative is compared with ``grad · v``. The
    relative error is ``|fd − grad·v| / max(|fd|, |grad·v|, atol/rtol)``: relative wherever the
    derivative is clearly nonzero, absolute (``atol``) near zero. ``atol`` defaults to the rounding
    noise of the difference quotient, ``10·eps_machine·|J| / ε``.

    Returns the worst relative error; raises :class:`GradientCheckError` (an ``AssertionError``)
    naming it, the run and the direction if it exceeds ``rtol``.
    """
    params = _as_runs(params)
    runs, size = params.shape
    loss, grad = fn(params.copy())
    loss, grad = np.asarray(loss), np.asarray(grad)
    if loss.shape != (runs,) or grad.shape != (runs, size):
        raise GradientCheckError(
            f"fn must return loss {(runs,)} and grad {(runs, size)}, got {loss.shape} and {grad.shape}"
        )
    rng = np.random.default_rng(seed)
    worst, worst_case = 0.0, None
    with np.errstate(all="ignore"):  # a non-finite loss must fail the check, not warn
        for d in range(directions):
            v = _unit_directions(rng, (runs, size), params.dtype)
            plus = np.asarray(fn(params + eps * v)[0])
            minus = np.asarray(fn(params - eps * v)[0])
            numeric = (plus.astype(np.float64) - minus) / (2.0 * eps)
            analytic = np.einsum("rp,rp->r", grad.astype(np.float64), v.astype(np.float64))
            floor = _noise_floor([loss, plus, minus], params.dtype, eps) if atol is None else np.full(runs, atol)
            scale = np.maximum(np.maximum(np.abs(numeric), np.abs(analytic)), floor / rtol)
            error = np.abs(numeric - analytic) / scale
            error = np.where(np.isfinite(error) & np.isfinite(scale), error, np.inf)
            r = int(np.argmax(error))
            if error[r] > worst or worst_case is None:
                worst, worst_case = float(error[r]), (r, d, numeric[r], analytic[r])
    if not worst <= rtol:
        assert worst_case is not None  # set on the first direction
        r, d, numeric_r, analytic_r = worst_case
        raise GradientCheckError(
            f"gradient check failed: worst relative error {worst:.3e} > rtol {rtol:.1e} "
            f"(run {r}, direction {d}: finite difference {numeric_r:.10g}, grad·v {analytic_r:.10g}, "
            f"eps {eps:g}, dtype {params.dtype})"
        )
    return worst


def numeric_grad(loss_fn: Callable, params, eps: float = 1e-6) -> np.ndarray:
    """Full central-difference gradient ``(R, P)`` of ``loss_fn(params (R, P)) -> (R,)``.

    Costs 2P calls of ``loss_fn`` (each serving all R runs at once): meant for small P.
    """
    params = _as_runs(params)
    out = np.empty(params.shape, dtype=np.float64)
    for p in range(params.shape[1]):
        step = np.zeros_like(params)
        step[:, p] = eps
        plus = np.asarray(loss_fn(params + step), dtype=np.float64)
        minus = np.asarray(loss_fn(params - step), dtype=np.float64)
        with np.errstate(all="ignore"):
            out[:, p] = (plus - minus) / (2.0 * eps)
    return out


def check_hessian(
    grad_fn: Callable, hessian, params, *, eps: float = 1e-6, rtol: float = 1e-6, directions: int = 3, seed: int = 0
) -> float:
    """Check an exact Hessian ``(R, P, P)`` against finite differences of ``grad_fn(params) -> (R, P)``.

    Compares ``H v`` with ``(∇J(θ + εv) − ∇J(θ − εv)) / (2ε)`` along random unit directions;
    the relative error is ``‖fd − Hv‖ / max(‖fd‖, ‖Hv‖, noise)``. ``hessian`` is the array or a
    callable ``hessian(params)``. Returns the worst relative error or raises GradientCheckError.
    """
    params = _as_runs(params)
    h = np.asarray(hessian(params.copy()) if callable(hessian) else hessian, dtype=np.float64)
    runs, size = params.shape
    if h.shape != (runs, size, size):
        raise GradientCheckError(f"hessian must be {(runs, size, size)}, got {h.shape}")
    g0 = np.asarray(grad_fn(params.copy()), dtype=np.float64)
    rng = np.random.default_rng(seed)
    worst, where = 0.0, (0, 0)
    with np.errstate(all="ignore"):
        for d in range(directions):
            v = _unit_directions(rng, (runs, size), params.dtype)
            numeric = (
                np.asarray(grad_fn(params + eps * v), dtype=np.float64)
                - np.asarray(grad_fn(params - eps * v), dtype=np.float64)
            ) / (2.0 * eps)
            analytic = np.einsum("rpq,rq->rp", h, v.astype(np.float64))
            noise = 10.0 * np.finfo(params.dtype).eps * (np.linalg.norm(g0, axis=1) + 1.0) / eps
            scale = np.maximum(
                np.maximum(np.linalg.norm(numeric, axis=1), np.linalg.norm(analytic, axis=1)), noise / rtol
            )
            error = np.linalg.norm(numeric - analytic, axis=1) / scale
            error = np.where(np.isfinite(error) & np.isfinite(scale), error, np.inf)
            r = int(np.argmax(error))
            if error[r] > worst:
                worst, where = float(error[r]), (r, d)
    if not worst <= rtol:
        raise GradientCheckError(
            f"hessian check failed: worst relative error {worst:.3e} > rtol {rtol:.1e} "
            f"(run {where[0]}, direction {where[1]}, eps {eps:g})"
        )
    return worst
