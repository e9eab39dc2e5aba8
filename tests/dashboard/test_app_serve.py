"""serve(): the exact streamlit command line, and its exit status passed through."""

import sys
from pathlib import Path

import descentlab.dashboard as dashboard
import importlib

serve_module = importlib.import_module(
    "descentlab.dashboard.serve"
)  # the package re-exports the function under the same name

APP = Path(__file__).resolve().parents[2] / "dashboard" / "app.py"


def test_streamlit_command_is_the_documented_one():
    assert serve_module.streamlit_command("0.0.0.0", 9000, ["--theme.base", "dark"]) == [
        sys.executable,
        "-m",
        "descentlab.dashboard.launch",
        "run",
        str(APP),
        "--server.headless",
        "true",
        "--server.address",
        "0.0.0.0",
        "--server.port",
        "9000",
        "--browser.gatherUsageStats",
        "false",
        "--theme.base",
        "dark",
    ]


def test_serve_is_reexported_and_returns_streamlits_status(monkeypatch, capsys):
    launched = []

    class FakeProcess:
        def __init__(self, command, env=None):  # env: the binding and options for the page (see access.py)
            launched.append(command)

        def wait(self, timeout=None):
            return 3

    monkeypatch.setattr(serve_module.subprocess, "Popen", FakeProcess)
    assert dashboard.serve is serve_module.serve
    assert dashboard.serve(port=8123) == 3
    assert launched == [serve_module.streamlit_command("127.0.0.1", 8123)]
    assert "http://127.0.0.1:8123" in capsys.readouterr().out
