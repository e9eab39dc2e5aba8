"""Real browser: `descentlab dashboard --port N`, Debian chromium via playwright, click Run, count traces.

Screenshots land in test-output/browser/ (gitignored); with DESCENTLAB_UPDATE_SCREENSHOTS=1 the
chart screenshots are also copied to docs/screenshots/ for the README.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
OUT = REPO / "test-output" / "browser"
DOCS = REPO / "docs" / "screenshots"
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

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian chromium at /usr/bin/chromium"),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def dashboard_command(port: int) -> list[str]:
    """The README's command, ``descentlab dashboard --port N``, from this interpreter's environment."""
    script = Path(sys.executable).parent / "descentlab"
    base = [str(script)] if script.exists() else [sys.executable, "-m", "descentlab"]
    return [*base, "dashboard", "--port", str(port)]


@pytest.fixture(scope="module")
def saved_results(tmp_path_factory):
    from descentlab.experiment import Experiment
    from descentlab.records import save_results
    from descentlab.registry import load_registry
    from descentlab.runner import run_experiment

    registry = load_registry()
    spec = {
        "name": "browser-moons",
        "steps": 200,
        "seeds": 2,
        "problem": {"name": "moons"},
        "rules": [
            {"rule": "gd", "learning_rate": 0.5},
            {"rule": "momentum", "learning_rate": 0.05},
            {"rule": "adam", "learning_rate": 0.01},
        ],
    }
    results = run_experiment(Experiment.from_dict(spec, registry), registry=registry, workers=1)
    folder = tmp_path_factory.mktemp("results")
    save_results(results, folder)
    return folder


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    port = free_port()
    env = {**os.environ, "DESCENTLAB_NO_ENTRY_POINTS": "1"}
    env.pop("DESCENTLAB_PLUGINS", None)
    OUT.mkdir(parents=True, exist_ok=True)
    log = open(OUT / "server.log", "wb")
    # A session of its own, so that the launcher and the streamlit process it starts stop together.
    # the saved results live in pytest's temporary folder: allowed as a user would (--allow-path)
    command = [*dashboard_command(port), "--allow-path", str(tmp_path_factory.getbasetemp())]
    process = subprocess.Popen(
        command, cwd=str(REPO), env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            if process.poll() is not None:
                raise RuntimeError(f"dashboard exited with {process.returncode}: see {OUT / 'server.log'}")
            try:
                with urllib.request.urlopen(url + "/_stcore/health", timeout=1) as response:
                    if response.read().decode().strip() == "ok":
                        break
            except OSError:
                time.sleep(0.1)
        else:
            raise RuntimeError("dashboard did not become healthy")
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
        log.close()


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:  # one per module: playwright's sync API cannot nest
        launched = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=LAUNCH_ARGS)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def page(server, browser):
    tab = browser.new_page(viewport={"width": 1400, "height": 1000})
    tab.set_default_timeout(90_000)
    yield tab
    tab.close()


# Streamlit's plotly theme wraps titles in <b>…</b>: compare the text without tags.
TITLE_JS = (
    "el => String((el.layout && el.layout.title && el.layout.title.text) || '')"
    ".replace(/<br>/g, ' ').replace(/<[^>]*>/g, '')"
)
JS_CHARTS = (
    """() => Array.from(document.querySelectorAll('.js-plotly-plot')).map(el => ({
    title: ("""
    + TITLE_JS
    + """)(el),
    traces: (el._fullData || []).map(t => ({name: t.name, meta: t.meta, n: (t.x || []).length}))}))"""
)


def chart_locator(tab, title_start: str):
    """The plotly element whose title starts with ``title_start`` (waits until it is drawn)."""
    tab.wait_for_function(
        """(start) => Array.from(document.querySelectorAll('.js-plotly-plot')).some(
               el => el._fullData && ("""
        + TITLE_JS
        + """)(el).startsWith(start))""",
        arg=title_start,
    )
    charts = tab.locator(".js-plotly-plot")
    for i in range(charts.count()):
        title = charts.nth(i).evaluate(TITLE_JS)
        if title.startswith(title_start):
            return charts.nth(i)
    raise AssertionError(f"no chart titled {title_start!r}")


def shoot(locator, name: str) -> Path:
    locator.scroll_into_view_if_needed()
    path = OUT / f"{name}.png"
    locator.screenshot(path=str(path))
    assert path.stat().st_size > 5_000
    if os.environ.get("DESCENTLAB_UPDATE_SCREENSHOTS"):
        DOCS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, DOCS / path.name)
    return path


def test_a_deep_link_on_a_fresh_server_runs_through_app_py(page, server):
    # First visit of this server: were the folder named pages/, Streamlit would run the page file alone.
    page.goto(server + "/landscape")
    chart_locator(page, "Cost surface")
    page.get_by_role("link", name="Learning-rate sweep").wait_for()  # titles from app.py's st.navigation
    assert page.get_by_role("link", name="app").count() == 0


def test_compare_page_run_draws_one_loss_trace_per_rule(page, server):
    page.goto(server + "/compare")
    chart_locator(page, "Training loss")
    page.get_by_role("button", name="Run", exact=True).click()
    loss = chart_locator(page, "Training loss")
    page.wait_for_timeout(500)
    traces = loss.evaluate("el => el._fullData.map(t => ({name: t.name, meta: t.meta}))")
    train = [t["name"] for t in traces if t["meta"] == "train"]
    assert train == ["vanilla GD", "momentum", "Adam"]
    page.screenshot(path=str(OUT / "compare-page.png"))
    if os.environ.get("DESCENTLAB_UPDATE_SCREENSHOTS"):  # the page shots are in the docs too
        shutil.copyfile(OUT / "compare-page.png", DOCS / "compare-page.png")
    shoot(loss, "compare-loss")
    shoot(chart_locator(page, "Per-layer gradient norms"), "compare-layers")
    shoot(chart_locator(page, "Step size"), "compare-step-size")
    # Navigation through the sidebar keeps the session: back on Compare the same runs come from the cache.
    page.get_by_role("link", name="Landscape").click()
    chart_locator(page, "Cost surface")
    page.get_by_role("link", name="Compare").click()
    loss = chart_locator(page, "Training loss")
    assert [
        t["name"]
        for t in loss.evaluate("el => el._fullData.map(t => ({name: t.name, meta: t.meta}))")
        if t["meta"] == "train"
    ] == ["vanilla GD", "momentum", "Adam"]


def test_every_page_renders_and_is_screenshotted(page, server, saved_results):
    page.goto(server + "/sweep")
    shoot(chart_locator(page, "Learning-rate sweep"), "sweep")
    shoot(chart_locator(page, "Loss over step"), "sweep-heatmap")
    page.goto(server + "/landscape")
    surface = chart_locator(page, "Cost surface")
    # equal scale: pixels per unit of the parameter are the same on both axes
    x_scale, y_scale = surface.evaluate("""el => [el._fullLayout.xaxis, el._fullLayout.yaxis].map(
        a => a._length / Math.abs(a.range[1] - a.range[0]))""")
    assert x_scale == pytest.approx(y_scale, rel=0.01)
    shoot(surface, "landscape")
    shoot(chart_locator(page, "Cost along"), "landscape-1d")
    page.goto(server + "/decision_boundary")
    shoot(chart_locator(page, "Decision boundary"), "decision-boundary")
    page.goto(server + f"/results?folder={saved_results}")
    chart_locator(page, "Training loss")
    page.screenshot(path=str(OUT / "results-page.png"))
    if os.environ.get("DESCENTLAB_UPDATE_SCREENSHOTS"):
        shutil.copyfile(OUT / "results-page.png", DOCS / "results-page.png")
    page.goto(server + "/plugins")
    page.get_by_text("Descent rules").first.wait_for()
    page.screenshot(path=str(OUT / "plugins-page.png"))
    charts = page.evaluate(JS_CHARTS)
    assert charts == []  # the plugins page has no charts, and no error either
    assert page.locator("[data-testid='stException']").count() == 0


# The lesson page's stages, as a teacher clicks them; each must fit a 1280x800 projector screen.
LESSON_STAGES = (
    ("1 · Forward", "1 · Forward", "forward"),
    ("2 · Cost", "2 · Cost", "cost"),
    ("3 · Backprop", "3 · Backprop", "backprop-output"),
    ("3 · Backprop", "3 · Backprop: δ = ∂J/∂z, reached layer 1", "backprop-first-layer"),
    ("4 · Descent", "4 · Gradient descent", "descent"),
    ("5 · Next step ▶", "1 · Forward", "next-step"),
)
JS_LAYOUT = """() => {
    const main = document.querySelector('[data-testid="stMain"]');
    const chart = Array.from(document.querySelectorAll('[data-testid="stMain"] .js-plotly-plot'))[0];
    const blocks = Array.from(document.querySelectorAll(
            '[data-testid="stMainBlockContainer"] [data-testid="stMarkdownContainer"]'))
        .filter(e => e.offsetParent !== null && e.closest('[data-testid="stExpander"]') === null);
    // how much of a formula runs past the width it is given (KaTeX clips it from view)
    const formulas = Array.from(document.querySelectorAll('[data-testid="stMain"] .katex-display'))
        .filter(e => e.offsetParent !== null).map(e => e.scrollWidth - e.clientWidth);
    return {width: document.documentElement.scrollWidth,
            formula_overrun: Math.max(0, ...formulas),
            chart_bottom: chart.getBoundingClientRect().bottom,
            text_bottom: Math.max(...blocks.map(e => e.getBoundingClientRect().bottom)),
            scrolled: main ? main.scrollTop : 0};
}"""


@pytest.mark.parametrize("width,height", [(1280, 800), (414, 896)])
def test_lesson_page_steps_through_both_halves_and_fits_the_screen(server, browser, width, height):
    tab = browser.new_page(viewport={"width": width, "height": height})
    tab.set_default_timeout(90_000)
    tab.goto(server + "/")
    chart_locator(tab, "1 · Forward")
    for button, title, shot in LESSON_STAGES:
        tab.get_by_role("button", name=button, exact=True).click()
        tab.wait_for_function(
            "(start) => Array.from(document.querySelectorAll('.js-plotly-plot')).some("
            "el => (" + TITLE_JS + ")(el).startsWith(start))",
            arg=title,
        )
        tab.wait_for_timeout(300)
        layout = tab.evaluate(JS_LAYOUT)
        assert layout["width"] <= width, layout  # never a sideways scroll
        assert layout["formula_overrun"] <= 3, (button, layout)  # every formula shown whole (to a glyph's overhang)
        if width >= 1280:  # the whole stage on one screen
            assert layout["chart_bottom"] <= height and layout["text_bottom"] <= height, (button, layout)
        screen(tab, f"lesson-{shot}" + ("" if width >= 1280 else f"-{width}px"), docs=width >= 1280)
    assert tab.locator("[data-testid='stException']").count() == 0
    # the loss so far has grown by the step taken
    assert tab.evaluate(
        "() => Array.from(document.querySelectorAll('.js-plotly-plot')).some("
        "el => (" + TITLE_JS + ")(el) === 'loss so far')"
    )
    if width >= 1280:
        # clicking a weight's dot on the diagram selects it: its chain rule and its check are shown
        # (A click that lands while Streamlit is still redrawing is lost, as it would be for a
        # person: wait for the page to settle, and click again if the selection did not show.)
        for attempt in range(3):
            tab.wait_for_function("() => document.querySelectorAll('[data-stale=\"true\"]').length === 0")
            x, y, index = tab.evaluate("""() => {
                const el = document.querySelector('[data-testid="stMain"] .js-plotly-plot');
                const dots = el._fullData.find(d => d.name === 'weights'), L = el._fullLayout;
                const box = el.getBoundingClientRect(), k = dots.x.length - 2;
                return [box.left + L.xaxis._offset + L.xaxis.l2p(dots.x[k]),
                        box.top + L.yaxis._offset + L.yaxis.l2p(dots.y[k]), dots.customdata[k]]; }""")
            assert index == 10  # W2[1,0] of the 2-3-1 network
            tab.mouse.move(x, y)
            tab.mouse.click(x, y)
            try:
                tab.get_by_text("∂J/∂W2[1,0] over the batch").first.wait_for(timeout=30_000)
                break
            except Exception as error:  # playwright's TimeoutError; the module is imported lazily
                if attempt == 2 or "Timeout" not in type(error).__name__:
                    raise
        tab.get_by_text("The learning rate, felt", exact=True).click()
        chart_locator(tab, "glide")
        slider = tab.locator("[data-testid='stMain'] [data-testid='stSlider'] input[type='range']")
        slider.wait_for(state="attached")  # the sidebar has sliders too: the page's own is in stMain
        screen(tab, "lesson-learning-rate-felt", docs=True)
        # the regimes' thresholds are drawn on the slider: α's pointer on the bar sits under the thumb,
        # in the middle and at both ends of the slider (so every threshold sits under its position)
        for key in (None, "End", "Home"):
            if key:
                slider.press(key)
                tab.wait_for_function(JS_POINTER_AT_END, arg=1 if key == "End" else 0)
            thumb, pointer = tab.evaluate(JS_THUMB_AND_POINTER)
            assert abs(thumb - pointer) <= 3, (key, thumb, pointer)
        assert tab.evaluate(JS_MAIN_BOTTOM) <= height  # the whole view on one screen
        tab.get_by_text("Predict, then run", exact=True).click()
        tab.get_by_role("button", name="run the sweep").click()
        tab.get_by_text("theory 2/λₘₐₓ").first.wait_for()
        tab.wait_for_timeout(500)
        screen(tab, "lesson-predict-then-run", docs=True)
        assert tab.evaluate(JS_MAIN_BOTTOM) <= height
        # the lesson plan's minute 6: Adam's step beside GD's, from the same gradient, still on one screen
        tab.get_by_text("One step, both halves", exact=True).click()
        tab.locator("[data-testid='stSidebar'] [data-testid='stSelectbox']").filter(has_text="descent rule").click()
        tab.keyboard.type("adam")
        tab.keyboard.press("Enter")
        tab.get_by_role("button", name="4 · Descent", exact=True).click()
        tab.get_by_text("Same gradient, two steps").first.wait_for()
        tab.wait_for_function("() => document.querySelectorAll('[data-stale=\"true\"]').length === 0")
        layout = tab.evaluate(JS_LAYOUT)
        assert layout["chart_bottom"] <= height and layout["text_bottom"] <= height, ("adam", layout)
        assert layout["formula_overrun"] <= 3, ("adam", layout)
        screen(tab, "lesson-descent-adam", docs=False)
        assert tab.locator("[data-testid='stException']").count() == 0
    tab.close()


# the lowest edge of anything shown in the page's main area (expanders left closed count as their header)
JS_MAIN_BOTTOM = """() => Math.max(...Array.from(
    document.querySelectorAll('[data-testid="stMain"] [data-testid="stElementContainer"]'))
    .filter(e => e.offsetParent !== null && e.getBoundingClientRect().height > 0)
    .map(e => e.getBoundingClientRect().bottom))"""
JS_THUMB_AND_POINTER = """() => {
    const main = document.querySelector('[data-testid="stMain"]');
    const input = main.querySelector('[data-testid="stSlider"] input[type="range"]');
    const thumb = input.parentElement.parentElement.getBoundingClientRect();
    const bar = Array.from(main.querySelectorAll('.js-plotly-plot')).find(
        el => el._fullData.some(t => t.type === 'bar'));
    const L = bar._fullLayout, box = bar.getBoundingClientRect();
    return [thumb.left + thumb.width / 2, box.left + L.xaxis._offset + L.xaxis.l2p(L.shapes[0].x0)]; }"""
# the page has redrawn the bar for the slider's new α: its pointer is at the end of the bar's axis
JS_POINTER_AT_END = """(end) => {
    const main = document.querySelector('[data-testid="stMain"]');
    const bar = Array.from(main.querySelectorAll('.js-plotly-plot')).find(
        el => el._fullData && el._fullData.some(t => t.type === 'bar'));
    if (!bar) return false;
    const L = bar._fullLayout, x = L.shapes[0].x0, target = L.xaxis.range[end];
    return Math.abs(x - target) <= 1e-9 * Math.abs(target); }"""


def screen(tab, name: str, *, docs: bool) -> None:
    """A full-window screenshot in test-output/browser/ (and docs/screenshots/ when updating them).

    Waits until Streamlit has replaced every element of the previous run (it keeps them, greyed
    out and marked data-stale, while the new run draws).
    """
    tab.wait_for_function("() => document.querySelectorAll('[data-stale=\"true\"]').length === 0")
    tab.wait_for_timeout(300)
    tab.screenshot(path=str(OUT / f"{name}.png"))
    if docs and os.environ.get("DESCENTLAB_UPDATE_SCREENSHOTS"):
        shutil.copyfile(OUT / f"{name}.png", DOCS / f"{name}.png")


JS_TITLES_AND_TOOLBARS = """() => Array.from(
    document.querySelectorAll('[data-testid="stMain"] .js-plotly-plot')).map(el => {
    const box = r => r && {left: r.left, right: r.right, top: r.top, bottom: r.bottom};
    const title = el.querySelector('.gtitle'), bar = el.querySelector('.modebar');
    return {title: title ? title.textContent : '', chart: box(el.getBoundingClientRect()),
            text: box(title && title.getBoundingClientRect()), bar: box(bar && bar.getBoundingClientRect())}; })"""


def _overlap(a, b) -> bool:
    return (
        bool(a and b)
        and a["left"] < b["right"]
        and b["left"] < a["right"]
        and a["top"] < b["bottom"]
        and b["top"] < a["bottom"]
    )


@pytest.mark.parametrize(
    "path,title",
    [("/compare", "Training loss"), ("/sweep", "Learning-rate sweep"), ("/stability", ""), ("/lr_find", "")],
)
def test_the_toolbar_never_covers_a_chart_title_on_a_phone(server, browser, path, title):
    tab = browser.new_page(viewport={"width": 414, "height": 896})
    tab.set_default_timeout(90_000)
    tab.goto(server + path)
    chart_locator(tab, title)
    tab.wait_for_timeout(500)
    charts = tab.evaluate(JS_TITLES_AND_TOOLBARS)
    assert charts
    for chart in charts:
        if chart["text"]:  # the title fits the screen, beside the toolbar
            assert (
                chart["text"]["right"] <= chart["chart"]["right"] and chart["text"]["top"] >= chart["chart"]["top"] - 4
            ), chart
        if chart["bar"] and chart["text"]:
            assert not _overlap(chart["bar"], chart["text"]), chart
    tab.close()
