"""Launch the dashboard: ``streamlit run dashboard/app.py`` headless on a chosen host and port."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Sequence

APP = Path(__file__).resolve().parent / "app.py"


def check_port(port) -> int:
    """``port`` as an int in 1-65535, or a one-line SpecError naming --port."""
    from descentlab.errors import SpecError

    accepted = "an integer in 1-65535"
    if isinstance(port, bool):
        raise SpecError("--port", port, accepted)
    try:
        value = int(port)
    except (TypeError, ValueError):
        raise SpecError("--port", port, accepted) from None
    if value != port and not (isinstance(port, str) and port.strip().isdigit()) or not 1 <= value <= 65535:
        raise SpecError("--port", port, accepted)
    return value


def streamlit_command(host: str = "127.0.0.1", port: int = 8501, extra_args: Sequence[str] = ()) -> list[str]:
    """The command line that serves the dashboard (used by :func:`serve` and by tests)."""
    port = check_port(port)
    return [sys.executable, "-m", "streamlit", "run", str(APP),
            "--server.headless", "true", "--server.address", str(host), "--server.port", str(int(port)),
            "--browser.gatherUsageStats", "false", *map(str, extra_args)]


def serve(host: str = "127.0.0.1", port: int = 8501, extra_args: Sequence[str] = ()) -> int:
    """Serve the dashboard until interrupted; returns Streamlit's exit status (0 on Ctrl-C).

    Without the ``[dashboard]`` extra (streamlit, plotly) raises MissingExtra, naming it.
    """
    port = check_port(port)
    from descentlab.extras import MissingExtra, has_module

    for module in ("streamlit", "plotly"):
        if not has_module(module):
            raise MissingExtra.of("the dashboard", "dashboard", module)
    print(f"descentlab dashboard: http://{host}:{int(port)}  (Ctrl-C to stop)", flush=True)
    process = subprocess.Popen(streamlit_command(host, port, extra_args))
    try:
        return process.wait()
    except KeyboardInterrupt:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        return 0
