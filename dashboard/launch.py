"""The dashboard's server process: Streamlit's own command line, after starting the warm-up.

``python -m descentlab.dashboard.launch run dashboard/app.py [streamlit options]`` is ``streamlit run
…`` (the same arguments, handed to Streamlit's command line unchanged) plus one thread, started first,
that does at server start what the first visitor would otherwise wait for: importing the pages'
modules (the dashboard's widgets and figures, pandas, plotly), loading the registry and running the
Compare page's opening comparison into the shared caches, with its figures built (``widgets.warm_up``).
Streamlit computes a cached value once per key under a lock, so a visitor who arrives while the
warm-up still runs waits for it instead of running the same comparison again.

``DESCENTLAB_DASHBOARD_WARM_UP=0`` turns the warm-up off. A warm-up that fails prints one line on
stderr; the server runs on and the page computes on first visit as before.
"""

from __future__ import annotations

import os
import sys
import threading
from typing import Sequence

WARM_UP_ENV = "DESCENTLAB_DASHBOARD_WARM_UP"


def warm_up_enabled(environ=None) -> bool:
    """False when DESCENTLAB_DASHBOARD_WARM_UP is 0, false, no or off."""
    value = (os.environ if environ is None else environ).get(WARM_UP_ENV, "1")
    return value.strip().lower() not in ("0", "false", "no", "off")


def warm_up() -> None:
    """The Compare page's opening comparison, run and drawn into the shared caches (one line on failure)."""
    try:
        from descentlab.dashboard import widgets as W
        from descentlab.dashboard.presets import preset

        # The spec the Compare page (views/1_compare.py) builds on a fresh session from its preset
        # (tests/dashboard/test_warm_up.py checks that its first visit then runs nothing).
        W.warm_up({"name": "dashboard-compare", **preset("compare")})
    except Exception as error:  # never stop the server: the page computes on first visit instead
        line = f"descentlab dashboard: warm-up skipped: {type(error).__name__}: {error}".splitlines()[0]
        print(line, file=sys.stderr)


def start_warm_up() -> threading.Thread | None:
    """The warm-up in a daemon thread (None when turned off)."""
    if not warm_up_enabled():
        return None
    thread = threading.Thread(target=warm_up, name="descentlab-warm-up", daemon=True)
    thread.start()
    return thread


def main(argv: Sequence[str] | None = None) -> None:
    start_warm_up()
    from streamlit.web import cli

    cli.main(args=list(sys.argv[1:] if argv is None else argv), prog_name="streamlit")


if __name__ == "__main__":
    main()
