"""descentlab: backpropagation computes the gradient; gradient descent walks down it."""

import os as _os
import _signal  # the C module: `signal` imports enum, itself a window for Ctrl-C
import sys as _sys


def _interrupted_while_starting(signum, frame):  # pragma: no cover - exercised in a subprocess
    _os.write(2, b"descentlab: interrupted\n")
    _os._exit(130)


# Ctrl-C while the command line imports this package (its first ~0.3 s) is one line and status 130,
# as later on: only for the CLI (console script or ``python -m descentlab``); a program importing
# descentlab keeps its own handler. A handler, not ``except KeyboardInterrupt``: an interrupt caught
# inside an import could still end the process by signal (status -2) on its way out.
_previous_sigint = None
if _sys.argv and _sys.argv[0].replace("\\", "/").rsplit("/", 1)[-1] in ("descentlab", "descentlab.exe", "-m"):
    try:
        _previous_sigint = _signal.signal(_signal.SIGINT, _interrupted_while_starting)
    except (ValueError, OSError):  # not the main thread
        _previous_sigint = None


def _end_start_up() -> bool:
    """Give SIGINT back its handler; ``cli.main`` calls it where it can catch KeyboardInterrupt itself.

    Not at the end of this file: the console script still imports ``descentlab.cli`` after it, and
    an interrupt that lands while the handler is swapped back must meet an ``except``. True when
    this process is the command line (so ``main`` may ignore Ctrl-C once it has its exit status).
    """
    global _previous_sigint
    previous, _previous_sigint = _previous_sigint, None
    if previous is not None and _signal.getsignal(_signal.SIGINT) is _interrupted_while_starting:
        _signal.signal(_signal.SIGINT, previous)
        return True
    return False


try:
    from .activations import ACTIVATIONS, Activation
    from .declarations import DescentRule, HyperParam, Problem, Schedule
    from .declarations import Transform
    from .errors import PluginError, SpecError
    from .gradcheck import GradientCheckError, check_grads, check_hessian, numeric_grad
    from .hookspecs import hookimpl, hookspec
    from .landscapes import LandscapeInstance, LinearRegressionInstance
    from .layout import ParamEntry, ParamLayout
    from .losses import LOSSES, Loss
    from .network import MLP
    from .problem import (
        Dataset,
        ExactHessian,
        HessianOperator,
        HessianVectorProduct,
        Landscape,
        Network,
        Predictor,
        ProblemInstance,
        QuietLossAndGrad,
        SupervisedInstance,
        exact_hessian,
        has_hessian_vector_product,
        is_classifier,
        is_landscape,
        is_predictor,
        network_of,
    )
    from .registry import Registry, get_registry, load_registry
    from .experiment import Experiment, Protocol, RuleEntry, RunConfig, load_experiment_file
    from .grid import Configuration, configurations
    from .step_arrays import StepArrays
    from .records import Results, load_results, save_results
    from .runner import run_experiment
    from .sharpness import top_hessian_eigenvalue
    from .stability import critical_learning_rate, divergence_reason
    from .lrfind import lr_find
    from .compare import compare
except BaseException:
    _end_start_up()
    raise

try:  # the version lives in pyproject.toml only
    from importlib.metadata import PackageNotFoundError, version as _version

    __version__ = _version("descentlab")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = [
    "ACTIVATIONS",
    "Activation",
    "Dataset",
    "DescentRule",
    "HyperParam",
    "LOSSES",
    "Loss",
    "MLP",
    "ParamEntry",
    "ParamLayout",
    "PluginError",
    "Problem",
    "ProblemInstance",
    "Registry",
    "Schedule",
    "ExactHessian",
    "Landscape",
    "Predictor",
    "exact_hessian",
    "is_landscape",
    "is_predictor",
    "HessianOperator",
    "HessianVectorProduct",
    "Network",
    "QuietLossAndGrad",
    "has_hessian_vector_product",
    "is_classifier",
    "network_of",
    "SpecError",
    "SupervisedInstance",
    "__version__",
    "get_registry",
    "hookimpl",
    "hookspec",
    "load_registry",
    "GradientCheckError",
    "check_grads",
    "check_hessian",
    "numeric_grad",
    "LandscapeInstance",
    "LinearRegressionInstance",
    "Experiment",
    "RuleEntry",
    "RunConfig",
    "load_experiment_file",
    "Results",
    "StepArrays",
    "Configuration",
    "configurations",
    "load_results",
    "save_results",
    "run_experiment",
    "top_hessian_eigenvalue",
    "critical_learning_rate",
    "divergence_reason",
    "lr_find",
    "compare",
    "summarize",
    "verdict",
    "Transform",
    "Protocol",
    "run_protocol",
    "SUITES",
]

_LAZY = {"summarize": "analysis", "verdict": "analysis", "run_protocol": "protocol", "SUITES": "protocol"}


def __getattr__(name):
    # The analysis needs pandas; loading it on first use keeps `import descentlab` light for plugins.
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'descentlab' has no attribute {name!r}")
