"""The Honest comparison page draws a saved protocol.json: its leaderboard and profile, nothing re-run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

from descentlab.cli import main  # noqa: E402
from descentlab.protocol import load_protocol  # noqa: E402

APP = Path(__file__).resolve().parents[2] / "dashboard" / "app.py"


def test_page_shows_the_saved_comparison(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text(
        'steps = 10\n[problem]\nname = "quadratic"\nstart_spread = 0.5\n'
        '[[rules]]\nrule = "gd"\n[[rules]]\nrule = "adam"\n'
        "[protocol]\nbudget = 2\ntune_seeds = 2\ntest_seeds = 3\ntarget = 0.5\n"
    )
    assert main(["run", str(path), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    (folder,) = (tmp_path / "out").iterdir()
    data = load_protocol(folder)
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.query_params["folder"] = str(tmp_path / "out")
    at.switch_page("views/9_protocol.py")
    at.run()
    assert not at.exception and not at.error
    assert at.selectbox(key="proto.pick").value == folder.name
    (table,) = [d.value for d in at.dataframe]
    assert list(table["rule"]) == [r["label"] for r in data["problems"][0]["rules"]]
    assert list(table["tuned median"]) == pytest.approx(
        [float(r["tuned"]["median"]) for r in data["problems"][0]["rules"]]
    )
    # the wall time to target is there, and said to be machine-dependent
    times = table["time to target (s, machine-dependent)"]
    clock = data["timing"]["problems"][data["problems"][0]["key"]]
    assert list(times) == pytest.approx([float(clock[r]["time_to_target_s"]) for r in table["rule"]], nan_ok=True)
    assert all(0 < s < 1 for s in table["s per step (machine-dependent)"])
    assert any("machine-dependent" in c.value.replace("\\", "") for c in at.caption)  # markdown-escaped
    specs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    profile = next(s for s in specs if s["layout"]["title"]["text"].startswith("Performance profile"))
    assert [t["y"] for t in profile["data"]] == [data["profile"]["rho"][k] for k in data["profile"]["rho"]]
    # a target was set: the profile by steps to target (AlgoPerf's kind) is drawn too
    fast = next(s for s in specs if "by steps to target" in s["layout"]["title"]["text"].replace("<br>", " "))
    assert [t["y"] for t in fast["data"]] == [data["profile_steps"]["rho"][k] for k in data["profile_steps"]["rho"]]
    from descentlab.dashboard import style as S

    assert all(s["layout"]["template"]["layout"]["colorway"] == S.PALETTE for s in specs)  # the project's look


def test_page_with_no_comparison_says_so(tmp_path):
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.query_params["folder"] = str(tmp_path)
    at.switch_page("views/9_protocol.py")
    at.run()
    assert not at.exception and any("No protocol comparison" in i.value for i in at.info)


def test_page_runs_the_teaching_suite_and_shows_its_leaderboard_and_profile(tmp_path):
    at = AppTest.from_file(str(APP), default_timeout=300)
    at.query_params["folder"] = str(tmp_path)
    at.switch_page("views/9_protocol.py")
    at.run()
    assert any("No protocol comparison" in i.value for i in at.info)
    at.multiselect(key="proto.rules").set_value(["gd", "momentum"])
    at.number_input(key="proto.budget").set_value(1)
    at.number_input(key="proto.tune_seeds").set_value(1)
    at.number_input(key="proto.test_seeds").set_value(2)
    at.checkbox(key="proto.defaults_compete").check()
    at.button(key="proto.run").click()
    at.run()
    assert not at.exception and not at.error
    (folder,) = [p for p in tmp_path.iterdir() if (p / "protocol.json").is_file()]
    data = load_protocol(folder)
    assert len(data["problems"]) == 10 and set(data["profile"]["score"]) == {"gd", "momentum"}
    assert data["protocol"]["budget"] == 1 and data["protocol"]["test_seeds"] == [1, 2]
    assert data["protocol"]["defaults_compete"] is True
    assert at.selectbox(key="proto.pick").value == folder.name  # the comparison just run is shown
    (table,) = [d.value for d in at.dataframe]
    assert len(table) == 10 * 2 and set(table["rule"]) == {"gd", "momentum"}
    specs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    profile = next(s for s in specs if s["layout"]["title"]["text"].startswith("Performance profile"))
    assert [t["y"] for t in profile["data"]] == [data["profile"]["rho"][k] for k in data["profile"]["rho"]]
    assert data["reproduce"] == f"descentlab run {folder / 'protocol.toml'}"


def test_page_says_in_one_line_when_no_rule_is_chosen(tmp_path):
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.query_params["folder"] = str(tmp_path)
    at.switch_page("views/9_protocol.py")
    at.run()
    at.multiselect(key="proto.rules").set_value([])
    at.button(key="proto.run").click()
    at.run()
    assert not at.exception and len(at.error) == 1 and "rules" in at.error[0].value
    assert not any((p / "protocol.json").is_file() for p in tmp_path.iterdir())


def test_page_names_a_broken_rule_with_its_file_and_line(tmp_path):
    plugin = Path(__file__).resolve().parents[1] / "core" / "test_runner_plugin.py"
    path = tmp_path / "broken.toml"
    path.write_text(
        'steps = 10\n[problem]\nname = "quadratic"\nstart_spread = 0.5\n'
        '[[rules]]\nrule = "gd"\n[[rules]]\nrule = "test_explode"\n'
        "[protocol]\nbudget = 1\ntune_seeds = 1\ntest_seeds = 2\n"
    )
    assert main(["run", str(path), "--plugin", str(plugin), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.query_params["folder"] = str(tmp_path / "out")
    at.switch_page("views/9_protocol.py")
    at.run()
    assert not at.exception and not at.error
    (warning,) = [w.value.replace("\\", "") for w in at.warning if "failed on" in w.value]
    assert "test_explode failed on 4 of its 4 test runs" in warning and "test_runner_plugin.py:" in warning
    (table,) = [d.value for d in at.dataframe]
    assert set(table["rule"]) == {"gd", "test_explode"}
