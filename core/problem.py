"""What a built problem offers the runner: parameters, losses, gradients and evaluation over R runs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, Sequence, runtime_checkable

import numpy as np

from .layout import ParamLayout
from .losses import accuracy
from .network import MLP

__all__ = [
    "ProblemInstance",
    "Dataset",
    "SupervisedInstance",
    "holds_out",
    "validation_view",
    "Landscape",
    "Predictor",
    "ExactHessian",
    "HessianVectorProduct",
    "HessianOperator",
    "QuietLossAndGrad",
    "Network",
    "is_landscape",
    "is_predictor",
    "exact_hessian",
    "is_classifier",
    "has_hessian_vector_product",
    "network_of",
    "quiet_loss_and_grad",
]


class ProblemInstance:
    """A problem built from its settings. Subclasses implement the methods that raise here.

    All methods take parameters of R runs as one ``(R, P)`` array laid out by ``self.layout`` and
    return per-run results with a leading axis R. ``batch`` is ``None`` (the full training set) or
    an ``(R, B)`` integer array of training-sample indices, one mini-batch per run.
    """

    layout: ParamLayout
    kind: str = "regression"  # "landscape", "regression" or "classification"
    n_train: int = 0  # 0: no samples to batch over (an analytic landscape)

    def init_params(self, seeds: Sequence[int], dtype=np.float64) -> np.ndarray:
        """``(R, P)`` starting parameters; row r depends only on ``seeds[r]`` and the settings."""
        raise NotImplementedError

    def loss_and_grad(
        self, params: np.ndarray, batch: np.ndarray | None = None, out: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Training loss ``(R,)`` and its gradient ``(R, P)`` (written into ``out`` if given)."""
        raise NotImplementedError

    def loss(self, params: np.ndarray, batch: np.ndarray | None = None) -> np.ndarray:
        """Training loss ``(R,)`` only."""
        return self.loss_and_grad(params, batch)[0]

    def evaluate(self, params: np.ndarray) -> dict[str, np.ndarray]:
        """Held-out metrics per run, e.g. ``{"test_loss": (R,), "test_accuracy": (R,)}``; ``{}`` if none."""
        return {}

    def hessian(self, params: np.ndarray) -> np.ndarray | None:
        """Exact ``(R, P, P)`` Hessian of the training loss where it is known in closed form, else None."""
        return None

    def describe(self) -> dict:
        """JSON-ready facts about the built problem for records and the dashboard."""
        return {
            "kind": self.kind,
            "n_params": self.layout.size,
            "n_train": self.n_train,
            "layout": self.layout.describe(),
        }


@dataclass
class Dataset:
    """A supervised dataset already split; targets are ``(N, k)`` floats (one-hot for classes)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    task: str  # "regression" or "classification"
    feature_names: list[str] = field(default_factory=list)
    class_names: list[str] = field(default_factory=list)
    # How raw inputs/targets map to the model's scale (set by the CSV/sklearn loaders; None elsewhere).
    x_mean: np.ndarray | None = field(default=None, repr=False, compare=False)
    x_std: np.ndarray | None = field(default=None, repr=False, compare=False)
    y_mean: np.ndarray | None = field(default=None, repr=False, compare=False)
    y_std: np.ndarray | None = field(default=None, repr=False, compare=False)
    train_index: np.ndarray | None = field(default=None, repr=False, compare=False)
    test_index: np.ndarray | None = field(default=None, repr=False, compare=False)


class SupervisedInstance(ProblemInstance):
    """A dataset and an MLP: the loss is the model's loss on the training split."""

    def __init__(self, dataset: Dataset, model: MLP, dtype=np.float64):
        self.dataset = dataset
        self.model = model
        self.layout = model.layout
        self.kind = dataset.task
        self.n_train = len(dataset.x_train)
        self._cast_cache: dict = {}

    def _data(self, dtype):
        key = np.dtype(dtype)
        if key not in self._cast_cache:
            d = self.dataset
            self._cast_cache[key] = tuple(
                np.ascontiguousarray(a, dtype=key) for a in (d.x_train, d.y_train, d.x_test, d.y_test)
            )
        return self._cast_cache[key]

    def init_params(self, seeds, dtype=np.float64):
        return self.model.init_params(seeds, dtype)

    def loss_and_grad(self, params, batch=None, out=None, trace=None):
        x, y, _, _ = self._data(params.dtype)
        if batch is not None:
            x, y = x[batch], y[batch]
        if trace is None:
            return self.model.loss_and_grad(params, x, y, out=out)
        return self.model.loss_and_grad(params, x, y, out=out, trace=trace)

    def loss(self, params, batch=None):
        x, y, _, _ = self._data(params.dtype)
        if batch is not None:
            x, y = x[batch], y[batch]
        return self.model.loss_value(params, x, y)

    def hessian_vector_product(self, params, vectors, batch=None):
        """Exact ``H v`` of the training (or mini-batch) loss, float64 (see ``MLP.hessian_vector_product``)."""
        x, y, _, _ = self._data(np.float64)
        if batch is not None:
            x, y = x[batch], y[batch]
        return self.model.hessian_vector_product(params, vectors, x, y)

    def hessian_operator(self, params, batch=None, trace=None):
        """``op(vectors) -> H v`` at fixed ``params`` for several products (see ``MLP.hessian_operator``);
        ``trace``: what ``loss_and_grad(params, batch, trace=...)`` recorded at these float64 params."""
        x, y, _, _ = self._data(np.float64)
        if batch is not None:
            x, y = x[batch], y[batch]
        return self.model.hessian_operator(params, x, y, trace=trace)

    def predict(self, params: np.ndarray, inputs: np.ndarray) -> np.ndarray:
        """Model outputs ``(R, N, k)`` on arbitrary inputs (logits for classification)."""
        with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
            return self.model.forward(params, np.asarray(inputs, dtype=params.dtype))

    def evaluate(self, params):
        _, _, x_test, y_test = self._data(params.dtype)
        if len(x_test) == 0:
            return {}
        with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
            output = self.model.forward(params, x_test)
            metrics = {"test_loss": self.model.loss.value(output, y_test)}
            if self.kind == "classification":
                metrics["test_accuracy"] = accuracy(self.model.loss.name, output, y_test)
        return metrics

    def describe(self):
        d = self.dataset
        return {
            **super().describe(),
            "model": repr(self.model),
            "n_test": len(d.x_test),
            "n_features": d.x_train.shape[1],
            "n_outputs": d.y_train.shape[1],
            "feature_names": list(d.feature_names),
            "class_names": list(d.class_names),
        }


def holds_out(instance) -> bool:
    """Whether :func:`validation_view` can split ``instance``: a SupervisedInstance with ≥ 2 training rows."""
    return isinstance(instance, SupervisedInstance) and len(instance.dataset.x_train) >= 2


def validation_view(instance, fraction: float, seed: int) -> SupervisedInstance | None:
    """The instance the protocol tunes on (docs/protocol.md): its training split cut in two, the
    "test" split replaced by the validation part, so the runner's ``test_loss`` is the validation loss.

    Of the n training rows, ``v = min(max(1, round(fraction · n)), n − 1)`` chosen by the seeded
    permutation ``default_rng([seed, 2]).permutation(n)`` are the validation rows, the other n − v
    the training rows of the view. The instance's own test split is not in the view at all, so
    nothing trained or evaluated on it can read a test row. Inputs keep the scale they were given
    from the whole training split (never from the test split). ``None`` for an instance that is not
    a :class:`SupervisedInstance` with at least 2 training rows (a landscape, a foreign problem whose
    use of its data is unknown): those keep held-out seeds only.
    """
    if not holds_out(instance):
        return None
    import copy

    d = instance.dataset
    n = len(d.x_train)
    n_val = min(max(1, int(round(float(fraction) * n))), n - 1)
    # [seed, 2]: a stream of its own, apart from the train/test split's [seed, 1] (datasets.split_indices)
    order = np.random.default_rng([int(seed), 2]).permutation(n)
    fit, val = np.sort(order[n_val:]), np.sort(order[:n_val])
    rows = d.train_index if d.train_index is not None else np.arange(n)
    dataset = Dataset(
        x_train=d.x_train[fit],
        y_train=d.y_train[fit],
        x_test=d.x_train[val],
        y_test=d.y_train[val],
        task=d.task,
        feature_names=list(d.feature_names),
        class_names=list(d.class_names),
        x_mean=d.x_mean,
        x_std=d.x_std,
        y_mean=d.y_mean,
        y_std=d.y_std,
        train_index=np.asarray(rows)[fit],
        test_index=np.asarray(rows)[val],
    )
    # a shallow copy keeps a subclass's own methods (its model, hessian); the data and caches are the view's
    view = copy.copy(instance)
    view.dataset = dataset
    view.n_train = len(fit)
    view._cast_cache = {}
    return view


# ---- optional capabilities ---------------------------------------------------------------------
# Core and dashboard ask a built problem what it can do through these protocols (the ``is_…`` and
# ``…_of`` helpers below), never which built-in it is; a third-party problem offers a capability by
# having these members, subclassing none of the built-ins. Every member a page, a figure or the runner reads
# beyond ProblemInstance's own is declared here (tests/test_boundaries.py and
# tests/dashboard/test_third_party_problem.py hold them to it). Facts that need no code are keys of
# ``describe()``: ``top_eigenvalue`` (a constant Hessian's λ_max, for critical α and the Stability
# page's theory) and ``minimum_value`` (the known minimum loss J*, for the verdicts and rates).


@runtime_checkable
class Landscape(Protocol):
    """Two parameters that are the point itself: the Landscape page draws ``value``'s contours over
    ``bounds``, each run's path and the ``minima``, with ``axis_names`` on the axes."""

    bounds: Sequence[Sequence[float]]  # ((x_min, x_max), (y_min, y_max)) of the default window
    axis_names: Sequence[str]  # names of the two parameters, e.g. ("x", "y") or ("w", "b")
    minima: Sequence[Sequence[float]]  # known minima, drawn as markers (may be empty)

    def value(self, points: np.ndarray) -> np.ndarray:
        """The loss at ``(..., 2)`` points, shape ``(...)``."""


@runtime_checkable
class Predictor(Protocol):
    """A model on data: predictions at any inputs. With a classification ``dataset.task`` and two
    input columns it gets the Decision-boundary page (and the Results page's boundary tab)."""

    dataset: Dataset

    def predict(self, params: np.ndarray, inputs: np.ndarray) -> np.ndarray:
        """Model outputs ``(R, N, k)`` for ``(N, d)`` inputs (logits for classification)."""


@runtime_checkable
class ExactHessian(Protocol):
    """A closed-form Hessian: explanations and sharpness use it instead of Lanczos, and the
    Stability page's theory section offers the problem."""

    def hessian(self, params: np.ndarray) -> np.ndarray | None:
        """``(R, P, P)``, or None where it is not known."""


@runtime_checkable
class HessianVectorProduct(Protocol):
    """Exact Hessian-vector products: sharpness uses them instead of differences of gradients, and
    the Stability page's edge-of-stability section offers the problem."""

    def hessian_vector_product(
        self, params: np.ndarray, vectors: np.ndarray, batch: np.ndarray | None = None
    ) -> np.ndarray:
        """``H_r v_r`` ``(R, P)`` in float64 for the loss of ``batch`` (None: the training set)."""


@runtime_checkable
class HessianOperator(Protocol):
    """Many Hessian-vector products at the same weights: the v-free half of the R-operator is built
    once per measurement (and may reuse the training step's forward pass, ``trace``); sharpness
    tracking uses it when offered, else :class:`HessianVectorProduct` per product."""

    def hessian_operator(self, params: np.ndarray, batch: np.ndarray | None = None, trace: dict | None = None):
        """``op(vectors) -> H v`` at fixed ``params`` (float64), for the loss of ``batch`` (None: all)."""


@runtime_checkable
class QuietLossAndGrad(Protocol):
    """``loss_and_grad`` without its own ``np.errstate``: the runner's step loop is already silenced.

    Entering ``np.errstate`` costs about 1 µs, an eighth of a two-parameter landscape's whole call,
    so the runner calls this instead of ``loss_and_grad`` where it is offered. Same results."""

    def loss_and_grad_quiet(
        self, params: np.ndarray, batch: np.ndarray | None = None, out: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """As :meth:`ProblemInstance.loss_and_grad`, floating-point warnings left to the caller."""


@runtime_checkable
class Network(Protocol):
    """An engine :class:`~descentlab.network.MLP` on a dataset: the lesson page draws the network
    neuron by neuron, and the runner sizes its chunks by the layers' widths."""

    model: MLP
    dataset: Dataset


def is_landscape(instance) -> bool:
    """Whether ``instance`` offers the :class:`Landscape` capability (two parameters, a value)."""
    return getattr(getattr(instance, "layout", None), "size", None) == 2 and isinstance(instance, Landscape)


def is_predictor(instance) -> bool:
    """Whether ``instance`` offers the :class:`Predictor` capability."""
    return isinstance(instance, Predictor)


def exact_hessian(instance, params: np.ndarray) -> np.ndarray | None:
    """The instance's closed-form Hessian at ``params``, or None when it has none."""
    if not isinstance(instance, ExactHessian):
        return None
    return instance.hessian(params)


def is_classifier(instance) -> bool:
    """Whether ``instance`` is a :class:`Predictor` whose dataset is a classification task (the
    decision-boundary page further asks for two inputs)."""
    return is_predictor(instance) and getattr(instance.dataset, "task", None) == "classification"


def has_hessian_vector_product(instance) -> bool:
    """Whether ``instance`` offers the :class:`HessianVectorProduct` capability."""
    return isinstance(instance, HessianVectorProduct)


def network_of(instance) -> MLP | None:
    """The instance's engine MLP when it offers the :class:`Network` capability, else None."""
    if isinstance(instance, Network) and isinstance(instance.model, MLP):
        return instance.model
    return None


def quiet_loss_and_grad(instance):
    """The call the runner's (already silenced) step loop trains with: ``loss_and_grad_quiet`` where
    the instance offers :class:`QuietLossAndGrad`, else ``loss_and_grad``."""
    if isinstance(instance, QuietLossAndGrad):
        return instance.loss_and_grad_quiet
    return instance.loss_and_grad
