"""The report's comparison section for a results folder with protocol.json: leaderboard, verdicts, profile plot."""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, field

import pandas as pd

from . import style as S


@dataclass
class Comparison:
    """What the report shows of a protocol comparison, in plain data (protocol.json, never re-run)."""

    statement: str
    selection: str
    intervals: str
    verdict_rule: str
    measure: str
    reported: str
    command: str
    reproduce: str
    leaderboard: pd.DataFrame
    verdicts: list[str] = field(default_factory=list)
    data: dict = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)  # rules whose test runs failed, with the plugin's file:line
    timing_note: str = ""  # what the machine-dependent time-to-target column is ("" when it was not timed)


def _f(value) -> float:
    """protocol.json writes +inf as "inf" (JSON has no infinity)."""
    return math.nan if value is None else float(value)


def _g(value) -> str:
    v = _f(value)
    return "–" if math.isnan(v) else ("∞" if v == math.inf else f"{v:.3g}")


def _interval(ci) -> str:
    """ " [low, high]" of a median's interval; "" for a protocol.json written before steps had one."""
    return f" [{_g(ci[0])}, {_g(ci[1])}]" if ci else ""


def _tuning(verdict: dict | None) -> str:
    """The tuned-vs-one-shot verdict in a cell: "yes" when tuned is better, "no, worse" when worse."""
    if not verdict:
        return "–"
    word = {"better": "yes", "worse": "no, worse"}.get(
        verdict["verdict"], f"cannot tell apart at {verdict['n']} seed{'s' if verdict['n'] != 1 else ''}"
    )
    return f"{word} (p = {_f(verdict['p_value']):.2g})"


def load_comparison(folder) -> Comparison | None:
    """The comparison of a results folder, or None when it has no protocol.json."""
    from descentlab.protocol import load_protocol

    data = load_protocol(folder) if folder else None
    if data is None:
        return None
    score = data["profile"]["score"]
    steps_score = (data.get("profile_steps") or {}).get("score")  # only when the problems had targets
    timing = data.get("timing") or {}  # protocol.json before wall times has none
    rows, verdicts, failures = [], [], []
    for p in data["problems"]:
        clock = timing.get("problems", {}).get(p["key"], {})
        for r in p["rules"]:
            one, two = r["one_shot"], r["tuned"]
            rows.append(
                {
                    "problem": p["key"],
                    "rule": r["label"],
                    "one-shot median": _f(one["median"]),
                    "one-shot 95% CI": f"[{_g(one['ci'][0])}, {_g(one['ci'][1])}]",
                    "tuned median": _f(two["median"]),
                    "tuned 95% CI": f"[{_g(two['ci'][0])}, {_g(two['ci'][1])}]",
                    "steps to target": (
                        f"{_g(two['steps_median'])}{_interval(two.get('steps_ci'))} "
                        f"({two['reached']}/{len(two['scores'])})"
                        if "steps_median" in two
                        else "–"
                    ),
                    # a problem with a target accuracy (a classification problem): steps to reach it on the test split
                    **(
                        {
                            "steps to accuracy": (
                                f"≥ {p['target_accuracy']:g}: {_g(two['accuracy_steps_median'])}"
                                f"{_interval(two.get('accuracy_steps_ci'))} "
                                f"({two['accuracy_reached']}/{len(two['scores'])})"
                            )
                        }
                        if "accuracy_steps_median" in two
                        else {}
                    ),
                    **(
                        {
                            "time to target (s, machine-dependent)": _f(
                                clock.get(r["label"], {}).get("time_to_target_s")
                            ),
                            "time to accuracy (s, machine-dependent)": _f(
                                clock.get(r["label"], {}).get("time_to_accuracy_s")
                            ),
                            "s per step (machine-dependent)": _f(clock.get(r["label"], {}).get("seconds_per_step")),
                        }
                        if timing
                        else {}
                    ),
                    "chosen trial": "the defaults" if r["chosen"] == 0 else f"{r['chosen']} of {r['budget']}",
                    # protocol.json before the paired test (format 1) has no tuning verdict
                    "tuning helped?": _tuning(r.get("tuning")),
                    "selected on": p.get("selected_on", "training loss on the tune seeds"),
                    "reported loss": p.get("reported", "training loss"),
                    "test runs": p.get("results", "." if p is data["problems"][0] else "–"),
                    "profile score": _f(score[r["label"]]),
                    **({"profile score by steps": _f(steps_score[r["label"]])} if steps_score else {}),
                }
            )
        verdicts += [f"{p['key']}: {pair['sentence']}" for pair in p["pairwise"]]
        verdicts += [f"{p['key']}: tuning: {r['tuning']['sentence']}" for r in p["rules"] if "tuning" in r]
        if p.get("seed_independent"):  # identical seeds: one observation, said beside the broken plugins
            failures.append(f"{p['key']}: {p['seed_independent']}")
        failures += [  # a broken plugin: named with its file and line, the other rules compared as usual
            f"{p['key']}: {r['label']} failed on {r['failures']['failed']} of its {r['failures']['runs']} test runs "
            f"(scored +inf): {r['failures']['error']}"
            for r in p["rules"]
            if r.get("failures")
        ]
    return Comparison(
        statement=data["statement"],
        selection=data["selection"],
        intervals=data["intervals"],
        verdict_rule=data["verdicts"],
        measure=data["profile"]["measure"],
        reported=data.get("reported", "the final training loss on the test seeds"),
        command=data.get("command", ""),
        reproduce=data.get("reproduce", ""),
        leaderboard=pd.DataFrame(rows),
        verdicts=verdicts + failures,
        failures=failures,
        data=data,
        timing_note=timing.get("note", ""),
    )


def profile_figure(comparison: Comparison, which: str = "profile"):
    """ρ(τ) per rule as a step plot (Dolan & Moré 2002), the area under it in the legend; ``which``
    "profile_steps" draws the steps-to-target profile (where the comparison has targets)."""
    import plotly.graph_objects as go

    profile = comparison.data[which]
    fig = S.figure()
    for i, (label, rho) in enumerate(profile["rho"].items()):
        fig.add_trace(
            go.Scatter(
                x=profile["taus"],
                y=[_f(v) for v in rho],
                mode="lines",
                line_shape="hv",
                name=f"{label} (area {_f(profile['score'][label]):.3f})",
                line={"color": S.PALETTE[i % len(S.PALETTE)]},
            )
        )
    fig.update_layout(
        title=(
            "Performance profile: share of problems within a factor τ of the best"
            if which == "profile"
            else "Performance profile by steps to target: share of problems reached within τ × the fewest steps"
        ),
        xaxis_title="τ (performance ratio)",
        yaxis_title="ρ(τ)",
        yaxis_range=[-0.02, 1.02],
    )
    return S.fit_title(fig)


def best_so_far_figure(comparison: Comparison):
    """Best median tune-seed loss after each trial, per rule and problem: what the budget bought."""
    import plotly.graph_objects as go

    fig = S.figure()
    labels = list(comparison.data["profile"]["score"])
    for p in comparison.data["problems"]:
        for r in p["rules"]:
            curve = [_f(v) for v in r["best_so_far"]]
            fig.add_trace(
                go.Scatter(
                    x=list(range(1, len(curve) + 1)),
                    y=curve,
                    mode="lines+markers",
                    name=f"{r['label']} · {p['key']}",
                    legendgroup=r["label"],
                    line={"color": S.PALETTE[labels.index(r["label"]) % len(S.PALETTE)]},
                )
            )
    fig.update_layout(
        title="Best so far against the tuning budget (median over tune seeds)",
        xaxis_title="trials",
        yaxis_title="best median final loss (validation where held out)",
        yaxis_type="log",
    )
    return S.fit_title(fig)


def _pairs(comparison: Comparison) -> list[tuple[str, str]]:
    return [
        ("budget and split", comparison.statement),
        ("selection", comparison.selection),
        ("reported numbers", comparison.reported),
        ("intervals", comparison.intervals),
        ("verdicts", comparison.verdict_rule),
        ("profile measure", comparison.measure),
        *(
            [("profile by steps to target", comparison.data["profile_steps"]["measure"])]
            if "profile_steps" in comparison.data
            else []
        ),
        *([("time to target", comparison.timing_note)] if comparison.timing_note else []),
    ]


def comparison_html(comparison: Comparison, table, pairs) -> list[str]:
    """The section's HTML parts; ``table`` and ``pairs`` are the report's own renderers."""
    e = html.escape
    return [
        "<h3>Comparison (protocol)</h3>",
        pairs(_pairs(comparison)),
        table(comparison.leaderboard),
        "<ul class='verdict'>",
        *(f"<li>{e(v)}</li>" for v in comparison.verdicts),
        "</ul>",
        f"<p>Reproduce the comparison: <code>{e(comparison.reproduce or comparison.command)}</code>"
        + (f" (recorded command: <code>{e(comparison.command)}</code>)" if comparison.reproduce else "")
        + "</p>",
    ]


def comparison_md(comparison: Comparison, table, escape, code) -> list[str]:
    """The section's Markdown parts; ``table``, ``escape`` and ``code`` are the report's own renderers."""
    return [
        "### Comparison (protocol)",
        table(pd.DataFrame(_pairs(comparison), columns=["", ""])),
        table(comparison.leaderboard),
        "\n".join(f"- {escape(v)}" for v in comparison.verdicts),
        "Reproduce the comparison:\n\n" + code(comparison.reproduce or comparison.command, "sh"),
        ("Recorded command:\n\n" + code(comparison.command, "sh")) if comparison.reproduce else "",
    ]


__all__ = ["Comparison", "best_so_far_figure", "comparison_html", "comparison_md", "load_comparison", "profile_figure"]
