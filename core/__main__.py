"""``python -m descentlab``: the same command line as ``descentlab``.

Ctrl-C while the command line is being imported is one line and status 130, as it is later on.
(Python imports the ``descentlab`` package itself before this module: an interrupt during that
import can only be caught in ``descentlab/__init__.py``.)
"""

import sys


def _run() -> int:
    import signal

    from . import _interrupted_while_starting

    previous = signal.signal(signal.SIGINT, _interrupted_while_starting)  # as in __init__.py: no traceback
    try:
        from .cli import main
    finally:
        signal.signal(signal.SIGINT, previous)
    return main()


sys.exit(_run())
