"""The hooks a descentlab plugin can implement, and the markers that tag them."""

import pluggy

__all__ = ["register_optimizers", "register_schedules", "register_problems", "register_transforms"]

hookspec = pluggy.HookspecMarker("descentlab")
hookimpl = pluggy.HookimplMarker("descentlab")


@hookspec
def register_optimizers(register):
    """Called once when plugins load: call ``register(DescentRule(...))`` for each descent rule."""


@hookspec
def register_schedules(register):
    """Called once when plugins load: call ``register(Schedule(...))`` for each learning-rate schedule."""


@hookspec
def register_problems(register):
    """Called once when plugins load: call ``register(Problem(...))`` for each training problem."""


@hookspec
def register_transforms(register):
    """Called once when plugins load: call ``register(Transform(...))`` for each gradient transform or wrapper."""
