"""Shared test set-up: third-party entry points are blocked so installed plugins cannot change results."""

import os

os.environ["DESCENTLAB_NO_ENTRY_POINTS"] = "1"
os.environ.pop("DESCENTLAB_PLUGINS", None)
