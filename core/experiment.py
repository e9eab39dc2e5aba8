"""The experiment spec: a problem, run settings and descent-rule entries, validated against the registry."""

from __future__ import annotations

import itertools
import math
import re
import stat
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .declarations import HyperParam
from .errors import SpecError

__all__ = [
    "DTYPES",
    "MAX_STEPS",
    "MAX_FILE_BYTES",
    "MAX_SEEDS",
    "MAX_RUNS",
    "SEED_LIMIT",
    "INT64",
    "NAME_PATTERN",
    "MAX_NAME_LENGTH",
    "NAME_ACCEPTED",
    "SETTINGS",
    "SEED_COUNT",
    "TARGET_LOSS",
    "setting",
    "TOP_KEYS",
    "ENTRY_KEYS",
    "SCHEDULE_KEYS",
    "JOINED_KEYS",
    "LEARNING_RATE",
    "TransformSpec",
    "RuleEntry",
    "RunConfig",
    "Experiment",
    "check_name",
    "parse_toml",
    "load_experiment_file",
    "TRANSFORMS_ACCEPTED",
    "MAX_JOB_SECONDS",
    "RESULT_COPIES",
    "MEMORY_LIMIT_ENV",
    "available_memory",
    "resource_estimate",
    "check_resources",
    "SEARCHES",
    "PROTOCOL_KEYS",
    "MAX_BUDGET",
    "PROBLEM_RUN_KEYS",
    "Protocol",
    "check_protocol",
]

DTYPES = ("float64", "float32")
MAX_STEPS = 10_000_000
MAX_FILE_BYTES = 16 * 1024 * 1024  # an experiment file is a few hundred bytes; this is a sanity bound
# Counts checked when the file is loaded, before anything is allocated: every run is a RunConfig, a
# row of every table and a slice of the stacked parameters.
MAX_SEEDS = 100_000
MAX_RUNS = 100_000
SEED_LIMIT = 2**32  # seeds are stored as int64 and passed to numpy's default_rng; [0, 2**32) for all
INT64 = (-(2**63), 2**63)  # TOML integers are 64-bit; tomllib accepts larger ones, nothing after it does
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
# An experiment name becomes a folder name "<name>-<YYYYmmdd-HHMMSS>" (and, with a collision, a suffix):
# well below the 255 bytes a file name may have on common file systems.
MAX_NAME_LENGTH = 100
NAME_ACCEPTED = (
    f"1 to {MAX_NAME_LENGTH} letters, digits, '.', '_' or '-', starting with a letter or digit "
    "(it names the results folder)"
)
# A rule entry's label is shown in one-line messages, legends, tables and reports: printable text
# (no line breaks, tabs or other control characters, which would split those lines) of bounded length.
MAX_LABEL_LENGTH = 200
LABEL_ACCEPTED = f"a label of 1 to {MAX_LABEL_LENGTH} printable characters (no line breaks, tabs or control characters)"

# Run settings with their declarations: the same checks and messages as rule hyperparameters.
SETTINGS: tuple[HyperParam, ...] = (
    HyperParam("steps", 500, 1, MAX_STEPS, kind="int", help="number of descent steps per run"),
    HyperParam("batch_size", 0, 0, None, kind="int", help="0 = full batch; else samples per mini-batch"),
    HyperParam("dtype", "float64", kind="choice", choices=DTYPES, help="floating-point type of the runs"),
    HyperParam(
        "eval_every",
        10,
        0,
        None,
        kind="int",
        help="test loss/accuracy every k steps and at the last step (0 = last step only)",
    ),
    HyperParam(
        "divergence_factor",
        1e4,
        1.0,
        None,
        low_open=True,
        help="a run diverges when its loss exceeds this multiple of its initial loss (or is NaN/inf)",
    ),
    HyperParam("sharpness_every", 0, 0, None, kind="int", help="top Hessian eigenvalue every k steps (0 = off)"),
    HyperParam(
        "snapshot_every",
        0,
        0,
        None,
        kind="int",
        help="keep every run's weights every k steps and at the last step (0 = off), "
        "so figures can show any of those steps without training again",
    ),
)
# Declared here too although parsed by their own checks (a count or a list; optional): the dashboard
# builds its widgets from these, so a default or a help text lives in one place.
SEED_COUNT = HyperParam("seeds", 1, 1, MAX_SEEDS, kind="int", help="runs per configuration (seeds 0..n-1)")
TARGET_LOSS = HyperParam(
    "target_loss", 0.0, help="steps_to_target: the first step whose loss is at or below this (absent = none)"
)


def setting(name: str) -> HyperParam:
    """The declaration of run setting ``name`` (of :data:`SETTINGS`, or seeds / target_loss)."""
    for h in (*SETTINGS, SEED_COUNT, TARGET_LOSS):
        if h.name == name:
            return h
    raise KeyError(name)


TOP_KEYS = (
    "name",
    "steps",
    "seeds",
    "batch_size",
    "dtype",
    "eval_every",
    "divergence_factor",
    "target_loss",
    "sharpness_every",
    "snapshot_every",
    "problem",
    "rules",
    "protocol",
    "problems",
    "suite",
)
ENTRY_KEYS = ("rule", "label", "learning_rate", "schedule", "transforms")
SCHEDULE_KEYS = ("name", "warmup_steps")
JOINED_KEYS = ("schedules", "milestones")  # the fields of a schedule that joins others; no schedule declares them
LEARNING_RATE = HyperParam("learning_rate", 0.01, 0.0, None, low_open=True, log=True, help="base learning rate α")


@dataclass(frozen=True)
class TransformSpec:
    """One item of an entry's ``transforms`` list: a transform's name and its checked hyperparameters."""

    name: str
    values: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"name": self.name, **self.values}


@dataclass
class RuleEntry:
    """One ``[[rules]]`` table: a rule, its grid of hyperparameters and its schedule."""

    rule: str
    label: str
    learning_rate: list[float]
    hyper: dict[str, list] = field(default_factory=dict)
    schedule: str = "constant"
    schedule_hyper: dict[str, list] = field(default_factory=dict)
    warmup_steps: int = 0
    transforms: list[TransformSpec] = field(default_factory=list)  # applied in order around the rule

    def grid(self) -> list[tuple[float, dict, dict]]:
        """Every ``(learning_rate, hyper, schedule_hyper)`` combination, learning rate outermost."""
        names = list(self.hyper)
        schedule_names = list(self.schedule_hyper)
        axes = [self.learning_rate] + [self.hyper[n] for n in names] + [self.schedule_hyper[n] for n in schedule_names]
        combos = []
        for values in itertools.product(*axes):
            hyper = dict(zip(names, values[1 : 1 + len(names)]))
            schedule_hyper = dict(zip(schedule_names, values[1 + len(names) :]))
            combos.append((values[0], hyper, schedule_hyper))
        return combos

    def to_dict(self) -> dict:
        def scalar_or_list(values):
            return values[0] if len(values) == 1 else list(values)

        d: dict[str, Any] = {
            "rule": self.rule,
            "label": self.label,
            "learning_rate": scalar_or_list(self.learning_rate),
        }
        d.update({k: scalar_or_list(v) for k, v in self.hyper.items()})
        schedule = {"name": self.schedule, "warmup_steps": self.warmup_steps}
        schedule.update({k: scalar_or_list(v) for k, v in self.schedule_hyper.items()})
        d["schedule"] = schedule
        if self.transforms:  # written only when used: older result folders' specs stay byte-identical
            d["transforms"] = [t.to_dict() for t in self.transforms]
        return d

    def transforms_text(self) -> str:
        """The runs table's ``transforms`` text, e.g. ``clip_global_norm(max_norm=1)>weight_decay_l2(decay=0.01)``."""
        from .transforms import describe

        return describe([(t.name, t.values) for t in self.transforms])


@dataclass(frozen=True)
class RunConfig:
    """One run: a point of an entry's grid with one seed."""

    run_id: int
    entry: int
    label: str
    rule: str
    schedule: str
    seed: int
    learning_rate: float
    hyper: dict
    schedule_hyper: dict
    warmup_steps: int


@dataclass
class Experiment:
    """A validated experiment: every setting filled in, every name known to the registry."""

    name: str
    problem: str
    problem_settings: dict
    steps: int
    seeds: list[int]
    batch_size: int
    dtype: str
    eval_every: int
    divergence_factor: float
    target_loss: float | None
    sharpness_every: int
    entries: list[RuleEntry]
    snapshot_every: int = 0
    protocol: "Protocol | None" = None  # [protocol]: an honest comparison (descentlab.protocol)
    # [[problems]] or suite = "...": every problem of a protocol comparison, each
    # {"name", "settings", "steps", "target_loss"}; empty for a single-problem experiment
    suite: list = field(default_factory=list)

    # ---- construction -------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, d: dict, registry=None, *, name: str | None = None, strict: bool = True) -> "Experiment":
        """Validate a parsed TOML document; raise a one-line SpecError on the first bad value.

        ``strict=False`` trusts a complete document written by :meth:`to_dict` (used to load saved
        results when the plugins that ran them are not loaded now): names are not looked up.
        """
        if not isinstance(d, dict):
            raise SpecError("experiment", d, "a TOML table")
        if strict and registry is None:
            from .registry import get_registry

            registry = get_registry()
        _check_keys("experiment", d, TOP_KEYS)
        if "name" in d:
            exp_name = d["name"]
            check_name(exp_name)
        else:
            exp_name = name or "experiment"
            exp_name = re.sub(r"[^A-Za-z0-9_.-]", "-", exp_name).lstrip(".-_")[:MAX_NAME_LENGTH] or "experiment"
        values = {h.name: h.check(d.get(h.name, h.default)) for h in SETTINGS}
        steps = values["steps"]
        seeds = _check_seeds(d.get("seeds", 1))
        target = d.get("target_loss")
        if target is not None:
            target = TARGET_LOSS.check(target)
        suite = _check_suite(d, registry, strict, steps, target)
        problem, settings, kind = (
            (suite[0]["name"], suite[0]["settings"], "")
            if suite
            else _check_problem(d.get("problem"), registry, strict)
        )
        if values["batch_size"] > 0 and kind == "landscape":
            raise SpecError(
                "batch_size",
                values["batch_size"],
                f"0 (problem {problem!r} is a landscape: it has no samples to batch)",
            )
        for every in ("sharpness_every", "snapshot_every"):
            if values[every] > steps:
                raise SpecError(every, values[every], f"an integer in [0, {steps}] (steps)")
        rules = d.get("rules")
        if not isinstance(rules, list) or not rules or not all(isinstance(r, dict) for r in rules):
            raise SpecError("rules", rules, 'at least one [[rules]] table, e.g. rule = "gd"')
        entries = [_check_entry(i, r, registry, strict, steps) for i, r in enumerate(rules)]
        _unique_labels(entries, [("label" in r) for r in rules])
        _check_run_count(entries, seeds)
        protocol = None
        if "protocol" in d:
            if "seeds" in d:
                raise SpecError(
                    "seeds",
                    d["seeds"],
                    "no top-level seeds with [protocol]: set protocol.tune_seeds "
                    "and protocol.test_seeds (tuning never sees a test seed)",
                )
            protocol = check_protocol(d["protocol"], entries, registry, strict)
            seeds = [*protocol.tune_seeds, *protocol.test_seeds]
        elif suite:
            raise SpecError(
                "problems" if "problems" in d else "suite",
                d.get("problems", d.get("suite")),
                "a [protocol] table as well (several problems are compared by the protocol)",
            )
        _check_int64(d, "")  # last: the settings' own ranges name what they accept more precisely
        return cls(
            protocol=protocol,
            suite=suite,
            name=exp_name,
            problem=problem,
            problem_settings=settings,
            steps=steps,
            seeds=seeds,
            batch_size=values["batch_size"],
            dtype=values["dtype"],
            eval_every=values["eval_every"],
            divergence_factor=values["divergence_factor"],
            target_loss=target,
            sharpness_every=values["sharpness_every"],
            entries=entries,
            snapshot_every=values["snapshot_every"],
        )

    @classmethod
    def from_toml(cls, text: str, registry=None, *, name: str | None = None, strict: bool = True) -> "Experiment":
        return cls.from_dict(parse_toml(text), registry, name=name, strict=strict)

    # ---- output ---------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        """The complete spec (every default written out); ``from_dict(to_dict())`` gives it back."""
        d: dict[str, Any] = {
            "name": self.name,
            "steps": self.steps,
            "seeds": list(self.seeds),
            "batch_size": self.batch_size,
            "dtype": self.dtype,
            "eval_every": self.eval_every,
            "divergence_factor": self.divergence_factor,
        }
        if self.protocol is not None:  # its seeds are the protocol's tune_seeds and test_seeds
            del d["seeds"]
        if self.target_loss is not None:
            d["target_loss"] = self.target_loss
        d["sharpness_every"] = self.sharpness_every
        if self.snapshot_every:  # written only when on: older result folders' specs stay byte-identical
            d["snapshot_every"] = self.snapshot_every
        if self.suite:
            d["problems"] = [
                {
                    "name": p["name"],
                    **p["settings"],
                    "steps": p["steps"],
                    **({"target_loss": p["target_loss"]} if p["target_loss"] is not None else {}),
                    **({"target_accuracy": p["target_accuracy"]} if p.get("target_accuracy") is not None else {}),
                }
                for p in self.suite
            ]
        else:
            d["problem"] = {"name": self.problem, **self.problem_settings}
        d["rules"] = [e.to_dict() for e in self.entries]
        if self.protocol is not None:  # written only when used: older result folders' specs stay byte-identical
            d["protocol"] = self.protocol.to_dict()
        return d

    def to_toml(self) -> str:
        import tomli_w

        return tomli_w.dumps(self.to_dict())

    def runs(self) -> list[RunConfig]:
        """Every run: for each entry its grid (learning rate outermost) times the seeds (innermost)."""
        out: list[RunConfig] = []
        for index, entry in enumerate(self.entries):
            for learning_rate, hyper, schedule_hyper in entry.grid():
                for seed in self.seeds:
                    out.append(
                        RunConfig(
                            len(out),
                            index,
                            entry.label,
                            entry.rule,
                            entry.schedule,
                            seed,
                            float(learning_rate),
                            dict(hyper),
                            dict(schedule_hyper),
                            entry.warmup_steps,
                        )
                    )
        return out

    @property
    def n_runs(self) -> int:
        return sum(len(e.grid()) for e in self.entries) * len(self.seeds)


# ---- helpers ----------------------------------------------------------------------------------------


def check_name(value) -> str:
    """An experiment name usable as a results folder name, or a one-line SpecError."""
    if (
        not isinstance(value, str)
        or len(value) > MAX_NAME_LENGTH
        or not value.isascii()
        or not NAME_PATTERN.match(value)
    ):
        shown = value if not isinstance(value, str) or len(value) <= 40 else value[:40] + "..."
        hint = f"{len(value)} characters" if isinstance(value, str) and len(value) > MAX_NAME_LENGTH else ""
        raise SpecError("name", shown, NAME_ACCEPTED, hint=hint)
    return value


def _check_label(where: str, value) -> str:
    """A rule entry's label, or a one-line SpecError naming ``<where>.label``."""
    if not isinstance(value, str):
        raise SpecError(f"{where}.label", value, "a string")
    if not value or len(value) > MAX_LABEL_LENGTH or not value.isprintable():
        hint = f"{len(value)} characters" if len(value) > MAX_LABEL_LENGTH else ""
        raise SpecError(f"{where}.label", value, LABEL_ACCEPTED, hint=hint)
    return value


TOO_DEEP = "arrays or inline tables nested too deeply"


def parse_toml(text: str) -> dict:
    """TOML text -> dict; a syntax error becomes a SpecError naming the line."""
    if isinstance(text, bytes):
        text = text.decode("utf-8-sig")
    try:
        return tomllib.loads(text.removeprefix("\ufeff"))  # a byte-order mark is not TOML syntax
    except tomllib.TOMLDecodeError as error:
        # tomllib's message ends with "(at line L, column C)"
        raise SpecError("experiment file", "malformed TOML", "valid TOML", hint=str(error)) from None
    except RecursionError:  # tomllib parses nested arrays and inline tables recursively
        raise SpecError("experiment file", "malformed TOML", "valid TOML", hint=TOO_DEEP) from None


def load_experiment_file(path, registry=None) -> Experiment:
    """Read and validate an experiment TOML file; its name defaults to the file name."""
    p = Path(path)
    accepted = "a readable UTF-8 TOML file"
    try:
        if p.is_dir():
            raise SpecError("experiment file", str(path), accepted, hint="it is a directory")
        if p.exists() and not stat.S_ISREG(p.stat().st_mode):
            # /dev/zero or a FIFO would never end (or block until a writer comes)
            raise SpecError("experiment file", str(path), accepted, hint="not a regular file")
        if p.exists() and p.stat().st_size > MAX_FILE_BYTES:
            raise SpecError(
                "experiment file", str(path), accepted, hint=f"{p.stat().st_size} bytes; at most {MAX_FILE_BYTES}"
            )
        # bytes, then utf-8-sig: a byte-order mark (Windows editors write one) is accepted, as for CSV files
        text = p.read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        raise SpecError("experiment file", str(path), "an existing .toml file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise SpecError("experiment file", str(path), accepted, hint=type(error).__name__) from None
    try:
        d = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise SpecError(f"experiment file {p.name}", "malformed TOML", "valid TOML", hint=str(error)) from None
    except RecursionError:  # tomllib parses nested arrays and inline tables recursively
        raise SpecError(f"experiment file {p.name}", "malformed TOML", "valid TOML", hint=TOO_DEEP) from None
    return Experiment.from_dict(d, registry, name=p.stem)


def _check_keys(where: str, d: dict, accepted) -> None:
    for key in d:
        if key not in accepted:
            raise SpecError(f"{where}", key, "one of the keys " + ", ".join(accepted), hint="unknown key")


def _check_seeds(value) -> list[int]:
    accepted = (
        f"a count n >= 1 and <= {MAX_SEEDS} (seeds 0..n-1) or a non-empty list of at most {MAX_SEEDS} "
        f"distinct integers in [0, 2**32)"
    )
    if isinstance(value, int) and not isinstance(value, bool):
        if not 1 <= value <= MAX_SEEDS:
            raise SpecError("seeds", value, accepted)
        return list(range(value))
    if not isinstance(value, list) or not value:
        raise SpecError("seeds", value, accepted)
    if len(value) > MAX_SEEDS:
        raise SpecError("seeds", f"a list of {len(value)} seeds", accepted)
    for s in value:
        if isinstance(s, bool) or not isinstance(s, int) or not 0 <= s < SEED_LIMIT:
            raise SpecError("seeds", s, accepted)
    if len(set(value)) != len(value):
        raise SpecError("seeds", value, accepted, hint="a seed is repeated")
    return [int(s) for s in value]


def _check_int64(value, where: str) -> None:
    """Refuse integers beyond 64 bits anywhere in the document (numpy and the tables hold int64)."""
    if isinstance(value, dict):
        for key, item in value.items():
            _check_int64(item, f"{where}.{key}" if where else str(key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _check_int64(item, f"{where}[{i}]")
    elif isinstance(value, int) and not isinstance(value, bool) and not INT64[0] <= value < INT64[1]:
        raise SpecError(where, value, "an integer in [-2**63, 2**63) (TOML integers are 64-bit)")


def _check_run_count(entries: list["RuleEntry"], seeds: list[int]) -> None:
    """The number of runs, from the grid sizes (before any grid is built)."""
    total = 0
    for i, entry in enumerate(entries):
        points = len(entry.learning_rate)
        for axis in (*entry.hyper.values(), *entry.schedule_hyper.values()):
            points *= len(axis)
        total += points * len(seeds)
        if total > MAX_RUNS:
            raise SpecError(
                "runs",
                total if i == len(entries) - 1 else f"more than {total}",
                f"at most {MAX_RUNS} runs (grid points x {len(seeds)} seeds, over all [[rules]])",
                hint=f"rules[{i}] has {points} grid points",
            )


def _check_problem(value, registry, strict) -> tuple[str, dict, str]:
    if isinstance(value, str):
        value = {"name": value}
    if not isinstance(value, dict) or "name" not in value:
        raise SpecError("problem", value, 'a [problem] table with a name, e.g. name = "spirals"')
    name = value["name"]
    if not strict:
        return name, {k: v for k, v in value.items() if k != "name"}, ""
    known = registry.problems
    if name not in known:
        raise SpecError("problem.name", name, "one of " + (", ".join(sorted(known)) or "(no problems loaded)"))
    problem = known[name]
    declared = {h.name: h for h in problem.settings}
    _check_keys("problem", value, ("name", *declared))
    settings = {h.name: h.check(value.get(h.name, h.default), "problem") for h in problem.settings}
    return name, settings, problem.kind


def _check_grid(h: HyperParam, value, where: str) -> list:
    """A hyperparameter value or a list of values (a grid axis), each checked."""
    if isinstance(value, list) and h.kind != "int_list":
        if not value:
            raise SpecError(f"{where}.{h.name}", value, h.accepted() + ", or a non-empty list of them")
        checked = [h.check(v, where) for v in value]
        if len(set(map(repr, checked))) != len(checked):
            raise SpecError(f"{where}.{h.name}", value, "a list without repeated values")
        return checked
    return [h.check(value, where)]


def _check_entry(index: int, d: dict, registry, strict: bool, steps: int) -> RuleEntry:
    where = f"rules[{index}]"
    if "rule" not in d:
        raise SpecError(f"{where}.rule", None, 'the name of a descent rule, e.g. rule = "gd"')
    rule_name = d["rule"]
    schedule_spec = d.get("schedule", "constant")
    if isinstance(schedule_spec, str):
        schedule_spec = {"name": schedule_spec}
    if not isinstance(schedule_spec, dict):
        raise SpecError(f"{where}.schedule", schedule_spec, "a schedule name or a [rules.schedule] table")
    schedule_name = schedule_spec.get("name", "constant")
    label = d.get("label")
    if label is not None and not isinstance(label, str):
        raise SpecError(f"{where}.label", label, "a string")
    if label is not None and strict:  # a saved folder (strict=False) keeps the label it was run with
        label = _check_label(where, label)

    if not strict:
        lr = d.get("learning_rate", [])
        return RuleEntry(
            rule=rule_name,
            label=label or rule_name,
            learning_rate=[float(v) for v in (lr if isinstance(lr, list) else [lr])],
            hyper={k: (v if isinstance(v, list) else [v]) for k, v in d.items() if k not in ENTRY_KEYS},
            schedule=schedule_name,
            # a joining schedule's schedules and milestones are one grid point, even as lists
            schedule_hyper={
                k: (v if isinstance(v, list) and k not in JOINED_KEYS else [v])
                for k, v in schedule_spec.items()
                if k not in SCHEDULE_KEYS
            },
            warmup_steps=int(schedule_spec.get("warmup_steps", 0)),
            transforms=_check_transforms(where, d.get("transforms", []), registry, strict),
        )

    if not isinstance(rule_name, str) or rule_name not in registry.rules:
        raise SpecError(
            f"{where}.rule", rule_name, "one of " + (", ".join(sorted(registry.rules)) or "(no rules loaded)")
        )
    rule = registry.rules[rule_name]
    _check_keys(where, d, (*ENTRY_KEYS, *(h.name for h in rule.hyperparams)))
    if not isinstance(schedule_name, str) or schedule_name not in registry.schedules:
        raise SpecError(
            f"{where}.schedule.name",
            schedule_name,
            "one of " + (", ".join(sorted(registry.schedules)) or "(no schedules loaded)"),
        )
    schedule = registry.schedules[schedule_name]
    joined = JOINED_KEYS if schedule.joins else ()  # a joining schedule's parts (schedule_values.check_parts)
    _check_keys(f"{where}.schedule", schedule_spec, (*SCHEDULE_KEYS, *joined, *(h.name for h in schedule.hyperparams)))

    lr_decl = HyperParam("learning_rate", rule.default_learning_rate, 0.0, None, low_open=True)
    learning_rate = _check_grid(lr_decl, d.get("learning_rate", rule.default_learning_rate), where)
    hyper = {h.name: _check_grid(h, d.get(h.name, h.default), where) for h in rule.hyperparams}
    schedule_hyper = {
        h.name: _check_grid(h, schedule_spec.get(h.name, h.default), f"{where}.schedule") for h in schedule.hyperparams
    }
    if joined:
        from .schedule_values import check_parts

        schedule_hyper.update(check_parts(f"{where}.schedule", schedule_spec, registry))
    warmup = HyperParam("warmup_steps", 0, 0, steps - 1, kind="int").check(
        schedule_spec.get("warmup_steps", 0), f"{where}.schedule"
    )
    if warmup and schedule.stateful:  # its α_t comes from the run's losses, step by step: no ramp precomputed
        raise SpecError(
            f"{where}.schedule.warmup_steps",
            warmup,
            f"0 for a stateful schedule ({schedule_name!r} reads α_t from the run's losses)",
        )
    transforms = _check_transforms(where, d.get("transforms", []), registry, strict)
    if label is None:
        label = rule_name if schedule_name == "constant" else f"{rule_name} + {schedule_name}"
        if transforms:  # "gd + clip_global_norm": told apart from the same rule without them
            label = " + ".join([label, *(t.name for t in transforms)])
    return RuleEntry(
        rule=rule_name,
        label=label,
        learning_rate=learning_rate,
        hyper=hyper,
        schedule=schedule_name,
        schedule_hyper=schedule_hyper,
        warmup_steps=warmup,
        transforms=transforms,
    )


TRANSFORMS_ACCEPTED = (
    'a list of transform tables in order, e.g. transforms = [{name = "clip_global_norm", max_norm = 1.0}]'
)


def _check_transforms(where: str, value, registry, strict: bool) -> list[TransformSpec]:
    """An entry's ``transforms``: each a ``{name = ..., <hyperparameter> = value}`` table (or a bare name)."""
    if not isinstance(value, list):
        raise SpecError(f"{where}.transforms", value, TRANSFORMS_ACCEPTED)
    out = []
    for i, item in enumerate(value):
        at = f"{where}.transforms[{i}]"
        if isinstance(item, str):
            item = {"name": item}
        if not isinstance(item, dict) or "name" not in item:
            raise SpecError(at, item, 'a table with a name, e.g. {name = "clip_global_norm", max_norm = 1.0}')
        name = item["name"]
        if not strict:
            out.append(TransformSpec(str(name), {k: v for k, v in item.items() if k != "name"}))
            continue
        known = getattr(registry, "transforms", {})
        if not isinstance(name, str) or name not in known:
            raise SpecError(f"{at}.name", name, "one of " + (", ".join(sorted(known)) or "(no transforms loaded)"))
        transform = known[name]
        _check_keys(at, item, ("name", *(h.name for h in transform.hyperparams)))
        values = {}
        for h in transform.hyperparams:
            given = item.get(h.name, h.default)
            if isinstance(given, list) and h.kind != "int_list":
                raise SpecError(
                    f"{at}.{h.name}",
                    given,
                    h.accepted(),
                    hint="one value: a transform's hyperparameters are not grid axes",
                )
            values[h.name] = h.check(given, at)
        out.append(TransformSpec(name, values))
    return out


def _unique_labels(entries: list[RuleEntry], explicit: list[bool]) -> None:
    """Default labels are made unique ("adam", "adam #2"); two explicit equal labels are an error."""
    seen: dict[str, int] = {}
    for i, entry in enumerate(entries):
        if entry.label in seen:
            if explicit[i]:
                raise SpecError(
                    f"rules[{i}].label", entry.label, f"a label not already used by rules[{seen[entry.label]}]"
                )
            n = 2
            while f"{entry.label} #{n}" in seen:
                n += 1
            entry.label = f"{entry.label} #{n}"
        seen[entry.label] = i


# ---- what a job needs: checked before any work starts ---------------------------------------------

# Refused above this many estimated serial seconds (the runner's order-of-magnitude estimate).
MAX_JOB_SECONDS = 7 * 24 * 3600
# Result tables and their assembly hold a few copies of each run's per-step metrics and weights.
RESULT_COPIES = 3
MEMORY_LIMIT_ENV = "DESCENTLAB_MEMORY_LIMIT_GB"


def available_memory() -> tuple[int, str]:
    """``(bytes, where from)``: this machine's physical memory, or a cgroup limit or
    ``$DESCENTLAB_MEMORY_LIMIT_GB`` when either is smaller."""
    import os

    limits: list[tuple[int, str]] = []
    try:
        limits.append((os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"), "this machine has"))
    except (ValueError, OSError, AttributeError):
        pass
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(path).read_text().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < 2**60:
            limits.append((int(text), "this container may use"))
    text = os.environ.get(MEMORY_LIMIT_ENV, "").strip()
    if text:
        try:
            limits.append((int(float(text) * 1024**3), f"${MEMORY_LIMIT_ENV} allows"))
        except ValueError:
            raise SpecError(MEMORY_LIMIT_ENV, text, "a number of gigabytes") from None
    return min(limits) if limits else (2**62, "no limit known")


def resource_estimate(experiment: "Experiment", instance, workers: int = 1) -> tuple[int, float]:
    """``(bytes, serial seconds)`` a run of ``experiment`` on ``instance`` needs, roughly.

    Memory: the training data (once per process), each process's chunk of stacked runs (the
    runner's own working-set model, ``runner._bytes_per_run``) and, for every run, its per-step
    metrics, kept gradient/step copies, snapshots and final weights, times RESULT_COPIES for the
    tables built from them. Time: ``runner.estimated_seconds``.
    """
    from .chunk import METRIC_BASE, METRIC_TAIL, SMALL_PARAMS, snapshot_steps
    from .runner import CHUNK_BYTES, _bytes_per_run, estimated_seconds
    from .problem import is_predictor

    n_runs, steps = experiment.n_runs, experiment.steps
    P = int(instance.layout.size)
    itemsize = 8 if experiment.dtype == "float64" else 4
    per_run = _bytes_per_run(experiment, instance) * 2  # params, grads, rule state and temporaries
    in_flight = min(max(1, CHUNK_BYTES // max(per_run, 1)), n_runs) * max(int(workers), 1)
    data = 0
    if is_predictor(instance):  # the declared Predictor capability: its dataset's arrays stay in memory
        for name in ("x_train", "y_train", "x_test", "y_test"):
            data += int(getattr(getattr(instance.dataset, name), "nbytes", 0) or 0)
    n_layers = len(instance.layout.layers)
    kept = (steps + 1) * (len(METRIC_BASE) + len(METRIC_TAIL) + n_layers) * 8
    if P <= SMALL_PARAMS:
        kept += 2 * (steps + 1) * P * itemsize
    if experiment.snapshot_every:
        kept += len(snapshot_steps(steps, experiment.snapshot_every)) * P * itemsize
    kept += 2 * P * 8
    total = data * max(int(workers), 1) + in_flight * per_run + n_runs * kept * RESULT_COPIES
    return int(total), float(estimated_seconds(experiment, instance))


def _gigabytes(n: float) -> str:
    gb = n / 1024**3
    return f"{gb:.3g} GB" if gb >= 0.01 else f"{n / 1024**2:.3g} MB"


def check_resources(experiment: "Experiment", instance, workers: int = 1) -> tuple[int, float]:
    """Refuse, in one line and before any work, a job that cannot fit in memory or would take weeks."""
    needed, seconds = resource_estimate(experiment, instance, workers)
    limit, source = available_memory()
    what = (
        f"{experiment.n_runs} runs x {instance.layout.size} parameters x {experiment.steps} steps ({experiment.dtype})"
    )
    if needed > limit:
        raise SpecError(
            "experiment size",
            what,
            "a job that fits in memory",
            hint=f"needs ~{_gigabytes(needed)}, {source} {_gigabytes(limit)}; use fewer or smaller "
            "layers, seeds, grid points or steps",
        )
    if seconds > MAX_JOB_SECONDS:
        raise SpecError(
            "experiment size",
            what,
            f"a job of at most ~{MAX_JOB_SECONDS // 86400} days",
            hint=f"estimated ~{seconds / 86400:.3g} days serial; use fewer runs, steps or samples",
        )
    return needed, seconds


# ---- [protocol] and [[problems]]: an honest comparison (descentlab.protocol runs it) ---------------

SEARCHES = ("random", "grid")
PROTOCOL_KEYS = (
    "budget",
    "search",
    "search_seed",
    "tune_seeds",
    "test_seeds",
    "target",
    "target_accuracy",
    "defaults_compete",
    "lr_factors",
    "tune",
    "validation",
)
MAX_BUDGET = 1000
# per-problem run settings a [[problems]] table may set
PROBLEM_RUN_KEYS = ("steps", "target_loss", "target_accuracy")


@dataclass(frozen=True)
class Protocol:
    """A validated ``[protocol]`` table: equal tuning budgets, disjoint tune/test seeds (docs/protocol.md)."""

    budget: int = 8
    search: str = "random"
    search_seed: int = 0
    tune_seeds: tuple = (0, 1, 2)
    # 8, not 5: the paired test's smallest p-value is 2 / 2^n, so 5 seeds could never reach p < 0.05
    test_seeds: tuple = (3, 4, 5, 6, 7, 8, 9, 10)
    target: float | None = None
    lr_factors: tuple = (0.01, 100.0)  # the α range: each rule's own default α times these
    tune: tuple | str = "all"  # "all" hyperparameters with a finite declared range, or these names
    validation: float = 0.2  # share of a supervised problem's training rows that tuning selects on
    # steps to a test-split accuracy ≥ this on classification problems (a problem's own wins)
    target_accuracy: float | None = None
    # the declared defaults are a candidate of the selection too (off: tuned = the best of the budget's
    # trials, as Crowded Valley's "tuned"; on: never worse than the defaults on the tune seeds)
    defaults_compete: bool = False

    def to_dict(self) -> dict:
        d: dict[str, Any] = {
            "budget": self.budget,
            "search": self.search,
            "search_seed": self.search_seed,
            "tune_seeds": list(self.tune_seeds),
            "test_seeds": list(self.test_seeds),
            "lr_factors": list(self.lr_factors),
            "tune": self.tune if isinstance(self.tune, str) else list(self.tune),
            "validation": self.validation,
        }
        if self.target is not None:
            d["target"] = self.target
        if self.target_accuracy is not None:  # written only when set: older specs stay byte-identical
            d["target_accuracy"] = self.target_accuracy
        if self.defaults_compete:
            d["defaults_compete"] = True
        return d


def _protocol_seeds(value, field_name: str, start: int) -> tuple:
    """A count n (seeds start..start+n-1) or a list, checked as the top-level ``seeds``."""
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_SEEDS:
        if start + value > SEED_LIMIT:  # a count continues after the tune seeds: it must stay below 2**32
            raise SpecError(
                f"protocol.{field_name}",
                value,
                f"a count of seeds from {start} that stay below 2**32, or a list of seeds",
            )
        return tuple(range(start, start + value))
    try:
        return tuple(_check_seeds(value))
    except SpecError as error:  # the same message, named as the protocol's field
        raise SpecError(f"protocol.{field_name}", error.value, error.accepted) from None


def check_protocol(value, entries: list[RuleEntry], registry, strict: bool) -> Protocol:
    """The ``[protocol]`` table, or a one-line SpecError naming the field, the value and what is accepted."""
    if not isinstance(value, dict):
        raise SpecError("protocol", value, "a [protocol] table, e.g. budget = 8")
    _check_keys("protocol", value, PROTOCOL_KEYS)
    budget = HyperParam("budget", 8, 1, MAX_BUDGET, kind="int").check(value.get("budget", 8), "protocol")
    search = HyperParam("search", "random", kind="choice", choices=SEARCHES).check(
        value.get("search", "random"), "protocol"
    )
    search_seed = HyperParam("search_seed", 0, 0, SEED_LIMIT - 1, kind="int").check(
        value.get("search_seed", 0), "protocol"
    )
    tune_seeds = _protocol_seeds(value.get("tune_seeds", 3), "tune_seeds", 0)
    test_seeds = _protocol_seeds(value.get("test_seeds", 8), "test_seeds", max(tune_seeds) + 1)
    shared = sorted(set(tune_seeds) & set(test_seeds))
    if shared:
        raise SpecError(
            "protocol.test_seeds",
            list(test_seeds),
            "seeds disjoint from protocol.tune_seeds",
            hint=f"{shared} in both: tuning must never see a test seed",
        )
    target = value.get("target")
    if target is not None:
        target = HyperParam("target", 0.0).check(target, "protocol")
    target_accuracy = _target_accuracy(value.get("target_accuracy"), "protocol.target_accuracy")
    defaults_compete = value.get("defaults_compete", False)
    if not isinstance(defaults_compete, bool):
        raise SpecError(
            "protocol.defaults_compete",
            defaults_compete,
            "true or false: whether each rule's defaults are a candidate of the selection",
        )
    validation = value.get("validation", 0.2)
    if (
        isinstance(validation, bool)
        or not isinstance(validation, (int, float))
        or not math.isfinite(validation)
        or not 0 < validation <= 0.5
    ):
        raise SpecError(
            "protocol.validation",
            validation,
            "a number in (0, 0.5]: the share of a supervised problem's training rows held out for selection",
        )
    factors = value.get("lr_factors", [0.01, 100.0])
    accepted = "[low, high]: two numbers 0 < low <= high, multiplying each rule's default learning rate"
    if (
        not isinstance(factors, list)
        or len(factors) != 2
        or any(
            isinstance(f, bool) or not isinstance(f, (int, float)) or not math.isfinite(f) or f <= 0 for f in factors
        )
        or factors[0] > factors[1]
    ):
        raise SpecError("protocol.lr_factors", factors, accepted)
    tune = value.get("tune", "all")
    if tune != "all":
        declared = {h.name for e in entries for h in (registry.rules[e.rule].hyperparams if strict else ())}
        if (
            not isinstance(tune, list)
            or not all(isinstance(t, str) for t in tune)
            or (strict and any(t not in declared for t in tune))
        ):
            raise SpecError(
                "protocol.tune",
                tune,
                '"all" or a list of hyperparameter names of the rules ('
                + (", ".join(sorted(declared)) or "none declared")
                + "); learning_rate is always tuned",
            )
        tune = tuple(tune)
    # each problem trains two batches; both are counted before anything is allocated
    tuning_runs = len(entries) * (1 + budget) * len(tune_seeds)
    if tuning_runs > MAX_RUNS:
        raise SpecError(
            "protocol.budget",
            budget,
            f"at most {MAX_RUNS} tuning runs per problem (rules x (1 + budget) x tune seeds)",
            hint=f"{tuning_runs} runs",
        )
    if len(entries) * 2 * len(test_seeds) > MAX_RUNS:
        raise SpecError(
            "protocol.test_seeds",
            f"{len(test_seeds)} seeds",
            f"at most {MAX_RUNS} test runs per problem (rules x 2 x test seeds)",
            hint=f"{len(entries) * 2 * len(test_seeds)} runs",
        )
    return Protocol(
        budget=budget,
        search=search,
        search_seed=search_seed,
        tune_seeds=tune_seeds,
        test_seeds=test_seeds,
        target=target,
        lr_factors=(float(factors[0]), float(factors[1])),
        tune=tune,
        validation=float(validation),
        target_accuracy=target_accuracy,
        defaults_compete=defaults_compete,
    )


def _target_accuracy(value, field_name: str) -> float | None:
    """A target accuracy: None, or a number in (0, 1] (a share of the test rows classified right)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or not 0 < value <= 1:
        raise SpecError(field_name, value, "a number in (0, 1]: the share of test rows classified right")
    return float(value)


def _check_suite(d: dict, registry, strict: bool, steps: int, target) -> list[dict]:
    """``[[problems]]`` or ``suite = "<name>"``: each problem with its own steps and target; [] if neither."""
    if "suite" in d:
        from .protocol import SUITES  # the built-in suites live with the protocol that runs them

        if "problems" in d or "problem" in d:
            raise SpecError("suite", d["suite"], "either suite, [[problems]] or [problem], not several")
        if d["suite"] not in SUITES:
            raise SpecError("suite", d["suite"], "one of " + ", ".join(repr(s) for s in SUITES))
        items = [dict(item) for item in SUITES[d["suite"]]]
    elif "problems" in d:
        if "problem" in d:
            raise SpecError("problems", "[[problems]] and [problem]", "one of them, not both")
        items = d["problems"]
        if not isinstance(items, list) or not items or not all(isinstance(i, dict) for i in items):
            raise SpecError("problems", items, 'at least one [[problems]] table, e.g. name = "rosenbrock"')
    else:
        return []
    suite = []
    for i, item in enumerate(items):
        item = dict(item)
        run = {k: item.pop(k) for k in PROBLEM_RUN_KEYS if k in item}
        where = f"problems[{i}]"
        own_steps = HyperParam("steps", steps, 1, MAX_STEPS, kind="int").check(run.get("steps", steps), where)
        own_target = run.get("target_loss", target)
        if own_target is not None:
            own_target = HyperParam("target_loss", 0.0).check(own_target, where)
        try:
            name, settings, kind = _check_problem(item, registry, strict)
        except SpecError as error:
            raise SpecError(f"{where}: {error.field}", error.value, error.accepted) from None
        if kind == "landscape" and d.get("batch_size", 0):
            raise SpecError("batch_size", d["batch_size"], f"0 (problems[{i}] {name!r} is a landscape)")
        accuracy = _target_accuracy(run.get("target_accuracy"), f"{where}.target_accuracy")
        suite.append(
            {
                "name": name,
                "settings": settings,
                "steps": own_steps,
                "target_loss": own_target,
                "target_accuracy": accuracy,
            }
        )
    return suite
