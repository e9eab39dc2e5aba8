"""Helpers for plugin authors' own tests: ``check_rule`` fails a pytest test with every broken clause."""

from __future__ import annotations

from .conformance import CheckResult, check_rule as _run_checks
from .declarations import DescentRule

__all__ = ["check_rule"]


def check_rule(rule: DescentRule) -> list[CheckResult]:
    """Run ``descentlab check``'s battery on ``rule``; raise AssertionError naming each failed check.

    In a plugin's tests: ``def test_my_rule(): descentlab.testing.check_rule(MY_RULE)``.
    """
    results = _run_checks(rule)
    failed = [f"  {r.name}: {r.reason}" for r in results if not r.passed]
    if failed:
        raise AssertionError(
            f"rule {rule.name!r} fails {len(failed)} of {len(results)} conformance checks:\n" + "\n".join(failed)
        )
    return results
