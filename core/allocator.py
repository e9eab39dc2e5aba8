"""Keeps freed memory in the process so the engine's large temporaries are reused, not page-faulted in again."""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

__all__ = ["MMAP_THRESHOLD_BYTES", "TRIM_THRESHOLD_BYTES", "keep_freed_memory"]

# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 64 << 20
TRIM_THRESHOLD_BYTES = 128 << 20

_tuned: bool | None = None


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds once per process; return whether it took effect.

    A stacked batch makes temporaries of a few MiB per operation. By default glibc serves each
    from a fresh mmap and unmaps it on free, so every operation page-faults its output in again:
    measured with ``benchmarks/engine.py``, 32 stacked float64 spirals runs cost 366 µs per
    run-step that way and 119 µs with these thresholds (64 float32 runs: 168 -> 49 µs). Elsewhere
    than glibc this does nothing.
    """
    global _tuned
    if _tuned is None:
        _tuned = False
        if sys.platform.startswith("linux"):
            try:
                libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
                _tuned = bool(libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)) and bool(
                    libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)
                )
            except (OSError, AttributeError):
                _tuned = False
    return _tuned
