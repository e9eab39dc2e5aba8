"""What plugins register: hyperparameter declarations, descent rules, gradient transforms, schedules and problems."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

from .errors import SpecError

__all__ = ["KINDS", "HyperParam", "DescentRule", "Schedule", "Problem", "SEED_KEY", "Transform"]


def _not_text(name) -> str:
    """The end of a bad-name message: what the name is when it is not a string at all."""
    return "" if isinstance(name, str) else f" (a string; got {type(name).__name__})"


KINDS = ("float", "int", "bool", "choice", "str", "int_list")
# The longest int_list value (a network's hidden layer sizes): every layer is a few Python calls per
# step that the memory and time estimates do not count, so 5000 layers of 4 ran for minutes; no
# network here is anywhere near 100 layers deep.
MAX_INT_LIST_LENGTH = 100


@dataclass(frozen=True)
class HyperParam:
    """One tunable number (or flag, or choice) of a rule, schedule or problem.

    The CLI, the experiment validator and the dashboard's widgets are all generated from this.
    ``low``/``high`` bound the accepted values (``low_open``/``high_open`` exclude the bound);
    ``log`` says the value is best searched on a log scale.
    """

    name: str
    default: Any
    low: float | None = None
    high: float | None = None
    log: bool = False
    help: str = ""
    kind: str = "float"
    choices: tuple = ()
    low_open: bool = False
    high_open: bool = False

    def accepted(self) -> str:
        """Human text for what this parameter accepts, e.g. ``a number in (0, 1)``."""
        if self.kind == "bool":
            return "true or false"
        if self.kind == "choice":
            return "one of " + ", ".join(repr(c) for c in self.choices)
        if self.kind == "str":
            return "a string"
        if self.kind == "int_list":
            bounds = "" if self.low is None else f" each >= {self.low:g}"
            return f"a list of integers{bounds} (at most {MAX_INT_LIST_LENGTH} of them)"
        noun = "an integer" if self.kind == "int" else "a number"
        if self.low is None and self.high is None:
            return noun
        lo = "-inf" if self.low is None else f"{self.low:g}"
        hi = "inf" if self.high is None else f"{self.high:g}"
        left = "(" if self.low is None or self.low_open else "["
        right = ")" if self.high is None or self.high_open else "]"
        return f"{noun} in {left}{lo}, {hi}{right}"

    def check(self, value: Any, where: str = "") -> Any:
        """Return ``value`` coerced to this parameter's kind, or raise a one-line SpecError."""
        field_name = f"{where}.{self.name}" if where else self.name
        bad = SpecError(field_name, value, self.accepted())
        if self.kind == "bool":
            if isinstance(value, bool):
                return value
            raise bad
        if self.kind == "choice":
            if value in self.choices:
                return value
            raise bad
        if self.kind == "str":
            if isinstance(value, str):
                return value
            raise bad
        if self.kind == "int_list":
            if isinstance(value, int) and not isinstance(value, bool):
                value = [value]
            if (
                not isinstance(value, (list, tuple))
                or len(value) > MAX_INT_LIST_LENGTH
                or any(
                    isinstance(v, bool) or not isinstance(v, int) or (self.low is not None and v < self.low)
                    for v in value
                )
            ):
                raise bad
            return list(value)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad
        if self.kind == "int":
            if isinstance(value, float) and not value.is_integer():
                raise bad
            value = int(value)
        else:
            value = float(value)
            if not math.isfinite(value):
                raise bad
        if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
            raise bad
        if self.high is not None and (value > self.high or (self.high_open and value == self.high)):
            raise bad
        return value

    def validate_declaration(self) -> None:
        """Raise ValueError if this declaration itself is inconsistent (checked at registration)."""
        if not self.name.isidentifier():
            raise ValueError(f"hyperparameter name {self.name!r} is not an identifier")
        if self.kind not in KINDS:
            raise ValueError(f"hyperparameter {self.name!r}: kind {self.kind!r} is not one of {KINDS}")
        if self.kind == "choice" and not self.choices:
            raise ValueError(f"hyperparameter {self.name!r}: a choice needs choices")
        if (
            self.log
            and self.kind in ("float", "int")
            and (self.low is None or self.low < 0 or (self.low == 0 and not self.low_open))
        ):
            raise ValueError(
                f"hyperparameter {self.name!r}: log=True with low={self.low!r}; accepted: low > 0, "
                "or low=0 with low_open=True (0 itself excluded, every positive value allowed)"
            )
        try:
            self.check(self.default)
        except SpecError as error:
            raise ValueError(f"hyperparameter {self.name!r}: default {error}") from None


def _check_declarations(owner: str, hyperparams) -> None:
    for h in hyperparams:
        if not isinstance(h, HyperParam):
            raise ValueError(f"{owner}: {h!r} is not a HyperParam")
    names = [h.name for h in hyperparams]
    if len(set(names)) != len(names):
        raise ValueError(f"{owner}: hyperparameter names repeat: {names}")
    for h in hyperparams:
        h.validate_declaration()


@dataclass(frozen=True)
class DescentRule:
    """A gradient-descent variant: a pure ``init``/``update`` pair over the run axis.

    ``init(params, hyper) -> state`` where ``params`` is ``(R, P)`` (R runs, P parameters) and
    ``hyper`` maps each declared hyperparameter to an ``(R, 1)`` array (so one batch holds a grid).

    ``update(grad, state, params, learning_rate, hyper, step) -> (updates, state)``: ``grad`` and
    ``params`` are ``(R, P)``, ``learning_rate`` is α_t as an ``(R, 1)`` array computed by the
    runner's schedule, ``step`` is the number of updates already taken (0 for the first). The
    runner applies ``params += updates``; ‖updates‖₂ is the step size it records. ``update`` may
    reuse the arrays of ``state`` in place but must not modify ``grad`` or ``params``.

    ``stability_threshold(hyper) -> c`` (optional): on a quadratic with top Hessian eigenvalue λ,
    the rule is stable iff α·λ < c (vanilla GD: 2). ``None`` means the rule has no fixed threshold.

    Optional theory, so that no core or dashboard module needs to know which rule it is:

    - ``title``: the name sentences use ("gradient descent"); a callable gets the run's
      hyperparameter values (so one rule can be "heavy-ball" or "Nesterov momentum").
    - ``quadratic_rate(a, hyper) -> ρ``: the per-step contraction on one eigen-direction of a
      quadratic at a constant α, with ``a`` = α·λ an array; the rule's rate is its largest value.
    - ``preconditioner(state, hyper, step) -> P`` ``(R, P)``: the diagonal P_t of a preconditioned
      step θ ← θ − α P_t⁻¹ m_t, read from the state the rule returned at ``step``; with
      ``preconditioned_limit(learning_rate, hyper) -> c``, the stability limit on λ_max(P⁻¹H)
      (Adam: (2 + 2β₁)/((1 − β₁)α), Cohen et al. 2022).
    - ``optimal(λ_min, λ_max) -> {"learning_rate": α*, <other hyperparameters>..., "rate": ρ,
      "formula": text}``: the best constant hyperparameters on a quadratic with that spectrum and
      their per-step contraction of ‖θ − θ*‖ (GD: α* = 2/(λ_min + λ_max); heavy ball: Polyak's).
    - ``moves_without_gradient``: True when a zero gradient still moves the parameters at the
      rule's defaults (decoupled weight decay); ``descentlab check`` then skips that check.
    - ``torch_optimizer`` and ``torch_defaults``: the ``torch.optim`` class the rule follows ("SGD")
      and torch's default for ``learning_rate`` and each declared hyperparameter torch also has
      (``{"learning_rate": 0.001, "momentum": 0.0}``); ``descentlab plugins`` names where the rule's
      own defaults differ (:meth:`torch_differences`).
    - ``uses_layout``: True when the rule treats each parameter tensor by its shape (Adafactor
      factors every matrix's second moment): ``init`` is then called as
      ``init(params, hyper, layout=...)`` with the problem's ``ParamLayout``, or ``layout=None`` when
      the caller has only the flat row (the rule then treats the row as one vector). Call
      :meth:`start` rather than ``init`` to get this right for any rule.
    """

    name: str
    init: Callable
    update: Callable
    hyperparams: tuple[HyperParam, ...] = ()
    summary: str = ""
    formula: str = ""
    default_learning_rate: float = 0.01
    stability_threshold: Callable | None = None
    threshold_note: str = ""
    title: str | Callable[[dict], str] = ""
    quadratic_rate: Callable | None = None
    preconditioner: Callable | None = None
    preconditioned_limit: Callable | None = None
    optimal: Callable | None = None
    moves_without_gradient: bool = False
    torch_optimizer: str = ""
    torch_defaults: dict = field(default_factory=dict, hash=False)

    def torch_differences(self) -> list[tuple[str, Any, Any]]:
        """``(name, own default, torch's default)`` for every default that differs from ``torch_optimizer``'s."""
        own = {"learning_rate": self.default_learning_rate, **{h.name: h.default for h in self.hyperparams}}
        return [
            (name, own[name], theirs)
            for name, theirs in self.torch_defaults.items()
            if name in own and own[name] != theirs
        ]

    uses_layout: bool = False

    def start(self, params, hyper, layout=None):
        """``init(params, hyper)``, passing ``layout`` (a ``ParamLayout`` or None) to a rule that ``uses_layout``."""
        if self.uses_layout:
            return self.init(params, hyper, layout=layout)
        return self.init(params, hyper)

    def display_title(self, hyper: dict | None = None) -> str:
        """The rule's name in sentences: its ``title`` (called with ``hyper`` if callable), else its name."""
        if callable(self.title):
            return str(self.title(dict(hyper or {})))
        return self.title or self.name

    def validate_declaration(self) -> None:
        if not isinstance(self.name, str) or not self.name or not all(c.isalnum() or c in "_-" for c in self.name):
            raise ValueError(f"rule name {self.name!r}: use letters, digits, '_' or '-'" + _not_text(self.name))
        if not callable(self.init) or not callable(self.update):
            raise ValueError(f"rule {self.name!r}: init and update must be callables")
        _check_declarations(f"rule {self.name!r}", self.hyperparams)
        if "learning_rate" in [h.name for h in self.hyperparams]:
            raise ValueError(f"rule {self.name!r}: learning_rate is set by the runner, do not declare it")
        for field_name in (
            "stability_threshold",
            "quadratic_rate",
            "preconditioner",
            "preconditioned_limit",
            "optimal",
        ):
            if getattr(self, field_name) is not None and not callable(getattr(self, field_name)):
                raise ValueError(f"rule {self.name!r}: {field_name} must be a callable or None")
        if not (isinstance(self.title, str) or callable(self.title)):
            raise ValueError(f"rule {self.name!r}: title must be a string or a callable")
        if not isinstance(self.torch_optimizer, str) or not isinstance(self.torch_defaults, dict):
            raise ValueError(f"rule {self.name!r}: torch_optimizer must be a string and torch_defaults a dict")
        if self.torch_defaults and not self.torch_optimizer:
            raise ValueError(f"rule {self.name!r}: torch_defaults needs torch_optimizer (the torch.optim class)")
        unknown = set(self.torch_defaults) - {"learning_rate", *(h.name for h in self.hyperparams)}
        if unknown:
            raise ValueError(f"rule {self.name!r}: torch_defaults names {sorted(unknown)}, which it does not declare")


@dataclass(frozen=True)
class Schedule:
    """A learning-rate schedule: ``learning_rate(step, base, hyper, total_steps) -> α_t``.

    ``step`` is an integer array of 0-based step indices, shape ``(T, 1)``; ``base`` is the runs'
    base learning rates α, shape ``(1, R)``; each ``hyper`` value is ``(1, R)``. The result
    broadcasts to ``(T, R)``. Must be pure numpy: the runner computes every α_t up front.

    Two other kinds, declared by capability:

    - ``joins``: the schedule is made of other schedules (torch ``SequentialLR``). Its experiment
      table takes ``schedules`` (a list of schedule tables) and ``milestones`` (a list of steps)
      instead of numbers, and it is called as ``learning_rate(step, base, hyper, total_steps,
      parts)``: ``hyper["milestones"]`` is the tuple of milestones and ``parts[k](step, total_steps)``
      computes part k's ``(len(step), R)`` rates for the same runs. Its parts are closed-form.
    - ``stateful``: α_t depends on the run itself (torch ``ReduceLROnPlateau``), so it cannot be
      computed before training. ``init(base, hyper) -> state`` with ``base`` the runs' α as ``(R,)``
      and each ``hyper`` value ``(R,)``; the state is an array or a dict of arrays with the run axis
      first (the loop drops the rows of stopped runs). ``update(loss, state, hyper, step) ->
      (learning_rate, state)`` receives the ``(R,)`` float64 training loss of step ``step`` (the loop drops a
      run whose loss is not finite first, but ``update`` must neither fail nor warn on NaN or ±inf) and returns the
      ``(R,)`` α of step ``step + 1``. α_0 is the base α. ``learning_rate`` may then be None.
    """

    name: str
    learning_rate: Callable | None
    hyperparams: tuple[HyperParam, ...] = ()
    summary: str = ""
    formula: str = ""
    joins: bool = False
    stateful: bool = False
    init: Callable | None = None
    update: Callable | None = None

    @property
    def code(self) -> Callable:
        """The function that defines the schedule (for its docstring and for naming its file:line)."""
        code = self.update if self.stateful else self.learning_rate
        assert code is not None  # validate_declaration: a stateful schedule declares update
        return code

    def validate_declaration(self) -> None:
        if not isinstance(self.name, str) or not self.name or not all(c.isalnum() or c in "_-" for c in self.name):
            raise ValueError(f"schedule name {self.name!r}: use letters, digits, '_' or '-'" + _not_text(self.name))
        if self.stateful:
            if not callable(self.init) or not callable(self.update):
                raise ValueError(f"schedule {self.name!r}: a stateful schedule needs callables init and update")
            if self.joins:
                raise ValueError(f"schedule {self.name!r}: a schedule cannot both join others and be stateful")
        elif not callable(self.learning_rate):
            raise ValueError(f"schedule {self.name!r}: learning_rate must be callable")
        _check_declarations(f"schedule {self.name!r}", self.hyperparams)
        if {h.name for h in self.hyperparams} & {"schedules", "milestones"}:
            # reserved for every schedule: a saved spec is read back by these names without the registry
            raise ValueError(
                f"schedule {self.name!r}: schedules and milestones are the fields of a schedule "
                "that joins others, do not declare them"
            )


@dataclass(frozen=True)
class Problem:
    """A training problem: ``build(settings) -> ProblemInstance`` (see ``descentlab.problem``).

    ``settings`` are declared like hyperparameters; ``build`` receives every declared setting,
    validated, as a plain dict. The data must depend only on the settings (they include the data
    seed), so every rule and every run seed sees the same data.
    ``kind`` is ``"landscape"`` (the parameters are the point itself), ``"regression"`` or
    ``"classification"``.
    """

    name: str
    build: Callable
    settings: tuple[HyperParam, ...] = ()
    summary: str = ""
    kind: str = "regression"
    has_model: bool = True

    def validate_declaration(self) -> None:
        if not isinstance(self.name, str) or not self.name or not all(c.isalnum() or c in "_-" for c in self.name):
            raise ValueError(f"problem name {self.name!r}: use letters, digits, '_' or '-'" + _not_text(self.name))
        if self.kind not in ("landscape", "regression", "classification"):
            raise ValueError(
                f"problem {self.name!r}: kind {self.kind!r} is not landscape, regression or classification"
            )
        if not callable(self.build):
            raise ValueError(f"problem {self.name!r}: build must be callable")
        _check_declarations(f"problem {self.name!r}", self.settings)


# The key of the runs' seeds in every transform's ``hyper`` (not a declarable hyperparameter).
SEED_KEY = "seed"


@dataclass(frozen=True)
class Transform:
    """A gradient transform (optax style) that an experiment entry applies around its descent rule.

    Every function is pure numpy over the run axis, like a rule's: ``params`` and ``grad`` are
    ``(R, P)``; ``hyper`` maps each declared hyperparameter to an ``(R, 1)`` array and, in addition,
    ``hyper["seed"]`` to the runs' seeds as an ``(R, 1)`` int64 array (for transforms that draw
    random numbers: draw each run's from its own seed, so a run's result never depends on the
    other runs of its batch). Every quantity is per run (a global norm is over one run's
    parameters), and every field of the state keeps the run axis first (the runner drops the rows
    of diverged runs).

    - ``init(params, hyper) -> state`` (optional; ``None`` means the transform keeps no state).
    - ``update(grad, state, params, hyper, step) -> (grad, state)`` (optional): runs **before** the
      rule, in the entry's order; the rule receives the last transform's gradient. Must not modify
      ``grad`` or ``params`` in place (return a new array).
    - ``after(updates, state, params, learning_rate, hyper, step) -> (updates, state)`` (optional):
      a **wrapper** around the rule, run after it on the rule's updates (``params`` are still θ_t;
      the runner applies θ_{t+1} = θ_t + updates). Lookahead and decoupled weight decay are
      wrappers: anything that acts on the parameters after the rule's step is a rewrite of that
      step, so the step size the runs table records is the step actually taken.

    ``uses_layout``: when True, ``init`` is called as ``init(params, hyper, layout=layout)`` with the
    problem's ``ParamLayout`` (names, shapes and offsets of the tensors in a run's flat row), for
    transforms that act per weight matrix; keep what it needs in the state as plain Python values
    (not arrays, whose first axis the runner would take for the run axis).

    A transform declares at least one of ``update`` and ``after``. ``summary`` is one line;
    ``formula`` the update in the docs' notation (g = ∇J, t = step).
    """

    name: str
    init: Callable | None = None
    update: Callable | None = None
    after: Callable | None = None
    hyperparams: tuple[HyperParam, ...] = ()
    summary: str = ""
    formula: str = ""
    uses_layout: bool = False

    @property
    def is_wrapper(self) -> bool:
        """True when the transform acts on the rule's updates (``after``) rather than on the gradient."""
        return self.after is not None

    def validate_declaration(self) -> None:
        if not self.name or not all(c.isalnum() or c in "_-" for c in self.name):
            raise ValueError(f"transform name {self.name!r}: use letters, digits, '_' or '-'")
        for field_name in ("init", "update", "after"):
            if getattr(self, field_name) is not None and not callable(getattr(self, field_name)):
                raise ValueError(f"transform {self.name!r}: {field_name} must be a callable or None")
        if self.update is None and self.after is None:
            raise ValueError(f"transform {self.name!r}: declare update (before the rule) or after (a wrapper)")
        _check_declarations(f"transform {self.name!r}", self.hyperparams)
        if SEED_KEY in [h.name for h in self.hyperparams]:
            raise ValueError(f"transform {self.name!r}: {SEED_KEY!r} is the runs' seed, set by the runner")
        if "name" in [h.name for h in self.hyperparams]:
            raise ValueError(f"transform {self.name!r}: 'name' names the transform in an entry, do not declare it")
