"""Files written atomically: into a temporary file beside the target, then renamed over it."""

from __future__ import annotations

import os
import re
import socket
import tempfile
import threading
from pathlib import Path
from typing import Callable

__all__ = [
    "current_umask",
    "give_user_mode",
    "host_name",
    "pid_alive",
    "writer_gone",
    "write_atomic",
    "write_text_atomic",
    "create_text_atomic",
]

_PROC_STATUS = "/proc/self/status"
_UMASK_LOCK = threading.Lock()


def current_umask() -> int:
    """The process's umask, read per call (a program may change it after importing descentlab).

    ``os.umask`` is the only portable way to read it and it sets it too: between setting and
    restoring, a file that another thread creates gets the temporary mask. So Linux's
    ``/proc/self/status`` (which only reads) comes first; the fallback sets the most restrictive
    mask, 0o077, for that moment (never 0: a file created meanwhile would be world-writable), and
    holds a lock, which orders this function's callers but cannot stop other code in other threads.
    """
    try:
        with open(_PROC_STATUS, encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _UMASK_LOCK:
        mask = os.umask(0o077)
        os.umask(mask)
    return mask


def give_user_mode(path, *, folder: bool) -> None:
    """Set ``path`` to the mode a plain ``open``/``mkdir`` would give it under the user's umask:
    ``tempfile.mkstemp``/``mkdtemp`` make 0600/0700 whatever the umask says, which a results
    folder shared with a group (umask 002) or readable by all (022) should not be."""
    os.chmod(path, (0o777 if folder else 0o666) & ~current_umask())


def host_name() -> str:
    """This machine's name as it may appear in a file name (temporaries say which host wrote them)."""
    return re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:63] or "host"


def writer_gone(match) -> bool:
    """Whether the temporary a name ``match`` (groups ``host`` and ``pid``) describes was left by a
    process of this machine that is gone: only then may it be removed (never a live writer's, nor
    another machine's in a shared folder)."""
    pid = int(match["pid"])
    return match["host"] == host_name() and pid != os.getpid() and not pid_alive(pid)


def _stale_temporaries(path: Path) -> list[Path]:
    """Temporaries of ``path`` left by a writer of this machine that is gone (killed mid-write)."""
    pattern = re.compile(
        re.escape(f".{path.name}.") + r"(?P<host>[A-Za-z0-9-]+)\.(?P<pid>[0-9]{1,10})\."
        r"[a-z0-9_]{8}" + re.escape(".tmp" + path.suffix)
    )
    try:
        names = os.listdir(path.parent)
    except OSError:
        return []
    return [path.parent / name for name in names if (match := pattern.fullmatch(name)) and writer_gone(match)]


def write_atomic(path, write: Callable[[Path], None]) -> Path:
    """Call ``write(temporary_path)``, then rename it to ``path``: a reader never sees half a file, and
    a failed write leaves the old file (if any) and no temporary behind. The folder is created.

    The temporary is named ``.<name>.<host>.<pid>.<random>.tmp<suffix>``, so one that a killed writer
    left behind is recognised and removed by the next write of the same file; a live writer's, or
    another machine's (a shared folder), is left alone."""
    path = Path(path)

    def write_and_rename(temp: Path) -> None:
        write(temp)
        os.replace(temp, path)

    return _through_temporary(path, write_and_rename)


def _through_temporary(path: Path, finish: Callable[[Path], None]) -> Path:
    """Make the temporary beside ``path`` (removing those of gone writers), call ``finish(temporary)``
    to write it and put it in place, and remove it whatever happens; an OSError is reported against
    ``path``, not its temporary."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in _stale_temporaries(path):
        try:
            stale.unlink()
        except OSError:
            pass
    fd, name = tempfile.mkstemp(
        prefix=f".{path.name}.{host_name()}.{os.getpid()}.", suffix=".tmp" + path.suffix, dir=path.parent
    )
    os.close(fd)
    temp = Path(name)
    try:
        give_user_mode(temp, folder=False)  # the writer may replace the file; then it has that mode anyway
        finish(temp)
    except OSError as error:  # e.g. a full disk: say which file could not be written, not its temporary
        if not isinstance(error, FileExistsError) and error.filename in (None, str(temp), temp):
            error.filename = str(path)
        raise
    finally:
        if temp.exists():
            temp.unlink()
    return path


def write_text_atomic(path, text: str) -> Path:
    """:func:`write_atomic` of a UTF-8 text."""

    def write(p: Path) -> None:
        p.write_text(text, encoding="utf-8")

    return write_atomic(path, write)


def create_text_atomic(path, text: str) -> Path:
    """Write ``text`` to ``path``, which must not exist: FileExistsError if it does (or appears
    meanwhile). A temporary is written in full and then hard-linked to ``path`` (``link`` never
    replaces a file), so a killed writer leaves no half-written file that would then block a retry."""
    path = Path(path)

    def link(temp: Path) -> None:
        temp.write_text(text, encoding="utf-8")
        try:
            os.link(temp, path)
        except FileExistsError:
            raise
        except OSError:  # a file system without hard links (FAT, some network shares): create exclusively
            with open(path, "x", encoding="utf-8") as handle:
                handle.write(text)

    return _through_temporary(path, link)


def pid_alive(pid: int) -> bool:
    """Is process ``pid`` (on this machine) alive? True when unsure (no permission, odd value): only a
    process certainly gone may have its leftovers removed."""
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (OSError, OverflowError, ValueError):
        return True
    return True
