"""How it works: one real training step, taken apart — backpropagation computes ∇J, gradient descent steps with α."""

from __future__ import annotations

import copy
import json
import math

import numpy as np
import pandas as pd
import streamlit as st

from descentlab import lesson as L
from descentlab.dashboard import lesson_figures as LF
from descentlab.dashboard import style as S
from descentlab.dashboard import widgets as W
from descentlab.dashboard.presets import preset
from descentlab.errors import PluginError, SpecError
from descentlab.faults import fault
from descentlab.stability import rule_threshold

TITLE = "How it works"
ICON = ":material/school:"
PAGE = "how"
if "compare" in st.query_params:
    # Links shared before this page existed opened Compare at the root URL ("/?compare=…"): keep them working.
    st.switch_page("views/1_compare.py", query_params=st.query_params.to_dict())

START = preset("lesson")  # dashboard/presets/lesson.toml: XOR, 2-3-1, plain gradient descent at α = 1
DEFAULT_PROBLEM, DEFAULT_HIDDEN, DEFAULT_RATE = START["problem"], START["hidden"], START["learning_rate"]
STAGE_BUTTONS = (
    ("forward", "1 · Forward"),
    ("cost", "2 · Cost"),
    ("backprop", "3 · Backprop"),
    ("descent", "4 · Descent"),
)


@st.cache_resource(show_spinner=False, max_entries=16)
def _lesson_problems(registry_key: tuple, _registry) -> list[str]:
    return W.problems_where(
        _registry, lambda problem, instance: L.can_teach(instance), ("regression", "classification")
    )


@st.cache_resource(show_spinner=False, max_entries=16)
def _build(spec_json: str, registry_key: tuple, _registry):
    return L.build_instance(json.loads(spec_json), _registry)


@st.cache_data(show_spinner=False, max_entries=32)
def _sweep(spec_json: str, guess: float, seed: int, rule: str, hyper_json: str, registry_key: tuple, _registry):
    return L.predict_then_run(
        json.loads(spec_json), guess, rule=rule, seed=seed, hyper=json.loads(hyper_json), registry=_registry
    )


def _title(rule, hyper: dict) -> str:
    """The rule's name in sentences at these hyperparameters (a callable title, like momentum's, gets them)."""
    try:
        return rule.display_title({**{h.name: h.default for h in rule.hyperparams}, **hyper})
    except Exception:  # a plugin's broken title must not take the page down: its name says enough
        return rule.name


def _show(error: BaseException) -> None:
    """A setting's or a plugin's one line, as it is (the plugin's line already names it, file:line)."""
    if isinstance(error, PluginError):
        st.error(W.markdown_text(str(error)), icon="⚠️")
    else:
        W.show_error(error)


def _state(key: str, default):
    if key not in st.session_state:
        st.session_state[key] = default
    return st.session_state[key]


# Big buttons for a projector, and less empty space above the title so a stage fits a 1280×800 screen.
st.markdown(
    "<style>div[data-testid='stButton'] button {font-size: 1.15rem; padding: 0.45rem 0.9rem; width: 100%;}"
    " div[data-testid='stMainBlockContainer'] {padding-top: 2.2rem;}</style>",
    unsafe_allow_html=True,
)
st.subheader("How it works: backpropagation, then gradient descent")
st.caption(
    "**Backpropagation** computes ∂J/∂w for every weight by the chain rule, from the output layer back. "
    "**Gradient descent** then steps each weight downhill: w ← w − α·∂J/∂w. Every number is the engine's."
)

registry = W.current_registry()
W.plugin_warnings(registry)
names = _lesson_problems(W.registry_key(), registry)
if not names:
    st.error("No registered problem has a network small enough to draw.")
    st.stop()

# ---- the network and the rule (sidebar) ----------------------------------------------------------
side = st.sidebar
W.prime(f"{PAGE}.problem", DEFAULT_PROBLEM if DEFAULT_PROBLEM in names else names[0])
if st.session_state[f"{PAGE}.problem"] not in names:
    st.session_state[f"{PAGE}.problem"] = names[0]
problem = W.remember(
    f"{PAGE}.problem",
    side.selectbox("problem", names, key=f"{PAGE}.problem", help="problems whose network is small enough to draw"),
)
declaration = registry.problem(problem)
spec: dict = {"name": problem}
errors: list[str] = []
declared = {h.name: h for h in declaration.settings}
if "hidden" in declared:
    W.prime(f"{PAGE}.hidden", W.format_int_list(DEFAULT_HIDDEN))
    text = W.remember(
        f"{PAGE}.hidden",
        side.text_input("hidden layers", key=f"{PAGE}.hidden", help="neurons per hidden layer, e.g. 3 or 3, 2"),
    )
    try:
        spec["hidden"] = W.parse_int_list(text, "hidden")
    except SpecError as error:
        errors.append(str(error))
if "activation" in declared:
    choices = list(declared["activation"].choices)
    W.prime(f"{PAGE}.activation", declared["activation"].default)
    spec["activation"] = W.remember(
        f"{PAGE}.activation", side.selectbox("activation f", choices, key=f"{PAGE}.activation")
    )
if "samples" in declared:
    W.prime(f"{PAGE}.samples", min(int(declared["samples"].default), 64))
    spec["samples"] = int(
        W.remember(
            f"{PAGE}.samples",
            side.number_input(
                "examples", 4, 2000, key=f"{PAGE}.samples", help="size of the data set (the batch is all of it)"
            ),
        )
    )
# Every other setting the problem declares (its data seed, noise, classes, init, a plugin's own ...),
# generated from the declarations as on the Compare page, so any registered network can be taught on.
others = [h for h in declaration.settings if h.name not in ("hidden", "activation", "samples")]
if others:
    with side.expander("more problem settings", expanded=False):
        spec.update(W.declared_values(others, f"{PAGE}.problem.{problem}", {}, "problem", errors))
W.prime(f"{PAGE}.seed", 0)
seed = int(
    W.remember(
        f"{PAGE}.seed",
        side.number_input("weight seed", 0, 10_000, key=f"{PAGE}.seed", help="which random starting weights"),
    )
)
rule_names = sorted(registry.rules)
W.prime(f"{PAGE}.rule", START["rule"] if START["rule"] in rule_names else rule_names[0])
rule_name = W.remember(
    f"{PAGE}.rule",
    side.selectbox(
        "descent rule",
        rule_names,
        key=f"{PAGE}.rule",
        help="the rule that turns the gradient into a step; shown beside plain gradient descent",
    ),
)
rule = registry.rule(rule_name)
# The rule's own hyperparameters (μ, β₁, β₂, ε, ... or a plugin's), generated from its declarations;
# only the values that differ from the defaults are kept, as in an experiment file's [[rules]] entry.
rule_hyper: dict = {}
if rule.hyperparams:
    with side.expander("rule settings", expanded=False):
        rule_hyper = W.declared_values(rule.hyperparams, f"{PAGE}.rule.{rule_name}", {}, "rule", errors)
hyper_json = json.dumps(rule_hyper, sort_keys=True)
rule_title = _title(rule, rule_hyper)
W.prime(f"{PAGE}.alpha", DEFAULT_RATE)
alpha = float(
    W.remember(
        f"{PAGE}.alpha",
        side.number_input("learning rate α", min_value=1e-6, max_value=1e3, format="%g", key=f"{PAGE}.alpha"),
    )
)

for message in errors:
    st.error(W.markdown_text(message), icon="⚠️")
if errors:
    st.stop()
spec_json = json.dumps(spec, sort_keys=True)
try:
    instance = _build(spec_json, W.registry_key(), registry)
    L.lesson_model(instance)
except (SpecError, PluginError) as error:  # bad settings, or a problem plugin whose build broke: one line
    _show(error)
    st.stop()

config = (spec_json, seed, rule_name, hyper_json, W.registry_key())  # new settings: a new lesson
restart = side.button("start again", key=f"{PAGE}.restart", help="back to the starting weights")
if st.session_state.get(f"{PAGE}.config") != config or restart:
    try:
        start = L.starting_params(instance, seed, problem=problem)
    except PluginError as error:  # the problem's init_params broke: nothing to show, in one line
        st.session_state.pop(f"{PAGE}.config", None)
        _show(error)
        st.stop()
    st.session_state[f"{PAGE}.config"] = config
    try:
        track = L.start_track(rule, start, rule_hyper, instance.layout)
        st.session_state[f"{PAGE}.fault"] = ""
    except PluginError as error:  # the rule's init broke: forward, cost and backprop need no rule
        track = None
        st.session_state[f"{PAGE}.fault"] = str(error)
    st.session_state[f"{PAGE}.lesson"] = L.Lesson(instance, start, track=track, learning_rate=alpha)
    st.session_state[f"{PAGE}.stage"] = "forward"
    st.session_state[f"{PAGE}.lit"] = None
    st.session_state.pop(f"{PAGE}.trace", None)
lesson: L.Lesson = st.session_state[f"{PAGE}.lesson"]
lesson.learning_rate = alpha
model = L.lesson_model(instance)
names_flat = L.parameter_names(model)
x_train, _ = L.training_data(instance)
W.prime(f"{PAGE}.example", 0)
if st.session_state[f"{PAGE}.example"] >= len(x_train):
    st.session_state[f"{PAGE}.example"] = 0
example = int(
    W.remember(
        f"{PAGE}.example",
        side.number_input(
            "example shown",
            0,
            len(x_train) - 1,
            key=f"{PAGE}.example",
            help="whose forward values and error δ the diagram shows (the gradient is over the whole batch)",
        ),
    )
)

trace_key = (lesson.step, example)
if st.session_state.get(f"{PAGE}.trace", (None,))[0] != trace_key:
    try:
        trace = L.trace_step(instance, lesson.params, example)
        st.session_state[f"{PAGE}.trace"] = (
            trace_key,
            trace,
            L.finite_difference_gradient(instance, lesson.params),
            L.finite_difference_gradient(instance, lesson.params, example=example),
        )
    except SpecError as error:
        W.show_error(error)
        st.stop()
    except Exception as error:  # a problem plugin whose model and data do not fit: named, in one line
        _show(PluginError(fault("problem", problem, error, type(instance))))
        st.stop()
_, trace, fd_gradient, fd_example = st.session_state[f"{PAGE}.trace"]

# A radio rather than tabs: only the chosen part is computed, and Streamlit draws sliders in hidden tabs wrongly.
VIEWS = ("One step, both halves", "The learning rate, felt", "Predict, then run")
W.prime(f"{PAGE}.view", VIEWS[0])
view_name = W.remember(
    f"{PAGE}.view", st.radio("part", VIEWS, key=f"{PAGE}.view", horizontal=True, label_visibility="collapsed")
)

# ---- one step -------------------------------------------------------------------------------------
if view_name == VIEWS[0]:
    # Buttons act in callbacks, which run before the page is drawn: the highlighted button is the shown stage.
    def _go(name: str) -> None:
        current = st.session_state.get(f"{PAGE}.stage")
        if name == "backprop":
            # each press carries the error back one more layer, from the output down to layer 1
            lit = st.session_state.get(f"{PAGE}.lit")
            st.session_state[f"{PAGE}.lit"] = (
                model.n_layers if current != "backprop" or lit is None else max(1, lit - 1)
            )
        st.session_state[f"{PAGE}.stage"] = name

    def _next() -> None:
        current: L.Lesson = st.session_state[f"{PAGE}.lesson"]
        current.learning_rate = float(st.session_state.get(f"{PAGE}.alpha", current.learning_rate))
        if current.track is None:  # the rule's init broke: its own line is shown already
            return
        try:
            L.advance(current)
        except PluginError as error:  # the rule broke on this step: say so, and stay where we are
            st.session_state[f"{PAGE}.fault"] = str(error)
            return
        st.session_state[f"{PAGE}.stage"] = "forward"
        st.session_state[f"{PAGE}.lit"] = None

    stage = _state(f"{PAGE}.stage", "forward")
    columns = st.columns(5)
    for column, (name, label) in zip(columns, STAGE_BUTTONS):
        column.button(
            label,
            key=f"{PAGE}.stage.{name}",
            type="primary" if stage == name else "secondary",
            on_click=_go,
            args=(name,),
        )
    columns[4].button("5 · Next step ▶", key=f"{PAGE}.stage.next", on_click=_next)

    if lesson.losses:
        # in the sidebar, so the stage itself still fits the screen as the chart grows
        side.plotly_chart(
            LF.draw_losses([*lesson.losses, trace.loss]),
            key=f"{PAGE}.chart.losses",
            width="stretch",
            config={"displayModeBar": False},
            **S.STREAMLIT_CHART,
        )
    gd_update = -alpha * trace.gradient
    fault = st.session_state.get(f"{PAGE}.fault", "")
    rule_update = None
    if lesson.track is not None and not fault:
        try:  # a copy of the track: looking at the step must not take it
            rule_update = L.descent_step(copy.deepcopy(lesson.track), lesson.params, trace.gradient, alpha, lesson.step)
        except PluginError as error:
            fault = str(error)
    if fault:
        # the rule's own line (name, file:line, what broke); the stages that need no rule keep working
        st.error(W.markdown_text(f"{fault}. The step shown is plain gradient descent's."), icon="⚠️")
    rule_broken = rule_update is None
    if rule_update is None:
        rule_update = gd_update
    lit_from = st.session_state.get(f"{PAGE}.lit") if stage == "backprop" else None
    select_key = f"{PAGE}.weight"
    W.prime(select_key, names_flat[0])
    if st.session_state[select_key] not in names_flat:
        st.session_state[select_key] = names_flat[0]

    left, right = st.columns([3, 2])
    with left:
        info = LF.network_info(
            trace,
            stage,
            update=rule_update if stage == "descent" else None,
            lit_from=lit_from,
            selected=names_flat.index(st.session_state[select_key]),
        )
        event = st.plotly_chart(
            LF.draw_network(info, height=380),
            key=f"{PAGE}.chart.network",
            width="stretch",
            on_select="rerun",
            selection_mode="points",
            config=S.TOOLBAR,
            **S.STREAMLIT_CHART,
        )
        points = (
            (event or {}).get("selection", {}).get("points", [])
            if isinstance(event, dict)
            else getattr(getattr(event, "selection", None), "points", []) or []
        )
        picked = [p.get("customdata") for p in points if isinstance(p, dict) and p.get("customdata") is not None]
        if picked:
            index = picked[0][0] if isinstance(picked[0], list) else picked[0]
            if 0 <= int(index) < len(names_flat):
                st.session_state[select_key] = names_flat[int(index)]
        st.caption(
            f"step {lesson.step} · edge width = size of {info.edge_quantity}, blue positive, red negative; "
            "click a weight's dot to see its chain rule"
        )
    with right:
        blown = L.diverged_at([*lesson.losses, trace.loss])
        if blown is not None:  # what the runner would call this run: overflow is a diverged run, not a crash
            st.warning(
                f"Diverged at step {blown}: J = {([*lesson.losses, trace.loss])[blown]:.3g} is not finite or "
                f"beyond {L.DIVERGENCE_FACTOR:g}× its start, as the runner judges a run. Lower α (or pick "
                "another rule) and press *start again*.",
                icon="💥",
            )
        if stage == "forward":
            st.markdown(f"**Example {example}**: x = {np.array2string(trace.inputs, precision=3)}")
            st.latex(
                r"z^{(l)} = a^{(l-1)} W^{(l)} + b^{(l)},\quad a^{(l)} = f\big(z^{(l)}\big)"
            )  # \qquad ran 14 px past the column
            st.markdown(
                f"f = **{trace.activation}** on hidden layers; the output layer keeps z "
                "(the loss reads it directly). Each neuron shows its z and a for this example; hover "
                "for the batch mean."
            )
        elif stage == "cost":
            st.markdown(f"Loss: `{trace.loss_formula}`")
            a, b = st.columns(2)
            a.metric(f"Jₙ, example {example}", f"{trace.example_loss:.5g}")
            b.metric("J, mean over the batch", f"{trace.loss:.5g}")
            st.markdown("Descent lowers **J**, the batch mean: its gradient is the mean of every example's.")
        elif stage == "backprop":
            # one rule per line: side by side, the second (the backward step itself) was cut off at
            # the right edge of the column on a 1280-pixel screen
            st.latex(
                r"\begin{aligned}\delta^{(L)} &= \partial J_n / \partial z^{(L)} \\ "
                r"\delta^{(l-1)} &= f'\big(z^{(l-1)}\big) \odot \delta^{(l)} W^{(l)\top} \\ "
                r"\partial J_n / \partial w_{ij} &= a_i^{(l-1)}\,\delta_j^{(l)}\end{aligned}"
            )
            st.markdown(
                f"The error has reached layer **{lit_from}** (press *3 · Backprop* again to carry it "
                "one layer further back)."
            )
        else:
            two_rules = rule_name != START["baseline"] and not rule_broken
            if not two_rules:  # with another rule, its line below says both steps in less height
                st.latex(r"\Delta w = -\alpha\,\frac{\partial J}{\partial w}\ \text{(gradient descent)}")
            new_params = lesson.params + rule_update
            a, b = st.columns(2)
            a.metric("J now", f"{trace.loss:.5g}")
            b.metric(
                "J′ after the step",
                f"{L.loss_at(instance, new_params):.5g}",
                delta=f"{L.loss_at(instance, new_params) - trace.loss:.3g}",
                delta_color="inverse",
            )
            if two_rules:
                formula = f" ({W.markdown_text(rule.formula)})" if rule.formula else ""
                st.markdown(
                    "Same gradient, two steps: plain gradient descent's Δw = −α·∂J/∂w beside "
                    f"**{W.markdown_text(rule_title)}**'s{formula}; J′ = "
                    f"{L.loss_at(instance, lesson.params + gd_update):.5g} after GD's, "
                    f"{L.loss_at(instance, new_params):.5g} after {W.markdown_text(rule_title)}'s."
                )

        chosen = st.selectbox("weight", names_flat, key=select_key, help="its chain-rule product and its check")
        k = names_flat.index(chosen)
        layer = int(chosen[1 : chosen.index("[")])
        idx = [int(v) for v in chosen[chosen.index("[") + 1 : -1].split(",")]
        t = trace.layers[layer - 1]
        if stage == "descent":
            pass  # backprop's chain rule was the last stage's; here the weight's gradient and its steps
        elif chosen.startswith("W"):
            product = trace.chain_rule(layer, idx[0], idx[1])
            st.markdown(
                f"∂Jₙ/∂{chosen} = a_prev · δ = {product['a_prev']:.4g} × {product['delta']:.4g} = "
                f"**{product['example_gradient']:.4g}** (example {example}; central difference of Jₙ "
                f"**{fd_example[k]:.4g}**)"
            )
        else:
            st.markdown(
                f"∂Jₙ/∂{chosen} = δ = **{t.delta[idx[0]]:.4g}** (example {example}; central difference of Jₙ "
                f"**{fd_example[k]:.4g}**)"
            )
        st.markdown(
            f"∂J/∂{chosen} over the batch: backprop **{trace.gradient[k]:.6g}**, "
            f"central difference **{fd_gradient[k]:.6g}**"
        )
        if stage == "descent":
            st.markdown(
                f"GD step −α·∂J/∂w = **{gd_update[k]:.4g}**"
                + (
                    f"; {W.markdown_text(rule_title)}'s step = **{rule_update[k]:.4g}**"
                    if rule_name != START["baseline"] and not rule_broken
                    else ""
                )
                + f" → new {chosen} = **{lesson.params[k] + rule_update[k]:.4g}**"
            )

    if stage == "descent":
        table = pd.DataFrame(
            {
                "weight": names_flat,
                "w": lesson.params,
                "∂J/∂w (backprop)": trace.gradient,
                "−α·∂J/∂w (GD)": gd_update,
                f"Δw ({rule.name})": rule_update,
                "new w": lesson.params + rule_update,
            }
        )
        if rule_name == START["baseline"] or rule_broken:
            table = table.drop(columns=[f"Δw ({rule.name})"])
        with st.expander("every weight's step", expanded=False):
            st.dataframe(table, hide_index=True, key=f"{PAGE}.table.steps")

# ---- the learning rate, felt ------------------------------------------------------------------------
if view_name == VIEWS[1]:
    controls, picture = st.columns([2, 3])
    options = ["along −∇J (the descent direction)"] + names_flat
    slice_key = f"{PAGE}.slice.{problem}"  # one choice per problem: a one-weight model starts on its weight
    W.prime(slice_key, names_flat[0] if len(names_flat) <= 2 else options[0])
    if st.session_state[slice_key] not in options:
        st.session_state[slice_key] = options[0]
    along = W.remember(
        slice_key,
        controls.selectbox(
            "slice the cost",
            options,
            key=slice_key,
            help="the cost as a function of one weight (the others held), or along the descent direction",
        ),
    )
    view = L.slice_view(instance, lesson.params, weight=None if along == options[0] else names_flat.index(along))
    if not (math.isfinite(view.curvature) and math.isfinite(view.value)):
        controls.warning(
            "The weights or the cost are no longer finite (the steps diverged): there is no curve to "
            "draw. Press *start again* in the sidebar."
        )
    elif not view.curvature > 0:
        controls.warning(
            f"The cost curves down along this slice (λ = {view.curvature:.3g}): there is no bottom "
            "to glide to. Pick another weight or take a step first."
        )
    else:
        lam = view.curvature
        rates = [k * 3.0 / (60.0 * lam) for k in range(1, 61)]
        W.prime(f"{PAGE}.felt_alpha", 20)
        position = controls.select_slider(
            "learning rate α",
            options=list(range(1, 61)),
            key=f"{PAGE}.felt_alpha",
            format_func=lambda k: f"{k * 3.0 / (60.0 * lam):.3g}",
            help="the thresholds ½λ⁻¹, λ⁻¹ and 2λ⁻¹ of the four regimes are drawn right below, on the same α scale",
        )
        rate = rates[int(position) - 1]
        bar = LF.regime_bar_info(lam, rate, span=(rates[0], rates[-1]))  # drawn on the slider's own α range
        controls.plotly_chart(  # right under the slider: its thresholds are the slider's
            LF.draw_regime_bar(bar),
            key=f"{PAGE}.chart.regimes",
            width="stretch",
            config={"displayModeBar": False},
            **S.STREAMLIT_CHART,
        )
        controls.markdown(f"#### {bar.regime}\n{L.REGIME_TEXT[bar.regime]}")
        controls.caption(
            f"λ = {lam:.4g} (the curvature d²J/ds² along the slice, an exact Hessian-vector product): "
            f"glide from α = {0.5 / lam:.3g}, bounce above {1 / lam:.3g}, escape from {2 / lam:.3g}."
        )
        with picture:
            W.chart(
                LF.draw_slice(LF.slice_info(instance, lesson.params, view, rate), height=440), f"{PAGE}.chart.slice"
            )

# ---- predict, then run ----------------------------------------------------------------------------
if view_name == VIEWS[2]:
    title = rule_title
    try:
        threshold = rule_threshold(rule, rule_hyper)
    except Exception:  # a plugin's broken stability_threshold: the sweep below names it in one line
        threshold = None
    theory_label = "theory: none declared" if threshold is None else f"theory {threshold:g}/λₘₐₓ"
    st.markdown(
        f"Guess the **largest α for which {W.markdown_text(title)} still converges** here, from these "
        "starting weights. Then sweep α (200 full-batch steps each: a coarse grid finds the edge, a "
        "fine one narrows it) and compare."
    )
    # the guess and its button on one row, so the whole view fits a 1280×800 screen
    ask, go = st.columns([4, 1], vertical_alignment="bottom")
    W.prime(f"{PAGE}.guess", 1.0)
    guess = float(
        W.remember(
            f"{PAGE}.guess",
            ask.number_input(
                "your guess of the largest converging α",
                min_value=1e-6,
                max_value=1e4,
                format="%g",
                key=f"{PAGE}.guess",
            ),
        )
    )
    if go.button("run the sweep", key=f"{PAGE}.run_sweep", type="primary"):
        st.session_state[f"{PAGE}.swept"] = (spec_json, guess, seed, rule_name, hyper_json)
    if st.session_state.get(f"{PAGE}.swept") == (spec_json, guess, seed, rule_name, hyper_json):
        with st.spinner("sweeping α…"):
            try:
                prediction = _sweep(spec_json, guess, seed, rule_name, hyper_json, W.registry_key(), registry)
            except (SpecError, PluginError) as error:
                _show(error)
                st.stop()
        if prediction.failure:  # a broken rule plugin: its runs failed, and this is why
            st.error(W.markdown_text(prediction.failure), icon="⚠️")
        a, b, c = st.columns(3)
        a.metric(
            "your guess",
            f"{prediction.guess:.3g}",
            delta=prediction.guess_status or None,
            delta_color="normal" if prediction.guess_status in ("converged", "progressing") else "inverse",
            help="and what its own run did",
        )
        b.metric(
            theory_label,
            "—" if math.isnan(prediction.theory) else f"{prediction.theory:.3g}",
            help=f"λₘₐₓ = {prediction.sharpness:.4g} at the start; the constant is the rule's declared "
            "stability threshold at the sidebar's rule settings (an L2 weight decay adds to λₘₐₓ)",
        )
        measured = "none" if math.isnan(prediction.measured) else f"{prediction.measured:.3g}"
        if math.isfinite(prediction.measured) and not math.isfinite(prediction.first_flagged):
            measured = f"≥ {measured}"  # nothing swept blew up: the edge is further out
        c.metric(
            "measured",
            measured,
            help="the largest swept α whose run converged or was still progressing, below every α that blew up "
            + (
                f"(the first that blew up: {prediction.first_flagged:.4g})"
                if math.isfinite(prediction.first_flagged)
                else "(none blew up)"
            ),
        )
        W.chart(LF.draw_prediction(LF.prediction_info(prediction), height=230), f"{PAGE}.chart.prediction")
        st.caption(
            "On a quadratic (linear regression) theory and measurement agree to the sweep's 0.7 %; a "
            "network's λₘₐₓ changes as it trains, so theory at the start is a local prediction."
        )
