"""Plugin code is called through these helpers: whatever it raises (``sys.exit`` included) becomes one
line naming the plugin, its file:line and what went wrong.

Only KeyboardInterrupt goes through untouched (Ctrl-C stops the command); every other
BaseException from plugin code is that plugin's fault, not the command's end.
"""

from __future__ import annotations

import contextlib
import inspect
import os
import threading
import traceback
from pathlib import Path

from .errors import PluginError, SpecError, one_line, safe_str

__all__ = [
    "WROTE_INTO_PARAMS",
    "WROTE_INTO_GRAD",
    "wrote_into",
    "MAX_ERROR_CHARS",
    "error_text",
    "source_files",
    "definition",
    "where",
    "fault",
    "build_instance",
    "HardExit",
    "guarded_plugin_code",
]

_CORE_DIR = os.path.dirname(os.path.abspath(__file__))
MAX_ERROR_CHARS = 500

# What a rule's update may not do (the conformance check, and the runner on each rule's first step)
WROTE_INTO_PARAMS = "update wrote into params (the runner applies params += updates itself)"
WROTE_INTO_GRAD = "update wrote into grad (it is the engine's buffer; copy before changing it)"


def wrote_into(params_before, params, grad_before, grad) -> str:
    """WROTE_INTO_PARAMS or WROTE_INTO_GRAD if an update changed that array (NaN equal to NaN), else ""."""
    import numpy as np

    if not np.array_equal(params, params_before, equal_nan=True):
        return WROTE_INTO_PARAMS
    if not np.array_equal(grad, grad_before, equal_nan=True):
        return WROTE_INTO_GRAD
    return ""


class HardExit(BaseException):
    """``os._exit(code)`` called by plugin code while :func:`guarded_plugin_code` was in force."""

    def __init__(self, code):
        super().__init__(code)
        self.code = code


# os._exit as Python started it: what guarded_plugin_code puts back, however calls nest
_REAL_OS_EXIT = os._exit
_guard_lock = threading.Lock()
_guard_depth = 0


def _refuse_hard_exit(code=0):
    raise HardExit(code)


@contextlib.contextmanager
def guarded_plugin_code(label: str, *, capture_warnings: bool = True):
    """Run a plugin's import or registration hook so that neither ends nor clutters the command.

    ``os._exit`` ends a process without unwinding, so a plugin calling it at import made the CLI exit
    (status 0) before it could say why: while the guard is in force it raises :class:`HardExit`, which
    the loader reports like any other failure. Only import and registration are guarded, never
    training: a forked worker process ends through ``os._exit`` and must still be able to. Warnings
    the plugin issues meanwhile are each one ``descentlab: warning:`` line naming ``label`` and
    where the warning was raised, instead of Python's two-line form (``capture_warnings=False``
    leaves warnings to the caller's ``warnings.showwarning``: catching them swaps process-wide
    state, which a call that other threads may run at the same time, a problem's build on the
    dashboard, must not do).
    """
    global _guard_depth
    import warnings

    with _guard_lock:
        _guard_depth += 1
        os._exit = _refuse_hard_exit
    caught: list = []
    try:
        if capture_warnings:
            with warnings.catch_warnings(record=True) as caught:
                yield
        else:
            yield
    finally:
        with _guard_lock:
            _guard_depth -= 1
            if _guard_depth == 0:
                os._exit = _REAL_OS_EXIT
        from .log import logger

        for warning in caught:
            place = f"{os.path.abspath(warning.filename)}:{warning.lineno}"
            logger.warning(
                one_line(f"plugin {label} ({place}): {warning.category.__name__}: {safe_str(warning.message)}")
            )


def error_text(error: BaseException) -> str:
    """``Type: message`` on one line; ``sys.exit(code)`` and ``os._exit(code)`` are said as such."""
    if isinstance(error, SystemExit):
        return f"called sys.exit({error.code!r})"
    if isinstance(error, HardExit):
        return f"called os._exit({error.code!r})"
    return one_line(f"{type(error).__name__}: {safe_str(error)}")[:MAX_ERROR_CHARS]


def source_files(*code) -> set[str]:
    """The files that define ``code`` (functions, classes with their bases, modules, objects, paths)."""
    files: set[str] = set()
    for obj in code:
        if obj is None:
            continue
        if isinstance(obj, (str, os.PathLike)):
            files.add(os.path.abspath(obj))
            continue
        if not (inspect.isclass(obj) or inspect.ismodule(obj) or callable(obj)):
            obj = type(obj)  # a plugin object: the file of its class
        objs = [c for c in inspect.getmro(obj) if c is not object] if inspect.isclass(obj) else [obj]
        for item in objs:
            item = getattr(item, "__func__", item)
            try:
                path = inspect.getsourcefile(item) or inspect.getfile(item)
            except (TypeError, OSError):
                continue
            if path:
                files.add(os.path.abspath(path))
    return files


def definition(obj) -> str:
    """``path:line`` of the ``def`` (or ``class``) line of ``obj``, or '' when it has no source."""
    obj = getattr(obj, "__func__", obj)
    try:
        path = inspect.getsourcefile(obj) or inspect.getfile(obj)
        lines, first = inspect.getsourcelines(obj)
    except (TypeError, OSError):
        code = getattr(obj, "__code__", None)
        return f"{code.co_filename}:{code.co_firstlineno}" if code is not None else ""
    for offset, line in enumerate(lines):
        if line.lstrip().startswith(("def ", "async def ", "class ")):
            return f"{os.path.abspath(path)}:{first + offset}"
    return f"{os.path.abspath(path)}:{first}"


def where(error: BaseException, *code, fallback=None) -> str:
    """``path:line`` of the deepest traceback frame in the files defining ``code``; else of the deepest
    frame outside descentlab's core; else where ``fallback`` (or the first of ``code``) is defined."""
    frames = traceback.extract_tb(error.__traceback__)
    if isinstance(error, SyntaxError) and error.filename:  # the line is the error's, not a frame's
        return f"{os.path.abspath(error.filename)}:{error.lineno}"
    files = source_files(*code)
    for frame in reversed(frames):
        if os.path.abspath(frame.filename) in files:
            return f"{os.path.abspath(frame.filename)}:{frame.lineno}"
    for frame in reversed(frames):
        path = os.path.abspath(frame.filename)
        if not path.startswith(_CORE_DIR + os.sep) and "pluggy" not in Path(path).parts:
            if not files:
                return f"{path}:{frame.lineno}"
            break
    target = fallback if fallback is not None else (code[0] if code else None)
    return definition(target) if target is not None else ""


def fault(kind: str, name: str, error: BaseException, *code, what: str = "", fallback=None) -> str:
    """One line: ``<kind> '<name>' (<path:line>): [<what> ]<Type: message>``."""
    place = where(error, *code, fallback=fallback)
    head = f"{kind} {name!r}" + (f" ({place})" if place else "")
    return one_line(f"{head}: {what + ' ' if what else ''}{error_text(error)}")


def build_instance(problem, settings: dict):
    """``problem.build(settings)``; anything it raises is a PluginError naming the problem and its file:line."""
    try:
        with guarded_plugin_code(repr(problem.name), capture_warnings=False):  # os._exit too is named
            instance = problem.build(settings)
    except (KeyboardInterrupt, SpecError):  # Ctrl-C; a setting the problem refuses is bad input, named already
        raise
    except BaseException as error:
        from .extras import MissingExtra

        if isinstance(error, MissingExtra):  # not the plugin's fault: the install lacks an extra, which it names
            raise
        raise PluginError(fault("problem", problem.name, error, problem.build, what="build failed:")) from None
    missing = [m for m in ("layout", "init_params", "loss_and_grad") if not hasattr(instance, m)]
    if missing or not isinstance(getattr(instance.layout, "size", None), int):
        got = f"{type(instance).__name__}" + (
            f" without {', '.join(missing)}" if missing else " whose layout has no size"
        )
        raise PluginError(
            f"problem {problem.name!r} ({definition(problem.build)}): build returned {got}; expected a "
            "ProblemInstance with layout (a ParamLayout), init_params and loss_and_grad (descentlab.problem)"
        )
    return instance
