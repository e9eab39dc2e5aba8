"""``descentlab.compare``: one call from a notebook to a comparison, with rules defined in a cell."""

from __future__ import annotations

import numbers
import re
from typing import Any, Iterable

from .declarations import DescentRule, Schedule
from .errors import SpecError
from .hookspecs import hookimpl

__all__ = ["compare"]


class _CellPlugin:
    """Rules and schedules handed to ``compare`` as objects, registered like a plugin file's."""

    def __init__(self, rules: list[DescentRule], schedules: list[Schedule]):
        self.rules, self.schedules = rules, schedules

    @hookimpl
    def register_optimizers(self, register):
        for rule in self.rules:
            register(rule)

    @hookimpl
    def register_schedules(self, register):
        for schedule in self.schedules:
            register(schedule)


def _entry(rule: Any, index: int, learning_rates) -> dict:
    if isinstance(rule, DescentRule):
        entry: dict = {"rule": rule.name}
    elif isinstance(rule, str):
        entry = {"rule": rule}
    elif isinstance(rule, dict):
        entry = dict(rule)
        if isinstance(entry.get("rule"), DescentRule):
            entry["rule"] = entry["rule"].name
        schedule = entry.get("schedule")
        if isinstance(schedule, Schedule):
            entry["schedule"] = schedule.name
        elif isinstance(schedule, dict) and isinstance(schedule.get("name"), Schedule):
            entry["schedule"] = {**schedule, "name": schedule["name"].name}
    else:
        raise SpecError(f"rules[{index}]", rule, "a rule name, a DescentRule or a dict like a [[rules]] entry")
    if isinstance(learning_rates, dict):  # per entry, by label or rule name
        key = entry.get("label", entry["rule"]) if entry.get("label") in learning_rates else entry["rule"]
        if key in learning_rates and "learning_rate" not in entry:
            entry["learning_rate"] = learning_rates[key]
    elif learning_rates is not None and "learning_rate" not in entry:
        entry["learning_rate"] = learning_rates
    return entry


def compare(
    problem: str | dict,
    rules: Iterable | str | dict | DescentRule,
    *,
    learning_rates=None,
    seeds=3,
    name: str | None = None,
    schedules: Iterable[Schedule] = (),
    registry=None,
    workers: int | None = None,
    progress=True,
    **settings,
):
    """Run ``rules`` on ``problem`` from the same data and initial weights, and return the ``Results``.

    - ``problem``: a registered problem's name, or a dict ``{"name": ..., <setting>: value}``.
    - ``rules``: a list (or one alone), each a rule name, a ``DescentRule`` object (registered for
      this call, so a rule written in a notebook cell needs no file), or a dict shaped like an
      experiment file's ``[[rules]]`` entry (``rule``, ``learning_rate``, hyperparameters,
      ``label``, ``schedule``: a name, a table, or a ``Schedule`` object written in a cell).
    - ``registry``: where names are looked up (default: the built-ins, installed plugins and
      ``DESCENTLAB_PLUGINS``); its plugin files are kept when cell rules are added to it.
    - ``learning_rates``: a number or a list, for every entry that names none (else each rule's
      default α); or a dict from rule name (or label) to a number or list, per entry, e.g.
      ``{"gd": [0.1, 1.0], "adam": [1e-3, 1e-2]}`` (an entry it does not name keeps its default).
    - ``seeds``: a count or a list of seeds; ``settings``: any experiment setting (``steps``,
      ``batch_size``, ``dtype``, ``eval_every``, ...). Bad values raise the experiment file's
      one-line ``SpecError``.
    - ``progress``: ``True`` shows a bar (in a notebook cell, or on a terminal's stderr), ``False``
      none, or any ``progress(done, total)`` callable counting run-steps.
    """
    from .experiment import Experiment
    from .registry import get_registry, load_registry
    from .runner import run_experiment

    if isinstance(problem, str):
        problem_spec = {"name": problem}
    elif isinstance(problem, dict):
        problem_spec = dict(problem)
    else:
        raise SpecError("problem", problem, "a problem name or a dict {'name': ..., <setting>: value}")
    # one rule alone is a list of one: compare("quadratic", "gd") must not read "g" and "d"
    rules = [rules] if isinstance(rules, (str, dict, DescentRule)) else list(rules)
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, numbers.Integral) or workers < 1):
        raise SpecError("workers", workers, "a count >= 1 (1 runs in this process), or None for the default")
    if not (isinstance(progress, bool) or callable(progress) or progress is None):
        raise SpecError("progress", progress, "True (a bar), False (none) or a callable progress(done, total)")
    cell_rules = [r for r in rules if isinstance(r, DescentRule)]
    cell_rules += [r["rule"] for r in rules if isinstance(r, dict) and isinstance(r.get("rule"), DescentRule)]
    schedules = list(schedules)
    # a Schedule object in an entry, as `schedule = ...` or `schedule = {"name": ..., <hyper>: ...}`
    for r in rules:
        found = r.get("schedule") if isinstance(r, dict) else None
        found = found.get("name") if isinstance(found, dict) else found
        if isinstance(found, Schedule):
            schedules.append(found)
    schedules = list({id(s): s for s in schedules}.values())
    if cell_rules or schedules:
        unique = list({id(r): r for r in cell_rules}.values())
        given = registry.plugin_paths if registry is not None else ()  # e.g. a problem from a file
        registry = load_registry(given, extra_plugins=[("notebook cell", _CellPlugin(unique, schedules))])
        if registry.errors:
            # the register() call named is this module's, not the user's cell: drop that location
            here = re.compile(r" \(" + re.escape(__file__) + r":\d+\)")
            reasons = "; ".join(here.sub("", e).removeprefix("plugin 'notebook cell': ") for e in registry.errors)
            raise SpecError("rules", reasons, "declarations with a valid name that is not registered yet")
    registry = registry or get_registry()
    entries = [_entry(rule, i, learning_rates) for i, rule in enumerate(rules)]
    if isinstance(learning_rates, dict):
        names = {e.get("label") for e in entries} | {e["rule"] for e in entries}
        unknown = [k for k in learning_rates if k not in names]
        if unknown:
            accepted = ", ".join(sorted(str(n) for n in names if n))
            raise SpecError(
                "learning_rates", unknown[0], f"a key naming one of the rules or labels compared: {accepted}"
            )
    spec = {
        "problem": problem_spec,
        "rules": entries,
        "seeds": seeds,
        **settings,
    }
    experiment = Experiment.from_dict(spec, registry, name=name or _default_name(spec))
    if progress is True:
        from .progress import auto_progress

        progress = auto_progress(f"{experiment.n_runs} runs × {experiment.steps} steps")
    return run_experiment(experiment, registry=registry, workers=workers, progress=progress or None)


def _default_name(spec: dict) -> str:
    return f"{spec['problem'].get('name', 'problem')}-compare"
