"""Stability page: λₘₐₓ, the critical α of each rule, optimal α and rates beside measured runs, sharpness."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import streamlit as st

from descentlab.dashboard import figures as F
from descentlab.dashboard import theory_figures as TF
from descentlab.dashboard import widgets as W
from descentlab.errors import SpecError
from descentlab.problem import exact_hessian, has_hessian_vector_product, is_landscape
from descentlab.sharpness import hessian_extreme_eigenvalues
from descentlab.dashboard.presets import preset
from descentlab.sharpness import preconditioned_sharpness_run
from descentlab.stability import critical_learning_rate, measured_rate, rule_threshold

TITLE = "Stability"
ICON = ":material/balance:"


START = preset("stability")  # dashboard/presets/stability.toml (which problem each section opens on)
# Every number below comes from the rules' declarations (stability_threshold, threshold_note,
# optimal, preconditioner): the page names no rule, so a plugin's theory appears beside the built-ins'.


@st.cache_data(show_spinner=False, max_entries=32)
def spectrum(problem: str, settings_json: str, registry_key: tuple, _registry) -> dict:
    """λₘₐₓ, λₘᵢₙ at the start point by Lanczos on Hessian-vector products, and what the problem declares."""
    instance = _registry.problem(problem).build(json.loads(settings_json))
    params = instance.init_params([0])
    top, bottom = hessian_extreme_eigenvalues(instance, params, iters=instance.layout.size)
    info = instance.describe()
    minima = list(instance.minima) if is_landscape(instance) else []  # the declared Landscape minima
    return {
        "lambda_max": float(top[0]),
        "lambda_min": float(bottom[0]),
        "declared": info.get("top_eigenvalue"),
        "minimum_value": float(info.get("minimum_value", 0.0) or 0.0),
        "start": [float(v) for v in params[0]],
        "minimum": ([float(v) for v in minima[0]] if len(minima) == 1 else None),
    }


def theory_problems(registry) -> list[str]:
    """Problems with a closed-form Hessian (the declared ExactHessian capability, not None at the
    start): the theory below is exact on them. The preset's problem first."""

    def exact(problem, instance):
        return exact_hessian(instance, instance.init_params([0])) is not None

    return _preset_first(
        W.problems_where(registry, exact, ("landscape", "regression", "classification")), START.get("problem")
    )


def network_problems(registry) -> list[str]:
    """Problems whose sharpness comes from exact Hessian-vector products and not from a closed-form
    Hessian (the declared HessianVectorProduct capability: networks). The preset's problem first."""

    def network(problem, instance):
        return has_hessian_vector_product(instance) and exact_hessian(instance, instance.init_params([0])) is None

    return _preset_first(
        W.problems_where(registry, network, ("regression", "classification")), START.get("eos_problem")
    )


def _preset_first(names: list[str], first: str | None) -> list[str]:
    return ([first] if first in names else []) + [n for n in names if n != first]


@st.cache_data(show_spinner="training with preconditioned-sharpness tracking …", max_entries=16)
def preconditioned_tracking(
    problem: str, rule: str, learning_rate: float, steps: int, every: int, registry_key: tuple, _registry
) -> dict:
    instance = _registry.problem(problem).build({h.name: h.default for h in _registry.problem(problem).settings})
    return preconditioned_sharpness_run(instance, _registry.rule(rule), learning_rate, steps, every, registry=_registry)


def momentum_hyper(rule, mu: float) -> dict:
    """The page's μ for a rule that declares a ``momentum`` hyperparameter, else nothing."""
    return {"momentum": mu} if any(h.name == "momentum" for h in rule.hyperparams) else {}


# Settings shown as widgets when the chosen problem declares them (by setting, never by problem):
# (setting, label, low, high, type); the rest keep their declared defaults.
SETTING_WIDGETS = (
    ("lambda_max", "λₘₐₓ", 0.01, 1e4, float),
    ("condition", "condition number κ", 1.0, 1e5, float),
    ("angle", "angle (degrees)", -180.0, 180.0, float),
    ("samples", "samples", 4, 10_000, int),
    ("x_high", "x_high (x uniform in [x_low, x_high])", 0.1, 100.0, float),
    ("noise", "noise", 0.0, 10.0, float),
)


def settings_for(problem: str, registry) -> dict:
    """The chosen problem's declared settings among SETTING_WIDGETS as widgets, three to a row."""
    settings = {h.name: h.default for h in registry.problem(problem).settings}
    shown = [w for w in SETTING_WIDGETS if w[0] in settings]
    for row in range(0, len(shown), 3):
        cols = st.columns(3)
        for col, (name, label, low, high, kind) in zip(cols, shown[row : row + 3]):
            settings[name] = kind(
                col.number_input(label, kind(low), kind(high), kind(settings[name]), key=f"stability_{name}")
            )
    return settings


def threshold_table(lam: float, mu: float) -> pd.DataFrame:
    """One row per registered rule: its declared threshold c at the page's μ, and c/λₘₐₓ."""
    rows = []
    for name, rule in registry.rules.items():
        hyper = momentum_hyper(rule, mu)
        try:  # a plugin's threshold must not break the page
            c = rule_threshold(rule, hyper)
            crit = critical_learning_rate(rule, hyper, lam)
            text = rule.threshold_note or ("declared by the rule" if c is not None else "no fixed threshold")
        except Exception as error:
            c, crit, text = None, None, f"threshold failed: {type(error).__name__}"
        rows.append({"rule": name, "stable iff": text, "c": c, "critical α = c/λₘₐₓ": crit})
    return pd.DataFrame(rows)


def edge_rules(lam: float, mu: float) -> list[tuple[str, dict, float]]:
    """(rule, hyper, critical α) of the rules that declare a threshold, one per distinct critical α."""
    out: list[tuple[str, dict, float]] = []
    for name, rule in registry.rules.items():
        hyper = momentum_hyper(rule, mu)
        try:
            crit = critical_learning_rate(rule, hyper, lam)
        except Exception:
            continue
        if crit is not None and math.isfinite(crit) and not any(math.isclose(crit, c) for _, _, c in out):
            out.append((name, hyper, float(crit)))
    return out


st.title("Stability: where the edge is, and why")
st.markdown(
    "On a quadratic with top Hessian eigenvalue λₘₐₓ, gradient descent is stable iff **α·λₘₐₓ < 2**; "
    "heavy-ball momentum iff α·λₘₐₓ < 2 + 2μ; Nesterov iff α·λₘₐₓ < (2 + 2μ)/(1 + 2μ). Each rule "
    "declares its constant c, so the **critical learning rate** c/λₘₐₓ is known before running. "
    "λₘₐₓ here is measured by "
    "Lanczos on Hessian-vector products through the backprop engine."
)

registry = W.current_registry()
names = theory_problems(registry)
problem = st.selectbox("problem", names, key="stability_problem")
settings = settings_for(problem, registry)
mu = float(st.slider("momentum μ (heavy ball, Nesterov)", 0.0, 0.99, 0.9, 0.01, key="stability_momentum"))

try:
    spec = spectrum(problem, json.dumps(settings, sort_keys=True), W.registry_key(), registry)
except (SpecError, ValueError) as error:
    W.show_error(error)
    st.stop()

lam_max, lam_min = spec["lambda_max"], spec["lambda_min"]
where = "everywhere (a quadratic)" if spec["declared"] is not None else "at the starting point (not a quadratic)"
cols = st.columns(3)
cols[0].metric("λₘₐₓ", f"{lam_max:.6g}", help="largest Hessian eigenvalue " + where)
cols[1].metric("λₘᵢₙ", f"{lam_min:.6g}")
kappa = lam_max / lam_min if lam_min > 0 else math.inf
cols[2].metric("condition number κ", f"{kappa:.6g}" if math.isfinite(kappa) else "∞ (not convex here)")
if spec["declared"] is not None:
    st.caption(f"The problem declares λₘₐₓ = {spec['declared']:.10g}; measured {lam_max:.10g}.")

st.subheader("Critical learning rate per rule")
table = threshold_table(lam_max, mu)
st.dataframe(table, key="stability_thresholds", hide_index=True)

quadratic = spec["declared"] is not None and lam_min > 0
steps = int(st.slider("steps of the runs below", 50, 1000, 200, 50, key="stability_steps"))

if quadratic:
    st.subheader("Sweep: runs on both sides of the edge")
    edges = edge_rules(lam_max, mu)
    smallest = min((c for _, _, c in edges), default=2.0 / lam_max)
    alphas = [smallest * 10 ** (k / 12.0) for k in range(-18, 9)]
    sweep_spec = {
        "name": "stability-sweep",
        "steps": steps,
        "seeds": [0],
        "eval_every": steps,
        "problem": {"name": problem, **settings},
        "rules": [{"rule": name, "learning_rate": alphas, **hyper} for name, hyper, _ in edges],
    }
    try:
        sweep = W.run_spec(sweep_spec, registry)
        fig = F.draw_sweep(F.sweep_info(sweep))
        TF.add_critical_lines(fig, TF.critical_lines_info(sweep))
        W.chart(fig, key="stability_sweep_chart")
        notes = W.divergence_notes(sweep)
        if notes:
            with st.expander(f"why {len(notes)} runs blew up (unstable or diverged) or failed"):
                st.markdown("\n".join(f"- {n}" for n in notes[:40]))
    except SpecError as error:
        W.show_error(error)

    st.subheader("Optimal α and convergence rate: theory beside measurement")
    # rules that declare their optimal constant hyperparameters on a quadratic (GD, heavy ball, plugins)
    best = {name: rule.optimal(lam_min, lam_max) for name, rule in registry.rules.items() if rule.optimal}
    declared = {name: {h.name for h in registry.rule(name).hyperparams} for name in best}
    rate_spec = {
        "name": "stability-rates",
        "steps": steps,
        "seeds": [0],
        "eval_every": steps,
        "problem": {"name": problem, **settings},
        "rules": [
            {
                "rule": name,
                "learning_rate": b["learning_rate"],
                **{k: v for k, v in b.items() if k in declared[name]},
                "label": f"{registry.rule(name).display_title(b)} at its optimum",
            }
            for name, b in best.items()
        ],
    }
    try:
        rates = W.run_spec(rate_spec, registry)
        curves = []
        measured = {}
        for row in rates.runs.sort_values("run_id").itertuples(index=False):
            losses = rates.run_metrics(int(row.run_id))["loss"].to_numpy()
            path = (rates.weights or {}).get("path")
            if path is not None and spec["minimum"] is not None:
                # distances ‖θₜ − θ*‖ reach rounding only near 1e-16·‖θ*‖, loss gaps near J* ≠ 0 much sooner
                star = np.asarray(spec["minimum"])
                distances = np.linalg.norm(path[int(row.run_id)] - star, axis=1)
                floor = 1e-14 * max(float(np.linalg.norm(star)), 1e-290) / max(float(distances[0]), 1e-300)
                rho = measured_rate(distances, 0.0, floor=floor, order=1)
            else:
                rho = measured_rate(losses, spec["minimum_value"], floor=1e-200)
            theory = best[row.rule]["rate"]
            measured[row.rule] = rho
            curves.append((row.label, losses, theory, rho))
        rows = []
        for name, b in best.items():
            others = {
                ("optimal μ" if k == "momentum" else f"optimal {k}"): v for k, v in b.items() if k in declared[name]
            }
            rows.append(
                {
                    "rule": name,
                    "optimal α": b["learning_rate"],
                    **others,
                    "theory rate": b["rate"],
                    "formula": b.get("formula", ""),
                    "measured rate": measured.get(name),
                }
            )
        rate_table = pd.DataFrame(rows)
        st.dataframe(rate_table, key="stability_rates", hide_index=True)
        st.caption(
            "ρ is the per-step contraction of ‖θ − θ*‖, measured as the fitted per-step ratio of the "
            "distances to the minimum over the later half of the run (equivalently: the loss gap shrinks "
            "like ρ²ᵗ, the square root of the per-step loss ratio). "
            "The heavy-ball rate is reached asymptotically (the error decays like t·ρᵗ). PyTorch's "
            "momentum convention v = μv + g; θ −= αv follows the same trajectory as Polyak's heavy "
            "ball with the same α and μ at a constant α."
        )
        W.chart(TF.draw_rates(TF.rate_info(curves, minimum=spec["minimum_value"])), key="stability_rate_chart")
    except SpecError as error:
        W.show_error(error)
else:
    st.info(
        "This landscape is not a quadratic: λₘₐₓ changes from point to point, so the numbers above hold "
        "only near the starting point. Track the sharpness during training below to see the edge move."
    )

st.subheader("Edge of stability: sharpness during training")
st.markdown(
    "Full-batch gradient descent on a network typically **sharpens** (λₘₐₓ grows) until λₘₐₓ reaches "
    "**2/α**, then hovers there while the loss keeps falling non-monotonically (Cohen et al., 2021). "
    "The dashed line is each run's own limit c/αₜ."
)
eos_names = network_problems(registry)
cols = st.columns(4)
eos_problem = cols[0].selectbox("network problem", eos_names, key="stability_eos_problem")
offered = [r for r in START["eos_rules"] if r in registry.rules]
offered += [r for r in registry.rules if r not in offered]
eos_rule = cols[1].selectbox("rule", offered, key="stability_eos_rule")
eos_lr = float(cols[2].number_input("learning rate α", 1e-4, 10.0, 0.1, format="%g", key="stability_eos_lr"))
eos_steps = int(cols[3].number_input("steps", 20, 5000, 400, 20, key="stability_eos_steps"))
eos_every = int(st.slider("measure the sharpness every k steps", 1, 100, 10, key="stability_eos_every"))
if st.button("Run with sharpness tracking", key="stability_eos_run"):
    st.session_state["stability_eos_requested"] = True
chosen = registry.rule(eos_rule)
if (
    st.session_state.get("stability_eos_requested")
    and chosen.preconditioner is not None
    and chosen.preconditioned_limit is not None
):
    # The runner records λₘₐₓ(H) only; a preconditioned rule's edge is on λₘₐₓ(P⁻¹H) (needs its state).
    tracked = preconditioned_tracking(eos_problem, eos_rule, eos_lr, eos_steps, eos_every, W.registry_key(), registry)
    title = chosen.display_title()
    threshold = tracked["limit"] * eos_lr  # the limit is c/α
    alphas = [eos_lr] * (eos_steps + 1)
    info = TF.SharpnessInfo(
        series=[
            TF.sharpness_series(
                title,
                tracked["steps"],
                tracked["preconditioned"][0],
                learning_rates=alphas,
                threshold=threshold,
                rule=eos_rule,
                index=0,
                kind="preconditioned",
            ),
            TF.sharpness_series(title, tracked["steps"], tracked["sharpness"][0], index=1),
        ],
        title=f"{title}: preconditioned sharpness λₘₐₓ(P⁻¹H) against {threshold:.3g}/α (dashed), and plain λₘₐₓ(H)",
    )
    W.chart(TF.draw_sharpness(info), key="stability_sharpness_chart")
    st.caption(
        f"{W.markdown_text(title)}'s declared limit = {tracked['limit']:.4g} applies to the preconditioned sharpness "
        "(Cohen et al., 2022), not to λₘₐₓ(H); the plain sharpness has no fixed limit under it."
    )
elif st.session_state.get("stability_eos_requested"):
    eos_spec = {
        "name": "edge-of-stability",
        "steps": eos_steps,
        "seeds": [0],
        "eval_every": eos_steps,
        "sharpness_every": eos_every,
        "problem": {"name": eos_problem},
        "rules": [{"rule": eos_rule, "learning_rate": eos_lr}],
    }
    try:
        eos = W.run_spec(eos_spec, registry)
        info = TF.sharpness_info(eos)
        W.chart(TF.draw_sharpness(info), key="stability_sharpness_chart")
        series = info.series[0] if info.series else None
        if series is not None and series.limit and series.sharpness:
            limit = series.limit[0]
            values = [v for v in series.sharpness if v is not None]
            tail = values[len(values) * 2 // 3 :] or values
            st.caption(
                f"Limit {W.markdown_text(series.limit_label)} = {limit:.4g}; sharpness at the start {values[0]:.4g}, "
                f"highest {max(values):.4g}, mean over the last third of the run "
                f"{sum(tail) / len(tail):.4g}."
            )
        for note in W.divergence_notes(eos):
            st.markdown(f"- {note}")
    except SpecError as error:
        W.show_error(error)
