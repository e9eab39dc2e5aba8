"""serve(): the exact streamlit command line, and its exit status passed through."""

import importlib
import socket
import sys
from pathlib import Path

import pytest

import descentlab.dashboard as dashboard
from descentlab import cli

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


# ---- an address the server cannot listen on: one line naming --host or --port, exit 2 --------------


class NeverStarted:
    def __init__(self, *args, **kwargs):
        raise AssertionError("streamlit must not be started for an address it cannot listen on")


def one_error_line(capsys) -> str:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in captured.err, captured.err
    assert captured.out == ""  # not even the address line: nothing is served
    return lines[0]


@pytest.mark.parametrize(
    "host",
    [
        "bad host!!",  # not a name at all: Streamlit's socket.gaierror traceback before
        "no-such-host.invalid",  # RFC 2606: never resolves
        "999.1.1.1",
        "192.0.2.1",  # RFC 5737 TEST-NET-1: a valid address, but of no interface of this machine
    ],
)
def test_a_host_the_server_cannot_listen_on_is_one_line_exit_2(monkeypatch, capsys, host):
    monkeypatch.setattr(serve_module.subprocess, "Popen", NeverStarted)
    assert cli.main(["dashboard", "--host", host, "--port", "8600"]) == 2
    line = one_error_line(capsys)
    assert line.startswith(f"descentlab: error: --host: got {host!r}; expected an address or name of this machine")


def test_a_port_in_use_is_one_line_exit_2(monkeypatch, capsys):
    monkeypatch.setattr(serve_module.subprocess, "Popen", NeverStarted)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert cli.main(["dashboard", "--port", str(port)]) == 2
    line = one_error_line(capsys)
    assert line.startswith(f"descentlab: error: --port: got {port}; expected a free port")
    assert f"127.0.0.1:{port}" in line
