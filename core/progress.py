"""Progress of a long call, shown where the user looks: a bar in a Jupyter cell, or on a terminal's stderr."""

from __future__ import annotations

import sys
import time

__all__ = ["NotebookProgress", "auto_progress", "in_notebook"]


def in_notebook() -> bool:
    """Whether this code runs in a Jupyter kernel (an IPython shell with a kernel attached)."""
    ipython = sys.modules.get("IPython")
    get = getattr(ipython, "get_ipython", None)
    shell = get() if callable(get) else None
    return getattr(shell, "kernel", None) is not None


class NotebookProgress:
    """``progress(done, total)`` drawn as an HTML ``<progress>`` bar in the cell's output, updated in place.

    At most 10 redraws a second; the last one (done == total) always shows, with the elapsed time.
    While it runs, the time left at the pace since the first call is shown too, as tqdm does.
    """

    def __init__(self, label: str = "running"):
        self.label = label
        self.handle = None
        self.started = time.perf_counter()
        self.last = -1.0
        self.first: tuple[int, float] | None = None  # (done, time) at the first call

    def _html(self, done: int, total: int, now: float) -> str:
        fraction = min(done / total, 1.0)
        if self.first is None:
            self.first = (done, now)
        first_done, first_time = self.first
        left = ""
        if total > done > first_done and now > first_time:
            left = f", {(now - first_time) / (done - first_done) * (total - done):.0f} s left"
        return (
            f'<progress value="{done}" max="{total}" style="width:20em"></progress> '
            f"{self.label} {fraction:.0%} &nbsp; {now - self.started:.1f} s{left}"
        )

    def __call__(self, done: int, total: int) -> None:
        if total <= 0:
            return
        now = time.perf_counter()
        if done < total and now - self.last < 0.1:
            return
        self.last = now
        # IPython is already loaded in a kernel (in_notebook checked it): no import, so descentlab
        # neither declares nor needs it anywhere else
        ipython = sys.modules["IPython"]
        display, HTML = ipython.display.display, ipython.display.HTML
        html = HTML(self._html(done, total, now))
        if self.handle is None:
            self.handle = display(html, display_id=True)
        else:
            self.handle.update(html)


def auto_progress(label: str = "running"):
    """A progress callback for where this runs: :class:`NotebookProgress` in Jupyter, else the command
    line's bar on stderr (silent when stderr is not a terminal)."""
    if in_notebook():
        return NotebookProgress(label)
    from .cli import ProgressBar

    return ProgressBar()
