"""The dashboard's run-settings widgets come from the experiment's declarations (issue #18)."""

from __future__ import annotations

import json
from pathlib import Path

from streamlit.testing.v1 import AppTest

from descentlab.experiment import Experiment, setting

APP = Path(__file__).resolve().parents[2] / "dashboard" / "app.py"


def test_a_link_without_run_settings_opens_with_the_experiment_files_defaults():
    # what an experiment file means when it leaves these keys out, read from a parsed experiment
    bare = {"problem": {"name": "spirals", "samples": 30, "hidden": [4]}, "rules": [{"rule": "gd"}]}
    parsed = Experiment.from_dict(bare)
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.query_params["compare"] = json.dumps(bare)
    at.switch_page("views/1_compare.py")
    at.run()
    assert not at.exception
    value = {n.key.rsplit(".", 1)[-1]: n.value for n in at.number_input if n.key and n.key.startswith("cmp.")}
    assert value["steps"] == parsed.steps
    assert value["seeds"] == len(parsed.seeds)
    assert value["batch_size"] == parsed.batch_size
    assert value["eval_every"] == parsed.eval_every
    helps = {n.key.rsplit(".", 1)[-1]: n.help for n in at.number_input if n.key and n.key.startswith("cmp.")}
    assert setting("eval_every").help in helps["eval_every"]
