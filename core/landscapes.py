"""Two-parameter problems whose cost surface can be drawn: analytic landscapes and linear regression.

A landscape's parameters are the point itself: run r sits at ``params[r] = (x, y)``. Every
function here is vectorised over the run axis and has its gradient and exact Hessian written
out by hand (the tests check both against finite differences). For contour plots, ``value``
takes any array of points ``(..., 2)`` and ``bounds`` is the plot window.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from .layout import ParamLayout
from .network import MLP
from .problem import Dataset, ProblemInstance, SupervisedInstance

__all__ = [
    "LandscapeInstance",
    "QuadraticBowl",
    "Rosenbrock",
    "Himmelblau",
    "Beale",
    "LANDSCAPES",
    "LinearRegressionInstance",
]


def _jittered_starts(start: Sequence[float], spread: float, seeds: Sequence[int], dtype) -> np.ndarray:
    """``(R, 2)`` starting points: ``start`` plus ``spread``·N(0, 1) drawn from each run's seed alone."""
    params = np.empty((len(seeds), 2), dtype=np.float64)
    origin = np.asarray(start, dtype=np.float64)
    points: dict[int, np.ndarray] = {}  # one generator per distinct seed (~14 µs each; a grid repeats seeds)
    for r, seed in enumerate(seeds):
        seed = int(seed)
        if seed not in points:
            jitter = np.random.default_rng(seed).standard_normal(2) if spread else np.zeros(2)
            points[seed] = origin + spread * jitter
        params[r] = points[seed]
    return params.astype(dtype, copy=False)


def _window(
    points: Sequence[Sequence[float]], minimum: tuple[tuple[float, float], tuple[float, float]], margin: float = 0.25
) -> tuple[tuple[float, float], tuple[float, float]]:
    """The smallest box containing ``minimum`` (a default window) and every point, with a margin."""
    (x0, x1), (y0, y1) = minimum
    xs = [x0, x1] + [p[0] for p in points]
    ys = [y0, y1] + [p[1] for p in points]
    wx, wy = max(xs) - min(xs), max(ys) - min(ys)
    grow_x = margin * wx if (min(xs) < x0 or max(xs) > x1) else 0.0
    grow_y = margin * wy if (min(ys) < y0 or max(ys) > y1) else 0.0
    return ((float(min(xs) - grow_x), float(max(xs) + grow_x)), (float(min(ys) - grow_y), float(max(ys) + grow_y)))


class LandscapeInstance(ProblemInstance):
    """A cost ``f(x, y)`` of two parameters, evaluated for R runs at once.

    Subclasses set ``name``, ``formula``, ``default_bounds`` and ``minima`` and implement
    ``_value(x, y)``, ``_grad(x, y) -> (gx, gy)`` and ``_hess(x, y) -> (hxx, hxy, hyy)`` on
    arrays of any shape. Runs start at ``start`` plus ``start_spread``·N(0, 1) from their seed.
    """

    kind = "landscape"
    n_train = 0
    name = "landscape"
    formula = ""
    axis_names = ("x", "y")
    default_bounds = ((-5.0, 5.0), (-5.0, 5.0))
    minima: tuple[tuple[float, float], ...] = ()
    minimum_value = 0.0

    def __init__(self, start: Sequence[float] = (0.0, 0.0), start_spread: float = 0.0):
        self.layout = ParamLayout([("x", (), "point"), ("y", (), "point")])
        self.start = (float(start[0]), float(start[1]))
        self.start_spread = float(start_spread)
        corners = [
            (self.start[0] + s * 2 * self.start_spread, self.start[1] + s * 2 * self.start_spread) for s in (-1, 1)
        ]
        self.bounds = _window(corners + list(self.minima), self.default_bounds)

    @property
    def minimum(self) -> tuple[float, float] | None:
        """The first known minimum (the global one where there is one), for plots."""
        return self.minima[0] if self.minima else None

    # -- the function, written out per subclass --------------------------------------------
    def _value(self, x, y):
        raise NotImplementedError

    def _grad(self, x, y):
        raise NotImplementedError

    def _hess(self, x, y):
        raise NotImplementedError

    # -- what the runner and the dashboard call -------------------------------------------
    def init_params(self, seeds, dtype=np.float64):
        return _jittered_starts(self.start, self.start_spread, seeds, dtype)

    def value(self, points) -> np.ndarray:
        """``f`` at an array of points ``(..., 2)`` (e.g. a contour grid) -> ``(...)``."""
        points = np.asarray(points)
        if not np.issubdtype(points.dtype, np.floating):
            points = points.astype(np.float64)
        with np.errstate(all="ignore"):
            return self._value(points[..., 0], points[..., 1])

    def value_and_grad(self, points) -> tuple[np.ndarray, np.ndarray]:
        """``f`` ``(R,)`` and its gradient ``(R, 2)`` at points ``(R, 2)``."""
        return self.loss_and_grad(np.asarray(points))

    def loss_and_grad(self, params, batch=None, out=None):
        with np.errstate(all="ignore"):
            return self.loss_and_grad_quiet(params, batch, out)

    def loss_and_grad_quiet(self, params, batch=None, out=None):
        """:meth:`loss_and_grad` for a caller that already silences floating-point warnings (the
        runner's step loop): entering ``np.errstate`` costs ~1 µs, an eighth of a tiny problem's call."""
        grad = np.empty(params.shape, dtype=params.dtype) if out is None else out
        return self._value_and_grad(params[:, 0], params[:, 1], grad), grad

    def _value_and_grad(self, x, y, grad):
        """``f`` at the points, writing ∂f/∂x and ∂f/∂y into ``grad[:, 0]`` and ``grad[:, 1]``.

        Subclasses may fuse the two where they share subexpressions (the runner calls this every
        step, and on tiny problems every numpy call counts)."""
        loss = self._value(x, y)
        grad[:, 0], grad[:, 1] = self._grad(x, y)
        return loss

    def loss(self, params, batch=None):
        with np.errstate(all="ignore"):
            return self._value(params[:, 0], params[:, 1])

    def hessian(self, params):
        """Exact Hessian ``(R, 2, 2)`` at each run's point."""
        x, y = params[:, 0], params[:, 1]
        out = np.empty((params.shape[0], 2, 2), dtype=params.dtype)
        with np.errstate(all="ignore"):
            hxx, hxy, hyy = self._hess(x, y)
            out[:, 0, 0], out[:, 0, 1], out[:, 1, 0], out[:, 1, 1] = hxx, hxy, hxy, hyy
        return out

    def describe(self):
        return {
            **super().describe(),
            "name": self.name,
            "formula": self.formula,
            "axis_names": list(self.axis_names),
            "bounds": [list(b) for b in self.bounds],
            "minima": [list(m) for m in self.minima],
            "minimum_value": self.minimum_value,
            "start": list(self.start),
            "start_spread": self.start_spread,
        }


class QuadraticBowl(LandscapeInstance):
    """``f(p) = ½ pᵀ A p`` with ``A = Q diag(λ_max, λ_max/κ) Qᵀ``, Q the rotation by ``angle`` degrees.

    The eigenvector of λ_max is (cos angle, sin angle). Gradient ``A p``, Hessian ``A`` everywhere:
    gradient descent with learning rate α is stable iff α·λ_max < 2.
    """

    name = "quadratic"
    formula = "f(p) = ½ pᵀ A p,  A = Q(θ) diag(λ_max, λ_max/κ) Q(θ)ᵀ"
    minima = ((0.0, 0.0),)

    def __init__(
        self,
        condition: float = 10.0,
        angle: float = 30.0,
        lambda_max: float = 1.0,
        start=(-4.0, 3.0),
        start_spread: float = 0.0,
    ):
        self.condition, self.angle, self.lambda_max = float(condition), float(angle), float(lambda_max)
        self.eigenvalues = (self.lambda_max, self.lambda_max / self.condition)
        theta = math.radians(self.angle)
        q = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
        self.matrix = q @ np.diag(self.eigenvalues) @ q.T
        # Plain Python floats: numpy scalars would promote float32 runs to float64.
        self._a, self._b, self._c = (float(self.matrix[0, 0]), float(self.matrix[0, 1]), float(self.matrix[1, 1]))
        super().__init__(start, start_spread)

    def _value(self, x, y):
        a, b, c = self._a, self._b, self._c
        return 0.5 * (a * x * x + 2.0 * b * x * y + c * y * y)

    def _grad(self, x, y):
        a, b, c = self._a, self._b, self._c
        return a * x + b * y, b * x + c * y

    def _hess(self, x, y):
        a, b, c = self._a, self._b, self._c
        ones = np.ones_like(x)
        return a * ones, b * ones, c * ones

    def describe(self):
        return {
            **super().describe(),
            "condition": self.condition,
            "angle": self.angle,
            "hessian": self.matrix.tolist(),
            "eigenvalues": list(self.eigenvalues),
            "top_eigenvalue": self.eigenvalues[0],
        }


class Rosenbrock(LandscapeInstance):
    """``f = (a − x)² + b (y − x²)²``: a curved valley, minimum 0 at ``(a, a²)``."""

    name = "rosenbrock"
    formula = "f(x, y) = (a − x)² + b (y − x²)²"

    def __init__(self, a: float = 1.0, b: float = 100.0, start=(-1.2, 1.0), start_spread: float = 0.0):
        self.a, self.b = float(a), float(b)
        self.minima = ((self.a, self.a * self.a),)
        self.default_bounds = ((-2.0, 2.0), (-1.0, 3.0))
        super().__init__(start, start_spread)

    def _value(self, x, y):
        return (self.a - x) ** 2 + self.b * (y - x * x) ** 2

    def _grad(self, x, y):
        valley = y - x * x
        return -2.0 * (self.a - x) - 4.0 * self.b * x * valley, 2.0 * self.b * valley

    def _value_and_grad(self, x, y, grad):
        # _value and _grad with the shared a − x and y − x² computed once and results written in
        # place: 12 numpy calls instead of 19, the same operations in the same order (bit-identical)
        a, b = self.a, self.b
        d = np.subtract(a, x)
        valley = np.multiply(x, x)
        np.subtract(y, valley, out=valley)
        loss = np.multiply(d, d)  # (a − x)²
        term = np.multiply(valley, valley)
        term *= b
        loss += term  # + b (y − x²)²
        np.multiply(x, 4.0 * b, out=term)
        term *= valley
        d *= -2.0
        np.subtract(d, term, out=grad[:, 0])  # −2(a − x) − 4b x (y − x²)
        np.multiply(valley, 2.0 * b, out=grad[:, 1])
        return loss

    def _hess(self, x, y):
        return (2.0 - 4.0 * self.b * y + 12.0 * self.b * x * x, -4.0 * self.b * x, 2.0 * self.b * np.ones_like(x))

    def describe(self):
        return {**super().describe(), "a": self.a, "b": self.b}


class Himmelblau(LandscapeInstance):
    """``f = (x² + y − 11)² + (x + y² − 7)²``: four minima of value 0."""

    name = "himmelblau"
    formula = "f(x, y) = (x² + y − 11)² + (x + y² − 7)²"
    # (3, 2) is exact; the other three are roots of ∇f refined by Newton's method in float64.
    minima = (
        (3.0, 2.0),
        (-2.805118086952745, 3.131312518250573),
        (-3.779310253377747, -3.2831859912861696),
        (3.5844283403304917, -1.8481265269644034),
    )

    def __init__(self, start=(0.0, 0.0), start_spread: float = 0.0):
        super().__init__(start, start_spread)

    def _value(self, x, y):
        return (x * x + y - 11.0) ** 2 + (x + y * y - 7.0) ** 2

    def _grad(self, x, y):
        u, w = x * x + y - 11.0, x + y * y - 7.0
        return 4.0 * x * u + 2.0 * w, 2.0 * u + 4.0 * y * w

    def _hess(self, x, y):
        return 12.0 * x * x + 4.0 * y - 42.0, 4.0 * x + 4.0 * y, 4.0 * x + 12.0 * y * y - 26.0


class Beale(LandscapeInstance):
    """``f = Σ_{i=1..3} (c_i − x + x yⁱ)²`` with c = (1.5, 2.25, 2.625): minimum 0 at (3, 0.5)."""

    name = "beale"
    formula = "f(x, y) = (1.5 − x + xy)² + (2.25 − x + xy²)² + (2.625 − x + xy³)²"
    minima = ((3.0, 0.5),)
    default_bounds = ((-4.5, 4.5), (-4.5, 4.5))
    _C = (1.5, 2.25, 2.625)

    def __init__(self, start=(1.0, 1.5), start_spread: float = 0.0):
        super().__init__(start, start_spread)

    def _value(self, x, y):
        return sum((c - x + x * y**i) ** 2 for i, c in enumerate(self._C, start=1))

    def _grad(self, x, y):
        gx = gy = 0.0
        for i, c in enumerate(self._C, start=1):
            r = c - x + x * y**i
            gx = gx + 2.0 * r * (y**i - 1.0)
            gy = gy + 2.0 * r * i * x * y ** (i - 1)
        return gx, gy

    def _hess(self, x, y):
        hxx = hxy = hyy = 0.0
        for i, c in enumerate(self._C, start=1):
            r = c - x + x * y**i
            dx, dy = y**i - 1.0, i * x * y ** (i - 1)  # ∂r/∂x, ∂r/∂y
            dxy, dyy = i * y ** (i - 1), i * (i - 1) * x * y ** max(i - 2, 0)
            hxx = hxx + 2.0 * dx * dx
            hxy = hxy + 2.0 * (dx * dy + r * dxy)
            hyy = hyy + 2.0 * (dy * dy + r * dyy)
        return hxx, hxy, hyy


LANDSCAPES = {cls.name: cls for cls in (QuadraticBowl, Rosenbrock, Himmelblau, Beale)}


class LinearRegressionInstance(SupervisedInstance):
    """One weight and one bias on a line: ``J(w, b) = ½ mean (w x + b − y)²`` over the training split.

    The flat parameter row is ``(w, b)`` (``W1`` of shape (1, 1), then ``b1``). The Hessian is
    the second-moment matrix of ``[x, 1]``, the same at every point, so α·λ_max < 2 is exactly
    gradient descent's stability condition. Offers ``value``/``bounds`` like a landscape.
    """

    name = "linear_regression"
    formula = "J(w, b) = ½ mean_n (w xₙ + b − yₙ)²"
    axis_names = ("w", "b")

    def __init__(self, dataset: Dataset, start=(0.0, 0.0), start_spread: float = 0.0, truth=None):
        super().__init__(dataset, MLP([1, 1], activation="identity", loss="half_mse"))
        self.start = (float(start[0]), float(start[1]))
        self.start_spread = float(start_spread)
        self.truth = truth
        x = np.asarray(dataset.x_train, dtype=np.float64)[:, 0]
        y = np.asarray(dataset.y_train, dtype=np.float64)[:, 0]
        # Means of x², x, 1, xy, y, y²: J(w, b) is a quadratic in (w, b) with these coefficients.
        self._moments = {
            "xx": float(np.mean(x * x)),
            "x": float(np.mean(x)),
            "xy": float(np.mean(x * y)),
            "y": float(np.mean(y)),
            "yy": float(np.mean(y * y)),
        }
        m = self._moments
        self.matrix = np.array([[m["xx"], m["x"]], [m["x"], 1.0]])
        self.eigenvalues = tuple(float(v) for v in np.linalg.eigvalsh(self.matrix)[::-1])
        solution = np.linalg.lstsq(np.column_stack([x, np.ones_like(x)]), y, rcond=None)[0]
        self.minima = ((float(solution[0]), float(solution[1])),)
        self.minimum_value = float(self.value(np.array(self.minima[0])))
        center = self.minima[0]
        half = max(
            1.0, 1.25 * max(abs(self.start[0] - center[0]), abs(self.start[1] - center[1])) + 2.0 * self.start_spread
        )
        self.bounds = ((center[0] - half, center[0] + half), (center[1] - half, center[1] + half))

    @property
    def minimum(self) -> tuple[float, float]:
        """The least-squares solution ``(w*, b*)`` on the training split."""
        return self.minima[0]

    def init_params(self, seeds, dtype=np.float64):
        return _jittered_starts(self.start, self.start_spread, seeds, dtype)

    def value(self, points) -> np.ndarray:
        """Training cost at an array of ``(w, b)`` points ``(..., 2)`` -> ``(...)`` (closed form)."""
        points = np.asarray(points, dtype=np.float64)
        w, b = points[..., 0], points[..., 1]
        m = self._moments
        with np.errstate(all="ignore"):
            return 0.5 * (
                w * w * m["xx"] + 2.0 * w * b * m["x"] + b * b - 2.0 * w * m["xy"] - 2.0 * b * m["y"] + m["yy"]
            )

    def value_and_grad(self, points):
        return self.loss_and_grad(np.asarray(points))

    def hessian(self, params):
        return np.broadcast_to(self.matrix.astype(params.dtype), (params.shape[0], 2, 2)).copy()

    def describe(self):
        info = {
            **super().describe(),
            "name": self.name,
            "formula": self.formula,
            "axis_names": list(self.axis_names),
            "bounds": [list(b) for b in self.bounds],
            "minima": [list(m) for m in self.minima],
            "minimum_value": self.minimum_value,
            "start": list(self.start),
            "start_spread": self.start_spread,
            "hessian": self.matrix.tolist(),
            "eigenvalues": list(self.eigenvalues),
            "top_eigenvalue": self.eigenvalues[0],
        }
        if self.truth is not None:
            info["true_slope"], info["true_intercept"] = self.truth
        return info
