"""The README's gradient-check snippet runs as written."""

import re
from pathlib import Path

SECTION = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_check_grads_snippet_runs(capsys):
    blocks = re.findall(r"```python\n(.*?)```", SECTION.read_text(encoding="utf-8"), re.S)
    snippet = next(b for b in blocks if "check_grads(" in b)
    exec(compile(snippet, str(SECTION), "exec"), {})
    worst = float(capsys.readouterr().out.split()[-1])
    assert worst < 1e-6
