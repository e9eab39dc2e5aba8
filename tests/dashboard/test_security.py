"""Issue #11, security: what a visitor of the dashboard can make it run or read.

1. plugin files load only on loopback or with --allow-plugin-files; a public binding warns;
2. data files and result folders come from allowed roots only (symlinks and .. resolved);
3. labels from a link or a results folder (and plugin strings) are shown as text, never as Markdown.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import textwrap
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from descentlab import cli
from descentlab.dashboard import access
from descentlab.errors import SpecError
from descentlab.records import save_results
from descentlab.registry import load_registry
from apptest_helpers import shown

serve_module = importlib.import_module("descentlab.dashboard.serve")
APP = Path(__file__).resolve().parents[2] / "dashboard" / "app.py"
EVIL = "![x](http://evil.example/p.png) <img src=x onerror=alert(1)> **bold**"
SECRET = "root:x:0:0:TOP-SECRET-FIRST-LINE"

SMALL = {
    "steps": 10,
    "seeds": 1,
    "batch_size": 0,
    "eval_every": 5,
    "problem": {"name": "spirals", "samples": 30, "hidden": [4]},
    "rules": [{"rule": "gd", "label": "vanilla GD", "learning_rate": 0.5}],
}


def open_app(page: str, **query) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=120)
    for key, value in query.items():
        at.query_params[key] = value if isinstance(value, str) else json.dumps(value)
    at.switch_page(f"views/{page}")
    return at.run()


def markdown_bodies(at) -> list[tuple[str, str]]:
    """(element type, text) of everything on the page that Streamlit renders as Markdown: markdown,
    captions, alerts, expander and tab labels. Code, text, tables and JSON are shown as they are."""
    out = []

    def walk(node):
        kind = type(node).__name__
        proto = getattr(node, "proto", None)
        if proto is not None and kind not in ("Code", "Text", "Json", "Dataframe", "UnknownElement"):
            for field in ("body", "label"):
                value = getattr(proto, field, None)
                if isinstance(value, str) and value:
                    out.append((kind, value))
        children = getattr(node, "children", None)
        for child in children.values() if isinstance(children, dict) else children or []:
            walk(child)

    walk(at._tree)
    return out


def assert_no_markup_from(at, needle: str = "evil.example") -> None:
    bodies = markdown_bodies(at)
    assert any(needle in text for _, text in bodies), "the label should be on the page, as text"
    for kind, text in bodies:
        assert not re.search(r"(?<!\\)\]\(", text), f"unescaped '](' in a {kind}: {text!r}"
        assert not re.search(r"(?<!\\)<img", text), f"raw '<img' in a {kind}: {text!r}"
        assert not re.search(r"(?<!\\)\*\*bold", text), f"unescaped '**' before a label in a {kind}: {text!r}"


# ---- 1. plugin files: loopback, or --allow-plugin-files --------------------------------------------


@pytest.mark.parametrize(
    "host, loopback",
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.5", False),
        ("example.org", False),
        ("", False),
    ],
)
def test_which_addresses_are_loopback(host, loopback):
    assert access.is_loopback(host) is loopback


def test_plugin_files_are_off_on_a_public_binding_unless_allowed():
    assert access.plugin_files_allowed({}, None) == (True, "")  # unknown binding: not public
    assert access.plugin_files_allowed({}, "127.0.0.1")[0] is True
    assert access.plugin_files_allowed({"DESCENTLAB_BINDING": "loopback"}, None)[0] is True
    off, why = access.plugin_files_allowed({"DESCENTLAB_BINDING": "public", "DESCENTLAB_HOST": "0.0.0.0"}, None)
    assert off is False and "0.0.0.0" in why
    assert access.plugin_files_allowed({}, "0.0.0.0")[0] is False  # `streamlit run --server.address`
    # serve.py says loopback but Streamlit was told otherwise: the address wins
    assert access.plugin_files_allowed({"DESCENTLAB_BINDING": "loopback"}, "10.0.0.1")[0] is False
    public = {"DESCENTLAB_BINDING": "public", "DESCENTLAB_ALLOW_PLUGIN_FILES": "1"}
    assert access.plugin_files_allowed(public, "0.0.0.0") == (True, "")


def test_streamlit_server_address_option_is_read(monkeypatch):
    from streamlit import config

    monkeypatch.setattr(config, "get_option", lambda name: "0.0.0.0" if name == "server.address" else None)
    assert access.server_address() == "0.0.0.0"
    assert access.plugin_files_allowed({})[0] is False


def test_public_plugins_page_shows_no_path_input_and_says_how_to_enable(monkeypatch):
    monkeypatch.setenv("DESCENTLAB_BINDING", "public")
    monkeypatch.setenv("DESCENTLAB_HOST", "0.0.0.0")
    monkeypatch.delenv("DESCENTLAB_ALLOW_PLUGIN_FILES", raising=False)
    at = open_app("6_plugins.py")
    assert not at.exception
    assert not [t for t in at.text_input if t.key == "plug.path"]
    assert not [b for b in at.button if b.key == "plug.load"]
    lines = [i.value for i in at.info if "plugin files is off" in i.value]
    assert len(lines) == 1 and "\n" not in lines[0]
    assert "0.0.0.0" in lines[0] and "--allow-plugin-files" in lines[0]
    assert any("adam" in e.label for e in at.expander)  # the listing still works


def test_streamlit_run_on_a_public_address_turns_plugin_files_off(monkeypatch):
    monkeypatch.delenv("DESCENTLAB_BINDING", raising=False)
    monkeypatch.setattr(access, "server_address", lambda: "0.0.0.0")
    at = open_app("6_plugins.py")
    assert not at.exception
    assert not [t for t in at.text_input if t.key == "plug.path"]


def test_allow_plugin_files_brings_the_path_input_back(monkeypatch):
    monkeypatch.setenv("DESCENTLAB_BINDING", "public")
    monkeypatch.setenv("DESCENTLAB_ALLOW_PLUGIN_FILES", "1")
    at = open_app("6_plugins.py")
    assert not at.exception
    assert at.text_input(key="plug.path") is not None


def test_add_plugin_path_refuses_when_off(monkeypatch, tmp_path):
    from descentlab.dashboard import widgets as W

    monkeypatch.setenv("DESCENTLAB_BINDING", "public")
    monkeypatch.delenv("DESCENTLAB_ALLOW_PLUGIN_FILES", raising=False)
    ran = tmp_path / "ran"
    plugin = tmp_path / "evil_plugin.py"
    plugin.write_text(f"open({str(ran)!r}, 'w').write('x')\n")
    with pytest.raises(PermissionError, match="--allow-plugin-files"):
        W.add_plugin_path(str(plugin))
    assert not ran.exists()


class FakeProcess:
    launched: list = []

    def __init__(self, command, env=None):
        FakeProcess.launched.append((command, env))

    def wait(self, timeout=None):
        return 0


def test_public_binding_warns_on_stderr_in_one_line(monkeypatch, capsys):
    FakeProcess.launched = []
    monkeypatch.setattr(serve_module.subprocess, "Popen", FakeProcess)
    assert serve_module.serve("0.0.0.0", 8600) == 0
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1
    assert "0.0.0.0" in lines[0] and "anyone who can reach it can run experiments" in lines[0]
    assert "plugin files is off" in lines[0]
    command, env = FakeProcess.launched[0]
    assert env["DESCENTLAB_BINDING"] == "public" and env["DESCENTLAB_ALLOW_PLUGIN_FILES"] == "0"

    assert serve_module.serve("0.0.0.0", 8600, allow_plugin_files=True) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "CAN be loaded" in err[0]
    assert FakeProcess.launched[1][1]["DESCENTLAB_ALLOW_PLUGIN_FILES"] == "1"


def test_an_empty_host_is_warned_about_as_every_address():
    # --host "" listens on every interface; the line read "listening on , not loopback"
    line = access.binding_warning("", False)
    assert line is not None and "listening on every address, not loopback" in line


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1"])
def test_loopback_binding_prints_no_warning(monkeypatch, capsys, host):
    FakeProcess.launched = []
    monkeypatch.setattr(serve_module.subprocess, "Popen", FakeProcess)
    serve_module.serve(host, 8600)
    assert capsys.readouterr().err == ""
    assert FakeProcess.launched[0][1]["DESCENTLAB_BINDING"] == "loopback"


def test_cli_passes_allow_plugin_files_and_allow_paths_to_serve(monkeypatch, tmp_path):
    import descentlab.dashboard as dashboard

    calls = []
    monkeypatch.setattr(dashboard, "serve", lambda **kwargs: calls.append(kwargs) or 0)
    one, two = tmp_path / "one", tmp_path / "two"
    assert (
        cli.main(
            [
                "dashboard",
                "--host",
                "0.0.0.0",
                "--allow-plugin-files",
                "--allow-path",
                str(one),
                "--allow-path",
                str(two),
            ]
        )
        == 0
    )
    assert calls == [{"host": "0.0.0.0", "port": 8501, "allow_plugin_files": True, "allow_paths": [str(one), str(two)]}]
    calls.clear()
    assert cli.main(["dashboard"]) == 0
    assert calls[0]["allow_plugin_files"] is False and calls[0]["allow_paths"] == []


def test_allow_path_must_be_a_folder_and_reaches_streamlit(monkeypatch, tmp_path, capsys):
    FakeProcess.launched = []
    monkeypatch.setattr(serve_module.subprocess, "Popen", FakeProcess)
    with pytest.raises(SpecError, match="--allow-path"):
        serve_module.serve("127.0.0.1", 8600, allow_paths=[str(tmp_path / "missing")])
    assert FakeProcess.launched == []
    serve_module.serve("127.0.0.1", 8600, allow_paths=[str(tmp_path)])
    assert FakeProcess.launched[0][1]["DESCENTLAB_ALLOW_PATHS"] == str(tmp_path.resolve())


# ---- 2. data files and results folders under allowed roots -----------------------------------------


@pytest.fixture
def roots(tmp_path, monkeypatch):
    """An allowed folder and, beside it, a secret one outside every allowed root."""
    allowed, secret = tmp_path / "allowed", tmp_path / "secret"
    allowed.mkdir()
    secret.mkdir()
    (secret / "passwd.csv").write_text(SECRET + "\nsecond line\n")
    monkeypatch.setenv("DESCENTLAB_ALLOW_PATHS", str(allowed))
    monkeypatch.delenv("DESCENTLAB_RESULTS", raising=False)
    return allowed, secret


def test_check_path_resolves_symlinks_and_dotdot(roots):
    allowed, secret = roots
    (allowed / "data.csv").write_text("a,y\n1,2\n")
    assert access.check_path("problem.path", allowed / "data.csv") == (allowed / "data.csv").resolve()
    link = allowed / "link.csv"
    link.symlink_to(secret / "passwd.csv")
    for value in (secret / "passwd.csv", link, f"{allowed}/../secret/passwd.csv", "/etc/passwd"):
        with pytest.raises(SpecError) as caught:
            access.check_path("problem.path", value)
        message = str(caught.value)
        assert message.startswith("problem.path: got ") and str(value) in message
        assert str(allowed.resolve()) in message and os.getcwd() in message and "\n" not in message


def csv_link(path) -> dict:
    return {**SMALL, "problem": {"name": "csv", "path": str(path), "target": "y", "hidden": [4]}}


@pytest.mark.parametrize("where", ["outside", "symlink", "dotdot", "etc"])
def test_a_shared_link_cannot_read_a_file_outside_the_allowed_roots(roots, where):
    allowed, secret = roots
    (allowed / "link.csv").symlink_to(secret / "passwd.csv")
    path = {
        "outside": secret / "passwd.csv",
        "symlink": allowed / "link.csv",
        "dotdot": f"{allowed}/../secret/passwd.csv",
        "etc": "/etc/passwd",
    }[where]
    at = open_app("1_compare.py", compare=csv_link(path))
    assert not at.exception
    everything = " ".join(text for _, text in markdown_bodies(at))
    assert SECRET not in everything and "root:x" not in everything
    errors = [shown(e.value) for e in at.error if "problem.path" in shown(e.value)]
    assert len(errors) == 1 and "allowed root" in errors[0]
    assert str(allowed.resolve()) in errors[0] and str(path) in errors[0]


def test_a_csv_under_an_allowed_root_still_runs(roots):
    allowed, _ = roots
    rows = ["a,b,y"] + [f"{i},{i % 3},{(i * 7) % 5}" for i in range(30)]
    (allowed / "data.csv").write_text("\n".join(rows) + "\n")
    at = open_app("1_compare.py", compare=csv_link(allowed / "data.csv"))
    assert not at.exception
    assert not at.error, [e.value for e in at.error]
    assert at.get("plotly_chart")


def test_the_cli_still_reads_any_path_the_user_gives(roots):
    _, secret = roots
    rows = ["a,y"] + [f"{i},{i}" for i in range(10)]
    (secret / "mine.csv").write_text("\n".join(rows) + "\n")
    problem = load_registry().problem("csv")
    settings = {h.name: h.default for h in problem.settings}
    instance = problem.build({**settings, "path": str(secret / "mine.csv"), "target": "y"})
    assert instance.dataset.x_train.shape[1] == 1


def test_a_results_folder_in_a_saved_experiment_is_checked_too(roots):
    from descentlab.dashboard import access as A

    _, secret = roots
    with pytest.raises(SpecError, match="problem.path"):
        A.check_problem_paths("csv", {"path": str(secret / "passwd.csv")}, load_registry())
    A.check_problem_paths("spirals", {}, load_registry())  # no file settings: nothing to check


FILE_READING_PROBLEM = textwrap.dedent("""
    from descentlab import HyperParam, Problem, hookimpl

    def build(settings):
        raise RuntimeError("never built in this test")

    @hookimpl
    def register_problems(register):
        register(Problem("table_reader", build, (
            HyperParam("source", "", kind="str", help="a file the problem reads"),
            HyperParam("mode", "fast", kind="str", help="a plain word"),
        )))
""")


@pytest.mark.parametrize("setting", ["source", "mode"])
def test_a_plugin_problems_text_setting_holding_a_path_is_checked_whatever_its_name(roots, tmp_path, setting):
    # a plugin problem may read a file from a setting not named like a path ("source", "data", ...):
    # any text setting whose value looks like a path must lie under an allowed root too
    allowed, secret = roots
    plugin = tmp_path / "reader.py"
    plugin.write_text(FILE_READING_PROBLEM)
    registry = load_registry([plugin])
    assert not registry.errors, registry.errors
    for value in (str(secret / "passwd.csv"), "/etc/passwd", f"{allowed}/../secret/passwd.csv", "~/.ssh/id_rsa"):
        with pytest.raises(SpecError) as caught:
            access.check_problem_paths("table_reader", {setting: value}, registry)
        assert str(caught.value).startswith(f"problem.{setting}: got ") and "allowed root" in str(caught.value)
    (allowed / "table.csv").write_text("a,y\n1,2\n")
    access.check_problem_paths("table_reader", {setting: str(allowed / "table.csv")}, registry)
    access.check_problem_paths("table_reader", {setting: "fast"}, registry)  # a word, not a path: as before


def saved(folder: Path, label: str = "vanilla GD", name: str = "saved"):
    from descentlab.experiment import Experiment
    from descentlab.runner import run_experiment

    registry = load_registry()
    spec = {
        **SMALL,
        "rules": [
            {"rule": "gd", "label": label, "learning_rate": 0.5},
            {"rule": "gd", "label": label + " fast", "learning_rate": 1e6},
        ],
    }
    experiment = Experiment.from_dict({**spec, "name": name}, registry)
    return save_results(run_experiment(experiment, registry=registry, workers=1), folder)


def test_results_page_refuses_a_folder_outside_the_allowed_roots(roots):
    _, secret = roots
    saved(secret)
    at = open_app("5_results.py", folder=str(secret))
    assert not at.exception
    assert not [s for s in at.selectbox if s.key == "res.pick"]  # nothing listed, nothing opened
    errors = [shown(e.value) for e in at.error]
    assert len(errors) == 1 and errors[0].startswith("folder: got") and "allowed root" in errors[0]
    assert str(secret) in errors[0]


def test_results_page_leaves_out_a_symlink_to_an_outside_folder(roots):
    allowed, secret = roots
    inside = saved(allowed, name="inside")
    outside = saved(secret, name="outside")
    (allowed / "sneaky").symlink_to(outside)
    at = open_app("5_results.py", folder=str(allowed))
    assert not at.exception
    assert at.selectbox(key="res.pick").options == [inside.name]


# ---- 3. labels are text ----------------------------------------------------------------------------


def test_a_shared_links_labels_are_not_markdown():
    spec = {
        **SMALL,
        "rules": [
            {"rule": "gd", "label": EVIL, "learning_rate": 0.5},
            {"rule": "gd", "label": EVIL + " fast", "learning_rate": 1e6},
        ],
    }  # diverges: a note
    at = open_app("1_compare.py", compare=spec)
    assert not at.exception
    assert at.warning, "the diverged run's note should be shown"
    assert_no_markup_from(at)


def test_a_results_folders_labels_are_not_markdown(roots):
    allowed, _ = roots
    saved(allowed, label=EVIL)
    at = open_app("5_results.py", folder=str(allowed))
    assert not at.exception
    assert_no_markup_from(at)


EVIL_PLUGIN = textwrap.dedent(f"""
    from typing import NamedTuple
    import numpy as np
    from descentlab import DescentRule, hookimpl

    class State(NamedTuple):
        count: np.ndarray

    def init(params, hyper):
        return State(np.zeros((params.shape[0], 1)))

    def update(grad, state, params, learning_rate, hyper, step):
        return -learning_rate * grad, State(state.count + 1)

    @hookimpl
    def register_optimizers(register):
        register(DescentRule("evil_rule", init, update, summary={EVIL!r}, formula={EVIL!r}))
""")


def test_plugin_strings_are_not_markdown(tmp_path, monkeypatch):
    plugin = tmp_path / "evil_plugin.py"
    plugin.write_text(EVIL_PLUGIN)
    monkeypatch.setenv("DESCENTLAB_PLUGINS", str(plugin))
    at = open_app("6_plugins.py")
    assert not at.exception
    assert_no_markup_from(at)
    spec = {**SMALL, "rules": [{"rule": "evil_rule", "learning_rate": 0.1}]}
    at = open_app("1_compare.py", compare=spec)
    assert not at.exception
    assert_no_markup_from(at)


@pytest.mark.parametrize(
    "value, why",
    [
        ("[" * 5000 + "]" * 5000, "not valid JSON"),  # json.loads raised RecursionError: a page exception
        ("{not json", "not valid JSON"),
        ("[1, 2]", "not a JSON object"),
        (json.dumps({**SMALL, "name": "x" * 200_000}), "characters long"),
    ],
)
def test_a_broken_shared_link_is_one_warning_and_the_page_opens_on_its_defaults(value, why):
    at = open_app("1_compare.py", compare=value)
    assert not at.exception, [e.value for e in at.exception]
    warnings = [shown(w.value) for w in at.warning if "compare" in shown(w.value)]
    assert len(warnings) == 1 and why in warnings[0], [w.value for w in at.warning]
    assert at.get("plotly_chart")  # the defaults ran
