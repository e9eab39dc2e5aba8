"""The Results page opens a Dask sweep's partitioned folder as it opens a single-file one (#14)."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from descentlab.cluster import run_sweep
from descentlab.experiment import Experiment
from descentlab.records import load_results, save_results
from descentlab.runner import run_experiment
from plotly_values import plain_json

APP = Path(__file__).resolve().parents[2] / "dashboard" / "app.py"
SPEC = {
    "name": "parts",
    "steps": 15,
    "seeds": [0, 1],
    "eval_every": 5,
    "problem": {"name": "moons", "samples": 40, "hidden": [4]},
    "rules": [{"rule": "gd", "learning_rate": [0.1, 0.5]}, {"rule": "adam", "learning_rate": 0.01}],
}


def loss_traces(at) -> dict[str, list[float]]:
    for chart in at.get("plotly_chart"):
        spec = plain_json(json.loads(chart.proto.spec))
        title = spec["layout"].get("title", {})
        if str(title.get("text", "") if isinstance(title, dict) else title).startswith("Training loss"):
            return {t["name"]: t["y"] for t in spec["data"] if t.get("meta") == "train"}
    raise AssertionError("no training-loss chart")


def open_results(folder: Path) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.query_params["folder"] = str(folder)
    at.switch_page("views/5_results.py")
    return at.run()


def test_a_partitioned_folder_is_listed_and_drawn_like_the_same_runs_saved_in_one_file(tmp_path):
    experiment = Experiment.from_dict(SPEC)
    with ThreadPoolExecutor(2) as pool:  # any Executor runs the Dask task code
        run_sweep(experiment, tmp_path / "sweeps" / "parts-sweep", client=pool)
    assert (tmp_path / "sweeps" / "parts-sweep" / "runs").is_dir()
    single = save_results(run_experiment(experiment, workers=1), tmp_path / "single")

    parts_page = open_results(tmp_path / "sweeps")
    assert not parts_page.exception and not parts_page.error, [e.value for e in parts_page.error]
    assert parts_page.selectbox(key="res.pick").value == "parts-sweep"
    single_page = open_results(single)
    assert not single_page.exception
    drawn, expected = loss_traces(parts_page), loss_traces(single_page)
    assert drawn.keys() == expected.keys() and len(drawn) == 3
    for name in expected:
        assert drawn[name] == pytest.approx(expected[name], rel=0, abs=0)
    assert len(load_results(tmp_path / "sweeps" / "parts-sweep").runs) == experiment.n_runs
