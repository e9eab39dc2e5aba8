"""One colour, one marker and one label per run status, for every chart and table of the dashboard.

The statuses are core's vocabulary (``descentlab.verdicts``). Colours are from the Okabe–Ito
palette, which stays distinguishable with the common forms of colour blindness, and every status
also has its own marker shape, so the two never carry the meaning alone:

=============  =========  ================  =======================================================
status         colour     marker            meaning (``descentlab.verdicts``)
=============  =========  ================  =======================================================
converged      #009E73    circle ●          reached its best and stayed near it
progressing    #0072B2    triangle-up ▲     still falling at the end
stalled        #999999    square ■          no meaningful progress
unstable       #E69F00    diamond ◆         stayed finite but blew up (not stopped)
diverged       #D55E00    x ×               loss left the divergence bound or became NaN/inf
failed         #000000    hexagon ⬢         the rule or problem raised an error
=============  =========  ================  =======================================================

A status this table does not know (e.g. ``"finished"`` in a result folder written before the
verdicts existed) is drawn grey and open (:data:`UNKNOWN_STYLE`), under its own name.
"""

from __future__ import annotations

from typing import Iterable, NamedTuple

from descentlab.verdicts import FLAGGED, STABLE, STATUSES, is_flagged, is_stable

__all__ = [
    "FLAGGED",
    "SEVERITY",
    "STABLE",
    "STATUSES",
    "STATUS_STYLE",
    "StatusStyle",
    "UNKNOWN_STYLE",
    "counts_text",
    "is_flagged",
    "is_stable",
    "status_counts",
    "style_of",
    "worst_status",
]


class StatusStyle(NamedTuple):
    color: str  # hex colour of the marker / text
    symbol: str  # plotly marker symbol
    label: str  # short label for legends and text
    glyph: str  # one character for captions and table cells ("× = diverged")
    help: str  # what the status means, one line


STATUS_STYLE: dict[str, StatusStyle] = {
    "converged": StatusStyle("#009E73", "circle", "converged", "●", "reached its best and stayed near it"),
    "progressing": StatusStyle("#0072B2", "triangle-up", "progressing", "▲", "still falling at the end"),
    "stalled": StatusStyle("#999999", "square", "stalled", "■", "no meaningful progress"),
    "unstable": StatusStyle(
        "#E69F00", "diamond", "unstable", "◆", "stayed finite but blew up (the run was not stopped)"
    ),
    "diverged": StatusStyle(
        "#D55E00", "x", "diverged", "×", "the loss left the divergence bound or became NaN/inf (the run was stopped)"
    ),
    "failed": StatusStyle("#000000", "hexagon", "failed", "⬢", "the rule or the problem raised an error"),
}
assert tuple(STATUS_STYLE) == STATUSES, "one style per status of descentlab.verdicts, in its order"

UNKNOWN_STYLE = StatusStyle("#999999", "circle-open", "?", "○", "a status outside descentlab.verdicts")

# Worst first, for the marker of an α (or any group of seeds): a flagged seed decides it, then an
# error, then a seed that did not move, then one still falling. Failed ranks below the flagged
# statuses because an error says nothing about whether α was stable, and "flagged" must show.
SEVERITY = ("diverged", "unstable", "failed", "stalled", "progressing", "converged")


def style_of(status) -> StatusStyle:
    """The style of ``status`` (an unknown status: grey, open, under its own name)."""
    style = STATUS_STYLE.get(status)
    return style if style is not None else UNKNOWN_STYLE._replace(label=str(status))


def _rank(status) -> int:
    # unknown statuses rank between failed and stalled: not stable, not flagged
    return SEVERITY.index(status) if status in SEVERITY else SEVERITY.index("failed") + 0.5


def worst_status(statuses: Iterable) -> str | None:
    """The worst of ``statuses`` by :data:`SEVERITY` (None for none)."""
    statuses = list(statuses)
    return min(statuses, key=_rank) if statuses else None


def status_counts(statuses: Iterable) -> dict[str, int]:
    """Runs per status, in the vocabulary's order, statuses without runs left out (unknown ones last)."""
    statuses = [str(s) for s in statuses]
    known = {s: statuses.count(s) for s in STATUSES if s in statuses}
    unknown = {s: statuses.count(s) for s in dict.fromkeys(statuses) if s not in STATUS_STYLE}
    return {**known, **unknown}


def counts_text(statuses: Iterable, *, glyphs: bool = False) -> str:
    """``"3 converged, 1 unstable, 2 diverged"`` (``glyphs``: ``"● 3 converged · ◆ 1 unstable …"``)."""
    counts = status_counts(statuses)
    if glyphs:
        return " · ".join(f"{style_of(s).glyph} {n} {style_of(s).label}" for s, n in counts.items())
    return ", ".join(f"{n} {style_of(s).label}" for s, n in counts.items())
