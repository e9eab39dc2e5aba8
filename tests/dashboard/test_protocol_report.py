"""The report's comparison section reads protocol.json: its leaderboard, verdicts, profile plot and command."""

from __future__ import annotations

import math

import pytest

pytest.importorskip("plotly")

from descentlab.cli import main  # noqa: E402
from descentlab.dashboard.report import build_report, build_section, load_record, md_escape, render_markdown  # noqa: E402
from descentlab.protocol import load_protocol  # noqa: E402


def test_report_of_a_protocol_folder_has_the_comparison(tmp_path, capsys):
    path = tmp_path / "c.toml"
    path.write_text(
        'steps = 15\n[problem]\nname = "quadratic"\nstart_spread = 0.5\n'
        '[[rules]]\nrule = "gd"\n[[rules]]\nrule = "momentum"\n'
        "[protocol]\nbudget = 2\ntune_seeds = 2\ntest_seeds = 3\n"
    )
    assert main(["run", str(path), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    (folder,) = (tmp_path / "out").iterdir()
    data = load_protocol(folder)
    # Markdown without PNGs (kaleido takes seconds); the HTML below draws the figures
    text = render_markdown([build_section(load_record(folder), with_figures=False)], {})
    assert "### Comparison (protocol)" in text and md_escape(data["statement"]) in text
    for row in data["problems"][0]["rules"]:
        median = float(row["tuned"]["median"])
        shown = "∞" if median == math.inf else f"{median:.3g}"
        assert f"| {row['label']} |" in text and shown in text
    for pair in data["problems"][0]["pairwise"]:
        assert pair["verdict"] in ("better", "worse", "cannot tell apart")
        assert md_escape(pair["sentence"]) in text
    # the tuned-vs-one-shot verdict of every rule, as a sentence and in its leaderboard cell
    for row in data["problems"][0]["rules"]:
        assert md_escape(f"tuning: {row['tuning']['sentence']}") in text
        cell = {"better": "yes", "worse": "no, worse"}.get(row["tuning"]["verdict"], "cannot tell apart at 3 seeds")
        assert f"{cell} (p = {float(row['tuning']['p_value']):.2g})" in text
    assert "| test-split loss |" not in text and "| training loss |" in text  # a landscape: training loss reported
    assert f"descentlab run {folder / 'protocol.toml'}" in text and f"descentlab run {path}" in text
    # the wall time is a column of its own, said to be machine-dependent, with what it measures
    assert "time to target (s, machine-dependent)" in text and md_escape(data["timing"]["note"]) in text
    (html,) = build_report([load_record(folder)], "html", tmp_path / "r.html")
    page = html.read_text()
    assert "Comparison (protocol)" in page and "Performance profile" in page


def test_a_protocol_json_from_before_the_paired_test_still_loads(tmp_path):
    from descentlab.dashboard.protocol_report import load_comparison
    from descentlab.protocol import save_protocol

    # the fields format 1 wrote (no seeds, tuning verdict, results folder, selected_on or reported)
    numbers = {"scores": [1.0, 2.0], "median": 1.5, "ci": [1.0, 2.0]}
    row = {"label": "gd", "one_shot": numbers, "tuned": numbers, "chosen": 1, "budget": 2, "best_so_far": [1.5]}
    old = {
        "format": "descentlab protocol 1",
        "statement": "s",
        "selection": "sel",
        "intervals": "i",
        "verdicts": "v",
        "problems": [{"key": "1. quadratic", "rules": [row], "pairwise": []}],
        "profile": {"measure": "m", "score": {"gd": 1.0}, "taus": [1.0, 2.0], "rho": {"gd": [1.0, 1.0]}},
    }
    save_protocol(old, tmp_path)
    comparison = load_comparison(tmp_path)
    (shown,) = comparison.leaderboard.to_dict("records")
    assert shown["tuning helped?"] == "–" and shown["test runs"] == "." and shown["reported loss"] == "training loss"
    assert comparison.verdicts == [] and "training loss" in comparison.reported
