"""What a dashboard visitor can reach: plugin files, and data files and result folders under allowed roots.

The dashboard has no login: whoever can open its address can use it. So:

- loading a plugin file (running any ``.py`` file of the server) is allowed only when the server is
  bound to loopback, or when it was started with ``descentlab dashboard --allow-plugin-files``;
- a data file (the CSV problem's ``path``) or a results folder must lie under an allowed root: the
  results directory (``DESCENTLAB_RESULTS``, else ``./results``), the working directory, and the
  folders given with ``descentlab dashboard --allow-path DIR``.

``descentlab dashboard`` (``serve.py``) passes its binding and options to the Streamlit process in
the environment variables below. Run without it (``streamlit run dashboard/app.py``), the page reads
Streamlit's ``server.address`` option: plugin files are off only when that names a non-loopback
address. The command line (``descentlab run``) is not restricted: its user owns the shell.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Mapping

from descentlab.errors import SpecError

BINDING_ENV = "DESCENTLAB_BINDING"  # "loopback" or "public" (set by serve.py)
HOST_ENV = "DESCENTLAB_HOST"  # the address serve.py binds (for messages)
ALLOW_PLUGIN_FILES_ENV = "DESCENTLAB_ALLOW_PLUGIN_FILES"  # "1": --allow-plugin-files
ALLOW_PATHS_ENV = "DESCENTLAB_ALLOW_PATHS"  # --allow-path folders, joined with os.pathsep
RESULTS_ENV = "DESCENTLAB_RESULTS"
DEFAULT_RESULTS = "results"
ENABLE_HINT = "restart with `descentlab dashboard --allow-plugin-files` to allow it"


def is_loopback(host) -> bool:
    """127.0.0.0/8, ::1 and ``localhost``; anything else (0.0.0.0, ::, a name, "") is not."""
    text = str(host or "").strip().strip("[]").lower()
    if text in ("localhost", "localhost.", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(text.split("%")[0]).is_loopback
    except ValueError:
        return False


def server_address() -> str | None:
    """Streamlit's ``server.address`` option (None when not set or Streamlit is not running)."""
    try:
        from streamlit import config

        value = config.get_option("server.address")
    except Exception:
        return None
    return str(value) if value not in (None, "") else None


def _env(environ: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if environ is None else environ


def plugin_files_allowed(environ: Mapping[str, str] | None = None, address: str | None = ...) -> tuple[bool, str]:
    """``(allowed, why not)``: may a visitor load a plugin file from the Plugins page?

    Allowed with ``--allow-plugin-files``; else refused when serve.py says the binding is not
    loopback or Streamlit's ``server.address`` names a non-loopback address; allowed otherwise.
    """
    env = _env(environ)
    if env.get(ALLOW_PLUGIN_FILES_ENV, "").strip().lower() in ("1", "true", "yes"):
        return True, ""
    address = server_address() if address is ... else address
    binding = env.get(BINDING_ENV, "").strip().lower()
    if binding and binding != "loopback":
        host = env.get(HOST_ENV) or address or "a non-loopback address"
        return False, f"the dashboard is served on {host}, not on loopback"
    if address is not None and not is_loopback(address):
        return False, f"the dashboard is served on {address}, not on loopback"
    return True, ""


def plugin_files_off_message(why: str) -> str:
    """The one line the Plugins page shows instead of its path input."""
    return f"Loading plugin files is off: {why}, and a plugin file runs any code on the server; {ENABLE_HINT}."


def allowed_paths_from_env(environ: Mapping[str, str] | None = None) -> list[str]:
    return [p for p in _env(environ).get(ALLOW_PATHS_ENV, "").split(os.pathsep) if p.strip()]


def results_dir(environ: Mapping[str, str] | None = None) -> str:
    """The folder the Results page opens first (and where the dashboard's saves go by default)."""
    return os.path.expanduser(_env(environ).get(RESULTS_ENV) or DEFAULT_RESULTS)  # as the CLI reads it


def _resolve(path) -> Path | None:
    try:
        return Path(os.path.expanduser(str(path))).resolve()
    except (OSError, RuntimeError, ValueError):  # a symlink loop, a NUL byte
        return None


def allowed_roots(environ: Mapping[str, str] | None = None) -> list[Path]:
    """The results directory, the working directory and the --allow-path folders, resolved."""
    roots: list[Path] = []
    for candidate in (results_dir(environ), os.getcwd(), *allowed_paths_from_env(environ)):
        resolved = _resolve(candidate)
        if resolved is not None and resolved not in roots:
            roots.append(resolved)
    return roots


def roots_text(roots) -> str:
    return ", ".join(str(r) for r in roots)


def check_path(field: str, value, environ: Mapping[str, str] | None = None) -> Path:
    """``value`` resolved (symlinks and ``..`` followed) if it lies under an allowed root, else a
    one-line SpecError naming the field, the value and the allowed roots."""
    roots = allowed_roots(environ)
    resolved = _resolve(value)
    if resolved is not None and any(resolved == r or resolved.is_relative_to(r) for r in roots):
        return resolved
    raise SpecError(
        field,
        str(value),
        "a path under an allowed root: " + roots_text(roots),
        hint="the dashboard reads nothing else; start it with --allow-path DIR to add one",
    )


# Problem settings that name a file the problem reads (the built-in csv problem's ``path``).
def is_path_setting(name: str) -> bool:
    name = name.lower()
    return name in ("path", "file", "filename") or name.endswith(("_path", "_file", "_dir"))


def check_problem_paths(problem: str, settings: Mapping, registry) -> None:
    """Refuse a problem whose file settings (declared ``str``, named like a path) leave the allowed roots."""
    try:
        declarations = registry.problem(problem).settings
    except Exception:  # an unknown problem: the validator reports it
        return
    for h in declarations:
        if h.kind == "str" and is_path_setting(h.name):
            value = settings.get(h.name, h.default)
            if isinstance(value, str) and value.strip():
                check_path(f"problem.{h.name}", value)


def binding_warning(host: str, allow_plugin_files: bool) -> str | None:
    """The one line ``descentlab dashboard`` prints on stderr when it is reachable from other machines."""
    if is_loopback(host):
        return None
    plugins = (
        "plugin files CAN be loaded (--allow-plugin-files): visitors can run any code on this machine"
        if allow_plugin_files
        else "loading plugin files is off (--allow-plugin-files turns it on)"
    )
    return (
        f"descentlab dashboard: warning: listening on {host}, not loopback: anyone who can reach it can run "
        f"experiments, with no login; {plugins}"
    )


def server_environment(host: str, allow_plugin_files: bool = False, allow_paths=()) -> dict[str, str]:
    """The environment variables serve.py gives the Streamlit process (they override inherited ones)."""
    return {
        BINDING_ENV: "loopback" if is_loopback(host) else "public",
        HOST_ENV: str(host),
        ALLOW_PLUGIN_FILES_ENV: "1" if allow_plugin_files else "0",
        ALLOW_PATHS_ENV: os.pathsep.join(str(p) for p in allow_paths),
    }
