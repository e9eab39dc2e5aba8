"""``python -m descentlab``: the same command line as ``descentlab``.

Ctrl-C while the command line is being imported is one line and status 130, as it is later on.
(Python imports the ``descentlab`` package itself before this module: an interrupt during that
import can only be caught in ``descentlab/__init__.py``.)
"""

import sys


def _run() -> int:
    try:
        from .cli import main
    except KeyboardInterrupt:
        print("descentlab: interrupted", file=sys.stderr)
        return 130
    return main()


sys.exit(_run())
