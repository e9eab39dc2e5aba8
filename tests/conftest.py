"""Shared test set-up: third-party entry points are blocked so installed plugins cannot change results,
OpenBLAS uses one kernel family on every x86-64 machine, and every test starts with Python's own
Ctrl-C handler."""

import os
import signal

# OpenBLAS picks its matrix kernels by CPU (SkylakeX on an AVX-512 machine, Haswell on an AVX2 one),
# and kernels differ in the last bits. The snapshot goldens are bit-level, so the suite pins the
# AVX2 family every x86-64 CPU since 2013 has (docs/dev/tests.md); it must be set before numpy loads.
# (If a pytest plugin loaded numpy first, only the subprocesses get the pin and the snapshot test
# skips, naming the kernels it found.)
os.environ.setdefault("OPENBLAS_CORETYPE", "Haswell")

import pytest

os.environ["DESCENTLAB_NO_ENTRY_POINTS"] = "1"
os.environ.pop("DESCENTLAB_PLUGINS", None)

# A job started in the background by a non-interactive shell begins with SIGINT ignored, and Python
# then leaves it ignored: the Ctrl-C tests would wait for an interrupt that never comes (one such
# wait hung a whole CI run). Their children inherit the handler set here.
signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(autouse=True)
def _main_module_is_restored():
    """Streamlit's AppTest leaves ``sys.modules["__main__"]`` pointing at its generated script (for
    ``from_function``, one that calls the page with its arguments); a later test whose worker
    processes start by forkserver or spawn (chosen once other threads run, e.g. a Dask client's)
    would make each worker import that script and die. Every test gets the real one back."""
    import sys

    main = sys.modules.get("__main__")
    yield
    if main is not None:
        sys.modules["__main__"] = main


@pytest.fixture(autouse=True)
def _ctrl_c_is_a_keyboard_interrupt():
    """Fail the test that leaves Ctrl-C changed, instead of hanging a later one."""
    yield
    handler = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    assert handler is signal.default_int_handler, f"this test left SIGINT handled by {handler!r}"
