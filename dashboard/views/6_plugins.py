"""Plugins page: every descent rule, schedule and problem with its docs, formula, hyperparameters and origin."""

import inspect
from pathlib import Path

import streamlit as st

from descentlab.dashboard import access
from descentlab.dashboard import widgets as W

TITLE = "Plugins"
ICON = ":material/extension:"
PAGE = "plug"


def declarations_table(hyperparams) -> list[dict]:
    return [
        {
            "name": h.name,
            "kind": h.kind,
            "default": str(h.default),
            "accepts": h.accepted(),
            "log scale": h.log,
            "help": h.help,
        }
        for h in hyperparams
    ]


def docstring(*functions) -> str:
    for f in functions:
        doc = inspect.getdoc(f) if f is not None else None
        if doc:
            return doc
    return ""


st.title("Plugins")
st.caption(
    "Descent rules, schedules and problems come from plugins: the built-ins, installed packages (entry "
    "point group `descentlab`), files named in `DESCENTLAB_PLUGINS`, and files loaded below. Widgets "
    "on the other pages are generated from the hyperparameters declared here."
)

# ---- load a plugin file by path (runs its code on the server: loopback or --allow-plugin-files only) ----
allowed, why_not = access.plugin_files_allowed()
if not allowed:
    st.info(access.plugin_files_off_message(W.markdown_text(why_not)), icon="🔒")
else:
    with st.form(f"{PAGE}.load_form", border=True):
        path = st.text_input(
            "load a plugin file (.py)",
            key=f"{PAGE}.path",
            placeholder="/path/to/my_rule.py",
            help="a module with @hookimpl register_optimizers / register_schedules / register_problems",
        )
        submitted = st.form_submit_button("Load plugin", type="primary", key=f"{PAGE}.load")
    if submitted and path.strip():
        try:
            resolved = str(Path(path.strip()).expanduser().resolve())
            is_file = Path(resolved).is_file()
        except (OSError, RuntimeError, ValueError):  # a NUL byte, an unknown ~user, a name too long
            resolved, is_file = path.strip(), False
        before = W.current_registry()
        known = {(k, n) for k in ("rules", "schedules", "problems") for n in getattr(before, k)}
        # The code this session last loaded from that file (None: never loaded), to tell a reload.
        old_code = W.loaded_code(resolved) if is_file else None
        if not is_file:
            shown = path.strip() if len(path.strip()) <= 200 else path.strip()[:180] + "..."
            st.error(W.markdown_text(f"plugin file: got {shown!r}; expected an existing .py file"), icon="⚠️")
        else:
            registry = W.add_plugin_path(resolved)
            # each once: a file's error may name both its path and its name
            problems = list(dict.fromkeys(e for e in registry.errors if resolved in e or Path(resolved).name in e))
            added = [
                f"{k[:-1]} {n}"
                for k in ("rules", "schedules", "problems")
                for n in getattr(registry, k)
                if (k, n) not in known
            ]
            for message in problems:
                st.error(W.markdown_text(message.splitlines()[0]), icon="⚠️")
            new_code = W.file_fingerprint(resolved)
            if added:
                st.success(
                    W.markdown_text(
                        "Loaded " + ", ".join(added) + ": it now appears on every page with its own widgets."
                    )
                )
            if old_code is not None and old_code != new_code and not problems:
                st.success(
                    W.markdown_text(
                        f"Reloaded {Path(resolved).name}: it changed since it was loaded, so its "
                        "new code is used from now on; results made with the old code are not "
                        "reused."
                    )
                )
            elif old_code is not None and not added and not problems:
                st.info(W.markdown_text(f"{Path(resolved).name} is unchanged since it was loaded; nothing to do."))
            elif not added and not problems:
                st.warning(
                    "The file loaded but registered nothing new (no @hookimpl functions, or names already known)."
                )

registry = W.current_registry()
if W.plugin_paths():
    st.caption("Loaded in this session: " + W.markdown_text(", ".join(W.plugin_paths())))
if registry.errors:
    with st.expander(f"⚠️ {len(registry.errors)} plugin problem(s)", expanded=True):
        for message in registry.errors:
            st.error(W.markdown_text(message.splitlines()[0]))

tabs = st.tabs(
    [
        f"Descent rules ({len(registry.rules)})",
        f"Schedules ({len(registry.schedules)})",
        f"Problems ({len(registry.problems)})",
        f"Gradient transforms ({len(registry.transforms)})",
    ]
)
with tabs[0]:
    for name, rule in sorted(registry.rules.items()):
        with st.expander(f"**{W.markdown_text(name)}** — {W.markdown_text(rule.summary or 'no summary')}"):
            st.caption(
                W.markdown_text(f"origin: {registry.origin('rule', name)} · default α = {rule.default_learning_rate:g}")
            )
            if rule.formula:
                st.code(rule.formula, language=None)
            if rule.threshold_note:
                st.markdown(f"**Stability on a quadratic:** {W.markdown_text(rule.threshold_note)}")
            if rule.hyperparams:
                st.dataframe(declarations_table(rule.hyperparams), hide_index=True, key=f"{PAGE}.rule.{name}")
            doc = docstring(rule.update, rule.init)
            if doc:
                st.markdown("**update docstring**")
                st.text(doc)
with tabs[1]:
    for name, schedule in sorted(registry.schedules.items()):
        with st.expander(f"**{W.markdown_text(name)}** — {W.markdown_text(schedule.summary or 'no summary')}"):
            st.caption(W.markdown_text(f"origin: {registry.origin('schedule', name)}"))
            if schedule.formula:
                st.code(schedule.formula, language=None)
            if schedule.hyperparams:
                st.dataframe(declarations_table(schedule.hyperparams), hide_index=True, key=f"{PAGE}.schedule.{name}")
            doc = docstring(schedule.learning_rate, schedule.update)  # a stateful schedule has only init/update
            if doc:
                st.text(doc)
with tabs[2]:
    for name, problem in sorted(registry.problems.items()):
        with st.expander(
            f"**{W.markdown_text(name)}** ({W.markdown_text(problem.kind)}) — "
            f"{W.markdown_text(problem.summary or 'no summary')}"
        ):
            st.caption(W.markdown_text(f"origin: {registry.origin('problem', name)}"))
            if problem.settings:
                st.dataframe(declarations_table(problem.settings), hide_index=True, key=f"{PAGE}.problem.{name}")
            doc = docstring(problem.build)
            if doc:
                st.text(doc)
with tabs[3]:
    for name, transform in sorted(registry.transforms.items()):
        acts = "a wrapper: after the rule, on its step" if transform.is_wrapper else "before the rule, on the gradient"
        with st.expander(f"**{name}** — {transform.summary or 'no summary'}"):
            st.caption(f"origin: {registry.origin('transform', name)} · {acts}")
            if transform.formula:
                st.code(transform.formula, language=None)
            if transform.hyperparams:
                st.dataframe(declarations_table(transform.hyperparams), hide_index=True, key=f"{PAGE}.transform.{name}")
            doc = docstring(*[f for f in (transform.update, transform.after, transform.init) if f is not None])
            if doc:
                st.text(doc)
