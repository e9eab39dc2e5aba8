"""The dashboard's entry point: page config and navigation over dashboard/views/*.py (file-name order).

The folder is not called ``pages/``: next to the main script that name puts Streamlit in its legacy
multipage mode, where a deep link on a fresh server runs the page file without this navigation."""

from __future__ import annotations

import ast
import functools
import re
from pathlib import Path

import streamlit as st

PAGES_DIR = Path(__file__).resolve().parent / "views"


def page_title(path: Path) -> tuple[str, str | None]:
    """A page's title and icon from its module-level TITLE / ICON strings, else from its file name.

    Read with ``ast`` rather than imported: importing a page would run its Streamlit code. Parsed
    again only when the file changes (every rerun of every page asks; ten parses took ~20 ms of a
    ~250 ms Compare rerun, docs/dev/speed.md).
    """
    try:
        stamp = path.stat().st_mtime_ns
    except OSError:
        stamp = None
    return _page_title(path, stamp)


@functools.lru_cache(maxsize=256)
def _page_title(path: Path, stamp: int | None) -> tuple[str, str | None]:
    title, icon = None, None
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:
            if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                if isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
                    if node.targets[0].id == "TITLE":
                        title = node.value.value
                    elif node.targets[0].id == "ICON":
                        icon = node.value.value
    except (OSError, SyntaxError, ValueError):
        pass
    if not title:
        title = re.sub(r"^\d+[_\-\s]*", "", path.stem).replace("_", " ").strip().capitalize() or path.stem
    return title, icon


def discover_pages(folder: Path = PAGES_DIR) -> list[Path]:
    """Every ``*.py`` page in file-name order (so other engineers' pages appear by themselves)."""
    return sorted(p for p in folder.glob("*.py") if not p.name.startswith("_"))


def url_path(path: Path) -> str:
    return re.sub(r"[^a-z0-9_]+", "_", re.sub(r"^\d+[_\-\s]*", "", path.stem).lower()).strip("_") or path.stem


def main() -> None:
    st.set_page_config(page_title="descentlab", page_icon=":material/show_chart:", layout="wide")
    pages = []
    for i, path in enumerate(discover_pages()):
        title, icon = page_title(path)
        pages.append(st.Page(str(path), title=title, icon=icon, url_path=url_path(path), default=(i == 0)))
    st.navigation(pages).run()


if __name__ == "__main__":  # streamlit runs this file as __main__; importing it only defines the helpers
    main()
