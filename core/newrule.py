"""``descentlab new-rule NAME``: a single-file plugin folder to start a descent rule from.

It holds ``NAME.py`` (heavy-ball momentum as a working ``DescentRule``, registered through the
``register_optimizers`` hook), ``test_NAME.py`` (the conformance battery plus one step computed by
hand) and a ``pyproject.toml`` declaring the entry point descentlab loads installed plugins by.
Nothing that exists is overwritten.
"""

from __future__ import annotations

import importlib.util
import keyword
import sys
from pathlib import Path

from .errors import SpecError
from .registry import ENTRY_POINT_GROUP

__all__ = ["RULE_TEMPLATE", "TEST_TEMPLATE", "PYPROJECT_TEMPLATE", "check_name", "plan", "write"]

RULE_TEMPLATE = '''"""__NAME__: heavy-ball momentum, a descentlab descent rule (made by `descentlab new-rule __NAME__`).

    v ← μ v + g
    θ ← θ − α v

g is the gradient, α the learning rate (the runner owns it and its schedule), μ the momentum
hyperparameter and v the velocity, one row per run. On a quadratic with largest curvature λ the
rule is stable iff α·λ < 2 + 2μ. Change ``update`` (and the formula) to make it your own rule; then
``descentlab check __NAME__.py`` and ``python -m pytest test___NAME__.py`` say whether it still keeps
the rule contract.

Use it from a file:  descentlab run EXPERIMENT.toml --plugin __NAME__.py  (rule = "__NAME__")
or install this folder (pip install .): descentlab then finds it through its entry point.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from descentlab import DescentRule, HyperParam, hookimpl


class State(NamedTuple):
    velocity: np.ndarray  # (runs, parameters): every state field has the run axis first


def init(params, hyper):
    return State(np.zeros_like(params))


def update(grad, state, params, learning_rate, hyper, step):
    # grad and params are (runs, parameters); learning_rate and hyper["momentum"] are (runs, 1).
    # Never write into grad or params: return the change, the runner adds it to params.
    velocity = hyper["momentum"] * state.velocity + grad
    return -learning_rate * velocity, State(velocity)


RULE = DescentRule(
    "__NAME__", init, update,
    hyperparams=(HyperParam("momentum", 0.9, low=0.0, high=1.0, high_open=True, help="momentum factor μ"),),
    summary="Heavy-ball momentum (a template made by descentlab new-rule).",
    formula="v ← μv + g;  θ ← θ − α v",
    default_learning_rate=0.01,
    stability_threshold=lambda hyper: 2.0 + 2.0 * hyper["momentum"],
    threshold_note="α·λ < 2 + 2μ",
)


@hookimpl
def register_optimizers(register):
    register(RULE)
'''

TEST_TEMPLATE = '''"""Tests of the __NAME__ rule: descentlab's conformance battery and two steps computed by hand."""

import numpy as np
from descentlab.testing import check_rule

from __NAME__ import RULE


def test___NAME___passes_descentlab_check():
    check_rule(RULE)  # the battery `descentlab check` runs; fails naming every broken clause


def test_two_steps_computed_by_hand():
    params = np.array([[1.0, -2.0]])  # one run, two parameters
    learning_rate = np.array([[0.1]])
    hyper = {"momentum": np.array([[0.5]])}
    state = RULE.init(params, hyper)
    updates, state = RULE.update(np.array([[0.5, 4.0]]), state, params, learning_rate, hyper, 0)
    # v = 0.5·0 + g = (0.5, 4);  update = −α v = (−0.05, −0.4)
    np.testing.assert_allclose(updates, [[-0.05, -0.4]])
    updates, state = RULE.update(np.array([[1.0, -2.0]]), state, params + updates, learning_rate, hyper, 1)
    # v = 0.5·(0.5, 4) + (1, −2) = (1.25, 0);  update = −α v = (−0.125, 0)
    np.testing.assert_allclose(updates, [[-0.125, 0.0]])
'''

PYPROJECT_TEMPLATE = """# Install with `pip install .` in this folder; descentlab then finds the rule by its entry point
# (`descentlab plugins` shows its origin as package __DIST__ 0.1.0). Reinstall after editing this file.
[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "__DIST__"
version = "0.1.0"
description = "The __NAME__ descent rule for descentlab"
dependencies = ["descentlab", "numpy"]

[project.entry-points.__GROUP__]
__NAME__ = "__NAME__"  # the module that holds the @hookimpl function

[tool.setuptools]
py-modules = ["__NAME__"]
"""


def check_name(name: str, registry) -> None:
    """Raise a one-line SpecError unless ``name`` can be a new rule and a new top-level module."""
    field = "new-rule NAME"
    if not name.isidentifier() or name != name.lower() or keyword.iskeyword(name):
        raise SpecError(field, name, "a lowercase Python identifier (letters, digits and _), e.g. scaled_momentum")
    if name in registry.rules:
        raise SpecError(
            field,
            name,
            "a name no rule has yet",
            hint=f"{name!r} is already registered by {registry.origin('rule', name)}",
        )
    if name in sys.stdlib_module_names or importlib.util.find_spec(name) is not None:
        raise SpecError(
            field,
            name,
            "a name no importable module has",
            hint=f"a module {name!r} exists, and {name}.py would shadow it",
        )


def plan(name: str, folder: str | None = None) -> dict[Path, str]:
    """The files ``new-rule`` writes, path -> text; a SpecError if one exists or the folder cannot be one."""
    root = Path(folder if folder is not None else f"descentlab_{name}")
    if root.exists() and not root.is_dir():
        raise SpecError("--dir", str(root), "a folder (or a path that does not exist yet)")

    def fill(template: str) -> str:
        return (
            template.replace("__NAME__", name)
            .replace("__DIST__", "descentlab-" + name.replace("_", "-"))
            .replace("__GROUP__", ENTRY_POINT_GROUP)
        )

    files = {
        root / f"{name}.py": fill(RULE_TEMPLATE),
        root / f"test_{name}.py": fill(TEST_TEMPLATE),
        root / "pyproject.toml": fill(PYPROJECT_TEMPLATE),
    }
    for path in files:
        if path.exists() or path.is_symlink():
            raise SpecError(
                "new-rule",
                str(path),
                "a file that does not exist yet",
                hint="new-rule never overwrites; choose another NAME or --dir",
            )
    return files


def write(files: dict[Path, str]) -> list[Path]:
    """Write every planned file, each atomically and never over a file that appeared meanwhile
    (:func:`descentlab.atomic.create_text_atomic`)."""
    from .atomic import create_text_atomic

    written = []
    for path, text in files.items():
        try:
            create_text_atomic(path, text)
        except FileExistsError:
            raise SpecError(
                "new-rule", str(path), "a file that does not exist yet", hint="new-rule never overwrites"
            ) from None
        except OSError as error:
            raise SpecError("new-rule", str(path), "a writable path", hint=error.strerror or str(error)) from None
        written.append(path)
    return written
