"""Streamlit building blocks: widgets generated from HyperParam declarations, the experiment editor,
cached runs and the views of a Results that several pages share.

Widgets are generated from declarations, so a plugin's new rule, schedule or problem gets its
widgets without any change here. Every widget has a ``key=``; values are kept across page switches
(Streamlit forgets the state of widgets that are not on screen) and mirrored into the URL query
string so that a shared link reopens the same comparison.
"""

from __future__ import annotations

import contextvars
import json
import math
import os
import re
import threading
import weakref
from dataclasses import replace
from typing import Any, Callable, Sequence, TypeVar

import numpy as np
import streamlit as st
from streamlit.runtime.scriptrunner import get_script_run_ctx

from descentlab import analysis
from descentlab.declarations import HyperParam
from descentlab.errors import SpecError
from descentlab.experiment import setting
from descentlab.faults import build_instance
from descentlab.problem import is_classifier
from descentlab.registry import PLUGINS_ENV, Registry, env_plugin_paths, load_registry, plugin_code

from . import access
from . import figures as F
from . import style as S
from .presets import preset
from .status_style import STATUS_STYLE, counts_text, is_flagged, style_of

KEEP = "_descentlab_keep"  # session key: widget values kept across page switches
PLUGIN_PATHS = "_descentlab_plugin_paths"
LOADED_CODE = "_plugin_loaded_code"  # path -> file_fingerprint when the Plugins page last loaded it
MAX_RULES = 8
MAX_SEEDS = 20
DASHBOARD_MAX_STEPS = 100_000  # keeps a browser tab responsive; the CLI has no such limit


# ---------------------------------------------------------------------------------------------
# Navigation: deep links on a fresh server
# ---------------------------------------------------------------------------------------------

# The comparison both the Compare and Decision-boundary pages open on (dashboard/presets/compare.toml).
DEFAULT_COMPARISON_RULES = tuple(preset("compare")["rules"])


# ---------------------------------------------------------------------------------------------
# Plugins: the registry the dashboard uses (built-ins, entry points, env var, files loaded here)
# ---------------------------------------------------------------------------------------------


@st.cache_resource(show_spinner=False, max_entries=8)
def _load_registry(paths: tuple[str, ...], env: str, fingerprint: tuple) -> Registry:
    return load_registry(paths)


def plugin_paths() -> tuple[str, ...]:
    return tuple(st.session_state.get(PLUGIN_PATHS, ()))


def file_fingerprint(path: str) -> str:
    """The digest of one plugin file's bytes (:func:`descentlab.registry.plugin_code`)."""
    return plugin_code([path])[0][1]


def plugins_fingerprint(paths: tuple[str, ...] | None = None) -> tuple:
    """(path, digest) of every plugin file the dashboard loads: this session's (or ``paths``) and
    DESCENTLAB_PLUGINS's."""
    return plugin_code((*(plugin_paths() if paths is None else paths), *env_plugin_paths()))


def current_registry() -> Registry:
    """Built-ins, installed entry points, DESCENTLAB_PLUGINS files and files loaded on the Plugins page;
    loaded again whenever one of those files changed."""
    return _load_registry(*registry_key())


def unknown_name(
    key: str, wanted: Any, names: Sequence[str], kind: str, field: str, errors: list[str]
) -> Callable[[], None]:
    """A name from a shared link or preset (``wanted``) that this session has no plugin for: an error
    naming it, kept until the user picks another in the selectbox ``key`` (pass the returned
    callback as its ``on_change``). Never replaced silently: the page would run another rule."""
    missing_key = f"_{key}.missing"
    if key not in st.session_state and isinstance(wanted, str) and wanted and wanted not in names:
        st.session_state[missing_key] = wanted
    missing = st.session_state.get(missing_key)
    if missing is not None:
        errors.append(
            f"{field}: {kind} {missing!r} is not registered in this session: load its plugin on the "
            f"Plugins page, or choose another {kind}"
        )
    return lambda: st.session_state.pop(missing_key, None)


_RULE_FIELD = re.compile(r"\brules\[(\d+)\](?:\.\w+|\[\d+\])*")


def form_numbering(message: str) -> str:
    """Messages name a variant as the form does: ``rules[0].beta1`` is shown as ``rule #1
    (rules[0].beta1)`` — the form counts from 1, the experiment file from 0, and both stay visible."""
    return _RULE_FIELD.sub(lambda m: f"rule #{int(m.group(1)) + 1} ({m.group(0)})", message)


def plugin_warnings(registry: Registry) -> None:
    """Plugins that failed to load, one line each; everything else on the page keeps working."""
    if registry.errors:
        lines = [markdown_text(e.splitlines()[0]) for e in registry.errors]
        st.warning(
            "Some plugins did not load (details on the Plugins page):  \n"
            + "  \n".join(lines[:5])
            + ("  \n…" if len(lines) > 5 else "")
        )


def registry_key(paths: tuple[str, ...] | None = None) -> tuple:
    """What cached results depend on besides their settings: which plugin files, with which code.

    ``paths``: the plugin files loaded on the Plugins page (default: this session's; ``()`` is a fresh
    session's, which is what :func:`warm_up` runs under, outside any session)."""
    paths = plugin_paths() if paths is None else paths
    return paths, os.environ.get(PLUGINS_ENV, ""), plugins_fingerprint(paths)


def add_plugin_path(path: str) -> Registry:
    """Load a plugin file into the dashboard's registry (for this session); returns the new registry.

    Refused (PermissionError) when plugin files are off: see :func:`access.plugin_files_allowed`.
    """
    allowed, why_not = access.plugin_files_allowed()
    if not allowed:
        raise PermissionError(access.plugin_files_off_message(why_not))
    resolved = os.path.abspath(os.path.expanduser(path))
    paths = [p for p in plugin_paths() if p != resolved] + [resolved]
    st.session_state[PLUGIN_PATHS] = tuple(paths)
    st.session_state.setdefault(LOADED_CODE, {})[resolved] = file_fingerprint(resolved)
    return current_registry()  # a changed file has a new fingerprint, so it is imported again


def loaded_code(path: str) -> str | None:
    """The fingerprint of ``path`` when this session last loaded it on the Plugins page (None: never)."""
    return st.session_state.get(LOADED_CODE, {}).get(os.path.abspath(os.path.expanduser(path)))


# ---------------------------------------------------------------------------------------------
# State kept across page switches
# ---------------------------------------------------------------------------------------------


def _keep() -> dict:
    if KEEP not in st.session_state:
        st.session_state[KEEP] = {}
    return st.session_state[KEEP]


def prime(key: str, default: Any) -> None:
    """Give a widget its starting value through session state (kept value, else ``default``)."""
    if key not in st.session_state:
        st.session_state[key] = _keep().get(key, default)


def remember(key: str, value: Any) -> Any:
    _keep()[key] = value
    return value


# ---------------------------------------------------------------------------------------------
# Widgets from declarations
# ---------------------------------------------------------------------------------------------


def format_int_list(values) -> str:
    return ", ".join(str(int(v)) for v in values)


def parse_int_list(text: str, field: str, accepted: str = "a list of integers, e.g. 32, 32") -> list[int]:
    """``"32, 32"`` -> ``[32, 32]``; anything else is a one-line SpecError."""
    parts = [p for p in re.split(r"[,\s;]+", str(text).strip().strip("[]()")) if p]
    try:
        return [int(p) for p in parts]
    except ValueError:
        raise SpecError(field, text, accepted) from None


def widget_value(h: HyperParam, value: Any) -> Any:
    """A declared value as the widget holds it (int lists are edited as text)."""
    if h.kind == "int_list":
        if isinstance(value, str):  # already text (a typed value, or a link carrying "32, 32")
            return value
        try:
            return format_int_list(value if isinstance(value, (list, tuple)) else [value])
        except (TypeError, ValueError):
            return str(value)  # shown as typed; parsing it reports the one-line error
    if h.kind == "float" and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if h.kind == "int" and isinstance(value, (int, float)) and not isinstance(value, bool):
        return int(value)
    return value


def spec_value(h: HyperParam, raw: Any, field: str) -> Any:
    """The widget's value as the experiment spec wants it (text -> int list)."""
    if h.kind == "int_list":
        return parse_int_list(raw, field, h.accepted())
    return raw


def hyperparam_widget(h: HyperParam, key: str, default: Any = None, *, label: str | None = None, container=None) -> Any:
    """Draw the widget a declaration asks for and return its raw value.

    float -> slider when both bounds are closed and the scale is linear, else a number input
    (log-scale values are typed, e.g. 3e-4); int -> number input; bool -> checkbox; choice ->
    selectbox; str and int_list -> text input ("32, 32").
    """
    where = container or st
    label = label or h.name
    help_text = (h.help + "  \n" if h.help else "") + f"accepts {h.accepted()}"
    start = _coerce(h, default)
    if h.kind == "choice":
        options = list(h.choices)
        if start not in options:
            start = h.default
        prime(key, start)
        if st.session_state[key] not in options:
            st.session_state[key] = h.default
        value = where.selectbox(label, options, key=key, help=help_text)
    elif h.kind == "bool":
        prime(key, bool(start))
        value = where.checkbox(label, key=key, help=help_text)
    elif h.kind in ("str", "int_list"):
        prime(key, str(start))
        value = where.text_input(label, key=key, help=help_text)
    elif h.kind == "int":
        # No min/max on the widget: an out-of-range value (typed, or from a shared link) must reach
        # the validator and come back as a one-line message, not as a widget exception.
        prime(key, int(start))
        value = where.number_input(label, step=1, key=key, help=help_text)
    else:
        prime(key, float(start))
        current = st.session_state[key]
        bounded = (
            h.low is not None
            and h.high is not None
            and not h.log
            and (h.high - h.low) <= 1000
            and isinstance(current, (int, float))
            and h.low <= current <= h.high
        )
        if bounded:
            value = where.slider(
                label,
                min_value=float(h.low),
                max_value=float(h.high),
                step=_nice_step(h.low, h.high),
                key=key,
                help=help_text,
                format="%g",
            )
        else:
            # The step is fixed by the declaration's default (a widget's step must not change).
            value = where.number_input(
                label, key=key, help=help_text, format="%g", step=_log_step(h.default) if h.log else None
            )
    return remember(key, value)


def _coerce(h: HyperParam, value: Any) -> Any:
    """The widget's starting value; one of the wrong type (e.g. from an edited link) falls back to the default."""
    value = widget_value(h, h.default if value is None else value)
    kinds = {"bool": (bool,), "int": (int,), "float": (int, float), "str": (str,), "int_list": (str,)}
    wanted = kinds.get(h.kind)
    if wanted and (not isinstance(value, wanted) or (h.kind != "bool" and isinstance(value, bool))):
        return widget_value(h, h.default)
    return value


def _nice_step(low: float, high: float) -> float:
    span = float(high) - float(low)
    return 10.0 ** math.floor(math.log10(span / 100.0)) if span > 0 else 0.01


def _log_step(value: float) -> float:
    value = abs(float(value)) or 1.0
    return 10.0 ** math.floor(math.log10(value))


# ---------------------------------------------------------------------------------------------
# The experiment editor: problem, run settings, descent-rule entries -> experiment dict
# ---------------------------------------------------------------------------------------------


def _default_of(declarations: Sequence[HyperParam]) -> dict:
    return {h.name: h.default for h in declarations}


def declared_values(
    declarations: Sequence[HyperParam], key_prefix: str, spec: dict, where: str, errors: list[str]
) -> dict:
    """One widget per declaration (keys ``key_prefix.<name>``); returns the values that differ from the defaults.

    A value that does not validate adds its one-line message (field ``where.<name>``) to ``errors``.
    """
    values = {}
    for h in declarations:
        raw = hyperparam_widget(h, f"{key_prefix}.{h.name}", spec.get(h.name, h.default))
        try:
            value = spec_value(h, raw, f"{where}.{h.name}")
        except SpecError as error:
            errors.append(str(error))
            continue
        if value != h.default:
            values[h.name] = value
    return values


def problem_editor(
    prefix: str,
    registry: Registry,
    spec_problem: dict,
    *,
    names: Sequence[str] | None = None,
    container=None,
    errors: list[str],
    needs: str = "",
) -> dict:
    """Problem selectbox and its settings; returns the ``[problem]`` table (non-default settings only).

    ``needs`` says which capability the page's ``names`` have (e.g. "two parameters"): a registered
    problem without it that a link asks for is replaced by the page's own choice, with one line
    saying so."""
    where = container or st
    names = list(names if names is not None else sorted(registry.problems))
    if not names:
        where.error("No problem of the right kind is registered.")
        return {}
    key = f"{prefix}.problem"
    # (a registered problem this page does not offer, e.g. a network on the Landscape page, is a
    # question of capability, not of a missing plugin: the page's own choice is kept for it)
    picked = unknown_name(
        key, spec_problem.get("name"), [*names, *registry.problems], "problem", "problem.name", errors
    )
    start = spec_problem.get("name") if spec_problem.get("name") in names else names[0]
    lacking_key = f"_{key}.lacking"
    wanted = spec_problem.get("name")
    if key not in st.session_state and isinstance(wanted, str) and wanted in registry.problems and wanted not in names:
        st.session_state[lacking_key] = (wanted, start)
    if st.session_state.get(lacking_key) is not None:
        lacking, shown = st.session_state[lacking_key]
        where.warning(
            markdown_text(
                f"problem.name: got {lacking!r}; expected a problem this page can draw"
                + (f" ({needs})" if needs else "")
                + f", such as {', '.join(names)}. "
                f"Showing {shown!r} instead."
            ),
            icon="⚠️",
        )

    def changed() -> None:
        picked()
        st.session_state.pop(lacking_key, None)

    prime(key, start)
    if st.session_state[key] not in names:
        st.session_state[key] = names[0]
    name = remember(
        key,
        where.selectbox(
            "problem",
            names,
            key=key,
            on_change=changed,
            help="every run sees the same data and starts from the same weights per seed",
        ),
    )
    problem = registry.problems[name]
    if problem.summary:
        where.caption(markdown_text(problem.summary))
    table: dict[str, Any] = {"name": name}
    with where.expander("problem settings", expanded=False):
        table.update(declared_values(problem.settings, f"{prefix}.problem.{name}", spec_problem, "problem", errors))
    return table


def run_settings_editor(
    prefix: str, spec: dict, *, container=None, seeds: bool = True, errors: list[str] | None = None
) -> dict:
    """Steps, seeds, batch size and evaluation interval (values outside the dashboard's limits are reported)."""
    where = container or st
    out = {}
    # The experiment's own declarations (defaults, bounds, help); only the dashboard's limits differ.
    steps_decl = replace(setting("steps"), high=DASHBOARD_MAX_STEPS)
    out["steps"] = hyperparam_widget(
        steps_decl, f"{prefix}.steps", spec.get("steps", steps_decl.default), container=where
    )
    if seeds:
        count = spec.get("seeds", setting("seeds").default)
        count = len(count) if isinstance(count, list) else count  # a list of seeds -> its length
        seeds_decl = replace(
            setting("seeds"),
            high=MAX_SEEDS,
            help=setting("seeds").help + "; with several: median and interquartile band",
        )
        out["seeds"] = hyperparam_widget(seeds_decl, f"{prefix}.seeds", count, container=where)
    for name in ("batch_size", "eval_every"):
        decl = setting(name)
        out[name] = hyperparam_widget(decl, f"{prefix}.{name}", spec.get(name, decl.default), container=where)
    # In the form 0 means "no target" (a number field cannot be empty), so the widget starts at 0.
    target_decl = replace(setting("target_loss"), low=0.0, help=setting("target_loss").help + "; 0 = none")
    target = hyperparam_widget(
        target_decl,
        f"{prefix}.target_loss",
        spec.get("target_loss") or 0.0,
        container=where,
        label="target loss (0 = none)",
    )
    if target:
        out["target_loss"] = float(target)
    if errors is not None:
        if not 1 <= int(out["steps"]) <= DASHBOARD_MAX_STEPS:
            errors.append(
                str(
                    SpecError(
                        "steps",
                        out["steps"],
                        steps_decl.accepted(),
                        hint="the dashboard's limit; the CLI runs longer experiments",
                    )
                )
            )
        if seeds and not 1 <= int(out["seeds"]) <= MAX_SEEDS:
            errors.append(str(SpecError("seeds", out["seeds"], seeds_decl.accepted())))
    return out


def sidebar_editors(
    prefix: str,
    registry: Registry,
    spec: dict,
    errors: list[str],
    *,
    names: Sequence[str] | None = None,
    seeds: bool = True,
    needs: str = "",
) -> tuple[dict, dict]:
    """The sidebar's Problem and Runs sections; returns ``(problem table, run settings)``."""
    with st.sidebar:
        st.header("Problem")
        problem = problem_editor(prefix, registry, spec.get("problem", {}), names=names, errors=errors, needs=needs)
        st.header("Runs")
        settings = run_settings_editor(prefix, spec, seeds=seeds, errors=errors)
    return problem, settings


def transforms_editor(key_prefix: str, where: str, registry: Registry, spec_transforms, errors: list[str]) -> list:
    """Gradient transforms of one entry: a multiselect (the order picked is the order applied) and each
    chosen transform's hyperparameter widgets, generated from its declaration; returns the entry's
    ``transforms`` list (non-default values only), empty when none is chosen."""
    names = list(registry.transforms)
    if not names:
        return []
    given = []
    for item in spec_transforms if isinstance(spec_transforms, list) else []:
        item = {"name": item} if isinstance(item, str) else item
        if isinstance(item, dict) and item.get("name") in names and item["name"] not in [g["name"] for g in given]:
            given.append(item)
    key = f"{key_prefix}.transforms"
    prime(key, [g["name"] for g in given])
    if any(n not in names for n in st.session_state[key]):  # a plugin went away: keep what is still known
        st.session_state[key] = [n for n in st.session_state[key] if n in names]
    chosen = remember(
        key,
        st.multiselect(
            "gradient transforms",
            names,
            key=key,
            help="applied in the order picked: before the rule on the gradient, wrappers after it on its step",
        ),
    )
    out = []
    for position, name in enumerate(chosen):
        transform = registry.transforms[name]
        spec_item = next((g for g in given if g["name"] == name), {})
        values = {}
        if transform.hyperparams:
            kind = "wrapper" if transform.is_wrapper else "before the rule"
            with st.expander(f"{name} ({kind})", expanded=False):
                if transform.formula:
                    st.caption(transform.formula)
                values = declared_values(
                    transform.hyperparams,
                    f"{key_prefix}.transforms.{name}",
                    spec_item,
                    f"{where}.transforms[{position}]",
                    errors,
                )
        out.append({"name": name, **values})
    return out


def rule_entry_editor(
    prefix: str,
    i: int,
    registry: Registry,
    spec_entry: dict,
    errors: list[str],
    *,
    alpha_mode: str = "single",
    transforms: bool = False,
) -> dict:
    """One descent variant: rule, label, α (or an α range), its hyperparameters and schedule."""
    rules = sorted(registry.rules)
    key = f"{prefix}.rules.{i}.rule"
    picked = unknown_name(key, spec_entry.get("rule"), rules, "rule", f"rules[{i}].rule", errors)
    start = spec_entry.get("rule") if spec_entry.get("rule") in rules else rules[0]
    prime(key, start)
    if st.session_state[key] not in rules:
        st.session_state[key] = rules[0]
    rule_name = remember(key, st.selectbox(f"rule #{i + 1}", rules, key=key, on_change=picked))
    rule = registry.rules[rule_name]
    if rule.formula:
        st.caption(markdown_text(rule.formula))
    entry: dict[str, Any] = {"rule": rule_name}
    same_rule = spec_entry.get("rule") == rule_name
    # Keyed by rule: choosing another rule starts from that rule's own label and defaults.
    label_key = f"{prefix}.rules.{i}.{rule_name}.label"
    prime(label_key, str(spec_entry.get("label", "")) if same_rule else "")
    label = remember(label_key, st.text_input("label (optional)", key=label_key))
    if label.strip():
        entry["label"] = label.strip()
    lr_spec = spec_entry.get("learning_rate", rule.default_learning_rate) if same_rule else rule.default_learning_rate
    base = f"{prefix}.rules.{i}.{rule_name}"
    if alpha_mode == "single":
        alpha = (lr_spec[0] if lr_spec else None) if isinstance(lr_spec, list) else lr_spec
        alpha_decl = HyperParam(
            "learning_rate",
            float(rule.default_learning_rate),
            log=True,
            low=0.0,
            low_open=True,
            help="base learning rate α (the schedule scales it over steps)",
        )
        entry["learning_rate"] = hyperparam_widget(
            alpha_decl, f"{base}.learning_rate", alpha, label="α (learning rate)"
        )
    hyper_spec = spec_entry if same_rule else {}
    if rule.hyperparams:
        with st.expander(f"{markdown_text(rule_name)} hyperparameters", expanded=False):
            entry.update(declared_values(rule.hyperparams, base, hyper_spec, f"rules[{i}]", errors))
    schedules = sorted(registry.schedules)
    schedule_spec = spec_entry.get("schedule", {})
    if isinstance(schedule_spec, str):
        schedule_spec = {"name": schedule_spec}
    skey = f"{prefix}.rules.{i}.schedule"
    start = schedule_spec.get("name", "constant")
    picked_schedule = unknown_name(skey, start, schedules, "schedule", f"rules[{i}].schedule.name", errors)
    prime(skey, start if start in schedules else ("constant" if "constant" in schedules else schedules[0]))
    if st.session_state[skey] not in schedules:
        st.session_state[skey] = schedules[0]
    schedule_name = remember(skey, st.selectbox("schedule", schedules, key=skey, on_change=picked_schedule))
    schedule = registry.schedules[schedule_name]
    schedule_table: dict[str, Any] = {}
    same_schedule = schedule_spec.get("name", "constant") == schedule_name
    # Every schedule gets the expander: warm-up is a generic option of all of them.
    with st.expander(f"schedule {markdown_text(schedule_name)}", expanded=False):
        if schedule.formula:
            st.caption(markdown_text(schedule.formula))
        schedule_table.update(
            declared_values(
                schedule.hyperparams,
                f"{skey}.{schedule_name}",
                schedule_spec if same_schedule else {},
                f"rules[{i}].schedule",
                errors,
            )
        )
        if schedule.joins:
            schedule_table.update(
                joined_parts_editor(
                    f"{skey}.{schedule_name}",
                    f"rules[{i}].schedule",
                    registry,
                    schedule_spec if same_schedule else {},
                    errors,
                )
            )
        warm = HyperParam("warmup_steps", 0, 0, None, kind="int", help="linear warm-up: αₜ = α(t+1)/W for t < W")
        warmup = hyperparam_widget(warm, f"{skey}.warmup", schedule_spec.get("warmup_steps", 0))
        if warmup:
            schedule_table["warmup_steps"] = int(warmup)
        if schedule_name != "constant" or warmup:
            schedule_preview(
                f"{skey}.preview",
                registry,
                schedule,
                entry.get("learning_rate"),
                schedule_table,
                st.session_state.get(f"{prefix}.steps"),
            )
    if schedule_name != "constant" or schedule_table:
        entry["schedule"] = {"name": schedule_name, **schedule_table}
    if transforms:
        chosen = transforms_editor(
            f"{prefix}.rules.{i}", f"rules[{i}]", registry, spec_entry.get("transforms", []), errors
        )
        if chosen:
            entry["transforms"] = chosen
    return entry


# what a schedule that joins others (torch SequentialLR) starts from on the form: a linear warm-up
# from α/10 over 10 steps, then a cosine over the rest of the run
JOINED_DEFAULT = {
    "schedules": [{"name": "linear", "start_factor": 0.1, "end_factor": 1.0, "total_iters": 10}, {"name": "cosine"}],
    "milestones": [10],
}
MAX_JOINED_PARTS = 8


def joined_parts_editor(key_prefix: str, where: str, registry: Registry, spec: dict, errors: list[str]) -> dict:
    """The parts of a schedule that ``joins`` others: how many, each part's closed-form schedule and its
    hyperparameter widgets (from its declaration), and the milestone step where each part after the
    first starts. Returns ``{"schedules": [...], "milestones": [...]}`` as an experiment table takes them
    (non-default values only); the experiment's validation reports a bad combination in one line."""
    closed = sorted(n for n, s in registry.schedules.items() if not (s.joins or s.stateful))
    if not closed:
        return {}
    given = spec.get("schedules") if isinstance(spec.get("schedules"), list) and spec.get("schedules") else None
    tables = [{"name": t} if isinstance(t, str) else t for t in (given or JOINED_DEFAULT["schedules"])]
    tables = [t for t in tables if isinstance(t, dict)] or [{"name": closed[0]}]
    milestones = spec.get("milestones") if given else JOINED_DEFAULT["milestones"]
    milestones = milestones if isinstance(milestones, list) else [milestones]
    count_key = f"{key_prefix}.parts"
    prime(count_key, min(len(tables), MAX_JOINED_PARTS))
    count = remember(
        count_key,
        int(
            st.number_input(
                "schedules joined",
                min_value=1,
                max_value=MAX_JOINED_PARTS,
                step=1,
                key=count_key,
                help="run one after another, each restarted at its milestone (torch SequentialLR)",
            )
        ),
    )
    parts, steps = [], []
    for k in range(count):
        table = tables[k] if k < len(tables) else {"name": "constant" if "constant" in closed else closed[0]}
        name_key = f"{key_prefix}.parts.{k}.name"
        start = table.get("name") if table.get("name") in closed else closed[0]
        prime(name_key, start)
        if st.session_state[name_key] not in closed:
            st.session_state[name_key] = start
        name = remember(name_key, st.selectbox(f"part {k + 1}", closed, key=name_key))
        if k:
            given_step = milestones[k - 1] if k - 1 < len(milestones) else None
            fallback = (steps[-1] if steps else 0) + 10
            step_key = f"{key_prefix}.parts.{k}.milestone"
            prime(
                step_key, given_step if isinstance(given_step, int) and not isinstance(given_step, bool) else fallback
            )
            # no min_value: a bad step (typed, or from a link) reaches the validator and comes back as one line
            steps.append(remember(step_key, int(st.number_input(f"part {k + 1} starts at step", step=1, key=step_key))))
        child = registry.schedules[name]
        values = declared_values(
            child.hyperparams,
            f"{key_prefix}.parts.{k}.{name}",
            table if table.get("name") == name else {},
            f"{where}.schedules[{k}]",
            errors,
        )
        parts.append({"name": name, **values})
    return {"schedules": parts, "milestones": steps}


def schedule_preview(key: str, registry: Registry, schedule, learning_rate, table: dict, steps) -> None:
    """α_t of the schedule as chosen, over the run's steps, before anything runs (a stateful schedule
    says in its title why it cannot be drawn). Nothing when the values are not valid yet: the form's
    own one-line errors say why."""
    rates = learning_rate if isinstance(learning_rate, list) else [learning_rate]
    if not steps or not rates or not all(isinstance(r, (int, float)) and r > 0 for r in rates):
        return
    hyper = {h.name: table.get(h.name, h.default) for h in schedule.hyperparams}
    hyper.update({k: v for k, v in table.items() if k not in ("name", "warmup_steps")})
    if schedule.joins:  # each part with every default filled in, as the experiment's validation does
        parts = []
        for part in hyper.get("schedules") or []:
            child = registry.schedules.get(part.get("name"))
            if child is None or child.joins or child.stateful:
                return
            parts.append({"name": child.name, **{h.name: part.get(h.name, h.default) for h in child.hyperparams}})
        hyper["schedules"] = parts
    try:
        fig = F.schedule_preview(
            schedule, max(rates), hyper, int(steps), int(table.get("warmup_steps", 0)), lookup=registry.schedules.get
        )
    except Exception:  # an invalid combination: validation reports it in one line
        return
    fig.update_layout(height=220, margin=dict(l=40, r=10, t=40, b=30))
    chart(fig, key)


def rules_editor(
    prefix: str,
    registry: Registry,
    spec_rules: list[dict],
    errors: list[str],
    *,
    alpha_mode: str = "single",
    columns: int = 3,
    transforms: bool = False,
) -> list[dict]:
    """A number of descent variants, drawn side by side; 0 variants is allowed (and reported).

    ``transforms=True`` gives each variant a gradient-transforms editor (:func:`transforms_editor`)."""
    key = f"{prefix}.n_rules"
    prime(key, min(len(spec_rules), MAX_RULES))
    n = remember(
        key,
        st.number_input(
            "number of descent variants",
            min_value=0,
            max_value=MAX_RULES,
            step=1,
            key=key,
            help="each is one rule with its α, hyperparameters and schedule",
        ),
    )
    entries = []
    for start in range(0, int(n), columns):
        cols = st.columns(columns)
        for j, col in enumerate(cols):
            i = start + j
            if i >= n:
                break
            with col, st.container(border=True):
                spec_entry = spec_rules[i] if i < len(spec_rules) else {}
                entries.append(
                    rule_entry_editor(
                        prefix, i, registry, spec_entry, errors, alpha_mode=alpha_mode, transforms=transforms
                    )
                )
    return entries


# ---------------------------------------------------------------------------------------------
# URL query string: the settings of a page, shared by link
# ---------------------------------------------------------------------------------------------


def spec_from_url(param: str = "spec") -> dict | None:
    """The experiment dict carried in the URL (JSON), or None (a broken one is reported)."""
    text = st.query_params.get(param)
    if not text:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        st.warning(f"The link's `{param}` setting is not valid JSON; using the defaults.")
        return None
    return value if isinstance(value, dict) else None


URL_PARAMS = ("compare", "sweep", "landscape", "boundary", "folder", "open")


def forget_other_pages_params(own: Sequence[str]) -> None:
    """Drop other pages' settings from the URL, so a copied link carries only this page's."""
    for name in URL_PARAMS:
        if name not in own and name in st.query_params:
            del st.query_params[name]


def spec_to_url(spec: dict, param: str = "spec") -> None:
    forget_other_pages_params((param,))
    text = json.dumps(spec, separators=(",", ":"), ensure_ascii=False, default=str)
    if st.query_params.get(param) != text:
        st.query_params[param] = text


def clean_spec(d: dict) -> dict:
    """Keep a link's settings in the shapes the editors read (tables are tables, rules a list of tables).

    Values are not checked here: a wrong one starts its widget at the default or reaches the
    validator, which reports it in one line.
    """
    out = dict(d)
    problem = out.get("problem")
    out["problem"] = {"name": problem} if isinstance(problem, str) else (problem if isinstance(problem, dict) else {})
    rules = out.get("rules")
    out["rules"] = [dict(r) for r in rules if isinstance(r, dict)] if isinstance(rules, list) else []
    for rule in out["rules"]:
        if not isinstance(rule.get("schedule", {}), (dict, str)):
            rule.pop("schedule")
    return out


def initial_spec(page: str, default: dict, param: str = "spec") -> dict:
    """The settings a page starts from: the URL's on the first visit of a session, else the last used."""
    flag = f"_descentlab_{page}_spec"
    if flag not in st.session_state:
        from_url = spec_from_url(param)
        from_url = clean_spec(from_url) if from_url is not None else None
        st.session_state[flag] = from_url or default
        st.session_state[f"_descentlab_{page}_from_url"] = from_url is not None
        if from_url is not None:
            # A link overrides whatever this session kept: drop kept widget values of this page.
            for k in [k for k in _keep() if k.startswith(page + ".")]:
                del _keep()[k]
            for k in [k for k in st.session_state if isinstance(k, str) and k.startswith(page + ".")]:
                del st.session_state[k]
    return st.session_state[flag]


def opened_from_link(page: str) -> bool:
    return bool(st.session_state.get(f"_descentlab_{page}_from_url"))


# ---------------------------------------------------------------------------------------------
# Running: validated spec -> cached Results, with a progress bar on the first run
# ---------------------------------------------------------------------------------------------


def validate(spec: dict, registry: Registry):
    """The Experiment for ``spec``, or raise SpecError with its one-line message."""
    from descentlab.experiment import Experiment

    check_data_paths(spec, registry)
    return Experiment.from_dict(spec, registry, name=spec.get("name", "dashboard"))


def check_data_paths(spec: dict, registry: Registry) -> None:
    """A spec whose problem reads a file (the csv problem's ``path``) outside the allowed roots is
    refused before anything is read (see :mod:`descentlab.dashboard.access`)."""
    problem = spec.get("problem") if isinstance(spec, dict) else None
    if isinstance(problem, str):
        problem = {"name": problem}
    if isinstance(problem, dict) and isinstance(problem.get("name"), str):
        access.check_problem_paths(problem["name"], problem, registry)


# cache_resource, not cache_data: every rerun and every session shares one Results instead of
# unpickling a copy (a 2560-run x 2000-step sweep is ~458 MB). Pages only read it; the weights'
# arrays are made read-only so that a page that tried to write would fail loudly, not corrupt the cache.
@st.cache_resource(show_spinner=False, max_entries=12)
def _run_cached(spec_json: str, registry_key: tuple, _registry: Registry, _bar_slot=None, _page_context=None):
    from descentlab.runner import run_experiment

    experiment = validate(json.loads(spec_json), _registry)

    # The progress bar is drawn in the page's slot (run_spec's st.empty()) from the page's own context,
    # so the cached function records no element: a hit replays nothing, and every visit of a page has
    # the same elements (the slot, emptied) whether its Results was computed in this session, in
    # another one, or at server start (warm_up, outside any session: no slot, no bar).
    def draw(call, *args, **kwargs):
        if _bar_slot is not None and _page_context is not None:
            _page_context.run(call, *args, **kwargs)

    def progress(*args, **kwargs):
        fraction = _progress_fraction(args, kwargs)
        if fraction is not None and _bar_slot is not None:
            draw(_bar_slot.progress, min(max(fraction, 0.0), 1.0), text=f"running … {100 * fraction:.0f}%")

    if _bar_slot is not None:
        draw(_bar_slot.progress, 0.0, text=f"running {experiment.n_runs} runs × {experiment.steps} steps …")
    try:
        results = run_experiment(experiment, registry=_registry, progress=progress)
    finally:
        if _bar_slot is not None:
            draw(_bar_slot.empty)
    for array in (results.weights or {}).values():
        if isinstance(array, np.ndarray):
            array.flags.writeable = False
    return results


def _progress_fraction(args, kwargs) -> float | None:
    """Accept the runner's progress callback as (done, total), (fraction,) or keyword forms."""
    done = kwargs.get("done", args[0] if args else None)
    total = kwargs.get("total", args[1] if len(args) > 1 else None)
    try:
        if total:
            return float(done) / float(total)
        if done is not None and 0.0 <= float(done) <= 1.0:
            return float(done)
    except (TypeError, ValueError):
        return None
    return None


def run_spec(spec: dict, registry: Registry, key: tuple | None = None):
    """Validate and run (cached on the spec and the loaded plugins, ``key``: default this session's
    :func:`registry_key`). SpecError propagates."""
    experiment = validate(spec, registry)
    canonical = json.dumps(experiment.to_dict(), sort_keys=True, default=str)
    in_session = get_script_run_ctx(suppress_warning=True) is not None
    slot = st.empty() if in_session else None  # where a run that has to compute shows its progress
    page_context = contextvars.copy_context() if in_session else None
    return _run_cached(canonical, registry_key() if key is None else key, registry, slot, page_context)


def warm_up(spec: dict):
    """Run ``spec`` into the shared caches as a fresh session would, and build what
    :func:`render_results` draws of it: called once by the server at start
    (:mod:`descentlab.dashboard.launch`) for the Compare page's opening comparison, so the first
    visitor finds it done. Outside any session: it calls no Streamlit element. Returns the Results."""
    key = registry_key(())
    registry = _load_registry(*key)
    results = run_spec(spec, registry, key)
    figures = results_figures(results, results_view(results, "groups", lambda: F.run_groups(results)))
    tables = results_tables(results)
    # What the page's first run would otherwise import on the way: plotly's JSON encoder (what
    # st.plotly_chart calls), pandas' Styler with jinja2, tomli_w for the experiment file.
    for fig in figures.values():
        fig.to_json()
    for name in ("configurations", "status_counts", "summary"):
        styled_runs_table(tables[name])
    results.experiment.to_toml()
    return results


def run_when_asked(
    page: str,
    spec: dict,
    registry: Registry,
    errors: list[str],
    *,
    label: str = "Run",
    button_slot=None,
    info_slot=None,
):
    """The page's Run button: run ``spec`` on a click (or on first open) and keep showing the last run.

    Settings edited since the last run do not re-run by themselves (a sweep can take a while); the
    page says so instead. Returns the Results to draw, or None. Errors are shown as one line each.
    """
    clicked = (button_slot or st).button(label, key=f"{page}.run", type="primary")
    for message in errors:
        st.error(markdown_text(form_numbering(message)), icon="⚠️")
    state_key = f"_{page}_ran"
    ran = st.session_state.get(state_key)
    target = spec if (clicked or ran is None) else ran
    results = None
    if not errors or target is not spec:
        try:
            results = run_spec(target, registry)
            st.session_state[state_key] = target
        except Exception as error:  # SpecError or a broken plugin: one line, the page keeps working
            show_error(error)
    if ran is not None and not clicked and spec != ran:
        (info_slot or st).info(f"Settings changed: press **{label}** to update the charts.")
    return results


def show_error(error: BaseException) -> None:
    """One line in the page, never a traceback."""
    if isinstance(error, SpecError):
        st.error(markdown_text(form_numbering(str(error))), icon="⚠️")
    else:
        st.error(markdown_text(f"{type(error).__name__}: {error}".splitlines()[0]), icon="⚠️")


# ---------------------------------------------------------------------------------------------
# Views of a Results, shared by the Compare and Results pages
# ---------------------------------------------------------------------------------------------


def chart(fig, key: str) -> None:
    """A plotly figure in the project's look (not Streamlit's theme), with the project's toolbar."""
    st.plotly_chart(fig, key=key, width="stretch", config=S.TOOLBAR, **S.STREAMLIT_CHART)


_REASON_HEAD = re.compile(r"^(?:diverged at|unstable from) step \d+[;:,]?\s*")


def divergence_notes(results) -> list[str]:
    """One line per flagged run (unstable or diverged): which, from when, and why (when core says).

    ``divergence_reason`` is core's sentence; when it starts by naming what happened ("diverged at
    step N …", "unstable from step N …") it is shown as it is, else after that phrase. Failed runs
    get a line with their error.
    """
    notes = []
    groups = {r: g for g in F.run_groups(results) for r in g.run_ids}
    for row in results.runs.itertuples(index=False):
        status = str(row.status)
        if is_flagged(status):
            g = groups.get(int(row.run_id))
            name = g.name if g else row.label
            seed = f", seed {row.seed}" if g and len(g.run_ids) > 1 else ""
            step = row.diverged_at if status == "diverged" else getattr(row, "unstable_at", math.nan)
            known = step is not None and step == step  # not NaN
            what = (
                (F.diverged_text(int(step)) if status == "diverged" else F.unstable_text(int(step)))
                if known
                else status
            )
            reason = str(getattr(row, "divergence_reason", "") or "")
            name, reason = markdown_text(name), markdown_text(reason)
            if reason and _REASON_HEAD.match(reason):
                notes.append(f"**{name}**{seed} {reason}")
            else:
                notes.append(f"**{name}**{seed} {what}" + (f" — {reason}" if reason else ""))
        elif status == "failed":
            notes.append(
                f"**{markdown_text(row.label)}** (run {row.run_id}) failed: {markdown_text(getattr(row, 'error', ''))}"
            )
    return notes


def wall_time(meta) -> float | None:
    """Seconds the run took, as ``descentlab.records`` writes it (``wall_time_s``); None if not recorded."""
    meta = meta or {}
    for key in ("wall_time_s", "wall_time"):  # "wall_time": what the pages once read
        value = meta.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
    return None


MAX_STYLED_ROWS = 1000  # pandas' Styler formats every cell (~0.3 ms a row): past this the table stays plain


def styled_runs_table(table):
    """The runs table with each status cell in its status's colour (a pandas Styler), or the table itself."""
    if "status" not in table or len(table) > MAX_STYLED_ROWS:
        return table

    def paint(status):
        style = style_of(status)
        return f"background-color: {F.status_tint(status)}; color: {style.color}; font-weight: 600"

    def number(value):  # the Styler's text is what the browser shows where no column format is set
        return f"{value:.4g}" if isinstance(value, float) else value

    return table.style.format(number, na_rep="").map(paint, subset=["status"])


def status_column_config(table) -> dict:
    """Readable headers (and number formats) for the columns of the runs table."""
    config = {
        "learning_rate": st.column_config.NumberColumn("α", format="%.4g"),
        "final_loss": st.column_config.NumberColumn(format="%.4g"),
        "best_loss": st.column_config.NumberColumn(format="%.4g"),
        "status": st.column_config.TextColumn(
            "status", help="; ".join(f"{s.glyph} {s.label}: {s.help}" for s in STATUS_STYLE.values())
        ),
    }
    for column in ("unstable_at", "diverged_at"):
        config[column] = st.column_config.NumberColumn(F.COLUMN_LABELS[column], format="%d")
    config["divergence_reason"] = st.column_config.TextColumn(
        F.COLUMN_LABELS["divergence_reason"], help="core's explanation of each unstable or diverged run", width="large"
    )
    for column in ("lambda_max_start", "lambda_max_flagged"):
        config[column] = st.column_config.NumberColumn(F.COLUMN_LABELS[column], format="%.4g")
    return {k: v for k, v in config.items() if k in table.columns}


def status_summary(results, prefix: str) -> None:
    """Runs per status: one caption line (glyph, count, status) and a small table coloured by status."""
    counts = results_view(results, "status_counts", lambda: F.status_counts_table(results))
    line = results_view(results, "status_line", lambda: counts_text(results.runs["status"].astype(str), glyphs=True))
    st.caption("Runs per status: " + markdown_text(line))
    st.dataframe(
        styled_runs_table(counts),
        key=f"{prefix}.status_counts",
        hide_index=True,
        column_config={"runs": st.column_config.NumberColumn("runs", format="%d")},
    )


T = TypeVar("T")

# What render_results draws from a Results (figures, tables, verdict lines), built once per Results
# object and shared by every rerun and session: _run_cached hands every session the same Results, so
# a revisit redraws nothing. Held by id with a weak reference, like fig_groups' wide tables (a freed
# object's id can be reused; the reference tells a live Results from a new one at that id), for at
# most _VIEWS_RESULTS objects (as many as _run_cached keeps) and _VIEWS_KEYS views of each, least
# recently used dropped first (each choice of curves on a sweep is another six figures). The figures
# are plotly objects that st.plotly_chart only reads (it serialises a deep copy), so a shared one
# sends the same bytes.
_VIEWS: dict[int, tuple[weakref.ref, dict]] = {}
_VIEWS_RESULTS = 12
_VIEWS_KEYS = 48
_VIEWS_LOCK = threading.Lock()


def results_view(results, key: Any, build: Callable[[], T]) -> T:
    """``build()`` for ``results`` and ``key``, computed once per Results object (see _VIEWS)."""
    rid = id(results)
    with _VIEWS_LOCK:
        held = _VIEWS.pop(rid, None)
        if held is None or held[0]() is not results:
            held = (weakref.ref(results), {})
        _VIEWS[rid] = held  # last: the most recently drawn Results is evicted last
        while len(_VIEWS) > _VIEWS_RESULTS:
            del _VIEWS[next(iter(_VIEWS))]
        views = held[1]
        if key in views:
            views[key] = views.pop(key)  # last: the most recently used view is dropped last
            return views[key]
    value = build()  # outside the lock: another session may draw another Results meanwhile
    with _VIEWS_LOCK:
        value = views.setdefault(key, value)
        while len(views) > _VIEWS_KEYS:
            del views[next(iter(views))]
        return value


def _groups_key(groups) -> tuple:
    return tuple((g.name, tuple(g.run_ids)) for g in groups)


def results_figures(results, groups, *, show_layers: bool = True) -> dict[str, Any]:
    """The training charts of ``results`` for the curves of ``groups``, by name (loss, lr, grad, step,
    and acc / layers where the records have them), each built once per Results and set of curves."""
    drawn = _groups_key(groups)
    draws: dict[str, Callable[[], Any]] = {
        "loss": lambda: F.draw_curves(F.loss_curves_info(results, groups=groups)),
        "lr": lambda: F.draw_curves(F.learning_rate_info(results, groups=groups)),
        "grad": lambda: F.draw_curves(F.grad_norm_info(results, groups=groups)),
        "step": lambda: F.draw_curves(F.step_size_info(results, groups=groups)),
    }
    if F.has_values(results, "test_accuracy"):
        draws["acc"] = lambda: F.draw_curves(F.test_accuracy_info(results, groups=groups))
    if show_layers and F.layer_columns(results):
        draws["layers"] = lambda: F.draw_layer_grad_norms(F.layer_grad_norms_info(results, groups=groups))
    return {name: results_view(results, ("figure", name, drawn), draw) for name, draw in draws.items()}


def results_tables(results, *, notes: bool = True) -> dict[str, Any]:
    """The tables and texts render_results shows beside the charts, each built once per Results
    (``notes``: also the divergence notes)."""
    return {
        "notes": results_view(results, "notes", lambda: divergence_notes(results)) if notes else [],
        "verdict": results_view(results, "verdict", lambda: _verdict_markdown(results)),
        "configurations": results_view(results, "configurations", lambda: analysis.configuration_table(results)),
        "status_counts": results_view(results, "status_counts", lambda: F.status_counts_table(results)),
        "status_line": results_view(
            results, "status_line", lambda: counts_text(results.runs["status"].astype(str), glyphs=True)
        ),
        "summary": results_view(results, "summary", lambda: F.summary_table(results)),
    }


def render_results(results, prefix: str, *, show_layers: bool = True, notes: bool = True, max_groups: int = 12) -> None:
    """Every training chart of a Results, all on the same step axis, and the summary table.

    With more than ``max_groups`` configurations (a grid, a sweep) a multiselect picks the curves
    drawn, so the charts stay readable; the summary table always lists every run. What is drawn is
    built once per Results and set of curves (:func:`results_view`): a rerun only sends it again.
    """
    groups = results_view(results, "groups", lambda: F.run_groups(results))
    if len(groups) > max_groups:
        names = [g.name for g in groups]
        key = f"{prefix}.groups"
        prime(key, names[:max_groups])
        st.session_state[key] = [n for n in st.session_state[key] if n in names] or names[:max_groups]
        chosen = set(remember(key, st.multiselect(f"curves to draw ({len(groups)} configurations)", names, key=key)))
        groups = [g for g in groups if g.name in chosen]
    figs = results_figures(results, groups, show_layers=show_layers)
    tables = results_tables(results, notes=notes)
    if tables["notes"]:
        st.warning("  \n".join(tables["notes"][:12]) + ("  \n…" if len(tables["notes"]) > 12 else ""))
    chart(figs["loss"], f"{prefix}.chart.loss")
    left, right = st.columns(2)
    with left:
        chart(figs["lr"], f"{prefix}.chart.lr")
        chart(figs["grad"], f"{prefix}.chart.grad")
    with right:
        chart(figs["step"], f"{prefix}.chart.step")
        if "acc" in figs:
            chart(figs["acc"], f"{prefix}.chart.acc")
    if "layers" in figs:
        chart(figs["layers"], f"{prefix}.chart.layers")
    verdict(results)
    st.subheader("Configurations")
    configs = tables["configurations"]
    st.dataframe(
        styled_runs_table(configs),
        key=f"{prefix}.configurations",
        hide_index=True,
        column_config=status_column_config(configs),
    )
    status_summary(results, prefix)
    with st.expander(f"every run ({len(results.runs)})", expanded=False):
        table = tables["summary"]
        st.dataframe(
            styled_runs_table(table),
            key=f"{prefix}.summary",
            hide_index=True,
            column_config=status_column_config(table),
        )


_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()<>#+!|~$-])")


def markdown_text(text: str) -> str:
    """``text`` shown literally in st.markdown (a label is the user's words, not markup)."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", str(text))


def _verdict_markdown(results) -> str:
    rows = analysis.summarize(results)
    return "\n".join("- " + markdown_text(analysis.verdict_line(row)) for row in rows.itertuples())


def verdict(results) -> None:
    """One line per rule entry: best α, its final loss with the spread over seeds, what the seeds did."""
    st.subheader("Verdict")
    st.markdown(results_view(results, "verdict", lambda: _verdict_markdown(results)))
    st.caption(
        "Best α: the lowest median final loss over seeds; spread: the interquartile range "
        "(docs: Comparison reports, Run verdicts)."
    )


# ---------------------------------------------------------------------------------------------
# Problem instances (for contours and decision boundaries) and problem filters
# ---------------------------------------------------------------------------------------------


@st.cache_resource(show_spinner=False, max_entries=16)
def _instance(problem: str, settings_json: str, registry_key: tuple, _registry: Registry):
    # build_instance: what build raises, or an instance without layout/loss_and_grad, is one line naming it
    return build_instance(_registry.problem(problem), json.loads(settings_json))


def instance_for(results, registry: Registry):
    """The built problem of a Results (same settings, same data), cached."""
    experiment = results.experiment
    access.check_problem_paths(experiment.problem, experiment.problem_settings, registry)
    settings = json.dumps(experiment.problem_settings, sort_keys=True, default=str)
    return _instance(experiment.problem, settings, registry_key(), registry)


def _default_instance(name: str, registry: Registry):
    problem = registry.problems[name]
    defaults = {h.name: h.default for h in problem.settings}
    return _default_build(name, json.dumps(defaults, sort_keys=True, default=str), registry_key(), registry)


# The pages ask every registered problem's default instance for its capabilities on each rerun: a
# cache of its own, sized for every problem, so those builds never push out the runs' instances.
@st.cache_resource(show_spinner=False, max_entries=64)
def _default_build(problem: str, settings_json: str, registry_key: tuple, _registry: Registry):
    return build_instance(_registry.problem(problem), json.loads(settings_json))


def problems_where(registry: Registry, test: Callable[[Any, Any], bool], kinds: Sequence[str]) -> list[str]:
    """Problems of the given kinds whose default instance passes ``test(problem, instance)``."""
    names = []
    for name, problem in sorted(registry.problems.items()):
        if problem.kind not in kinds:
            continue
        try:
            if test(problem, _default_instance(name, registry)):
                names.append(name)
        except Exception:  # a problem that needs settings to build (e.g. a CSV path) is left out
            continue
    return names


def two_parameter_problems(registry: Registry) -> list[str]:
    """Problems whose default instance has exactly two parameters: the declared Landscape capability
    (contours from its ``value``, window and minima) or any other two-parameter problem (contours of
    its training loss). Asked of the built instance, never of the problem's name or settings."""
    return problems_where(
        registry, lambda problem, instance: instance.layout.size == 2, ("landscape", "regression", "classification")
    )


def two_input_classifiers(registry: Registry) -> list[str]:
    """Classifiers on points of the plane: the declared Predictor capability, a classification
    dataset with two input columns."""

    def ok(problem, instance):
        return is_classifier(instance) and np.shape(instance.dataset.x_train)[1:] == (2,)

    return problems_where(registry, ok, ("classification",))
