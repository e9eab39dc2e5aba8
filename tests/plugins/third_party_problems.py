"""Two problems a third party could write, using only what docs/problems.md and descentlab.problem document.

Loaded by tests/dashboard/test_third_party_problem.py through ``DESCENTLAB_PLUGINS``, like any
plugin file. Nothing here subclasses a built-in problem class or imports anything undocumented:
each instance subclasses ``ProblemInstance`` (for its defaults) and offers its capabilities by
having the members the protocols declare.

- ``camel_test``: the three-hump camel f(x, y) = 2x² − 1.05x⁴ + x⁶/6 + xy + y², a landscape with
  its exact Hessian. Global minimum 0 at (0, 0); the Hessian changes from point to point, so an
  explanation's λ_max at the step before a blow-up differs from the one at the start.
- ``halfplane_test``: logistic regression on its own seeded 2-D data (two Gaussian clouds), a
  ``Predictor`` with neither an exact Hessian nor Hessian-vector products: sharpness and
  explanations must fall back to differences of its gradients.
"""

from __future__ import annotations

import numpy as np

from descentlab import Dataset, HyperParam, ParamLayout, Problem, ProblemInstance, hookimpl


class Camel(ProblemInstance):
    """Three-hump camel; the two parameters are the point (x, y)."""

    kind = "landscape"
    n_train = 0
    # the Landscape capability
    axis_names = ("x", "y")
    bounds = ((-2.0, 2.0), (-2.0, 2.0))
    minima = ((0.0, 0.0),)

    def __init__(self, start):
        self.layout = ParamLayout([("x", (), "point"), ("y", (), "point")])
        self.start = (float(start[0]), float(start[1]))

    def init_params(self, seeds, dtype=np.float64):
        return np.tile(np.asarray(self.start, dtype=dtype), (len(seeds), 1))

    def value(self, points):
        points = np.asarray(points, dtype=np.float64)
        x, y = points[..., 0], points[..., 1]
        with np.errstate(all="ignore"):
            return 2 * x**2 - 1.05 * x**4 + x**6 / 6 + x * y + y**2

    def loss(self, params, batch=None):
        return self.value(params)

    def loss_and_grad(self, params, batch=None, out=None):
        x, y = params[:, 0], params[:, 1]
        grad = np.empty_like(params) if out is None else out
        with np.errstate(all="ignore"):
            grad[:, 0] = 4 * x - 4.2 * x**3 + x**5 + y
            grad[:, 1] = x + 2 * y
        return self.value(params).astype(params.dtype, copy=False), grad

    def hessian(self, params):
        x = np.asarray(params, dtype=np.float64)[:, 0]
        out = np.empty((len(x), 2, 2))
        with np.errstate(all="ignore"):
            out[:, 0, 0] = 4 - 12.6 * x**2 + 5 * x**4
        out[:, 0, 1] = out[:, 1, 0] = 1.0
        out[:, 1, 1] = 2.0
        return out

    def describe(self):
        return {**super().describe(), "minimum_value": 0.0}


def halfplane_data(samples: int, seed: int) -> Dataset:
    """Two Gaussian clouds around (±1, ±0.5), std 0.8 (they overlap: not separable); 25 % held out."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, samples)
    centres = np.where(labels[:, None] == 1, [1.0, 0.5], [-1.0, -0.5])
    x = centres + 0.8 * rng.standard_normal((samples, 2))
    y = labels[:, None].astype(np.float64)
    n_test = samples // 4
    return Dataset(
        x_train=x[n_test:],
        y_train=y[n_test:],
        x_test=x[:n_test],
        y_test=y[:n_test],
        task="classification",
        feature_names=["u", "v"],
        class_names=["left", "right"],
    )


class HalfPlane(ProblemInstance):
    """Logistic regression p(right | u, v) = σ(w·(u, v) + b), loss the mean binary cross-entropy."""

    kind = "classification"

    def __init__(self, dataset: Dataset):
        self.dataset = dataset  # the Predictor capability: the data ...
        self.n_train = len(dataset.x_train)
        self.layout = ParamLayout([("w", (2,), "linear"), ("b", (), "linear")])

    def init_params(self, seeds, dtype=np.float64):
        return np.stack([np.random.default_rng(int(s)).normal(0.0, 0.1, 3) for s in seeds]).astype(dtype)

    def predict(self, params, inputs):  # ... and the logits at any inputs, (R, N, 1)
        with np.errstate(all="ignore"):
            return (np.asarray(inputs, dtype=params.dtype) @ params[:, :2].T + params[:, 2]).T[..., None]

    def _loss(self, params, x, y):
        z = self.predict(params, x)[..., 0]  # (R, N)
        with np.errstate(all="ignore"):
            # softplus(z) − y·z, written to stay finite for large |z|
            return np.mean(np.maximum(z, 0) + np.log1p(np.exp(-np.abs(z))) - y[:, 0] * z, axis=1), z

    def loss(self, params, batch=None):
        return self.loss_and_grad(params, batch)[0]

    def loss_and_grad(self, params, batch=None, out=None):
        grad = np.empty_like(params) if out is None else out
        x_all, y_all = self.dataset.x_train, self.dataset.y_train
        losses = np.empty(len(params), dtype=params.dtype)
        for r in range(len(params)):
            x, y = (x_all, y_all) if batch is None else (x_all[batch[r]], y_all[batch[r]])
            loss, z = self._loss(params[r : r + 1], x, y)
            with np.errstate(all="ignore"):
                residual = 1.0 / (1.0 + np.exp(-z[0])) - y[:, 0]  # dℓ/dz
                grad[r, :2] = residual @ x / len(x)
                grad[r, 2] = residual.mean()
            losses[r] = loss[0]
        return losses, grad

    def evaluate(self, params):
        loss, z = self._loss(params, self.dataset.x_test, self.dataset.y_test)
        return {"test_loss": loss, "test_accuracy": np.mean((z > 0) == (self.dataset.y_test[:, 0] > 0.5), axis=1)}


@hookimpl
def register_problems(register):
    register(
        Problem(
            "camel_test",
            lambda s: Camel((s["start_x"], s["start_y"])),
            (
                HyperParam("start_x", 1.2, help="x of the starting point"),
                HyperParam("start_y", -0.8, help="y of the starting point"),
            ),
            "three-hump camel 2x² − 1.05x⁴ + x⁶/6 + xy + y² (a test plugin)",
            kind="landscape",
            has_model=False,
        )
    )
    register(
        Problem(
            "halfplane_test",
            lambda s: HalfPlane(halfplane_data(s["samples"], s["seed"])),
            (
                HyperParam("seed", 0, low=0, kind="int", help="data seed"),
                HyperParam("samples", 80, low=8, high=10_000, kind="int", help="number of points"),
            ),
            "logistic regression on two overlapping Gaussian clouds (a test plugin)",
            kind="classification",
            has_model=False,
        )
    )
