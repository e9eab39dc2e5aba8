"""Sharpness: the top eigenvalue of the training loss's Hessian, batched over runs.

Everything here is built on the backprop engine's gradient alone. A Hessian-vector product is a
central difference of two gradients, computed in float64,

    H v ≈ (∇J(θ + εv) − ∇J(θ − εv)) / (2ε),

exact up to rounding on a quadratic and O(ε²) otherwise. The ``+`` and ``−`` points of all R runs
are stacked into one ``(2R, P)`` batch, so one product costs one gradient evaluation of 2R runs.

The top eigenvalue comes from the Lanczos iteration (with full re-orthogonalisation), run on all
R runs at once. Why Lanczos and not plain power iteration: power iteration converges to the
eigenvalue of largest *magnitude*; away from a minimum the Hessian can have a negative eigenvalue
larger in magnitude than λ_max (a saddle), and power iteration would then return that negative
number. Lanczos builds the Krylov space of the same products and reads off the largest and the
smallest *algebraic* Ritz values, so λ_max is right whatever the sign of the others (and λ_min
comes for free). With ``iters >= P`` the Krylov space is the whole space and the result is exact
up to the finite-difference error; with fewer iterations λ_max is a lower bound that converges
fast when the top eigenvalue is separated from the rest (the usual case in networks).

The runner's tracker (:class:`SharpnessTracker`) is tuned for cost instead: warm starts, a stop on
each run's Ritz residual, and products that reuse the training step's pass (docs/dev/speed.md).
"""

from __future__ import annotations

import inspect

import numpy as np

from .problem import HessianVectorProduct, exact_hessian

__all__ = [
    "forward_trace",
    "SharpnessTracker",
    "adam_limit",
    "adam_preconditioner",
    "adam_sharpness_run",
    "hessian_extreme_eigenvalues",
    "hessian_matrix",
    "hessian_vector_product",
    "preconditioned_sharpness_run",
    "preconditioned_top_eigenvalue",
    "top_hessian_eigenvalue",
]


# Central differences: truncation error ~ ε², rounding error ~ u/ε; ε ≈ u^(1/3) balances them,
# scaled by the size of the parameters so large weights get a proportionally larger step.
_EPS_REL = 6e-6


def _steps(params: np.ndarray, eps: float | None) -> np.ndarray:
    """Finite-difference step per run, ``(R, 1)``."""
    if eps is not None:
        return np.full((params.shape[0], 1), float(eps))
    with np.errstate(all="ignore"):
        # rms computed as m·rms(θ/m) with m = max|θ|, so huge weights do not overflow θ² to inf
        peak = np.max(np.abs(params), axis=1, keepdims=True)
        safe = np.where(peak > 0, peak, 1.0)
        rms = peak * np.sqrt(np.mean((params / safe) ** 2, axis=1, keepdims=True))
    return _EPS_REL * (1.0 + rms)


def _gradients(instance, points: np.ndarray, batch: np.ndarray | None) -> np.ndarray:
    """Gradients at ``points``; rows whose loss is not finite become NaN (nothing to measure there)."""
    with np.errstate(all="ignore"):
        loss, grad = instance.loss_and_grad(points, batch)
    bad = ~np.isfinite(np.asarray(loss))
    if bad.any():
        grad = np.array(grad, dtype=np.float64, copy=True)
        grad[bad] = np.nan
    return grad


def hessian_vector_product(
    instance, params: np.ndarray, vectors: np.ndarray, *, batch: np.ndarray | None = None, eps: float | None = None
) -> np.ndarray:
    """``H_r v_r`` for every run r: ``params`` and ``vectors`` are ``(R, P)``; float64 result.

    Exact when the instance offers it: a closed-form Hessian (landscapes) or the
    :class:`~descentlab.problem.HessianVectorProduct` capability (networks: the R-operator through
    backprop). Otherwise, or with an explicit ``eps``, a central difference of two gradients whose
    2R evaluations (θ ± εv) go through ``instance.loss_and_grad`` as one batch. ``batch`` is the
    runs' ``(R, B)`` mini-batch indices (None = full training set): the Hessian of that mini-batch's
    loss. Rows whose product is not finite are NaN (nothing to measure there).
    """
    params = np.asarray(params, dtype=np.float64)
    vectors = np.asarray(vectors, dtype=np.float64)
    if eps is None:
        exact = _exact_product(instance, params, vectors, batch)
        if exact is not None:
            return exact
    runs = params.shape[0]
    step = _steps(params, eps)
    with np.errstate(all="ignore"):
        points = np.concatenate([params + step * vectors, params - step * vectors])
    both = None if batch is None else np.concatenate([batch, batch])
    grads = _gradients(instance, np.ascontiguousarray(points), both)
    with np.errstate(all="ignore"):
        return (grads[:runs] - grads[runs:]) / (2.0 * step)


def _exact_product(instance, params, vectors, batch) -> np.ndarray | None:
    if isinstance(instance, HessianVectorProduct):
        product = np.asarray(instance.hessian_vector_product(params, vectors, batch), dtype=np.float64)
    elif batch is None and (hessian := exact_hessian(instance, params)) is not None:
        with np.errstate(all="ignore"):
            product = np.einsum("rpq,rq->rp", np.asarray(hessian, dtype=np.float64), vectors)
    else:
        return None
    bad = ~np.isfinite(product).all(axis=1) | ~np.isfinite(params).all(axis=1)
    if bad.any():
        product = product.copy()
        product[bad] = np.nan
    return product


def hessian_matrix(
    instance, params: np.ndarray, *, batch: np.ndarray | None = None, eps: float | None = None, chunk: int = 4096
) -> np.ndarray:
    """Full ``(R, P, P)`` Hessian by central differences of gradients, symmetrised (small P only).

    Column j is ``H e_j``; several columns of all runs go through the engine in one batch of at
    most ``chunk`` rows. Meant for tests and teaching: it costs P gradient evaluations per run.
    """
    params = np.asarray(params, dtype=np.float64)
    runs, size = params.shape
    step = _steps(params, eps)  # (R, 1)
    out = np.empty((runs, size, size))
    per_call = max(1, chunk // (2 * runs))
    for start in range(0, size, per_call):
        cols = np.arange(start, min(size, start + per_call))
        n = len(cols)
        # rows ordered (column, run): point[c*R + r] = θ_r ± ε_r e_{cols[c]}
        base = np.tile(params, (n, 1))
        eps_rows = np.tile(step, (n, 1))[:, 0]
        plus, minus = base.copy(), base.copy()
        idx = np.repeat(cols, runs)
        rows = np.arange(n * runs)
        plus[rows, idx] += eps_rows
        minus[rows, idx] -= eps_rows
        both = None if batch is None else np.tile(batch, (2 * n, 1))
        grads = _gradients(instance, np.concatenate([plus, minus]), both)
        with np.errstate(all="ignore"):
            columns = (grads[: n * runs] - grads[n * runs :]) / (2.0 * eps_rows[:, None])
        out[:, :, cols] = columns.reshape(n, runs, size).transpose(1, 2, 0)
    return 0.5 * (out + out.transpose(0, 2, 1))


def _start_vector(size: int, seed: int) -> np.ndarray:
    # One start vector shared by every run: a run's result does not depend on what else is in the batch.
    v = np.random.default_rng(int(seed)).standard_normal(size)
    return v / np.linalg.norm(v)


def _tridiagonal_extremes(alphas: np.ndarray, betas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Largest and smallest eigenvalues of R symmetric tridiagonal matrices (diagonals ``(R, m)``)."""
    runs, m = alphas.shape
    tri = np.zeros((runs, m, m))
    idx = np.arange(m)
    tri[:, idx, idx] = alphas
    tri[:, idx[:-1], idx[1:]] = betas[:, : m - 1]
    tri[:, idx[1:], idx[:-1]] = betas[:, : m - 1]
    with np.errstate(all="ignore"):
        ritz = np.linalg.eigvalsh(np.nan_to_num(tri, nan=0.0, posinf=0.0, neginf=0.0))
    return ritz[:, -1].copy(), ritz[:, 0].copy()


def _lanczos_extremes(
    matvec, start: np.ndarray, iters: int, tol: float = 0.0, *, info: dict | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Largest and smallest Ritz values ``(R,), (R,)`` of a batched symmetric operator.

    ``matvec((R, P)) -> (R, P)``; ``start`` is ``(R, P)`` with unit rows (zero rows are skipped and
    give NaN). Full re-orthogonalisation keeps the basis orthogonal in floating point. When a run's
    Krylov space becomes invariant (β ≈ 0) its tridiagonal matrix is closed there and padded with
    its first Rayleigh quotient q₀ᵀHq₀, which lies inside the spectrum and so changes neither the
    largest nor the smallest Ritz value.

    ``tol > 0``: a run's values are those of the iteration at which its largest Ritz value had
    changed by less than ``tol`` (relative) in two consecutive iterations, and the batch stops once
    every run got there. Each run's stop depends on its own values only, so a run gives the same
    bits whichever runs share its batch (a Dask task's part equals the pool's chunk). The Ritz
    values only grow toward λ_max (interlacing), so a stall means convergence unless the start
    vector is nearly orthogonal to the top eigenvector.
    """
    runs, size = start.shape
    k = max(1, min(int(iters), size))
    basis = np.zeros((runs, k, size))
    alphas = np.zeros((runs, k))
    betas = np.zeros((runs, k))
    q = start.copy()
    prev = np.zeros_like(q)
    beta_prev = np.zeros(runs)
    done = ~np.isfinite(start).all(axis=1) | (np.abs(start).sum(axis=1) == 0)
    no_start = done.copy()
    q[done] = 0.0
    scale = np.zeros(runs)
    top_prev = np.zeros(runs)
    calm = np.zeros(runs, dtype=int)
    settled = np.zeros(runs, dtype=bool)  # tol > 0: the runs whose values are already taken
    settled_top, settled_bottom = np.full(runs, np.nan), np.full(runs, np.nan)
    with np.errstate(all="ignore"):
        for j in range(k):
            basis[:, j] = q
            w = matvec(q)
            a = np.einsum("rp,rp->r", w, q)
            w -= a[:, None] * q + beta_prev[:, None] * prev
            for _ in range(2):  # twice is enough (Kahan–Parlett "twice is enough")
                coeff = np.einsum("rkp,rp->rk", basis[:, : j + 1], w)
                w -= np.einsum("rk,rkp->rp", coeff, basis[:, : j + 1])
            b = np.sqrt(np.einsum("rp,rp->r", w, w))
            alphas[:, j] = np.where(done, alphas[:, 0], a)
            scale = np.maximum(scale, np.abs(np.nan_to_num(a)) + np.nan_to_num(beta_prev))
            if j == k - 1:
                break
            if tol > 0 and j >= 1:
                top_now, bottom_now = _tridiagonal_extremes(alphas[:, : j + 1], betas[:, :j])
                if j >= 2:
                    change = np.abs(top_now - top_prev) <= tol * np.abs(top_now)
                    calm = np.where(change | ~np.isfinite(top_now), calm + 1, 0)
                    now = (calm >= 2) & ~settled
                    settled_top[now], settled_bottom[now] = top_now[now], bottom_now[now]
                    settled |= now
                    if settled.all():
                        k = j + 1
                        break
                else:
                    calm = np.zeros(runs, dtype=int)
                top_prev = top_now
            newly_done = ~done & ~(b > 1e-9 * np.maximum(scale, 1e-300))
            done = done | newly_done
            betas[:, j] = np.where(done, 0.0, b)
            prev = q
            q = np.where(done[:, None], 0.0, w / np.where(done, 1.0, b)[:, None])
            beta_prev = betas[:, j]
    bad = (
        ~np.isfinite(alphas[:, :k]).all(axis=1)
        | ~np.isfinite(betas[:, :k]).all(axis=1)
        | ~np.isfinite(start).all(axis=1)
        | (np.abs(start).sum(axis=1) == 0)
    )
    top, bottom = _tridiagonal_extremes(
        np.where(bad[:, None], 0.0, alphas[:, :k]), np.where(bad[:, None], 0.0, betas[:, : k - 1])
    )
    # a settled run is judged at its own stop, not at the batch's (the same bits however it is stacked)
    unusable = no_start | np.where(settled, ~np.isfinite(settled_top) | ~np.isfinite(settled_bottom), bad)
    top = np.where(settled, settled_top, top)
    bottom = np.where(settled, settled_bottom, bottom)
    top[unusable] = np.nan
    bottom[unusable] = np.nan
    if info is not None:
        # ``info`` asks for the products used and each run's top Ritz vector (the next warm start)
        info["products"] = k
        info["top_vector"] = _top_ritz_vector(
            np.where(bad[:, None], 0.0, alphas[:, :k]), np.where(bad[:, None], 0.0, betas[:, : k - 1]), basis[:, :k]
        )
        info["top_vector"][bad] = np.nan
    return top, bottom


def _top_ritz_vector(alphas: np.ndarray, betas: np.ndarray, basis: np.ndarray) -> np.ndarray:
    """The unit Ritz vector of each run's largest Ritz value, ``(R, P)``: Q y with T y = θ_max y."""
    runs, m = alphas.shape
    # Rows past an invariant subspace have a zero basis vector and a padded diagonal that may tie
    # with the top Ritz value: push them below the spectrum so the top vector lies in the real basis.
    padded = np.einsum("rkp,rkp->rk", basis, basis) == 0
    spread = np.nanmax(np.abs(alphas), axis=1, keepdims=True) + 1.0 if m else 0.0
    alphas = np.where(padded, -2.0 * spread, alphas)
    tri = np.zeros((runs, m, m))
    idx = np.arange(m)
    tri[:, idx, idx] = alphas
    tri[:, idx[:-1], idx[1:]] = betas[:, : m - 1]
    tri[:, idx[1:], idx[:-1]] = betas[:, : m - 1]
    with np.errstate(all="ignore"):
        _, vectors = np.linalg.eigh(np.nan_to_num(tri, nan=0.0, posinf=0.0, neginf=0.0))
        ritz = np.einsum("rk,rkp->rp", vectors[:, :, -1], basis)
        norm = np.linalg.norm(ritz, axis=1, keepdims=True)
        return ritz / np.where(norm > 0, norm, 1.0)


def hessian_extreme_eigenvalues(
    instance,
    params: np.ndarray,
    *,
    batch: np.ndarray | None = None,
    iters: int = 20,
    seed: int = 0,
    eps: float | None = None,
    tol: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """``(λ_max, λ_min)``, each ``(R,)``, of the training-loss Hessian at each run's parameters.

    Lanczos with ``min(iters, P)`` Hessian-vector products (each one batched gradient evaluation
    of 2R runs). Runs with non-finite parameters get NaN. λ_min converges more slowly than
    λ_max when the bottom of the spectrum is crowded (as in over-parameterised networks).
    ``tol > 0`` stops before ``iters`` once λ_max is stable to that relative tolerance (λ_min may
    then be less accurate).
    """
    params = np.ascontiguousarray(params, dtype=np.float64)
    runs, size = params.shape
    start = np.tile(_start_vector(size, seed), (runs, 1))
    start[~np.isfinite(params).all(axis=1)] = 0.0
    return _lanczos_extremes(
        lambda v: hessian_vector_product(instance, params, v, batch=batch, eps=eps), start, iters, tol
    )


def top_hessian_eigenvalue(
    instance,
    params: np.ndarray,
    *,
    batch: np.ndarray | None = None,
    iters: int = 20,
    seed: int = 0,
    eps: float | None = None,
    tol: float = 1e-10,
) -> np.ndarray:
    """Sharpness λ_max ``(R,)``: the largest (algebraic) Hessian eigenvalue of each run's loss.

    The runner's hook for ``sharpness_every``. ``batch`` as in :func:`hessian_vector_product`;
    ``seed`` fixes the Lanczos start vector; float64 whatever the dtype of ``params``. At most
    ``iters`` Hessian-vector products; a run's value is taken once its λ_max has changed by less
    than ``tol`` (relative) twice in a row, and the batch stops when every run's is (``tol=0``:
    always ``iters``).
    """
    return hessian_extreme_eigenvalues(instance, params, batch=batch, iters=iters, seed=seed, eps=eps, tol=tol)[0]


class _ProductOperator:
    """``H v`` of the runs ``params`` through :func:`hessian_vector_product`, for instances without a
    ``hessian_operator`` (landscapes, central differences); ``rows`` restricts it to some runs."""

    def __init__(self, instance, params, batch):
        self.instance, self.params, self.batch = instance, params, batch

    def rows(self, keep):
        return _ProductOperator(self.instance, self.params[keep], None if self.batch is None else self.batch[keep])

    def __call__(self, vectors):
        return hessian_vector_product(self.instance, self.params, vectors, batch=self.batch)


def _hessian_operator(instance, params, batch, trace=None):
    make = getattr(instance, "hessian_operator", None)
    if make is not None:
        try:
            return make(params, batch) if trace is None else make(params, batch, trace=trace)
        except NotImplementedError:  # an activation or loss without second derivatives
            pass
    return _ProductOperator(instance, params, batch)


def forward_trace(instance, params: np.ndarray) -> dict | None:
    """An empty dict for the training step's ``loss_and_grad(..., trace=...)`` when the tracker can
    reuse that pass (a float64 network offering ``hessian_operator``), else None."""
    if params.dtype != np.float64 or getattr(instance, "hessian_operator", None) is None:
        return None
    model = getattr(instance, "model", None)  # a plugin's problem may hold any kind of model
    if (
        getattr(getattr(model, "activation", None), "second", None) is None
        or getattr(getattr(model, "loss", None), "output_hvp", None) is None
    ):
        return None
    kind = type(instance)
    if kind not in _TAKES_TRACE:  # a problem that overrides loss_and_grad without it trains as before
        try:
            _TAKES_TRACE[kind] = "trace" in inspect.signature(instance.loss_and_grad).parameters
        except (TypeError, ValueError):
            _TAKES_TRACE[kind] = False
    return {} if _TAKES_TRACE[kind] else None


_TAKES_TRACE: dict = {}


def _stacked(reduce, spec: str, *operands: np.ndarray) -> np.ndarray:
    """``reduce(spec, *operands)`` over a leading run axis, the same bits for a run however many are
    stacked: numpy sums a lone run with other kernels (SIMD partial sums) than a stack's rows, so the
    last run still iterating, or a run alone in its chunk, got other bits than beside others (and a
    Dask task's part differed from the pool's chunk of the same runs). A lone run goes as a pair."""
    if operands[0].shape[0] != 1:
        return reduce(spec, *operands)
    return reduce(spec, *(np.concatenate([x, x]) for x in operands))[:1]


def _top_pair(operator, start: np.ndarray, iters: int, tol: float) -> tuple[np.ndarray, np.ndarray, int]:
    """Each run's top Ritz value and unit Ritz vector ``(R,), (R, P)`` and the number of batched products.

    Lanczos from ``start`` ``(R, P)`` (unit rows; non-finite or zero rows give NaN). A run stops, and
    leaves the batch (``operator.rows``), as soon as the residual of its top Ritz pair (θ, u),
    ‖H u − θ u‖ = β_j |y_j| (free from the tridiagonal matrix), is at most ``tol`` |θ|; at the latest
    after ``min(iters, P)`` products, the full Lanczos. That residual is the correctness check: some
    eigenvalue of H lies within ‖r‖ of θ, and within ‖r‖²/gap when θ is separated by gap from the
    rest of the spectrum. The tracker's tol = 3e-4 thus gives λ_max to about 1e-7 |θ|² / gap: within
    1e-6 relative wherever the next eigenvalue is at least 10 % below the top (largest change against
    the previous tracker, tol 1e-10, on the typical job: 2.3e-7). The residual says θ is *an* eigenvalue;
    that it is the top one rests on the start having a component along the top eigenvector well
    above tol (a random cold start, or the previous top eigenvector: a stale start mostly along
    another eigenvector is caught by the residual test and continued, see the tests). A warm start
    (the previous top eigenvector) usually passes it after 2–3 products. One pass of
    re-orthogonalisation is enough for these few iterations (the basis loses orthogonality only
    as Ritz values converge, about u ‖H‖ / ‖r‖).
    """
    runs, size = start.shape
    k = max(1, min(int(iters), size))
    top = np.full(runs, np.nan)
    vectors = np.full((runs, size), np.nan)
    with np.errstate(all="ignore"):
        live = np.flatnonzero(np.isfinite(start).all(axis=1) & (np.abs(start).sum(axis=1) > 0))
    if live.size == 0:
        return top, vectors, 0
    op = operator if live.size == runs else operator.rows(live)
    n = live.size
    # the arrays hold only the runs still iterating (``where``: their positions in the output), and
    # are compacted when some finish, so every step works on contiguous slices
    where = live
    basis = np.empty((n, min(k, 4), size))  # grown on demand: a warm start rarely needs more
    alphas = np.zeros((n, k))
    betas = np.zeros((n, k))
    q = start[live]
    prev = np.zeros_like(q)
    beta_prev = np.zeros(n)
    scale = np.zeros(n)
    products = 0
    idx = np.arange(k)
    with np.errstate(all="ignore"):
        for j in range(k):
            m = j + 1
            if j == basis.shape[1]:
                grown = np.empty((len(where), min(k, 2 * j), size))
                grown[:, :j] = basis
                basis = grown
            basis[:, j] = q
            w = op(q)
            products += 1
            a = _stacked(np.einsum, "rp,rp->r", w, q)
            w -= a[:, None] * q
            w -= beta_prev[:, None] * prev
            block = basis[:, :m]
            w -= _stacked(np.einsum, "rk,rkp->rp", _stacked(np.einsum, "rkp,rp->rk", block, w), block)
            b = np.sqrt(_stacked(np.einsum, "rp,rp->r", w, w))
            alphas[:, j] = a
            scale = np.fmax(scale, np.abs(a) + beta_prev)
            tri = np.zeros((len(where), m, m))
            tri[:, idx[:m], idx[:m]] = alphas[:, :m]
            tri[:, idx[: m - 1], idx[1:m]] = betas[:, : m - 1]
            tri[:, idx[1:m], idx[: m - 1]] = betas[:, : m - 1]
            bad = ~np.isfinite(tri).all(axis=(1, 2)) | ~np.isfinite(b)
            if bad.any():
                tri[bad] = 0.0
            theta, y = np.linalg.eigh(tri)
            theta, y = theta[:, -1], y[:, :, -1]
            residual = b * np.abs(y[:, -1])
            finished = bad | (residual <= tol * np.abs(theta)) | ~(b > 1e-9 * np.maximum(scale, 1e-300))
            if j == k - 1:
                finished[:] = True
            if finished.any():
                out = where[finished]
                u = _stacked(np.einsum, "rk,rkp->rp", y[finished], block[finished])
                norm = np.linalg.norm(u, axis=1, keepdims=True)
                top[out] = np.where(bad[finished], np.nan, theta[finished])
                vectors[out] = np.where(bad[finished][:, None], np.nan, u / np.where(norm > 0, norm, 1.0))
                keep = ~finished
                if not keep.any():
                    break
                where, basis, alphas, betas = where[keep], basis[keep, :m], alphas[keep], betas[keep]
                w, b, q, scale = w[keep], b[keep], q[keep], scale[keep]
                op = op.rows(keep)
            betas[:, j] = b
            prev = q
            q = w / b[:, None]
            beta_prev = b
    return top, vectors, products


class SharpnessTracker:
    """λ_max of a chunk's live runs at chosen steps, each run's Lanczos warm-started from its last top eigenvector.

    Between two measurements ten steps apart the top eigenvector moves little, so starting from it
    the Ritz residual test of :func:`_top_pair` (``tol``, relative; λ_max to 1e-6 relative at the
    default 3e-4 when the top eigenvalue is separated) passes after a few products.
    The products reuse the v-free half of the R-operator (``hessian_operator``) and converged runs
    leave the batch. ``products`` counts the batched Hessian-vector products used. Cost measured in
    docs/dev/speed.md ("Sharpness tracking").
    """

    def __init__(self, runs: int, size: int, *, iters: int = 20, tol: float = 3e-4, seed: int = 0):
        self.vectors = np.full((runs, size), np.nan)  # rows: the chunk's runs; NaN = none yet
        self.iters, self.tol = iters, tol
        self.cold = _start_vector(size, seed)
        self.products = 0
        self.measurements = 0

    def measure(
        self, instance, params: np.ndarray, runs: np.ndarray, batch: np.ndarray | None = None, trace: dict | None = None
    ) -> np.ndarray:
        """λ_max ``(n,)`` of ``params`` ``(n, P)``, whose rows are the chunk's runs ``runs`` ``(n,)``.

        ``trace``: filled by this step's ``loss_and_grad(params, batch, trace=...)`` (see
        :func:`forward_trace`), whose forward and backward pass the products then reuse.
        """
        params = np.ascontiguousarray(params, dtype=np.float64)
        start = self.vectors[runs]
        fresh = ~np.isfinite(start).all(axis=1)
        start[fresh] = self.cold
        start[~np.isfinite(params).all(axis=1)] = 0.0
        top, vectors, products = _top_pair(
            _hessian_operator(instance, params, batch, trace or None), start, self.iters, self.tol
        )
        self.vectors[runs] = vectors
        self.products += products
        self.measurements += 1
        return top


def adam_preconditioner(
    second_moment: np.ndarray, step: int, *, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8
) -> np.ndarray:
    """Diagonal of Adam's effective preconditioner P_t, ``(R, P)`` (Cohen et al. 2022, eq. 2).

    Adam's step is θ_{t+1} = θ_t − α P_t⁻¹ m_t with bias-uncorrected momentum m_t and
    P_t = (1 − β1^{t+1}) · (√(v_t / (1 − β2^{t+1})) + ε); ``step`` is t (0 for the first update)
    and ``second_moment`` is v_t, the uncorrected EMA of squared gradients.
    """
    t = int(step) + 1
    v = np.asarray(second_moment, dtype=np.float64)
    return (1.0 - beta1**t) * (np.sqrt(v / (1.0 - beta2**t)) + eps)


def preconditioned_top_eigenvalue(
    instance,
    params: np.ndarray,
    preconditioner: np.ndarray,
    *,
    batch: np.ndarray | None = None,
    iters: int = 20,
    seed: int = 0,
    eps: float | None = None,
    tol: float = 1e-10,
) -> np.ndarray:
    """Preconditioned sharpness λ_max(P⁻¹H), ``(R,)``, for a diagonal preconditioner ``(R, P)``.

    P⁻¹H is similar to the symmetric P^{-1/2} H P^{-1/2}, whose Lanczos iteration needs only
    Hessian-vector products. For Adam (P from :func:`adam_preconditioner`) the quadratic stability
    limit is λ_max(P⁻¹H) < (2 + 2β1) / ((1 − β1) α), i.e. 38/α at β1 = 0.9 (Cohen et al. 2022).
    """
    params = np.ascontiguousarray(params, dtype=np.float64)
    runs, size = params.shape
    inv_sqrt = 1.0 / np.sqrt(np.asarray(preconditioner, dtype=np.float64))
    start = np.tile(_start_vector(size, seed), (runs, 1))
    start[~np.isfinite(params).all(axis=1)] = 0.0

    def matvec(v):
        return inv_sqrt * hessian_vector_product(instance, params, inv_sqrt * v, batch=batch, eps=eps)

    return _lanczos_extremes(matvec, start, iters, tol)[0]


def adam_limit(learning_rate: float, beta1: float = 0.9) -> float:
    """Adam's stability limit on the preconditioned sharpness: (2 + 2β1)/((1 − β1)α) (38/α at β1 = 0.9)."""
    return (2.0 + 2.0 * beta1) / ((1.0 - beta1) * learning_rate)


def preconditioned_sharpness_run(
    instance,
    rule,
    learning_rate: float,
    steps: int,
    every: int,
    *,
    hyper: dict | None = None,
    seeds=(0,),
    registry=None,
) -> dict:
    """Train with a preconditioned rule and measure λ_max(H) and λ_max(P⁻¹H) every ``every`` steps.

    ``rule`` is a DescentRule (or registered name) that declares ``preconditioner`` and
    ``preconditioned_limit`` (Adam, AdamW). The runs are trained by the runner's chunk loop; a probe
    measures both sharpnesses at the marked steps, with P the preconditioner of the last update
    (t − 1) read through the rule's declaration. Returns ``{"steps", "sharpness" (S, K),
    "preconditioned" (S, K), "losses" (S, steps + 1), "limit"}``.
    """
    from .chunk import RuleLookup, one_rule_experiment, run_chunk

    if registry is None:
        from .registry import get_registry

        registry = get_registry()
    if isinstance(rule, str):
        rule = registry.rule(rule)
    if rule.preconditioner is None or rule.preconditioned_limit is None:
        raise ValueError(f"rule {rule.name!r} declares no preconditioner: its preconditioned sharpness is undefined")
    values = {h.name: h.default for h in rule.hyperparams}
    values.update(hyper or {})
    runs = len(seeds)
    experiment = one_rule_experiment(rule, values, list(seeds), steps, learning_rate)
    marks = [t for t in range(steps + 1) if t % max(int(every), 1) == 0 or t == steps]
    sharp = np.full((runs, len(marks)), np.nan)
    pre = np.full((runs, len(marks)), np.nan)
    losses = np.full((runs, steps + 1), np.nan)
    column = {t: k for k, t in enumerate(marks)}

    def measure(view) -> bool:
        live, t = view.live, view.t
        losses[live, t] = view.loss
        k = column.get(t)
        if k is not None:
            sharp[live, k] = top_hessian_eigenvalue(instance, view.params)
            _, group_rule, group_hyper, state = view.groups[0]
            if state is not None:
                p = group_rule.preconditioner(state, group_hyper, t - 1)
                pre[live, k] = preconditioned_top_eigenvalue(instance, view.params, p)
        return False

    with np.errstate(all="ignore"):
        run_chunk(instance, RuleLookup(rule, registry), experiment, experiment.runs(), probe=measure)
    return {
        "steps": marks,
        "sharpness": sharp,
        "preconditioned": pre,
        "losses": losses,
        "limit": float(rule.preconditioned_limit(learning_rate, values)),
    }


def adam_sharpness_run(
    instance,
    learning_rate: float,
    steps: int,
    every: int,
    *,
    hyper: dict | None = None,
    seeds=(0,),
    rule=None,
    registry=None,
) -> dict:
    """:func:`preconditioned_sharpness_run` of ``rule``, by default the first registered rule that
    declares a preconditioner (the built-in Adam); kept for old callers."""
    if rule is None:
        if registry is None:
            from .registry import get_registry

            registry = get_registry()
        rule = next(r for r in registry.rules.values() if r.preconditioner is not None)
    return preconditioned_sharpness_run(
        instance, rule, learning_rate, steps, every, hyper=hyper, seeds=seeds, registry=registry
    )
