"""AppTest of the Stability and LR-finder pages: the numbers shown equal theory computed here."""

import math
from pathlib import Path

import numpy as np
import pytest
from plotly_values import plain_json
from streamlit.testing.v1 import AppTest

from descentlab.lrfind import lr_find
from descentlab.registry import get_registry

PAGES = Path(__file__).resolve().parents[2] / "dashboard" / "views"


def figure_specs(at):
    import json

    return [plain_json(json.loads(chart.proto.spec)) for chart in at.get("plotly_chart")]


def values(v):
    return np.asarray(v, dtype=float)  # typed arrays are decoded by plain_json (figure_specs)


def table_row(frame, rule):
    return frame[frame["rule"] == rule].iloc[0]


def test_stability_page_quadratic_numbers_match_theory():
    at = AppTest.from_file(str(PAGES / "7_stability.py"), default_timeout=60).run()
    assert not at.exception
    # default bowl: λ_max = 1, κ = 10; the page measures them by Lanczos
    problem = get_registry().problem("quadratic")
    instance = problem.build({h.name: h.default for h in problem.settings})
    eig = np.linalg.eigvalsh(np.array(instance.describe()["hessian"]))
    lam_min, lam_max = eig[0], eig[-1]
    shown = [float(m.value) for m in at.metric]
    np.testing.assert_allclose(shown, [lam_max, lam_min, lam_max / lam_min], rtol=1e-5)

    thresholds = at.dataframe[0].value
    mu = 0.9
    expected = {
        "gd": 2 / lam_max,
        "momentum": (2 + 2 * mu) / lam_max,
        "nesterov": (2 + 2 * mu) / (1 + 2 * mu) / lam_max,
        "classical_momentum": (2 + 2 * mu) / lam_max,
    }
    for rule, alpha in expected.items():
        assert table_row(thresholds, rule)["critical α = c/λₘₐₓ"] == pytest.approx(alpha, rel=1e-9)
    assert math.isnan(table_row(thresholds, "adam")["critical α = c/λₘₐₓ"])

    rates = at.dataframe[1].value
    kappa = lam_max / lam_min
    gd = table_row(rates, "gd")
    assert gd["optimal α"] == pytest.approx(2 / (lam_min + lam_max))
    assert gd["theory rate"] == pytest.approx((kappa - 1) / (kappa + 1))
    assert gd["measured rate"] == pytest.approx((kappa - 1) / (kappa + 1), rel=1e-6)
    hb = table_row(rates, "momentum")
    rho = (math.sqrt(kappa) - 1) / (math.sqrt(kappa) + 1)
    assert hb["optimal α"] == pytest.approx(4 / (math.sqrt(lam_max) + math.sqrt(lam_min)) ** 2)
    assert hb["optimal μ"] == pytest.approx(rho**2)
    assert hb["measured rate"] == pytest.approx(rho, rel=0.02)  # asymptotic (t·ρᵗ): 200 steps

    # the sweep draws the predicted critical α as vertical lines
    sweep = figure_specs(at)[0]
    lines = sorted(s["x0"] for s in sweep["layout"].get("shapes", []))
    np.testing.assert_allclose(lines, sorted([expected["gd"], expected["momentum"], expected["nesterov"]]), rtol=1e-9)


def test_stability_page_linear_regression_lambda_is_second_moment_eigenvalue():
    at = AppTest.from_file(str(PAGES / "7_stability.py"), default_timeout=60).run()
    at.selectbox(key="stability_problem").select("linear_regression").run()
    assert not at.exception
    problem = get_registry().problem("linear_regression")
    instance = problem.build({h.name: h.default for h in problem.settings})
    x = instance.dataset.x_train
    augmented = np.hstack([x, np.ones((len(x), 1))])
    eig = np.linalg.eigvalsh(augmented.T @ augmented / len(x))
    np.testing.assert_allclose(float(at.metric[0].value), eig[-1], rtol=1e-5)
    assert table_row(at.dataframe[0].value, "gd")["critical α = c/λₘₐₓ"] == pytest.approx(2 / eig[-1], rel=1e-5)


def test_stability_page_sharpness_chart_has_the_two_over_alpha_line():
    at = AppTest.from_file(str(PAGES / "7_stability.py"), default_timeout=120).run()
    at.number_input(key="stability_eos_steps").set_value(60)
    at.button(key="stability_eos_run").click().run()
    assert not at.exception
    spec = figure_specs(at)[-1]
    limit = [t for t in spec["data"] if t.get("meta") == "limit"][0]
    np.testing.assert_allclose(values(limit["y"]), 2 / 0.1)
    sharp = [t for t in spec["data"] if t.get("meta") == "sharpness"][0]
    assert list(values(sharp["x"])) == list(range(0, 61, 10))
    assert "2/α" in limit["name"]


def test_lr_find_page_suggestion_equals_core_and_lies_below_critical_alpha():
    at = AppTest.from_file(str(PAGES / "8_lr_find.py"), default_timeout=60).run()
    assert not at.exception
    table = at.dataframe[0].value
    gd = table_row(table, "gd")
    assert gd["critical α (theory)"] == pytest.approx(2 / 10.0)
    problem = get_registry().problem("quadratic")
    instance = problem.build({**{h.name: h.default for h in problem.settings}, "lambda_max": 10.0, "start_spread": 0.5})
    direct = lr_find(instance, "gd", seeds=[0, 1, 2])
    assert gd["suggested α"] == pytest.approx(direct.suggested_lr)
    assert gd["suggested α"] < gd["critical α (theory)"]
    momentum = table_row(table, "momentum")
    assert momentum["suggested α"] < momentum["critical α (theory)"] == pytest.approx(3.8 / 10.0)
    spec = figure_specs(at)[0]
    assert [t["name"] for t in spec["data"] if t.get("meta") == "median"] == list(table["rule"])
    # both numbers on screen, so the one line that says why they differ is there too
    assert any(c.value.startswith("Why the two differ") for c in at.caption)


def test_stability_page_adam_shows_preconditioned_sharpness_against_38_over_alpha():
    at = AppTest.from_file(str(PAGES / "7_stability.py"), default_timeout=120).run()
    at.selectbox(key="stability_eos_rule").select("adam")
    at.number_input(key="stability_eos_lr").set_value(0.01)
    at.number_input(key="stability_eos_steps").set_value(40)
    at.button(key="stability_eos_run").click().run()
    assert not at.exception
    spec = figure_specs(at)[-1]
    limit = [t for t in spec["data"] if t.get("meta") == "limit"]
    assert len(limit) == 1 and "Adam" in limit[0]["name"]
    np.testing.assert_allclose(values(limit[0]["y"]), 38 / 0.01)
    names = [t["name"] for t in spec["data"] if t.get("meta") == "sharpness"]
    assert any("preconditioned" in n for n in names) and any(n.endswith("λₘₐₓ") for n in names)


HALF_STEP_PLUGIN = """
import numpy as np
from descentlab import DescentRule, hookimpl


def init(params, hyper):
    return ()


def update(grad, state, params, learning_rate, hyper, step):
    return -0.5 * learning_rate * grad, state       # gradient descent at half the rate


def optimal(lam_min, lam_max):
    kappa = lam_max / lam_min
    return {"learning_rate": 4.0 / (lam_min + lam_max), "rate": (kappa - 1) / (kappa + 1),
            "formula": "α = 4/(λ_min + λ_max)"}


@hookimpl
def register_optimizers(register):
    register(DescentRule("half_step", init, update, summary="GD at α/2", stability_threshold=lambda hyper: 4.0,
                         threshold_note="α·λ < 4", optimal=optimal))
"""


def test_a_plugin_rules_declared_theory_appears_beside_the_builtins(tmp_path, monkeypatch):
    # the page names no rule: a third-party rule's threshold and optimum are read from its declaration
    plugin = tmp_path / "half_step.py"
    plugin.write_text(HALF_STEP_PLUGIN)
    monkeypatch.setenv("DESCENTLAB_PLUGINS", str(plugin))
    at = AppTest.from_file(str(PAGES / "7_stability.py"), default_timeout=60).run()
    assert not at.exception
    problem = get_registry().problem("quadratic")
    instance = problem.build({h.name: h.default for h in problem.settings})
    eig = np.linalg.eigvalsh(np.array(instance.describe()["hessian"]))
    lam_min, lam_max = eig[0], eig[-1]
    row = table_row(at.dataframe[0].value, "half_step")
    assert row["critical α = c/λₘₐₓ"] == pytest.approx(4 / lam_max, rel=1e-9)
    assert row["stable iff"] == "α·λ < 4"
    rates = table_row(at.dataframe[1].value, "half_step")
    kappa = lam_max / lam_min
    assert rates["optimal α"] == pytest.approx(4 / (lam_min + lam_max))
    assert rates["measured rate"] == pytest.approx((kappa - 1) / (kappa + 1), rel=1e-6)
