"""One look: every chart of every page in the project's plotly template, math as unicode, readable legends."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from descentlab.dashboard import figures as F
from descentlab.dashboard import style as S

APP = Path(__file__).resolve().parents[2] / "dashboard" / "app.py"

# What raw TeX in a title looks like: θ_{t+1}, ρ^{2t}, λ_max, α_t, J_t, ∂θ_layer.
RAW_MATH = re.compile(r"[_^]\{|\^\d|[α-ωΑ-Ω∂‖]_|_(?:t|max|min|layer|k)\b")


def _open(page: str | None) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=180)
    if page:
        at.switch_page(f"views/{page}")
    return at.run()


def _texts(spec: dict) -> list[str]:
    """Every title a reader sees on a chart: the chart's, its axes', its subplot titles (annotations)."""
    layout = spec["layout"]
    out = []
    for key, value in layout.items():
        if key == "title" or re.fullmatch(r"[xy]axis\d*", key):
            title = value if key == "title" else value.get("title", {})
            out.append(title.get("text", "") if isinstance(title, dict) else str(title))
    out += [a.get("text", "") for a in layout.get("annotations", [])]
    return out


PAGES = [
    None,
    "1_compare.py",
    "2_sweep.py",
    "3_landscape.py",
    "4_decision_boundary.py",
    "7_stability.py",
    "8_lr_find.py",
]


@pytest.mark.parametrize("page", PAGES)
def test_every_chart_is_drawn_in_the_project_look_with_math_as_unicode(page):
    at = _open(page)
    assert not at.exception
    elements = at.get("plotly_chart")
    assert elements, f"{page}: no chart to check"
    for element in elements:
        spec = json.loads(element.proto.spec)
        assert element.proto.theme == "", f"{page}: a chart in Streamlit's theme, not the project's"
        template = spec["layout"]["template"]["layout"]
        assert template["colorway"] == S.PALETTE
        assert template["xaxis"]["exponentformat"] == "power" and template["yaxis"]["minorloglabels"] == "none"
        for axis, value in spec["layout"].items():  # no chart overrides the uniform tick format
            if re.fullmatch(r"[xy]axis\d*", axis):
                assert "tickformat" not in value and value.get("exponentformat", "power") == "power", (page, axis)
        for text in _texts(spec):
            assert not RAW_MATH.search(text), f"{page}: raw math in {text!r}"


def test_the_raw_math_pattern_catches_what_it_is_for():
    # the check above is only as good as this pattern: it must see the strings the issue quotes
    for raw in ["Step size ‖θ_{t+1} − θ_t‖", "ρ^{2t}", "c/λ_max", "α_t (log)", "‖∂J/∂θ_layer‖", "ρ^2"]:
        assert RAW_MATH.search(raw), raw
    for fine in ["Step size ‖θₜ₊₁ − θₜ‖", "ρ²ᵗ", "c/λₘₐₓ", "learning_rate", "weight_decay", "final loss (log)"]:
        assert not RAW_MATH.search(fine), fine


def _sweep(make_results, alphas: int, entries: int = 3):
    grid = [0.01 * (k + 1) for k in range(alphas)]
    return make_results(
        [{"rule": r, "label": r.upper(), "learning_rate": grid} for r in ["gd", "momentum", "adam"][:entries]],
        seeds=(0, 1),
    )


def test_a_big_sweep_lists_rule_entries_in_its_legend_and_keeps_every_curve(make_results):
    results = _sweep(make_results, alphas=9)  # 27 configurations, 3 entries
    info = F.loss_curves_info(results)
    train = [c for c in info.curves if c.role == "train"]
    assert len(train) == 27 and len(info.curves) > F.LEGEND_MAX
    fig = F.draw_curves(info)
    listed = [t for t in fig.data if t.showlegend is not False]
    roles = {c.role for c in info.curves}  # train, and test (dotted) where recorded
    assert len(listed) == 3 * len(roles)
    expected = {"GD", "MOMENTUM", "ADAM"}
    if "test" in roles:
        expected |= {name + " (test)" for name in expected}
    assert {t.name.split(":")[0] for t in listed} == expected
    assert all(t.name.endswith("9 configurations (dark → light)") for t in listed)
    # every configuration is still drawn, named on hover, and toggled with its entry's legend item
    drawn = [t for t in fig.data if t.meta == "train"]
    assert sorted(t.name for t in drawn) == sorted(c.name for c in train)
    for t in drawn:
        item = next(i for i in listed if i.legendgroup == t.legendgroup)
        assert item.name.startswith(t.name.split(" (")[0])


def test_a_small_comparison_lists_each_configuration(make_results):
    results = _sweep(make_results, alphas=2)  # 6 configurations: each its own legend item
    info = F.loss_curves_info(results, test=False)
    fig = F.draw_curves(info)
    listed = sorted(t.name for t in fig.data if t.showlegend is not False and t.meta != "status_legend")
    assert listed == sorted(c.name for c in info.curves)


def test_divergence_marks_are_not_clipped_at_the_edges(make_results):
    results = make_results([{"rule": "gd", "learning_rate": [0.1, 3.0], "diverge_at": lambda a: 5 if a > 1 else None}])
    fig = F.draw_curves(F.loss_curves_info(results))
    marks = [t for t in fig.data if t.meta == "diverged"]
    assert marks and all(t.cliponaxis is False for t in marks)
