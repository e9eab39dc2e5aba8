"""The one exception type that bad user input raises, with a one-line message."""


class SpecError(ValueError):
    """Bad input: names the field, the value given and what is accepted, on one line.

    The CLI prints ``str(error)`` and exits with status 2; the dashboard shows it in the page.
    """

    def __init__(self, field: str, value, accepted: str, *, hint: str = ""):
        self.field, self.value, self.accepted = field, value, accepted
        message = f"{field}: got {value!r}; expected {accepted}"
        if hint:
            message += f" ({hint})"
        super().__init__(message)


class PluginError(RuntimeError):
    """A plugin that failed to import, register or declare itself; the message names the plugin."""
