"""Built-in schedules, registered like any third-party plugin."""

from descentlab import hookimpl


@hookimpl
def register_schedules(register):
    """Register the built-in learning-rate schedules."""
