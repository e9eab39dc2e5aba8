"""``python -m descentlab``: the same command line as ``descentlab``.

Ctrl-C while the command line is being imported is one line and status 130, as it is later on:
``descentlab/__init__.py`` installs that handler for the CLI and ``cli.main`` gives it back.
"""

import sys

from .cli import main

sys.exit(main())
