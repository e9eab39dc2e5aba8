"""The one exception type that bad user input raises, with a one-line message."""

__all__ = ["SpecError", "MAX_VALUE_CHARS", "one_line", "safe_str", "PluginError", "ResultsError"]


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
        text = text[: MAX_VALUE_CHARS - 20] + f"... ({len(text)} characters)"
    return text


def safe_str(value: object) -> str:
    """``str(value)``, or a stand-in naming its type when that raises: an exception from plugin code
    may carry a ``__str__`` that fails, and reporting it must not become a traceback of its own."""
    try:
        return str(value)
    except Exception:
        try:
            return f"<{type(value).__name__} whose message cannot be shown: its __str__ raised>"
        except Exception:
            return "<a value whose message cannot be shown>"


def one_line(text: object) -> str:
    """``text`` with every line break (and run of spaces around it) turned into one space."""
    text = safe_str(text)
    return " ".join(part.strip() for part in text.splitlines() if part.strip()) or text.strip()


class PluginError(RuntimeError):
    """A plugin that failed to import, register or declare itself; the message names the plugin."""


class ResultsError(SpecError):
    """A results folder that is not what ``descentlab run`` writes (docs/results.md): one line naming
    the file and the field that is wrong. A SpecError, so every caller of bad input shows it as such."""

    def __init__(self, path, field: str, problem: str, accepted: str = "the layout in docs/results.md"):
        self.path, self.problem = str(path), str(problem)
        self.field, self.value, self.accepted = field, str(path), accepted
        shown = self.path if len(self.path) <= MAX_VALUE_CHARS else self.path[: MAX_VALUE_CHARS - 20] + "..."
        where = f"results {shown if shown.strip() else repr(shown)}" + (
            f", field {field}" if field else ""
        )  # an empty path shown as ''
        ValueError.__init__(self, one_line(f"{where}: {problem}; expected {accepted}"))
