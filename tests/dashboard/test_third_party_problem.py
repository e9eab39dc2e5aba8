"""A third-party problem written only against the documented protocols gets the landscape page, the
decision boundary and the explanations; a page it lacks the capability for says so in one line.

The problems are tests/plugins/third_party_problems.py, loaded through DESCENTLAB_PLUGINS as a user
would. Every number is checked against a reference computed here: gradient descent run by hand on
the functions' own formulas, numpy.linalg.eigvalsh of the written-out Hessian, finite differences.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from descentlab.experiment import Experiment
from descentlab.registry import load_registry
from descentlab.runner import run_experiment
from apptest_helpers import open_app as open_page, shown

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "dashboard" / "app.py"
PLUGIN = ROOT / "tests" / "plugins" / "third_party_problems.py"

LANDSCAPE = {
    "steps": 12,
    "seeds": 1,
    "batch_size": 0,
    "eval_every": 4,
    "problem": {"name": "camel_test"},
    "rules": [
        {"rule": "gd", "label": "small", "learning_rate": 0.05},
        {"rule": "gd", "label": "huge", "learning_rate": 1.0},
    ],
}
CLASSIFIER = {
    "steps": 30,
    "seeds": 1,
    "batch_size": 0,
    "eval_every": 10,
    "problem": {"name": "halfplane_test"},
    "rules": [
        {"rule": "gd", "label": "plain", "learning_rate": 2.0},
        {"rule": "gd", "label": "huge", "learning_rate": 60.0},
    ],
}


@pytest.fixture
def plugin(monkeypatch):
    monkeypatch.setenv("DESCENTLAB_PLUGINS", str(PLUGIN))
    registry = load_registry([PLUGIN], use_env=False)
    assert not registry.errors, registry.errors
    return registry


def chart_titled(at, start: str) -> dict:
    for chart in at.get("plotly_chart"):
        spec = json.loads(chart.proto.spec)
        title = spec["layout"].get("title", {})
        if (title.get("text", "") if isinstance(title, dict) else str(title)).startswith(start):
            return spec
    raise AssertionError(f"no chart titled {start!r}")


def traces(spec: dict, meta: str) -> list[dict]:
    return [t for t in spec["data"] if t.get("meta") == meta]


def explanation(at, label: str) -> tuple[int, dict[str, float]]:
    """(flagged step, {"at step k" or "at the start": α·λ_max}) quoted by the page's note on ``label``.

    The note leads with the larger product and gives the other in parentheses."""
    notes = [shown(c.value) for c in at.caption if shown(c.value).startswith(f"⚠️ **{label}**")]
    assert len(notes) == 1, [shown(c.value) for c in at.caption]
    step = re.search(r"(?:diverged at|unstable from) step (\d+)", notes[0])
    products = re.findall(r"(?:α·λ_max = |\()([-+.e\d]+) (at step \d+|at the start)", notes[0])
    assert step and products, notes[0]
    return int(step.group(1)), {where: float(value) for value, where in products}


def records(spec: dict, registry):
    experiment = Experiment.from_dict({**spec, "name": "third-party"}, registry)
    return run_experiment(experiment, registry=registry, workers=1)


# --- the camel, by hand ------------------------------------------------------------------------


def camel(x, y):
    return 2 * x**2 - 1.05 * x**4 + x**6 / 6 + x * y + y**2


def camel_gradient(p):
    x, y = p
    return np.array([4 * x - 4.2 * x**3 + x**5 + y, x + 2 * y])


def camel_hessian(p):
    x = p[0]
    return np.array([[4 - 12.6 * x**2 + 5 * x**4, 1.0], [1.0, 2.0]])


def gradient_descent(gradient, start, alpha, steps):
    points = [np.asarray(start, dtype=float)]
    for _ in range(steps):
        points.append(points[-1] - alpha * gradient(points[-1]))
    return np.array(points)


def test_the_landscape_page_draws_a_third_party_landscape_and_explains_its_blow_up(plugin):
    at = open_page("3_landscape.py", landscape=LANDSCAPE)
    assert not at.exception, [e.value for e in at.exception]
    options = at.selectbox(key="land.problem").options
    assert "camel_test" in options and "halfplane_test" not in options
    assert at.selectbox(key="land.problem").value == "camel_test"
    contour = chart_titled(at, "Cost surface")
    (surface,) = traces(contour, "surface")
    gx, gy = np.meshgrid(surface["x"], surface["y"])
    f = camel(gx, gy)
    assert surface["x"][0] == -2.0 and surface["x"][-1] == 2.0  # the declared bounds
    assert surface["colorbar"]["title"]["text"] == "log10 cost"  # f spans > 50× its minimum
    np.testing.assert_allclose(np.asarray(surface["z"], dtype=float), np.log10(f - f.min() + 1e-3), rtol=1e-12)
    (star,) = traces(contour, "minimum")
    assert (star["x"], star["y"]) == ([0.0], [0.0])
    paths = {t["name"]: t for t in traces(contour, "path")}
    assert set(paths) == {"small", "huge"}
    for name, alpha, n in (("small", 0.05, 13), ("huge", 1.0, 3)):
        expected = gradient_descent(camel_gradient, (1.2, -0.8), alpha, n - 1)
        np.testing.assert_allclose(paths[name]["x"][:n], expected[:, 0], rtol=1e-12)
        np.testing.assert_allclose(paths[name]["y"][:n], expected[:, 1], rtol=1e-12)

    # α = 1 diverges: the note's λ_max is the exact Hessian's top eigenvalue at the step before
    step, products = explanation(at, "huge")
    before = gradient_descent(camel_gradient, (1.2, -0.8), 1.0, step - 1)[-1]
    lam = np.linalg.eigvalsh(camel_hessian(before))[-1]
    assert products[f"at step {step - 1}"] == pytest.approx(1.0 * lam, rel=5e-3)  # quoted to 3 digits
    lam_start = np.linalg.eigvalsh(camel_hessian((1.2, -0.8)))[-1]
    assert products["at the start"] == pytest.approx(1.0 * lam_start, rel=5e-3)
    runs = records(LANDSCAPE, plugin).runs.set_index("label")
    assert runs.loc["huge", "status"] == "diverged" and runs.loc["huge", "diverged_at"] == step
    assert runs.loc["huge", "lambda_max_flagged"] == pytest.approx(lam, rel=1e-12)
    assert runs.loc["huge", "lambda_max_start"] == pytest.approx(lam_start, rel=1e-12)


# --- the classifier, by hand -------------------------------------------------------------------


def logistic_loss(theta, x, y):
    z = x @ theta[:2] + theta[2]
    return np.mean(np.logaddexp(0.0, z) - y * z)


def logistic_gradient(theta, x, y):
    residual = 1.0 / (1.0 + np.exp(-(x @ theta[:2] + theta[2]))) - y
    return np.concatenate([residual @ x / len(x), [residual.mean()]])


def finite_difference_hessian(f, theta, h=1e-4):
    n = len(theta)
    out = np.empty((n, n))
    e = np.eye(n) * h
    for i in range(n):
        for j in range(n):
            out[i, j] = (
                f(theta + e[i] + e[j]) - f(theta + e[i] - e[j]) - f(theta - e[i] + e[j]) + f(theta - e[i] - e[j])
            ) / (4 * h * h)
    return (out + out.T) / 2


def test_the_boundary_page_draws_a_third_party_classifier_and_explains_its_instability(plugin):
    at = open_page("4_decision_boundary.py", boundary=CLASSIFIER)
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    options = at.selectbox(key="bound.problem").options
    assert "halfplane_test" in options and "camel_test" not in options
    instance = plugin.problem("halfplane_test").build({"seed": 0, "samples": 80})
    x, y = instance.dataset.x_train, instance.dataset.y_train[:, 0]
    start = instance.init_params([0])[0]
    boundary = chart_titled(at, "Decision boundary")
    panels = traces(boundary, "prediction")
    assert [p["name"].split(" ")[0] for p in panels] == ["plain", "huge"]
    assert panels[0]["colorbar"]["title"]["text"] == "P(class 1)"
    for panel, alpha in zip(panels, (2.0, 60.0)):
        theta = start.copy()
        for _ in range(CLASSIFIER["steps"]):
            theta = theta - alpha * logistic_gradient(theta, x, y)
        z = np.asarray(panel["z"], dtype=float)
        for i, j in ((0, 0), (10, 70), (40, 40), (79, 5), (55, 23)):
            point = np.array([[panel["x"][j], panel["y"][i]]])
            logit = float(instance.predict(theta[None, :], point)[0, 0, 0])
            assert (z[i, j] > 0.5) == (logit > 0), (panel["name"], i, j)
            assert z[i, j] == pytest.approx(1.0 / (1.0 + math.exp(-logit)), rel=1e-9)

    # α = 60 is far past 2/λ_max: unstable, and λ_max is the finite-difference Hessian's at the step before
    step, products = explanation(at, "huge")
    before = start.copy()
    for _ in range(step - 1):
        before = before - 60.0 * logistic_gradient(before, x, y)
    lam = np.linalg.eigvalsh(finite_difference_hessian(lambda t: logistic_loss(t, x, y), before))[-1]
    assert products[f"at step {step - 1}"] == pytest.approx(60.0 * lam, rel=5e-3)
    runs = records(CLASSIFIER, plugin).runs.set_index("label")
    assert runs.loc["huge", "status"] == "unstable" and runs.loc["huge", "unstable_at"] == step > 1
    assert runs.loc["huge", "lambda_max_flagged"] == pytest.approx(lam, rel=1e-5)


@pytest.mark.parametrize(
    "page, param, spec, lacking",
    [
        ("3_landscape.py", "landscape", CLASSIFIER, "halfplane_test"),
        ("4_decision_boundary.py", "boundary", LANDSCAPE, "camel_test"),
    ],
)
def test_a_problem_forced_onto_a_page_it_lacks_the_capability_for_gets_one_line(plugin, page, param, spec, lacking):
    at = open_page(page, **{param: {**spec, "steps": 3}})
    assert not at.exception, [e.value for e in at.exception]
    lines = [shown(w.value) for w in at.warning if lacking in shown(w.value)]
    assert len(lines) == 1 and "\n" not in lines[0], [shown(w.value) for w in at.warning]
    assert lines[0].startswith(f"problem.name: got {lacking!r}; expected a problem this page can draw")
    key = "land.problem" if param == "landscape" else "bound.problem"
    assert lacking not in at.selectbox(key=key).options
    assert f"Showing {at.selectbox(key=key).value!r} instead." in lines[0]


def test_the_stability_page_offers_the_landscape_for_its_theory_and_neither_for_edge_of_stability(plugin):
    # the camel has a closed-form Hessian (theory section); neither problem has Hessian-vector
    # products without one (edge-of-stability section lists networks)
    at = AppTest.from_file(str(ROOT / "dashboard" / "views" / "7_stability.py"), default_timeout=120).run()
    assert "camel_test" in at.selectbox(key="stability_problem").options
    assert "halfplane_test" not in at.selectbox(key="stability_problem").options
    eos = at.selectbox(key="stability_eos_problem").options
    assert "sine" == eos[0] and not {"camel_test", "halfplane_test"} & set(eos)
    at.selectbox(key="stability_problem").select("camel_test").run()
    assert not at.exception, [e.value for e in at.exception]
    start = np.array([1.2, -0.8])
    lam = np.linalg.eigvalsh(camel_hessian(start))
    assert float(at.metric[0].value) == pytest.approx(lam[-1], rel=1e-5)  # λₘₐₓ at the start
    assert float(at.metric[1].value) == pytest.approx(lam[0], rel=1e-5)
