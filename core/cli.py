"""The ``descentlab`` command: run experiments, list plugins, and launch the dashboard, reports and lr-find."""

from __future__ import annotations

import argparse
import importlib
import os
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
    "DELEGATED",
    "COMMAND_EXTRAS",
    "EXIT_INTERRUPTED",
    "interrupted",
    "main",
]

EXIT_BAD_INPUT = 2


class UsageError(Exception):
    """Bad command-line arguments (one line, exit status 2)."""


class _Parser(argparse.ArgumentParser):
    """argparse that reports bad arguments as one line and exit status 2, like every other bad input."""

    def parse_known_args(self, args=None, namespace=None):
        self._last_args = list(sys.argv[1:] if args is None else args)
        return super().parse_known_args(args, namespace)

    def _unknown_options(self) -> list[str]:
        """Options in this parser's arguments that it does not know (nor an abbreviation of one)."""
        known = [o for o in self._option_string_actions if o.startswith("--")]
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

    def error(self, message):
        unknown = self._unknown_options() if message.startswith("the following arguments are required") else []
        if unknown:  # "--bogus" is the mistake to report, not the positional argument it displaced
            message = f"unrecognized arguments: {' '.join(unknown)}"
        raise UsageError(one_line(f"{self.prog}: {message} (see {self.prog} --help)"))


class ProgressBar:
    """A one-line progress bar on stderr: ``[#####.....]  52%  1.3 s``; silent when stderr is not a terminal."""

    def __init__(self, stream=None, width: int = 30, unit: str | None = None):
        self.stream = stream or sys.stderr
        self.width = width
        self.unit = unit  # "tasks": also "3/8 tasks" and an ETA (Dask sweeps count tasks, not run-steps)
        self.started = time.perf_counter()
        self.first: int | None = None  # done at the first call: a resumed sweep's parts took no time now
        self.since = self.started
        self.last = -1.0
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

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled or total <= 0 or self.finished:
            return
        now = time.perf_counter()
        if self.unit is not None and self.first is None:
            self.first, self.since = done, now  # paced from here: a cluster's start is not a task's time
        if done < total and now - self.last < 0.1:
            return  # redraw at most 10 times a second
        self.last = now
        fraction = min(done / total, 1.0)
        filled = int(round(self.width * fraction))
        self.stream.write(
            f"\r[{'#' * filled}{'.' * (self.width - filled)}] {fraction:5.0%}  "
            f"{now - self.started:6.1f} s" + (self.counts(done, total, now) if self.unit else "")
        )
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
        + ' (status rules: README, "Run verdicts")'
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
    from .records import RESULTS_ENV, save_results
    from .runner import run_experiment

    if args.workers is not None and args.workers < 1:
        raise SpecError("--workers", args.workers, "an integer >= 1")
    registry = _registry(args.plugin, fatal_plugins=True)
    experiment = load_experiment_file(args.experiment, registry)
    if args.out is not None:
        _check_out_dir(args.out)
    elif os.environ.get(RESULTS_ENV):  # the default folder, named so that a bad value can be traced
        _check_out_dir(os.environ[RESULTS_ENV], field=RESULTS_ENV)
    if experiment.protocol is not None:  # an honest comparison (docs/protocol.md): tune, then test
        from .protocol import run_from_cli

        return run_from_cli(experiment, registry, args)
    workers = _bounded_workers(args.workers, experiment.n_runs, quiet=args.quiet)
    # the problem is built here once more (cheap: parameters are allocated per chunk) so that a job
    # that cannot fit is refused before any training, with what it needs and what there is
    instance = build_instance(registry.problem(experiment.problem), dict(experiment.problem_settings))
    check_resources(experiment, instance, workers or min(os.cpu_count() or 1, experiment.n_runs))
    del instance
    executor = _executor_choice(args)
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

    from .cluster import check_scheduler, close, connect, run_sweep
    from .records import _target_dir, default_results_dir

    if args.scheduler is not None:
        check_scheduler(args.scheduler)  # before the extra is looked for: a typo is the first thing to say
    if not has_module("distributed"):
        raise MissingExtra.of("descentlab run --executor dask", "distributed", "distributed")
    if args.resume is not None:
        folder = Path(args.resume)
        if not folder.is_dir():
            raise SpecError("--resume", args.resume, "the folder of an unfinished descentlab run --executor dask")
    else:
        parent = Path(args.out if args.out is not None else default_results_dir())
        folder = _target_dir(parent, experiment.name)
    progress = None if args.quiet else ProgressBar(unit="tasks")
    client = connect(args.scheduler, n_workers=workers)
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

    p = Path(out)
    while not p.exists() and p != p.parent:
        p = p.parent
    if p.exists() and (not p.is_dir() or not os.access(p, os.W_OK | os.X_OK)):
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
    from pathlib import Path

    from .conformance import check_rule, format_table

    if not args.targets and not args.all:
        raise UsageError(
            "descentlab check: name a rule or a plugin .py file, or use --all (see descentlab check --help)"
        )
    files: dict[str, str] = {}  # argument -> resolved path
    for target in args.targets:
        if _is_plugin_path(target):
            path = Path(target).expanduser()
            if not path.is_file():
                raise SpecError(
                    "check",
                    target,
                    "a registered rule name or an existing plugin .py file",
                    hint="a folder" if path.is_dir() else "no such file",
                )
            files[target] = str(path.resolve())
    registry = _registry(list(dict.fromkeys(files.values())), fatal_plugins=True)
    selected: dict = dict(registry.rules) if args.all else {}
    for target in args.targets:
        if target in files:
            names = [n for n in registry.rules if registry.origin("rule", n) == f"file {files[target]}"]
            if not names:
                raise SpecError(
                    "check",
                    target,
                    "a plugin file that registers a descent rule",
                    hint="it registers none: no @hookimpl register_optimizers calling register(...)",
                )
        elif target in registry.rules:
            names = [target]
        else:
            raise SpecError(
                "check",
                target,
                "a registered rule name (one of "
                + ", ".join(sorted(registry.rules))
                + ") or the path of a plugin .py file",
            )
        selected.update({n: registry.rules[n] for n in names})
    results = {name: check_rule(rule) for name, rule in selected.items()}
    print(format_table(results, _check_marks()))
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


def _delegate(module_name: str, function: str, argv, what: str) -> int:
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name and (module_name.startswith(error.name) or error.name.startswith(module_name)):
            raise SpecError(
                "command", what, f"a command whose module is installed ({module_name} is missing)"
            ) from None
        raise SpecError("command", what, "its dependencies installed", hint=f"missing module {error.name}") from None
    return int(getattr(module, function)(list(argv)) or 0)


PORTS = (1, 65535)


def _port(text: str) -> int:
    """argparse type of --port: an integer in 1-65535 (0 would pick a random port nobody is told of)."""
    try:
        port = int(text, 10)
    except ValueError:
        port = None
    if port is None or not PORTS[0] <= port <= PORTS[1]:
        raise argparse.ArgumentTypeError(f"got {text!r}; expected an integer in {PORTS[0]}-{PORTS[1]}")
    return port


def _workers(text: str) -> int:
    """argparse type of --workers: an integer >= 1."""
    try:
        workers = int(text, 10)
    except ValueError:
        workers = None
    if workers is None or workers < 1:
        raise argparse.ArgumentTypeError(f"got {text!r}; expected an integer >= 1")
    return workers


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
        "--quiet",
        action="store_true",
        dest=quiet_dest,
        help="only results, warnings and errors: no notes, progress bar or summary",
    )


def _leading_logging_options(argv: list[str]) -> tuple[int, bool, list[str]]:
    """``-v``/``--verbose``/``--quiet`` before the command (for the commands that parse their own
    arguments): (verbosity, quiet, the rest)."""
    verbose, quiet = 0, False
    while argv:
        token = argv[0]
        if token == "--quiet":
            quiet = True
        elif token == "--verbose":
            verbose += 1
        elif len(token) > 1 and token.startswith("-") and set(token[1:]) == {"v"}:
            verbose += len(token) - 1
        else:
            break
        argv = argv[1:]
    return verbose, quiet, argv


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
    run.add_argument("--quiet", action="store_true", help="no progress bar or summary; print only the results path")
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

    for name, (module, function, text) in DELEGATED.items():
        # listed for --help; main() hands their arguments over untouched
        sub.add_parser(name, help=text, add_help=False)
    return parser


# Commands whose own module parses their arguments: name -> (module, function, help)
DELEGATED = {
    "report": ("descentlab.dashboard.report", "main", "export a report (HTML) of a results folder"),
    "lr-find": ("descentlab.lrfind", "main", "find a good learning-rate range for a rule on a problem"),
}


# The commands that need an extra (pyproject.toml) and the modules that stand for it: checked before
# the command starts, so that a missing one is one line naming the extra (--help works without it).
COMMAND_EXTRAS = {
    "dashboard": ("the dashboard", "dashboard", ("streamlit", "plotly")),
    "report": ("descentlab report", "report", ("plotly",)),
}


def _check_extras(command: str | None, argv: list[str]) -> None:
    if command not in COMMAND_EXTRAS or {"-h", "--help"} & set(argv):
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

    command_line = False
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
        if command_line:  # the status is decided: a Ctrl-C on the way out must not turn it into -2
            _signal.signal(_signal.SIGINT, _signal.SIG_IGN)


def _main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = None
    try:
        parser = build_parser()
        verbose, quiet, rest = _leading_logging_options(argv)
        command = rest[0] if rest else None
        _check_extras(command, rest[1:])
        if rest and rest[0] in DELEGATED:
            module, function, _ = DELEGATED[rest[0]]
            with cli_logging(level_for(verbose, quiet)):
                return _delegate(module, function, rest[1:], rest[0])
        args = parser.parse_args(argv)
        if getattr(args, "handler", None) is None:
            parser.print_help()
            return EXIT_BAD_INPUT if not argv else 0
        # -v/--quiet are accepted before the command and, for run, after it too
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
    except BrokenProcessPool as error:
        print(
            f"descentlab: error: a worker process died ({one_line(error)}); nothing was written; try --workers 1",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
