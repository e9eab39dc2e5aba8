"""Built-in rules, registered like any third-party plugin."""

from descentlab import hookimpl


@hookimpl
def register_optimizers(register):
    """Register the built-in descent rules."""
