"""One training step taken apart for teaching: forward, cost, backpropagation, then a rule's descent step.

Backpropagation and gradient descent are two halves of one step. This module computes both with
the engine itself, for the "How it works" page and for notebooks:

1. :func:`trace_step` runs the forward pass and backpropagation of a small network and keeps every
   intermediate value: each neuron's z and a = f(z) for one chosen example and the batch mean, the
   example's error δ = ∂Jₙ/∂z carried backward layer by layer, and the batch gradient ∂J/∂w from
   the engine's own ``MLP.loss_and_grad``. :func:`finite_difference_gradient` gives the same
   derivatives by central differences, batched over the run axis.
2. :func:`descent_step` applies a registered rule's ``update`` to that gradient; the gradient is
   backprop's, the step is the rule's.
3. :func:`slice_view` and :func:`regime` make the learning rate felt on a 1-D cost curve: the
   four regimes of gradient descent on a quadratic (crawl, glide, bounce, escape).
4. :func:`predict_then_run` sweeps α with the runner and sets the measured edge beside c/λ_max
   (2/λ_max for gradient descent).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from .errors import PluginError, SpecError
from .network import MLP
from .problem import network_of

__all__ = [
    "MAX_UNITS",
    "REGIMES",
    "REGIME_TEXT",
    "regime",
    "regime_thresholds",
    "lesson_model",
    "can_teach",
    "parameter_names",
    "build_instance",
    "training_data",
    "LayerTrace",
    "StepTrace",
    "trace_step",
    "finite_difference_gradient",
    "rule_hyper",
    "RuleTrack",
    "start_track",
    "descent_step",
    "Lesson",
    "starting_params",
    "start_lesson",
    "advance",
    "DIVERGENCE_FACTOR",
    "diverged_at",
    "loss_at",
    "SliceView",
    "slice_view",
    "slice_curve",
    "Prediction",
    "top_eigenvalue",
    "sweep_learning_rates",
    "predict_then_run",
]

MAX_UNITS = 30  # a diagram a class can read: at most this many neurons, inputs and outputs included

# The four regimes of gradient descent on a quadratic of curvature λ: the error e = w − w* obeys
# e ← (1 − αλ) e, so the rule is a statement about αλ (docs/lesson_plan.md).
REGIMES = ("crawl", "glide", "bounce", "escape")
REGIME_TEXT = {
    "crawl": "αλ < ½: each step removes less than half of the distance to the bottom",
    "glide": "½ ≤ αλ ≤ 1: straight to the bottom without overshooting (αλ = 1: in one step)",
    "bounce": "1 < αλ < 2: overshoots to the other side each step, but still converges",
    "escape": "αλ ≥ 2: never settles; at 2 it jumps between two points, above 2 it diverges",
}


def regime(learning_rate: float, curvature: float) -> str:
    """The regime of gradient descent at ``learning_rate`` on a quadratic of ``curvature`` λ > 0.

    From the contraction e ← (1 − αλ)e: ``crawl`` for αλ < ½, ``glide`` for ½ ≤ αλ ≤ 1, ``bounce``
    for 1 < αλ < 2 and ``escape`` for αλ ≥ 2 (|1 − αλ| ≥ 1: the error never shrinks). A curvature
    ≤ 0 (flat or concave along the slice) has no bottom to reach: every α escapes.
    """
    if not curvature > 0:
        return "escape"
    product = float(learning_rate) * float(curvature)
    # Tolerate rounding when α was computed as k/λ, so α = 1/λ is a glide and α = 2/λ an escape.
    tol = 1e-9
    if product < 0.5 - tol:
        return "crawl"
    if product <= 1.0 + tol:
        return "glide"
    if product < 2.0 - tol:
        return "bounce"
    return "escape"


def regime_thresholds(curvature: float) -> dict[str, float]:
    """The α where each regime begins on a quadratic of curvature λ: ½λ⁻¹, λ⁻¹ (exclusive), 2λ⁻¹."""
    return {"glide": 0.5 / curvature, "bounce": 1.0 / curvature, "escape": 2.0 / curvature}


def lesson_model(instance) -> MLP:
    """The instance's MLP, or a one-line SpecError when the problem has none or it is too big to draw."""
    model = network_of(instance)  # the declared Network capability: an engine MLP and its dataset
    if model is None:
        raise SpecError(
            "problem", type(instance).__name__, "a problem with a network and a dataset (not an analytic landscape)"
        )
    units = sum(model.sizes)
    if units > MAX_UNITS:
        raise SpecError(
            "problem.hidden",
            "-".join(map(str, model.sizes)),
            f"a network of at most {MAX_UNITS} neurons in all (this one has {units})",
        )
    return model


def can_teach(instance, hidden_units: int = 2) -> bool:
    """Whether the instance's network could be drawn with ``hidden_units`` hidden neurons (inputs and outputs fixed)."""
    model = network_of(instance)
    if model is None:
        return False
    return model.sizes[0] + model.sizes[-1] + (hidden_units if model.n_layers > 1 else 0) <= MAX_UNITS


def parameter_names(model: MLP) -> list[str]:
    """The name of every flat parameter, in layout order: ``W1[0,1]`` (input 0 → neuron 1), ``b1[1]``."""
    names = []
    for e in model.layout.entries:
        if len(e.shape) == 2:
            names += [f"{e.name}[{i},{j}]" for i in range(e.shape[0]) for j in range(e.shape[1])]
        else:
            names += [f"{e.name}[{j}]" for j in range(e.shape[0])]
    return names


def build_instance(problem: str | dict, registry=None):
    """Build a registered problem from ``{"name": ..., <setting>: value}``, each setting checked as in a file."""
    from .registry import get_registry

    registry = registry or get_registry()
    spec = {"name": problem} if isinstance(problem, str) else dict(problem)
    declaration = registry.problem(spec.pop("name", ""))
    declared = {h.name for h in declaration.settings}
    for key in spec:
        if key not in declared:
            raise SpecError(f"problem.{key}", spec[key], "one of " + ", ".join(sorted(declared)))
    settings = {h.name: h.check(spec.get(h.name, h.default), "problem") for h in declaration.settings}
    from .faults import build_instance as checked_build

    # a problem plugin whose build breaks is one line naming it and its file:line, as in the runner
    return checked_build(declaration, settings)


def training_data(instance) -> tuple[np.ndarray, np.ndarray]:
    """The training inputs and targets in float64, as the engine sees them."""
    d = instance.dataset
    return np.asarray(d.x_train, dtype=np.float64), np.asarray(d.y_train, dtype=np.float64)


@dataclass(frozen=True)
class LayerTrace:
    """One layer ``l`` of the traced step (weights W of shape (n_in, n_out), biases b)."""

    index: int  # 1-based, as in the parameter names W1, b1, ...
    weights: np.ndarray  # (n_in, n_out)
    biases: np.ndarray  # (n_out,)
    a_in: np.ndarray  # (n_in,)  the example's input to this layer (a of the layer below)
    z: np.ndarray  # (n_out,) the example's pre-activations z = a_in W + b
    a: np.ndarray  # (n_out,) the example's activations f(z) (z itself on the output layer)
    a_mean: np.ndarray  # (n_out,) batch mean of a
    delta: np.ndarray  # (n_out,) δ = ∂Jₙ/∂z for the example's own cost Jₙ
    grad_weights: np.ndarray  # (n_in, n_out) batch gradient ∂J/∂W from the engine
    grad_biases: np.ndarray  # (n_out,)     batch gradient ∂J/∂b from the engine


@dataclass(frozen=True)
class StepTrace:
    """Forward and backward pass of one step at ``params`` on the full training batch."""

    params: np.ndarray  # (P,)
    example: int
    inputs: np.ndarray  # (d,) the example's inputs
    target: np.ndarray  # (k,) the example's target
    example_loss: float  # Jₙ, the cost of that example alone
    loss: float  # J, the mean over the batch (what descent lowers)
    gradient: np.ndarray  # (P,) ∂J/∂θ from the engine's backpropagation
    layers: tuple[LayerTrace, ...]
    loss_formula: str
    activation: str
    sizes: tuple[int, ...]

    def weight_name(self, layer: int, i: int, j: int) -> str:
        """How the page names W_l[i, j]: ``w¹₀₁``-style with plain digits, ``W1[0,1]``."""
        return f"W{layer}[{i},{j}]"

    def chain_rule(self, layer: int, i: int, j: int) -> dict[str, float]:
        """The chain-rule product of weight W_l[i, j] for the example, and the batch gradient.

        ∂Jₙ/∂w = a_prev,i · δ_j (``a_prev`` the example's input to the layer, δ its error at neuron
        j), and ∂J/∂w, the mean of that product over the batch, from the engine.
        """
        t = self.layers[layer - 1]
        return {
            "a_prev": float(t.a_in[i]),
            "delta": float(t.delta[j]),
            "example_gradient": float(t.a_in[i] * t.delta[j]),
            "batch_gradient": float(t.grad_weights[i, j]),
        }


def trace_step(instance, params, example: int = 0) -> StepTrace:
    """Trace one step of backpropagation at ``params`` (a (P,) row) on the training set.

    The per-neuron values come from running the network's own activation and loss functions layer
    by layer on the example; the gradient is the engine's ``loss_and_grad`` on the whole batch,
    which the tests check against :func:`finite_difference_gradient` and the example's δ-products.
    """
    model = lesson_model(instance)
    x, y = training_data(instance)
    if not 0 <= int(example) < len(x):
        raise SpecError("example", example, f"an index from 0 to {len(x) - 1}")
    example = int(example)
    theta = np.asarray(params, dtype=np.float64).reshape(1, -1)
    if theta.shape[1] != model.layout.size:
        raise SpecError("params", theta.shape[1], f"{model.layout.size} parameters")
    loss, grad = model.loss_and_grad(theta, x, y)
    views, grads = model.layout.unflatten(theta), model.layout.unflatten(grad)
    last = model.n_layers
    with np.errstate(all="ignore"):
        # Forward on the example (a batch of one: its mean loss is the example's own cost Jₙ) and
        # on the whole batch (for the batch means shown beside each neuron).
        forward_example, forward_batch = [], []
        a_one, a_all = x[example : example + 1][None], x[None]
        for i in range(1, last + 1):
            w, b = views[f"W{i}"], views[f"b{i}"]
            z_one, z_all = a_one @ w + b[:, None, :], a_all @ w + b[:, None, :]
            forward_example.append((a_one, z_one))
            out_one = z_one if i == last else model.activation.forward(z_one)
            out_all = z_all if i == last else model.activation.forward(z_all)
            forward_batch.append(out_all)
            a_one, a_all = out_one, out_all
        example_loss, delta = model.loss.value_and_grad(a_one, y[example : example + 1][None])
        deltas: list[Any] = [None] * last
        for i in range(last, 0, -1):
            deltas[i - 1] = delta
            if i > 1:
                w = views[f"W{i}"]
                z_prev = forward_example[i - 2][1]
                a_prev = forward_example[i - 1][0]
                delta = model.activation.backward(z_prev, a_prev, delta @ w.transpose(0, 2, 1))
    layers = []
    for i in range(1, last + 1):
        a_in, z = forward_example[i - 1]
        a_out = z if i == last else model.activation.forward(z)
        layers.append(
            LayerTrace(
                index=i,
                weights=views[f"W{i}"][0].copy(),
                biases=views[f"b{i}"][0].copy(),
                a_in=a_in[0, 0].copy(),
                z=z[0, 0].copy(),
                a=a_out[0, 0].copy(),
                a_mean=forward_batch[i - 1][0].mean(axis=0),
                delta=deltas[i - 1][0, 0].copy(),
                grad_weights=grads[f"W{i}"][0].copy(),
                grad_biases=grads[f"b{i}"][0].copy(),
            )
        )
    return StepTrace(
        params=theta[0].copy(),
        example=example,
        inputs=x[example].copy(),
        target=y[example].copy(),
        example_loss=float(example_loss[0]),
        loss=float(loss[0]),
        gradient=grad[0].copy(),
        layers=tuple(layers),
        loss_formula=model.loss.formula,
        activation=model.activation.name,
        sizes=tuple(model.sizes),
    )


def finite_difference_gradient(instance, params, eps: float = 1e-6, *, example: int | None = None) -> np.ndarray:
    """∂J/∂θ_k ≈ (J(θ + ε e_k) − J(θ − ε e_k)) / 2ε for every parameter, in one batched call.

    The 2P shifted copies of θ are stacked on the run axis, so the whole check is one forward pass
    of the engine over 2P runs. With ``example`` = n the cost differenced is that example's own Jₙ,
    the derivative its chain-rule product a_prev·δ computes, so the two can be set side by side.
    """
    model = lesson_model(instance)
    x, y = training_data(instance)
    if example is not None:
        if isinstance(example, bool) or not 0 <= int(example) < len(x):
            raise SpecError("example", example, f"an index from 0 to {len(x) - 1}")
        x, y = x[int(example) : int(example) + 1], y[int(example) : int(example) + 1]
    theta = np.asarray(params, dtype=np.float64).reshape(-1)
    p = theta.size
    shifted = np.repeat(theta[None], 2 * p, axis=0)
    shifted[np.arange(p), np.arange(p)] += eps
    shifted[p + np.arange(p), np.arange(p)] -= eps
    values = model.loss_value(shifted, x, y)
    return (values[:p] - values[p:]) / (2.0 * eps)


def rule_hyper(rule, overrides: dict | None = None) -> dict[str, np.ndarray]:
    """The rule's declared hyperparameters (defaults overlaid with ``overrides``) as (1, 1) arrays."""
    out: dict[str, np.ndarray] = {}
    for h in rule.hyperparams:
        value = (overrides or {}).get(h.name, h.default)
        if isinstance(value, (bool, int, float)):
            out[h.name] = np.full((1, 1), float(value))
        else:
            out[h.name] = np.full((1, 1), value, dtype=object)
    return out


@dataclass
class RuleTrack:
    """One rule's side of the lesson: its state and hyperparameters, carried from step to step."""

    rule: Any  # a DescentRule
    hyper: dict[str, np.ndarray]
    state: Any = None


def _rule_fault(rule, error: BaseException, result, started: bool) -> PluginError:
    """The runner's one line for a rule that broke (its name, file:line and what went wrong), as a PluginError.

    The lesson calls a rule plugin exactly as the runner does, so it says the same thing about one
    that breaks: a page or notebook shows that line instead of a traceback.
    """
    from .chunk import _rule_fault as runner_fault  # the runner's wording, kept in one place

    return PluginError(runner_fault(rule, error, result, started))


def start_track(rule, params, overrides: dict | None = None, layout=None) -> RuleTrack:
    """A fresh :class:`RuleTrack` whose state is the rule's ``init`` at ``params`` (given the problem's
    ``layout`` if the rule uses it, as the runner does). A rule whose ``init`` raises is a PluginError
    naming the rule and its file:line."""
    hyper = rule_hyper(rule, overrides)
    theta = np.asarray(params, dtype=np.float64).reshape(1, -1)
    try:
        state = rule.start(theta.copy(), hyper, layout)
    except KeyboardInterrupt:
        raise
    except BaseException as error:  # plugin code: sys.exit included
        from .chunk import _PENDING

        raise _rule_fault(rule, error, _PENDING, started=False) from None
    return RuleTrack(rule=rule, hyper=hyper, state=state)


def descent_step(track: RuleTrack, params, gradient, learning_rate: float, step: int) -> np.ndarray:
    """The rule's update Δθ (P,) from ``gradient`` at ``params``; advances ``track.state``.

    θ_new = θ + Δθ. For plain gradient descent Δθ = −α ∂J/∂θ; other rules turn the same gradient
    into a different step. A rule that raises, returns anything but a pair (updates, state) with
    updates of shape (1, P), or writes into ``params`` or ``grad`` is a PluginError with the
    runner's one line (the runner fails that rule's runs for the same faults). A non-finite step is
    not a fault: it is a diverged step, and the caller shows it as such.
    """
    from .chunk import _PENDING, _RuleResultError, _shape_message
    from .faults import wrote_into

    theta = np.asarray(params, dtype=np.float64).reshape(1, -1).copy()
    grad = np.asarray(gradient, dtype=np.float64).reshape(1, -1).copy()
    # checked on every step, not only the first as the runner does: one row of at most a few hundred
    # weights costs nothing to copy, and a page must not show a gradient the rule has changed
    theta_before, grad_before = theta.copy(), grad.copy()
    rate = np.full((1, 1), float(learning_rate))
    result = _PENDING
    try:
        with np.errstate(all="ignore"):
            result = track.rule.update(grad, track.state, theta, rate, track.hyper, int(step))
            updates, state = result
        if getattr(updates, "shape", None) != theta.shape:
            raise _RuleResultError(_shape_message(track.rule, updates, theta.shape))
        if wrote := wrote_into(theta_before, theta, grad_before, grad):
            raise _RuleResultError(f"rule {track.rule.name!r} {wrote}")
    except KeyboardInterrupt:
        raise
    except BaseException as error:  # plugin code: sys.exit included
        raise _rule_fault(track.rule, error, result, started=True) from None
    track.state = state
    return np.asarray(updates, dtype=np.float64).reshape(-1).copy()


@dataclass
class Lesson:
    """The state of the page's lesson: current weights, the trained rule's track, the loss so far."""

    instance: Any
    params: np.ndarray
    track: RuleTrack | None  # None when the rule's init broke: the lesson can show forward and backprop, not step
    learning_rate: float
    step: int = 0
    losses: list[float] = field(default_factory=list)


def starting_params(instance, seed: int = 0, *, problem: str = "") -> np.ndarray:
    """The problem's initial weights (P,) for ``seed``: the same ones the runner starts that seed from.

    A problem plugin whose ``init_params`` raises or returns the wrong shape is a PluginError with
    the runner's line for it, naming ``problem`` (default: the instance's class) and its file:line.
    """
    from .faults import definition, fault

    model = lesson_model(instance)
    name = problem or type(instance).__name__
    try:
        params = np.asarray(instance.init_params([int(seed)], np.float64), dtype=np.float64)
    except KeyboardInterrupt:
        raise
    except BaseException as error:  # plugin code: sys.exit included
        raise PluginError(fault("problem", name, error, type(instance), what="init_params failed:")) from None
    if params.shape != (1, model.layout.size):
        raise PluginError(
            f"problem {name!r} ({definition(type(instance).init_params)}): init_params returned "
            f"shape {params.shape}; expected (1, {model.layout.size}) = (runs, layout.size)"
        )
    return params[0]


def start_lesson(
    instance, rule, learning_rate: float, *, seed: int = 0, overrides: dict | None = None, problem: str = ""
) -> Lesson:
    """A lesson at the problem's initial weights for ``seed`` (the same ones the runner starts from).

    A rule whose ``init`` breaks, or a problem whose ``init_params`` does, is a PluginError naming
    it (:func:`start_track`, :func:`starting_params`)."""
    params = starting_params(instance, seed, problem=problem)
    return Lesson(
        instance=instance,
        params=params,
        track=start_track(rule, params, overrides, instance.layout),
        learning_rate=float(learning_rate),
    )


def advance(lesson: Lesson) -> tuple[StepTrace, np.ndarray]:
    """Take one full step: backprop at the current weights, then the rule's step. Returns (trace, Δθ)."""
    if lesson.track is None:
        raise PluginError("the lesson has no rule to step with (its init broke): start it again with a working rule")
    trace = trace_step(lesson.instance, lesson.params)
    update = descent_step(lesson.track, lesson.params, trace.gradient, lesson.learning_rate, lesson.step)
    lesson.losses.append(trace.loss)
    lesson.params = lesson.params + update
    lesson.step += 1
    return trace, update


DIVERGENCE_FACTOR = 1e4  # the runner's default divergence_factor: the lesson calls a run diverged when it would


def diverged_at(losses: Sequence[float], factor: float = DIVERGENCE_FACTOR) -> int | None:
    """The first step whose loss is not finite or has |J_t| > ``factor`` × |J₀|, as the runner judges
    a run diverged (docs/verdicts.md); None while the lesson has not diverged."""
    if not len(losses):
        return None
    values = np.asarray(losses, dtype=np.float64)
    with np.errstate(all="ignore"):
        bad = ~np.isfinite(values) | (np.abs(values) > factor * np.abs(values[0]))
    hits = np.flatnonzero(bad)
    return int(hits[0]) if hits.size else None


def loss_at(instance, params) -> float:
    """J at one (P,) row of weights, on the training set."""
    model = lesson_model(instance)
    x, y = training_data(instance)
    return float(model.loss_value(np.asarray(params, dtype=np.float64).reshape(1, -1), x, y)[0])


# ---- the learning rate, felt ---------------------------------------------------------------------


@dataclass(frozen=True)
class SliceView:
    """J along one direction d through θ: J(s) = J(θ + s·d), with its slope and curvature at s = 0.

    Gradient descent restricted to the slice moves s by −α·J′(s). On a quadratic slice J(s) =
    J(0) + J′(0)s + ½λs² the regimes of :func:`regime` are exact; elsewhere they hold near s = 0.
    """

    direction: np.ndarray  # (P,) unit vector d
    label: str  # what the horizontal axis is, e.g. "w" or "distance along −∇J"
    offset: float  # the coordinate shown at s = 0 (the weight's value for a one-weight slice)
    slope: float  # J′(0) = ∇J·d
    curvature: float  # λ = dᵀ H d (exact Hessian-vector product)
    value: float  # J(0)

    def steps(self, instance, params, learning_rate: float, count: int = 8) -> np.ndarray:
        """The positions s₀ = 0, s₁, … of ``count`` gradient-descent steps along the slice."""
        points = [0.0]
        theta = np.asarray(params, dtype=np.float64).reshape(-1)
        model = lesson_model(instance)
        x, y = training_data(instance)
        with np.errstate(all="ignore"):
            for _ in range(count):
                s = points[-1]
                if not math.isfinite(s) or abs(s) > 1e6:
                    break
                _, grad = model.loss_and_grad((theta + s * self.direction)[None], x, y)
                points.append(s - float(learning_rate) * float(grad[0] @ self.direction))
        return np.array(points)


def slice_view(instance, params, *, weight: int | None = None) -> SliceView:
    """The 1-D slice through ``params`` along one weight (index ``weight``) or along −∇J (None).

    The curvature is the exact dᵀHd from the engine's Hessian-vector product.
    """
    model = lesson_model(instance)
    x, y = training_data(instance)
    theta = np.asarray(params, dtype=np.float64).reshape(1, -1)
    loss, grad = model.loss_and_grad(theta, x, y)
    if weight is None:
        norm = float(np.linalg.norm(grad))
        direction = -grad[0] / norm if norm > 0 else np.eye(theta.shape[1])[0]
        label, offset = "distance along −∇J", 0.0
    else:
        if not 0 <= int(weight) < theta.shape[1]:
            raise SpecError("weight", weight, f"an index from 0 to {theta.shape[1] - 1}")
        direction = np.eye(theta.shape[1])[int(weight)]
        label, offset = parameter_names(model)[int(weight)], float(theta[0, int(weight)])
    hv = model.hessian_vector_product(theta, direction[None], x, y)
    return SliceView(
        direction=direction,
        label=label,
        offset=offset,
        slope=float(grad[0] @ direction),
        curvature=float(hv[0] @ direction),
        value=float(loss[0]),
    )


def slice_curve(instance, params, view: SliceView, positions) -> np.ndarray:
    """J(θ + s·d) at each position s, one batched forward pass."""
    model = lesson_model(instance)
    x, y = training_data(instance)
    s = np.asarray(positions, dtype=np.float64).reshape(-1, 1)
    theta = np.asarray(params, dtype=np.float64).reshape(1, -1)
    return model.loss_value(theta + s * view.direction[None], x, y)


@dataclass(frozen=True)
class Prediction:
    """A student's guess of the largest converging α beside theory and measurement."""

    guess: float
    theory: float  # c/λ_max at the starting weights (c = 2 for gradient descent; NaN if none)
    measured: float  # largest α whose runs converged or were still progressing (NaN if none)
    first_flagged: float  # smallest α whose runs blew up (NaN if none)
    learning_rates: tuple[float, ...]
    statuses: tuple[str, ...]
    sharpness: float  # λ_max at the starting weights
    guess_status: str = ""  # the verdict of the run at the guessed α itself
    failure: str = ""  # the rule's one-line fault when its runs failed (a broken plugin), else ""


def top_eigenvalue(instance, params, iterations: int = 200) -> float:
    """λ_max of the training loss's Hessian at ``params`` (dense for small networks: they are small)."""
    model = lesson_model(instance)
    x, y = training_data(instance)
    theta = np.asarray(params, dtype=np.float64).reshape(1, -1)
    p = theta.shape[1]
    basis = np.eye(p)
    hessian = model.hessian_vector_product(np.repeat(theta, p, axis=0), basis, x, y)
    hessian = 0.5 * (hessian + hessian.T)
    return float(np.linalg.eigvalsh(hessian)[-1])


def sweep_learning_rates(theory: float, count: int = 24, spread: float = 4.0) -> np.ndarray:
    """``count`` log-spaced α from theory/spread to theory·spread (an even count leaves theory itself out,
    between two grid points: exactly at 2/λ gradient descent neither converges nor diverges)."""
    return np.geomspace(theory / spread, theory * spread, count)


def predict_then_run(
    problem: str | dict,
    guess: float,
    *,
    rule,
    seed: int = 0,
    steps: int = 200,
    learning_rates: Sequence[float] | None = None,
    refine: int = 16,
    hyper: dict | None = None,
    registry=None,
) -> Prediction:
    """Sweep ``rule`` over α on ``problem`` and set the measured edge beside theory and the guess.

    Theory is c/λ_max: λ_max the Hessian's top eigenvalue at the starting weights of ``seed``, c the
    rule's declared stability threshold at its default hyperparameters (2 for gradient descent, so
    2/λ_max; NaN when the rule declares none). The sweep runs the ordinary runner (full batch) and
    reads each α's verdict: the measured edge is ``verdicts.stability_edge``'s largest stable α.

    The sweep is fine where it matters: a coarse grid (``learning_rates``, by default 24 log-spaced
    α around theory, widened up to 16² times on the side of the edge when nothing in it blew up or
    nothing was stable) first brackets the edge between its last stable and first flagged α, then
    ``refine`` more α log-spaced strictly inside that bracket narrow it (the 12.8 % spacing of the
    default grid becomes 0.7 %). The guessed α is run too, so the student sees its own verdict.
    On a quadratic (linear regression) theory and measurement agree to that resolution; on a
    network, c/λ_max is a local prediction. ``rule`` is a registered rule's name or a DescentRule,
    run with ``hyper`` (its hyperparameters; missing ones take their defaults, and c is the
    threshold at these values, with an L2 ``weight_decay`` added to λ_max); a rule whose runs fail
    (a broken plugin) leaves its one-line fault in ``failure``.
    """
    from .compare import compare
    from .registry import get_registry
    from .stability import critical_learning_rate, rule_threshold
    from .verdicts import stability_edge

    if isinstance(guess, bool) or not (isinstance(guess, (int, float)) and math.isfinite(guess) and guess > 0):
        raise SpecError("guess", guess, "a positive learning rate")
    if isinstance(refine, bool) or not isinstance(refine, int) or refine < 0:
        raise SpecError("refine", refine, "a whole number of extra learning rates, 0 or more")
    registry = registry or get_registry()
    spec = {"name": problem} if isinstance(problem, str) else dict(problem)
    instance = build_instance(spec, registry)
    start = instance.init_params([int(seed)], np.float64)[0]
    sharpness = top_eigenvalue(instance, start)
    name = rule if isinstance(rule, str) else rule.name
    declaration = registry.rule(name) if isinstance(rule, str) else rule
    hyper = dict(hyper or {})
    try:
        threshold = rule_threshold(declaration, hyper)
        critical = critical_learning_rate(declaration, hyper, sharpness)
    except KeyboardInterrupt:
        raise
    except BaseException as error:  # a plugin's stability_threshold: named with its file:line
        from .faults import fault

        raise PluginError(
            fault("rule", name, error, declaration.stability_threshold, what="stability_threshold failed:")
        ) from None
    theory = math.nan if threshold is None else math.inf if critical is None else critical
    centre = theory if math.isfinite(theory) else (2.0 / sharpness if sharpness > 0 else 1.0)
    grid = sweep_learning_rates(centre) if learning_rates is None else learning_rates
    rates = sorted({float(a) for a in grid} | {float(guess)})
    rule_entry = (
        name if registry.rules.get(name) is declaration else declaration
    )  # a cell's rule: registered for the call
    entry = {"rule": rule_entry, **hyper} if hyper else rule_entry  # an experiment file's [[rules]] entry
    by_rate: dict[float, list[str]] = {}
    failures: list[str] = []

    def sweep(alphas: list[float]) -> tuple[float, float]:
        results = compare(
            spec,
            [entry],
            learning_rates=alphas,
            seeds=[int(seed)],
            steps=int(steps),
            registry=registry,
            workers=1,
            name="predict_then_run",
        )
        runs = results.runs
        for a, status, error in zip(runs["learning_rate"], runs["status"], runs["error"]):
            by_rate[float(a)] = [str(status)]
            if str(status) == "failed" and str(error) and not failures:
                failures.append(str(error))
        ordered = sorted(by_rate)
        return stability_edge(ordered, [by_rate[a] for a in ordered])

    measured, flagged = sweep(rates)
    # No edge inside the grid (a rule without a threshold, or theory far off): look up to 16² times
    # further on the side where it must be, before narrowing it.
    for _ in range(2 if learning_rates is None else 0):
        if math.isfinite(flagged) and math.isfinite(measured):
            break
        low, high = min(by_rate), max(by_rate)
        # as fine as the first grid (24 points per 16×): the narrowing below then has the same resolution
        if math.isfinite(flagged):
            more = np.geomspace(low / 16.0, low, 25)[:-1]
        else:
            more = np.geomspace(high, high * 16.0, 25)[1:]
        measured, flagged = sweep([float(a) for a in more])
    if refine and math.isfinite(measured) and math.isfinite(flagged) and measured < flagged:
        # between the two grid points that bracket the edge, log-spaced like the grid
        inside = np.geomspace(measured, flagged, refine + 2)[1:-1]
        measured, flagged = sweep([float(a) for a in inside if float(a) not in by_rate])
    ordered = sorted(by_rate)
    return Prediction(
        guess=float(guess),
        theory=theory,
        measured=measured,
        first_flagged=flagged,
        learning_rates=tuple(ordered),
        statuses=tuple(by_rate[a][0] for a in ordered),
        sharpness=sharpness,
        guess_status=by_rate[float(guess)][0],
        failure=failures[0] if failures else "",
    )
