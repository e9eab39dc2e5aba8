"""Per-rule summary of an experiment's records (best α, losses, divergence) and a verdict drawn from it.

Definitions (also in docs/reports.md):

- A *configuration* of a rule entry is one point of its grid: the base learning rate α together
  with every other hyperparameter, schedule hyperparameter and warm-up value of the runs table.
  Its runs differ only in the seed.
- A run's *status* is its verdict (``descentlab.verdicts``: converged, progressing, stalled,
  unstable, diverged, failed). A run is *stable* when it converged or is progressing, and
  *flagged* when it blew up (unstable or diverged).
- A run's *score* is its final training loss; a diverged or failed run (or a non-finite loss)
  scores +inf, so it can never make a configuration look good.
- The *best configuration* of an entry has the lowest median score over seeds (ties: lower median
  best loss, then smaller α). ``best_alpha`` is its α; ``best_config`` names its other
  hyperparameters when they vary in the grid. If every configuration's median is +inf, no α is
  best: ``best_alpha`` and the losses are NaN.
- Stability is read along α through the best configuration (the other hyperparameters held at
  their best values): ``smallest_unstable_alpha`` is the smallest α where at least one seed was
  flagged (unstable or diverged), ``largest_stable_alpha`` the largest α below it whose seeds were
  all stable (:func:`descentlab.verdicts.stability_edge`).
- ``steps_to_target_median`` is the median over seeds at the best configuration, counting a seed
  that never reached the target (or was flagged or failed) as +inf; NaN when that median is +inf or
  there is no target.
  ``fastest_alpha`` / ``fastest_steps_median`` answer a different question: the configuration
  with the smallest such median anywhere in the grid (it need not be the best by final loss).
- IQR is the 75th minus the 25th percentile over seeds (linear interpolation, numpy's default).
"""

from __future__ import annotations

import html
import math

import numpy as np
import pandas as pd

from .errors import one_line
from .verdicts import FLAGGED, STABLE, STATUSES, stability_edge

__all__ = [
    "NON_CONFIG_COLUMNS",
    "SUMMARY_COLUMNS",
    "quantiles",
    "quantile",
    "median",
    "iqr",
    "scores",
    "steps_to_target",
    "fastest_configuration",
    "config_columns",
    "varying_columns",
    "configurations",
    "alpha_slice",
    "stability_edges",
    "describe_config",
    "best_configuration",
    "best_run_ids",
    "summarize_entry",
    "summarize",
    "CLOSE",
    "fmt",
    "target_sentence",
    "lowest_loss_sentence",
    "divergence_sentence",
    "reliability_sentence",
    "failure_sentence",
    "verdict",
    "format_number",
    "status_counts_text",
    "verdict_line",
    "configuration_table",
    "summary_html",
]

# Columns of the runs table that are not grid coordinates (contract: core/records.py).
NON_CONFIG_COLUMNS = (
    "run_id",
    "entry",
    "label",
    "rule",
    "schedule",
    "seed",
    "status",
    "diverged_at",
    "unstable_at",
    "final_loss",
    "best_loss",
    "train_loss_start",
    "train_loss_final",
    "steps_to_target",
    "error",
    "divergence_reason",
    "lambda_max_start",
    "lambda_max_flagged",
    "transforms",
)

SUMMARY_COLUMNS = (
    "entry",
    "label",
    "rule",
    "schedule",
    "best_alpha",
    "best_config",
    "final_loss_median",
    "final_loss_iqr",
    "best_loss_median",
    "best_loss_iqr",
    "steps_to_target_median",
    "seeds_reached_target",
    "fastest_alpha",
    "fastest_config",
    "fastest_steps_median",
    "seeds",
    "seeds_stable_at_best",
    "largest_stable_alpha",
    "smallest_unstable_alpha",
    "alphas_tried",
    "runs",
    *STATUSES,
)


def quantiles(values, qs, axis: int = -1) -> np.ndarray:
    """The qs-quantiles along ``axis`` (numpy's linear interpolation), ignoring NaN and exact with ±inf.

    Shape: ``(len(qs), *other axes)``, as ``np.quantile``. ``np.nanquantile`` would compute
    ``inf - inf`` (NaN, with a warning) next to an infinite value and loops over rows in Python;
    here a quantile whose upper neighbour is +inf is +inf (a median is +inf once half the seeds
    blew up), one whose lower neighbour is −inf is −inf, and an all-NaN slice gives NaN. One sort
    serves every row and every q.
    """
    data = np.moveaxis(np.asarray(values, dtype=float), axis, -1)
    q = np.asarray(qs, dtype=float).reshape(-1)
    ordered = np.sort(data, axis=-1)  # NaN sorts last
    count = np.sum(~np.isnan(data), axis=-1)
    position = (np.maximum(count, 1) - 1)[None] * q.reshape((-1,) + (1,) * count.ndim)
    low = np.floor(position).astype(np.intp)
    high = np.ceil(position).astype(np.intp)
    take = lambda index: np.moveaxis(np.take_along_axis(ordered, np.moveaxis(index, 0, -1), axis=-1), -1, 0)
    below, above = take(low), take(high)
    with np.errstate(invalid="ignore"):
        between = below + (position - low) * (above - below)
    result = np.where(
        (low == high) | (below == above),
        below,
        np.where(np.isposinf(above), np.inf, np.where(np.isneginf(below), -np.inf, between)),
    )
    return np.where(count[None] == 0, np.nan, result)


def quantile(values, q: float) -> float:
    """The q-quantile of a flat sample (see :func:`quantiles`); NaN for an empty one."""
    flat = np.asarray(values, dtype=float).reshape(-1)
    return math.nan if flat.size == 0 else float(quantiles(flat, [q])[0])


def median(values) -> float:
    return quantile(values, 0.5)


def iqr(values) -> float:
    """75th minus 25th percentile; +inf if only the upper quartile is infinite, NaN if both are."""
    upper, lower = quantile(values, 0.75), quantile(values, 0.25)
    if math.isinf(lower) or math.isnan(lower):
        return math.nan
    return upper - lower


def scores(runs: pd.DataFrame, column: str = "final_loss") -> pd.Series:
    """``column`` per run, +inf where the run diverged, failed or the value is not finite."""
    values = pd.to_numeric(runs[column], errors="coerce").astype(float)
    bad = runs["status"].isin(("diverged", "failed")) | ~np.isfinite(values)
    return values.where(~bad, math.inf)


def steps_to_target(runs: pd.DataFrame) -> pd.Series:
    """Steps to the target per run; +inf where the run never reached it, was flagged or failed.

    A run that touched the target and then blew up does not count as having reached it.
    """
    steps = pd.to_numeric(runs["steps_to_target"], errors="coerce").astype(float)
    kept = ~runs["status"].isin((*FLAGGED, "failed"))
    return steps.where(steps.notna() & kept, math.inf)


def fastest_configuration(table: pd.DataFrame) -> pd.Series | None:
    """The configuration with the smallest median steps to target (ties: lower score, smaller α)."""
    reached = table[np.isfinite(table["median_steps"].astype(float))]
    if reached.empty:
        return None
    return reached.sort_values(["median_steps", "median_score", "learning_rate"], kind="stable").iloc[0]


def config_columns(entry_runs: pd.DataFrame) -> list[str]:
    """Grid coordinates of one entry's runs: α first, then every hyperparameter the rule has."""
    others = [
        c
        for c in entry_runs.columns
        if c not in NON_CONFIG_COLUMNS and c != "learning_rate" and entry_runs[c].notna().any()
    ]
    return ["learning_rate"] + others


def varying_columns(entry_runs: pd.DataFrame) -> list[str]:
    """Grid coordinates other than α that take more than one value in this entry."""
    return [c for c in config_columns(entry_runs)[1:] if entry_runs[c].nunique(dropna=False) > 1]


def configurations(entry_runs: pd.DataFrame) -> pd.DataFrame:
    """One row per configuration of an entry: its coordinates, median scores and status counts."""
    keys = config_columns(entry_runs)
    frame = entry_runs.assign(
        _score=scores(entry_runs), _best=scores(entry_runs, "best_loss"), _steps=steps_to_target(entry_runs)
    )
    rows = []
    for key, group in frame.groupby(keys, dropna=False, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        rows.append(
            {
                **dict(zip(keys, key)),
                "median_score": median(group["_score"]),
                "median_best": median(group["_best"]),
                "median_steps": median(group["_steps"]),
                "n": len(group),
                "n_stable": int(group["status"].isin(STABLE).sum()),
                "n_flagged": int(group["status"].isin(FLAGGED).sum()),
                "statuses": tuple(group["status"]),
            }
        )
    table = pd.DataFrame(rows)
    return table.sort_values(["median_score", "median_best", "learning_rate"], kind="stable")


def _same_values(frame: pd.DataFrame, values: dict) -> pd.Series:
    """Rows of ``frame`` whose columns equal ``values`` (NaN equal to NaN)."""
    mask = pd.Series(True, index=frame.index)
    for column, value in values.items():
        if isinstance(value, float) and math.isnan(value):
            mask &= frame[column].isna()
        else:
            mask &= frame[column] == value
    return mask


def alpha_slice(table: pd.DataFrame, best: pd.Series, others: list[str]) -> pd.DataFrame:
    """The configurations that share ``best``'s hyperparameters other than α, sorted by α."""
    return table[_same_values(table, {c: best[c] for c in others})].sort_values("learning_rate")


def stability_edges(line: pd.DataFrame) -> tuple[float, float]:
    """(largest stable α, smallest α where a seed was unstable or diverged) along one α line.

    Stable: every seed converged or progressing, and α below the smallest flagged α, so a lucky α
    past the edge does not count (the same rule as the dashboard's sweep figure).
    """
    return stability_edge(line["learning_rate"], line["statuses"])


def describe_config(best: pd.Series, others: list[str]) -> str:
    """``"momentum=0.9, schedule.gamma=0.5"`` for the varying hyperparameters of the best configuration."""
    return ", ".join(f"{c}={best[c]:g}" if isinstance(best[c], (int, float)) else f"{c}={best[c]}" for c in others)


def best_configuration(entry_runs: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series, pd.DataFrame]:
    """(configurations table, its best row, the runs of that configuration — one per seed)."""
    table = configurations(entry_runs)
    best = table.iloc[0]
    at_best = entry_runs[_same_values(entry_runs, {c: best[c] for c in config_columns(entry_runs)})]
    return table, best, at_best


def best_run_ids(results) -> dict[int, list[int]]:
    """entry -> run ids of its best configuration (empty when no α gave a finite median)."""
    out = {}
    for entry, group in results.runs.groupby("entry", sort=True):
        _, best, at_best = best_configuration(group)
        out[int(entry)] = [int(r) for r in at_best["run_id"]] if math.isfinite(best["median_score"]) else []
    return out


def summarize_entry(entry_runs: pd.DataFrame, target_loss: float | None) -> dict:
    """The summary row of one rule entry (see the module docstring for every definition)."""
    table, best, at_best = best_configuration(entry_runs)
    others = config_columns(entry_runs)[1:]
    found = math.isfinite(best["median_score"])
    largest_stable, smallest_unstable = stability_edges(alpha_slice(table, best, others))
    steps = steps_to_target(at_best)
    steps_median = median(steps) if target_loss is not None else math.nan
    fastest = fastest_configuration(table) if target_loss is not None else None
    varying = varying_columns(entry_runs)
    first = entry_runs.iloc[0]
    return {
        "entry": int(first["entry"]),
        "label": first["label"],
        "rule": first["rule"],
        "schedule": first["schedule"],
        "best_alpha": float(best["learning_rate"]) if found else math.nan,
        "best_config": describe_config(best, varying) if found else "",
        "final_loss_median": median(scores(at_best)) if found else math.nan,
        "final_loss_iqr": iqr(scores(at_best)) if found else math.nan,
        "best_loss_median": median(scores(at_best, "best_loss")) if found else math.nan,
        "best_loss_iqr": iqr(scores(at_best, "best_loss")) if found else math.nan,
        "steps_to_target_median": steps_median if found and math.isfinite(steps_median) else math.nan,
        "seeds_reached_target": int(np.isfinite(steps).sum()) if found else 0,
        "fastest_alpha": math.nan if fastest is None else float(fastest["learning_rate"]),
        "fastest_config": "" if fastest is None else describe_config(fastest, varying),
        "fastest_steps_median": math.nan if fastest is None else float(fastest["median_steps"]),
        "seeds": int(entry_runs["seed"].nunique()),
        "seeds_stable_at_best": int(at_best["status"].isin(STABLE).sum()) if found else 0,
        "largest_stable_alpha": largest_stable,
        "smallest_unstable_alpha": smallest_unstable,
        "alphas_tried": int(entry_runs["learning_rate"].nunique()),
        "runs": len(entry_runs),
        **{status: int((entry_runs["status"] == status).sum()) for status in STATUSES},
    }


def summarize(results) -> pd.DataFrame:
    """One row per rule entry of ``results`` (a ``Results`` record), in entry order."""
    target = getattr(results.experiment, "target_loss", None)
    rows = [summarize_entry(group, target) for _, group in results.runs.groupby("entry", sort=True)]
    return pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))


# ---------------------------------------------------------------- verdict


CLOSE = 0.01  # final losses within 1 % of the lowest are named alongside it


def fmt(value: float) -> str:
    """A number as a reader wants it: 3 significant digits, no trailing zeros."""
    return f"{value:.3g}"


def _at(row) -> str:
    where = f"α = {fmt(row.best_alpha)}"
    return f"{where} ({row.best_config})" if row.best_config else where


def target_sentence(summary: pd.DataFrame, target: float | None) -> list[str]:
    """Which entry reached the target loss first, and which never did."""
    if target is None:
        return []
    reached = summary[summary["steps_to_target_median"].notna()].sort_values(
        ["steps_to_target_median", "final_loss_median"], kind="stable"
    )
    if reached.empty:
        sentences, first_steps = (
            [f"No rule reached the target loss {fmt(target)} at its best α (median over seeds)."],
            math.inf,
        )
    else:
        first_steps = reached.iloc[0].steps_to_target_median
        leaders = reached[reached["steps_to_target_median"] == first_steps]
        if len(leaders) == 1:
            text = (
                f"{leaders.iloc[0].label} reached the target loss {fmt(target)} first, in a median of "
                f"{first_steps:g} steps at {_at(leaders.iloc[0])}"
            )
        else:
            text = (
                f"{_join(list(leaders['label']))} tied in reaching the target loss {fmt(target)} first, "
                f"in a median of {first_steps:g} steps (at "
                + "; ".join(_at(r) for r in leaders.itertuples())
                + " respectively)"
            )
        rest = [f"{r.label} ({r.steps_to_target_median:g} steps)" for r in reached.iloc[len(leaders) :].itertuples()]
        sentences = [text + (", then " + ", ".join(rest) if rest else "") + "."]
    quickest = summary[summary["fastest_steps_median"].notna()].sort_values(
        ["fastest_steps_median", "final_loss_median"], kind="stable"
    )
    if not quickest.empty:
        q = quickest.iloc[0]
        if q.fastest_steps_median < first_steps:
            config = f" ({q.fastest_config})" if q.fastest_config else ""
            sentences.append(
                f"Over the whole grid, {q.label} got there fastest: a median of "
                f"{q.fastest_steps_median:g} steps at α = {fmt(q.fastest_alpha)}{config}."
            )
    never = summary.loc[summary["steps_to_target_median"].isna(), "label"].tolist()
    if never and not reached.empty:
        sentences.append(f"{_join(never)} did not reach it in the median run at {_their(never)} best α.")
    return sentences


def lowest_loss_sentence(summary: pd.DataFrame) -> list[str]:
    """Which entry ended with the lowest median final loss."""
    finite = summary[np.isfinite(summary["final_loss_median"].astype(float))]
    if finite.empty:
        return []
    ranked = finite.sort_values(["final_loss_median", "best_loss_median"], kind="stable")
    best = ranked.iloc[0]
    if len(summary) == 1:
        return [f"{best.label} reached a median final loss of {fmt(best.final_loss_median)} at {_at(best)}."]
    text = f"{best.label} had the lowest final loss: median {fmt(best.final_loss_median)} at {_at(best)}"
    # Losses equal to the shown digits are a tie in practice (e.g. every rule at the noise floor).
    close = ranked.iloc[1:][ranked.iloc[1:]["final_loss_median"] <= best.final_loss_median * (1 + CLOSE)]
    if not close.empty:
        labels = list(close["label"])
        text += f"; {_join(labels)} {'was' if len(labels) == 1 else 'were'} within {CLOSE:.0%} of it"
    return [text + "."]


def divergence_sentence(row) -> str:
    """Where one entry's α line blew up (unstable or diverged), or that it never did."""
    flagged = getattr(row, "unstable", 0) + getattr(row, "diverged", 0)
    if math.isnan(row.best_alpha) and not math.isnan(row.smallest_unstable_alpha):
        return (
            f"{row.label} blew up (unstable or diverged) or failed at every α tried "
            f"(smallest α that blew up: {fmt(row.smallest_unstable_alpha)})."
        )
    if math.isnan(row.best_alpha):
        return f"{row.label} did not finish at any α tried ({row.failed} of {row.runs} runs failed)."
    stable = (
        f"; the largest α with every seed converged or progressing was {fmt(row.largest_stable_alpha)}"
        if not math.isnan(row.largest_stable_alpha)
        else "; no α had every seed converged or progressing"
    )
    if math.isnan(row.smallest_unstable_alpha):
        if flagged == 0:
            return f"{row.label} did not blow up at any α tried{stable}."
        return f"{row.label} did not blow up along its best configuration's α line{stable}."
    counts = f"{row.unstable} unstable and {row.diverged} diverged run{'s' if row.diverged != 1 else ''} in all"
    return f"{row.label} blew up (unstable or diverged) for α >= {fmt(row.smallest_unstable_alpha)} ({counts}){stable}."


def reliability_sentence(row) -> str | None:
    """How consistently the seeds behaved at the entry's best α (None when there is no best α)."""
    if math.isnan(row.best_alpha):
        return None
    n = row.seeds_stable_at_best
    total = row.seeds
    if n < total:
        return (
            f"{row.label} is unreliable at its best α: only {n} of {total} seeds converged or were still "
            f"progressing (median final loss {fmt(row.final_loss_median)})."
        )
    if total < 2:
        return None
    if not math.isnan(row.steps_to_target_median) and row.seeds_reached_target == total:
        every = "both" if total == 2 else f"all {total}"
        return f"{row.label} was reliable: {every} seeds reached the target loss at its best α."
    spread = row.final_loss_iqr / row.final_loss_median if row.final_loss_median > 0 else 0.0
    if spread <= 0.1:
        return f"{row.label} was consistent across its {total} seeds (IQR {fmt(row.final_loss_iqr)} of the final loss)."
    return (
        f"{row.label} varied across its {total} seeds: IQR {fmt(row.final_loss_iqr)} "
        f"against a median final loss of {fmt(row.final_loss_median)}."
    )


def failure_sentence(summary: pd.DataFrame) -> list[str]:
    """How many runs failed with an error, so a reader looks at the runs table."""
    failed = int(summary["failed"].sum())
    if not failed:
        return []
    total = int(summary["runs"].sum())
    return [f"{failed} of {total} runs failed with an error (see the error column of the runs table)."]


def _join(labels: list[str]) -> str:
    return labels[0] if len(labels) == 1 else ", ".join(labels[:-1]) + " and " + labels[-1]


def _their(labels: list[str]) -> str:
    return "its" if len(labels) == 1 else "their"


def verdict(summary: pd.DataFrame, results) -> list[str]:
    """Plain-language sentences drawn from ``summary`` (the table of :func:`summarize`)."""
    target = getattr(results.experiment, "target_loss", None)
    sentences = target_sentence(summary, target) + lowest_loss_sentence(summary)
    sentences += [divergence_sentence(row) for row in summary.itertuples()]
    sentences += [s for s in (reliability_sentence(row) for row in summary.itertuples()) if s]
    return sentences + failure_sentence(summary)


# ---------------------------------------------------------------- tables and lines for a screen


def format_number(value) -> str:
    """A hyperparameter as people write it: 0.01, 3, 1e-6 (not 1e-06, 1.000000e-06 or 000001)."""
    if isinstance(value, bool) or value is None or (isinstance(value, float) and math.isnan(value)):
        return "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value).lower()
    if not isinstance(value, (int, float, np.integer, np.floating)):
        return str(value)
    text = f"{float(value):.4g}"
    if "e" in text:
        mantissa, exponent = text.split("e")
        text = f"{mantissa}e{int(exponent)}"
    return text


def status_counts_text(statuses) -> str:
    """``"converged"`` when every seed agrees, else ``"2 converged, 1 diverged"`` in the order of STATUSES."""
    values = list(statuses)
    present = [s for s in STATUSES if s in values]
    if len(present) == 1:
        return present[0]
    return ", ".join(f"{values.count(s)} {s}" for s in present)


def verdict_line(row, seeds: int | None = None) -> str:
    """One line per rule entry from its summary row: best α, its final loss with the spread over
    seeds, and what the seeds did there. ``row`` is a row of :func:`summarize`.

    "final loss M (IQR Q over n seeds)" uses the median and interquartile range defined at the top
    of this module; an entry whose every configuration blew up says so instead.
    """
    seeds = int(row.seeds if seeds is None else seeds)
    if not math.isfinite(row.best_alpha):
        return f"{row.label}: no α gave a finite median final loss (every configuration blew up or failed)"
    at = f"α = {format_number(row.best_alpha)}" + (f" ({row.best_config})" if row.best_config else "")
    spread = (
        ""
        if seeds < 2 or not math.isfinite(row.final_loss_iqr)
        else f" (IQR {fmt(row.final_loss_iqr)} over {seeds} seeds)"
    )
    stable = int(row.seeds_stable_at_best)
    return (
        f"{row.label}: best {at}, final loss {fmt(row.final_loss_median)}{spread}; "
        f"{stable} of {seeds} seeds converged or progressing there"
    )


def configuration_table(results) -> pd.DataFrame:
    """One row per configuration (seeds aggregated), in entry order then α: what a screen shows.

    Columns: ``label``, ``status`` (:func:`status_counts_text` over the seeds), ``final_loss``
    (median over seeds, +inf when half blew up), ``final_loss_iqr``, ``seeds``, then α and every
    hyperparameter that some configuration sets, as text from :func:`format_number`. Columns that
    no configuration sets are left out.
    """
    rows = []
    for _, entry_runs in results.runs.groupby("entry", sort=True):
        keys = config_columns(entry_runs)
        frame = entry_runs.assign(_score=scores(entry_runs))
        for key, group in frame.groupby(keys, dropna=False, sort=True):
            key = key if isinstance(key, tuple) else (key,)
            row = {
                "label": group["label"].iloc[0],
                "status": status_counts_text(group["status"]),
                "final_loss": median(group["_score"]),
                "final_loss_iqr": iqr(group["_score"]),
                "seeds": len(group),
            }
            row.update({("α" if c == "learning_rate" else c): format_number(v) for c, v in zip(keys, key)})
            rows.append(row)
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    empty = [c for c in table.columns if table[c].isna().all() or (table[c].astype(str) == "").all()]
    return table.drop(columns=empty)


def summary_html(results) -> str:
    """A few lines for Jupyter: what ran, the status counts, the verdict (which entry won: first to
    the target loss when the experiment sets one, the lowest median final loss), why each entry
    first blew up (its smallest such α) or failed, and one line per entry."""
    e = results.experiment
    runs = results.runs
    counts = runs["status"].value_counts()
    statuses = ", ".join(f"{n} {html.escape(str(s))}" for s, n in counts.items())
    lines, verdicts, notes = [], [], []
    try:
        summary = summarize(results)
        verdicts = target_sentence(summary, getattr(e, "target_loss", None)) + lowest_loss_sentence(summary)
        # why each entry first blew up: its smallest α that did, with the run's own reason (first seed)
        flagged = runs[runs["status"].isin(FLAGGED)].sort_values(["entry", "learning_rate", "seed"], kind="stable")
        for _, row in flagged.drop_duplicates("entry").iterrows():
            reason = row.get("divergence_reason", "") or row["status"]
            notes.append(f"{row['label']} at α = {format_number(row['learning_rate'])} (seed {row['seed']}): {reason}")
        # A notebook shows no log: the reason a rule failed is said here, once per entry, as the CLI warns
        failed = runs[runs["status"] == "failed"] if "error" in runs else runs.iloc[:0]
        for label, group in failed.groupby("label", sort=False):
            count = f"{len(group)} run{'s' if len(group) > 1 else ''}"
            notes.append(f"{count} of {label} failed: {one_line(str(group['error'].iloc[0]))}")
        lines = [verdict_line(row) for row in summary.itertuples()]
    except Exception as error:  # a summary that cannot be built must not hide the record
        lines = [f"(no summary: {type(error).__name__})"]
    where = f"<br><small>{html.escape(str(results.path))}</small>" if results.path is not None else ""
    items = "".join(f"<li>{html.escape(line)}</li>" for line in lines)
    return (
        f"<div><b>{html.escape(str(e.name))}</b>: {len(runs)} runs on {html.escape(str(e.problem))}, "
        f"{int(e.steps)} steps; "
        f"{statuses}"
        + "".join(f"<br><b>{html.escape(v)}</b>" for v in verdicts)
        + "".join(f"<br>{html.escape(n)}" for n in notes)
        + f"<ul>{items}</ul>"
        f"<small>.runs, .metrics, .metric(name) → (runs, steps + 1) array, .configurations → the grid "
        f"with each point's run_ids; .plot.loss(), "
        f".plot.sweep(), .plot.step_sizes(), .plot.learning_rates(), .plot.landscape()</small>{where}</div>"
    )
