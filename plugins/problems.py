"""Built-in problems, registered like any third-party plugin."""

from descentlab import hookimpl


@hookimpl
def register_problems(register):
    """Register the built-in problems."""
