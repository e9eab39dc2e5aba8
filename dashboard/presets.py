"""The settings each dashboard page opens on, read from dashboard/presets/*.toml.

They are data, not code: the pages name no built-in rule, and a teacher can change what a page
opens on by editing one TOML file. ``rules_from = "<preset>"`` takes the rules of another preset.
"""

from __future__ import annotations

import copy
import tomllib
from functools import lru_cache
from pathlib import Path

FOLDER = Path(__file__).resolve().parent / "presets"


@lru_cache(maxsize=None)
def _read(name: str) -> dict:
    path = FOLDER / f"{name}.toml"
    with open(path, "rb") as f:
        data = tomllib.load(f)
    source = data.pop("rules_from", None)
    if source is not None:
        data["rules"] = _read(source)["rules"]
    return data


def preset(name: str) -> dict:
    """A fresh copy of preset ``name`` (pages may change what they get)."""
    return copy.deepcopy(_read(name))
