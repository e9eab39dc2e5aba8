"""AppTest of the How it works page: every number it shows equals the engine, hand formulas or the runner."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from descentlab import lesson as L
from descentlab.registry import load_registry
from apptest_helpers import no_trouble

APP = Path(__file__).resolve().parents[2] / "dashboard" / "app.py"
PAGE = "views/0_how_it_works.py"


@pytest.fixture(scope="module")
def registry():
    return load_registry()


def open_page(**widgets) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.run()
    for key, value in widgets.items():
        widget = next(
            w for w in at.get("selectbox") + at.get("text_input") + at.get("number_input") if w.key == f"how.{key}"
        )
        widget.set_value(value)
        at.run()
    return at


def charts(at) -> dict[str, dict]:
    out = {}
    for chart in at.get("plotly_chart"):
        spec = json.loads(chart.proto.spec)
        title = spec["layout"].get("title", {})
        out[title.get("text", "") if isinstance(title, dict) else str(title)] = spec
    return out


def network(at) -> dict:
    return next(spec for title, spec in charts(at).items() if re.match(r"\d · ", title))


def click(at, stage: str) -> AppTest:
    at.button(key=f"how.stage.{stage}").click().run()
    no_trouble(at)
    return at


def default_lesson(registry, rule="gd", alpha=1.0):
    instance = L.build_instance({"name": "xor", "hidden": [3], "activation": "tanh", "samples": 64}, registry)
    return instance, L.start_lesson(instance, registry.rule(rule), alpha, seed=0)


def test_how_it_works_is_the_first_page_and_shows_the_forward_values_of_the_engine(registry):
    at = open_page()
    no_trouble(at)
    assert at.subheader[0].value.startswith("How it works")
    assert [b.label for b in at.button][:5] == [
        "1 · Forward",
        "2 · Cost",
        "3 · Backprop",
        "4 · Descent",
        "5 · Next step ▶",
    ]
    instance, lesson = default_lesson(registry)
    trace = L.trace_step(instance, lesson.params, 0)
    spec = network(at)
    neurons = next(t for t in spec["data"] if t.get("name") == "neurons")
    hidden = [text for text in neurons["text"] if text.startswith("z=")]
    expected = [f"z={v:.3f}<br>a={a:.3f}" for v, a in zip(trace.layers[0].z, trace.layers[0].a)]
    assert hidden[:3] == expected
    weights = next(t for t in spec["data"] if t.get("name") == "weights")
    assert len(weights["customdata"]) == 2 * 3 + 3 * 1  # one clickable dot per weight


def test_cost_stage_shows_the_example_and_batch_cost(registry):
    at = click(open_page(), "cost")
    instance, lesson = default_lesson(registry)
    trace = L.trace_step(instance, lesson.params, 0)
    metrics = {m.label: m.value for m in at.metric}
    assert float(metrics["J, mean over the batch"]) == pytest.approx(trace.loss, rel=1e-4)
    assert float(metrics["Jₙ, example 0"]) == pytest.approx(trace.example_loss, rel=1e-4)


def test_backprop_lights_the_layers_from_the_output_down_and_shows_the_chain_rule(registry):
    at = click(open_page(), "backprop")
    spec = network(at)
    assert "reached layer 2" in spec["layout"]["title"]["text"].replace("<br>", " ")  # first press: the output layer
    lines = [t for t in spec["data"] if t.get("mode") == "lines"]
    assert [t["line"]["color"] != "#D0D0D0" for t in lines] == [False] * 6 + [True] * 3  # W1 dim, W2 lit
    assert any("reached layer **2**" in m.value for m in at.markdown)
    click(at, "backprop")
    spec = network(at)
    assert "reached layer 1" in spec["layout"]["title"]["text"].replace("<br>", " ")
    assert all(t["line"]["color"] != "#D0D0D0" for t in spec["data"] if t.get("mode") == "lines")
    at.selectbox(key="how.weight").set_value("W2[1,0]").run()
    instance, lesson = default_lesson(registry)
    trace = L.trace_step(instance, lesson.params, 0)
    product = trace.chain_rule(2, 1, 0)
    text = " ".join(m.value for m in at.markdown)
    assert f"{product['a_prev']:.4g} × {product['delta']:.4g} = **{product['example_gradient']:.4g}**" in text
    fd = L.finite_difference_gradient(instance, lesson.params)
    k = L.parameter_names(L.lesson_model(instance)).index("W2[1,0]")
    assert f"backprop **{trace.gradient[k]:.6g}**, central difference **{fd[k]:.6g}**" in text


def test_descent_shows_the_gd_step_and_the_new_cost_computed_by_hand(registry):
    at = click(open_page(alpha=0.5), "descent")
    instance, lesson = default_lesson(registry, alpha=0.5)
    trace = L.trace_step(instance, lesson.params, 0)
    new = lesson.params - 0.5 * trace.gradient  # θ − α∇J
    metrics = {m.label: m.value for m in at.metric}
    assert float(metrics["J′ after the step"]) == pytest.approx(L.loss_at(instance, new), rel=1e-4)
    spec = network(at)
    weights = next(t for t in spec["data"] if t.get("name") == "weights")
    first = weights["hovertext"][0]
    assert f"Δw = {-0.5 * trace.gradient[0]:.6g}" in first


def test_another_rule_steps_from_the_same_gradient(registry):
    at = click(open_page(rule="adam", alpha=0.05), "descent")
    instance, lesson = default_lesson(registry, "adam", 0.05)
    g = L.trace_step(instance, lesson.params, 0).gradient
    adam_first = -0.05 * g / (np.abs(g) + 1e-8)  # Adam's first step, m̂ = g, v̂ = g²
    text = " ".join(m.value for m in at.markdown)
    assert f"GD step −α·∂J/∂w = **{-0.05 * g[0]:.4g}**" in text
    assert f"Adam's step = **{adam_first[0]:.4g}**" in text


def test_next_step_repeats_from_the_new_weights_like_the_runner(registry):
    at = open_page(alpha=0.8)
    for _ in range(3):
        click(at, "next")
    instance, lesson = default_lesson(registry, alpha=0.8)
    for _ in range(4):
        L.advance(lesson)
    spec = charts(at)["loss so far"]
    np.testing.assert_allclose(spec["data"][0]["y"], lesson.losses, rtol=1e-12)
    assert any("step 3" in c.value for c in at.caption)


def test_every_offered_problem_renders_every_stage():
    at = open_page()
    offered = at.selectbox(key="how.problem").options
    assert {"xor", "moons", "linear_regression", "iris"} <= set(offered)
    assert "digits" not in offered and "quadratic" not in offered
    for name in offered:
        at.selectbox(key="how.problem").set_value(name).run()
        if name != "linear_regression" and at.text_input(key="how.hidden").value != "3":
            at.text_input(key="how.hidden").set_value("3").run()
        for stage in ("forward", "cost", "backprop", "descent", "next"):
            click(at, stage)


def test_too_big_a_network_is_one_line(registry):
    at = open_page(hidden="20, 20")
    assert not at.exception
    assert len(at.error) == 1 and "at most 30 neurons" in at.error[0].value


def test_the_learning_rate_felt_names_the_regime_of_alpha_lambda(registry):
    at = open_page(problem="linear_regression")
    at.radio(key="how.view").set_value("The learning rate, felt").run()
    no_trouble(at)
    instance = L.build_instance({"name": "linear_regression", "samples": 64}, registry)
    x, _ = L.training_data(instance)
    lam = float(np.mean(x[:, 0] ** 2))  # J'' along w, closed form
    for position, name in ((5, "crawl"), (20, "glide"), (30, "bounce"), (45, "escape")):
        at.select_slider(key="how.felt_alpha").set_value(position).run()
        assert any(m.value.startswith(f"#### {name}\n") for m in at.markdown), position
        assert L.regime(position * 3.0 / (60.0 * lam), lam) == name
    assert any(f"λ = {lam:.4g}" in c.value for c in at.caption)


def test_predict_then_run_shows_theory_and_measurement(registry):
    at = open_page(problem="linear_regression")
    at.radio(key="how.view").set_value("Predict, then run").run()
    at.number_input(key="how.guess").set_value(0.7).run()
    at.button(key="how.run_sweep").click().run()
    no_trouble(at)
    instance = L.build_instance({"name": "linear_regression", "samples": 64}, registry)
    theory = 2 / float(np.linalg.eigvalsh(instance.matrix)[-1])
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["your guess"] == "0.7"
    assert float(metrics["theory 2/λₘₐₓ"]) == pytest.approx(theory, rel=1e-2)
    assert float(metrics["measured"]) < theory


def test_an_old_compare_link_at_the_root_still_opens_compare():
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.query_params["compare"] = json.dumps(
        {"steps": 10, "problem": {"name": "xor"}, "rules": [{"rule": "gd", "learning_rate": 0.5}]}
    )
    at.run()
    assert not at.exception
    assert not at.subheader or not at.subheader[0].value.startswith("How it works")
    assert at.title and at.title[0].value == "Compare descent variants"
    assert at.selectbox(key="cmp.problem").value == "xor"  # with the linked settings
