"""``python -m descentlab``: the same command line as ``descentlab``."""

import sys

from .cli import main

sys.exit(main())
