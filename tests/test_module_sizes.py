"""Modules stay a size one reads: over 600 lines only with a reason stated in docs/dev/design.md."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIMIT = 600
DESIGN = ROOT / "docs" / "dev" / "design.md"


def _listed() -> set[str]:
    text = DESIGN.read_text(encoding="utf-8")
    start = text.index("<!-- module-sizes")
    block = text[start:].split("\n\n", 1)[0]  # the comment line and the list after it, up to a blank line
    return set(re.findall(r"^- `([^`]+\.py)`:", block, flags=re.M))


def _sizes() -> dict[str, int]:
    return {
        str(path.relative_to(ROOT)): len(path.read_text(encoding="utf-8").splitlines())
        for folder in ("core", "plugins", "dashboard")
        for path in (ROOT / folder).rglob("*.py")
    }


def test_every_long_module_states_why_it_is_one_file():
    listed, sizes = _listed(), _sizes()
    assert listed, "the module-sizes list in docs/dev/design.md was not found"
    unlisted = sorted(f"{name} ({n} lines)" for name, n in sizes.items() if n > LIMIT and name not in listed)
    assert not unlisted, f"over {LIMIT} lines with no reason in {DESIGN.name}: " + ", ".join(unlisted)


def test_the_list_names_only_modules_that_are_long():
    listed, sizes = _listed(), _sizes()
    stale = sorted(name for name in listed if sizes.get(name, 0) <= LIMIT)
    assert not stale, f"listed in {DESIGN.name} but not over {LIMIT} lines (or gone): " + ", ".join(stale)
