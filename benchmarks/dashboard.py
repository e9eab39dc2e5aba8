"""What a class waits for on the dashboard: figures from arrays, and click → chart in a real browser.

    python benchmarks/dashboard.py            # figures only (no browser needed)
    python benchmarks/dashboard.py --browser  # also Debian chromium via playwright
    python benchmarks/dashboard.py --scaling  # also how figure time grows with the points drawn
    python benchmarks/dashboard.py --browser --no-warm-up  # the server without its start-up warm-up
    python benchmarks/dashboard.py --floor    # a revisit against the Compare page's widgets alone

Targets (issue #16), for the default comparison (the Compare page's preset: spirals, 3 rules x 3
seeds, 500 steps): the Compare page's figures built in <= 0.15 s; in the browser, click Run ->
loss chart drawn <= 0.8 s, revisiting the page (cached results) -> charts <= 0.3 s, first page of a
fresh server <= 2 s. Each number is a median; the machine is shared, so quote them with this command.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"


def default_comparison(steps: int | None = None):
    from descentlab.dashboard.presets import preset
    from descentlab.experiment import Experiment
    from descentlab.registry import load_registry
    from descentlab.runner import run_experiment

    registry = load_registry(entry_points=False, use_env=False)
    spec = {"name": "bench-dashboard", **preset("compare")}
    if steps is not None:
        spec["steps"] = steps
    started = time.perf_counter()
    results = run_experiment(Experiment.from_dict(spec, registry), registry=registry, workers=1)
    return results, time.perf_counter() - started


def build_figures(results) -> list:
    """The figures the Compare page draws for ``results`` (dashboard/widgets.py, show_results)."""
    from descentlab.dashboard import figures as F

    groups = F.run_groups(results)
    figs = [
        F.draw_curves(F.loss_curves_info(results, groups=groups)),
        F.draw_curves(F.learning_rate_info(results, groups=groups)),
        F.draw_curves(F.grad_norm_info(results, groups=groups)),
        F.draw_curves(F.step_size_info(results, groups=groups)),
    ]
    if F.layer_columns(results.metrics):
        figs.append(F.draw_layer_grad_norms(F.layer_grad_norms_info(results, groups=groups)))
    figs.append(F.summary_table(results))
    return figs


def time_figures(results, repeats: int = 9) -> float:
    from descentlab.dashboard import fig_groups

    times = []
    for _ in range(repeats):
        # each repeat starts from the Results alone: the per-frame wide tables are built again
        # (getattr: the same file also times a checkout from before that cache)
        getattr(fig_groups, "_WIDE_CACHE", {}).clear()
        started = time.perf_counter()
        for fig in build_figures(results):
            if hasattr(fig, "to_plotly_json"):
                fig.to_plotly_json()  # what Streamlit serialises
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def points_drawn(results) -> int:
    """Values the figures hand the browser: every x of every trace (the summary table not counted)."""
    return sum(len(trace.x) for fig in build_figures(results) if hasattr(fig, "data") for trace in fig.data)


def time_scaling(steps: tuple[int, ...] = (500, 2000)) -> list[tuple[int, int, float]]:
    """(steps, points drawn, figure time) of the default comparison run for each number of steps."""
    rows = []
    for n in steps:
        results, _ = default_comparison(n)
        rows.append((n, points_drawn(results), time_figures(results, repeats=5)))
    return rows


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_until_healthy(url: str) -> None:
    """Until the Streamlit server at ``url`` answers its health check."""
    while True:
        try:
            with urllib.request.urlopen(url + "/_stcore/health", timeout=1) as response:
                if response.read().decode().strip() == "ok":
                    return
        except OSError:
            time.sleep(0.05)


CHART_DRAWN = """(start) => Array.from(document.querySelectorAll('.js-plotly-plot')).some(
    el => el._fullData && String((el.layout.title || {}).text || '').replace(/<[^>]*>/g, ' ').startsWith(start))
    && document.querySelectorAll('[data-stale="true"]').length === 0"""


def time_browser(repeats: int = 5, warm_up: bool = True, first_after: float = 0.0) -> dict[str, float]:
    from playwright.sync_api import sync_playwright

    port = _free_port()
    env = dict(os.environ)
    if not warm_up:
        env["DESCENTLAB_DASHBOARD_WARM_UP"] = "0"  # descentlab.dashboard.launch
    script = Path(sys.executable).parent / "descentlab"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "descentlab"]
    started = time.perf_counter()
    server = subprocess.Popen(
        [*command, "dashboard", "--port", str(port)],
        cwd=str(REPO),
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_healthy(url)
        healthy = time.perf_counter() - started
        time.sleep(first_after)  # a visitor who arrives later than the first health check
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
            tab = browser.new_page(viewport={"width": 1400, "height": 1000})
            tab.set_default_timeout(120_000)
            t0 = time.perf_counter()
            tab.goto(url + "/compare")
            tab.wait_for_selector("text=Compare descent variants")  # the page's title: the script is running
            first_title = time.perf_counter() - t0
            tab.wait_for_function(CHART_DRAWN, arg="Training loss")
            first = time.perf_counter() - t0
            clicks, revisits = [], []
            for _ in range(repeats):
                t0 = time.perf_counter()
                tab.get_by_role("button", name="Run", exact=True).click()
                tab.wait_for_timeout(50)  # let Streamlit mark the old elements stale
                tab.wait_for_function(CHART_DRAWN, arg="Training loss")
                clicks.append(time.perf_counter() - t0)
                tab.get_by_role("link", name="Landscape").click()
                tab.wait_for_function(CHART_DRAWN, arg="Cost surface")
                t0 = time.perf_counter()
                tab.get_by_role("link", name="Compare").click()
                tab.wait_for_function(CHART_DRAWN, arg="Training loss")
                revisits.append(time.perf_counter() - t0)
            browser.close()
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=20)
    return {
        "server healthy after start": healthy,
        "first Compare page, title shown": first_title,
        "first Compare page, charts drawn": first,
        "click Run -> loss chart (median)": statistics.median(clicks),
        "revisit Compare (cached) -> charts (median)": statistics.median(revisits),
    }


FLOOR_APP = """import streamlit as st
st.set_page_config(page_title="descentlab floor", layout="wide")
st.navigation([
    st.Page({compare!r}, title="Compare", url_path="compare", default=True),
    st.Page("widgets_only.py", title="Widgets only", url_path="widgets_only"),
    st.Page("blank.py", title="Blank", url_path="blank"),
]).run()
"""
FLOOR_MARK = "Nothing below the Run button on this page."


def floor_pages(folder: Path) -> Path:
    """A two-page copy of the dashboard for :func:`time_floor`: the Compare page as it is, and the
    same page with everything below its Run button left out (no charts, tables or verdict: only its
    widgets), plus a blank page to switch from. Returns the app file."""
    compare = REPO / "dashboard" / "views" / "1_compare.py"
    text = compare.read_text(encoding="utf-8")
    cut = text.index("run_col, info_col = st.columns")
    (folder / "widgets_only.py").write_text(
        text[:cut] + f"st.button('Run', key='cmp.run')\nst.caption({FLOOR_MARK!r})\n"
    )
    (folder / "blank.py").write_text("import streamlit as st\nst.title('Blank')\n")
    app = folder / "app.py"
    app.write_text(FLOOR_APP.format(compare=str(compare)))
    return app


def time_floor(repeats: int = 5) -> dict[str, float]:
    """Blank page -> Compare (cached results) and blank page -> the Compare page's widgets alone, in
    turn in one browser on one server: what a revisit costs before any chart or table is drawn."""
    import tempfile

    from playwright.sync_api import sync_playwright

    port = _free_port()
    with tempfile.TemporaryDirectory() as folder:
        app = floor_pages(Path(folder))
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "streamlit",
                "run",
                str(app),
                "--server.headless",
                "true",
                "--server.address",
                "127.0.0.1",
                "--server.port",
                str(port),
                "--browser.gatherUsageStats",
                "false",
            ],
            cwd=str(REPO),
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        url = f"http://127.0.0.1:{port}"
        widgets_drawn = f"""() => document.body.innerText.includes({FLOOR_MARK!r})
            && document.querySelectorAll('[data-stale="true"]').length === 0"""
        try:
            _wait_until_healthy(url)
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
                tab = browser.new_page(viewport={"width": 1400, "height": 1000})
                tab.set_default_timeout(120_000)
                tab.goto(url)  # the default page, Compare
                tab.wait_for_function(CHART_DRAWN, arg="Training loss")  # computed once, cached after
                full, floor = [], []
                for _ in range(repeats):
                    for name, wait, times in (
                        ("Compare", lambda: tab.wait_for_function(CHART_DRAWN, arg="Training loss"), full),
                        ("Widgets only", lambda: tab.wait_for_function(widgets_drawn), floor),
                    ):
                        tab.get_by_role("link", name="Blank").click()
                        tab.wait_for_selector("h1:has-text('Blank')")
                        tab.wait_for_function("() => document.querySelectorAll('[data-stale=\"true\"]').length === 0")
                        t0 = time.perf_counter()
                        tab.get_by_role("link", name=name, exact=True).click()
                        tab.wait_for_timeout(30)  # let Streamlit mark the old elements stale
                        wait()
                        times.append(time.perf_counter() - t0)
                browser.close()
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=20)
    return {
        "blank -> Compare (cached) -> charts (median)": statistics.median(full),
        "blank -> the Compare page's widgets alone (median)": statistics.median(floor),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--browser", action="store_true", help="also measure in Debian chromium")
    parser.add_argument("--scaling", action="store_true", help="also time the figures of 500 and 2000 steps")
    parser.add_argument(
        "--floor",
        action="store_true",
        help="also time a revisit of the Compare page against its widgets alone (no charts or tables)",
    )
    parser.add_argument(
        "--first-after",
        type=float,
        default=0.0,
        metavar="S",
        help="open the first page S seconds after the server is up",
    )
    parser.add_argument(
        "--no-warm-up",
        action="store_true",
        help="start the server without its warm-up (DESCENTLAB_DASHBOARD_WARM_UP=0)",
    )
    args = parser.parse_args()
    results, run_time = default_comparison()
    print(f"default comparison: {len(results.runs)} runs computed in {run_time:.2f} s (one process)")
    print(f"Compare page figures built and serialised: {time_figures(results):.3f} s median (target <= 0.15 s)")
    if args.scaling:
        (n0, p0, t0), *rest = time_scaling()
        for n, points, seconds in [(n0, p0, t0), *rest]:
            print(
                f"{n} steps: {points} points drawn, figures {seconds:.3f} s median "
                f"(x{points / p0:.2f} points, x{seconds / t0:.2f} time against {n0} steps)"
            )
    if args.floor:
        for what, seconds in time_floor().items():
            print(f"{what}: {seconds:.2f} s")
    if args.browser:
        for what, seconds in time_browser(warm_up=not args.no_warm_up, first_after=args.first_after).items():
            print(f"{what}: {seconds:.2f} s")


if __name__ == "__main__":
    main()
