"""The Compare page's gradient-transform editor: widgets from the declarations, the order picked is the
spec's order, the runs table records them, a bad value is one line naming the field."""

from __future__ import annotations

import re

import json
from pathlib import Path

from streamlit.testing.v1 import AppTest

from descentlab.registry import load_registry

APP = Path(__file__).resolve().parents[2] / "dashboard" / "app.py"
SMALL = {
    "steps": 10,
    "seeds": 1,
    "batch_size": 0,
    "eval_every": 5,
    "problem": {"name": "spirals", "samples": 40, "hidden": [4]},
}


def open_compare(spec: dict) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.query_params["compare"] = json.dumps(spec)
    at.switch_page("views/1_compare.py")
    return at.run()


def url_spec(at) -> dict:
    return json.loads(
        at.query_params["compare"][0] if isinstance(at.query_params["compare"], list) else at.query_params["compare"]
    )


def test_transform_widgets_come_from_the_declarations_and_reach_the_runs():
    registry = load_registry(entry_points=False, use_env=False)
    spec = {
        **SMALL,
        "rules": [
            {
                "rule": "gd",
                "learning_rate": 0.5,
                "transforms": [{"name": "lookahead", "sync_every": 3}, {"name": "clip_global_norm", "max_norm": 0.5}],
            },
            {"rule": "adam", "learning_rate": 0.01},
        ],
    }
    at = open_compare(spec)
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    selects = [m for m in at.multiselect if m.label == "gradient transforms"]
    assert len(selects) == 2
    assert selects[0].value == ["lookahead", "clip_global_norm"] and selects[1].value == []
    assert set(selects[0].options) == set(registry.transforms)
    inputs = {w.key: w.value for w in at.number_input}
    assert inputs["cmp.rules.0.transforms.lookahead.sync_every"] == 3
    assert inputs["cmp.rules.0.transforms.clip_global_norm.max_norm"] == 0.5
    shown = url_spec(at)["rules"]
    assert shown[0]["transforms"] == [
        {"name": "lookahead", "sync_every": 3},
        {"name": "clip_global_norm", "max_norm": 0.5},
    ]
    assert "transforms" not in shown[1]
    runs = next(f.value for f in at.dataframe if "run_id" in f.value.columns and "transforms" in f.value.columns)
    assert list(runs["transforms"]) == ["lookahead(sync_every=3,alpha=0.5)>clip_global_norm(max_norm=0.5)", ""]


def test_a_bad_transform_value_is_one_line_naming_the_field():
    spec = {**SMALL, "rules": [{"rule": "gd", "learning_rate": 0.5, "transforms": ["clip_by_value"]}]}
    at = open_compare(spec)
    at.number_input(key="cmp.rules.0.transforms.clip_by_value.clip_value").set_value(-1.0).run()
    at.button(key="cmp.run").click().run()
    messages = [e.value for e in at.error]
    # user text reaches Markdown escaped (W.markdown_text): compare what a reader sees
    messages = [re.sub(r"\\(.)", r"\1", m) for m in messages]
    assert any("rules[0].transforms[0].clip_value" in m and "\n" not in m for m in messages), messages


def test_the_plugins_page_lists_every_transform():
    registry = load_registry(entry_points=False, use_env=False)
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.switch_page("views/6_plugins.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    titles = [e.label for e in at.expander]
    for name in registry.transforms:
        assert any(t.startswith(f"**{name}** — ") for t in titles), titles
