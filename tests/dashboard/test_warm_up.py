"""The dashboard's shared caches: what a rerun or a second session does not build again, and the
warm-up at server start that leaves nothing for the Compare page's first visit to run."""

from __future__ import annotations

import json
import weakref
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

import descentlab.runner as runner
from descentlab import analysis
from descentlab.dashboard import figures as F
from descentlab.dashboard import launch
from descentlab.dashboard import widgets as W
from descentlab.registry import load_registry
from plotly_values import plain_json

APP = Path(__file__).resolve().parents[2] / "dashboard" / "app.py"

SMALL = {
    "steps": 20,
    "seeds": 1,
    "batch_size": 0,
    "eval_every": 5,
    "problem": {"name": "spirals", "samples": 40, "hidden": [4]},
    "rules": [
        {"rule": "gd", "label": "vanilla GD", "learning_rate": 0.5},
        {"rule": "adam", "label": "Adam", "learning_rate": 0.01},
    ],
}


def compare_page(**query) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=120)
    for key, value in query.items():
        at.query_params[key] = json.dumps(value)
    at.switch_page("views/1_compare.py")
    return at.run()


def charts(at) -> list[dict]:
    return [plain_json(json.loads(c.proto.spec)) for c in at.get("plotly_chart")]


class Calls:
    """Counts the calls of the functions it wraps (monkeypatched where the dashboard looks them up)."""

    def __init__(self, monkeypatch):
        self.monkeypatch, self.counts = monkeypatch, {}

    def wrap(self, owner, name: str) -> None:
        original = getattr(owner, name)
        self.counts[name] = 0

        def counted(*args, **kwargs):
            self.counts[name] += 1
            return original(*args, **kwargs)

        self.monkeypatch.setattr(owner, name, counted)

    def reset(self) -> None:
        self.counts = dict.fromkeys(self.counts, 0)


@pytest.fixture
def calls(monkeypatch):
    calls = Calls(monkeypatch)
    calls.wrap(runner, "run_experiment")  # _run_cached imports it from the module at each call
    for name in ("draw_curves", "draw_layer_grad_norms", "summary_table", "status_counts_table", "run_groups"):
        calls.wrap(F, name)
    calls.wrap(analysis, "summarize")
    calls.wrap(analysis, "configuration_table")
    return calls


def test_a_rerun_and_a_second_session_draw_nothing_again(calls):
    W._run_cached.clear()
    at = compare_page(compare=SMALL)
    assert not at.exception and not at.error
    first = dict(calls.counts)
    assert first["run_experiment"] == 1 and first["draw_curves"] >= 4 and first["summarize"] == 1
    drawn = charts(at)
    calls.reset()
    at.run()  # a rerun of the same session (a widget touched, nothing changed)
    assert not at.exception
    assert calls.counts == dict.fromkeys(calls.counts, 0)
    assert charts(at) == drawn
    other = compare_page(compare=SMALL)  # another visitor, same settings: the same cached Results
    assert calls.counts == dict.fromkeys(calls.counts, 0)
    assert charts(other) == drawn


def test_other_settings_are_drawn_from_their_own_results(calls):
    W._run_cached.clear()
    before = charts(compare_page(compare=SMALL))
    calls.reset()
    after = charts(compare_page(compare={**SMALL, "steps": 25}))
    assert calls.counts["run_experiment"] == 1 and calls.counts["draw_curves"] >= 4
    assert len(after) == len(before) and after != before


def results_of(spec: dict):
    registry = load_registry(entry_points=False, use_env=False)
    return W.run_spec(spec, registry, ("test",))


def test_a_view_is_built_once_per_results_object_and_key():
    one, other = results_of(SMALL), results_of({**SMALL, "seeds": 2})
    built = []

    def build(tag):
        built.append(tag)
        return tag

    assert W.results_view(one, "k", lambda: build("one")) == "one"
    assert W.results_view(one, "k", lambda: build("again")) == "one"  # same object, same key: kept
    assert W.results_view(one, "j", lambda: build("j")) == "j"  # another key
    assert W.results_view(other, "k", lambda: build("other")) == "other"  # another Results
    assert built == ["one", "j", "other"]


def test_a_new_results_at_a_freed_ones_id_is_built_anew(monkeypatch):
    """Views are held by id with a weak reference: a Results created where a freed one lived (the
    same id) is not given the freed one's figures."""

    class Freed:
        pass

    freed = Freed()
    dead = weakref.ref(freed)
    del freed
    assert dead() is None
    results = results_of(SMALL)
    monkeypatch.setattr(W, "_VIEWS", {id(results): (dead, {"k": "the freed one's"})})
    assert W.results_view(results, "k", lambda: "its own") == "its own"


def test_at_most_a_bounded_number_of_results_are_held(monkeypatch):
    monkeypatch.setattr(W, "_VIEWS", {})
    monkeypatch.setattr(W, "_VIEWS_RESULTS", 2)
    from dataclasses import replace

    base = results_of(SMALL)
    held = [replace(base) for _ in range(3)]
    for r in held:
        W.results_view(r, "k", lambda: 1)
    assert list(W._VIEWS) == [id(r) for r in held[1:]]  # the oldest is dropped first


def test_the_curves_chosen_are_part_of_a_figures_key():
    results = results_of({**SMALL, "seeds": 1})
    groups = F.run_groups(results)
    both = W.results_figures(results, groups)
    only_first = W.results_figures(results, groups[:1])
    assert only_first["loss"] is not both["loss"]
    assert len(only_first["loss"].data) < len(both["loss"].data)
    assert W.results_figures(results, groups)["loss"] is both["loss"]


def test_warm_up_leaves_nothing_for_the_first_visit_of_the_compare_page(calls):
    """The server's warm-up runs the Compare page's preset under a fresh session's registry key: the
    page's first visit then finds the same Results and figures (nothing trained, nothing drawn)."""
    W._run_cached.clear()
    launch.warm_up()
    assert calls.counts["run_experiment"] == 1 and calls.counts["draw_curves"] >= 4
    calls.reset()
    at = compare_page()
    assert not at.exception and not at.error
    assert calls.counts == dict.fromkeys(calls.counts, 0)
    assert len(charts(at)) >= 4


def test_warm_up_runs_outside_any_session_without_streamlit_elements(capsys):
    results = W.warm_up({"name": "dashboard-compare", **SMALL})
    assert len(results.runs) == 2
    assert "ScriptRunContext" not in capsys.readouterr().err


def test_a_failing_warm_up_is_one_line_and_does_not_raise(monkeypatch, capsys):
    def broken(spec):
        raise RuntimeError("no registry\nsecond line")

    monkeypatch.setattr(W, "warm_up", broken)
    launch.warm_up()
    err = capsys.readouterr().err
    assert err == "descentlab dashboard: warm-up skipped: RuntimeError: no registry\n"


@pytest.mark.parametrize(
    ("value", "enabled"), [(None, True), ("1", True), ("0", False), ("off", False), ("false", False), ("yes", True)]
)
def test_the_warm_up_can_be_turned_off(monkeypatch, value, enabled):
    environ = {} if value is None else {launch.WARM_UP_ENV: value}
    assert launch.warm_up_enabled(environ) is enabled
    started = []
    monkeypatch.setattr(launch, "warm_up", lambda: started.append(1))
    monkeypatch.setattr(launch.os, "environ", environ)
    thread = launch.start_warm_up()
    if thread is not None:
        thread.join()
    assert (thread is not None) is enabled and started == ([1] if enabled else [])


def test_launch_hands_every_argument_to_streamlits_command_line(monkeypatch):
    from streamlit.web import cli

    seen = {}
    monkeypatch.setattr(launch, "start_warm_up", lambda: seen.setdefault("warm", True))
    monkeypatch.setattr(cli, "main", lambda **kwargs: seen.update(kwargs))
    launch.main(["run", "app.py", "--server.port", "9000"])
    assert seen == {"warm": True, "args": ["run", "app.py", "--server.port", "9000"], "prog_name": "streamlit"}


def element_types(at) -> list[str]:
    """Every node of the page's element tree, depth first (the frontend's delta paths)."""
    out: list[str] = []

    def walk(node):
        out.append(type(node).__name__ + ":" + str(getattr(node, "type", "")))
        for child in getattr(node, "children", {}).values():
            walk(child)

    walk(at._tree)
    return out


def test_a_page_has_the_same_elements_however_its_results_were_computed():
    """The progress bar lives in a slot of the page, drawn outside the cached function's recording:
    computed in this session, in another one or by the warm-up, the page has the same elements
    (a replayed bar used to add one only where the run had happened in a session)."""
    spec = {**SMALL, "steps": 21}
    W._run_cached.clear()
    computed = element_types(compare_page(compare=spec))
    hit = element_types(compare_page(compare=spec))
    W._run_cached.clear()
    W.warm_up({"name": "dashboard-compare", **spec})
    warmed = element_types(compare_page(compare=spec))
    assert computed == hit == warmed


def test_the_progress_bar_is_drawn_in_the_page_while_a_run_computes(monkeypatch):
    seen = []
    original = runner.run_experiment

    def slow(experiment, *, progress=None, **kwargs):
        progress(1, 2)
        from streamlit.runtime.scriptrunner import get_script_run_ctx

        seen.append(get_script_run_ctx() is not None)
        return original(experiment, progress=progress, **kwargs)

    monkeypatch.setattr(runner, "run_experiment", slow)
    W._run_cached.clear()
    at = compare_page(compare={**SMALL, "steps": 22})
    assert seen == [True] and not at.exception
    assert not at.get("progress")  # emptied once the run is done


def test_at_most_a_bounded_number_of_views_are_held_per_results(monkeypatch):
    """Each choice of curves on a sweep is another set of figures: the least recently used go first."""
    monkeypatch.setattr(W, "_VIEWS", {})
    monkeypatch.setattr(W, "_VIEWS_KEYS", 3)
    results = results_of(SMALL)
    for key in ("a", "b", "c"):
        W.results_view(results, key, lambda key=key: key)
    W.results_view(results, "a", lambda: "rebuilt")  # used again: now the most recent
    W.results_view(results, "d", lambda: "d")
    assert list(W._VIEWS[id(results)][1]) == ["c", "a", "d"]
    assert W.results_view(results, "b", lambda: "b again") == "b again"  # dropped, so built anew
