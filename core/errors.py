"""The one exception type that bad user input raises, with a one-line message."""


class SpecError(ValueError):
    """Bad input: names the field, the value given and what is accepted, on one line.

    The CLI prints ``str(error)`` and exits with status 2; the dashboard shows it in the page.
    """

    def __init__(self, field: str, value, accepted: str, *, hint: str = ""):
        self.field, self.value, self.accepted = field, value, accepted
        message = f"{field}: got {_short(value)}; expected {accepted}"
        if hint:
            message += f" ({hint})"
        super().__init__(one_line(message))


MAX_VALUE_CHARS = 200


def _short(value) -> str:
    """``repr(value)``, cut to a readable length (a 10 MB value must not become a 10 MB message)."""
    text = repr(value)
    if len(text) > MAX_VALUE_CHARS:
        text = text[:MAX_VALUE_CHARS - 20] + f"... ({len(text)} characters)"
    return text


def one_line(text: str) -> str:
    """``text`` with every line break (and run of spaces around it) turned into one space."""
    return " ".join(part.strip() for part in str(text).splitlines() if part.strip()) or str(text).strip()


class PluginError(RuntimeError):
    """A plugin that failed to import, register or declare itself; the message names the plugin."""
