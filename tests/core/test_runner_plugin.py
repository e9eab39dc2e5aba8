"""Tiny plugins for the runner, records and CLI tests (also loaded as a plugin file by path)."""

import numpy as np

from descentlab import DescentRule, HyperParam, ParamLayout, Problem, hookimpl
from descentlab.problem import ProblemInstance

BATCH_LOG: list = []  # (first run's seed-independent id, batch array) as the sample problem sees them


def _gd_init(params, hyper):
    return ()


def _gd_update(grad, state, params, learning_rate, hyper, step):
    return -(learning_rate * hyper["scale"]) * grad, state


def _explode_update(grad, state, params, learning_rate, hyper, step):
    if step == 3:
        raise ValueError("boom at step 3")
    return -learning_rate * grad, state


def _bad_shape_update(grad, state, params, learning_rate, hyper, step):
    return np.zeros((grad.shape[0], grad.shape[1] + 1)), state


class Quadratic(ProblemInstance):
    """J(x, y) = ½(λ₁x² + λ₂y²): gradient (λ₁x, λ₂y), Hessian diag(λ₁, λ₂)."""

    kind = "landscape"
    n_train = 0

    def __init__(self, s):
        self.layout = ParamLayout([("point", (2,), "point")])
        self.lam = np.array([s["lam1"], s["lam2"]])
        self.start = np.array([s["start_x"], s["start_y"]])
        self.spread = s["start_spread"]

    def init_params(self, seeds, dtype=np.float64):
        rows = [self.start + self.spread * np.random.default_rng(s).normal(size=2) for s in seeds]
        return np.array(rows, dtype=np.float64).astype(dtype)

    def loss_and_grad(self, params, batch=None, out=None):
        lam = self.lam.astype(params.dtype)
        grad = np.multiply(params, lam, out=out)
        return 0.5 * (params * grad).sum(axis=1), grad

    def hessian(self, params):
        return np.broadcast_to(np.diag(self.lam), (len(params), 2, 2)).copy()

    def describe(self):
        return {**super().describe(), "top_eigenvalue": float(self.lam.max())}


class Samples(ProblemInstance):
    """J(θ) = mean_i ½‖θ − x_i‖² over N points: gradient θ − mean x_i (of the batch)."""

    kind = "regression"

    def __init__(self, s):
        rng = np.random.default_rng(s["seed"])
        self.x = rng.normal(size=(s["samples"], 2))
        self.x_test = rng.normal(size=(5, 2))
        self.n_train = s["samples"]
        self.layout = ParamLayout([("theta", (2,), "layer1")])

    def init_params(self, seeds, dtype=np.float64):
        return np.array([np.random.default_rng(s).normal(size=2) for s in seeds]).astype(dtype)

    def loss_and_grad(self, params, batch=None, out=None):
        if batch is None:
            x = np.broadcast_to(self.x, (len(params), *self.x.shape))
        else:
            BATCH_LOG.append(np.array(batch))
            x = self.x[batch]
        diff = params[:, None, :] - x
        grad = np.mean(diff, axis=1, out=out)
        return 0.5 * (diff * diff).sum(axis=2).mean(axis=1), grad

    def evaluate(self, params):
        diff = params[:, None, :] - self.x_test
        return {"test_loss": 0.5 * (diff * diff).sum(axis=2).mean(axis=1)}


def _settings_quadratic():
    return (
        HyperParam("lam1", 1.0, 0.0, None, low_open=True),
        HyperParam("lam2", 0.25, 0.0, None, low_open=True),
        HyperParam("start_x", 1.0),
        HyperParam("start_y", -2.0),
        HyperParam("start_spread", 0.0, 0.0),
    )


SCALE = HyperParam("scale", 1.0, 0.0, 10.0, low_open=True, help="multiplies the step")


class RunnerTestPlugin:
    """Registered with load_registry(extra_plugins=[("test", RunnerTestPlugin)])."""

    @staticmethod
    @hookimpl
    def register_optimizers(register):
        register(
            DescentRule(
                "test_gd",
                _gd_init,
                _gd_update,
                hyperparams=(SCALE,),
                default_learning_rate=0.1,
                stability_threshold=lambda hyper: 2.0,
            )
        )
        register(DescentRule("test_explode", _gd_init, _explode_update))
        register(DescentRule("test_bad_shape", _gd_init, _bad_shape_update))

    @staticmethod
    @hookimpl
    def register_problems(register):
        register(Problem("test_quadratic", Quadratic, _settings_quadratic(), kind="landscape", has_model=False))
        register(
            Problem(
                "test_samples",
                Samples,
                (HyperParam("seed", 0, 0, None, kind="int"), HyperParam("samples", 20, 2, None, kind="int")),
            )
        )


# As a plugin file (--plugin PATH / DESCENTLAB_PLUGINS) the module-level hooks are what pluggy sees.
register_optimizers = RunnerTestPlugin.register_optimizers
register_problems = RunnerTestPlugin.register_problems
