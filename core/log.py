"""The ``descentlab`` logger: notes, warnings and details, not results.

Library code logs to ``logging.getLogger("descentlab")`` (a NullHandler keeps it silent unless the
program configures logging). The command line shows its records on stderr as
``descentlab: note: ...`` / ``descentlab: warning: ...``, at a level set by ``-v/--verbose``
(details, ``descentlab: debug: ...``) and ``--quiet`` (warnings only). Results (the results path,
the summary table) and error lines are printed, never logged: ``--quiet`` must not hide them.
"""

from __future__ import annotations

import logging
import sys
from contextlib import contextmanager

__all__ = ["cli_logging", "level_for", "logger"]

logger = logging.getLogger("descentlab")
logger.addHandler(logging.NullHandler())

_LABELS = {
    logging.DEBUG: "debug",
    logging.INFO: "note",
    logging.WARNING: "warning",
    logging.ERROR: "error",
    logging.CRITICAL: "error",
}


class _Stderr(logging.StreamHandler):
    """A handler writing to whatever ``sys.stderr`` is when the record comes (a redirected or
    captured stream included), not the one at the time the handler was made."""

    def __init__(self):
        super().__init__(sys.stderr)

    def emit(self, record):
        self.stream = sys.stderr
        super().emit(record)


class _Formatter(logging.Formatter):
    def format(self, record):
        label = _LABELS.get(record.levelno, record.levelname.lower())
        return f"descentlab: {label}: {record.getMessage()}"


def level_for(verbose: int = 0, quiet: bool = False) -> int:
    """``--quiet`` shows warnings only (it wins over ``-v``); the default shows notes; ``-v`` details."""
    if quiet:
        return logging.WARNING
    return logging.DEBUG if verbose > 0 else logging.INFO


@contextmanager
def cli_logging(level: int):
    """Show the descentlab logger's records of ``level`` and above on stderr while the command runs.

    Undone afterwards (tests and programs call ``descentlab.cli.main`` more than once), and not
    passed on to the root logger meanwhile, so that a program's own handler does not print each
    line twice.
    """
    handler = _Stderr()
    handler.setFormatter(_Formatter())
    previous = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
    try:
        yield logger
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous[0])
        logger.propagate = previous[1]
