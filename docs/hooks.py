"""MkDocs hook: the rule, schedule, problem and transform tables come from the plugin declarations.

Not from a hand copy: a new built-in or a changed default shows up in the docs by itself."""

from __future__ import annotations

import re

MARKER = re.compile(r"<!--\s*generated:\s*([a-z-]+)\s*-->")


def _value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|") or "—"


def _hyperparams(declared) -> str:
    return ", ".join(f"`{h.name}` ({_value(h.default)})" for h in declared) or "—"


def rules_table(registry) -> str:
    """One row per registered rule: its summary, formula, hyperparameters, default α and threshold."""
    rows = [
        "| rule | what it is | update (g = ∇J, t = step) | hyperparameters (default) | default α | "
        "stable on a quadratic iff |",
        "|---|---|---|---|---|---|",
    ]
    for name, rule in registry.rules.items():
        threshold = rule.threshold_note or (
            "α·λ < c, c declared" if rule.stability_threshold else "no threshold declared"
        )
        rows.append(
            f"| `{name}` | {_cell(rule.summary)} | {_cell(rule.formula)} | "
            f"{_cell(_hyperparams(rule.hyperparams))} | {_value(rule.default_learning_rate)} | "
            f"{_cell(threshold)} |"
        )
    return "\n".join(rows)


def schedules_table(registry) -> str:
    """One row per registered schedule: its formula, what it is and its hyperparameters."""
    rows = ["| schedule | α_t | what it is | hyperparameters (default) |", "|---|---|---|---|"]
    for name, schedule in registry.schedules.items():
        rows.append(
            f"| `{name}` | {_cell(schedule.formula)} | {_cell(schedule.summary)} | "
            f"{_cell(_hyperparams(schedule.hyperparams))} |"
        )
    return "\n".join(rows)


def problems_table(registry) -> str:
    """One row per registered problem: what it is and its options."""
    rows = ["| problem | kind | what it is | settings (default) |", "|---|---|---|---|"]
    for name, problem in registry.problems.items():
        rows.append(
            f"| `{name}` | {problem.kind} | {_cell(problem.summary)} | {_cell(_hyperparams(problem.settings))} |"
        )
    return "\n".join(rows)


def transforms_table(registry) -> str:
    """One row per registered gradient transform: where it acts, its formula and its hyperparameters."""
    rows = [
        "| transform | acts | update (g = ∇J, Δθ = the rule's step, t = step) | what it is | "
        "hyperparameters (default) |",
        "|---|---|---|---|---|",
    ]
    for name, transform in registry.transforms.items():
        acts = "after the rule (wrapper)" if transform.is_wrapper else "before the rule"
        rows.append(
            f"| `{name}` | {acts} | {_cell(transform.formula)} | {_cell(transform.summary)} | "
            f"{_cell(_hyperparams(transform.hyperparams))} |"
        )
    return "\n".join(rows)


def torch_defaults_table(registry) -> str:
    """One row per rule whose defaults differ from its ``torch.optim`` counterpart's (``torch_differences``)."""
    rows = ["| rule | descentlab default | torch.optim default (under descentlab's name) |", "|---|---|---|"]
    for name, rule in registry.rules.items():
        differences = rule.torch_differences()
        if differences:
            ours = ", ".join(f"`{h}` = {_value(own)}" for h, own, _ in differences)
            theirs = ", ".join(f"`{h}` = {_value(torch)}" for h, _, torch in differences)
            rows.append(f"| `{name}` | {ours} | `{rule.torch_optimizer}`: {theirs} |")
    return "\n".join(rows)


TABLES = {
    "rules-table": rules_table,
    "schedules-table": schedules_table,
    "problems-table": problems_table,
    "transforms-table": transforms_table,
    "torch-defaults-table": torch_defaults_table,
}


def render(markdown: str, registry=None) -> str:
    """``markdown`` with every ``<!-- generated: NAME -->`` marker replaced by that table."""
    if not MARKER.search(markdown):
        return markdown
    if registry is None:
        from descentlab import load_registry

        registry = load_registry(entry_points=False, use_env=False)

    def table(match):
        name = match.group(1)
        if name not in TABLES:
            raise ValueError(f"docs marker 'generated: {name}': accepted are {', '.join(TABLES)}")
        return TABLES[name](registry)

    return MARKER.sub(table, markdown)


def on_startup(command, dirty):  # noqa: ARG001 - MkDocs hook signature
    # The package maps core/ to descentlab and plugins/, dashboard/ to its subpackages (pyproject's
    # package-dir), which mkdocstrings' loader cannot follow: give it a folder laid out as installed,
    # descentlab/ holding links to core/'s files and to the two subpackage folders.
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    package = root / ".cache" / "api" / "descentlab"
    if package.is_symlink():  # the earlier layout: one link to core/
        package.unlink()
    package.mkdir(parents=True, exist_ok=True)
    wanted = {p.name: p for p in (root / "core").iterdir() if p.suffix in (".py", ".typed")}
    wanted |= {"plugins": root / "plugins", "dashboard": root / "dashboard"}
    for link in package.iterdir():
        if link.is_symlink() and (link.name not in wanted or link.resolve() != wanted[link.name].resolve()):
            link.unlink()  # a module since renamed or removed
    for name, target in wanted.items():
        if not (package / name).is_symlink():
            (package / name).symlink_to(target, target_is_directory=target.is_dir())


def on_page_markdown(markdown, page, config, files):  # noqa: ARG001 - MkDocs hook signature
    return render(markdown)
