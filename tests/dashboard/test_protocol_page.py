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
    from descentlab.dashboard import style as S

    assert all(s["layout"]["template"]["layout"]["colorway"] == S.PALETTE for s in specs)  # the project's look


def test_page_with_no_comparison_says_so(tmp_path):
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.query_params["folder"] = str(tmp_path)
    at.switch_page("views/9_protocol.py")
    at.run()
    assert not at.exception and any("No protocol comparison" in i.value for i in at.info)
