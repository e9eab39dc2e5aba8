"""Comparison reports from experiment records: offline HTML, Markdown with PNG figures, CSV tables, PNGs.

``descentlab report RESULTS_DIR [RESULTS_DIR ...] [--format html|md|csv|png|all] [--out PATH]``
reads the records only (it never re-runs training) and reuses the dashboard's figure functions.
"""

from __future__ import annotations

import html
import math
import os
import re
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import pandas as pd

from descentlab import analysis
from descentlab.atomic import write_atomic, write_text_atomic
from descentlab.cli import REPORT_FORMATS
from descentlab.errors import ResultsError, SpecError, one_line
from descentlab.verdicts import FLAGGED, STATUSES

from .status_style import style_of

FORMATS = REPORT_FORMATS  # what `descentlab report --format` accepts, declared with its arguments
BROWSER_HINT = (
    "kaleido needs Chrome or Chromium to draw PNG figures: install it with "
    "`apt-get install chromium` (Debian/Ubuntu) or `plotly_get_chrome`"
)
FIGURE_SIZE = {"landscape": (760, 620)}
DEFAULT_FIGURE_SIZE = (900, 480)


# ---------------------------------------------------------------- what a report says about one experiment


@dataclass
class Figure:
    slug: str
    title: str
    figure: object  # plotly.graph_objects.Figure


@dataclass
class Section:
    """Everything a report shows for one experiment, in plain data (renderers only format it)."""

    name: str
    facts: list[tuple[str, str]]
    rules: pd.DataFrame
    toml: str
    command: str
    reproduce: str
    meta: list[tuple[str, str]]
    summary: pd.DataFrame
    verdict: list[str]
    reasons: pd.DataFrame
    failures: pd.DataFrame
    figures: list[Figure] = field(default_factory=list)
    rule_checks: list[str] = field(default_factory=list)
    comparison: object = None  # a protocol comparison (protocol_report.Comparison), when the folder has one


def experiment_name(results) -> str:
    name = getattr(results.experiment, "name", "") or ""
    return name or (Path(results.path).name if getattr(results, "path", None) else "experiment")


def _grid(values) -> str:
    values = list(values) if isinstance(values, (list, tuple)) else [values]
    return ", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in values)


def experiment_facts(results) -> list[tuple[str, str]]:
    """The experiment as run: problem and its settings, model, steps, seeds and the run options."""
    e, info = results.experiment, results.problem_info or {}
    settings = ", ".join(f"{k}={_grid(v)}" for k, v in (e.problem_settings or {}).items())
    facts = [("problem", f"{e.problem}" + (f" ({settings})" if settings else ""))]
    if info.get("model"):
        facts.append(("model", str(info["model"])))
    if info.get("n_params") is not None:
        facts.append(("parameters", str(info["n_params"])))
    facts += [
        ("steps", str(e.steps)),
        ("seeds", _grid(e.seeds)),
        ("batch size", "full batch" if not e.batch_size else str(e.batch_size)),
        ("dtype", str(e.dtype)),
        ("divergence", f"loss > {e.divergence_factor:g} × initial loss, or NaN/inf"),
        ("target loss", "none" if e.target_loss is None else f"{e.target_loss:g}"),
        ("runs", str(len(results.runs))),
    ]
    return facts


def rules_table(results) -> pd.DataFrame:
    """One row per rule entry: its rule, α grid, other hyperparameter grids, schedule and warm-up."""
    rows = []
    for entry in results.experiment.entries:
        schedule = entry.schedule + "".join(f", {k}={_grid(v)}" for k, v in (entry.schedule_hyper or {}).items())
        rows.append(
            {
                "label": entry.label,
                "rule": entry.rule,
                "α grid": _grid(entry.learning_rate),
                "hyperparameters": "; ".join(f"{k}={_grid(v)}" for k, v in (entry.hyper or {}).items()),
                "schedule": schedule,
                "warm-up steps": str(entry.warmup_steps),
            }
        )
    return pd.DataFrame(rows)


def experiment_toml(results) -> str:
    to_toml = getattr(results.experiment, "to_toml", None)
    if callable(to_toml):
        return to_toml()
    path = Path(results.path) / "experiment.toml" if getattr(results, "path", None) else None
    return path.read_text() if path is not None and path.is_file() else ""


def reproduce_command(results) -> str:
    """The command that runs this stored experiment again, with the plugin files it used."""
    where = Path(results.path) / "experiment.toml" if getattr(results, "path", None) else Path("experiment.toml")
    files = dict.fromkeys(((results.meta or {}).get("plugins") or {}).get("plugin_files") or [])
    return shlex.join(["descentlab", "run", str(where)] + [a for f in files for a in ("--plugin", str(f))])


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in d.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def meta_rows(meta: dict) -> list[tuple[str, str]]:
    """meta.json as (key, value) rows: versions, plugin origins, wall time (problem_info is shown elsewhere)."""
    rows = []
    for key, value in _flatten({k: v for k, v in (meta or {}).items() if k not in ("problem_info", "command")}).items():
        text = f"{value:.4g}" if isinstance(value, float) else str(value)
        rows.append((key, text))
    return rows


def _config_text(run, columns: Sequence[str]) -> str:
    parts = [f"α={run['learning_rate']:g}"] + [
        f"{c}={run[c]:g}" if isinstance(run[c], float) else f"{c}={run[c]}" for c in columns
    ]
    return ", ".join(parts)


_REASON_STEP = re.compile(r"^(diverged|unstable) (?:at|from) step \d+")


def _steps_of(part: pd.DataFrame) -> str:
    """Each run's step of trouble: ``diverged_at`` for a diverged run, ``unstable_at`` for an unstable one."""
    steps = []
    for _, run in part.iterrows():
        column = "diverged_at" if run["status"] == "diverged" else "unstable_at"
        value = run.get(column, math.nan)
        steps.append(int(value) if value is not None and value == value else "–")
    return _grid(steps)


def divergence_table(results) -> pd.DataFrame:
    """Flagged runs (unstable or diverged), seeds with the same configuration, status and reason on one row.

    "at step" is ``unstable_at`` for an unstable run (it went on) and ``diverged_at`` for a diverged
    one (stopped there); "why it blew up" is core's ``divergence_reason`` with its step left out (it
    is in its own column), so seeds that blew up for the same reason share a row. λₘₐₓ columns
    appear when the records have them.
    """
    runs = results.runs
    flagged = runs[runs["status"].isin(FLAGGED)]
    if flagged.empty:
        return pd.DataFrame()
    reason = (
        flagged["divergence_reason"].fillna("").astype(str)
        if "divergence_reason" in flagged
        else pd.Series("", index=flagged.index)
    )
    flagged = flagged.assign(_reason=reason.str.replace(_REASON_STEP, r"\1", regex=True))
    lambdas = [
        (c, label)
        for c, label in (("lambda_max_start", "λₘₐₓ at start"), ("lambda_max_flagged", "λₘₐₓ when flagged"))
        if c in flagged
    ]
    from descentlab.dashboard.figures import config_columns

    grid = set(config_columns(results))  # only grid coordinates name a configuration, never an outcome column
    rows = []
    for entry, group in flagged.groupby("entry", sort=True):
        varying = [c for c in analysis.varying_columns(runs[runs["entry"] == entry]) if c in grid]
        configs = group.apply(lambda r: _config_text(r, varying), axis=1)
        for (config, status, why), part in group.groupby([configs, group["status"], group["_reason"]], sort=False):
            row = {
                "label": part["label"].iloc[0],
                "configuration": config,
                "status": f"{style_of(status).glyph} {status}",
                "seeds": _grid([int(s) for s in part["seed"]]),
                "at step": _steps_of(part),
            }
            for column, label in lambdas:
                row[label] = _grid([cell(float(v)) for v in part[column]])
            row["why it blew up"] = why or "–"
            rows.append(row)
    return pd.DataFrame(rows)


def failure_table(results) -> pd.DataFrame:
    runs = results.runs
    failed = runs[runs["status"] == "failed"]
    return pd.DataFrame(
        [
            {"label": r["label"], "α": f"{r['learning_rate']:g}", "seed": int(r["seed"]), "error": r.get("error", "")}
            for _, r in failed.iterrows()
        ]
    )


def report_figures(results) -> list[Figure]:
    """Loss, step size and αₜ at each rule's best α; the α sweep; landscape paths for 2-parameter problems."""
    from descentlab.dashboard import figures as fg  # the dashboard's figure functions, shared

    best = analysis.best_run_ids(results)
    wanted = {frozenset(ids) for ids in best.values() if ids}
    groups = [g for g in fg.run_groups(results) if frozenset(g.run_ids) in wanted]
    out = []
    for slug, make in (
        ("loss", fg.loss_curves_info),
        ("step_size", fg.step_size_info),
        ("learning_rate", fg.learning_rate_info),
    ):
        info = make(results, groups=groups)
        info.title = f"{info.title} at each rule's best α"
        band = " (median over seeds, IQR band)" if slug == "loss" else ""
        out.append(Figure(slug, info.title + band, fg.draw_curves(info)))
    sweep_figure = fg.draw_sweep(fg.sweep_info(results))
    # theory: the predicted critical α = c/λₘₐₓ per rule, where the problem knows λₘₐₓ (theory engineer)
    from . import theory_figures

    theory_figures.add_critical_lines(sweep_figure, theory_figures.critical_lines_info(results))
    out.append(
        Figure(
            "sensitivity",
            "Learning-rate sensitivity: final loss against α (marker = worst status over seeds, ★ largest stable α)",
            sweep_figure,
        )
    )
    landscape = landscape_figure(results, fg, [r for ids in best.values() for r in ids])
    if landscape is not None:
        out.append(landscape)
    return out


def landscape_figure(results, fg, run_ids: list[int]) -> Figure | None:
    """Paths of the best runs on the cost surface, when the record has 2-parameter paths."""
    if "path" not in (results.weights or {}) or (results.problem_info or {}).get("n_params") != 2 or not run_ids:
        return None
    try:
        from descentlab.registry import get_registry

        e = results.experiment
        instance = get_registry().problem(e.problem).build(dict(e.problem_settings))
    except Exception:  # the problem's plugin is not installed here: the report goes on without it
        return None
    info = fg.landscape_info(results, instance, run_ids=sorted(run_ids))
    return Figure("landscape", "Paths on the cost surface at each rule's best α", fg.draw_landscape(info))


def rule_check_warnings(results) -> list[str]:
    """One line per rule of the record that is not a built-in and does not pass ``descentlab check``
    (as its code is here now): the report must not let a broken rule's numbers pass for real ones."""
    origins = ((results.meta or {}).get("plugins") or {}).get("rules") or {}
    others = {name: origin for name, origin in origins.items() if origin != "built-in"}
    if not others:
        return []
    from descentlab.conformance import check_rule
    from descentlab.registry import load_registry

    files = ((results.meta or {}).get("plugins") or {}).get("plugin_files") or []
    registry = load_registry([f for f in files if Path(f).is_file()])
    lines = []
    for name, origin in others.items():
        rule = registry.rules.get(name)
        if rule is None or registry.origin("rule", name) == "built-in":
            lines.append(f"⚠ rule {name!r} ({origin}) was not checked: it is not registered here")
            continue
        failed = [r.name for r in check_rule(rule) if not r.passed and not r.reason.startswith("skipped")]
        if failed:
            lines.append(f"⚠ rule {name!r} ({origin}) fails descentlab check: {'; '.join(failed)}")
    return lines


def build_section(results, *, with_figures: bool = True) -> Section:
    summary = analysis.summarize(results)
    section = Section(
        name=experiment_name(results),
        facts=experiment_facts(results),
        rules=rules_table(results),
        toml=experiment_toml(results),
        command=str((results.meta or {}).get("command", "")),
        reproduce=reproduce_command(results),
        meta=meta_rows(results.meta),
        summary=summary,
        verdict=analysis.verdict(summary, results),
        reasons=divergence_table(results),
        failures=failure_table(results),
        figures=report_figures(results) if with_figures else [],
        rule_checks=rule_check_warnings(results),
    )
    _add_comparison(section, results, with_figures)
    return section


def _add_comparison(section: Section, results, with_figures: bool) -> None:
    """The protocol comparison of a folder with protocol.json (docs/protocol.md), its figures first."""
    from .protocol_report import best_so_far_figure, load_comparison, profile_figure

    section.comparison = load_comparison(getattr(results, "path", None))
    if section.comparison is not None and with_figures:
        section.figures[:0] = [
            Figure("profile", "Performance profile", profile_figure(section.comparison)),
            *(
                [
                    Figure(
                        "profile-steps",
                        "Performance profile by steps to target",
                        profile_figure(section.comparison, "profile_steps"),
                    )
                ]
                if "profile_steps" in section.comparison.data
                else []
            ),
            Figure("best-so-far", "Best so far against the tuning budget", best_so_far_figure(section.comparison)),
        ]


# ---------------------------------------------------------------- formatting shared by the renderers


def cell(value) -> str:
    """A table cell: 3 significant digits, ∞ for +inf (a diverged or failed run's score), – for missing."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, float):
        return "∞" if value == math.inf else f"{value:.3g}"
    return str(value)


def display_summary(summary: pd.DataFrame) -> pd.DataFrame:
    """The summary table with reader-facing headers and formatted numbers (columns of ``analysis.summarize``)."""
    s = summary
    return pd.DataFrame(
        {
            "rule": s["label"],
            "best α": s["best_alpha"].map(cell),
            "at": s["best_config"].replace("", "–"),
            "final loss (median)": s["final_loss_median"].map(cell),
            "final loss IQR": s["final_loss_iqr"].map(cell),
            "best loss (median)": s["best_loss_median"].map(cell),
            "best loss IQR": s["best_loss_iqr"].map(cell),
            "steps to target (median)": s["steps_to_target_median"].map(lambda v: "–" if math.isnan(v) else f"{v:g}"),
            "fastest to target anywhere": [
                "–" if math.isnan(a) else f"{n:g} steps at α={a:g}" + (f" ({c})" if c else "")
                for a, c, n in zip(s["fastest_alpha"], s["fastest_config"], s["fastest_steps_median"])
            ],
            "seeds stable at best α": [f"{a}/{b}" for a, b in zip(s["seeds_stable_at_best"], s["seeds"])],
            "largest stable α": s["largest_stable_alpha"].map(cell),
            "smallest unstable α": s["smallest_unstable_alpha"].map(cell),
            "runs by status": [runs_by_status(row) for _, row in s.iterrows()],
        }
    )


def runs_by_status(row) -> str:
    """``"● 10 converged, ◆ 2 unstable (of 12)"`` from a summary row's per-status counts."""
    parts = [
        f"{style_of(status).glyph} {int(row[status])} {status}"
        for status in STATUSES
        if status in row and int(row[status])
    ]
    return ", ".join(parts) + f" (of {int(row['runs'])})"


def combined_summary(sections: Sequence[Section]) -> pd.DataFrame:
    return pd.concat([display_summary(s.summary).assign(experiment=s.name) for s in sections], ignore_index=True).pipe(
        lambda d: d[["experiment"] + list(d.columns[:-1])]
    )


def safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-") or "experiment"


def figure_files(sections: Sequence[Section]) -> list[tuple[Figure, str]]:
    """Each figure with a unique PNG file name: ``<experiment>-<figure>.png``."""
    out, used = [], set()
    for i, section in enumerate(sections):
        for fig in section.figures:
            name = f"{safe_name(section.name)}-{fig.slug}.png"
            if name in used:
                name = f"{i + 1}-{name}"
            used.add(name)
            out.append((fig, name))
    return out


# ---------------------------------------------------------------- HTML

CSS = """
body{font-family:system-ui,sans-serif;margin:24px;color:#222;line-height:1.45}
h1{font-size:1.6em} h2{border-bottom:1px solid #ccc;padding-bottom:4px} h3{margin-top:1.4em}
table{border-collapse:collapse;margin:8px 0;font-size:0.9em}
th,td{border:1px solid #ddd;padding:3px 8px;text-align:left}
th{background:#f0f3f8} pre{background:#f6f6f6;padding:8px;overflow-x:auto} code{background:#f6f6f6}
.verdict li{margin:4px 0} .figure{margin:12px 0} .table{overflow-x:auto}
.side{display:grid;gap:24px;align-items:start} .side>section{min-width:0}
"""
# Plotly sizes a figure when its script runs, before later columns exist: a grid whose columns are
# declared up front gives each figure its final width; a resize after load catches anything else.
RESIZE = "<script>window.addEventListener('load',()=>window.dispatchEvent(new Event('resize')))</script>"


def html_table(frame: pd.DataFrame) -> str:
    if frame.empty:
        return ""
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(cell(v))}</td>" for v in row) + "</tr>"
        for row in frame.itertuples(index=False)
    )
    return f"<div class='table'><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>"


def html_pairs(rows: Sequence[tuple[str, str]]) -> str:
    """A two-column key/value table without a header row."""
    body = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in rows)
    return f"<div class='table'><table><tbody>{body}</tbody></table></div>" if rows else ""


def html_section(section: Section, figure_html: list[str]) -> str:
    e = html.escape
    parts = [
        f"<section><h2>{e(section.name)}</h2>",
        "<h3>Verdict</h3><ul class='verdict'>",
        *(f"<li>{e(s)}</li>" for s in section.verdict),
        "</ul>",
        *(f"<p class='warn'>{e(s)}</p>" for s in section.rule_checks),
        *(_comparison_html(section) if section.comparison is not None else []),
        "<h3>Summary per rule</h3>",
        html_table(display_summary(section.summary)),
        "<h3>Figures</h3>",
        *(f"<div class='figure'>{f}</div>" for f in figure_html),
    ]
    if not section.reasons.empty:
        parts += ["<h3>Why runs blew up</h3>", html_table(section.reasons)]
    if not section.failures.empty:
        parts += ["<h3>Failed runs</h3>", html_table(section.failures)]
    parts += [
        "<h3>The experiment as run</h3>",
        html_pairs(section.facts),
        html_table(section.rules),
        "<h3>Reproduce</h3>",
        f"<pre>{e(section.reproduce)}</pre>",
    ]
    if section.command and section.command != section.reproduce:
        parts.append(f"<p>Recorded command: <code>{e(section.command)}</code></p>")
    if section.toml:
        parts.append(f"<details><summary>experiment.toml</summary><pre>{e(section.toml)}</pre></details>")
    parts += ["<h3>Versions and plugin origins</h3>", html_pairs(section.meta), "</section>"]
    return "\n".join(parts)


def _comparison_html(section: Section) -> list[str]:
    from .protocol_report import comparison_html

    return comparison_html(section.comparison, html_table, html_pairs)


def render_html(sections: Sequence[Section]) -> str:
    """One self-contained page; plotly.js is inlined once, with the first figure."""
    first = True
    bodies = []
    for section in sections:
        figure_html = []
        for fig in section.figures:
            figure_html.append(
                fig.figure.to_html(
                    full_html=False,
                    include_plotlyjs=first,
                    default_width="100%",
                    config={"displaylogo": False, "responsive": True},
                )
            )
            first = False
        bodies.append(html_section(section, figure_html))
    title = " vs ".join(s.name for s in sections)
    head = [f"<h1>descentlab report: {html.escape(title)}</h1>"]
    if len(sections) > 1:
        head += ["<h2>All experiments</h2>", html_table(combined_summary(sections))]
        columns = f"grid-template-columns:repeat({len(sections)},minmax(520px,1fr))"
        body = f"<div class='side' style='{columns}'>" + "\n".join(bodies) + "</div>"
    else:
        body = bodies[0]
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>"
        + "\n".join(head)
        + body
        + RESIZE
        + "</body></html>"
    )


# ---------------------------------------------------------------- Markdown


_MD_SPECIAL = re.compile(r"([\\`*_\[\]!|~])")  # what can start emphasis, code, a link or an image


def md_escape(text: str) -> str:
    """User text (labels, names, reasons) shown literally in Markdown: HTML escaped (no ``<script>``,
    no ``<img onerror>``), Markdown punctuation backslash-escaped (no links or images), one line."""
    return _MD_SPECIAL.sub(r"\\\1", html.escape(str(text), quote=False)).replace("\n", " ")


def md_code(text: str, language: str = "") -> str:
    """A fenced code block whose fence is longer than any run of backticks in ``text`` (a label with
    ``` cannot close it early); code blocks show raw HTML as text."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{language}\n{text}\n{fence}"


def md_table(frame: pd.DataFrame) -> str:
    if frame.empty:
        return ""
    lines = ["| " + " | ".join(md_escape(c) for c in frame.columns) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(md_escape(cell(v)) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)


def md_section(section: Section, images: dict[int, str], missing_note: str) -> str:
    parts = [
        f"## {md_escape(section.name)}",
        "### Verdict",
        "\n".join(f"- {md_escape(s)}" for s in section.verdict),
        "\n\n".join(f"**{md_escape(s)}**" for s in section.rule_checks),
        *(_comparison_md(section) if section.comparison is not None else []),
        "### Summary per rule",
        md_table(display_summary(section.summary)),
        "### Figures",
    ]
    for fig in section.figures:
        parts.append(
            f"![{md_escape(fig.title)}]({images[id(fig)]})" if id(fig) in images else f"- {md_escape(fig.title)}"
        )
    if missing_note:
        parts.append(f"_Figures not drawn: {missing_note}._")
    if not section.reasons.empty:
        parts += ["### Why runs blew up", md_table(section.reasons)]
    if not section.failures.empty:
        parts += ["### Failed runs", md_table(section.failures)]
    parts += [
        "### The experiment as run",
        md_table(pd.DataFrame(section.facts, columns=["", ""])),
        md_table(section.rules),
        "### Reproduce",
        md_code(section.reproduce, "sh"),
    ]
    if section.command and section.command != section.reproduce:
        parts.append("Recorded command:\n\n" + md_code(section.command, "sh"))
    if section.toml:
        parts.append(md_code(section.toml.strip(), "toml"))
    parts += ["### Versions and plugin origins", md_table(pd.DataFrame(section.meta, columns=["", ""]))]
    return "\n\n".join(p for p in parts if p)


def _comparison_md(section: Section) -> list[str]:
    from .protocol_report import comparison_md

    return comparison_md(section.comparison, md_table, md_escape, md_code)


def render_markdown(sections: Sequence[Section], images: dict[int, str], missing_note: str = "") -> str:
    title = " vs ".join(s.name for s in sections)
    parts = [f"# descentlab report: {md_escape(title)}"]
    if len(sections) > 1:
        parts += ["## All experiments", md_table(combined_summary(sections))]
    parts += [md_section(s, images, missing_note) for s in sections]
    return "\n\n".join(parts) + "\n"


# ---------------------------------------------------------------- files


def write_text(path: Path, text: str) -> Path:
    return write_text_atomic(path, text)


def _child_pids() -> list[int]:
    """This process's children (Linux /proc; elsewhere none known)."""
    me, out = os.getpid(), []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if len(fields) > 1 and fields[1] == str(me):
            out.append(int(stat.parent.name))
    return out


def _gone(pid: int) -> bool:
    """Has ``pid`` ended? Reaps it when it is our child (a zombie still holds its /proc entry)."""
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == pid
    except ChildProcessError:  # not our child (any more): ended when /proc no longer lists it
        return not Path(f"/proc/{pid}").exists()
    except OSError:
        return True


def _wait_for_exit(pids, seconds: float, then: int) -> None:
    """Poll until every pid has ended; after ``seconds``, send ``then`` to the rest and poll ~1 s more."""
    import time

    left = set(pids)
    for deadline, signal_after in ((seconds, then), (1.0, None)):
        stop = time.monotonic() + deadline
        while left and time.monotonic() < stop:
            left = {pid for pid in left if not _gone(pid)}
            if left:
                time.sleep(0.02)
        if not left or signal_after is None:
            return
        for pid in left:
            try:
                os.killpg(pid, signal_after) if os.getpgid(pid) == pid else os.kill(pid, signal_after)
            except OSError:
                pass


def _interruptible(work) -> None:
    """Run ``work`` in a thread so that Ctrl-C acts at once (kaleido's own shutdown took 35-52 s).

    On Ctrl-C the browser processes kaleido started are stopped and KeyboardInterrupt goes on to the
    CLI (one line, status 130); the half-written temporaries are removed by the caller.
    """
    import signal
    import threading

    failure: list[BaseException] = []

    def target():
        try:
            work()
        except BaseException as error:  # handed to the caller's thread
            failure.append(error)

    before = set(_child_pids())
    thread = threading.Thread(target=target, name="descentlab-png-export", daemon=True)
    thread.start()
    try:
        while thread.is_alive():
            thread.join(0.1)
    except KeyboardInterrupt:
        import logging

        # kaleido's browser watchdog logs "Wait expired, Browser is being closed" when the browser
        # ends under it: that is this interrupt, already said in one line
        for name in ("choreographer", "kaleido"):
            logging.getLogger(name).setLevel(logging.CRITICAL + 1)
        browsers = set(_child_pids()) - before
        for pid in browsers:
            try:
                # kaleido's child is a wrapper leading its own process group with the browser in it:
                # the whole group, so the browser itself ends now rather than when the wrapper notices
                if os.getpgid(pid) == pid:
                    os.killpg(pid, signal.SIGTERM)
                else:
                    os.kill(pid, signal.SIGTERM)
            except OSError:
                pass
        # Wait for them to end (at most 0.5 s, then SIGKILL): a browser still writing its profile
        # while the interpreter exits made kaleido's temporary-folder cleanup print an OSError
        # traceback ("Directory not empty") after our one "interrupted" line.
        _wait_for_exit(browsers, seconds=0.5, then=signal.SIGKILL)
        raise
    if failure:
        raise failure[0]


def write_pngs(pairs: Sequence[tuple[Figure, Path]]) -> str:
    """Draw every figure in one kaleido call (one browser start); "" on success, else why not."""
    if not pairs:
        return ""
    from descentlab.extras import extra_message, has_module

    if not has_module("kaleido"):
        return extra_message("PNG export", "report")
    import plotly.io as pio

    temps = [p.with_name(f".{p.stem}.{os.getpid()}.tmp.png") for _, p in pairs]
    try:
        for _, p in pairs:
            p.parent.mkdir(parents=True, exist_ok=True)
        sizes = [FIGURE_SIZE.get(f.slug, DEFAULT_FIGURE_SIZE) for f, _ in pairs]
        _interruptible(
            lambda: pio.write_images(
                [f.figure for f, _ in pairs],
                temps,
                format="png",
                width=[w for w, _ in sizes],
                height=[h for _, h in sizes],
            )
        )
        for temp, (_, path) in zip(temps, pairs):
            os.replace(temp, path)
        return ""
    except Exception as error:  # kaleido raises several types when no browser can start
        text = f"{type(error).__name__}: {error}"
        return (
            BROWSER_HINT
            if "chrom" in text.lower() or "browser" in text.lower()
            else "PNG export failed: " + text.splitlines()[0]
        )
    finally:
        for temp in temps:
            if temp.exists():
                temp.unlink()


def csv_tables(sections: Sequence[Section], results_list) -> dict[str, pd.DataFrame]:
    """runs, metrics and summary tables; an ``experiment`` column tells experiments apart."""

    def tagged(frames):
        return pd.concat(
            [
                f.assign(experiment=s.name).pipe(lambda d: d[["experiment"] + list(d.columns[:-1])])
                for f, s in zip(frames, sections)
            ],
            ignore_index=True,
        )

    return {
        "runs.csv": tagged([r.runs for r in results_list]),
        "metrics.csv": tagged([r.metrics for r in results_list]),
        "summary.csv": tagged([s.summary for s in sections]),
    }


@dataclass
class Targets:
    """Where each output goes, decided before anything is written."""

    folder: Path
    html: Path
    md: Path
    figures: Path


def plan_outputs(fmt: str, out, results_list) -> Targets:
    """``--out`` is the report file for html/md when it ends in .html/.md, else a folder.

    Without ``--out``: ``<RESULTS_DIR>/report/`` for one experiment, ``./report-<a>-vs-<b>/`` for several.
    """
    if out is None:
        paths = [getattr(r, "path", None) for r in results_list]
        if len(results_list) == 1 and paths[0]:
            out = Path(paths[0]) / "report"
        else:
            out = Path.cwd() / ("report-" + "-vs-".join(safe_name(experiment_name(r)) for r in results_list))
    out = Path(out)
    single_file = fmt in ("html", "md") and out.suffix.lower() in (".html", ".htm", ".md")
    if single_file and out.is_dir():
        raise SpecError("--out", str(out), f"a .{fmt} file path (this is a folder)")
    if not single_file and out.exists() and not out.is_dir():
        raise SpecError("--out", str(out), f"a folder for --format {fmt} (this is a file)")
    folder = out.parent if single_file else out
    html_path = out if single_file and fmt == "html" else folder / "report.html"
    md_path = out if single_file and fmt == "md" else folder / "report.md"
    figures = folder / (f"{md_path.stem}_figures" if fmt in ("md", "all") else "figures")
    return Targets(folder, html_path, md_path, figures)


def build_report(
    results_list, fmt: str = "html", out=None, *, notify: Callable[[str], None] | None = None
) -> list[Path]:
    """Write the report of one or more experiments in ``fmt``; return the files written.

    A missing browser for PNG figures is reported through ``notify`` (stderr by default) and the
    tables are still written.
    """
    if fmt not in FORMATS:
        raise SpecError("--format", fmt, "one of " + ", ".join(FORMATS))
    if not results_list:
        raise SpecError("RESULTS_DIR", "", "at least one results folder")
    notify = notify or (lambda text: print(text, file=sys.stderr))
    targets = plan_outputs(fmt, out, results_list)
    sections = [build_section(r, with_figures=fmt != "csv") for r in results_list]
    written: list[Path] = []
    if fmt in ("png", "md", "all"):
        pairs = [(fig, targets.figures / name) for fig, name in figure_files(sections)]
        problem = write_pngs(pairs)
        if problem:
            notify(f"descentlab report: figures not written: {problem}")
        else:
            written += [p for _, p in pairs]
        if fmt in ("md", "all"):
            images = (
                {}
                if problem
                else {id(fig): os.path.relpath(p, targets.md.parent).replace(os.sep, "/") for fig, p in pairs}
            )
            written.append(write_text(targets.md, render_markdown(sections, images, problem)))
    if fmt in ("html", "all"):
        written.append(write_text(targets.html, render_html(sections)))
    if fmt in ("csv", "all"):
        for name, table in csv_tables(sections, results_list).items():
            written.append(write_atomic(targets.folder / name, lambda p, t=table: t.to_csv(p, index=False)))
    return written


# ---------------------------------------------------------------- command line


def load_record(path):
    """The records of one experiment folder, or a one-line ResultsError saying why they cannot be read."""
    from descentlab.records import load_results

    try:
        return load_results(path)
    except SpecError:
        raise
    except Exception as error:  # anything load_results did not foresee: still one line
        reason = (str(error).strip().splitlines() or [""])[0][:200]
        raise ResultsError(
            path, "", f"unreadable ({type(error).__name__}: {reason})", "readable descentlab records"
        ) from None


def os_error_line(error: OSError) -> str:
    """One line for a file error: the file, and a full disk said in words."""
    import errno

    where = f" {error.filename}" if error.filename else ""
    reason = error.strerror or type(error).__name__
    if error.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
        reason = f"the disk is full ({reason})"
    return one_line(f"cannot write{where}: {reason}")


def main(argv: Sequence[str] | None = None) -> int:
    """``descentlab report``: 0 on success, 2 on bad input (one line on stderr, nothing written).

    The same command as ``descentlab report`` (its arguments are declared once, in
    ``descentlab.cli.add_report_arguments``).
    """
    from descentlab.cli import main as cli_main

    return cli_main(["report", *(sys.argv[1:] if argv is None else argv)])


def run(args) -> int:
    """Carry out ``descentlab report`` with its parsed arguments: 0 when files were written, 1 when
    none could be (PNG export without a browser); bad input raises SpecError, nothing written."""
    results_list = [load_record(p) for p in args.results]
    try:
        written = build_report(results_list, args.format, args.out)
    except OSError as error:  # a report file that cannot be written (or read): name it, one line
        print(f"descentlab: error: {os_error_line(error)}", file=sys.stderr)
        return 2
    for path in written:
        print(path)
    return 0 if written else 1


# ---------------------------------------------------------------- dashboard


def render_download(results, *, key: str = "report") -> None:
    """Download buttons for the HTML report and the summary CSV on the dashboard's Results page.

    The HTML is built only when the button is clicked (Streamlit calls ``data`` lazily).
    """
    import streamlit as st

    name = safe_name(experiment_name(results))
    st.download_button(
        "Download HTML report",
        data=lambda: render_html([build_section(results)]).encode("utf-8"),
        file_name=f"{name}-report.html",
        mime="text/html",
        key=f"{key}-html",
    )
    st.download_button(
        "Download summary CSV",
        data=lambda: analysis.summarize(results).to_csv(index=False).encode("utf-8"),
        file_name=f"{name}-summary.csv",
        mime="text/csv",
        key=f"{key}-csv",
    )
