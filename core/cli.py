"""The ``descentlab`` command: run experiments, list plugins, and launch the dashboard, reports and lr-find."""

from __future__ import annotations

import argparse
import importlib
import math
import os
import re
import sys
import time
from concurrent.futures.process import BrokenProcessPool

from .errors import PluginError, SpecError, one_line
from .extras import EXTRA_OF_MODULE, MissingExtra, extra_message, has_module
from .log import cli_logging, level_for, logger

__all__ = [
    "EXIT_BAD_INPUT",
    "UsageError",
    "ProgressBar",
    "cmd_run",
    "EXECUTORS",
    "SweepInterrupted",
    "cmd_plugins",
    "cmd_check",
    "cmd_new_rule",
    "PORTS",
    "cmd_dashboard",
    "build_parser",
    "add_report_arguments",
    "add_lr_find_arguments",
    "REPORT_FORMATS",
    "LR_FIND_MAX_STEPS",
    "cmd_report",
    "cmd_lr_find",
    "SHELLS",
    "completion_script",
    "cmd_completion",
    "COMMAND_EXTRAS",
    "EXIT_INTERRUPTED",
    "interrupted",
    "main",
]

EXIT_BAD_INPUT = 2


class UsageError(Exception):
    """Bad command-line arguments (one line, exit status 2)."""


class _Parser(argparse.ArgumentParser):
    """argparse whose every complaint, for the command and each subcommand alike, is one line
    ``<field>: got <value>; expected <what is accepted> (see <prog> --help)``: a UsageError (exit
    status 2), never the usage text nor a traceback. A subcommand's parser refuses what it does not
    know itself, so that the line names that subcommand."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("exit_on_error", False)  # an ArgumentError comes to parse_known_args as it is
        super().__init__(*args, **kwargs)

    def parse_known_args(self, args=None, namespace=None):
        self._last_args = list(sys.argv[1:] if args is None else args)
        try:
            namespace, extras = super().parse_known_args(args, namespace)
        except argparse.ArgumentError as error:
            raise UsageError(self._argument_line(error)) from None
        if extras:
            raise UsageError(self._extras_line(extras))
        return namespace, extras

    def error(self, message):  # what argparse reports without an ArgumentError (e.g. a missing positional)
        raise UsageError(self._message_line(message))

    # -------------------------------------------------------------- the values that are refused

    def _get_value(self, action, arg_string):
        try:
            return super()._get_value(action, arg_string)
        except argparse.ArgumentError:
            accepted = getattr(action.type, "accepted", None) or _TYPE_WORDS.get(action.type, "a valid value")
            raise _BadArgument(action, repr(arg_string), accepted) from None

    def _check_value(self, action, value):
        if action.choices is not None and value not in action.choices:
            raise _BadArgument(action, repr(value), "one of " + ", ".join(map(str, action.choices)))

    # -------------------------------------------------------------- the one line

    def _line(self, field: str, got: str, accepted: str) -> str:
        return one_line(f"{field}: got {got}; expected {accepted} (see {self.prog} --help)")

    def _command(self) -> str:
        """This parser's subcommand ("" for the top level): ``lr-find`` of ``descentlab lr-find``."""
        return self.prog.partition(" ")[2]

    def _action(self, name: str | None):
        return next((a for a in self._actions if name is not None and _action_name(a) == name), None)

    def _argument_line(self, error: argparse.ArgumentError) -> str:
        if isinstance(error, _BadArgument):
            return self._line(_field(error.action), error.got, error.accepted)
        action, message = self._action(error.argument_name), error.message
        if action is None:
            return self._message_line(message)
        field = _field(action)
        if message.startswith("expected"):  # an option at the end, or before another option: no value
            what = action.metavar if isinstance(action.metavar, str) else action.dest.upper()
            return self._line(field, "nothing", f"{field} {what}")
        if message.startswith("ignored explicit argument"):  # --quiet=1
            return self._line(field, message.partition("argument ")[2], f"{field} without a value")
        return self._line(field, message, "what its help says")

    def _extras_line(self, extras: list[str]) -> str:
        options = [token for token in extras if token.startswith("-") and token != "-"]
        if options:  # the likely mistake: what follows an unknown option may be its value
            return self._line(
                f"{self._command()} option".strip(), repr(" ".join(options)), "one of " + ", ".join(self._known())
            )
        return self._line(f"{self._command()} argument".strip(), repr(" ".join(extras)), "no further arguments")

    def _message_line(self, message: str) -> str:
        if message.startswith("the following arguments are required"):
            unknown = self._unknown_options()
            if unknown:  # "--bogus" is the mistake to report, not the positional argument it displaced
                return self._extras_line(unknown)
            names = message.partition(": ")[2]
            action = self._action(names.split(", ")[0])
            accepted = (action.help if action is not None and action.help else "") or "a value"
            return self._line(names, "nothing", accepted)
        ambiguous = re.match(r"ambiguous option: (\S+) could match (.+)", message)
        if ambiguous:
            return self._line(f"{self._command()} option".strip(), repr(ambiguous[1]), f"one of {ambiguous[2]}")
        return one_line(f"{self.prog}: {message} (see {self.prog} --help)")  # nothing else is known to reach here

    def _known(self) -> list[str]:
        return [o for a in self._actions for o in a.option_strings if o.startswith("--")]

    def _unknown_options(self) -> list[str]:
        """Options in this parser's arguments that it does not know (nor an abbreviation of one)."""
        known = self._known()
        unknown = []
        for token in getattr(self, "_last_args", []):
            if token == "--":
                break
            if not token.startswith("-") or token == "-" or self._negative_number_matcher.match(token):
                continue
            name = token.split("=", 1)[0]
            if name not in self._option_string_actions and not (
                name.startswith("--") and any(o.startswith(name) for o in known)
            ):
                unknown.append(token)
        return unknown


class _BadArgument(argparse.ArgumentError):
    """A value the parser refuses, with what it accepts (for the one line)."""

    def __init__(self, action, got: str, accepted: str):
        super().__init__(action, f"got {got}; expected {accepted}")
        self.action, self.got, self.accepted = action, got, accepted


def _action_name(action) -> str | None:
    """The name argparse gives an argument in its messages: ``-v/--verbose``, a metavar or the dest."""
    if action.option_strings:
        return "/".join(action.option_strings)
    if isinstance(action.metavar, str):
        return action.metavar
    return None if action.dest is argparse.SUPPRESS else action.dest


def _field(action) -> str:
    """How the one line names an argument: its long option, ``command`` for the subcommand, or its metavar."""
    if action.option_strings:
        return max(action.option_strings, key=len)
    if isinstance(action, argparse._SubParsersAction):
        return "command"
    return _action_name(action) or "argument"


_TYPE_WORDS = {int: "an integer", float: "a number"}


class _Number:
    """An argparse type: a number of ``kind`` that ``check`` accepts; ``accepted`` says which, in the one line."""

    def __init__(self, kind: type, accepted: str, check=lambda value: True):
        self.kind, self.accepted, self.check = kind, accepted, check
        self.__name__ = kind.__name__

    def __call__(self, text: str):
        value = self.kind(text)
        if not self.check(value):
            raise ValueError(text)
        return value


class ProgressBar:
    """A one-line progress bar on stderr: ``[#####.....]  52%  1.3 s  ETA 1 s``; silent when stderr is
    not a terminal. The ETA is the rest at the pace so far (a Dask sweep's: since the first call, so
    that the cluster's start and resumed parts do not count)."""

    def __init__(self, stream=None, width: int = 30, unit: str | None = None):
        self.stream = stream or sys.stderr
        self.width = width
        self.unit = unit  # "tasks": also "3/8 tasks" and an ETA (Dask sweeps count tasks, not run-steps)
        self.started = time.perf_counter()
        self.first: int | None = None  # done at the first call: a resumed sweep's parts took no time now
        self.since = self.started
        self.last = -1.0
        self.longest = 0  # characters of the longest line drawn so far
        self.enabled = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.finished = False

    def counts(self, done: int, total: int, now: float) -> str:
        """``  3/8 tasks  ETA 12 s``: the rest at the pace of the items done since the first call."""
        if self.first is None:
            self.first, self.since = done, now
        text = f"  {done}/{total} {self.unit}"
        if total > done > self.first:
            eta = (now - self.since) / (done - self.first) * (total - done)
            text += f"  ETA {eta:.0f} s"
        return text

    def eta(self, done: int, total: int, now: float) -> str:
        """``  ETA 12 s`` of a local run (run-steps): the rest at the pace since the bar was made (none
        before the first run-step, or at the end)."""
        if not 0 < done < total:
            return ""
        return f"  ETA {(now - self.started) / done * (total - done):.0f} s"

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled or total <= 0 or self.finished:
            return
        now = time.perf_counter()
        if self.first is None:
            self.first, self.since = done, now  # paced from here: a cluster's start is not a task's time
        if done < total and now - self.last < 0.1:
            return  # redraw at most 10 times a second
        self.last = now
        fraction = min(done / total, 1.0)
        filled = int(round(self.width * fraction))
        line = f"[{'#' * filled}{'.' * (self.width - filled)}] {fraction:5.0%}  {now - self.started:6.1f} s" + (
            self.counts(done, total, now) if self.unit else self.eta(done, total, now)
        )
        # padded to the longest line drawn: a shorter one ("ETA 9 s" after "ETA 10 s", the last line
        # without an ETA) would leave the end of the one before on the screen
        self.longest = max(self.longest, len(line))
        self.stream.write("\r" + line.ljust(self.longest))
        if done >= total:
            self.stream.write("\n")
            self.finished = True
        self.stream.flush()


def _registry(plugin_paths, *, fatal_plugins: bool, warn: bool = True):
    """Load the plugins; a broken file named on the command line is bad input when ``fatal_plugins``."""
    from .registry import load_registry

    registry = load_registry(plugin_paths or ())
    # a file's message names it as given or, for its hooks, by its full path (file:/abs/path.py)
    named = [str(p) for p in plugin_paths or ()] + [os.path.realpath(os.path.expanduser(p)) for p in plugin_paths or ()]
    for message in registry.errors:
        explicit = any(p in message for p in named)
        if fatal_plugins and explicit:
            raise PluginError(message)
        if warn:
            logger.warning(message)
    logger.debug(
        "plugins: %d rules, %d schedules, %d problems; plugin files: %s",
        len(registry.rules),
        len(registry.schedules),
        len(registry.problems),
        ", ".join(registry.plugin_paths) or "none",
    )
    return registry


def _summary(results) -> str:
    """Counts per status, each entry's best stable run, and why each flagged configuration blew up."""
    from .verdicts import FLAGGED, STABLE, STATUSES

    runs = results.runs
    counts = runs["status"].value_counts()
    lines = [
        f"{len(runs)} runs: "
        + ", ".join(f"{counts[s]} {s}" for s in STATUSES if s in counts)
        + " (status rules: docs/verdicts.md)"
    ]
    for label, group in runs.groupby("label", sort=False):
        stable = group[group["status"].isin(STABLE)]
        if len(stable):
            best = stable.loc[stable["final_loss"].idxmin()]
            lines.append(
                f"  {label}: best final loss {best['final_loss']:.4g} at learning rate "
                f"{best['learning_rate']:g} (seed {best['seed']}, {best['status']})"
            )
        else:
            lines.append(f"  {label}: no run converged or was still progressing")
    flagged = runs[runs["status"].isin(FLAGGED)]
    # one sentence per label and α (its first flagged seed): a sweep's every seed would be a wall of text
    for _, row in flagged.drop_duplicates(["label", "learning_rate"]).iterrows():
        reason = row.get("divergence_reason", "") or row["status"]
        lines.append(f"  {row['label']} at α = {row['learning_rate']:g} (seed {row['seed']}): {reason}")
    failed = runs[runs["status"] == "failed"]
    for error in dict.fromkeys(failed["error"]):
        lines.append(f"  failed: {error}")
    return "\n".join(lines)


def cmd_run(args) -> int:
    from .experiment import check_resources, load_experiment_file
    from .faults import build_instance
    from .records import RESULTS_ENV, default_results_dir, save_results
    from .runner import run_experiment

    if args.workers is not None and args.workers < 1:
        raise SpecError("--workers", args.workers, "an integer >= 1")
    registry = _registry(args.plugin, fatal_plugins=True)
    experiment = load_experiment_file(args.experiment, registry)
    if args.out is not None:
        _check_out_dir(args.out)
    elif os.environ.get(RESULTS_ENV):  # the default folder, named so that a bad value can be traced
        _check_out_dir(default_results_dir(), field=RESULTS_ENV)
    executor = _executor_choice(args)
    if executor == "dask" and args.scheduler is not None and args.workers is not None:
        raise SpecError("--workers", args.workers, "no value with --scheduler (its cluster has the workers it has)")
    if experiment.protocol is not None:  # an honest comparison (docs/protocol.md): tune, then test
        from .protocol import run_from_cli

        if executor != "dask":
            return run_from_cli(experiment, registry, args)
        if args.resume is not None:
            raise SpecError(
                "--resume",
                args.resume,
                "no value for a [protocol] experiment (its phases run on the cluster as one job each, "
                "kept in memory and saved at the end; resuming is for plain sweeps)",
            )
        client = _dask_client(args, args.workers)
        try:
            return run_from_cli(experiment, registry, args, executor=client)
        finally:
            from .cluster import close

            close(client)
    workers = _bounded_workers(args.workers, experiment.n_runs, quiet=args.quiet)
    # the problem is built here once more (cheap: parameters are allocated per chunk) so that a job
    # that cannot fit is refused before any training, with what it needs and what there is
    instance = build_instance(registry.problem(experiment.problem), dict(experiment.problem_settings))
    check_resources(experiment, instance, workers or min(os.cpu_count() or 1, experiment.n_runs))
    del instance
    if executor == "dask":
        results = _run_on_dask(args, experiment, registry, workers)
        path = results.path
    else:
        progress = None if args.quiet else ProgressBar()
        results = run_experiment(experiment, registry=registry, progress=progress, workers=workers)
        path = save_results(results, args.out)
    _warn_failed(results)
    if not args.quiet:
        print(_summary(results))
        print(f"wall time {results.meta['wall_time_s']:.2f} s")
    logger.debug(
        "%d runs in %d chunks on %d worker process(es)",
        results.meta["n_runs"],
        results.meta["chunks"],
        results.meta["workers"],
    )
    print(f"results: {path}")
    return 0


EXECUTORS = ("local", "dask")


def _executor_choice(args) -> str:
    """``--executor``; ``--scheduler`` and ``--resume`` are Dask's, so they choose it when it is not given."""
    dask_only = [flag for flag, value in (("--scheduler", args.scheduler), ("--resume", args.resume)) if value]
    if args.executor is None:
        return "dask" if dask_only else "local"
    if args.executor == "local" and dask_only:
        raise SpecError("--executor", "local", f"dask (with {' and '.join(dask_only)})")
    return args.executor


def _run_on_dask(args, experiment, registry, workers):
    """The sweep as tasks on a Dask cluster, written as parts into a new (or the resumed) folder."""
    from pathlib import Path

    from .cluster import check_resumable, close, is_sweep_folder, run_sweep
    from .records import _target_dir, default_results_dir, find_results_dir

    _check_dask(args)
    if args.resume is not None and args.out is not None and Path(args.out) != Path(args.resume):
        raise SpecError("--out", args.out, f"no value with --resume (the resumed sweep is {args.resume})")
    if args.resume is not None:
        folder = find_results_dir(args.resume)  # the name run printed is enough, as for report
        check_resumable(folder, experiment, "--resume")  # said before a cluster is started
    elif args.out is not None and is_sweep_folder(args.out):
        folder = Path(args.out)  # rerunning into the sweep's own folder goes on as --resume does
        check_resumable(folder, experiment, "--out")
    else:
        parent = Path(args.out if args.out is not None else default_results_dir())
        folder = _target_dir(parent, experiment.name)
    progress = None if args.quiet else ProgressBar(unit="tasks")
    client = _dask_client(args, workers)
    try:
        return run_sweep(
            experiment, folder, client=client, registry=registry, resume=args.resume is not None, progress=progress
        )
    except SpecError:
        raise
    except KeyboardInterrupt:
        if (folder / "experiment.toml").is_file():  # Ctrl-C after the sweep began: say how to go on
            print(
                f"descentlab: the finished parts are kept; go on with: descentlab run {args.experiment} "
                f"--resume {folder}",
                file=sys.stderr,
            )
        raise
    except Exception as error:  # a task failed (or the cluster went away): the parts written so far stay
        raise SweepInterrupted(
            f"a task failed ({one_line(error)[:300]}); the finished parts are kept; "
            f"go on with: descentlab run {args.experiment} --resume {folder}"
        ) from None
    finally:
        close(client)


def _check_dask(args) -> None:
    """The scheduler address, then the extra: one line each, before anything starts."""
    from .cluster import check_scheduler

    if args.scheduler is not None:
        check_scheduler(args.scheduler)  # before the extra is looked for: a typo is the first thing to say
    if not has_module("distributed"):
        raise MissingExtra.of("descentlab run --executor dask", "distributed", "distributed")


def _dask_client(args, workers):
    """A client of ``--scheduler``, or of a local cluster of ``--workers`` processes."""
    from .cluster import connect

    _check_dask(args)
    return connect(args.scheduler, n_workers=workers)


class SweepInterrupted(Exception):
    """A Dask sweep that stopped part-way (one line, exit status 1): its folder can be resumed."""


def _warn_failed(results) -> None:
    """One line on stderr per distinct reason runs failed (a plugin's fault, named with its file:line),
    also with --quiet: the results are saved and the command succeeds, but it must not look clean."""
    runs = results.runs
    failed = runs[runs["status"] == "failed"]
    for error, group in failed.groupby("error", sort=False):
        labels = ", ".join(repr(label) for label in dict.fromkeys(group["label"]))
        count = f"{len(group)} run{'s' if len(group) != 1 else ''}"
        print(f"descentlab: warning: {count} of {labels} failed: {one_line(error)}", file=sys.stderr)


def _bounded_workers(requested: int | None, n_runs: int, *, quiet: bool = False) -> int | None:
    """``--workers`` bounded by the job (one run per process at most) and the machine (its CPUs)."""
    if requested is None:
        return None
    cpus = os.cpu_count() or 1
    bounded = max(1, min(requested, n_runs, cpus))
    if bounded < requested and not quiet:
        logger.info("--workers %d lowered to %d (%d runs, %d CPUs)", requested, bounded, n_runs, cpus)
    return bounded


def _check_out_dir(out, field: str = "--out") -> None:
    """Fail before training, not after, when the output folder cannot be used."""
    from pathlib import Path

    try:
        p = Path(out)
        while not p.exists() and p != p.parent:
            p = p.parent
        usable = not p.exists() or (p.is_dir() and os.access(p, os.W_OK | os.X_OK))
    except (OSError, ValueError) as error:  # a name too long for the file system, a NUL byte
        raise SpecError(
            field, str(out), "a writable folder", hint=getattr(error, "strerror", None) or str(error)
        ) from None
    if not usable:
        raise SpecError(field, str(out), "a writable folder")


def _format_hyper(h) -> str:
    text = f"{h.name}={h.default!r}  {h.accepted()}"
    if h.log:
        text += ", log scale"
    return text + (f"  - {h.help}" if h.help else "")


def _torch_note(rule) -> str:
    """Where the rule's defaults differ from its torch.optim counterpart's (empty when it has none)."""
    torch_optimizer = getattr(rule, "torch_optimizer", "")
    if not torch_optimizer:
        return ""
    differences = rule.torch_differences()
    if not differences:
        return f"same defaults as torch.optim.{torch_optimizer}"

    def text(value):
        return f"{value:g}" if isinstance(value, (int, float)) and not isinstance(value, bool) else str(value)

    return f"defaults differ from torch.optim.{torch_optimizer}: " + ", ".join(
        f"{name} {text(own)} (torch {text(theirs)})" for name, own, theirs in differences
    )


def cmd_plugins(args) -> int:
    registry = _registry(args.plugin, fatal_plugins=False, warn=False)  # listed below instead
    out = []
    for title, table, kind, attribute in (
        ("Descent rules", registry.rules, "rule", "hyperparams"),
        ("Schedules", registry.schedules, "schedule", "hyperparams"),
        ("Problems", registry.problems, "problem", "settings"),
        ("Gradient transforms", registry.transforms, "transform", "hyperparams"),
    ):
        out.append(f"{title}:")
        for name, declaration in table.items():
            summary = f" - {declaration.summary}" if declaration.summary else ""
            out.append(f"  {name}  [{registry.origin(kind, name)}]{summary}")
            if kind == "rule":
                out.append(f"      learning_rate={declaration.default_learning_rate!r}  a number > 0, log scale")
                torch_line = _torch_note(declaration)
                if torch_line:
                    out.append(f"      {torch_line}")
            if kind == "transform":
                out.append(
                    "      wrapper: after the rule, on its updates"
                    if declaration.is_wrapper
                    else "      before the rule, on the gradient"
                )
            if kind == "schedule" and declaration.joins:  # its fields are tables, not declared numbers
                out.append("      joins schedules: schedules = [{name = ...}, ...], milestones = [m_1, ...]")
            if kind == "schedule" and declaration.stateful:
                out.append("      stateful: α_t follows each run's training loss, step by step (not drawn ahead)")
            for h in getattr(declaration, attribute):
                out.append(f"      {_format_hyper(h)}")
        out.append("")
    if registry.errors:
        out.append("Broken plugins:")
        out += [f"  {message}" for message in registry.errors]
    print("\n".join(out).rstrip())
    return 0


def _is_plugin_path(target: str) -> bool:
    """``check`` reads an argument as a file when it looks like one (``.py`` or a folder separator)."""
    return target.endswith(".py") or "/" in target or os.sep in target


def _check_marks() -> tuple[str, str, str]:
    encoding = getattr(sys.stdout, "encoding", None) or "ascii"
    try:
        "✓✗·".encode(encoding)
    except (UnicodeEncodeError, LookupError):
        return ("+", "x", ".")
    return ("✓", "✗", "·")


def cmd_check(args) -> int:
    """The conformance table of the rules named. A target that is bad input (an unknown name, a missing
    file, a file that fails to load or registers no rule) is one line; with several targets the others
    are still checked and the exit status is 2 after their table (a broken plugin does not hide the rest)."""
    from pathlib import Path

    from .conformance import check_rule, format_table

    if not args.targets and not args.all:
        raise UsageError(
            "descentlab check: name a rule or a plugin .py file, or use --all (see descentlab check --help)"
        )
    problems: list[Exception] = []  # in the order of the targets
    missing: dict[str, Exception] = {}
    files: dict[str, str] = {}  # argument -> resolved path
    for target in args.targets:
        if _is_plugin_path(target):
            path = Path(target).expanduser()
            if not path.is_file():
                missing[target] = SpecError(
                    "check",
                    target,
                    "a registered rule name or an existing plugin .py file",
                    hint="a folder" if path.is_dir() else "not a regular file" if path.exists() else "no such file",
                )
                continue
            files[target] = str(path.resolve())
    registry = _registry(list(dict.fromkeys(files.values())), fatal_plugins=False, warn=False)
    broken: dict[str, str] = {}  # resolved path -> the first message naming it
    for message in registry.errors:
        for target, resolved in files.items():
            if resolved not in broken and (target in message or resolved in message):
                broken[resolved] = message
    for message in registry.errors:
        if message not in broken.values():
            logger.warning(message)  # another plugin's fault (an entry point): not what was asked for
    selected: dict = dict(registry.rules) if args.all else {}
    for target in args.targets:
        if target in missing:
            problems.append(missing[target])
            continue
        if target in files:
            if files[target] in broken:
                problems.append(PluginError(broken[files[target]]))
                continue
            names = [n for n in registry.rules if registry.origin("rule", n) == f"file {files[target]}"]
            if not names:
                problems.append(
                    SpecError(
                        "check",
                        target,
                        "a plugin file that registers a descent rule",
                        hint="it registers none: no @hookimpl register_optimizers calling register(...)",
                    )
                )
                continue
        elif target in registry.rules:
            names = [target]
        else:
            problems.append(
                SpecError(
                    "check",
                    target,
                    "a registered rule name (one of "
                    + ", ".join(sorted(registry.rules))
                    + ") or the path of a plugin .py file",
                )
            )
            continue
        selected.update({n: registry.rules[n] for n in names})
    if problems and not selected:
        if len(problems) == 1:
            raise problems[0]
        for problem in problems:
            print(f"descentlab: error: {one_line(problem)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    results = {name: check_rule(rule) for name, rule in selected.items()}
    print(format_table(results, _check_marks()))
    for problem in problems:
        print(f"descentlab: error: {one_line(problem)}", file=sys.stderr)
    if problems:
        return EXIT_BAD_INPUT
    return 0 if all(r.passed for checks in results.values() for r in checks) else 1


def cmd_new_rule(args) -> int:
    from . import newrule

    registry = _registry([], fatal_plugins=False, warn=False)
    newrule.check_name(args.name, registry)
    written = newrule.write(newrule.plan(args.name, args.dir))
    folder = written[0].parent
    for path in written:
        print(f"wrote {path}")
    print(
        f"next: descentlab check {written[0]}\n"
        f"      python -m pytest {written[1]}\n"
        f"      pip install {folder}   # then descentlab finds {args.name!r} by its entry point"
    )
    return 0


def _implementation(module_name: str, command: str):
    """The module that carries ``command`` out, imported only when it runs: ``build_parser`` stays light."""
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name and (module_name.startswith(error.name) or error.name.startswith(module_name)):
            raise SpecError(
                "command", command, f"a command whose module is installed ({module_name} is missing)"
            ) from None
        if (error.name or "").split(".")[0] in EXTRA_OF_MODULE:
            raise  # an optional module: _main names its extra
        raise SpecError("command", command, "its dependencies installed", hint=f"missing module {error.name}") from None


def cmd_report(args) -> int:
    return int(_implementation("descentlab.dashboard.report", "report").run(args) or 0)


def cmd_lr_find(args) -> int:
    return int(_implementation("descentlab.lrfind", "lr-find").run(args) or 0)


PORTS = (1, 65535)


# argparse types: a value outside them is the one line "--port: got '0'; expected an integer in 1-65535"
_port = _Number(int, f"an integer in {PORTS[0]}-{PORTS[1]}", lambda port: PORTS[0] <= port <= PORTS[1])
_workers = _Number(int, "an integer >= 1", lambda workers: workers >= 1)
_finite = _Number(float, "a finite number", math.isfinite)

LR_FIND_MAX_STEPS = 100_000
_lr_find_steps = _Number(int, f"an integer in [2, {LR_FIND_MAX_STEPS}]", lambda n: 2 <= n <= LR_FIND_MAX_STEPS)

# descentlab report --format (descentlab.dashboard.report.FORMATS is this tuple)
REPORT_FORMATS = ("html", "md", "csv", "png", "all")


def cmd_dashboard(args) -> int:
    try:
        dashboard = importlib.import_module("descentlab.dashboard")
        serve = getattr(dashboard, "serve")
    except (ModuleNotFoundError, AttributeError) as error:
        raise SpecError("command", "dashboard", "the dashboard installed", hint=str(error)) from None
    return int(
        serve(host=args.host, port=args.port, allow_plugin_files=args.allow_plugin_files, allow_paths=args.allow_path)
        or 0
    )


def _version() -> str:
    from . import __version__  # read from the installed metadata: pyproject.toml is its one source

    return __version__


def _add_logging_options(parser, *, quiet_dest: str, verbose_dest: str) -> None:
    # separate destinations: a subcommand's defaults would overwrite the values parsed before it
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        dest=verbose_dest,
        help="print details as well (debug lines on stderr)",
    )
    parser.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        dest=quiet_dest,
        help="only results, warnings and errors: no notes, progress bar or summary",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="descentlab",
        description="Compare gradient-descent variants on the same problem, data and initial weights.",
    )
    parser.add_argument("--version", action="version", version=f"descentlab {_version()}")
    _add_logging_options(parser, quiet_dest="global_quiet", verbose_dest="verbose")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    run = sub.add_parser(
        "run",
        help="run an experiment file and save its results",
        description="Run every rule x hyperparameter x seed of an experiment file and write "
        "a results folder <out>/<name>-<YYYYmmdd-HHMMSS>.",
    )
    run.add_argument("experiment", metavar="EXPERIMENT.toml", help="experiment file (see examples/)")
    run.add_argument(
        "--out", metavar="DIR", default=None, help="folder for results (default: $DESCENTLAB_RESULTS, else results)"
    )
    run.add_argument(
        "--plugin",
        metavar="PATH",
        action="append",
        default=[],
        help="load descent rules/schedules/problems from a .py file (repeatable)",
    )
    run.add_argument(
        "--workers",
        metavar="N",
        type=_workers,
        default=None,
        help="worker processes (default: both cores when the job is large enough; 1 = in process)",
    )
    run.add_argument(
        "--executor",
        choices=EXECUTORS,
        default=None,
        help="local: this machine's process pool (default); dask: tasks on a Dask cluster, "
        "results written as parts (docs/cluster.md; needs the [distributed] extra)",
    )
    run.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        default=None,
        help="Dask scheduler, e.g. tcp://10.0.0.5:8786 (default: a local cluster of --workers "
        "processes, else every core)",
    )
    run.add_argument(
        "--resume",
        metavar="DIR",
        default=None,
        help="go on with the unfinished Dask sweep in DIR: only tasks without parts are run",
    )
    run.add_argument(
        "-q", "--quiet", action="store_true", help="no progress bar or summary; print only the results path"
    )
    run.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        dest="run_verbose",
        help="also print details (plugins, chunks, workers); as before the command",
    )
    run.set_defaults(handler=cmd_run)

    plugins = sub.add_parser(
        "plugins",
        help="list descent rules, schedules and problems with their hyperparameters",
        description="List every descent rule, schedule and problem, where it comes from, "
        "and its hyperparameters with defaults and ranges; broken plugins last.",
    )
    plugins.add_argument(
        "--plugin",
        metavar="PATH",
        action="append",
        default=[],
        help="also load plugins from this .py file (repeatable)",
    )
    plugins.set_defaults(handler=cmd_plugins)

    check = sub.add_parser(
        "check",
        help="run the conformance battery on descent rules (exit 1 if one fails)",
        description="Run descentlab's conformance checks on rules named by their registered "
        "name or by a plugin .py file (every rule it registers); print a rule x "
        "check table with the reason for each failure. Exit 0 when every check "
        "passes, 1 when one fails, 2 for bad input.",
    )
    check.add_argument(
        "targets", nargs="*", metavar="RULE_OR_FILE", help="a registered rule name, or the path of a plugin .py file"
    )
    check.add_argument("--all", action="store_true", help="check every registered rule")
    check.set_defaults(handler=cmd_check)

    new_rule = sub.add_parser(
        "new-rule",
        help="write a single-file plugin folder to start a descent rule from",
        description="Write descentlab_NAME/ (or DIR) with NAME.py (a working heavy-ball "
        "momentum rule registered by the register_optimizers hook), "
        "test_NAME.py (the conformance battery and a step computed by hand) "
        "and pyproject.toml (its descentlab entry point). Never overwrites.",
    )
    new_rule.add_argument("name", metavar="NAME", help="the rule's name: a lowercase Python identifier")
    new_rule.add_argument("--dir", metavar="DIR", default=None, help="folder to write into (default descentlab_NAME)")
    new_rule.set_defaults(handler=cmd_new_rule)

    dashboard = sub.add_parser(
        "dashboard", help="open the interactive dashboard (Streamlit)", description="Serve the descentlab dashboard."
    )
    dashboard.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    dashboard.add_argument("--port", type=_port, default=8501, help="port, 1-65535 (default 8501)")
    dashboard.add_argument(
        "--allow-plugin-files",
        action="store_true",
        help="let visitors load plugin .py files from the Plugins page even when not bound "
        "to loopback (they run as code on this machine)",
    )
    dashboard.add_argument(
        "--allow-path",
        metavar="DIR",
        action="append",
        default=[],
        help="also let the dashboard read data files and results under DIR (repeatable; "
        "always allowed: the results folder and the working directory)",
    )
    dashboard.set_defaults(handler=cmd_dashboard)

    report = sub.add_parser(
        "report",
        help="export a report (HTML) of a results folder",
        description="Export a comparison report of stored experiments (docs/reports.md); nothing is re-run.",
    )
    add_report_arguments(report)
    report.set_defaults(handler=cmd_report)

    lr_find = sub.add_parser(
        "lr-find",
        help="find a good learning-rate range for a rule on a problem",
        description="Learning-rate range test (Smith; fastai lr_find) for the rules of an experiment file.",
    )
    add_lr_find_arguments(lr_find)
    lr_find.set_defaults(handler=cmd_lr_find)

    completion = sub.add_parser(
        "completion",
        help="print a shell completion script for descentlab (generated from this parser)",
        description="Print a bash completion script for descentlab: its commands, each command's "
        "options and their choices, as this parser declares them. Load it with "
        'eval "$(descentlab completion bash)", e.g. in ~/.bashrc.',
    )
    completion.add_argument("shell", choices=SHELLS, help="the shell to complete in: bash")
    completion.set_defaults(handler=cmd_completion)
    return parser


SHELLS = ("bash",)


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)
    return dict(action.choices) if action is not None else {}


def completion_script(parser: argparse.ArgumentParser, program: str = "descentlab") -> str:
    """A bash completion script for ``parser``'s tree: the commands, each command's options, and
    after an option its choices (after an option with a free value, or for a positional, file names)."""
    commands = {"": parser, **_subparsers(parser)}
    words, values = [], []
    for name, sub in commands.items():
        options = [o for a in sub._actions for o in a.option_strings]
        positional = [
            str(c) for a in sub._actions if not a.option_strings and a.nargs != argparse.PARSER for c in a.choices or ()
        ]
        listed = options + positional + ([c for c in _subparsers(sub)] if not name else [])
        words.append(f'        "{name}") words="{" ".join(listed)}" ;;')
        for action in sub._actions:
            if action.option_strings and action.nargs != 0:
                choices = " ".join(map(str, action.choices or ()))
                values += [f'        "{name} {option}") words="{choices}" ;;' for option in action.option_strings]
    for line in words + values:  # the script quotes nothing: every word must be a plain token
        if not re.fullmatch(r'        "[-\w. ]*"\) words="[-\w. ]*" ;;', line):
            raise ValueError(f"cannot complete {line.strip()!r} in bash: a word that is not a plain token")
    function = "_" + re.sub(r"\W", "_", program)
    return "\n".join(
        [
            f"# bash completion for {program}, generated by `{program} completion bash` from its parser",
            f"{function}() {{",
            "    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]} command='' words i",
            "    for ((i = 1; i < COMP_CWORD; i++)); do  # the command: the first word that is not an option",
            "        case ${COMP_WORDS[i]} in -*) ;; *) command=${COMP_WORDS[i]}; break ;; esac",
            "    done",
            "    case $command in",
            *words,
            "        *) words='' ;;",
            "    esac",
            '    case "$command $prev" in  # after an option that takes a value: its choices, else file names',
            *values,
            "    esac",
            '    COMPREPLY=($(compgen -W "$words" -- "$cur"))',
            "}",
            f"complete -o default -F {function} {program}",
            "",
        ]
    )


def cmd_completion(args) -> int:
    print(completion_script(build_parser()), end="")
    return 0


# The arguments of the commands whose code lives in a heavier module (report: the dashboard's
# figures, plotly, pandas; lr-find: the runner), declared here so that build_parser imports none of it.


def add_report_arguments(parser: argparse.ArgumentParser) -> None:
    """``descentlab report``'s arguments; ``descentlab.dashboard.report.run`` carries them out."""
    parser.add_argument("results", nargs="+", metavar="RESULTS_DIR", help="folders written by `descentlab run`")
    parser.add_argument(
        "--format", choices=REPORT_FORMATS, default="html", metavar="FORMAT", help="html (default), md, csv, png or all"
    )
    parser.add_argument(
        "--out", metavar="PATH", default=None, help="report file (.html/.md) or folder; default RESULTS_DIR/report/"
    )


def add_lr_find_arguments(parser: argparse.ArgumentParser) -> None:
    """``descentlab lr-find``'s arguments; ``descentlab.lrfind.run`` carries them out."""
    parser.add_argument(
        "experiment", metavar="EXPERIMENT.toml", help="experiment file (its problem, seeds, batch size, dtype)"
    )
    parser.add_argument(
        "--rule", metavar="NAME", default=None, help="only the entries of this rule (default: every entry)"
    )
    parser.add_argument(
        "--start", metavar="ALPHA", type=_finite, default=1e-6, help="first learning rate (default 1e-6)"
    )
    parser.add_argument("--end", metavar="ALPHA", type=_finite, default=10.0, help="last learning rate (default 10)")
    parser.add_argument(
        "--steps",
        metavar="N",
        type=_lr_find_steps,
        default=100,
        help=f"number of steps (default 100, at most {LR_FIND_MAX_STEPS})",
    )
    parser.add_argument(
        "--stop-factor",
        metavar="FACTOR",
        type=_finite,
        default=4.0,
        help="stop when the smoothed loss exceeds this × its best (default 4)",
    )
    parser.add_argument(
        "--out", metavar="PATH", default=None, help="write the curves and suggestions as JSON here (a new .json file)"
    )
    parser.add_argument("--force", action="store_true", help="let --out replace an existing file")


# The commands that need an extra (pyproject.toml) and the modules that stand for it: checked once the
# arguments are parsed, before the command starts, so that a missing one is one line naming the extra
# (--help, which parsing answers, works without it).
COMMAND_EXTRAS = {
    "dashboard": ("the dashboard", "dashboard", ("streamlit", "plotly")),
    "report": ("descentlab report", "report", ("plotly",)),
}


def _check_extras(command: str | None) -> None:
    if command not in COMMAND_EXTRAS:
        return
    what, extra, modules = COMMAND_EXTRAS[command]
    for module in modules:
        if not has_module(module):
            raise MissingExtra.of(what, extra, module)


def _missing_extra(error: ModuleNotFoundError, command: str | None) -> str | None:
    """The one line for an optional module found missing while a command ran, else None."""
    top = (error.name or "").split(".")[0]
    if top not in EXTRA_OF_MODULE:
        return None
    if command in COMMAND_EXTRAS and EXTRA_OF_MODULE[top] != "datasets":
        what, extra, _ = COMMAND_EXTRAS[command]
        return extra_message(what, "report" if top == "kaleido" else extra)
    return extra_message(f"descentlab {command}" if command else "descentlab", EXTRA_OF_MODULE[top])


EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports a command ended by Ctrl-C


def interrupted() -> int:
    """One line for Ctrl-C, whenever it comes; a second Ctrl-C while saying so is ignored."""
    import signal

    previous = None
    try:
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    except (ValueError, OSError):  # not the main thread
        pass
    try:
        print("descentlab: interrupted", file=sys.stderr, flush=True)
    except (OSError, ValueError):
        pass
    finally:
        # A program (or test session) that calls main() keeps its own Ctrl-C: left ignored, a later
        # interrupt would never arrive and the caller's children would inherit the ignore.
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    return EXIT_INTERRUPTED


def main(argv=None) -> int:
    """Entry point of ``descentlab`` and ``python -m descentlab``; returns the exit status.

    Bad input is one line and status 2, Ctrl-C at any moment (also while an error is reported) one
    line and status 130, a dead worker process one line and status 1.
    """
    import _signal  # the C module: no Python frame in which an interrupt could land

    from . import _end_start_up

    import threading

    command_line = False
    import warnings

    previous_thread_hook, previous_show_warning = threading.excepthook, warnings.showwarning
    threading.excepthook = _thread_failed
    if _warnings_shown_by_python(warnings):  # not while a caller records them (pytest, catch_warnings)
        warnings.showwarning = _warning_line  # forked worker processes inherit it too
    try:
        command_line = _end_start_up()  # from here on, Ctrl-C is the except below
        return _main(argv)
    except KeyboardInterrupt:
        # CPython 3.11 marks an interrupt that lands inside eval() of a string (namedtuple, dataclass
        # and typing build classes that way) as unhandled, even once caught, and then ends the process
        # by SIGINT (status -2) instead of our 130. Each eval() of a string clears that mark first.
        eval("None")
        return interrupted()
    finally:
        threading.excepthook = previous_thread_hook
        warnings.showwarning = previous_show_warning
        if command_line:  # the status is decided: a Ctrl-C on the way out must not turn it into -2
            _signal.signal(_signal.SIGINT, _signal.SIG_IGN)


def _warnings_shown_by_python(warnings) -> bool:
    """Does Python print warnings itself, or does a caller of ``main`` record them (pytest does,
    through ``catch_warnings(record=True)``)? Only in the first case are they re-formatted."""
    impl = getattr(warnings, "_showwarnmsg_impl", None)
    return getattr(impl, "__module__", None) == "warnings" and getattr(impl, "__name__", "") == "_showwarnmsg_impl"


def _warning_line(message, category, filename, lineno, file=None, line=None) -> None:
    """``warnings.showwarning`` while a command runs: a warning (from plugin code, say a rule's
    update) is one ``descentlab: warning:`` line naming where it was raised, not Python's two lines
    that quote the source line."""
    from .errors import safe_str

    try:
        print(
            one_line(f"descentlab: warning: {category.__name__}: {safe_str(message)} ({filename}:{lineno})"),
            file=sys.stderr if file is None else file,
            flush=True,
        )
    except (OSError, ValueError):
        pass


def _args_verbose(argv) -> bool:
    """-v/--verbose on the command line: a developer then sees the traceback of an unexpected error."""
    return any(a in ("-v", "--verbose") or (a.startswith("-v") and set(a[1:]) == {"v"}) for a in argv)


def _thread_failed(args) -> None:
    """``threading.excepthook`` while a command runs: a thread that plugin code started and that
    raised is one warning line naming the thread and the file:line, not Python's traceback."""
    from .faults import error_text, where

    if args.exc_type is SystemExit:  # threading's own default stays silent about it too
        return
    name = args.thread.name if args.thread is not None else "a thread"
    place = where(args.exc_value) if args.exc_value is not None else ""
    text = error_text(args.exc_value) if args.exc_value is not None else args.exc_type.__name__
    try:
        print(
            one_line(f"descentlab: warning: thread {name!r} failed" + (f" ({place})" if place else "") + f": {text}"),
            file=sys.stderr,
            flush=True,
        )
    except (OSError, ValueError):
        pass


def _main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = None
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        command = args.command
        if getattr(args, "handler", None) is None:
            parser.print_help()
            return EXIT_BAD_INPUT if not argv else 0
        _check_extras(command)
        # -v/--quiet are accepted before every command and, for run, after it too
        args.quiet = bool(args.global_quiet or getattr(args, "quiet", False))
        with cli_logging(level_for(args.verbose + getattr(args, "run_verbose", 0), args.quiet)):
            return args.handler(args)
    except (SpecError, PluginError, UsageError, MissingExtra) as error:
        print(f"descentlab: error: {one_line(error)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except ModuleNotFoundError as error:  # an optional module imported while the command ran
        message = _missing_extra(error, command)
        if message is None:
            raise
        print(f"descentlab: error: {message}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except SweepInterrupted as error:
        print(f"descentlab: error: {one_line(error)}", file=sys.stderr)
        return 1
    except OSError as error:
        # a path the operating system refuses (a name too long, a component that is a file, no
        # permission) met where no command names the option itself: still one line naming the file
        if _args_verbose(argv):
            raise
        import errno

        shown = str(error.filename) if error.filename else ""
        name = (shown if len(shown) <= 200 else shown[:180] + f"... ({len(shown)} characters)") + ": " if shown else ""
        print(one_line(f"descentlab: error: {name}{error.strerror or error}"), file=sys.stderr)
        path_errors = (
            errno.ENAMETOOLONG,
            errno.ENOENT,
            errno.ENOTDIR,
            errno.EISDIR,
            errno.EACCES,
            errno.EPERM,
            errno.ELOOP,
            errno.EROFS,
            errno.EINVAL,
            errno.EEXIST,
        )
        return EXIT_BAD_INPUT if error.errno in path_errors else 1
    except ValueError as error:
        if "null byte" not in str(error) or _args_verbose(argv):  # only a NUL in a path is bad input here
            raise
        print("descentlab: error: a path: got a NUL byte; expected a path without one", file=sys.stderr)
        return EXIT_BAD_INPUT
    except BrokenProcessPool as error:
        print(
            f"descentlab: error: a worker process died ({one_line(error)}); nothing was written; try --workers 1",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
