"""What the dashboard's AppTest files share: opening a page, reading its charts and its text."""

from __future__ import annotations

import json
import re
from pathlib import Path

from streamlit.testing.v1 import AppTest

from plotly_values import plain_json

APP = Path(__file__).resolve().parents[2] / "dashboard" / "app.py"


def open_app(page: str | None = "1_compare.py", **query) -> AppTest:
    """The app on ``page`` (None: the default page, How it works) with ``query`` as URL parameters
    (a string as it is, anything else as JSON, as the dashboard's shared links write them)."""
    at = AppTest.from_file(str(APP), default_timeout=120)
    for key, value in query.items():
        at.query_params[key] = value if isinstance(value, str) else json.dumps(value)
    if page:
        at.switch_page(f"views/{page}")
    return at.run()


def charts(at) -> list[dict]:
    """Every plotly chart of the page as plain JSON (numbers decoded from plotly's binary arrays)."""
    return [plain_json(json.loads(c.proto.spec)) for c in at.get("plotly_chart")]


def chart_titled(at, start: str) -> dict:
    """The first chart whose title starts with ``start``."""
    for spec in charts(at):
        title = spec["layout"].get("title", {})
        text = title.get("text", "") if isinstance(title, dict) else str(title)
        if text.startswith(start):
            return spec
    raise AssertionError(f"no chart titled {start!r} among {[c['layout'].get('title') for c in charts(at)]}")


def shown(text: str) -> str:
    """What a reader sees of a Markdown body: user text is backslash-escaped (W.markdown_text, issue #11)."""
    return re.sub(r"\\(.)", r"\1", text)


def no_trouble(at) -> None:
    """The page raised nothing and showed no error."""
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
