"""Reports from real records: HTML renders offline in Debian chromium, Markdown/PNG/CSV, bad input, reproducibility."""

from __future__ import annotations

import html
import importlib.util
import os
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from descentlab import analysis
from descentlab.dashboard import report
from descentlab.experiment import load_experiment_file
from descentlab.records import load_results, save_results
from descentlab.runner import run_experiment

CHROMIUM = "/usr/bin/chromium"
needs_chromium = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian chromium not installed")
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-default-apps",
]

# A 2-parameter bowl (λ_max = 1): GD is stable iff α < 2, heavy ball iff α < 2 + 2μ.
EXPERIMENT = """
name = "bowl-gd-vs-momentum"
steps = 40
seeds = [0, 1, 2]
target_loss = 0.01

[problem]
name = "quadratic"
condition = 10.0
lambda_max = 1.0
start_spread = 0.5

[[rules]]
rule = "gd"
label = "vanilla GD"
learning_rate = [0.1, 0.5, 1.0, 1.5, 3.0]

[[rules]]
rule = "momentum"
label = "heavy ball"
learning_rate = [0.1, 1.0, 4.0]
momentum = [0.5, 0.9]
"""


def _core_test_module(name: str):
    spec = importlib.util.spec_from_file_location(name, Path(__file__).parents[1] / "core" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _hand_built():
    return _core_test_module("test_analysis_data").make_results()


@pytest.fixture(scope="module")
def record(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("records")
    (root / "bowl.toml").write_text(EXPERIMENT)
    results = run_experiment(load_experiment_file(root / "bowl.toml"), workers=1)
    return save_results(results, root / "results")


@pytest.fixture(scope="module")
def results(record):
    return load_results(record)


def run_main(*argv) -> int:
    return report.main([str(a) for a in argv])


def test_html_inlines_plotly_once_and_holds_every_part(results):
    section = report.build_section(results)
    page = report.render_html([section])
    assert page.count("* plotly.js v") == 1  # the bundle, once
    assert "<script src=" not in page and 'src="http' not in page  # nothing to fetch: works offline
    assert page.count("Plotly.newPlot(") == len(section.figures) == 5  # loss, step, α_t, sweep, landscape
    for text in [
        "descentlab run",
        "experiment.toml",
        "numpy",
        "built-in",
        "quadratic",
        "Why runs blew up",
        "heavy ball",
        "seeds stable at best α",
        "smallest unstable α",
        "runs by status",
        "why it blew up",
    ]:
        assert text in page, text
    words = re.sub(r"<script.*?</script>", "", page, flags=re.DOTALL)  # the text, without plotly.js
    assert "finished" not in words and "smallest diverged" not in words
    for sentence in analysis.verdict(analysis.summarize(results), results):  # core's words, not the report's
        assert html.escape(sentence) in page, sentence
    # GD on a bowl with λ_max = 1 is unstable past α = 2: its α = 3 runs are in the "why" table
    reasons = section.reasons
    gd = reasons[reasons["label"] == "vanilla GD"]
    assert set(gd["configuration"]) == {"α=3"}
    assert sorted(int(x) for seeds in gd["seeds"] for x in seeds.split(", ")) == [0, 1, 2]
    assert {status.split()[-1] for status in gd["status"]} <= {"unstable", "diverged"}


def test_best_alpha_curves_are_the_best_runs(results):
    """The loss figure draws exactly one median curve per rule, from the runs summarize() calls best."""
    summary = analysis.summarize(results)
    loss = report.build_section(results).figures[0].figure
    curves = [t for t in loss.data if t.meta == "train"]
    assert len(curves) == len(summary)
    best_ids = analysis.best_run_ids(results)
    for trace, ids in zip(curves, best_ids.values()):
        losses = results.metrics[results.metrics.run_id.isin(ids)].pivot(index="step", columns="run_id", values="loss")
        np.testing.assert_allclose(np.array(trace.y, dtype=float), losses.median(axis=1).to_numpy(), rtol=1e-12)


@pytest.mark.slow
@pytest.mark.browser
@needs_chromium
def test_html_report_renders_offline_in_chromium(record, tmp_path):
    """Every chart draws with the network off; side by side, each chart fits its experiment's column."""
    from playwright.sync_api import sync_playwright

    one, two = tmp_path / "one.html", tmp_path / "two.html"
    assert run_main(record, "--format", "html", "--out", one) == 0
    report.build_report([load_results(record), _hand_built()], "html", two)
    requests = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=LAUNCH_ARGS)
        try:
            context = browser.new_context(offline=True, viewport={"width": 1400, "height": 900})
            seen = {}
            for path, n_figures in ((one, 5), (two, 9)):
                page = context.new_page()
                page.on("request", lambda r: requests.append(r.url))
                page.goto(path.as_uri())
                page.wait_for_function(
                    f"document.querySelectorAll('.js-plotly-plot .main-svg').length >= {n_figures}", timeout=30000
                )
                page.wait_for_timeout(200)  # the resize after load
                seen[path] = page.evaluate("""[...document.querySelectorAll('.js-plotly-plot')].map(e => [
                    e._fullData.length, e.getBoundingClientRect().width,
                    e.closest('section').getBoundingClientRect().width])""")
        finally:
            browser.close()
    assert [len(seen[one]), len(seen[two])] == [5, 9]
    assert all(traces > 0 for traces, _, _ in seen[one] + seen[two])
    assert all(width <= column + 1 for _, width, column in seen[two])
    assert [u for u in requests if not u.startswith(("file:", "data:", "blob:"))] == []


@pytest.mark.slow
@pytest.mark.browser
@needs_chromium
def test_markdown_report_writes_pngs_beside_it(record, tmp_path):
    out = tmp_path / "rep.md"
    assert run_main(record, "--format", "md", "--out", out) == 0
    text = out.read_text()
    images = [line[line.index("](") + 2 : -1] for line in text.splitlines() if line.startswith("![")]
    assert len(images) == 5
    for name in images:
        png = (tmp_path / name).read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    assert "| vanilla GD |" in text and "### Verdict" in text


def test_markdown_without_browser_names_the_install_and_keeps_tables(results, tmp_path, monkeypatch, capsys):
    import plotly.io as pio

    def no_browser(*args, **kwargs):
        raise RuntimeError("\nKaleido requires Google Chrome to be installed.\n")

    monkeypatch.setattr(pio, "write_images", no_browser)
    written = report.build_report([results], "md", tmp_path / "rep.md")
    assert written == [tmp_path / "rep.md"]
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "apt-get install chromium" in err[0]
    text = (tmp_path / "rep.md").read_text()
    assert "apt-get install chromium" in text and "| heavy ball |" in text
    assert not list(tmp_path.glob("**/*.png")) and not list(tmp_path.glob("**/.*tmp*"))


def test_csv_tables_hold_runs_metrics_and_summary(record, results, tmp_path):
    assert run_main(record, "--format", "csv", "--out", tmp_path) == 0
    runs = pd.read_csv(tmp_path / "runs.csv")
    metrics = pd.read_csv(tmp_path / "metrics.csv")
    summary = pd.read_csv(tmp_path / "summary.csv")
    assert len(runs) == len(results.runs) and len(metrics) == len(results.metrics)
    np.testing.assert_array_equal(metrics["loss"].to_numpy(), results.metrics["loss"].to_numpy())
    expected = analysis.summarize(results)
    np.testing.assert_array_equal(summary["best_alpha"], expected["best_alpha"])
    assert set(summary["experiment"]) == {"bowl-gd-vs-momentum"}


def test_two_experiments_side_by_side(results, tmp_path):
    other = _hand_built()
    out = tmp_path / "both.html"
    assert report.build_report([results, other], "html", out) == [out]
    page = out.read_text()
    assert page.count("* plotly.js v") == 1
    assert "class='side'" in page and "All experiments" in page
    assert "bowl-gd-vs-momentum" in page and "quadratic-gd-vs-heavy-ball" in page
    assert page.count("Plotly.newPlot(") == 5 + 4  # the hand-built record has no landscape


def _one_error_line(capsys) -> str:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and captured.out == ""
    return lines[0]


@pytest.mark.parametrize("case", ["not_an_experiment", "truncated_parquet", "unknown_format", "no_folder"])
def test_bad_input_exits_2_with_one_line_and_overwrites_nothing(case, record, tmp_path, capsys):
    out = tmp_path / "report.html"
    out.write_text("earlier report")
    target = record
    fmt = "html"
    if case == "not_an_experiment":
        target = tmp_path / "plain"
        target.mkdir()
        (target / "notes.txt").write_text("hello")
    elif case == "truncated_parquet":
        target = tmp_path / "broken"
        shutil.copytree(record, target)
        data = (target / "metrics.parquet").read_bytes()
        (target / "metrics.parquet").write_bytes(data[: len(data) // 2])
    elif case == "unknown_format":
        fmt = "pdf"
    else:
        target = tmp_path / "missing"
    assert run_main(target, "--format", fmt, "--out", out) == 2
    line = _one_error_line(capsys)
    assert line.startswith("descentlab: error: ")  # as every command says bad input
    assert {
        "not_an_experiment": "missing",
        "truncated_parquet": "metrics.parquet",
        "unknown_format": "one of html, md, csv, png, all",
        "no_folder": "no such folder",
    }[case] in line
    assert out.read_text() == "earlier report"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_default_output_goes_into_the_results_folder(record, capsys):
    assert run_main(record, "--format", "csv") == 0
    assert (record / "report" / "summary.csv").is_file()
    assert capsys.readouterr().out.strip().splitlines()[-1].endswith("summary.csv")
    shutil.rmtree(record / "report")


def test_rerunning_the_stored_experiment_reproduces_bit_identical_metrics(record, results):
    again = run_experiment(load_experiment_file(record / "experiment.toml"), workers=1)
    assert list(again.metrics.columns) == list(results.metrics.columns)
    for column in results.metrics.columns:
        stored, fresh = results.metrics[column].to_numpy(), again.metrics[column].to_numpy()
        assert stored.dtype == fresh.dtype
        assert stored.tobytes() == fresh.tobytes(), column  # bit-identical, NaN included
    pd.testing.assert_frame_equal(again.runs, results.runs, check_exact=True)


def test_render_download_builds_the_html_on_click(results, monkeypatch):
    calls = []

    class FakeStreamlit:
        @staticmethod
        def download_button(label, data, file_name, mime, key):
            calls.append((label, data, file_name, mime, key))

    monkeypatch.setitem(sys.modules, "streamlit", FakeStreamlit)
    report.render_download(results)
    (_, html_data, html_name, html_mime, _), (_, csv_data, csv_name, _, _) = calls
    assert html_name == "bowl-gd-vs-momentum-report.html" and html_mime == "text/html"
    page = html_data().decode("utf-8")
    assert page.count("* plotly.js v") == 1 and "vanilla GD" in page
    assert csv_name.endswith("summary.csv") and b"best_alpha" in csv_data()


def test_render_download_runs_in_streamlit(record):
    """The buttons render in a real Streamlit script run (AppTest), with the HTML deferred to the click."""
    from streamlit.testing.v1 import AppTest

    def page(path):
        from descentlab.dashboard import report as r
        from descentlab.records import load_results as load

        r.render_download(load(path))

    at = AppTest.from_function(page, args=(str(record),), default_timeout=30).run()
    assert not at.exception
    buttons = at.get("download_button")
    assert len(buttons) == 2


def test_the_reproduce_command_in_the_report_gives_bit_identical_metrics(record, results, tmp_path, capsys):
    """Run the exact command the report prints (two worker processes this time) and compare every bit."""
    import shlex

    from descentlab import cli

    command = report.build_section(results, with_figures=False).reproduce
    argv = shlex.split(command)
    assert argv[:3] == ["descentlab", "run", str(record / "experiment.toml")]
    capsys.readouterr()
    assert cli.main(argv[1:] + ["--out", str(tmp_path), "--quiet", "--workers", "2"]) == 0
    again = load_results(next(tmp_path.iterdir()))
    for column in results.metrics.columns:
        assert results.metrics[column].to_numpy().tobytes() == again.metrics[column].to_numpy().tobytes(), column


def test_reproduce_command_names_plugin_files(results):
    meta = {**results.meta, "plugins": {**results.meta["plugins"], "plugin_files": ["/opt/my rule.py"]}}
    record = type(results)(**{**vars(results), "meta": meta})
    assert report.reproduce_command(record).endswith("experiment.toml --plugin '/opt/my rule.py'")


def test_summary_of_real_runs_equals_the_reference_from_metrics(results):
    """The runner's runs table and summarize() agree with numbers recomputed from the metric rows."""
    sys.path.insert(0, str(Path(__file__).parents[1] / "core"))  # test_analysis imports its data module
    try:
        _core_test_module("test_analysis").check_against_reference(results)
    finally:
        sys.path.remove(str(Path(__file__).parents[1] / "core"))


def test_png_format_writes_only_the_figures_in_one_export_call(results, tmp_path, monkeypatch):
    import plotly.io as pio

    calls = []

    def fake_write_images(figs, paths, **kwargs):  # stands in for kaleido: one call, every figure
        calls.append(len(figs))
        for path in paths:
            Path(path).write_bytes(b"\x89PNG\r\n\x1a\n")

    monkeypatch.setattr(pio, "write_images", fake_write_images)
    written = report.build_report([results], "png", tmp_path / "pngs")
    assert calls == [5]
    assert sorted(p.name for p in written) == sorted(p.name for p in (tmp_path / "pngs" / "figures").iterdir())
    assert {p.suffix for p in (tmp_path / "pngs").rglob("*") if p.is_file()} == {".png"}


def test_png_format_without_browser_exits_1_and_says_what_to_install(record, tmp_path, monkeypatch, capsys):
    import plotly.io as pio

    def no_browser(*args, **kwargs):
        raise RuntimeError("Kaleido requires Google Chrome to be installed.")

    monkeypatch.setattr(pio, "write_images", no_browser)
    assert run_main(record, "--format", "png", "--out", tmp_path / "p") == 1
    assert "apt-get install chromium" in capsys.readouterr().err
    assert not (tmp_path / "p").exists() or not any((tmp_path / "p").rglob("*.png"))


# --- summary and "why" tables on records built by hand ------------------------------------------


def _flagged_by_hand(make_results):
    """α = 0.1, 1 stable; α = 3: seed 1 unstable from step 5; α = 10: every seed diverged at step 5."""
    return make_results(
        [
            {
                "rule": "gd",
                "label": "GD",
                "learning_rate": [0.1, 1.0, 3.0, 10.0],
                "unstable_at": lambda a, s: 5 if a == 3.0 and s == 1 else None,
                "diverge_at": lambda a, s: 5 if a == 10.0 else None,
                "status": lambda a, s: "progressing" if a == 0.1 else "converged",
                "reason": lambda a, s: (
                    (
                        "unstable from step 5 (it ended above its initial loss): α·λ_max = 2.1 ≥ 2, "
                        "gradient descent's limit"
                    )
                    if a == 3.0
                    else "diverged at step 5 (loss beyond 1e+04× its initial value, or not finite): "
                    "α·λ_max = 7 ≥ 2, gradient descent's limit"
                ),
            }
        ],
        steps=10,
        seeds=(0, 1, 2),
    )


def test_display_summary_uses_the_new_columns(make_results):
    results = _flagged_by_hand(make_results)
    summary = analysis.summarize(results)
    shown = report.display_summary(summary)
    assert "seeds stable at best α" in shown and "smallest unstable α" in shown
    assert not [c for c in shown.columns if "finished" in c or "diverged α" in c]
    row = shown.iloc[0]
    assert row["smallest unstable α"] == "3"
    # 6 progressing/converged at 0.1 and 1, 2 converged + 1 unstable at 3, 3 diverged at 10: 12 runs
    assert row["runs by status"] == "● 5 converged, ▲ 3 progressing, ◆ 1 unstable, × 3 diverged (of 12)"
    best = float(summary["best_alpha"].iloc[0])
    stable_at_best = {0.1: 3, 1.0: 3, 3.0: 2}[best]
    assert row["seeds stable at best α"] == f"{stable_at_best}/3"


def test_why_table_lists_unstable_and_diverged_runs_with_their_steps(make_results):
    table = report.divergence_table(_flagged_by_hand(make_results))
    assert table["configuration"].tolist() == ["α=3", "α=10"]
    unstable, diverged = table.iloc[0], table.iloc[1]
    assert unstable["status"] == "◆ unstable" and unstable["seeds"] == "1" and unstable["at step"] == "5"
    assert unstable["why it blew up"].startswith("unstable (it ended above its initial loss)")
    assert diverged["status"] == "× diverged" and diverged["seeds"] == "0, 1, 2" and diverged["at step"] == "5, 5, 5"
    assert diverged["why it blew up"].startswith("diverged (loss beyond")


def test_labels_are_text_in_markdown_and_html_reports(tmp_path, monkeypatch):
    # a label from a shared link or a results folder must not become markup in either report
    import plotly.io as pio

    from descentlab.experiment import Experiment
    from descentlab.registry import load_registry

    def no_browser(*args, **kwargs):
        raise RuntimeError("no browser in this test")

    monkeypatch.setattr(pio, "write_images", no_browser)
    evil = "GD <script>alert(1)</script> <img src=x onerror=alert(2)> ![t](http://evil.example/x.png) ```"
    registry = load_registry(entry_points=False, use_env=False)
    spec = {
        "name": "labels",
        "steps": 5,
        "problem": {"name": "quadratic"},
        "rules": [{"rule": "gd", "label": evil, "learning_rate": 0.5}],
    }
    results = run_experiment(Experiment.from_dict(spec, registry), registry=registry, workers=1)
    report.build_report([results], "md", tmp_path / "rep.md")
    markdown = (tmp_path / "rep.md").read_text()
    # outside code blocks (which show raw text as text) no markup survives; no block is closed early
    prose = re.sub(r"(?ms)^(`{3,})\w*\n.*?^\1$", "", markdown)
    assert prose.count("```") == 0
    markdown = prose
    assert "<script" not in markdown and "<img" not in markdown
    assert not re.search(r"(?<!\\)\]\(", markdown)  # no unescaped "](": no link or image
    assert "&lt;script&gt;" in markdown  # still there, as text
    report.build_report([results], "html", tmp_path / "rep.html")
    page = (tmp_path / "rep.html").read_text()
    assert "<script>alert(1)" not in page and "<img src=x" not in page


def test_ctrl_c_during_png_export_acts_without_waiting_for_the_export(record, tmp_path, monkeypatch, capsys):
    # kaleido's own shutdown took 35-52 s after Ctrl-C: the export now runs aside, and the interrupt
    # ends the command while the (stand-in) export is still blocked, which it would never leave.
    import os
    import signal
    import threading

    import plotly.io as pio

    from descentlab.cli import main

    started, never, tidied = threading.Event(), threading.Event(), threading.Event()

    def stuck_export(*args, **kwargs):
        started.set()
        try:
            never.wait()
        except KeyboardInterrupt:  # as kaleido does: tidy its browser up before letting go
            never.wait(5)
            tidied.set()
            raise

    monkeypatch.setattr(pio, "write_images", stuck_export)

    def press_ctrl_c():
        started.wait()
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=press_ctrl_c, daemon=True).start()
    status = main(["report", str(record), "--format", "png", "--out", str(tmp_path / "p")])
    assert status == 130 and not tidied.is_set()
    assert capsys.readouterr().err.strip().splitlines()[-1] == "descentlab: interrupted"
    assert not any((tmp_path / "p").rglob("*.png"))


def test_report_finds_a_name_in_descentlab_results(record, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DESCENTLAB_RESULTS", str(record.parent))
    assert run_main(record.name, "--format", "csv", "--out", tmp_path / "out") == 0
    assert (tmp_path / "out" / "summary.csv").is_file()
    assert str(tmp_path / "out" / "summary.csv") in capsys.readouterr().out


def test_report_files_follow_the_umask(record, tmp_path, capsys):
    import os
    import stat

    previous = os.umask(0o002)  # a class sharing a server: group-writable, world-readable
    try:
        assert run_main(record, "--format", "csv", "--out", tmp_path / "shared" / "report") == 0
    finally:
        os.umask(previous)
    folder = tmp_path / "shared" / "report"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o775
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in folder.iterdir()}
    assert modes and set(modes.values()) == {0o664}, modes
