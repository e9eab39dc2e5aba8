"""The optional parts of descentlab and the pip extras that install them.

The core (engine, runner, records, ``descentlab run``/``plugins``/``lr-find``) needs only the
project's dependencies; the dashboard, the reports, scikit-learn's datasets and Dask sweeps need an extra
(pyproject.toml ``[project.optional-dependencies]``). Without it, the one line says which::

    the dashboard needs the [dashboard] extra: pip install 'descentlab[dashboard]'
"""

from __future__ import annotations

import importlib
import importlib.util

__all__ = ["EXTRA_OF_MODULE", "MissingExtra", "extra_message", "has_module", "require"]

# import name -> the extra that installs it (the modules a user may lack: pyproject.toml declares them
# in these extras only; tests/test_packaging.py checks the two agree)
EXTRA_OF_MODULE = {
    "streamlit": "dashboard",
    "plotly": "dashboard",
    "kaleido": "report",
    "sklearn": "datasets",
    "distributed": "distributed",
}


def extra_message(what: str, extra: str) -> str:
    return f"{what} needs the [{extra}] extra: pip install 'descentlab[{extra}]'"


class MissingExtra(ModuleNotFoundError):
    """An optional module is not installed; the message names the extra that installs it.

    A ModuleNotFoundError (``except ImportError`` still catches it), whose ``name`` is the module.
    The CLI prints it as one line, ``descentlab: error: ...``, and exits with status 2.
    """

    def __init__(self, message: str, *, name: str | None = None, extra: str | None = None):
        super().__init__(message, name=name)
        self.extra = extra

    @classmethod
    def of(cls, what: str, extra: str, module: str) -> "MissingExtra":
        return cls(extra_message(what, extra), name=module, extra=extra)

    def __reduce__(self):  # crosses process boundaries (a worker's error) intact
        return (_rebuild, (str(self), self.name, self.extra))


def _rebuild(message, name, extra):
    return MissingExtra(message, name=name, extra=extra)


def has_module(module: str) -> bool:
    """Whether ``module`` can be imported, without importing it (an import hook refusing it counts as no)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def require(module: str, what: str, extra: str | None = None):
    """``import module``, or MissingExtra naming ``what`` needs and the extra that installs it.

    Only the module itself (or its top-level package) missing becomes MissingExtra; a module it
    imports that is missing is a broken installation and stays a plain ModuleNotFoundError.
    """
    top = module.split(".")[0]
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as error:
        if error.name is None or error.name.split(".")[0] != top:
            raise
        raise MissingExtra.of(what, extra or EXTRA_OF_MODULE[top], top) from None
