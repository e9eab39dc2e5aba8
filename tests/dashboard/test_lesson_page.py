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
from apptest_helpers import no_trouble, shown

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
    # and the cost after each of the two steps, from the problem's own loss
    after_gd = float(instance.loss_and_grad((lesson.params - 0.05 * g)[None])[0][0])
    after_adam = float(instance.loss_and_grad((lesson.params + adam_first)[None])[0][0])
    assert f"; J′ = {after_gd:.5g} after GD's, {after_adam:.5g} after Adam's." in text


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


def test_a_rule_with_a_callable_title_is_named_by_it(registry):
    # momentum's title is a function of its hyperparameters ("heavy-ball" or "Nesterov momentum")
    at = click(open_page(rule="momentum", alpha=0.1), "descent")
    text = shown(" ".join(m.value for m in at.markdown))
    assert "<function" not in text
    assert "beside **heavy-ball momentum**'s (v ← μv" in text and "heavy-ball momentum's step = " in text
    at.radio(key="how.view").set_value("Predict, then run").run()
    assert any("largest α for which heavy-ball momentum still converges" in shown(m.value) for m in at.markdown)


def test_the_example_shows_its_own_central_difference_beside_its_chain_rule(registry):
    at = click(open_page(example=5), "backprop")
    at.selectbox(key="how.weight").set_value("W1[1,2]").run()
    instance, lesson = default_lesson(registry)
    model = L.lesson_model(instance)
    x, y = L.training_data(instance)
    k, eps = L.parameter_names(model).index("W1[1,2]"), 1e-6
    plus, minus = lesson.params.copy(), lesson.params.copy()
    plus[k] += eps
    minus[k] -= eps
    by_hand = (model.loss_value(plus[None], x[5:6], y[5:6])[0] - model.loss_value(minus[None], x[5:6], y[5:6])[0]) / (
        2 * eps
    )  # ∂J₅/∂w by a central difference of example 5's own cost
    product = L.trace_step(instance, lesson.params, 5).chain_rule(1, 1, 2)
    text = " ".join(m.value for m in at.markdown)
    assert f"= **{product['example_gradient']:.4g}** (example 5; central difference of Jₙ **{by_hand:.4g}**)" in text
    assert product["example_gradient"] == pytest.approx(by_hand, rel=1e-5)


BROKEN_RULES = """
import numpy as np
from descentlab import DescentRule, hookimpl


def init(params, hyper):
    return ()


def init_breaks(params, hyper):
    raise ValueError("init broke")


def update_breaks(grad, state, params, learning_rate, hyper, step):
    raise RuntimeError("update broke")


@hookimpl
def register_optimizers(register):
    register(DescentRule("lesson_update_breaks", init, update_breaks))
    register(DescentRule("lesson_init_breaks", init_breaks, update_breaks))
"""


@pytest.mark.parametrize(
    "rule,line,what", [("lesson_update_breaks", 15, "update broke"), ("lesson_init_breaks", 11, "init broke")]
)
def test_a_broken_rule_plugin_is_one_line_and_the_lesson_keeps_working(tmp_path, monkeypatch, rule, line, what):
    plugin = tmp_path / "broken_lesson_rules.py"
    plugin.write_text(BROKEN_RULES)
    monkeypatch.setenv("DESCENTLAB_PLUGINS", str(plugin))
    at = open_page(rule=rule, alpha=0.5)
    assert not at.exception, [e.value for e in at.exception]
    for stage in ("forward", "cost", "backprop", "descent", "next"):
        at.button(key=f"how.stage.{stage}").click().run()
        assert not at.exception, (stage, [e.value for e in at.exception])
        assert len(at.error) == 1, stage
        message = shown(at.error[0].value)
        assert message.startswith(f"rule '{rule}' ({plugin}:{line}): ") and what in message, message
    registry = load_registry()
    instance, lesson = default_lesson(registry, alpha=0.5)
    trace = L.trace_step(instance, lesson.params, 0)
    # the step shown is plain gradient descent's, and Next step did not move the weights
    assert any("step 0" in c.value for c in at.caption)
    at.button(key="how.stage.descent").click().run()
    assert (
        f"Δw = {-0.5 * trace.gradient[0]:.6g}"
        in next(t for t in network(at)["data"] if t.get("name") == "weights")["hovertext"][0]
    )
    at.radio(key="how.view").set_value("Predict, then run").run()
    at.button(key="how.run_sweep").click().run()
    assert not at.exception
    assert any(shown(e.value).startswith(f"rule '{rule}' ({plugin}:") for e in at.error)
    assert {m.label: m.value for m in at.metric}["measured"] == "none"


def test_a_diverging_lesson_says_so_at_the_step_the_runner_would(registry):
    from descentlab.experiment import Experiment
    from descentlab.runner import run_experiment

    problem = {"name": "linear_regression", "samples": 64}
    instance = L.build_instance(problem, registry)
    alpha = 3.0 * 2.0 / float(np.linalg.eigvalsh(instance.matrix)[-1])  # 3× GD's limit 2/λ_max
    experiment = Experiment.from_dict(
        {"name": "d", "problem": problem, "steps": 20, "seeds": [0], "rules": [{"rule": "gd", "learning_rate": alpha}]},
        registry,
    )
    runs = run_experiment(experiment, registry=registry, workers=1).runs
    step = int(runs["diverged_at"].iloc[0])
    at = open_page(problem="linear_regression", alpha=alpha)
    for _ in range(step - 1):
        click(at, "next")
    assert not at.warning  # one step before the runner's verdict
    at.button(key="how.stage.next").click().run()
    assert not at.exception
    assert len(at.warning) == 1 and at.warning[0].value.startswith(f"Diverged at step {step}: ")
    for stage in ("forward", "cost", "backprop", "descent"):
        at.button(key=f"how.stage.{stage}").click().run()
        assert not at.exception and not at.error


def test_predict_then_run_shows_the_narrowed_edge_and_the_guess_verdict(registry):
    at = open_page(problem="linear_regression")
    instance = L.build_instance({"name": "linear_regression", "samples": 64}, registry)
    theory = 2 / float(np.linalg.eigvalsh(instance.matrix)[-1])
    at.radio(key="how.view").set_value("Predict, then run").run()
    at.number_input(key="how.guess").set_value(round(1.5 * theory, 3)).run()
    at.button(key="how.run_sweep").click().run()
    no_trouble(at)
    guess = next(m for m in at.metric if m.label == "your guess")
    assert guess.proto.delta in ("unstable", "diverged")
    measured = float(next(m for m in at.metric if m.label == "measured").value)
    assert 0.99 * theory < measured < theory  # three digits shown: the fine sweep's bracket is 0.7 %


def _fd_hessian(instance, params, eps=1e-5):
    # central differences of the engine's own gradient, column by column (independent of the lesson's
    # exact Hessian-vector products)
    p = params.size
    shifts = np.concatenate([params + eps * np.eye(p), params - eps * np.eye(p)])
    _, grads = instance.loss_and_grad(shifts)
    hessian = (grads[:p] - grads[p:]) / (2 * eps)
    return 0.5 * (hessian + hessian.T)


def test_every_offered_problem_shows_the_engines_numbers_in_every_view(registry):
    # For each problem on offer, what the page shows against the problem's own loss_and_grad, the
    # engine's gradient checker (central differences) and a finite-difference Hessian.
    from descentlab.gradcheck import numeric_grad

    at = open_page(alpha=0.3)
    offered = at.selectbox(key="how.problem").options
    for name in offered:
        at.selectbox(key="how.problem").set_value(name).run()
        declared = {h.name: h for h in registry.problem(name).settings}
        spec = {"name": name}
        if "hidden" in declared:
            at.text_input(key="how.hidden").set_value("3").run()
            spec["hidden"] = [3]
        if "activation" in declared:
            spec["activation"] = at.selectbox(key="how.activation").value
        if "samples" in declared:
            spec["samples"] = int(at.number_input(key="how.samples").value)
        instance = L.build_instance(spec, registry)
        params = instance.init_params([0])[0]
        loss, grad = instance.loss_and_grad(params[None])
        loss, grad = float(loss[0]), grad[0]
        click(at, "cost")
        metrics = {m.label: m.value for m in at.metric}
        assert float(metrics["J, mean over the batch"]) == pytest.approx(loss, rel=1e-4), name
        click(at, "backprop")
        first = at.selectbox(key="how.weight").value
        numeric = numeric_grad(instance.loss, params[None])[0]
        text = " ".join(m.value for m in at.markdown)
        assert f"∂J/∂{first} over the batch: backprop **{grad[0]:.6g}**" in text, name
        batch_fd = re.search(rf"∂J/∂{re.escape(first)} over the batch: .*?central difference \*\*([^*]+)\*\*", text)
        assert float(batch_fd.group(1)) == pytest.approx(numeric[0], rel=1e-4, abs=1e-7), name
        click(at, "descent")
        metrics = {m.label: m.value for m in at.metric}
        after = float(instance.loss((params - 0.3 * grad)[None])[0])  # θ − α∇J, by hand
        assert float(metrics["J′ after the step"]) == pytest.approx(after, rel=1e-4), name
        at.radio(key="how.view").set_value("The learning rate, felt").run()
        no_trouble(at)
        along = at.selectbox(key=f"how.slice.{name}").value
        d = (
            -grad / np.linalg.norm(grad)
            if along.startswith("along")
            else np.eye(params.size)[L.parameter_names(L.lesson_model(instance)).index(along)]
        )
        eps = 1e-5
        _, g2 = instance.loss_and_grad(np.stack([params + eps * d, params - eps * d]))
        curvature = float((g2[0] - g2[1]) @ d / (2 * eps))  # d²J/ds² by differences of the engine's gradient
        if curvature > 0:
            lam = re.search(r"λ = ([^ ]+) \(the curvature", " ".join(c.value for c in at.caption))
            assert float(lam.group(1)) == pytest.approx(curvature, rel=1e-3), name
        else:
            assert at.warning, name
        at.radio(key="how.view").set_value("Predict, then run").run()
        at.button(key="how.run_sweep").click().run()
        no_trouble(at)
        lam_max = float(np.linalg.eigvalsh(_fd_hessian(instance, params))[-1])
        metrics = {m.label: m.value for m in at.metric}
        assert float(metrics["theory 2/λₘₐₓ"]) == pytest.approx(2 / lam_max, rel=5e-3), name  # 3 digits shown
        at.radio(key="how.view").set_value("One step, both halves").run()


def test_every_declared_problem_setting_reaches_the_lesson(registry):
    # blobs with 4 classes: a 2-3-4 softmax network whose numbers are those of the problem built so
    at = open_page(problem="blobs")
    at.number_input(key="how.problem.blobs.classes").set_value(4).run()
    at.number_input(key="how.problem.blobs.noise").set_value(0.25).run()
    no_trouble(at)
    click(at, "cost")
    instance = L.build_instance({"name": "blobs", "hidden": [3], "samples": 64, "classes": 4, "noise": 0.25}, registry)
    assert L.lesson_model(instance).sizes == [2, 3, 4]
    loss = float(instance.loss_and_grad(instance.init_params([0]))[0][0])
    assert float({m.label: m.value for m in at.metric}["J, mean over the batch"]) == pytest.approx(loss, rel=1e-4)
    neurons = next(t for t in network(at)["data"] if t.get("name") == "neurons")
    assert len(neurons["text"]) == 2 + 3 + 4
    at.number_input(key="how.problem.blobs.classes").set_value(1).run()
    assert not at.exception
    assert [shown(e.value) for e in at.error] == ["problem.classes: got 1; expected an integer in [2, 10]"]


NETWORK_PROBLEMS = """
import numpy as np
from descentlab import Dataset, MLP, Problem, ProblemInstance, hookimpl


class TinyNet(ProblemInstance):
    kind = "classification"

    def __init__(self, mode):
        rng = np.random.default_rng(0)
        x = rng.uniform(-1, 1, (12, 3 if mode == "misfit" else 2))
        y = (x[:, :1] * x[:, 1:2] > 0).astype(float)
        self.mode, self.model, self.n_train = mode, MLP([2, 2, 1], "sigmoid", "bce_logits"), 12
        self.dataset = Dataset(x, y, x[:4], y[:4], "classification")
        self.layout = self.model.layout

    def init_params(self, seeds, dtype=np.float64):
        if self.mode == "raises":
            raise RuntimeError("init_params broke")
        if self.mode == "shape":
            return np.zeros((len(seeds), 3))
        return self.model.init_params(seeds, dtype)

    def loss_and_grad(self, params, batch=None, out=None):
        return self.model.loss_and_grad(params, self.dataset.x_train, self.dataset.y_train)


@hookimpl
def register_problems(register):
    for mode in ("fine", "raises", "shape", "misfit"):
        register(Problem(f"tinynet_{mode}", lambda s, mode=mode: TinyNet(mode), (), mode, kind="classification"))
"""


def test_a_third_party_network_is_taught_and_a_broken_one_is_one_line(tmp_path, monkeypatch):
    plugin = tmp_path / "tiny_networks.py"
    plugin.write_text(NETWORK_PROBLEMS)
    monkeypatch.setenv("DESCENTLAB_PLUGINS", str(plugin))
    at = open_page(problem="tinynet_fine", alpha=0.5)
    no_trouble(at)
    registry = load_registry()
    instance = L.build_instance("tinynet_fine", registry)
    params = instance.init_params([0])[0]
    loss, grad = instance.loss_and_grad(params[None])  # the plugin's own loss_and_grad
    click(at, "cost")
    assert float({m.label: m.value for m in at.metric}["J, mean over the batch"]) == pytest.approx(loss[0], rel=1e-4)
    click(at, "descent")
    after = float(instance.loss_and_grad((params - 0.5 * grad[0])[None])[0][0])
    assert float({m.label: m.value for m in at.metric}["J′ after the step"]) == pytest.approx(after, rel=1e-4)
    expected = {
        "raises": f"problem 'tinynet_raises' ({plugin}:19): init_params failed: RuntimeError: init_params broke",
        "shape": f"problem 'tinynet_shape' ({plugin}:17): init_params returned shape (1, 3); expected (1, 9)",
        "misfit": f"problem 'tinynet_misfit' ({plugin}:",
    }
    for mode, start in expected.items():
        at = open_page(problem=f"tinynet_{mode}")
        assert not at.exception, [e.value for e in at.exception]
        assert len(at.error) == 1 and shown(at.error[0].value).startswith(start), shown(at.error[0].value)
        at.selectbox(key="how.problem").set_value("xor").run()  # the other problems keep working
        no_trouble(at)


def test_the_rules_own_settings_reach_its_step_and_its_theory(registry):
    # heavy ball with μ = 0.5 (PyTorch's convention): b₁ = g₁, b₂ = μ b₁ + g₂, Δθ = −α b; on a quadratic
    # it is stable iff α·λ_max < 2 + 2μ = 3 (Polyak)
    at = open_page(problem="linear_regression", rule="momentum", alpha=0.2)
    at.slider(key="how.rule.momentum.momentum").set_value(0.5).run()
    no_trouble(at)
    instance = L.build_instance({"name": "linear_regression", "samples": 64}, registry)
    theta = instance.init_params([0])[0]
    _, g1 = instance.loss_and_grad(theta[None])
    second = theta - 0.2 * g1[0]
    _, g2 = instance.loss_and_grad(second[None])
    click(at, "next")
    click(at, "descent")
    text = shown(" ".join(m.value for m in at.markdown))
    step = -0.2 * (0.5 * g1[0][0] + g2[0][0])
    assert f"heavy-ball momentum's step = **{step:.4g}**" in text
    at.radio(key="how.view").set_value("Predict, then run").run()
    at.button(key="how.run_sweep").click().run()
    no_trouble(at)
    lam_max = float(np.linalg.eigvalsh(instance.matrix)[-1])
    metrics = {m.label: m.value for m in at.metric}
    assert float(metrics["theory 3/λₘₐₓ"]) == pytest.approx(3 / lam_max, rel=5e-3)
    measured = float(metrics["measured"])
    assert 0.99 * 3 / lam_max < measured < 3 / lam_max
