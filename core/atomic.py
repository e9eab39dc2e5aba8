"""Files written atomically: into a temporary file beside the target, then renamed over it."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable

__all__ = ["pid_alive", "write_atomic", "write_text_atomic"]


def write_atomic(path, write: Callable[[Path], None]) -> Path:
    """Call ``write(temporary_path)``, then rename it to ``path``: a reader never sees half a file, and
    a failed write leaves the old file (if any) and no temporary behind. The folder is created."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + path.suffix, dir=path.parent)
    os.close(fd)
    temp = Path(name)
    try:
        write(temp)
        os.replace(temp, path)
    except OSError as error:  # e.g. a full disk: say which file could not be written, not its temporary
        if error.filename in (None, str(temp), temp):
            error.filename = str(path)
        raise
    finally:
        if temp.exists():
            temp.unlink()
    return path


def write_text_atomic(path, text: str) -> Path:
    """:func:`write_atomic` of a UTF-8 text."""
    return write_atomic(path, lambda p: p.write_text(text, encoding="utf-8"))


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
