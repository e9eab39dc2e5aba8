"""A landscape problem written only against the protocols: f(x, y) = (x − 1)² + 4y²."""

import numpy as np
from descentlab import ParamLayout, Problem, ProblemInstance, hookimpl


class Bowl(ProblemInstance):
    kind = "landscape"
    axis_names, bounds, minima = ("x", "y"), ((-3.0, 3.0), (-3.0, 3.0)), ((1.0, 0.0),)

    def __init__(self):
        self.layout = ParamLayout([("x", (), "point"), ("y", (), "point")])

    def init_params(self, seeds, dtype=np.float64):
        return np.tile(np.array([-2.0, 2.0], dtype=dtype), (len(seeds), 1))

    def value(self, points):  # Landscape: f at (..., 2) points
        x, y = points[..., 0], points[..., 1]
        return (x - 1) ** 2 + 4 * y**2

    def loss_and_grad(self, params, batch=None, out=None):
        grad = np.empty_like(params) if out is None else out
        grad[:, 0], grad[:, 1] = 2 * (params[:, 0] - 1), 8 * params[:, 1]
        return self.value(params), grad

    def hessian(self, params):  # ExactHessian
        return np.tile(np.diag([2.0, 8.0]), (len(params), 1, 1))

    def describe(self):
        return {**super().describe(), "top_eigenvalue": 8.0, "minimum_value": 0.0}


@hookimpl
def register_problems(register):
    register(Problem("bowl", lambda settings: Bowl(), summary="(x − 1)² + 4y²", kind="landscape", has_model=False))
