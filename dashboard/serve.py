"""Launch the dashboard: ``streamlit run dashboard/app.py`` headless on a chosen host and port (through
:mod:`descentlab.dashboard.launch`, which warms the Compare page's caches first)."""

from __future__ import annotations

import os
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


HOST_ACCEPTED = "an address or name of this machine to listen on, e.g. 127.0.0.1, ::1 or 0.0.0.0"


def check_address(host: str, port: int) -> None:
    """Refuse, in one line naming --host or --port, an address the server could not listen on.

    Streamlit finds out only once started, with a traceback (an unknown name) or a line of its own and
    status 1 (a port in use); binding a socket here first says which option is wrong, with status 2.
    SO_REUSEADDR, as the server sets it, so a port still in TIME_WAIT after a restart is not refused.
    """
    import errno
    import socket

    from descentlab.errors import SpecError

    text = str(host).strip().strip("[]")
    try:
        # AI_PASSIVE with no name is the wildcard address, as Streamlit reads an empty server.address
        infos = socket.getaddrinfo(text or None, int(port), type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (OSError, UnicodeError, ValueError) as error:
        raise SpecError(
            "--host", str(host), HOST_ACCEPTED, hint=getattr(error, "strerror", None) or "unknown name"
        ) from None
    family, kind, proto, _, address = infos[0]
    try:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(address)
    except OSError as error:
        if error.errno == errno.EADDRINUSE:
            raise SpecError("--port", port, "a free port", hint=f"another server listens on {host}:{port}") from None
        if error.errno == errno.EACCES:
            raise SpecError(
                "--port", port, "a port this user may listen on", hint="ports below 1024 need privileges"
            ) from None
        raise SpecError("--host", str(host), HOST_ACCEPTED, hint=error.strerror or type(error).__name__) from None


def streamlit_command(host: str = "127.0.0.1", port: int = 8501, extra_args: Sequence[str] = ()) -> list[str]:
    """The command line that serves the dashboard (used by :func:`serve` and by tests)."""
    port = check_port(port)
    return [
        sys.executable,
        "-m",
        "descentlab.dashboard.launch",  # streamlit's command line, after starting the warm-up (launch.py)
        "run",
        str(APP),
        "--server.headless",
        "true",
        "--server.address",
        str(host),
        "--server.port",
        str(int(port)),
        "--browser.gatherUsageStats",
        "false",
        *map(str, extra_args),
    ]


def check_allow_paths(paths: Sequence[str]) -> list[str]:
    """Each ``--allow-path`` as an absolute, resolved folder, or a one-line SpecError naming it."""
    from descentlab.errors import SpecError

    out = []
    for path in paths:
        try:
            resolved = Path(os.path.expanduser(str(path))).resolve()
        except (OSError, RuntimeError, ValueError):
            resolved = None
        if resolved is None or not resolved.is_dir():
            raise SpecError("--allow-path", str(path), "an existing folder")
        out.append(str(resolved))
    return out


def announce(host: str, port: int, allow_plugin_files: bool = False, *, stdout=None, stderr=None) -> None:
    """The address line on stdout and, when not bound to loopback, the one-line warning on stderr."""
    from .access import binding_warning

    print(f"descentlab dashboard: http://{host}:{int(port)}  (Ctrl-C to stop)", file=stdout or sys.stdout, flush=True)
    warning = binding_warning(host, allow_plugin_files)
    if warning:
        print(warning, file=stderr or sys.stderr, flush=True)


def serve(
    host: str = "127.0.0.1",
    port: int = 8501,
    extra_args: Sequence[str] = (),
    *,
    allow_plugin_files: bool = False,
    allow_paths: Sequence[str] = (),
) -> int:
    """Serve the dashboard until interrupted; returns Streamlit's exit status (0 on Ctrl-C).

    Without the ``[dashboard]`` extra (streamlit, plotly) raises MissingExtra, naming it.
    The Streamlit process learns the binding, ``allow_plugin_files`` and the ``allow_paths`` folders
    from environment variables (see :mod:`descentlab.dashboard.access`).
    """
    from .access import server_environment

    port = check_port(port)
    from descentlab.extras import MissingExtra, has_module

    for module in ("streamlit", "plotly"):
        if not has_module(module):
            raise MissingExtra.of("the dashboard", "dashboard", module)
    allow_paths = check_allow_paths(allow_paths)
    check_address(host, port)
    announce(host, port, allow_plugin_files)
    env = {**os.environ, **server_environment(host, allow_plugin_files, allow_paths)}
    process = subprocess.Popen(streamlit_command(host, port, extra_args), env=env)
    try:
        return process.wait()
    except KeyboardInterrupt:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        return 0
